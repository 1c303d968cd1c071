#include "models/io.h"

#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "formats/hf.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "kernels/format.h"
#include "tokenizers/bpe.h"
#include "tokenizers/llama2c.h"
#include "tokenizers/spm.h"
#include "util/fs.h"
#include "util/memory.h"

namespace clm {

namespace fs = std::filesystem;

void save_model_files(const std::string& dir, LanguageModel& model, const Tokenizer* tok) {
  fs::create_directories(dir);
  save_safetensors(dir + "/model.safetensors", model.named_weights(), {{"format", "compactlm"}});
  nlohmann::json cfg = model.config();
  write_file_atomic(dir + "/config.json", cfg.dump(2) + "\n");
  if (tok) save_tokenizer(*tok, dir + "/tokenizer.json");
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error("'" + path + "': no such checkpoint");
  if (fs::exists(path + "/latest")) {
    std::string name = read_file(path + "/latest");
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (name.empty() || name.find('/') != std::string::npos) throw std::runtime_error("'" + path + "/latest': corrupt");
    return path + "/" + name;
  }
  return path;
}

void assign_weights(LanguageModel& m, const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& file,
                    bool keep_views, const std::set<std::string>& stored_packed) {
  std::map<std::string, const Tensor*> by_name;
  for (auto& [n, t] : tensors) by_name[n] = &t;
  std::set<const ag::Node*> linear;  // weights the packed formats read in any float dtype
  if (keep_views) m.linears([&](const std::string&, nn::Linear& l) { linear.insert(l.w.get()); });
  m.visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
    auto it = by_name.find(n);
    if (it == by_name.end() && stored_packed.count(n)) {
      v->value = Tensor();
      return;
    }
    if (it == by_name.end()) throw std::runtime_error("'" + file + "': missing tensor '" + n + "'");
    if (it->second->shape() != v->value.shape())
      throw std::runtime_error("'" + file + "': tensor '" + n + "' has shape " + shape_str(it->second->shape()) +
                               ", config.json implies " + shape_str(v->value.shape()));
    // copy_ would convert integers to floats without a word: weights stored as integers are corrupt
    const Tensor& t = *it->second;
    const bool floaty = t.dtype() == DType::f32 || t.dtype() == DType::bf16 || t.dtype() == DType::f16;
    if (!floaty && t.dtype() != DType::f64)
      throw std::runtime_error("'" + file + "': tensor '" + n + "' has dtype " + dtype_name(t.dtype()) + ", expected floating point weights");
    // Linear weights, and the token table (its inference lookup reads bf16 / f16 rows), stay views
    const bool table = n.size() >= 19 && n.compare(n.size() - 19, 19, "embed_tokens.weight") == 0;
    if ((linear.count(v.get()) || (keep_views && table)) && floaty && t.is_contiguous())
      v->value = t;  // the file's own bytes: no copy, no conversion
    else
      v->value.copy_(t);
    by_name.erase(it);  // what is left over was not asked for
  });
  if (!by_name.empty()) throw std::runtime_error("'" + file + "': unexpected tensor '" + by_name.begin()->first + "'");
}

void refuse_quantized(const LoadedModel& lm, const std::string& command) {
  if (!lm.quant.is_null())
    throw std::invalid_argument("'" + lm.dir + "' is a quantized checkpoint (" + lm.quant.value("method", "?") + "): " + command +
                                " needs the dense weights; use the model it was quantized from");
}

std::unique_ptr<Tokenizer> load_any_tokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path + "/tokenizer.json")) return load_tokenizer(path + "/tokenizer.json");
    if (fs::exists(path + "/tokenizer.model")) return SpmTokenizer::load(path + "/tokenizer.model");
    if (fs::exists(path + "/encoder.json") && fs::exists(path + "/vocab.bpe"))
      return BpeTokenizer::from_gpt2_files(path + "/encoder.json", path + "/vocab.bpe");
    throw std::runtime_error("'" + path + "': no tokenizer.json, tokenizer.model or encoder.json + vocab.bpe");
  }
  if (path.size() >= 4 && path.substr(path.size() - 4) == ".bin") return std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(path));
  if (path.size() >= 6 && path.substr(path.size() - 6) == ".model") return SpmTokenizer::load(path);
  return load_tokenizer(path);
}

namespace {
// Before anything is allocated: the config's layer count and embedding table against the tensors
// in the file (a config.json claiming 100,000 layers or a 2^40-word vocabulary is refused at
// once, not after gigabytes of allocation), then the memory the weights will take against the
// limit (util/memory.h).
void check_before_allocating(const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& file,
                             DType dtype, bool views) {
  std::set<int64_t> layers;
  int64_t need = 0;
  for (const auto& [name, t] : tensors) {
    if (name.rfind("model.layers.", 0) == 0) layers.insert(std::atoll(name.c_str() + 13));
    if (name == "model.embed_tokens.weight" && c.embedding == "standard" &&
        (t.shape().size() != 2 || t.shape()[0] != c.vocab_size || t.shape()[1] != c.d_model))
      throw std::runtime_error("'" + file + "': model.embed_tokens.weight is " + shape_str(t.shape()) + ", the config's vocab_size x d_model is [" +
                               std::to_string(c.vocab_size) + ", " + std::to_string(c.d_model) + "]");
    need += t.numel() * int64_t(views ? dtype_size(t.dtype()) : dtype_size(dtype));
  }
  if (!layers.empty() && int64_t(layers.size()) != c.n_layers)
    throw std::runtime_error("'" + file + "': the config's n_layers is " + std::to_string(c.n_layers) + ", the file holds tensors of " +
                             std::to_string(layers.size()) + (layers.size() == 1 ? " layer" : " layers"));
  check_memory(need, "the weights of '" + file + "'");
}

nlohmann::json read_quant_json(const std::string& path) {
  nlohmann::json q;
  try {
    q = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + path + "': bad JSON: " + e.what());
  }
  if (!q.is_object() || !q.contains("method") || !q["method"].is_string() || !q.contains("layers") || !q["layers"].is_object() ||
      q["layers"].empty())
    throw std::runtime_error("'" + path + "': needs \"method\" (a string) and \"layers\" (an object naming each quantized Linear)");
  return q;
}

// The quantized Linears of a built model, from their stored forms (before assign_weights empties
// their dense weights). Every Linear named in
// quant.json must exist, every tensor of quant.safetensors must be used.
void restore_quantized(LanguageModel& m, const nlohmann::json& q, const std::string& file) {
  SafeTensors st = load_safetensors(file);
  std::map<std::string, const Tensor*> by_name;
  for (auto& [n, t] : st.tensors) by_name[n] = &t;
  std::set<std::string> left;
  for (auto it = q["layers"].begin(); it != q["layers"].end(); ++it) left.insert(it.key());
  m.linears([&](const std::string& name, nn::Linear& l) {
    if (!left.count(name)) return;
    left.erase(name);
    const nlohmann::json& meta = q["layers"][name];
    auto tensor = [&](const std::string& suffix) -> const Tensor& {
      auto it = by_name.find(name + "." + suffix);
      if (it == by_name.end()) throw std::runtime_error("missing tensor '" + name + "." + suffix + "'");
      const Tensor* t = it->second;
      by_name.erase(it);
      return *t;
    };
    try {
      if (!meta.is_object() || !meta.contains("kind") || !meta["kind"].is_string()) throw std::runtime_error("no \"kind\"");
      auto f = kernels::StoredFormats::get().at(meta["kind"].get<std::string>()).restore(meta, tensor);
      // the stored shape against the config's (the model is built, its weights not yet emptied)
      const int64_t in = l.w->value.dim(1), out = l.w->value.dim(0);
      if (f->rows() != out || f->cols() != in)
        throw std::runtime_error("stored as [" + std::to_string(f->rows()) + ", " + std::to_string(f->cols()) + "], config.json implies [" +
                                 std::to_string(out) + ", " + std::to_string(in) + "]");
      l.packed = std::move(f);
      l.quantized = true;
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error("'" + file + "': Linear '" + name + "': bad metadata: " + e.what());
    } catch (const std::exception& e) {
      throw std::runtime_error("'" + file + "': Linear '" + name + "': " + e.what());
    }
  });
  if (!left.empty()) throw std::runtime_error("'" + file + "': quant.json names '" + *left.begin() + "', which the model does not have");
  if (!by_name.empty()) throw std::runtime_error("'" + file + "': unexpected tensor '" + by_name.begin()->first + "'");
}

// make_model for a loader: a model too large for memory is blamed on the config that describes it.
std::unique_ptr<LanguageModel> build(const ModelConfig& c, DType dtype, const std::string& config_file) {
  try {
    return make_model(c, 0, dtype, false);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + config_file + "': " + e.what());
  }
}

LoadedModel load(const std::string& path, DType dtype, const std::string& tokenizer_path, bool views,
                 const nlohmann::json& position_opt) {
  LoadedModel lm;
  auto edit = [&](ModelConfig c) {  // evaluation-time position options (PI / NTK / YaRN on a rope model)
    if (position_opt.is_object())
      for (auto it = position_opt.begin(); it != position_opt.end(); ++it) c.position_opt[it.key()] = it.value();
    return c;
  };
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {  // a single-file checkpoint: llama2.c
    Llama2cCheckpoint ck = read_llama2c_checkpoint(path);
    check_before_allocating(ck.config, ck.tensors, path, dtype, views);
    lm.model = build(edit(ck.config), dtype, path);
    assign_weights(*lm.model, ck.tensors, path, views);
    lm.dir = path;
    lm.format = "llama2c";
  } else if (is_hf_folder(path)) {
    HfCheckpoint ck = read_hf_checkpoint(path);
    check_before_allocating(ck.config, ck.tensors, path + "/model.safetensors", dtype, views);
    lm.model = build(edit(ck.config), dtype, path + "/config.json");
    assign_weights(*lm.model, ck.tensors, path + "/model.safetensors", views);
    lm.dir = path;
    lm.format = "hf-" + ck.model_type;
    if (fs::exists(path + "/tokenizer.json") || fs::exists(path + "/tokenizer.model")) lm.tokenizer = load_any_tokenizer(path);
  } else {
    lm.dir = resolve_checkpoint(path);
    lm.format = "compactlm";
    const std::string cfg_path = lm.dir + "/config.json", w_path = lm.dir + "/model.safetensors";
    ModelConfig cfg;
    try {
      cfg = nlohmann::json::parse(read_file(cfg_path)).get<ModelConfig>();
      cfg.validate();
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error("'" + cfg_path + "': bad JSON: " + e.what());
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error("'" + cfg_path + "': " + e.what());
    }
    SafeTensors st = load_safetensors(w_path);
    const bool quantized = fs::exists(lm.dir + "/" + kQuantJson);
    std::set<std::string> packed;
    if (quantized) {
      lm.quant = read_quant_json(lm.dir + "/" + kQuantJson);
      for (auto it = lm.quant["layers"].begin(); it != lm.quant["layers"].end(); ++it) packed.insert(it.key() + ".weight");
    }
    check_before_allocating(cfg, st.tensors, w_path, dtype, views);
    lm.model = build(edit(cfg), dtype, cfg_path);
    if (quantized) restore_quantized(*lm.model, lm.quant, lm.dir + "/" + kQuantTensors);
    assign_weights(*lm.model, st.tensors, w_path, views, packed);
    if (fs::exists(lm.dir + "/tokenizer.json")) lm.tokenizer = load_tokenizer(lm.dir + "/tokenizer.json");
  }
  if (!tokenizer_path.empty()) lm.tokenizer = load_any_tokenizer(tokenizer_path);
  // llama2.c's tokenizer lists exactly the model's tokens (nothing is padded, unlike Qwen below):
  // another count is a truncated or wrong file, which generation would quietly limit itself to
  if (lm.tokenizer && lm.tokenizer->type() == "llama2c" && lm.tokenizer->vocab_size() != lm.model->config().vocab_size)
    throw std::runtime_error("'" + (tokenizer_path.empty() ? lm.dir + "/tokenizer.json" : tokenizer_path) + "': llama2.c tokenizer has " +
                             std::to_string(lm.tokenizer->vocab_size()) + " tokens, the model's vocab_size is " +
                             std::to_string(lm.model->config().vocab_size));
  // fewer tokens than embedding rows is normal (Qwen pads its 151,6xx tokens to 151,936 rows);
  // generation then samples only real tokens (GenerateConfig::vocab_limit)
  if (lm.tokenizer && lm.tokenizer->vocab_size() > lm.model->config().vocab_size)
    throw std::runtime_error("tokenizer has " + std::to_string(lm.tokenizer->vocab_size()) + " tokens, more than the model's " +
                             std::to_string(lm.model->config().vocab_size) + " embedding rows");
  return lm;
}
}  // namespace

LoadedModel load_model(const std::string& path, DType dtype, const std::string& tokenizer_path, const nlohmann::json& position_opt) {
  return load(path, dtype, tokenizer_path, false, position_opt);
}

LoadedModel load_model_for_inference(const std::string& path, const std::string& format, const std::string& tokenizer_path,
                                     const nlohmann::json& position_opt) {
  LoadedModel lm = load(path, DType::f32, tokenizer_path, true, position_opt);
  if (format.empty()) return lm;
  // Once a Linear is packed, the mapped pages it came from go back to the OS (read again from the
  // file if touched: embedding rows, a later repack), so that the peak is about one copy of the
  // weights. An f32 original may be kept by the f32 format for batched products, so it stays.
  lm.model->pack(format, [&](nn::Linear& l) {
    const Tensor& w = l.w->value;
    if (w.external() && !(w.dtype() == DType::f32 && format == "f32")) release_pages(w.raw(), w.nbytes());
  });
  return lm;
}

}  // namespace clm
