#include "index/internal/head_graph.h"

#include <fcntl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "storage/crc32c.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::internal {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'H', 'G'};
// Version 2: the file lists isolated nodes (written only when there are some, so that a graph
// without them stays readable by a Strata from before them).
constexpr uint32_t kVersion = 2;
constexpr uint32_t kNoUpper = ~0u;
// The longest link list a walk meets: a bottom-level node's 2m links, m at most 256 (Build and
// Load refuse more); an extension's lists are shorter.
constexpr uint32_t kMaxWalkLinks = 512;
// The beam a node's own row is walked with to tell whether walks reach it: the default search's
// narrowest (SpannIndex's ef is max(64, 2 x postings) unless a caller asks for less).
constexpr uint32_t kIsolationBeam = 64;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t type;
  uint32_t metric;
  uint32_t dim;
  uint64_t n;
  uint32_t m;
  uint32_t entry;
  int32_t max_level;
  uint32_t isolated;  // ids stored after the upper levels (0 in files from before the list)
  uint64_t upper_size;
};
static_assert(sizeof(FileHeader) == 56);

using Pair = std::pair<float, uint32_t>;  // (distance, node)

// Keeps the candidates (sorted nearest first) that are not closer to an already kept node than to
// the base: the HNSW neighbour heuristic, which keeps links spread in all directions.
template <typename DistNodes>
void SelectNeighbors(std::vector<Pair>* cand, uint32_t max_keep, const DistNodes& dist_nodes) {
  std::vector<Pair> kept;
  kept.reserve(max_keep);
  for (const Pair& c : *cand) {
    if (kept.size() >= max_keep) break;
    bool good = true;
    for (const Pair& k : kept) {
      if (dist_nodes(c.second, k.second) < c.first) {
        good = false;
        break;
      }
    }
    if (good) kept.push_back(c);
  }
  *cand = std::move(kept);
}

}  // namespace

HeadGraph::HeadGraph(ElementType type, Metric metric, uint32_t d, uint64_t n, int m)
    : type_(type),
      metric_(metric),
      d_(d),
      n_(n),
      m_(static_cast<uint32_t>(m)),
      row_bytes_(size_t{d} * ElementSize(type)),
      dist_(kernels::GetDistance(kernels::Best(), type, metric)) {}

const uint32_t* HeadGraph::Links(uint32_t node, int level) const {
  if (level == 0) return &level0_[size_t{node} * (1 + 2 * m_)];
  return &upper_[upper_offset_[node] + size_t(level - 1) * (1 + m_)];
}

uint32_t* HeadGraph::MutableLinks(uint32_t node, int level) {
  return const_cast<uint32_t*>(Links(node, level));
}

uint64_t HeadGraph::MemoryBytes() const {
  return vectors_.size() + levels_.size() + level0_.size() * 4 + upper_offset_.size() * 4 +
         upper_.size() * 4 + isolated_.size() * 4;
}

// A (distance, node) pair as one integer whose order is the pair's: the distance's bits mapped
// to an unsigned key that orders as the float does (negative ones too: inner products), above the
// node.
static uint64_t PackHit(float d, uint32_t node) {
  uint32_t u;
  std::memcpy(&u, &d, sizeof u);
  u = (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
  return (uint64_t{u} << 32) | node;
}
static uint32_t HitKey(uint64_t hit) { return static_cast<uint32_t>(hit >> 32); }
static uint32_t HitNode(uint64_t hit) { return static_cast<uint32_t>(hit); }
static float HitDistance(uint64_t hit) {
  uint32_t u = HitKey(hit);
  u = (u & 0x80000000u) != 0 ? (u & 0x7fffffffu) : ~u;
  float d;
  std::memcpy(&d, &u, sizeof d);
  return d;
}

// Beam search on one level. `locks` (build only) guards link lists being rewritten concurrently.
template <bool kLocked, typename LinksFn>
static void SearchLevel(const HeadGraph& g, const void* q, uint32_t entry, float entry_dist,
                        int level, uint32_t ef, HeadSearchScratch* s,
                        std::vector<std::mutex>* locks, const LinksFn& links, uint32_t capacity) {
  if (s->visited.size() < g.size()) s->visited.assign(g.size(), 0);
  if (++s->stamp == 0) {
    std::fill(s->visited.begin(), s->visited.end(), 0);
    s->stamp = 1;
  }
  auto& cand = s->candidates;  // min-heap by distance (via greater)
  auto& res = s->results;      // max-heap by distance
  cand.clear();
  res.clear();
  cand.push_back({entry_dist, entry});
  res.push_back({entry_dist, entry});
  s->visited[entry] = s->stamp;
  if constexpr (kLocked) s->link_copy.resize(capacity + 1);
  while (!cand.empty()) {
    std::pop_heap(cand.begin(), cand.end(), std::greater<>());
    Pair c = cand.back();
    cand.pop_back();
    if (res.size() >= ef && c.first > res.front().first) break;
    const uint32_t* l;
    if constexpr (kLocked) {
      std::lock_guard<std::mutex> lock((*locks)[c.second]);
      const uint32_t* src = links(c.second, level);
      std::copy_n(src, src[0] + 1, s->link_copy.data());
      l = s->link_copy.data();
    } else {
      l = links(c.second, level);
    }
    // Prefetch the unvisited neighbours' vectors, every cache line: the graph walk is bound by
    // cache misses.
    for (uint32_t i = 1; i <= l[0]; ++i) {
      if (s->visited[l[i]] == s->stamp) continue;
      const auto* r = reinterpret_cast<const char*>(g.vector(l[i]));
      for (size_t at = 0; at < g.row_bytes(); at += 64) __builtin_prefetch(r + at);
    }
    for (uint32_t i = 1; i <= l[0]; ++i) {
      uint32_t nb = l[i];
      if (s->visited[nb] == s->stamp) continue;
      s->visited[nb] = s->stamp;
      float dist = g.Distance(q, nb);
      if (res.size() < ef || dist < res.front().first) {
        cand.push_back({dist, nb});
        std::push_heap(cand.begin(), cand.end(), std::greater<>());
        res.push_back({dist, nb});
        std::push_heap(res.begin(), res.end());
        if (res.size() > ef) {
          std::pop_heap(res.begin(), res.end());
          res.pop_back();
        }
      }
    }
  }
  std::sort(res.begin(), res.end());
}

// Greedy descent through levels [from, to) (from > to): move to any closer neighbour until none is.
// `read_links(node, level)` returns the node's [count, ids...] (a locked copy during the build).
template <typename ReadLinks>
static void GreedyDescend(const HeadGraph& g, const void* q, int from, int to, uint32_t* cur,
                          float* cur_d, const ReadLinks& read_links) {
  for (int level = from; level > to; --level) {
    for (bool changed = true; changed;) {
      changed = false;
      const uint32_t* l = read_links(*cur, level);
      for (uint32_t i = 1; i <= l[0]; ++i) {
        float dist = g.Distance(q, l[i]);
        if (dist < *cur_d) {
          *cur_d = dist;
          *cur = l[i];
          changed = true;
        }
      }
    }
  }
}

void HeadGraph::Search(const void* query, uint32_t k, uint32_t ef, HeadSearchScratch* scratch,
                       std::vector<Pair>* out) const {
  // (The walk with nothing joined: one home for the bottom level's beam search.)
  Walk(query, std::max(ef, k), nullptr, scratch, out);
  if (out->size() > k) out->resize(k);
}

void HeadGraph::Walk(const void* query, uint32_t ef, const GraphExtension* joined,
                     HeadSearchScratch* s, std::vector<Pair>* out) const {
  out->clear();
  if (n_ == 0 || ef == 0) return;
  const size_t total = n_ + (joined != nullptr ? joined->joined() : 0);
  const auto row = [&](uint32_t node) {
    return node < n_ ? vector(node) : joined->joined_row(node);
  };
  const auto serving = [&](uint32_t node) { return joined == nullptr || joined->serving(node); };
  if (ef >= total) {  // every node wanted: measure them all (a walk would, at more cost)
    for (uint32_t node = 0; node < total; ++node) {
      if (serving(node)) out->emplace_back(dist_(query, row(node), d_), node);
    }
    std::sort(out->begin(), out->end());
    return;
  }
  uint32_t cur = entry_;
  float cur_d = Distance(query, cur);
  GreedyDescend(*this, query, max_level_, 0, &cur, &cur_d,
                [this](uint32_t node, int level) { return Links(node, level); });
  // The bottom level's beam search, as SearchLevel's, over built and joined nodes; a dead node
  // enters the candidates (it guides) but not the results.
  if (s->visited.size() < total) s->visited.resize(total, 0);
  if (++s->stamp == 0) {
    std::fill(s->visited.begin(), s->visited.end(), 0);
    s->stamp = 1;
  }
  // The beam's heaps hold packed hits: one integer comparison each, where a pair's costs a
  // float comparison and a branch on the node (the heaps were most of a walk's time).
  auto& cand = s->walk_candidates;  // min-heap (via greater)
  auto& res = s->walk_results;      // max-heap
  cand.clear();
  res.clear();
  cand.push_back(PackHit(cur_d, cur));
  if (serving(cur)) res.push_back(PackHit(cur_d, cur));
  s->visited[cur] = s->stamp;
  // A measured node joins the candidates, and the results if it serves (the farthest of ef + 1
  // leaving).
  const auto offer = [&](uint64_t hit, uint32_t node) {
    cand.push_back(hit);
    std::push_heap(cand.begin(), cand.end(), std::greater<>());
    if (!serving(node)) return;
    res.push_back(hit);
    std::push_heap(res.begin(), res.end());
    if (res.size() > ef) {
      std::pop_heap(res.begin(), res.end());
      res.pop_back();
    }
  };
  // The nodes walks do not reach by links (isolated()) start beside it: measured, and expanded
  // like any candidate, so that their links and bridges (the heads a split of one's posting
  // adds) are walked too.
  for (const uint32_t node : isolated_) {
    if (s->visited[node] == s->stamp) continue;
    s->visited[node] = s->stamp;
    offer(PackHit(dist_(query, vector(node), d_), node), node);
  }
  const auto visit = [&](const uint32_t* l) {
    if (l == nullptr) return;
    // The unvisited neighbours' rows, every cache line of them, fetched before the first is
    // measured: the walk is bound by these misses.
    uint32_t fresh[kMaxWalkLinks];
    uint32_t n = 0;
    DCHECK(l[0] <= kMaxWalkLinks);
    for (uint32_t i = 1; i <= std::min(l[0], kMaxWalkLinks); ++i) {
      if (s->visited[l[i]] == s->stamp) continue;
      s->visited[l[i]] = s->stamp;
      fresh[n++] = l[i];
      const auto* r = reinterpret_cast<const char*>(row(l[i]));
      for (size_t at = 0; at < row_bytes_; at += 64) __builtin_prefetch(r + at);
    }
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t nb = fresh[i];
      const uint64_t hit = PackHit(dist_(query, row(nb), d_), nb);
      if (res.size() < ef || HitKey(hit) < HitKey(res.front())) offer(hit, nb);
    }
  };
  while (!cand.empty()) {
    std::pop_heap(cand.begin(), cand.end(), std::greater<>());
    const uint64_t c = cand.back();
    cand.pop_back();
    if (res.size() >= ef && HitKey(c) > HitKey(res.front())) break;
    if (!cand.empty() && HitNode(cand.front()) < n_) {
      __builtin_prefetch(Links(HitNode(cand.front()), 0));  // (likely the next one expanded)
    }
    const uint32_t node = HitNode(c);
    if (node < n_) {
      visit(Links(node, 0));
      if (joined != nullptr) visit(joined->bridges(node));
    } else {
      visit(joined->joined_links(node));
    }
  }
  std::sort(res.begin(), res.end());
  out->resize(res.size());
  for (size_t i = 0; i < res.size(); ++i) (*out)[i] = {HitDistance(res[i]), HitNode(res[i])};
}

void HeadGraph::AppendIsolated(const uint8_t* rows, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    vectors_.insert(vectors_.end(), rows + i * row_bytes_, rows + (i + 1) * row_bytes_);
    levels_.push_back(0);
    upper_offset_.push_back(kNoUpper);
    level0_.insert(level0_.end(), 1 + 2 * size_t{m_}, 0);  // (an empty list)
    isolated_.push_back(static_cast<uint32_t>(n_++));
  }
}

void HeadGraph::FindIsolated(int threads, const std::function<bool()>& cancelled,
                             const std::function<bool(float)>& far, size_t most) {
  // Per node: the distance to the nearest node found when it is alone, else -infinity.
  std::vector<float> alone(n_, -std::numeric_limits<float>::infinity());
#pragma omp parallel num_threads(threads)
  {
    HeadSearchScratch scratch;
    std::vector<Pair> hits;
#pragma omp for schedule(dynamic, 256)
    for (uint64_t i = 0; i < n_; ++i) {
      const auto node = static_cast<uint32_t>(i);
      const uint8_t* row = vector(node);
      // Near another node (as near as its links or its walk found one): an ordinary node, which a
      // walk misses now and then like any other. Measuring those in every walk would cost every
      // walk a distance per miss (~0.4% of 100K heads of 1M SIFT-like vectors, built on two
      // threads).
      const uint32_t* l = Links(node, 0);
      float nearest = std::numeric_limits<float>::infinity();
      for (uint32_t j = 1; j <= l[0]; ++j) nearest = std::min(nearest, Distance(row, l[j]));
      if (!far(nearest) || (cancelled && cancelled())) continue;  // (a walk each from here)
      Walk(row, kIsolationBeam, nullptr, &scratch, &hits);
      // Reached: the walk returns it, or a node as near its row as it is (a duplicate row).
      if (!hits.empty() && hits[0].first <= Distance(row, node)) continue;
      if (!hits.empty() && !far(hits[0].first)) continue;  // (the walk found a near one)
      alone[i] = hits.empty() ? nearest : std::min(nearest, hits[0].first);
    }
  }
  // The farthest `most` of them (every walk measures each).
  std::vector<std::pair<float, uint32_t>> found;
  for (uint32_t i = 0; i < n_; ++i) {
    if (alone[i] != -std::numeric_limits<float>::infinity()) found.emplace_back(alone[i], i);
  }
  if (found.size() > most) {
    std::nth_element(found.begin(), found.begin() + static_cast<ptrdiff_t>(most), found.end(),
                     std::greater<>());
    found.resize(most);
  }
  isolated_.clear();
  for (const auto& [d, node] : found) isolated_.push_back(node);
  std::sort(isolated_.begin(), isolated_.end());
}

absl::StatusOr<std::unique_ptr<HeadGraph>> HeadGraph::Build(ElementType type, Metric metric,
                                                            uint32_t d, const uint8_t* vectors,
                                                            uint64_t n,
                                                            const HeadGraphOptions& options) {
  if (n == 0 || n >= kNoUpper)
    return absl::InvalidArgumentError("head graph needs 1..2^32-2 nodes");
  if (options.m < 2 || options.m > 256) {
    return absl::InvalidArgumentError(absl::StrCat("hnsw m must be in [2, 256], got ", options.m));
  }
  if (metric == Metric::kCosine) metric = Metric::kInnerProduct;  // inputs are normalised
  auto g = std::unique_ptr<HeadGraph>(new HeadGraph(type, metric, d, n, options.m));
  const uint32_t m = g->m_;
  g->vectors_.assign(vectors, vectors + n * g->row_bytes_);
  // Levels drawn up front (deterministic), so upper storage can be laid out before insertion.
  std::mt19937_64 rng(options.seed);
  const double ml = 1.0 / std::log(double(m));
  g->levels_.resize(n);
  g->upper_offset_.assign(n, kNoUpper);
  uint64_t upper_size = 0;
  for (uint64_t i = 0; i < n; ++i) {
    double u = std::uniform_real_distribution<double>(1e-12, 1.0)(rng);
    int level = std::min(30, static_cast<int>(-std::log(u) * ml));
    g->levels_[i] = static_cast<uint8_t>(level);
    if (level > 0) {
      g->upper_offset_[i] = static_cast<uint32_t>(upper_size);
      upper_size += uint64_t(level) * (1 + m);
    }
  }
  if (upper_size >= kNoUpper) return absl::ResourceExhaustedError("head graph too large");
  g->upper_.assign(upper_size, 0);
  g->level0_.assign(n * (1 + 2 * m), 0);

  std::vector<std::mutex> locks(n);
  std::mutex entry_mu;
  g->entry_ = 0;
  g->max_level_ = g->levels_[0];
  const auto links = [&g](uint32_t node, int level) { return g->Links(node, level); };
  const auto node_dist = [&g](uint32_t a, uint32_t b) {
    return g->dist_(g->vector(a), g->vector(b), g->d_);
  };

  auto insert = [&](uint32_t q, HeadSearchScratch* s) {
    const void* qv = g->vector(q);
    const int level = g->levels_[q];
    uint32_t entry;
    int top;
    {
      std::lock_guard<std::mutex> lock(entry_mu);
      entry = g->entry_;
      top = g->max_level_;
    }
    float entry_d = node_dist(q, entry);
    std::vector<uint32_t> copy(2 * m + 1);
    auto locked_links = [&](uint32_t node, int lev) {
      std::lock_guard<std::mutex> lock(locks[node]);
      const uint32_t* l = g->Links(node, lev);
      std::copy_n(l, l[0] + 1, copy.data());
      return static_cast<const uint32_t*>(copy.data());
    };
    GreedyDescend(*g, qv, top, level, &entry, &entry_d, locked_links);
    for (int lev = std::min(level, top); lev >= 0; --lev) {
      SearchLevel<true>(*g, qv, entry, entry_d, lev, static_cast<uint32_t>(options.ef_construction),
                        s, &locks, links, g->Capacity(lev));
      std::vector<Pair> cand = s->results;  // sorted nearest first
      entry = cand[0].second;
      entry_d = cand[0].first;
      SelectNeighbors(&cand, m, node_dist);
      {
        std::lock_guard<std::mutex> lock(locks[q]);
        uint32_t* l = g->MutableLinks(q, lev);
        l[0] = static_cast<uint32_t>(cand.size());
        for (size_t i = 0; i < cand.size(); ++i) l[i + 1] = cand[i].second;
      }
      const uint32_t cap = g->Capacity(lev);
      for (const Pair& c : cand) {
        std::lock_guard<std::mutex> lock(locks[c.second]);
        uint32_t* l = g->MutableLinks(c.second, lev);
        if (l[0] < cap) {
          l[++l[0]] = q;
          continue;
        }
        // Full: re-select among the old links and q, keeping the list spread.
        std::vector<Pair> pool;
        pool.reserve(cap + 1);
        for (uint32_t i = 1; i <= l[0]; ++i) pool.push_back({node_dist(c.second, l[i]), l[i]});
        pool.push_back({c.first, q});
        std::sort(pool.begin(), pool.end());
        SelectNeighbors(&pool, cap, node_dist);
        l[0] = static_cast<uint32_t>(pool.size());
        for (size_t i = 0; i < pool.size(); ++i) l[i + 1] = pool[i].second;
      }
    }
    if (level > top) {
      std::lock_guard<std::mutex> lock(entry_mu);
      if (level > g->max_level_) {
        g->max_level_ = level;
        g->entry_ = q;
      }
    }
  };

  int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  std::atomic<uint64_t> done{1};
  // Nodes go in in a random order. In the input's order, rows written together (near each
  // other, as a clustering emits its heads or a user loads a category) were inserted at once by
  // different threads, each blind to the other's, and their region came out weakly linked: on
  // 2,002 SIFT-like rows built on two threads, up to 4.4% of the nodes were not found by a walk
  // for their own row (HeadGraph.OutliersAreFoundByTheirOwnRows, 3 of ~140 runs under load),
  // against none in 120 runs shuffled.
  std::vector<uint32_t> order(n > 0 ? n - 1 : 0);
  std::iota(order.begin(), order.end(), 1u);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(options.seed + 1));
#pragma omp parallel num_threads(threads)
  {
    HeadSearchScratch scratch;
#pragma omp for schedule(dynamic, 64)
    for (uint64_t i = 0; i < order.size(); ++i) {
      if (options.cancelled && options.cancelled()) continue;
      insert(order[i], &scratch);
      uint64_t now = done.fetch_add(1) + 1;
      if (options.progress && (now & 1023) == 0 && omp_get_thread_num() == 0) {
        options.progress(now, n);
      }
    }
  }
  if (options.cancelled && options.cancelled()) {
    return absl::CancelledError("the head graph's build was cancelled");
  }
  g->relinked_ = g->LinkUnreached();
  if (options.progress) options.progress(n, n);
  return g;
}

size_t HeadGraph::LinkUnreached() {
  // HNSW's neighbour selection can leave a node that no list keeps (each neighbour pruned it for
  // nearer ones; more often when threads insert near each other at once): no walk reaches it,
  // and no query reads its posting. 803 heads of 8,000 SIFT-like vectors built on two busy cores
  // left up to 24 so (SpannIndex.AKAsLargeAsASmallCollectionFindsEveryVector).
  const uint32_t cap = Capacity(0);
  std::vector<uint8_t> reached(n_, 0);
  MarkReached(entry_, &reached);
  size_t linked = 0;
  HeadSearchScratch scratch;
  std::vector<Pair> hits;
  for (uint32_t u = 0; u < n_; ++u) {
    if (reached[u]) continue;
    // From the nearest reached node with room in its list. Where every list is full: in place of
    // the nearest one's farthest link to a node u links to itself, which then stays reached
    // through u (a link dropped otherwise could cut off the node it led to).
    Walk(vector(u), kIsolationBeam, nullptr, &scratch, &hits);
    uint32_t from = ~0u;
    for (const auto& [d, v] : hits) {
      if (reached[v] && v != u && Links(v, 0)[0] < cap) {
        from = v;
        break;
      }
    }
    if (from != ~0u) {
      uint32_t* l = MutableLinks(from, 0);
      l[++l[0]] = u;
    } else {
      const uint32_t* mine = Links(u, 0);
      const auto linked_from_u = [&](uint32_t w) {
        return std::find(mine + 1, mine + 1 + mine[0], w) != mine + 1 + mine[0];
      };
      for (const auto& [d, v] : hits) {
        if (!reached[v] || v == u) continue;
        uint32_t* l = MutableLinks(v, 0);
        uint32_t drop = 0;
        float farthest = -1;
        for (uint32_t i = 1; i <= l[0]; ++i) {
          if (!linked_from_u(l[i])) continue;
          const float dl = Distance(vector(v), l[i]);
          if (dl > farthest) {
            farthest = dl;
            drop = i;
          }
        }
        if (drop == 0) continue;
        l[drop] = u;
        from = v;
        break;
      }
    }
    if (from == ~0u) continue;  // (no safe place near it: left, and counted by Unreached())
    ++linked;
    MarkReached(u, &reached);
  }
  return linked;
}

void HeadGraph::MarkReached(uint32_t start, std::vector<uint8_t>* reached) const {
  std::vector<uint8_t>& r = *reached;
  if (r[start]) return;
  r[start] = 1;
  std::vector<uint32_t> stack{start};
  while (!stack.empty()) {
    const uint32_t* l = Links(stack.back(), 0);
    stack.pop_back();
    for (uint32_t i = 1; i <= l[0]; ++i) {
      if (!r[l[i]]) {
        r[l[i]] = 1;
        stack.push_back(l[i]);
      }
    }
  }
}

size_t HeadGraph::Unreached() const {
  std::vector<uint8_t> reached(n_, 0);
  MarkReached(entry_, &reached);
  return static_cast<size_t>(std::count(reached.begin(), reached.end(), uint8_t{0}));
}

absl::Status HeadGraph::Save(Env& env, const std::string& path) const {
  FileHeader h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = isolated_.empty() ? 1 : kVersion;
  h.type = static_cast<uint32_t>(type_);
  h.metric = static_cast<uint32_t>(metric_);
  h.dim = d_;
  h.n = n_;
  h.m = m_;
  h.entry = entry_;
  h.max_level = max_level_;
  h.isolated = static_cast<uint32_t>(isolated_.size());
  h.upper_size = upper_.size();
  std::vector<char> buf;
  auto put = [&buf](const void* p, size_t bytes) {
    buf.insert(buf.end(), static_cast<const char*>(p), static_cast<const char*>(p) + bytes);
  };
  put(&h, sizeof h);
  put(vectors_.data(), vectors_.size());
  put(levels_.data(), levels_.size());
  put(level0_.data(), level0_.size() * 4);
  put(upper_offset_.data(), upper_offset_.size() * 4);
  put(upper_.data(), upper_.size() * 4);
  put(isolated_.data(), isolated_.size() * 4);
  uint32_t crc = crc32c::Value(buf.data(), buf.size());
  put(&crc, 4);
  return WriteFileAtomic(env, path, buf);
}

absl::StatusOr<std::unique_ptr<HeadGraph>> HeadGraph::Load(const std::string& path,
                                                           ElementType type, Metric metric,
                                                           uint32_t d) {
  ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  if (data.size() < sizeof(FileHeader) + 4 || std::memcmp(data.data(), kMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a Strata head graph"));
  }
  uint32_t stored;
  std::memcpy(&stored, data.data() + data.size() - 4, 4);
  if (stored != crc32c::Value(data.data(), data.size() - 4)) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch (corrupt head graph)"));
  }
  FileHeader h;
  std::memcpy(&h, data.data(), sizeof h);
  if (h.version < 1 || h.version > kVersion || (h.version == 1 && h.isolated != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": head graph version ", h.version, " is not supported"));
  }
  if (metric == Metric::kCosine) metric = Metric::kInnerProduct;
  if (h.type != static_cast<uint32_t>(type) || h.metric != static_cast<uint32_t>(metric) ||
      h.dim != d || h.m < 2 || h.m > 256 || h.n == 0 || h.entry >= h.n) {
    return absl::DataLossError(absl::StrCat(path, ": does not match the index manifest"));
  }
  auto g = std::unique_ptr<HeadGraph>(new HeadGraph(type, metric, d, h.n, static_cast<int>(h.m)));
  const uint64_t need = sizeof h + h.n * g->row_bytes_ + h.n + h.n * (1 + 2 * h.m) * 4 + h.n * 4 +
                        h.upper_size * 4 + uint64_t{h.isolated} * 4 + 4;
  if (data.size() != need) {
    return absl::DataLossError(absl::StrCat(path, ": size ", data.size(), ", expected ", need));
  }
  const char* p = data.data() + sizeof h;
  auto take = [&p](auto* vec, size_t count) {
    vec->resize(count);
    if (count == 0) return;  // memcpy to an empty vector's null data() is undefined
    std::memcpy(vec->data(), p, count * sizeof((*vec)[0]));
    p += count * sizeof((*vec)[0]);
  };
  take(&g->vectors_, h.n * g->row_bytes_);
  take(&g->levels_, h.n);
  take(&g->level0_, h.n * (1 + 2 * h.m));
  take(&g->upper_offset_, h.n);
  take(&g->upper_, h.upper_size);
  take(&g->isolated_, h.isolated);
  for (size_t i = 0; i < g->isolated_.size(); ++i) {
    if (g->isolated_[i] >= h.n || (i > 0 && g->isolated_[i] <= g->isolated_[i - 1])) {
      return absl::DataLossError(absl::StrCat(path, ": bad isolated node list"));
    }
  }
  g->entry_ = h.entry;
  g->max_level_ = h.max_level;
  // Structural checks, so a crafted file cannot send a search out of bounds.
  for (uint64_t i = 0; i < h.n; ++i) {
    int lev = g->levels_[i];
    if (lev > h.max_level || (lev > 0) != (g->upper_offset_[i] != kNoUpper) ||
        (lev > 0 && g->upper_offset_[i] + uint64_t(lev) * (1 + h.m) > h.upper_size)) {
      return absl::DataLossError(absl::StrCat(path, ": bad level table at node ", i));
    }
    for (int l = 0; l <= lev; ++l) {
      const uint32_t* links = g->Links(static_cast<uint32_t>(i), l);
      if (links[0] > g->Capacity(l)) return absl::DataLossError(absl::StrCat(path, ": bad links"));
      for (uint32_t j = 1; j <= links[0]; ++j) {
        if (links[j] >= h.n || g->levels_[links[j]] < l) {
          return absl::DataLossError(absl::StrCat(path, ": bad link at node ", i));
        }
      }
    }
  }
  if (g->levels_[h.entry] != h.max_level) {
    return absl::DataLossError(absl::StrCat(path, ": bad entry point"));
  }
  return g;
}

}  // namespace strata::internal
