// SentencePiece .model files (Llama-2, Mistral, Gemma ...) through Debian's libsentencepiece: the
// reference implementation itself, so ids match by construction; byte fallback and the "▁" space
// handling are the library's.
#pragma once
#include <memory>
#include <string>

#include "tokenizers/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace clm {

class SpmTokenizer : public Tokenizer {
 public:
  static std::unique_ptr<SpmTokenizer> load(const std::string& path);
  ~SpmTokenizer() override;
  std::string type() const override { return "sentencepiece"; }
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string decode_next(int32_t prev, int32_t id) const override;
  int64_t vocab_size() const override;
  int32_t eos_id() const override;
  int32_t bos_id() const override;
  // {"type": "sentencepiece", "model_path": "tokenizer.model"}: save_tokenizer writes the model
  // itself beside the JSON, so a saved folder does not depend on the file it was loaded from
  nlohmann::json to_json() const override;
  std::string serialized_model() const;  // the .model file's bytes
  std::string unit() const override { return "token"; }

 private:
  SpmTokenizer() = default;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
};

}  // namespace clm
