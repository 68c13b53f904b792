#include "tools/synthetic.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

constexpr uint32_t kBasisPool = 64;

// SplitMix64: a small, fast, well-mixed generator; one stream per (seed, row, purpose).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return double(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double Normal() {
    double u1 = Uniform(), u2 = Uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }
};

uint64_t Mix(uint64_t a, uint64_t b) { return Rng(a * 0xD1B54A32D192ED03ull ^ b).Next(); }

// Random d x r matrix with orthonormal columns (modified Gram-Schmidt), column-major.
std::vector<float> RandomOrthonormal(uint32_t d, uint32_t r, Rng& rng) {
  std::vector<double> m(size_t{d} * r);
  for (auto& v : m) v = rng.Normal();
  for (uint32_t c = 0; c < r; ++c) {
    double* col = &m[size_t{c} * d];
    for (uint32_t p = 0; p < c; ++p) {
      const double* prev = &m[size_t{p} * d];
      double dot = 0;
      for (uint32_t i = 0; i < d; ++i) dot += col[i] * prev[i];
      for (uint32_t i = 0; i < d; ++i) col[i] -= dot * prev[i];
    }
    double norm = 0;
    for (uint32_t i = 0; i < d; ++i) norm += col[i] * col[i];
    norm = std::sqrt(norm);
    for (uint32_t i = 0; i < d; ++i) col[i] /= norm;
  }
  return std::vector<float>(m.begin(), m.end());
}

}  // namespace

absl::StatusOr<SyntheticGenerator> SyntheticGenerator::Create(const SyntheticOptions& o) {
  SyntheticGenerator g;
  g.options_ = o;
  g.d_ = o.dim ? o.dim : (o.kind == SyntheticKind::kSiftLike ? 128 : 96);
  const uint32_t d = g.d_;
  if (o.clusters == 0 || o.global_rank == 0 || o.global_rank > d || o.local_rank > d) {
    return absl::InvalidArgumentError(absl::StrCat("bad synthetic options: clusters=", o.clusters,
                                                   " global_rank=", o.global_rank,
                                                   " local_rank=", o.local_rank, " dim=", d));
  }
  Rng rng(Mix(o.seed, 0xC0FFEE));
  std::vector<float> ug = RandomOrthonormal(d, o.global_rank, rng);
  g.centres_.assign(size_t{o.clusters} * d, 0.f);
  for (uint32_t c = 0; c < o.clusters; ++c) {
    for (uint32_t r = 0; r < o.global_rank; ++r) {
      double coef = rng.Normal() * std::pow(r + 1.0, -o.global_decay);
      for (uint32_t i = 0; i < d; ++i)
        g.centres_[size_t{c} * d + i] += float(coef * ug[size_t{r} * d + i]);
    }
  }
  g.cdf_.resize(o.clusters);
  double total = 0;
  for (uint32_t c = 0; c < o.clusters; ++c) g.cdf_[c] = total += std::pow(c + 1.0, -o.zipf);
  for (double& v : g.cdf_) v /= total;
  for (uint32_t p = 0; p < kBasisPool; ++p) {
    std::vector<float> b = RandomOrthonormal(d, o.local_rank, rng);
    g.bases_.insert(g.bases_.end(), b.begin(), b.end());
  }
  g.base_of_.resize(o.clusters);
  for (auto& b : g.base_of_) b = static_cast<uint32_t>(rng.Next() % kBasisPool);
  for (uint32_t r = 0; r < o.local_rank; ++r) {
    g.local_sd_.push_back(float(std::pow(r + 1.0, -o.local_decay) * o.local_scale));
  }
  g.noise_sd_ = static_cast<float>(o.noise);  // the top centre std is 1 (s_1 = 1^-decay)

  if (o.kind == SyntheticKind::kSiftLike) {
    // Calibrate the uint8 mapping on a fixed sample of rows (independent of n).
    g.shift_ = 0.15f;
    constexpr uint64_t kSample = 4096;
    std::vector<float> vals;
    std::vector<float> row(d);
    for (uint64_t i = 0; i < kSample; ++i) {
      g.Latent(~i, row.data());  // rows far outside any real range: a private calibration stream
      for (float v : row) vals.push_back(std::max(v + g.shift_, 0.f));
    }
    size_t at = static_cast<size_t>(vals.size() * 0.999);
    std::nth_element(vals.begin(), vals.begin() + static_cast<ptrdiff_t>(at), vals.end());
    g.scale_ = vals[at] > 0 ? 150.f / vals[at] : 1.f;
  }
  return g;
}

void SyntheticGenerator::Latent(uint64_t row, float* out) const {
  const uint32_t d = d_;
  const SyntheticOptions& o = options_;
  Rng rng(Mix(o.seed, row));
  double u = rng.Uniform();
  auto c = static_cast<uint32_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  if (c >= o.clusters) c = o.clusters - 1;
  const float* centre = &centres_[size_t{c} * d];
  std::copy_n(centre, d, out);
  const float* basis = &bases_[size_t{base_of_[c]} * d * o.local_rank];
  for (uint32_t r = 0; r < o.local_rank; ++r) {
    auto z = static_cast<float>(rng.Normal()) * local_sd_[r];
    const float* col = basis + size_t{r} * d;
    for (uint32_t i = 0; i < d; ++i) out[i] += z * col[i];
  }
  for (uint32_t i = 0; i < d; ++i) out[i] += noise_sd_ * static_cast<float>(rng.Normal());
}

VectorSet SyntheticGenerator::Generate(uint64_t first, uint64_t count, int threads) const {
  VectorSet set;
  set.dim = d_;
  set.n = count;
  const bool sift = options_.kind == SyntheticKind::kSiftLike;
  set.type = sift ? ElementType::kUint8 : ElementType::kFloat32;
  set.data.resize(count * set.row_bytes());
  if (threads <= 0) threads = omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> row(d_);
#pragma omp for schedule(static, 1024)
    for (uint64_t i = 0; i < count; ++i) {
      Latent(first + i, row.data());
      if (sift) {
        uint8_t* out = set.row(i);
        for (uint32_t j = 0; j < d_; ++j) {
          float v = std::max(row[j] + shift_, 0.f) * scale_;
          out[j] = static_cast<uint8_t>(std::min(255.f, std::nearbyint(v)));
        }
      } else {
        double s = 0;
        for (float v : row) s += double{v} * v;
        auto inv = static_cast<float>(s > 0 ? 1 / std::sqrt(s) : 1);
        auto* out = reinterpret_cast<float*>(set.row(i));
        for (uint32_t j = 0; j < d_; ++j) out[j] = row[j] * inv;
      }
    }
  }
  return set;
}

}  // namespace strata
