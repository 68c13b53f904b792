// A vector, id or ground-truth file made of fuzz bytes, under each name the readers know: every
// reader must refuse it with a Status or read it, without reading past the file or allocating
// what its header claims but the file does not hold.
#include <cstdint>
#include <string>

#include "storage/vector_file.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  if (size == 0) return 0;
  const char* kinds[] = {".fbin",  ".u8bin", ".i8bin", ".ibin", ".fvecs",
                         ".bvecs", ".ivecs", ".npy",   ".bin"};
  const std::string ext = kinds[data[0] % (sizeof(kinds) / sizeof(kinds[0]))];
  const std::string path = fuzz::WriteScratch("input" + ext, data + 1, size - 1);
  if (ext == ".bin") {
    (void)ReadGroundTruth(path);
  } else {
    (void)ReadVectors(path);
    (void)ReadVectors(path, /*max_rows=*/3);
    (void)ReadIds(path);
  }
  return 0;
}
