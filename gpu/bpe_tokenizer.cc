#include "gpu/bpe_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <queue>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

// GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves; the other 68 bytes (control
// characters, space, DEL, NBSP, soft hyphen ...) are shifted to U+0100 onwards, in byte order, so
// every byte has a visible character and no token holds a space.
struct ByteAlphabet {
  char32_t to_char[256];
  absl::flat_hash_map<char32_t, uint8_t> to_byte;
  ByteAlphabet() {
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteAlphabet& Alphabet() {
  static const ByteAlphabet* a = new ByteAlphabet();
  return *a;
}

void AppendUtf8(char32_t c, std::string* out) {
  uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// A decoded code point and where its bytes lie; invalid bytes are code point -1, one byte each.
struct Cp {
  int32_t c;
  uint32_t begin, len;
};

std::vector<Cp> DecodeUtf8(absl::string_view text) {
  std::vector<Cp> out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    utf8proc_int32_t c = -1;
    utf8proc_ssize_t n =
        utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(text.size() - i), &c);
    if (n <= 0) {
      c = -1;
      n = 1;
    }
    out.push_back({c, static_cast<uint32_t>(i), static_cast<uint32_t>(n)});
    i += static_cast<size_t>(n);
  }
  return out;
}

bool IsSpace(int32_t c) {
  if (c < 0) return false;
  if ((c >= 9 && c <= 13) || c == 0x85) return true;
  const utf8proc_category_t cat = utf8proc_category(c);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}
bool IsLetter(int32_t c) {
  if (c < 0) return false;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}
bool IsNumber(int32_t c) {
  if (c < 0) return false;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}
bool IsOther(int32_t c) { return !IsSpace(c) && !IsLetter(c) && !IsNumber(c); }
bool IsNewline(int32_t c) { return c == '\r' || c == '\n'; }

// Length (in code points) of a contraction at i: 's 't 'm 'd 're 've 'll, or 0.
size_t Contraction(const std::vector<Cp>& s, size_t i, bool any_case) {
  if (s[i].c != '\'' || i + 1 >= s.size()) return 0;
  auto lower = [&](size_t j) -> int32_t {
    if (j >= s.size()) return 0;
    const int32_t c = s[j].c;
    return any_case && c >= 'A' && c <= 'Z' ? c + 32 : c;
  };
  const int32_t a = lower(i + 1), b = lower(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Length of the whitespace-run rules at i: `\s+(?!\S)` then `\s+`.
size_t SpaceRun(const std::vector<Cp>& s, size_t i) {
  size_t j = i;
  while (j < s.size() && IsSpace(s[j].c)) ++j;
  const size_t run = j - i;
  if (run == 0) return 0;
  if (j == s.size() || run == 1) return run;  // at the end, or `\s+` takes the single one
  return run - 1;                             // leave the last before the non-space
}

// One piece at i under GPT-2's rules (gpt2, smollm, starcoder).
size_t Gpt2Piece(const std::vector<Cp>& s, size_t i) {
  if (size_t n = Contraction(s, i, /*any_case=*/false)) return n;
  const size_t sp = s[i].c == ' ' && i + 1 < s.size() ? 1 : 0;
  for (auto cls : {IsLetter, IsNumber, IsOther}) {
    if (cls(s[i + sp].c) && (sp == 0 || cls(s[i + 1].c))) {
      size_t j = i + sp;
      while (j < s.size() && cls(s[j].c)) ++j;
      return j - i;
    }
    if (cls(s[i].c)) {
      size_t j = i;
      while (j < s.size() && cls(s[j].c)) ++j;
      return j - i;
    }
  }
  if (size_t n = SpaceRun(s, i)) return n;
  return 1;
}

// One piece at i under Qwen2's / Llama 3's rules; max_digits 1 (qwen2) or 3 (llama-bpe).
size_t Qwen2Piece(const std::vector<Cp>& s, size_t i, size_t max_digits) {
  if (size_t n = Contraction(s, i, /*any_case=*/true)) return n;
  const int32_t c = s[i].c;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (IsLetter(c) ||
      (!IsNewline(c) && !IsLetter(c) && !IsNumber(c) && i + 1 < s.size() && IsLetter(s[i + 1].c))) {
    size_t j = i + 1;
    while (j < s.size() && IsLetter(s[j].c)) ++j;
    return j - i;
  }
  if (IsNumber(c)) {
    size_t j = i;
    while (j < s.size() && j - i < max_digits && IsNumber(s[j].c)) ++j;
    return j - i;
  }
  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  const size_t sp = c == ' ' && i + 1 < s.size() && IsOther(s[i + 1].c) ? 1 : 0;
  if (IsOther(s[i + sp].c)) {
    size_t j = i + sp;
    while (j < s.size() && IsOther(s[j].c)) ++j;
    while (j < s.size() && IsNewline(s[j].c)) ++j;
    return j - i;
  }
  // \s*[\r\n]+: the whitespace run up to its last newline.
  size_t last_newline = 0;
  for (size_t j = i; j < s.size() && IsSpace(s[j].c); ++j) {
    if (IsNewline(s[j].c)) last_newline = j + 1;
  }
  if (last_newline > 0) return last_newline - i;
  if (size_t n = SpaceRun(s, i)) return n;
  return 1;
}

uint64_t PairKey(int32_t a, int32_t b) {
  return static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32 | static_cast<uint32_t>(b);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromGguf(const GgufFile& file) {
  ASSIGN_OR_RETURN(std::string model, file.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tokenizer model '", model,
                                                   "'; Strata reads byte-level BPE ('gpt2')"));
  }
  std::string pre_name = "default";
  if (file.Find("tokenizer.ggml.pre") != nullptr) {
    ASSIGN_OR_RETURN(pre_name, file.GetString("tokenizer.ggml.pre"));
  }
  PreTokenizer pre;
  if (pre_name == "gpt2" || pre_name == "default" || pre_name == "starcoder") {
    pre = PreTokenizer::kGpt2;
  } else if (pre_name == "smollm") {
    pre = PreTokenizer::kSmolLm;
  } else if (pre_name == "qwen2") {
    pre = PreTokenizer::kQwen2;
  } else if (pre_name == "llama-bpe" || pre_name == "llama3") {
    pre = PreTokenizer::kLlama3;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": pre-tokenizer '", pre_name,
                     "'; Strata knows gpt2, smollm, starcoder, qwen2 and llama-bpe"));
  }
  ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                   file.GetStrings("tokenizer.ggml.tokens"));
  ASSIGN_OR_RETURN(const std::vector<std::string>* merges,
                   file.GetStrings("tokenizer.ggml.merges"));
  std::vector<int32_t> types;
  if (file.Find("tokenizer.ggml.token_type") != nullptr) {
    ASSIGN_OR_RETURN(const std::vector<double>* t, file.GetNumbers("tokenizer.ggml.token_type"));
    for (double v : *t) {
      // A hostile file may hold any double here: out of range is a normal token.
      types.push_back(v >= 0 && v <= 64 ? static_cast<int32_t>(v) : 1);
    }
  }
  auto tok = Create(*tokens, *merges, types, pre);
  if (!tok.ok())
    return absl::Status(tok.status().code(),
                        absl::StrCat(file.path(), ": ", tok.status().message()));
  return tok;
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(
    std::vector<std::string> tokens, const std::vector<std::string>& merges,
    const std::vector<int32_t>& token_types, PreTokenizer pre) {
  if (tokens.empty() || tokens.size() > (size_t{1} << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a vocabulary of ", tokens.size(), " tokens (1 to 16M expected)"));
  }
  if (!token_types.empty() && token_types.size() != tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(token_types.size(), " token types for ", tokens.size(), " tokens"));
  }
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  t->pre_ = pre;
  t->tokens_ = std::move(tokens);
  t->control_.assign(t->tokens_.size(), 0);
  for (size_t i = 0; i < t->tokens_.size(); ++i) {
    const int32_t type = token_types.empty() ? 1 : token_types[i];
    // 3: control (<|im_start|>), 4: user-defined; both are matched as whole texts.
    if ((type == 3 || type == 4) && !t->tokens_[i].empty()) {
      t->control_[i] = 1;
      t->specials_.emplace_back(t->tokens_[i], static_cast<int32_t>(i));
    }
    t->ids_.try_emplace(t->tokens_[i], static_cast<int32_t>(i));
  }
  std::sort(t->specials_.begin(), t->specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  const ByteAlphabet& alpha = Alphabet();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    AppendUtf8(alpha.to_char[b], &ch);
    // -1 where the vocabulary has no token for the byte (SmolLM2's lacks a few control
    // characters): such bytes are dropped, as no id can stand for them.
    t->byte_ids_[b] = t->Find(ch);
  }
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("merge ", r, " ('", m, "') has no space"));
    }
    const std::string left = m.substr(0, sp), right = m.substr(sp + 1);
    const int32_t a = t->Find(left), b = t->Find(right), ab = t->Find(left + right);
    if (a < 0 || b < 0 || ab < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("merge ", r, " ('", m, "') joins or makes a string not in the vocabulary"));
    }
    t->merges_.try_emplace(PairKey(a, b), static_cast<int32_t>(r), ab);
  }
  return t;
}

int32_t BpeTokenizer::Find(absl::string_view token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

bool BpeTokenizer::IsControl(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < control_.size() && control_[id] != 0;
}

std::vector<std::string> BpeTokenizer::PreTokenize(absl::string_view text) const {
  std::vector<std::string> out;
  const std::vector<Cp> s = DecodeUtf8(text);
  auto emit = [&](size_t i, size_t n) {
    out.emplace_back(text.substr(s[i].begin, s[i + n - 1].begin + s[i + n - 1].len - s[i].begin));
  };
  if (pre_ == PreTokenizer::kGpt2 || pre_ == PreTokenizer::kSmolLm) {
    // SmolLM: every number character is a piece of its own, and the stretches between them are
    // split separately.
    size_t i = 0;
    while (i < s.size()) {
      size_t end = s.size();
      if (pre_ == PreTokenizer::kSmolLm) {
        if (IsNumber(s[i].c)) {
          emit(i, 1);
          ++i;
          continue;
        }
        end = i;
        while (end < s.size() && !IsNumber(s[end].c)) ++end;
      }
      const std::vector<Cp> part(s.begin() + static_cast<std::ptrdiff_t>(i),
                                 s.begin() + static_cast<std::ptrdiff_t>(end));
      for (size_t j = 0; j < part.size();) {
        const size_t n = Gpt2Piece(part, j);
        emit(i + j, n);
        j += n;
      }
      i = end;
    }
    return out;
  }
  const size_t max_digits = pre_ == PreTokenizer::kQwen2 ? 1 : 3;
  for (size_t i = 0; i < s.size();) {
    const size_t n = Qwen2Piece(s, i, max_digits);
    emit(i, n);
    i += n;
  }
  return out;
}

void BpeTokenizer::EncodePiece(absl::string_view piece, std::vector<int32_t>* out) const {
  // The whole piece may be a token already (most words are).
  std::string mapped;
  mapped.reserve(piece.size() * 2);
  const ByteAlphabet& alpha = Alphabet();
  for (unsigned char b : piece) AppendUtf8(alpha.to_char[b], &mapped);
  if (const int32_t id = Find(mapped); id >= 0) {
    out->push_back(id);
    return;
  }
  // Merge by rank with a heap over adjacent pairs; stale entries are skipped when popped.
  struct Sym {
    int32_t id;
    int prev, next;
  };
  std::vector<Sym> syms(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    syms[i] = {byte_ids_[static_cast<unsigned char>(piece[i])], static_cast<int>(i) - 1,
               i + 1 < piece.size() ? static_cast<int>(i) + 1 : -1};
  }
  struct Cand {
    int32_t rank;
    int left;
    int32_t left_id, right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto consider = [&](int left) {
    if (left < 0 || syms[left].next < 0) return;
    const int right = syms[left].next;
    auto it = merges_.find(PairKey(syms[left].id, syms[right].id));
    if (it != merges_.end()) heap.push({it->second.first, left, syms[left].id, syms[right].id});
  };
  for (size_t i = 0; i + 1 < piece.size(); ++i) consider(static_cast<int>(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    if (l.id != c.left_id || l.next < 0 || syms[l.next].id != c.right_id) continue;
    const int right = l.next;
    l.id = merges_.find(PairKey(c.left_id, c.right_id))->second.second;
    l.next = syms[right].next;
    if (l.next >= 0) syms[l.next].prev = c.left;
    syms[right].id = -1;
    consider(l.prev);
    consider(c.left);
  }
  for (int i = 0; i >= 0; i = syms[i].next) {
    if (syms[i].id >= 0) out->push_back(syms[i].id);
  }
}

void BpeTokenizer::EncodeText(absl::string_view text, std::vector<int32_t>* out) const {
  for (const std::string& piece : PreTokenize(text)) EncodePiece(piece, out);
}

std::vector<int32_t> BpeTokenizer::Encode(absl::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  if (!allow_special || specials_.empty()) {
    EncodeText(text, &out);
    return out;
  }
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& sp : specials_) {  // longest first
      if (text.substr(i, sp.first.size()) == sp.first) {
        hit = &sp;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    EncodeText(text.substr(start, i - start), &out);
    out.push_back(hit->second);
    i += hit->first.size();
    start = i;
  }
  EncodeText(text.substr(start), &out);
  return out;
}

std::string BpeTokenizer::Decode(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return "";
  const std::string& t = tokens_[id];
  if (control_[id]) return t;
  std::string out;
  const ByteAlphabet& alpha = Alphabet();
  for (const Cp& cp : DecodeUtf8(t)) {
    auto it = cp.c < 0 ? alpha.to_byte.end() : alpha.to_byte.find(static_cast<char32_t>(cp.c));
    if (it != alpha.to_byte.end()) {
      out.push_back(static_cast<char>(it->second));
    } else {
      out.append(t, cp.begin, cp.len);  // not in the byte alphabet: kept as written
    }
  }
  return out;
}

std::string BpeTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += Decode(id);
  return out;
}

}  // namespace strata::gpu
