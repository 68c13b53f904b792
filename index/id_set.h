// A set of internal ids (uint32), compact at every size: a sorted array while it is sparse, a
// bitmap once a bitmap is smaller (more than one id per 32 of its range). Used for a tenant's
// points (index/tenant_access.h): membership is tested once per candidate in a search's scan, so
// Contains() is a bit test or a binary search, and bulk changes are merges, never one insert at
// a time (granting 1,000 ids to a tenant of a million is one pass).
//
// Thread-compatible: const methods may run concurrently; the owner serialises changes.
#ifndef STRATA_INDEX_ID_SET_H_
#define STRATA_INDEX_ID_SET_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"

namespace strata {

class IdSet final {
 public:
  [[nodiscard]] bool Contains(uint32_t id) const {
    if (dense_) {
      return id / 64 < bits_.size() && ((bits_[id / 64] >> (id % 64)) & 1) != 0;
    }
    return std::binary_search(sorted_.begin(), sorted_.end(), id);
  }
  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }

  // Adds / removes `ids` (any order, repeats allowed). Returns how many were not in the set /
  // were in it.
  uint64_t Insert(absl::Span<const uint32_t> ids);
  uint64_t Erase(absl::Span<const uint32_t> ids);
  void Clear();

  // Calls visit(id) for every member, ascending.
  void ForEach(absl::FunctionRef<void(uint32_t)> visit) const;
  [[nodiscard]] std::vector<uint32_t> ToVector() const;

  [[nodiscard]] uint64_t MemoryBytes() const {
    return sizeof(*this) + sorted_.capacity() * sizeof(uint32_t) +
           bits_.capacity() * sizeof(uint64_t);
  }
  [[nodiscard]] bool dense() const { return dense_; }
  // The members ascending while the set is sparse (!dense()); empty once it is a bitmap. For a
  // caller that walks the members in order beside another ascending sequence.
  [[nodiscard]] absl::Span<const uint32_t> SparseIds() const {
    return dense_ ? absl::Span<const uint32_t>() : absl::Span<const uint32_t>(sorted_);
  }

 private:
  // Switches form when the other is smaller by a margin (the margin keeps a set near the
  // boundary from switching on every change).
  void Reshape();

  bool dense_ = false;
  uint64_t size_ = 0;
  std::vector<uint32_t> sorted_;  // !dense_: ascending, unique
  std::vector<uint64_t> bits_;    // dense_: bit id % 64 of word id / 64
};

}  // namespace strata

#endif  // STRATA_INDEX_ID_SET_H_
