#include "common.h"
#include "tensor/tensor.h"

using namespace clm;

TEST(Tensor, ShapeStridesAndViews) {
  Tensor t = Tensor::from<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  EXPECT_EQ(t.strides(), (std::vector<int64_t>{3, 1}));
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  Tensor c = tt.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.at(0), 0);
  EXPECT_EQ(c.at(1), 3);
  EXPECT_EQ(c.at(2), 1);
  Tensor s = t.slice(1, 1, 3);  // columns 1..2
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.contiguous().at(3), 5);
  EXPECT_TRUE(s.same_storage(t));
  Tensor r = t.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 2}));
  EXPECT_THROW(t.reshape({4, -1}), std::invalid_argument);
  EXPECT_THROW(t.slice(0, 1, 3), std::out_of_range);
  EXPECT_THROW(t.data<double>(), std::logic_error);
}

TEST(Tensor, Bf16AndF16KnownValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);                 // overflow -> inf
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  // Every f16 value survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaN payloads
    ASSERT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << h;
  }
}

TEST(Tensor, DtypeConversionCopies) {
  Tensor t = Tensor::from<float>({1.5f, -2.25f, 3.0f}, {3});
  Tensor b = t.to(DType::bf16);
  EXPECT_EQ(b.dtype(), DType::bf16);
  Tensor back = b.to(DType::f64);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(back.at(i), t.at(i));
  EXPECT_THROW(Tensor::empty({-1}), std::invalid_argument);
  EXPECT_THROW(dtype_from_name("F8"), std::invalid_argument);
}
