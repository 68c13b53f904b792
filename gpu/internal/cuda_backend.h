// The CUDA backend's factory, defined in cuda_backend.cu when the build has CUDA (and by a stub
// that says so otherwise). Private to gpu/: callers go through CreateBackend().
#ifndef STRATA_GPU_INTERNAL_CUDA_BACKEND_H_
#define STRATA_GPU_INTERNAL_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "gpu/backend.h"

namespace strata::gpu {

[[nodiscard]] absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(int device);

}  // namespace strata::gpu

#endif  // STRATA_GPU_INTERNAL_CUDA_BACKEND_H_
