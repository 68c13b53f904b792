// Built instead of cuda_backend.cu when nvcc is absent.
#include "gpu/internal/cuda_backend.h"

namespace strata::gpu {

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(int /*device*/) {
  return absl::UnavailableError("this build of Strata has no CUDA backend (nvcc was not found)");
}

}  // namespace strata::gpu
