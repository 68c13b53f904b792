#include "gpu/internal/head_attention.h"

#include <algorithm>

namespace strata::gpu::cpu {

void HeadAttention::Run(const float* q, int64_t len, int head_dim, int64_t stride, int64_t hidden,
                        float scale, float* out, int64_t out_stride) {
  constexpr int64_t kCols = kPanelCols;
  const int64_t lp = RoundUp(len, kCols), dp = RoundUp(head_dim, kCols);
  keys_.assign(static_cast<size_t>(lp * head_dim), 0.0f);  // panel j: [head_dim][32 keys]
  values_.assign(static_cast<size_t>(dp * len), 0.0f);     // panel c: [len][32 dims]
  scores_.resize(static_cast<size_t>(kGemmRowBlock * lp));
  for (int64_t j = 0; j < len; ++j) {
    const float* key = q + j * stride + hidden;
    float* panel = keys_.data() + (j / kCols) * head_dim * kCols + j % kCols;
    for (int d = 0; d < head_dim; ++d) panel[d * kCols] = key[d];
    const float* value = q + j * stride + 2 * hidden;
    for (int d = 0; d < head_dim; ++d) {
      values_[static_cast<size_t>((d / kCols) * len * kCols + j * kCols + d % kCols)] = value[d];
    }
  }
  for (int64_t q0 = 0; q0 < len; q0 += kGemmRowBlock) {
    const int64_t rows = std::min(kGemmRowBlock, len - q0);
    for (int64_t j0 = 0; j0 < len; j0 += kCols) {
      gemm_.f32(q + q0 * stride, stride, rows, keys_.data() + (j0 / kCols) * head_dim * kCols,
                head_dim, scores_.data() + j0, lp, static_cast<int>(std::min(kCols, len - j0)),
                /*accumulate=*/false);
    }
    for (int64_t r = 0; r < rows; ++r) {
      inv_sums_[static_cast<size_t>(r)] = 1.0f / rows_.exp_row(scores_.data() + r * lp, len, scale);
    }
    for (int64_t c0 = 0; c0 < head_dim; c0 += kCols) {
      gemm_.f32(scores_.data(), lp, rows, values_.data() + (c0 / kCols) * len * kCols, len,
                out + q0 * out_stride + c0, out_stride,
                static_cast<int>(std::min<int64_t>(kCols, head_dim - c0)), /*accumulate=*/false);
    }
    // The softmax's division, on head_dim outputs per query rather than len probabilities.
    for (int64_t r = 0; r < rows; ++r) {
      float* o = out + (q0 + r) * out_stride;
      const float inv = inv_sums_[static_cast<size_t>(r)];
      for (int d = 0; d < head_dim; ++d) o[d] *= inv;
    }
  }
}
}  // namespace strata::gpu::cpu
