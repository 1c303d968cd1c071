// Chat templates: a conversation rendered into text and special tokens the way each model family
// was trained (Llama-2 [INST], Llama-3 headers, ChatML for Qwen, Phi-3 tags), then into ids.
#pragma once
#include <string>
#include <vector>

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

// template: llama2 | llama3 | chatml | phi3. Ends with the assistant prompt.
std::vector<ChatPiece> render_chat(const std::string& tmpl, const std::vector<ChatMessage>& msgs);
std::string chat_pieces_to_string(const std::vector<ChatPiece>& p);  // for display and tests
// Special tokens resolve through the tokenizer (BOS/EOS, or the vocabulary's added tokens); a
// special the tokenizer lacks is an error naming it.
std::vector<int32_t> encode_chat(const Tokenizer& tok, const std::vector<ChatPiece>& p);
// Ids that end an assistant turn.
std::vector<int32_t> chat_stop_ids(const Tokenizer& tok, const std::string& tmpl);

}  // namespace clm
