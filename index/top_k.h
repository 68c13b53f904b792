// The k nearest of a stream of (id, distance) candidates: one home for the rule every search
// uses. Nearest first; equal distances are ordered by id, so a search gives the same answer
// whatever order its candidates arrive in (postings complete in any order; a restart reloads
// appended vectors in another).
//
// Not thread-safe; reusable (Reset keeps the buffer, so a pooled TopK does not allocate).
#ifndef STRATA_INDEX_TOP_K_H_
#define STRATA_INDEX_TOP_K_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "index/types.h"

namespace strata {

struct Neighbor {
  VectorId id;
  float distance;  // squared L2, or -dot for inner product / cosine
};

// The total order of results: nearer first, then the smaller id.
[[nodiscard]] inline bool NearerThan(const Neighbor& a, const Neighbor& b) {
  return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
}

class TopK final {
 public:
  void Reset(uint32_t k) {
    k_ = k;
    heap_.clear();
  }
  // Offers a candidate; kept when it is among the k nearest so far.
  void Push(VectorId id, float distance) {
    const Neighbor n{id, distance};
    if (heap_.size() < k_) {
      heap_.push_back(n);
      std::push_heap(heap_.begin(), heap_.end(), NearerThan);  // farthest on top
    } else if (k_ > 0 && NearerThan(n, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), NearerThan);
      heap_.back() = n;
      std::push_heap(heap_.begin(), heap_.end(), NearerThan);
    }
  }
  // The kept candidates, nearest first, into `out`; the TopK is left empty.
  void TakeSorted(std::vector<Neighbor>* out) {
    std::sort_heap(heap_.begin(), heap_.end(), NearerThan);
    out->assign(heap_.begin(), heap_.end());
    heap_.clear();
  }

 private:
  uint32_t k_ = 0;
  std::vector<Neighbor> heap_;
};

}  // namespace strata

#endif  // STRATA_INDEX_TOP_K_H_
