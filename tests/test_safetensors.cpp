// safetensors reader against lying headers: every case must fail with a message naming the file
// and the problem, and never read out of bounds (CI also runs this under AddressSanitizer).
#include <cstring>

#include "common.h"
#include "formats/safetensors.h"
#include "util/fs.h"

using namespace clm;

static std::string file_with_header(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(json.size()) >> (8 * i)) & 0xff);
  return out + json + std::string(data_bytes, '\x01');
}

static std::string error_of(const std::string& bytes) {
  try {
    parse_safetensors(bytes, "bad.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(SafeTensors, RoundTripAllDtypesBitForBit) {
  Tensor a = Tensor::from<float>({1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7.f}, {2, 3});
  Tensor b = Tensor::from<double>({1.0 / 3.0}, {1});
  Tensor c = Tensor::from<int32_t>({-5, 7}, {2});
  Tensor d = a.to(DType::bf16), e = a.to(DType::f16);
  std::string bytes = serialize_safetensors({{"a", a}, {"b", b}, {"c", c}, {"d", d}, {"e", e}}, {{"k", "v"}});
  SafeTensors st = parse_safetensors(bytes, "mem");
  EXPECT_EQ(st.metadata.at("k"), "v");
  for (auto& [name, t] : std::vector<std::pair<std::string, Tensor>>{{"a", a}, {"b", b}, {"c", c}, {"d", d}, {"e", e}}) {
    const Tensor& r = st.get(name);
    ASSERT_EQ(r.shape(), t.shape());
    ASSERT_EQ(r.dtype(), t.dtype());
    EXPECT_EQ(std::memcmp(r.raw(), t.raw(), t.nbytes()), 0) << name;
  }
  EXPECT_THROW(st.get("zz", "mem"), std::runtime_error);
}

TEST(SafeTensors, LyingHeadersAreRejected) {
  struct Case {
    std::string bytes, expect;
  };
  std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::vector<Case> cases{
      {"abc", "truncated"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "exceeds file size"},
      {file_with_header("{not json", 0), "bad JSON"},
      {file_with_header("[1,2]", 0), "not a JSON object"},
      {file_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}})", 8), "outside"},
      {file_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "outside"},
      {file_with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "bytes for shape"},
      {file_with_header(R"({"w":{"dtype":"F8_E9","shape":[2],"data_offsets":[0,2]}})", 8), "unsupported dtype"},
      {file_with_header(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8), "too large"},
      {file_with_header(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", 8), "bad shape"},
      {file_with_header(R"({"w":{"dtype":"F32","shape":[2]}})", 8), "needs dtype"},
      {file_with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12), "overlap"},
  };
  for (auto& c : cases) {
    std::string e = error_of(c.bytes);
    EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << c.expect;
    EXPECT_NE(e.find(c.expect), std::string::npos) << "got: " << e;
  }
  EXPECT_EQ(error_of(file_with_header(ok, 8)), "");
}

TEST(SafeTensors, MissingFileNamesThePath) {
  try {
    load_safetensors("/nonexistent/x.safetensors");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.safetensors"), std::string::npos);
  }
}

TEST(SafeTensors, LoadIsMemoryMappedAndCopyOnWrite) {
  test::TempDir d;
  Tensor a = Tensor::from<float>({1, 2, 3, 4}, {2, 2});
  save_safetensors(d.path + "/w.safetensors", {{"a", a}});
  const std::string before = read_file(d.path + "/w.safetensors");
  {
    SafeTensors st = load_safetensors(d.path + "/w.safetensors");
    Tensor t = st.get("a");
    EXPECT_EQ(t.at(3), 4.0);
    t.data<float>()[0] = 42.0f;  // a private mapping: the file never changes
    EXPECT_EQ(st.get("a").at(0), 42.0);
  }
  EXPECT_EQ(read_file(d.path + "/w.safetensors"), before);
  write_file_atomic(d.path + "/empty.safetensors", "");
  EXPECT_THROW(load_safetensors(d.path + "/empty.safetensors"), std::runtime_error);
}
