#include "index/internal/head_overlay.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace strata::internal {

HeadOverlay::HeadOverlay(ElementType type, Metric metric, uint32_t dim, uint32_t built_heads)
    : dim_(dim),
      row_bytes_(size_t{dim} * ElementSize(type)),
      dist_(kernels::GetDistance(kernels::Best(), type, metric)),
      built_heads_(built_heads),
      next_head_(built_heads) {}

void HeadOverlay::Add(uint32_t head, const uint8_t* row) {
  DCHECK(head >= built_heads_);
  DCHECK(!slot_.contains(head));
  slot_[head] = heads_.size();
  heads_.push_back(head);
  rows_.insert(rows_.end(), row, row + row_bytes_);
  next_head_ = std::max(next_head_, head + 1);
}

void HeadOverlay::Retire(uint32_t head) {
  if (head < built_heads_) {
    retired_.insert(head);
    return;
  }
  auto it = slot_.find(head);
  if (it == slot_.end()) return;
  const size_t i = it->second;
  const size_t last = heads_.size() - 1;
  slot_.erase(it);
  if (i != last) {
    heads_[i] = heads_[last];
    std::memcpy(rows_.data() + i * row_bytes_, rows_.data() + last * row_bytes_, row_bytes_);
    slot_[heads_[i]] = i;
  }
  heads_.pop_back();
  rows_.resize(heads_.size() * row_bytes_);
}

void HeadOverlay::Clear(uint32_t built_heads) {
  built_heads_ = built_heads;
  next_head_ = built_heads;
  heads_.clear();
  rows_.clear();
  slot_.clear();
  retired_.clear();
}

const uint8_t* HeadOverlay::Row(uint32_t head) const {
  auto it = slot_.find(head);
  return it == slot_.end() ? nullptr : rows_.data() + it->second * row_bytes_;
}

void HeadOverlay::Nearest(const void* q, uint32_t k,
                          std::vector<std::pair<float, uint32_t>>* out) const {
  if (k == 0 || heads_.empty()) return;
  const size_t start = out->size();
  for (size_t i = 0; i < heads_.size(); ++i) {
    out->emplace_back(dist_(q, rows_.data() + i * row_bytes_, dim_), heads_[i]);
  }
  if (out->size() - start > k) {
    auto first = out->begin() + static_cast<ptrdiff_t>(start);
    std::nth_element(first, first + k, out->end());
    out->resize(start + k);
  }
}

}  // namespace strata::internal
