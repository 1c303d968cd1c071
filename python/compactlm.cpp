// The Python module `compactlm` (pybind11): load a model in any format the engine reads,
// tokenize, generate (a streaming iterator), score log-likelihoods, get logits as NumPy arrays,
// measure perplexity, run the zero-shot tasks, quantize. The GIL is released around model calls.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <nlohmann/json.hpp>

#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "infer/generate.h"
#include "kernels/kernels.h"
#include "models/io.h"
#include "quant/calibrate.h"
#include "quant/methods.h"
#include "serve/engine.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace clm::python {

// Text to Python: invalid UTF-8 (a byte-level model's stray bytes) becomes U+FFFD, never an error.
py::str text(const std::string& s) { return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(s.data(), py::ssize_t(s.size()), "replace")); }

py::object to_py(const nlohmann::json& j) { return py::module_::import("json").attr("loads")(j.dump()); }
nlohmann::json from_py(const py::object& o) { return nlohmann::json::parse(py::module_::import("json").attr("dumps")(o).cast<std::string>()); }

class Model {
 public:
  Model(const std::string& path, const std::string& tokenizer, const std::string& weights, int threads) : weights_(weights) {
    if (threads < 0) throw std::invalid_argument("threads must be >= 0");
    kernels::set_num_threads(threads);
    py::gil_scoped_release nogil;
    lm_ = weights == "generic" ? load_model(path, DType::f32, tokenizer) : load_model_for_inference(path, weights, tokenizer);
    if (!lm_.tokenizer) throw std::runtime_error("'" + lm_.dir + "': no tokenizer (pass tokenizer=PATH)");
  }

  LanguageModel& model() { return *lm_.model; }
  const Tokenizer& tok() const { return *lm_.tokenizer; }
  int64_t vocab() const { return tok().vocab_size(); }
  py::object config() const { return to_py(nlohmann::json(lm_.model->config())); }

  std::vector<int32_t> tokenize(const std::string& text, bool bos) const {
    std::vector<int32_t> ids;
    if (bos && tok().bos_id() >= 0) ids.push_back(tok().bos_id());
    const auto e = tok().encode(text);
    ids.insert(ids.end(), e.begin(), e.end());
    return ids;
  }

  // Logits [len(ids), vocab] of every position (a fresh state: positions 0..).
  py::array_t<float> logits(const std::vector<int32_t>& ids) {
    if (ids.empty()) throw std::invalid_argument("logits: no ids");
    const int64_t V = lm_.model->config().vocab_size, T = int64_t(ids.size());
    py::array_t<float> out({T, V});
    {
      py::gil_scoped_release nogil;
      InferState s = lm_.model->make_state(T);
      s.all_logits = true;
      lm_.model->infer(s, ids);
      std::memcpy(out.mutable_data(), s.logits.data(), sizeof(float) * size_t(T * V));
    }
    return out;
  }

  std::vector<std::pair<double, bool>> loglikelihoods(const std::vector<std::pair<std::string, std::string>>& pairs, int64_t batch,
                                                     int64_t max_len) {
    std::vector<TaskRequest> reqs;
    for (const auto& [c, k] : pairs) reqs.push_back({c, k});
    ScoreOptions o;
    o.batch = batch;
    o.max_len = max_len;
    std::vector<Loglik> ll;
    {
      py::gil_scoped_release nogil;
      ll = score_requests(*lm_.model, tok(), reqs, o);
    }
    std::vector<std::pair<double, bool>> out;
    for (const auto& l : ll) out.emplace_back(l.logprob, l.greedy);
    return out;
  }

  double perplexity(const std::string& text, int64_t window, int64_t stride) {
    const auto ids = tok().encode(text);
    const int64_t T = window > 0 ? window : lm_.model->config().max_seq_len;
    py::gil_scoped_release nogil;
    return clm::perplexity(*lm_.model, ids, T, stride > 0 ? stride : T, 1, 0, true).ppl();
  }

  py::dict evaluate(const std::string& task, const std::string& dir, int64_t limit, int64_t batch) {
    const Task t = load_task(task, dir, limit);
    ScoreOptions o;
    o.batch = batch;
    TaskResult r;
    {
      py::gil_scoped_release nogil;
      r = evaluate_task(*lm_.model, tok(), t, o);
    }
    py::dict d("task"_a = r.task, "n"_a = r.n, "acc"_a = r.acc, "acc_stderr"_a = r.acc_stderr);
    if (r.acc_norm >= 0) d["acc_norm"] = r.acc_norm, d["acc_norm_stderr"] = r.acc_norm_stderr;
    if (r.ppl >= 0) d["ppl"] = r.ppl;
    return d;
  }

  py::object quantize(const std::string& method, const py::object& options, const std::string& calibration) {
    nlohmann::json opts = options.is_none() ? nlohmann::json::object() : from_py(options);
    std::unique_ptr<quant::Calibration> cal;
    if (!calibration.empty()) cal = std::make_unique<quant::Calibration>(quant::Calibration::load(calibration));
    quant::QuantResult q;
    {
      py::gil_scoped_release nogil;
      q = quant::quantize_model(*lm_.model, method, opts, cal.get());
    }
    return to_py({{"method", q.method}, {"options", q.options}, {"w_bits", q.avg_w_bits}, {"a_bits", q.avg_a_bits}, {"linears", q.layers.size()}});
  }

  const std::string& weights() const { return weights_; }

 private:
  LoadedModel lm_;
  std::string weights_;
};

// generate(): an iterator of text pieces. Each next() decodes one token; a stop string ends the
// stream and is cut from the output (text that might begin a stop string is held back).
class TokenStream {
 public:
  TokenStream(Model& m, const std::string& prompt, int64_t max_tokens, SamplerConfig sc, std::vector<std::string> stop, bool bos)
      : m_(m), sampler_(sc), max_(max_tokens), stop_(std::move(stop)) {
    if (max_tokens < 0) throw std::invalid_argument("max_tokens must be >= 0");
    for (const auto& s : stop_)
      if (s.empty()) throw std::invalid_argument("stop strings must not be empty");
    prompt_ = m.tokenize(prompt, bos);
    if (prompt_.empty()) prompt_.push_back(m.tok().bos_id() >= 0 ? m.tok().bos_id() : m.tok().eos_id());
    const int64_t cap = int64_t(prompt_.size()) + max_tokens;
    state_ = m.model().make_state(cap);
    if (m.model().packed_format().empty() && m.weights() != "generic") m.model().pack(m.weights());
    prev_ = prompt_.back();
  }

  py::str next() {
    while (!done_) {
      int32_t id;
      {
        py::gil_scoped_release nogil;
        const float* lg = first_ ? m_.model().infer(state_, prompt_) : m_.model().infer(state_, std::span<const int32_t>(&prev_, 1));
        first_ = false;
        id = sampler_.sample(lg, m_.vocab());
      }
      if (id == m_.tok().eos_id() || ++count_ > max_) {
        done_ = true;
        break;
      }
      text_ += m_.tok().decode_next(prev_, id);
      prev_ = id;
      if (count_ == max_) done_ = true;
      for (const auto& s : stop_) {
        const size_t at = text_.find(s);
        if (at != std::string::npos) text_.resize(at), done_ = true;
      }
      const size_t end = done_ ? text_.size() : serve::releasable(text_, stop_);
      if (end > sent_) {
        std::string piece = text_.substr(sent_, end - sent_);
        sent_ = end;
        return text(piece);
      }
    }
    if (sent_ < text_.size()) {
      std::string piece = text_.substr(sent_);
      sent_ = text_.size();
      return text(piece);
    }
    throw py::stop_iteration();
  }

 private:
  Model& m_;
  Sampler sampler_;
  int64_t max_, count_ = 0;
  std::vector<std::string> stop_;
  std::vector<int32_t> prompt_;
  InferState state_;
  int32_t prev_ = -1;
  bool first_ = true, done_ = false;
  std::string text_;
  size_t sent_ = 0;
};

}  // namespace clm::python

PYBIND11_MODULE(compactlm, m) {
  using namespace clm::python;
  m.doc() = "CompactLM: train, compress and run efficient transformer language models (C++ engine).";
  py::class_<Model>(m, "Model")
      .def(py::init<const std::string&, const std::string&, const std::string&, int>(), "path"_a, "tokenizer"_a = "",
           "weights"_a = "f32", "threads"_a = 0,
           "Loads a CompactLM checkpoint folder, a Hugging Face folder or a llama2.c .bin; weights: f32 | bf16 | ... | generic")
      .def_property_readonly("config", &Model::config, "The model's configuration as a dict")
      .def_property_readonly("vocab_size", &Model::vocab, "The tokenizer's vocabulary size")
      .def("tokenize", &Model::tokenize, "text"_a, "bos"_a = false, "Token ids of text (bos=True prepends BOS when the tokenizer has one)")
      .def("detokenize", [](const Model& m, const std::vector<int32_t>& ids) { return text(m.tok().decode(ids)); }, "ids"_a)
      .def("logits", &Model::logits, "ids"_a, "Logits of every position, a float32 NumPy array [len(ids), vocab]")
      .def("loglikelihood",
           [](Model& m, const std::string& c, const std::string& k) { return m.loglikelihoods({{c, k}}, 1, 0)[0]; }, "context"_a,
           "continuation"_a, "(log p(continuation | context), is_greedy), lm-eval's encoding")
      .def("loglikelihoods", &Model::loglikelihoods, "pairs"_a, "batch"_a = 8, "max_len"_a = 0,
           "Many (context, continuation) pairs scored in batches")
      .def("perplexity", &Model::perplexity, "text"_a, "window"_a = 0, "stride"_a = 0,
           "Perplexity of text per token (windows of the model's context unless given)")
      .def("evaluate", &Model::evaluate, "task"_a, "tasks_dir"_a, "limit"_a = 0, "batch"_a = 8,
           "A zero-shot task (clm eval --task): dict with acc, acc_norm, ...")
      .def("quantize", &Model::quantize, "method"_a, "options"_a = py::none(), "calibration"_a = "",
           "Quantizes the Linears in place (rtn, smoothquant, crossquant, arcquant); returns a summary dict")
      .def(
          "generate",
          [](Model& m, const std::string& prompt, int64_t max_tokens, double temperature, int64_t top_k, double top_p, uint64_t seed,
             std::vector<std::string> stop, bool bos) {
            if (!(temperature >= 0) || !(top_p > 0 && top_p <= 1) || top_k < 0)
              throw std::invalid_argument("temperature >= 0, top_p in (0, 1], top_k >= 0");
            return std::make_unique<TokenStream>(m, prompt, max_tokens, clm::SamplerConfig{temperature, top_k, top_p, seed}, std::move(stop), bos);
          },
          "prompt"_a, "max_tokens"_a = 64, "temperature"_a = 0.8, "top_k"_a = 0, "top_p"_a = 1.0, "seed"_a = 0,
          "stop"_a = std::vector<std::string>{}, "bos"_a = true, py::keep_alive<0, 1>(),
          "An iterator of text pieces as they are generated");
  py::class_<TokenStream>(m, "TokenStream")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &TokenStream::next);
}
