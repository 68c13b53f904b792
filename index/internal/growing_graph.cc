#include "index/internal/growing_graph.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "base/check.h"

namespace strata::internal {

GrowingGraph::GrowingGraph(ElementType type, Metric metric, uint32_t dim)
    : type_(type),
      metric_(metric),
      dim_(dim),
      row_bytes_(size_t{dim} * ElementSize(type)),
      dist_(kernels::GetDistance(kernels::Best(), type, metric)) {}

void GrowingGraph::Walk(const void* q, uint32_t ef, std::vector<Pair>* found) const {
  found->clear();
  const size_t n = size();
  if (n == 0) return;
  // Visited marks, per thread: a node is visited in this walk when its mark is this walk's stamp.
  thread_local std::vector<uint32_t> visited;
  thread_local uint32_t stamp = 0;
  if (visited.size() < n) visited.resize(n, 0);
  if (++stamp == 0) {
    std::fill(visited.begin(), visited.end(), 0);
    stamp = 1;
  }
  const auto first_visit = [&](uint32_t v) {
    if (visited[v] == stamp) return false;
    visited[v] = stamp;
    return true;
  };
  std::priority_queue<Pair, std::vector<Pair>, std::greater<>> next;  // nearest on top
  std::priority_queue<Pair> best;                                     // furthest on top
  const auto offer = [&](uint32_t v) {
    const float d = Distance(q, v);
    if (best.size() < ef || d < best.top().first) {
      next.emplace(d, v);
      best.emplace(d, v);
      if (best.size() > ef) best.pop();
    }
  };
  const size_t entries = std::min<size_t>(kEntries, n);
  for (size_t i = 0; i < entries; ++i) {
    const auto v = static_cast<uint32_t>(i * n / entries);
    if (first_visit(v)) offer(v);
  }
  while (!next.empty()) {
    const Pair c = next.top();
    if (best.size() >= ef && c.first > best.top().first) break;
    next.pop();
    const uint32_t* l = links(c.second);
    for (uint32_t j = 0; j < l[0]; ++j) {
      if (first_visit(l[1 + j])) offer(l[1 + j]);
    }
  }
  found->resize(best.size());
  for (size_t i = found->size(); i-- > 0;) {
    (*found)[i] = best.top();
    best.pop();
  }
}

void GrowingGraph::SearchExhaustive(const void* q, uint32_t k, std::vector<Pair>* out) const {
  if (k == 0 || live_ == 0) return;
  const size_t start = out->size();
  for (uint32_t v = 0; v < size(); ++v) {
    if (alive_[v]) out->emplace_back(Distance(q, v), v);
  }
  if (out->size() - start > k) {
    auto first = out->begin() + static_cast<ptrdiff_t>(start);
    std::nth_element(first, first + k, out->end());
    out->resize(start + k);
  }
}

void GrowingGraph::Search(const void* q, uint32_t k, uint32_t ef, std::vector<Pair>* out) const {
  if (k == 0 || live_ == 0) return;
  if (size() <= uint64_t{kExhaustivePerBeam} * std::max(ef, k)) {
    SearchExhaustive(q, k, out);
    return;
  }
  std::vector<Pair> found;
  Walk(q, Widened(std::max(ef, k)), &found);
  const size_t start = out->size();
  for (const Pair& f : found) {
    if (out->size() - start == k) break;
    if (alive_[f.second]) out->push_back(f);
  }
  // A walk whose beam the dead nodes filled: the pass over every node answers instead.
  if (out->size() - start < std::min<size_t>(k, live_)) {
    out->resize(start);
    SearchExhaustive(q, k, out);
  }
}

void GrowingGraph::Select(std::vector<Pair>* cand) const {
  // The HNSW heuristic: a candidate nearer an already kept node than the base is left out, so
  // links spread in all directions; then the nearest left out fill up to half the degree, so that
  // a node in a tight cluster still has links enough.
  std::vector<Pair> kept, left;
  for (const Pair& c : *cand) {
    if (kept.size() >= kDegree) break;
    bool good = true;
    for (const Pair& k : kept) {
      if (dist_(row(c.second), row(k.second), dim_) < c.first) {
        good = false;
        break;
      }
    }
    (good ? kept : left).push_back(c);
  }
  for (size_t i = 0; i < left.size() && kept.size() < kDegree / 2; ++i) kept.push_back(left[i]);
  *cand = std::move(kept);
}

void GrowingGraph::Link(uint32_t node, std::vector<Pair> cand) {
  Select(&cand);
  uint32_t* mine = links(node);
  mine[0] = 0;
  for (const Pair& c : cand) mine[1 + mine[0]++] = c.second;
  for (const Pair& c : cand) {
    uint32_t* theirs = links(c.second);
    if (theirs[0] < kDegree) {
      theirs[1 + theirs[0]++] = node;
      continue;
    }
    std::vector<Pair> again;
    again.reserve(kDegree + 1);
    const uint8_t* base = row(c.second);
    for (uint32_t j = 0; j < theirs[0]; ++j) {
      again.emplace_back(dist_(base, row(theirs[1 + j]), dim_), theirs[1 + j]);
    }
    again.emplace_back(c.first, node);
    std::sort(again.begin(), again.end());
    Select(&again);
    theirs[0] = 0;
    for (const Pair& a : again) theirs[1 + theirs[0]++] = a.second;
  }
}

uint32_t GrowingGraph::Add(const uint8_t* row_in) {
  // The nearest live nodes before this one joins.
  std::vector<Pair> cand;
  if (size() <= uint64_t{kExhaustivePerBeam} * kAddBeam) {
    for (uint32_t v = 0; v < size(); ++v) {
      if (alive_[v]) cand.emplace_back(dist_(row_in, row(v), dim_), v);
    }
    std::sort(cand.begin(), cand.end());
    if (cand.size() > kAddBeam) cand.resize(kAddBeam);
  } else {
    Walk(row_in, Widened(kAddBeam), &cand);
    cand.erase(
        std::remove_if(cand.begin(), cand.end(), [&](const Pair& c) { return !alive_[c.second]; }),
        cand.end());
    if (cand.empty() && live_ > 0) {
      // The dead filled the beam: link to the nearest live nodes a pass over all finds.
      SearchExhaustive(row_in, kAddBeam, &cand);
      std::sort(cand.begin(), cand.end());
    }
  }
  const auto node = static_cast<uint32_t>(size());
  rows_.insert(rows_.end(), row_in, row_in + row_bytes_);
  links_.resize(links_.size() + 1 + kDegree, 0);
  alive_.push_back(1);
  ++live_;
  Link(node, std::move(cand));
  return node;
}

void GrowingGraph::Kill(uint32_t node) {
  DCHECK(node < size());
  if (!alive_[node]) return;
  alive_[node] = 0;
  --live_;
}

std::vector<uint32_t> GrowingGraph::Compact() {
  GrowingGraph fresh(type_, metric_, dim_);
  std::vector<uint32_t> renumbered(size(), ~0u);
  for (uint32_t v = 0; v < size(); ++v) {
    if (alive_[v]) renumbered[v] = fresh.Add(row(v));
  }
  *this = std::move(fresh);
  return renumbered;
}

void GrowingGraph::Clear() {
  std::vector<uint8_t>().swap(rows_);  // (assigning {} would keep the capacity)
  std::vector<uint32_t>().swap(links_);
  std::vector<uint8_t>().swap(alive_);
  live_ = 0;
}

}  // namespace strata::internal
