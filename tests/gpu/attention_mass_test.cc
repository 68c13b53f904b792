// AddAttentionMass against a plain double-precision softmax, and its invariants.
#include "gpu/attention_mass.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace strata::gpu {
namespace {

TEST(AttentionMass, MatchesASoftmaxInDoublesAndSumsToOnePerHeadAndRow) {
  const int heads = 6, kv_heads = 2, head_dim = 16;
  const int64_t keys = 50;
  const std::vector<int32_t> positions = {0, 17, 49};
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> q(positions.size() * heads * head_dim), k(keys * kv_heads * head_dim);
  for (float& v : q) v = 2 * normal(rng);
  for (float& v : k) v = normal(rng);
  std::vector<double> mass(keys, 0.5);  // adds to what is there
  AddAttentionMass(q.data(), positions, heads, kv_heads, head_dim, k.data(), keys, mass.data());
  std::vector<double> want(keys, 0.5);
  for (size_t r = 0; r < positions.size(); ++r) {
    for (int h = 0; h < heads; ++h) {
      const int g = h / (heads / kv_heads);
      std::vector<double> e(static_cast<size_t>(positions[r] + 1));
      double sum = 0;
      for (int64_t j = 0; j <= positions[r]; ++j) {
        double d = 0;
        for (int i = 0; i < head_dim; ++i) {
          d += static_cast<double>(q[(r * heads + h) * head_dim + i]) *
               k[(j * kv_heads + g) * head_dim + i];
        }
        e[static_cast<size_t>(j)] = std::exp(d / std::sqrt(static_cast<double>(head_dim)));
        sum += e[static_cast<size_t>(j)];
      }
      for (int64_t j = 0; j <= positions[r]; ++j) want[j] += e[static_cast<size_t>(j)] / sum;
    }
  }
  double total = 0;
  for (int64_t j = 0; j < keys; ++j) {
    EXPECT_NEAR(mass[j], want[j], 1e-5) << j;
    total += mass[j] - 0.5;
  }
  EXPECT_NEAR(total, static_cast<double>(positions.size() * heads), 1e-4);
  // Row 0 sits at position 0: its heads pay key 0 everything; nothing past position 49 exists.
  EXPECT_GE(mass[0] - 0.5, heads - 1e-5);
}

}  // namespace
}  // namespace strata::gpu
