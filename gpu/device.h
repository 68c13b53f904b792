// CUDA device discovery: the first piece of the GPU engine (gpu/). Built against the CUDA runtime
// when nvcc is found at configure time (STRATA_HAVE_CUDA); otherwise every call reports that this
// build has no CUDA backend, and callers take the CPU path.
#ifndef STRATA_GPU_DEVICE_H_
#define STRATA_GPU_DEVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace strata::gpu {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  uint64_t memory_bytes = 0;
  int multiprocessors = 0;
};

// Whether this binary was built with the CUDA backend.
[[nodiscard]] bool BuiltWithCuda();

// The CUDA devices visible to this process. An empty list when the machine has no GPU or no driver
// (the normal case on CPU-only machines); Unavailable when the build has no CUDA backend; Internal
// for any other CUDA error, with CUDA's message.
[[nodiscard]] absl::StatusOr<std::vector<DeviceInfo>> ListDevices();

}  // namespace strata::gpu

#endif  // STRATA_GPU_DEVICE_H_
