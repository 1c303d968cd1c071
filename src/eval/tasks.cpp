// Zero-shot tasks: loaders for the seven task files, lm-eval's request construction and scoring.
#include "eval/tasks.h"

#include <bzlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "eval/perplexity.h"
#include "util/fs.h"

namespace clm {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Characters as Python's len() counts them: UTF-8 code points.
int64_t chars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string need_file(const std::string& dir, const std::string& task, const std::string& file) {
  const fs::path p = fs::path(dir) / task / file;
  if (!fs::is_regular_file(p))
    throw std::runtime_error("task '" + task + "': missing " + p.string() + " (give --tasks-dir the folder holding " + task + "/)");
  return p.string();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read '" + path + "'");
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    out.push_back(std::move(l));
  }
  return out;
}

// Each non-empty line one JSON object.
std::vector<json> jsonl(const std::string& path) {
  std::vector<json> out;
  const auto lines = lines_of(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    try {
      out.push_back(json::parse(lines[i]));
      if (!out.back().is_object()) throw std::runtime_error("not a JSON object");
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ":" + std::to_string(i + 1) + ": " + e.what());
    }
  }
  return out;
}

std::string str(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) throw std::runtime_error(where + ": field '" + key + "' missing or not a string");
  return it->get<std::string>();
}

std::string bunzip(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot read '" + path + "'");
  int err = 0;
  BZFILE* bz = BZ2_bzReadOpen(&err, f, 0, 0, nullptr, 0);
  std::string out;
  char buf[1 << 16];
  while (err == BZ_OK) {
    const int n = BZ2_bzRead(&err, bz, buf, sizeof buf);
    if (err == BZ_OK || err == BZ_STREAM_END) out.append(buf, size_t(std::max(n, 0)));
  }
  const bool ok = err == BZ_STREAM_END;
  BZ2_bzReadClose(&err, bz);
  std::fclose(f);
  if (!ok) throw std::runtime_error("'" + path + "': not a valid bzip2 stream");
  return out;
}

TaskExample multiple_choice(const std::string& context, const std::vector<std::string>& choices, int gold) {
  TaskExample e;
  for (const auto& c : choices) {
    e.choices.push_back({context, " " + c});
    e.chars.push_back(chars(c));
  }
  e.gold = gold;
  return e;
}

Task lambada(const std::string& dir) {
  const std::string p = need_file(dir, "lambada_openai", "lambada_test.jsonl");
  Task t{"lambada_openai", {}, true, false};
  for (const json& j : jsonl(p)) {
    const std::string text = str(j, "text", p);
    const size_t sp = text.rfind(' ');
    if (sp == std::string::npos) throw std::runtime_error(p + ": a text without a space: '" + text.substr(0, 40) + "'");
    TaskExample e;
    e.choices.push_back({text.substr(0, sp), " " + text.substr(sp + 1)});
    t.examples.push_back(std::move(e));
  }
  return t;
}

Task piqa(const std::string& dir) {
  const std::string p = need_file(dir, "piqa", "valid.jsonl"), lp = need_file(dir, "piqa", "valid-labels.lst");
  const auto docs = jsonl(p);
  auto labels = lines_of(lp);
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  if (labels.size() != docs.size())
    throw std::runtime_error(lp + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(docs.size()) + " examples");
  Task t{"piqa", {}, false, true};
  for (size_t i = 0; i < docs.size(); ++i) {
    if (labels[i] != "0" && labels[i] != "1") throw std::runtime_error(lp + ":" + std::to_string(i + 1) + ": label must be 0 or 1");
    t.examples.push_back(multiple_choice("Question: " + str(docs[i], "goal", p) + "\nAnswer:",
                                         {str(docs[i], "sol1", p), str(docs[i], "sol2", p)}, labels[i][0] - '0'));
  }
  return t;
}

Task arc(const std::string& dir, const std::string& name, const std::string& file) {
  const std::string p = need_file(dir, name, file);
  Task t{name, {}, false, true};
  for (const json& j : jsonl(p)) {
    const std::string id = j.value("id", std::string("?"));
    if (!j.contains("question") || !j["question"].is_object() || !j["question"].contains("choices") ||
        !j["question"]["choices"].is_array())
      throw std::runtime_error(p + ": example " + id + ": no question.choices");
    const json& q = j["question"];
    const std::string key = str(j, "answerKey", p + " " + id);
    std::vector<std::string> texts;
    int gold = -1;
    for (const json& c : q["choices"]) {
      if (!c.is_object()) throw std::runtime_error(p + ": example " + id + ": a choice is not an object");
      if (str(c, "label", p + " " + id) == key) gold = int(texts.size());
      texts.push_back(str(c, "text", p + " " + id));
    }
    if (gold < 0) throw std::runtime_error(p + ": example " + id + ": answerKey '" + key + "' is not a choice label");
    t.examples.push_back(multiple_choice("Question: " + str(q, "stem", p + " " + id) + "\nAnswer:", texts, gold));
  }
  return t;
}

Task boolq(const std::string& dir) {
  const std::string p = need_file(dir, "boolq", "val.jsonl");
  Task t{"boolq", {}, false, false};
  for (const json& j : jsonl(p)) {
    int gold;
    const json& l = j.contains("label") ? j["label"] : json();
    if (l.is_boolean()) gold = l.get<bool>();
    else if (l.is_string() && (l == "true" || l == "false")) gold = l == "true";
    else throw std::runtime_error(p + ": label must be true or false");
    TaskExample e = multiple_choice(str(j, "passage", p) + "\nQuestion: " + str(j, "question", p) + "?\nAnswer:", {"no", "yes"}, gold);
    e.chars.clear();
    t.examples.push_back(std::move(e));
  }
  return t;
}

Task hellaswag(const std::string& dir) {
  const fs::path base = fs::path(dir) / "hellaswag";
  std::string text, p;
  if (fs::is_regular_file(base / "hellaswag_val_full.txt")) {
    p = (base / "hellaswag_val_full.txt").string();
    text = read_file(p);
  } else {
    p = need_file(dir, "hellaswag", "hellaswag_val_full.txt.bz2");
    text = bunzip(p);
  }
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    lines.push_back(std::move(l));
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.size() % 6 != 0)
    throw std::runtime_error(p + ": " + std::to_string(lines.size()) + " lines, not 6 per example (context, gold, 4 endings)");
  Task t{"hellaswag", {}, false, true};
  for (size_t i = 0; i < lines.size(); i += 6) {
    const std::string& g = lines[i + 1];
    if (g.size() != 1 || g[0] < '0' || g[0] > '3')
      throw std::runtime_error(p + ":" + std::to_string(i + 2) + ": gold must be 0..3, got '" + g + "'");
    std::vector<std::string> endings;
    for (int k = 0; k < 4; ++k) endings.push_back(hellaswag_preprocess(lines[i + 2 + size_t(k)]));
    t.examples.push_back(multiple_choice(hellaswag_preprocess(lines[i]), endings, g[0] - '0'));
  }
  return t;
}

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

Task winogrande(const std::string& dir) {
  const std::string p = need_file(dir, "winogrande", "winogrande_llmfoundry.jsonl");
  Task t{"winogrande", {}, false, false};
  for (const json& j : jsonl(p)) {
    if (!j.contains("context_options") || !j["context_options"].is_array() || j["context_options"].size() != 2)
      throw std::runtime_error(p + ": context_options must be a list of two strings");
    if (!j.contains("gold") || !j["gold"].is_number_integer() || (j["gold"] != 0 && j["gold"] != 1))
      throw std::runtime_error(p + ": gold must be 0 or 1");
    const std::string cont = " " + strip(str(j, "continuation", p));
    TaskExample e;
    for (const json& c : j["context_options"]) {
      if (!c.is_string()) throw std::runtime_error(p + ": context_options must be strings");
      e.choices.push_back({c.get<std::string>(), cont});  // partial scoring: the same continuation after each option
    }
    e.gold = j["gold"].get<int>();
    t.examples.push_back(std::move(e));
  }
  return t;
}

}  // namespace

// Python's str.replace: every non-overlapping occurrence, left to right, in one pass.
static std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  for (size_t at; (at = s.find(from, i)) != std::string::npos; i = at + from.size()) out += s.substr(i, at - i) + to;
  return out + s.substr(i);
}

std::string hellaswag_preprocess(const std::string& text) {
  static const std::regex tag(R"(\[.*?\])");
  return replace_all(std::regex_replace(replace_all(strip(text), " [title]", ". "), tag, ""), "  ", " ");
}

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"lambada_openai", "piqa", "arc_easy", "arc_challenge", "boolq", "hellaswag", "winogrande"};
  return names;
}

Task load_task(const std::string& name, const std::string& dir, int64_t limit) {
  if (!fs::is_directory(dir)) throw std::runtime_error("tasks folder '" + dir + "' does not exist");
  Task t;
  if (name == "lambada_openai") t = lambada(dir);
  else if (name == "piqa") t = piqa(dir);
  else if (name == "arc_easy") t = arc(dir, name, "ARC-Easy-Test.jsonl");
  else if (name == "arc_challenge") t = arc(dir, name, "ARC-Challenge-Test.jsonl");
  else if (name == "boolq") t = boolq(dir);
  else if (name == "hellaswag") t = hellaswag(dir);
  else if (name == "winogrande") t = winogrande(dir);
  else {
    std::string known;
    for (const auto& n : task_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown task '" + name + "' (known: " + known + ")");
  }
  if (t.examples.empty()) throw std::runtime_error("task '" + name + "': no examples in " + dir + "/" + name);
  if (limit > 0 && size_t(limit) < t.examples.size()) t.examples.resize(size_t(limit));
  return t;
}

void encode_request(const Tokenizer& tok, const TaskRequest& r, bool bos, std::vector<int32_t>& context,
                    std::vector<int32_t>& continuation) {
  std::string ctx = r.context, cont = r.continuation;
  size_t spaces = 0;
  while (spaces < ctx.size() && ctx[ctx.size() - 1 - spaces] == ' ') ++spaces;
  if (spaces) {
    cont = ctx.substr(ctx.size() - spaces) + cont;
    ctx.resize(ctx.size() - spaces);
  }
  const int32_t prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
  if (ctx.empty()) {
    context = {prefix};
    continuation = tok.encode(cont);
  } else {
    const std::vector<int32_t> whole = tok.encode(ctx + cont);
    context = tok.encode(ctx);  // encoded alone, as lm-eval feeds it
    continuation.assign(whole.begin() + ptrdiff_t(std::min(context.size(), whole.size())), whole.end());
    if (bos && tok.bos_id() >= 0) context.insert(context.begin(), tok.bos_id());
  }
  if (continuation.empty())
    throw std::runtime_error("request continuation '" + r.continuation + "' encodes to no tokens after its context");
}

std::vector<Loglik> score_requests(LanguageModel& model, const Tokenizer& tok, const std::vector<TaskRequest>& reqs,
                                   const ScoreOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  if (o.batch <= 0) throw std::invalid_argument("scoring: batch must be > 0");
  const int64_t max_len = o.max_len > 0 ? o.max_len : model.config().max_seq_len;
  const int64_t V = model.config().vocab_size;
  struct Lane {
    InferState state;
    std::vector<int32_t> cached;  // the tokens in the state
    int64_t req = -1, from = 0, L = 0;
    std::vector<int32_t> input, cont;
  };
  std::vector<Lane> lanes(size_t(std::min<int64_t>(o.batch, int64_t(reqs.size()))));
  for (auto& l : lanes) {
    l.state = model.make_state(max_len);
    l.state.all_logits = true;
  }
  std::vector<Loglik> out(reqs.size());
  std::vector<int32_t> ctx;
  size_t next = 0;
  int64_t done = 0;
  while (next < reqs.size()) {
    std::vector<InferState*> states;
    std::vector<std::span<const int32_t>> ids;
    std::vector<Lane*> active;
    for (Lane& l : lanes) {
      if (next >= reqs.size()) break;
      l.req = int64_t(next++);
      encode_request(tok, reqs[size_t(l.req)], o.bos, ctx, l.cont);
      // lm-eval: the last max_len + 1 tokens of context + continuation, without the last one
      std::vector<int32_t> whole = ctx;
      whole.insert(whole.end(), l.cont.begin(), l.cont.end());
      if (int64_t(l.cont.size()) > max_len)
        throw std::runtime_error("request " + std::to_string(l.req) + ": continuation of " + std::to_string(l.cont.size()) +
                                 " tokens longer than the window of " + std::to_string(max_len) +
                                 " (lm-eval refuses these too; give a longer --window)");
      const size_t start = whole.size() > size_t(max_len + 1) ? whole.size() - size_t(max_len + 1) : 0;
      l.input.assign(whole.begin() + ptrdiff_t(start), whole.end() - 1);
      l.L = int64_t(l.input.size());
      // Reuse the cached prefix, but feed at least every position whose logits are scored.
      size_t p = 0;
      while (p < l.cached.size() && p < l.input.size() && l.cached[p] == l.input[p]) ++p;
      l.from = std::min<int64_t>(int64_t(p), l.L - int64_t(l.cont.size()));
      if (!l.state.truncate(l.from)) l.from = 0;
      states.push_back(&l.state);
      ids.emplace_back(l.input.data() + l.from, size_t(l.L - l.from));
      active.push_back(&l);
    }
    model.infer_batch(states, ids);
    for (Lane* l : active) {
      Loglik& r = out[size_t(l->req)];
      r.tokens = int64_t(l->cont.size());
      r.greedy = true;
      for (int64_t k = 0; k < r.tokens; ++k) {
        const int64_t j = l->L - r.tokens + k;  // input index whose logits predict cont[k]
        const float* lg = l->state.logits.data() + (j - l->from) * V;
        const int64_t am = std::max_element(lg, lg + V) - lg;
        const int32_t target = l->cont[size_t(k)];
        r.logprob += double(lg[target]) - log_sum_exp(lg, V);
        r.greedy = r.greedy && am == target;
      }
      l->cached = l->input;
    }
    done += int64_t(active.size());
    if (progress) progress(done, int64_t(reqs.size()));
  }
  return out;
}

TaskResult evaluate_task(LanguageModel& model, const Tokenizer& tok, const Task& task, const ScoreOptions& o,
                         const std::function<void(int64_t, int64_t)>& progress) {
  std::vector<TaskRequest> reqs;
  for (const auto& e : task.examples) reqs.insert(reqs.end(), e.choices.begin(), e.choices.end());
  const std::vector<Loglik> ll = score_requests(model, tok, reqs, o, progress);
  TaskResult r;
  r.task = task.name;
  r.n = int64_t(task.examples.size());
  double acc = 0, norm = 0, lp = 0;
  size_t k = 0;
  for (const auto& e : task.examples) {
    if (task.greedy) {
      acc += ll[k].greedy;
      lp += ll[k].logprob;
    } else {
      size_t best = 0, best_norm = 0;
      for (size_t c = 0; c < e.choices.size(); ++c) {
        if (ll[k + c].logprob > ll[k + best].logprob) best = c;
        if (!e.chars.empty() && ll[k + c].logprob / double(e.chars[c]) > ll[k + best_norm].logprob / double(e.chars[best_norm]))
          best_norm = c;
      }
      acc += best == size_t(e.gold);
      norm += best_norm == size_t(e.gold);
    }
    k += e.choices.size();
  }
  for (const auto& l : ll) r.logprobs.push_back(l.logprob);
  const double n = double(r.n);
  auto stderr_of = [n](double p) { return n > 1 ? std::sqrt(p * (1 - p) * n / (n - 1) / n) : 0.0; };
  r.acc = acc / n;
  r.acc_stderr = stderr_of(r.acc);
  if (task.has_norm) {
    r.acc_norm = norm / n;
    r.acc_norm_stderr = stderr_of(r.acc_norm);
  }
  if (task.greedy) r.ppl = std::exp(-lp / n);
  return r;
}

}  // namespace clm
