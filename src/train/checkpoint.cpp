#include "train/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include "formats/safetensors.h"
#include "util/fs.h"

namespace clm {

namespace fs = std::filesystem;

void save_checkpoint(const std::string& run_dir, int64_t step, LanguageModel& model, const Tokenizer& tok,
                     const Optimizer& opt, const nlohmann::json& trainer_state, int keep_last) {
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
  if (keep_last <= 0) return;
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

void load_optimizer(const std::string& step_dir, Optimizer& opt, int64_t steps) {
  const std::string p = step_dir + "/optimizer.safetensors";
  SafeTensors st = load_safetensors(p);
  opt.load_state(st.tensors, steps, p);
}

}  // namespace clm
