#include "data/units.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "util/fs.h"

namespace clm {

namespace {
// Whole-number fields of WordNet's text files, bounded: a corrupt file gives a one-line error.
int64_t wn_int(const std::string& tok, int base, const std::string& file, int64_t max = 1 << 24) {
  size_t used = 0;
  int64_t v = -1;
  try {
    v = std::stoll(tok, &used, base);
  } catch (const std::exception&) {
  }
  if (used != tok.size() || v < 0 || v > max) throw std::runtime_error("WordNet '" + file + "': bad number '" + tok.substr(0, 20) + "'");
  return v;
}
const char kPos[4] = {'n', 'v', 'a', 'r'};
const char* kPosFile[4] = {"noun", "verb", "adj", "adv"};

// WordNet's detachment rules (morphy): suffix -> ending of the base form.
const std::vector<std::pair<std::string, std::string>> kRules[4] = {
    {{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}},
    {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
    {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}},
    {}};
}  // namespace

WordNet::WordNet(const std::string& dir) : dir_(dir) {
  for (int p = 0; p < 4; ++p) {
    const std::string path = dir + "/index." + kPosFile[p];
    std::string text;
    try {
      text = read_file(path);
    } catch (const std::exception&) {
      throw std::runtime_error("WordNet not found: cannot read '" + path +
                               "' (install Debian's wordnet-base, or give --wordnet DIR with index.noun, data.noun, ...)");
    }
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == ' ') continue;  // the license header
      std::istringstream ls(line);
      std::string lemma, pos, n_syn, n_ptr, skip, n_sense, n_tag, first;
      ls >> lemma >> pos >> n_syn >> n_ptr;
      const int64_t pointers = ls ? wn_int(n_ptr, 10, path, 1000) : 0;
      for (int64_t i = 0; i < pointers && ls; ++i) ls >> skip;
      ls >> n_sense >> n_tag >> first;
      if (!ls || wn_int(n_syn, 10, path) < 1) throw std::runtime_error("'" + path + "': malformed line '" + line.substr(0, 60) + "'");
      wn_int(first, 10, path, int64_t(1) << 40);  // a byte offset into data.*
      index_[p][lemma] = {int(wn_int(n_tag, 10, path)), first};
    }
    try {
      std::istringstream ex(read_file(dir + "/" + kPosFile[p] + ".exc"));
      while (std::getline(ex, line)) {
        std::istringstream ls(line);
        std::string infl, base;
        if (ls >> infl >> base) exc_[p].emplace(infl, base);
      }
    } catch (const std::exception&) {
      throw std::runtime_error("WordNet incomplete: cannot read '" + dir + "/" + kPosFile[p] + ".exc'");
    }
  }
}

std::pair<std::string, int> WordNet::synset_info(char pos, const std::string& offset) const {
  const std::string key = std::string(1, pos) + offset;
  if (auto it = data_cache_.find(key); it != data_cache_.end()) return it->second;
  int p = int(std::find(kPos, kPos + 4, pos) - kPos);
  // data files are indexed by byte offset: the synset's line starts at `offset`
  const std::string file = dir_ + "/data." + kPosFile[p];
  std::string& data = data_[p];
  if (data.empty()) data = read_file(file);
  const size_t at = size_t(wn_int(offset, 10, file, int64_t(1) << 40));
  if (at >= data.size()) throw std::runtime_error("WordNet '" + file + "': offset " + offset + " out of range");
  std::istringstream ls(data.substr(at, data.find('\n', at) - at));
  std::string off, lexfile, type, wcnt_hex, n_ptr, skip;
  ls >> off >> lexfile >> type >> wcnt_hex;
  if (!ls || off != offset) throw std::runtime_error("WordNet '" + file + "': no synset at offset " + offset);
  const int64_t words = wn_int(wcnt_hex, 16, file, 255);
  for (int64_t i = 0; i < 2 * words && ls; ++i) ls >> skip;
  ls >> n_ptr;
  const int64_t pointers = ls ? wn_int(n_ptr, 10, file, 9999) : 0;
  std::string hyper;
  for (int64_t i = 0; i < pointers && ls; ++i) {
    std::string sym, target, tpos, st;
    ls >> sym >> target >> tpos >> st;
    if (hyper.empty() && (sym == "@" || sym == "@i") && !tpos.empty()) hyper = tpos.substr(0, 1) + target;
  }
  return data_cache_[key] = {hyper, int(wn_int(lexfile, 10, file, 99))};
}

bool WordNet::lookup(const std::string& word, Sense& out) const {
  std::string w = word;
  std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  int best = -1, best_tagged = -1;
  std::string best_base, best_rule;
  for (int p = 0; p < 4; ++p) {
    std::vector<std::pair<std::string, std::string>> cands{{w, ""}};  // base, rule
    if (auto e = exc_[p].find(w); e != exc_[p].end()) cands.push_back({e->second, "exc"});
    for (auto& [suf, end] : kRules[p])
      if (w.size() > suf.size() && w.compare(w.size() - suf.size(), suf.size(), suf) == 0)
        cands.push_back({w.substr(0, w.size() - suf.size()) + end, "-" + suf + (end.empty() ? "" : "+" + end)});
    for (auto& [base, rule] : cands) {
      auto it = index_[p].find(base);
      if (it == index_[p].end()) continue;
      if (it->second.tagged > best_tagged) best = p, best_tagged = it->second.tagged, best_base = base, best_rule = rule;
      break;  // the first base form that exists, per part of speech
    }
  }
  if (best < 0) return false;
  out.pos = kPos[best];
  const std::string& off = index_[best].at(best_base).first_offset;
  out.synset = std::string(1, out.pos) + off;
  auto [hyper, lex] = synset_info(out.pos, off);
  out.hypernym = hyper;
  out.lexfile = lex;
  out.inflection = best_rule;
  return true;
}

SubwordUnits::SubwordUnits(const std::unordered_map<std::string, int64_t>& word_counts, int64_t merges) {
  // words as symbol sequences; merges counted over word types weighted by frequency
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  std::vector<std::string> sorted;
  for (auto& [w, _] : word_counts) sorted.push_back(w);
  std::sort(sorted.begin(), sorted.end());  // deterministic
  for (auto& w : sorted) {
    std::vector<std::string> s;
    for (char c : w) s.push_back(std::string(1, c));
    if (s.empty()) continue;
    s.back() += "</w>";
    words.push_back({s, word_counts.at(w)});
  }
  std::unordered_map<std::string, int64_t> pairs;  // "a\x1fb" -> count, updated per merge
  for (auto& [s, c] : words)
    for (size_t i = 0; i + 1 < s.size(); ++i) pairs[s[i] + '\x1f' + s[i + 1]] += c;
  for (int64_t m = 0; m < merges; ++m) {
    const std::pair<const std::string, int64_t>* best = nullptr;
    for (auto& kv : pairs)  // the most frequent pair; ties: the smallest key (deterministic)
      if (kv.second > 0 && (!best || kv.second > best->second || (kv.second == best->second && kv.first < best->first))) best = &kv;
    if (!best || best->second < 2) break;
    const std::string key = best->first;
    const size_t sep = key.find('\x1f');
    const std::string a = key.substr(0, sep), b = key.substr(sep + 1);
    rank_[key] = m;
    for (auto& [s, c] : words) {
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) pairs[s[i] + '\x1f' + s[i + 1]] -= c;  // this word's pairs, recounted below
      std::vector<std::string> t;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          t.push_back(a + b);
          ++i;
        } else {
          t.push_back(s[i]);
        }
      }
      s.swap(t);
      for (size_t i = 0; i + 1 < s.size(); ++i) pairs[s[i] + '\x1f' + s[i + 1]] += c;
    }
  }
}

std::vector<std::string> SubwordUnits::pieces(const std::string& word) const {
  std::vector<std::string> s;
  for (char c : word) s.push_back(std::string(1, c));
  if (s.empty()) return s;
  s.back() += "</w>";
  for (;;) {  // apply the lowest-ranked merge present, as learned
    int64_t best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i)
      if (auto it = rank_.find(s[i] + '\x1f' + s[i + 1]); it != rank_.end() && (best < 0 || it->second < best)) best = it->second, at = i;
    if (best < 0) return s;
    s[at] += s[at + 1];
    s.erase(s.begin() + std::ptrdiff_t(at) + 1);
  }
}

std::vector<std::vector<std::string>> word_units(const std::vector<std::string>& words,
                                                 const std::unordered_map<std::string, int64_t>& counts,
                                                 const std::string& source, const std::string& wordnet_dir, int64_t merges,
                                                 int64_t order, UnitStats& stats) {
  if (source != "hash" && source != "subword" && source != "wordnet")
    throw std::invalid_argument("--source '" + source + "': must be hash | subword | wordnet");
  if (order < 1) throw std::invalid_argument("--order must be >= 1");
  std::vector<std::vector<std::string>> units(words.size());
  stats = {};
  stats.words = int64_t(words.size());
  std::unique_ptr<WordNet> wn;
  if (source == "wordnet") wn = std::make_unique<WordNet>(wordnet_dir);
  std::unique_ptr<SubwordUnits> sw;
  if (source != "hash") sw = std::make_unique<SubwordUnits>(counts, merges);
  for (size_t v = 0; v < words.size(); ++v) {
    auto& u = units[v];
    if (source == "hash") {
      for (int64_t j = 0; j < order; ++j) u.push_back("h" + std::to_string(j) + ":" + words[v]);
      ++stats.covered;
      continue;
    }
    WordNet::Sense s;
    if (wn && wn->lookup(words[v], s)) {
      ++stats.covered;
      u.push_back("syn:" + s.synset);
      if (!s.inflection.empty()) u.push_back("inf:" + std::string(1, s.pos) + s.inflection);
      if (!s.hypernym.empty()) u.push_back("hyp:" + s.hypernym);
      u.push_back("lex:" + std::to_string(s.lexfile));
    } else if (source == "subword") {
      ++stats.covered;
    }
    for (auto& p : sw->pieces(words[v])) u.push_back("sw:" + p);
  }
  std::set<std::string> distinct;
  std::set<std::vector<std::string>> tuples;
  for (auto& u : units) {
    std::vector<std::string> head(u.begin(), u.begin() + std::ptrdiff_t(std::min<size_t>(u.size(), size_t(order))));
    distinct.insert(head.begin(), head.end());
    tuples.insert(head);
  }
  stats.distinct_units = int64_t(distinct.size());
  stats.distinct_tuples = int64_t(tuples.size());
  return units;
}

}  // namespace clm
