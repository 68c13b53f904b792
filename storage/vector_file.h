// Readers and writers for the vector and ground-truth file formats users bring:
//   big-ann-benchmarks: .fbin (float32), .u8bin (uint8), .i8bin (int8), .ibin (int32):
//                       u32 n, u32 d, then n*d row-major values (little-endian);
//   ground truth (.bin/.gt): u32 n, u32 k, n*k int32 ids, then n*k float32 distances;
//   TEXMEX: .fvecs (float32), .bvecs (uint8), .ivecs (int32): per row an int32 d, then d values.
// The format is chosen by file extension. Every reader validates sizes against the header and
// returns DataLoss naming the file for a truncated or inconsistent one, InvalidArgument for an
// unknown extension. Whole files are read into memory (fine up to ~10M vectors; the loader of a
// billion-scale set will stream).
#ifndef STRATA_STORAGE_VECTOR_FILE_H_
#define STRATA_STORAGE_VECTOR_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/vector_types.h"

namespace strata {

// A dense row-major set of n vectors of `dim` elements of `type`.
struct VectorSet {
  ElementType type = ElementType::kFloat32;
  uint32_t dim = 0;
  uint64_t n = 0;
  std::vector<uint8_t> data;  // size n * dim * ElementSize(type)

  [[nodiscard]] size_t row_bytes() const { return size_t{dim} * ElementSize(type); }
  [[nodiscard]] const uint8_t* row(uint64_t i) const { return data.data() + i * row_bytes(); }
  [[nodiscard]] uint8_t* row(uint64_t i) { return data.data() + i * row_bytes(); }
};

// Rows [first, first + count) of `set` as float32 (row-major, count * dim values).
[[nodiscard]] std::vector<float> RowsAsFloat(const VectorSet& set, uint64_t first, uint64_t count);

// Ids for a vector file, one per row: .npy (1-D int32/int64/uint32/uint64) or .ibin/.ivecs with
// one column. InvalidArgument for a negative id or another shape.
[[nodiscard]] absl::StatusOr<std::vector<uint64_t>> ReadIds(const std::string& path);

// Reads at most `max_rows` rows (0 = all). Formats by extension: .fbin/.u8bin/.i8bin,
// .fvecs/.bvecs, and .npy (2-D, C order, float32/uint8/int8). int32 files (.ibin/.ivecs) are
// refused here: they hold ids.
[[nodiscard]] absl::StatusOr<VectorSet> ReadVectors(const std::string& path, uint64_t max_rows = 0);
// Writes by extension; the set's element type must match it (.fbin/.fvecs float32, .u8bin/.bvecs
// uint8, .i8bin int8).
[[nodiscard]] absl::Status WriteVectors(const std::string& path, const VectorSet& set);

// Exact neighbours of each query: ids[q*k + j], distances[q*k + j], j-th nearest first.
struct GroundTruth {
  uint32_t n = 0;
  uint32_t k = 0;
  std::vector<int32_t> ids;
  std::vector<float> distances;  // empty when read from .ivecs / .ibin (ids only)
};

// .ivecs and .ibin give ids only; any other extension is read as the big-ann ground-truth layout.
[[nodiscard]] absl::StatusOr<GroundTruth> ReadGroundTruth(const std::string& path);
// Writes the big-ann ground-truth layout (ids then distances).
[[nodiscard]] absl::Status WriteGroundTruth(const std::string& path, const GroundTruth& gt);

}  // namespace strata

#endif  // STRATA_STORAGE_VECTOR_FILE_H_
