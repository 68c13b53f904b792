// The WordPiece tokenizer on arbitrary bytes (valid UTF-8 or not): it must tokenize every input
// into ids of its vocabulary, [CLS] first and [SEP] last.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gpu/wordpiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<strata::gpu::WordPieceTokenizer> tok = [] {
    std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a",
                                      "##s",   "##ing", "run",   "##n",   "é",      "中", ".",
                                      ",",     "##e",   "x",     "##x",   "un",     "##able"};
    auto t = strata::gpu::WordPieceTokenizer::FromVocab(vocab, /*lower_case=*/true);
    if (!t.ok()) std::abort();
    return std::move(t).value();
  }();
  const std::vector<int32_t> ids =
      tok->Tokenize(std::string_view(reinterpret_cast<const char*>(data), size));
  if (ids.size() < 2 || ids.front() != 2 || ids.back() != 3) std::abort();
  for (int32_t id : ids) {
    if (id < 0 || id >= tok->vocab_size()) std::abort();
  }
  return 0;
}
