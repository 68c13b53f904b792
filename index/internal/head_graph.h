// The navigation graph over SPANN heads: a hierarchical navigable small-world graph (HNSW, Malkov &
// Yashunin) written for this index rather than taken from FAISS, because the head search is on
// every query's path and must (a) keep head vectors in their own element type (one byte per value
// for uint8/int8: head RAM is the largest term of the index's memory), (b) use Strata's SIMD
// kernels, (c) search with per-thread scratch and no OpenMP team or allocation per query, and (d)
// take the beam width per call. Private to index/.
//
// Build is parallel (per-node locks); the graph is immutable afterwards, so searches need no locks.
#ifndef STRATA_INDEX_INTERNAL_HEAD_GRAPH_H_
#define STRATA_INDEX_INTERNAL_HEAD_GRAPH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "index/kernels/distance.h"
#include "index/types.h"
#include "storage/env.h"

namespace strata::internal {

struct HeadGraphOptions {
  int m = 16;                 // links per node on upper levels; 2m on level 0
  int ef_construction = 100;  // beam while inserting
  uint64_t seed = 7;
  int threads = 0;  // 0 = all cores
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Checked before each insertion, on any thread (may be null): once true (it must stay true),
  // Build stops and returns Cancelled.
  std::function<bool()> cancelled;
};

// Per-thread search scratch; reuse it across queries (no allocation after warm-up).
struct HeadSearchScratch {
  std::vector<uint32_t> visited;  // generation stamps, one per node
  uint32_t stamp = 0;
  std::vector<std::pair<float, uint32_t>> candidates, results;
  std::vector<uint64_t> walk_candidates, walk_results;  // Walk's beam, packed (head_graph.cc)
  std::vector<uint32_t> link_copy;  // build only: a locked snapshot of one link list
};

// Nodes joined to a built graph's bottom level after its build (the heads posting maintenance
// adds: growing_graph.h), so that one walk covers both. They are numbered from the built graph's
// size() up; each has links of its own (to built or joined nodes), and a built node may have
// links to joined ones ("bridges"), since its own links are immutable. Link lists are
// [count, ids...].
class GraphExtension {
 public:
  virtual ~GraphExtension() = default;
  // Joined nodes, numbered [built size, built size + joined()).
  [[nodiscard]] virtual size_t joined() const = 0;
  // The row of joined node `node`.
  [[nodiscard]] virtual const uint8_t* joined_row(uint32_t node) const = 0;
  // The links of joined node `node`.
  [[nodiscard]] virtual const uint32_t* joined_links(uint32_t node) const = 0;
  // The bridges of built node `node`, or null for none.
  [[nodiscard]] virtual const uint32_t* bridges(uint32_t node) const = 0;
  // Whether node `node` (built or joined) may be returned: a dead one only guides walks.
  [[nodiscard]] virtual bool serving(uint32_t node) const = 0;
};

class HeadGraph final {
 public:
  HeadGraph(const HeadGraph&) = delete;
  HeadGraph& operator=(const HeadGraph&) = delete;

  // `vectors` holds n rows of d elements of `type` (already normalised for cosine); `metric` is
  // kL2 or kInnerProduct. The graph keeps its own copy.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HeadGraph>> Build(
      ElementType type, Metric metric, uint32_t d, const uint8_t* vectors, uint64_t n,
      const HeadGraphOptions& options);
  // Loads a Save()d graph; DataLoss naming `path` when it is corrupt, truncated or does not match
  // (type, metric, d).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HeadGraph>> Load(const std::string& path,
                                                                       ElementType type,
                                                                       Metric metric, uint32_t d);
  // Adds `count` rows (the graph's form) as nodes numbered from size() up, with no links, which
  // every walk measures directly (as isolated() ones): the build's heads for outliers, far from
  // every other head (kOutlierSpacings in head_spacing.h), few. Not thread-safe (before any walk;
  // after FindIsolated, whose nodes it keeps).
  void AppendIsolated(const uint8_t* rows, size_t count);
  // Lists as isolated() the nodes `far` from every other (far(distance to the nearest one found):
  // an outlier) which a walk for their own row (beam 64) does not return; every walk measures
  // them directly from then on. HNSW's neighbour selection can leave an outlier no walk reaches:
  // its neighbours' lists keep nearer nodes, and a query far from every node meets a flat
  // landscape where the greedy walk stops among equals. Then no query found its posting, and no
  // vector - the outlier itself included - was assigned to it (a stranger's exact-match query
  // for an outlier, uint8 all 97s among 20K SIFT-like vectors, missed it at the default budget).
  // At most `most` (the farthest). Walks `threads` at once, one per far node; stops early once
  // `cancelled` (may be null) is true. Not thread-safe (before any walk).
  void FindIsolated(int threads, const std::function<bool()>& cancelled,
                    const std::function<bool(float distance)>& far, size_t most);
  // Writes the graph atomically, with a crc32c over the whole file.
  [[nodiscard]] absl::Status Save(Env& env, const std::string& path) const;

  // The k nearest nodes to `query` (d elements of the graph's type), nearest first, as
  // (distance, node). `ef` (>= k) is the level-0 beam. Thread-safe with distinct scratch.
  void Search(const void* query, uint32_t k, uint32_t ef, HeadSearchScratch* scratch,
              std::vector<std::pair<float, uint32_t>>* out) const;

  // The `ef` nearest serving nodes to `query` a walk over this graph joined with `joined` (null:
  // none) finds, nearest first: built nodes and joined ones (numbered from size() up) alike. An
  // `ef` of every node or more measures each instead of walking (exact, and cheaper). Dead
  // nodes are walked through but take no place in the beam (hnswlib's way with deleted ones), so
  // a region crowded with them costs a longer walk, not a shorter answer. The nodes no walk
  // reaches by links (isolated()) are measured by every walk.
  // Thread-safe with distinct scratch (and `joined` not changing meanwhile).
  void Walk(const void* query, uint32_t ef, const GraphExtension* joined,
            HeadSearchScratch* scratch, std::vector<std::pair<float, uint32_t>>* out) const;

  [[nodiscard]] uint64_t size() const { return n_; }
  [[nodiscard]] size_t row_bytes() const { return row_bytes_; }
  // The distance between two rows in the graph's form (as Distance() measures).
  [[nodiscard]] float Compare(const void* a, const void* b) const { return dist_(a, b, d_); }
  [[nodiscard]] const uint8_t* vector(uint32_t node) const {
    return vectors_.data() + size_t{node} * row_bytes_;
  }
  [[nodiscard]] float Distance(const void* a, uint32_t node) const {
    return dist_(a, vector(node), d_);
  }
  // Bytes held: vectors, links, level table.
  [[nodiscard]] uint64_t MemoryBytes() const;
  // Nodes walks do not reach by their links, which every walk measures directly.
  [[nodiscard]] size_t isolated() const { return isolated_.size(); }
  // Nodes the build found no bottom-level link path to from the entry point, each then linked
  // from its nearest reached node (LinkUnreached); 0 for a loaded graph.
  [[nodiscard]] size_t relinked() const { return relinked_; }
  // Nodes no bottom-level link path from the entry point reaches now: after a build, those
  // LinkUnreached found no safe place to link from (none seen so far).
  [[nodiscard]] size_t Unreached() const;

 private:
  HeadGraph(ElementType type, Metric metric, uint32_t d, uint64_t n, int m);
  class Builder;

  // Links of `node` at `level`: pointer to [count, ids...].
  [[nodiscard]] const uint32_t* Links(uint32_t node, int level) const;
  [[nodiscard]] uint32_t* MutableLinks(uint32_t node, int level);
  [[nodiscard]] uint32_t Capacity(int level) const { return level == 0 ? 2 * m_ : m_; }
  // After the build: links every node no bottom-level path from the entry point reaches from its
  // nearest reached node, where that cuts no other node off. Returns how many it linked.
  size_t LinkUnreached();
  // Marks in `reached` (one byte per node) every node a bottom-level link path from `start`
  // reaches, past those already marked.
  void MarkReached(uint32_t start, std::vector<uint8_t>* reached) const;

  ElementType type_;
  Metric metric_;
  uint32_t d_;
  uint64_t n_;
  uint32_t m_;
  size_t row_bytes_;
  kernels::DistanceFn dist_;
  std::vector<uint8_t> vectors_;        // n * row_bytes
  std::vector<uint8_t> levels_;         // top level of each node
  std::vector<uint32_t> level0_;        // n * (1 + 2m)
  std::vector<uint32_t> upper_offset_;  // per node: offset into upper_ (levels 1..top), or ~0u
  std::vector<uint32_t> upper_;         // per upper level: [count, m ids]
  std::vector<uint32_t> isolated_;      // nodes walks do not reach (FindIsolated), ascending
  uint32_t entry_ = 0;
  int max_level_ = 0;
  size_t relinked_ = 0;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_HEAD_GRAPH_H_
