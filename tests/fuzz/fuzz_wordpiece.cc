// The WordPiece tokenizer on arbitrary bytes (valid UTF-8 or not): it must tokenize every input
// into ids of its vocabulary, and Encode must frame them [CLS] ... [SEP] within its length.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gpu/wordpiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<strata::gpu::WordPieceTokenizer> tok = [] {
    std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the",   "a",
                                      "##s",   "##ing", "run",   "##n",   "é",      "中",    ".",
                                      ",",     "##e",   "x",     "##x",   "un",     "##able"};
    auto t = strata::gpu::WordPieceTokenizer::FromVocab(vocab, /*lower_case=*/true);
    if (!t.ok()) std::abort();
    return std::move(t).value();
  }();
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  for (int32_t id : tok->Tokenize(text)) {
    if (id < 0 || id >= tok->vocab_size()) std::abort();
  }
  const std::vector<int32_t> framed = tok->Encode(text, 16);
  if (framed.size() < 2 || framed.size() > 16 || framed.front() != tok->cls_id() ||
      framed.back() != tok->sep_id()) {
    std::abort();
  }
  for (int32_t id : framed) {
    if (id < 0 || id >= tok->vocab_size()) std::abort();
  }
  return 0;
}
