// The GPU decoder (gpu_decoder.h): a transformer's inference path on a CUDA device.
#include "infer/gpu_decoder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

#include "tensor/device.h"

#ifdef CLM_CUDA
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/decode.h"
#include "models/transformer.h"
#include "quant/int8_format.h"
#include "quant/nvfp4_format.h"
#endif

namespace clm {

#ifndef CLM_CUDA

std::unique_ptr<LanguageModel> gpu_decoder(std::unique_ptr<LanguageModel>, const std::string&) {
  gpu::require("--device cuda");  // throws: this build has no CUDA backend
  throw std::logic_error("unreachable");
}

#else

namespace {

namespace c = clm::cuda;
constexpr int64_t kChunkTokens = 64;  // prefill tokens per pass (the scratch buffers' rows)
constexpr int64_t kGemmTokens = 16;   // passes of this many tokens or more multiply through cuBLAS

float* fp(const Tensor& t) { return t.defined() ? const_cast<float*>(t.data<float>()) : nullptr; }

// The CUDA launchers queue on `s` while this lives (also when a launch throws).
struct StreamScope {
  explicit StreamScope(c::Stream s) { c::set_stream(s); }
  ~StreamScope() { c::set_stream(nullptr); }
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;
};

// One sequence's device state: the KV cells of every layer, the position tables for its capacity,
// the attention's partial-softmax scratch, and the captured one-token step that reads them.
class GpuState final : public nn::LayerState {
 public:
  Tensor k, v;        // [L, capacity, Hkv, hd]
  Tensor rot, table;  // rotation [capacity, hd] / learned rows [positions, D], or undefined
  Tensor part;        // decode_attention's scratch
  int64_t capacity = 0, chunks = 0, tokens_per_pass = 1, positions = 0;  // positions: the table's limit
  size_t bytes_per_token = 0;
  int64_t len = 0;
  c::Graph step = nullptr;
  ~GpuState() override { c::graph_destroy(step); }
  size_t bytes() const override { return size_t(len) * bytes_per_token; }
  void reset() override { len = 0; }
  bool truncate(int64_t pos) override {  // cells past pos are overwritten before they are read again
    len = std::min(len, pos);
    return true;
  }
};

// Quantized Linears in their stored form on the device, writing columns off .. off + N of the output.
// W8A8 (quant::Int8Format): codes [N, K], per-row scales, the activation rule (0 per token, 1
// SmoothQuant's divisor, 2 CrossQuant's column factor). NVFP4 W4A4 (quant::Nvfp4Format; ARCQuant with
// a channel order and residual channels): E2M1 codes, E4M3 block scales, each row's tensor scale.
// Linears that read the same input (q/k/v, gate/up) and quantize it by the same rule are stacked
// into one, so their input is quantized once and one kernel multiplies them all.
struct QLinear {
  bool nvfp4 = false;
  int64_t off = 0, N = 0, K = 0;
  Tensor q, sw, cvec;  // INT8
  int mode = 0;
  double alpha = 1;
  Tensor codes, scales, st_w, perm;  // NVFP4
  int64_t ke = 0;
  bool bf16_res = false;
};
using QGroup = std::vector<QLinear>;

struct Layer {
  Tensor qkv, qkv_b, o, gu, gu_b, down, down_b;  // matrices in the chosen storage, biases f32
  Tensor n1w, n1b, n2w, n2b;
  // Quantized: these instead of the matrices.
  bool quant = false;
  QGroup qkv_q, o_q, gu_q, down_q;
};

class GpuDecoder final : public LanguageModel {
 public:
  GpuDecoder(std::unique_ptr<LanguageModel> m, bool bf16) : host_(std::move(m)), bf16_(bf16) {
    cfg_ = host_->config();
    tlm_ = dynamic_cast<TransformerLM*>(host_.get());
    if (!tlm_) throw std::invalid_argument("--device cuda: inference on the GPU runs transformers (arch '" + cfg_.arch + "')");
    if (std::string why = cuda_refusal(cfg_, host_->dtype()); !why.empty())
      throw std::invalid_argument("--device cuda: the GPU decoder has no kernels for " + why + "; use --device cpu");
    if (!host_->packed_format().empty()) throw std::invalid_argument("--device cuda: the model's Linears are already packed for the CPU");
    host_->linears([&](const std::string& name, nn::Linear& l) {
      if (!l.packed) return;
      if (!dynamic_cast<const quant::Int8Format*>(l.packed.get()) && !dynamic_cast<const quant::Nvfp4Format*>(l.packed.get()))
        throw std::invalid_argument("--device cuda: '" + name + "' is quantized as " + l.packed->name() +
                                    "; the GPU runs W8A8 INT8 Linears (rtn w=int8 a=int8, smoothquant, crossquant static), NVFP4 W4A4 "
                                    "ones (rtn w=nvfp4 a=nvfp4, arcquant) or dense ones");
      linears_[name] = &l;
    });
    gpu::require("--device cuda");
    H_ = cfg_.n_heads, Hkv_ = cfg_.n_kv_heads, hd_ = cfg_.hd(), D_ = cfg_.d_model, F_ = cfg_.d_ff, V_ = cfg_.vocab_size;
    gated_ = cfg_.mlp == "swiglu" || cfg_.mlp == "geglu_tanh";
    upload();
    const int64_t Wq = (H_ + 2 * Hkv_) * hd_, R = kChunkTokens;
    if (max_kp_) {  // NVFP4 scratch: the call's activation codes, block scales and absmax
      nvx_ = Tensor::empty({R, max_kp_}, DType::i8, Device::cuda);
      nvs_ = Tensor::empty({R, max_kp_ / 16}, DType::f32, Device::cuda);
      nvamax_ = Tensor::empty({c::kNvfp4AmaxFloats}, DType::f32, Device::cuda);
      // prefill passes multiply on tensor cores: the largest weight and a pass's activations as bf16 values
      nvgw_ = Tensor::empty({max_nkp_}, DType::bf16, Device::cuda);
      nvgx_ = Tensor::empty({R, max_kp_}, DType::bf16, Device::cuda);
      nvgacc_ = Tensor::empty({R, max_nv_n_}, DType::f32, Device::cuda);
    }
    if (max_n_) {  // W8A8 scratch, and cuBLASLt's handle and workspace made before any graph capture
      const int64_t Mp = c::i8_pad(R);
      i8x_ = Tensor::empty({Mp, max_k_}, DType::i8, Device::cuda);
      i8s_ = Tensor::empty({Mp}, DType::f32, Device::cuda);
      i8acc_ = Tensor::empty({Mp, max_n_}, DType::i32, Device::cuda);
      c::gemm_lt_init();
    }
    x_ = Tensor::empty({R, D_}, DType::f32, Device::cuda);
    h_ = Tensor::empty({R, D_}, DType::f32, Device::cuda);
    qkv_ = Tensor::empty({R, Wq}, DType::f32, Device::cuda);
    att_ = Tensor::empty({R, H_ * hd_}, DType::f32, Device::cuda);
    gu_ = Tensor::empty({R, gated_ ? 2 * F_ : F_}, DType::f32, Device::cuda);
    act_ = Tensor::empty({R, F_}, DType::f32, Device::cuda);
    stat_ = Tensor::empty({2, R}, DType::f32, Device::cuda);
    logits_ = Tensor::empty({R, V_}, DType::f32, Device::cuda);
    xb_ = Tensor::empty({R, std::max({D_, H_ * hd_, F_})}, DType::bf16, Device::cuda);
    io_ = Tensor::empty({R + 1}, DType::i32, Device::cuda);
    host_io_ = static_cast<int32_t*>(c::host_alloc(sizeof(int32_t) * size_t(R + 1)));
    host_logits_ = static_cast<float*>(c::host_alloc(sizeof(float) * size_t(R * V_)));
    stream_ = c::stream_create();
    set_device(Device::cuda);
    gpu::sync();  // uploads and zero fills on the default stream finish before this stream runs
  }
  ~GpuDecoder() override {
    c::stream_destroy(stream_);
    c::host_free(host_io_);
    c::host_free(host_logits_);
  }

  const ModelConfig& config() const override { return cfg_; }
  DType dtype() const override { return DType::f32; }
  void visit(const nn::ParamVisitor& f) override { host_->visit(f); }
  void linears(const nn::LinearVisitor&) override {}  // none on the host: nothing to pack
  nn::Var forward(const Tensor&, int64_t, int64_t) override {
    throw std::invalid_argument("the GPU decoder runs inference only (training and clm eval use the model moved with --device cuda)");
  }
  size_t state_bytes_per_token() const override { return size_t(2 * cfg_.n_layers * Hkv_ * hd_) * sizeof(float); }

  InferState make_state(int64_t capacity) override {
    if (capacity <= 0) throw std::invalid_argument("make_state: capacity must be > 0");
    auto st = std::make_unique<GpuState>();
    GpuState& g = *st;
    g.capacity = capacity;
    g.bytes_per_token = state_bytes_per_token();
    const int64_t L = cfg_.n_layers;
    g.k = Tensor::zeros({L, capacity, Hkv_, hd_}, DType::f32, Device::cuda);
    g.v = Tensor::zeros({L, capacity, Hkv_, hd_}, DType::f32, Device::cuda);
    g.chunks = (capacity + c::kDecodeChunk - 1) / c::kDecodeChunk;
    // Prefill passes sized so that the attention scratch stays under 64 MiB.
    const int64_t per_token = H_ * g.chunks * (hd_ + 2);
    g.tokens_per_pass = std::clamp<int64_t>((int64_t(16) << 20) / per_token, 1, kChunkTokens);
    g.part = Tensor::empty({g.tokens_per_pass * per_token}, DType::f32, Device::cuda);
    probe_positions(g);
    gpu::sync();
    InferState s;
    s.layers.push_back(std::move(st));
    return s;
  }

  const float* infer(InferState& s, std::span<const int32_t> ids) override {
    GpuState* g = s.layers.size() == 1 ? dynamic_cast<GpuState*>(s.layers[0].get()) : nullptr;
    if (!g) throw std::invalid_argument("infer: state made for another model");
    if (ids.empty()) throw std::invalid_argument("infer: no tokens");
    if (s.token_filter || s.on_call_start || s.on_call_end || s.on_attention)
      throw std::invalid_argument("--device cuda: KV policies, token filters and attention observers run on the CPU only");
    for (int32_t id : ids)
      if (id < 0 || id >= V_) throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(V_));
    const int64_t T = int64_t(ids.size()), p0 = s.next_pos;
    if (p0 + T > g->capacity) throw std::length_error("KV cache full (" + std::to_string(g->capacity) + " positions)");
    if (g->positions && p0 + T > g->positions)
      throw std::length_error("position " + std::to_string(p0 + T - 1) + " beyond the learned table of " + std::to_string(g->positions));
    s.tags.clear();
    const StreamScope on(stream_);
    if (T == 1 && !s.all_logits) {
      host_io_[0] = int32_t(p0), host_io_[1] = ids[0];
      if (!g->step) {  // first token of this state: capture the step once
        c::capture_begin(stream_);
        try {
          queue_call(*g, 1, 1);
        } catch (...) {
          try {
            c::graph_destroy(c::capture_end(stream_));
          } catch (...) {
          }
          throw;
        }
        g->step = c::capture_end(stream_);
      }
      c::graph_launch(g->step, stream_);
      c::stream_sync(stream_);
      s.logits.assign(host_logits_, host_logits_ + V_);
    } else {
      const int64_t rows_total = s.all_logits ? T : 1;
      s.logits.resize(size_t(rows_total * V_));
      for (int64_t t0 = 0; t0 < T; t0 += g->tokens_per_pass) {
        const int64_t n = std::min(g->tokens_per_pass, T - t0);
        const int64_t rows = s.all_logits ? n : (t0 + n == T ? 1 : 0);
        host_io_[0] = int32_t(p0 + t0);
        std::copy(ids.begin() + t0, ids.begin() + t0 + n, host_io_ + 1);
        queue_call(*g, n, rows);
        c::stream_sync(stream_);
        if (rows) std::copy(host_logits_, host_logits_ + rows * V_, s.logits.data() + (s.all_logits ? t0 * V_ : 0));
      }
    }
    g->len = p0 + T;
    s.next_pos = p0 + T;
    return s.logits.data() + (s.all_logits ? (T - 1) * V_ : 0);
  }

 private:
  Tensor upload_matrix(const std::vector<const Tensor*>& parts) {  // rows stacked, in the chosen storage
    int64_t rows = 0, K = parts[0]->dim(1);
    for (const Tensor* p : parts) rows += p->dim(0);
    Tensor host = Tensor::empty({rows, K}, bf16_ ? DType::bf16 : DType::f32);
    int64_t r0 = 0;
    for (const Tensor* p : parts) {
      const Tensor t = p->contiguous();
      const float* src = t.data<float>();
      const int64_t n = t.numel();
      if (bf16_)
        for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(host.raw())[r0 * K + i] = f32_to_bf16(src[i]);
      else
        std::copy(src, src + n, host.data<float>() + r0 * K);
      r0 += p->dim(0);
    }
    return host.to_device(Device::cuda);
  }
  Tensor upload_vector(const std::vector<const Tensor*>& parts) {  // concatenated f32; undefined when absent
    if (parts.empty() || !parts[0]) return {};
    int64_t n = 0;
    for (const Tensor* p : parts) n += p->numel();
    Tensor host = Tensor::empty({n}, DType::f32);
    int64_t o = 0;
    for (const Tensor* p : parts) {
      const Tensor t = p->contiguous();
      std::copy(t.data<float>(), t.data<float>() + t.numel(), host.data<float>() + o);
      o += t.numel();
    }
    return host.to_device(Device::cuda);
  }

  // The Linears `names` (one input, outputs side by side) on the device, stacked where they agree.
  QGroup upload_quant(const std::vector<std::string>& names) {
    struct Part {
      bool nvfp4;
      int64_t N, K;
      nlohmann::json meta;
      std::map<std::string, Tensor> t;
    };
    std::vector<Part> parts;
    for (const std::string& name : names) {
      const kernels::WeightFormat* pf = linears_.at(name)->packed.get();
      std::vector<std::pair<std::string, Tensor>> ts;
      Part p{dynamic_cast<const quant::Nvfp4Format*>(pf) != nullptr, pf->rows(), pf->cols(), {}, {}};
      pf->store("", ts, p.meta);
      for (auto& [k, t] : ts) p.t[k] = t;
      parts.push_back(std::move(p));
    }
    auto same = [](const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b, const std::string& k) {
      const bool ha = a.count(k) > 0, hb = b.count(k) > 0;
      if (!ha || !hb) return ha == hb;
      const Tensor &x = a.at(k), &y = b.at(k);
      return x.nbytes() == y.nbytes() && std::equal(static_cast<const char*>(x.raw()), static_cast<const char*>(x.raw()) + x.nbytes(),
                                                    static_cast<const char*>(y.raw()));
    };
    auto agree = [&](const Part& a, const Part& b) {  // one quantized input serves both
      if (a.nvfp4 != b.nvfp4 || a.K != b.K) return false;
      if (a.nvfp4)
        return a.meta.at("ke") == b.meta.at("ke") && a.meta.at("bf16_residual") == b.meta.at("bf16_residual") && same(a.t, b.t, "perm");
      return a.meta.at("cross") == b.meta.at("cross") && a.meta.at("smooth") == b.meta.at("smooth") &&
             a.meta.at("alpha") == b.meta.at("alpha") && same(a.t, b.t, "smooth") && same(a.t, b.t, "cw");
    };
    QGroup g;
    int64_t off = 0;
    for (size_t i = 0; i < parts.size();) {
      size_t j = i + 1;
      while (j < parts.size() && agree(parts[i], parts[j])) ++j;
      QLinear q;
      q.nvfp4 = parts[i].nvfp4, q.off = off, q.K = parts[i].K;
      for (size_t p = i; p < j; ++p) q.N += parts[p].N;
      auto stack = [&](const std::string& k, int64_t row_bytes, int64_t rows_padded) {  // the parts' rows, zero-padded
        Tensor h = Tensor::zeros({rows_padded, row_bytes}, DType::u8);
        int64_t r0 = 0;
        for (size_t p = i; p < j; ++p) {
          const Tensor& t = parts[p].t.at(k);
          const int64_t rb = int64_t(t.nbytes()) / parts[p].N;
          for (int64_t r = 0; r < parts[p].N; ++r)
            std::copy_n(static_cast<const uint8_t*>(t.raw()) + r * rb, rb, static_cast<uint8_t*>(h.raw()) + (r0 + r) * row_bytes);
          r0 += parts[p].N;
        }
        return h.to_device(Device::cuda);
      };
      const nlohmann::json& m = parts[i].meta;
      if (q.nvfp4) {
        q.ke = m.at("ke").get<int64_t>();
        q.bf16_res = m.at("bf16_residual").get<bool>();
        const int64_t Kp = c::nvfp4_pad(q.K + q.ke);
        q.codes = stack("codes", Kp / 2, q.N);
        q.scales = stack("scales", Kp / 16, q.N);
        std::vector<float> stw;
        for (size_t p = i; p < j; ++p) stw.insert(stw.end(), size_t(parts[p].N), parts[p].meta.at("tensor_scale").get<float>());
        q.st_w = Tensor::from(stw, {q.N}).to_device(Device::cuda);
        if (parts[i].t.count("perm")) q.perm = parts[i].t.at("perm").to_device(Device::cuda);
        max_kp_ = std::max(max_kp_, Kp), max_nkp_ = std::max(max_nkp_, q.N * Kp), max_nv_n_ = std::max(max_nv_n_, q.N);
      } else {
        q.q = stack("q", c::i8_pad(q.K), c::i8_pad(q.N));  // padded with zero codes to the INT8 GEMM's multiples of 16
        std::vector<float> sw;
        for (size_t p = i; p < j; ++p) {
          const Tensor& t = parts[p].t.at("scales");
          sw.insert(sw.end(), t.data<float>(), t.data<float>() + t.numel());
        }
        q.sw = Tensor::from(sw, {q.N}).to_device(Device::cuda);
        for (const char* k : {"smooth", "cw"})
          if (parts[i].t.count(k)) q.cvec = parts[i].t.at(k).to_device(Device::cuda);
        q.mode = m.at("cross").get<bool>() ? 2 : m.at("smooth").get<bool>() ? 1 : 0;
        q.alpha = m.at("alpha").get<double>();
        max_n_ = std::max(max_n_, c::i8_pad(q.N)), max_k_ = std::max(max_k_, c::i8_pad(q.K));
      }
      g.push_back(std::move(q));
      for (size_t p = i; p < j; ++p) off += parts[p].N;
      i = j;
    }
    return g;
  }
  // y (rows ldy apart) (= or +=) the quantized products for T tokens; scratch sized in the constructor.
  void linear(float* y, const QGroup& g, const float* x, int64_t T, int64_t ldy, bool acc) {
    for (const QLinear& q : g) {
      if (q.nvfp4)
        c::linear_nvfp4(y + q.off, x, static_cast<const uint8_t*>(q.codes.raw()), static_cast<const uint8_t*>(q.scales.raw()), fp(q.st_w), T,
                        q.N, q.K, q.ke, q.perm.defined() ? q.perm.data<int32_t>() : nullptr, q.bf16_res, static_cast<int8_t*>(nvx_.raw()),
                        fp(nvs_), fp(nvamax_), ldy, acc,
                        {static_cast<uint16_t*>(nvgw_.raw()), static_cast<uint16_t*>(nvgx_.raw()), fp(nvgacc_)});
      else
        c::linear_i8(y + q.off, x, static_cast<const int8_t*>(q.q.raw()), q.sw.data<float>(), T, q.N, q.K, fp(q.cvec), q.mode, q.alpha,
                     static_cast<int8_t*>(i8x_.raw()), fp(i8s_), i8acc_.data<int32_t>(), ldy, acc);
    }
  }

  void upload() {
    std::map<std::string, Tensor> w;
    for (auto& [name, t] : host_->named_weights()) w[name] = t;
    auto get = [&](const std::string& n) -> const Tensor* {
      auto it = w.find(n);
      if (it == w.end()) throw std::invalid_argument("--device cuda: the model has no tensor '" + n + "'");
      if (it->second.dtype() != DType::f32) throw std::invalid_argument("--device cuda: '" + n + "' is not f32");
      return &it->second;
    };
    auto opt = [&](const std::string& n) -> const Tensor* { return w.count(n) ? get(n) : nullptr; };
    embed_ = get("model.embed_tokens.weight")->to_device(Device::cuda);
    if (linears_.count("lm_head")) head_q_ = upload_quant({"lm_head"});
    else head_ = upload_matrix({cfg_.tie_embeddings || !w.count("lm_head.weight") ? get("model.embed_tokens.weight") : get("lm_head.weight")});
    fnw_ = upload_vector({get("model.norm.weight")});
    fnb_ = upload_vector({opt("model.norm.bias")});
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l);
      Layer L;
      const std::string a = p + ".self_attn.", m = p + ".mlp.";
      const std::string names[7] = {a + "q_proj", a + "k_proj", a + "v_proj", a + "o_proj", m + "gate_proj", m + "up_proj", m + "down_proj"};
      int quantized = 0;
      for (int i = 0; i < 7; ++i) quantized += linears_.count(names[i]) > 0;
      if (quantized) {  // every Linear of the layer, or refuse
        if (quantized != (gated_ ? 7 : 6))
          throw std::invalid_argument("--device cuda: layer " + std::to_string(l) + " is quantized only in part");
        L.quant = true;
        L.qkv_q = upload_quant({names[0], names[1], names[2]});
        L.o_q = upload_quant({names[3]});
        L.gu_q = gated_ ? upload_quant({names[4], names[5]}) : upload_quant({names[5]});
        L.down_q = upload_quant({names[6]});
      } else {
        L.qkv = upload_matrix({get(a + "q_proj.weight"), get(a + "k_proj.weight"), get(a + "v_proj.weight")});
        L.o = upload_matrix({get(a + "o_proj.weight")});
        L.gu = gated_ ? upload_matrix({get(m + "gate_proj.weight"), get(m + "up_proj.weight")}) : upload_matrix({get(m + "up_proj.weight")});
        L.down = upload_matrix({get(m + "down_proj.weight")});
      }
      // Biases stay f32, stacked as the fused matrices' rows (the quantized path adds them after its products).
      if (cfg_.attn_bias) L.qkv_b = upload_vector({get(a + "q_proj.bias"), get(a + "k_proj.bias"), get(a + "v_proj.bias")});
      if (cfg_.mlp_bias) {
        L.gu_b = gated_ ? upload_vector({get(m + "gate_proj.bias"), get(m + "up_proj.bias")}) : upload_vector({get(m + "up_proj.bias")});
        L.down_b = upload_vector({get(m + "down_proj.bias")});
      }
      L.n1w = upload_vector({get(p + ".input_layernorm.weight")});
      L.n1b = upload_vector({opt(p + ".input_layernorm.bias")});
      L.n2w = upload_vector({get(p + ".post_attention_layernorm.weight")});
      L.n2b = upload_vector({opt(p + ".post_attention_layernorm.bias")});
      layers_.push_back(std::move(L));
    }
    nn::PositionEncoding& pe = tlm_->position();
    if (pe.alibi_slope(0, H_) != 0.0) {
      std::vector<float> sl(static_cast<size_t>(H_));
      for (int64_t h = 0; h < H_; ++h) sl[size_t(h)] = float(pe.alibi_slope(h, H_));
      slopes_ = Tensor::from(sl, {H_}).to_device(Device::cuda);
    }
  }

  // The position slot's action, read off the CPU model: a rotary variant rotates each pair (a, b)
  // of every head by an angle of the position, so rotating (1, 0) gives (cos, sin) and (0, 1) must give
  // (-sin, cos); anything else (a rotation that mixes pairs, or differs between heads) is refused.
  // Learned positions are the rows added to zero embeddings.
  void probe_positions(GpuState& g) {
    nn::PositionEncoding& pe = tlm_->position();
    const int64_t cap = g.capacity, half = hd_ / 2;
    const bool il = cfg_.rope_interleaved;
    std::vector<int32_t> pos(static_cast<size_t>(cap));
    std::iota(pos.begin(), pos.end(), 0);
    nn::Workspace ws;
    nn::InferCtx ctx{cap, pos.data(), 0, nullptr, 0, &ws, nullptr};
    if (cfg_.position == "learned") {
      const int64_t P = std::min(cap, cfg_.max_seq_len);
      std::vector<float> rows(size_t(P * D_), 0.f);
      ctx.T = P;
      pe.infer_embed(rows.data(), ctx);
      g.table = Tensor::from(rows, {P, D_}).to_device(Device::cuda);
      g.positions = cfg_.max_seq_len;
      return;
    }
    pe.reserve(cap);
    std::vector<float> a(size_t(cap * hd_), 0.f), b(size_t(cap * hd_), 0.f);
    auto ia = [&](int64_t j) { return il ? 2 * j : j; };
    auto ib = [&](int64_t j) { return il ? 2 * j + 1 : j + half; };
    for (int64_t p = 0; p < cap; ++p)
      for (int64_t j = 0; j < half; ++j) a[size_t(p * hd_ + ia(j))] = 1.f, b[size_t(p * hd_ + ib(j))] = 1.f;
    pe.infer_rotate(a.data(), 1, ctx);
    pe.infer_rotate(b.data(), 1, ctx);
    std::vector<float> rot(size_t(cap * hd_));
    bool identity = true;
    for (int64_t p = 0; p < cap; ++p)
      for (int64_t j = 0; j < half; ++j) {
        const float cs = a[size_t(p * hd_ + ia(j))], sn = a[size_t(p * hd_ + ib(j))];
        const float ms = -b[size_t(p * hd_ + ia(j))], cs2 = b[size_t(p * hd_ + ib(j))];
        const float tol = 1e-6f * (std::fabs(cs) + std::fabs(sn) + 1e-30f);
        if (std::fabs(ms - sn) > tol || std::fabs(cs2 - cs) > tol)
          throw std::invalid_argument("--device cuda: position '" + cfg_.position + "' does not rotate pairs of dimensions; use --device cpu");
        rot[size_t(p * hd_ + j)] = cs, rot[size_t(p * hd_ + half + j)] = sn;
        identity = identity && cs == 1.f && sn == 0.f;
      }
    // Every head the same: a few positions with H heads.
    const int64_t P = std::min<int64_t>(cap, 8);
    std::vector<float> x(size_t(P * H_ * hd_));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % size_t(hd_) + 1) / float(hd_);
    ctx.T = P;
    pe.infer_rotate(x.data(), H_, ctx);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t h = 1; h < H_; ++h)
        for (int64_t d = 0; d < hd_; ++d)
          if (x[size_t((p * H_ + h) * hd_ + d)] != x[size_t(p * H_ * hd_ + d)])
            throw std::invalid_argument("--device cuda: position '" + cfg_.position + "' rotates heads differently; use --device cpu");
    if (!identity) g.rot = Tensor::from(rot, {cap, hd_}).to_device(Device::cuda);
  }

  void norm(float* y, const float* x, const Tensor& w, const Tensor& b, int64_t T) {
    float* st = fp(stat_);
    const float eps = float(cfg_.norm_eps);
    const bool ln = cfg_.norm == "layernorm";
    if (c::norm_rows(y, x, fp(w), fp(b), T, D_, eps, cfg_.norm == "rmsnorm_1p" ? 1.f : 0.f, ln)) return;
    if (ln) c::layernorm_forward(y, st, st + kChunkTokens, x, fp(w), fp(b), T, D_, eps);
    else c::rmsnorm_forward(y, st, x, fp(w), T, D_, eps, cfg_.norm == "rmsnorm_1p" ? 1.f : 0.f);
  }
  // y (= or +=) x W^T + bias for T tokens. Decoding (and short calls) reads each weight once per 8
  // tokens on CUDA cores; a prefill pass of 16 or more tokens goes through cuBLAS (f32 weights: SGEMM,
  // the same products; bf16 weights: tensor cores with the activations rounded to bf16).
  void gemv(float* y, const Tensor& W, const Tensor& bias, const float* x, int64_t T, bool acc) {
    const int64_t N = W.dim(0), K = W.dim(1);
    if (T >= kGemmTokens) {
      if (bf16_) {
        uint16_t* xb = static_cast<uint16_t*>(xb_.raw());
        c::to_bf16(xb, x, T * K);
        c::gemm_bf16(false, true, int(T), int(N), int(K), 1.f, xb, int(K), static_cast<const uint16_t*>(W.raw()), int(K), acc ? 1.f : 0.f, y,
                     int(N));
      } else {
        c::gemm(false, true, int(T), int(N), int(K), 1.f, x, int(K), W.data<float>(), int(K), acc ? 1.f : 0.f, y, int(N));
      }
      if (bias.defined()) c::add_bias(y, fp(bias), T, N);
      return;
    }
    if (bf16_) c::gemv_bf16(y, static_cast<const uint16_t*>(W.raw()), fp(bias), x, N, K, T, acc);
    else c::gemv_f32(y, W.data<float>(), fp(bias), x, N, K, T, acc);
  }

  // Queues one call of T tokens (ids and the first position in host_io_) on the stream: copies them
  // in, runs every layer, and copies the logits of the last `rows` tokens out to host_logits_.
  void queue_call(GpuState& g, int64_t T, int64_t rows) {
    int32_t* io = io_.data<int32_t>();
    const int32_t* pos0 = io;
    c::copy_async(io, host_io_, sizeof(int32_t) * size_t(T + 1), stream_);
    float *x = fp(x_), *h = fp(h_), *qkv = fp(qkv_), *att = fp(att_), *gu = fp(gu_), *act = fp(act_);
    c::embedding_forward(x, fp(embed_), io + 1, T, D_);
    if (cfg_.embed_scale != 1.0) c::scale(x, float(cfg_.embed_scale), x, T * D_);
    if (g.table.defined()) c::add_position_rows(x, fp(g.table), pos0, T, D_);
    const int64_t cells = g.capacity * Hkv_ * hd_, Wq = (H_ + 2 * Hkv_) * hd_;
    const float scale = float(1.0 / std::sqrt(double(hd_)));
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& L = layers_[l];
      float *kc = fp(g.k) + int64_t(l) * cells, *vc = fp(g.v) + int64_t(l) * cells;
      norm(h, x, L.n1w, L.n1b, T);
      if (L.quant) {
        linear(qkv, L.qkv_q, h, T, Wq, false);
        if (L.qkv_b.defined()) c::add_bias(qkv, fp(L.qkv_b), T, Wq);
      } else {
        gemv(qkv, L.qkv, L.qkv_b, h, T, false);
      }
      c::rope_append(qkv, kc, vc, fp(g.rot), pos0, T, H_, Hkv_, hd_, cfg_.rope_interleaved);
      c::decode_attention(att, fp(g.part), qkv, kc, vc, pos0, T, H_, Hkv_, hd_, g.chunks, scale, fp(slopes_));
      if (L.quant) linear(x, L.o_q, att, T, D_, true);
      else gemv(x, L.o, Tensor(), att, T, true);
      norm(h, x, L.n2w, L.n2b, T);
      const int64_t G = gated_ ? 2 * F_ : F_;
      if (L.quant) {
        linear(gu, L.gu_q, h, T, G, false);
        if (L.gu_b.defined()) c::add_bias(gu, fp(L.gu_b), T, G);
      } else {
        gemv(gu, L.gu, L.gu_b, h, T, false);
      }
      if (gated_) c::glu(act, gu, T, F_, cfg_.mlp == "geglu_tanh");
      else c::gelu_forward(act, gu, T * F_, cfg_.mlp == "gelu_tanh");
      if (L.quant) {
        linear(x, L.down_q, act, T, D_, true);
        if (L.down_b.defined()) c::add_bias(x, fp(L.down_b), T, D_);
      } else {
        gemv(x, L.down, L.down_b, act, T, true);
      }
    }
    if (rows == 0) return;
    norm(h, x + (T - rows) * D_, fnw_, fnb_, rows);
    if (!head_q_.empty()) linear(fp(logits_), head_q_, h, rows, V_, false);
    else gemv(fp(logits_), head_, Tensor(), h, rows, false);
    c::copy_async(host_logits_, fp(logits_), sizeof(float) * size_t(rows * V_), stream_);
  }

  std::unique_ptr<LanguageModel> host_;
  TransformerLM* tlm_ = nullptr;
  ModelConfig cfg_;
  bool bf16_, gated_ = true;
  int64_t H_ = 0, Hkv_ = 0, hd_ = 0, D_ = 0, F_ = 0, V_ = 0;
  Tensor embed_, head_, fnw_, fnb_, slopes_;
  std::vector<Layer> layers_;
  Tensor x_, h_, qkv_, att_, gu_, act_, stat_, logits_, io_, xb_;
  std::map<std::string, nn::Linear*> linears_;  // the quantized (INT8, NVFP4) Linears by name
  QGroup head_q_;                                 // a quantized output head (empty: none)
  int64_t max_n_ = 0, max_k_ = 0;                 // the largest INT8 Linear, for the scratch below
  Tensor i8x_, i8s_, i8acc_;
  int64_t max_kp_ = 0;                            // the largest NVFP4 Linear's padded K + KE
  int64_t max_nkp_ = 0, max_nv_n_ = 0;           // its largest N x Kp, and N
  Tensor nvx_, nvs_, nvamax_, nvgw_, nvgx_, nvgacc_;
  int32_t* host_io_ = nullptr;
  float* host_logits_ = nullptr;
  c::Stream stream_ = nullptr;
};

}  // namespace

std::unique_ptr<LanguageModel> gpu_decoder(std::unique_ptr<LanguageModel> model, const std::string& weights) {
  if (weights != "bf16" && weights != "f32")
    throw std::invalid_argument("--device cuda: --weights must be bf16 or f32 (got '" + weights + "')");
  return std::make_unique<GpuDecoder>(std::move(model), weights == "bf16");
}

#endif

}  // namespace clm
