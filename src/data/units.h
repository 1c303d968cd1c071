// Semantic / subword units of words, for SEE embeddings (nn/see.cpp reads the file `clm units`
// writes: one "word<TAB>unit unit ..." line per vocabulary word, units in priority order; the
// model takes the first `order` of them). The rules are in docs/METHODS.md "Compact embeddings".
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace clm {

// WordNet 3.0 database files (Debian's wordnet-base: /usr/share/wordnet): index.*, data.*, *.exc.
class WordNet {
 public:
  explicit WordNet(const std::string& dir);  // throws a one-line error when the files are missing
  struct Sense {
    char pos = 0;          // n v a r
    std::string synset;    // "n08058098": the first (most frequent) sense of the base form
    std::string hypernym;  // its first hypernym ("@" or "@i"), "" if none
    int lexfile = -1;      // lexicographer file number (noun.group = 14, ...)
    std::string inflection;  // "" when the word is its own base form, else the rule ("-s", "-ies+y", "exc")
  };
  // The word's sense: base forms by WordNet's exception lists and detachment rules (morphy), the
  // part of speech whose entry has the most tagged senses; false when WordNet has no entry.
  bool lookup(const std::string& word, Sense& out) const;

 private:
  struct Entry {
    int tagged = 0;
    std::string first_offset;
  };
  std::unordered_map<std::string, Entry> index_[4];               // n v a r: lemma -> entry
  std::unordered_map<std::string, std::string> exc_[4];           // inflected -> base
  std::string dir_;
  mutable std::unordered_map<std::string, std::pair<std::string, int>> data_cache_;  // "n<offset>" -> hypernym, lexfile
  mutable std::string data_[4];  // data.noun, ... read on first use
  std::pair<std::string, int> synset_info(char pos, const std::string& offset) const;
};

// Byte-pair merges learned on a word-frequency table (an end-of-word marker "</w>" on each word).
class SubwordUnits {
 public:
  SubwordUnits(const std::unordered_map<std::string, int64_t>& word_counts, int64_t merges);
  std::vector<std::string> pieces(const std::string& word) const;  // "</w>" kept on the last piece
  int64_t merges() const { return int64_t(rank_.size()); }

 private:
  std::unordered_map<std::string, int64_t> rank_;  // "a\x1fb" -> merge rank
};

struct UnitStats {
  int64_t words = 0, covered = 0;  // covered: the source itself gave units (not the subword fallback)
  int64_t distinct_units = 0, distinct_tuples = 0;  // tuples of the first `order` units
};

// Units of every word: "hash" (none: the model hashes), "subword", or "wordnet" (WordNet units
// followed by subword pieces). `counts` are the words' training-split frequencies.
std::vector<std::vector<std::string>> word_units(const std::vector<std::string>& words,
                                                 const std::unordered_map<std::string, int64_t>& counts,
                                                 const std::string& source, const std::string& wordnet_dir, int64_t merges,
                                                 int64_t order, UnitStats& stats);

}  // namespace clm
