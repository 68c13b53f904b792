#include "gpu/internal/rope.h"

#include <cmath>

namespace strata::gpu {

std::vector<double> RopeFrequencies(float theta, int head_dim) {
  std::vector<double> f(static_cast<size_t>(head_dim / 2));
  for (int i = 0; i < head_dim / 2; ++i) {
    f[static_cast<size_t>(i)] = std::pow(static_cast<double>(theta), -2.0 * i / head_dim);
  }
  return f;
}

void RopeRow(const std::vector<double>& inv_freq, int32_t position, float* out) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double a = static_cast<double>(position) * inv_freq[i];
    out[2 * i] = static_cast<float>(std::cos(a));
    out[2 * i + 1] = static_cast<float>(std::sin(a));
  }
}

}  // namespace strata::gpu
