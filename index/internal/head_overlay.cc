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
      graph_(nullptr) {}

void HeadOverlay::Add(uint32_t head, const uint8_t* row) {
  DCHECK(head >= built_heads_);
  DCHECK(!slot_.contains(head));
  const uint32_t node = graph_.Add(row);
  DCHECK(node - graph_.first() == node_head_.size());
  node_head_.push_back(head);
  slot_[head] = node;
  next_head_ = std::max(next_head_, head + 1);
}

void HeadOverlay::Retire(uint32_t head) {
  if (head < built_heads_) {
    graph_.Kill(head);
    return;
  }
  auto it = slot_.find(head);
  if (it == slot_.end()) return;
  graph_.Kill(it->second);
  slot_.erase(it);
  // Once the dead outnumber the live (and are more than a few), the joined nodes are linked
  // again from the live ones: walks stay short, and memory tracks the added heads.
  const size_t dead = graph_.size() - graph_.live();
  if (dead > std::max(graph_.live(), kCompactAbove)) {
    const std::vector<uint32_t> renumbered = graph_.Compact();
    std::vector<uint32_t> heads(graph_.size());
    for (uint32_t v = 0; v < renumbered.size(); ++v) {
      if (renumbered[v] == ~0u) continue;
      heads[renumbered[v] - graph_.first()] = node_head_[v];
      slot_[node_head_[v]] = renumbered[v];
    }
    node_head_ = std::move(heads);
  }
}

void HeadOverlay::Clear(const HeadGraph* built) {
  built_heads_ = built != nullptr ? static_cast<uint32_t>(built->size()) : 0;
  next_head_ = built_heads_;
  graph_ = GrowingGraph(built);
  node_head_.clear();
  slot_.clear();
}

const uint8_t* HeadOverlay::Row(uint32_t head) const {
  auto it = slot_.find(head);
  return it == slot_.end() ? nullptr : graph_.row(it->second);
}

void HeadOverlay::Nearest(const void* q, uint32_t k, uint32_t ef, HeadSearchScratch* scratch,
                          std::vector<std::pair<float, uint32_t>>* out) const {
  graph_.Search(q, k, ef, scratch, out);
  for (auto& [d, node] : *out) {
    if (node >= built_heads_) node = node_head_[node - built_heads_];
  }
}

}  // namespace strata::internal
