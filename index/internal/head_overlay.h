// The heads a collection's posting maintenance changed since its index was built
// (index/posting_maintenance.cc): heads added by splits and rewrites, each serving a
// posting made only of appended entries, and built heads retired (their posting's vectors moved to
// other heads, so searches no longer read it). SpannIndex navigates over the built heads minus
// the retired ones plus the added ones.
//
// The built heads keep their immutable HNSW graph; the added ones join a graph of their own that
// grows with them (growing_graph.h), so finding the nearest added heads is a beam search beside
// the built graph's. A rebuild folds them all into one graph again.
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
#include "index/internal/growing_graph.h"
#include "index/kernels/distance.h"
#include "index/types.h"

namespace strata::internal {

class HeadOverlay final {
 public:
  // Retired added heads the graph keeps, at least, before it is compacted.
  static constexpr size_t kCompactAbove = 256;

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
  [[nodiscard]] size_t added() const { return slot_.size(); }
  [[nodiscard]] size_t retired() const { return retired_.size(); }
  // Nodes of the added heads' graph, retired added heads among them: at most twice the added
  // heads, or kCompactAbove more (then the graph is compacted).
  [[nodiscard]] size_t graph_nodes() const { return graph_.size(); }
  [[nodiscard]] uint64_t MemoryBytes() const {
    return graph_.MemoryBytes() + node_head_.capacity() * 4 + slot_.size() * 16 +
           retired_.size() * 8;
  }
  // Calls visit(head, row) for every added head.
  template <typename F>
  void ForEachAdded(F&& visit) const {
    for (uint32_t v = 0; v < graph_.size(); ++v) {
      if (graph_.alive(v)) visit(node_head_[v], graph_.row(v));
    }
  }

  // The distance from `q` (posting form) to added head `head`.
  [[nodiscard]] float Distance(const void* q, uint32_t head) const {
    return dist_(q, Row(head), dim_);
  }
  // Appends to `out` the (distance, head) of the `k` added heads nearest `q` (posting form), as a
  // walk of the added heads' graph with beam `ef` (>= k) finds them, in no particular order.
  void Nearest(const void* q, uint32_t k, uint32_t ef,
               std::vector<std::pair<float, uint32_t>>* out) const;

 private:
  uint32_t dim_;
  kernels::DistanceFn dist_;
  uint32_t built_heads_;
  uint32_t next_head_;
  GrowingGraph graph_;                            // added heads (and retired added ones, dead)
  std::vector<uint32_t> node_head_;               // graph node -> its head
  absl::flat_hash_map<uint32_t, uint32_t> slot_;  // added head -> its graph node
  absl::flat_hash_set<uint32_t> retired_;         // built heads only
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_HEAD_OVERLAY_H_
