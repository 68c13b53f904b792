#include "bench/harness.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"

namespace strata::bench {

double RecallAt(const GroundTruth& gt, uint64_t q, const std::vector<int64_t>& ids, uint32_t k) {
  const int32_t* t = &gt.ids[q * gt.k];
  const float* d = gt.distances.empty() ? nullptr : &gt.distances[q * gt.k];
  uint32_t hits = 0;
  for (size_t j = 0; j < ids.size() && j < k; ++j) {
    for (uint32_t r = 0; r < gt.k; ++r) {
      bool in_topk = r < k || (d != nullptr && d[r] <= d[k - 1]);
      if (!in_topk) break;
      if (t[r] == ids[j]) {
        ++hits;
        break;
      }
    }
  }
  return static_cast<double>(hits) / k;
}

absl::Status Measure(const SearchFn& search, uint64_t num_queries, const GroundTruth& gt,
                     uint32_t k, const std::vector<int>& threads, RunResult* out,
                     const std::function<absl::Status()>& before_pass) {
  using Clock = std::chrono::steady_clock;
  if (num_queries > gt.n) return absl::InvalidArgumentError("more queries than ground truth rows");
  if (gt.k < k)
    return absl::InvalidArgumentError(absl::StrCat("ground truth has k=", gt.k, " < ", k));
  std::vector<double> lat(num_queries);
  double r1 = 0, r10 = 0;
  uint64_t pages_total = 0;
  std::vector<int64_t> ids;
  if (before_pass) {
    if (absl::Status s = before_pass(); !s.ok()) return s;
  }
  auto t0 = Clock::now();
  for (uint64_t q = 0; q < num_queries; ++q) {
    uint64_t pages = 0;
    auto s0 = Clock::now();
    absl::Status s = search(q, &ids, &pages);
    lat[q] = std::chrono::duration<double, std::milli>(Clock::now() - s0).count();
    if (!s.ok()) return s;
    r1 += RecallAt(gt, q, ids, 1);
    r10 += RecallAt(gt, q, ids, k);
    pages_total += pages;
  }
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  out->recall1 = r1 / num_queries;
  out->recall10 = r10 / num_queries;
  out->pages_per_query = static_cast<double>(pages_total) / num_queries;
  out->bytes_per_query = out->pages_per_query * 4096;
  out->mean_ms = std::accumulate(lat.begin(), lat.end(), 0.0) / num_queries;
  std::sort(lat.begin(), lat.end());
  out->p50_ms = lat[num_queries / 2];
  out->p99_ms = lat[std::min<uint64_t>(num_queries - 1, num_queries * 99 / 100)];
  out->qps.clear();
  for (int t : threads) {
    if (t == 1) {
      out->qps.push_back(num_queries / wall);
      continue;
    }
    if (before_pass) {
      if (absl::Status s = before_pass(); !s.ok()) return s;
    }
    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int i = 0; i < t; ++i) {
      pool.emplace_back([&] {
        std::vector<int64_t> local;
        for (uint64_t q; (q = next.fetch_add(1)) < num_queries;) {
          uint64_t pages;
          if (!search(q, &local, &pages).ok()) failed = true;
        }
      });
    }
    for (auto& th : pool) th.join();
    if (failed) return absl::InternalError("a search failed during the multi-threaded pass");
    out->qps.push_back(num_queries / std::chrono::duration<double>(Clock::now() - start).count());
  }
  return absl::OkStatus();
}

namespace {
double StatusField(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(std::string(key).size())) / 1024.0;
  }
  return 0;
}
}  // namespace

double CurrentRssMb() { return StatusField("VmRSS:"); }
double PeakRssMb() { return StatusField("VmHWM:"); }

}  // namespace strata::bench
