#include "nn/config.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/json_int.h"
#include "util/memory.h"

namespace clm {

void ModelConfig::validate() const {
  auto fail = [](const std::string& m) { throw std::invalid_argument("model config: " + m); };
  if (vocab_size <= 0) fail("vocab_size must be > 0");
  if (d_model <= 0) fail("d_model must be > 0");
  if (n_layers <= 0) fail("n_layers must be > 0");
  if (n_heads <= 0) fail("n_heads must be > 0");
  if (head_dim < 0) fail("head_dim must be >= 0");
  const bool transformer = arch == "transformer";  // recurrent models have no heads or rotary
  if (transformer && head_dim == 0 && d_model % n_heads) fail("n_heads (" + std::to_string(n_heads) + ") must divide d_model (" + std::to_string(d_model) + ")");
  if (transformer && (n_kv_heads <= 0 || n_heads % n_kv_heads))
    fail("n_kv_heads (" + std::to_string(n_kv_heads) + ") must divide n_heads (" + std::to_string(n_heads) + ")");
  if (d_ff <= 0) fail("d_ff must be > 0");
  if (max_seq_len <= 0) fail("max_seq_len must be > 0");
  if (transformer && position == "rope" && hd() % 2) fail("rope needs an even head dim");
  if (!(embed_scale > 0)) fail("embed_scale must be > 0");
  if (!(norm_eps > 0)) fail("norm_eps must be > 0");
  if (!(rope_theta > 0)) fail("rope_theta must be > 0");
  if (!(init_std > 0)) fail("init_std must be > 0");
  if (!(dropout >= 0 && dropout < 1)) fail("dropout must be in [0, 1)");
  if (vision != "none" && !transformer) fail("vision '" + vision + "' needs arch transformer");
}

int64_t ModelConfig::min_params() const {
  const int64_t table = checked_mul({vocab_size, d_model}), square = checked_mul({d_model, d_model});
  const bool t = arch == "transformer";
  const int64_t mlp = t ? checked_mul({2, d_model, d_ff}) : 0, heads = t ? checked_mul({d_model, n_heads, hd()}) : 0;
  return checked_add({table, checked_mul({n_layers, checked_add({square, mlp, heads})})});
}

#define CLM_CONFIG_FIELDS(X)                                                                              \
  X(arch) X(vocab_size) X(d_model) X(n_layers) X(n_heads) X(n_kv_heads) X(d_ff) X(head_dim) X(max_seq_len) X(attention) \
  X(position) X(mlp) X(norm) X(embedding) X(norm_eps) X(rope_theta) X(rope_interleaved) X(tie_embeddings)   \
  X(attn_bias) X(mlp_bias) X(init_std) X(embed_scale) X(dropout)
#define CLM_CONFIG_OPTS(X) X(attention_opt) X(position_opt) X(mlp_opt) X(norm_opt) X(embedding_opt) X(vision_opt)

void to_json(nlohmann::json& j, const ModelConfig& c) {
  j = nlohmann::json::object();
#define X(f) j[#f] = c.f;
  CLM_CONFIG_FIELDS(X)
#undef X
#define X(f) \
  if (!c.f.empty()) j[#f] = c.f;  // written only when set: configs without options stay as they were
  CLM_CONFIG_OPTS(X)
#undef X
  if (c.vision != "none") j["vision"] = c.vision;  // text models' configs stay as they were
}

namespace {
// Integer fields go through json_int (get_to would convert 1e300 with undefined behaviour).
void get_field(const nlohmann::json& j, int64_t& v, const char* name) {
  const auto i = json_int<int64_t>(j);
  if (!i) throw std::invalid_argument(std::string("model config: ") + name + " must be an integer, not a " + j.type_name() +
                                      (j.is_number() ? " out of range or with a fraction" : ""));
  v = *i;
}
template <class T> void get_field(const nlohmann::json& j, T& v, const char* name) {
  v = json_field<T>(nlohmann::json{{name, j}}, name, "model config");
}
}  // namespace

void from_json(const nlohmann::json& j, ModelConfig& c) {
  if (!j.is_object()) throw std::invalid_argument("model config: not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
#define X(f) known |= it.key() == #f;
    CLM_CONFIG_FIELDS(X)
    CLM_CONFIG_OPTS(X)
#undef X
    known |= it.key() == "vision";
    if (!known) throw std::invalid_argument("model config: unknown key '" + it.key() + "'");
  }
  try {
#define X(f) \
  if (j.contains(#f)) get_field(j.at(#f), c.f, #f);
    CLM_CONFIG_FIELDS(X)
#undef X
#define X(f)                                                                                        \
  if (j.contains(#f)) {                                                                             \
    if (!j.at(#f).is_object()) throw std::invalid_argument("model config: " #f " must be a JSON object"); \
    c.f = j.at(#f);                                                                                 \
  }
    CLM_CONFIG_OPTS(X)
#undef X
    if (j.contains("vision")) c.vision = json_field<std::string>(j, "vision", "model config");
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("model config: ") + e.what());
  }
}

}  // namespace clm
