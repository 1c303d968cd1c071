#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizers/bpe.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <mutex>
#include <queue>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/fs.h"
#include "util/json_int.h"

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

struct BpeTokenizer::Cache {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>> map;
};

BpeTokenizer::BpeTokenizer() : cache_(std::make_unique<Cache>()) {}
BpeTokenizer::~BpeTokenizer() = default;

namespace {
uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
}  // namespace

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
  // ids index a dense table: real files number their tokens 0..n-1, give or take a few unused ids;
  // one id of 2e9 would allocate 64 GB (found by fuzz/fuzz_gpt2).
  const size_t id_limit = vocab_.size() + added_.size() + 65536;
  auto check_id = [&](int32_t id, const std::string& t) {
    if (size_t(id) >= id_limit)
      throw std::runtime_error("'" + where + "': id " + std::to_string(id) + " of '" + shorten(t) + "' is far above the " +
                               std::to_string(vocab_.size() + added_.size()) + " tokens");
  };
  for (auto& [t, id] : vocab_) {
    if (id < 0) throw std::runtime_error("'" + where + "': negative id for '" + t + "'");
    check_id(id, t);
    if (size_t(id) >= id_to_token_.size()) id_to_token_.resize(size_t(id) + 1);
    id_to_token_[size_t(id)] = t;
  }
  is_added_.assign(id_to_token_.size(), false);
  for (auto& [t, id] : added_) {
    if (id < 0) throw std::runtime_error("'" + where + "': negative id for added token '" + t + "'");
    check_id(id, t);
    if (size_t(id) >= id_to_token_.size()) id_to_token_.resize(size_t(id) + 1), is_added_.resize(size_t(id) + 1);
    id_to_token_[size_t(id)] = t;
    is_added_[size_t(id)] = true;
  }
  std::erase_if(added_, [](auto& a) { return a.first.empty(); });  // (can never be matched)
  std::sort(added_.begin(), added_.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
  added_first_.fill(false);
  for (auto& [t, id] : added_)
    if (!t.empty()) added_first_[(unsigned char)t[0]] = true;
  for (const char* e : {"<|end_of_text|>", "<|endoftext|>", "</s>"})
    if (eos_ < 0) eos_ = token_id(e);
  // merges -> (left id, right id) -> (rank = list index, merged id). As in Hugging Face's library,
  // every part must be a token and a repeated merge takes its last index.
  for (size_t r = 0; r < merges_.size(); ++r) {
    const auto& [a, b] = merges_[r];
    auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
      throw std::runtime_error("'" + where + "': merge '" + a + " " + b + "' uses or makes a token outside the vocabulary");
    merge_of_pair_[pair_key(ia->second, ib->second)] = {int32_t(r), im->second};
  }
}

int32_t BpeTokenizer::token_id(const std::string& t) const {
  auto it = vocab_.find(t);
  if (it != vocab_.end()) return it->second;
  for (auto& [s, id] : added_)
    if (s == t) return id;
  return -1;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw std::runtime_error("'" + path + "': bad JSON: " + e.what());
  }
  return from_json(j, path);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_json(const json& j, const std::string& path) {
  auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': " + m); };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("no \"model\"");
  const json& m = j["model"];
  std::string mtype = m.value("type", "");
  if (mtype != "BPE") fail("unsupported tokenizer model type '" + mtype + "' (supported: BPE)");
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  // Sequences nest, and the JSON parser takes any depth without recursing: a hostile file nesting
  // them 100,000 deep would overflow the stack of the recursive walks below. Real files nest 1-2.
  constexpr int kMaxNesting = 64;
  auto too_deep = [&](int depth, const char* what) {
    if (depth > kMaxNesting) fail(std::string(what) + " Sequences nested deeper than " + std::to_string(kMaxNesting));
  };
  // (The walks take lists by reference: json::value() would copy the whole nested subtree, recursively.)
  // The normalizer: Unicode forms, and SentencePiece's Prepend("\u2581") + Replace(" ", "\u2581").
  bool replace_spaces = false;
  std::function<void(const json&, int)> norm = [&](const json& n, int depth) {
    too_deep(depth, "normalizer");
    if (n.is_null()) return;
    const std::string type = n.is_object() ? n.value("type", "") : "";
    if (type == "Sequence") {
      if (auto q = n.find("normalizers"); q != n.end())
        for (auto& x : *q) norm(x, depth + 1);
    } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
      t->unicode_form_ = type;
    } else if (type == "Prepend" && n.value("prepend", "") == "\xe2\x96\x81") {
      t->prepend_ = Prepend::normalizer;
    } else if (type == "Replace" && n.contains("pattern") && n["pattern"].value("String", "") == " " &&
               n.value("content", "") == "\xe2\x96\x81") {
      replace_spaces = true;
    } else {
      fail("unsupported normalizer '" + (type.empty() ? std::string(n.type_name()) : shorten(type)) + "'");
    }
  };
  if (j.contains("normalizer")) norm(j["normalizer"], 0);
  // The pre-tokenizer: byte-level (its split regex, if any, is ours) or Metaspace.
  std::string pattern = kGpt2Pattern;
  bool byte_level = false, metaspace = replace_spaces;
  std::function<void(const json&, int)> scan = [&](const json& p, int depth) {
    too_deep(depth, "pre_tokenizer");
    if (!p.is_object()) return;
    std::string type = p.value("type", "");
    if (auto q = p.find("pretokenizers"); type == "Sequence" && q != p.end())
      for (auto& x : *q) scan(x, depth + 1);
    if (type == "ByteLevel") byte_level = true;
    if (type == "Metaspace") {
      metaspace = true;
      const std::string scheme = p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
      t->prepend_ = scheme == "first" ? Prepend::first : scheme == "never" ? Prepend::never : Prepend::always;
      t->metaspace_split_ = p.value("split", true);
    }
    if (type == "Split" && p.contains("pattern") && p["pattern"].contains("Regex")) pattern = p["pattern"]["Regex"];
  };
  if (j.contains("pre_tokenizer")) scan(j["pre_tokenizer"], 0);
  if (!byte_level && !metaspace) fail("unsupported pre-tokenizer (supported: ByteLevel, Metaspace)");
  try {
    auto id_of = [&](const json& v, const std::string& token) {  // (get<int32_t> would convert 1e300 with undefined behaviour)
      const auto id = json_int<int32_t>(v);
      if (!id) fail("the id of '" + shorten(token) + "' is not a 32-bit integer");
      return *id;
    };
    for (auto& [k, v] : m.at("vocab").items()) t->vocab_[k] = id_of(v, k);
    for (auto& mg : m.at("merges")) {
      if (mg.is_array()) {
        t->merges_.push_back({mg.at(0).get<std::string>(), mg.at(1).get<std::string>()});
      } else {
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) fail("bad merge '" + s + "'");
        t->merges_.push_back({s.substr(0, sp), s.substr(sp + 1)});
      }
    }
    t->ignore_merges_ = m.value("ignore_merges", false);
    if (j.contains("added_tokens"))
      for (auto& a : j["added_tokens"]) {
        std::string content = a.at("content").get<std::string>();
        const int32_t id = id_of(a.at("id"), content);
        t->added_.push_back({std::move(content), id});
      }
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
    std::function<void(const json&, int)> post = [&](const json& p, int depth) {
      too_deep(depth, "post_processor");
      if (!p.is_object()) return;
      if (auto q = p.find("processors"); p.value("type", "") == "Sequence" && q != p.end())
        for (auto& x : *q) post(x, depth + 1);
      if (p.value("type", "") != "TemplateProcessing") return;
      // "single": [{"SpecialToken": {"id": "<bos>", ...}}, ...]; anything else is ignored, never indexed blindly
      const auto single = p.find("single");
      if (single == p.end() || !single->is_array() || single->empty() || !(*single)[0].is_object()) return;
      const auto special = (*single)[0].find("SpecialToken");
      if (special == (*single)[0].end() || !special->is_object()) return;
      const auto id = special->find("id");
      if (id != special->end() && id->is_string()) t->bos_ = t->token_id(id->get<std::string>());
    };
    post(j["post_processor"], 0);
  }
  if (t->bos_ < 0) t->bos_ = t->token_id("<|begin_of_text|>");  // Llama-3 files without the template
  return t;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_gpt2_files(const std::string& enc, const std::string& merges) {
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  try {
    const json v = json::parse(read_file(enc));
    for (auto it = v.begin(); it != v.end(); ++it) {
      const auto id = json_int<int32_t>(it.value());  // (get<int32_t> would convert 1e300 with undefined behaviour)
      if (!id) throw std::runtime_error("'" + enc + "': the id of '" + shorten(it.key()) + "' is not a 32-bit integer");
      t->vocab_[it.key()] = *id;
    }
  } catch (const json::exception& e) {
    throw std::runtime_error("'" + enc + "': bad JSON: " + e.what());
  }
  const std::string text = read_file(merges);
  for (std::string_view line : split_lines(text)) {
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) throw std::runtime_error("'" + merges + "': bad merge line '" + std::string(line) + "'");
    t->merges_.push_back({std::string(line.substr(0, sp)), std::string(line.substr(sp + 1))});
  }
  if (t->vocab_.count("<|endoftext|>")) t->added_.push_back({"<|endoftext|>", t->vocab_["<|endoftext|>"]});
  t->init(kGpt2Pattern, enc);
  return t;
}

void BpeTokenizer::bpe(const std::string& mapped, std::vector<int32_t>& out) const {
  const bool cacheable = mapped.size() < 256;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto c = cache_->map.find(mapped);
    if (c != cache_->map.end()) {
      out.insert(out.end(), c->second.begin(), c->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  auto whole = vocab_.find(mapped);
  if (ignore_merges_ && whole != vocab_.end()) {
    ids.push_back(whole->second);
  } else {
    // symbols: one per character; -1 for characters outside the vocabulary (they never merge)
    std::vector<int32_t> id;
    std::vector<size_t> start;
    for (size_t i = 0; i < mapped.size();) {
      const size_t n = std::min(utf8_len((unsigned char)mapped[i]), mapped.size() - i);
      auto it = vocab_.find(mapped.substr(i, n));
      id.push_back(it == vocab_.end() ? -1 : it->second);
      start.push_back(i);
      i += n;
    }
    start.push_back(mapped.size());
    const int n = int(id.size());
    std::vector<int> next(static_cast<size_t>(n)), prev(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) next[size_t(i)] = i + 1 < n ? i + 1 : -1, prev[size_t(i)] = i - 1;
    struct Cand {
      int32_t rank;
      int pos;  // left symbol; stable, so (rank, pos) orders ties leftmost-first
      int32_t left, right;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto consider = [&](int a) {
      if (a < 0 || next[size_t(a)] < 0) return;
      const int32_t l = id[size_t(a)], r = id[size_t(next[size_t(a)])];
      if (l < 0 || r < 0) return;
      auto it = merge_of_pair_.find(pair_key(l, r));
      if (it != merge_of_pair_.end()) heap.push({it->second.first, a, l, r});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      const int b = next[size_t(c.pos)];
      if (id[size_t(c.pos)] != c.left || b < 0 || id[size_t(b)] != c.right) continue;  // stale
      id[size_t(c.pos)] = merge_of_pair_.at(pair_key(c.left, c.right)).second;
      id[size_t(b)] = -2;  // dead
      next[size_t(c.pos)] = next[size_t(b)];
      if (next[size_t(b)] >= 0) prev[size_t(next[size_t(b)])] = c.pos;
      consider(prev[size_t(c.pos)]);
      consider(c.pos);
    }
    for (int i = 0; i >= 0 && i < n; i = next[size_t(i)]) {
      if (id[size_t(i)] >= 0) {
        ids.push_back(id[size_t(i)]);
        continue;
      }
      const std::string s = mapped.substr(start[size_t(i)], start[size_t(i) + 1] - start[size_t(i)]);
      if (!metaspace_) throw std::runtime_error("bpe: symbol '" + s + "' not in vocabulary");
      static const char* hex = "0123456789ABCDEF";
      for (unsigned char ch : s) {  // byte fallback
        auto b = vocab_.find(std::string("<0x") + hex[ch >> 4] + hex[ch & 15] + ">");
        if (b == vocab_.end()) throw std::runtime_error("bpe: no byte-fallback token for a byte of '" + s + "'");
        ids.push_back(b->second);
      }
    }
  }
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mu);
    if (cache_->map.size() < 100000) cache_->map[mapped] = ids;
  }
  out.insert(out.end(), ids.begin(), ids.end());
}

std::string BpeTokenizer::normalize(const std::string& text) const {
  if (unicode_form_.empty() || text.empty()) return text;
  int opts = UTF8PROC_STABLE | (unicode_form_[2] == 'K' || unicode_form_.size() == 4 ? UTF8PROC_COMPAT : 0);
  opts |= unicode_form_.back() == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), utf8proc_ssize_t(text.size()),
                                          &out, utf8proc_option_t(opts));
  if (n < 0) return text;  // invalid UTF-8: Hugging Face's library would have refused it; keep the bytes
  std::string r(reinterpret_cast<char*>(out), size_t(n));
  std::free(out);
  return r;
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> out;
  const ByteMap& bm = byte_map();
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md_owner(
      pcre2_match_data_create_from_pattern(re_->code, nullptr), &pcre2_match_data_free);
  pcre2_match_data* md = md_owner.get();
  auto encode_plain = [&](size_t b0, size_t e0) {
    if (e0 <= b0) return;
    const std::string src = normalize(text.substr(b0, e0 - b0));
    if (metaspace_) {
      const std::string m = metaspace_text(src, b0 == 0);
      if (!metaspace_split_) return bpe(m, out);
      for (size_t i = 0; i < m.size();) {  // pieces begin at each U+2581
        size_t j = m.find("\xe2\x96\x81", i + 1);
        if (j == std::string::npos) j = m.size();
        bpe(m.substr(i, j - i), out);
        i = j;
      }
      return;
    }
    const size_t e = src.size();
    size_t pos = 0;
    // PCRE2 validates the whole subject's UTF-8 on every call unless told not to: check once
    // (invalid UTF-8 fails the first match and the rest becomes one byte-mapped piece).
    uint32_t opts = 0;
    while (pos < e) {
      int rc = pcre2_match(re_->code, reinterpret_cast<PCRE2_SPTR>(src.data()), e, pos, opts, md, nullptr);
      opts = PCRE2_NO_UTF_CHECK;
      size_t ms = e, me = e;
      if (rc >= 0) {
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        ms = ov[0], me = ov[1];
        if (me == ms) me = std::min(e, ms + utf8_len((unsigned char)src[ms]));  // never loop on an empty match
      }
      for (auto [s0, s1] : {std::pair{pos, ms}, std::pair{ms, me}}) {  // gap (isolated), then match
        if (s1 <= s0) continue;
        std::string mapped;
        for (size_t k = s0; k < s1; ++k) mapped += bm.to_utf8[(unsigned char)src[k]];
        bpe(mapped, out);
      }
      pos = me;
    }
  };
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    if (added_first_[(unsigned char)text[i]])  // most bytes cannot start an added token
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
  return out;
}

std::string BpeTokenizer::prepend_scheme() const {
  return prepend_ == Prepend::first ? "first" : prepend_ == Prepend::never ? "never" : "always";
}

std::string BpeTokenizer::metaspace_text(const std::string& seg, bool at_start) const {
  static const std::string kSpace = "\xe2\x96\x81";
  std::string s;
  for (char c : seg) s += c == ' ' ? kSpace : std::string(1, c);
  const bool has = s.compare(0, kSpace.size(), kSpace) == 0;
  if (prepend_ == Prepend::normalizer || (prepend_ == Prepend::always && !has) || (prepend_ == Prepend::first && at_start && !has))
    s = kSpace + s;
  return s;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const { return decode_pieces(ids, true); }

std::string BpeTokenizer::decode_next(int32_t prev, int32_t id) const {
  return decode_pieces({id}, prev < 0 || (prev == bos_ && bos_ >= 0));
}

std::string BpeTokenizer::decode_pieces(const std::vector<int32_t>& ids, bool strip_first_space) const {
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
    if (strip_first_space && !s.empty() && s[0] == ' ') s.erase(0, 1);  // Strip(1 left)
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

// A Hugging Face tokenizer.json that this class, and Hugging Face's library, read back to the same
// ids (tests/test_bpe.cpp; the library's reading is checked by tools/make_tokenizer_fixtures.py).
json BpeTokenizer::to_json() const {
  json vocab = json::object();
  for (auto& [t, id] : vocab_) vocab[t] = id;
  json added = json::array();  // in id order: Hugging Face's library gives ids to tokens outside the vocab in list order
  auto by_id = added_;
  std::sort(by_id.begin(), by_id.end(), [](auto& a, auto& b) { return a.second < b.second; });
  for (auto& [t, id] : by_id) added.push_back({{"id", id}, {"content", t}, {"special", true}, {"single_word", false},
                                                {"lstrip", false}, {"rstrip", false}, {"normalized", false}});
  json merges = json::array();
  for (auto& [a, b] : merges_) merges.push_back({a, b});
  json normalizers = json::array();
  if (!unicode_form_.empty()) normalizers.push_back({{"type", unicode_form_}});
  json j = {{"version", "1.0"}, {"added_tokens", added}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr}};
  json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", ignore_merges_}};
  const json space_to_meta = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xe2\x96\x81"}};
  if (metaspace_) {
    if (prepend_ == Prepend::always || prepend_ == Prepend::first || metaspace_split_) {
      j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xe2\x96\x81"},
                            {"prepend_scheme", prepend_ == Prepend::first ? "first" : prepend_ == Prepend::always ? "always" : "never"},
                            {"split", metaspace_split_}};
    } else {
      if (prepend_ == Prepend::normalizer) normalizers.push_back({{"type", "Prepend"}, {"prepend", "\xe2\x96\x81"}});
      normalizers.push_back(space_to_meta);
    }
    j["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", "\xe2\x96\x81"}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
    model["byte_fallback"] = true;
    model["fuse_unk"] = true;
    if (vocab_.count("<unk>")) model["unk_token"] = "<unk>";
  } else {
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pattern_}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
    j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
  }
  if (normalizers.size() == 1) j["normalizer"] = normalizers[0];
  if (normalizers.size() > 1) j["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
  j["model"] = model;
  if (bos_ >= 0) {  // BOS, then the text
    const std::string b = id_to_token_[size_t(bos_)];
    const json bos = {{"SpecialToken", {{"id", b}, {"type_id", 0}}}};
    auto seq = [](const char* id, int type) { return json{{"Sequence", {{"id", id}, {"type_id", type}}}}; };
    j["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {bos, seq("A", 0)}},
                           {"pair", {bos, seq("A", 0), bos, seq("B", 1)}},
                           {"special_tokens", {{b, {{"id", b}, {"ids", {bos_}}, {"tokens", {b}}}}}}};
  }
  return j;
}

}  // namespace clm
