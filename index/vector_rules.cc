#include "index/vector_rules.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace strata {

absl::Status CheckVectorValues(ElementType type, Metric metric, uint32_t dim, const uint8_t* v) {
  if (type != ElementType::kFloat32) return absl::OkStatus();
  double sum_sq = 0;
  for (uint32_t j = 0; j < dim; ++j) {
    float f;
    std::memcpy(&f, v + size_t{j} * 4, 4);
    if (!std::isfinite(f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("vector has a non-finite value at dimension ", j));
    }
    sum_sq += double{f} * f;
  }
  if (metric == Metric::kCosine) {
    if (sum_sq == 0) {
      return absl::InvalidArgumentError(
          "vector is all zeros, which has no direction: cosine distance is undefined for it");
    }
    return absl::OkStatus();
  }
  if (sum_sq > kMaxVectorNorm * kMaxVectorNorm) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vector's L2 norm %.3g is over %.0e, the largest for which every %s distance is a "
        "finite float32",
        std::sqrt(sum_sq), kMaxVectorNorm, MetricName(metric)));
  }
  return absl::OkStatus();
}

absl::Status CheckVectorValues(ElementType type, Metric metric, uint32_t dim, const uint8_t* v,
                               absl::string_view what) {
  absl::Status s = CheckVectorValues(type, metric, dim, v);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
}

void NormalizeInPlace(float* v, uint32_t d) {
  double sum_sq = 0;
  for (uint32_t j = 0; j < d; ++j) sum_sq += double{v[j]} * v[j];
  if (sum_sq == 0) return;
  const double norm = std::sqrt(sum_sq);
  for (uint32_t j = 0; j < d; ++j) v[j] = static_cast<float>(v[j] / norm);
}

}  // namespace strata
