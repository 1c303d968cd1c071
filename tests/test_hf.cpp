// Hugging Face checkpoints: small random models of each family made by transformers
// (tools/make_hf_fixtures.py; llama sharded in f32, the others in bf16) must give the reference
// logits and the same greedy tokens; bad folders fail with one message naming file and problem.
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "common.h"
#include "formats/hf.h"
#include "formats/safetensors.h"
#include "infer/generate.h"
#include "models/io.h"
#include "util/fs.h"

using namespace clm;
namespace fs = std::filesystem;

static std::string fixture(const std::string& fam) { return std::string(CLM_SOURCE_DIR) + "/tests/fixtures/hf/" + fam; }

class HfFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFamily, LogitsAndGreedyMatchTransformers) {
  const std::string dir = fixture(GetParam());
  LoadedModel lm = load_model(dir);
  EXPECT_EQ(lm.format, "hf-" + GetParam());
  SafeTensors ref = load_safetensors(dir + "/reference.safetensors");
  const Tensor& ids = ref.get("ids");
  ag::NoGrad ng;
  Tensor logits = lm.model->forward(ids, 1, ids.numel())->value;
  EXPECT_LT(test::rel_err(logits, ref.get("logits")), 1e-4) << GetParam();
  std::vector<int32_t> prompt(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
  Sampler greedy({0.0, 0, 1.0, 0});
  std::vector<int32_t> out = generate(*lm.model, prompt, {8, -1}, greedy);
  const Tensor& want = ref.get("greedy");
  EXPECT_EQ(out, std::vector<int32_t>(want.data<int32_t>(), want.data<int32_t>() + want.numel())) << GetParam();
}
INSTANTIATE_TEST_SUITE_P(Families, HfFamily, ::testing::Values("llama", "mistral", "qwen2", "phi3", "gemma"));

TEST(HfConfig, FamiliesMapToSlots) {
  auto cfg = [](const std::string& fam) {
    return hf_config_to_model_config(read_file(fixture(fam) + "/config.json"), fam);
  };
  EXPECT_TRUE(cfg("qwen2").attn_bias);
  EXPECT_TRUE(cfg("qwen2").tie_embeddings);
  EXPECT_EQ(cfg("gemma").norm, "rmsnorm_1p");
  EXPECT_EQ(cfg("gemma").mlp, "geglu_tanh");
  EXPECT_EQ(cfg("gemma").hd(), 32);
  EXPECT_NEAR(cfg("gemma").embed_scale, 8.0, 1e-12);
  EXPECT_FALSE(cfg("llama").rope_interleaved);
}

// UBSan in fuzz/fuzz_config (on an input written after reading the code): sizes of 1e300 were converted to int64 with undefined behaviour.
TEST(HfConfig, SizesMustBeIntegersInRange) {
  auto j = nlohmann::json::parse(read_file(fixture("llama") + "/config.json"));
  j["hidden_size"] = 64.0;  // integral floats are fine
  EXPECT_EQ(hf_config_to_model_config(j.dump(), "c.json").d_model, 64);
  for (const char* key : {"vocab_size", "hidden_size", "num_key_value_heads", "max_position_embeddings", "head_dim"})
    for (double bad : {1e300, -1e300, 16.5}) {
      auto k = j;
      k[key] = bad;
      try {
        hf_config_to_model_config(k.dump(), "c.json");
        ADD_FAILURE() << key << " = " << bad << " accepted";
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), std::string("'c.json': ") + key + " must be an integer");
      }
    }
}

TEST(HfErrors, BadFoldersNameFileAndProblem) {
  test::TempDir d;
  auto copy_family = [&](const std::string& fam) {
    std::string dst = d.path + "/" + fam;
    fs::remove_all(dst);
    fs::copy(fixture(fam), dst, fs::copy_options::recursive);
    return dst;
  };
  auto error_of = [](const std::string& dir) -> std::string {
    try {
      load_model(dir);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  // unsupported architecture
  std::string q = copy_family("qwen2");
  nlohmann::json j = nlohmann::json::parse(read_file(q + "/config.json"));
  j["model_type"] = "mamba";
  write_file_atomic(q + "/config.json", j.dump());
  EXPECT_NE(error_of(q).find("unsupported architecture 'mamba'"), std::string::npos) << error_of(q);
  // a shape that does not match config.json
  q = copy_family("qwen2");
  j = nlohmann::json::parse(read_file(q + "/config.json"));
  j["intermediate_size"] = 128;
  write_file_atomic(q + "/config.json", j.dump());
  EXPECT_NE(error_of(q).find("config.json implies"), std::string::npos) << error_of(q);
  // a missing tensor
  std::string m = copy_family("mistral");
  SafeTensors st = load_safetensors(m + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& [n, t] : st.tensors)
    if (n != "model.norm.weight") kept.push_back({n, t});
  save_safetensors(m + "/model.safetensors", kept);
  EXPECT_NE(error_of(m).find("missing tensor 'model.norm.weight'"), std::string::npos) << error_of(m);
  // a shard index pointing outside the folder
  std::string l = copy_family("llama");
  j = nlohmann::json::parse(read_file(l + "/model.safetensors.index.json"));
  j["weight_map"]["model.norm.weight"] = "../../etc/passwd";
  write_file_atomic(l + "/model.safetensors.index.json", j.dump());
  EXPECT_NE(error_of(l).find("leaves the folder"), std::string::npos) << error_of(l);
  // bad JSON
  write_file_atomic(l + "/config.json", "{\"model_type\": \"llama\",");
  EXPECT_NE(error_of(l).find("config.json"), std::string::npos) << error_of(l);
}

// An integer tensor where a weight is expected: converting int32 values to floats would load
// nonsense weights without a word, so the loader names the file, the tensor and its dtype.
TEST(HfErrors, IntegerTensorWhereAWeightIsExpected) {
  test::TempDir d;
  const std::string m = d.path + "/mistral";
  fs::copy(fixture("mistral"), m, fs::copy_options::recursive);
  SafeTensors st = load_safetensors(m + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : st.tensors) out.push_back({n, n == "model.norm.weight" ? t.to(DType::i32) : t});
  save_safetensors(m + "/model.safetensors", out);
  ASSERT_EQ(load_safetensors(m + "/model.safetensors").get("model.norm.weight").dtype(), DType::i32);
  std::string e;
  try {
    load_model(m);
  } catch (const std::exception& ex) {
    e = ex.what();
  }
  EXPECT_NE(e.find(m + "/model.safetensors"), std::string::npos) << "accepted: " << e;
  EXPECT_NE(e.find("tensor 'model.norm.weight' has dtype i32"), std::string::npos) << e;
}
