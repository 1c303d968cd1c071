#include "formats/hf.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "util/fs.h"
#include "util/json_int.h"

namespace clm {

namespace fs = std::filesystem;
using json = nlohmann::json;

static std::string str_or(const json& j, const char* key, const std::string& def) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : def;
}

bool is_hf_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir + "/config.json", ec)) return false;
  try {
    return json::parse(read_file(dir + "/config.json")).contains("model_type");
  } catch (const std::exception&) {
    return false;
  }
}

ModelConfig hf_config_to_model_config(const std::string& text, const std::string& path, std::string* model_type) {
  auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': " + m); };
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail(std::string("bad JSON: ") + e.what());
  }
  const std::string type = str_or(j, "model_type", "");
  static const std::set<std::string> known{"llama", "mistral", "qwen2", "phi3", "gemma"};
  if (!known.count(type)) fail("unsupported architecture '" + type + "' (supported: llama, mistral, qwen2, phi3, gemma)");
  if (model_type) *model_type = type;
  ModelConfig c;
  try {
    auto integer = [&](const char* key) {  // json_int: get<int64_t> converts 1e300 with undefined behaviour
      const auto v = json_int<int64_t>(j.at(key));
      if (!v) fail(std::string(key) + " must be an integer");
      return *v;
    };
    auto given = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
    c.vocab_size = integer("vocab_size");
    c.d_model = integer("hidden_size");
    c.n_layers = integer("num_hidden_layers");
    c.n_heads = integer("num_attention_heads");
    c.n_kv_heads = given("num_key_value_heads") ? integer("num_key_value_heads") : c.n_heads;
    c.d_ff = integer("intermediate_size");
    c.max_seq_len = j.contains("max_position_embeddings") ? integer("max_position_embeddings") : 2048;
    if (given("head_dim")) c.head_dim = integer("head_dim");
    c.norm_eps = j.value("rms_norm_eps", 1e-6);
    // transformers 4.x: rope_theta at top level; 5.x: inside rope_parameters
    c.rope_theta = j.value("rope_theta", 10000.0);
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
      const auto& rp = j["rope_parameters"];
      c.rope_theta = rp.value("rope_theta", c.rope_theta);
      std::string rt = str_or(rp, "rope_type", "default");
      if (rt != "default") fail("unsupported rope_parameters.rope_type '" + rt + "'");
    }
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
      std::string rt = str_or(j["rope_scaling"], "rope_type", str_or(j["rope_scaling"], "type", "?"));
      if (rt != "default") fail("unsupported rope_scaling '" + rt + "'");
    }
    c.tie_embeddings = j.value("tie_word_embeddings", type == "gemma");
    c.attn_bias = type == "qwen2" || j.value("attention_bias", false);
    c.mlp_bias = j.value("mlp_bias", false);
    std::string act = str_or(j, "hidden_act", "silu");
    if (type == "gemma") {  // Gemma's MLP is the tanh GELU whatever hidden_act says (a known quirk)
      act = str_or(j, "hidden_activation", "gelu_pytorch_tanh");
      if (act == "gelu") act = "gelu_pytorch_tanh";
      c.norm = "rmsnorm_1p";
      c.embed_scale = std::sqrt(double(c.d_model));
    }
    if (act == "silu")
      c.mlp = "swiglu";
    else if (act == "gelu_pytorch_tanh")
      c.mlp = "geglu_tanh";
    else
      fail("unsupported activation '" + act + "'");
    if (type == "phi3" && j.value("partial_rotary_factor", 1.0) != 1.0) fail("partial rotary is not supported");
  } catch (const json::exception& e) {
    fail(std::string("missing or bad field: ") + e.what());
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
  return c;
}

HfCheckpoint read_hf_checkpoint(const std::string& dir) {
  HfCheckpoint ck;
  const std::string cfg_path = dir + "/config.json";
  ck.config = hf_config_to_model_config(read_file(cfg_path), cfg_path, &ck.model_type);
  const ModelConfig& c = ck.config;
  // Gather tensors from one file or the shards named by the index.
  std::vector<std::pair<std::string, Tensor>> raw;
  std::map<std::string, std::string> from;  // tensor -> file, for errors
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  std::vector<std::string> files;
  if (fs::exists(single)) {
    files.push_back(single);
  } else if (fs::exists(index)) {
    json ij;
    try {
      ij = json::parse(read_file(index));
    } catch (const std::exception& e) {
      throw std::runtime_error("'" + index + "': bad JSON: " + e.what());
    }
    if (!ij.contains("weight_map") || !ij["weight_map"].is_object()) throw std::runtime_error("'" + index + "': no weight_map");
    std::set<std::string> shard_names;
    for (auto& [name, f] : ij["weight_map"].items()) {
      if (!f.is_string()) throw std::runtime_error("'" + index + "': bad weight_map entry '" + name + "'");
      std::string fn = f.get<std::string>();
      if (fn.find('/') != std::string::npos || fn.find("..") != std::string::npos)
        throw std::runtime_error("'" + index + "': shard name '" + fn + "' leaves the folder");
      shard_names.insert(fn);
    }
    for (auto& fn : shard_names) files.push_back(dir + "/" + fn);
  } else {
    throw std::runtime_error("'" + dir + "': neither model.safetensors nor model.safetensors.index.json");
  }
  for (auto& f : files) {
    SafeTensors st = load_safetensors(f);
    for (auto& [n, t] : st.tensors) {
      from[n] = f;
      raw.push_back({n, t});
    }
  }
  const int64_t hd = c.hd(), qn = c.n_heads * hd, kn = c.n_kv_heads * hd;
  for (auto& [name, t] : raw) {
    if (c.tie_embeddings && name == "lm_head.weight") continue;  // some exports keep the tied copy
    if (name.ends_with("self_attn.qkv_proj.weight")) {  // phi3: rows [q | k | v]
      if (t.ndim() != 2 || t.dim(0) != qn + 2 * kn)
        throw std::runtime_error("'" + from[name] + "': tensor '" + name + "' has shape " + shape_str(t.shape()) +
                                 ", config.json implies " + shape_str({qn + 2 * kn, c.d_model}));
      std::string p = name.substr(0, name.size() - std::string("qkv_proj.weight").size());
      ck.tensors.push_back({p + "q_proj.weight", t.slice(0, 0, qn).contiguous()});
      ck.tensors.push_back({p + "k_proj.weight", t.slice(0, qn, qn + kn).contiguous()});
      ck.tensors.push_back({p + "v_proj.weight", t.slice(0, qn + kn, qn + 2 * kn).contiguous()});
    } else if (name.ends_with("mlp.gate_up_proj.weight")) {  // phi3: rows [gate | up]
      if (t.ndim() != 2 || t.dim(0) != 2 * c.d_ff)
        throw std::runtime_error("'" + from[name] + "': tensor '" + name + "' has shape " + shape_str(t.shape()) +
                                 ", config.json implies " + shape_str({2 * c.d_ff, c.d_model}));
      std::string p = name.substr(0, name.size() - std::string("gate_up_proj.weight").size());
      ck.tensors.push_back({p + "gate_proj.weight", t.slice(0, 0, c.d_ff).contiguous()});
      ck.tensors.push_back({p + "up_proj.weight", t.slice(0, c.d_ff, 2 * c.d_ff).contiguous()});
    } else if (name.ends_with("rotary_emb.inv_freq")) {
      continue;  // recomputed
    } else {
      ck.tensors.push_back({name, t});
    }
  }
  return ck;
}

std::string hf_llama_unsupported(const ModelConfig& c) {
  auto plain = [](const json& o) { return o.is_null() || o.empty(); };
  if (c.arch != "transformer") return "arch '" + c.arch + "'";
  if (c.norm != "rmsnorm" || !plain(c.norm_opt)) return "norm '" + c.norm + "'";
  if (c.mlp != "swiglu" || !plain(c.mlp_opt)) return "mlp '" + c.mlp + "'";
  if (c.position != "rope" || !plain(c.position_opt)) return "position '" + c.position + "'";
  if (c.attention != "causal" || !plain(c.attention_opt)) return "attention '" + c.attention + "'";
  if (c.embedding != "standard" || !plain(c.embedding_opt)) return "embedding '" + c.embedding + "'";
  if (c.vision != "none") return "vision '" + c.vision + "'";
  if (c.embed_scale != 1.0) return "an embedding scale";
  return "";
}

void write_hf_folder(const std::string& dir, const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  if (const std::string why = hf_llama_unsupported(c); !why.empty())
    throw std::invalid_argument("'" + dir + "': transformers' Llama cannot express this model's " + why);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : tensors) {
    Tensor f = t.to(DType::f32).contiguous();
    const bool q = name.ends_with("self_attn.q_proj.weight"), k = name.ends_with("self_attn.k_proj.weight");
    if (c.rope_interleaved && (q || k)) f = interleaved_rows_to_rotate_half(f, q ? c.n_heads : c.n_kv_heads, c.hd());
    if (c.rope_interleaved && (name.ends_with("self_attn.q_proj.bias") || name.ends_with("self_attn.k_proj.bias")))
      throw std::invalid_argument("'" + dir + "': q/k biases of interleaved rotary pairs are not converted");
    out.emplace_back(name, f);
  }
  const json cfg = {{"architectures", {"LlamaForCausalLM"}},
                    {"model_type", "llama"},
                    {"vocab_size", c.vocab_size},
                    {"hidden_size", c.d_model},
                    {"intermediate_size", c.d_ff},
                    {"num_hidden_layers", c.n_layers},
                    {"num_attention_heads", c.n_heads},
                    {"num_key_value_heads", c.n_kv_heads},
                    {"head_dim", c.hd()},
                    {"max_position_embeddings", c.max_seq_len},
                    {"rms_norm_eps", c.norm_eps},
                    {"rope_theta", c.rope_theta},  // transformers 4.x reads this one, 5.x the next
                    {"rope_parameters", {{"rope_theta", c.rope_theta}, {"rope_type", "default"}}},
                    {"hidden_act", "silu"},
                    {"attention_bias", c.attn_bias},
                    {"mlp_bias", c.mlp_bias},
                    {"tie_word_embeddings", c.tie_embeddings},
                    {"torch_dtype", "float32"}};
  fs::create_directories(dir);
  save_safetensors(dir + "/model.safetensors", out, {{"format", "pt"}});
  write_file_atomic(dir + "/config.json", cfg.dump(2) + "\n");
}

}  // namespace clm
