#include "storage/cpu_features.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "storage/log.h"

namespace strata {
namespace {

bool Bit(uint32_t reg, int bit) { return (reg >> bit) & 1u; }

// The OS-enabled register state (XCR0), or 0 when XGETBV is unavailable.
uint64_t Xcr0(bool osxsave) {
  if (!osxsave) return 0;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

CpuFeatures Detect() {
  CpuFeatures f;
  uint32_t a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.sse42 = Bit(c, 20);
  f.pclmul = Bit(c, 1);
  const uint64_t xcr0 = Xcr0(Bit(c, 27));
  const bool ymm = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
  const bool zmm = (xcr0 & 0xe6) == 0xe6;          // plus opmask and the upper ZMM state
  const bool tiles = (xcr0 & 0x60000) == 0x60000;  // AMX tile config and data
  f.fma = ymm && Bit(c, 12);
  f.f16c = ymm && Bit(c, 29);
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ymm && Bit(b, 5);
  f.avx512f = zmm && Bit(b, 16);
  f.avx512dq = zmm && Bit(b, 17);
  f.avx512bw = zmm && Bit(b, 30);
  f.avx512vl = zmm && Bit(b, 31);
  f.avx512_vnni = zmm && Bit(c, 11);
  f.vpclmulqdq = zmm && Bit(c, 10);
  f.amx_bf16 = tiles && Bit(d, 22);
  f.amx_tile = tiles && Bit(d, 24);
  f.amx_int8 = tiles && Bit(d, 25);
  __cpuid_count(7, 1, a, b, c, d);
  f.avx512_bf16 = zmm && Bit(a, 5);
  return f;
}

}  // namespace

const CpuFeatures& Cpu() {
  static const CpuFeatures features = Detect();
  return features;
}

const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "?";
}

bool Supports(SimdLevel level) {
  const CpuFeatures& f = Cpu();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  switch (level) {
    case SimdLevel::kScalar:
      return true;
    case SimdLevel::kAvx2:
      return avx2;
    case SimdLevel::kAvx512:
      return avx2 && f.avx512f && f.avx512bw && f.avx512vl;
  }
  return false;
}

SimdLevel ProjectSimdLevel() {
  static const SimdLevel level = [] {
    const char* force = std::getenv("STRATA_SIMD");
    if (force != nullptr && *force != '\0') {
      bool known = false;
      for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
        if (std::strcmp(force, SimdLevelName(l)) != 0) continue;
        known = true;
        if (Supports(l)) return l;
        Log(LogLevel::kWarning, "STRATA_SIMD=%s is not supported on this CPU; ignoring", force);
      }
      if (!known) {
        Log(LogLevel::kWarning, "STRATA_SIMD=%s is not scalar, avx2 or avx512; ignoring", force);
      }
    }
    for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2}) {
      if (Supports(l)) return l;
    }
    return SimdLevel::kScalar;
  }();
  return level;
}

}  // namespace strata
