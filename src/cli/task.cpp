// clm train --task shapes (a vision-language model on the rendered shapes task) and clm kv-bench
// (every KV policy at several budgets: accuracy, perplexity or long-generation fidelity against the KV memory kept).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "autograd/ops.h"
#include "cli/cli.h"
#include "data/dataset.h"
#include "data/shapes.h"
#include "eval/longgen.h"
#include "eval/perplexity.h"
#include "eval/plot.h"
#include "eval/vqa.h"
#include "kernels/kernels.h"
#include "models/io.h"
#include "train/trainer.h"
#include "util/fs.h"

namespace clm::cli {

namespace {
uint64_t mix(uint64_t a, uint64_t b) {
  Rng r(a * 0x9e3779b97f4a7c15ull ^ b);
  return r.next();
}

// Mean answer-token loss of a fixed batch (train-split scenes, draws unseen in training).
double shapes_val_loss(LanguageModel& m, const ShapesTask& task, int64_t T, uint64_t seed) {
  ag::NoGrad ng;
  Tensor x, y, img;
  task.batch(mix(seed, 0x76616cull), 128, T, m.image_tokens(), 0.2, x, y, img);
  m.set_images(img);
  return ag::cross_entropy(m.forward(x, 128, T), y)->value.item();
}

void print_vqa(const char* what, const VqaResult& r) {
  std::printf("%s accuracy: %.2f%% (%lld / %lld)", what, 100.0 * r.accuracy(), (long long)r.correct, (long long)r.items);
  for (auto& [k, v] : r.by_kind) std::printf(" | %s %.1f%%", k.c_str(), 100.0 * double(v.first) / double(std::max<int64_t>(1, v.second)));
  std::printf("\n");
}
}  // namespace

int run_train_task(CLI::App* c, const std::string& task_name, ModelConfig mcfg, TrainConfig tcfg, std::string out,
                   const std::string& resume, double p_describe) {
  if (task_name != "shapes") throw std::invalid_argument("--task: unknown task '" + task_name + "' (known: shapes)");
  if (c->count("--data") || c->count("--train") || c->count("--tokenizer") || c->count("--init-from"))
    throw std::invalid_argument("--task shapes renders its own data and vocabulary: not with --data, --tokenizer or --init-from");
  if (!(p_describe >= 0 && p_describe <= 1)) throw std::invalid_argument("--describe-frac must be in [0, 1]");
  kernels::set_num_threads(tcfg.threads);
  const ShapesTask task;
  WordTokenizer tok(task.vocabulary());
  std::unique_ptr<LanguageModel> model;
  std::string resume_dir;
  if (!resume.empty()) {  // the batches are a function of (seed, step): the run continues exactly
    resume_dir = resolve_checkpoint(resume);
    out = std::filesystem::path(resume_dir).parent_path().string();
    LoadedModel lm = load_model(resume_dir);
    refuse_quantized(lm, "train --resume");
    if (lm.model->image_tokens() == 0) throw std::invalid_argument("--resume " + resume_dir + ": not a vision-language model");
    const nlohmann::json st = load_trainer_state(resume_dir);
    TrainConfig r = st.at("train_config").get<TrainConfig>();
    const double rec = st.value("run", nlohmann::json::object()).value("describe_frac", p_describe);
    if (c->count("--describe-frac") && rec != p_describe)
      throw std::invalid_argument("--resume: --describe-frac " + std::to_string(p_describe) + " but the run was trained with " + std::to_string(rec));
    p_describe = rec;  // the same batches as the run had
    r.threads = tcfg.threads;
    if (c->count("--steps")) r.steps = tcfg.steps;
    if (c->count("--time-budget")) r.time_budget_s = tcfg.time_budget_s;
    tcfg = r;
    model = std::move(lm.model);
  } else {
    mcfg.vocab_size = tok.vocab_size();
    if (mcfg.vision == "none") mcfg.vision = "patch";
    if (!mcfg.vision_opt.is_object()) mcfg.vision_opt = nlohmann::json::object();
    if (mcfg.vision_opt.value("image", task.config().image) != task.config().image)
      throw std::invalid_argument("--vision-opt image must be the task's image side, " + std::to_string(task.config().image));
    mcfg.vision_opt["image"] = task.config().image;
    mcfg.vision_opt["token"] = ShapesTask::kImageId;
    if (mcfg.max_seq_len < tcfg.seq_len) mcfg.max_seq_len = tcfg.seq_len;
    mcfg.validate();
    tcfg.validate();
    model = make_model(mcfg, tcfg.seed);
  }
  LanguageModel& m = *model;
  const int64_t B = tcfg.batch_size, T = tcfg.seq_len;
  std::fprintf(stderr, "task shapes: %lldx%lld images, %lld tokens each, vocabulary %lld | model %lld parameters (d_model %lld, %lld layers) | "
                       "train %lld steps x batch %lld x seq %lld, out %s%s\n",
               (long long)task.config().image, (long long)task.config().image, (long long)m.image_tokens(), (long long)tok.vocab_size(),
               (long long)m.num_params(), (long long)m.config().d_model, (long long)m.config().n_layers, (long long)tcfg.steps,
               (long long)B, (long long)T, out.c_str(), resume_dir.empty() ? "" : (" | resuming " + resume_dir).c_str());
  TrainHooks hooks;
  hooks.progress = isatty(2);
  hooks.run_info = {{"task", "shapes"}, {"describe_frac", p_describe}};
  hooks.batch = [&](LanguageModel& lm, int64_t step, int64_t micro, Tensor& x, Tensor& y) {
    Tensor img;
    task.batch(mix(tcfg.seed, uint64_t(step * tcfg.grad_accum + micro)), B, T, lm.image_tokens(), p_describe, x, y, img);
    lm.set_images(img);
  };
  hooks.eval = [&](LanguageModel& lm) { return shapes_val_loss(lm, task, T, tcfg.seed); };
  const std::vector<int32_t> unused(size_t(B * (T + 1) + 1), 0);  // the trainer's stream loader is not read
  train(m, tok, unused, tcfg, out, resume_dir, hooks);
  print_vqa("test (short answers, 500 held-out scenes)", vqa_eval(m, task, 500, 1, ""));
  print_vqa("test (describe, 200 held-out scenes)", vqa_eval(m, task, 200, 2, "describe"));
  std::printf("checkpoint: %s | metrics: %s/metrics.jsonl\n", resolve_checkpoint(out).c_str(), out.c_str());
  return 0;
}

namespace {

struct BenchArgs {
  std::string model, task = "shapes", kind, out, plot, plot_metric, weights = "f32";
  std::vector<std::string> policies, opts;
  std::vector<double> budgets{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  int64_t items = 200, ctx = 1024, chunk = 64, gen = 1024;
  double temperature = 0;
  int threads = 0;
  uint64_t seed = 1;
  DataArgs data;
};

// Perplexity of consecutive windows of `ctx` tokens, each fed in chunks of `chunk` tokens through
// a fresh state under the policy (every chunk is a call: policies compress after it).
struct PplRow {
  double nll = 0, frac_sum = 0, bytes_sum = 0, prefill_s = 0;
  int64_t scored = 0, windows = 0, tokens = 0, top1 = 0;
  KVStats kv;
};
PplRow long_ppl(LanguageModel& m, const std::vector<int32_t>& stream, int64_t ctx, int64_t chunk, int64_t windows, const std::string& policy,
                const nlohmann::json& opts, const KVBudget& b) {
  ag::NoGrad ng;
  PplRow r;
  const int64_t V = m.config().vocab_size;
  std::unique_ptr<KVPolicy> pol = make_kv_policy(policy, opts, b);
  for (int64_t w = 0; w < windows && (w + 1) * ctx + 1 <= int64_t(stream.size()); ++w) {
    InferState s = m.make_state(ctx);
    s.all_logits = true;
    pol->attach(s);
    const int32_t* ids = stream.data() + w * ctx;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t c0 = 0; c0 < ctx; c0 += chunk) {
      const int64_t n = std::min(chunk, ctx - c0);
      m.infer(s, std::span<const int32_t>(ids + c0, size_t(n)));
      for (int64_t t = 0; t < n; ++t) {
        if (c0 + t + 1 >= ctx) break;
        const float* l = s.logits.data() + t * V;
        r.nll += log_sum_exp(l, V) - l[ids[c0 + t + 1]];
        r.top1 += std::max_element(l, l + V) - l == ids[c0 + t + 1];
        ++r.scored;
      }
    }
    r.prefill_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.frac_sum += kv_fraction(s, s.next_pos);
    r.bytes_sum += double(kv_used_bytes(s));
    r.tokens += ctx;
    ++r.windows;
    r.kv += pol->stats;
  }
  if (r.windows == 0) throw std::invalid_argument("kv-bench: the split has fewer than --ctx + 1 tokens");
  return r;
}

int run_kvbench(const BenchArgs& a) {
  if (a.threads < 0) throw std::invalid_argument("--threads must be >= 0");
  kernels::set_num_threads(a.threads);
  for (double b : a.budgets) KVBudget{b, 0}.check();
  if (a.items <= 0 || a.ctx <= 0 || a.chunk <= 0) throw std::invalid_argument("--items, --ctx and --chunk must be > 0");
  std::vector<std::string> policies = a.policies;
  if (policies.empty())  // fastv acts on marked (image) tokens only: text has none
    for (const auto& n : kv_policy_names())
      if (a.task == "shapes" || n != "fastv") policies.push_back(n);
  std::map<std::string, nlohmann::json> opts;
  for (const std::string& o : a.opts) {  // policy.key=value
    const size_t dot = o.find('.');
    if (dot == std::string::npos || o.find('=') < dot) throw std::invalid_argument("--kv-opt '" + o + "': expected policy.key=value");
    nlohmann::json& j = opts[o.substr(0, dot)];
    if (j.is_null()) j = nlohmann::json::object();
    nn::set_option(j, o.substr(dot + 1), "--kv-opt");
  }
  for (const auto& p : policies)  // names and options checked before loading
    if (p != kObjectsCeiling || a.task != "shapes") make_kv_policy(p, opts[p], {});
  if (a.task != "shapes" && a.task != "ppl" && a.task != "gen") throw std::invalid_argument("--task must be shapes, ppl or gen");
  if (a.gen < 1 || !(a.temperature >= 0)) throw std::invalid_argument("--gen must be >= 1 and --temperature >= 0");
  LoadedModel lm = load_model_for_inference(a.model, a.weights);
  LanguageModel& m = *lm.model;
  const ShapesTask task;
  std::vector<int32_t> stream;
  std::string what;
  if (a.task != "shapes") {
    if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer");
    std::shared_ptr<Tokenizer> tok = std::move(lm.tokenizer);
    stream = token_stream(tok, a.data, "test", "", what);
  } else if (m.image_tokens() == 0) {
    throw std::invalid_argument("--task shapes needs a vision-language model (clm train --task shapes); '" + a.model + "' has no vision slot");
  }
  std::ofstream out;
  if (!a.out.empty()) {
    out.open(a.out, std::ios::app);
    if (!out) throw std::runtime_error("cannot write '" + a.out + "'");
  }
  const std::string metric = a.task == "ppl" ? "ppl" : a.task == "gen" ? "agree" : "accuracy";
  std::vector<std::vector<int32_t>> refs;  // gen: the full cache's generation from each prompt
  int64_t gen_items = 0;
  if (a.task == "gen") {
    gen_items = std::min<int64_t>(a.items, int64_t(stream.size()) / a.ctx);
    if (gen_items == 0) throw std::invalid_argument("kv-bench: the split has fewer than --ctx tokens");
    if (a.ctx + a.gen > m.config().max_seq_len && m.config().position == "learned")
      throw std::invalid_argument("--ctx + --gen exceeds the model's learned positions (" + std::to_string(m.config().max_seq_len) + ")");
    for (int64_t i = 0; i < gen_items; ++i)
      refs.push_back(generate_under(m, stream.data() + i * a.ctx, a.ctx, a.gen, a.temperature, mix(a.seed, uint64_t(i)), nullptr, nullptr));
  }
  std::printf("%-10s %7s %8s %9s %10s %12s %12s %8s%s   (model %s, task %s%s, %s)\n", "policy", "budget", "kv_kept", metric.c_str(), "kv_bytes",
              "prefill_t/s", "decode_t/s", "book_ms", a.task == "shapes" ? "  obj_kept  bg_kept" : "", a.model.c_str(), a.task.c_str(), a.kind.empty() ? "" : (" " + a.kind).c_str(),
              a.task == "ppl"   ? (std::to_string(a.items) + " windows of " + std::to_string(a.ctx)).c_str()
              : a.task == "gen" ? (std::to_string(gen_items) + " prompts of " + std::to_string(a.ctx) + " + " + std::to_string(a.gen) + " generated").c_str()
                                : (std::to_string(a.items) + " items").c_str());
  for (const auto& p : policies)
    for (double b : (p == "full" ? std::vector<double>{1.0} : a.budgets)) {
      nlohmann::json row{{"task", a.task}, {"policy", p}, {"budget", b}, {"model", a.model}, {"opts", opts[p]}, {"weights", a.weights}};
      double value = 0, bytes = 0, frac = 0, pre = 0, dec = 0, book = 0;
      if (a.task == "ppl") {
        PplRow r = long_ppl(m, stream, a.ctx, a.chunk, a.items, p, opts[p], {b, 0});
        value = std::exp(r.nll / double(r.scored));
        frac = r.frac_sum / double(r.windows), bytes = r.bytes_sum / double(r.windows);
        pre = double(r.tokens) / r.prefill_s, book = r.kv.seconds * 1e3;
        row.update({{"ppl", value}, {"top1", double(r.top1) / double(r.scored)}, {"windows", r.windows}, {"ctx", a.ctx}, {"chunk", a.chunk}, {"data", what}, {"evicted", r.kv.evicted}});
      } else if (a.task == "gen") {
        GenRow r;
        std::unique_ptr<KVPolicy> pol = make_kv_policy(p, opts[p], {b, 0});
        for (int64_t i = 0; i < gen_items; ++i) {
          const int32_t* prompt = stream.data() + i * a.ctx;
          const std::vector<int32_t> got = generate_under(m, prompt, a.ctx, a.gen, a.temperature, mix(a.seed, uint64_t(i)), pol.get(), &r);
          const std::vector<int32_t>& want = refs[size_t(i)];
          r.agree_sum += double(std::mismatch(got.begin(), got.end(), want.begin()).first - got.begin()) / double(a.gen);
        }
        value = r.agree_sum / double(r.items);
        frac = r.frac_sum / double(r.items), bytes = r.bytes_sum / double(r.items);
        pre = double(r.prompt_tokens) / r.prefill_s, dec = double(r.decoded) / r.decode_s, book = r.kv.seconds * 1e3;
        row.update({{"agree", value}, {"gen_ppl", std::exp(r.nll / double(r.scored))}, {"kl", r.kl / double(r.scored)}, {"items", r.items}, {"ctx", a.ctx}, {"gen", a.gen},
                    {"temperature", a.temperature}, {"data", what}, {"evicted", r.kv.evicted}, {"hidden", r.kv.hidden}});
      } else {
        VqaResult r = vqa_eval(m, task, a.items, a.seed, a.kind, p, opts[p], {b, 0});
        value = r.accuracy();
        frac = r.kv_frac(), bytes = r.kv_bytes_sum / double(r.items);
        pre = double(r.prompt_tokens) / r.prefill_s, dec = double(r.decoded) / r.decode_s, book = r.kv.seconds * 1e3;
        nlohmann::json kinds = nlohmann::json::object();
        for (auto& [k, v] : r.by_kind) kinds[k] = double(v.first) / double(v.second);
        row.update({{"accuracy", value}, {"items", r.items}, {"kind", a.kind}, {"by_kind", kinds}, {"kv_end_frac", r.kv_end_frac()},
                    {"evicted", r.kv.evicted}, {"hidden", r.kv.hidden}, {"restored", r.kv.restored}, {"pruned", r.kv.pruned},
                    {"object_kept", r.obj_kept()}, {"background_kept", r.bg_kept()}});
      }
      row.update({{"kv_frac", frac}, {"kv_bytes", bytes}, {"prefill_tok_s", pre}, {"decode_tok_s", dec}, {"bookkeeping_ms", book}});
      std::printf("%-10s %7.2f %8.3f %9.4f %10s %12.1f %12.1f %8.1f", p.c_str(), b, frac, value, human_bytes(bytes).c_str(), pre, dec, book);
      if (a.task == "shapes") std::printf(" %8.3f %8.3f", row["object_kept"].get<double>(), row["background_kept"].get<double>());
      if (a.task == "gen") std::printf("  gen_ppl %.2f  kl %.4f", row["gen_ppl"].get<double>(), row["kl"].get<double>());
      std::printf("\n");
      std::fflush(stdout);
      if (out) out << row.dump() << "\n" << std::flush;
    }
  if (!a.plot.empty()) {
    if (a.out.empty()) throw std::invalid_argument("--plot needs --out (the curves are drawn from its rows)");
    out.close();
    const std::string pm = !a.plot_metric.empty() ? a.plot_metric : a.task == "gen" ? "kl" : metric;
    write_file_atomic(a.plot, kv_svg(read_file(a.out), pm, "kv-bench: " + a.task + (a.kind.empty() ? "" : " " + a.kind)));
    std::printf("plot: %s\n", a.plot.c_str());
  }
  return 0;
}

}  // namespace

void add_kvbench(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<BenchArgs>();
  auto* c = app.add_subcommand("kv-bench", "KV-cache eviction policies at several budgets: accuracy or perplexity against KV memory kept");
  c->add_option("--model", a->model, "Checkpoint (a vision-language model for --task shapes)")->required();
  c->add_option("--task", a->task,
                "shapes (VQA accuracy of a model from clm train --task shapes) | ppl (long-document perplexity on --data's test split) | "
                "gen (long generation from --data's test prompts, each step judged by the full cache: KL, its perplexity of the tokens, agreement)")
      ->capture_default_str();
  c->add_option("--kind", a->kind, "shapes: question kind (color | shape | count | where | exists | describe; default: the five short ones mixed)");
  c->add_option("--policies", a->policies, "Policies to run (default: all; fastv not for ppl): " + [] {
    std::string s;
    for (auto& n : kv_policy_names()) s += (s.empty() ? "" : ", ") + n;
    return s + "; shapes only: objects (the test bed's ceiling: background image cells evicted, read from the pixels)";
  }())->delimiter(',');
  c->add_option("--budgets", a->budgets, "Budgets, fractions of the tokens seen in (0, 1]")->delimiter(',')->capture_default_str();
  c->add_option("--kv-opt", a->opts, "An option of one policy, policy.key=value (repeatable), e.g. hae.alpha=0.05");
  c->add_option("--items", a->items, "shapes: test items per point; ppl: windows; gen: prompts")->capture_default_str();
  c->add_option("--ctx", a->ctx, "ppl: tokens per window; gen: tokens per prompt")->capture_default_str();
  c->add_option("--chunk", a->chunk, "ppl: tokens per call (the policy compresses after each)")->capture_default_str();
  c->add_option("--gen", a->gen, "gen: tokens generated after each prompt of --ctx tokens")->capture_default_str();
  c->add_option("--temperature", a->temperature, "gen: 0 = greedy; > 0 samples, one draw per step shared by every policy")->capture_default_str();
  c->add_option("--seed", a->seed, "shapes: seed of the test items")->capture_default_str();
  c->add_option("--weights", a->weights, "Weight format for inference (f32, bf16, ...)")->capture_default_str();
  c->add_option("--threads", a->threads, "Threads (0 = all cores)");
  c->add_option("--out", a->out, "Append one JSON row per (policy, budget) to this file");
  c->add_option("--plot", a->plot, "Draw the metric against the KV fraction kept, one line per policy (SVG; needs --out)");
  c->add_option("--plot-metric", a->plot_metric, "The row key to plot (default: accuracy for shapes, ppl for ppl, kl for gen; e.g. top1)");
  a->data.add(c);
  cmds.push_back({c, [a] { return run_kvbench(*a); }});
}

}  // namespace clm::cli
