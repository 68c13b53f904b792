#include "tools/data_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "index/brute_force.h"

namespace strata {
namespace {

double Median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

absl::StatusOr<Difficulty> MeasureDifficulty(const VectorSet& set, uint64_t sample,
                                             uint64_t queries, uint32_t k) {
  uint64_t m = std::min(set.n, sample);
  if (queries == 0 || m <= queries + k) {
    return absl::InvalidArgumentError(
        absl::StrCat("need more than ", queries + k, " rows to measure difficulty, have ", m));
  }
  VectorSet base, q;
  base.type = q.type = set.type;
  base.dim = q.dim = set.dim;
  base.n = m - queries;
  q.n = queries;
  base.data.assign(set.data.begin(),
                   set.data.begin() + static_cast<ptrdiff_t>(base.n * set.row_bytes()));
  q.data.assign(set.data.begin() + static_cast<ptrdiff_t>(base.n * set.row_bytes()),
                set.data.begin() + static_cast<ptrdiff_t>(m * set.row_bytes()));
  // All distances are needed for the contrast: ask for every neighbour.
  auto gt = ExactKnn(base, q, Metric::kL2, static_cast<uint32_t>(base.n));
  if (!gt.ok()) return gt.status();
  std::vector<double> lids, rcs;
  for (uint64_t i = 0; i < queries; ++i) {
    const float* d2 = &gt->distances[i * base.n];
    // Skip exact duplicates of the query (distance 0): they carry no scale information.
    uint64_t z = 0;
    while (z < base.n && d2[z] <= 0) ++z;
    if (base.n - z <= k) continue;
    double rk = std::sqrt(double{d2[z + k - 1]});
    double acc = 0;
    for (uint32_t j = 0; j + 1 < k; ++j) acc += std::log(std::sqrt(double{d2[z + j]}) / rk);
    if (acc < 0) lids.push_back(-(k - 1.0) / acc);
    double mean = 0;
    for (uint64_t j = 0; j < base.n; ++j) mean += std::sqrt(double{d2[j]});
    mean /= static_cast<double>(base.n);
    rcs.push_back(mean / std::sqrt(double{d2[z]}));
  }
  if (lids.empty() || rcs.empty()) {
    return absl::InvalidArgumentError("every query duplicates the base: no difficulty to measure");
  }
  Difficulty out;
  out.lid_median = Median(lids);
  out.rc_median = Median(rcs);
  out.base = base.n;
  out.queries = queries;
  return out;
}

}  // namespace strata
