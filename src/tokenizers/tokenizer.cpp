#include "tokenizers/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "tokenizers/bpe.h"
#include "tokenizers/llama2c.h"
#include "tokenizers/spm.h"
#include "util/fs.h"
#include "util/json_int.h"

namespace clm {

namespace {
// Calls f(word) for each whitespace-separated word and f("\n") at the end of every line.
template <class F> void scan_words(const std::string& text, F&& f) {
  size_t i = 0, n = text.size();
  while (i < n) {
    char c = text[i];
    if (c == '\n') {
      f(std::string_view("\n"));
      ++i;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
      ++i;
    } else {
      size_t j = i;
      while (j < n && text[j] != '\n' && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' && text[j] != '\v' &&
             text[j] != '\f')
        ++j;
      f(std::string_view(text.data() + i, j - i));
      i = j;
    }
  }
  if (n && text.back() != '\n') f(std::string_view("\n"));  // last line without newline
}

int hex_digit(char c) {  // -1 if not one (std::stoi would take "+f", " f" or "-1")
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

WordTokenizer WordTokenizer::fit(const std::string& train, int64_t max_vocab) {
  std::unordered_map<std::string, int64_t> counts;
  scan_words(train, [&](std::string_view w) {
    if (w != "\n" && w != "<unk>" && w != "<eos>") ++counts[std::string(w)];
  });
  std::vector<std::pair<std::string, int64_t>> v(counts.begin(), counts.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  std::vector<std::string> words{"<eos>", "<unk>"};
  for (auto& [w, c] : v) {
    if (max_vocab > 0 && (int64_t)words.size() >= max_vocab) break;
    words.push_back(w);
  }
  return WordTokenizer(std::move(words));
}

WordTokenizer::WordTokenizer(std::vector<std::string> words) : words_(std::move(words)) {
  if (words_.size() < 2 || words_[0] != "<eos>" || words_[1] != "<unk>")
    throw std::invalid_argument("word vocabulary must start with <eos>, <unk>");
  for (size_t i = 0; i < words_.size(); ++i) {
    if (!index_.emplace(words_[i], int32_t(i)).second)
      throw std::invalid_argument("word vocabulary has a duplicate: '" + words_[i] + "'");
  }
}

std::vector<int32_t> WordTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  scan_words(text, [&](std::string_view w) {
    if (w == "\n") {
      ids.push_back(eos_id());
      return;
    }
    auto it = index_.find(std::string(w));
    ids.push_back(it == index_.end() ? unk_id() : it->second);
  });
  return ids;
}

std::string WordTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  bool line_start = true;
  for (int32_t id : ids) {
    if (id < 0 || id >= (int32_t)words_.size()) throw std::out_of_range("word id " + std::to_string(id) + " outside vocab");
    if (id == eos_id()) {
      s += '\n';
      line_start = true;
      continue;
    }
    if (!line_start) s += ' ';
    s += words_[id];
    line_start = false;
  }
  return s;
}

std::string WordTokenizer::decode_next(int32_t prev, int32_t id) const {
  std::string w = decode({id});
  return (prev >= 0 && prev != eos_id() && id != eos_id()) ? " " + w : w;
}

nlohmann::json WordTokenizer::to_json() const { return {{"type", "word"}, {"vocab", words_}}; }

std::vector<int32_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = uint8_t(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t id : ids) {
    if (id < 0 || id > 256) throw std::out_of_range("byte id " + std::to_string(id) + " outside vocab");
    if (id < 256) s += char(id);
  }
  return s;
}

nlohmann::json ByteTokenizer::to_json() const { return {{"type", "byte"}}; }

std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& j, const std::string& path) {
  if (j.is_object() && j.contains("model") && !j.contains("type")) return BpeTokenizer::from_json(j, path);
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw std::runtime_error("'" + path + "': tokenizer JSON has no \"type\"");
  std::string t = j["type"];
  if (t == "byte") return std::make_unique<ByteTokenizer>();
  if (t == "word") {
    if (!j.contains("vocab") || !j["vocab"].is_array()) throw std::runtime_error("'" + path + "': word tokenizer without vocab");
    try {
      return std::make_unique<WordTokenizer>(j["vocab"].get<std::vector<std::string>>());
    } catch (const std::exception& e) {
      throw std::runtime_error("'" + path + "': " + e.what());
    }
  }
  if (t == "sentencepiece") {
    if (!j.contains("model_path") || !j["model_path"].is_string()) throw std::runtime_error("'" + path + "': no model_path");
    std::filesystem::path mp = j["model_path"].get<std::string>();
    if (mp.is_relative()) mp = std::filesystem::path(path).parent_path() / mp;  // beside the JSON
    return SpmTokenizer::load(mp.string());
  }
  if (t == "llama2c") {
    auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': bad llama2c tokenizer: " + m); };
    std::vector<std::string> pieces;
    std::vector<float> scores;
    int64_t max_len = 0;
    try {
      const auto hex = j.at("pieces_hex").get<std::vector<std::string>>();
      scores = j.at("scores").get<std::vector<float>>();
      const auto ml = json_int<int64_t>(j.at("max_token_length"));  // (get<int64_t>: 1e300 is undefined behaviour)
      if (!ml) fail("max_token_length is not an integer");
      max_len = *ml;
      for (size_t i = 0; i < hex.size(); ++i) {
        const std::string& h = hex[i];
        std::string p;
        bool ok = h.size() % 2 == 0;
        for (size_t k = 0; ok && k < h.size(); k += 2) {
          int hi = hex_digit(h[k]), lo = hex_digit(h[k + 1]);
          ok = hi >= 0 && lo >= 0;
          p += char(hi * 16 + lo);
        }
        if (!ok) fail("pieces_hex[" + std::to_string(i) + "] '" + shorten(h) + "' is not pairs of hex digits");
        pieces.push_back(std::move(p));
      }
    } catch (const nlohmann::json::exception& e) {
      fail(e.what());
    }
    // range-checked before narrowing: 2^32 + 16 must not become 16
    if (max_len <= 0 || max_len > Llama2cTokenizer::kMaxTokenLength)
      fail("implausible max_token_length " + std::to_string(max_len));
    try {
      return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores), int32_t(max_len));
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }
  throw std::runtime_error("'" + path + "': unknown tokenizer type '" + t + "'");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + path + "': bad JSON: " + e.what());
  }
  return tokenizer_from_json(j, path);
}

void save_tokenizer(const Tokenizer& t, const std::string& path) {
  if (auto* sp = dynamic_cast<const SpmTokenizer*>(&t))  // the model first: the JSON points at it
    write_file_atomic((std::filesystem::path(path).parent_path() / "tokenizer.model").string(), sp->serialized_model());
  write_file_atomic(path, t.to_json().dump());
}

}  // namespace clm
