// The microkernels under the CPU backend's GEMM (gpu/internal/gemm.h): each multiplies a block of
// activation rows by one packed weight panel of kPanelCols output columns, in one precision on one
// instruction set. They are compiled per ISA in their own files with their own flags (as the
// distance kernels are) and picked at run time from the project's one CPU-feature detection
// (storage/cpu_features.h); no library's table of CPU models takes part.
//
// Panel layouts (written by PackedWeight, gpu/internal/packed_weight.h), for a weight w[n][k]:
//   f32:  panel[p * 32 + j]           = w[c0 + j][p]
//   bf16: panel[(p / 2) * 64 + 2j + e] = bf16(w[c0 + j][2 * (p / 2) + e])      (pairs along k)
//   int8: panel[(p / 4) * 128 + 4j + e] = q(w[c0 + j][4 * (p / 4) + e])        (quads along k)
// zero-filled past n and past k. These are the layouts AVX512-BF16 / VNNI dot products and AMX
// tiles read directly: one 64-byte row holds 16 columns' pairs (quads).
#ifndef STRATA_GPU_INTERNAL_GEMM_KERNELS_H_
#define STRATA_GPU_INTERNAL_GEMM_KERNELS_H_

#include <cstdint>
#include <vector>

#include "storage/cpu_features.h"

namespace strata::gpu::cpu {

inline constexpr int kPanelCols = 32;

// v rounded up to a multiple of `to` (> 0).
constexpr int64_t RoundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// c[r * ldc + j] = sum over p < k of a[r * lda + p] * panel(p, j), for r < rows and j < cols
// (cols <= kPanelCols). Contracts common to all three:
//  - `panel` is best 64-byte aligned (PackedWeight's are; any alignment works).
//  - `a` may be read up to the next multiple of `row_align` rows (the caller pads the buffer), and
//    k is a multiple of the precision's KAlign (the caller pads it with zeros).
//  - Single-threaded; the caller splits rows and panels between threads.
// f32 only: with `accumulate`, adds to c instead of overwriting it (the GEMM splits k into blocks
// whose panel slices stay in L1).
using F32Kernel = void (*)(const float* a, int64_t lda, int64_t rows, const float* panel, int64_t k,
                           float* c, int64_t ldc, int cols, bool accumulate);
// a holds bfloat16 bits; fp32 accumulation.
using Bf16Kernel = void (*)(const uint16_t* a, int64_t lda, int64_t rows, const uint16_t* panel,
                            int64_t k, float* c, int64_t ldc, int cols);
// a holds unsigned bytes (the caller's quantised activations + 128), panel signed bytes; exact
// int32 sums (|sum| < 2^31 while k * 255 * 127 < 2^31, i.e. k < 66,000).
using Int8Kernel = void (*)(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* panel,
                            int64_t k, int32_t* c, int64_t ldc, int cols);

enum class GemmPrecision { kF32, kBF16, kInt8 };
[[nodiscard]] const char* GemmPrecisionName(GemmPrecision p);
// Multiple k is padded to in a panel of this precision (the AMX tile depth for bf16 and int8).
[[nodiscard]] int KAlign(GemmPrecision p);
// Bytes of one element (4, 2, 1), which is also 4 / the k values a panel interleaves per column
// (1 float, 2 bf16, 4 int8: one 32-bit lane).
[[nodiscard]] constexpr int ElementBytes(GemmPrecision p) {
  return p == GemmPrecision::kF32 ? 4 : p == GemmPrecision::kBF16 ? 2 : 1;
}
[[nodiscard]] constexpr int KPerLane(GemmPrecision p) { return 4 / ElementBytes(p); }

struct GemmKernel {
  const char* name = nullptr;  // e.g. "f32 avx512 (12x32)", "bf16 amx (32x32 tiles)"
  GemmPrecision precision = GemmPrecision::kF32;
  // The project SIMD level (STRATA_SIMD) it belongs to: AMX and AVX512-BF16/VNNI count as kAvx512.
  SimdLevel level = SimdLevel::kScalar;
  // A plain-C++ reference for tests, never chosen to serve (bf16 and int8 without the instructions
  // would be slower than f32).
  bool reference_only = false;
  bool tiles = false;  // runs on AMX tiles
  int row_align = 1;   // see above
  F32Kernel f32 = nullptr;
  Bf16Kernel bf16 = nullptr;
  Int8Kernel int8 = nullptr;
};

// Every kernel this CPU (and process: AMX needs the kernel's permission) can run, for tests and
// benchmarks to compare; the scalar ones, the references, are always there.
[[nodiscard]] const std::vector<GemmKernel>& AvailableGemmKernels();
// The kernel the backend uses for `p`: the widest this CPU runs at the project's SIMD level
// (STRATA_SIMD; AMX above AVX-512 where present), or nullptr when the CPU has no fast path for
// the precision (bf16 needs AVX512-BF16 or AMX; int8 needs AVX512-VNNI or AMX). f32 always has one.
[[nodiscard]] const GemmKernel* BestGemmKernel(GemmPrecision p);

// Rounds n floats to bfloat16 (to nearest even; the AVX512-BF16 one reads denormal inputs as
// zero, the scalar one keeps them) for a bf16 kernel's activations.
using ToBf16Fn = void (*)(const float* x, int64_t n, uint16_t* out);
// Quantises n floats for an int8 kernel: out[p] = round(x[p] * (127 / peak)) + 128, to nearest
// even, with peak = max |x|; returns the scale peak / 127 (0, every byte 128, when peak is below
// FLT_MIN). x must be finite.
using QuantizeFn = float (*)(const float* x, int64_t n, uint8_t* out);
// The fastest of each this CPU runs (the scalar ones otherwise).
[[nodiscard]] ToBf16Fn BestToBf16();
[[nodiscard]] QuantizeFn BestQuantize();

// Per-ISA kernels, defined in gemm_kernels_<isa>.cc.
namespace scalar {
F32Kernel F32();
Bf16Kernel Bf16();
Int8Kernel Int8();
ToBf16Fn ToBf16();
QuantizeFn Quantize();
}  // namespace scalar
namespace avx2 {
F32Kernel F32();
}
namespace avx512 {
F32Kernel F32();
Bf16Kernel Bf16();      // AVX512-BF16
ToBf16Fn ToBf16();      // AVX512-BF16
Int8Kernel Int8();      // AVX512-VNNI
QuantizeFn Quantize();  // AVX-512 F only (in the f32 file)
}  // namespace avx512
namespace amx {
// Asks the kernel for the AMX tile state (Linux arch_prctl); false when refused or not Linux.
bool RequestPermission();
Bf16Kernel Bf16();
Int8Kernel Int8();
}  // namespace amx

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_GEMM_KERNELS_H_
