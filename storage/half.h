// IEEE binary16 ("half") and bfloat16 <-> float32 on the host, exact and portable (no F16C
// needed). Shared by the index (float16 posting entries) and the GPU engine (fp16/bf16 weights).
#ifndef STRATA_STORAGE_HALF_H_
#define STRATA_STORAGE_HALF_H_

#include <cstdint>
#include <cstring>

namespace strata {

// The converters have internal linkage (static): the instruction-set kernel files include this
// header, and an out-of-line copy of a function with external linkage compiled there (at -O0, or
// by a sanitizer build) would be a weak symbol the linker may pick for every caller, AVX-512
// instructions included, on a CPU without them (tests/isa_objects_check.cmake).

// Largest finite half; values beyond it round to infinity.
inline constexpr float kHalfMax = 65504.0f;

// Round to nearest even; NaN stays NaN, overflow becomes Inf, subnormals are kept.
static inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // Inf or NaN
    return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // rounds beyond 65504: Inf
  if (abs < 0x38800000u) {                       // below the smallest normal half: subnormal
    if (abs < 0x33000000u) return sign;          // below half the smallest subnormal
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - exp;  // value = mant * 2^(exp-150) = (mant >> shift) * 2^-24
    const uint32_t dropped = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    uint32_t h = mant >> shift;  // round to nearest even on the dropped bits
    if (dropped > halfway || (dropped == halfway && (h & 1))) ++h;
    return sign | static_cast<uint16_t>(h);
  }
  uint32_t h = ((abs >> 23) - 127 + 15) << 10 | ((abs >> 13) & 0x3ff);
  const uint32_t dropped = abs & 0x1fff;
  if (dropped > 0x1000 || (dropped == 0x1000 && (h & 1))) ++h;  // may carry into the exponent
  return sign | static_cast<uint16_t>(h);
}

static inline uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN
  const uint32_t rounding = 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

static inline float BFloat16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace strata

#endif  // STRATA_STORAGE_HALF_H_
