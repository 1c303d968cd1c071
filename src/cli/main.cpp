// clm: the CompactLM command. Thin wiring of the library; every subcommand has --help.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "data/dataset.h"
#include "eval/perplexity.h"
#include "eval/plot.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "infer/chat.h"
#include "infer/generate.h"
#include "kernels/cpu/vec.h"
#include "kernels/format.h"
#include "kernels/kernels.h"
#include "tokenizers/bpe.h"
#include "train/trainer.h"
#include "util/fs.h"

using namespace clm;
namespace fs = std::filesystem;

namespace {

struct DataArgs {
  std::string dir, train, valid, test;
  TextSplits load() const {
    if (!train.empty() || !valid.empty() || !test.empty()) {
      if (train.empty() || valid.empty() || test.empty())
        throw std::invalid_argument("--train, --valid and --test must be given together");
      return load_text_files(train, valid, test);
    }
    if (!dir.empty()) return load_text_dir(dir);
    return fortunes_corpus();
  }
  void add(CLI::App* c) {
    c->add_option("--data", dir, "Corpus folder with train/valid/test files (PTB, WikiText-2 layout); default: Debian fortunes");
    c->add_option("--train", train, "Train split file (with --valid and --test)");
    c->add_option("--valid", valid, "Valid split file");
    c->add_option("--test", test, "Test split file");
  }
};

// Model flags: one per ModelConfig key (dashes for underscores).
void add_model_flags(CLI::App* c, ModelConfig& m) {
  c->add_option("--d-model", m.d_model, "Model width")->capture_default_str();
  c->add_option("--n-layers", m.n_layers, "Transformer blocks")->capture_default_str();
  c->add_option("--n-heads", m.n_heads, "Query heads")->capture_default_str();
  c->add_option("--n-kv-heads", m.n_kv_heads, "Key/value heads (GQA when fewer than heads)")->capture_default_str();
  c->add_option("--d-ff", m.d_ff, "MLP hidden width")->capture_default_str();
  c->add_option("--max-seq-len", m.max_seq_len, "Positions of the learned position table / default context")->capture_default_str();
  // the slots: variants (and their options) come from the registries
  auto slot = [&](const std::string& name, std::string& v, nlohmann::json& opts, const std::string& known) {
    c->add_option("--" + name, v, name + ": " + known)->capture_default_str();
    c->add_option_function<std::vector<std::string>>(
         "--" + name + "-opt", [&opts, name](const std::vector<std::string>& kvs) {
           for (auto& kv : kvs) nn::set_option(opts, kv, "--" + name + "-opt");
         }, "An option of the " + name + " variant, key=value (repeatable)")
        ->take_all();
  };
  slot("attention", m.attention, m.attention_opt, nn::AttentionRegistry::get().describe());
  slot("position", m.position, m.position_opt, nn::PositionRegistry::get().describe());
  slot("mlp", m.mlp, m.mlp_opt, nn::MlpRegistry::get().describe());
  slot("norm", m.norm, m.norm_opt, nn::NormRegistry::get().describe());
  slot("embedding", m.embedding, m.embedding_opt, nn::EmbeddingRegistry::get().describe());
  c->add_option("--norm-eps", m.norm_eps, "Norm epsilon")->capture_default_str();
  c->add_option("--rope-theta", m.rope_theta, "RoPE base")->capture_default_str();
  c->add_flag("--tie-embeddings", m.tie_embeddings, "Share the input embedding with the output projection");
  c->add_flag("--attn-bias", m.attn_bias, "Biases on q/k/v projections");
  c->add_option("--init-std", m.init_std, "Weight init standard deviation")->capture_default_str();
}

// On --resume, flags given explicitly must agree with the checkpoint's config.
void check_resume_flags(CLI::App* c, const ModelConfig& requested, const ModelConfig& ckpt, const std::string& where) {
  nlohmann::json a = requested, b = ckpt;
  for (auto it = a.begin(); it != a.end(); ++it) {
    std::string flag = "--" + it.key();
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (c->get_option_no_throw(flag) && c->count(flag) && it.value() != b[it.key()])
      throw std::invalid_argument("config mismatch on resume: " + flag + " " + it.value().dump() + " but checkpoint " +
                                  where + " has " + b[it.key()].dump());
  }
}

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB"};
  int i = 0;
  while (b >= 1024 && i < 3) b /= 1024, ++i;
  char s[32];
  std::snprintf(s, sizeof s, "%.2f %s", b, u[i]);
  return s;
}

// --weights: a registered weight format (f32, bf16, ...) the Linears are packed into, or generic
// (the dense master weights through BLAS). Samples only the tokenizer's ids (a model may have
// padding rows beyond them).
GenerateConfig decode_config(const Tokenizer& tok, int64_t max_new, int32_t eos, const std::string& weights) {
  if (weights != "generic") try {
      kernels::FormatRegistry::get().at(weights);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--weights: ") + e.what() + ", or generic");
    }
  return {max_new, eos, {}, weights == "generic" ? "" : weights, tok.vocab_size()};
}

// Encodes the prompt (an empty one starts a line, or a sequence for tokenizers with BOS), streams the
// continuation to stdout and the speed to stderr.
void stream_generate(LanguageModel& model, const Tokenizer& tok, const std::string& prompt, int64_t max_new,
                     bool stop_at_eos, const SamplerConfig& scfg, const std::string& weights = "f32") {
  const GenerateConfig gc = decode_config(tok, max_new, stop_at_eos ? tok.eos_id() : -1, weights);
  std::vector<int32_t> ids;
  if (tok.bos_id() >= 0) {
    ids.push_back(tok.bos_id());
    for (int32_t t : tok.encode(prompt)) ids.push_back(t);
  } else {
    ids = tok.encode(prompt.empty() ? "\n" : prompt);
    // the word tokenizer ends a line with <eos>; a prompt continues its line
    if (tok.type() == "word" && !prompt.empty() && prompt.back() != '\n' && ids.size() > 1 && ids.back() == tok.eos_id())
      ids.pop_back();
  }
  Sampler s(scfg);
  GenerateStats st;
  std::cout << prompt << std::flush;
  int32_t prev = ids.back();
  generate(model, ids, gc, s, [&](int32_t t) {
    std::cout << tok.decode_next(prev, t) << std::flush;
    prev = t;
  }, &st);
  std::cout << "\n";
  std::fprintf(stderr, "[prefill %lld tokens: %.1f tok/s | decode %lld tokens: %.1f tok/s | %s path, %d threads]\n",
               (long long)st.prompt_tokens, st.prompt_tokens / std::max(st.prefill_s, 1e-9), (long long)st.new_tokens,
               st.new_tokens / std::max(st.decode_s, 1e-9), st.path.c_str(), kernels::num_threads());
}

int cmd_train(CLI::App* c, ModelConfig mcfg, TrainConfig tcfg, const DataArgs& data, const std::string& tok_kind,
              int64_t max_vocab, const std::string& out, const std::string& resume, int64_t sample_tokens,
              int64_t eval_tokens) {
  kernels::set_num_threads(tcfg.threads);
  std::shared_ptr<Tokenizer> tok;
  std::string resume_dir;
  if (!resume.empty()) {
    resume_dir = resolve_checkpoint(resume);
    LoadedModel lm = load_model(resume_dir);
    check_resume_flags(c, mcfg, lm.model->config(), resume_dir);
    mcfg = lm.model->config();
    nlohmann::json st = load_trainer_state(resume_dir);
    int threads = tcfg.threads;
    tcfg = st.at("train_config").get<TrainConfig>();
    tcfg.threads = threads;
    if (!lm.tokenizer) throw std::runtime_error("'" + resume_dir + "': checkpoint has no tokenizer.json");
    tok = std::move(lm.tokenizer);
  }
  tcfg.validate();
  Dataset ds = make_dataset(data.load(), tok_kind, max_vocab, tok);
  mcfg.vocab_size = ds.tok->vocab_size();
  if (mcfg.max_seq_len < tcfg.seq_len) mcfg.max_seq_len = tcfg.seq_len;
  mcfg.validate();
  std::unique_ptr<LanguageModel> mp = make_model(mcfg, tcfg.seed);
  LanguageModel& model = *mp;
  if (!resume_dir.empty()) {
    LoadedModel lm = load_model(resume_dir);
    std::vector<nn::Var> src;
    lm.model->visit([&](const std::string&, nn::Var& v, nn::ParamKind) { src.push_back(v); });
    size_t i = 0;
    model.visit([&](const std::string&, nn::Var& v, nn::ParamKind) { v->value.copy_(src[i++]->value); });
  }
  std::fprintf(stderr, "data: %s | tokenizer %s (vocab %lld) | train %lld / valid %lld / test %lld tokens\n",
               ds.name.c_str(), ds.tok->type().c_str(), (long long)ds.tok->vocab_size(), (long long)ds.train.size(),
               (long long)ds.valid.size(), (long long)ds.test.size());
  std::fprintf(stderr, "model: %lld parameters | d_model %lld, %lld layers, %lld heads (%lld kv), d_ff %lld, %s/%s/%s | threads %d, isa %s\n",
               (long long)model.num_params(), (long long)mcfg.d_model, (long long)mcfg.n_layers,
               (long long)mcfg.n_heads, (long long)mcfg.n_kv_heads, (long long)mcfg.d_ff, mcfg.position.c_str(),
               mcfg.mlp.c_str(), mcfg.norm.c_str(), kernels::num_threads(), kernels::vec().isa);
  std::fprintf(stderr, "train: %lld steps x %lld tokens (batch %lld x seq %lld x accum %lld), lr %.2e, out %s%s\n",
               (long long)tcfg.steps, (long long)(tcfg.batch_size * tcfg.seq_len * tcfg.grad_accum),
               (long long)tcfg.batch_size, (long long)tcfg.seq_len, (long long)tcfg.grad_accum, tcfg.lr, out.c_str(),
               resume_dir.empty() ? "" : (" | resuming " + resume_dir).c_str());
  TrainHooks hooks;
  hooks.progress = isatty(2);
  hooks.eval = [&](LanguageModel& m) {
    return perplexity(m, ds.valid, tcfg.seq_len, tcfg.seq_len, tcfg.batch_size, eval_tokens).mean_nll();
  };
  TrainResult r = train(model, *ds.tok, ds.train, tcfg, out, resume_dir, hooks);
  PerplexityResult pv = perplexity(model, ds.valid, tcfg.seq_len, tcfg.seq_len, tcfg.batch_size);
  std::printf("valid perplexity (per %s): %.3f | %s\n", ds.tok->unit().c_str(), pv.ppl(), pv.protocol.c_str());
  if (ds.tok->unit() == "byte") std::printf("valid bits per byte: %.4f\n", pv.mean_nll() / std::log(2.0));
  std::printf("checkpoint: %s | metrics: %s/metrics.jsonl (plot: clm plot %s/metrics.jsonl)\n",
              resolve_checkpoint(out).c_str(), out.c_str(), out.c_str());
  (void)r;
  if (sample_tokens > 0) {
    std::printf("--- sample (temperature 0.8, top-p 0.95) ---\n");
    stream_generate(model, *ds.tok, "", sample_tokens, false, {0.8, 0, 0.95, tcfg.seed});
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CompactLM: train, compress and run efficient transformer language models", "clm"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: last wins

  // ---- train ----
  ModelConfig mcfg;
  TrainConfig tcfg;
  DataArgs data;
  std::string tok_kind, out = "runs/demo", resume;
  int64_t max_vocab = 0, sample_tokens = 120, eval_tokens = 0;
  auto* tr = app.add_subcommand("train", "Train a language model on a text corpus (default: Debian fortunes, byte-level)");
  data.add(tr);
  tr->add_option("--tokenizer", tok_kind, "word | byte (default: word with --data, byte for the fortunes default)");
  tr->add_option("--max-vocab", max_vocab, "Cap the word vocabulary (0 = every train word)");
  tr->add_option("--out", out, "Run folder: checkpoints and metrics.jsonl")->capture_default_str();
  tr->add_option("--resume", resume, "Continue the run in this folder (or step folder) exactly where it stopped");
  add_model_flags(tr, mcfg);
  tr->add_option("--batch-size", tcfg.batch_size, "Sequences per micro-batch")->capture_default_str();
  tr->add_option("--seq-len", tcfg.seq_len, "Tokens per sequence")->capture_default_str();
  tr->add_option("--grad-accum", tcfg.grad_accum, "Micro-batches per optimizer step")->capture_default_str();
  tr->add_option("--steps", tcfg.steps, "Optimizer steps")->capture_default_str();
  tr->add_option("--time-budget", tcfg.time_budget_s, "Stop after this many seconds (0 = no limit)")->capture_default_str();
  tr->add_option("--lr", tcfg.lr, "Peak learning rate")->capture_default_str();
  tr->add_option("--min-lr-ratio", tcfg.min_lr_ratio, "Final lr as a fraction of the peak")->capture_default_str();
  tr->add_option("--warmup", tcfg.warmup, "Linear warmup steps")->capture_default_str();
  tr->add_option("--weight-decay", tcfg.adam.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  tr->add_option("--beta2", tcfg.adam.beta2, "AdamW beta2")->capture_default_str();
  tr->add_option("--clip", tcfg.clip, "Clip gradients to this global norm (0 = off)")->capture_default_str();
  tr->add_option("--eval-every", tcfg.eval_every, "Validate every N steps (0 = at the end)")->capture_default_str();
  tr->add_option("--eval-tokens", eval_tokens, "Tokens scored per periodic validation (0 = whole split)")->capture_default_str();
  tr->add_option("--ckpt-every", tcfg.ckpt_every, "Checkpoint every N steps (0 = at each validation)")->capture_default_str();
  tr->add_option("--log-every", tcfg.log_every, "Metrics row every N steps")->capture_default_str();
  tr->add_option("--seed", tcfg.seed, "Seed for initialisation and sampling")->capture_default_str();
  tr->add_option("--threads", tcfg.threads, "Threads (0 = all cores)")->capture_default_str();
  tr->add_option("--sample-tokens", sample_tokens, "Tokens to sample after training (0 = none)")->capture_default_str();

  // ---- eval ----
  std::string model_path, tok_path, split = "test";
  int64_t window = 0, stride = 0, ebatch = 8;
  int threads = 0;
  DataArgs edata;
  auto* ev = app.add_subcommand("eval", "Perplexity of a trained model on a corpus split");
  ev->add_option("--model", model_path, "Checkpoint: run or step folder, or a llama2.c .bin")->required();
  ev->add_option("--tokenizer", tok_path, "Tokenizer file; default: the checkpoint's");
  edata.add(ev);
  ev->add_option("--split", split, "train | valid | test")->capture_default_str();
  std::string eval_file;
  ev->add_option("--file", eval_file, "Score one text file (instead of a corpus split)");
  ev->add_option("--window", window, "Tokens per window (0 = the model's max_seq_len)");
  ev->add_option("--stride", stride, "Window stride (0 = window: non-overlapping)");
  ev->add_option("--batch-size", ebatch, "Windows per forward")->capture_default_str();
  ev->add_option("--threads", threads, "Threads (0 = all cores)");

  // ---- generate ----
  std::string prompt, weights = "f32";
  SamplerConfig scfg;
  int64_t max_new = 200;
  bool stop_eos = true;
  auto* ge = app.add_subcommand("generate", "Sample text from a trained model (KV-cached decoding, streamed)");
  ge->add_option("--model", model_path, "Checkpoint: run or step folder, or a llama2.c .bin")->required();
  ge->add_option("--tokenizer", tok_path, "Tokenizer file (tokenizer.json, llama2.c tokenizer .bin); default: the checkpoint's");
  ge->add_option("--prompt", prompt, "Prompt text");
  ge->add_option("--max-new-tokens", max_new, "Tokens to generate")->capture_default_str();
  ge->add_option("--temperature", scfg.temperature, "0 = greedy")->capture_default_str();
  ge->add_option("--top-k", scfg.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  ge->add_option("--top-p", scfg.top_p, "Nucleus: smallest set with this mass (1 = off)")->capture_default_str();
  ge->add_option("--seed", scfg.seed, "Sampling seed")->capture_default_str();
  ge->add_option("--stop-at-eos", stop_eos, "Stop when the end-of-sequence token is sampled")->capture_default_str();
  ge->add_option("--threads", threads, "Threads (0 = all cores)");
  ge->add_option("--weights", weights, "Weight format for inference: f32 | bf16 (packed once) | generic (dense weights through BLAS)")->capture_default_str();

  // ---- info ----
  ModelConfig icfg;
  int64_t ivocab = 10000, ibatch = 8, iseq = 256;
  auto* in = app.add_subcommand("info", "Config, parameter count and memory of a checkpoint or of a config given by flags");
  in->add_option("--model", model_path, "Checkpoint: run or step folder, or a llama2.c .bin");
  add_model_flags(in, icfg);
  in->add_option("--vocab-size", ivocab, "Vocabulary (without --model)")->capture_default_str();
  in->add_option("--batch-size", ibatch, "Batch for the activation estimate")->capture_default_str();
  in->add_option("--seq-len", iseq, "Sequence for the activation / KV estimate")->capture_default_str();

  // ---- chat ----
  std::string chat_tmpl = "llama3", system_prompt;
  auto* ch = app.add_subcommand("chat", "Chat on stdin/stdout with the model's chat template (one user turn per line)");
  ch->add_option("--model", model_path, "Checkpoint: CompactLM or Hugging Face folder, or a llama2.c .bin")->required();
  ch->add_option("--tokenizer", tok_path, "Tokenizer file; default: the checkpoint's");
  ch->add_option("--template", chat_tmpl, "llama2 | llama3 | chatml (Qwen) | phi3")->capture_default_str();
  ch->add_option("--system", system_prompt, "System message");
  ch->add_option("--max-new-tokens", max_new, "Tokens per reply")->capture_default_str();
  ch->add_option("--temperature", scfg.temperature, "0 = greedy")->capture_default_str();
  ch->add_option("--top-p", scfg.top_p, "Nucleus mass")->capture_default_str();
  ch->add_option("--seed", scfg.seed, "Sampling seed")->capture_default_str();
  ch->add_option("--weights", weights, "Weight format for inference: f32 | bf16 | generic")->capture_default_str();
  ch->add_option("--threads", threads, "Threads (0 = all cores)");
  int64_t chat_ctx = 0;
  ch->add_option("--ctx", chat_ctx, "Context positions kept for the whole conversation (default: the model's, at most 4096)");

  // ---- tokenize ----
  std::string tk_text;
  auto* tz = app.add_subcommand("tokenize", "Token ids of a text (and the round trip) with any supported tokenizer");
  tz->add_option("--tokenizer", tok_path, "llama2.c .bin, tokenizer.json, or a folder (tokenizer.json / GPT-2 files)")->required();
  tz->add_option("text", tk_text, "Text to encode")->required();

  // ---- convert ----
  std::string conv_to, conv_out, conv_dtype = "f32";
  auto* cv = app.add_subcommand("convert", "Write a loaded model as a CompactLM folder, a llama2.c .bin or a GGUF file");
  cv->add_option("--model", model_path, "Checkpoint: CompactLM folder, Hugging Face folder or llama2.c .bin")->required();
  cv->add_option("--tokenizer", tok_path, "Tokenizer file; default: the checkpoint's");
  cv->add_option("--to", conv_to, "compactlm | llama2c | gguf")->required();
  cv->add_option("--out", conv_out, "Output folder (compactlm) or file")->required();
  cv->add_option("--dtype", conv_dtype, "GGUF weight type: f32 | f16 | bf16")->capture_default_str();

  // ---- plot ----
  std::string metrics_path, svg_out;
  auto* pl = app.add_subcommand("plot", "Loss curve (SVG) from a run's metrics.jsonl");
  pl->add_option("metrics", metrics_path, "metrics.jsonl (or its run folder)")->required();
  pl->add_option("-o,--out", svg_out, "Output SVG (default: next to the metrics, loss.svg)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "clm: error: %s\n", e.what());
    return 2;
  }

  try {
    if (tr->parsed()) {
      if (tok_kind.empty()) tok_kind = (data.dir.empty() && data.train.empty()) ? "byte" : "word";
      return cmd_train(tr, mcfg, tcfg, data, tok_kind, max_vocab, out, resume, sample_tokens, eval_tokens);
    }
    if (ev->parsed()) {
      kernels::set_num_threads(threads);
      LoadedModel lm = load_model(model_path, DType::f32, tok_path);
      if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer.json (give --tokenizer)");
      std::shared_ptr<Tokenizer> tok(std::move(lm.tokenizer));
      std::vector<int32_t> stream;
      std::string what;
      if (!eval_file.empty()) {
        const std::string text = read_file(eval_file);
        if (text.empty()) throw std::runtime_error("'" + eval_file + "': empty file");
        if (tok->bos_id() >= 0) stream.push_back(tok->bos_id());
        for (int32_t t : tok->encode(text)) stream.push_back(t);
        what = eval_file;
      } else {
        Dataset ds = make_dataset(edata.load(), tok->type(), 0, tok);
        stream = ds.split(split);
        what = ds.name + " " + split;
      }
      const int64_t T = window > 0 ? window : lm.model->config().max_seq_len;
      PerplexityResult r = perplexity(*lm.model, stream, T, stride > 0 ? stride : T, ebatch);
      std::printf("%s: perplexity (per %s) %.3f | mean nll %.4f | %s\n", what.c_str(), tok->unit().c_str(), r.ppl(),
                  r.mean_nll(), r.protocol.c_str());
      return 0;
    }
    if (ge->parsed()) {
      kernels::set_num_threads(threads);
      LoadedModel lm = load_model(model_path, DType::f32, tok_path);
      if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer.json (give --tokenizer)");
      if (max_new <= 0) throw std::invalid_argument("--max-new-tokens must be > 0");
      if (scfg.temperature < 0 || scfg.top_p <= 0 || scfg.top_p > 1 || scfg.top_k < 0)
        throw std::invalid_argument("--temperature must be >= 0, --top-p in (0, 1], --top-k >= 0");
      stream_generate(*lm.model, *lm.tokenizer, prompt, max_new, stop_eos, scfg, weights);
      return 0;
    }
    if (in->parsed()) {
      std::unique_ptr<LanguageModel> m;
      std::string src = "flags", tok_line;
      if (!model_path.empty()) {
        LoadedModel lm = load_model(model_path);
        m = std::move(lm.model);
        src = lm.dir + " (" + lm.format + ")";
        if (const Tokenizer* t = lm.tokenizer.get()) {  // what generate / eval would tokenize with
          tok_line = t->type() + ", " + std::to_string(t->vocab_size()) + " tokens";
          if (auto* b = dynamic_cast<const BpeTokenizer*>(t))
            tok_line += std::string(b->sentencepiece_style() ? " (SentencePiece-style, prepend " + b->prepend_scheme() + ")"
                                                             : " (byte-level)") +
                        (b->normalization().empty() ? "" : ", " + b->normalization());
          auto name = [&](int32_t id) { return id < 0 ? std::string("none") : std::to_string(id) + " " + nlohmann::json(t->decode({id})).dump(); };
          tok_line += " | bos " + name(t->bos_id()) + " | eos " + name(t->eos_id());
        }
      } else {
        icfg.vocab_size = ivocab;
        m = make_model(icfg, 0);
      }
      const ModelConfig& c = m->config();
      const double P = double(m->num_params());
      std::printf("source: %s\nconfig: %s\n", src.c_str(), nlohmann::json(c).dump().c_str());
      if (!tok_line.empty()) std::printf("tokenizer: %s\n", tok_line.c_str());
      std::printf("parameters: %.0f (%.2fM)\n", P, P / 1e6);
      m->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
        std::printf("  %-48s %-16s %s\n", n.c_str(), shape_str(v->value.shape()).c_str(), dtype_name(v->value.dtype()));
      });
      const double kv_per_tok = double(m->state_bytes_per_token());
      std::printf("memory: weights %s (f32) | + AdamW moments %s | KV cache %s per token, %s at %lld tokens\n",
                  human_bytes(P * 4).c_str(), human_bytes(P * 8).c_str(), human_bytes(kv_per_tok).c_str(),
                  human_bytes(kv_per_tok * double(iseq)).c_str(), (long long)iseq);
      return 0;
    }
    if (ch->parsed()) {
      kernels::set_num_threads(threads);
      LoadedModel lm = load_model(model_path, DType::f32, tok_path);
      if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer (give --tokenizer)");
      const Tokenizer& tok = *lm.tokenizer;
      std::vector<ChatMessage> msgs;
      if (!system_prompt.empty()) msgs.push_back({"system", system_prompt});
      GenerateConfig gc = decode_config(tok, max_new, -1, weights);
      gc.stop_ids = chat_stop_ids(tok, chat_tmpl);
      const ModelConfig& mc = lm.model->config();
      if (chat_ctx < 0) throw std::invalid_argument("--ctx must be positive");
      if (mc.position == "learned" && chat_ctx > mc.max_seq_len)
        throw std::invalid_argument("--ctx " + std::to_string(chat_ctx) + " exceeds the model's " +
                                    std::to_string(mc.max_seq_len) + " learned positions");
      const int64_t ctx = chat_ctx > 0 ? chat_ctx : std::min<int64_t>(mc.max_seq_len, 4096);
      Generator gen(*lm.model, gc, ctx);  // one KV cache for the conversation: each turn prefills only what is new
      Sampler s(scfg);
      std::string line;
      const bool tty = isatty(0);
      while (true) {
        if (tty) std::fprintf(stderr, "> ");
        if (!std::getline(std::cin, line)) break;
        if (line.empty()) continue;
        msgs.push_back({"user", line});
        std::vector<int32_t> ids = encode_chat(tok, render_chat(chat_tmpl, msgs));
        // a full context forgets the oldest exchanges (the system message stays)
        const size_t first = msgs[0].role == "system" ? 1 : 0;
        while (int64_t(ids.size()) >= ctx && msgs.size() > first + 2) {
          msgs.erase(msgs.begin() + long(first), msgs.begin() + long(first) + 2);
          ids = encode_chat(tok, render_chat(chat_tmpl, msgs));
          std::fprintf(stderr, "[context of %lld full: forgot the oldest exchange]\n", (long long)ctx);
        }
        if (int64_t(ids.size()) >= ctx)
          throw std::length_error("this message (" + std::to_string(ids.size()) + " tokens with the template) does not fit "
                                  "the context of " + std::to_string(ctx) + " (--ctx)");
        GenerateStats st;
        std::string reply;
        int32_t prev = ids.back();
        gen.generate(ids, s, [&](int32_t t) {
          std::string piece = tok.decode_next(prev, t);
          reply += piece;
          std::cout << piece << std::flush;
          prev = t;
        }, &st);
        std::cout << "\n" << std::flush;
        std::fprintf(stderr, "[%lld prompt tokens, %lld new: %.1f tok/s | %lld tokens at %.1f tok/s | %s]\n",
                     (long long)st.prompt_tokens, (long long)(st.prompt_tokens - st.reused_tokens),
                     (st.prompt_tokens - st.reused_tokens) / std::max(st.prefill_s, 1e-9), (long long)st.new_tokens,
                     st.new_tokens / std::max(st.decode_s, 1e-9), st.path.c_str());
        msgs.push_back({"assistant", reply});
      }
      return 0;
    }
    if (tz->parsed()) {
      auto tok = load_any_tokenizer(tok_path);
      std::vector<int32_t> ids = tok->encode(tk_text);
      std::printf("%s\n", nlohmann::json(ids).dump().c_str());
      std::fprintf(stderr, "%zu tokens | %s tokenizer, vocab %lld | round trip %s\n", ids.size(), tok->type().c_str(),
                   (long long)tok->vocab_size(), tok->decode(ids) == tk_text ? "exact" : "differs");
      return 0;
    }
    if (cv->parsed()) {
      LoadedModel lm = load_model(model_path, DType::f32, tok_path);
      const auto w = lm.model->named_weights();
      if (conv_to == "compactlm") {
        save_model_files(conv_out, *lm.model, lm.tokenizer.get());
      } else if (conv_to == "llama2c") {
        write_llama2c_checkpoint(conv_out, lm.model->config(), w);
      } else if (conv_to == "gguf") {
        if (!lm.tokenizer) throw std::runtime_error("GGUF needs a tokenizer: give --tokenizer");
        write_gguf(conv_out, lm.model->config(), w, *lm.tokenizer, dtype_from_name(conv_dtype));
      } else {
        throw std::invalid_argument("--to must be compactlm, llama2c or gguf");
      }
      std::printf("wrote %s (%s, from %s %s)\n", conv_out.c_str(), conv_to.c_str(), lm.format.c_str(), lm.dir.c_str());
      return 0;
    }
    if (pl->parsed()) {
      std::string p = fs::is_directory(metrics_path) ? metrics_path + "/metrics.jsonl" : metrics_path;
      std::string o = svg_out.empty() ? (fs::path(p).parent_path() / "loss.svg").string() : svg_out;
      write_file_atomic(o, loss_curve_svg(read_file(p), "CompactLM loss: " + p));
      std::printf("wrote %s\n", o.c_str());
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%sclm: error: %s\n", isatty(2) ? "\r\033[K" : "", e.what());
    return 1;
  }
  return 0;
}
