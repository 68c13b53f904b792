// An index generation's ids.bin made of fuzz bytes: ReadIdsFile must refuse it or read exactly
// the entries the file holds.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "index/internal/ids_file.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  strata::fuzz::WriteScratch(strata::internal::kIdsFile, data, size);
  std::vector<strata::VectorId> ids;
  std::vector<uint8_t> versions;
  if (strata::internal::ReadIdsFile(strata::fuzz::ScratchDir(), &ids, &versions).ok()) {
    if (ids.size() != versions.size() || size != 28 + ids.size() * 5) std::abort();
  }
  return 0;
}
