// The recall/latency/QPS harness shared by strata-bench's systems: Strata's SPANN index and the
// FAISS peers run through the same loop, so their figures are comparable in one run.
#ifndef STRATA_BENCH_HARNESS_H_
#define STRATA_BENCH_HARNESS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "storage/vector_file.h"

namespace strata::bench {

// One search: query index -> ids (nearest first) and the pages it read (0 for in-RAM systems).
// Must be callable from several threads at once.
using SearchFn =
    std::function<absl::Status(uint64_t query, std::vector<int64_t>* ids, uint64_t* pages)>;

struct RunResult {
  std::string system, params;
  double recall1 = 0, recall10 = 0;
  std::vector<double> qps;  // one per thread count asked
  double mean_ms = 0, p50_ms = 0, p99_ms = 0;
  double pages_per_query = 0, bytes_per_query = 0;
  double ram_mb = 0;
  double build_s = 0;
  std::string breakdown;  // Strata: mean navigation / I/O wait / distance time
};

// Runs every query once single-threaded (latency, recall, pages), then once per thread count in
// `threads` (QPS; the 1-thread QPS is the single-threaded pass's). Recall follows
// big-ann-benchmarks: results tied with the k-th true distance count as hits.
// `before_pass` (optional) runs before every pass, e.g. to evict a peer's pages from the cache.
absl::Status Measure(const SearchFn& search, uint64_t num_queries, const GroundTruth& gt,
                     uint32_t k, const std::vector<int>& threads, RunResult* out,
                     const std::function<absl::Status()>& before_pass = nullptr);

// Fraction of `ids` found among the true top-k (ties at the k-th distance included).
double RecallAt(const GroundTruth& gt, uint64_t q, const std::vector<int64_t>& ids, uint32_t k);

// Resident set size of this process now, and its peak so far, in MiB.
double CurrentRssMb();
double PeakRssMb();

}  // namespace strata::bench

#endif  // STRATA_BENCH_HARNESS_H_
