#include "service/rag_prompt.h"

#include "absl/strings/str_cat.h"

namespace strata {

RagPrompt::RagPrompt(const gpu::Decoder& decoder, absl::string_view instructions)
    : decoder_(decoder) {
  const gpu::BpeTokenizer& tok = decoder.tokenizer();
  const gpu::ChatTemplate& chat = decoder.chat();
  const int32_t start = tok.Find("<|im_start|>");
  // The system turn, then the user's turn opened.
  prefix_ = chat.Encode(tok, {{"system", std::string(instructions)}}, false);
  prefix_.push_back(start);
  for (int32_t id : tok.Encode("user\n", false)) prefix_.push_back(id);
  separator_ = tok.Encode("\n\n", false);
  suffix_tail_.push_back(chat.end_of_turn());
  for (int32_t id : tok.Encode("\n", false)) suffix_tail_.push_back(id);
  suffix_tail_.push_back(start);
  for (int32_t id : tok.Encode("assistant\n", false)) suffix_tail_.push_back(id);
}

std::vector<int32_t> RagPrompt::PassageTokens(absl::string_view text, bool* cut) const {
  std::vector<int32_t> t = decoder_.tokenizer().Encode(text, false);
  const bool too_long = t.size() > static_cast<size_t>(kMaxPassageTokens);
  if (too_long) t.resize(kMaxPassageTokens);
  if (cut != nullptr) *cut = too_long;
  return t;
}

std::vector<int32_t> RagPrompt::QuestionTokens(absl::string_view question) const {
  return decoder_.tokenizer().Encode(absl::StrCat("Question: ", question), false);
}

PromptLayout RagPrompt::Build(const std::vector<std::vector<int32_t>>& passages,
                              const std::vector<int32_t>& question) const {
  const gpu::BpeTokenizer& tok = decoder_.tokenizer();
  PromptLayout l;
  l.tokens = prefix_;
  l.prefix_length = static_cast<int64_t>(prefix_.size());
  for (size_t i = 0; i < passages.size(); ++i) {
    for (int32_t id : tok.Encode(absl::StrCat("[", i + 1, "] "), false)) l.tokens.push_back(id);
    l.passages.push_back(
        {static_cast<int64_t>(l.tokens.size()), static_cast<int64_t>(passages[i].size())});
    l.tokens.insert(l.tokens.end(), passages[i].begin(), passages[i].end());
    l.tokens.insert(l.tokens.end(), separator_.begin(), separator_.end());
  }
  l.tokens.insert(l.tokens.end(), question.begin(), question.end());
  l.tokens.insert(l.tokens.end(), suffix_tail_.begin(), suffix_tail_.end());
  return l;
}

}  // namespace strata
