// A decoder's chat format, recognised from the Jinja template a GGUF file ships
// (tokenizer.chat_template) and applied by code: Strata runs no template engine. ChatML is the one
// format read so far (SmolLM2, Qwen2):
//   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
// with the template's default system message when the conversation has none. Message contents are
// encoded with special tokens off, so user text cannot forge a turn.
#ifndef STRATA_GPU_CHAT_TEMPLATE_H_
#define STRATA_GPU_CHAT_TEMPLATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "gpu/bpe_tokenizer.h"
#include "gpu/gguf.h"

namespace strata::gpu {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate final {
 public:
  // ChatML when the file's template writes <|im_start|> and the vocabulary has <|im_start|> and
  // <|im_end|>; InvalidArgument naming the problem for a template in another format, or none.
  static absl::StatusOr<ChatTemplate> FromGguf(const GgufFile& file, const BpeTokenizer& tokenizer);
  // ChatML with a given default system message (tests).
  static absl::StatusOr<ChatTemplate> ChatMl(const BpeTokenizer& tokenizer,
                                             std::string default_system);

  // The prompt's token ids; with add_generation_prompt, ends with the assistant's turn opened.
  [[nodiscard]] std::vector<int32_t> Encode(const BpeTokenizer& tokenizer,
                                            absl::Span<const ChatMessage> messages,
                                            bool add_generation_prompt) const;
  // The token that ends a turn (<|im_end|>): generation stops there.
  [[nodiscard]] int32_t end_of_turn() const { return end_of_turn_; }
  [[nodiscard]] const std::string& default_system() const { return default_system_; }

 private:
  ChatTemplate() = default;
  int32_t start_of_turn_ = -1, end_of_turn_ = -1;
  std::string default_system_;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_CHAT_TEMPLATE_H_
