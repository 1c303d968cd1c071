// Two flavours share this class. Byte-level BPE (GPT-2, Llama-3, Qwen): text is split by the pre-tokenizer regex (PCRE2, Unicode
// properties), each piece's UTF-8 bytes are mapped to printable code points (GPT-2's byte map),
// then adjacent symbols are merged by rank until no ranked pair remains. Added / special tokens
// are matched literally before pre-tokenization. Loaded from a Hugging Face tokenizer.json (model
// type BPE with a ByteLevel pre-tokenizer) or from GPT-2's encoder.json + vocab.bpe.
// SentencePiece-style BPE (Llama-2, Mistral, Phi-3 tokenizer.json: Metaspace pre-tokenizer, or the
// older Prepend/Replace normalizer): spaces become U+2581, one is prepended, the whole segment is
// merged over Unicode characters, and characters outside the vocabulary fall back to <0xNN> byte
// tokens; decoding maps U+2581 back to spaces, fuses byte tokens and strips the first space.
// Both: a Unicode normalizer (NFC for Qwen; NFD/NFKC/NFKD) runs first, through utf8proc; merging
// pops the lowest-ranked adjacent pair from a heap (leftmost first on ties, as Hugging Face
// does), O(n log n) in the symbols of a piece, so long SentencePiece-style segments stay fast.
#pragma once
#include <array>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizers/tokenizer.h"

namespace clm {

class BpeTokenizer : public Tokenizer {
 public:
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::string& path);
  static std::unique_ptr<BpeTokenizer> from_json(const nlohmann::json& j, const std::string& where);  // parsed tokenizer.json
  static std::unique_ptr<BpeTokenizer> from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);
  ~BpeTokenizer() override;

  std::string type() const override { return "bpe"; }
  std::vector<int32_t> encode(const std::string& text) const override;  // special tokens in text are matched
  std::string decode(const std::vector<int32_t>& ids) const override;
  // SentencePiece-style: only the text's first space is stripped (at the start or right after BOS)
  std::string decode_next(int32_t prev, int32_t id) const override;
  int64_t vocab_size() const override { return (int64_t)id_to_token_.size(); }
  int32_t eos_id() const override { return eos_; }
  int32_t bos_id() const override { return bos_; }
  nlohmann::json to_json() const override;  // a tokenizer.json that Hugging Face's library reads back
  std::string unit() const override { return "token"; }
  int32_t token_id(const std::string& token) const;  // -1 if absent

  // What exporters (GGUF) need to know.
  bool sentencepiece_style() const { return metaspace_; }
  const std::vector<std::string>& tokens() const { return id_to_token_; }
  bool is_special(int32_t id) const { return is_added_[size_t(id)]; }
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }  // rank order
  const std::string& split_pattern() const { return pattern_; }
  std::string prepend_scheme() const;  // where U+2581 is prepended: "always" (also: a Prepend normalizer), "first", "never"
  const std::string& normalization() const { return unicode_form_; }  // "", "NFC", "NFD", "NFKC" or "NFKD"
  std::string normalize(const std::string& text) const;                 // applies it (decode returns such text)

 private:
  // Where SentencePiece-style text gets its leading U+2581: never, unconditionally (a Prepend
  // normalizer), or by a Metaspace pre-tokenizer (unless already there) on every / the first segment.
  enum class Prepend : uint8_t { never, normalizer, always, first };
  BpeTokenizer();
  void init(const std::string& pattern, const std::string& where);
  void bpe(const std::string& mapped, std::vector<int32_t>& out) const;
  std::string decode_pieces(const std::vector<int32_t>& ids, bool strip_first_space) const;
  std::string metaspace_text(const std::string& segment, bool first) const;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<std::pair<std::string, std::string>> merges_;                   // in rank order
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merge_of_pair_;  // (left id, right id) -> (rank, merged id)
  std::vector<std::pair<std::string, int32_t>> added_;                        // literal specials, longest first
  std::vector<bool> is_added_;
  std::array<bool, 256> added_first_{};  // bytes that start some added token
  bool ignore_merges_ = false;
  bool metaspace_ = false;  // SentencePiece-style
  Prepend prepend_ = Prepend::never;
  bool metaspace_split_ = false;  // Metaspace(split=true): pieces start at each U+2581
  std::string unicode_form_;
  int32_t bos_ = -1, eos_ = -1;
  std::string pattern_;
  struct Regex;
  std::unique_ptr<Regex> re_;
  struct Cache;  // word -> ids, shared by threads
  std::unique_ptr<Cache> cache_;
};

}  // namespace clm
