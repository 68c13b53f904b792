#include "index/text_analyzer.h"

#include <libstemmer.h>
#include <utf8proc.h>

#include <cstdlib>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace strata {
namespace {

// English function words that carry no topic (a short list, as BM25 baselines use; stemming
// happens after this test, so the words are listed as written).
const absl::flat_hash_set<std::string>& StopWords() {
  static const auto* words = new absl::flat_hash_set<std::string>{
      "a",    "an",    "and",  "are",   "as",    "at",    "be",   "but",  "by",  "for",  "if",
      "in",   "into",  "is",   "it",    "no",    "not",   "of",   "on",   "or",  "such", "that",
      "the",  "their", "then", "there", "these", "they",  "this", "to",   "was", "will", "with",
      "what", "which", "who",  "whom",  "when",  "where", "why",  "how",  "did", "do",   "does",
      "from", "has",   "have", "had",   "were",  "been",  "its",  "than", "can", "s",    "t"};
  return *words;
}

bool IsWordChar(utf8proc_int32_t c) {
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Whether `c` is of a script written without spaces between words (after compatibility folding,
// so half-width katakana are full-width): Han ideographs (CJK Unified Ideographs, Extensions A
// to F, compatibility ideographs), Hiragana, Katakana. Their runs are indexed as overlapping
// pairs of characters (TextAnalyzer's header). Hangul is written with spaces, and stays words.
bool IsUnspacedScript(utf8proc_int32_t c) {
  return (c >= 0x3040 && c <= 0x30FF) ||  // Hiragana, Katakana
         (c >= 0x31F0 && c <= 0x31FF) ||  // Katakana phonetic extensions
         (c >= 0x3400 && c <= 0x4DBF) ||  // Extension A
         (c >= 0x4E00 && c <= 0x9FFF) ||  // CJK Unified Ideographs
         (c >= 0xF900 && c <= 0xFAFF) ||  // compatibility ideographs
         (c >= 0x20000 && c <= 0x2EBEF);  // Extensions B to F
}

// `text` with every invalid UTF-8 sequence left out.
std::string ValidUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) {  // not a valid sequence: skip one byte
      ++p;
      --left;
      continue;
    }
    out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    p += n;
    left -= n;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TextAnalyzer>> TextAnalyzer::Create(absl::string_view language) {
  sb_stemmer* s = sb_stemmer_new(std::string(language).c_str(), "UTF_8");
  if (s == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("no Snowball stemmer for language '", language, "'"));
  }
  return std::unique_ptr<TextAnalyzer>(new TextAnalyzer(s));
}

TextAnalyzer::~TextAnalyzer() { sb_stemmer_delete(stemmer_); }

void TextAnalyzer::ForEachWord(absl::string_view text,
                               absl::FunctionRef<void(const std::string&)> visit) {
  const std::string valid = ValidUtf8(text);
  utf8proc_uint8_t* folded = nullptr;
  const utf8proc_ssize_t len = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
      static_cast<utf8proc_ssize_t>(valid.size()), &folded,
      static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |
                                     UTF8PROC_STRIPMARK | UTF8PROC_IGNORE));
  if (len < 0) return;  // cannot happen on valid UTF-8 but for memory exhaustion
  std::string word;
  const auto flush = [&] {
    if (!word.empty() && word.size() <= kMaxTermBytes) visit(word);
    word.clear();
  };
  // A run of an unspaced script: each pair of neighbours is a word; a run of one character is.
  std::string last, pair;  // the run's last character; scratch
  bool paired = false;     // the run has given a pair
  const auto end_run = [&] {
    if (!last.empty() && !paired) visit(last);
    last.clear();
    paired = false;
  };
  const utf8proc_uint8_t* p = folded;
  utf8proc_ssize_t left = len;
  while (left > 0) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) break;
    const char* const ch = reinterpret_cast<const char*>(p);
    const size_t ch_bytes = static_cast<size_t>(n);
    if (IsUnspacedScript(c)) {
      flush();
      if (!last.empty()) {
        pair.assign(last).append(ch, ch_bytes);
        visit(pair);
        paired = true;
      }
      last.assign(ch, ch_bytes);
    } else if (IsWordChar(c)) {
      end_run();
      word.append(ch, ch_bytes);
    } else {
      end_run();
      flush();
    }
    p += n;
    left -= n;
  }
  end_run();
  flush();
  std::free(folded);
}

std::vector<std::string> TextAnalyzer::Terms(absl::string_view text) {
  std::vector<std::string> terms;
  ForEachWord(text, [&](const std::string& word) {
    if (StopWords().contains(word)) return;
    const sb_symbol* stem = sb_stemmer_stem(
        stemmer_, reinterpret_cast<const sb_symbol*>(word.data()), static_cast<int>(word.size()));
    if (stem != nullptr) {
      terms.emplace_back(reinterpret_cast<const char*>(stem),
                         static_cast<size_t>(sb_stemmer_length(stemmer_)));
    }
  });
  return terms;
}

std::vector<std::string> TextAnalyzer::Words(absl::string_view text) {
  std::vector<std::string> words;
  ForEachWord(text, [&](const std::string& word) { words.push_back(word); });
  return words;
}

}  // namespace strata
