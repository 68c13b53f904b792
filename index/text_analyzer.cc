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

// Whether `c` is of a script whose runs are indexed as overlapping pairs of characters
// (TextAnalyzer's header), after compatibility folding (half-width katakana are full-width): Han
// ideographs (CJK Unified Ideographs, Extensions A to H, compatibility ideographs), Hiragana and
// Katakana, written without spaces; Thai, Lao, Khmer and Myanmar, likewise; and Hangul
// syllables, whose words carry their particles ("수도이며" holds "수도"), as Lucene's CJK
// bigrams take them.
bool IsUnspacedScript(utf8proc_int32_t c) {
  return (c >= 0x0E00 && c <= 0x0EFF) ||    // Thai, Lao
         (c >= 0x1000 && c <= 0x109F) ||    // Myanmar
         (c >= 0x1780 && c <= 0x17FF) ||    // Khmer
         (c >= 0xAC00 && c <= 0xD7AF) ||    // Hangul syllables
         (c >= 0x3005 && c <= 0x3007) ||    // the iteration mark 々, 〆, the ideographic zero 〇
         c == 0x303B ||                     // the vertical iteration mark
         (c >= 0x3040 && c <= 0x30FF) ||    // Hiragana, Katakana
         (c >= 0x31F0 && c <= 0x31FF) ||    // Katakana phonetic extensions
         (c >= 0x3400 && c <= 0x4DBF) ||    // Extension A
         (c >= 0x4E00 && c <= 0x9FFF) ||    // CJK Unified Ideographs
         (c >= 0xF900 && c <= 0xFAFF) ||    // compatibility ideographs
         (c >= 0x20000 && c <= 0x2EBEF) ||  // Extensions B to F
         (c >= 0x30000 && c <= 0x323AF);    // Extensions G and H
}

// Whether valid UTF-8 `text` holds a character that is kana or folds to kana (so that a text
// takes the same fold whichever of them it holds): the Hiragana and Katakana blocks (U+3040 to
// U+30FF: E3 81-83), the circled and squared katakana (U+32C0 to U+337F: E3 8B-8D), half-width
// katakana (U+FF61 to U+FF9F: EF BD A1-BF, EF BE 80-9F) and the enclosed ideographic supplement
// (U+1F200 to U+1F23F: F0 9F 88).
bool HasKana(absl::string_view text) {
  const auto at = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  for (size_t i = 0; i + 2 < text.size(); ++i) {
    const unsigned char b = at(i), next = at(i + 1), third = at(i + 2);
    if ((b == 0xE3 && ((next >= 0x81 && next <= 0x83) || (next >= 0x8B && next <= 0x8D))) ||
        (b == 0xEF && next == 0xBD && third >= 0xA1) ||
        (b == 0xEF && next == 0xBE && third <= 0x9F) ||
        (b == 0xF0 && next == 0x9F && third == 0x88)) {
      return true;
    }
  }
  return false;
}

// Text folded as utf8proc_map does with `options` and UTF8PROC_STRIPMARK, except that kana keep
// their voicing marks ("デ" is not "テ", "パ" not "ハ"): folded without stripping (so a half-width
// "ﾃﾞ" composes to "デ"), then every other character decomposed with its marks stripped.
// utf8proc_map's result (free() it) and length, or a negative length.
utf8proc_ssize_t FoldKeepingKanaMarks(const std::string& valid, int options,
                                      utf8proc_uint8_t** out) {
  // The Greek subscript iota's mark (U+0345) and ypogegrammeni (U+037A) go before the fold, as
  // the one-pass fold loses them (case folding would make U+0345 a letter iota first).
  std::string input;
  input.reserve(valid.size());
  for (size_t i = 0; i < valid.size(); ++i) {
    if (valid[i] == '\xCD' && i + 1 < valid.size() &&
        (valid[i + 1] == '\x85' || valid[i + 1] == '\xBA')) {
      if (valid[i + 1] == '\xBA') input.push_back(' ');
      ++i;
      continue;
    }
    input.push_back(valid[i]);
  }
  utf8proc_uint8_t* composed = nullptr;
  const utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(input.data()),
                                            static_cast<utf8proc_ssize_t>(input.size()), &composed,
                                            static_cast<utf8proc_option_t>(options));
  if (len < 0) return len;
  std::string stripped;
  stripped.reserve(static_cast<size_t>(len));
  const utf8proc_uint8_t* p = composed;
  utf8proc_ssize_t left = len;
  utf8proc_int32_t parts[16];
  utf8proc_uint8_t bytes[4];
  while (left > 0) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) break;
    int last_boundclass = 0;
    const utf8proc_ssize_t k =
        (c >= 0x3040 && c <= 0x30FF)
            ? -1
            : utf8proc_decompose_char(
                  c, parts, 16,
                  static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK),
                  &last_boundclass);
    if (k < 0 || k > 16) {  // kana, or (not expected) a decomposition of more than 16
      stripped.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    } else {
      for (utf8proc_ssize_t i = 0; i < k; ++i) {
        const utf8proc_ssize_t b = utf8proc_encode_char(parts[i], bytes);
        stripped.append(reinterpret_cast<const char*>(bytes), static_cast<size_t>(b));
      }
    }
    p += n;
    left -= n;
  }
  std::free(composed);
  // Composed again, as the single pass gives it (a decomposed Hangul syllable, say).
  return utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(stripped.data()),
                      static_cast<utf8proc_ssize_t>(stripped.size()), out,
                      static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE));
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
  constexpr int kFold = UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE;
  const utf8proc_ssize_t len =
      HasKana(valid) ? FoldKeepingKanaMarks(valid, kFold, &folded)
                     : utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                                    static_cast<utf8proc_ssize_t>(valid.size()), &folded,
                                    static_cast<utf8proc_option_t>(kFold | UTF8PROC_STRIPMARK));
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
    if (IsUnspacedScript(c) && IsWordChar(c)) {  // (not their punctuation and symbols)
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
