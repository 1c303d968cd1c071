#include "tokenizers/spm.h"

#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace clm {

std::unique_ptr<SpmTokenizer> SpmTokenizer::load(const std::string& path) {
  auto t = std::unique_ptr<SpmTokenizer>(new SpmTokenizer());
  t->sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = t->sp_->Load(path);
  if (!st.ok()) throw std::runtime_error("'" + path + "': not a SentencePiece model: " + st.ToString());
  t->path_ = path;
  return t;
}

SpmTokenizer::~SpmTokenizer() = default;

std::vector<int32_t> SpmTokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  auto st = sp_->Encode(text, &ids);
  if (!st.ok()) throw std::runtime_error("sentencepiece encode: " + st.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids)
    if (id < 0 || id >= sp_->GetPieceSize()) throw std::out_of_range("token id " + std::to_string(id) + " outside vocab");
  auto st = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  if (!st.ok()) throw std::runtime_error("sentencepiece decode: " + st.ToString());
  return out;
}

// Streaming: the text a token adds after `prev` (decode of the pair minus decode of prev keeps
// SentencePiece's leading-space rule right).
std::string SpmTokenizer::decode_next(int32_t prev, int32_t id) const {
  if (prev < 0 || prev == bos_id()) return decode({id});
  std::string a = decode({prev}), ab = decode({prev, id});
  return ab.compare(0, a.size(), a) == 0 ? ab.substr(a.size()) : decode({id});
}

int64_t SpmTokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t SpmTokenizer::eos_id() const { return sp_->eos_id(); }
int32_t SpmTokenizer::bos_id() const { return sp_->bos_id(); }
nlohmann::json SpmTokenizer::to_json() const { return {{"type", "sentencepiece"}, {"model_path", "tokenizer.model"}}; }
std::string SpmTokenizer::serialized_model() const { return std::string(sp_->serialized_model_proto()); }

}  // namespace clm
