#include "gpu/device.h"

#include "absl/strings/str_cat.h"

#ifdef STRATA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace strata::gpu {

bool BuiltWithCuda() {
#ifdef STRATA_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

absl::StatusOr<std::vector<DeviceInfo>> ListDevices() {
#ifdef STRATA_HAVE_CUDA
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    cudaGetLastError();  // clear the sticky error
    return std::vector<DeviceInfo>{};
  }
  if (err != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaGetDeviceCount: ", cudaGetErrorString(err)));
  }
  std::vector<DeviceInfo> out;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    err = cudaGetDeviceProperties(&p, i);
    if (err != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("cudaGetDeviceProperties(", i, "): ", cudaGetErrorString(err)));
    }
    out.push_back({i, p.name, p.major, p.minor, static_cast<uint64_t>(p.totalGlobalMem),
                   p.multiProcessorCount});
  }
  return out;
#else
  return absl::UnavailableError("this build of Strata has no CUDA backend (nvcc was not found)");
#endif
}

}  // namespace strata::gpu
