#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizers/bpe.h"

#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/fs.h"

namespace clm {

using json = nlohmann::json;

namespace {
// GPT-2's reversible byte -> code point map: printable Latin-1 bytes map to themselves, the others
// to 256 + n in order.
struct ByteMap {
  std::string to_utf8[256];
  std::unordered_map<std::string, uint8_t> from_utf8;
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = keep ? uint32_t(b) : uint32_t(256 + n++);
      std::string s;
      if (cp < 0x80) {
        s += char(cp);
      } else {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
      }
      to_utf8[b] = s;
      from_utf8[s] = uint8_t(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
}  // namespace

struct BpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() {
    if (code) pcre2_code_free(code);
  }
};

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::init(const std::string& pattern, const std::string& where) {
  pattern_ = pattern;
  re_ = std::make_unique<Regex>();
  int err = 0;
  PCRE2_SIZE off = 0;
  re_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                            &off, nullptr);
  if (!re_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw std::runtime_error("'" + where + "': bad pre-tokenizer regex at " + std::to_string(off) + ": " +
                             reinterpret_cast<char*>(msg));
  }
  pcre2_jit_compile(re_->code, PCRE2_JIT_COMPLETE);
  id_to_token_.assign(vocab_.size(), "");
  for (auto& [t, id] : vocab_) {
    if (id < 0) throw std::runtime_error("'" + where + "': negative id for '" + t + "'");
    if (size_t(id) >= id_to_token_.size()) id_to_token_.resize(size_t(id) + 1);
    id_to_token_[size_t(id)] = t;
  }
  is_added_.assign(id_to_token_.size(), false);
  for (auto& [t, id] : added_) {
    if (size_t(id) >= id_to_token_.size()) id_to_token_.resize(size_t(id) + 1), is_added_.resize(size_t(id) + 1);
    id_to_token_[size_t(id)] = t;
    is_added_[size_t(id)] = true;
  }
  std::sort(added_.begin(), added_.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
  for (const char* e : {"<|end_of_text|>", "<|endoftext|>", "</s>"})
    if (eos_ < 0) eos_ = token_id(e);
}

int32_t BpeTokenizer::token_id(const std::string& t) const {
  auto it = vocab_.find(t);
  if (it != vocab_.end()) return it->second;
  for (auto& [s, id] : added_)
    if (s == t) return id;
  return -1;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path) {
  auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': " + m); };
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(std::string("bad JSON: ") + e.what());
  }
  if (!j.contains("model") || !j["model"].is_object()) fail("no \"model\"");
  const json& m = j["model"];
  std::string mtype = m.value("type", "");
  if (mtype != "BPE") fail("unsupported tokenizer model type '" + mtype + "' (supported: byte-level BPE)");
  // The pre-tokenizer must be byte-level; its split regex (if any) is ours.
  std::string pattern = kGpt2Pattern;
  bool byte_level = false, metaspace = false;
  std::function<void(const json&)> scan = [&](const json& p) {
    if (!p.is_object()) return;
    std::string t = p.value("type", "");
    if (t == "Sequence")
      for (auto& q : p["pretokenizers"]) scan(q);
    if (t == "ByteLevel") byte_level = true;
    if (t == "Metaspace") metaspace = true;
    if (t == "Split" && p.contains("pattern") && p["pattern"].contains("Regex")) pattern = p["pattern"]["Regex"];
  };
  if (j.contains("pre_tokenizer")) scan(j["pre_tokenizer"]);
  // Older SentencePiece-style files: normalizer Sequence[Prepend("\u2581"), Replace(" ", "\u2581")]
  if (j.contains("normalizer") && j["normalizer"].is_object() && j["normalizer"].dump().find("Prepend") != std::string::npos)
    metaspace = true;
  if (!byte_level && !metaspace) fail("unsupported pre-tokenizer (supported: ByteLevel, Metaspace)");
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  try {
    for (auto& [k, v] : m.at("vocab").items()) t->vocab_[k] = v.get<int32_t>();
    int32_t rank = 0;
    for (auto& mg : m.at("merges")) {
      std::string key = mg.is_array() ? mg[0].get<std::string>() + " " + mg[1].get<std::string>() : mg.get<std::string>();
      if (t->ranks_.emplace(key, rank).second) t->merges_.push_back(key), ++rank;
    }
    t->ignore_merges_ = m.value("ignore_merges", false);
    if (j.contains("added_tokens"))
      for (auto& a : j["added_tokens"]) t->added_.push_back({a.at("content").get<std::string>(), a.at("id").get<int32_t>()});
  } catch (const json::exception& e) {
    fail(std::string("bad vocab / merges: ") + e.what());
  }
  t->metaspace_ = metaspace && !byte_level;
  t->init(pattern, path);
  if (t->metaspace_) {
    t->bos_ = t->token_id("<s>");
    t->eos_ = t->token_id("</s>");
  }
  // BOS: the first special token of a TemplateProcessing post-processor, if any (Llama-3)
  if (j.contains("post_processor") && j["post_processor"].is_object()) {
    std::function<void(const json&)> post = [&](const json& p) {
      if (p.value("type", "") == "Sequence")
        for (auto& q : p["processors"]) post(q);
      if (p.value("type", "") == "TemplateProcessing" && p.contains("single") && !p["single"].empty() &&
          p["single"][0].contains("SpecialToken"))
        t->bos_ = t->token_id(p["single"][0]["SpecialToken"]["id"].get<std::string>());
    };
    post(j["post_processor"]);
  }
  if (t->bos_ < 0) t->bos_ = t->token_id("<|begin_of_text|>");  // Llama-3 files without the template
  return t;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_gpt2_files(const std::string& enc, const std::string& merges) {
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  try {
    const json v = json::parse(read_file(enc));
    for (auto it = v.begin(); it != v.end(); ++it) t->vocab_[it.key()] = it.value().get<int32_t>();
  } catch (const json::exception& e) {
    throw std::runtime_error("'" + enc + "': bad JSON: " + e.what());
  }
  std::string text = read_file(merges);
  size_t i = 0;
  int32_t rank = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    std::string line = text.substr(i, j - i);
    i = j + 1;
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    if (line.find(' ') == std::string::npos) throw std::runtime_error("'" + merges + "': bad merge line '" + line + "'");
    if (t->ranks_.emplace(line, rank).second) t->merges_.push_back(line), ++rank;
  }
  if (t->vocab_.count("<|endoftext|>")) t->added_.push_back({"<|endoftext|>", t->vocab_["<|endoftext|>"]});
  t->init(kGpt2Pattern, enc);
  return t;
}

void BpeTokenizer::bpe(const std::string& mapped, std::vector<int32_t>& out) const {
  auto c = cache_.find(mapped);
  if (c != cache_.end()) {
    out.insert(out.end(), c->second.begin(), c->second.end());
    return;
  }
  std::vector<int32_t> ids;
  auto whole = vocab_.find(mapped);
  if (ignore_merges_ && whole != vocab_.end()) {
    ids.push_back(whole->second);
  } else {
    std::vector<std::string> sym;
    for (size_t i = 0; i < mapped.size();) {
      size_t n = utf8_len((unsigned char)mapped[i]);
      sym.push_back(mapped.substr(i, n));
      i += n;
    }
    while (sym.size() > 1) {
      int32_t best = INT32_MAX;
      size_t at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = ranks_.find(sym[i] + " " + sym[i + 1]);
        if (it != ranks_.end() && it->second < best) best = it->second, at = i;
      }
      if (best == INT32_MAX) break;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + long(at) + 1);
    }
    for (auto& s : sym) {
      auto it = vocab_.find(s);
      if (it != vocab_.end()) {
        ids.push_back(it->second);
      } else if (metaspace_) {  // byte fallback
        static const char* hex = "0123456789ABCDEF";
        for (unsigned char c : s) {
          auto b = vocab_.find(std::string("<0x") + hex[c >> 4] + hex[c & 15] + ">");
          if (b == vocab_.end()) throw std::runtime_error("bpe: no byte-fallback token for a byte of '" + s + "'");
          ids.push_back(b->second);
        }
      } else {
        throw std::runtime_error("bpe: symbol '" + s + "' not in vocabulary");
      }
    }
  }
  if (cache_.size() < 100000 && mapped.size() < 256) cache_[mapped] = ids;
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> out;
  const ByteMap& bm = byte_map();
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re_->code, nullptr);
  bool first_segment = true;
  auto encode_plain = [&](size_t b, size_t e) {
    if (metaspace_) {
      if (e > b) bpe(bpe_text(text.substr(b, e - b), first_segment), out);
      first_segment = false;
      return;
    }
    size_t pos = b;
    while (pos < e) {
      int rc = pcre2_match(re_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), e, pos, 0, md, nullptr);
      size_t ms = e, me = e;
      if (rc >= 0) {
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        ms = ov[0], me = ov[1];
        if (me == ms) me = ms + utf8_len((unsigned char)text[ms]);  // never loop on an empty match
      }
      for (auto [s0, s1] : {std::pair{pos, ms}, std::pair{ms, me}}) {  // gap (isolated), then match
        if (s1 <= s0) continue;
        std::string mapped;
        for (size_t k = s0; k < s1; ++k) mapped += bm.to_utf8[(unsigned char)text[k]];
        bpe(mapped, out);
      }
      pos = me;
    }
  };
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (auto& a : added_)
      if (text.compare(i, a.first.size(), a.first) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    encode_plain(start, i);
    out.push_back(hit->second);
    i += hit->first.size();
    start = i;
  }
  encode_plain(start, text.size());
  pcre2_match_data_free(md);
  return out;
}

std::string BpeTokenizer::bpe_text(const std::string& seg, bool) const {
  std::string s = "\xe2\x96\x81";  // prepend_scheme "always": every segment
  for (char c : seg) s += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
  return s;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  const ByteMap& bm = byte_map();
  std::string s;
  if (metaspace_) {
    for (int32_t id : ids) {
      if (id < 0 || size_t(id) >= id_to_token_.size()) throw std::out_of_range("token id " + std::to_string(id) + " outside vocab");
      const std::string& t = id_to_token_[size_t(id)];
      if (is_added_[size_t(id)]) {
        s += t;
      } else if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        s += char(std::stoi(t.substr(3, 2), nullptr, 16));
      } else {
        for (size_t i = 0; i < t.size();)
          if (t.compare(i, 3, "\xe2\x96\x81") == 0) s += ' ', i += 3;
          else s += t[i++];
      }
    }
    if (!s.empty() && s[0] == ' ') s.erase(0, 1);  // Strip(1 left)
    return s;
  }
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= id_to_token_.size()) throw std::out_of_range("token id " + std::to_string(id) + " outside vocab");
    const std::string& t = id_to_token_[size_t(id)];
    if (is_added_[size_t(id)]) {
      s += t;
      continue;
    }
    for (size_t i = 0; i < t.size();) {
      size_t n = utf8_len((unsigned char)t[i]);
      auto it = bm.from_utf8.find(t.substr(i, n));
      if (it == bm.from_utf8.end()) throw std::runtime_error("bpe: token '" + t + "' is not byte-level");
      s += char(it->second);
      i += n;
    }
  }
  return s;
}

// A Hugging Face tokenizer.json that this class (and the tokenizers library) reads back.
json BpeTokenizer::to_json() const {
  json vocab = json::object();
  for (auto& [t, id] : vocab_) vocab[t] = id;
  json added = json::array();
  for (auto& [t, id] : added_) added.push_back({{"id", id}, {"content", t}, {"special", true}, {"single_word", false},
                                                {"lstrip", false}, {"rstrip", false}, {"normalized", false}});
  json j = {{"version", "1.0"},
            {"added_tokens", added},
            {"pre_tokenizer",
             {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"}, {"pattern", {{"Regex", pattern_}}}, {"behavior", "Isolated"}, {"invert", false}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges_}, {"ignore_merges", ignore_merges_}}}};
  if (bos_ >= 0)
    j["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {{{"SpecialToken", {{"id", id_to_token_[size_t(bos_)]}, {"type_id", 0}}}}}}};
  return j;
}

}  // namespace clm
