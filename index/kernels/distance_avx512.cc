// AVX-512 (F + BW + VL) variants. This file alone is compiled with -mavx512f -mavx512bw
// -mavx512vl; it is only called after a run-time check (distance_dispatch.cc).
#include <immintrin.h>

#include <type_traits>

#include "index/kernels/internal/scalar_inl.h"

namespace strata::kernels::internal {
namespace {

// Sixteen float32 values, or sixteen float16 values widened to float32; the masked forms read
// only the lanes in `m`.
inline __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 Load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 Load16(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 Load16(__mmask16 m, const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

// A float32 query against a stored vector of float32 or float16 (`B`).
template <typename B>
float L2Float(const void* va, const void* vb, size_t d) {
  const auto* a = static_cast<const float*>(va);
  const auto* b = static_cast<const B*>(vb);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    __m512 t0 = _mm512_sub_ps(Load16(a + i), Load16(b + i));
    __m512 t1 = _mm512_sub_ps(Load16(a + i + 16), Load16(b + i + 16));
    s0 = _mm512_fmadd_ps(t0, t0, s0);
    s1 = _mm512_fmadd_ps(t1, t1, s1);
  }
  if (i + 16 <= d) {
    __m512 t = _mm512_sub_ps(Load16(a + i), Load16(b + i));
    s0 = _mm512_fmadd_ps(t, t, s0);
    i += 16;
  }
  if (i < d) {  // masked tail: no scalar loop needed
    __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1);
    __m512 t = _mm512_sub_ps(Load16(m, a + i), Load16(m, b + i));
    s1 = _mm512_fmadd_ps(t, t, s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

template <typename B>
float IPFloat(const void* va, const void* vb, size_t d) {
  const auto* a = static_cast<const float*>(va);
  const auto* b = static_cast<const B*>(vb);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    s0 = _mm512_fmadd_ps(Load16(a + i), Load16(b + i), s0);
    s1 = _mm512_fmadd_ps(Load16(a + i + 16), Load16(b + i + 16), s1);
  }
  if (i + 16 <= d) {
    s0 = _mm512_fmadd_ps(Load16(a + i), Load16(b + i), s0);
    i += 16;
  }
  if (i < d) {
    __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1);
    s1 = _mm512_fmadd_ps(Load16(m, a + i), Load16(m, b + i), s1);
  }
  return -_mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

template <bool kSigned>
inline __m512i Widen(const void* p) {
  __m256i v = _mm256_loadu_si256(static_cast<const __m256i*>(p));
  return kSigned ? _mm512_cvtepi8_epi16(v) : _mm512_cvtepu8_epi16(v);
}

template <typename T>
float L2Int(const void* va, const void* vb, size_t d) {
  constexpr bool kSigned = std::is_signed_v<T>;
  const auto* a = static_cast<const T*>(va);
  const auto* b = static_cast<const T*>(vb);
  __m512i s = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    __m512i t = _mm512_sub_epi16(Widen<kSigned>(a + i), Widen<kSigned>(b + i));
    s = _mm512_add_epi32(s, _mm512_madd_epi16(t, t));
  }
  return static_cast<float>(_mm512_reduce_add_epi32(s) + L2IntScalar(a + i, b + i, d - i));
}

template <typename T>
float IPInt(const void* va, const void* vb, size_t d) {
  constexpr bool kSigned = std::is_signed_v<T>;
  const auto* a = static_cast<const T*>(va);
  const auto* b = static_cast<const T*>(vb);
  __m512i s = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    s = _mm512_add_epi32(s, _mm512_madd_epi16(Widen<kSigned>(a + i), Widen<kSigned>(b + i)));
  }
  return -static_cast<float>(_mm512_reduce_add_epi32(s) + DotIntScalar(a + i, b + i, d - i));
}

// Sixteen values at a time (round to nearest even, as ToHalfScalar).
void ToHalf(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
  }
  ToHalfScalar(in + i, out + i, n - i);
}

constexpr KernelTable kTable =
    MakeTable<L2Float<float>, IPFloat<float>, L2Int<uint8_t>, IPInt<uint8_t>, L2Int<int8_t>,
              IPInt<int8_t>, L2Float<uint16_t>, IPFloat<uint16_t>, ToHalf>(SimdLevel::kAvx512);

}  // namespace

const KernelTable* Avx512Table() { return &kTable; }

}  // namespace strata::kernels::internal
