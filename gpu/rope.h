// Rotary position embedding's angles, the one definition both backends use (the CPU keeps a table
// of them; CUDA computes a call's rows on the host and uploads them), so that the two rotate by
// bit-identical cos/sin values.
#ifndef STRATA_GPU_ROPE_H_
#define STRATA_GPU_ROPE_H_

#include <cstdint>
#include <vector>

namespace strata::gpu {

// theta^(-2i/d) for the d/2 pairs of a head (head_dim even).
[[nodiscard]] std::vector<double> RopeFrequencies(float theta, int head_dim);

// Rotary angles: cos and sin of position * inv_freq[i] at out[2i] and out[2i + 1] (out holds
// 2 * inv_freq.size() floats). Angles in double: they reach thousands of radians, where float
// rounding would move the rotation by ~1e-3.
void RopeRow(const std::vector<double>& inv_freq, int32_t position, float* out);

}  // namespace strata::gpu

#endif  // STRATA_GPU_ROPE_H_
