#include "tokenizers/llama2c.h"

#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>
#include <queue>
#include <stdexcept>

#include "util/fs.h"

namespace clm {

Llama2cTokenizer Llama2cTokenizer::load(const std::string& path) {
  const std::string b = read_file(path);
  auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': " + m); };
  size_t off = 0;
  auto rd = [&](void* dst, size_t n) {
    if (n > b.size() - off) fail("truncated at byte " + std::to_string(off));
    std::memcpy(dst, b.data() + off, n);
    off += n;
  };
  int32_t max_len = 0;
  rd(&max_len, 4);
  if (max_len <= 0 || max_len > kMaxTokenLength) fail("implausible max_token_length " + std::to_string(max_len));
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (off < b.size()) {
    float s;
    int32_t len;
    rd(&s, 4);
    rd(&len, 4);
    if (len < 0 || len > max_len) fail("token " + std::to_string(pieces.size()) + " has length " + std::to_string(len));
    std::string p(size_t(len), '\0');
    rd(p.data(), size_t(len));
    pieces.push_back(std::move(p));
    scores.push_back(s);
  }
  try {
    return Llama2cTokenizer(std::move(pieces), std::move(scores), max_len);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("'" + path + "': " + e.what());
  }
}

Llama2cTokenizer::Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, int32_t max_len)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), max_len_(max_len) {
  // encode_with indexes scores_ by piece id and emits byte + 3 for bytes it cannot look up:
  // fewer scores or fewer than 259 pieces would read past the end of the vectors.
  if (scores_.size() != pieces_.size())
    throw std::invalid_argument("pieces_hex has " + std::to_string(pieces_.size()) + " entries but scores has " +
                                std::to_string(scores_.size()));
  if (pieces_.size() < 259)
    throw std::invalid_argument("only " + std::to_string(pieces_.size()) + " tokens (need <unk>, <s>, </s> and 256 bytes)");
  if (max_len_ <= 0 || max_len_ > kMaxTokenLength)
    throw std::invalid_argument("implausible max_token_length " + std::to_string(max_len_));
  for (size_t i = 0; i < pieces_.size(); ++i)
    if (pieces_[i].size() > size_t(max_len_))  // run.c sizes its merge buffer by max_token_length
      throw std::invalid_argument("token " + std::to_string(i) + " has " + std::to_string(pieces_[i].size()) +
                                  " bytes, more than max_token_length " + std::to_string(max_len_));
  for (size_t i = 0; i < pieces_.size(); ++i) index_.emplace(pieces_[i], int32_t(i));  // first wins
}

std::vector<int32_t> Llama2cTokenizer::encode_with(const std::string& text, bool bos, bool eos) const {
  std::vector<int32_t> ids;
  if (bos) ids.push_back(bos_id());
  if (!text.empty()) {
    auto sp = index_.find(" ");
    if (sp != index_.end()) ids.push_back(sp->second);
  }
  // code points -> pieces, with byte fallback
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    unsigned char c = (unsigned char)text[i];
    if (c >= 0xC0) {
      while (n < 4 && i + n < text.size() && ((unsigned char)text[i + n] & 0xC0) == 0x80) ++n;
    }
    auto it = index_.find(text.substr(i, n));
    if (it != index_.end()) {
      ids.push_back(it->second);
    } else {
      for (size_t k = 0; k < n; ++k) ids.push_back(int32_t((unsigned char)text[i + k]) + 3);
    }
    i += n;
  }
  // Greedy merges by score, as run.c: repeatedly merge the adjacent pair whose merged piece scores
  // highest (the leftmost on ties). A priority queue over a linked list gives the same merges in
  // O(n log n) instead of run.c's O(n^2) rescans (a 30 KB text took 16 s).
  const size_t first = bos ? 1 : 0;
  const size_t n = ids.size();
  std::vector<size_t> prev(n), next(n);
  std::vector<char> live(n, 1);
  for (size_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1;  // prev[0] wraps: never read
  struct Cand {
    float score;
    size_t left, right;
    int32_t lid, rid, merged;
    bool operator<(const Cand& o) const { return score < o.score || (score == o.score && left > o.left); }
  };
  std::priority_queue<Cand> pq;
  std::string buf;
  auto push = [&](size_t l, size_t r) {
    buf = pieces_[ids[l]] + pieces_[ids[r]];
    auto it = index_.find(buf);
    if (it != index_.end() && scores_[it->second] > -1e10f) pq.push({scores_[it->second], l, r, ids[l], ids[r], it->second});
  };
  for (size_t i = first; i + 1 < n; ++i) push(i, i + 1);
  while (!pq.empty()) {
    const Cand c = pq.top();
    pq.pop();
    if (!live[c.left] || !live[c.right] || next[c.left] != c.right || ids[c.left] != c.lid || ids[c.right] != c.rid) continue;
    ids[c.left] = c.merged;
    live[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.right] < n) prev[next[c.right]] = c.left;
    if (c.left > first) push(prev[c.left], c.left);
    if (next[c.left] < n) push(c.left, next[c.left]);
  }
  size_t w = 0;
  for (size_t i = 0; i < n; ++i)
    if (live[i]) ids[w++] = ids[i];
  ids.resize(w);
  if (eos) ids.push_back(eos_id());
  return ids;
}

std::string Llama2cTokenizer::decode_next(int32_t prev, int32_t id) const {
  if (id < 0 || id >= (int32_t)pieces_.size()) throw std::out_of_range("token id " + std::to_string(id) + " outside vocab");
  std::string p = pieces_[id];
  if (prev == bos_id() && !p.empty() && p[0] == ' ') p.erase(0, 1);
  if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::isxdigit((unsigned char)p[3]) &&
      std::isxdigit((unsigned char)p[4]))
    p = std::string(1, char(std::stoi(p.substr(3, 2), nullptr, 16)));
  if (p.size() == 1 && !std::isprint((unsigned char)p[0]) && !std::isspace((unsigned char)p[0])) return "";
  return p;
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  int32_t prev = -1;
  for (int32_t id : ids) {
    if (id != bos_id()) s += decode_next(prev, id);
    prev = id;
  }
  return s;
}

nlohmann::json Llama2cTokenizer::to_json() const {
  static const char* hex = "0123456789abcdef";
  std::vector<std::string> h;
  for (auto& p : pieces_) {
    std::string x;
    for (unsigned char c : p) x += hex[c >> 4], x += hex[c & 15];
    h.push_back(x);
  }
  return {{"type", "llama2c"}, {"max_token_length", max_len_}, {"scores", scores_}, {"pieces_hex", h}};
}

}  // namespace clm
