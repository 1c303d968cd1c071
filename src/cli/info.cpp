// clm info: config, parameters, tokenizer and memory of a checkpoint or of a config given by flags.
#include <map>

#include "cli/cli.h"
#include "models/io.h"
#include "tokenizers/bpe.h"

namespace clm::cli {

namespace {
struct InfoArgs {
  std::string model_path;
  ModelConfig cfg;
  int64_t vocab = 10000, batch = 8, seq = 256;
};

std::string describe_tokenizer(const Tokenizer& t) {
  std::string s = t.type() + ", " + std::to_string(t.vocab_size()) + " tokens";
  if (auto* b = dynamic_cast<const BpeTokenizer*>(&t))
    s += std::string(b->sentencepiece_style() ? " (SentencePiece-style, prepend " + b->prepend_scheme() + ")" : " (byte-level)") +
         (b->normalization().empty() ? "" : ", " + b->normalization());
  auto name = [&](int32_t id) { return id < 0 ? std::string("none") : std::to_string(id) + " " + nlohmann::json(t.decode({id})).dump(); };
  return s + " | bos " + name(t.bos_id()) + " | eos " + name(t.eos_id());
}

int run_info(InfoArgs a) {
  std::unique_ptr<LanguageModel> m;
  std::string src = "flags", tok_line;
  nlohmann::json quant;
  if (!a.model_path.empty()) {
    LoadedModel lm = load_model_for_inference(a.model_path, "");  // views of the file: nothing big is read
    m = std::move(lm.model);
    src = lm.dir + " (" + lm.format + (lm.quant.is_null() ? "" : ", quantized") + ")";
    quant = lm.quant;
    if (lm.tokenizer) tok_line = describe_tokenizer(*lm.tokenizer);  // what generate / eval would tokenize with
  } else {
    a.cfg.vocab_size = a.vocab;
    m = make_model(a.cfg, 0);
  }
  const ModelConfig& c = m->config();
  // a quantized checkpoint's Linears are stored packed (their dense weights are empty)
  std::map<std::string, const kernels::WeightFormat*> packed;
  double P = double(m->num_params()), bytes = 0;
  m->linears([&](const std::string& n, nn::Linear& l) {
    if (!l.quantized) return;
    packed[n + ".weight"] = l.packed.get();
    if (!l.w->value.defined()) P += double(l.packed->rows() * l.packed->cols());
    bytes += double(l.packed->bytes());
  });
  m->visit([&](const std::string&, nn::Var& v, nn::ParamKind) { bytes += v->value.defined() ? double(v->value.nbytes()) : 0.0; });
  std::printf("source: %s\nconfig: %s\n", src.c_str(), nlohmann::json(c).dump().c_str());
  if (!tok_line.empty()) std::printf("tokenizer: %s\n", tok_line.c_str());
  std::printf("parameters: %.0f (%.2fM)\n", P, P / 1e6);
  m->visit([&](const std::string& n, nn::Var& v, nn::ParamKind) {
    if (auto it = packed.find(n); it != packed.end() && !v->value.defined())
      std::printf("  %-48s %-16s %s (%.2f bits/weight)\n", n.c_str(), shape_str({it->second->rows(), it->second->cols()}).c_str(),
                  it->second->name().c_str(), it->second->bits_per_weight());
    else
      std::printf("  %-48s %-16s %s\n", n.c_str(), shape_str(v->value.shape()).c_str(), dtype_name(v->value.dtype()));
  });
  if (!quant.is_null())
    std::printf("quantized: %s %s | %.3f bits/weight, %.3f bits/activation (method's average over %zu Linears) | stored: %s\n",
                quant.value("method", "?").c_str(), quant.value("options", nlohmann::json::object()).dump().c_str(),
                quant.value("avg_w_bits", 0.0), quant.value("avg_a_bits", 0.0), packed.size(), human_bytes(bytes).c_str());
  const double kv_per_tok = double(m->state_bytes_per_token());
  std::printf("memory: weights %s (as stored; %s in f32) | + AdamW moments %s | KV cache %s per token, %s at %lld tokens\n",
              human_bytes(bytes).c_str(), human_bytes(P * 4).c_str(), human_bytes(P * 8).c_str(), human_bytes(kv_per_tok).c_str(),
              human_bytes(kv_per_tok * double(a.seq)).c_str(), (long long)a.seq);
  return 0;
}
}  // namespace

void add_info(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<InfoArgs>();
  auto* in = app.add_subcommand("info", "Config, parameter count and memory of a checkpoint or of a config given by flags");
  in->add_option("--model", a->model_path, "Checkpoint: run or step folder, or a llama2.c .bin");
  add_model_flags(in, a->cfg);
  in->add_option("--vocab-size", a->vocab, "Vocabulary (without --model)")->capture_default_str();
  in->add_option("--batch-size", a->batch, "Batch for the activation estimate")->capture_default_str();
  in->add_option("--seq-len", a->seq, "Sequence for the activation / KV estimate")->capture_default_str();
  cmds.push_back({in, [a] { return run_info(*a); }});
}

}  // namespace clm::cli
