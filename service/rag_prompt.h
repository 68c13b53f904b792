// The prompt Generate gives the decoder, in one place: the instructions (system turn), the
// passages numbered [1]..[k], the question, then the assistant's turn opened (ChatML):
//
//   <|im_start|>system\n{instructions}<|im_end|>\n<|im_start|>user\n      <- shared prefix
//   [1] {passage 1}\n\n [2] {passage 2}\n\n ...                            <- markers + bodies
//   Question: {question}<|im_end|>\n<|im_start|>assistant\n               <- suffix
//
// Passage bodies are tokenized on their own, so their tokens (and cached keys and values) do not
// depend on their rank; the markers and the suffix are computed fresh for each question.
#ifndef STRATA_SERVICE_RAG_PROMPT_H_
#define STRATA_SERVICE_RAG_PROMPT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gpu/decoder.h"

namespace strata {

inline constexpr char kDefaultRagInstructions[] =
    "Answer the question from the numbered passages below. Be brief and factual, and cite the "
    "passages you use like [1]. If the passages do not contain the answer, say you do not know.";
inline constexpr int kMaxPassageTokens = 384;      // longer passages are cut (at a token)
inline constexpr int kMaxQuestionTokens = 256;     // longer questions are refused
inline constexpr int kMaxInstructionTokens = 512;  // longer instructions (system) are refused

struct PromptLayout {
  std::vector<int32_t> tokens;
  int64_t prefix_length = 0;
  struct Span {
    int64_t position = 0, length = 0;
  };
  std::vector<Span> passages;  // where each passage body lies
};

class RagPrompt final {
 public:
  RagPrompt(const gpu::Decoder& decoder, absl::string_view instructions);

  [[nodiscard]] const std::vector<int32_t>& prefix() const { return prefix_; }
  // A passage body's tokens, cut to kMaxPassageTokens (*cut says whether it was, when given).
  [[nodiscard]] std::vector<int32_t> PassageTokens(absl::string_view text,
                                                   bool* cut = nullptr) const;
  [[nodiscard]] std::vector<int32_t> QuestionTokens(absl::string_view question) const;
  // The whole prompt around passage bodies (from PassageTokens) and question tokens.
  [[nodiscard]] PromptLayout Build(const std::vector<std::vector<int32_t>>& passages,
                                   const std::vector<int32_t>& question) const;

 private:
  const gpu::Decoder& decoder_;
  std::vector<int32_t> prefix_, suffix_tail_, separator_;
};

}  // namespace strata

#endif  // STRATA_SERVICE_RAG_PROMPT_H_
