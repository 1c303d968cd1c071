// clm eval: perplexity of a model on a corpus split or a file.
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "cli/cli.h"
#include "data/dataset.h"
#include "eval/perplexity.h"
#include "eval/retrieval.h"
#include "eval/tasks.h"
#include "infer/gpu_decoder.h"
#include "kernels/kernels.h"
#include "models/io.h"
#include "quant/checkpoint.h"
#include "quant/methods.h"
#include "util/fs.h"

namespace clm::cli {

namespace {
struct EvalArgs {
  std::string model_path, tok_path, split = "test", file;
  int64_t window = 0, stride = 0, batch = 8;
  int threads = 0;
  DataArgs data;
  bool infer = false;
  std::string report;
  QuantArgs quant;
  PositionOverride position;
  int64_t retrieval = 0;
  bool mlm = false;
  double mask_prob = 0.15;
  std::string device = "cpu";
  std::vector<std::string> tasks;
  std::string tasks_dir;
  int64_t limit = 0;
  bool bos = false;
};

void append_line(const std::string& file, const nlohmann::json& j) {
  std::ofstream f(file, std::ios::app);
  if (!(f << j.dump() << "\n") || !f.flush()) throw std::runtime_error("cannot write '" + file + "'");
}

// clm eval --task: zero-shot tasks with lm-eval's protocols, one table row per task and the average.
int run_tasks(const EvalArgs& a, LoadedModel& lm, const Tokenizer& tok) {
  if (a.tasks_dir.empty()) throw std::invalid_argument("--task needs --tasks-dir (the folder holding lambada_openai/, piqa/, ...)");
  if (a.limit < 0) throw std::invalid_argument("--limit must be >= 0");
  std::vector<std::string> names;
  for (const auto& t : a.tasks)
    if (t == "all") names.insert(names.end(), task_names().begin(), task_names().end());
    else names.push_back(t);
  std::vector<Task> tasks;
  for (const auto& n : names) tasks.push_back(load_task(n, a.tasks_dir, a.limit));  // every file checked before scoring
  const bool quantized = a.quant.given() || !lm.quant.is_null();
  const quant::QuantResult q = lm.quant.is_null() ? a.quant.apply(*lm.model) : quant::loaded_quant_result(*lm.model, lm.quant);
  ScoreOptions o;
  o.batch = a.batch;
  o.max_len = a.window;
  o.bos = a.bos;
  std::vector<TaskResult> results;
  const bool tty = isatty(fileno(stderr));
  for (const Task& t : tasks) {
    const auto t0 = std::chrono::steady_clock::now();
    auto progress = [&](int64_t done, int64_t total) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const bool tenth = done * 10 / total != (done - o.batch) * 10 / total;  // not a terminal: a line per 10%
      if (tty || done == total || tenth)
        std::fprintf(stderr, "%s%s: %lld/%lld requests | %.1f req/s | ETA %.0f s%s", tty ? "\r" : "", t.name.c_str(), (long long)done,
                     (long long)total, double(done) / s, double(total - done) * s / double(done), done == total || !tty ? "\n" : "");
    };
    results.push_back(evaluate_task(*lm.model, tok, t, o, progress));
  }
  std::printf("%-16s %6s %14s %14s %10s\n", "task", "n", "acc", "acc_norm", "ppl");
  double sum = 0;
  for (const auto& r : results) {
    char norm[32] = "-", ppl[32] = "-";
    if (r.acc_norm >= 0) std::snprintf(norm, sizeof norm, "%.4f±%.4f", r.acc_norm, r.acc_norm_stderr);
    if (r.ppl >= 0) std::snprintf(ppl, sizeof ppl, "%.2f", r.ppl);
    std::printf("%-16s %6lld %7.4f±%.4f %14s %10s\n", r.task.c_str(), (long long)r.n, r.acc, r.acc_stderr, norm, ppl);
    sum += r.acc;
  }
  if (results.size() > 1) std::printf("%-16s %6s %7.4f\n", "average acc", "", sum / double(results.size()));
  if (!a.report.empty())
    for (const auto& r : results) {
      nlohmann::json j = {{"model", a.model_path}, {"task", r.task}, {"n", r.n}, {"acc", r.acc}, {"acc_stderr", r.acc_stderr},
                          {"bos", a.bos}, {"limit", a.limit}, {"method", quantized ? q.method : "none"}};
      if (r.acc_norm >= 0) j["acc_norm"] = r.acc_norm, j["acc_norm_stderr"] = r.acc_norm_stderr;
      if (r.ppl >= 0) j["ppl"] = r.ppl;
      append_line(a.report, j);
    }
  return 0;
}

int run_eval(const EvalArgs& a) {
  if (a.retrieval < 0) throw std::invalid_argument("--retrieval must be >= 0");
  if (a.window < 0 || a.stride < 0 || a.batch <= 0 || a.threads < 0)
    throw std::invalid_argument("--window and --stride must be >= 0, --batch-size > 0, --threads >= 0");
  kernels::set_num_threads(a.threads);
  LoadedModel lm = load_model(a.model_path, DType::f32, a.tok_path, a.position.opts);
  if (!lm.quant.is_null() && a.quant.given())
    throw std::invalid_argument("'" + lm.dir + "' is already quantized (" + lm.quant.value("method", "?") + "): drop --quant");
  if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer.json (give --tokenizer)");
  std::shared_ptr<Tokenizer> tok(std::move(lm.tokenizer));
  if (!a.tasks.empty()) {
    if (a.retrieval || a.mlm || a.device != "cpu" || !a.file.empty())
      throw std::invalid_argument("--task runs alone (no --retrieval, --mlm, --file, --device cuda)");
    return run_tasks(a, lm, *tok);
  }
  std::string what;
  std::vector<int32_t> stream = token_stream(tok, a.data, a.split, a.file, what);
  const int64_t T = a.window > 0 ? a.window : lm.model->config().max_seq_len;

  if (a.retrieval > 0 && (a.quant.given() || a.infer))
    throw std::invalid_argument("--retrieval scores the batched forward only (no --quant, --infer)");
  if (a.mlm) {
    if (lm.model->config().vocab_size != tok->vocab_size() + 1)
      throw std::invalid_argument("'" + a.model_path + "' has no mask token (vocabulary " + std::to_string(lm.model->config().vocab_size) +
                                  " for a tokenizer of " + std::to_string(tok->vocab_size()) + "): it was not trained with --objective mlm");
    if (a.quant.given() || a.infer || a.retrieval) throw std::invalid_argument("--mlm scores the batched forward only (no --quant, --infer, --retrieval)");
    PerplexityResult r = masked_lm_loss(*lm.model, stream, T, a.batch, a.mask_prob);
    std::printf("%s: masked-LM loss (per masked %s) %.4f | %s\n", what.c_str(), tok->unit().c_str(), r.mean_nll(), r.protocol.c_str());
    if (!a.report.empty()) append_line(a.report, {{"model", a.model_path}, {"data", what}, {"mlm_loss", r.mean_nll()}, {"tokens", r.tokens},
                                                  {"protocol", r.protocol}, {"window", T}});
    return 0;
  }
  if (lm.model->config().bidirectional())
    throw std::invalid_argument("'" + a.model_path + "' has bidirectional attention (a masked LM): score it with --mlm");
  // a quantized checkpoint scores through infer() as --quant does
  const bool quantized = a.quant.given() || !lm.quant.is_null();
  const quant::QuantResult q = lm.quant.is_null() ? a.quant.apply(*lm.model) : quant::loaded_quant_result(*lm.model, lm.quant);
  const bool through_infer = a.infer || quantized;
  const bool gpu = parse_device(a.device) == Device::cuda;
  if (gpu) {
    // the batched forward on the device, or (--infer, --quant, a quantized folder) the GPU decoder
    if (through_infer) lm.model = gpu_decoder(std::move(lm.model), "f32");
    else lm.model->to_device(Device::cuda);
  }
  PerplexityResult r = perplexity(*lm.model, stream, T, a.stride > 0 ? a.stride : T, a.batch, 0, through_infer);
  if (lm.model->config().sees_future())
    std::printf("NOT A CAUSAL LM: every position sees the tokens it predicts (a reproduction mode); the number below is not a perplexity\n");
  std::printf("%s: perplexity (per %s) %.3f | mean nll %.4f | %s\n", what.c_str(), tok->unit().c_str(), r.ppl(), r.mean_nll(),
              r.protocol.c_str());
  if (quantized) {  // the GPU's quantizer does not count the activations it rounds to zero
    char kernel[64];
    std::snprintf(kernel, sizeof kernel, "kernel (activations rounded to 0) %.3f%%", 100 * q.kernel());
    std::printf("quantized: %s %s | %.3f bits/weight, %.3f bits/activation | %s\n", q.method.c_str(), q.options.dump().c_str(),
                q.avg_w_bits, q.avg_a_bits, gpu ? "on the GPU (INT8 GEMMs / NVFP4 dp4a kernels)" : kernel);
  }
  std::vector<RetrievalPoint> rt;
  if (a.retrieval > 0) {
    rt = retrieval(*lm.model, stream, T, a.retrieval, {0.0, 0.25, 0.5, 0.75, 0.95}, a.batch);
    std::printf("retrieval of a planted pair over %lld tokens (%lld trials per depth):", (long long)T, (long long)a.retrieval);
    for (auto& p : rt) std::printf(" depth %.2f: %.0f%%", p.depth, 100 * p.accuracy());
    std::printf("\n");
  }
  if (!a.report.empty()) {
    nlohmann::json j = {{"model", a.model_path}, {"data", what}, {"ppl", r.ppl()}, {"mean_nll", r.mean_nll()},
                        {"tokens", r.tokens}, {"protocol", r.protocol}, {"window", T}, {"sees_future", lm.model->config().sees_future()},
                        {"position", lm.model->config().position}, {"position_opt", lm.model->config().position_opt}, {"method", quantized ? q.method : "none"},
                        {"options", q.options}, {"w_bits", quantized ? q.avg_w_bits : 32.0},
                        {"a_bits", quantized ? q.avg_a_bits : 32.0}, {"kernel", q.kernel()}};
    for (auto& p : rt)
      j["retrieval"].push_back({{"depth", p.depth}, {"trials", p.trials}, {"accuracy", p.accuracy()},
                                {"mean_logp", p.logp_sum / double(p.trials)}});
    for (auto& l : q.layers)
      j["layers"].push_back({{"name", l->name}, {"in", l->in}, {"k_eff", l->k_eff}, {"kernel", l->kernel()}});
    append_line(a.report, j);
  }
  return 0;
}
}  // namespace

void add_eval(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<EvalArgs>();
  auto* ev = app.add_subcommand("eval", "Perplexity of a model on a corpus split, or zero-shot tasks (--task)");
  ev->add_option("--model", a->model_path, "Checkpoint: run or step folder, or a llama2.c .bin")->required();
  ev->add_option("--tokenizer", a->tok_path, "Tokenizer file; default: the checkpoint's");
  a->data.add(ev);
  ev->add_option("--split", a->split, "train | valid | test")->capture_default_str();
  ev->add_option("--file", a->file, "Score one text file (instead of a corpus split)");
  ev->add_option("--window", a->window, "Tokens per window (0 = the model's max_seq_len)");
  ev->add_option("--stride", a->stride, "Window stride (0 = window: non-overlapping)");
  ev->add_option("--batch-size", a->batch, "Windows per forward")->capture_default_str();
  ev->add_option("--threads", a->threads, "Threads (0 = all cores)");
  ev->add_option("--device", a->device, "cpu | cuda (the batched forward on a GPU, or with --infer / --quant the GPU decoder; a build with -DCLM_CUDA=ON)")->capture_default_str();
  ev->add_flag("--infer", a->infer, "Score through the inference path (one window at a time; implied by --quant)");
  a->quant.add(ev);
  a->position.add(ev);
  ev->add_flag("--mlm", a->mlm, "Masked-LM loss instead of perplexity (models trained with --objective mlm)");
  ev->add_option("--mask-prob", a->mask_prob, "--mlm: fraction of tokens masked (fixed seed)")->capture_default_str();
  ev->add_option("--retrieval", a->retrieval,
                 "Also run the planted-pair retrieval task: this many trials per depth at the window length (0 = off)");
  ev->add_option("--task", a->tasks, "Zero-shot task(s) with lm-eval's protocols: lambada_openai, piqa, arc_easy, arc_challenge, "
                 "boolq, hellaswag, winogrande, or all (repeat the flag for several)");
  ev->add_option("--tasks-dir", a->tasks_dir, "--task: the folder holding one subfolder per task (e.g. ../shared/data/tasks)");
  ev->add_option("--limit", a->limit, "--task: score only the first N examples of each task (0 = all)");
  ev->add_flag("--bos", a->bos, "--task: prepend BOS to every request (lm-eval's Hugging Face default does not)");
  ev->add_option("--report", a->report, "Append one JSON line with the result (and per-layer kernel) to this file");
  cmds.push_back({ev, [a] { return run_eval(*a); }});
}

}  // namespace clm::cli
