// Chat templates: a conversation rendered into text and special tokens the way each model family
// was trained (Llama-2 [INST], Llama-3 headers, ChatML for Qwen, Phi-3 tags), then into ids.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "infer/generate.h"
#include "tokenizers/tokenizer.h"

namespace clm {

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

struct ChatPiece {
  bool special;
  std::string text;  // literal text, or the special token's name ("<s>", "<|eot_id|>", ...)
};

// template: llama2 | llama3 | chatml | phi3 | plain (no special tokens: "User: ...\nAssistant:";
// a turn ends at EOS or the stop string chat_stop_strings gives). Ends with the assistant prompt.
std::vector<ChatPiece> render_chat(const std::string& tmpl, const std::vector<ChatMessage>& msgs);
std::string chat_pieces_to_string(const std::vector<ChatPiece>& p);  // for display and tests
// Special tokens resolve through the tokenizer (BOS/EOS, or the vocabulary's added tokens); a
// special the tokenizer lacks is an error naming it.
std::vector<int32_t> encode_chat(const Tokenizer& tok, const std::vector<ChatPiece>& p);
// Ids that end an assistant turn.
std::vector<int32_t> chat_stop_ids(const Tokenizer& tok, const std::string& tmpl);
// Strings that end an assistant turn (the plain template's next "\nUser:").
std::vector<std::string> chat_stop_strings(const std::string& tmpl);

// A conversation with a model: the messages so far, rendered by the template, over one Generator
// whose inference state is kept across turns (each turn prefills only what it adds). When the
// rendered conversation no longer fits the context, the oldest exchanges are forgotten (a system
// message stays); a single message that cannot fit is an error.
class ChatSession {
 public:
  ChatSession(LanguageModel& model, const Tokenizer& tok, const std::string& tmpl, GenerateConfig g,
              SamplerConfig sampling, int64_t ctx, const std::string& system = "");
  // Adds the user's message, generates the reply (each piece of text to on_piece as it comes),
  // adds the reply to the conversation and returns it.
  std::string reply(const std::string& user, const std::function<void(const std::string&)>& on_piece = nullptr,
                    GenerateStats* stats = nullptr);
  std::function<void()> on_forget;  // called when the oldest exchange is dropped
  const std::vector<ChatMessage>& messages() const { return msgs_; }

 private:
  const Tokenizer& tok_;
  std::string tmpl_;
  int64_t ctx_;
  Generator gen_;
  Sampler sampler_;
  std::vector<ChatMessage> msgs_;
};

}  // namespace clm
