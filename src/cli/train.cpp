// clm train: flags, resume rules, the run's report.
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "cli/cli.h"
#include "util/json_int.h"
#include "data/dataset.h"
#include "eval/perplexity.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "train/data_parallel.h"
#include "train/distill.h"
#include "train/trainer.h"

namespace clm::cli {
namespace fs = std::filesystem;

namespace {

struct TrainArgs {
  ModelConfig mcfg;
  TrainConfig tcfg;
  DataArgs data;
  std::string tok_kind, out = "runs/demo", resume, init_from, init_tokenizer, task, device = "cpu";
  bool tf32 = false, bf16 = false;
  int gpus = 1;
  double describe_frac = 0.2;
  int64_t max_vocab = 0, sample_tokens = 120, eval_tokens = 0, fit_steps = 500;
  double distill_alpha = 0, fit_lr = 1e-2, fit_weight = 0, fit_hidden = 0;
  int64_t fit_hidden_batch = 2;
};

// Training flags and their trainer_state keys: on --resume, one given explicitly must agree with the
// checkpoint (the run continues as it was set up). --steps (extend), --time-budget and --threads are honoured.
const std::vector<std::pair<const char*, const char*>> kFixedOnResume = {
    {"--batch-size", "batch_size"}, {"--seq-len", "seq_len"},     {"--grad-accum", "grad_accum"},
    {"--lr", "lr"},                 {"--min-lr-ratio", "min_lr_ratio"}, {"--warmup", "warmup"},
    {"--weight-decay", "weight_decay"}, {"--beta2", "beta2"},     {"--clip", "clip"},
    {"--objective", "objective"},   {"--mask-prob", "mask_prob"},  {"--optimizer", "optimizer"},
    {"--schedule", "schedule"},     {"--lr-decay", "lr_decay"},    {"--decay-start", "decay_start"},
    {"--decay-every", "decay_every"},
    {"--eval-every", "eval_every"}, {"--ckpt-every", "ckpt_every"}, {"--log-every", "log_every"},
    {"--seed", "seed"}};

void refuse(const std::string& flag, const nlohmann::json& given, const nlohmann::json& ckpt, const std::string& where) {
  throw std::invalid_argument("--resume: " + flag + " " + given.dump() + " but the checkpoint " + where + " has " + ckpt.dump() +
                              " (a resumed run continues as it was set up)");
}

int run_train(CLI::App* c, TrainArgs a) {
  const Device device = parse_device(a.device);
  if (a.gpus != 1) {  // data parallel: one worker process per GPU from here on (train/data_parallel.h)
    if (device != Device::cuda) throw std::invalid_argument("--gpus needs --device cuda");
    if (!a.task.empty() || a.distill_alpha > 0 || !a.init_from.empty())
      throw std::invalid_argument("--gpus: next-token training from a corpus only (no --task, --distill-alpha, --init-from)");
    if (a.tcfg.time_budget_s > 0) throw std::invalid_argument("--gpus: --time-budget is not supported (the workers must stop together)");
    if (a.tcfg.objective != "next") throw std::invalid_argument("--gpus: --objective next only");
  }
  const int rank = dp::launch(a.gpus);
  if (rank > 0 && !std::freopen("/dev/null", "w", stdout)) throw std::runtime_error("cannot silence worker output");
  if (device == Device::cuda) {
    gpu::require("--device cuda");
    if (!a.task.empty()) throw std::invalid_argument("--device cuda: --task trains a vision-language model, which runs on the CPU only");
    if (a.distill_alpha > 0) throw std::invalid_argument("--device cuda: --distill-alpha runs on the CPU only");
    gpu::set_tf32(a.tf32);
    gpu::set_bf16(a.bf16);
  } else if (a.tf32 || a.bf16) {
    throw std::invalid_argument(std::string(a.tf32 ? "--tf32" : "--bf16") + " needs --device cuda");
  }
  if (!a.task.empty()) return run_train_task(c, a.task, a.mcfg, a.tcfg, a.out, a.resume, a.describe_frac);
  if (c->count("--describe-frac")) throw std::invalid_argument("--describe-frac needs --task shapes");
  ModelConfig& mcfg = a.mcfg;
  TrainConfig& tcfg = a.tcfg;
  kernels::set_num_threads(tcfg.threads);
  std::shared_ptr<Tokenizer> tok;
  std::unique_ptr<LanguageModel> resumed;  // the checkpoint's model: training continues on it
  std::string resume_dir;
  if (!a.resume.empty()) {
    resume_dir = resolve_checkpoint(a.resume);
    // the run folder: where the step folders live; the resumed run writes there, nowhere else
    const std::string run_dir = fs::path(resume_dir).parent_path().string();
    if (c->count("--out") && fs::weakly_canonical(a.out) != fs::weakly_canonical(run_dir))
      throw std::invalid_argument("--out " + a.out + " differs from the run being resumed (" + run_dir +
                                  "): a resumed run continues in its own folder");
    a.out = run_dir;
    LoadedModel lm = load_model(resume_dir);
    refuse_quantized(lm, "train --resume");
    nlohmann::json want = mcfg, have = lm.model->config();
    for (auto it = want.begin(); it != want.end(); ++it) {
      std::string flag = "--" + it.key();
      std::replace(flag.begin(), flag.end(), '_', '-');
      if (c->get_option_no_throw(flag) && c->count(flag) && it.value() != have[it.key()]) refuse(flag, it.value(), have[it.key()], resume_dir);
    }
    mcfg = lm.model->config();
    nlohmann::json st = load_trainer_state(resume_dir);
    const std::string where = "'" + resume_dir + "/trainer_state.json'";
    if (!st.is_object() || !st.contains("train_config")) throw std::runtime_error(where + ": train_config is missing");
    const nlohmann::json asked = tcfg, ck = st.at("train_config");
    for (auto [flag, key] : kFixedOnResume)
      if (c->count(flag) && asked.at(key) != ck.value(key, nlohmann::json())) refuse(flag, asked.at(key), ck.value(key, nlohmann::json()), resume_dir);
    TrainConfig r;
    try {
      r = ck.get<TrainConfig>();
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
    r.threads = tcfg.threads;
    if (c->count("--steps")) {
      if (const int64_t at = json_field<int64_t>(st, "step", where); tcfg.steps <= at)
        throw std::invalid_argument("--steps " + std::to_string(tcfg.steps) + ": the run is already at step " + std::to_string(at));
      r.steps = tcfg.steps;  // extends the run (the cosine schedule stretches from here)
    }
    if (c->count("--time-budget")) r.time_budget_s = tcfg.time_budget_s;
    tcfg = r;
    // the same corpus: recorded in the checkpoint; a --data that says otherwise is refused
    const nlohmann::json rec = st.value("run", nlohmann::json::object()).value("data", nlohmann::json());
    if (rec.is_null() && !a.data.given())
      throw std::invalid_argument("--resume: checkpoint " + resume_dir + " does not record its corpus (written by an older clm): give --data");
    if (!rec.is_null() && a.data.given() && a.data.to_json() != rec)
      throw std::invalid_argument("--resume: the corpus given (" + a.data.to_json().dump() + ") is not the run's (" + rec.dump() + ")");
    if (!rec.is_null()) a.data = DataArgs::from_json(rec);
    if (st.value("run", nlohmann::json::object()).contains("distill_alpha"))
      throw std::invalid_argument("--resume: " + resume_dir + " was trained with distillation from another model; resuming it is not supported "
                                  "(start again with --init-from)");
    if (!lm.tokenizer) throw std::runtime_error("'" + resume_dir + "': checkpoint has no tokenizer.json");
    tok = std::move(lm.tokenizer);
    resumed = std::move(lm.model);
  }
  std::unique_ptr<LanguageModel> teacher;  // --init-from: the trained model whose body is copied
  if (!a.init_from.empty()) {
    if (!a.resume.empty()) throw std::invalid_argument("--init-from starts a new run from a trained model: not with --resume");
    for (const char* f : {"--arch", "--d-model", "--n-layers", "--n-heads", "--n-kv-heads", "--d-ff", "--attention", "--attention-opt",
                          "--position", "--position-opt", "--mlp", "--norm", "--tie-embeddings", "--attn-bias", "--rope-theta",
                          "--norm-eps", "--max-seq-len", "--tokenizer", "--max-vocab", "--mlp-opt", "--norm-opt", "--init-std"})
      if (c->count(f))
        throw std::invalid_argument(std::string("--init-from keeps the model's shape and tokenizer: ") + f +
                                    " cannot change (only --embedding, --embedding-opt and --dropout)");
    LoadedModel lm = load_model(a.init_from, DType::f32, a.init_tokenizer);
    refuse_quantized(lm, "train --init-from");
    if (!lm.tokenizer)
      throw std::runtime_error("--init-from '" + a.init_from + "': no tokenizer beside the model (give it with --init-tokenizer)");
    ModelConfig m = lm.model->config();
    if (c->count("--embedding")) m.embedding = mcfg.embedding, m.embedding_opt = mcfg.embedding_opt;
    else if (c->count("--embedding-opt")) m.embedding_opt = mcfg.embedding_opt;
    if (c->count("--dropout")) m.dropout = mcfg.dropout;
    mcfg = m;
    tok = std::move(lm.tokenizer);
    teacher = std::move(lm.model);
  }
  if (a.distill_alpha < 0 || a.distill_alpha > 1) throw std::invalid_argument("--distill-alpha must be in [0, 1]");
  if (a.sample_tokens < 0 || a.sample_tokens >= std::max(mcfg.max_seq_len, tcfg.seq_len))  // checked before training, not after
    throw std::invalid_argument("--sample-tokens must be in [0, " + std::to_string(std::max(mcfg.max_seq_len, tcfg.seq_len)) +
                                "): the sample is generated within the model's context");
  if (a.eval_tokens < 0) throw std::invalid_argument("--eval-tokens must be >= 0");
  if (!(a.fit_lr > 0)) throw std::invalid_argument("--fit-lr must be > 0");
  if (a.fit_steps < 0) throw std::invalid_argument("--fit-steps must be >= 0");
  if (!(a.fit_weight >= 0 && a.fit_weight <= 1)) throw std::invalid_argument("--fit-weight must be in [0, 1]");
  if (!(a.fit_hidden >= 0 && std::isfinite(a.fit_hidden))) throw std::invalid_argument("--fit-hidden must be a finite weight >= 0");
  if (a.fit_hidden_batch < 1) throw std::invalid_argument("--fit-hidden-batch must be >= 1");
  if (!teacher && (c->count("--fit-steps") || c->count("--fit-lr") || c->count("--fit-weight") || c->count("--fit-hidden") ||
                   c->count("--fit-hidden-batch")))
    throw std::invalid_argument("--fit-steps / --fit-lr / --fit-weight / --fit-hidden need --init-from");
  if (!a.init_tokenizer.empty() && !teacher) throw std::invalid_argument("--init-tokenizer needs --init-from");
  if (a.distill_alpha > 0 && !teacher) throw std::invalid_argument("--distill-alpha needs --init-from (the teacher)");
  if (a.tok_kind.empty()) a.tok_kind = a.data.given() ? "word" : "byte";
  tcfg.validate();
  Dataset ds = make_dataset(a.data.load(), a.tok_kind, a.max_vocab, tok);
  const bool mlm = tcfg.objective == "mlm";
  if (mcfg.bidirectional() && !mlm)
    throw std::invalid_argument("bidirectional attention (causal=false) sees the tokens it would predict: train it with --objective mlm");
  if (!resumed) mcfg.vocab_size = ds.tok->vocab_size() + (mlm ? 1 : 0);  // mlm: one more row, the mask
  if (mcfg.vocab_size != ds.tok->vocab_size() + (mlm ? 1 : 0))
    throw std::invalid_argument("the checkpoint's vocabulary (" + std::to_string(mcfg.vocab_size) + ") does not fit its tokenizer" +
                                (mlm ? " plus the mask token" : ""));
  if (mcfg.max_seq_len < tcfg.seq_len) mcfg.max_seq_len = tcfg.seq_len;
  mcfg.validate();
  {  // at least: f32 weights, gradients and AdamW's two moments; a batch's logits and their gradients
    const int64_t weights = resumed ? 0 : checked_mul({mcfg.min_params(), 16});
    const int64_t logits = checked_mul({tcfg.batch_size, tcfg.seq_len, mcfg.vocab_size, 8});
    check_memory(checked_add({weights, logits}),
                 "training a model of " + describe_size(mcfg) + " on batches of " + std::to_string(tcfg.batch_size) + " x " +
                     std::to_string(tcfg.seq_len) + " tokens (weights, gradients, AdamW moments, logits)");
  }
  std::unique_ptr<LanguageModel> mp = resumed ? std::move(resumed) : make_model(mcfg, tcfg.seed);
  LanguageModel& model = *mp;
  if (!resumed) {  // variants that derive structure from the words (SEE units, hash embeddings)
    std::vector<std::string> words;
    for (int32_t i = 0; i < int32_t(ds.tok->vocab_size()); ++i) words.push_back(ds.tok->token_text(i));
    if (mlm) words.push_back("<mask>");
    model.bind_vocabulary(words);
  }
  if (teacher) {  // SEE's stage 1: the body copied, the new embedding fitted to the old table
    if (mlm) throw std::invalid_argument("--init-from: next-token training only");
    const ModelConfig& tc = teacher->config();
    const bool same_embedding = tc.embedding == mcfg.embedding && nlohmann::json(tc.embedding_opt) == nlohmann::json(mcfg.embedding_opt);
    std::vector<std::string> fresh = copy_matching_params(*teacher, model, same_embedding);
    std::string names;
    for (auto& n : fresh) {
      if (n.rfind("model.embed_tokens", 0) != 0) throw std::invalid_argument("--init-from: '" + n + "' has no counterpart in " + a.init_from);
      names += (names.empty() ? "" : ", ") + n;
    }
    std::fprintf(stderr, "init from %s: body copied; new: %s\n", a.init_from.c_str(), names.empty() ? "nothing" : names.c_str());
    if (!fresh.empty() && a.fit_steps > 0 && teacher->embedding() && model.embedding()) {
      teacher->embedding()->refresh();
      const std::vector<float> w = a.fit_weight > 0 ? frequency_weights(ds.train, mcfg.vocab_size, a.fit_weight) : std::vector<float>{};
      const HiddenFit hf{teacher.get(), &ds.train, a.fit_hidden, a.fit_hidden_batch, tcfg.seq_len, tcfg.seed ^ 0x68696464ull};
      const double mse = fit_embedding(model, teacher->embedding()->output_weight()->value, a.fit_steps, a.fit_lr, 50, w, hf);
      std::fprintf(stderr, "init from %s: embedding fitted to the original table, mse %.6g\n", a.init_from.c_str(), mse);
    }
  }
  model.carry_state(!mlm);  // next-token batches are contiguous lanes: recurrent models carry their state
  if (rank == 0)
    std::fprintf(stderr, "data: %s | tokenizer %s (vocab %lld) | train %lld / valid %lld / test %lld tokens\n",
                 ds.name.c_str(), ds.tok->type().c_str(), (long long)ds.tok->vocab_size(), (long long)ds.train.size(),
                 (long long)ds.valid.size(), (long long)ds.test.size());
  if (rank == 0 && mcfg.arch == "transformer")
    std::fprintf(stderr, "model: %lld parameters | d_model %lld, %lld layers, %lld heads (%lld kv), d_ff %lld, %s/%s/%s/%s | threads %d, isa %s\n",
                 (long long)model.num_params(), (long long)mcfg.d_model, (long long)mcfg.n_layers,
                 (long long)mcfg.n_heads, (long long)mcfg.n_kv_heads, (long long)mcfg.d_ff, mcfg.attention.c_str(), mcfg.position.c_str(),
                 mcfg.mlp.c_str(), mcfg.norm.c_str(), kernels::num_threads(), kernels::vec().isa);
  else if (rank == 0)
    std::fprintf(stderr, "model: %lld parameters | %s, hidden %lld, %lld layers, dropout %.2f | threads %d, isa %s\n",
                 (long long)model.num_params(), mcfg.arch.c_str(), (long long)mcfg.d_model, (long long)mcfg.n_layers, mcfg.dropout,
                 kernels::num_threads(), kernels::vec().isa);
  if (rank == 0)
    std::fprintf(stderr, "train: %lld steps x %lld tokens (batch %lld x seq %lld x accum %lld%s), lr %.2e, out %s%s\n",
                 (long long)tcfg.steps, (long long)(tcfg.batch_size * tcfg.seq_len * tcfg.grad_accum * a.gpus),
                 (long long)tcfg.batch_size, (long long)tcfg.seq_len, (long long)tcfg.grad_accum,
                 a.gpus > 1 ? (" x " + std::to_string(a.gpus) + " GPUs").c_str() : "", tcfg.lr, a.out.c_str(),
                 resume_dir.empty() ? "" : (" | resuming " + resume_dir).c_str());
  model.to_device(device);
  if (device == Device::cuda && rank == 0)
    std::fprintf(stderr, "device: %s%s%s%s\n", gpu::describe().c_str(), a.tf32 ? " | TF32 matmuls" : "", a.bf16 ? " | bf16 matmuls" : "",
                 a.gpus > 1 ? (" | data parallel over " + std::to_string(a.gpus) + " GPUs (NCCL)").c_str() : "");
  TrainHooks hooks;
  hooks.progress = isatty(2);
  hooks.run_info = {{"data", a.data.to_json()}};
  if (teacher) hooks.run_info["init_from"] = a.init_from;
  if (a.distill_alpha > 0) hooks.run_info["distill_alpha"] = a.distill_alpha;
  if (a.distill_alpha > 0)  // SEE's stage 2: cross-entropy to the data and to the original model
    hooks.loss = [&](LanguageModel& m, const Tensor& x, const Tensor& y, int64_t B, int64_t T) {
      return distill_loss(m, *teacher, x, y, B, T, a.distill_alpha);
    };
  hooks.eval = [&](LanguageModel& m) {
    if (mlm) return masked_lm_loss(m, ds.valid, tcfg.seq_len, tcfg.batch_size, tcfg.mask_prob, a.eval_tokens).mean_nll();
    return perplexity(m, ds.valid, tcfg.seq_len, tcfg.seq_len, tcfg.batch_size, a.eval_tokens).mean_nll();
  };
  if (a.gpus > 1) {
    dp::init(rank, a.gpus);
    hooks.rank = rank, hooks.world = a.gpus;
    hooks.reduce = [](const std::vector<ParamRef>& ps, double& loss) {
      std::vector<std::pair<float*, int64_t>> bufs;
      for (auto& p : ps)
        if (p.var->grad.defined()) bufs.push_back({p.var->grad.data<float>(), p.var->grad.numel()});
      dp::average(bufs);
      loss = dp::average(loss);
    };
    if (rank > 0) hooks.eval = nullptr, hooks.quiet = true, hooks.progress = false;
  }
  train(model, *ds.tok, ds.train, tcfg, rank == 0 ? a.out : "", resume_dir, hooks);
  if (a.gpus > 1) {
    dp::finalize();
    if (rank > 0) return 0;
  }
  if (mlm) {
    PerplexityResult pv = masked_lm_loss(model, ds.valid, tcfg.seq_len, tcfg.batch_size, tcfg.mask_prob, a.eval_tokens);
    std::printf("valid masked-LM loss (per masked %s): %.4f | %s\n", ds.tok->unit().c_str(), pv.mean_nll(), pv.protocol.c_str());
    std::printf("checkpoint: %s | metrics: %s/metrics.jsonl\n", resolve_checkpoint(a.out).c_str(), a.out.c_str());
    return 0;  // a masked LM does not generate
  }
  PerplexityResult pv = perplexity(model, ds.valid, tcfg.seq_len, tcfg.seq_len, tcfg.batch_size, a.eval_tokens);
  std::printf("valid perplexity (per %s): %.3f | %s\n", ds.tok->unit().c_str(), pv.ppl(), pv.protocol.c_str());
  if (ds.tok->unit() == "byte") std::printf("valid bits per byte: %.4f\n", pv.mean_nll() / std::log(2.0));
  std::printf("checkpoint: %s | metrics: %s/metrics.jsonl (plot: clm plot %s/metrics.jsonl)\n",
              resolve_checkpoint(a.out).c_str(), a.out.c_str(), a.out.c_str());
  model.to_device(Device::cpu);  // generation runs on the CPU
  if (a.sample_tokens > 0 && !model.config().sees_future()) {
    std::printf("--- sample (temperature 0.8, top-p 0.95) ---\n");
    stream_generate(model, *ds.tok, "", a.sample_tokens, false, {0.8, 0, 0.95, tcfg.seed}, "f32", nullptr, model.config().max_seq_len);
  }
  return 0;
}

}  // namespace

void add_train(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<TrainArgs>();
  auto* tr = app.add_subcommand("train", "Train a language model on a text corpus (default: Debian fortunes, byte-level)");
  a->data.add(tr);
  tr->add_option("--task", a->task, "Instead of a corpus: shapes (a vision-language model on rendered images of shapes; "
                                    "questions, one-word answers and descriptions; a held-out test split)");
  tr->add_option("--describe-frac", a->describe_frac, "--task shapes: fraction of examples asking for the whole description")->capture_default_str();
  tr->add_option("--tokenizer", a->tok_kind, "word | byte (default: word with --data, byte for the fortunes default)");
  tr->add_option("--max-vocab", a->max_vocab, "Cap the word vocabulary (0 = every train word)");
  tr->add_option("--out", a->out, "Run folder: checkpoints and metrics.jsonl (with --resume: the resumed run's)")->capture_default_str();
  tr->add_option("--resume", a->resume,
                 "Continue the run in this folder (or step folder) exactly where it stopped, on its recorded corpus; "
                 "--steps extends it");
  add_model_flags(tr, a->mcfg);
  tr->add_option("--init-from", a->init_from,
                 "Start from a trained model (CompactLM or Hugging Face folder, llama2.c .bin): same shape and tokenizer, its weights; "
                 "with a new --embedding the body is copied and the embedding fitted to the old table (compression)");
  tr->add_option("--init-tokenizer", a->init_tokenizer,
                 "--init-from: the model's tokenizer when none lies beside it (tokenizer.json, a llama2.c tokenizer .bin)");
  tr->add_option("--fit-steps", a->fit_steps, "--init-from: AdamW steps fitting the new embedding to the old table")->capture_default_str();
  tr->add_option("--fit-lr", a->fit_lr, "--init-from: AdamW learning rate of that fit")->capture_default_str();
  tr->add_option("--fit-hidden", a->fit_hidden,
                 "--init-from: weight of the fit's hidden-state term (the final hidden states of the new model against the original's on "
                 "training windows, relative mean squared error; 0: the table alone)")->capture_default_str();
  tr->add_option("--fit-hidden-batch", a->fit_hidden_batch, "--init-from: windows of --seq-len tokens per step of that term")->capture_default_str();
  tr->add_option("--fit-weight", a->fit_weight,
                 "--init-from: each row's error in that fit weighted by (its training count + 1)^p, p in [0, 1] (0: every row alike)")
      ->capture_default_str();
  tr->add_option("--distill-alpha", a->distill_alpha,
                 "--init-from: weight of the original model's next-token distribution in the loss (0 = data only)")
      ->capture_default_str();
  TrainConfig& t = a->tcfg;
  tr->add_option("--batch-size", t.batch_size, "Sequences per micro-batch")->capture_default_str();
  tr->add_option("--seq-len", t.seq_len, "Tokens per sequence")->capture_default_str();
  tr->add_option("--grad-accum", t.grad_accum, "Micro-batches per optimizer step")->capture_default_str();
  tr->add_option("--steps", t.steps, "Optimizer steps")->capture_default_str();
  tr->add_option("--time-budget", t.time_budget_s, "Stop after this many seconds (0 = no limit)")->capture_default_str();
  tr->add_option("--lr", t.lr, "Peak learning rate")->capture_default_str();
  tr->add_option("--min-lr-ratio", t.min_lr_ratio, "Final lr as a fraction of the peak")->capture_default_str();
  tr->add_option("--warmup", t.warmup, "Linear warmup steps")->capture_default_str();
  tr->add_option("--optimizer", t.optimizer, "adamw | sgd (plain: w -= lr g; --weight-decay and --beta2 are AdamW's)")
      ->capture_default_str();
  tr->add_option("--schedule", t.schedule,
                 "cosine (warmup, then cosine to --min-lr-ratio) | step (warmup, then x --lr-decay every --decay-every epochs "
                 "from --decay-start epochs)")
      ->capture_default_str();
  tr->add_option("--lr-decay", t.lr_decay, "--schedule step: the factor per decay")->capture_default_str();
  tr->add_option("--decay-start", t.decay_start, "--schedule step: epochs at the full rate before the first decay")->capture_default_str();
  tr->add_option("--decay-every", t.decay_every, "--schedule step: epochs between decays")->capture_default_str();
  tr->add_option("--weight-decay", t.adam.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  tr->add_option("--beta2", t.adam.beta2, "AdamW beta2")->capture_default_str();
  tr->add_option("--clip", t.clip, "Clip gradients to this global norm (0 = off)")->capture_default_str();
  tr->add_option("--eval-every", t.eval_every, "Validate every N steps (0 = at the end)")->capture_default_str();
  tr->add_option("--eval-tokens", a->eval_tokens, "Tokens scored per validation, periodic and final (0 = whole split)")->capture_default_str();
  tr->add_option("--ckpt-every", t.ckpt_every, "Checkpoint every N steps (0 = at each validation)")->capture_default_str();
  tr->add_option("--keep-checkpoints", t.keep_checkpoints, "Step folders kept, the newest (0 = every one: a run's checkpoints for a study over training)")
      ->capture_default_str();
  tr->add_option("--log-every", t.log_every, "Metrics row every N steps")->capture_default_str();
  tr->add_option("--seed", t.seed, "Seed for initialisation and sampling")->capture_default_str();
  tr->add_option("--objective", t.objective,
                 "next (next-token LM) | mlm (masked LM for bidirectional attention: --attention-opt causal=false)")
      ->capture_default_str();
  tr->add_option("--mask-prob", t.mask_prob, "mlm: fraction of tokens masked")->capture_default_str();
  tr->add_option("--threads", t.threads, "Threads (0 = all cores)")->capture_default_str();
  tr->add_option("--device", a->device, "cpu | cuda (a build configured with -DCLM_CUDA=ON; f32 transformers, TSLM and LSTM)")->capture_default_str();
  tr->add_option("--gpus", a->gpus, "--device cuda: data-parallel training over this many GPUs of the host (one process each, NCCL); --batch-size is per GPU")->capture_default_str();
  tr->add_flag("--tf32", a->tf32, "--device cuda: TF32 tensor-core matmuls (faster, 10-bit mantissa products)");
  tr->add_flag("--bf16", a->bf16, "--device cuda: bf16 autocast for the matmuls (bf16 inputs, f32 accumulation and master weights)");
  tr->add_option("--sample-tokens", a->sample_tokens, "Tokens to sample after training (0 = none)")->capture_default_str();
  cmds.push_back({tr, [tr, a] { return run_train(tr, *a); }});
}

}  // namespace clm::cli
