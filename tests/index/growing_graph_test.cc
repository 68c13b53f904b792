// The heads posting maintenance adds, joined to the built heads' graph
// (index/internal/growing_graph.h), and the overlay that numbers them (head_overlay.h): one walk
// finds what a pass over every live node, built or joined, finds; dead nodes are never returned;
// compaction keeps every live row under its head.
#include "index/internal/growing_graph.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "index/internal/head_graph.h"
#include "index/internal/head_overlay.h"
#include "index/internal/head_spacing.h"
#include "storage/crc32c.h"
#include "storage/env.h"
#include "storage/scoped_fd.h"
#include "tests/test_util.h"
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

// An outlier among the nodes - far from every other, where the greedy walk stops among equals -
// is found by a walk for its own row: walks measure the nodes their links do not reach
// (FindIsolated), and only those (an ordinary miss stays a miss: few nodes are measured). A
// stranger's exact-match query for an outlier (uint8, all 97s, among SIFT-like rows) missed it:
// it was a head no walk reached.
TEST(HeadGraph, OutliersAreFoundByTheirOwnRows) {
  for (const uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    VectorSet rows = Rows(0, 2000, seed);
    for (const uint8_t value : {97, 255}) {
      rows.data.insert(rows.data.end(), rows.dim, value);
      ++rows.n;
    }
    for (const int threads : {1, 2}) {
      SCOPED_TRACE(threads);
      HeadGraphOptions options;
      options.threads = threads;
      auto g =
          *HeadGraph::Build(rows.type, Metric::kL2, rows.dim, rows.data.data(), rows.n, options);
      // As SpannIndex::Build finds them.
      const float radius = kOutlierSpacings * MedianHeadSpacing(*g, Metric::kL2, kSpacingSample);
      g->FindIsolated(
          threads, nullptr, [&](float d) { return std::sqrt(d) > radius; }, 16);
      EXPECT_LE(g->isolated(), 2u);
      HeadSearchScratch scratch;
      Hits hits;
      int found = 0;
      for (uint32_t i = 0; i < rows.n; ++i) {
        g->Search(rows.row(i), 1, 64, &scratch, &hits);
        const bool self = !hits.empty() && hits[0].first == 0;
        found += self;
        if (i >= 2000) {
          EXPECT_TRUE(self) << "outlier row " << i << ", threads " << threads;
        }
      }
      EXPECT_GE(found, static_cast<int>(rows.n) * 99 / 100);
    }
  }
}

// Every node is reached from the entry point by links: HNSW's neighbour selection can leave a
// node that no list keeps (every neighbour pruned it for nearer ones), which no walk - and no
// query - then finds; the build links each such node from its nearest reached one. 10,000
// SIFT-like rows built on one thread (deterministic) leave 5 (seed 1) and 5 (seed 3) so; on two
// threads 4-13.
TEST(HeadGraph, EveryNodeIsReachedFromTheEntryByLinks) {
  for (const uint64_t seed : {1, 3}) {
    SCOPED_TRACE(seed);
    const VectorSet rows = Rows(0, 10000, seed);
    for (const int threads : {1, 2}) {
      SCOPED_TRACE(threads);
      HeadGraphOptions options;
      options.threads = threads;
      options.seed = seed;
      auto g =
          *HeadGraph::Build(rows.type, Metric::kL2, rows.dim, rows.data.data(), rows.n, options);
      EXPECT_EQ(g->Unreached(), 0u) << g->relinked() << " relinked";
      if (threads == 1) {
        EXPECT_GT(g->relinked(), 0u);  // (the case is there to be repaired)
      }
      // Each relinked node is found by a walk for its own row.
      HeadSearchScratch scratch;
      Hits hits;
      int found = 0;
      for (uint32_t i = 0; i < rows.n; ++i) {
        g->Search(rows.row(i), 1, 64, &scratch, &hits);
        found += !hits.empty() && hits[0].first == 0;
      }
      EXPECT_GE(found, static_cast<int>(rows.n) * 995 / 1000);
    }
  }
}

// Nodes appended as isolated ones are found by walks, and the list survives a save and a load; a
// file whose list is out of order or out of range is refused (its crc made right).
TEST(HeadGraph, IsolatedNodesAreSavedAndCheckedOnLoad) {
  testing::TempDir tmp;
  const VectorSet rows = Rows(0, 1000);
  HeadGraphOptions options;
  options.threads = 1;
  auto g = *HeadGraph::Build(rows.type, Metric::kL2, rows.dim, rows.data.data(), rows.n, options);
  std::vector<uint8_t> far(2 * rows.dim);
  std::fill(far.begin(), far.begin() + rows.dim, 250);
  std::fill(far.begin() + rows.dim, far.end(), 3);
  g->AppendIsolated(far.data(), 2);
  ASSERT_EQ(g->isolated(), 2u);
  const std::string path = tmp.File("heads.graph");
  ASSERT_TRUE(g->Save(*Env::Default(), path).ok());
  auto loaded = HeadGraph::Load(path, rows.type, Metric::kL2, rows.dim);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->isolated(), 2u);
  EXPECT_EQ((*loaded)->size(), rows.n + 2);
  HeadSearchScratch scratch;
  Hits hits;
  for (uint32_t i = 0; i < 2; ++i) {
    (*loaded)->Search(far.data() + i * rows.dim, 1, 64, &scratch, &hits);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].second, rows.n + i);
    EXPECT_EQ(hits[0].first, 0);
  }
  std::string file = *ReadWholeFile(path);
  const auto rewrite = [&](size_t at, uint32_t id) {
    std::string bad = file;
    std::memcpy(&bad[at], &id, 4);
    const uint32_t crc = crc32c::Value(bad.data(), bad.size() - 4);
    std::memcpy(&bad[bad.size() - 4], &crc, 4);
    const std::string bad_path = tmp.File("bad.graph");
    EXPECT_TRUE(WriteFileAtomic(*Env::Default(), bad_path, bad).ok());
    return HeadGraph::Load(bad_path, rows.type, Metric::kL2, rows.dim).status();
  };
  const size_t last = file.size() - 8, first = file.size() - 12;  // the list's two ids, then crc
  EXPECT_TRUE(absl::IsDataLoss(rewrite(last, 5000))) << "out of range";
  EXPECT_TRUE(absl::IsDataLoss(rewrite(first, rows.n + 1))) << "out of order";
  EXPECT_TRUE(rewrite(last, rows.n + 1).ok()) << "(the file as it was)";
}

// The built heads' graph over `rows`.
std::unique_ptr<HeadGraph> Built(const VectorSet& rows) {
  HeadGraphOptions options;
  options.threads = 1;
  auto g = HeadGraph::Build(rows.type, Metric::kL2, rows.dim, rows.data.data(), rows.n, options);
  if (!g.ok()) {
    ADD_FAILURE() << g.status();
    return nullptr;
  }
  return std::move(*g);
}

// The share of the exhaustive top-k that the walk finds, over `queries`.
double Recall(const GrowingGraph& g, const VectorSet& queries, uint32_t k, uint32_t ef) {
  size_t found = 0, want = 0;
  for (uint64_t q = 0; q < queries.n; ++q) {
    Hits walk, all;
    HeadSearchScratch scratch;
    g.Search(queries.row(q), k, ef, &scratch, &walk);
    g.SearchExhaustive(queries.row(q), k, &all);
    const std::set<uint32_t> w = Ids(walk);
    for (const auto& [d, id] : all) found += w.count(id);
    want += all.size();
  }
  return static_cast<double>(found) / static_cast<double>(want);
}

// Heads of the build's distribution, and added ones of a drifted one (the bench's second
// generator seed): a region only joined nodes serve is reached through the built nodes' bridges.
TEST(GrowingGraph, OneWalkFindsTheNearestBuiltAndJoinedNodes) {
  const VectorSet built_rows = Rows(0, 3'000);
  const std::unique_ptr<HeadGraph> built = Built(built_rows);
  ASSERT_NE(built, nullptr);
  GrowingGraph g(built.get());
  const VectorSet added = Rows(0, 4'000, /*seed=*/2);
  for (uint64_t i = 0; i < added.n; ++i) EXPECT_EQ(g.Add(added.row(i)), 3'000 + i);
  EXPECT_EQ(g.first(), 3'000u);
  EXPECT_EQ(g.size(), added.n);
  for (const uint64_t seed : {1, 2}) {
    const VectorSet queries = Rows(50'000, 200, seed);
    // 64 heads, as AssignPostings asks (there with a beam of 64: 0.975-0.98 here, about what the
    // built graph alone finds); a search for max_postings with its beam.
    EXPECT_GE(Recall(g, queries, 64, 128), 0.99) << seed;
    EXPECT_GE(Recall(g, queries, 10, 64), 0.99) << seed;
  }
  // Every joined row finds itself first, nearly always.
  size_t self = 0;
  HeadSearchScratch scratch;
  for (uint64_t i = 0; i < added.n; i += 20) {
    Hits h;
    g.Search(added.row(i), 1, 64, &scratch, &h);
    ASSERT_EQ(h.size(), 1u);
    self += h[0].first == 0.0f;
  }
  EXPECT_GE(self, 195u);
  // Results come nearest first, and a walk with nothing joined is the built graph's own.
  const VectorSet queries = Rows(70'000, 20);
  GrowingGraph none(built.get());
  for (uint64_t q = 0; q < queries.n; ++q) {
    Hits h, alone;
    g.Search(queries.row(q), 32, 64, &scratch, &h);
    EXPECT_TRUE(std::is_sorted(h.begin(), h.end()));
    none.Search(queries.row(q), 10, 64, &scratch, &h);
    built->Search(queries.row(q), 10, 64, &scratch, &alone);
    EXPECT_EQ(h, alone);
  }
}

TEST(GrowingGraph, DeadNodesAreNeverReturnedAndCompactionKeepsTheLiveRows) {
  const VectorSet built_rows = Rows(0, 2'000);
  const std::unique_ptr<HeadGraph> built = Built(built_rows);
  ASSERT_NE(built, nullptr);
  GrowingGraph g(built.get());
  const VectorSet rows = Rows(0, 4'000, /*seed=*/2);
  for (uint64_t i = 0; i < rows.n; ++i) g.Add(rows.row(i));
  std::mt19937_64 rng(3);
  std::vector<uint8_t> dead(g.first() + rows.n, 0);
  for (uint32_t v = 0; v < dead.size(); ++v) {
    // 60% of the joined nodes, 20% of the built ones.
    if (rng() % 5 < (v < g.first() ? 1u : 3u)) {
      g.Kill(v);
      dead[v] = 1;
    }
  }
  EXPECT_EQ(g.dead_built(),
            static_cast<size_t>(std::count(dead.begin(), dead.begin() + g.first(), 1)));
  for (const uint64_t seed : {1, 2}) {
    const VectorSet queries = Rows(50'000, 100, seed);
    HeadSearchScratch scratch;
    for (uint64_t q = 0; q < queries.n; ++q) {
      Hits h;
      g.Search(queries.row(q), 32, 64, &scratch, &h);
      EXPECT_EQ(h.size(), 32u);
      for (const auto& [d, id] : h) EXPECT_FALSE(dead[id]) << id;
    }
    EXPECT_GE(Recall(g, queries, 32, 64), 0.99) << seed;  // the dead still guide the walk
  }
  const size_t live = g.live();
  const std::vector<uint32_t> renumbered = g.Compact();
  ASSERT_EQ(renumbered.size(), rows.n);
  EXPECT_EQ(g.size(), live);
  EXPECT_EQ(g.live(), live);
  for (uint64_t i = 0; i < rows.n; ++i) {
    if (dead[g.first() + i]) {
      EXPECT_EQ(renumbered[i], ~0u);
    } else {
      ASSERT_GE(renumbered[i], g.first());
      ASSERT_LT(renumbered[i], g.first() + g.size());
      EXPECT_EQ(std::memcmp(g.row(renumbered[i]), rows.row(i), rows.row_bytes()), 0);
    }
  }
  for (uint32_t v = 0; v < g.first(); ++v) EXPECT_EQ(g.alive(v), !dead[v]);  // (built: kept)
  EXPECT_GE(Recall(g, Rows(50'000, 100, 2), 32, 64), 0.99);
}

// Every built head retired: the added ones alone serve, reached through the dead built nodes.
TEST(GrowingGraph, JoinedNodesServeWhenEveryBuiltNodeIsDead) {
  const std::unique_ptr<HeadGraph> built = Built(Rows(0, 2'000));
  ASSERT_NE(built, nullptr);
  GrowingGraph g(built.get());
  const VectorSet rows = Rows(0, 3'000, /*seed=*/2);
  for (uint64_t i = 0; i < rows.n; ++i) g.Add(rows.row(i));
  for (uint32_t v = 0; v < g.first(); ++v) g.Kill(v);
  EXPECT_EQ(g.dead_built(), g.first());
  const VectorSet queries = Rows(50'000, 100, 1);  // (the built heads' distribution)
  HeadSearchScratch scratch;
  for (uint64_t q = 0; q < queries.n; ++q) {
    Hits h;
    g.Search(queries.row(q), 16, 64, &scratch, &h);
    ASSERT_EQ(h.size(), 16u);
    for (const auto& [d, id] : h) EXPECT_GE(id, g.first());
  }
  EXPECT_GE(Recall(g, queries, 16, 64), 0.99);
}

// What copies of a frozen graph share is never written in place: after the source and another
// copy each add, kill and compact on their own (linking back into the shared nodes and bridges),
// a copy taken before still has every link, bridge, row and mark it had.
TEST(GrowingGraph, ACopyKeepsItsLinksAndBridges) {
  const VectorSet rows = Rows(0, 2'400);
  const std::unique_ptr<HeadGraph> built = Built(Rows(0, 200, /*seed=*/3));
  ASSERT_NE(built, nullptr);
  struct Snapshot {
    std::vector<std::vector<uint32_t>> lists;  // per node: its bridges (built) or links (joined)
    std::vector<std::vector<uint8_t>> rows;    // per joined node
    std::vector<bool> alive;                   // per node
    bool operator==(const Snapshot&) const = default;
  };
  const auto snapshot = [&](const GrowingGraph& g) {
    Snapshot s;
    for (uint32_t v = 0; v < g.first() + g.size(); ++v) {
      const uint32_t* l = v < g.first() ? g.bridges(v) : g.joined_links(v);
      s.lists.emplace_back(l == nullptr ? std::vector<uint32_t>{}
                                        : std::vector<uint32_t>(l + 1, l + 1 + l[0]));
      if (v >= g.first()) s.rows.emplace_back(g.row(v), g.row(v) + rows.row_bytes());
      s.alive.push_back(g.alive(v));
    }
    return s;
  };
  GrowingGraph g(built.get());
  for (uint64_t r = 0; r < 800; ++r) g.Add(rows.row(r));
  for (uint32_t v = 0; v < 300; v += 3) g.Kill(g.first() + v);
  g.Kill(5);
  g.Freeze();
  const GrowingGraph kept = g;
  const Snapshot before = snapshot(kept);
  size_t bridged = 0;
  for (uint32_t v = 0; v < g.first(); ++v) bridged += g.bridges(v) != nullptr;
  EXPECT_GT(bridged, 100u);  // (the churn below rewires bridges too)
  GrowingGraph other = g;
  for (uint64_t r = 800; r < 1'600; ++r) g.Add(rows.row(r));
  for (uint64_t r = 1'600; r < 2'400; ++r) other.Add(rows.row(r));
  for (uint32_t v = 1; v < 800; v += 2) {
    g.Kill(g.first() + v);
    other.Kill(other.first() + v + 1);
  }
  for (uint32_t v = 10; v < 40; ++v) other.Kill(v);
  EXPECT_NE(snapshot(g), before);
  EXPECT_NE(snapshot(other), before);
  g.Compact();
  EXPECT_TRUE(snapshot(kept) == before);
}

// Heads added and retired as splits do, many times over: the overlay's answers are always its
// live added heads, with their rows, through every compaction of the graph.
TEST(HeadOverlay, AddedHeadsSurviveRetirementsAndCompactions) {
  const VectorSet rows = Rows(0, 3'000);
  constexpr uint32_t kBuilt = 100;
  const std::unique_ptr<HeadGraph> built = Built(Rows(0, kBuilt, /*seed=*/3));
  ASSERT_NE(built, nullptr);
  HeadOverlay o(rows.type, Metric::kL2, rows.dim);
  o.Clear(built.get());
  EXPECT_EQ(o.built_heads(), kBuilt);
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
    HeadSearchScratch scratch;
    o.Nearest(rows.row(row), 1, 64, &scratch, &h);
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].first, 0.0f);  // (itself, or a head with the same row)
    o.Nearest(rows.row(row), 8, 64, &scratch, &h);
    for (const auto& [d, hit] : h) {
      EXPECT_TRUE(hit < kBuilt ? !o.IsRetired(hit) : o.IsAdded(hit)) << hit;  // serving heads
    }
  }
  // A copy (what a maintenance step works on) answers the same, and changes on its own.
  o.Freeze();
  HeadOverlay copy = o;
  const uint32_t some = live.begin()->first;
  copy.Retire(some);
  EXPECT_EQ(copy.Row(some), nullptr);
  EXPECT_NE(o.Row(some), nullptr);
  o.Clear(built.get());
  EXPECT_EQ(o.added(), 0u);
  EXPECT_EQ(o.retired(), 0u);
}

// Copies share their chunks until they write (shared_chunks.h): what one copy, or the frozen
// source, changes afterwards - heads added, retired, links and bridges rewired, the graph
// compacted - is never seen by another. Each of three overlays churns on its own and must answer
// by its own model: its rows, its live heads, and its own heads as its nearest.
TEST(HeadOverlay, CopiesChangeOnTheirOwn) {
  const VectorSet rows = Rows(0, 6'000);
  constexpr uint32_t kBuilt = 200;
  const std::unique_ptr<HeadGraph> built = Built(Rows(0, kBuilt, /*seed=*/3));
  ASSERT_NE(built, nullptr);
  struct Model {
    std::map<uint32_t, uint64_t> live;  // added head -> its row in `rows`
    std::set<uint32_t> retired_built;
  };
  const auto churn = [&](HeadOverlay* o, Model* m, uint64_t* next_row, uint64_t seed, int steps) {
    std::mt19937_64 rng(seed);
    for (int step = 0; step < steps && *next_row < rows.n; ++step) {
      const uint64_t r = rng() % 8;
      if (r < 3 && !m->live.empty()) {
        auto it = m->live.begin();
        std::advance(it, static_cast<ptrdiff_t>(rng() % m->live.size()));
        o->Retire(it->first);
        m->live.erase(it);
      } else if (r == 3) {
        const auto h = static_cast<uint32_t>(rng() % kBuilt);
        o->Retire(h);
        m->retired_built.insert(h);
      } else {
        const uint32_t head = o->next_head();
        o->Add(head, rows.row(*next_row));
        m->live[head] = (*next_row)++;
      }
    }
  };
  const auto check = [&](const HeadOverlay& o, const Model& m) {
    ASSERT_EQ(o.added(), m.live.size());
    EXPECT_EQ(o.retired(), m.retired_built.size());
    for (uint32_t h = 0; h < kBuilt; ++h) EXPECT_EQ(o.IsRetired(h), m.retired_built.contains(h));
    size_t visited = 0;
    o.ForEachAdded([&](uint32_t head, const uint8_t* row) {
      ASSERT_TRUE(m.live.contains(head)) << head;
      EXPECT_EQ(std::memcmp(row, rows.row(m.live.at(head)), rows.row_bytes()), 0);
      ++visited;
    });
    EXPECT_EQ(visited, m.live.size());
    HeadSearchScratch scratch;
    Hits h;
    size_t found = 0;
    for (const auto& [head, row] : m.live) {
      ASSERT_NE(o.Row(head), nullptr) << head;
      EXPECT_EQ(std::memcmp(o.Row(head), rows.row(row), rows.row_bytes()), 0);
      o.Nearest(rows.row(row), 8, 64, &scratch, &h);
      found += !h.empty() && h[0].first == 0.0f;
      for (const auto& [d, hit] : h) {
        EXPECT_TRUE(hit < kBuilt ? !m.retired_built.contains(hit) : m.live.contains(hit)) << hit;
      }
    }
    EXPECT_GE(found, m.live.size() * 99 / 100);  // (a walk, not a pass over every head)
  };

  HeadOverlay o(rows.type, Metric::kL2, rows.dim);
  o.Clear(built.get());
  Model mo;
  uint64_t next_row = 0;
  churn(&o, &mo, &next_row, 1, 1'500);  // several chunks of every kind
  o.Freeze();
  HeadOverlay a = o;
  HeadOverlay b = o;
  Model ma = mo, mb = mo;
  const HeadOverlay untouched = o;
  const Model mu = mo;
  // Far more than kCompactAbove retirements in each: each compacts on its own too.
  churn(&a, &ma, &next_row, 2, 1'500);
  churn(&b, &mb, &next_row, 3, 1'500);
  churn(&o, &mo, &next_row, 4, 1'500);
  check(untouched, mu);
  check(a, ma);
  check(b, mb);
  check(o, mo);
  // A copy of a copy, after that copy froze: the same.
  a.Freeze();
  HeadOverlay aa = a;
  Model maa = ma;
  churn(&aa, &maa, &next_row, 5, 500);
  check(a, ma);
  check(aa, maa);
}

}  // namespace
}  // namespace strata::internal
