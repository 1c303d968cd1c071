// Zero-shot task evaluation against the PyTorch reference of tools/make_task_fixtures.py: every
// request as lm-eval builds it, its log-likelihood to 1e-4, greedy flags, acc and acc_norm; the
// real task files (when ../shared is present) hash to the same requests; bad folders and files
// are one-line errors. Also infer_batch against one sequence at a time.
#include <fstream>
#include <nlohmann/json.hpp>

#include "common.h"
#include "eval/tasks.h"
#include "models/io.h"
#include "models/lm.h"
#include "tokenizers/tokenizer.h"

using namespace clm;

namespace {

const std::string kDir = std::string(CLM_SOURCE_DIR) + "/tests/fixtures/tasks";

// The byte-level tiny Llama of the fixture.
std::unique_ptr<LanguageModel> byte_llama() { return load_model(kDir + "/byte_llama").model; }

nlohmann::json reference() {
  std::ifstream f(kDir + "/reference.json");
  return nlohmann::json::parse(f);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

TEST(Tasks, RequestsAndLogLikelihoodsMatchPyTorch) {
  const auto ref = reference();
  auto model = byte_llama();
  ByteTokenizer tok;
  for (int64_t batch : {1, 4}) {
    for (auto& [name, t] : ref["tasks"].items()) {
      SCOPED_TRACE(name + " batch " + std::to_string(batch));
      const Task task = load_task(name, kDir + "/data");
      std::vector<TaskRequest> reqs;
      for (const auto& e : task.examples) reqs.insert(reqs.end(), e.choices.begin(), e.choices.end());
      ASSERT_EQ(reqs.size(), t["requests"].size());
      for (size_t i = 0; i < reqs.size(); ++i) {
        EXPECT_EQ(reqs[i].context, t["requests"][i][0].get<std::string>()) << "request " << i;
        EXPECT_EQ(reqs[i].continuation, t["requests"][i][1].get<std::string>()) << "request " << i;
      }
      ScoreOptions o;
      o.batch = batch;
      o.max_len = ref["max_len"].get<int64_t>();
      const TaskResult r = evaluate_task(*model, tok, task, o);
      ASSERT_EQ(r.logprobs.size(), reqs.size());
      for (size_t i = 0; i < reqs.size(); ++i) EXPECT_NEAR(r.logprobs[i], t["logprob"][i].get<double>(), 1e-4) << "request " << i;
      const auto ll = score_requests(*model, tok, reqs, o);
      for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(ll[i].greedy, t["greedy"][i].get<bool>()) << "request " << i;
      EXPECT_DOUBLE_EQ(r.acc, t["acc"].get<double>());
      if (t.contains("acc_norm")) EXPECT_DOUBLE_EQ(r.acc_norm, t["acc_norm"].get<double>());
      else EXPECT_LT(r.acc_norm, 0);
      if (t.contains("ppl")) EXPECT_NEAR(r.ppl / t["ppl"].get<double>(), 1.0, 1e-5);
    }
  }
}

// A request whose continuation is the model's own greedy choice is greedy; appending a
// different byte is not. (Known answer independent of the fixture's numbers.)
TEST(Tasks, GreedyFlagFollowsTheArgmax) {
  auto model = byte_llama();
  ByteTokenizer tok;
  InferState s = model->make_state(48);
  const std::vector<int32_t> ctx = tok.encode("hello world");
  const float* lg = model->infer(s, ctx);
  const int32_t best = int32_t(std::max_element(lg, lg + 256) - lg);
  const std::string next(1, char(best)), other(1, char(best == 'q' ? 'z' : 'q'));
  ScoreOptions o;
  const auto r = score_requests(*model, tok, {{"hello world", next}, {"hello world", other}}, o);
  EXPECT_TRUE(r[0].greedy);
  EXPECT_FALSE(r[1].greedy);
  EXPECT_GT(r[0].logprob, r[1].logprob);
}

TEST(Tasks, LmEvalEncodingMovesTrailingSpacesAndFillsAnEmptyContext) {
  ByteTokenizer tok;
  std::vector<int32_t> c, k;
  encode_request(tok, {"ab ", "c"}, false, c, k);
  EXPECT_EQ(c, (std::vector<int32_t>{'a', 'b'}));
  EXPECT_EQ(k, (std::vector<int32_t>{' ', 'c'}));
  encode_request(tok, {"", "xy"}, false, c, k);
  EXPECT_EQ(c, (std::vector<int32_t>{tok.eos_id()}));  // no BOS: the EOS token stands in
  EXPECT_EQ(k, (std::vector<int32_t>{'x', 'y'}));
}

TEST(Tasks, HellaswagPreprocessIsLmEvals) {
  EXPECT_EQ(hellaswag_preprocess("  Fix it [title] Take the wheel. [step] Pull  "), "Fix it. Take the wheel. Pull");
  EXPECT_EQ(hellaswag_preprocess("a   b"), "a  b");  // Python's replace is one pass
  EXPECT_EQ(hellaswag_preprocess("[header] x"), " x");  // stripped before the tags go, as lm-eval does
}

TEST(RealData, TaskPromptsMatchLmEvalOnTheRealFiles) {
  const std::string shared = test::shared_dir();
  if (shared.empty() || !std::filesystem::exists(shared + "/data/tasks"))
    GTEST_SKIP() << "no ../shared/data/tasks (set CLM_SHARED to the shared assets folder)";
  std::ifstream f(kDir + "/real_prompts.json");
  const auto real = nlohmann::json::parse(f);
  for (auto& [name, t] : real.items()) {
    SCOPED_TRACE(name);
    const Task task = load_task(name, shared + "/data/tasks");
    EXPECT_EQ(int64_t(task.examples.size()), t["count"].get<int64_t>());
    for (size_t i = 0; i < t["hash"].size() && i < task.examples.size(); ++i) {
      std::string key;
      for (const auto& r : task.examples[i].choices) key += r.context + '\0' + r.continuation + '\0';
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a(key));
      EXPECT_EQ(std::string(hex), t["hash"][i].get<std::string>()) << "example " << i << ": " << task.examples[i].choices[0].context;
      EXPECT_EQ(task.examples[i].gold, t["gold"][i].get<int>()) << "example " << i;
    }
  }
}

TEST(Tasks, BadFoldersAndFilesAreNamedErrors) {
  auto expect_error = [](const std::function<void()>& f, const std::string& part) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one containing '" << part << "'";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error([] { load_task("mmlu", kDir + "/data"); }, "unknown task 'mmlu'");
  expect_error([] { load_task("piqa", "/nonexistent/tasks"); }, "does not exist");
  test::TempDir d;
  expect_error([&] { load_task("piqa", d.path); }, "missing");
  std::filesystem::create_directories(d.path + "/piqa");
  std::ofstream(d.path + "/piqa/valid.jsonl") << "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{broken\n";
  std::ofstream(d.path + "/piqa/valid-labels.lst") << "0\n1\n";
  expect_error([&] { load_task("piqa", d.path); }, "valid.jsonl:2");
  std::ofstream(d.path + "/piqa/valid.jsonl") << "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n";
  expect_error([&] { load_task("piqa", d.path); }, "2 labels for 1 examples");
  std::filesystem::create_directories(d.path + "/hellaswag");
  std::ofstream(d.path + "/hellaswag/hellaswag_val_full.txt") << "ctx\n1\na\nb\nc\n";
  expect_error([&] { load_task("hellaswag", d.path); }, "not 6 per example");
  std::ofstream(d.path + "/hellaswag/hellaswag_val_full.txt") << "ctx\n7\na\nb\nc\nd\n";
  expect_error([&] { load_task("hellaswag", d.path); }, "gold must be 0..3");
  std::filesystem::create_directories(d.path + "/arc_easy");
  std::ofstream(d.path + "/arc_easy/ARC-Easy-Test.jsonl")
      << R"({"id": "X", "question": {"stem": "s", "choices": [{"text": "t", "label": "A"}]}, "answerKey": "B"})" << "\n";
  expect_error([&] { load_task("arc_easy", d.path); }, "answerKey 'B'");
}

// infer_batch (one GEMM per weight across sequences) gives every sequence what infer gives it
// alone: prompts of different lengths, a shared prefix, then decoding steps.
TEST(InferBatch, EqualsOneSequenceAtATime) {
  auto model = byte_llama();
  model->pack("f32");
  const std::vector<std::vector<int32_t>> prompts = {{72, 101, 108, 108, 111}, {72, 101}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
  std::vector<InferState> solo, batch;
  for (size_t i = 0; i < prompts.size(); ++i) solo.push_back(model->make_state(32)), batch.push_back(model->make_state(32));
  std::vector<std::vector<float>> want;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const float* lg = model->infer(solo[i], prompts[i]);
    want.emplace_back(lg, lg + 257);
  }
  std::vector<InferState*> st;
  std::vector<std::span<const int32_t>> ids;
  for (size_t i = 0; i < prompts.size(); ++i) st.push_back(&batch[i]), ids.emplace_back(prompts[i]);
  model->infer_batch(st, ids);
  std::vector<std::vector<int32_t>> next(prompts.size());
  for (int step = 0; step < 4; ++step) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      for (int v = 0; v < 257; ++v) ASSERT_NEAR(batch[i].logits[size_t(v)], want[i][size_t(v)], 1e-4) << "seq " << i << " step " << step;
      EXPECT_EQ(batch[i].next_pos, solo[i].next_pos);
      next[i] = {int32_t(std::max_element(want[i].begin(), want[i].end()) - want[i].begin())};
      const float* lg = model->infer(solo[i], next[i]);
      want[i].assign(lg, lg + 257);
    }
    ids.clear();
    for (size_t i = 0; i < prompts.size(); ++i) ids.emplace_back(next[i]);
    model->infer_batch(st, ids);
  }
  EXPECT_THROW(model->infer_batch(std::vector<InferState*>{st[0], st[0]}, std::vector<std::span<const int32_t>>{ids[0], ids[0]}),
               std::invalid_argument);
}
