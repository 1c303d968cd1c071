#include "tokenizers/spm.h"

#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace clm {

// The library's messages start with its own source location and the failed condition
// ("./src/sentencepiece_processor.cc(1101) [model_proto->ParseFromArray(...)] "): say what failed
// instead, in the user's terms.
static std::string why(const sentencepiece::util::Status& st) {
  std::string m = st.message();
  const size_t cc = m.find(".cc(");
  if (cc == std::string::npos) return m.substr(0, 200);
  if (m.find("ParseFromArray", cc) != std::string::npos) return "its protobuf does not parse";
  const size_t close = m.find("] ", cc);
  std::string rest = close == std::string::npos ? "" : m.substr(close + 2);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\n')) rest.pop_back();
  return rest.empty() ? "rejected by the SentencePiece library" : rest.substr(0, 200);
}

std::unique_ptr<SpmTokenizer> SpmTokenizer::load(const std::string& path) {
  auto t = std::unique_ptr<SpmTokenizer>(new SpmTokenizer());
  t->sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = t->sp_->Load(path);
  if (!st.ok()) throw std::runtime_error("'" + path + "': not a SentencePiece model: " + why(st));
  t->path_ = path;
  return t;
}

SpmTokenizer::~SpmTokenizer() = default;

std::vector<int32_t> SpmTokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  auto st = sp_->Encode(text, &ids);
  if (!st.ok()) throw std::runtime_error("sentencepiece encode: " + why(st));
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids)
    if (id < 0 || id >= sp_->GetPieceSize()) throw std::out_of_range("token id " + std::to_string(id) + " outside vocab");
  auto st = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  if (!st.ok()) throw std::runtime_error("sentencepiece decode: " + why(st));
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
