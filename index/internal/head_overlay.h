// The heads a collection's posting maintenance changed since its index was built
// (index/internal/posting_maintenance.h): heads added by splits and rewrites, each serving a
// posting made only of appended entries, and built heads retired (their posting's vectors moved to
// other heads, so searches no longer read it). SpannIndex navigates over the built heads minus
// the retired ones plus the added ones.
//
// Added heads are searched exhaustively, not through the navigation graph: a cost per query that
// grows with their number (~d operations each), fine for the thousands a collection gains
// between rebuilds; a rebuild folds them into the graph. A graph over the added heads is the
// next step once collections grow far past their build.
//
// Thread-compatible: the collection's lock guards it.
#ifndef STRATA_INDEX_INTERNAL_HEAD_OVERLAY_H_
#define STRATA_INDEX_INTERNAL_HEAD_OVERLAY_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "index/kernels/distance.h"
#include "index/types.h"

namespace strata::internal {

class HeadOverlay final {
 public:
  // Heads [0, built_heads) are the built index's; added ones are numbered from built_heads up.
  HeadOverlay(ElementType type, Metric metric, uint32_t dim, uint32_t built_heads);

  // Adds head `head` (>= built_heads, not present) with `row` (posting form).
  void Add(uint32_t head, const uint8_t* row);
  // Retires `head`: a built one is marked, an added one removed.
  void Retire(uint32_t head);
  void Clear(uint32_t built_heads);

  [[nodiscard]] bool IsRetired(uint32_t head) const { return retired_.contains(head); }
  [[nodiscard]] bool IsAdded(uint32_t head) const { return slot_.contains(head); }
  // An added head's row, or null.
  [[nodiscard]] const uint8_t* Row(uint32_t head) const;
  [[nodiscard]] uint32_t built_heads() const { return built_heads_; }
  // The number the next added head gets (past every head added so far).
  [[nodiscard]] uint32_t next_head() const { return next_head_; }
  [[nodiscard]] size_t added() const { return heads_.size(); }
  [[nodiscard]] size_t retired() const { return retired_.size(); }
  [[nodiscard]] uint64_t MemoryBytes() const {
    return rows_.capacity() + heads_.capacity() * 4 + slot_.size() * 16 + retired_.size() * 8;
  }
  // Calls visit(head, row) for every added head.
  template <typename F>
  void ForEachAdded(F&& visit) const {
    for (size_t i = 0; i < heads_.size(); ++i) visit(heads_[i], rows_.data() + i * row_bytes_);
  }

  // The distance from `q` (posting form) to added head `head`.
  [[nodiscard]] float Distance(const void* q, uint32_t head) const {
    return dist_(q, Row(head), dim_);
  }
  // Appends to `out` the (distance, head) of the `k` added heads nearest `q` (posting form), in
  // no particular order.
  void Nearest(const void* q, uint32_t k, std::vector<std::pair<float, uint32_t>>* out) const;

 private:
  uint32_t dim_;
  size_t row_bytes_;
  kernels::DistanceFn dist_;
  uint32_t built_heads_;
  uint32_t next_head_;
  std::vector<uint32_t> heads_;  // added heads, dense; rows_ holds their rows in the same order
  std::vector<uint8_t> rows_;
  absl::flat_hash_map<uint32_t, size_t> slot_;  // added head -> its index in heads_
  absl::flat_hash_set<uint32_t> retired_;       // built heads only
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_HEAD_OVERLAY_H_
