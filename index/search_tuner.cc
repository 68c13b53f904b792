#include "index/search_tuner.h"

#include <omp.h>

#include <algorithm>
#include <queue>
#include <vector>

#include "absl/strings/str_cat.h"
#include "index/clustering.h"
#include "index/kernels/distance.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

constexpr uint32_t kK = 10;
// Budgets tried, smallest first.
constexpr uint32_t kLadder[] = {8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024};

struct Cand {
  float dist;
  uint64_t row;
  bool operator<(const Cand& o) const { return dist < o.dist || (dist == o.dist && row < o.row); }
};

// The exact kK nearest rows of each sample row among all rows but itself, as row numbers.
std::vector<std::vector<uint64_t>> ExactNeighbours(const VectorSet& set, Metric metric,
                                                   absl::Span<const uint64_t> sample, int threads) {
  const uint32_t d = set.dim;
  const bool cosine = metric == Metric::kCosine;
  // Distances as the index computes them: native kernels, or inner products of unit vectors.
  const kernels::DistanceFn dist =
      kernels::GetDistance(kernels::Best(), cosine ? ElementType::kFloat32 : set.type,
                           cosine ? Metric::kInnerProduct : metric);
  const FloatRows rows(set.data.data(), set.type, d, /*normalise=*/true);
  std::vector<std::vector<float>> qf(sample.size());
  if (cosine) {
    for (size_t s = 0; s < sample.size(); ++s) {
      qf[s].resize(d);
      FloatRows::Convert(set.type, set.row(sample[s]), d, true, qf[s].data());
    }
  }
  const int nt = std::max(1, threads);
  std::vector<std::vector<std::priority_queue<Cand>>> heaps(
      nt, std::vector<std::priority_queue<Cand>>(sample.size()));
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    std::vector<float> scratch(cosine ? d : 0);
#pragma omp for schedule(static)
    for (uint64_t r = 0; r < set.n; ++r) {
      const void* row = cosine ? static_cast<const void*>(rows.Row(r, scratch.data()))
                               : static_cast<const void*>(set.row(r));
      for (size_t s = 0; s < sample.size(); ++s) {
        if (sample[s] == r) continue;
        const void* q = cosine ? static_cast<const void*>(qf[s].data())
                               : static_cast<const void*>(set.row(sample[s]));
        const float dd = dist(q, row, d);
        auto& h = heaps[t][s];
        if (h.size() < kK) {
          h.push({dd, r});
        } else if (Cand{dd, r} < h.top()) {
          h.pop();
          h.push({dd, r});
        }
      }
    }
  }
  std::vector<std::vector<uint64_t>> out(sample.size());
  for (size_t s = 0; s < sample.size(); ++s) {
    std::vector<Cand> all;
    for (int t = 0; t < nt; ++t) {
      for (auto& h = heaps[t][s]; !h.empty(); h.pop()) all.push_back(h.top());
    }
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i < all.size() && i < kK; ++i) out[s].push_back(all[i].row);
  }
  return out;
}

}  // namespace

absl::StatusOr<SearchTuneResult> TuneSearch(const SpannIndex& index, const VectorSet& vectors,
                                            absl::Span<const VectorId> ids,
                                            const SearchTuneOptions& options) {
  if (vectors.n != index.size() || vectors.type != index.element_type() ||
      vectors.dim != index.dim() || (!ids.empty() && ids.size() != vectors.n)) {
    return absl::InvalidArgumentError("tuning: the vectors are not the index's");
  }
  SearchTuneResult result;
  if (vectors.n <= kK + 1) {  // too few to measure: read every posting
    result.max_postings = static_cast<uint32_t>(std::max<uint64_t>(1, index.num_heads()));
    result.recall = 1;
    result.reached = true;
    return result;
  }
  // An even stride through the rows: deterministic, and spread over the whole set.
  const uint64_t want = std::min<uint64_t>(options.sample, vectors.n);
  std::vector<uint64_t> sample(want);
  for (uint64_t s = 0; s < want; ++s) sample[s] = s * vectors.n / want;
  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const std::vector<std::vector<uint64_t>> truth =
      ExactNeighbours(vectors, index.metric(), sample, threads);
  auto id_of = [&](uint64_t row) -> VectorId {
    return ids.empty() ? static_cast<VectorId>(row) : ids[row];
  };

  result.sample = static_cast<uint32_t>(want);
  for (uint32_t budget : kLadder) {
    if (budget < options.min_postings && budget < index.num_heads()) continue;
    const uint32_t b = static_cast<uint32_t>(std::min<uint64_t>(budget, index.num_heads()));
    SearchParams params;
    params.max_postings = b;
    std::vector<uint64_t> hits_per_query(want, 0);
    absl::Status failed;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
    for (uint64_t s = 0; s < want; ++s) {
      std::vector<Neighbor> found;
      const VectorView q{vectors.type, {vectors.row(sample[s]), vectors.row_bytes()}};
      absl::Status st = index.Search(q, kK + 1, params, &found);
      if (!st.ok()) {
#pragma omp critical
        failed = st;
        continue;
      }
      const VectorId self = id_of(sample[s]);
      uint64_t hits = 0, seen = 0;
      for (const Neighbor& n : found) {
        if (n.id == self) continue;
        if (++seen > kK) break;
        for (uint64_t r : truth[s]) hits += id_of(r) == n.id;
      }
      hits_per_query[s] = hits;
    }
    RETURN_IF_ERROR(failed);
    uint64_t hits = 0, possible = 0;
    for (uint64_t s = 0; s < want; ++s) {
      hits += hits_per_query[s];
      possible += truth[s].size();
    }
    result.max_postings = b;
    result.recall = possible == 0 ? 1.0 : static_cast<double>(hits) / possible;
    if (result.recall >= options.target_recall) {
      result.reached = true;
      break;
    }
    if (b == index.num_heads()) break;  // every posting read already
  }
  return result;
}

}  // namespace strata
