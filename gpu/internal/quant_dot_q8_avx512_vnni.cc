// The int8-activation block products (gpu/internal/quant_dot_q8.h) for AVX512-VNNI with VL
// (flags in gpu/CMakeLists.txt): a weight block's 32 codes in one 256-bit register (nibbles
// split low half / high half, as GGUF stores them: byte i holds values i and i + 16), one
// VPDPBUSD against the activation block's 32 codes, then the block's float scale. Two weight
// rows and up to 8 activation rows at a time: each block is unpacked once for all of them.
#include <immintrin.h>

#include <cstring>

#include "gpu/internal/quant_dot_q8.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace strata::gpu::cpu::avx512_vnni {
namespace {

inline float F16At(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// A block's unsigned codes, scale and offset (see quant_dot_q8.h).
template <GgmlType T>
inline __m256i Codes(const uint8_t* b, float* d, float* c) {
  *d = F16At(b);
  if constexpr (T == GgmlType::kQ8_0) {
    *c = -128.0f * *d;
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  } else {
    constexpr bool kHasMin = T == GgmlType::kQ4_1;
    *c = kHasMin ? F16At(b + 2) : -8.0f * *d;
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + (kHasMin ? 4 : 2)));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
  }
}

// How far ahead of the rows being read to prefetch (bytes). Measured on SmolLM2 decoding, one
// core: none 64 tok/s, 256 B 71, 1 KiB 81, 2 KiB 105, 8 KiB 123 (the hardware prefetcher alone
// left the core waiting on memory); past the matrix's end a prefetch is a harmless hint.
constexpr int kPrefetchAhead = 8192;

template <GgmlType T, int M>
inline void Dot2xM(const uint8_t* p0, const uint8_t* p1, const Q8View& x, float* out0, int64_t ldo0,
                   float* out1, int64_t ldo1) {
  constexpr int kBytes = T == GgmlType::kQ8_0 ? 34 : T == GgmlType::kQ4_1 ? 20 : 18;
  const int64_t blocks = x.n / kQ8Block;
  __m256 a[M], b[M];
  float ca[M], cb[M];
  for (int r = 0; r < M; ++r) {
    a[r] = b[r] = _mm256_setzero_ps();
    ca[r] = cb[r] = 0;
  }
  const int8_t* q = x.q;
  const float* xd = x.d;
  const float* xs = x.sum;
  for (int64_t k = 0; k < blocks; ++k, p0 += kBytes, p1 += kBytes) {
    _mm_prefetch(reinterpret_cast<const char*>(p0) + kPrefetchAhead, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p1) + kPrefetchAhead, _MM_HINT_T0);
    float d0, c0, d1, c1;
    const __m256i u0 = Codes<T>(p0, &d0, &c0);
    const __m256i u1 = Codes<T>(p1, &d1, &c1);
    for (int r = 0; r < M; ++r) {
      const __m256i v =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + r * x.n + k * kQ8Block));
      const float dx = xd[r * blocks + k], sx = xs[r * blocks + k];
      const __m256i s0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u0, v);
      const __m256i s1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u1, v);
      a[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(d0 * dx), a[r]);
      b[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(d1 * dx), b[r]);
      ca[r] += c0 * sx;
      cb[r] += c1 * sx;
    }
  }
  for (int r = 0; r < M; ++r) {
    out0[r * ldo0] = Hsum(a[r]) + ca[r];
    out1[r * ldo1] = Hsum(b[r]) + cb[r];
  }
}

template <GgmlType T, int M>
void DotRowsM(const uint8_t* p, size_t stride, int64_t count, const Q8View& x, float* out,
              int64_t ldo) {
  int64_t j = 0;
  for (; j + 2 <= count; j += 2) {
    Dot2xM<T, M>(p + static_cast<size_t>(j) * stride, p + static_cast<size_t>(j + 1) * stride, x,
                 out + j, ldo, out + j + 1, ldo);
  }
  if (j < count) {  // the odd row: paired with itself
    const uint8_t* last = p + static_cast<size_t>(j) * stride;
    float scratch[M];
    Dot2xM<T, M>(last, last, x, out + j, ldo, scratch, 1);
  }
}

template <GgmlType T>
void DotRowsT(const uint8_t* p, size_t stride, int64_t count, const Q8View& x, float* out,
              int64_t ldo) {
  switch (x.rows) {
    case 1:
      return DotRowsM<T, 1>(p, stride, count, x, out, ldo);
    case 2:
      return DotRowsM<T, 2>(p, stride, count, x, out, ldo);
    case 3:
      return DotRowsM<T, 3>(p, stride, count, x, out, ldo);
    case 4:
      return DotRowsM<T, 4>(p, stride, count, x, out, ldo);
    case 5:
      return DotRowsM<T, 5>(p, stride, count, x, out, ldo);
    case 6:
      return DotRowsM<T, 6>(p, stride, count, x, out, ldo);
    case 7:
      return DotRowsM<T, 7>(p, stride, count, x, out, ldo);
    default:
      return DotRowsM<T, 8>(p, stride, count, x, out, ldo);
  }
}

void DotRows(GgmlType t, const uint8_t* rows, size_t stride, int64_t count, const Q8View& x,
             float* out, int64_t ldo) {
  switch (t) {
    case GgmlType::kQ8_0:
      return DotRowsT<GgmlType::kQ8_0>(rows, stride, count, x, out, ldo);
    case GgmlType::kQ4_0:
      return DotRowsT<GgmlType::kQ4_0>(rows, stride, count, x, out, ldo);
    default:
      return DotRowsT<GgmlType::kQ4_1>(rows, stride, count, x, out, ldo);
  }
}

const Q8DotKernels kTable = {"avx512-vnni", &DotRows};

}  // namespace

const Q8DotKernels* Q8DotTable() { return &kTable; }

}  // namespace strata::gpu::cpu::avx512_vnni
