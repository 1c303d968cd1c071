// llama2.c's tokenizer (.bin): int32 max_token_length, then per token: float32 score, int32 length,
// bytes. Encoding is SentencePiece-style BPE by score: a dummy-prefix space, UTF-8 code points looked
// up as pieces (bytes not in the vocabulary fall back to the <0xNN> pieces, id = byte + 3), then the
// adjacent pair whose merge has the highest score is merged until none remains.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizers/tokenizer.h"

namespace clm {

class Llama2cTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kMaxTokenLength = 1 << 16;  // llama.c's are ~30 bytes; more is a corrupt file
  static Llama2cTokenizer load(const std::string& path);
  // Throws std::invalid_argument unless there is one score per piece, at least the 259 pieces that
  // encoding relies on (<unk>, <s>, </s>, 256 bytes), and no piece is longer than max_len.
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, int32_t max_len);
  std::string type() const override { return "llama2c"; }
  // No BOS/EOS added; see encode_with().
  std::vector<int32_t> encode(const std::string& text) const override { return encode_with(text, false, false); }
  std::vector<int32_t> encode_with(const std::string& text, bool bos, bool eos) const;
  std::string decode(const std::vector<int32_t>& ids) const override;
  // run.c's rule: a piece after BOS loses its leading space; <0xNN> is that byte; a lone
  // unprintable byte prints nothing.
  std::string decode_next(int32_t prev, int32_t id) const override;
  int64_t vocab_size() const override { return (int64_t)pieces_.size(); }
  int32_t eos_id() const override { return 2; }
  int32_t bos_id() const override { return 1; }
  nlohmann::json to_json() const override;
  std::string unit() const override { return "token"; }
  const std::string& piece(int32_t id) const { return pieces_.at(id); }
  float score(int32_t id) const { return scores_.at(id); }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  int32_t max_len_;
  std::unordered_map<std::string, int32_t> index_;
};

}  // namespace clm
