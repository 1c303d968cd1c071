// Long generation under a KV policy (clm kv-bench --task gen): a prompt prefilled in one call, then
// tokens decoded one call each, greedy or sampled with draws shared by every policy, each step
// judged by the full cache fed the same tokens. HAE's paper claims faster long generation at a
// small loss; this measures both on the engine's own models.
#pragma once
#include <cstdint>
#include <vector>

#include "infer/kv_policy.h"
#include "models/lm.h"

namespace clm {

struct GenRow {  // sums over the prompts of one (policy, budget)
  double agree_sum = 0;  // per prompt: share of the tokens before the first that differs from the full cache's
  double nll = 0;        // the full cache's loss (nats) on each generated token, at the same step
  double kl = 0;         // KL(full cache's next-token distribution || the policy's), nats, per step
  double frac_sum = 0, bytes_sum = 0, prefill_s = 0, decode_s = 0;
  int64_t items = 0, scored = 0, prompt_tokens = 0, decoded = 0;
  KVStats kv;
};

// The next token from logits l[V]: the argmax at temperature 0, else the token at which the
// cumulative softmax(l / temperature) reaches u (u in [0, 1): one uniform draw).
// Not infer/generate.h's Sampler: that one sorts the V candidates for top-k / top-p on every token,
// which would sit inside the decode time this harness measures (a 33k-word sort per step).
int32_t pick_token(const float* l, int64_t V, double temperature, double u);

// `gen` tokens after prompt[0..ctx): the prompt in one call, then one call per token. Step k's draw
// is the k-th of Rng(seed), so that equal logits give equal tokens under any policy. pol: nullptr or a
// fresh policy (attached here). r: nullptr, or sums to add to: timings (decode: sampling and the
// policy's calls), KV kept at the end, the policy's stats, and each step judged by a second state
// holding the whole cache, fed the same tokens (not timed): its loss on the token drawn and the KL
// divergence of the policy's distribution from it (0 exactly when the two logits are equal).
std::vector<int32_t> generate_under(LanguageModel& m, const int32_t* prompt, int64_t ctx, int64_t gen, double temperature, uint64_t seed,
                                    KVPolicy* pol, GenRow* r);

}  // namespace clm
