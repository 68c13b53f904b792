#include "index/internal/posting_split.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "index/clustering.h"

namespace strata::internal {
namespace {

float SquaredL2(const float* a, const float* b, uint32_t d) {
  float s = 0;
  for (uint32_t j = 0; j < d; ++j) {
    const float t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

}  // namespace

bool SplitInTwo(ElementType type, uint32_t dim, const uint8_t* rows, size_t n, uint64_t seed,
                size_t min_side, TwoWaySplit* out) {
  if (n < 2) return false;
  const size_t row_bytes = size_t{dim} * ElementSize(type);
  std::vector<float> f(n * dim);
  for (size_t i = 0; i < n; ++i) {
    FloatRows::Convert(type, rows + i * row_bytes, dim, /*normalise=*/false, &f[i * dim]);
  }
  const float* x = f.data();
  // Start: a seeded row, and the row farthest from it.
  std::vector<float> c(2 * size_t{dim});
  const size_t first = seed % n;
  size_t far = first;
  float far_d = 0;
  for (size_t i = 0; i < n; ++i) {
    const float d = SquaredL2(x + i * dim, x + first * dim, dim);
    if (d > far_d) {
      far_d = d;
      far = i;
    }
  }
  if (far_d == 0) {
    // Every row is the same: halves by position, so that the posting still shrinks.
    out->side.assign(n, 0);
    for (size_t i = 1; i < n; i += 2) out->side[i] = 1;
    out->head[0] = 0;
    out->head[1] = 1;
    return true;
  }
  std::copy(x + first * dim, x + (first + 1) * dim, c.begin());
  std::copy(x + far * dim, x + (far + 1) * dim, c.begin() + dim);
  out->side.assign(n, 0);
  std::vector<double> sum(2 * size_t{dim});
  for (int iter = 0; iter < 16; ++iter) {
    bool changed = false;
    size_t count[2] = {0, 0};
    std::fill(sum.begin(), sum.end(), 0.0);
    for (size_t i = 0; i < n; ++i) {
      const float* r = x + i * dim;
      const uint8_t s = SquaredL2(r, &c[dim], dim) < SquaredL2(r, &c[0], dim) ? 1 : 0;
      changed |= s != out->side[i];
      out->side[i] = s;
      ++count[s];
      for (uint32_t j = 0; j < dim; ++j) sum[s * dim + j] += r[j];
    }
    if (count[0] == 0 || count[1] == 0) return false;  // cannot happen from distinct starts
    for (int s = 0; s < 2; ++s) {
      for (uint32_t j = 0; j < dim; ++j) {
        c[s * dim + j] = static_cast<float>(sum[s * dim + j] / static_cast<double>(count[s]));
      }
    }
    if (!changed && iter > 0) break;
  }
  // Too uneven: the rows of the big half nearest the boundary cross over until the small one has
  // min_side, and the centroids follow.
  min_side = std::min(min_side, n / 2);
  size_t count[2] = {0, 0};
  for (uint8_t s : out->side) ++count[s];
  const int small = count[0] < count[1] ? 0 : 1;
  if (count[small] < min_side) {
    std::vector<std::pair<float, size_t>> margin;  // how much nearer the big half's centroid
    for (size_t i = 0; i < n; ++i) {
      if (out->side[i] == small) continue;
      const float* r = x + i * dim;
      margin.emplace_back(
          SquaredL2(r, &c[small * dim], dim) - SquaredL2(r, &c[(1 - small) * dim], dim), i);
    }
    std::sort(margin.begin(), margin.end());
    for (size_t j = 0; j < min_side - count[small]; ++j) {
      out->side[margin[j].second] = static_cast<uint8_t>(small);
    }
    for (int s = 0; s < 2; ++s) {
      std::fill(sum.begin() + s * dim, sum.begin() + (s + 1) * dim, 0.0);
      size_t k = 0;
      for (size_t i = 0; i < n; ++i) {
        if (out->side[i] != s) continue;
        ++k;
        for (uint32_t j = 0; j < dim; ++j) sum[s * dim + j] += x[i * dim + j];
      }
      for (uint32_t j = 0; j < dim; ++j) {
        c[s * dim + j] = static_cast<float>(sum[s * dim + j] / static_cast<double>(k));
      }
    }
  }
  // Each half's head: its member nearest its centroid.
  for (int s = 0; s < 2; ++s) {
    float best = std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < n; ++i) {
      if (out->side[i] != s) continue;
      const float d = SquaredL2(x + i * dim, &c[s * dim], dim);
      if (d < best) {
        best = d;
        out->head[s] = i;
      }
    }
  }
  return true;
}

}  // namespace strata::internal
