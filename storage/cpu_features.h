// What this CPU can run, read once with cpuid (and xgetbv: the OS must save the wider registers),
// and the one SIMD level the whole project dispatches on. The distance kernels (index/kernels) and
// the engine's row kernels (gpu/internal) both pick their variant here, so one environment
// variable, STRATA_SIMD=scalar|avx2|avx512, forces both; a level the CPU lacks is refused with a
// warning and the widest supported one is used.
//
// Thread-safe: computed once.
#ifndef STRATA_STORAGE_CPU_FEATURES_H_
#define STRATA_STORAGE_CPU_FEATURES_H_

namespace strata {

struct CpuFeatures {
  bool sse42 = false;
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_vnni = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  bool pclmul = false, vpclmulqdq = false;  // carry-less multiplication (vpclmulqdq: on zmm)
};

// This CPU's features, as the OS lets programs use them.
[[nodiscard]] const CpuFeatures& Cpu();

// The SIMD levels Strata compiles kernels for. kAvx2 needs AVX2, FMA and F16C; kAvx512 needs those
// and AVX-512 F, BW and VL.
enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
[[nodiscard]] const char* SimdLevelName(SimdLevel level);
[[nodiscard]] bool Supports(SimdLevel level);
// The level every kernel family uses: STRATA_SIMD when set and supported, else the widest
// supported. Chosen once (logged when STRATA_SIMD is refused).
[[nodiscard]] SimdLevel ProjectSimdLevel();

}  // namespace strata

#endif  // STRATA_STORAGE_CPU_FEATURES_H_
