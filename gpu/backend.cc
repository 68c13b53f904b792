#include "gpu/backend.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gpu/device.h"
#include "gpu/internal/cuda_backend.h"
#include "storage/log.h"

namespace strata::gpu {

absl::StatusOr<BackendChoice> ParseBackendChoice(absl::string_view s) {
  const std::string v = absl::AsciiStrToLower(s);
  if (v == "auto" || v.empty()) return BackendChoice::kAuto;
  if (v == "cpu") return BackendChoice::kCpu;
  if (v == "cuda" || v == "gpu") return BackendChoice::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", s, "' (expected auto, cpu or cuda)"));
}

absl::StatusOr<std::optional<MatmulPrecision>> ParseMatmulPrecision(absl::string_view s) {
  const std::string v = absl::AsciiStrToLower(s);
  if (v == "auto" || v.empty()) return std::nullopt;
  if (v == "f32" || v == "native") return MatmulPrecision::kNative;
  if (v == "bf16") return MatmulPrecision::kBF16;
  if (v == "int8") return MatmulPrecision::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown matmul precision '", s, "' (expected auto, f32, bf16 or int8)"));
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(BackendChoice choice, int cuda_device) {
  if (choice == BackendChoice::kCpu) {
    auto b = CreateCpuBackend();
    Log(LogLevel::kInfo, "engine backend: %s (forced)", b->name());
    return b;
  }
  std::string why_not;
  if (!BuiltWithCuda()) {
    why_not = "this build has no CUDA backend (nvcc was not found at configure time)";
  } else {
    auto devices = ListDevices();
    if (!devices.ok()) {
      why_not = std::string(devices.status().message());
    } else if (devices->empty()) {
      why_not = "no CUDA device is visible";
    } else if (cuda_device < 0 || cuda_device >= static_cast<int>(devices->size())) {
      why_not = absl::StrCat("CUDA device ", cuda_device, " does not exist (", devices->size(),
                             " visible)");
    } else {
      auto b = CreateCudaBackend(cuda_device);
      if (b.ok()) {
        Log(LogLevel::kInfo, "engine backend: %s", (*b)->name());
        return b;
      }
      why_not = std::string(b.status().message());
    }
  }
  if (choice == BackendChoice::kCuda) {
    return absl::FailedPreconditionError(absl::StrCat("the CUDA backend was asked for: ", why_not));
  }
  auto b = CreateCpuBackend();
  Log(LogLevel::kInfo, "engine backend: %s (CUDA not used: %s)", b->name(), why_not);
  return b;
}

}  // namespace strata::gpu
