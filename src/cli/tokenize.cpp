// clm tokenize: ids of a text and the round trip, with any supported tokenizer.
#include "cli/cli.h"
#include "models/io.h"

namespace clm::cli {

void add_tokenize(CLI::App& app, Commands& cmds) {
  struct Args {
    std::string tok_path, text;
  };
  auto a = std::make_shared<Args>();
  auto* tz = app.add_subcommand("tokenize", "Token ids of a text (and the round trip) with any supported tokenizer");
  tz->add_option("--tokenizer", a->tok_path, "llama2.c .bin, tokenizer.json, or a folder (tokenizer.json / GPT-2 files)")->required();
  tz->add_option("text", a->text, "Text to encode")->required();
  cmds.push_back({tz, [a] {
                    auto tok = load_any_tokenizer(a->tok_path);
                    std::vector<int32_t> ids = tok->encode(a->text);
                    std::printf("%s\n", nlohmann::json(ids).dump().c_str());
                    std::fprintf(stderr, "%zu tokens | %s tokenizer, vocab %lld | round trip %s\n", ids.size(),
                                 tok->type().c_str(), (long long)tok->vocab_size(),
                                 tok->decode(ids) == a->text ? "exact" : "differs");
                    return 0;
                  }});
}

}  // namespace clm::cli
