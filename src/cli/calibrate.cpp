// clm calibrate: activation statistics of every Linear's input over windows of a text, for the
// quantization methods (clm eval --quant METHOD --calib FILE).
#include <cstdio>

#include "cli/cli.h"
#include "kernels/kernels.h"
#include "models/io.h"
#include "quant/calibrate.h"

namespace clm::cli {

namespace {
struct CalibArgs {
  std::string model_path, tok_path, split = "train", file, out;
  int64_t windows = 128, window = 512;
  int threads = 0;
  DataArgs data;
};

int run_calibrate(const CalibArgs& a) {
  if (a.windows <= 0 || a.window <= 0) throw std::invalid_argument("--windows and --window must be > 0");
  if (!a.data.given() && a.file.empty())
    throw std::invalid_argument("give the calibration text: --data DIR (its --split, default train; e.g. WikiText-2) or --file FILE");
  kernels::set_num_threads(a.threads);
  LoadedModel lm = load_model(a.model_path, DType::f32, a.tok_path);
  if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer.json (give --tokenizer)");
  std::shared_ptr<Tokenizer> tok(std::move(lm.tokenizer));
  std::string what;
  quant::Calibration c = calibrate_on(*lm.model, tok, a.data, a.split, a.file, a.windows, a.window, &what);
  c.save(a.out);
  int groups = 0;
  for (auto& [name, s] : c.inputs) groups = std::max(groups, s.group + 1);
  std::printf("calibration: %zu Linears in %d input groups, %lld windows of %lld tokens from %s -> %s\n", c.inputs.size(), groups,
              (long long)c.windows, (long long)c.window, what.c_str(), a.out.c_str());
  return 0;
}
}  // namespace

void add_calibrate(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<CalibArgs>();
  auto* c = app.add_subcommand("calibrate", "Record every Linear's input statistics over a calibration text (for clm eval --quant)");
  c->add_option("--model", a->model_path, "Checkpoint: run or step folder, Hugging Face folder, or a llama2.c .bin")->required();
  c->add_option("--tokenizer", a->tok_path, "Tokenizer file; default: the checkpoint's");
  a->data.add(c);
  c->add_option("--split", a->split, "train | valid | test")->capture_default_str();
  c->add_option("--file", a->file, "Calibrate on one text file (instead of a corpus split)");
  c->add_option("--windows", a->windows, "Windows to run (fewer if the text is shorter)")->capture_default_str();
  c->add_option("--window", a->window, "Tokens per window")->capture_default_str();
  c->add_option("--out", a->out, "Statistics file to write (JSON)")->required();
  c->add_option("--threads", a->threads, "Threads (0 = all cores)");
  cmds.push_back({c, [a] { return run_calibrate(*a); }});
}

}  // namespace clm::cli
