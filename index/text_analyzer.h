// Turns text into the terms of the lexical (BM25) index: Unicode compatibility normalisation with
// case folding and accents removed (utf8proc; kana keep their voicing marks: "ガ" is not "カ"),
// tokens = maximal runs of letters and digits, English stop words dropped, Snowball stemming
// (libstemmer). Documents and queries go through the same analysis, so "Running" in a question
// matches "runs" in a passage. Scripts written without spaces between words (Han, Hiragana,
// Katakana, Thai, Lao, Khmer, Myanmar) have no runs to take as words, and Korean's words carry
// their particles: in those, each pair of neighbouring characters is a token instead (a lone
// character is one), so "東京都" gives "東京" and "京都", and a query finds a passage by the pairs
// they share (no dictionary segmentation; a query of one character finds it only where it stands
// alone, as Lucene's CJK bigrams do).
//
// Invalid UTF-8 bytes are skipped (never an error): a payload that is not text yields fewer
// terms, not a failure. Terms longer than kMaxTermBytes are dropped (no word is that long; a
// base64 blob is not worth indexing).
//
// Thread-compatible: the stemmer keeps state, so use one analyzer per thread (Create is cheap).
#ifndef STRATA_INDEX_TEXT_ANALYZER_H_
#define STRATA_INDEX_TEXT_ANALYZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sb_stemmer;

namespace strata {

class TextAnalyzer final {
 public:
  static constexpr size_t kMaxTermBytes = 64;

  // `language`: a Snowball algorithm name ("english"); InvalidArgument when libstemmer lacks it.
  static absl::StatusOr<std::unique_ptr<TextAnalyzer>> Create(
      absl::string_view language = "english");
  ~TextAnalyzer();
  TextAnalyzer(const TextAnalyzer&) = delete;
  TextAnalyzer& operator=(const TextAnalyzer&) = delete;

  // The terms of `text` in order, repeats kept (a term's count is its frequency).
  [[nodiscard]] std::vector<std::string> Terms(absl::string_view text);
  // The words of `text` in order as written, only folded (case, accents, compatibility forms):
  // stop words kept, nothing stemmed, over-long words dropped. What exact phrases compare.
  [[nodiscard]] std::vector<std::string> Words(absl::string_view text);

 private:
  explicit TextAnalyzer(sb_stemmer* stemmer) : stemmer_(stemmer) {}
  // Calls `visit` with each folded word of `text` (runs of letters and digits, at most
  // kMaxTermBytes).
  static void ForEachWord(absl::string_view text,
                          absl::FunctionRef<void(const std::string&)> visit);
  sb_stemmer* stemmer_;
};

}  // namespace strata

#endif  // STRATA_INDEX_TEXT_ANALYZER_H_
