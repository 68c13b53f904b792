// BERT's WordPiece tokenizer, as the Hugging Face `tokenizers` library runs it for BERT models
// (BertNormalizer + BertPreTokenizer + WordPiece + the [CLS] ... [SEP] template):
//   1. clean: drop NUL, U+FFFD and control characters; every whitespace character becomes a space;
//   2. CJK ideographs get spaces around them (each becomes its own word);
//   3. (uncased models) NFD and drop non-spacing marks (accents), then lower-case;
//   4. split on whitespace, and every punctuation character is a word of its own;
//   5. each word: greedy longest match against the vocabulary, continuation pieces prefixed "##";
//      a word with no full cover, or longer than 100 characters, is one [UNK].
// Unicode data (categories, decomposition, case) comes from utf8proc. Invalid UTF-8 bytes are read
// as U+FFFD and so dropped by step 1.
#ifndef STRATA_GPU_WORDPIECE_H_
#define STRATA_GPU_WORDPIECE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace strata::gpu {

// Token ids of several texts padded to one length, row-major: ids[b * max_length + t].
// mask is 1 for real tokens and 0 for padding; lengths[b] counts the real tokens of row b.
struct TokenBatch {
  int batch = 0;
  int max_length = 0;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  std::vector<int32_t> lengths;
};

// Whether `text` holds no word: only what step 1 drops (NUL, control and format characters such
// as a zero-width space U+200B or a byte-order mark U+FEFF, U+FFFD, invalid UTF-8), white space
// and non-spacing marks (which uncased models drop in step 3), or nothing at all. Searches,
// questions and loaded passages refuse such a text.
[[nodiscard]] bool IsBlankText(absl::string_view text);

class WordPieceTokenizer final {
 public:
  // Reads vocab.txt (one token per line; the line number is the id). InvalidArgument when the
  // vocabulary lacks [UNK], [CLS], [SEP] or [PAD]; NotFound when the file is missing.
  static absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> FromVocabFile(const std::string& path,
                                                                           bool lower_case);
  static absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> FromVocab(
      std::vector<std::string> tokens, bool lower_case);

  WordPieceTokenizer(const WordPieceTokenizer&) = delete;
  WordPieceTokenizer& operator=(const WordPieceTokenizer&) = delete;

  // The word pieces of `text`, without special tokens.
  [[nodiscard]] std::vector<int32_t> Tokenize(absl::string_view text) const;
  // [CLS] pieces [SEP], the pieces cut so that the whole is at most max_length (>= 2) tokens.
  [[nodiscard]] std::vector<int32_t> Encode(absl::string_view text, int max_length) const;
  // Pads sequences to the longest one with [PAD].
  [[nodiscard]] TokenBatch Pad(absl::Span<const std::vector<int32_t>> sequences) const;

  // The normalised, split words of `text` (steps 1-4), for tests and debugging.
  [[nodiscard]] std::vector<std::string> PreTokenize(absl::string_view text) const;

  [[nodiscard]] int32_t cls_id() const { return cls_id_; }
  [[nodiscard]] int32_t sep_id() const { return sep_id_; }
  [[nodiscard]] int32_t pad_id() const { return pad_id_; }
  [[nodiscard]] int32_t unk_id() const { return unk_id_; }
  [[nodiscard]] int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  [[nodiscard]] const std::string& token(int32_t id) const { return tokens_[id]; }

 private:
  WordPieceTokenizer() = default;
  // Steps 1-4: the words of `text` as code points.
  std::vector<std::u32string> SplitWords(absl::string_view text) const;
  void AppendWordPieces(absl::Span<const char32_t> word, std::vector<int32_t>* out) const;

  bool lower_case_ = true;
  std::vector<std::string> tokens_;
  absl::flat_hash_map<std::string, int32_t> ids_;
  int32_t cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, unk_id_ = -1;
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_WORDPIECE_H_
