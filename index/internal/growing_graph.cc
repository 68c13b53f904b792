#include "index/internal/growing_graph.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace strata::internal {

GrowingGraph::GrowingGraph(const HeadGraph* built)
    : built_(built),
      first_(built != nullptr ? static_cast<uint32_t>(built->size()) : 0),
      row_bytes_(built != nullptr ? built->row_bytes() : 0),
      rows_(std::max<size_t>(row_bytes_, 1), kRowsPerChunk),
      links_(1 + kDegree, kLinksPerChunk),
      bridge_slot_(1, kSlotsPerChunk),
      bridge_lists_(1 + kBridges, kLinksPerChunk),
      built_dead_((first_ + 63) / 64, 0) {}

void GrowingGraph::Search(const void* q, uint32_t k, uint32_t ef, HeadSearchScratch* scratch,
                          std::vector<Pair>* out) const {
  out->clear();
  const uint64_t live = uint64_t{first_} - dead_built_ + live_;
  if (k == 0 || live == 0) return;
  k = static_cast<uint32_t>(std::min<uint64_t>(k, live));
  if (size() == 0 && dead_built_ == 0) {
    built_->Search(q, k, ef, scratch, out);  // (nothing joined nor dead: the built graph's own)
    return;
  }
  built_->Walk(q, std::max(ef, k), this, scratch, out);
  if (out->size() >= k) {
    out->resize(k);
    return;
  }
  // Fewer live nodes reachable than asked for (dead ones cut them off): a pass over every node.
  SearchExhaustive(q, k, out);
}

void GrowingGraph::SearchExhaustive(const void* q, uint32_t k, std::vector<Pair>* out) const {
  out->clear();
  if (k == 0) return;
  const uint64_t total = uint64_t{first_} + size();
  for (uint32_t v = 0; v < total; ++v) {
    if (alive(v)) out->emplace_back(built_->Compare(q, row(v)), v);
  }
  if (out->size() > k) {
    std::nth_element(out->begin(), out->begin() + k, out->end());
    out->resize(k);
  }
  std::sort(out->begin(), out->end());
}

void GrowingGraph::Select(std::vector<Pair>* cand, uint32_t most) const {
  // The HNSW heuristic: a candidate nearer an already kept node than the base is left out, so
  // links spread in all directions; then the nearest left out fill up to half the list, so that
  // a node in a tight cluster still has links enough.
  std::vector<Pair> kept, left;
  for (const Pair& c : *cand) {
    if (kept.size() >= most) break;
    bool good = true;
    for (const Pair& k : kept) {
      if (Between(c.second, k.second) < c.first) {
        good = false;
        break;
      }
    }
    (good ? kept : left).push_back(c);
  }
  for (size_t i = 0; i < left.size() && kept.size() < most / 2; ++i) kept.push_back(left[i]);
  *cand = std::move(kept);
}

void GrowingGraph::LinkBack(uint32_t owner, uint32_t* l, uint32_t most, float d, uint32_t node) {
  if (l[0] < most) {
    l[1 + l[0]++] = node;
    return;
  }
  std::vector<Pair> again;
  again.reserve(most + 1);
  for (uint32_t j = 0; j < l[0]; ++j) again.emplace_back(Between(owner, l[1 + j]), l[1 + j]);
  again.emplace_back(d, node);
  std::sort(again.begin(), again.end());
  Select(&again, most);
  l[0] = 0;
  for (const Pair& a : again) l[1 + l[0]++] = a.second;
}

uint32_t* GrowingGraph::MutableList(uint32_t node) {
  if (node >= first_) return links_.Mutable(node - first_);
  if (node >= bridge_slot_.size()) bridge_slot_.Resize(node + 1);
  uint32_t slot = *bridge_slot_.Get(node);
  if (slot == 0) {
    bridge_lists_.Append();  // (zeroed: no bridges yet)
    slot = static_cast<uint32_t>(bridge_lists_.size());
    *bridge_slot_.Mutable(node) = slot;
  }
  return bridge_lists_.Mutable(slot - 1);
}

void GrowingGraph::Link(uint32_t node, std::vector<Pair> cand) {
  Select(&cand, kDegree);
  uint32_t* mine = links_.Mutable(node - first_);
  mine[0] = 0;
  for (const Pair& c : cand) mine[1 + mine[0]++] = c.second;
  // (`mine` is not used past here: the calls below may clone its chunk.)
  for (const Pair& c : cand) {
    LinkBack(c.second, MutableList(c.second), c.second < first_ ? kBridges : kDegree, c.first,
             node);
  }
}

uint32_t GrowingGraph::Add(const uint8_t* row_in) {
  DCHECK(built_ != nullptr);
  // The nearest live nodes before this one joins.
  thread_local HeadSearchScratch scratch;
  std::vector<Pair> cand;
  built_->Walk(row_in, kAddBeam, this, &scratch, &cand);
  const auto node = static_cast<uint32_t>(first_ + size());
  std::memcpy(rows_.Append(), row_in, row_bytes_);
  links_.Append();  // (zeroed: no links yet)
  alive_.push_back(1);
  ++live_;
  Link(node, std::move(cand));
  return node;
}

void GrowingGraph::Kill(uint32_t node) {
  if (node < first_) {
    uint64_t& word = built_dead_[node / 64];
    const uint64_t bit = uint64_t{1} << (node % 64);
    dead_built_ += (word & bit) == 0;
    word |= bit;
    return;
  }
  DCHECK(node - first_ < size());
  if (!alive_[node - first_]) return;
  alive_[node - first_] = 0;
  --live_;
}

std::vector<uint32_t> GrowingGraph::Compact() {
  GrowingGraph fresh(built_);
  fresh.built_dead_ = built_dead_;
  fresh.dead_built_ = dead_built_;
  std::vector<uint32_t> renumbered(size(), ~0u);
  for (uint32_t v = 0; v < size(); ++v) {
    if (alive_[v]) renumbered[v] = fresh.Add(joined_row(first_ + v));
  }
  *this = std::move(fresh);
  return renumbered;
}

}  // namespace strata::internal
