// Tokenizers, corpora, batching and the perplexity protocol; known answers on the real PTB files
// when ../shared is present.
#include <fcntl.h>
#include <sys/stat.h>

#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "common.h"
#include "models/transformer.h"
#include "data/dataset.h"
#include "data/units.h"
#include "eval/perplexity.h"
#include "models/io.h"
#include "tokenizers/llama2c.h"
#include "util/fs.h"

using namespace clm;

TEST(WordTokenizer, ConventionEosPerLineUnkAndOrder) {
  WordTokenizer t = WordTokenizer::fit("the cat sat\n\nthe dog <unk>\n");
  // <eos>, <unk>, then by count desc, ties by byte order
  EXPECT_EQ(t.vocab_size(), 2 + 4);
  auto ids = t.encode("the cat\n\nzebra\n");
  // "the"(2) "cat" <eos> <eos>(empty line) <unk> <eos>
  ASSERT_EQ(ids.size(), 6u);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[2], 0);
  EXPECT_EQ(ids[3], 0);
  EXPECT_EQ(ids[4], 1);
  EXPECT_EQ(t.decode(t.encode("the cat sat\n")), "the cat sat\n");
  auto j = t.to_json();
  auto t2 = tokenizer_from_json(j, "mem");
  EXPECT_EQ(t2->encode("dog sat"), t.encode("dog sat"));
}

TEST(ByteTokenizer, RoundTripsAnyBytes) {
  ByteTokenizer t;
  std::string s = "h\xc3\xa9llo \x00\xff\n";
  s.push_back('\0');
  EXPECT_EQ(t.decode(t.encode(s)), s);
  EXPECT_EQ(t.encode("A")[0], 65);
  EXPECT_THROW(t.decode({300}), std::out_of_range);
}

TEST(Tokenizer, UnknownTypeIsAnError) {
  EXPECT_THROW(tokenizer_from_json(nlohmann::json{{"type", "wordpiece"}}, "x.json"), std::runtime_error);
}

TEST(StreamLoader, LanesAreContiguousAndWrap) {
  std::vector<int32_t> s(41);
  for (int i = 0; i < 41; ++i) s[i] = i;
  StreamLoader L(s, 2, 4);  // lanes of 20 tokens: [0,20), [20,40)
  Tensor x, y;
  L.next(x, y);
  EXPECT_EQ(x.data<int32_t>()[0], 0);
  EXPECT_EQ(x.data<int32_t>()[4], 20);
  EXPECT_EQ(y.data<int32_t>()[3], 4);
  L.next(x, y);
  EXPECT_EQ(x.data<int32_t>()[0], 4);  // continues the lane
  for (int i = 0; i < 2; ++i) L.next(x, y);  // positions 8, 12
  EXPECT_EQ(L.state().epoch, 0);
  L.next(x, y);  // position 16: 16 + 4 + 1 > 20, wraps to the lane start
  EXPECT_EQ(L.state().epoch, 1);
  EXPECT_EQ(x.data<int32_t>()[0], 0);
  EXPECT_THROW(StreamLoader(s, 8, 8), std::invalid_argument);
  EXPECT_THROW(StreamLoader(s, 0, 8), std::invalid_argument);
}

// Masked-LM batches: masked positions hold the mask id and target the original token, the rest
// keep their token and are not scored; about p of the tokens are masked; the same seed, the same mask.
TEST(MaskTokens, MaskedTargetsOnlyAndRate) {
  std::vector<int32_t> ids(4000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i % 97);
  Tensor x = Tensor::from(ids, {4000}), y, x2 = x.clone(), y2;
  Rng a(5), b(5);
  mask_tokens(x, y, 99, 0.15, a);
  mask_tokens(x2, y2, 99, 0.15, b);
  int64_t masked = 0;
  for (int64_t i = 0; i < 4000; ++i) {
    const int32_t xi = x.data<int32_t>()[i], yi = y.data<int32_t>()[i];
    if (xi == 99) {
      EXPECT_EQ(yi, ids[size_t(i)]);
      ++masked;
    } else {
      EXPECT_EQ(yi, -1);
      EXPECT_EQ(xi, ids[size_t(i)]);
    }
    EXPECT_EQ(x2.data<int32_t>()[i], xi);
  }
  EXPECT_NEAR(double(masked) / 4000, 0.15, 0.02);
  Tensor one = Tensor::from(std::vector<int32_t>{7}, {1}), t;
  Rng c(1);
  mask_tokens(one, t, 99, 1e-9, c);  // never empty: one token is always masked
  EXPECT_EQ(one.data<int32_t>()[0], 99);
  EXPECT_EQ(t.data<int32_t>()[0], 7);
}

TEST(Corpus, FolderLayoutAndErrors) {
  test::TempDir d;
  EXPECT_THROW(load_text_dir(d.path), std::runtime_error);  // no files
  write_file_atomic(d.path + "/x.train.txt", "a b\n");
  write_file_atomic(d.path + "/x.valid.txt", "a\n");
  write_file_atomic(d.path + "/x.test.txt", "  \n");
  try {
    load_text_dir(d.path);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("empty corpus"), std::string::npos);
  }
  write_file_atomic(d.path + "/x.test.txt", "b\n");
  TextSplits t = load_text_dir(d.path);
  EXPECT_EQ(t.train, "a b\n");
  EXPECT_THROW(load_text_files(d.path + "/nope", d.path + "/x.valid.txt", d.path + "/x.test.txt"), std::runtime_error);
}

TEST(Perplexity, EveryTokenScoredOnceUnderBothProtocols) {
  ModelConfig c;
  c.vocab_size = 11, c.d_model = 16, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.d_ff = 16;
  TransformerLM m(c, 1);
  std::vector<int32_t> s;
  for (int i = 0; i < 103; ++i) s.push_back((i * 7) % 11);
  auto a = perplexity(m, s, 16, 16, 4);
  EXPECT_EQ(a.tokens, 102);
  auto b = perplexity(m, s, 16, 4, 3);
  EXPECT_EQ(b.tokens, 102);
  EXPECT_NE(b.protocol.find("stride 4"), std::string::npos);
  // with full context the model is the same function, so one window == sliding with stride 1
  auto w = perplexity(m, std::vector<int32_t>(s.begin(), s.begin() + 17), 16, 16, 1);
  auto sl = perplexity(m, std::vector<int32_t>(s.begin(), s.begin() + 17), 16, 1, 2);
  EXPECT_EQ(w.tokens, 16);
  EXPECT_EQ(sl.tokens, 16);
  EXPECT_NEAR(w.mean_nll(), sl.mean_nll(), 1e-5);
  EXPECT_GT(a.ppl(), 1.0);
}

// nll_sum against a direct sum of -log softmax(target): each window run alone, each target scored by
// the first window whose span reaches it. Catches targets shifted by one, double counting, wrong context.
TEST(Perplexity, NllSumEqualsDirectSumOverWindows) {
  ModelConfig c;
  c.vocab_size = 11, c.d_model = 16, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.d_ff = 16, c.init_std = 0.3;
  TransformerLM m(c, 4);
  std::vector<int32_t> s;
  for (int i = 0; i < 41; ++i) s.push_back((i * i + 3 * i) % 11);
  for (auto [T, stride] : std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {8, 3}, {8, 1}}) {
    ag::NoGrad ng;
    double want = 0;
    int64_t n = 0, done = 0;  // targets up to stream index `done` are scored
    for (int64_t st = 0; done < int64_t(s.size()) - 1; st += stride) {
      const int64_t len = std::min<int64_t>(T, int64_t(s.size()) - 1 - st);
      Tensor x = Tensor::from(std::vector<int32_t>(s.begin() + st, s.begin() + st + len), {len});
      Tensor l = m.forward(x, 1, len)->value;
      for (int64_t t = 0; t < len; ++t) {
        if (st + t + 1 <= done) continue;
        const float* row = l.data<float>() + t * 11;
        double mx = *std::max_element(row, row + 11), z = 0;
        for (int v = 0; v < 11; ++v) z += std::exp(double(row[v]) - mx);
        want += -(double(row[s[st + t + 1]]) - mx - std::log(z));
        ++n;
      }
      done = st + len;
    }
    auto got = perplexity(m, s, T, stride, 3);
    EXPECT_EQ(got.tokens, n);
    EXPECT_NEAR(got.nll_sum, want, 1e-4 * want) << "T " << T << " stride " << stride;
  }
}

TEST(RealData, PtbWordCountsMatchTheLiterature) {
  std::string sh = test::shared_dir();
  if (sh.empty() || !std::filesystem::exists(sh + "/data/ptb")) GTEST_SKIP() << "../shared/data/ptb not present";
  Dataset d = make_dataset(load_text_dir(sh + "/data/ptb"), "word");
  EXPECT_EQ(d.tok->vocab_size(), 10000);  // 9,999 words + <eos> (<unk> is already a PTB word)
  EXPECT_EQ(d.train.size(), 929589u);     // 887,521 words + 42,068 <eos>
  EXPECT_EQ(d.valid.size(), 73760u);
  EXPECT_EQ(d.test.size(), 82430u);
}

TEST(Corpus, FortunesDefaultCorpusSplits) {
  CLM_NEED_ASSET(std::filesystem::exists("/usr/share/games/fortunes/fortunes"), "Debian fortunes not installed (scripts/setup.sh installs it)");
  TextSplits t = fortunes_corpus();
  EXPECT_GT(t.train.size(), 10 * t.valid.size());
  EXPECT_GT(t.valid.size(), 50000u);
  EXPECT_EQ(t.valid.back(), '\n');
}

// A FIFO or a device where a file is expected (config.json, tokenizer.json, tokenizer.bin): a
// stream read would wait for a writer forever, or fill memory from /dev/zero. The reads must
// refuse at once, naming the path. (Each read runs on its own thread so that a blocked one fails
// the test after 10 s instead of hanging it; the FIFO is then opened for writing to release it.)
TEST(Tokenizer, FifosAndDevicesAreRefusedPromptly) {
  test::TempDir d;
  const std::string fifo = d.path + "/tokenizer.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto error_of = [&](std::function<void()> f) -> std::string {
    auto result = std::make_shared<std::promise<std::string>>();
    std::future<std::string> done = result->get_future();
    std::thread([f, result] {
      try {
        f();
        result->set_value("");
      } catch (const std::exception& e) {
        result->set_value(e.what());
      }
    }).detach();
    if (done.wait_for(std::chrono::seconds(10)) == std::future_status::ready) return done.get();
    int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // let the blocked reader see end of file
    if (w >= 0) ::close(w);
    done.wait_for(std::chrono::seconds(10));
    return "still reading after 10 s";
  };
  auto expect_refused = [&](std::function<void()> f, const std::string& path) {
    const std::string e = error_of(f);
    EXPECT_NE(e.find("cannot read '" + path + "': not a regular file"), std::string::npos) << e;
  };
  expect_refused([&] { read_file(fifo); }, fifo);
  expect_refused([&] { map_file(fifo); }, fifo);
  expect_refused([&] { load_tokenizer(fifo); }, fifo);
  expect_refused([&] { Llama2cTokenizer::load(fifo); }, fifo);
  expect_refused([&] { read_file("/dev/zero"); }, "/dev/zero");
  expect_refused([&] { Llama2cTokenizer::load("/dev/zero"); }, "/dev/zero");
  // a CompactLM folder whose config.json is a FIFO
  ASSERT_EQ(::mkfifo((d.path + "/config.json").c_str(), 0600), 0);
  expect_refused([&] { load_model(d.path); }, d.path + "/config.json");
  // the size limit: refused from the file's size, before reading it
  write_file_atomic(d.path + "/big.json", std::string(100, ' '));
  EXPECT_EQ(read_file(d.path + "/big.json", 100).size(), 100u);
  try {
    read_file(d.path + "/big.json", 99);
    ADD_FAILURE() << "read past the limit";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read '" + d.path + "/big.json': 100 bytes, more than the 99-byte limit");
  }
  EXPECT_EQ(error_of([&] { read_file(d.path); }), "cannot read '" + d.path + "': is a directory");
}

// WordNet units on the real database (Debian's wordnet-base; scripts/setup.sh installs it):
// base forms through exceptions and detachment rules, the most-tagged part of speech, the first
// sense's synset and hypernym.
TEST(Units, WordNetKnownAnswers) {
  CLM_NEED_ASSET(std::filesystem::exists("/usr/share/wordnet/index.noun"), "no /usr/share/wordnet (scripts/setup.sh installs wordnet-base)");
  WordNet wn("/usr/share/wordnet");
  WordNet::Sense a, b, c, d;
  ASSERT_TRUE(wn.lookup("company", a));
  ASSERT_TRUE(wn.lookup("companies", b));
  EXPECT_EQ(a.synset, "n08058098");  // company: an institution created to conduct business
  EXPECT_EQ(b.synset, a.synset);
  EXPECT_EQ(b.inflection, "-ies+y");
  EXPECT_EQ(a.inflection, "");
  EXPECT_EQ(a.hypernym, "n08053576");  // institution
  EXPECT_EQ(a.lexfile, 14);            // noun.group
  ASSERT_TRUE(wn.lookup("said", c));   // verb.exc: said -> say
  EXPECT_EQ(c.pos, 'v');
  EXPECT_EQ(c.inflection, "exc");
  EXPECT_FALSE(wn.lookup("the", d));
  EXPECT_THROW(WordNet("/nonexistent"), std::runtime_error);
}

// Subword merges: the most frequent pair merges first; pieces of an unseen word still cover it.
TEST(Units, SubwordPiecesCoverTheWord) {
  std::unordered_map<std::string, int64_t> counts{{"lower", 5}, {"lowest", 3}, {"newer", 6}, {"wider", 2}};
  SubwordUnits sw(counts, 10);
  EXPECT_GT(sw.merges(), 0);
  for (std::string w : {"lower", "newest", "zebra"}) {
    std::string joined;
    for (auto& p : sw.pieces(w)) joined += p;
    EXPECT_EQ(joined, w + "</w>");
  }
  EXPECT_LT(sw.pieces("lower").size(), 6u);  // merged below one piece per character
}
