// clm generate and clm chat: decoding with the model's inference path, streamed.
#include <unistd.h>

#include <iostream>

#include "cli/cli.h"
#include "infer/chat.h"
#include "kernels/format.h"
#include "kernels/kernels.h"
#include "models/io.h"

namespace clm::cli {

namespace {
struct GenArgs {
  std::string model_path, tok_path, prompt, weights = "f32", tmpl = "llama3", system, device = "cpu";
  SamplerConfig scfg;
  int64_t max_new = 200, ctx = 0, samples = 1;
  bool stop_eos = true, separate = false;  // separate: --samples given (an empty line after each sample)
  int threads = 0;
  QuantArgs quant;
  PositionOverride position;
  KVArgs kv;
  ContextArgs context;
};

LoadedModel load_for_decoding(const GenArgs& a) {
  check_sampling(a.scfg, a.max_new);
  return load_for_decoding(a.model_path, a.tok_path, a.weights, a.threads, a.quant, a.position, a.kv, a.device);
}

// --samples N: N completions of the prompt from one load, seeds seed, seed + 1, ..., each followed
// by an empty line (a corpus sampled from the model: scripts/sample_corpus.sh)
int run_generate(const GenArgs& a) {
  if (a.samples < 1) throw std::invalid_argument("--samples " + std::to_string(a.samples) + ": must be >= 1");
  LoadedModel lm = load_for_decoding(a);
  const int64_t ctx = a.context.resolve(*lm.model);
  for (int64_t i = 0; i < a.samples; ++i) {
    SamplerConfig sc = a.scfg;
    sc.seed += uint64_t(i);
    stream_generate(*lm.model, *lm.tokenizer, a.prompt, a.max_new, a.stop_eos, sc, a.weights, &a.kv, ctx, a.context.overflow == "truncate");
    if (a.separate) std::cout << "\n" << std::flush;
  }
  return 0;
}

int run_chat(const GenArgs& a) {
  LoadedModel lm = load_for_decoding(a);
  const Tokenizer& tok = *lm.tokenizer;
  GenerateConfig gc = decode_config(tok, a.max_new, -1, a.weights);
  a.kv.apply(gc);
  const int64_t ctx = resolve_ctx(a.ctx, *lm.model, 4096);
  ChatSession chat(*lm.model, tok, a.tmpl, gc, a.scfg, ctx, a.system);
  chat.on_forget = [ctx] { std::fprintf(stderr, "[context of %lld full: forgot the oldest exchange]\n", (long long)ctx); };
  std::string line;
  const bool tty = isatty(0);
  while (true) {
    if (tty) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    GenerateStats st;
    chat.reply(line, [](const std::string& piece) { std::cout << piece << std::flush; }, &st);
    std::cout << "\n" << std::flush;
    std::fprintf(stderr, "[%lld prompt tokens, %lld new: %.1f tok/s | %lld tokens at %.1f tok/s | %s]\n",
                 (long long)st.prompt_tokens, (long long)(st.prompt_tokens - st.reused_tokens),
                 (st.prompt_tokens - st.reused_tokens) / std::max(st.prefill_s, 1e-9), (long long)st.new_tokens,
                 st.new_tokens / std::max(st.decode_s, 1e-9), st.path.c_str());
  }
  return 0;
}
}  // namespace

void add_generate(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<GenArgs>();
  const std::string weights_help = "Weight format for inference: f32 | bf16 (packed once) | generic (dense weights through BLAS)";
  const std::string device_help = "cpu | cuda (KV-cached decoding on a GPU, --weights bf16 or f32; a build with -DCLM_CUDA=ON)";
  auto* ge = app.add_subcommand("generate", "Sample text from a trained model (KV-cached decoding, streamed)");
  ge->add_option("--model", a->model_path, "Checkpoint: run or step folder, or a llama2.c .bin")->required();
  ge->add_option("--tokenizer", a->tok_path, "Tokenizer file (tokenizer.json, llama2.c tokenizer .bin); default: the checkpoint's");
  ge->add_option("--prompt", a->prompt, "Prompt text");
  ge->add_option("--max-new-tokens", a->max_new, "Tokens to generate")->capture_default_str();
  ge->add_option("--temperature", a->scfg.temperature, "0 = greedy")->capture_default_str();
  ge->add_option("--top-k", a->scfg.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  ge->add_option("--top-p", a->scfg.top_p, "Nucleus: smallest set with this mass (1 = off)")->capture_default_str();
  ge->add_option("--seed", a->scfg.seed, "Sampling seed")->capture_default_str();
  auto* samples = ge->add_option("--samples", a->samples, "Completions of the prompt, seeds --seed, --seed + 1, ..., each followed by an empty line")
                      ->capture_default_str();
  ge->add_option("--stop-at-eos", a->stop_eos, "Stop when the end-of-sequence token is sampled")->capture_default_str();
  ge->add_option("--threads", a->threads, "Threads (0 = all cores)");
  ge->add_option("--weights", a->weights, weights_help)->capture_default_str();
  ge->add_option("--device", a->device, device_help)->capture_default_str();
  a->quant.add(ge);
  a->position.add(ge);
  a->kv.add(ge);
  a->context.add(ge);
  cmds.push_back({ge, [a, samples] {
                    a->separate = samples->count() > 0;
                    return run_generate(*a);
                  }});

  auto c = std::make_shared<GenArgs>();
  c->max_new = 200;
  auto* ch = app.add_subcommand("chat", "Chat on stdin/stdout with the model's chat template (one user turn per line)");
  ch->add_option("--model", c->model_path, "Checkpoint: CompactLM or Hugging Face folder, or a llama2.c .bin")->required();
  ch->add_option("--tokenizer", c->tok_path, "Tokenizer file; default: the checkpoint's");
  ch->add_option("--template", c->tmpl, "llama2 | llama3 | chatml (Qwen) | phi3")->capture_default_str();
  ch->add_option("--system", c->system, "System message");
  ch->add_option("--max-new-tokens", c->max_new, "Tokens per reply")->capture_default_str();
  ch->add_option("--temperature", c->scfg.temperature, "0 = greedy")->capture_default_str();
  ch->add_option("--top-p", c->scfg.top_p, "Nucleus mass")->capture_default_str();
  ch->add_option("--seed", c->scfg.seed, "Sampling seed")->capture_default_str();
  ch->add_option("--weights", c->weights, weights_help)->capture_default_str();
  ch->add_option("--device", c->device, device_help)->capture_default_str();
  c->quant.add(ch);
  c->position.add(ch);
  c->kv.add(ch);
  ch->add_option("--threads", c->threads, "Threads (0 = all cores)");
  ch->add_option("--ctx", c->ctx, "Context positions kept for the whole conversation (default: the model's, at most 4096)");
  cmds.push_back({ch, [c] { return run_chat(*c); }});
}

}  // namespace clm::cli
