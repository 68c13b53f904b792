// A navigable graph that grows one node at a time: the navigation over the heads posting
// maintenance adds between rebuilds (index/internal/head_overlay.h). The built heads have their
// HNSW graph (head_graph.h), immutable once built; heads added by splits join this one instead,
// so finding the nearest of them costs a beam search, not a pass over all of them.
//
// One layer (a navigable small world): a node added is linked to the nodes the HNSW heuristic
// keeps among the nearest a beam search finds, and they to it (their lists pruned the same way
// when full). A search puts a fixed spread of nodes in its beam first, every (size /
// kEntries)-th, and walks from there.
//
// Nodes are never unlinked: a dead one (its head retired) still guides the walk but is never
// returned, and the beam widens by the dead nodes' share. Compact() rebuilds the graph from the
// live ones (the owner decides when: HeadOverlay, once the dead outnumber the live).
// A graph small for the beam asked (up to kExhaustivePerBeam nodes per place in it) is searched
// exhaustively instead, which is exact and, there, no slower.
//
// Thread-compatible: const calls may run concurrently (each search has its own scratch);
// anything else needs the caller's exclusive lock (the collection's).
#ifndef STRATA_INDEX_INTERNAL_GROWING_GRAPH_H_
#define STRATA_INDEX_INTERNAL_GROWING_GRAPH_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "index/kernels/distance.h"
#include "index/types.h"

namespace strata::internal {

class GrowingGraph final {
 public:
  // Links per node.
  static constexpr uint32_t kDegree = 32;
  // Beam while adding a node.
  static constexpr uint32_t kAddBeam = 96;
  // Nodes a search starts from.
  static constexpr uint32_t kEntries = 32;
  // A walk with beam ef costs about what a pass over 30 ef nodes does (128-d uint8 rows, 2,000 to
  // 16,000 nodes, AVX-512): graphs up to this many nodes per place in the beam are searched
  // exhaustively.
  static constexpr uint32_t kExhaustivePerBeam = 24;

  // `metric` as the rows are compared (rows in posting form: cosine ones normalised).
  GrowingGraph(ElementType type, Metric metric, uint32_t dim);

  // Adds a live node holding `row`; returns its number (nodes are numbered 0, 1, ... in order).
  uint32_t Add(const uint8_t* row);
  // Marks `node` dead: it still guides searches but is never returned.
  void Kill(uint32_t node);
  // Rebuilds the graph from the live nodes alone, keeping their order; returns each old node's
  // new number (~0u for the dead ones).
  std::vector<uint32_t> Compact();
  // Drops every node, and the memory they held.
  void Clear();

  [[nodiscard]] size_t size() const { return alive_.size(); }  // nodes, dead ones included
  [[nodiscard]] size_t live() const { return live_; }
  [[nodiscard]] bool alive(uint32_t node) const { return alive_[node] != 0; }
  [[nodiscard]] const uint8_t* row(uint32_t node) const {
    return rows_.data() + size_t{node} * row_bytes_;
  }
  [[nodiscard]] float Distance(const void* q, uint32_t node) const {
    return dist_(q, row(node), dim_);
  }
  [[nodiscard]] uint64_t MemoryBytes() const {
    return rows_.capacity() + links_.capacity() * 4 + alive_.capacity();
  }

  // Appends to `out` the (distance, node) of the `k` live nodes nearest `q` (posting form), as far
  // as a walk with beam `ef` (>= k) finds them (exactly, for small graphs), in no particular order.
  void Search(const void* q, uint32_t k, uint32_t ef,
              std::vector<std::pair<float, uint32_t>>* out) const;
  // The same, by looking at every live node: the reference the walk is tested against.
  void SearchExhaustive(const void* q, uint32_t k,
                        std::vector<std::pair<float, uint32_t>>* out) const;

 private:
  using Pair = std::pair<float, uint32_t>;
  // Beam `ef` widened by the dead nodes' share, so that about ef of the nodes it holds are live.
  [[nodiscard]] uint32_t Widened(size_t ef) const {
    return static_cast<uint32_t>(live_ == 0 ? ef : (ef * size() + live_ - 1) / live_);
  }
  // The walk over every node, live or dead: the `ef` nearest found, nearest first.
  void Walk(const void* q, uint32_t ef, std::vector<Pair>* found) const;
  // Links `node` to the nearest of `cand` (sorted nearest first) that the heuristic keeps, and
  // them back to it.
  void Link(uint32_t node, std::vector<Pair> cand);
  // Prunes `cand` (sorted nearest first) to at most kDegree by the HNSW heuristic.
  void Select(std::vector<Pair>* cand) const;
  [[nodiscard]] uint32_t* links(uint32_t node) { return &links_[size_t{node} * (1 + kDegree)]; }
  [[nodiscard]] const uint32_t* links(uint32_t node) const {
    return &links_[size_t{node} * (1 + kDegree)];
  }

  ElementType type_;
  Metric metric_;
  uint32_t dim_;
  size_t row_bytes_;
  kernels::DistanceFn dist_;
  std::vector<uint8_t> rows_;    // size() rows
  std::vector<uint32_t> links_;  // per node: [count, kDegree ids]
  std::vector<uint8_t> alive_;   // per node
  size_t live_ = 0;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_GROWING_GRAPH_H_
