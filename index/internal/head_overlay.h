// The heads a collection's posting maintenance changed since its index was built
// (index/maintenance_step.cc): heads added by splits and rewrites, each serving a
// posting made only of appended entries, and built heads retired (their posting's vectors moved to
// other heads, so searches no longer read it). SpannIndex navigates over the built heads minus
// the retired ones plus the added ones.
//
// The added heads join the built heads' HNSW graph (growing_graph.h), so one walk finds the
// nearest of both; a rebuild makes one graph of them all again.
//
// Copies are cheap: they share the graph's chunks (growing_graph.h), and each copy's changes
// clone only the chunks they touch. A copy is taken of a frozen overlay only (Freeze()): the
// collection freezes its own after each change, and a maintenance step works on a copy.
//
// Thread-compatible: the collection's lock guards it; copies of a frozen overlay may be taken
// under the lock shared.
#ifndef STRATA_INDEX_INTERNAL_HEAD_OVERLAY_H_
#define STRATA_INDEX_INTERNAL_HEAD_OVERLAY_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "index/internal/growing_graph.h"
#include "index/internal/shared_chunks.h"
#include "index/kernels/distance.h"
#include "index/types.h"

namespace strata::internal {

class HeadOverlay final {
 public:
  // Retired added heads the graph keeps, at least, before it is compacted.
  static constexpr size_t kCompactAbove = 256;

  // An overlay of no index yet (Clear() gives it one).
  HeadOverlay(ElementType type, Metric metric, uint32_t dim);

  // Adds head `head` (>= built_heads, not present) with `row` (posting form; not a row of this
  // overlay's, which the add may move).
  void Add(uint32_t head, const uint8_t* row);
  // Retires `head`: a built one is marked, an added one removed.
  void Retire(uint32_t head);
  // Starts over on the heads of `built` (the built index's graph, which outlives the overlay):
  // heads [0, built->size()) are its; added ones are numbered from there up.
  void Clear(const HeadGraph* built);

  [[nodiscard]] bool IsRetired(uint32_t head) const {
    return head < built_heads_ && !graph_.alive(head);
  }
  [[nodiscard]] bool IsAdded(uint32_t head) const { return NodeOf(head) != ~0u; }
  // An added head's row, or null.
  [[nodiscard]] const uint8_t* Row(uint32_t head) const;
  [[nodiscard]] uint32_t built_heads() const { return built_heads_; }
  // The number the next added head gets (past every head added so far).
  [[nodiscard]] uint32_t next_head() const { return next_head_; }
  [[nodiscard]] size_t added() const { return graph_.live(); }
  [[nodiscard]] size_t retired() const { return graph_.dead_built(); }
  // Joined nodes of the graph, retired added heads among them: at most twice the added heads, or
  // kCompactAbove more (then the graph is compacted).
  [[nodiscard]] size_t graph_nodes() const { return graph_.size(); }
  [[nodiscard]] uint64_t MemoryBytes() const {
    return graph_.MemoryBytes() + node_head_.MemoryBytes() + slot_.MemoryBytes();
  }
  // Makes the overlay's chunks shared: copies may be taken from now on, and this overlay's next
  // changes clone what they touch.
  void Freeze() {
    graph_.Freeze();
    node_head_.Freeze();
    slot_.Freeze();
  }
  // Calls visit(head, row) for every added head.
  template <typename F>
  void ForEachAdded(F&& visit) const {
    for (uint32_t v = 0; v < graph_.size(); ++v) {
      const uint32_t node = graph_.first() + v;
      if (graph_.alive(node)) visit(*node_head_.Get(v), graph_.row(node));
    }
  }

  // The distance from `q` (posting form) to added head `head`.
  [[nodiscard]] float Distance(const void* q, uint32_t head) const {
    return dist_(q, Row(head), dim_);
  }
  // The (distance, head) of the `k` serving heads (built and not retired, or added) nearest `q`
  // (posting form), as a walk with beam `ef` (>= k) finds them; nearest first. The distance is
  // the built graph's measure.
  void Nearest(const void* q, uint32_t k, uint32_t ef, HeadSearchScratch* scratch,
               std::vector<std::pair<float, uint32_t>>* out) const;
  // The built index's graph the added heads join (null before Clear()).
  [[nodiscard]] const HeadGraph* built_graph() const { return graph_.built(); }

 private:
  static constexpr size_t kPerChunk = 4096;

  // Added head `head`'s joined node, or ~0u.
  [[nodiscard]] uint32_t NodeOf(uint32_t head) const {
    if (head < built_heads_ || head - built_heads_ >= slot_.size()) return ~0u;
    return *slot_.Get(head - built_heads_) - 1;
  }

  uint32_t dim_;
  kernels::DistanceFn dist_;
  uint32_t built_heads_;
  uint32_t next_head_;
  // The built heads (retired ones dead), and the added ones joined (retired ones dead).
  GrowingGraph graph_;
  SharedChunks<uint32_t> node_head_;  // joined node - first() -> its head
  // Added head - built_heads_ -> 1 + its joined node, or 0: 4 bytes per number handed out since
  // Clear(), retired heads' included (not given back before the next Clear()).
  SharedChunks<uint32_t> slot_;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_HEAD_OVERLAY_H_
