// Text made of fuzz bytes through the byte-level BPE tokenizer under each pre-tokenizer: it must
// never crash, and decoding the ids must give back the bytes (every byte has a token here).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gpu/bpe_tokenizer.h"

namespace {

std::string Utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
  return s;
}

// GPT-2's 256 byte characters, a few merges and two control tokens.
std::vector<std::unique_ptr<strata::gpu::BpeTokenizer>> Make() {
  std::vector<std::string> vocab;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    vocab.push_back(Utf8(printable ? static_cast<char32_t>(b) : next++));
  }
  for (const char* t : {"he", "ll", "llo", "hello", "\xC4\xA0w", "\xC4\xA0wo"}) vocab.push_back(t);
  vocab.push_back("<|im_start|>");
  vocab.push_back("<|im_end|>");
  std::vector<int32_t> types(vocab.size(), 1);
  types[types.size() - 1] = types[types.size() - 2] = 3;
  const std::vector<std::string> merges = {"h e",    "l l",        "ll o",
                                           "he llo", "\xC4\xA0 w", "\xC4\xA0w o"};
  std::vector<std::unique_ptr<strata::gpu::BpeTokenizer>> out;
  using P = strata::gpu::BpeTokenizer::PreTokenizer;
  for (P p : {P::kGpt2, P::kSmolLm, P::kQwen2, P::kLlama3}) {
    out.push_back(std::move(*strata::gpu::BpeTokenizer::Create(vocab, merges, types, p)));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizers = Make();
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto& t : tokenizers) {
    const std::vector<int32_t> plain = t->Encode(text, false);
    if (t->Decode(plain) != text) std::abort();
    (void)t->Encode(text, true);
    size_t total = 0;
    for (const std::string& piece : t->PreTokenize(text)) total += piece.size();
    if (total != text.size()) std::abort();
  }
  return 0;
}
