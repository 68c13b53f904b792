// Synthetic vector sets that are as hard as real ones (DESIGN.md): naive Gaussian mixtures have far
// lower intrinsic dimensionality and higher contrast than real descriptors, which makes any index
// look good. The model here:
//   x = centre[c] + B[c] * (s_local .* z) + noise,   c ~ Zipf(clusters)
// where the centres lie in a global low-rank subspace with a power-law spectrum, each cluster has
// its own anisotropic local subspace (B[c], orthonormal, drawn from a pool), and the result is
// mapped like the real data: SIFT-like is shifted, rectified and quantised to uint8 (SIFT is
// non-negative, skewed, with many small values); deep-like is L2-normalised float32 (as Deep1B).
// The default SIFT-like parameters were calibrated on ../shared/data/sift-5k.u8bin (real SIFT) so
// that at n = 5,000 the local intrinsic dimensionality (MLE, k = 20) and the relative contrast
// match the real set's within 15% (strata-gen prints both for every set it writes).
//
// Row i depends only on (seed, i): generation is parallel and deterministic, and queries (rows
// past the base) come from the same distribution without being in the base.
#ifndef STRATA_TOOLS_SYNTHETIC_H_
#define STRATA_TOOLS_SYNTHETIC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "storage/vector_file.h"

namespace strata {

enum class SyntheticKind { kSiftLike, kDeepLike };

struct SyntheticOptions {
  SyntheticKind kind = SyntheticKind::kSiftLike;
  uint32_t dim = 0;           // 0 = 128 for SIFT-like, 96 for deep-like
  uint32_t clusters = 500;    // top-level modes
  double zipf = 1.0;          // cluster weight ~ 1 / rank^zipf
  uint32_t global_rank = 48;  // rank of the subspace the centres live in
  double global_decay = 0.9;  // centre spectrum s_i = i^-decay
  uint32_t local_rank = 16;   // rank of each cluster's local subspace
  double local_decay = 0.5;
  double local_scale = 0.5;
  double noise = 0.07;  // isotropic noise, relative to the top centre std
  uint64_t seed = 1;
};

// A generator fixed by its options: Generate(first, count) gives rows [first, first + count).
class SyntheticGenerator final {
 public:
  [[nodiscard]] static absl::StatusOr<SyntheticGenerator> Create(const SyntheticOptions& options);
  // Rows [first, first + count) as a VectorSet (uint8 for SIFT-like, float32 for deep-like).
  [[nodiscard]] VectorSet Generate(uint64_t first, uint64_t count, int threads = 0) const;
  [[nodiscard]] const SyntheticOptions& options() const { return options_; }

 private:
  SyntheticGenerator() = default;
  void Latent(uint64_t row, float* out) const;  // the pre-mapping real vector of one row

  SyntheticOptions options_;
  uint32_t d_ = 0;
  std::vector<float> centres_;     // clusters * d
  std::vector<double> cdf_;        // cluster CDF
  std::vector<float> bases_;       // pool * d * local_rank
  std::vector<uint32_t> base_of_;  // cluster -> pool entry
  std::vector<float> local_sd_;    // local_rank
  float noise_sd_ = 0;
  float scale_ = 1;  // SIFT-like: maps the 99.9th percentile to 150
  float shift_ = 0;
};

}  // namespace strata

#endif  // STRATA_TOOLS_SYNTHETIC_H_
