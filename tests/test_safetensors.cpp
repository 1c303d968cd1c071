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

// Found by fuzz/fuzz_safetensors (UBSan: misaligned load): the spec lets an F64 follow a single
// F32, 4 bytes into the data section; the reader must not hand out a view read with misaligned loads.
TEST(SafeTensors, UnalignedTensorsAreCopiedToAlignedMemory) {
  std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F64","shape":[1],"data_offsets":[4,12]}})";
  while ((8 + h.size()) % 8) h += ' ';
  std::string bytes = file_with_header(h, 0);
  const float a = 1.5f;
  const double b = -2.25;
  bytes.append(reinterpret_cast<const char*>(&a), 4).append(reinterpret_cast<const char*>(&b), 8);
  clm::test::TempDir dir;
  const std::string path = dir.path + "/unaligned.safetensors";
  write_file_atomic(path, bytes);
  for (const SafeTensors& st : {parse_safetensors(bytes, "mem"), load_safetensors(path)}) {
    const Tensor& t = st.get("b");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % alignof(double), 0u);
    EXPECT_EQ(t.at(0), -2.25);
    EXPECT_EQ(st.get("a").at(0), 1.5);
  }
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

// The header length must end exactly where the JSON (plus space padding) ends, and the data
// section must be exactly the tensors: otherwise the length and the offsets disagree about where
// each tensor's bytes are, and one of them is lying.
TEST(SafeTensors, HeaderLengthAndDataSectionMustBeExact) {
  auto with_length = [](std::string bytes, uint64_t hlen) {
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((hlen >> (8 * i)) & 0xff);
    return bytes;
  };
  auto length_of = [](const std::string& bytes) {
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
    return n;
  };
  auto expect_refused = [](const std::string& bytes, const std::string& what) {
    std::string e = error_of(bytes);
    EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << what << ": accepted";
    EXPECT_NE(e.find(what), std::string::npos) << "got: " << e;
  };
  Tensor a = Tensor::from<float>({1, 2, 3, 4}, {4});
  const std::string padded = serialize_safetensors({{"a", a}});  // header padded with spaces to 8 bytes
  const uint64_t hlen = length_of(padded);
  ASSERT_EQ(padded[8 + hlen - 1], ' ') << "the writer is expected to pad this header";
  EXPECT_EQ(error_of(padded), "");
  // one byte short: the JSON still parses, but the dropped space now sits in front of the data
  expect_refused(with_length(padded, hlen - 1), "end at byte 16 of the 17-byte data section");
  // one byte long: the header swallows the first data byte (0x00 here, which nlohmann takes for
  // the end of the input)
  expect_refused(with_length(padded, hlen + 1), "header of length 57 is not one JSON object padded with spaces only");
  // an unpadded header one byte short cuts the JSON
  std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string exact = file_with_header(ok, 8);
  EXPECT_EQ(error_of(exact), "");
  expect_refused(with_length(exact, ok.size() - 1), "bad JSON");
  // padding other than spaces (the spec allows only 0x20)
  expect_refused(file_with_header(ok + "\n", 8), "padded with spaces only");
  expect_refused(file_with_header(ok + "\t ", 8), "padded with spaces only");
  expect_refused(file_with_header(" " + ok, 8), "padded with spaces only");
  expect_refused(file_with_header(ok + std::string(3, '\0'), 8), "padded with spaces only");
  // appended garbage, and a hole between tensors
  expect_refused(padded + "junk", "end at byte 16 of the 20-byte data section");
  expect_refused(file_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 9), "end at byte 8 of the 9-byte");
  expect_refused(file_with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
                 "unused bytes [4, 8) before tensor 'b'");
  // no tensors: the data section must be empty
  EXPECT_EQ(error_of(file_with_header("{}", 0)), "");
  expect_refused(file_with_header("{}", 1), "end at byte 0 of the 1-byte");
}

// A tensor's last byte may be the data section's last byte, and not one past it.
TEST(SafeTensors, OffsetsAtTheEndOfTheDataSection) {
  const std::string two = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_EQ(error_of(file_with_header(two, 8)), "");  // end == data size
  std::string e = error_of(file_with_header(two, 7));  // end == data size + 1
  EXPECT_NE(e.find("tensor 'b': data_offsets [4, 8] outside the 7-byte data section"), std::string::npos) << e;
  // dtype x shape must be the byte count, for every dtype
  e = error_of(file_with_header(R"({"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(e.find("tensor 'h': 4 bytes for shape [2, 2] of f16"), std::string::npos) << e;
  EXPECT_EQ(error_of(file_with_header(R"({"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}})", 8)), "");
}

// JSON parsers keep one of two equal keys silently; which tensor would be used is then anyone's guess.
TEST(SafeTensors, TensorsListedTwiceAreRejected) {
  std::string e = error_of(file_with_header(
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
  EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor 'w' listed twice"), std::string::npos) << e;
  e = error_of(file_with_header(R"({"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(e.find("key 'dtype' repeated"), std::string::npos) << e;
  // equal keys in different objects are fine
  EXPECT_EQ(error_of(file_with_header(
                R"({"__metadata__":{"w":"x"},"v":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
            "");
}

// A hostile name must not turn the one-line message into megabytes.
TEST(SafeTensors, LongNamesAreCutInMessages) {
  const std::string name(100000, 'n');
  std::string e = error_of(file_with_header(R"({")" + name + R"(":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8));
  EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << e.substr(0, 200);
  EXPECT_NE(e.find("bytes for shape"), std::string::npos) << e.substr(0, 200);
  EXPECT_LT(e.size(), 300u);
}
