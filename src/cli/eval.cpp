// clm eval: perplexity of a model on a corpus split or a file.
#include "cli/cli.h"
#include "data/dataset.h"
#include "eval/perplexity.h"
#include "kernels/kernels.h"
#include "models/io.h"
#include "util/fs.h"

namespace clm::cli {

namespace {
struct EvalArgs {
  std::string model_path, tok_path, split = "test", file;
  int64_t window = 0, stride = 0, batch = 8;
  int threads = 0;
  DataArgs data;
};

int run_eval(const EvalArgs& a) {
  if (a.window < 0 || a.stride < 0 || a.batch <= 0 || a.threads < 0)
    throw std::invalid_argument("--window and --stride must be >= 0, --batch-size > 0, --threads >= 0");
  kernels::set_num_threads(a.threads);
  LoadedModel lm = load_model(a.model_path, DType::f32, a.tok_path);
  if (!lm.tokenizer) throw std::runtime_error("'" + lm.dir + "': no tokenizer.json (give --tokenizer)");
  std::shared_ptr<Tokenizer> tok(std::move(lm.tokenizer));
  std::vector<int32_t> stream;
  std::string what;
  if (!a.file.empty()) {
    const std::string text = read_file(a.file);
    if (text.empty()) throw std::runtime_error("'" + a.file + "': empty file");
    if (tok->bos_id() >= 0) stream.push_back(tok->bos_id());
    for (int32_t t : tok->encode(text)) stream.push_back(t);
    what = a.file;
  } else {
    Dataset ds = make_dataset(a.data.load(), tok->type(), 0, tok);
    stream = ds.split(a.split);
    what = ds.name + " " + a.split;
  }
  const int64_t T = a.window > 0 ? a.window : lm.model->config().max_seq_len;
  PerplexityResult r = perplexity(*lm.model, stream, T, a.stride > 0 ? a.stride : T, a.batch);
  std::printf("%s: perplexity (per %s) %.3f | mean nll %.4f | %s\n", what.c_str(), tok->unit().c_str(), r.ppl(), r.mean_nll(),
              r.protocol.c_str());
  return 0;
}
}  // namespace

void add_eval(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<EvalArgs>();
  auto* ev = app.add_subcommand("eval", "Perplexity of a trained model on a corpus split");
  ev->add_option("--model", a->model_path, "Checkpoint: run or step folder, or a llama2.c .bin")->required();
  ev->add_option("--tokenizer", a->tok_path, "Tokenizer file; default: the checkpoint's");
  a->data.add(ev);
  ev->add_option("--split", a->split, "train | valid | test")->capture_default_str();
  ev->add_option("--file", a->file, "Score one text file (instead of a corpus split)");
  ev->add_option("--window", a->window, "Tokens per window (0 = the model's max_seq_len)");
  ev->add_option("--stride", a->stride, "Window stride (0 = window: non-overlapping)");
  ev->add_option("--batch-size", a->batch, "Windows per forward")->capture_default_str();
  ev->add_option("--threads", a->threads, "Threads (0 = all cores)");
  cmds.push_back({ev, [a] { return run_eval(*a); }});
}

}  // namespace clm::cli
