// A set of internal ids (uint32), compact at every size: a sorted array while it is sparse, a
// bitmap once it is dense (a set turns into a bitmap when that halves its bytes, past one id in 16
// of its range, and back under one in 128). Used for a tenant's points (index/tenant_access.h):
// membership is tested once per candidate in a search's scan, so Contains() is a bit test or a
// search of a fence every 64 members then of their block, and bulk changes are merges, never one
// insert at a time (granting 1,000 ids to a tenant of a million is one pass).
//
// Thread-compatible: const methods may run concurrently; the owner serialises changes.
#ifndef STRATA_INDEX_ID_SET_H_
#define STRATA_INDEX_ID_SET_H_

#include <algorithm>
#include <cstddef>
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
    // The last fence at or below id, found without a data-dependent branch (a binary search's
    // branch is a coin toss at every level, and a mispredicted one costs more than the level's
    // load), then its block of kFenceStride members halved the same way (bench/RESULTS.md,
    // strata-access-check-bench).
    if (fences_.empty() || id < fences_[0]) return false;
    const uint32_t* fence = fences_.data();
    for (size_t len = fences_.size(); len > 1;) {
      const size_t half = len / 2;
      fence += fence[half] <= id ? half : 0;
      len -= half;
    }
    const size_t first = static_cast<size_t>(fence - fences_.data()) * kFenceStride;
    const uint32_t* at = sorted_.data() + first;
    for (size_t len = std::min(kFenceStride, sorted_.size() - first); len > 1;) {
      const size_t half = len / 2;
      at += at[half] <= id ? half : 0;
      len -= half;
    }
    return *at == id;
  }
  // Contains by a binary search of the whole array (the reference of the tests).
  [[nodiscard]] bool ContainsReference(uint32_t id) const {
    if (dense_) return Contains(id);
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
    return sizeof(*this) + (sorted_.capacity() + fences_.capacity()) * sizeof(uint32_t) +
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
  // Makes fences_ again from sorted_ (after every change).
  void Refence();

  // Members per fence: 256 bytes, four cache lines searched once the fence is found.
  static constexpr size_t kFenceStride = 64;

  bool dense_ = false;
  uint64_t size_ = 0;
  std::vector<uint32_t> sorted_;  // !dense_: ascending, unique
  std::vector<uint32_t> fences_;  // !dense_: sorted_[i * kFenceStride] for each i
  std::vector<uint64_t> bits_;    // dense_: bit id % 64 of word id / 64
};

}  // namespace strata

#endif  // STRATA_INDEX_ID_SET_H_
