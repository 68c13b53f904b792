// ids.bin, one per index generation: which internal ids, at which versions, the generation holds.
//   "STRIDS01" | u32 format 1 | u32 0 | u64 n | n * u32 id | n * u8 version | u32 crc32c
// (little-endian, as written on x86-64). Private to index/.
#ifndef STRATA_INDEX_INTERNAL_IDS_FILE_H_
#define STRATA_INDEX_INTERNAL_IDS_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "index/types.h"
#include "storage/env.h"

namespace strata::internal {

inline constexpr char kIdsFile[] = "ids.bin";

// Writes `dir`/ids.bin atomically; `ids` and `versions` have one entry per vector.
[[nodiscard]] absl::Status WriteIdsFile(Env& env, const std::string& dir,
                                        absl::Span<const VectorId> ids,
                                        absl::Span<const uint8_t> versions);
// Reads `dir`/ids.bin. DataLoss naming the file for a wrong magic, size or checksum (a count
// the file cannot hold included); InvalidArgument for an unknown format version.
[[nodiscard]] absl::Status ReadIdsFile(const std::string& dir, std::vector<VectorId>* ids,
                                       std::vector<uint8_t>* versions);

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_IDS_FILE_H_
