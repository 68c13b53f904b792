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
  k.push_back({"f32 scalar", P::kF32, L::kScalar, false, 1, scalar::F32(), nullptr, nullptr});
  k.push_back(
      {"bf16 scalar (reference)", P::kBF16, L::kScalar, true, 1, nullptr, scalar::Bf16(), nullptr});
  k.push_back(
      {"int8 scalar (reference)", P::kInt8, L::kScalar, true, 1, nullptr, nullptr, scalar::Int8()});
  if (Supports(L::kAvx2)) {
    k.push_back({"f32 avx2 (6x16)", P::kF32, L::kAvx2, false, 1, avx2::F32(), nullptr, nullptr});
  }
  if (!Supports(L::kAvx512)) return k;
  k.push_back(
      {"f32 avx512 (12x32)", P::kF32, L::kAvx512, false, 1, avx512::F32(), nullptr, nullptr});
  if (cpu.avx512_bf16) {
    k.push_back({"bf16 avx512_bf16 (12x32)", P::kBF16, L::kAvx512, false, 1, nullptr,
                 avx512::Bf16(), nullptr});
  }
  if (cpu.avx512_vnni) {
    k.push_back({"int8 avx512_vnni (12x32)", P::kInt8, L::kAvx512, false, 1, nullptr, nullptr,
                 avx512::Int8()});
  }
  if (AmxReady(cpu.amx_bf16)) {
    k.push_back(
        {"bf16 amx (32x32 tiles)", P::kBF16, L::kAvx512, false, 32, nullptr, amx::Bf16(), nullptr});
  }
  if (AmxReady(cpu.amx_int8)) {
    k.push_back(
        {"int8 amx (32x32 tiles)", P::kInt8, L::kAvx512, false, 32, nullptr, nullptr, amx::Int8()});
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
