#include "index/internal/head_overlay.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace strata::internal {

HeadOverlay::HeadOverlay(ElementType type, Metric metric, uint32_t dim)
    : dim_(dim),
      dist_(kernels::GetDistance(kernels::Best(), type, metric)),
      built_heads_(0),
      next_head_(0),
      graph_(nullptr),
      node_head_(1, kPerChunk),
      slot_(1, kPerChunk) {}

void HeadOverlay::Add(uint32_t head, const uint8_t* row) {
  DCHECK(head >= built_heads_);
  DCHECK(!IsAdded(head));
  const uint32_t node = graph_.Add(row);
  DCHECK(node - graph_.first() == node_head_.size());
  *node_head_.Append() = head;
  if (head - built_heads_ >= slot_.size()) slot_.Resize(head - built_heads_ + 1);
  *slot_.Mutable(head - built_heads_) = node + 1;
  next_head_ = std::max(next_head_, head + 1);
}

void HeadOverlay::Retire(uint32_t head) {
  if (head < built_heads_) {
    graph_.Kill(head);
    return;
  }
  const uint32_t node = NodeOf(head);
  if (node == ~0u) return;
  graph_.Kill(node);
  *slot_.Mutable(head - built_heads_) = 0;
  // Once the dead outnumber the live (and are more than a few), the joined nodes are linked
  // again from the live ones: walks stay short, and memory tracks the added heads.
  const size_t dead = graph_.size() - graph_.live();
  if (dead > std::max(graph_.live(), kCompactAbove)) {
    const std::vector<uint32_t> renumbered = graph_.Compact();
    SharedChunks<uint32_t> heads(1, kPerChunk);
    heads.Resize(graph_.size());
    for (uint32_t v = 0; v < renumbered.size(); ++v) {
      if (renumbered[v] == ~0u) continue;
      const uint32_t h = *node_head_.Get(v);
      *heads.Mutable(renumbered[v] - graph_.first()) = h;
      *slot_.Mutable(h - built_heads_) = renumbered[v] + 1;
    }
    node_head_ = std::move(heads);
  }
}

void HeadOverlay::Clear(const HeadGraph* built) {
  built_heads_ = built != nullptr ? static_cast<uint32_t>(built->size()) : 0;
  next_head_ = built_heads_;
  graph_ = GrowingGraph(built);
  node_head_ = SharedChunks<uint32_t>(1, kPerChunk);
  slot_ = SharedChunks<uint32_t>(1, kPerChunk);
}

const uint8_t* HeadOverlay::Row(uint32_t head) const {
  const uint32_t node = NodeOf(head);
  return node == ~0u ? nullptr : graph_.row(node);
}

void HeadOverlay::Nearest(const void* q, uint32_t k, uint32_t ef, HeadSearchScratch* scratch,
                          std::vector<std::pair<float, uint32_t>>* out) const {
  graph_.Search(q, k, ef, scratch, out);
  for (auto& [d, node] : *out) {
    if (node >= built_heads_) node = *node_head_.Get(node - built_heads_);
  }
}

}  // namespace strata::internal
