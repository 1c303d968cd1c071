#include "infer/chat.h"

#include <stdexcept>

#include <stdexcept>

#include "tokenizers/bpe.h"

namespace clm {

namespace {
ChatPiece T(std::string s) { return {false, std::move(s)}; }
ChatPiece S(std::string s) { return {true, std::move(s)}; }
// Llama-2's template strips each message, Llama-3's trims it: a streamed reply's leading space
// must not end up doubled in the next turn's history.
std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\n\r"), b = s.find_last_not_of(" \t\n\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}
}  // namespace

std::vector<ChatPiece> render_chat(const std::string& tmpl, const std::vector<ChatMessage>& msgs) {
  std::vector<ChatPiece> p;
  for (auto& m : msgs)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      throw std::invalid_argument("chat: unknown role '" + m.role + "'");
  if (tmpl == "llama2") {
    // <s>[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]
    std::string sys;
    size_t i = 0;
    if (!msgs.empty() && msgs[0].role == "system") sys = "<<SYS>>\n" + trim(msgs[0].content) + "\n<</SYS>>\n\n", i = 1;
    for (; i < msgs.size(); ++i) {
      if (msgs[i].role == "user") {
        p.push_back(S("<s>"));
        p.push_back(T("[INST] " + sys + trim(msgs[i].content) + " [/INST]"));
        sys.clear();
      } else if (msgs[i].role == "assistant") {
        p.push_back(T(" " + trim(msgs[i].content) + " "));
        p.push_back(S("</s>"));
      } else {
        throw std::invalid_argument("chat: llama2 takes a system message only first");
      }
    }
  } else if (tmpl == "llama3") {
    p.push_back(S("<|begin_of_text|>"));
    for (auto& m : msgs) {
      p.push_back(S("<|start_header_id|>"));
      p.push_back(T(m.role));
      p.push_back(S("<|end_header_id|>"));
      p.push_back(T("\n\n" + trim(m.content)));
      p.push_back(S("<|eot_id|>"));
    }
    p.push_back(S("<|start_header_id|>"));
    p.push_back(T("assistant"));
    p.push_back(S("<|end_header_id|>"));
    p.push_back(T("\n\n"));
  } else if (tmpl == "chatml") {
    for (auto& m : msgs) {
      p.push_back(S("<|im_start|>"));
      p.push_back(T(m.role + "\n" + m.content));
      p.push_back(S("<|im_end|>"));
      p.push_back(T("\n"));
    }
    p.push_back(S("<|im_start|>"));
    p.push_back(T("assistant\n"));
  } else if (tmpl == "phi3") {
    for (auto& m : msgs) {
      p.push_back(S("<|" + m.role + "|>"));
      p.push_back(T("\n" + m.content));
      p.push_back(S("<|end|>"));
      p.push_back(T("\n"));
    }
    p.push_back(S("<|assistant|>"));
    p.push_back(T("\n"));
  } else if (tmpl == "plain") {
    // No special tokens (models trained on plain text): "System: ...\nUser: ...\nAssistant: ..."
    for (auto& m : msgs) p.push_back(T(std::string(m.role == "system" ? "System" : m.role == "user" ? "User" : "Assistant") + ": " +
                                       trim(m.content) + "\n"));
    p.push_back(T("Assistant:"));
  } else {
    throw std::invalid_argument("unknown chat template '" + tmpl + "' (llama2, llama3, chatml, phi3, plain)");
  }
  return p;
}

std::string chat_pieces_to_string(const std::vector<ChatPiece>& p) {
  std::string s;
  for (auto& x : p) s += x.text;
  return s;
}

static int32_t special_id(const Tokenizer& tok, const std::string& name) {
  if (name == "<s>" && tok.bos_id() >= 0) return tok.bos_id();
  if (name == "</s>" && tok.eos_id() >= 0) return tok.eos_id();
  if (auto* b = dynamic_cast<const BpeTokenizer*>(&tok)) {
    int32_t id = b->token_id(name);
    if (id >= 0) return id;
  }
  throw std::invalid_argument("chat template needs special token '" + name + "', which the " + tok.type() +
                              " tokenizer does not have");
}

std::vector<int32_t> encode_chat(const Tokenizer& tok, const std::vector<ChatPiece>& p) {
  std::vector<int32_t> ids;
  for (auto& x : p) {
    if (x.special) {
      ids.push_back(special_id(tok, x.text));
    } else {
      for (int32_t t : tok.encode(x.text)) ids.push_back(t);
    }
  }
  return ids;
}

std::vector<int32_t> chat_stop_ids(const Tokenizer& tok, const std::string& tmpl) {
  std::vector<int32_t> s;
  if (tok.eos_id() >= 0) s.push_back(tok.eos_id());
  const char* extra = tmpl == "llama3" ? "<|eot_id|>" : tmpl == "chatml" ? "<|im_end|>" : tmpl == "phi3" ? "<|end|>" : nullptr;
  if (extra) s.push_back(special_id(tok, extra));
  return s;
}

std::vector<std::string> chat_stop_strings(const std::string& tmpl) {
  if (tmpl == "plain") return {"\nUser:"};
  return {};
}

ChatSession::ChatSession(LanguageModel& model, const Tokenizer& tok, const std::string& tmpl, GenerateConfig g,
                         SamplerConfig sampling, int64_t ctx, const std::string& system)
    : tok_(tok), tmpl_(tmpl), ctx_(ctx), gen_(model, [&] {
        g.stop_ids = chat_stop_ids(tok, tmpl);
        return g;
      }(), ctx), sampler_(sampling) {
  render_chat(tmpl, {});  // an unknown template fails here, before the first turn
  if (!system.empty()) msgs_.push_back({"system", system});
}

std::string ChatSession::reply(const std::string& user, const std::function<void(const std::string&)>& on_piece,
                               GenerateStats* stats) {
  msgs_.push_back({"user", user});
  std::vector<int32_t> ids = encode_chat(tok_, render_chat(tmpl_, msgs_));
  const size_t first = msgs_[0].role == "system" ? 1 : 0;
  while (int64_t(ids.size()) >= ctx_ && msgs_.size() > first + 2) {  // forget the oldest exchange
    msgs_.erase(msgs_.begin() + long(first), msgs_.begin() + long(first) + 2);
    ids = encode_chat(tok_, render_chat(tmpl_, msgs_));
    if (on_forget) on_forget();
  }
  if (int64_t(ids.size()) >= ctx_) {
    msgs_.pop_back();
    throw std::length_error("this message (" + std::to_string(ids.size()) + " tokens with the template) does not fit "
                            "the context of " + std::to_string(ctx_) + " (--ctx)");
  }
  std::string text;
  int32_t prev = ids.back();
  gen_.generate(ids, sampler_, [&](int32_t t) {
    std::string piece = tok_.decode_next(prev, t);
    text += piece;
    if (on_piece) on_piece(piece);
    prev = t;
  }, stats);
  msgs_.push_back({"assistant", text});
  return text;
}

}  // namespace clm
