#include "formats/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "formats/llama2c.h"
#include "quant/numfmt.h"
#include "tokenizers/bpe.h"
#include "tokenizers/llama2c.h"
#include "util/fs.h"

namespace clm {

namespace {
enum : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 };
enum : uint32_t { GGML_F32 = 0, GGML_F16 = 1, GGML_Q8_0 = 8, GGML_BF16 = 30, GGML_MXFP4 = 39 };
constexpr int64_t kQ8Block = 32, kQ8Bytes = 34;  // ggml's block_q8_0: f16 d, int8 qs[32]
constexpr int64_t kMxBytes = 17;                 // ggml's block_mxfp4: E8M0 e, 16 bytes of E2M1 pairs (32 elements)
constexpr uint64_t kAlign = 32;

struct Writer {
  std::string b;
  uint64_t n_kv = 0;
  template <class T> void put(T v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
  }
  void key(const std::string& k, uint32_t type) {
    str(k);
    put<uint32_t>(type);
    ++n_kv;
  }
  void kv_u32(const std::string& k, uint32_t v) { key(k, U32), put<uint32_t>(v); }
  void kv_f32(const std::string& k, float v) { key(k, F32), put<float>(v); }
  void kv_bool(const std::string& k, bool v) { key(k, BOOL), put<uint8_t>(v); }
  void kv_str(const std::string& k, const std::string& v) { key(k, STR), str(v); }
  void kv_strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, ARR), put<uint32_t>(STR), put<uint64_t>(v.size());
    for (auto& x : v) str(x);
  }
  template <class T> void kv_arr(const std::string& k, uint32_t type, const std::vector<T>& v) {
    key(k, ARR), put<uint32_t>(type), put<uint64_t>(v.size());
    for (T x : v) put<T>(x);
  }
};

// llama.cpp's name for a byte-level BPE pre-tokenizer, found by its split regex.
std::string gguf_pre_tokenizer(const std::string& pattern) {
  static const std::pair<const char*, const char*> known[] = {
      {"llama-bpe", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
      {"qwen2", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
      {"gpt-2", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}};
  for (auto [name, re] : known)
    if (pattern == re) return name;
  return "";
}

// The tokenizer as llama.cpp reads it: SentencePiece-style ("llama": pieces with U+2581, scores)
// or byte-level BPE ("gpt2": GPT-2 byte-mapped tokens, merges, a named pre-tokenizer).
// The model may have more embedding rows than the tokenizer has tokens (Qwen: 151,936 rows for
// ~151,700 tokens); the rest are written as unused "[PADn]" tokens, as llama.cpp's converter does.
void write_gguf_tokenizer(Writer& w, const Tokenizer& tok, int64_t model_vocab, const std::string& path) {
  auto fail = [&](const std::string& m) -> void { throw std::invalid_argument("'" + path + "': " + m); };
  const int64_t V = tok.vocab_size();
  if (V > model_vocab)
    fail("the tokenizer has " + std::to_string(V) + " tokens, more than the model's " + std::to_string(model_vocab));
  const size_t n = static_cast<size_t>(model_vocab);
  std::vector<std::string> tokens(n);
  std::vector<float> scores(n, 0.0f);
  std::vector<int32_t> types(n, 1);  // 1 normal, 2 unknown, 3 control, 6 byte
  const auto* l2c = dynamic_cast<const Llama2cTokenizer*>(&tok);
  const auto* bpe = dynamic_cast<const BpeTokenizer*>(&tok);
  if (l2c) {
    if (V != model_vocab)  // the [PADn] rows below are for HF tokenizers (Qwen); llama2.c's lists every row
      fail("the llama2.c tokenizer has " + std::to_string(V) + " tokens, the model's vocab_size is " + std::to_string(model_vocab));
    for (int64_t i = 0; i < V; ++i) {
      for (char ch : l2c->piece(int32_t(i))) tokens[size_t(i)] += ch == ' ' ? std::string("\xe2\x96\x81") : std::string(1, ch);
      scores[size_t(i)] = l2c->score(int32_t(i));
      types[size_t(i)] = i == 0 ? 2 : i <= 2 ? 3 : i < 259 ? 6 : 1;
    }
  } else if (bpe) {
    std::copy(bpe->tokens().begin(), bpe->tokens().end(), tokens.begin());
    for (int64_t i = 0; i < V; ++i) {
      const std::string& t = tokens[size_t(i)];
      if (bpe->is_special(int32_t(i))) types[size_t(i)] = 3;
      if (bpe->sentencepiece_style() && t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') types[size_t(i)] = 6;
      if (t == "<unk>") types[size_t(i)] = 2;
    }
  } else {
    fail("GGUF export needs a SentencePiece-style or BPE tokenizer; '" + tok.type() + "' has no llama.cpp equivalent");
  }
  for (int64_t i = V; i < model_vocab; ++i) tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]", types[size_t(i)] = 5;
  if (!bpe || bpe->sentencepiece_style()) {
    if (bpe) {  // llama.cpp merges the adjacent pair whose result scores highest: score = -(rank of the merge making it)
      std::vector<bool> made(n, false);
      const auto& merges = bpe->merges();
      for (size_t r = 0; r < merges.size(); ++r) {
        const int32_t id = bpe->token_id(merges[r].first + merges[r].second);
        if (id >= 0 && !made[size_t(id)]) made[size_t(id)] = true, scores[size_t(id)] = -float(r);
      }
    }
    // llama.cpp prefixes a space at the start and after each special token, or nowhere: Metaspace
    // "first" (only at the start) has no exact equivalent and is written as the former
    // (docs/METHODS.md), as llama.cpp's own converter does.
    w.kv_str("tokenizer.ggml.model", "llama");
    w.kv_bool("tokenizer.ggml.add_space_prefix", !bpe || bpe->prepend_scheme() != "never");
    w.kv_strs("tokenizer.ggml.tokens", tokens);
    w.kv_arr("tokenizer.ggml.scores", F32, scores);
    w.kv_arr("tokenizer.ggml.token_type", I32, types);
  } else {
    if (!bpe->normalization().empty() && bpe->normalization() != "NFC")
      fail("llama.cpp has no " + bpe->normalization() + " normalizer for byte-level BPE");
    const std::string pre = gguf_pre_tokenizer(bpe->split_pattern());
    if (pre.empty()) fail("llama.cpp has no pre-tokenizer with this tokenizer's split regex: " + bpe->split_pattern());
    std::vector<std::string> merges;
    for (auto& [a, b] : bpe->merges()) merges.push_back(a + " " + b);
    w.kv_str("tokenizer.ggml.model", "gpt2");
    w.kv_str("tokenizer.ggml.pre", pre);
    w.kv_strs("tokenizer.ggml.tokens", tokens);
    w.kv_arr("tokenizer.ggml.token_type", I32, types);
    w.kv_strs("tokenizer.ggml.merges", merges);
  }
  if (tok.bos_id() >= 0) w.kv_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.bos_id()));
  if (tok.eos_id() >= 0) w.kv_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.eos_id()));
  w.kv_bool("tokenizer.ggml.add_bos_token", tok.bos_id() >= 0);
}

}  // namespace

void quantize_q8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kQ8Block; ++b, out += kQ8Bytes) {
    const float* v = x + b * kQ8Block;
    float amax = 0;
    for (int64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t h = f32_to_f16(d);
    std::memcpy(out, &h, 2);
    for (int64_t j = 0; j < kQ8Block; ++j) out[2 + j] = uint8_t(int8_t(std::round(v[j] * id)));
  }
}

void quantize_mxfp4(const float* x, int64_t n, uint8_t* out) {
  uint8_t codes[quant::kMxBlock];
  for (int64_t b = 0; b < n / quant::kMxBlock; ++b, out += kMxBytes) {
    out[0] = quant::mx_encode_block(quant::kE2M1, x + b * quant::kMxBlock, quant::kMxBlock, codes);
    for (int j = 0; j < 16; ++j) out[1 + j] = uint8_t(codes[j] | (codes[j + 16] << 4));  // element j low, j + 16 high
  }
}

void write_gguf(const std::string& path, const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors,
                const Tokenizer& tok, const std::string& type, const std::string& name) {
  auto fail = [&](const std::string& m) -> void { throw std::invalid_argument("'" + path + "': " + m); };
  // "llama": no biases, and llama.cpp rotates interleaved pairs (q/k rows are permuted from
  // rotate-half). "qwen2": Llama plus q/k/v biases, rotate-half rotary as in Hugging Face.
  ModelConfig plain = c;
  plain.attn_bias = false;
  const bool qwen2 = c.attn_bias && is_plain_llama(plain);
  if (!is_plain_llama(c) && !qwen2)
    fail("only Llama-architecture models (rmsnorm, swiglu, plain rope, softmax attention, a standard embedding; q/k/v biases as Qwen2) can be written as GGUF");
  if (qwen2 && c.rope_interleaved) fail("llama.cpp's qwen2 rotates halves; this model rotates interleaved pairs");
  const bool blocks = type == "q8_0" || type == "mxfp4";
  if (type != "f32" && type != "f16" && type != "bf16" && !blocks) fail("type must be f32, f16, bf16, q8_0 or mxfp4, not '" + type + "'");
  const DType dtype = blocks ? DType::f16 : dtype_from_name(type);  // the block types' fallback for short rows: f16
  const std::string arch = qwen2 ? "qwen2" : "llama";
  auto get = [&](const std::string& n) {  // llama: q/k rows interleaved; qwen2: as they are
    return qwen2 ? named_f32_tensor(tensors, n, path) : interleaved_llama_tensor(c, tensors, n, path);
  };
  // llama.cpp names
  std::vector<std::pair<std::string, Tensor>> out;
  out.push_back({"token_embd.weight", get("model.embed_tokens.weight")});
  const int64_t hd = c.hd();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", q = "blk." + std::to_string(l) + ".";
    out.push_back({q + "attn_norm.weight", get(p + "input_layernorm.weight")});
    out.push_back({q + "attn_q.weight", get(p + "self_attn.q_proj.weight")});
    out.push_back({q + "attn_k.weight", get(p + "self_attn.k_proj.weight")});
    out.push_back({q + "attn_v.weight", get(p + "self_attn.v_proj.weight")});
    if (qwen2)
      for (const char* x : {"q", "k", "v"}) out.push_back({q + "attn_" + x + ".bias", get(p + "self_attn." + x + "_proj.bias")});
    out.push_back({q + "attn_output.weight", get(p + "self_attn.o_proj.weight")});
    out.push_back({q + "ffn_norm.weight", get(p + "post_attention_layernorm.weight")});
    out.push_back({q + "ffn_gate.weight", get(p + "mlp.gate_proj.weight")});
    out.push_back({q + "ffn_up.weight", get(p + "mlp.up_proj.weight")});
    out.push_back({q + "ffn_down.weight", get(p + "mlp.down_proj.weight")});
  }
  out.push_back({"output_norm.weight", get("model.norm.weight")});
  if (!c.tie_embeddings) out.push_back({"output.weight", get("lm_head.weight")});
  // ggml type per tensor; Q8_0 / MXFP4 tensors become their bytes [rows, blocks * 34 / 17]
  std::vector<uint32_t> types(out.size(), GGML_F32);
  std::vector<std::vector<uint64_t>> ne(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    Tensor& t = out[i].second;
    for (int d = t.ndim() - 1; d >= 0; --d) ne[i].push_back(uint64_t(t.dim(d)));
    if (t.ndim() != 2) continue;
    if (type == "q8_0" && t.dim(1) % kQ8Block == 0) {
      const Tensor f = t.contiguous();
      Tensor q = Tensor::empty({t.dim(0), t.dim(1) / kQ8Block * kQ8Bytes}, DType::u8);
      for (int64_t r = 0; r < t.dim(0); ++r) quantize_q8_0(f.data<float>() + r * t.dim(1), t.dim(1), q.data<uint8_t>() + r * q.dim(1));
      t = q;
      types[i] = GGML_Q8_0;
    } else if (type == "mxfp4" && t.dim(1) % quant::kMxBlock == 0) {
      const Tensor f = t.contiguous();
      Tensor q = Tensor::empty({t.dim(0), t.dim(1) / quant::kMxBlock * kMxBytes}, DType::u8);
      for (int64_t r = 0; r < t.dim(0); ++r) quantize_mxfp4(f.data<float>() + r * t.dim(1), t.dim(1), q.data<uint8_t>() + r * q.dim(1));
      t = q;
      types[i] = GGML_MXFP4;
    } else if (dtype != DType::f32) {
      t = t.to(dtype);
      types[i] = dtype == DType::f16 ? GGML_F16 : GGML_BF16;
    }
  }

  Writer m;  // metadata (counted as it is written)
  m.kv_str("general.architecture", arch);
  m.kv_str("general.name", name);
  m.kv_u32("general.alignment", uint32_t(kAlign));
  // llama_ftype (MXFP4: MOSTLY_MXFP4_MOE, the one file type llama.cpp names for it)
  m.kv_u32("general.file_type", type == "f32" ? 0 : type == "f16" ? 1 : type == "q8_0" ? 7 : type == "mxfp4" ? 38 : 32);
  m.kv_u32(arch + ".context_length", uint32_t(c.max_seq_len));
  m.kv_u32(arch + ".embedding_length", uint32_t(c.d_model));
  m.kv_u32(arch + ".block_count", uint32_t(c.n_layers));
  m.kv_u32(arch + ".feed_forward_length", uint32_t(c.d_ff));
  m.kv_u32(arch + ".attention.head_count", uint32_t(c.n_heads));
  m.kv_u32(arch + ".attention.head_count_kv", uint32_t(c.n_kv_heads));
  m.kv_u32(arch + ".rope.dimension_count", uint32_t(hd));
  m.kv_f32(arch + ".rope.freq_base", float(c.rope_theta));
  m.kv_f32(arch + ".attention.layer_norm_rms_epsilon", float(c.norm_eps));
  m.kv_u32(arch + ".vocab_size", uint32_t(c.vocab_size));
  write_gguf_tokenizer(m, tok, c.vocab_size, path);
  Writer w;
  w.b += "GGUF";
  w.put<uint32_t>(3);
  w.put<uint64_t>(out.size());
  w.put<uint64_t>(m.n_kv);
  w.b += m.b;
  // tensor infos
  uint64_t off = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const Tensor& t = out[i].second;
    w.str(out[i].first);
    w.put<uint32_t>(uint32_t(ne[i].size()));
    for (uint64_t d : ne[i]) w.put<uint64_t>(d);
    w.put<uint32_t>(types[i]);
    w.put<uint64_t>(off);
    off += (t.nbytes() + kAlign - 1) / kAlign * kAlign;
  }
  while (w.b.size() % kAlign) w.b.push_back('\0');
  for (auto& [n, t] : out) {
    w.b.append(static_cast<const char*>(t.raw()), t.nbytes());
    while (w.b.size() % kAlign) w.b.push_back('\0');
  }
  write_file_atomic(path, w.b);
}

GgufFile read_gguf(const std::string& path) {
  const std::string b = read_file(path);
  auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': " + m); };
  size_t off = 0;
  auto need = [&](size_t n) {
    if (n > b.size() - off) fail("truncated at byte " + std::to_string(off));
  };
  auto get = [&]<class T>() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b.data() + off, sizeof v);
    off += sizeof v;
    return v;
  };
  auto str = [&]() {
    uint64_t n = get.operator()<uint64_t>();
    need(n);
    std::string s = b.substr(off, n);
    off += n;
    return s;
  };
  need(4);
  if (b.compare(0, 4, "GGUF") != 0) fail("not a GGUF file");
  off = 4;
  if (get.operator()<uint32_t>() != 3) fail("unsupported GGUF version");
  const uint64_t n_t = get.operator()<uint64_t>(), n_kv = get.operator()<uint64_t>();
  if (n_t > (1u << 20) || n_kv > (1u << 20)) fail("implausible counts");
  GgufFile g;
  std::function<nlohmann::json(uint32_t)> value = [&](uint32_t t) -> nlohmann::json {
    switch (t) {
      case U8: return get.operator()<uint8_t>();
      case I8: return get.operator()<int8_t>();
      case U16: return get.operator()<uint16_t>();
      case I16: return get.operator()<int16_t>();
      case U32: return get.operator()<uint32_t>();
      case I32: return get.operator()<int32_t>();
      case F32: return get.operator()<float>();
      case BOOL: return get.operator()<uint8_t>() != 0;
      case STR: {
        std::string s = str();
        return nlohmann::json::binary(std::vector<uint8_t>(s.begin(), s.end()));
      }
      case U64: return get.operator()<uint64_t>();
      case I64: return get.operator()<int64_t>();
      case F64: return get.operator()<double>();
      case ARR: {
        uint32_t et = get.operator()<uint32_t>();
        uint64_t n = get.operator()<uint64_t>();
        if (n > b.size()) fail("implausible array length");
        nlohmann::json a = nlohmann::json::array();
        for (uint64_t i = 0; i < n; ++i) a.push_back(value(et));
        return a;
      }
    }
    fail("unknown value type " + std::to_string(t));
    return {};
  };
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string k = str();
    g.kv[k] = value(get.operator()<uint32_t>());
  }
  struct Info {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t off;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < n_t; ++i) {
    Info in;
    in.name = str();
    uint32_t nd = get.operator()<uint32_t>();
    if (nd > 4) fail("tensor '" + in.name + "' has " + std::to_string(nd) + " dims");
    for (uint32_t d = 0; d < nd; ++d) in.ne.push_back(get.operator()<uint64_t>());
    in.type = get.operator()<uint32_t>();
    in.off = get.operator()<uint64_t>();
    infos.push_back(in);
  }
  const size_t data0 = (off + kAlign - 1) / kAlign * kAlign;
  for (auto& in : infos) {
    const bool q8 = in.type == GGML_Q8_0, mx = in.type == GGML_MXFP4;
    DType dt = in.type == GGML_F32    ? DType::f32
               : in.type == GGML_F16  ? DType::f16
               : in.type == GGML_BF16 ? DType::bf16
               : q8 || mx             ? DType::u8
                                      : DType::i32;
    if (dt == DType::i32) fail("tensor '" + in.name + "': unsupported ggml type " + std::to_string(in.type));
    Shape s(in.ne.rbegin(), in.ne.rend());
    if (q8 || mx) {  // stored as bytes: [..., ne0 / 32 * (34 or 17)]
      if (s.empty() || in.ne[0] % kQ8Block != 0 || in.ne[0] == 0)
        fail("tensor '" + in.name + "': " + (q8 ? "Q8_0" : "MXFP4") + " rows must be a multiple of 32 long");
      s.back() = int64_t(in.ne[0] / kQ8Block * (q8 ? kQ8Bytes : kMxBytes));
    }
    // Its size is checked against the file before anything is allocated: dims of 2^31 x 4 would
    // ask for 32 GiB, 2^32 x 2^32 overflow (out of memory under fuzz/fuzz_gguf).
    uint64_t nbytes = dtype_size(dt);
    for (auto d : s) {
      if (d <= 0 || d > (int64_t(1) << 32)) fail("tensor '" + in.name + "': bad dims");
      if (nbytes > b.size() / uint64_t(d)) fail("tensor '" + in.name + "' lies outside the file");
      nbytes *= uint64_t(d);
    }
    if (in.off > b.size() || data0 + in.off > b.size() || nbytes > b.size() - data0 - in.off)
      fail("tensor '" + in.name + "' lies outside the file");
    Tensor t = Tensor::empty(s, dt);
    std::memcpy(t.raw(), b.data() + data0 + in.off, t.nbytes());
    if (mx) {  // dequantized: each E2M1 code times 2^(e - 127)
      Shape full(in.ne.rbegin(), in.ne.rend());
      Tensor f = Tensor::empty(full, DType::f32);
      const uint8_t* p = t.data<uint8_t>();
      float* o = f.data<float>();
      for (int64_t blk = 0; blk < f.numel() / quant::kMxBlock; ++blk, p += kMxBytes)
        for (int j = 0; j < 16; ++j) {
          const uint8_t lo = p[1 + j] & 0xF, hi = p[1 + j] >> 4;
          quant::mx_decode_block(quant::kE2M1, p[0], &lo, 1, o + blk * quant::kMxBlock + j);
          quant::mx_decode_block(quant::kE2M1, p[0], &hi, 1, o + blk * quant::kMxBlock + j + 16);
        }
      t = f;
    }
    if (q8) {  // dequantized: d (f16) times each code
      Shape full(in.ne.rbegin(), in.ne.rend());
      Tensor f = Tensor::empty(full, DType::f32);
      const uint8_t* p = t.data<uint8_t>();
      float* o = f.data<float>();
      for (int64_t blk = 0; blk < f.numel() / kQ8Block; ++blk, p += kQ8Bytes) {
        uint16_t h;
        std::memcpy(&h, p, 2);
        const float d = f16_to_f32(h);
        for (int64_t j = 0; j < kQ8Block; ++j) o[blk * kQ8Block + j] = d * float(int8_t(p[2 + j]));
      }
      t = f;
    }
    g.tensors[in.name] = {in.ne, in.type, t};
  }
  return g;
}

}  // namespace clm
