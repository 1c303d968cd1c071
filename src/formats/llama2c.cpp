#include "formats/llama2c.h"

#include <cstring>
#include <stdexcept>

#include "util/fs.h"

namespace clm {

Llama2cCheckpoint read_llama2c_checkpoint(const std::string& path) {
  const std::string bytes = read_file(path);
  auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': " + m); };
  if (bytes.size() < 28) fail("too short for a llama2.c header (" + std::to_string(bytes.size()) + " bytes)");
  int32_t h[7];
  std::memcpy(h, bytes.data(), 28);
  const int64_t D = h[0], Fd = h[1], L = h[2], H = h[3], K = h[4], S = h[6];
  const bool shared = h[5] > 0;
  const int64_t V = h[5] < 0 ? -int64_t(h[5]) : h[5];
  for (int64_t v : {D, Fd, L, H, K, V, S})
    if (v <= 0 || v > (1 << 24)) fail("implausible header (dim, hidden, layers, heads, kv heads, vocab, seq_len) = (" +
                                      std::to_string(D) + ", " + std::to_string(Fd) + ", " + std::to_string(L) + ", " +
                                      std::to_string(H) + ", " + std::to_string(K) + ", " + std::to_string(V) + ", " +
                                      std::to_string(S) + ")");
  if (D % H || H % K) fail("heads do not divide dim / kv heads do not divide heads");
  const int64_t hd = D / H;
  // In 128 bits: each field may be 2^24, and a size that wrapped in 64 bits could match a tiny file
  // (found by fuzz/fuzz_llama2c_bin), after which the weights would be read far past its end.
  using u128 = unsigned __int128;
  const u128 per_layer = u128(D) + u128(D) * D + 2 * u128(D) * K * hd + u128(D) * D + D + 3 * u128(D) * Fd;
  const u128 floats = u128(V) * D + u128(L) * per_layer + D + u128(S) * hd + (shared ? 0 : u128(V) * D);
  const u128 implied = 28 + 4 * floats;
  if (u128(bytes.size()) != implied)
    fail("file has " + std::to_string(bytes.size()) + " bytes, the header implies " +
         (implied >> 64 ? std::string("more than 2^64") : std::to_string(uint64_t(implied))));

  Llama2cCheckpoint ck;
  ModelConfig& c = ck.config;
  c.vocab_size = V, c.d_model = D, c.n_layers = L, c.n_heads = H, c.n_kv_heads = K, c.d_ff = Fd, c.max_seq_len = S;
  c.rope_interleaved = true, c.tie_embeddings = shared, c.norm_eps = 1e-5;
  c.validate();
  const float* p = reinterpret_cast<const float*>(bytes.data() + 28);
  auto take = [&](const Shape& s) {
    Tensor t = Tensor::empty(s, DType::f32);
    std::memcpy(t.raw(), p, t.nbytes());
    p += t.numel();
    return t;
  };
  // Layer-stacked blocks: read each whole block, then cut it per layer.
  auto stacked = [&](const std::string& suffix, const Shape& per) {
    Shape s{L};
    s.insert(s.end(), per.begin(), per.end());
    Tensor all = take(s);
    for (int64_t l = 0; l < L; ++l)
      ck.tensors.push_back({"model.layers." + std::to_string(l) + "." + suffix, all.slice(0, l, l + 1).reshape(per).clone()});
  };
  ck.tensors.push_back({"model.embed_tokens.weight", take({V, D})});
  stacked("input_layernorm.weight", {D});
  stacked("self_attn.q_proj.weight", {H * hd, D});
  stacked("self_attn.k_proj.weight", {K * hd, D});
  stacked("self_attn.v_proj.weight", {K * hd, D});
  stacked("self_attn.o_proj.weight", {D, H * hd});
  stacked("post_attention_layernorm.weight", {D});
  stacked("mlp.gate_proj.weight", {Fd, D});
  stacked("mlp.down_proj.weight", {D, Fd});
  stacked("mlp.up_proj.weight", {Fd, D});
  ck.tensors.push_back({"model.norm.weight", take({D})});
  p += S * hd;  // legacy RoPE tables (freq_cis real and imaginary halves): recomputed instead
  if (!shared) ck.tensors.push_back({"lm_head.weight", take({V, D})});
  return ck;
}

// Row h*hd + i + j*hd/2 (rotate-half) <-> row h*hd + 2i + j (interleaved), in either direction.
static Tensor permute_pair_rows(const Tensor& w, int64_t heads, int64_t hd, bool to_interleaved) {
  Tensor src = w.contiguous(), out = Tensor::empty(w.shape(), w.dtype());
  const size_t row = size_t(w.dim(1)) * dtype_size(w.dtype());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t j : {0, 1}) {
        const int64_t half = h * hd + i + j * hd / 2, pair = h * hd + 2 * i + j;
        std::memcpy(static_cast<char*>(out.raw()) + size_t(to_interleaved ? pair : half) * row,
                    static_cast<const char*>(src.raw()) + size_t(to_interleaved ? half : pair) * row, row);
      }
  return out;
}

Tensor rotate_half_rows_to_interleaved(const Tensor& w, int64_t heads, int64_t hd) { return permute_pair_rows(w, heads, hd, true); }
Tensor interleaved_rows_to_rotate_half(const Tensor& w, int64_t heads, int64_t hd) { return permute_pair_rows(w, heads, hd, false); }

bool is_plain_llama(const ModelConfig& c) {
  auto plain = [](const nlohmann::json& o) { return o.is_null() || o.empty(); };  // the variants' defaults
  return c.arch == "transformer" && c.norm == "rmsnorm" && c.mlp == "swiglu" && c.position == "rope" && c.attention == "causal" && c.embedding == "standard" && c.vision == "none" && plain(c.attention_opt) &&
         plain(c.position_opt) && !c.attn_bias && !c.mlp_bias && c.hd() * c.n_heads == c.d_model && c.embed_scale == 1.0;
}

Tensor named_f32_tensor(const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& name,
                        const std::string& path) {
  for (auto& [k, t] : tensors)
    if (k == name) return t.to(DType::f32).contiguous();
  throw std::invalid_argument("'" + path + "': missing tensor '" + name + "'");
}

Tensor interleaved_llama_tensor(const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors,
                                const std::string& name, const std::string& path) {
  Tensor f = named_f32_tensor(tensors, name, path);
  const bool q = name.ends_with("self_attn.q_proj.weight"), kk = name.ends_with("self_attn.k_proj.weight");
  if (!c.rope_interleaved && (q || kk)) f = rotate_half_rows_to_interleaved(f, q ? c.n_heads : c.n_kv_heads, c.hd());
  return f;
}

void write_llama2c_checkpoint(const std::string& path, const ModelConfig& c,
                              const std::vector<std::pair<std::string, Tensor>>& tensors) {
  if (!is_plain_llama(c)) throw std::invalid_argument("'" + path + "': this model cannot be expressed as a llama2.c checkpoint");
  auto get = [&](const std::string& n) { return interleaved_llama_tensor(c, tensors, n, path); };
  std::string out;
  int32_t h[7] = {int32_t(c.d_model), int32_t(c.d_ff), int32_t(c.n_layers), int32_t(c.n_heads), int32_t(c.n_kv_heads),
                  int32_t(c.tie_embeddings ? c.vocab_size : -c.vocab_size), int32_t(c.max_seq_len)};
  out.append(reinterpret_cast<const char*>(h), 28);
  auto put = [&](const Tensor& t) { out.append(static_cast<const char*>(t.raw()), t.nbytes()); };
  put(get("model.embed_tokens.weight"));
  for (const char* suffix : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                             "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                             "mlp.gate_proj.weight", "mlp.down_proj.weight", "mlp.up_proj.weight"})
    for (int64_t l = 0; l < c.n_layers; ++l) put(get("model.layers." + std::to_string(l) + "." + suffix));
  put(get("model.norm.weight"));
  out.append(size_t(c.max_seq_len * c.hd() / 2 * 2 * 4), '\0');  // unused legacy RoPE tables
  if (!c.tie_embeddings) put(get("lm_head.weight"));
  write_file_atomic(path, out);
}

}  // namespace clm
