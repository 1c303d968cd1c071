#include "train/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include "formats/safetensors.h"
#include "util/fs.h"

namespace clm {

namespace fs = std::filesystem;

static std::vector<std::pair<std::string, Tensor>> named_weights(TransformerLM& m) {
  std::vector<std::pair<std::string, Tensor>> w;
  m.visit([&](const std::string& n, nn::Var& v, nn::ParamKind) { w.push_back({n, v->value}); });
  return w;
}

void save_model_files(const std::string& dir, TransformerLM& model, const Tokenizer* tok) {
  fs::create_directories(dir);
  save_safetensors(dir + "/model.safetensors", named_weights(model), {{"format", "compactlm"}});
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

LoadedModel load_model(const std::string& path, DType dtype) {
  LoadedModel lm;
  lm.dir = resolve_checkpoint(path);
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
  lm.model = std::make_unique<TransformerLM>(cfg, 0, dtype);
  std::set<std::string> used;
  lm.model->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
    const Tensor& t = st.get(n, w_path);
    if (t.shape() != v->value.shape())
      throw std::runtime_error("'" + w_path + "': tensor '" + n + "' has shape " + shape_str(t.shape()) +
                               ", config.json implies " + shape_str(v->value.shape()));
    v->value.copy_(t);
    used.insert(n);
  });
  for (auto& [n, t] : st.tensors)
    if (!used.count(n)) throw std::runtime_error("'" + w_path + "': unexpected tensor '" + n + "'");
  if (fs::exists(lm.dir + "/tokenizer.json")) lm.tokenizer = load_tokenizer(lm.dir + "/tokenizer.json");
  return lm;
}

void save_checkpoint(const std::string& run_dir, int64_t step, TransformerLM& model, const Tokenizer& tok,
                     const AdamW& opt, const nlohmann::json& trainer_state, int keep_last) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", (long long)step);
  const std::string final_dir = run_dir + "/" + name, tmp = run_dir + "/.tmp-" + name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_model_files(tmp, model, &tok);
  save_safetensors(tmp + "/optimizer.safetensors", opt.state());
  write_file_atomic(tmp + "/trainer_state.json", trainer_state.dump(2) + "\n");
  fsync_dir(tmp);
  if (fs::exists(final_dir)) {  // same step saved twice: keep the old one until the new one is in place
    const std::string old = run_dir + "/.old-" + name;
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  fsync_dir(run_dir);
  write_file_atomic(run_dir + "/latest", std::string(name) + "\n");
  // Prune older step folders.
  std::vector<std::string> steps;
  for (auto& e : fs::directory_iterator(run_dir)) {
    std::string f = e.path().filename().string();
    if (e.is_directory() && f.rfind("step-", 0) == 0) steps.push_back(f);
  }
  std::sort(steps.begin(), steps.end());
  for (int i = 0; i + keep_last < (int)steps.size(); ++i)
    if (steps[i] != name) fs::remove_all(run_dir + "/" + steps[i]);
}

nlohmann::json load_trainer_state(const std::string& step_dir) {
  const std::string p = step_dir + "/trainer_state.json";
  try {
    return nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + p + "': bad JSON: " + e.what());
  }
}

void load_optimizer(const std::string& step_dir, AdamW& opt, int64_t steps) {
  const std::string p = step_dir + "/optimizer.safetensors";
  SafeTensors st = load_safetensors(p);
  opt.load_state(st.tensors, steps, p);
}

}  // namespace clm
