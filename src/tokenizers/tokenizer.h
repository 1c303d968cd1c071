// Tokenizers for training corpora: word-level (PTB / WikiText convention) and byte-level.
// (Pretrained-model tokenizers -- BPE, SentencePiece -- plug in behind the same interface.)
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace clm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string type() const = 0;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The text of `id` when it follows `prev` (-1 at the start): for streaming output.
  virtual std::string decode_next(int32_t prev, int32_t id) const {
    (void)prev;
    return decode({id});
  }
  virtual int64_t vocab_size() const = 0;
  // The vocabulary entry of one id as a string (a word-level tokenizer's word, "<eos>" included);
  // by default its decoding.
  virtual std::string token_text(int32_t id) const { return decode({id}); }
  virtual int32_t eos_id() const = 0;
  virtual int32_t bos_id() const { return -1; }  // -1: the tokenizer has none
  virtual nlohmann::json to_json() const = 0;
  // What one "token" of perplexity means for this tokenizer ("word", "byte").
  virtual std::string unit() const = 0;
};

// Word-level: whitespace-separated words; every line (empty ones too) ends with <eos>, as in the
// PyTorch word_language_model / AWD-LSTM loaders used for PTB and WikiText-2 results.
// Vocabulary: <eos>=0, <unk>=1, then train words by descending count, ties by byte order.
class WordTokenizer : public Tokenizer {
 public:
  static WordTokenizer fit(const std::string& train_text, int64_t max_vocab = 0);
  explicit WordTokenizer(std::vector<std::string> words);
  std::string type() const override { return "word"; }
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string decode_next(int32_t prev, int32_t id) const override;  // a space between words
  int64_t vocab_size() const override { return (int64_t)words_.size(); }
  std::string token_text(int32_t id) const override { return words_.at(size_t(id)); }
  int32_t eos_id() const override { return 0; }
  int32_t unk_id() const { return 1; }
  nlohmann::json to_json() const override;
  std::string unit() const override { return "word"; }

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int32_t> index_;
};

// Byte-level: ids 0..255 are bytes, 256 is <eos>.
class ByteTokenizer : public Tokenizer {
 public:
  std::string type() const override { return "byte"; }
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return 257; }
  int32_t eos_id() const override { return 256; }
  nlohmann::json to_json() const override;
  std::string unit() const override { return "byte"; }
};

std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& j, const std::string& path_for_errors);
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);
void save_tokenizer(const Tokenizer& t, const std::string& path);  // atomic

}  // namespace clm
