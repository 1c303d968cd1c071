// Training end to end: a tiny model overfits, a resumed run matches an uninterrupted one step for
// step, checkpoints round-trip bit for bit, and a NaN stops training without touching the last good
// checkpoint.
#include <barrier>
#include <chrono>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>

#include "common.h"
#include "models/transformer.h"
#include "data/dataset.h"
#include "train/distill.h"
#include "train/trainer.h"
#include "formats/safetensors.h"
#include "models/io.h"
#include "util/fs.h"
#include "kernels/kernels.h"
#include "kernels/threads.h"

using namespace clm;
namespace fs = std::filesystem;

namespace {

ModelConfig tiny(int64_t vocab) {
  ModelConfig c;
  c.vocab_size = vocab, c.d_model = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 64;
  c.max_seq_len = 32;
  return c;
}

TrainConfig quick(int64_t steps) {
  TrainConfig t;
  t.batch_size = 4, t.seq_len = 32, t.steps = steps, t.warmup = 5, t.lr = 3e-3, t.eval_every = 0;
  t.log_every = 5, t.threads = 2;
  return t;
}

const std::string kText =
    "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. "
    "all that glitters is not gold. the early bird catches the worm.\n";

std::vector<int32_t> stream(const Tokenizer& t, int reps) {
  std::string s;
  for (int i = 0; i < reps; ++i) s += kText;
  return t.encode(s);
}

TrainHooks silent() {
  TrainHooks h;
  h.quiet = true;
  return h;
}

}  // namespace

TEST(Train, TinyModelOverfitsShortText) {
  ByteTokenizer tok;
  auto s = stream(tok, 8);
  TransformerLM m(tiny(tok.vocab_size()), 1);
  TrainConfig cfg = quick(300);
  cfg.lr = 1e-2;
  TrainResult r = train(m, tok, s, cfg, "", "", silent());
  // A fresh model starts near ln(257) = 5.55 nats; memorising ~150 distinct bytes of text must
  // bring the training loss below 0.5 nats/byte.
  EXPECT_GT(r.losses.front(), 5.0);
  EXPECT_LT(r.last_loss, 0.5);
}

// Trains cfg (checkpointing every cfg.ckpt_every steps) into folder a, then "crashes" after the
// first checkpoint: a new process resumes from a copy of it in folder b. The resumed run must repeat
// the uninterrupted one's losses step for step and end with the same weights. Returns the full run.
static TrainResult expect_resume_matches(const TrainConfig& cfg, const ByteTokenizer& tok, const std::vector<int32_t>& s,
                                  const std::string& a, const std::string& b) {
  char at[32], end[32];
  std::snprintf(at, sizeof at, "/step-%08lld", (long long)cfg.ckpt_every);
  std::snprintf(end, sizeof end, "/step-%08lld", (long long)cfg.steps);
  TransformerLM m1(tiny(tok.vocab_size()), 7);
  TrainResult full = train(m1, tok, s, cfg, a, "", silent());
  EXPECT_TRUE(fs::exists(a + at));
  fs::copy(a + at, b + at, fs::copy_options::recursive);
  LoadedModel lm = load_model(b + at);
  TrainResult resumed = train(*lm.model, tok, s, cfg, b, b + at, silent());
  const size_t rest = size_t(cfg.steps - cfg.ckpt_every);
  EXPECT_EQ(resumed.losses.size(), rest);
  for (size_t i = 0; i < std::min(rest, resumed.losses.size()); ++i)
    EXPECT_EQ(resumed.losses[i], full.losses[size_t(cfg.ckpt_every) + i]) << "step " << cfg.ckpt_every + int64_t(i) + 1;
  EXPECT_EQ(read_file(a + end + "/model.safetensors"), read_file(b + end + "/model.safetensors"));
  EXPECT_EQ(read_file(a + "/latest"), std::string(end + 1) + "\n");
  return full;
}

TEST(Train, ResumeMatchesUninterruptedRunStepForStep) {
  ByteTokenizer tok;
  test::TempDir a, b;
  TrainConfig cfg = quick(20);
  cfg.ckpt_every = 10;
  expect_resume_matches(cfg, tok, stream(tok, 20), a.path, b.path);
}

// The trainer's data-parallel contract (what --gpus runs over NCCL), here with two threads and a
// reduce hook that averages through shared memory: rank r trains on lanes [2r, 2r + 2) of a
// 4-lane loader, and after averaging both ranks follow one trainer with batch 4 step for step.
TEST(Train, DataParallelWorkersFollowTheWholeBatch) {
  ByteTokenizer tok;
  auto s = stream(tok, 20);
  TrainConfig whole = quick(12);
  TransformerLM single(tiny(tok.vocab_size()), 3);
  TrainResult ref = train(single, tok, s, whole, "", "", silent());

  TrainConfig half = whole;
  half.batch_size = whole.batch_size / 2;
  half.threads = 1;
  std::barrier<> bar(2);
  const std::vector<ParamRef>* ps[2] = {nullptr, nullptr};
  double losses[2] = {0, 0};
  std::vector<std::unique_ptr<TransformerLM>> models;
  for (int r = 0; r < 2; ++r) models.push_back(std::make_unique<TransformerLM>(tiny(tok.vocab_size()), 3));
  TrainResult res[2];
  auto worker = [&](int r) {
    TrainHooks h = silent();
    h.rank = r, h.world = 2;
    h.reduce = [&, r](const std::vector<ParamRef>& p, double& loss) {
      ps[r] = &p, losses[r] = loss;
      bar.arrive_and_wait();
      if (r == 0)
        for (size_t i = 0; i < p.size(); ++i) {
          float *a = (*ps[0])[i].var->grad.data<float>(), *b = (*ps[1])[i].var->grad.data<float>();
          for (int64_t j = 0, n = (*ps[0])[i].var->grad.numel(); j < n; ++j) a[j] = b[j] = (a[j] + b[j]) / 2;
        }
      bar.arrive_and_wait();
      loss = (losses[0] + losses[1]) / 2;
      bar.arrive_and_wait();  // nobody overwrites losses[] before both have read them
    };
    res[r] = train(*models[size_t(r)], tok, s, half, "", "", h);
  };
  std::thread t1(worker, 1);
  worker(0);
  t1.join();
  ASSERT_EQ(res[0].losses.size(), ref.losses.size());
  for (size_t k = 0; k < ref.losses.size(); ++k) {
    EXPECT_NEAR(res[0].losses[k], ref.losses[k], 1e-5 * ref.losses[k]) << "step " << k + 1;
    EXPECT_EQ(res[0].losses[k], res[1].losses[k]);
  }
  auto w0 = models[0]->named_weights(), w1 = models[1]->named_weights(), wr = single.named_weights();
  for (size_t i = 0; i < w0.size(); ++i) {
    EXPECT_EQ(std::memcmp(w0[i].second.raw(), w1[i].second.raw(), w0[i].second.nbytes()), 0) << w0[i].first;
    EXPECT_LT(test::rel_err(w0[i].second, wr[i].second), 1e-4) << w0[i].first;
  }
  TrainHooks bad = silent();
  bad.rank = 2, bad.world = 2;
  EXPECT_THROW(train(single, tok, s, half, "", "", bad), std::invalid_argument);
}

// The adaptive thread policy changes the thread count while a run goes on (kernels/threads.h):
// that is only safe because no kernel's result depends on the count. Every slot family, trained
// with 1, 2 and 3 threads, must give the same weights bit for bit.
TEST(Train, ThreadCountDoesNotChangeTheResult) {
  ByteTokenizer tok;
  auto s = stream(tok, 8);
  kernels::set_thread_policy(kernels::ThreadPolicy::fixed);
  for (const char* variant : {"softmax", "tensorcoder", "multilinear", "alibi", "lstm", "tslm"}) {
    ModelConfig c = tiny(tok.vocab_size());
    const std::string v = variant;
    if (v == "tensorcoder" || v == "multilinear") c.attention = v;
    if (v == "alibi") c.position = v;
    if (v == "lstm" || v == "tslm") c.arch = v;
    std::vector<std::string> bytes;
    for (int threads : {1, 2, 3}) {
      auto m = make_model(c, 5);
      TrainConfig t = quick(3);
      t.threads = threads;
      train(*m, tok, s, t, "", "", silent());
      std::string all;
      for (auto& [name, w] : m->named_weights()) all.append(static_cast<const char*>(w.raw()), w.nbytes());
      bytes.push_back(all);
    }
    EXPECT_TRUE(bytes[0] == bytes[1]) << variant << ": 1 and 2 threads differ";
    EXPECT_TRUE(bytes[0] == bytes[2]) << variant << ": 1 and 3 threads differ";
  }
  kernels::set_thread_policy(kernels::ThreadPolicy::adaptive);
}

// The governor follows the faster thread count: units whose time depends on the count as on a
// machine with a busy core (2 threads slower than 1), then as on an idle one.
TEST(Threads, GovernorFollowsTheFasterCount) {
  kernels::set_num_threads(2);
  kernels::ThreadGovernor g(2);
  auto unit = [&](bool one_is_faster) {
    g.begin();
    const bool one = kernels::num_threads() == 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(one == one_is_faster ? 6 : 18));
    g.end();
    return one;
  };
  int at_two = 0;
  for (int i = 0; i < 40; ++i) at_two += !unit(true);
  EXPECT_EQ(g.current(), 1);
  EXPECT_LE(at_two, 5) << "units run with the slower count while a core is busy";
  int at_one = 0;
  for (int i = 0; i < 160; ++i) at_one += unit(false) && i >= 140;
  EXPECT_EQ(g.current(), 2) << "the load went away: back to 2 threads";
  EXPECT_LE(at_one, 1);
  kernels::set_num_threads(2);
}

TEST(Train, CheckpointRoundTripsBitForBit) {
  ByteTokenizer tok;
  test::TempDir d;
  TransformerLM m(tiny(tok.vocab_size()), 3);
  save_model_files(d.path + "/one", m, &tok);
  LoadedModel lm = load_model(d.path + "/one");
  std::vector<Tensor> w1, w2;
  m.visit([&](auto&, nn::Var& v, auto) { w1.push_back(v->value); });
  lm.model->visit([&](auto&, nn::Var& v, auto) { w2.push_back(v->value); });
  ASSERT_EQ(w1.size(), w2.size());
  for (size_t i = 0; i < w1.size(); ++i) EXPECT_EQ(std::memcmp(w1[i].raw(), w2[i].raw(), w1[i].nbytes()), 0);
  save_model_files(d.path + "/two", *lm.model, lm.tokenizer.get());
  EXPECT_EQ(read_file(d.path + "/one/model.safetensors"), read_file(d.path + "/two/model.safetensors"));
  EXPECT_EQ(read_file(d.path + "/one/config.json"), read_file(d.path + "/two/config.json"));
}

TEST(Train, NanStopsAndKeepsLastGoodCheckpoint) {
  ByteTokenizer tok;
  auto s = stream(tok, 20);
  test::TempDir d;
  TrainConfig cfg = quick(5);
  TransformerLM m(tiny(tok.vocab_size()), 5);
  train(m, tok, s, cfg, d.path, "", silent());
  const std::string good = read_file(d.path + "/step-00000005/model.safetensors");
  TrainConfig bad = quick(50);
  bad.lr = 1e9, bad.clip = 0, bad.warmup = 0, bad.ckpt_every = 1;
  try {
    train(m, tok, s, bad, d.path, d.path + "/step-00000005", silent());
    FAIL() << "expected a NaN error";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_TRUE(msg.find("NaN") != std::string::npos || msg.find("non-finite") != std::string::npos) << msg;
    EXPECT_NE(msg.find("last good checkpoint"), std::string::npos) << msg;
  }
  // every checkpoint still on disk loads and holds finite weights; the step-5 one is untouched
  EXPECT_EQ(read_file(d.path + "/step-00000005/model.safetensors"), good);
  LoadedModel lm = load_model(d.path);
  lm.model->visit([&](auto& name, nn::Var& v, auto) {
    for (int64_t i = 0; i < v->value.numel(); ++i) ASSERT_TRUE(std::isfinite(v->value.at(i))) << name;
  });
}

TEST(Train, ScheduleAndClipping) {
  EXPECT_DOUBLE_EQ(lr_at(0, 100, 10, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(9, 100, 10, 1.0, 0.1), 1.0);
  EXPECT_NEAR(lr_at(55, 100, 10, 1.0, 0.1), 0.55, 1e-12);  // cosine midpoint
  EXPECT_NEAR(lr_at(100, 100, 10, 1.0, 0.1), 0.1, 1e-12);
  nn::Var p = ag::leaf(Tensor::from<float>({3, 4}, {2}), true);
  p->grad = Tensor::from<float>({3, 4}, {2});
  std::vector<ParamRef> ps{{"p", p, nn::ParamKind::weight}};
  EXPECT_NEAR(clip_grad_norm(ps, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(p->grad.at(0), 0.6, 1e-5);
  EXPECT_NEAR(p->grad.at(1), 0.8, 1e-5);
}

// Plain SGD: w -= lr g exactly, no state; the step schedule: warmup, the full rate until `start`,
// then one more factor of `decay` at start and every `every` steps after.
TEST(Train, SgdAndTheStepSchedule) {
  nn::Var p = ag::leaf(Tensor::from<float>({1.5f, -2.0f, 0.25f}, {3}), true);
  p->grad = Tensor::from<float>({0.5f, 1.0f, -4.0f}, {3});
  SGD sgd({{"p", p, nn::ParamKind::weight}});
  sgd.step(0.5);
  EXPECT_EQ(p->value.at(0), 1.5f - 0.5f * 0.5f);
  EXPECT_EQ(p->value.at(1), -2.0f - 0.5f * 1.0f);
  EXPECT_EQ(p->value.at(2), 0.25f + 0.5f * 4.0f);
  EXPECT_EQ(sgd.steps(), 1);
  EXPECT_TRUE(sgd.state().empty());
  EXPECT_THROW(sgd.load_state({{"m.p", Tensor::zeros({3})}}, 1, "f"), std::runtime_error);  // another optimizer's state
  EXPECT_THROW(make_optimizer("lion", {}, AdamWConfig{}), std::invalid_argument);
  // Zaremba et al.'s small LSTM: 2 epochs of 10 steps at lr 1, then halved every epoch (warmup 0)
  EXPECT_DOUBLE_EQ(lr_step_at(0, 0, 1.0, 20, 10, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(lr_step_at(19, 0, 1.0, 20, 10, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(lr_step_at(20, 0, 1.0, 20, 10, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(lr_step_at(29, 0, 1.0, 20, 10, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(lr_step_at(30, 0, 1.0, 20, 10, 0.5), 0.25);
  EXPECT_DOUBLE_EQ(lr_step_at(2, 5, 1.0, 20, 10, 0.5), 0.6);  // warmup
}

// A run with SGD and the step schedule (in epochs of the stream) resumes exactly like an AdamW run,
// its learning rate follows the epochs, and a short model still learns with it.
TEST(Train, SgdRunResumesStepForStepAndFollowsTheEpochs) {
  ByteTokenizer tok;
  auto s = stream(tok, 20);  // 2,900 bytes: an epoch of 4 x 32-token batches is 22.7 steps
  test::TempDir a, b;
  TrainConfig cfg = quick(40);
  cfg.optimizer = "sgd", cfg.schedule = "step", cfg.lr = 0.5, cfg.warmup = 0, cfg.decay_start = 1, cfg.decay_every = 0.5;
  cfg.ckpt_every = 20, cfg.log_every = 1;
  const TrainResult full = expect_resume_matches(cfg, tok, s, a.path, b.path);
  EXPECT_LT(full.losses.back(), full.losses.front() - 1.0);
  // the logged rates: 0.5 for the first epoch (steps 1..23), then halved every half epoch
  const double epoch = double(s.size()) / double(cfg.batch_size * cfg.seq_len);
  std::istringstream rows(read_file(a.path + "/metrics.jsonl"));
  std::string line;
  int checked = 0;
  while (std::getline(rows, line)) {
    const nlohmann::json r = nlohmann::json::parse(line);
    if (!r.contains("lr")) continue;
    const int64_t step = r.at("step").get<int64_t>() - 1;  // the row of step k logs the rate of update k
    const double k = double(step) < epoch ? 0.0 : 1.0 + std::floor((double(step) - epoch) / (0.5 * epoch));
    EXPECT_NEAR(r.at("lr").get<double>(), 0.5 * std::pow(0.5, k), 1e-12) << "step " << step;
    ++checked;
  }
  EXPECT_EQ(checked, 40);
  EXPECT_EQ(fs::exists(a.path + "/step-00000040/optimizer.safetensors"), true);
  // a task without a token stream (a batch hook) has no epochs: the step schedule is refused
  TrainHooks task = silent();
  task.batch = [](LanguageModel&, int64_t, int64_t, Tensor&, Tensor&) {};
  TransformerLM m2(tiny(tok.vocab_size()), 7);
  EXPECT_THROW(train(m2, tok, {}, cfg, "", "", task), std::invalid_argument);
}

TEST(Train, ImpossibleHyperparametersAreRejected) {
  for (auto f : std::vector<std::function<void(TrainConfig&)>>{
           [](TrainConfig& c) { c.lr = 0; }, [](TrainConfig& c) { c.batch_size = 0; },
           [](TrainConfig& c) { c.seq_len = -1; }, [](TrainConfig& c) { c.grad_accum = 0; },
           [](TrainConfig& c) { c.min_lr_ratio = 2; }, [](TrainConfig& c) { c.optimizer = "lion"; },
           [](TrainConfig& c) { c.schedule = "linear"; }, [](TrainConfig& c) { c.lr_decay = 0; },
           [](TrainConfig& c) { c.decay_every = 0; }, [](TrainConfig& c) { c.decay_start = -1; }}) {
    TrainConfig c;
    f(c);
    EXPECT_THROW(c.validate(), std::invalid_argument);
  }
}

// Loading for inference keeps the checkpoint's dtype: a bf16 folder's Linear weights (and token
// table) are views of the mapped file, norms are f32, and decoding gives exactly the logits of the
// f32-converted model packed into the same format (bf16 -> bf16 panels is a copy).
TEST(Load, ForInferenceKeepsTheFileDtypeAndMatchesTheConvertedModel) {
  for (bool tied : {false, true}) {
    ModelConfig c = tiny(40);
    c.tie_embeddings = tied, c.attn_bias = true;
    TransformerLM src(c, 9);
    test::TempDir d;
    std::vector<std::pair<std::string, Tensor>> w;
    for (auto& [n, t] : src.named_weights()) w.push_back({n, t.dim(0) > 0 && t.shape().size() == 2 ? t.to(DType::bf16) : t});
    save_safetensors(d.path + "/model.safetensors", w);
    write_file_atomic(d.path + "/config.json", nlohmann::json(c).dump());
    LoadedModel full = load_model(d.path), inf = load_model_for_inference(d.path, "bf16");
    int views = 0;
    inf.model->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
      if (v->value.shape().size() == 2) {
        EXPECT_EQ(v->value.dtype(), DType::bf16) << n;
        EXPECT_TRUE(v->value.external()) << n << ": a view of the file, not a copy";
        ++views;
      } else {
        EXPECT_EQ(v->value.dtype(), DType::f32) << n;
      }
    });
    EXPECT_EQ(views, 1 + c.n_layers * 7 + (tied ? 0 : 1));
    EXPECT_EQ(inf.model->packed_format(), "bf16");
    full.model->pack("bf16");
    InferState a = full.model->make_state(16), b = inf.model->make_state(16);
    std::vector<int32_t> ids{1, 5, 9, 2, 33};
    const float* la = full.model->infer(a, ids);
    std::vector<float> va(la, la + 40);
    const float* lb = inf.model->infer(b, ids);
    for (int i = 0; i < 40; ++i) ASSERT_EQ(va[i], lb[i]) << (tied ? "tied" : "untied") << " logit " << i;
    // info's load reads no weight: nothing is packed, Linear weights are still views
    LoadedModel info = load_model_for_inference(d.path, "");
    EXPECT_EQ(info.model->packed_format(), "");
    EXPECT_THROW(load_model_for_inference(d.path, "fp3"), std::invalid_argument);
  }
}

// SEE's stage 1 with row weights: the frequency weights are (count + 1)^p scaled to mean 1, and a
// table that cannot be fitted exactly (a rank-2 factorised embedding against a random target) fits
// the heavily weighted rows better than the uniform fit does, and the light ones worse.
TEST(Distill, WeightedFitFavoursHeavyRows) {
  EXPECT_EQ(frequency_weights({0, 0, 1}, 3, 1.0), (std::vector<float>{1.5f, 1.0f, 0.5f}));
  EXPECT_EQ(frequency_weights({0, 0, 1}, 3, 0.0), (std::vector<float>{1.0f, 1.0f, 1.0f}));
  ModelConfig c = tiny(12);
  c.embedding = "factorized", c.embedding_opt = {{"k", 2}}, c.tie_embeddings = true;
  Rng rng(3);
  Tensor target = Tensor::empty({12, 32});
  for (int64_t i = 0; i < target.numel(); ++i) target.data<float>()[i] = float(rng.normal()) * 0.05f;
  std::vector<float> w(12, 0.2f);
  w[0] = w[1] = 5.0f;  // rows 0 and 1 matter most
  auto row_errors = [&](const std::vector<float>& weights) {
    TransformerLM m(c, 1);
    const double mse = fit_embedding(m, target, 300, 1e-2, 0, weights);
    m.embedding()->refresh();
    const Tensor& t = m.embedding()->output_weight()->value;
    std::vector<double> e(12, 0.0);
    double all = 0;
    for (int64_t v = 0; v < 12; ++v)
      for (int64_t j = 0; j < 32; ++j) {
        const double d = double(t.data<float>()[v * 32 + j]) - double(target.data<float>()[v * 32 + j]);
        e[size_t(v)] += d * d, all += d * d;
      }
    EXPECT_NEAR(mse, all / (12 * 32), 1e-6 * (1 + mse)) << "the returned error is the unweighted MSE";
    return e;
  };
  const auto uniform = row_errors({}), weighted = row_errors(w);
  EXPECT_LT(weighted[0] + weighted[1], 0.5 * (uniform[0] + uniform[1]));
  double light_u = 0, light_w = 0;
  for (int v = 2; v < 12; ++v) light_u += uniform[size_t(v)], light_w += weighted[size_t(v)];
  EXPECT_GT(light_w, light_u);
  EXPECT_THROW(fit_embedding(*make_model(c, 1), target, 1, 1e-2, 0, std::vector<float>(5, 1.0f)), std::invalid_argument);
}

// The hidden-state term of stage 1: with it the new model's final hidden states come closer to the
// teacher's than with the table fit alone, the body does not move (bit for bit) and gets its
// gradients back afterwards, and a term without a teacher or tokens is refused.
TEST(Distill, HiddenTermFitsTheTeachersHiddenStatesWithTheBodyFrozen) {
  ModelConfig tc = tiny(12);
  tc.tie_embeddings = true;
  TransformerLM teacher(tc, 5);
  ModelConfig c = tc;
  c.embedding = "factorized", c.embedding_opt = {{"k", 4}};
  Rng rng(4);
  std::vector<int32_t> tokens(400);
  for (int32_t& t : tokens) t = int32_t(rng.uniform() * 12);
  const Tensor target = teacher.embedding()->output_weight()->value;
  const Tensor probe = Tensor::from(std::vector<int32_t>(tokens.begin(), tokens.begin() + 32), {32});
  Tensor want;
  {
    ag::NoGrad ng;
    want = teacher.hidden(probe, 2, 16)->value;
  }
  auto hidden_error = [&](double weight, bool check_body) {
    TransformerLM m(c, 1);
    copy_matching_params(teacher, m, false);
    std::map<std::string, Tensor> before;
    m.visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
      if (n.rfind("model.embed_tokens", 0) != 0) before[n] = v->value.clone();
    });
    fit_embedding(m, target, 300, 1e-2, 0, {}, HiddenFit{&teacher, &tokens, weight, 8, 16, 7});
    if (check_body)
      m.visit([&](const std::string& n, nn::Var& v, nn::ParamKind k) {
        if (!before.count(n)) return;
        EXPECT_EQ(test::rel_err(v->value, before[n]), 0.0) << n << " moved";
        if (k != nn::ParamKind::buffer) {
          EXPECT_TRUE(v->requires_grad) << n;
        }
      });
    ag::NoGrad ng;
    return test::rel_err(m.hidden(probe, 2, 16)->value, want);
  };
  const double table_only = hidden_error(0, false), with_hidden = hidden_error(50, true);
  EXPECT_LT(with_hidden, 0.95 * table_only) << "table only " << table_only << ", with the hidden term " << with_hidden;
  TransformerLM m(c, 1);
  {  // forward = the tied head over hidden(), on a fresh model too (the head reads the table hidden() builds)
    ag::NoGrad ng;
    const Tensor logits = m.forward(probe, 2, 16)->value, h = m.hidden(probe, 2, 16)->value;
    m.embedding()->refresh();
    const Tensor& table = m.embedding()->output_weight()->value;
    for (int64_t v : {0, 7})
      for (int64_t t : {0, 31}) {
        double want = 0;
        for (int64_t j = 0; j < c.d_model; ++j) want += double(h.data<float>()[t * c.d_model + j]) * table.data<float>()[v * c.d_model + j];
        EXPECT_NEAR(logits.data<float>()[t * 12 + v], want, 1e-4 * (1 + std::fabs(want))) << t << " " << v;
      }
  }
  EXPECT_THROW(fit_embedding(m, target, 1, 1e-2, 0, {}, HiddenFit{nullptr, &tokens, 1.0}), std::invalid_argument);
  EXPECT_THROW(fit_embedding(m, target, 1, 1e-2, 0, {}, HiddenFit{&teacher, &tokens, 1.0, 1, 400}), std::invalid_argument);
  // a fit that fails midway (a NaN in the target) still gives the frozen body its gradients back
  Tensor bad = target.clone();
  bad.data<float>()[3] = std::nanf("");
  EXPECT_THROW(fit_embedding(m, bad, 5, 1e-2, 0, {}, HiddenFit{&teacher, &tokens, 1.0, 2, 16}), std::runtime_error);
  m.visit([&](const std::string& n, nn::Var& v, nn::ParamKind k) {
    if (k != nn::ParamKind::buffer) {
      EXPECT_TRUE(v->requires_grad) << n << " left frozen after a failed fit";
    }
  });
}
