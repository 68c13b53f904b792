#include "gpu/chat_template.h"

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace strata::gpu {

absl::StatusOr<ChatTemplate> ChatTemplate::ChatMl(const BpeTokenizer& tokenizer,
                                                  std::string default_system) {
  ChatTemplate t;
  t.start_of_turn_ = tokenizer.Find("<|im_start|>");
  t.end_of_turn_ = tokenizer.Find("<|im_end|>");
  if (t.start_of_turn_ < 0 || t.end_of_turn_ < 0) {
    return absl::InvalidArgumentError(
        "a ChatML template needs the tokens <|im_start|> and <|im_end|> in the vocabulary");
  }
  t.default_system_ = std::move(default_system);
  return t;
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromGguf(const GgufFile& file,
                                                    const BpeTokenizer& tokenizer) {
  if (file.Find("tokenizer.chat_template") == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(),
                     ": no chat template (tokenizer.chat_template); Strata answers "
                     "with instruction-tuned models that ship one"));
  }
  ASSIGN_OR_RETURN(std::string jinja, file.GetString("tokenizer.chat_template"));
  if (jinja.find("<|im_start|>") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(),
                     ": its chat template is not ChatML (<|im_start|>), the one format Strata "
                     "writes so far"));
  }
  // The default system message, when the template writes one: the literal after
  // "<|im_start|>system\n" up to "<|im_end|>".
  std::string system;
  const std::string open = "<|im_start|>system\n";
  if (size_t at = jinja.find(open); at != std::string::npos) {
    const size_t begin = at + open.size();
    const size_t end = jinja.find("<|im_end|>", begin);
    if (end != std::string::npos && jinja.find_first_of("{}'+", begin) >= end) {
      system = jinja.substr(begin, end - begin);
    }
  }
  auto t = ChatMl(tokenizer, std::move(system));
  if (!t.ok())
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": ", t.status().message()));
  return t;
}

std::vector<int32_t> ChatTemplate::Encode(const BpeTokenizer& tokenizer,
                                          absl::Span<const ChatMessage> messages,
                                          bool add_generation_prompt) const {
  std::vector<int32_t> out;
  auto turn = [&](const std::string& role, const std::string& content) {
    out.push_back(start_of_turn_);
    // One stretch, as a template rendered to text and then tokenized would give (a content that
    // starts with spaces pre-tokenizes differently on its own).
    for (int32_t id : tokenizer.Encode(absl::StrCat(role, "\n", content), false)) {
      out.push_back(id);
    }
    out.push_back(end_of_turn_);
    for (int32_t id : tokenizer.Encode("\n", /*allow_special=*/false)) out.push_back(id);
  };
  if (!default_system_.empty() && (messages.empty() || messages[0].role != "system")) {
    turn("system", default_system_);
  }
  for (const ChatMessage& m : messages) turn(m.role, m.content);
  if (add_generation_prompt) {
    out.push_back(start_of_turn_);
    for (int32_t id : tokenizer.Encode("assistant\n", /*allow_special=*/false)) out.push_back(id);
  }
  return out;
}

}  // namespace strata::gpu
