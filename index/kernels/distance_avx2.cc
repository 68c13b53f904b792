// AVX2 + FMA (+ F16C for float16 vectors) variants. This file alone is compiled with -mavx2 -mfma
// -mf16c; it is only called after a run-time check (distance_dispatch.cc).
#include <immintrin.h>

#include <type_traits>

#include "index/kernels/internal/scalar_inl.h"

namespace strata::kernels::internal {
namespace {

inline float HSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}
inline int32_t HSum(__m256i v) {
  __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
  lo = _mm_add_epi32(lo, hi);
  lo = _mm_hadd_epi32(lo, lo);
  lo = _mm_hadd_epi32(lo, lo);
  return _mm_cvtsi128_si32(lo);
}

// Eight float32 values, or eight float16 values widened to float32 (F16C).
inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// A float32 query against a stored vector of float32 or float16 (`B`).
template <typename B>
float L2Float(const void* va, const void* vb, size_t d) {
  const auto* a = static_cast<const float*>(va);
  const auto* b = static_cast<const B*>(vb);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    __m256 t0 = _mm256_sub_ps(Load8(a + i), Load8(b + i));
    __m256 t1 = _mm256_sub_ps(Load8(a + i + 8), Load8(b + i + 8));
    s0 = _mm256_fmadd_ps(t0, t0, s0);
    s1 = _mm256_fmadd_ps(t1, t1, s1);
  }
  for (; i + 8 <= d; i += 8) {
    __m256 t = _mm256_sub_ps(Load8(a + i), Load8(b + i));
    s0 = _mm256_fmadd_ps(t, t, s0);
  }
  return HSum(_mm256_add_ps(s0, s1)) + L2FloatScalar(a + i, b + i, d - i);
}

template <typename B>
float IPFloat(const void* va, const void* vb, size_t d) {
  const auto* a = static_cast<const float*>(va);
  const auto* b = static_cast<const B*>(vb);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    s0 = _mm256_fmadd_ps(Load8(a + i), Load8(b + i), s0);
    s1 = _mm256_fmadd_ps(Load8(a + i + 8), Load8(b + i + 8), s1);
  }
  for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(Load8(a + i), Load8(b + i), s0);
  return -(HSum(_mm256_add_ps(s0, s1)) + DotFloatScalar(a + i, b + i, d - i));
}

// Widen 16 bytes to 16 int16 lanes (zero- or sign-extended).
template <bool kSigned>
inline __m256i Widen(const void* p) {
  __m128i v = _mm_loadu_si128(static_cast<const __m128i*>(p));
  return kSigned ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
}

template <typename T>
float L2Int(const void* va, const void* vb, size_t d) {
  constexpr bool kSigned = std::is_signed_v<T>;
  const auto* a = static_cast<const T*>(va);
  const auto* b = static_cast<const T*>(vb);
  __m256i s = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    __m256i t = _mm256_sub_epi16(Widen<kSigned>(a + i), Widen<kSigned>(b + i));
    s = _mm256_add_epi32(s, _mm256_madd_epi16(t, t));
  }
  return static_cast<float>(HSum(s) + L2IntScalar(a + i, b + i, d - i));
}

template <typename T>
float IPInt(const void* va, const void* vb, size_t d) {
  constexpr bool kSigned = std::is_signed_v<T>;
  const auto* a = static_cast<const T*>(va);
  const auto* b = static_cast<const T*>(vb);
  __m256i s = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    s = _mm256_add_epi32(s, _mm256_madd_epi16(Widen<kSigned>(a + i), Widen<kSigned>(b + i)));
  }
  return -static_cast<float>(HSum(s) + DotIntScalar(a + i, b + i, d - i));
}

// Eight values at a time with F16C's conversion (round to nearest even, as ToHalfScalar).
void ToHalf(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  ToHalfScalar(in + i, out + i, n - i);
}

constexpr KernelTable kTable =
    MakeTable<L2Float<float>, IPFloat<float>, L2Int<uint8_t>, IPInt<uint8_t>, L2Int<int8_t>,
              IPInt<int8_t>, L2Float<uint16_t>, IPFloat<uint16_t>, ToHalf>(SimdLevel::kAvx2);

}  // namespace

const KernelTable* Avx2Table() { return &kTable; }

}  // namespace strata::kernels::internal
