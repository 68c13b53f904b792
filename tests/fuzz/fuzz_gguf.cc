// A GGUF file made of fuzz bytes: Parse must refuse it or describe it, every tensor it lists must
// lie inside the bytes, and a decoder configuration and tokenizer read from it must either be
// refused or work.
#include <cstdint>
#include <cstring>
#include <vector>

#include "gpu/bpe_tokenizer.h"
#include "gpu/decoder.h"
#include "gpu/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so ASan sees any read past the end.
  std::vector<uint8_t> bytes(data, data + size);
  auto file = strata::gpu::GgufFile::Parse(bytes.data(), bytes.size(), "fuzz");
  if (!file.ok()) return 0;
  for (const std::string& name : (*file)->TensorNames()) {
    auto t = (*file)->Tensor(name);
    if (t.ok() && t->bytes > 0) {
      volatile uint8_t first = t->data[0];
      volatile uint8_t last = t->data[t->bytes - 1];
      (void)first;
      (void)last;
    }
  }
  (void)strata::gpu::ReadDecoderConfig(**file);
  auto tok = strata::gpu::BpeTokenizer::FromGguf(**file);
  if (tok.ok()) {
    const std::vector<int32_t> ids = (*tok)->Encode("hello <|im_end|> world 123", true);
    (void)(*tok)->Decode(ids);
  }
  return 0;
}
