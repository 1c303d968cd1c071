#include "eval/longgen.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>

#include "autograd/autograd.h"
#include "eval/perplexity.h"
#include "eval/vqa.h"
#include "util/rng.h"

namespace clm {

int32_t pick_token(const float* l, int64_t V, double temperature, double u) {
  if (temperature <= 0) return int32_t(std::max_element(l, l + V) - l);
  const float mx = *std::max_element(l, l + V);
  double z = 0;
  for (int64_t v = 0; v < V; ++v) z += std::exp(double(l[v] - mx) / temperature);
  double c = 0, target = u * z;
  for (int64_t v = 0; v < V; ++v)
    if ((c += std::exp(double(l[v] - mx) / temperature)) >= target) return int32_t(v);
  return int32_t(V - 1);
}

std::vector<int32_t> generate_under(LanguageModel& m, const int32_t* prompt, int64_t ctx, int64_t gen, double temperature, uint64_t seed,
                                    KVPolicy* pol, GenRow* r) {
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point a) { return std::chrono::duration<double>(clock::now() - a).count(); };
  ag::NoGrad ng;
  const int64_t V = m.config().vocab_size;
  const std::span<const int32_t> p(prompt, size_t(ctx));
  InferState s = m.make_state(ctx + gen), full;  // full: the whole cache fed the same tokens (judging, r only)
  if (pol) pol->attach(s);
  auto t0 = clock::now();
  const float* l = m.infer(s, p);
  const double prefill_s = since(t0);
  const float* lf = nullptr;
  if (r) full = m.make_state(ctx + gen), lf = m.infer(full, p);
  Rng rng(seed);
  double decode_s = 0;
  std::vector<int32_t> out;
  for (int64_t k = 0;; ++k) {
    t0 = clock::now();
    const int32_t t = pick_token(l, V, temperature, double(rng.next() >> 11) * 0x1.0p-53);
    decode_s += since(t0);
    out.push_back(t);
    if (r) {  // step k as the full cache sees it: its loss on the token, and KL(full || policy)
      const double zf = log_sum_exp(lf, V), zp = log_sum_exp(l, V);
      r->nll += zf - double(lf[t]);
      double kl = 0;
      for (int64_t v = 0; v < V; ++v) {
        const double a = double(lf[v]) - zf;
        kl += std::exp(a) * (a - (double(l[v]) - zp));
      }
      r->kl += kl;
    }
    if (k + 1 == gen) break;
    t0 = clock::now();
    l = m.infer(s, std::span<const int32_t>(&t, 1));
    decode_s += since(t0);
    if (r) lf = m.infer(full, std::span<const int32_t>(&t, 1));
  }
  if (r) {
    r->prefill_s += prefill_s, r->decode_s += decode_s;
    r->frac_sum += kv_fraction(s, s.next_pos), r->bytes_sum += double(kv_used_bytes(s));
    r->prompt_tokens += ctx, r->decoded += gen, r->scored += gen, ++r->items;
    if (pol) r->kv += pol->stats;
  }
  return out;
}

}  // namespace clm
