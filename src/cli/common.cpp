#include <unistd.h>
#include <cstdio>
#include <iostream>

#include "cli/cli.h"

#include "data/dataset.h"
#include "infer/gpu_decoder.h"
#include "util/fs.h"
#include "kernels/format.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::cli {

TextSplits DataArgs::load() const {
  if (!train.empty() || !valid.empty() || !test.empty()) {
    if (train.empty() || valid.empty() || test.empty())
      throw std::invalid_argument("--train, --valid and --test must be given together");
    return load_text_files(train, valid, test);
  }
  if (!dir.empty()) return load_text_dir(dir);
  return fortunes_corpus();
}

void DataArgs::add(CLI::App* c) {
  c->add_option("--data", dir, "Corpus folder with train/valid/test files (PTB, WikiText-2 layout); default: Debian fortunes");
  c->add_option("--train", train, "Train split file (with --valid and --test)");
  c->add_option("--valid", valid, "Valid split file");
  c->add_option("--test", test, "Test split file");
}

nlohmann::json DataArgs::to_json() const { return {{"dir", dir}, {"train", train}, {"valid", valid}, {"test", test}}; }

DataArgs DataArgs::from_json(const nlohmann::json& j) {
  DataArgs d;
  d.dir = j.value("dir", ""), d.train = j.value("train", ""), d.valid = j.value("valid", ""), d.test = j.value("test", "");
  return d;
}

void PositionOverride::add(CLI::App* c) {
  c->add_option_function<std::vector<std::string>>(
       "--position-opt", [this](const std::vector<std::string>& kvs) {
         for (auto& kv : kvs) nn::set_option(opts, kv, "--position-opt");
       }, "Override an option of the model's position encoding, key=value (repeatable), e.g. scaling=yarn scale=4")
      ->take_all();
}

void add_model_flags(CLI::App* c, ModelConfig& m) {
  c->add_option("--arch", m.arch, "Model family: transformer | tslm (tensor-space LM) | lstm; recurrent ones use d_model as hidden size")
      ->capture_default_str();
  c->add_option("--dropout", m.dropout, "Dropout while training (embedding output and every sublayer / layer output)")->capture_default_str();
  c->add_option("--d-model", m.d_model, "Model width")->capture_default_str();
  c->add_option("--n-layers", m.n_layers, "Transformer blocks")->capture_default_str();
  c->add_option("--n-heads", m.n_heads, "Query heads")->capture_default_str();
  c->add_option("--n-kv-heads", m.n_kv_heads, "Key/value heads (GQA when fewer than heads)")->capture_default_str();
  c->add_option("--d-ff", m.d_ff, "MLP hidden width")->capture_default_str();
  c->add_option("--max-seq-len", m.max_seq_len, "Positions of the learned position table / default context")->capture_default_str();
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
  slot("vision", m.vision, m.vision_opt, "none | " + nn::VisionRegistry::get().describe());
  c->add_option("--norm-eps", m.norm_eps, "Norm epsilon")->capture_default_str();
  c->add_option("--rope-theta", m.rope_theta, "RoPE base")->capture_default_str();
  c->add_flag("--tie-embeddings", m.tie_embeddings, "Share the input embedding with the output projection");
  c->add_flag("--attn-bias", m.attn_bias, "Biases on q/k/v projections");
  c->add_option("--init-std", m.init_std, "Weight init standard deviation")->capture_default_str();
}

void check_weights(const std::string& weights) {
  if (weights != "generic") try {
      kernels::FormatRegistry::get().at(weights);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--weights: ") + e.what() + ", or generic");
    }
}

LoadedModel load_for_decoding(const std::string& model, const std::string& tok, const std::string& weights, int threads,
                              const QuantArgs& quant, const PositionOverride& position, const KVArgs& kv,
                              const std::string& device) {
  if (threads < 0) throw std::invalid_argument("--threads must be >= 0");
  kernels::set_num_threads(threads);
  check_weights(weights);  // before any loading
  GenerateConfig probe;
  kv.apply(probe);
  const bool gpu = parse_device(device) == Device::cuda;
  if (gpu) {  // before any loading too
    if (weights != "bf16" && weights != "f32") throw std::invalid_argument("--device cuda: --weights must be bf16 or f32");
    if (!kv.policy.empty()) throw std::invalid_argument("--device cuda: --kv-policy runs on the CPU only");
    gpu::require("--device cuda");
  }
  // packed formats: weights stay in the file's dtype until packed; generic, and the GPU decoder
  // (which stores the matrices itself): the dense f32 model
  LoadedModel lm = gpu || weights == "generic" ? load_model(model, DType::f32, tok, position.opts)
                                               : load_model_for_inference(model, weights, tok, position.opts);
  if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer (give --tokenizer)");
  if (lm.model->config().bidirectional())
    throw std::invalid_argument("'" + model + "' has bidirectional attention (a masked LM): it cannot generate");
  quant.apply(*lm.model);  // after packing: the quantized Linears replace their packed copies
  if (gpu) lm.model = gpu_decoder(std::move(lm.model), weights);  // W8A8 INT8 Linears run as such; other formats are refused
  return lm;
}

GenerateConfig decode_config(const Tokenizer& tok, int64_t max_new, int32_t eos, const std::string& weights) {
  check_weights(weights);
  return {max_new, eos, {}, weights == "generic" ? "" : weights, tok.vocab_size()};
}

void check_sampling(const SamplerConfig& s, int64_t max_new) {
  if (max_new <= 0) throw std::invalid_argument("--max-new-tokens must be > 0");
  if (!(s.temperature >= 0) || !std::isfinite(s.temperature) || !(s.top_p > 0 && s.top_p <= 1) || s.top_k < 0)
    throw std::invalid_argument("--temperature must be >= 0, --top-p in (0, 1], --top-k >= 0");
}

void KVArgs::add(CLI::App* c) {
  c->add_option("--kv-policy", policy, "KV-cache eviction while decoding:\n" + describe_kv_policies());
  c->add_option("--kv-budget", ratio, "Cells each layer's KV head keeps, as a fraction of the tokens seen, in (0, 1]")->capture_default_str();
  c->add_option("--kv-budget-tokens", tokens, "Or a fixed number of cells (> 0 overrides --kv-budget)");
  c->add_option("--kv-opt", opts, "An option of the KV policy, key=value (repeatable)");
}

void KVArgs::apply(GenerateConfig& g) const {
  const KVBudget b{ratio, tokens};
  b.check();
  if (policy.empty()) {
    if (ratio != 1.0 || tokens != 0 || !opts.empty()) throw std::invalid_argument("--kv-budget / --kv-opt need --kv-policy");
    return;
  }
  nlohmann::json o = nlohmann::json::object();
  for (const std::string& kv : opts) nn::set_option(o, kv, "--kv-opt");
  make_kv_policy(policy, o, b);  // checks the name and the options now, before any loading
  g.kv_policy = policy;
  g.kv_opt = o;
  g.kv_budget = b;
}

void ContextArgs::add(CLI::App* app) {
  app->add_option("--ctx", ctx, "Context positions for prompt + new tokens (default: the model's max_seq_len)");
  app->add_option("--overflow", overflow, "A prompt that does not fit the context: refuse | truncate (keep its last tokens)")
      ->capture_default_str();
}

int64_t resolve_ctx(int64_t ctx, const LanguageModel& m, int64_t cap, int64_t sequences) {
  const ModelConfig& c = m.config();
  if (ctx < 0) throw std::invalid_argument("--ctx must be positive");
  if (c.position == "learned" && ctx > c.max_seq_len)
    throw std::invalid_argument("--ctx " + std::to_string(ctx) + " exceeds the model's " + std::to_string(c.max_seq_len) + " learned positions");
  if (ctx == 0) ctx = cap > 0 ? std::min(c.max_seq_len, cap) : c.max_seq_len;
  check_memory(checked_mul({int64_t(m.state_bytes_per_token()), ctx, sequences}),
               "a context of " + std::to_string(ctx) + " positions (--ctx)" + (sequences > 1 ? " for " + std::to_string(sequences) + " sequences" : ""));
  return ctx;
}

int64_t ContextArgs::resolve(const LanguageModel& m) const {
  if (overflow != "refuse" && overflow != "truncate") throw std::invalid_argument("--overflow must be refuse or truncate, not '" + overflow + "'");
  return resolve_ctx(ctx, m);
}

void stream_generate(LanguageModel& model, const Tokenizer& tok, const std::string& prompt, int64_t max_new,
                     bool stop_at_eos, const SamplerConfig& scfg, const std::string& weights, const KVArgs* kv, int64_t ctx,
                     bool truncate) {
  GenerateConfig gc = decode_config(tok, max_new, stop_at_eos ? tok.eos_id() : -1, weights);
  if (kv) kv->apply(gc);
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
  if (ctx > 0) {
    std::string note;
    ids = fit_context(std::move(ids), max_new, ctx, truncate, tok.bos_id(), &note);
    if (!note.empty()) std::fprintf(stderr, "[%s]\n", note.c_str());
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
  const std::string where = model.device() == Device::cuda ? gpu::describe() : std::to_string(kernels::num_threads()) + " threads";
  std::fprintf(stderr, "[prefill %lld tokens: %.1f tok/s | decode %lld tokens: %.1f tok/s | %s path, %s]\n",
               (long long)st.prompt_tokens, st.prompt_tokens / std::max(st.prefill_s, 1e-9), (long long)st.new_tokens,
               st.new_tokens / std::max(st.decode_s, 1e-9), st.path.c_str(), where.c_str());
  if (!gc.kv_policy.empty())
    std::fprintf(stderr, "[kv policy %s: %s of cells in use at the end; %lld cells evicted, %lld hidden, %lld restored, %lld tokens pruned; %.1f ms bookkeeping]\n",
                 gc.kv_policy.c_str(), human_bytes(double(st.state_bytes)).c_str(), (long long)st.kv.evicted, (long long)st.kv.hidden,
                 (long long)st.kv.restored, (long long)st.kv.pruned, st.kv.seconds * 1e3);
}

std::vector<int32_t> token_stream(const std::shared_ptr<Tokenizer>& tok, const DataArgs& data, const std::string& split, const std::string& file,
                                  std::string& what) {
  std::vector<int32_t> stream;
  if (!file.empty()) {
    const std::string text = read_file(file);
    if (text.empty()) throw std::runtime_error("'" + file + "': empty file");
    if (tok->bos_id() >= 0) stream.push_back(tok->bos_id());
    for (int32_t t : tok->encode(text)) stream.push_back(t);
    what = file;
  } else {
    Dataset ds = make_dataset(data.load(), tok->type(), 0, tok);
    stream = ds.split(split);
    what = ds.name + " " + split;
  }
  return stream;
}

quant::Calibration calibrate_on(LanguageModel& model, const std::shared_ptr<Tokenizer>& tok, const DataArgs& data,
                                const std::string& split, const std::string& file, int64_t windows, int64_t window, std::string* what) {
  std::string text;
  const std::vector<int32_t> stream = token_stream(tok, data, split, file, text);
  const std::string source = text + ", " + std::to_string(windows) + " windows of " + std::to_string(window) + " tokens";
  if (what) *what = text;
  return quant::calibrate(model, stream, windows, window, source, calibration_progress);
}

void calibration_progress(int64_t i, int64_t n) {
  // a terminal: one line rewritten; a log: a line per tenth
  static const bool tty = isatty(fileno(stderr));
  if (tty) std::fprintf(stderr, "\rcalibrating: window %lld/%lld%s", (long long)i, (long long)n, i == n ? "\n" : "");
  else if (i == n || i * 10 / n != (i - 1) * 10 / n) std::fprintf(stderr, "calibrating: window %lld/%lld\n", (long long)i, (long long)n);
}

void QuantArgs::add(CLI::App* c) {
  c->add_option("--quant", method, "Quantize in memory first:\n" + quant::MethodRegistry::get().describe());
  c->add_option("--quant-opt", opts, "An option of the quantization method, key=value (repeatable)");
  c->add_option("--calib", calib, "Calibration statistics from clm calibrate (methods that need them)");
}

quant::QuantResult QuantArgs::apply(LanguageModel& model, const quant::Calibration* given) const {
  quant::QuantResult q;
  if (method.empty()) {
    if (!opts.empty() || !calib.empty()) throw std::invalid_argument("--quant-opt and --calib need --quant METHOD");
    return q;
  }
  nlohmann::json o = nlohmann::json::object();
  for (const std::string& kv : opts) nn::set_option(o, kv, "--quant-opt");
  std::unique_ptr<quant::Calibration> cal;
  if (!calib.empty()) cal = std::make_unique<quant::Calibration>(quant::Calibration::load(calib));
  q = quant::quantize_model(model, method, o, given ? given : cal.get());
  std::fprintf(stderr, "quantized: %s %s | %.3f bits/weight, %.3f bits/activation (%zu Linears)\n", q.method.c_str(),
               q.options.dump().c_str(), q.avg_w_bits, q.avg_a_bits, q.layers.size());
  return q;
}

}  // namespace clm::cli
