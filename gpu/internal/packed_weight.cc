#include "gpu/internal/packed_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "storage/half.h"

namespace strata::gpu::cpu {

absl::StatusOr<PackedWeight> PackedWeight::Pack(const float* w, int64_t n, int64_t k,
                                                const GemmKernel& kernel) {
  if (n <= 0 || k <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot pack a ", n, " x ", k, " weight"));
  }
  PackedWeight pw;
  pw.kernel_ = &kernel;
  pw.n_ = n;
  pw.k_ = k;
  const int64_t align = KAlign(kernel.precision);
  pw.k_padded_ = (k + align - 1) / align * align;
  if (kernel.precision == GemmPrecision::kInt8 &&
      pw.k_padded_ * 255 * 127 > int64_t{std::numeric_limits<int32_t>::max()}) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an int8 weight of ", k, " inputs could overflow its int32 sums (at most 66,311)"));
  }
  const auto elem = static_cast<size_t>(ElementBytes(kernel.precision));
  const size_t count = static_cast<size_t>(pw.panels() * pw.k_padded_ * kPanelCols);
  pw.bytes_ = (count * elem + 63) / 64 * 64;
  pw.data_.reset(std::aligned_alloc(64, pw.bytes_));
  if (pw.data_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory packing a ", n, " x ", k, " weight (", pw.bytes_, " bytes)"));
  }
  std::memset(pw.data_.get(), 0, pw.bytes_);
  const int64_t depth = KPerLane(kernel.precision);
  // Element (column j of the panel, k index p) lies at group p / depth, lane j, slot p % depth.
  const auto at = [&](int64_t col, int64_t p) {
    const int64_t panel = col / kPanelCols, j = col % kPanelCols;
    return static_cast<size_t>(panel * pw.k_padded_ * kPanelCols +
                               (p / depth) * depth * kPanelCols + j * depth + p % depth);
  };
  switch (kernel.precision) {
    case GemmPrecision::kF32: {
      float* d = static_cast<float*>(pw.data_.get());
      for (int64_t c = 0; c < n; ++c)
        for (int64_t p = 0; p < k; ++p) d[at(c, p)] = w[c * k + p];
      break;
    }
    case GemmPrecision::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(pw.data_.get());
      for (int64_t c = 0; c < n; ++c)
        for (int64_t p = 0; p < k; ++p) d[at(c, p)] = FloatToBFloat16(w[c * k + p]);
      break;
    }
    case GemmPrecision::kInt8: {
      int8_t* d = static_cast<int8_t*>(pw.data_.get());
      pw.scales_.resize(static_cast<size_t>(n));
      pw.column_sums_.resize(static_cast<size_t>(n));
      for (int64_t c = 0; c < n; ++c) {
        float peak = 0;
        for (int64_t p = 0; p < k; ++p) {
          const float v = w[c * k + p];
          if (!std::isfinite(v)) {
            return absl::InvalidArgumentError(
                absl::StrCat("weight row ", c, " holds a non-finite value; cannot quantise it"));
          }
          peak = std::max(peak, std::fabs(v));
        }
        const float scale = peak > 0 ? peak / 127.0f : 1.0f;
        int32_t sum = 0;
        for (int64_t p = 0; p < k; ++p) {
          const auto q = static_cast<int8_t>(
              std::clamp(std::nearbyint(w[c * k + p] / scale), -127.0f, 127.0f));
          d[at(c, p)] = q;
          sum += q;
        }
        pw.scales_[static_cast<size_t>(c)] = scale;
        pw.column_sums_[static_cast<size_t>(c)] = sum;
      }
      break;
    }
  }
  return pw;
}

}  // namespace strata::gpu::cpu
