// The in-memory navigation structure over SPANN heads: FAISS HNSW, behind one adapter that turns
// FAISS exceptions into Status (STYLE.md). uint8 heads are stored one byte per value (FAISS's
// 8-bit "direct" scalar quantizer, exact for uint8) so head RAM stays near the raw head bytes;
// float32 and int8 heads are stored as float32. Private to index/.
#ifndef STRATA_INDEX_INTERNAL_HEAD_INDEX_H_
#define STRATA_INDEX_INTERNAL_HEAD_INDEX_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "index/types.h"

namespace faiss {
struct IndexHNSW;
}

namespace strata::internal {

struct HeadIndexOptions {
  int m = 16;  // HNSW links per node (2m on level 0)
  int ef_construction = 100;
};

class HeadIndex final {
 public:
  ~HeadIndex();
  HeadIndex(const HeadIndex&) = delete;
  HeadIndex& operator=(const HeadIndex&) = delete;

  // Builds over n heads given as float32 rows (n * d). `type` decides the storage (see above).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HeadIndex>> Build(
      ElementType type, Metric metric, uint32_t d, const float* heads, uint64_t n,
      const HeadIndexOptions& options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HeadIndex>> Load(const std::string& path,
                                                                       ElementType type,
                                                                       Metric metric, uint32_t d);
  [[nodiscard]] absl::Status Save(const std::string& path) const;

  // The k nearest heads of each of nq float32 queries, best first. Distances follow the kernels'
  // convention (squared L2, or -dot). labels[i] = -1 where fewer than k heads exist. Thread-safe.
  [[nodiscard]] absl::Status Search(const float* queries, uint64_t nq, uint32_t k, uint32_t ef,
                                    float* distances, int64_t* labels) const;

  [[nodiscard]] uint64_t size() const;
  // Bytes held: codes, links, offsets and levels.
  [[nodiscard]] uint64_t MemoryBytes() const;

 private:
  HeadIndex(std::unique_ptr<faiss::IndexHNSW> index, Metric metric);
  std::unique_ptr<faiss::IndexHNSW> index_;
  Metric metric_;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_HEAD_INDEX_H_
