#include "gpu/internal/gemm_kernels.h"

#include "storage/cpu_features.h"

namespace strata::gpu::cpu {
namespace {

bool AmxReady(bool has_instructions) {
  const CpuFeatures& cpu = Cpu();
  return has_instructions && cpu.amx_tile && amx::RequestPermission();
}

// In order of preference within a precision: the last one a level allows is the best.
std::vector<GemmKernel> Detect() {
  std::vector<GemmKernel> k;
  const CpuFeatures& cpu = Cpu();
  using P = GemmPrecision;
  using L = SimdLevel;
  k.push_back({.name = "f32 scalar", .f32 = scalar::F32()});
  k.push_back({.name = "bf16 scalar (reference)",
               .precision = P::kBF16,
               .reference_only = true,
               .bf16 = scalar::Bf16()});
  k.push_back({.name = "int8 scalar (reference)",
               .precision = P::kInt8,
               .reference_only = true,
               .int8 = scalar::Int8()});
  if (Supports(L::kAvx2)) {
    k.push_back({.name = "f32 avx2 (6x16)", .level = L::kAvx2, .f32 = avx2::F32()});
  }
  if (!Supports(L::kAvx512)) return k;
  k.push_back({.name = "f32 avx512 (12x32)", .level = L::kAvx512, .f32 = avx512::F32()});
  if (cpu.avx512_bf16) {
    k.push_back({.name = "bf16 avx512_bf16 (12x32)",
                 .precision = P::kBF16,
                 .level = L::kAvx512,
                 .bf16 = avx512::Bf16()});
  }
  if (cpu.avx512_vnni) {
    k.push_back({.name = "int8 avx512_vnni (12x32)",
                 .precision = P::kInt8,
                 .level = L::kAvx512,
                 .int8 = avx512::Int8()});
  }
  if (AmxReady(cpu.amx_bf16)) {
    k.push_back({.name = "bf16 amx (32x32 tiles)",
                 .precision = P::kBF16,
                 .level = L::kAvx512,
                 .tiles = true,
                 .row_align = 32,
                 .bf16 = amx::Bf16()});
  }
  if (AmxReady(cpu.amx_int8)) {
    k.push_back({.name = "int8 amx (32x32 tiles)",
                 .precision = P::kInt8,
                 .level = L::kAvx512,
                 .tiles = true,
                 .row_align = 32,
                 .int8 = amx::Int8()});
  }
  return k;
}

const GemmKernel* Choose(GemmPrecision p) {
  const int level = static_cast<int>(ProjectSimdLevel());
  const GemmKernel* best = nullptr;
  for (const GemmKernel& k : AvailableGemmKernels()) {
    if (k.precision == p && !k.reference_only && static_cast<int>(k.level) <= level) best = &k;
  }
  return best;
}

}  // namespace

const char* GemmPrecisionName(GemmPrecision p) {
  switch (p) {
    case GemmPrecision::kF32:
      return "f32";
    case GemmPrecision::kBF16:
      return "bf16";
    case GemmPrecision::kInt8:
      return "int8";
  }
  return "?";
}

int KAlign(GemmPrecision p) {
  switch (p) {
    case GemmPrecision::kF32:
      return 1;
    case GemmPrecision::kBF16:
      return 32;
    case GemmPrecision::kInt8:
      return 64;
  }
  return 1;
}

const std::vector<GemmKernel>& AvailableGemmKernels() {
  static const std::vector<GemmKernel> kernels = Detect();
  return kernels;
}

ToBf16Fn BestToBf16() {
  static const ToBf16Fn fn =
      Supports(SimdLevel::kAvx512) && Cpu().avx512_bf16 && ProjectSimdLevel() == SimdLevel::kAvx512
          ? avx512::ToBf16()
          : scalar::ToBf16();
  return fn;
}

QuantizeFn BestQuantize() {
  static const QuantizeFn fn =
      ProjectSimdLevel() == SimdLevel::kAvx512 ? avx512::Quantize() : scalar::Quantize();
  return fn;
}

const GemmKernel* BestGemmKernel(GemmPrecision p) {
  static const GemmKernel* const best[3] = {
      Choose(GemmPrecision::kF32), Choose(GemmPrecision::kBF16), Choose(GemmPrecision::kInt8)};
  return best[static_cast<int>(p)];
}

}  // namespace strata::gpu::cpu
