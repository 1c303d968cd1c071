// clm quantize: a model quantized by one method, written as a folder that generate / chat / serve /
// eval / info load directly (quant/checkpoint.h). Calibrates first when the method needs it and no
// --calib file is given.
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "cli/cli.h"
#include "kernels/kernels.h"
#include "models/io.h"
#include "quant/calibrate.h"
#include "quant/checkpoint.h"

namespace clm::cli {

namespace fs = std::filesystem;

namespace {
struct QuantizeArgs {
  std::string model_path, tok_path, split = "train", file, out;
  int64_t windows = 128, window = 128;
  int threads = 0;
  bool force = false;
  DataArgs data;
  QuantArgs quant;
};

uint64_t folder_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

int run_quantize(const QuantizeArgs& a) {
  if (!a.quant.given()) throw std::invalid_argument("--quant METHOD is required (" + quant::MethodRegistry::get().names() + "; see --help)");
  if (a.windows <= 0 || a.window <= 0) throw std::invalid_argument("--windows and --window must be > 0");
  const quant::QuantMethod& method = quant::MethodRegistry::get().at(a.quant.method);  // unknown: error before loading
  std::error_code ec;
  if (fs::exists(a.out, ec) && !fs::is_directory(a.out, ec)) throw std::invalid_argument("--out '" + a.out + "' exists and is not a folder");
  if (fs::exists(a.out, ec) && !fs::is_empty(a.out, ec) && !a.force)
    throw std::invalid_argument("--out '" + a.out + "' exists and is not empty (give --force to replace it)");
  const bool calibrate = method.needs_calibration && a.quant.calib.empty();
  if (calibrate && !a.data.given() && a.file.empty())
    throw std::invalid_argument("'" + a.quant.method + "' needs calibration: give --calib FILE (clm calibrate) or the text to calibrate on, " +
                                "--data DIR (its --split, default train) or --file FILE");
  kernels::set_num_threads(a.threads);
  LoadedModel lm = load_model(a.model_path, DType::f32, a.tok_path);
  refuse_quantized(lm, "quantize");
  std::shared_ptr<Tokenizer> tok(std::move(lm.tokenizer));
  std::unique_ptr<quant::Calibration> cal;
  if (calibrate) {
    if (!tok) throw std::runtime_error("'" + lm.dir + "': no tokenizer (give --tokenizer)");
    cal = std::make_unique<quant::Calibration>(calibrate_on(*lm.model, tok, a.data, a.split, a.file, a.windows, a.window, nullptr));
  }
  const quant::QuantResult q = a.quant.apply(*lm.model, cal.get());
  // written beside --out, then moved into place: a good folder is never half replaced
  const std::string tmp = a.out + ".tmp-" + std::to_string(::getpid()), old = a.out + ".old-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  try {
    quant::save_quantized(tmp, *lm.model, tok.get(), q);
    if (cal) cal->save(tmp + "/calibration.json");
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  const bool replace = fs::exists(a.out, ec);
  if (replace) fs::rename(a.out, old);
  fs::rename(tmp, a.out);
  if (replace) fs::remove_all(old, ec);
  std::printf("quantized: %s %s | %.3f bits/weight, %.3f bits/activation | %zu Linears | %s -> %s (%s)\n", q.method.c_str(),
              q.options.dump().c_str(), q.avg_w_bits, q.avg_a_bits, q.layers.size(), lm.dir.c_str(), a.out.c_str(),
              human_bytes(double(folder_bytes(a.out))).c_str());
  return 0;
}
}  // namespace

void add_quantize(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* c = app.add_subcommand("quantize", "Quantize a model with one method and write it as a folder that generate, chat, serve, eval and info load");
  c->add_option("--model", a->model_path, "Checkpoint: run or step folder, Hugging Face folder, or a llama2.c .bin")->required();
  c->add_option("--tokenizer", a->tok_path, "Tokenizer file; default: the checkpoint's");
  a->quant.add(c);
  a->data.add(c);
  c->add_option("--split", a->split, "Calibration split when the method needs statistics and no --calib is given: train | valid | test")
      ->capture_default_str();
  c->add_option("--file", a->file, "Calibrate on one text file (instead of a corpus split)");
  c->add_option("--windows", a->windows, "Calibration windows")->capture_default_str();
  c->add_option("--window", a->window, "Tokens per calibration window")->capture_default_str();
  c->add_option("--out", a->out, "Folder to write (config.json, model.safetensors, quant.safetensors, quant.json, tokenizer.json)")->required();
  c->add_flag("--force", a->force, "Replace --out if it exists");
  c->add_option("--threads", a->threads, "Threads (0 = all cores)");
  cmds.push_back({c, [a] { return run_quantize(*a); }});
}

}  // namespace clm::cli
