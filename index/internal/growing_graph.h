// The heads posting maintenance adds between rebuilds (index/internal/head_overlay.h), joined to
// the built heads' HNSW graph (head_graph.h), so that one walk finds the nearest heads of both.
//
// The built graph is immutable. A joined node is linked, on the bottom level only, to the nodes
// the HNSW heuristic keeps among the nearest a walk finds (built or joined), and they to it: a
// joined node in its own link list, a built one in a list of bridges kept here (both pruned by
// the same heuristic when full). A walk descends the built graph's upper levels as before and
// crosses between built and joined nodes on the bottom one; a region where only joined nodes
// serve is reached through the bridges of the built nodes around it. (Before, the joined nodes
// had a graph of their own, walked beside the built one: every search paid two walks, and the
// second, over a graph of a few thousand nodes, cost as much as the first.)
//
// Nodes are numbered as the walk sees them: built ones [0, first()), joined ones from first() up,
// in the order added. Nodes are never unlinked: a dead one (a retired head, built or joined)
// still guides walks but is never returned nor linked to.
// Compact() rebuilds the joined part from its live nodes (the owner decides when: HeadOverlay,
// once the dead outnumber the live).
//
// The joined nodes' rows and links and the bridges are kept in chunks that copies share
// (shared_chunks.h): a copy costs a pointer per chunk, and the copy's changes clone only the
// chunks they touch. Copies are taken of frozen graphs only (Freeze()).
//
// Thread-compatible: const calls may run concurrently (each search has its own scratch), and so
// may copies of a frozen graph; anything else needs the caller's exclusive lock (the
// collection's).
#ifndef STRATA_INDEX_INTERNAL_GROWING_GRAPH_H_
#define STRATA_INDEX_INTERNAL_GROWING_GRAPH_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "index/internal/head_graph.h"
#include "index/internal/shared_chunks.h"

namespace strata::internal {

class GrowingGraph final : public GraphExtension {
 public:
  // Links per joined node (as the built graph's bottom level has).
  static constexpr uint32_t kDegree = 32;
  // Bridges per built node, at most.
  static constexpr uint32_t kBridges = 16;
  // Beam while adding a node.
  static constexpr uint32_t kAddBeam = 96;

  // Joined to `built`, which outlives the graph (null: a graph that is not joined yet, which
  // takes no nodes). Rows are in `built`'s form.
  explicit GrowingGraph(const HeadGraph* built);

  // Adds a live node holding `row`; returns its number (first(), first() + 1, ... in order).
  uint32_t Add(const uint8_t* row);
  // Marks `node` (built or joined) dead: it still guides walks but is never returned.
  void Kill(uint32_t node);
  // Rebuilds the joined part from its live nodes alone, keeping their order; returns each old
  // joined node's new number, at [old - first()] (~0u for the dead ones).
  std::vector<uint32_t> Compact();

  [[nodiscard]] const HeadGraph* built() const { return built_; }
  // The first joined node's number: the built graph's size.
  [[nodiscard]] uint32_t first() const { return first_; }
  // Joined nodes, dead ones included, and the live ones among them.
  [[nodiscard]] size_t size() const { return alive_.size(); }
  [[nodiscard]] size_t live() const { return live_; }
  // Dead built nodes.
  [[nodiscard]] size_t dead_built() const { return dead_built_; }
  [[nodiscard]] bool alive(uint32_t node) const {
    return node < first_ ? (built_dead_[node / 64] >> (node % 64) & 1) == 0
                         : alive_[node - first_] != 0;
  }
  [[nodiscard]] const uint8_t* row(uint32_t node) const {
    return node < first_ ? built_->vector(node) : joined_row(node);
  }
  // Bytes held (chunks shared with copies counted here too).
  [[nodiscard]] uint64_t MemoryBytes() const {
    return rows_.MemoryBytes() + links_.MemoryBytes() + alive_.capacity() +
           bridge_slot_.MemoryBytes() + bridge_lists_.MemoryBytes() +
           built_dead_.capacity() * sizeof(uint64_t);
  }
  // Makes the graph's chunks shared: copies may be taken from now on (see the file comment).
  void Freeze() {
    rows_.Freeze();
    links_.Freeze();
    bridge_slot_.Freeze();
    bridge_lists_.Freeze();
  }

  // The (distance, node) of the `k` live nodes, built and joined, nearest `q`, as far as a walk
  // with beam `ef` (>= k) finds them; nearest first.
  void Search(const void* q, uint32_t k, uint32_t ef, HeadSearchScratch* scratch,
              std::vector<std::pair<float, uint32_t>>* out) const;
  // The same, by looking at every live node: the reference the walk is tested against.
  void SearchExhaustive(const void* q, uint32_t k,
                        std::vector<std::pair<float, uint32_t>>* out) const;

  // GraphExtension.
  [[nodiscard]] size_t joined() const override { return size(); }
  [[nodiscard]] const uint8_t* joined_row(uint32_t node) const override {
    return rows_.Get(node - first_);
  }
  [[nodiscard]] const uint32_t* joined_links(uint32_t node) const override {
    return links_.Get(node - first_);
  }
  [[nodiscard]] const uint32_t* bridges(uint32_t node) const override {
    if (node >= bridge_slot_.size()) return nullptr;
    const uint32_t slot = *bridge_slot_.Get(node);
    return slot == 0 ? nullptr : bridge_lists_.Get(slot - 1);
  }
  [[nodiscard]] bool serving(uint32_t node) const override { return alive(node); }

 private:
  using Pair = std::pair<float, uint32_t>;
  // Records per chunk: a step's changes clone the chunks they touch (links and bridges are
  // changed at random places, rows and slots only appended to).
  static constexpr size_t kRowsPerChunk = 64;
  static constexpr size_t kLinksPerChunk = 32;
  static constexpr size_t kSlotsPerChunk = 4096;

  [[nodiscard]] float Between(uint32_t a, uint32_t b) const {
    return built_->Compare(row(a), row(b));
  }
  // Links joined `node` to the nearest of `cand` (sorted nearest first) that the heuristic keeps,
  // and them back to it.
  void Link(uint32_t node, std::vector<Pair> cand);
  // Adds `node` to the list `l` of `owner` (capacity `most`), pruned by the heuristic when full.
  void LinkBack(uint32_t owner, uint32_t* l, uint32_t most, float d, uint32_t node);
  // Prunes `cand` (sorted nearest first) to at most `most` by the HNSW heuristic.
  void Select(std::vector<Pair>* cand, uint32_t most) const;
  // Node `node`'s link list ([count, nodes]) to change: a joined node's links, or a built
  // node's bridges (given one first if it has none).
  [[nodiscard]] uint32_t* MutableList(uint32_t node);

  const HeadGraph* built_;
  uint32_t first_;
  size_t row_bytes_;
  SharedChunks<uint8_t> rows_;    // per joined node: its row
  SharedChunks<uint32_t> links_;  // per joined node: [count, kDegree nodes]
  std::vector<uint8_t> alive_;    // per joined node
  size_t live_ = 0;
  // Per built node up to the last one with bridges (none before the first update): 1 + its
  // bridge list's number, or 0.
  SharedChunks<uint32_t> bridge_slot_;
  SharedChunks<uint32_t> bridge_lists_;  // [count, kBridges joined nodes] each
  std::vector<uint64_t> built_dead_;     // a bit per built node
  size_t dead_built_ = 0;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_GROWING_GRAPH_H_
