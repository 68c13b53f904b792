// CUDA and cuBLAS results become absl::Status through one macro, CUDA_RETURN_IF_ERROR, which names
// the failing call and where it was made. Included only by CUDA sources.
#ifndef STRATA_GPU_INTERNAL_CUDA_CHECK_H_
#define STRATA_GPU_INTERNAL_CUDA_CHECK_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "storage/status_macros.h"

namespace strata::gpu {

// OutOfMemory becomes ResourceExhausted; everything else Internal with CUDA's own message.
absl::Status ToStatus(cudaError_t err, const char* expr, const char* file, int line);
absl::Status ToStatus(cublasStatus_t err, const char* expr, const char* file, int line);

}  // namespace strata::gpu

#define CUDA_RETURN_IF_ERROR(expr) \
  RETURN_IF_ERROR(::strata::gpu::ToStatus((expr), #expr, __FILE__, __LINE__))

#endif  // STRATA_GPU_INTERNAL_CUDA_CHECK_H_
