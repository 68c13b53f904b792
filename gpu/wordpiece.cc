#include "gpu/wordpiece.h"

#include <utf8proc.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

// Words longer than this (in characters) become one [UNK], as in BERT's reference.
constexpr size_t kMaxCharsPerWord = 100;

// Unicode White_Space (Rust's char::is_whitespace), which the reference uses.
bool IsWhitespace(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x20:
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200a;
  }
}

// Control characters (categories C*), except the tab and newlines, which count as whitespace.
bool IsControl(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
      return true;
    default:
      return false;
  }
}

// Step 1's drop: NUL, U+FFFD (invalid UTF-8 reads as it) and control characters.
bool Dropped(char32_t c) { return c == 0 || c == 0xFFFD || IsControl(c); }

bool IsPunctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
      (c >= 123 && c <= 126)) {
    return true;  // all non-alphanumeric ASCII, e.g. '$' and '^', which Unicode does not call P*
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// The CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana, which are written with
// spaces), as BERT's reference defines them.
bool IsCjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void AppendUtf8(char32_t c, std::string* out) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::vector<char32_t> DecodeUtf8(absl::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) {  // invalid byte: U+FFFD, which cleaning drops
      c = 0xFFFD;
      n = 1;
    }
    out.push_back(static_cast<char32_t>(c));
    p += n;
    left -= n;
  }
  return out;
}

}  // namespace

bool IsBlankText(absl::string_view text) {
  for (char32_t c : DecodeUtf8(text)) {
    if (Dropped(c) || IsWhitespace(c)) continue;
    // A non-spacing mark (an accent, combining) alone is no word either: uncased models drop it.
    if (utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_MN) continue;
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> WordPieceTokenizer::FromVocabFile(
    const std::string& path, bool lower_case) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  std::vector<std::string> tokens = absl::StrSplit(text, '\n');
  while (!tokens.empty() && tokens.back().empty()) tokens.pop_back();
  for (std::string& t : tokens) {
    if (!t.empty() && t.back() == '\r') t.pop_back();
  }
  auto tok = FromVocab(std::move(tokens), lower_case);
  if (!tok.ok())
    return absl::Status(tok.status().code(), absl::StrCat(path, ": ", tok.status().message()));
  return tok;
}

absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> WordPieceTokenizer::FromVocab(
    std::vector<std::string> tokens, bool lower_case) {
  auto tok = std::unique_ptr<WordPieceTokenizer>(new WordPieceTokenizer());
  tok->lower_case_ = lower_case;
  tok->tokens_ = std::move(tokens);
  for (size_t i = 0; i < tok->tokens_.size(); ++i) {
    tok->ids_.emplace(tok->tokens_[i], static_cast<int32_t>(i));  // first occurrence wins
  }
  auto special = [&](const char* name, int32_t* id) -> absl::Status {
    auto it = tok->ids_.find(name);
    if (it == tok->ids_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("the vocabulary (", tok->tokens_.size(),
                                                     " tokens) has no ", name, " token"));
    }
    *id = it->second;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(special("[UNK]", &tok->unk_id_));
  RETURN_IF_ERROR(special("[CLS]", &tok->cls_id_));
  RETURN_IF_ERROR(special("[SEP]", &tok->sep_id_));
  RETURN_IF_ERROR(special("[PAD]", &tok->pad_id_));
  return tok;
}

std::vector<std::u32string> WordPieceTokenizer::SplitWords(absl::string_view text) const {
  const std::vector<char32_t> in = DecodeUtf8(text);
  // Steps 1-3, character by character, into `norm`.
  std::vector<char32_t> norm;
  norm.reserve(in.size() + 8);
  utf8proc_int32_t decomposed[8];
  for (char32_t c : in) {
    if (Dropped(c)) continue;
    if (IsWhitespace(c)) {
      norm.push_back(' ');
      continue;
    }
    if (IsCjk(c)) {
      norm.push_back(' ');
      norm.push_back(c);
      norm.push_back(' ');
      continue;
    }
    if (!lower_case_) {
      norm.push_back(c);
      continue;
    }
    int last_boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), decomposed, 8,
                                                 UTF8PROC_DECOMPOSE, &last_boundclass);
    if (n <= 0 || n > 8) {
      decomposed[0] = static_cast<utf8proc_int32_t>(c);
      n = 1;
    }
    for (utf8proc_ssize_t i = 0; i < n; ++i) {
      if (utf8proc_category(decomposed[i]) == UTF8PROC_CATEGORY_MN) continue;
      norm.push_back(static_cast<char32_t>(utf8proc_tolower(decomposed[i])));
    }
  }
  // Step 4.
  std::vector<std::u32string> words;
  std::u32string word;
  auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  for (char32_t c : norm) {
    if (c == ' ' || IsWhitespace(c)) {
      flush();
    } else if (IsPunctuation(c)) {
      flush();
      word.push_back(c);
      flush();
    } else {
      word.push_back(c);
    }
  }
  flush();
  return words;
}

std::vector<std::string> WordPieceTokenizer::PreTokenize(absl::string_view text) const {
  std::vector<std::string> out;
  for (const std::u32string& w : SplitWords(text)) {
    std::string utf8;
    for (char32_t c : w) AppendUtf8(c, &utf8);
    out.push_back(std::move(utf8));
  }
  return out;
}

void WordPieceTokenizer::AppendWordPieces(absl::Span<const char32_t> word,
                                          std::vector<int32_t>* out) const {
  if (word.size() > kMaxCharsPerWord) {
    out->push_back(unk_id_);
    return;
  }
  const size_t first = out->size();
  std::string piece;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    int32_t found = -1;
    while (end > start) {
      piece.assign(start > 0 ? "##" : "");
      for (size_t i = start; i < end; ++i) AppendUtf8(word[i], &piece);
      auto it = ids_.find(piece);
      if (it != ids_.end()) {
        found = it->second;
        break;
      }
      --end;
    }
    if (found < 0) {  // no cover: the whole word is unknown
      out->resize(first);
      out->push_back(unk_id_);
      return;
    }
    out->push_back(found);
    start = end;
  }
}

std::vector<int32_t> WordPieceTokenizer::Tokenize(absl::string_view text) const {
  std::vector<int32_t> ids;
  for (const std::u32string& w : SplitWords(text)) AppendWordPieces(w, &ids);
  return ids;
}

std::vector<int32_t> WordPieceTokenizer::Encode(absl::string_view text, int max_length) const {
  std::vector<int32_t> pieces = Tokenize(text);
  const size_t room = static_cast<size_t>(std::max(max_length, 2) - 2);
  if (pieces.size() > room) pieces.resize(room);
  std::vector<int32_t> ids;
  ids.reserve(pieces.size() + 2);
  ids.push_back(cls_id_);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  ids.push_back(sep_id_);
  return ids;
}

TokenBatch WordPieceTokenizer::Pad(absl::Span<const std::vector<int32_t>> sequences) const {
  TokenBatch b;
  b.batch = static_cast<int>(sequences.size());
  for (const auto& s : sequences) b.max_length = std::max(b.max_length, static_cast<int>(s.size()));
  b.ids.assign(static_cast<size_t>(b.batch) * b.max_length, pad_id_);
  b.mask.assign(b.ids.size(), 0);
  for (int i = 0; i < b.batch; ++i) {
    const auto& s = sequences[i];
    std::copy(s.begin(), s.end(), b.ids.begin() + static_cast<ptrdiff_t>(i) * b.max_length);
    std::fill_n(b.mask.begin() + static_cast<ptrdiff_t>(i) * b.max_length, s.size(), 1);
    b.lengths.push_back(static_cast<int32_t>(s.size()));
  }
  return b;
}

}  // namespace strata::gpu
