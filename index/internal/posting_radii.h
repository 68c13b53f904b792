// How far the vectors appended to each posting lie from its head: per posting, the Euclidean
// distance from its head to the farthest vector that joined it as its primary (first in
// AppendedVectors::PostingsOf: the nearest head when it was placed; further replicas, farther
// by the replica rule, are left out, though a built vector moved by a split counts here even
// where a built posting nearer it holds it too: an overestimate, which is safe). Posting
// maintenance uses it to find the postings beyond a split's neighbourhood that may hold vectors now
// nearer a new head: a vector written while no head was near it sits far from its posting's head,
// and the new head that comes near it later is not among that head's neighbours.
//
// A radius is an upper bound: it grows as vectors join; it is lowered when a split that visits
// the posting measures its primaries again, and goes with the posting when its head retires.
// Ordered by radius, so a split visits only the postings wide enough to reach it.
//
// Thread-compatible: the collection's lock guards it.
#ifndef STRATA_INDEX_INTERNAL_POSTING_RADII_H_
#define STRATA_INDEX_INTERNAL_POSTING_RADII_H_

#include <cstddef>
#include <cstdint>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace strata::internal {

class PostingRadii final {
 public:
  // Widens posting `posting`'s radius to at least `radius`. Counts as a change for Narrow even
  // when the radius stays as it was.
  void Grow(uint32_t posting, float radius) {
    auto [it, fresh] = radius_.try_emplace(posting, Record{radius, 0});
    Record& r = it->second;
    r.stamp = ++stamps_;
    if (fresh) {
      by_radius_.insert({radius, posting});
      return;
    }
    if (radius <= r.radius) return;
    by_radius_.erase({r.radius, posting});
    r.radius = radius;
    by_radius_.insert({radius, posting});
  }
  // What Narrow needs to know that nothing joined posting `posting` since (0: nothing recorded).
  [[nodiscard]] uint64_t Stamp(uint32_t posting) const {
    auto it = radius_.find(posting);
    return it == radius_.end() ? 0 : it->second.stamp;
  }
  // Sets posting `posting`'s radius to `radius` (0: forgets it), measured when Stamp gave
  // `stamp`: a no-op when a vector joined it since (or it went), or when `radius` is no lower.
  void Narrow(uint32_t posting, uint64_t stamp, float radius) {
    auto it = radius_.find(posting);
    if (it == radius_.end() || it->second.stamp != stamp || radius >= it->second.radius) return;
    by_radius_.erase({it->second.radius, posting});
    if (radius <= 0) {
      radius_.erase(it);
      return;
    }
    it->second.radius = radius;
    by_radius_.insert({radius, posting});
  }
  void Erase(uint32_t posting) {
    auto it = radius_.find(posting);
    if (it == radius_.end()) return;
    by_radius_.erase({it->second.radius, posting});
    radius_.erase(it);
  }
  void Clear() {
    absl::flat_hash_map<uint32_t, Record>().swap(radius_);
    by_radius_.clear();
  }
  // Posting `posting`'s radius; 0 when no vector joined it.
  [[nodiscard]] float Of(uint32_t posting) const {
    auto it = radius_.find(posting);
    return it == radius_.end() ? 0.0f : it->second.radius;
  }
  // Calls visit(posting, radius) for the postings whose radius exceeds `above`, widest first,
  // until it returns false.
  template <typename F>
  void ForEachWiderThan(float above, F&& visit) const {
    for (auto it = by_radius_.rbegin(); it != by_radius_.rend() && it->first > above; ++it) {
      if (!visit(it->second, it->first)) return;
    }
  }
  [[nodiscard]] size_t size() const { return radius_.size(); }
  // Approximate heap bytes (the ordered set's nodes counted at 48 bytes).
  [[nodiscard]] size_t MemoryBytes() const {
    return radius_.capacity() * (sizeof(std::pair<uint32_t, Record>) + 1) + by_radius_.size() * 48;
  }

 private:
  struct Record {
    float radius;
    uint64_t stamp;  // the last Grow's (Narrow's check that nothing joined meanwhile)
  };
  uint64_t stamps_ = 0;  // Grow calls so far, over all postings: a stamp is never given twice
  absl::flat_hash_map<uint32_t, Record> radius_;
  std::set<std::pair<float, uint32_t>> by_radius_;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_POSTING_RADII_H_
