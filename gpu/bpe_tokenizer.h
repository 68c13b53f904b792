// Byte-level BPE (GPT-2 family) as a GGUF file describes it: the vocabulary
// (tokenizer.ggml.tokens), the merge list in priority order (tokenizer.ggml.merges), the token
// types (control tokens such as <|im_start|>) and the pre-tokenizer's name (tokenizer.ggml.pre).
//
// Encoding: (1) when special tokens are allowed, the text is cut at every control token's text,
// which becomes that token; (2) each remaining stretch is split into pieces by the pre-tokenizer's
// rules (below); (3) each piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and
// merged pairwise, always the pair earliest in the merge list first; (4) the merged symbols are
// looked up in the vocabulary. User text is encoded with special tokens off, so a question that
// contains "<|im_end|>" cannot end its own turn.
//
// Pre-tokenizers (the regular expressions the models were trained with, written as code over
// Unicode categories from utf8proc):
//   gpt2, smollm (digits first split one by one), starcoder: 's 't 're 've 'm 'll 'd | ' '?letters
//   |
//     ' '?numbers | ' '?other | spaces not before a non-space | spaces
//   qwen2, llama-bpe (numbers in runs of up to 3): case-insensitive contractions | one
//     non-letter/number/newline + letters | digits | ' '?other + newlines | spaces ending in a
//     newline | spaces not before a non-space | spaces
// Invalid UTF-8 is encoded byte by byte, so no input is refused; a byte the vocabulary has no
// token for (SmolLM2's lacks a few ASCII control characters) is dropped.
#ifndef STRATA_GPU_BPE_TOKENIZER_H_
#define STRATA_GPU_BPE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gpu/gguf.h"

namespace strata::gpu {

class BpeTokenizer final {
 public:
  enum class PreTokenizer { kGpt2, kSmolLm, kQwen2, kLlama3 };

  // Reads the tokenizer from a GGUF file's metadata. InvalidArgument names what is missing or
  // unsupported (a tokenizer model other than "gpt2", an unknown pre-tokenizer, a merge whose
  // parts are not tokens).
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromGguf(const GgufFile& file);
  // The same from parts (tests). token_types may be empty (all normal); 3 marks a control token.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(
      std::vector<std::string> tokens, const std::vector<std::string>& merges,
      const std::vector<int32_t>& token_types, PreTokenizer pre);

  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // Token ids of `text`; with allow_special, control tokens' texts become those tokens.
  [[nodiscard]] std::vector<int32_t> Encode(absl::string_view text, bool allow_special) const;
  // The pre-tokenizer's pieces of `text` (steps 2), for tests.
  [[nodiscard]] std::vector<std::string> PreTokenize(absl::string_view text) const;
  // The bytes token `id` stands for (a control token's text as written); empty for an id out of
  // range. Concatenating the pieces of Encode's ids gives back the text.
  [[nodiscard]] std::string Decode(int32_t id) const;
  [[nodiscard]] std::string Decode(const std::vector<int32_t>& ids) const;

  // The id of a token's text exactly as in the vocabulary (e.g. "<|im_end|>"), or -1.
  [[nodiscard]] int32_t Find(absl::string_view token) const;
  [[nodiscard]] bool IsControl(int32_t id) const;
  [[nodiscard]] int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  [[nodiscard]] PreTokenizer pre_tokenizer() const { return pre_; }

 private:
  BpeTokenizer() = default;
  void EncodePiece(absl::string_view piece, std::vector<int32_t>* out) const;
  void EncodeText(absl::string_view text, std::vector<int32_t>* out) const;

  PreTokenizer pre_ = PreTokenizer::kGpt2;
  std::vector<std::string> tokens_;  // in the byte alphabet, as the file stores them
  std::vector<uint8_t> control_;
  absl::flat_hash_map<std::string, int32_t> ids_;
  // (left id, right id) -> (rank, merged id)
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  int32_t byte_ids_[256] = {};
  std::vector<std::pair<std::string, int32_t>> specials_;  // control tokens' texts, longest first
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_BPE_TOKENIZER_H_
