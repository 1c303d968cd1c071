#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "kernels/threads.h"
#include "util/json_int.h"
#include "util/memory.h"

namespace clm {

void TrainConfig::validate() const {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (batch_size <= 0) fail("--batch-size must be > 0");
  if (seq_len <= 0) fail("--seq-len must be > 0");
  if (grad_accum <= 0) fail("--grad-accum must be > 0");
  if (steps <= 0) fail("--steps must be > 0");
  if (warmup < 0) fail("--warmup must be >= 0");
  if (!(lr > 0) || !std::isfinite(lr)) fail("--lr must be > 0");
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1)) fail("--min-lr-ratio must be in [0, 1]");
  if (!(clip >= 0)) fail("--clip must be >= 0");
  if (!(adam.weight_decay >= 0)) fail("--weight-decay must be >= 0");
  if (!(adam.beta1 >= 0 && adam.beta1 < 1 && adam.beta2 >= 0 && adam.beta2 < 1)) fail("Adam betas must be in [0, 1)");
  if (objective != "next" && objective != "mlm") fail("--objective must be next or mlm, got '" + objective + "'");
  if (!(mask_prob > 0 && mask_prob < 1)) fail("--mask-prob must be in (0, 1)");
  if (eval_every < 0 || ckpt_every < 0 || log_every <= 0) fail("--eval-every and --ckpt-every must be >= 0, --log-every > 0");
  if (keep_checkpoints < 0) fail("--keep-checkpoints must be >= 0 (0 keeps every one)");
  if (!(time_budget_s >= 0)) fail("--time-budget must be >= 0");
  if (!(adam.eps > 0)) fail("Adam eps must be > 0");
  if (optimizer != "adamw" && optimizer != "sgd") fail("--optimizer must be adamw or sgd, got '" + optimizer + "'");
  if (schedule != "cosine" && schedule != "step") fail("--schedule must be cosine or step, got '" + schedule + "'");
  if (!(lr_decay > 0 && lr_decay <= 1)) fail("--lr-decay must be in (0, 1]");
  if (!(decay_start >= 0) || !std::isfinite(decay_start)) fail("--decay-start must be >= 0 epochs");
  if (!(decay_every > 0) || !std::isfinite(decay_every)) fail("--decay-every must be > 0 epochs");
  if (checked_mul({batch_size, seq_len, grad_accum, steps}) < 0)
    fail("--batch-size x --seq-len x --grad-accum x --steps overflows a 64-bit token count");
}

#define CLM_TRAIN_FIELDS(X)                                                                                     \
  X(batch_size) X(seq_len) X(grad_accum) X(steps) X(warmup) X(lr) X(min_lr_ratio) X(clip) X(eval_every)         \
  X(ckpt_every) X(log_every) X(time_budget_s) X(seed) X(objective) X(mask_prob) X(optimizer) X(schedule) X(lr_decay)   \
  X(decay_start) X(decay_every) X(keep_checkpoints)

void to_json(nlohmann::json& j, const TrainConfig& c) {
  j = nlohmann::json::object();
#define X(f) j[#f] = c.f;
  CLM_TRAIN_FIELDS(X)
#undef X
  j["beta1"] = c.adam.beta1, j["beta2"] = c.adam.beta2, j["adam_eps"] = c.adam.eps;
  j["weight_decay"] = c.adam.weight_decay;
}
void from_json(const nlohmann::json& j, TrainConfig& c) {
  if (!j.is_object()) throw std::invalid_argument("train config: not a JSON object");
#define X(f) \
  if (j.contains(#f)) c.f = json_field<decltype(c.f)>(j, #f, "train config");
  CLM_TRAIN_FIELDS(X)
#undef X
  auto num = [&](const char* k, double& v) {
    if (j.contains(k)) v = json_field<double>(j, k, "train config");
  };
  num("beta1", c.adam.beta1), num("beta2", c.adam.beta2), num("adam_eps", c.adam.eps), num("weight_decay", c.adam.weight_decay);
}

static std::string hms(double s) {
  char b[32];
  long t = long(s + 0.5);
  std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  return b;
}

TrainResult train(LanguageModel& model, const Tokenizer& tok, const std::vector<int32_t>& train_stream,
                  const TrainConfig& cfg, const std::string& run_dir, const std::string& resume_dir,
                  const TrainHooks& hooks) {
  using clock = std::chrono::steady_clock;
  cfg.validate();
  kernels::set_num_threads(cfg.threads);
  auto params = collect_params(model);
  const std::unique_ptr<Optimizer> optimizer = make_optimizer(cfg.optimizer, params, cfg.adam);
  Optimizer& opt = *optimizer;
  if (hooks.world < 1 || hooks.rank < 0 || hooks.rank >= hooks.world) throw std::invalid_argument("train: bad data-parallel rank");
  if (hooks.world > 1 && hooks.batch) throw std::invalid_argument("train: data parallelism over a batch hook is not supported");
  const int64_t W = hooks.world, R = hooks.rank, BT = cfg.batch_size * cfg.seq_len;
  StreamLoader loader(train_stream, cfg.batch_size * W, cfg.seq_len);
  int64_t step = 0;
  double elapsed_before = 0;
  if (!resume_dir.empty()) {
    nlohmann::json st = load_trainer_state(resume_dir);
    const std::string where = "'" + resume_dir + "/trainer_state.json'";
    step = json_field<int64_t>(st, "step", where);
    loader.set_state({json_field<int64_t>(st, "loader_pos", where), json_field<int64_t>(st, "loader_epoch", where)});
    elapsed_before = st.value("elapsed_s", 0.0);
    load_optimizer(resume_dir, opt, step);
  }
  std::ofstream metrics;
  if (!run_dir.empty()) {
    std::filesystem::create_directories(run_dir);
    metrics.open(run_dir + "/metrics.jsonl", std::ios::app);
  }
  auto emit = [&](const nlohmann::json& row) {
    if (metrics) metrics << row.dump() << "\n" << std::flush;
  };
  auto checkpoint = [&](int64_t at_step, double elapsed) {
    if (run_dir.empty()) return;
    nlohmann::json st = {{"step", at_step},
                         {"loader_pos", loader.state().pos},
                         {"loader_epoch", loader.state().epoch},
                         {"elapsed_s", elapsed},
                         {"train_config", cfg}};
    if (!hooks.run_info.is_null()) st["run"] = hooks.run_info;
    save_checkpoint(run_dir, at_step, model, tok, opt, st, int(cfg.keep_checkpoints));
  };

  TrainResult res;
  const int64_t tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum * W;
  // An epoch: one pass of the loader over the training stream. A batch hook's task has no stream to
  // count epochs in, so the step schedule needs one.
  if (cfg.schedule == "step" && train_stream.empty())
    throw std::invalid_argument("--schedule step counts epochs of the training text; this task has none (use --schedule cosine)");
  const double steps_per_epoch = std::max(1.0, double(train_stream.size()) / double(tokens_per_step));
  const auto t0 = clock::now();
  auto window_t = t0;
  int64_t window_tokens = 0;
  double loss_ema = 0;
  const int64_t first_step = step;
  kernels::ThreadGovernor threads;  // fewer threads while other processes keep cores busy (kernels/threads.h)
  while (step < cfg.steps) {
    threads.begin();
    const double lr = cfg.schedule == "step" ? lr_step_at(step, cfg.warmup, cfg.lr, cfg.decay_start * steps_per_epoch,
                                                          cfg.decay_every * steps_per_epoch, cfg.lr_decay)
                                             : lr_at(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr_ratio);
    double loss_sum = 0;
    for (int64_t micro = 0; micro < cfg.grad_accum; ++micro) {
      Tensor x, y;
      if (hooks.batch) hooks.batch(model, step, micro, x, y);
      else loader.next(x, y);
      if (!hooks.batch && W > 1)  // this worker's lanes (rows of the [W·B, T] batch)
        x = x.slice(0, R * BT, (R + 1) * BT).contiguous(), y = y.slice(0, R * BT, (R + 1) * BT).contiguous();
      if (cfg.objective == "mlm") {  // a fresh mask per (step, micro-batch): a resumed run draws the same
        Rng seeds(cfg.seed);
        Rng rng(seeds.next() ^ uint64_t(step * cfg.grad_accum + micro));
        mask_tokens(x, y, int32_t(model.config().vocab_size - 1), cfg.mask_prob, rng);
      }
      nn::Var loss = hooks.loss ? hooks.loss(model, x, y, cfg.batch_size, cfg.seq_len)
                                : ag::cross_entropy(model.forward(x, cfg.batch_size, cfg.seq_len), y);
      loss_sum += loss->value.item();
      ag::backward(cfg.grad_accum > 1 ? ag::scale(loss, 1.0 / double(cfg.grad_accum)) : loss);
    }
    double loss = loss_sum / double(cfg.grad_accum);
    if (hooks.reduce) hooks.reduce(params, loss);
    const double gnorm = clip_grad_norm(params, cfg.clip);
    if (!std::isfinite(loss) || !std::isfinite(gnorm)) {
      std::string last = "none";
      if (!run_dir.empty() && std::filesystem::exists(run_dir + "/latest")) last = resolve_checkpoint(run_dir);
      throw std::runtime_error("loss became " + std::string(std::isnan(loss) ? "NaN" : "non-finite") + " at step " +
                               std::to_string(step + 1) + "; stopped, last good checkpoint: " + last);
    }
    opt.step(lr);
    zero_grads(params);
    threads.end();
    ++step;
    res.losses.push_back(loss);
    res.last_loss = loss;
    window_tokens += tokens_per_step;
    loss_ema = step == first_step + 1 ? loss : 0.9 * loss_ema + 0.1 * loss;

    const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
    const bool out_of_time = cfg.time_budget_s > 0 && elapsed_before + elapsed >= cfg.time_budget_s;
    const bool last = step == cfg.steps || out_of_time;
    if (step % cfg.log_every == 0 || last) {
      const double wdt = std::chrono::duration<double>(clock::now() - window_t).count();
      const double tps = window_tokens / std::max(wdt, 1e-9);
      res.tokens_per_s = tps;
      const double per_step = elapsed / double(step - first_step);
      const double eta = per_step * double(cfg.steps - step);
      emit({{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens_per_s", tps},
            {"tokens", step * tokens_per_step}, {"elapsed_s", elapsed_before + elapsed}});
      if (!hooks.quiet) {
        char line[256];
        std::snprintf(line, sizeof line, "step %6lld/%lld | loss %.4f | lr %.2e | gnorm %.2f | %8.0f tok/s | ETA %s",
                      (long long)step, (long long)cfg.steps, loss_ema, lr, gnorm, tps, hms(eta).c_str());
        if (hooks.progress)
          std::fprintf(stderr, "\r%s\033[K", line);
        else
          std::fprintf(stderr, "%s\n", line);
      }
      window_t = clock::now();
      window_tokens = 0;
    }
    const bool do_eval = hooks.eval && ((cfg.eval_every > 0 && step % cfg.eval_every == 0) || last);
    if (do_eval) {
      const double vl = hooks.eval(model);
      res.val_loss = vl;
      emit({{"step", step}, {"val_loss", vl}, {"val_ppl", std::exp(vl)}});
      if (!hooks.quiet)
        std::fprintf(stderr, "%sstep %lld | valid loss %.4f | ppl %.2f\n", hooks.progress ? "\r\033[K" : "",
                     (long long)step, vl, std::exp(vl));
    }
    const bool do_ckpt = cfg.ckpt_every > 0 ? (step % cfg.ckpt_every == 0 || last) : (do_eval || last);
    if (do_ckpt) checkpoint(step, elapsed_before + elapsed);
    if (out_of_time) break;
  }
  if (hooks.progress && !hooks.quiet) std::fprintf(stderr, "\n");
  res.steps = step;
  return res;
}

}  // namespace clm
