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
    try {
      std::vector<std::string> pieces;
      for (const std::string& h : j.at("pieces_hex").get<std::vector<std::string>>()) {
        std::string p;
        for (size_t i = 0; i + 1 < h.size(); i += 2) p += char(std::stoi(h.substr(i, 2), nullptr, 16));
        pieces.push_back(p);
      }
      return std::make_unique<Llama2cTokenizer>(pieces, j.at("scores").get<std::vector<float>>(),
                                                j.at("max_token_length").get<int32_t>());
    } catch (const std::exception& e) {
      throw std::runtime_error("'" + path + "': bad llama2c tokenizer: " + e.what());
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
