#include "index/brute_force.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "index/kernels/distance.h"
#include "index/vector_rules.h"

namespace strata {
namespace {

VectorSet Normalised(const VectorSet& s) {
  VectorSet out = s;
  auto* f = reinterpret_cast<float*>(out.data.data());
  for (uint64_t i = 0; i < s.n; ++i) {
    NormalizeInPlace(f + i * s.dim, s.dim);
  }
  return out;
}

struct Cand {
  float dist;
  int32_t id;
  bool operator<(const Cand& o) const { return dist < o.dist || (dist == o.dist && id < o.id); }
};

}  // namespace

absl::StatusOr<GroundTruth> ExactKnn(const VectorSet& base_in, const VectorSet& queries_in,
                                     Metric metric, uint32_t k, int threads,
                                     const std::function<void(uint64_t, uint64_t)>& progress) {
  if (base_in.type != queries_in.type || base_in.dim != queries_in.dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("base is ", ElementTypeName(base_in.type), " d=", base_in.dim,
                     ", queries are ", ElementTypeName(queries_in.type), " d=", queries_in.dim));
  }
  if (k == 0 || k > base_in.n) {
    return absl::InvalidArgumentError(absl::StrCat("k must be in [1, ", base_in.n, "], got ", k));
  }
  if (base_in.n > INT32_MAX) return absl::InvalidArgumentError("ground truth ids are int32");
  if (metric == Metric::kCosine && base_in.type != ElementType::kFloat32) {
    return absl::InvalidArgumentError("cosine needs float32 vectors");
  }
  VectorSet bn, qn;
  const VectorSet* base = &base_in;
  const VectorSet* queries = &queries_in;
  if (metric == Metric::kCosine) {
    bn = Normalised(base_in);
    qn = Normalised(queries_in);
    base = &bn;
    queries = &qn;
  }
  const auto batch = kernels::GetBatch(kernels::Best(), base->type, metric);
  const size_t row = base->row_bytes();
  GroundTruth gt;
  gt.n = static_cast<uint32_t>(queries->n);
  gt.k = k;
  gt.ids.resize(uint64_t{gt.n} * k);
  gt.distances.resize(uint64_t{gt.n} * k);

  constexpr uint64_t kQueryBlock = 32;
  constexpr uint64_t kBaseBlock = 8192;
  const uint64_t nblocks = (queries->n + kQueryBlock - 1) / kQueryBlock;
  std::atomic<uint64_t> done{0};
  if (threads <= 0) threads = omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    std::vector<std::vector<Cand>> heaps(kQueryBlock);
    std::vector<float> dist(kBaseBlock);
#pragma omp for schedule(dynamic, 1)
    for (uint64_t qb = 0; qb < nblocks; ++qb) {
      uint64_t q0 = qb * kQueryBlock, q1 = std::min(queries->n, q0 + kQueryBlock);
      for (auto& h : heaps) h.clear();
      for (uint64_t b0 = 0; b0 < base->n; b0 += kBaseBlock) {
        uint64_t bn_ = std::min(kBaseBlock, base->n - b0);
        for (uint64_t q = q0; q < q1; ++q) {
          batch(queries->row(q), base->row(b0), row, bn_, base->dim, dist.data());
          auto& h = heaps[q - q0];
          for (uint64_t i = 0; i < bn_; ++i) {
            Cand c{dist[i], static_cast<int32_t>(b0 + i)};
            if (h.size() < k) {
              h.push_back(c);
              std::push_heap(h.begin(), h.end());
            } else if (c < h.front()) {
              std::pop_heap(h.begin(), h.end());
              h.back() = c;
              std::push_heap(h.begin(), h.end());
            }
          }
        }
      }
      for (uint64_t q = q0; q < q1; ++q) {
        auto& h = heaps[q - q0];
        std::sort_heap(h.begin(), h.end());
        for (uint32_t j = 0; j < k; ++j) {
          gt.ids[q * k + j] = h[j].id;
          gt.distances[q * k + j] = h[j].dist;
        }
      }
      uint64_t now = done.fetch_add(q1 - q0) + (q1 - q0);
      if (progress && omp_get_thread_num() == 0) progress(now, queries->n);
    }
  }
  if (progress) progress(queries->n, queries->n);
  return gt;
}

}  // namespace strata
