#include "gpu/attention_mass.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"

namespace strata::gpu {

void AddAttentionMass(const float* q, absl::Span<const int32_t> positions, int heads, int kv_heads,
                      int head_dim, const float* k, int64_t keys, double* mass) {
  DCHECK(kv_heads > 0 && heads % kv_heads == 0);
  const int group = heads / kv_heads;
  const int64_t kv_width = static_cast<int64_t>(kv_heads) * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> score;
  for (size_t r = 0; r < positions.size(); ++r) {
    const int64_t last = positions[r];
    DCHECK(last >= 0 && last < keys);
    score.resize(static_cast<size_t>(last + 1));
    for (int h = 0; h < heads; ++h) {
      const float* qh = q + (static_cast<int64_t>(r) * heads + h) * head_dim;
      const float* kh = k + static_cast<int64_t>(h / group) * head_dim;
      float top = -INFINITY;
      for (int64_t j = 0; j <= last; ++j) {
        const float* kj = kh + j * kv_width;
        float d = 0;
#pragma omp simd reduction(+ : d)
        for (int e = 0; e < head_dim; ++e) d += qh[e] * kj[e];
        score[static_cast<size_t>(j)] = d * scale;
        top = std::max(top, d * scale);
      }
      double sum = 0;
      for (int64_t j = 0; j <= last; ++j) {
        const float w = std::exp(score[static_cast<size_t>(j)] - top);
        score[static_cast<size_t>(j)] = w;
        sum += w;
      }
      for (int64_t j = 0; j <= last; ++j) mass[j] += score[static_cast<size_t>(j)] / sum;
    }
  }
}

}  // namespace strata::gpu
