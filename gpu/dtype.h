// Element types of the engine's tensors, and exact host-side conversions between them.
#ifndef STRATA_GPU_DTYPE_H_
#define STRATA_GPU_DTYPE_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "storage/half.h"

namespace strata::gpu {

// kI32 holds indices (token ids, sequence offsets); the float conversions below do not take it.
enum class DType { kF32, kF16, kBF16, kI32 };

[[nodiscard]] constexpr size_t DTypeSize(DType t) {
  return t == DType::kF32 || t == DType::kI32 ? 4 : 2;
}
[[nodiscard]] absl::string_view DTypeName(DType t);

// IEEE binary16 and bfloat16 <-> float (storage/half.h): round to nearest even; NaN stays NaN,
// overflow becomes Inf.
using ::strata::BFloat16ToFloat;
using ::strata::FloatToBFloat16;
using ::strata::FloatToHalf;
using ::strata::HalfToFloat;

// Converts n elements of `src` (of type `from`) to float32.
void ConvertToFloat(DType from, const void* src, size_t n, float* dst);
// Converts n float32 values to `to` (kF32 copies).
void ConvertFromFloat(DType to, const float* src, size_t n, void* dst);

}  // namespace strata::gpu

#endif  // STRATA_GPU_DTYPE_H_
