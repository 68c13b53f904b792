// A safetensors file made of fuzz bytes: Open must refuse it or map it, and every tensor it lists
// must lie inside the file.
#include <cstdint>

#include "gpu/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = strata::fuzz::WriteScratch("model.safetensors", data, size);
  auto file = strata::gpu::SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  for (const char* name : {"embeddings.word_embeddings.weight", "a", "w"}) {
    auto t = (*file)->Get(name);
    if (t.ok() && t->bytes > 0) {
      // Touch the first and last byte: both must be mapped.
      volatile uint8_t first = static_cast<const uint8_t*>(t->data)[0];
      volatile uint8_t last = static_cast<const uint8_t*>(t->data)[t->bytes - 1];
      (void)first;
      (void)last;
    }
  }
  return 0;
}
