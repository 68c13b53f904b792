// The graph over the heads posting maintenance adds (index/internal/growing_graph.h) and the
// overlay that numbers them (head_overlay.h): its walk finds what a pass over every live node
// finds, dead nodes are never returned, and compaction keeps every live row under its head.
#include "index/internal/growing_graph.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "index/internal/head_overlay.h"
#include "tools/synthetic.h"

namespace strata::internal {
namespace {

using Hits = std::vector<std::pair<float, uint32_t>>;

VectorSet Rows(uint64_t first, uint64_t n, uint64_t seed = 1) {
  SyntheticOptions o;
  o.seed = seed;
  return SyntheticGenerator::Create(o)->Generate(first, n);
}

std::set<uint32_t> Ids(const Hits& h) {
  std::set<uint32_t> out;
  for (const auto& [d, id] : h) out.insert(id);
  return out;
}

// The share of the exhaustive top-k that the walk finds, over `queries`.
double Recall(const GrowingGraph& g, const VectorSet& queries, uint32_t k, uint32_t ef) {
  size_t found = 0, want = 0;
  for (uint64_t q = 0; q < queries.n; ++q) {
    Hits walk, all;
    g.Search(queries.row(q), k, ef, &walk);
    g.SearchExhaustive(queries.row(q), k, &all);
    const std::set<uint32_t> w = Ids(walk);
    for (const auto& [d, id] : all) found += w.count(id);
    want += all.size();
  }
  return static_cast<double>(found) / static_cast<double>(want);
}

TEST(GrowingGraph, SmallGraphsAreSearchedExactly) {
  const VectorSet rows = Rows(0, GrowingGraph::kExhaustivePerBeam * 10);
  GrowingGraph g(rows.type, Metric::kL2, rows.dim);
  for (uint64_t i = 0; i < rows.n; ++i) EXPECT_EQ(g.Add(rows.row(i)), i);
  const VectorSet queries = Rows(10'000, 20);
  for (uint64_t q = 0; q < queries.n; ++q) {
    Hits walk, all;
    g.Search(queries.row(q), 10, 10, &walk);
    g.SearchExhaustive(queries.row(q), 10, &all);
    EXPECT_EQ(Ids(walk), Ids(all));
  }
}

TEST(GrowingGraph, WalkFindsTheNearestLiveNodes) {
  const VectorSet rows = Rows(0, 6'000);
  GrowingGraph g(rows.type, Metric::kL2, rows.dim);
  for (uint64_t i = 0; i < rows.n; ++i) g.Add(rows.row(i));
  const VectorSet queries = Rows(50'000, 200);
  // Navigate asks for 64 heads with a beam of 128; a search for max_postings with its beam.
  EXPECT_GE(Recall(g, queries, 64, 128), 0.99);
  EXPECT_GE(Recall(g, queries, 10, 64), 0.99);
  // Most rows of the graph find themselves first.
  size_t self = 0;
  for (uint64_t i = 0; i < rows.n; i += 30) {
    Hits h;
    g.Search(rows.row(i), 1, 64, &h);
    ASSERT_EQ(h.size(), 1u);
    self += h[0].first == 0.0f;
  }
  EXPECT_GE(self, 195u);
}

TEST(GrowingGraph, DeadNodesAreNeverReturnedAndCompactionKeepsTheLiveRows) {
  const VectorSet rows = Rows(0, 4'000);
  GrowingGraph g(rows.type, Metric::kL2, rows.dim);
  for (uint64_t i = 0; i < rows.n; ++i) g.Add(rows.row(i));
  std::mt19937_64 rng(3);
  std::vector<uint8_t> dead(rows.n, 0);
  for (uint64_t i = 0; i < rows.n; ++i) {
    if (rng() % 5 < 3) {
      g.Kill(static_cast<uint32_t>(i));
      dead[i] = 1;
    }
  }
  const VectorSet queries = Rows(50'000, 100);
  for (uint64_t q = 0; q < queries.n; ++q) {
    Hits h;
    g.Search(queries.row(q), 32, 64, &h);
    EXPECT_EQ(h.size(), 32u);
    for (const auto& [d, id] : h) EXPECT_FALSE(dead[id]) << id;
  }
  EXPECT_GE(Recall(g, queries, 32, 64), 0.99);  // 60% dead still guide the walk
  const size_t live = g.live();
  const std::vector<uint32_t> renumbered = g.Compact();
  ASSERT_EQ(renumbered.size(), rows.n);
  EXPECT_EQ(g.size(), live);
  EXPECT_EQ(g.live(), live);
  for (uint64_t i = 0; i < rows.n; ++i) {
    if (dead[i]) {
      EXPECT_EQ(renumbered[i], ~0u);
    } else {
      ASSERT_LT(renumbered[i], g.size());
      EXPECT_EQ(std::memcmp(g.row(renumbered[i]), rows.row(i), rows.row_bytes()), 0);
    }
  }
  EXPECT_GE(Recall(g, queries, 32, 64), 0.99);
  g.Clear();
  EXPECT_EQ(g.size(), 0u);
  EXPECT_EQ(g.MemoryBytes(), 0u);
}

// Heads added and retired as splits do, many times over: the overlay's answers are always its
// live added heads, with their rows, through every compaction of the graph.
TEST(HeadOverlay, AddedHeadsSurviveRetirementsAndCompactions) {
  const VectorSet rows = Rows(0, 3'000);
  constexpr uint32_t kBuilt = 100;
  HeadOverlay o(rows.type, Metric::kL2, rows.dim, kBuilt);
  std::map<uint32_t, uint64_t> live;  // head -> its row in `rows`
  std::mt19937_64 rng(5);
  uint64_t next_row = 0;
  size_t most_nodes = 0;
  // 1,000 heads, then churn: about as many retired as added.
  for (int step = 0; step < 4'000 && next_row < rows.n; ++step) {
    most_nodes = std::max(most_nodes, o.graph_nodes());
    EXPECT_LE(o.graph_nodes(), 2 * o.added() + HeadOverlay::kCompactAbove + 1);
    if (step >= 1'000 && rng() % 2 == 0) {
      auto it = live.begin();
      std::advance(it, static_cast<ptrdiff_t>(rng() % live.size()));
      o.Retire(it->first);
      live.erase(it);
    } else {
      const uint32_t head = o.next_head();
      o.Add(head, rows.row(next_row));
      live[head] = next_row++;
    }
  }
  EXPECT_LT(o.graph_nodes(), next_row);  // compacted, more than once
  o.Retire(7);                           // a built head
  EXPECT_TRUE(o.IsRetired(7));
  EXPECT_EQ(o.retired(), 1u);
  ASSERT_EQ(o.added(), live.size());
  size_t visited = 0;
  o.ForEachAdded([&](uint32_t head, const uint8_t* row) {
    ASSERT_TRUE(live.contains(head)) << head;
    EXPECT_EQ(std::memcmp(row, rows.row(live[head]), rows.row_bytes()), 0);
    ++visited;
  });
  EXPECT_EQ(visited, live.size());
  for (const auto& [head, row] : live) {
    ASSERT_NE(o.Row(head), nullptr);
    EXPECT_EQ(std::memcmp(o.Row(head), rows.row(row), rows.row_bytes()), 0);
    Hits h;
    o.Nearest(rows.row(row), 1, 64, &h);
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].first, 0.0f);  // (itself, or a head with the same row)
  }
  // A copy (what a maintenance step works on) answers the same, and changes on its own.
  HeadOverlay copy = o;
  const uint32_t some = live.begin()->first;
  copy.Retire(some);
  EXPECT_EQ(copy.Row(some), nullptr);
  EXPECT_NE(o.Row(some), nullptr);
  o.Clear(kBuilt);
  EXPECT_EQ(o.added(), 0u);
  EXPECT_EQ(o.retired(), 0u);
}

}  // namespace
}  // namespace strata::internal
