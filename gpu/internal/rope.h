// Rotary position embedding's angles, the one definition both backends use (the CPU keeps a table
// of them; CUDA computes a call's rows on the host and uploads them), so that the two rotate by
// bit-identical cos/sin values.
#ifndef STRATA_GPU_INTERNAL_ROPE_H_
#define STRATA_GPU_INTERNAL_ROPE_H_

#include <cstdint>
#include <vector>

namespace strata::gpu {

// theta^(-2i/d) for the d/2 pairs of a head (head_dim even).
[[nodiscard]] std::vector<double> RopeFrequencies(float theta, int head_dim);

// Rotary angles: cos and sin of position * inv_freq[i] at out[2i] and out[2i + 1] (out holds
// 2 * inv_freq.size() floats). Angles in double: they reach thousands of radians, where float
// rounding would move the rotation by ~1e-3.
void RopeRow(const std::vector<double>& inv_freq, int32_t position, float* out);

// Both backends keep RopeRow's rows for positions [0, n) between calls (a prompt's layers rotate
// the same positions; a decoding step the next one), n at most kRopeTablePositions (8 MiB at
// head size 128); a call with a position past that computes its rows itself.
inline constexpr int32_t kRopeTablePositions = 1 << 14;
// The rows such a table grows to so that position `top` is in it: steps of 1,024 positions, at
// most kRopeTablePositions.
[[nodiscard]] inline int32_t RopeTableRows(int32_t top) {
  const int32_t want = (top / 1024 + 1) * 1024;
  return want < kRopeTablePositions ? want : kRopeTablePositions;
}

}  // namespace strata::gpu

#endif  // STRATA_GPU_INTERNAL_ROPE_H_
