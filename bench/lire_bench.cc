// strata-lire-bench: SPFresh's experiment (issue 15). Builds an index on n SIFT-like vectors, then
// runs rounds: each deletes `round_share` of n (the oldest) and upserts as many new vectors from a
// drifted distribution (a second generator seed), with a searcher thread running throughout (back
// to back by default, so that it takes one of the cores; or paced, --search_qps), and lets posting
// maintenance finish. After each round it reports, at fixed search settings (the
// build's default budget): recall@10 against brute force over the live vectors, quiet search
// latency p50/p99, the posting length distribution, RAM and disk, the round's update
// throughput, and a check of the partition: the share of sampled live vectors (base and drifted
// apart) in their nearest head's posting, found by a search that reads one posting (a build puts
// nearly every vector there). Two collections run the same rounds side by side: one with
// posting maintenance (LIRE) and one append-only (maintenance off: the path before it). Every
// `rebuild_every` rounds a third collection is built fresh from the live vectors, for the same
// measurements.
#include <pthread.h>
#include <sys/resource.h>

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
#include "absl/strings/numbers.h"
#include "index/brute_force.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "storage/program_usage.h"
#include "tools/synthetic.h"

ABSL_FLAG(uint64_t, n, 200000, "base vectors (SIFT-like, uint8, 128-d)");
ABSL_FLAG(double, round_share, 0.01, "share of n deleted and inserted per round");
ABSL_FLAG(int, rounds, 50, "rounds");
ABSL_FLAG(int, rebuild_every, 10, "build a fresh index every this many rounds (0 = never)");
ABSL_FLAG(uint64_t, batch, 100, "vectors per write call (each call one synced batch)");
ABSL_FLAG(uint32_t, latency_searches, 2000, "quiet searches timed after each round");
ABSL_FLAG(uint32_t, paired_searches, 5000,
          "searches of each index in the paired latency measurement at rebuild rounds");
ABSL_FLAG(uint32_t, recall_queries, 1000, "queries of the recall measurement (half drifted)");
ABSL_FLAG(double, search_qps, 0,
          "searches a second the searcher thread runs during the writes (0: back to back, as "
          "fast as it can: one core)");
ABSL_FLAG(bool, append_only, true, "run the append-only collection beside (doubles the time)");
ABSL_FLAG(bool, seed, true,
          "posting maintenance gives vectors written far from every head heads of their own "
          "(false: they wait for splits)");
ABSL_FLAG(uint32_t, posting_limit, 0,
          "live entries past which a posting splits (0 = the build's cap on a posting)");
ABSL_FLAG(std::string, dir, "", "scratch directory (default: a new one under /tmp)");
ABSL_FLAG(std::vector<std::string>, sweep_postings, {},
          "at each rebuild, recall of both indexes at these search budgets too (postings read "
          "per query; e.g. 16,32,48,64), with the entries and postings a search read");
ABSL_FLAG(std::vector<std::string>, sweep_ef, {},
          "at each rebuild, recall of both indexes at these head-walk widths too (ef_search; the "
          "fixed budget otherwise): whether a gap is the walk's or the postings'");
ABSL_FLAG(bool, default_budget, false,
          "search every index at its own default budget (max_postings 0: a rebuild's tuned one) "
          "in place of the first build's, fixed");
ABSL_FLAG(double, prune_ratio, strata::SearchParams{}.prune_ratio,
          "the searches' query-aware pruning ratio (SearchParams::prune_ratio; 0 = off)");

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(i), v.end());
  return v[i];
}

struct Measure {
  double recall = 0, recall_base = 0, recall_drifted = 0, p50_us = 0, p99_us = 0;
  // Shares of sampled live vectors that a search reading one posting finds (the vector is in its
  // nearest head's posting, as a build puts nearly every vector): base rows and drifted rows;
  // -1 when none was sampled. Necessary for a good partition, not sufficient: the append-only
  // path, whose heads never change, keeps it at 1.
  double own_base = -1, own_drifted = -1;
  uint32_t posting_p50 = 0, posting_p99 = 0, posting_max = 0;
  uint64_t heads = 0, memory = 0, disk = 0;
};

// The measurements of one collection over `live` (row numbers of `rows`, ids = row numbers).
Measure MeasureOf(const Collection& c, const VectorSet& rows, const std::vector<uint64_t>& live,
                  const VectorSet& queries, const GroundTruth& gt, const SearchParams& params) {
  Measure m;
  uint64_t found = 0, found_drifted = 0;  // (the second half of the queries is drifted)
  for (uint64_t q = 0; q < queries.n; ++q) {
    std::vector<Hit> hits;
    if (!c.Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10, params,
                  &hits)
             .ok()) {
      continue;
    }
    for (const Hit& h : hits) {
      for (uint32_t j = 0; j < 10; ++j) {
        const bool hit = live[static_cast<size_t>(gt.ids[q * 10 + j])] == h.id;
        found += hit;
        if (q >= queries.n / 2) found_drifted += hit;
      }
    }
  }
  m.recall = static_cast<double>(found) / static_cast<double>(queries.n * 10);
  const uint64_t half = std::max<uint64_t>(queries.n / 2, 1), rest = queries.n - queries.n / 2;
  m.recall_base = static_cast<double>(found - found_drifted) / static_cast<double>(half * 10);
  m.recall_drifted = static_cast<double>(found_drifted) / static_cast<double>(rest * 10);
  std::vector<double> us;
  std::mt19937_64 rng(7);
  for (uint32_t i = 0; i < absl::GetFlag(FLAGS_latency_searches); ++i) {
    const uint64_t q = rng() % queries.n;
    std::vector<Hit> hits;
    const auto t0 = Clock::now();
    (void)c.Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10, params,
                   &hits);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  m.p50_us = Quantile(us, 0.5);
  m.p99_us = Quantile(us, 0.99);
  std::vector<uint32_t> lengths = c.PostingLengths();
  std::sort(lengths.begin(), lengths.end());
  if (!lengths.empty()) {
    m.posting_p50 = lengths[lengths.size() / 2];
    m.posting_p99 = lengths[lengths.size() * 99 / 100];
    m.posting_max = lengths.back();
  }
  {
    SearchParams one = params;
    one.max_postings = 1;
    const uint64_t base_rows = absl::GetFlag(FLAGS_n);
    uint64_t found_in[2] = {0, 0}, sampled[2] = {0, 0};
    for (size_t i = 0; i < live.size(); i += 97) {
      const uint64_t r = live[i];
      const int drifted = r >= base_rows ? 1 : 0;
      std::vector<Hit> hits;
      if (!c.Search(VectorView{rows.type, {rows.row(r), rows.row_bytes()}}, 1, one, &hits).ok()) {
        continue;
      }
      ++sampled[drifted];
      found_in[drifted] += !hits.empty() && hits[0].distance == 0;
    }
    const auto share = [&](int k) {
      return sampled[k] == 0 ? -1.0
                             : static_cast<double>(found_in[k]) / static_cast<double>(sampled[k]);
    };
    m.own_base = share(0);
    m.own_drifted = share(1);
  }
  const CollectionStats st = c.Stats();
  m.heads = lengths.size();
  m.memory = st.memory_bytes;
  m.disk = st.disk_bytes;
  return m;
}

// Recall@10 of `c` over `queries` at `params`, with the mean entries and postings a search read.
struct Coverage {
  double recall = 0, entries = 0, postings = 0;
};
Coverage CoverageOf(const Collection& c, const std::vector<uint64_t>& live,
                    const VectorSet& queries, const GroundTruth& gt, const SearchParams& params) {
  Coverage out;
  uint64_t found = 0, entries = 0, postings = 0;
  for (uint64_t q = 0; q < queries.n; ++q) {
    std::vector<Hit> hits;
    SearchStats st;
    if (!c.Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10, params,
                  &hits, &st)
             .ok()) {
      continue;
    }
    entries += st.entries_scanned;
    postings += st.postings_read;
    for (const Hit& h : hits) {
      for (uint32_t j = 0; j < 10; ++j)
        found += live[static_cast<size_t>(gt.ids[q * 10 + j])] == h.id;
    }
  }
  const double nq = static_cast<double>(std::max<uint64_t>(queries.n, 1));
  out.recall = static_cast<double>(found) / (nq * 10);
  out.entries = static_cast<double>(entries) / nq;
  out.postings = static_cast<double>(postings) / nq;
  return out;
}

// Latency of `a` beside `b`, their searches in alternating blocks so that both meet the same
// moments of a shared, noisy machine: p50 and p99 of each, in us.
struct Paired {
  double a_p50 = 0, a_p99 = 0, b_p50 = 0, b_p99 = 0;
};
Paired PairedLatency(const Collection& a, const Collection& b, const VectorSet& queries,
                     const SearchParams& params, uint32_t searches) {
  constexpr uint32_t kBlock = 100;
  std::vector<double> us[2];
  std::mt19937_64 rng(11);
  for (uint32_t done = 0; done < searches; done += kBlock) {
    const uint64_t seed = rng();
    for (int which = 0; which < 2; ++which) {
      const Collection& c = which == 0 ? a : b;
      std::mt19937_64 block_rng(seed);  // (the same queries for both)
      for (uint32_t i = 0; i < kBlock; ++i) {
        const uint64_t q = block_rng() % queries.n;
        std::vector<Hit> hits;
        const auto t0 = Clock::now();
        (void)c.Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10, params,
                       &hits);
        us[which].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    }
  }
  return {Quantile(us[0], 0.5), Quantile(us[0], 0.99), Quantile(us[1], 0.5), Quantile(us[1], 0.99)};
}

// A share with three decimals, or "-" for none (-1).
std::string Share(double share) {
  if (share < 0) return "-";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.3f", share);
  return buf;
}

void Print(const char* what, int round, const Measure& m, double vectors_per_s) {
  std::printf(
      "| %d | %s | %.4f | %.3f / %.3f | %.0f | %.0f | %u / %u / %u | %lu | %.1f | %.1f | %s | "
      "%s / %s |\n",
      round, what, m.recall, m.recall_base, m.recall_drifted, m.p50_us, m.p99_us, m.posting_p50,
      m.posting_p99, m.posting_max, static_cast<unsigned long>(m.heads), m.memory / 1048576.0,
      m.disk / 1048576.0,
      vectors_per_s > 0 ? std::to_string(static_cast<int>(vectors_per_s)).c_str() : "",
      Share(m.own_base).c_str(), Share(m.own_drifted).c_str());
  std::fflush(stdout);
}

absl::Status Load(Collection* c, const VectorSet& rows, const std::vector<uint64_t>& ids) {
  for (size_t first = 0; first < ids.size(); first += 5000) {
    std::vector<PointInput> points;
    for (size_t i = first; i < std::min(ids.size(), first + 5000); ++i) {
      points.push_back({ids[i], {rows.row(ids[i]), rows.row_bytes()}, {}});
    }
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    if (absl::Status s = c->Upsert(points, &errors, &upserted); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// User and system CPU time of the whole process so far.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int Run() {
  // The sweeps' lists, checked before the hour of work whose rebuilds they are measured at.
  const std::pair<const char*, std::vector<std::string>> sweeps[] = {
      {"sweep_postings", absl::GetFlag(FLAGS_sweep_postings)},
      {"sweep_ef", absl::GetFlag(FLAGS_sweep_ef)}};
  for (const auto& [name, values] : sweeps) {
    for (const std::string& s : values) {
      uint32_t v = 0;
      if (!absl::SimpleAtoi(s, &v) || v == 0) {
        std::fprintf(stderr, "strata-lire-bench: --%s: '%s' is not a positive whole number\n", name,
                     s.c_str());
        return 2;
      }
    }
  }
  const uint64_t n = absl::GetFlag(FLAGS_n), batch = absl::GetFlag(FLAGS_batch);
  const uint64_t per_round = static_cast<uint64_t>(absl::GetFlag(FLAGS_round_share) * n);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  SyntheticOptions o;
  o.seed = 1;
  SyntheticOptions drifted = o;
  drifted.seed = 2;
  auto gen = SyntheticGenerator::Create(o);
  auto gen2 = SyntheticGenerator::Create(drifted);
  if (!gen.ok() || !gen2.ok() || per_round == 0 || per_round % batch != 0) {
    std::fprintf(stderr,
                 "strata-lire-bench: bad options (round_share * n must be a multiple of "
                 "--batch)\n");
    return 2;
  }
  // Rows [0, n): the base; [n, n + rounds * per_round): the inserts, in order.
  const uint64_t inserted_max = static_cast<uint64_t>(rounds) * per_round;
  VectorSet rows = gen->Generate(0, n);
  const VectorSet later = gen2->Generate(0, inserted_max);
  rows.data.insert(rows.data.end(), later.data.begin(), later.data.end());
  rows.n += later.n;
  VectorSet queries = gen->Generate(10 * n, absl::GetFlag(FLAGS_recall_queries) / 2);
  const VectorSet q2 = gen2->Generate(10 * n, absl::GetFlag(FLAGS_recall_queries) / 2);
  queries.data.insert(queries.data.end(), q2.data.begin(), q2.data.end());
  queries.n += q2.n;

  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    char tmpl[] = "/tmp/strata-lire-bench-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  CollectionOptions lire_options;  // background maintenance, the default
  lire_options.posting_limit = absl::GetFlag(FLAGS_posting_limit);
  lire_options.seed_far_vectors = absl::GetFlag(FLAGS_seed);
  CollectionOptions append_options;
  append_options.background_maintenance = false;
  auto lire_cat = Catalog::Open(dir + "/lire", lire_options);
  auto append_cat = Catalog::Open(dir + "/append", append_options);
  if (!lire_cat.ok() || !append_cat.ok()) return 1;
  CollectionConfig cfg;
  cfg.name = "bench";
  cfg.dim = rows.dim;
  cfg.type = rows.type;
  cfg.build_threshold = UINT64_MAX;
  std::vector<uint64_t> live(n);
  for (uint64_t i = 0; i < n; ++i) live[i] = i;
  const bool with_append = absl::GetFlag(FLAGS_append_only);
  std::shared_ptr<Collection> lire = *(*lire_cat)->Create(cfg);
  std::shared_ptr<Collection> append = with_append ? *(*append_cat)->Create(cfg) : nullptr;
  for (Collection* c : {lire.get(), append.get()}) {
    if (c == nullptr) continue;
    if (!Load(c, rows, live).ok() || !c->BuildIndex().ok()) return 1;
  }
  // Every measurement at the first build's default budget (a rebuild tunes its own), or with
  // --default_budget at each index's default (SearchParams::max_postings = 0).
  SearchParams fixed;
  fixed.max_postings = absl::GetFlag(FLAGS_default_budget) ? 0 : lire->default_max_postings();
  fixed.prune_ratio = static_cast<float>(absl::GetFlag(FLAGS_prune_ratio));
  const auto truth = [&]() {
    VectorSet base;
    base.type = rows.type;
    base.dim = rows.dim;
    base.n = live.size();
    base.data.resize(live.size() * rows.row_bytes());
    for (size_t i = 0; i < live.size(); ++i) {
      std::copy_n(rows.row(live[i]), rows.row_bytes(), base.data.data() + i * rows.row_bytes());
    }
    return *ExactKnn(base, queries, Metric::kL2, 10);
  };
  std::printf(
      "strata-lire-bench: n=%lu, %d rounds of %lu deletes + %lu drifted inserts, batches of %lu; "
      "searches read %u postings (0: each index's default); the searcher during the writes: %s\n"
      "| round | index | recall@10 | base / drifted queries | p50 us | p99 us | posting entries "
      "p50 / "
      "p99 / max | heads | RAM MiB | disk MiB | updates/s | in nearest posting, base / drifted "
      "|\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      n, rounds, per_round, per_round, batch, fixed.max_postings,
      absl::GetFlag(FLAGS_search_qps) > 0
          ? (std::to_string(static_cast<int>(absl::GetFlag(FLAGS_search_qps))) + " searches/s")
                .c_str()
          : "back to back");
  {
    const GroundTruth gt = truth();
    Print("built", 0, MeasureOf(*lire, rows, live, queries, gt, fixed), 0);
  }
  uint64_t deleted_upto = 0, inserted = 0;
  bool wants_build = false;
  CollectionStats last = lire->Stats();
  for (int round = 1; round <= rounds; ++round) {
    // The round's writes, on each collection, with a searcher running.
    double rate[2] = {0, 0};
    for (int which = 0; which < 2; ++which) {
      Collection* c = which == 0 ? lire.get() : append.get();
      if (c == nullptr) continue;
      std::atomic<bool> stop = false;
      std::thread searcher([&] {
        pthread_setname_np(pthread_self(), "searcher");  // (apart in perf and top -H)
        std::mt19937_64 rng(round);
        const double qps = absl::GetFlag(FLAGS_search_qps);
        auto next = Clock::now();
        while (!stop.load()) {
          if (qps > 0) {  // (paced: the next search at its time, none skipped to catch up)
            next = std::max(next + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(1.0 / qps)),
                            Clock::now());
            std::this_thread::sleep_until(next);
          }
          const uint64_t q = rng() % queries.n;
          std::vector<Hit> hits;
          (void)c->Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10,
                          fixed, &hits);
        }
      });
      const auto t0 = Clock::now();
      const double cpu0 = ProcessCpuSeconds();
      for (uint64_t done = 0; done < per_round; done += batch) {
        std::vector<uint64_t> gone;
        std::vector<PointInput> points;
        for (uint64_t i = 0; i < batch; ++i) {
          gone.push_back(deleted_upto + done + i);
          const uint64_t row = n + inserted + done + i;
          points.push_back({row, {rows.row(row), rows.row_bytes()}, {}});
        }
        uint64_t deleted = 0, upserted = 0;
        std::vector<RowError> errors;
        if (!c->Delete(gone, &deleted).ok() || !c->Upsert(points, &errors, &upserted).ok()) {
          return 1;
        }
      }
      // Posting maintenance the round called for, finished (the background thread runs beside).
      const auto t1 = Clock::now();
      if (which == 0 && !c->RunMaintenance().ok()) return 1;
      const auto t2 = Clock::now();
      rate[which] =
          2.0 * static_cast<double>(per_round) / std::chrono::duration<double>(t2 - t0).count();
      if (which == 0) {  // where the round's time went, on stderr beside the table
        const CollectionStats st = c->Stats();
        std::fprintf(stderr,
                     "round %d: writes %.2f s, then maintenance %.2f s (the process, searcher "
                     "included, kept %.2f cores busy); since "
                     "the last round %lu splits, %lu merges, %lu seeds, %lu reassigned\n",
                     round, std::chrono::duration<double>(t1 - t0).count(),
                     std::chrono::duration<double>(t2 - t1).count(),
                     (ProcessCpuSeconds() - cpu0) / std::chrono::duration<double>(t2 - t0).count(),
                     static_cast<unsigned long>(st.splits - last.splits),
                     static_cast<unsigned long>(st.merges - last.merges),
                     static_cast<unsigned long>(st.seeds - last.seeds),
                     static_cast<unsigned long>(st.reassigned - last.reassigned));
        last = st;
      }
      stop.store(true);
      searcher.join();
    }
    deleted_upto += per_round;
    inserted += per_round;
    live.clear();
    for (uint64_t i = deleted_upto; i < n; ++i) live.push_back(i);
    for (uint64_t i = 0; i < inserted; ++i) live.push_back(n + i);
    const GroundTruth gt = truth();
    Print("LIRE", round, MeasureOf(*lire, rows, live, queries, gt, fixed), rate[0]);
    if (!wants_build && lire->WantsBuild()) {  // (a server would schedule a rebuild from here)
      wants_build = true;
      std::printf(
          "|  | (LIRE asks for a rebuild from this round on: WantsBuild) | | | | | | | | |\n");
    }
    if (append != nullptr) {
      Print("append-only", round, MeasureOf(*append, rows, live, queries, gt, fixed), rate[1]);
    }
    const int every = absl::GetFlag(FLAGS_rebuild_every);
    if (every > 0 && round % every == 0) {
      auto fresh_cat = Catalog::Open(dir + "/fresh-" + std::to_string(round), append_options);
      if (!fresh_cat.ok()) return 1;
      std::shared_ptr<Collection> fresh = *(*fresh_cat)->Create(cfg);
      const auto t0 = Clock::now();
      if (!Load(fresh.get(), rows, live).ok() || !fresh->BuildIndex().ok()) return 1;
      const double build_s = std::chrono::duration<double>(Clock::now() - t0).count();
      Print("rebuilt", round, MeasureOf(*fresh, rows, live, queries, gt, fixed), 0);
      std::printf("|  | (rebuild took %.0f s) | | | | | | | | |\n", build_s);
      // Both indexes at each search budget and head-walk width asked for (the lists were
      // checked at start): recall, and what a search read.
      const auto sweep = [&](const char* knob, uint32_t SearchParams::*field,
                             const std::vector<std::string>& values) {
        for (const std::string& s : values) {
          SearchParams at = fixed;
          (void)absl::SimpleAtoi(s, &(at.*field));
          const Coverage a = CoverageOf(*lire, live, queries, gt, at);
          const Coverage b = CoverageOf(*fresh, live, queries, gt, at);
          std::printf(
              "|  | (%s %u: recall LIRE %.4f / rebuilt %.4f; entries scanned %.0f / %.0f; built "
              "postings read %.1f / %.1f) | | | | | | | | |\n",
              knob, at.*field, a.recall, b.recall, a.entries, b.entries, a.postings, b.postings);
        }
      };
      sweep("budget", &SearchParams::max_postings, absl::GetFlag(FLAGS_sweep_postings));
      sweep("ef_search", &SearchParams::ef_search, absl::GetFlag(FLAGS_sweep_ef));
      const Paired paired =
          PairedLatency(*lire, *fresh, queries, fixed, absl::GetFlag(FLAGS_paired_searches));
      std::printf(
          "|  | (paired, alternating blocks of 100 searches: LIRE p50 / p99 %.0f / %.0f us, "
          "rebuilt %.0f / %.0f us; p99 ratio %.2f) | | | | | | | | |\n",
          paired.a_p50, paired.a_p99, paired.b_p50, paired.b_p99, paired.a_p99 / paired.b_p99);
      fresh.reset();
      fresh_cat->reset();
      std::error_code ec;
      std::filesystem::remove_all(dir + "/fresh-" + std::to_string(round), ec);
    }
  }
  // Every acknowledged write, counted against what Count and Get return.
  for (Collection* c : {lire.get(), append.get()}) {
    if (c == nullptr) continue;
    std::vector<uint64_t> want(live.begin(), live.end()), gone;
    for (uint64_t i = 0; i < deleted_upto; ++i) gone.push_back(i);
    std::vector<PointOutput> found;
    std::vector<uint64_t> missing;
    if (!c->Get(want, true, false, &found, &missing).ok()) return 1;
    size_t exact = 0;
    for (const PointOutput& p : found) {
      exact += std::equal(p.vector.begin(), p.vector.end(), rows.row(p.id));
    }
    std::vector<PointOutput> back;
    std::vector<uint64_t> absent;
    if (!c->Get(gone, false, false, &back, &absent).ok()) return 1;
    std::printf(
        "%s: Count %lu (want %lu); Get: %zu of %zu live points, %zu byte-exact; %zu of %lu "
        "deleted points found\n",
        c == lire.get() ? "LIRE" : "append-only", static_cast<unsigned long>(c->Count()),
        static_cast<unsigned long>(live.size()), found.size(), want.size(), exact, back.size(),
        static_cast<unsigned long>(gone.size()));
    if (c->Count() != live.size() || found.size() != want.size() || exact != want.size() ||
        !back.empty()) {
      std::fprintf(stderr, "strata-lire-bench: the collection disagrees with the writes\n");
      return 1;
    }
  }
  const CollectionStats st = lire->Stats();
  std::printf(
      "LIRE: %lu splits, %lu merges, %lu rewrites, %lu heads seeded, %lu vectors reassigned; %lu "
      "heads added, %lu retired\n",
      static_cast<unsigned long>(st.splits), static_cast<unsigned long>(st.merges),
      static_cast<unsigned long>(st.rewrites), static_cast<unsigned long>(st.seeds),
      static_cast<unsigned long>(st.reassigned), static_cast<unsigned long>(st.added_heads),
      static_cast<unsigned long>(st.retired_heads));
  std::printf(
      "LIRE: %lu of %lu vectors appended or moved since the build (their rows: %.1f MiB of file), "
      "RAM %.1f MiB\n",
      static_cast<unsigned long>(st.appended_vectors), static_cast<unsigned long>(st.count),
      st.appended_file_bytes / 1048576.0, st.memory_bytes / 1048576.0);
  lire.reset();
  append.reset();
  lire_cat->reset();
  append_cat->reset();
  std::error_code ec;
  if (absl::GetFlag(FLAGS_dir).empty()) std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "SPFresh's experiment: rounds of deletes and drifted inserts, with and without posting "
      "maintenance, beside fresh rebuilds.\n\n"
      "  strata-lire-bench [--n=200000 --round_share=0.01 --rounds=50 --rebuild_every=10]\n");
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
