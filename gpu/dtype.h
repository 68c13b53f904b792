// Element types of the engine's tensors, and exact host-side conversions between them.
#ifndef STRATA_GPU_DTYPE_H_
#define STRATA_GPU_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"

namespace strata::gpu {

// kI32 holds indices (token ids, sequence offsets); the float conversions below do not take it.
enum class DType { kF32, kF16, kBF16, kI32 };

[[nodiscard]] constexpr size_t DTypeSize(DType t) {
  return t == DType::kF32 || t == DType::kI32 ? 4 : 2;
}
[[nodiscard]] absl::string_view DTypeName(DType t);

// IEEE binary16 and bfloat16 <-> float. Round to nearest even; NaN stays NaN, overflow becomes Inf.
[[nodiscard]] float HalfToFloat(uint16_t h);
[[nodiscard]] uint16_t FloatToHalf(float f);
[[nodiscard]] inline float BFloat16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
[[nodiscard]] uint16_t FloatToBFloat16(float f);

// Converts n elements of `src` (of type `from`) to float32.
void ConvertToFloat(DType from, const void* src, size_t n, float* dst);
// Converts n float32 values to `to` (kF32 copies).
void ConvertFromFloat(DType to, const float* src, size_t n, void* dst);

}  // namespace strata::gpu

#endif  // STRATA_GPU_DTYPE_H_
