#include "gpu/internal/quant_dot_q8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "storage/cpu_features.h"
#include "storage/half.h"

namespace strata::gpu::cpu {
namespace avx512_vnni {
const Q8DotKernels* Q8DotTable();
}
namespace {

float F16At(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return HalfToFloat(h);
}

// The block's unsigned codes u[32], scale d_w and offset c_w (quant_dot_q8.h).
void Codes(GgmlType t, const uint8_t* b, uint8_t* u, float* d, float* c) {
  *d = F16At(b);
  if (t == GgmlType::kQ8_0) {
    for (int i = 0; i < 32; ++i) u[i] = static_cast<uint8_t>(static_cast<int8_t>(b[2 + i]) + 128);
    *c = -128.0f * *d;
    return;
  }
  const bool has_min = t == GgmlType::kQ4_1;
  const uint8_t* q = b + (has_min ? 4 : 2);
  for (int i = 0; i < 16; ++i) {
    u[i] = q[i] & 0x0F;
    u[i + 16] = q[i] >> 4;
  }
  *c = has_min ? F16At(b + 2) : -8.0f * *d;
}

void ScalarDotRows(GgmlType t, const uint8_t* rows, size_t stride, int64_t count, const Q8View& x,
                   float* out, int64_t ldo) {
  const int64_t blocks = x.n / kQ8Block;
  const size_t bb = static_cast<size_t>(GgmlBlockBytes(t));
  uint8_t u[32];
  for (int64_t j = 0; j < count; ++j) {
    const uint8_t* row = rows + static_cast<size_t>(j) * stride;
    for (int64_t r = 0; r < x.rows; ++r) {
      const int8_t* q = x.q + r * x.n;
      const float* d = x.d + r * blocks;
      const float* s = x.sum + r * blocks;
      float acc = 0, off = 0;
      for (int64_t b = 0; b < blocks; ++b) {
        float dw, cw;
        Codes(t, row + static_cast<size_t>(b) * bb, u, &dw, &cw);
        int32_t dot = 0;
        for (int i = 0; i < 32; ++i) dot += int32_t{u[i]} * q[b * 32 + i];
        acc += dw * d[b] * static_cast<float>(dot);
        off += cw * s[b];
      }
      out[r * ldo + j] = acc + off;
    }
  }
}

const Q8DotKernels kScalar = {"scalar", &ScalarDotRows};

}  // namespace

void QuantizeActivations(const float* x, int64_t m, int64_t n, Q8Activations* out) {
  const int64_t blocks = n / kQ8Block;
  out->rows = m;
  out->n = n;
  out->q.resize(static_cast<size_t>(m * n));
  out->d.resize(static_cast<size_t>(m * blocks));
  out->sum.resize(out->d.size());
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      const float* v = x + r * n + b * kQ8Block;
      int8_t* q = out->q.data() + r * n + b * kQ8Block;
      float amax = 0;
      bool nan = false;
      for (int i = 0; i < kQ8Block; ++i) {
        amax = std::max(amax, std::fabs(v[i]));
        nan |= std::isnan(v[i]);
      }
      // A block too small for a normal scale is zeros (1/d would overflow); a NaN makes the
      // block's scale NaN, so it reaches the products' results instead of vanishing.
      const float d = nan ? NAN : amax < 1e-30f ? 0.0f : amax / 127.0f;
      const float inv = !nan && d > 0 ? 1.0f / d : 0.0f;
      int32_t sum = 0;
      for (int i = 0; i < kQ8Block; ++i) {
        q[i] = static_cast<int8_t>(std::lrintf(v[i] * inv));
        sum += q[i];
      }
      out->d[static_cast<size_t>(r * blocks + b)] = d;
      out->sum[static_cast<size_t>(r * blocks + b)] = d * static_cast<float>(sum);
    }
  }
}

bool Q8DotSupports(GgmlType t) {
  return t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0 || t == GgmlType::kQ4_1;
}

const Q8DotKernels& ScalarQ8DotKernels() { return kScalar; }

const Q8DotKernels* FastQ8DotKernels() {
#if defined(__x86_64__)
  static const Q8DotKernels* fast = ProjectSimdLevel() == SimdLevel::kAvx512 && Cpu().avx512_vnni
                                        ? avx512_vnni::Q8DotTable()
                                        : nullptr;
  return fast;
#else
  return nullptr;
#endif
}

}  // namespace strata::gpu::cpu
