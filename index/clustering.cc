#include "index/clustering.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "index/kernels/distance.h"
#include "index/vector_rules.h"
#include "storage/vector_types.h"

namespace strata {

void FloatRows::Convert(ElementType type, const uint8_t* src, uint32_t d, bool normalise,
                        float* out) {
  ConvertToFloat(type, src, d, out);
  if (normalise) NormalizeInPlace(out, d);
}

const float* FloatRows::Row(uint64_t i, float* scratch) const {
  const uint8_t* src = data_ + i * d_ * ElementSize(type_);
  if (type_ == ElementType::kFloat32 && !normalise_) return reinterpret_cast<const float*>(src);
  Convert(type_, src, d_, normalise_, scratch);
  return scratch;
}

namespace {

struct Node {
  std::vector<VectorId> ids;
};

// Sum of squared distances is the k-means objective; the kernels give squared L2 directly.
inline float Dist(kernels::DistanceFn l2, const float* a, const float* b, uint32_t d) {
  return l2(a, b, d);
}

void KMeansPlusPlus(const float* data, uint32_t d, const std::vector<VectorId>& sample, uint32_t k,
                    std::mt19937_64& rng, kernels::DistanceFn l2, std::vector<float>* centroids) {
  centroids->assign(size_t{k} * d, 0.f);
  std::vector<float> best(sample.size(), std::numeric_limits<float>::max());
  size_t first = std::uniform_int_distribution<size_t>(0, sample.size() - 1)(rng);
  std::copy_n(data + size_t{sample[first]} * d, d, centroids->data());
  for (uint32_t c = 1; c < k; ++c) {
    const float* prev = centroids->data() + size_t{c - 1} * d;
    double total = 0;
    for (size_t i = 0; i < sample.size(); ++i) {
      best[i] = std::min(best[i], Dist(l2, data + size_t{sample[i]} * d, prev, d));
      total += best[i];
    }
    size_t pick = 0;
    if (total > 0) {
      double r = std::uniform_real_distribution<double>(0, total)(rng);
      for (; pick + 1 < sample.size(); ++pick) {
        r -= best[pick];
        if (r <= 0) break;
      }
    } else {
      pick = std::uniform_int_distribution<size_t>(0, sample.size() - 1)(rng);
    }
    std::copy_n(data + size_t{sample[pick]} * d, d, centroids->data() + size_t{c} * d);
  }
}

// Assigns each id to argmin_c dist(x, c) + lambda * count[c], where count[c] is the number of
// points already given to c in this pass: a filling cluster gets dearer, so sizes even out (a
// penalty on the previous pass's sizes instead oscillates). Points are visited in `order` (a
// shuffle, so no region fills first). Large passes split into `shards` contiguous parts of the
// order, each with its own counts scaled by the shard count: deterministic for a given shard count.
// Returns the mean plain distance.
double AssignPenalised(const FloatRows& rows, const VectorId* ids, size_t m,
                       const std::vector<uint32_t>& order, const std::vector<float>& centroids,
                       uint32_t k, double lambda, kernels::DistanceFn l2, int shards,
                       uint32_t* assign) {
  if (m < 50000) shards = 1;
  const uint32_t d = rows.dim();
  double total = 0;
#pragma omp parallel for schedule(static, 1) reduction(+ : total) num_threads(shards)
  for (int sh = 0; sh < shards; ++sh) {
    size_t lo = m * sh / shards, hi = m * (sh + 1) / shards;
    std::vector<double> count(k, 0.0);
    std::vector<float> scratch(d);
    const double step = lambda * shards;
    for (size_t o = lo; o < hi; ++o) {
      size_t i = order[o];
      const float* x = rows.Row(ids[i], scratch.data());
      float best = std::numeric_limits<float>::max();
      float best_plain = 0;
      uint32_t arg = 0;
      for (uint32_t c = 0; c < k; ++c) {
        float dist = Dist(l2, x, centroids.data() + size_t{c} * d, d);
        float cost = dist + static_cast<float>(step * count[c]);
        if (cost < best) {
          best = cost;
          best_plain = dist;
          arg = c;
        }
      }
      assign[i] = arg;
      count[arg] += 1;
      total += best_plain;
    }
  }
  return m ? total / static_cast<double>(m) : 0.0;
}

std::vector<uint32_t> Shuffled(size_t m, std::mt19937_64& rng) {
  std::vector<uint32_t> order(m);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

void UpdateCentroids(const float* data, uint32_t d, const VectorId* ids, size_t m,
                     const uint32_t* assign, uint32_t k, std::vector<float>* centroids,
                     std::vector<double>* counts, std::mt19937_64& rng) {
  std::vector<double> sums(size_t{k} * d, 0.0);
  counts->assign(k, 0.0);
  for (size_t i = 0; i < m; ++i) {
    const float* x = data + size_t{ids[i]} * d;
    double* s = sums.data() + size_t{assign[i]} * d;
    for (uint32_t j = 0; j < d; ++j) s[j] += x[j];
    (*counts)[assign[i]] += 1;
  }
  for (uint32_t c = 0; c < k; ++c) {
    float* out = centroids->data() + size_t{c} * d;
    if ((*counts)[c] == 0) {
      // Empty cluster: reseed at a random point so k stays k.
      size_t pick = std::uniform_int_distribution<size_t>(0, m - 1)(rng);
      std::copy_n(data + size_t{ids[pick]} * d, d, out);
      continue;
    }
    const double* s = sums.data() + size_t{c} * d;
    for (uint32_t j = 0; j < d; ++j) out[j] = static_cast<float>(s[j] / (*counts)[c]);
  }
}

}  // namespace

void BalancedKMeans(const FloatRows& rows, const std::vector<VectorId>& ids, uint32_t k,
                    const ClusteringOptions& options, uint64_t seed, std::vector<uint32_t>* assign,
                    std::vector<float>* centroids) {
  const kernels::DistanceFn l2 =
      kernels::GetDistance(kernels::Best(), ElementType::kFloat32, Metric::kL2);
  const uint32_t d = rows.dim();
  std::mt19937_64 rng(seed);
  size_t want = std::min<size_t>(ids.size(), size_t{k} * options.sample_per_cluster);
  std::vector<VectorId> sample = ids;
  if (want < sample.size()) {
    for (size_t i = 0; i < want; ++i) {
      std::swap(sample[i],
                sample[std::uniform_int_distribution<size_t>(i, sample.size() - 1)(rng)]);
    }
    sample.resize(want);
  }
  // The training sample (at most k * sample_per_cluster points) as dense floats: the seeding and
  // the Lloyd iterations read it many times. Its points are 0..m-1 of `dense`.
  std::vector<float> dense(sample.size() * d);
  for (size_t i = 0; i < sample.size(); ++i) {
    const float* x = rows.Row(sample[i], &dense[i * d]);
    if (x != &dense[i * d]) std::copy_n(x, d, &dense[i * d]);
  }
  const float* data = dense.data();
  std::vector<VectorId> local(sample.size());
  std::iota(local.begin(), local.end(), VectorId{0});
  KMeansPlusPlus(data, d, local, k, rng, l2, centroids);

  std::vector<uint32_t> sample_assign(sample.size());
  std::vector<double> counts(k, 0.0);
  const std::vector<uint32_t> sample_order = Shuffled(sample.size(), rng);
  const FloatRows dense_rows(data, d);
  double lambda = 0;
  for (uint32_t it = 0; it < options.iterations; ++it) {
    double mean = AssignPenalised(dense_rows, local.data(), local.size(), sample_order, *centroids,
                                  k, lambda, l2, 1, sample_assign.data());
    UpdateCentroids(data, d, local.data(), local.size(), sample_assign.data(), k, centroids,
                    &counts, rng);
    // Penalty: filling one cluster to the average size costs `balance` times the mean distance.
    lambda = options.balance * mean / (static_cast<double>(sample.size()) / k);
  }
  // Final pass over every point, with the penalty scaled to the whole set's sizes.
  double scale = static_cast<double>(ids.size()) / static_cast<double>(sample.size());
  assign->resize(ids.size());
  int shards = options.threads > 0 ? options.threads : omp_get_max_threads();
  AssignPenalised(rows, ids.data(), ids.size(), Shuffled(ids.size(), rng), *centroids, k,
                  lambda / scale, l2, shards, assign->data());
}

absl::StatusOr<ClusteringResult> BalancedHierarchicalClustering(const float* data, uint64_t n,
                                                                uint32_t d,
                                                                const ClusteringOptions& options) {
  return BalancedHierarchicalClustering(FloatRows(data, d), n, options);
}

absl::StatusOr<ClusteringResult> BalancedHierarchicalClustering(const FloatRows& rows, uint64_t n,
                                                                const ClusteringOptions& options) {
  const uint32_t d = rows.dim();
  if (n == 0 || d == 0) return absl::InvalidArgumentError("clustering needs n > 0 and d > 0");
  if (!(options.leaf_size >= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf_size must be >= 1, got ", options.leaf_size));
  }
  if (options.branching < 2) return absl::InvalidArgumentError("branching must be >= 2");
  if (n > std::numeric_limits<VectorId>::max()) {
    return absl::InvalidArgumentError("too many points for 32-bit vector ids");
  }
  const kernels::DistanceFn l2 =
      kernels::GetDistance(kernels::Best(), ElementType::kFloat32, Metric::kL2);
  int threads = options.threads > 0 ? options.threads : omp_get_max_threads();

  std::vector<Node> level(1);
  level[0].ids.resize(n);
  std::iota(level[0].ids.begin(), level[0].ids.end(), VectorId{0});

  ClusteringResult result;
  // Leaves found on each level, in node order, so the output is deterministic.
  std::vector<std::vector<VectorId>> leaves;
  uint64_t level_index = 0;
  const auto cancelled = [&] { return options.cancelled && options.cancelled(); };
  while (!level.empty()) {
    if (cancelled()) return absl::CancelledError("the clustering was cancelled");
    ++result.depth;
    std::vector<std::vector<Node>> children(level.size());
    std::vector<uint8_t> is_leaf(level.size(), 0);
#pragma omp parallel for schedule(dynamic, 1) \
    num_threads(threads) if (level.size() >= 2 * size_t(threads))
    for (size_t ni = 0; ni < level.size(); ++ni) {
      if (cancelled()) continue;  // (checked after the loop)
      const auto& ids = level[ni].ids;
      double ratio = static_cast<double>(ids.size()) / options.leaf_size;
      // Near the bottom, split into round(size / leaf) parts so leaves average leaf_size.
      uint32_t k = ratio > options.branching ? options.branching
                                             : static_cast<uint32_t>(std::llround(ratio));
      if (k <= 1 || ids.size() <= 1) {
        is_leaf[ni] = 1;
        continue;
      }
      std::vector<uint32_t> assign;
      std::vector<float> centroids;
      uint64_t seed =
          options.seed ^ (level_index * 0x9E3779B97F4A7C15ull) ^ (ni * 0xBF58476D1CE4E5B9ull);
      BalancedKMeans(rows, ids, k, options, seed, &assign, &centroids);
      std::vector<Node> kids(k);
      for (size_t i = 0; i < ids.size(); ++i) kids[assign[i]].ids.push_back(ids[i]);
      std::erase_if(kids, [](const Node& c) { return c.ids.empty(); });
      if (kids.size() <= 1) {
        is_leaf[ni] = 1;  // could not split (duplicates): keep as one leaf
        continue;
      }
      children[ni] = std::move(kids);
    }
    // (Nodes skipped above have neither children nor a leaf: the level is not whole.)
    if (cancelled()) return absl::CancelledError("the clustering was cancelled");
    std::vector<Node> next;
    for (size_t ni = 0; ni < level.size(); ++ni) {
      if (is_leaf[ni]) {
        leaves.push_back(std::move(level[ni].ids));
      } else {
        for (auto& c : children[ni]) next.push_back(std::move(c));
      }
    }
    level = std::move(next);
    ++level_index;
  }

  // One head per leaf: the member nearest the leaf's mean.
  result.heads.resize(leaves.size());
  result.leaf_sizes.resize(leaves.size());
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads)
  for (size_t li = 0; li < leaves.size(); ++li) {
    const auto& ids = leaves[li];
    std::vector<float> mean(d, 0.f), scratch(d);
    for (VectorId id : ids) {
      const float* x = rows.Row(id, scratch.data());
      for (uint32_t j = 0; j < d; ++j) mean[j] += x[j];
    }
    for (float& v : mean) v /= static_cast<float>(ids.size());
    VectorId best = ids[0];
    float best_d = std::numeric_limits<float>::max();
    for (VectorId id : ids) {
      float dist = Dist(l2, rows.Row(id, scratch.data()), mean.data(), d);
      if (dist < best_d) {
        best_d = dist;
        best = id;
      }
    }
    result.heads[li] = best;
    result.leaf_sizes[li] = static_cast<uint32_t>(ids.size());
  }
  return result;
}

}  // namespace strata
