// clm units: the semantic / subword units of a corpus's vocabulary, for SEE embeddings
// (clm train --embedding see --embedding-opt units=FILE). Coverage is printed and written.
#include <fstream>

#include "cli/cli.h"
#include "data/dataset.h"
#include "data/units.h"
#include "util/fs.h"

namespace clm::cli {

void add_units(CLI::App& app, Commands& cmds) {
  struct Args {
    DataArgs data;
    std::string source = "wordnet", wordnet = "/usr/share/wordnet", out, report;
    int64_t merges = 2000, order = 3, max_vocab = 0;
  };
  auto a = std::make_shared<Args>();
  auto* c = app.add_subcommand("units", "Semantic units of each vocabulary word (WordNet, subword pieces or hashes) for SEE embeddings");
  a->data.add(c);
  c->add_option("--source", a->source, "wordnet (synset, inflection, hypernym, lexicographer file, then subword pieces) | subword | hash")
      ->capture_default_str();
  c->add_option("--wordnet", a->wordnet, "WordNet 3.0 database folder (Debian: wordnet-base)")->capture_default_str();
  c->add_option("--merges", a->merges, "byte-pair merges learned on the training words (subword pieces)")->capture_default_str();
  c->add_option("--order", a->order, "units per word the model will use (coverage is reported for this many)")->capture_default_str();
  c->add_option("--max-vocab", a->max_vocab, "as clm train --max-vocab (0: every training word)")->capture_default_str();
  c->add_option("--out", a->out, "units file: word<TAB>unit unit ... per vocabulary word")->required();
  c->add_option("--report", a->report, "append a JSON line with the coverage here");
  cmds.push_back({c, [a] {
                    if (!a->data.given()) throw std::invalid_argument("--data (or --train/--valid/--test) is required: the vocabulary is the corpus's");
                    if (a->merges < 0) throw std::invalid_argument("--merges must be >= 0");
                    if (a->order < 1 || a->order > 8) throw std::invalid_argument("--order must be in [1, 8] (SEE's tensor orders)");
                    if (a->max_vocab < 0) throw std::invalid_argument("--max-vocab must be >= 0");
                    Dataset ds = make_dataset(a->data.load(), "word", a->max_vocab);
                    std::vector<std::string> words;
                    std::unordered_map<std::string, int64_t> counts;
                    for (int32_t i = 0; i < int32_t(ds.tok->vocab_size()); ++i) words.push_back(ds.tok->token_text(i));
                    for (int32_t id : ds.train) ++counts[words[size_t(id)]];
                    for (auto& w : words) counts.emplace(w, 1);  // every vocabulary word takes part in the merges
                    UnitStats st;
                    auto units = word_units(words, counts, a->source, a->wordnet, a->merges, a->order, st);
                    std::string text = "# clm units --source " + a->source + " (" + ds.name + ", " + std::to_string(words.size()) + " words)\n";
                    for (size_t v = 0; v < words.size(); ++v) {
                      text += words[v] + "\t";
                      for (size_t j = 0; j < units[v].size(); ++j) text += (j ? " " : "") + units[v][j];
                      text += "\n";
                    }
                    write_file_atomic(a->out, text);
                    nlohmann::json r = {{"data", ds.name}, {"source", a->source}, {"words", st.words}, {"covered", st.covered},
                                        {"coverage", double(st.covered) / double(std::max<int64_t>(1, st.words))},
                                        {"order", a->order}, {"distinct_units", st.distinct_units}, {"distinct_tuples", st.distinct_tuples},
                                        {"merges", a->merges}, {"out", a->out}};
                    std::printf("%s: %lld words, %lld covered by %s (%.1f%%); first %lld units: %lld distinct units, %lld distinct tuples -> %s\n",
                                ds.name.c_str(), (long long)st.words, (long long)st.covered, a->source.c_str(), 100.0 * r["coverage"].get<double>(),
                                (long long)a->order, (long long)st.distinct_units, (long long)st.distinct_tuples, a->out.c_str());
                    if (!a->report.empty()) {
                      std::ofstream f(a->report, std::ios::app);
                      f << r.dump() << "\n";
                      if (!f) throw std::runtime_error("cannot write '" + a->report + "'");
                    }
                    return 0;
                  }});
}

}  // namespace clm::cli
