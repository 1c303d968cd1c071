// The clm command on bad input: each case exits non-zero with one line that names the problem.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <random>
#include <thread>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common.h"
#include "infer/chat.h"
#include "infer/generate.h"
#include "models/io.h"
#include "util/fs.h"
#include "util/rng.h"

using namespace clm;  // NOLINT
namespace fs = std::filesystem;

namespace {

struct CliRun {
  int rc;
  std::string out, err;
};

// limit_s > 0: killed after that many seconds (exit 124, as timeout(1) reports it)
CliRun run_clm(const std::string& args, int limit_s = 0) {
  test::TempDir t;
  std::string cmd = (limit_s > 0 ? "timeout -k 5 " + std::to_string(limit_s) + " " : std::string()) + CLM_BIN + " " + args + " >" + t.path +
                    "/out 2>" + t.path + "/err";
  int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, read_file(t.path + "/out"), read_file(t.path + "/err")};
}

int count_lines(const std::string& s) { return (int)std::count(s.begin(), s.end(), '\n'); }

struct Corpus {
  test::TempDir dir;
  Corpus() {
    std::string text;
    for (int i = 0; i < 60; ++i) text += "the cat sat on the mat and the dog sat on the log\n";
    write_file_atomic(dir.path + "/c.train.txt", text);
    write_file_atomic(dir.path + "/c.valid.txt", text.substr(0, 600));
    write_file_atomic(dir.path + "/c.test.txt", text.substr(0, 600));
  }
};

const std::string kTiny =
    " --d-model 16 --n-layers 1 --n-heads 2 --n-kv-heads 2 --d-ff 32 --seq-len 8 --batch-size 2 --threads 1"
    " --sample-tokens 0 --eval-every 0";

// The last line of stderr is the error; it must name `what`.
void expect_error(const CliRun& r, const std::string& what) {
  EXPECT_NE(r.rc, 0) << r.err;
  std::string last = r.err;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  EXPECT_NE(last.find("error"), std::string::npos) << r.err;
  EXPECT_NE(last.find(what), std::string::npos) << "wanted '" << what << "' in: " << r.err;
}

}  // namespace

TEST(Cli, HelpForEverySubcommand) {
  for (std::string sub : {"train", "eval", "generate", "info", "plot"}) {
    CliRun r = run_clm(sub + " --help");
    EXPECT_EQ(r.rc, 0) << sub;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
  }
}

TEST(Cli, BadFlagsAndMissingData) {
  expect_error(run_clm("train --no-such-flag"), "no-such-flag");
  expect_error(run_clm("train --data /nonexistent/corpus" + kTiny), "/nonexistent/corpus");
  expect_error(run_clm("train --train /nonexistent/t.txt --valid /x --test /y" + kTiny), "/nonexistent/t.txt");
  Corpus c;
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --lr 0"), "--lr must be > 0");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --batch-size 0"), "--batch-size must be > 0");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --n-heads 3"), "n_heads (3) must divide d_model (16)");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --position spiral"), "unknown position 'spiral'");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --device tpu"), "unknown device 'tpu'");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --tf32"), "--tf32 needs --device cuda");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --gpus 2"), "--gpus needs --device cuda");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --gpus 0 --device cuda"), "--gpus must be >= 1");
  if (!gpu::built())  // a CPU-only build says so, and how to get the backend
    expect_error(run_clm("train --data " + c.dir.path + kTiny + " --device cuda"), "-DCLM_CUDA=ON");
  else if (gpu::count() == 0)
    expect_error(run_clm("train --data " + c.dir.path + kTiny + " --device cuda"), "no CUDA device");
  write_file_atomic(c.dir.path + "/c.valid.txt", "\n\n");
  expect_error(run_clm("train --data " + c.dir.path + kTiny), "empty corpus");
}

// The method variants from the command line: bad names, options out of range, a fixed-length
// mode at another length, a masked LM asked to generate or be scored as an LM: one line, non-zero.
// A good bidirectional TensorCoder masked LM trains, is scored with --mlm, and a rope model is
// evaluated with YaRN at twice its length.
// Compact embeddings: the units command, training / evaluating / generating with SEE, and their errors.
TEST(Cli, CompactEmbeddingsAndTheirErrors) {
  Corpus c;
  test::TempDir d;
  const std::string base = "train --data " + c.dir.path + kTiny;
  CliRun r = run_clm("units --data " + c.dir.path + " --source subword --merges 20 --out " + d.path + "/units.txt --report " + d.path + "/units.jsonl");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("covered by subword (100.0%)"), std::string::npos) << r.out;
  EXPECT_NE(read_file(d.path + "/units.jsonl").find("\"coverage\":1.0"), std::string::npos);
  r = run_clm(base + " --steps 3 --embedding see --embedding-opt units=" + d.path + "/units.txt rows=16 --out " + d.path + "/see");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("see: "), std::string::npos) << r.err;  // the unit assignment is reported
  EXPECT_EQ(run_clm("eval --model " + d.path + "/see --data " + c.dir.path + " --window 8 --threads 1").rc, 0);
  EXPECT_EQ(run_clm("generate --model " + d.path + "/see --prompt the --max-new-tokens 4").rc, 0);
  expect_error(run_clm("convert --model " + d.path + "/see --to gguf --out " + d.path + "/x.gguf"), "a standard embedding");
  expect_error(run_clm(base + " --embedding see --embedding-opt order=9"), "option 'order' = 9: must be an integer in [2, 8]");
  expect_error(run_clm(base + " --embedding see --embedding-opt rank=0"), "option 'rank' = 0: must be an integer in [1, 256]");
  write_file_atomic(d.path + "/bad.txt", "the\tsw:the</w>\n");
  expect_error(run_clm(base + " --embedding see --embedding-opt units=" + d.path + "/bad.txt"), "does not match the vocabulary");
  expect_error(run_clm("units --data " + c.dir.path + " --source wordnet --wordnet " + d.path + "/nowhere --out " + d.path + "/u.txt"),
               "WordNet not found");
  expect_error(run_clm("units --data " + c.dir.path + " --source sememes --out " + d.path + "/u.txt"), "must be hash | subword | wordnet");
  // compressing a trained model's embedding: body copied, the new table fitted, then distillation
  ASSERT_EQ(run_clm(base + " --steps 3 --tie-embeddings --out " + d.path + "/dense").rc, 0);
  r = run_clm("train --data " + c.dir.path + " --init-from " + d.path + "/dense --embedding see --embedding-opt rows=16 --fit-steps 20" +
              " --fit-weight 0.5 --distill-alpha 0.5 --steps 2 --batch-size 2 --seq-len 8 --threads 1 --sample-tokens 0 --out " + d.path + "/compressed");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("body copied; new: model.embed_tokens.factors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("embedding fitted to the original table"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("weighted mse"), std::string::npos) << r.err;
  expect_error(run_clm("train --data " + c.dir.path + " --init-from " + d.path + "/dense --embedding see --fit-weight 1.5 --out " + d.path + "/x"),
               "--fit-weight must be in [0, 1]");
  expect_error(run_clm("train --data " + c.dir.path + " --init-from " + d.path + "/dense --d-model 64 --out " + d.path + "/x"),
               "--init-from keeps the model's shape and tokenizer: --d-model cannot change");
  expect_error(run_clm(base + " --distill-alpha 0.5"), "--distill-alpha needs --init-from");
  expect_error(run_clm(base + " --fit-steps 5"), "--fit-steps / --fit-lr / --fit-weight / --fit-hidden need --init-from");
  expect_error(run_clm(base + " --fit-weight 0.5"), "--fit-steps / --fit-lr / --fit-weight / --fit-hidden need --init-from");
  expect_error(run_clm("train --data " + c.dir.path + " --init-from " + d.path + "/dense --embedding see --fit-lr 0 --out " + d.path + "/x"),
               "--fit-lr must be > 0");
  expect_error(run_clm("train --resume " + d.path + "/compressed --steps 4"), "trained with distillation from another model");
  expect_error(run_clm("train --data " + c.dir.path + " --init-from " + d.path + "/nowhere --out " + d.path + "/x"), "nowhere");
  // a pretrained model without a tokenizer beside it (llama2.c): --init-tokenizer gives it; the BPE vocabulary takes hashed units
  const std::string s260 = test::fixture("stories260K/stories260K.bin"), tok512 = test::fixture("stories260K/tok512.bin");
  const std::string init = "train --data " + c.dir.path + " --init-from " + s260 + " --embedding see --embedding-opt units=hash rows=32";
  expect_error(run_clm(init + " --out " + d.path + "/x"), "no tokenizer beside the model (give it with --init-tokenizer)");
  r = run_clm(init + " --init-tokenizer " + tok512 + " --fit-steps 10 --distill-alpha 0.5 --steps 2 --batch-size 2 --seq-len 16 --threads 1" +
              " --sample-tokens 0 --out " + d.path + "/s260");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("tokenizer llama2c (vocab 512)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("body copied; new: model.embed_tokens.factors"), std::string::npos) << r.err;
  EXPECT_EQ(run_clm("generate --model " + d.path + "/s260 --prompt Once --max-new-tokens 4").rc, 0) << "the compressed model keeps the tokenizer";
  expect_error(run_clm(base + " --init-tokenizer " + tok512), "--init-tokenizer needs --init-from");
}

// Recurrent models with the ordinary commands: train (dropout), resume, eval, generate; their errors.
TEST(Cli, RecurrentModelsAndTheirErrors) {
  Corpus c;
  test::TempDir d;
  const std::string base = "train --data " + c.dir.path + kTiny;
  for (std::string arch : {"tslm", "lstm"}) {
    CliRun r = run_clm(base + " --arch " + arch + " --dropout 0.2 --steps 3 --out " + d.path + "/" + arch);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("model: "), std::string::npos);
    EXPECT_NE(r.err.find(arch + ", hidden"), std::string::npos) << r.err;
    EXPECT_EQ(run_clm("train --resume " + d.path + "/" + arch + " --steps 5").rc, 0);
    r = run_clm("eval --model " + d.path + "/" + arch + " --data " + c.dir.path + " --window 8 --threads 1");
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(run_clm("generate --model " + d.path + "/" + arch + " --prompt the --max-new-tokens 4").rc, 0);
    expect_error(run_clm("convert --model " + d.path + "/" + arch + " --to gguf --out " + d.path + "/x.gguf"), "Llama-architecture");
  }
  expect_error(run_clm(base + " --arch tslm --attention tensorcoder"), "arch 'tslm' is recurrent: --attention is a transformer option");
  expect_error(run_clm(base + " --arch lstm --position alibi"), "arch 'lstm' is recurrent: --position is a transformer option");
  expect_error(run_clm(base + " --arch rnn"), "unknown");
  expect_error(run_clm(base + " --dropout 1.5"), "dropout must be in [0, 1)");
  // heads do not constrain a recurrent model's width
  EXPECT_EQ(run_clm(base + " --arch lstm --d-model 30 --steps 1 --out " + d.path + "/odd").rc, 0);
}

TEST(Cli, MethodVariantsAndTheirErrors) {
  Corpus c;
  test::TempDir d;
  const std::string base = "train --data " + c.dir.path + kTiny;
  expect_error(run_clm(base + " --attention tensorcodr"), "unknown attention 'tensorcodr' (known: causal, multilinear, tensorcoder)");
  expect_error(run_clm(base + " --max-seq-len 8 --position 3d-rpe --position-opt chunk=8"), "chunk 8 must be below max_seq_len 8");
  expect_error(run_clm(base + " --position 3d-rpe --position-opt chunk=4 scale=0.5"), "option 'scale' = 0.5: must be in [1, 1e6]");
  expect_error(run_clm(base + " --position rope --position-opt scaling=yarn scale=1e9"), "option 'scale' = 1000000000.0: must be in [1, 1e6]");
  expect_error(run_clm(base + " --attention multilinear --attention-opt mode=split_concat --max-seq-len 16 --steps 1"),
               "mode=split_concat runs at its fixed length 16 only, not 8");
  // the split-concat reproduction trains at its fixed length and refuses to generate
  ASSERT_EQ(run_clm(base + " --attention multilinear --attention-opt mode=split_concat --max-seq-len 8 --steps 2 --out " + d.path +
                    "/split").rc, 0);
  expect_error(run_clm("generate --model " + d.path + "/split --prompt the --max-new-tokens 2"),
               "mode=split_concat (non-causal, fixed length) cannot decode");
  expect_error(run_clm(base + " --objective clm"), "--objective must be next or mlm");
  ASSERT_EQ(run_clm(base + " --steps 4 --objective mlm --attention tensorcoder --attention-opt causal=false --out " + d.path + "/mlm").rc, 0);
  CliRun r = run_clm("eval --model " + d.path + "/mlm --data " + c.dir.path + " --mlm --window 8 --threads 1");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("masked-LM loss (per masked word)"), std::string::npos) << r.out;
  expect_error(run_clm("eval --model " + d.path + "/mlm --data " + c.dir.path), "bidirectional attention (a masked LM): score it with --mlm");
  expect_error(run_clm("generate --model " + d.path + "/mlm --prompt the"), "bidirectional attention (a masked LM): it cannot generate");
  expect_error(run_clm("convert --model " + d.path + "/mlm --to gguf --out " + d.path + "/x.gguf"), "softmax attention");
  ASSERT_EQ(run_clm(base + " --steps 4 --out " + d.path + "/rope").rc, 0);
  for (const char* w : {"8", "16"}) {
    r = run_clm("eval --model " + d.path + "/rope --data " + c.dir.path + " --window " + w + " --threads 1 --report " + d.path + "/len.jsonl");
    EXPECT_EQ(r.rc, 0) << r.err;
  }
  r = run_clm("eval --model " + d.path + "/rope --data " + c.dir.path + " --window 16 --position-opt scaling=yarn scale=2 --threads 1" +
              " --retrieval 2 --report " + d.path + "/len.jsonl");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("retrieval of a planted pair over 16 tokens"), std::string::npos) << r.out;
  ASSERT_EQ(run_clm("plot " + d.path + "/len.jsonl").rc, 0);
  const std::string svg = read_file(d.path + "/length.svg");
  EXPECT_NE(svg.find(">rope<"), std::string::npos);
  EXPECT_NE(svg.find("rope scaling=yarn (scaled)"), std::string::npos) << svg.substr(0, 3000);
  expect_error(run_clm("eval --model " + d.path + "/rope --data " + c.dir.path + " --position-opt scaling=spline"),
               "must be none | pi | ntk | yarn");
}

// `clm train --resume DIR`, as the README shows it, continues the same run: on the corpus recorded in
// the checkpoint (not the default one), in DIR (not the default --out), reaching the weights of an
// uninterrupted run; flags that would change the run are refused, --steps extends it.
TEST(Cli, ResumeContinuesTheSameRunInItsFolder) {
  Corpus c;
  test::TempDir d;
  const std::string flags = kTiny + " --ckpt-every 2";
  ASSERT_EQ(run_clm("train --data " + c.dir.path + flags + " --steps 6 --out " + d.path + "/a").rc, 0);
  ASSERT_EQ(run_clm("train --data " + c.dir.path + flags + " --steps 6 --out " + d.path + "/b").rc, 0);
  // b continues from its step 4 with no other flag than --threads: same corpus, same folder
  CliRun r = run_clm("train --resume " + d.path + "/b/step-00000004 --threads 1 --sample-tokens 0");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("resuming"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(d.path + "/a/step-00000006/model.safetensors"), read_file(d.path + "/b/step-00000006/model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists("runs/demo/latest")) << "nothing written to the default --out";
  // --steps extends the run, in its folder
  r = run_clm("train --resume " + d.path + "/b --steps 8 --threads 1 --sample-tokens 0");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(d.path + "/b/step-00000008/model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(d.path + "/b/step-00000004")) << "the two newest step folders are kept by default";
  // --keep-checkpoints 0 keeps every step folder
  ASSERT_EQ(run_clm("train --data " + c.dir.path + flags + " --steps 6 --keep-checkpoints 0 --out " + d.path + "/c").rc, 0);
  for (const char* s : {"2", "4", "6"}) EXPECT_TRUE(std::filesystem::exists(d.path + "/c/step-0000000" + s + "/model.safetensors")) << s;
  expect_error(run_clm("train --data " + c.dir.path + flags + " --steps 6 --keep-checkpoints -1 --out " + d.path + "/e"),
               "--keep-checkpoints must be >= 0");
  // what would change the run is refused, naming the flag
  expect_error(run_clm("train --resume " + d.path + "/b --steps 10 --lr 0.5"), "--resume: --lr 0.5 but the checkpoint");
  expect_error(run_clm("train --resume " + d.path + "/b --steps 10 --out " + d.path + "/elsewhere"), "differs from the run being resumed");
  Corpus other;
  expect_error(run_clm("train --resume " + d.path + "/b --steps 10 --data " + other.dir.path), "is not the run's");
  expect_error(run_clm("train --resume " + d.path + "/b --steps 8"), "the run is already at step 8");
}

TEST(Cli, TrainEvalGenerateInfoPlotAndCorruptCheckpoints) {
  Corpus c;
  test::TempDir run;
  CliRun r = run_clm("train --data " + c.dir.path + kTiny + " --steps 6 --out " + run.path + "/r");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("valid perplexity (per word)"), std::string::npos) << r.out;
  const std::string ck = run.path + "/r/step-00000006";
  ASSERT_TRUE(fs::exists(ck + "/model.safetensors"));

  CliRun e = run_clm("eval --model " + run.path + "/r --data " + c.dir.path + " --split test --threads 1");
  EXPECT_EQ(e.rc, 0) << e.err;
  EXPECT_NE(e.out.find("tokens scored"), std::string::npos) << e.out;
  CliRun g = run_clm("generate --model " + run.path + "/r --prompt 'the cat' --max-new-tokens 5 --temperature 0 --threads 1");
  EXPECT_EQ(g.rc, 0) << g.err;
  EXPECT_EQ(g.out.rfind("the cat", 0), 0u) << g.out;
  CliRun ef = run_clm("eval --model " + run.path + "/r --file " + c.dir.path + "/c.test.txt --window 8 --stride 4 --threads 1");
  EXPECT_EQ(ef.rc, 0) << ef.err;
  EXPECT_NE(ef.out.find("sliding windows of 8 tokens, stride 4"), std::string::npos) << ef.out;
  CliRun tz = run_clm("tokenize --tokenizer " + run.path + "/r/step-00000006/tokenizer.json 'the cat sat'");
  EXPECT_EQ(tz.rc, 0) << tz.err;
  EXPECT_EQ(tz.out.rfind("[", 0), 0u) << tz.out;
  expect_error(run_clm("tokenize --tokenizer /nonexistent/tok.json hi"), "/nonexistent/tok.json");
  expect_error(run_clm("generate --model " + run.path + "/r --weights fp8"), "--weights: unknown weight format 'fp8'");
  expect_error(run_clm("chat --model " + run.path + "/r --weights fp8 < /dev/null"), "--weights: unknown weight format 'fp8'");
  // --device cuda for decoding: the flags it cannot take are refused before loading; a build or a
  // machine without the backend says which.
  expect_error(run_clm("generate --model " + run.path + "/r --device cuda --weights generic"), "--device cuda: --weights must be bf16 or f32");
  expect_error(run_clm("generate --model " + run.path + "/r --device cuda --kv-policy h2o --kv-budget 0.5"), "--kv-policy runs on the CPU only");
  expect_error(run_clm("serve --model " + run.path + "/r --device tpu"), "unknown device 'tpu'");
  if (!gpu::built())
    expect_error(run_clm("chat --model " + run.path + "/r --device cuda < /dev/null"), "-DCLM_CUDA=ON");
  else if (gpu::count() == 0)
    expect_error(run_clm("chat --model " + run.path + "/r --device cuda < /dev/null"), "no CUDA device");
  CliRun i = run_clm("info --model " + run.path + "/r");
  EXPECT_EQ(i.rc, 0) << i.err;
  EXPECT_NE(i.out.find("parameters:"), std::string::npos);
  EXPECT_NE(i.out.find("tokenizer: "), std::string::npos) << i.out;  // the run folder's tokenizer
  CliRun p = run_clm("plot " + run.path + "/r/metrics.jsonl -o " + run.path + "/loss.svg");
  EXPECT_EQ(p.rc, 0) << p.err;
  EXPECT_NE(read_file(run.path + "/loss.svg").find("<polyline"), std::string::npos);

  // config mismatch on resume
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --steps 8 --resume " + run.path + "/r --d-model 32"),
               "--resume: --d-model 32 but the checkpoint");
  // truncated weights
  std::string w = read_file(ck + "/model.safetensors");
  const std::string good = w;
  write_file_atomic(ck + "/model.safetensors", w.substr(0, w.size() / 2));
  expect_error(run_clm("eval --model " + ck + " --data " + c.dir.path), ck + "/model.safetensors");
  // a flipped header byte: JSON no longer parses
  w[12] = '\x01';
  write_file_atomic(ck + "/model.safetensors", w);
  expect_error(run_clm("eval --model " + ck + " --data " + c.dir.path), "model.safetensors");
  write_file_atomic(ck + "/model.safetensors", good);
  // config.json that does not match the weights
  std::string cfg = read_file(ck + "/config.json");
  write_file_atomic(ck + "/config.json", std::regex_replace(cfg, std::regex("\"d_ff\": 32"), "\"d_ff\": 48"));
  expect_error(run_clm("eval --model " + ck + " --data " + c.dir.path), "config.json implies");
  write_file_atomic(ck + "/config.json", "{\"d_model\": ");
  expect_error(run_clm("eval --model " + ck + " --data " + c.dir.path), "config.json");
  expect_error(run_clm("eval --model " + run.path + "/nothing-here --data " + c.dir.path), "nothing-here");
}

TEST(Cli, ChatOnStdinWithLlama2Template) {
  const std::string model = test::fixture("stories260K/stories260K.bin"), tokf = test::fixture("stories260K/tok512.bin");
  test::TempDir t;
  write_file_atomic(t.path + "/in.txt", "Tell me a story.\nAnother one.\n");
  CliRun r = run_clm("chat --model " + model + " --tokenizer " + tokf + " --template llama2 --temperature 0 --max-new-tokens 12 --threads 1 < " +
                     t.path + "/in.txt");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '['), 2) << r.err;  // one stats line per turn
  // each reply is what greedy generation gives for the conversation so far, rendered by the template
  LoadedModel lm = load_model(model, DType::f32, tokf);
  const Tokenizer& tok = *lm.tokenizer;
  std::vector<ChatMessage> msgs;
  std::string want;
  for (std::string line : {"Tell me a story.", "Another one."}) {
    msgs.push_back({"user", line});
    std::vector<int32_t> ids = encode_chat(tok, render_chat("llama2", msgs));
    GenerateConfig g{12, -1, chat_stop_ids(tok, "llama2")};
    Sampler s({0.0, 0, 1.0, 0});
    std::string reply;
    int32_t prev = ids.back();
    for (int32_t t : generate(*lm.model, ids, g, s)) reply += tok.decode_next(prev, t), prev = t;
    want += reply + "\n";
    msgs.push_back({"assistant", reply});
  }
  EXPECT_EQ(r.out, want);
  EXPECT_NE(r.err.find("new: "), std::string::npos);
}

// The CLI's numeric flags under hostile values (issue #8): every INT / UINT / FLOAT flag that
// `clm <sub> --help` lists, for each subcommand that runs without a server, takes values drawn
// from a list of hostile ones (NaN, infinities, negatives, zero, 2^63 and beyond, denormals, hex,
// empty, garbage), the rest of the command line making the work tiny. Each run must end by itself
// (a work-size flag may run into the time limit: 20 s, CLM_FLAG_LIMIT), with exit 0, or 1/2 and a last stderr line that
// is one error naming no library internals (std::, basic_string, stoll). CLM_FLAG_VALUES=all
// tries every value of the list on every flag (about 1,000 runs); the default is 3 per flag,
// drawn by a seed from the flag's name and CLM_FLAG_SEED. A sweep, not libFuzzer: a libFuzzer
// target would need the whole engine built with clang's instrumentation.
TEST(Cli, EveryNumericFlagTakesHostileValues) {
  const std::vector<std::string> hostile = {"nan", "inf", "-inf", "-1", "0", "1e308", "9223372036854775807", "-9223372036854775808",
                                            "18446744073709551616", "4e-320", "0x10", "''", "1.5", "abc", "2147483648"};
  // flags that size the work: a huge value may legitimately run until the time limit
  const std::set<std::string> work = {"--steps", "--time-budget", "--eval-tokens", "--sample-tokens", "--fit-steps", "--max-new-tokens",
                                      "--items", "--windows", "--merges", "--limit", "--warmup", "--eval-every", "--log-every", "--ckpt-every",
                                      "--grad-accum"};
  Corpus c;
  test::TempDir run;
  ASSERT_EQ(run_clm("train --data " + c.dir.path + kTiny + " --steps 2 --out " + run.path + "/r").rc, 0);
  const std::string R = run.path + "/r", D = " --data " + c.dir.path, O = run.path;
  write_file_atomic(O + "/in.txt", "hello\nagain\n");
  const std::vector<std::pair<std::string, std::string>> subs = {
      {"train", "train" + D + kTiny + " --steps 2 --out " + O + "/t"},
      {"eval", "eval --model " + R + D + " --threads 1"},
      {"generate", "generate --model " + R + " --prompt 'the cat' --max-new-tokens 4 --threads 1"},
      {"chat", "chat --model " + R + " --template llama2 --max-new-tokens 4 --threads 1 < " + O + "/in.txt"},
      {"info", "info --n-layers 2 --d-model 32 --vocab-size 100 --d-ff 64"},
      {"calibrate", "calibrate --model " + R + D + " --windows 2 --window 8 --threads 1 --out " + O + "/c.json"},
      {"quantize", "quantize --model " + R + D + " --quant smoothquant --windows 2 --window 8 --threads 1 --force --out " + O + "/q"},
      {"units", "units" + D + " --source hash --out " + O + "/u.txt"},
      {"kv-bench", "kv-bench --model " + R + " --task ppl" + D + " --ctx 16 --chunk 4 --items 2 --budgets 0.5 --policies h2o --threads 1"},
  };
  const bool all = std::getenv("CLM_FLAG_VALUES") && std::string(std::getenv("CLM_FLAG_VALUES")) == "all";
  const uint64_t seed = std::getenv("CLM_FLAG_SEED") ? std::strtoull(std::getenv("CLM_FLAG_SEED"), nullptr, 10) : 1;
  const int limit_s = std::getenv("CLM_FLAG_LIMIT") ? std::atoi(std::getenv("CLM_FLAG_LIMIT")) : 20;
  int runs = 0;
  for (const auto& [sub, base] : subs) {
    CliRun h = run_clm(sub + " --help");
    std::regex opt(R"(\n\s+(--[a-z0-9-]+) (INT|UINT|FLOAT))");
    std::vector<std::string> flags;
    for (std::sregex_iterator it(h.out.begin(), h.out.end(), opt), end; it != end; ++it) flags.push_back((*it)[1]);
    ASSERT_FALSE(flags.empty()) << sub;
    for (const std::string& flag : flags) {
      std::vector<std::string> values = hostile;
      if (!all) {
        Rng rng(seed ^ std::hash<std::string>{}(sub + flag));
        for (size_t i = 0; i < 3; ++i) std::swap(values[i], values[i + rng.next() % (values.size() - i)]);
        values.resize(3);
      }
      for (const std::string& v : values) {
        std::string cmd = base;
        const size_t in = cmd.find(" < ");  // the flag goes before chat's input redirection
        const std::string f = " " + flag + " " + v;
        if (in == std::string::npos) cmd += f;
        else cmd.insert(in, f);
        CliRun r = run_clm("--max-memory 2G " + cmd, limit_s);
        ++runs;
        const std::string what = "clm " + sub + " " + flag + " " + v;
        if (r.rc == 124 && work.count(flag)) continue;
        EXPECT_TRUE(r.rc == 0 || r.rc == 1 || r.rc == 2) << what << ": exit " << r.rc << (r.rc == 124 ? " (ran over the time limit)" : "") << "\n"
                                                         << r.err.substr(0, 2000);
        if (r.rc != 1 && r.rc != 2) continue;
        std::string last = r.err;
        while (!last.empty() && last.back() == '\n') last.pop_back();
        last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
        EXPECT_NE(last.find("error"), std::string::npos) << what << ": " << r.err.substr(0, 2000);
        EXPECT_LE(last.size(), 400u) << what;
        for (const char* leak : {"std::", "basic_string", "stoll", "stod", "json.exception"})
          EXPECT_EQ(last.find(leak), std::string::npos) << what << ": " << last;
      }
    }
  }
  EXPECT_GT(runs, 200);
  std::printf("%d runs of clm with hostile flag values\n", runs);
}

// `--out` naming a FIFO (or a device, a socket): the atomic write's rename would replace the node
// with a regular file. It is refused by name and left as it was.
TEST(Cli, ConvertNeverReplacesAFifo) {
  test::TempDir d;
  const std::string fifo = d.path + "/out.bin";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string m = " --model " + test::fixture("stories260K/stories260K.bin") + " --tokenizer " + test::fixture("stories260K/tok512.bin");
  expect_error(run_clm("convert" + m + " --to llama2c --out " + fifo), "refusing to write '" + fifo + "': it exists and is not a regular file");
  expect_error(run_clm("convert" + m + " --to gguf --out " + fifo), "is not a regular file");
  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  CliRun ok = run_clm("convert" + m + " --to llama2c --out " + d.path + "/ok.bin");  // a new regular file is fine
  EXPECT_EQ(ok.rc, 0) << ok.err;
}

// --samples N: one load, N completions with seeds s..s+N-1, each what `--seed s+i` alone prints,
// followed by an empty line (scripts/sample_corpus.sh builds a corpus from it).
TEST(Cli, GenerateSamplesAreTheSingleSeedRunsInOrder) {
  const std::string m = " --model " + test::fixture("stories260K/stories260K.bin") + " --tokenizer " + test::fixture("stories260K/tok512.bin") +
                        " --temperature 1 --max-new-tokens 24 --threads 1";
  CliRun many = run_clm("generate" + m + " --seed 5 --samples 3");
  ASSERT_EQ(many.rc, 0) << many.err;
  std::string want;
  for (int s = 5; s < 8; ++s) {
    CliRun one = run_clm("generate" + m + " --seed " + std::to_string(s));
    ASSERT_EQ(one.rc, 0) << one.err;
    want += one.out + "\n";
  }
  EXPECT_EQ(many.out, want);
  EXPECT_NE(run_clm("generate" + m + " --seed 5").out, run_clm("generate" + m + " --seed 6").out) << "the seeds must give different samples";
  expect_error(run_clm("generate" + m + " --samples 0"), "--samples 0: must be >= 1");
}

// SIGKILL at random moments of a run that checkpoints every step (so most kills land inside a
// checkpoint write: model, optimizer, trainer state, the rename, `latest`, pruning). After each
// kill the README's `clm train --resume DIR` must continue; in the end the run must equal an
// uninterrupted one bit for bit (weights and optimizer state) and its metrics must carry the same
// loss at every step. CLM_KILLS sets the number of kills (default 12; docs/RESULTS.md: 100).
TEST(Cli, SigkillDuringCheckpointsAlwaysResumesExactly) {
  Corpus c;
  test::TempDir d;
  const char* env = std::getenv("CLM_KILLS");
  const int want = env ? std::atoi(env) : 12;
  const int64_t steps = 4 * want + 8;  // enough progress between kills for every kill to happen
  const std::string flags = kTiny + " --ckpt-every 1 --log-every 1 --steps " + std::to_string(steps);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_clm("train --data " + c.dir.path + flags + " --out " + d.path + "/ref").rc, 0);
  const double full_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char last[32];
  std::snprintf(last, sizeof last, "step-%08lld", (long long)steps);
  const std::string run = d.path + "/run", final_step = last;
  auto latest = [&] {
    std::string l = fs::exists(run + "/latest") ? read_file(run + "/latest") : "";
    while (!l.empty() && l.back() == '\n') l.pop_back();
    return l;
  };
  std::mt19937 rng(7);
  auto temps = [&] {  // what a write cut short leaves behind: a temporary step folder or file
    std::set<std::string> t;
    std::error_code ec;  // (no folder yet before the first checkpoint)
    for (auto& e : fs::directory_iterator(run, fs::directory_options::none, ec)) {
      const std::string f = e.path().filename().string();
      if (f.rfind(".tmp-", 0) == 0 || f.find(".tmp.") != std::string::npos) t.insert(f);
    }
    return t;
  };
  int kills = 0, launches = 0, cut = 0;
  while (latest() != final_step) {
    const std::set<std::string> before = temps();
    ASSERT_LT(++launches, 10 * want + 20) << "the run does not finish";
    // the README's command once a checkpoint exists; the original command before that
    const std::string args = fs::exists(run + "/latest") ? "train --resume " + run + " --threads 1 --sample-tokens 0"
                                                          : "train --data " + c.dir.path + flags + " --out " + run;
    const std::string cmd = std::string(CLM_BIN) + " " + args + " >/dev/null 2>>" + d.path + "/err";
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
      ::_exit(127);
    }
    int st = 0;
    if (kills < want) {
      std::uniform_real_distribution<double> at(0.0, 6.0 * full_s / double(steps));  // about six steps' time
      std::this_thread::sleep_for(std::chrono::duration<double>(at(rng)));
      if (::waitpid(pid, &st, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &st, 0);
        ++kills;
        const std::set<std::string> now = temps();
        cut += std::any_of(now.begin(), now.end(), [&](const std::string& f) { return !before.count(f); });
        continue;
      }
    } else {
      ::waitpid(pid, &st, 0);
    }
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "a run that was not killed failed: " << read_file(d.path + "/err");
  }
  EXPECT_EQ(kills, want);
  std::printf("%d kills, %d of them inside a checkpoint write (a temporary left behind), %d launches\n", kills, cut, launches);
  for (const char* f : {"/model.safetensors", "/optimizer.safetensors"})
    EXPECT_EQ(read_file(run + "/" + final_step + f), read_file(d.path + "/ref/" + final_step + f)) << f << " after " << kills << " kills";
  // the loss at every step: the last row written for it (a killed run may have logged steps that
  // its resume then trained again) equals the uninterrupted run's
  auto losses = [](const std::string& path) {
    std::map<int64_t, double> m;
    std::istringstream in(read_file(path));
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);  // a row cut by the kill is skipped
      if (!j.is_discarded() && j.contains("loss") && j.contains("step")) m[j["step"].get<int64_t>()] = j["loss"].get<double>();
    }
    return m;
  };
  const auto a = losses(d.path + "/ref/metrics.jsonl"), b = losses(run + "/metrics.jsonl");
  EXPECT_EQ(int64_t(a.size()), steps);
  EXPECT_EQ(a, b);
}

// A prompt longer than the context: refused before any prefill, naming the counts and the ways
// out, or (--overflow truncate) cut to its last tokens with a note; --ctx raises the limit.
TEST(Cli, GeneratePromptLongerThanTheContext) {
  const std::string m = " --model " + test::fixture("stories260K/stories260K.bin") + " --tokenizer " + test::fixture("stories260K/tok512.bin") +
                        " --temperature 0 --max-new-tokens 8 --threads 1";
  std::string words;
  for (int i = 0; i < 400; ++i) words += "the cat ";  // 1,202 tokens; stories260K has 512 positions
  const std::string prompt = " --prompt '" + words + "'";
  CliRun r = run_clm("generate" + m + prompt);
  expect_error(r, "more than the context of 512 positions (--ctx to raise it for a model that extrapolates, --overflow truncate");
  EXPECT_EQ(r.err.find("prefill"), std::string::npos) << "refused after prefilling: " << r.err;
  r = run_clm("generate" + m + prompt + " --overflow truncate");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("prompt truncated to its last 503 of"), std::string::npos) << r.err;  // 512 - 8 new - BOS
  EXPECT_NE(r.err.find("prefill 504 tokens"), std::string::npos) << r.err;
  r = run_clm("generate" + m + prompt + " --ctx 1300");
  EXPECT_EQ(r.rc, 0) << r.err;
  expect_error(run_clm("generate" + m + " --max-new-tokens 600 --prompt hi"), "leaves no room for a prompt");
  expect_error(run_clm("generate" + m + " --overflow drop --prompt hi"), "--overflow must be refuse or truncate, not 'drop'");
  expect_error(run_clm("generate" + m + " --ctx -3 --prompt hi"), "--ctx must be positive");
}

// Sizes from a config or a flag are checked before anything is allocated: a config.json whose layer
// count or vocabulary disagrees with its tensors, a model or a context larger than memory, or an
// explicit --max-memory, each refused at once in one line naming the field (issue #8: these took
// seconds and gigabytes, or ended in a bare std::bad_alloc).
TEST(Cli, SizesCheckedBeforeAllocating) {
  Corpus c;
  test::TempDir run;
  ASSERT_EQ(run_clm("train --data " + c.dir.path + kTiny + " --steps 2 --out " + run.path + "/r").rc, 0);
  const std::string ck = run.path + "/r/step-00000002";
  const std::string cfg = read_file(ck + "/config.json");
  auto with = [&](const std::string& field, const std::string& value) {
    write_file_atomic(ck + "/config.json", std::regex_replace(cfg, std::regex("\"" + field + "\": [0-9]+"), "\"" + field + "\": " + value));
  };
  with("n_layers", "100000");
  expect_error(run_clm("generate --model " + ck + " --prompt hi"), "the config's n_layers is 100000, the file holds tensors of 1 layer");
  with("vocab_size", "1099511627776");
  expect_error(run_clm("info --model " + ck), "the config's vocab_size x d_model is [1099511627776, 16]");
  with("d_model", "1099511627776");
  expect_error(run_clm("eval --model " + ck + " --data " + c.dir.path), "the config's vocab_size x d_model is [");
  write_file_atomic(ck + "/config.json", cfg);
  // a Hugging Face folder claiming 2^31 attention heads
  const std::string hf = run.path + "/hf";
  fs::copy(test::fixture("hf/llama"), hf);
  const std::string hcfg = read_file(hf + "/config.json");
  write_file_atomic(hf + "/config.json", std::regex_replace(hcfg, std::regex("\"num_attention_heads\": [0-9]+"), "\"num_attention_heads\": 2147483648"));
  expect_error(run_clm("info --model " + hf), hf + "/config.json': a model of vocab_size 256, d_model 64, n_layers 2, d_ff 96, n_heads 2147483648");

  const std::string m = " --model " + ck + " --prompt hi --threads 1";
  expect_error(run_clm("generate" + m + " --ctx 100000000000"), "a context of 100000000000 positions (--ctx) needs");
  expect_error(run_clm("generate" + m + " --ctx 9000000000000000000"), "needs more than 8 EiB");
  expect_error(run_clm("chat --template llama2 --model " + ck + " --ctx 100000000000 < /dev/null"), "positions (--ctx) needs");
  expect_error(run_clm("generate --max-memory 1M" + m), "more than the 0.00 B left of --max-memory 1.00 MiB");  // the process alone is larger
  expect_error(run_clm("--max-memory 12X generate" + m), "--max-memory must be a size such as 8G");
  EXPECT_EQ(run_clm("generate --max-memory 4G" + m + " --max-new-tokens 2").rc, 0);
  expect_error(run_clm("info --d-model 4000000"), "a model of vocab_size 10000, d_model 4000000, n_layers 4");
  expect_error(run_clm("train --data " + c.dir.path + kTiny + " --d-model 100000 --n-layers 100000 --out " + run.path + "/big"),
               "training a model of vocab_size");
  EXPECT_FALSE(fs::exists(run.path + "/big/latest"));
}

// A JSON value of the wrong type is refused naming the file and the field, not with nlohmann's
// "type must be boolean, but is null".
TEST(Cli, JsonFieldsOfTheWrongTypeAreNamed) {
  Corpus c;
  test::TempDir run;
  ASSERT_EQ(run_clm("train --data " + c.dir.path + kTiny + " --steps 2 --out " + run.path + "/r").rc, 0);
  const std::string ck = run.path + "/r/step-00000002";
  const std::string cfg = read_file(ck + "/config.json"), st = read_file(ck + "/trainer_state.json");
  write_file_atomic(ck + "/config.json", std::regex_replace(cfg, std::regex("\"tie_embeddings\": (true|false)"), "\"tie_embeddings\": null"));
  expect_error(run_clm("info --model " + ck), "model config: tie_embeddings must be true or false, not null");
  write_file_atomic(ck + "/config.json", std::regex_replace(cfg, std::regex("\"norm_eps\": [0-9.e-]+"), "\"norm_eps\": \"small\""));
  expect_error(run_clm("generate --model " + ck + " --prompt hi"), "model config: norm_eps must be a number, not string");
  write_file_atomic(ck + "/config.json", cfg);
  write_file_atomic(ck + "/trainer_state.json", std::regex_replace(st, std::regex("\"step\": ?2"), "\"step\": \"two\""));
  expect_error(run_clm("train --resume " + run.path + "/r --steps 4"), "trainer_state.json': step must be an integer in range, not string");
  write_file_atomic(ck + "/trainer_state.json", std::regex_replace(st, std::regex("\"lr\": ?[0-9.e-]+"), "\"lr\": [1]"));
  expect_error(run_clm("train --resume " + run.path + "/r --steps 4"), "trainer_state.json': train config: lr must be a number, not array");
}

TEST(Cli, NanStopsWithOneLineAndKeepsCheckpoint) {
  Corpus c;
  test::TempDir run;
  ASSERT_EQ(run_clm("train --data " + c.dir.path + kTiny + " --steps 3 --out " + run.path).rc, 0);
  const std::string good = read_file(run.path + "/step-00000003/model.safetensors");
  CliRun r = run_clm("train --data " + c.dir.path + kTiny + " --steps 40 --lr 1e9 --clip 0 --warmup 0 --ckpt-every 1 --out " +
              run.path + "/nan");
  expect_error(r, "at step");
  EXPECT_TRUE(r.err.find("NaN") != std::string::npos || r.err.find("non-finite") != std::string::npos) << r.err;
  EXPECT_EQ(read_file(run.path + "/step-00000003/model.safetensors"), good);
  // the folder the diverging run wrote to holds only finite checkpoints, and `latest` loads
  LoadedModel lm = load_model(run.path + "/nan");
  lm.model->visit([&](const std::string& name, nn::Var& v, nn::ParamKind) {
    for (int64_t i = 0; i < v->value.numel(); ++i) ASSERT_TRUE(std::isfinite(v->value.at(i))) << name;
  });
  (void)count_lines;
}

// Calibrate, then eval / generate / chat a quantized model; bad quantization input is one line.
TEST(Cli, CalibrateAndQuantizedEvalGenerateChat) {
  Corpus c;
  test::TempDir run;
  const std::string tiny = " --d-model 32 --n-layers 1 --n-heads 2 --n-kv-heads 2 --d-ff 64 --seq-len 8 --batch-size 2 --threads 1"
                           " --sample-tokens 0 --eval-every 0";
  ASSERT_EQ(run_clm("train --data " + c.dir.path + tiny + " --steps 4 --out " + run.path + "/r").rc, 0);
  const std::string m = " --model " + run.path + "/r --threads 1";
  CliRun cal = run_clm("calibrate" + m + " --data " + c.dir.path + " --windows 4 --window 8 --out " + run.path + "/cal.json");
  ASSERT_EQ(cal.rc, 0) << cal.err;
  EXPECT_NE(cal.out.find("8 Linears in 5 input groups"), std::string::npos) << cal.out;
  const std::string ev = "eval" + m + " --data " + c.dir.path + " --split test --window 8 --calib " + run.path + "/cal.json";
  CliRun base = run_clm("eval" + m + " --data " + c.dir.path + " --split test --window 8 --infer --report " + run.path + "/rep.jsonl");
  ASSERT_EQ(base.rc, 0) << base.err;
  for (const char* q : {"crossquant --quant-opt alpha=0.4", "arcquant", "smoothquant", "rtn --quant-opt w=nvfp4 --quant-opt a=nvfp4"}) {
    CliRun e = run_clm(ev + " --quant " + q + " --report " + run.path + "/rep.jsonl");
    EXPECT_EQ(e.rc, 0) << q << ": " << e.err;
    EXPECT_NE(e.out.find("bits/weight"), std::string::npos) << e.out;
  }
  const std::string rep = read_file(run.path + "/rep.jsonl");
  EXPECT_EQ(count_lines(rep), 5);
  EXPECT_NE(rep.find("\"method\":\"arcquant\""), std::string::npos);
  CliRun p = run_clm("plot " + run.path + "/rep.jsonl -o " + run.path + "/q.svg");
  EXPECT_EQ(p.rc, 0) << p.err;
  EXPECT_NE(read_file(run.path + "/q.svg").find("crossquant alpha=0.4"), std::string::npos);
  CliRun g = run_clm("generate" + m + " --prompt 'the cat' --max-new-tokens 4 --temperature 0 --quant rtn --quant-opt a=int8");
  EXPECT_EQ(g.rc, 0) << g.err;
  EXPECT_NE(g.err.find("quantized: rtn"), std::string::npos) << g.err;
  // chat needs a tokenizer with special tokens: stories260K's (committed fixture)
  {
    write_file_atomic(run.path + "/in.txt", "Hello\n");
    CliRun ch = run_clm("chat --model " + test::fixture("stories260K/stories260K.bin") + " --tokenizer " +
                        test::fixture("stories260K/tok512.bin") + " --template llama2 --max-new-tokens 3 --temperature 0 --threads 1"
                        " --quant rtn --quant-opt a=int8 < " + run.path + "/in.txt");
    EXPECT_EQ(ch.rc, 0) << ch.err;
    EXPECT_NE(ch.err.find("| 3 tokens at"), std::string::npos) << ch.err;  // one reply of 3 tokens
  }
  // bad input
  expect_error(run_clm(ev + " --quant gptq"), "unknown quantization method 'gptq'");
  expect_error(run_clm(ev + " --quant rtn --quant-opt w=int3"), "unknown number format 'int3'");
  expect_error(run_clm(ev + " --quant crossquant --quant-opt alpha=2"), "alpha");
  expect_error(run_clm(ev + " --quant arcquant --quant-opt speed=9"), "speed");
  expect_error(run_clm("eval" + m + " --data " + c.dir.path + " --quant arcquant"), "needs calibration statistics");
  expect_error(run_clm("eval" + m + " --data " + c.dir.path + " --quant-opt a=int8"), "need --quant");
  write_file_atomic(run.path + "/nan.json", std::regex_replace(read_file(run.path + "/cal.json"), std::regex("\"absmax\":\\[[-0-9.e]+"), "\"absmax\":[NaN"));
  expect_error(run_clm("eval" + m + " --data " + c.dir.path + " --quant arcquant --calib " + run.path + "/nan.json"), "nan.json");
  expect_error(run_clm("eval" + m + " --data " + c.dir.path + " --quant arcquant --calib /nonexistent/c.json"), "/nonexistent/c.json");
  expect_error(run_clm("calibrate" + m + " --out " + run.path + "/x.json"), "give the calibration text");
  expect_error(run_clm("calibrate" + m + " --data " + c.dir.path + " --windows 0 --out " + run.path + "/x.json"), "--windows");
}

// clm quantize: one command writes a folder that info, eval, generate and chat load, with the numbers
// of the same method applied in memory; and it refuses what it must.
TEST(Cli, QuantizeWritesAFolderEveryCommandLoads) {
  Corpus c;
  test::TempDir run;
  const std::string tiny = " --d-model 32 --n-layers 1 --n-heads 2 --n-kv-heads 2 --d-ff 64 --seq-len 8 --batch-size 2 --threads 1"
                           " --sample-tokens 0 --eval-every 0";
  ASSERT_EQ(run_clm("train --data " + c.dir.path + tiny + " --steps 4 --out " + run.path + "/r").rc, 0);
  const std::string m = " --model " + run.path + "/r --threads 1", q = run.path + "/q";
  CliRun qz = run_clm("quantize" + m + " --quant arcquant --data " + c.dir.path + " --windows 4 --window 8 --out " + q);
  ASSERT_EQ(qz.rc, 0) << qz.err;
  EXPECT_NE(qz.out.find("quantized: arcquant"), std::string::npos) << qz.out;
  for (const char* f : {"config.json", "model.safetensors", "quant.safetensors", "quant.json", "tokenizer.json", "calibration.json"})
    EXPECT_TRUE(fs::exists(q + "/" + f)) << f;
  CliRun in = run_clm("info --model " + q);
  ASSERT_EQ(in.rc, 0) << in.err;
  EXPECT_NE(in.out.find("quantized: arcquant"), std::string::npos) << in.out;
  EXPECT_NE(in.out.find("bits/activation"), std::string::npos) << in.out;
  EXPECT_NE(in.out.find("arcquant:w4a4-nvfp4+KE"), std::string::npos) << in.out;
  // the folder scores and generates as the in-memory method with the same statistics
  auto ppl = [](const std::string& out) { return out.substr(out.find("perplexity"), 40); };
  const std::string ev = "eval --threads 1 --data " + c.dir.path + " --split test --window 8";
  CliRun e1 = run_clm(ev + " --model " + q), e2 = run_clm(ev + m.substr(0, m.find(" --threads")) + " --quant arcquant --calib " + q + "/calibration.json");
  ASSERT_EQ(e1.rc, 0) << e1.err;
  ASSERT_EQ(e2.rc, 0) << e2.err;
  EXPECT_EQ(ppl(e1.out), ppl(e2.out));
  EXPECT_NE(e1.out.find("quantized: arcquant"), std::string::npos) << e1.out;
  const std::string gen = " --prompt 'the cat' --max-new-tokens 6 --temperature 0 --threads 1";
  CliRun g1 = run_clm("generate --model " + q + gen), g2 = run_clm("generate --model " + run.path + "/r --quant arcquant --calib " + q + "/calibration.json" + gen);
  ASSERT_EQ(g1.rc, 0) << g1.err;
  EXPECT_EQ(g1.out, g2.out);
  // chat needs a tokenizer with special tokens: stories260K's (committed fixture), weight-only NVFP4
  {
    const std::string s = run.path + "/stories";
    ASSERT_EQ(run_clm("quantize --model " + test::fixture("stories260K/stories260K.bin") + " --tokenizer " + test::fixture("stories260K/tok512.bin") +
                      " --quant rtn --quant-opt w=nvfp4 --threads 1 --out " + s).rc, 0);
    write_file_atomic(run.path + "/in.txt", "Hello\n");
    CliRun ch = run_clm("chat --model " + s + " --template llama2 --max-new-tokens 3 --temperature 0 --threads 1 < " + run.path + "/in.txt");
    EXPECT_EQ(ch.rc, 0) << ch.err;
    EXPECT_NE(ch.err.find("| 3 tokens at"), std::string::npos) << ch.err;
  }
  // weight-only and W8A8 folders, replacing the folder with --force
  for (const char* o : {"rtn --quant-opt w=int4/g32", "crossquant --calib " , "rtn --quant-opt w=int8 --quant-opt a=int8"}) {
    std::string args = std::string(o);
    if (args.find("--calib") != std::string::npos) args += q + "/calibration.json";
    CliRun r = run_clm("quantize" + m + " --quant " + args + " --out " + run.path + "/q2 --force");
    ASSERT_EQ(r.rc, 0) << o << ": " << r.err;
    CliRun e = run_clm(ev + " --model " + run.path + "/q2");
    EXPECT_EQ(e.rc, 0) << o << ": " << e.err;
  }
  // refusals, nothing overwritten
  const std::string before = read_file(q + "/quant.json");
  expect_error(run_clm("quantize" + m + " --quant rtn --out " + q), "exists and is not empty (give --force");
  expect_error(run_clm("quantize" + m + " --quant rtn --quant-opt w=mxfp4 --quant-opt a=mxfp4 --out " + q + " --force"), "fake-quant only");
  expect_error(run_clm("quantize" + m + " --quant gptq --out " + run.path + "/q3"), "unknown quantization method 'gptq'");
  expect_error(run_clm("quantize" + m + " --quant smoothquant --out " + run.path + "/q3"), "needs calibration");
  expect_error(run_clm("quantize" + m + " --out " + run.path + "/q3"), "--quant METHOD is required");
  EXPECT_EQ(read_file(q + "/quant.json"), before);
  EXPECT_FALSE(fs::exists(run.path + "/q3"));
  expect_error(run_clm("quantize --model " + q + " --quant rtn --out " + run.path + "/q3"), "is a quantized checkpoint");
  expect_error(run_clm("convert --model " + q + " --to llama2c --out " + run.path + "/x.bin"), "convert needs the dense weights");
  expect_error(run_clm("convert" + m.substr(0, m.find(" --threads")) + " --to gguf --dtype q4_k --out " + run.path + "/x.gguf"),
               "type must be f32, f16, bf16, q8_0 or mxfp4, not 'q4_k'");
  expect_error(run_clm("train --data " + c.dir.path + " --init-from " + q + " --steps 2 --threads 1 --out " + run.path + "/t"),
               "train --init-from needs the dense weights");
  expect_error(run_clm("eval --model " + q + " --data " + c.dir.path + " --quant rtn"), "already quantized");
  // corrupt parts name the file
  const std::string st = read_file(q + "/quant.safetensors");
  write_file_atomic(q + "/quant.safetensors", st.substr(0, st.size() / 2));
  expect_error(run_clm("generate --model " + q + gen), "quant.safetensors");
  write_file_atomic(q + "/quant.safetensors", st);
  write_file_atomic(q + "/quant.json", before.substr(0, before.size() / 2));
  expect_error(run_clm("info --model " + q), "quant.json': bad JSON");
  write_file_atomic(q + "/quant.json", std::regex_replace(before, std::regex("\"kind\": \"nvfp4\""), "\"kind\": \"nvfp5\""));
  expect_error(run_clm("eval --model " + q + " --data " + c.dir.path), "unknown stored weight format 'nvfp5'");
}

// The vision-language task end to end: train --task shapes (resumed exactly: its batches are a
// function of the step), kv-bench over policies with its JSONL and plot, KV flags in generate,
// long-document kv-bench on a text model, and the errors of each.
TEST(Cli, VisionTaskKVBenchAndKVFlags) {
  Corpus c;
  test::TempDir d;
  const std::string vlm = "train --task shapes --d-model 16 --n-layers 2 --n-heads 2 --n-kv-heads 1 --d-ff 32 --seq-len 64 --batch-size 4"
                          " --threads 1 --eval-every 0 --ckpt-every 2 --steps 4 --out ";
  CliRun r = run_clm(vlm + d.path + "/a");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("test (short answers, 500 held-out scenes) accuracy"), std::string::npos) << r.out;
  ASSERT_EQ(run_clm(vlm + d.path + "/b").rc, 0);
  r = run_clm("train --task shapes --resume " + d.path + "/b/step-00000002 --threads 1");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(read_file(d.path + "/a/step-00000004/model.safetensors"), read_file(d.path + "/b/step-00000004/model.safetensors"));
  r = run_clm("kv-bench --model " + d.path + "/a --items 4 --budgets 0.5 --policies full,h2o,hae,fastv,objects --threads 1 --out " + d.path +
              "/kv.jsonl --plot " + d.path + "/kv.svg");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("hae"), std::string::npos) << r.out;
  std::istringstream rows(read_file(d.path + "/kv.jsonl"));
  for (std::string line; std::getline(rows, line);) {  // the ceiling keeps every object patch
    const auto j = nlohmann::json::parse(line);
    const std::string p = j["policy"];
    const double obj = j["object_kept"], bg = j["background_kept"];
    if (p == "full" || p == "objects") {
      EXPECT_EQ(obj, 1.0) << line;
    }
    if (p == "full" || p == "objects") {
      EXPECT_EQ(bg < 1.0, p == "objects") << line;
    }
  }
  EXPECT_NE(read_file(d.path + "/kv.svg").find(">fastv<"), std::string::npos);
  EXPECT_NE(read_file(d.path + "/kv.jsonl").find("\"kv_frac\""), std::string::npos);
  expect_error(run_clm("kv-bench --model " + d.path + "/a --budgets 1.5"), "must be in (0, 1]");
  expect_error(run_clm("kv-bench --model " + d.path + "/a --policies lru"), "unknown kv policy 'lru'");
  expect_error(run_clm("kv-bench --model " + d.path + "/a --kv-opt hae.colour=1"), "colour");
  expect_error(run_clm(vlm + d.path + "/x --data " + c.dir.path), "renders its own data");
  // a text model: KV flags in generate, long-document kv-bench, and no images
  ASSERT_EQ(run_clm("train --data " + c.dir.path + kTiny + " --steps 2 --out " + d.path + "/t").rc, 0);
  r = run_clm("generate --model " + d.path + "/t --prompt the --max-new-tokens 6 --kv-policy h2o --kv-budget 0.5");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("kv policy h2o"), std::string::npos) << r.err;
  expect_error(run_clm("generate --model " + d.path + "/t --prompt the --kv-policy h2o --kv-budget 0"), "must be in (0, 1]");
  expect_error(run_clm("generate --model " + d.path + "/t --prompt the --kv-budget 0.5"), "need --kv-policy");
  expect_error(run_clm("chat --model " + d.path + "/t --kv-policy fastv --kv-opt layer=-1"), "layer");
  r = run_clm("kv-bench --model " + d.path + "/t --task ppl --data " + c.dir.path + " --ctx 16 --chunk 4 --items 2 --budgets 0.5 --threads 1");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("streaming"), std::string::npos) << r.out;
  expect_error(run_clm("kv-bench --model " + d.path + "/t"), "needs a vision-language model");
  // long generation: a row per policy with its judgement, JSONL rows, and bad flags
  r = run_clm("kv-bench --model " + d.path + "/t --task gen --data " + c.dir.path + " --ctx 8 --gen 12 --temperature 1 --items 2 --budgets 0.5" +
              " --policies full,streaming --threads 1 --out " + d.path + "/gen.jsonl");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("kl 0.0000"), std::string::npos) << "the full cache judged against itself: " << r.out;
  EXPECT_EQ(count_lines(read_file(d.path + "/gen.jsonl")), 2);
  expect_error(run_clm("kv-bench --model " + d.path + "/t --task gen --data " + c.dir.path + " --gen 0"), "--gen must be >= 1");
  expect_error(run_clm("kv-bench --model " + d.path + "/t --task gen --data " + c.dir.path + " --temperature -1"), "--temperature >= 0");
  expect_error(run_clm("kv-bench --model " + d.path + "/t --task story"), "--task must be shapes, ppl or gen");
}

// clm eval --task on the fixture's byte model and invented task files: the table, the report, and
// each bad input a one-line error.
TEST(Cli, EvalTasksAndTheirErrors) {
  const std::string fix = std::string(CLM_SOURCE_DIR) + "/tests/fixtures/tasks";
  const std::string model = " --model " + fix + "/byte_llama --threads 1";
  test::TempDir t;
  CliRun r = run_clm("eval" + model + " --task piqa --task winogrande --tasks-dir " + fix + "/data --batch-size 2 --report " + t.path + "/r.jsonl");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("piqa"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("average acc"), std::string::npos) << r.out;
  EXPECT_EQ(count_lines(read_file(t.path + "/r.jsonl")), 2);
  expect_error(run_clm("eval" + model + " --task piqa"), "--tasks-dir");
  expect_error(run_clm("eval" + model + " --task mmlu --tasks-dir " + fix + "/data"), "unknown task 'mmlu'");
  expect_error(run_clm("eval" + model + " --task piqa --tasks-dir " + t.path), "missing");
  expect_error(run_clm("eval" + model + " --task piqa --tasks-dir /nonexistent/tasks"), "does not exist");
}

TEST(Cli, ServeRefusesBadFlags) {
  const std::string model = " --model " + std::string(CLM_SOURCE_DIR) + "/tests/fixtures/tasks/byte_llama";
  expect_error(run_clm("serve" + model + " --port 70000"), "--port");
  expect_error(run_clm("serve" + model + " --slots 0"), "--slots");
  expect_error(run_clm("serve" + model + " --template nosuch --port 0"), "unknown chat template 'nosuch'");
  expect_error(run_clm("serve --model /nonexistent/model"), "/nonexistent/model");
}

// clm plot on clm_bench_serve rows: one line per label through its (clients, tokens/s) points.
TEST(Cli, PlotsServingThroughput) {
  test::TempDir d;
  write_file_atomic(d.path + "/serve.jsonl",
                    "{\"bench\":\"serve\",\"label\":\"model A\",\"clients\":1,\"tokens_per_s\":50}\n"
                    "{\"bench\":\"serve\",\"label\":\"model A\",\"clients\":16,\"tokens_per_s\":210}\n"
                    "{\"bench\":\"serve\",\"label\":\"model B\",\"clients\":1,\"tokens_per_s\":150}\n");
  CliRun r = run_clm("plot " + d.path + "/serve.jsonl");
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string svg = read_file(d.path + "/serve.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("model A"), std::string::npos);
  EXPECT_NE(svg.find("model B"), std::string::npos);
  EXPECT_NE(svg.find("concurrent clients"), std::string::npos);
}
