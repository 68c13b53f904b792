// strata-update-bench: searches while the collection is updated. Builds an index on SIFT-like
// vectors, then, in one run:
//   - quiet: searcher threads alone;
//   - updating: the same searches while a writer replaces the collection a batch at a time
//     (deletes of old vectors and upserts of new ones from a drifted distribution, each call one
//     synced batch), for the same number of searches.
// Reports search latency (p50 / p99 / p99.9) of both phases and their ratios, the writer's
// throughput (vectors/s), and recall@10 at fixed search settings against brute force over the
// live vectors, before and after: whether a write stalls the searches. (Posting maintenance runs
// as configured by default, in the background; SPFresh's rounds experiment, beside the
// append-only path and rebuilds, is strata-lire-bench.)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "index/brute_force.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "storage/program_usage.h"
#include "tools/synthetic.h"

ABSL_FLAG(uint64_t, n, 200000, "base vectors (SIFT-like, uint8, 128-d)");
ABSL_FLAG(uint64_t, searches, 4000, "searches per phase, over all searcher threads");
ABSL_FLAG(int, searchers, 1, "searcher threads");
ABSL_FLAG(uint64_t, batch, 100, "vectors deleted and vectors upserted per write call");
ABSL_FLAG(uint64_t, max_replaced, 0,
          "stop the writer after replacing this many vectors (0 = n / 2)");
ABSL_FLAG(uint32_t, k, 10, "neighbours per search");
ABSL_FLAG(uint32_t, recall_queries, 200, "queries of the recall measurement");
ABSL_FLAG(std::string, dir, "", "scratch directory (default: a new one under /tmp)");

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

struct Latencies {
  std::vector<double> us;
  [[nodiscard]] double At(double q) const {
    if (us.empty()) return 0;
    std::vector<double> s = us;
    const size_t i = std::min(s.size() - 1, static_cast<size_t>(q * static_cast<double>(s.size())));
    std::nth_element(s.begin(), s.begin() + static_cast<ptrdiff_t>(i), s.end());
    return s[i];
  }
};

// Recall@k of `c` against brute force over `live` (ids = row numbers of `rows`).
double Recall(const Collection& c, const VectorSet& rows, const std::vector<uint64_t>& live,
              const VectorSet& queries, uint32_t k) {
  VectorSet base;
  base.type = rows.type;
  base.dim = rows.dim;
  base.n = live.size();
  base.data.resize(live.size() * rows.row_bytes());
  for (size_t i = 0; i < live.size(); ++i) {
    std::copy_n(rows.row(live[i]), rows.row_bytes(), base.data.data() + i * rows.row_bytes());
  }
  absl::StatusOr<GroundTruth> gt = ExactKnn(base, queries, Metric::kL2, k);
  if (!gt.ok()) return -1;
  uint64_t found = 0;
  for (uint64_t q = 0; q < queries.n; ++q) {
    std::vector<Hit> hits;
    if (!c.Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, k, {}, &hits)
             .ok()) {
      return -1;
    }
    for (const Hit& h : hits) {
      for (uint32_t j = 0; j < k; ++j)
        found += live[static_cast<size_t>(gt->ids[q * k + j])] == h.id;
    }
  }
  return static_cast<double>(found) / static_cast<double>(queries.n * k);
}

int Run() {
  const uint64_t n = absl::GetFlag(FLAGS_n), batch = absl::GetFlag(FLAGS_batch);
  const uint64_t searches = absl::GetFlag(FLAGS_searches);
  const int searchers = std::max(1, absl::GetFlag(FLAGS_searchers));
  const uint32_t k = absl::GetFlag(FLAGS_k);
  const uint64_t max_replaced =
      absl::GetFlag(FLAGS_max_replaced) != 0 ? absl::GetFlag(FLAGS_max_replaced) : n / 2;
  SyntheticOptions o;
  o.seed = 1;
  auto gen = SyntheticGenerator::Create(o);
  SyntheticOptions drift = o;
  drift.seed = 2;  // the updates come from another distribution
  auto gen2 = SyntheticGenerator::Create(drift);
  if (!gen.ok() || !gen2.ok()) return 1;
  // Rows [0, n): the base; [n, 2n): the updates; queries from both.
  VectorSet rows = gen->Generate(0, n);
  const VectorSet updates = gen2->Generate(0, n);
  rows.data.insert(rows.data.end(), updates.data.begin(), updates.data.end());
  rows.n = 2 * n;
  VectorSet queries = gen->Generate(10 * n, absl::GetFlag(FLAGS_recall_queries) / 2);
  const VectorSet q2 = gen2->Generate(10 * n, absl::GetFlag(FLAGS_recall_queries) / 2);
  queries.data.insert(queries.data.end(), q2.data.begin(), q2.data.end());
  queries.n += q2.n;

  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    char tmpl[] = "/tmp/strata-update-bench-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  auto cat = Catalog::Open(dir);
  if (!cat.ok()) {
    std::fprintf(stderr, "strata-update-bench: %s\n", cat.status().ToString().c_str());
    return 1;
  }
  CollectionConfig cfg;
  cfg.name = "bench";
  cfg.dim = rows.dim;
  cfg.type = rows.type;
  cfg.build_threshold = UINT64_MAX;
  std::shared_ptr<Collection> c = *(*cat)->Create(cfg);
  for (uint64_t first = 0; first < n; first += 5000) {
    std::vector<PointInput> points;
    for (uint64_t i = first; i < std::min(n, first + 5000); ++i) {
      points.push_back({i, {rows.row(i), rows.row_bytes()}, {}});
    }
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    if (!c->Upsert(points, &errors, &upserted).ok()) return 1;
  }
  if (absl::Status s = c->BuildIndex(); !s.ok()) {
    std::fprintf(stderr, "strata-update-bench: %s\n", s.ToString().c_str());
    return 1;
  }
  std::vector<uint64_t> live(n);
  for (uint64_t i = 0; i < n; ++i) live[i] = i;
  const double recall_before = Recall(*c, rows, live, queries, k);

  // One phase: `searches` searches over the searcher threads, their latencies.
  const auto search_phase = [&](std::atomic<bool>* done) {
    std::vector<Latencies> per(searchers);
    std::atomic<uint64_t> next = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < searchers; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(t + 1);
        while (next.fetch_add(1) < searches) {
          const uint64_t q = rng() % queries.n;
          std::vector<Hit> hits;
          const auto t0 = Clock::now();
          const absl::Status s = c->Search(
              VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, k, {}, &hits);
          per[t].us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
          if (!s.ok()) std::fprintf(stderr, "search: %s\n", s.ToString().c_str());
        }
      });
    }
    for (std::thread& t : threads) t.join();
    if (done != nullptr) done->store(true);
    Latencies all;
    for (const Latencies& l : per) all.us.insert(all.us.end(), l.us.begin(), l.us.end());
    return all;
  };
  const Latencies quiet = search_phase(nullptr);

  std::atomic<bool> done = false;
  uint64_t replaced = 0;
  double write_seconds = 0;
  std::thread writer([&] {
    const auto t0 = Clock::now();
    while (!done.load() && replaced + batch <= max_replaced) {
      std::vector<uint64_t> gone(batch);
      std::vector<PointInput> points;
      for (uint64_t i = 0; i < batch; ++i) {
        gone[i] = replaced + i;                 // the oldest base vectors
        const uint64_t row = n + replaced + i;  // their replacements
        points.push_back({row, {rows.row(row), rows.row_bytes()}, {}});
      }
      uint64_t deleted = 0, upserted = 0;
      std::vector<RowError> errors;
      if (!c->Delete(gone, &deleted).ok() || !c->Upsert(points, &errors, &upserted).ok()) break;
      replaced += batch;
    }
    write_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  });
  const Latencies updating = search_phase(&done);
  writer.join();
  live.clear();
  for (uint64_t i = replaced; i < n + replaced; ++i) live.push_back(i);
  const double recall_after = Recall(*c, rows, live, queries, k);

  std::printf("strata-update-bench: n=%lu, %d searcher thread(s), %lu searches a phase, k=%u\n", n,
              searchers, searches, k);
  std::printf("| phase | search p50 | p99 | p99.9 |\n|---|---|---|---|\n");
  std::printf("| quiet | %.0f us | %.0f us | %.0f us |\n", quiet.At(0.5), quiet.At(0.99),
              quiet.At(0.999));
  std::printf("| updating | %.0f us | %.0f us | %.0f us |\n", updating.At(0.5), updating.At(0.99),
              updating.At(0.999));
  std::printf("| ratio | %.2fx | %.2fx | %.2fx |\n", updating.At(0.5) / quiet.At(0.5),
              updating.At(0.99) / quiet.At(0.99), updating.At(0.999) / quiet.At(0.999));
  std::printf(
      "writer: %lu vectors replaced (%lu deleted + %lu upserted, batches of %lu, each call "
      "synced) in %.1f s: %.0f vectors/s written\n",
      replaced, replaced, replaced, batch, write_seconds,
      write_seconds > 0 ? 2.0 * static_cast<double>(replaced) / write_seconds : 0.0);
  std::printf("recall@10 (default search budget): %.4f before, %.4f after %.1f%% replaced\n",
              recall_before, recall_after, 100.0 * static_cast<double>(replaced) / n);
  // Closed before their files go: a metadata store removed under it fails its background work.
  c.reset();
  cat->reset();
  std::error_code ec;
  if (absl::GetFlag(FLAGS_dir).empty()) std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Searches while the collection is updated: latency quiet vs while a writer replaces "
      "vectors (synced batches), the writer's throughput, and recall before and after.\n\n"
      "  strata-update-bench [--n=200000 --searches=4000 --searchers=1 --batch=100]\n");
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
