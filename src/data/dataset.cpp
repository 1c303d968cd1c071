#include "data/dataset.h"

#include <stdexcept>

namespace clm {

const std::vector<int32_t>& Dataset::split(const std::string& s) const {
  if (s == "train") return train;
  if (s == "valid") return valid;
  if (s == "test") return test;
  throw std::invalid_argument("unknown split '" + s + "' (train, valid, test)");
}

Dataset make_dataset(const TextSplits& text, const std::string& kind, int64_t max_vocab,
                     std::shared_ptr<Tokenizer> existing) {
  Dataset d;
  d.name = text.name;
  if (existing)
    d.tok = std::move(existing);
  else if (kind == "word")
    d.tok = std::make_shared<WordTokenizer>(WordTokenizer::fit(text.train, max_vocab));
  else if (kind == "byte")
    d.tok = std::make_shared<ByteTokenizer>();
  else
    throw std::invalid_argument("unknown tokenizer '" + kind + "' (word, byte)");
  d.train = d.tok->encode(text.train);
  d.valid = d.tok->encode(text.valid);
  d.test = d.tok->encode(text.test);
  return d;
}

}  // namespace clm
