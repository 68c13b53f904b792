// Loads the CUDA backend from its own module, libstrata_cuda.so, next to the running binary (or
// at $STRATA_CUDA_MODULE). The module - not the binaries - links cuBLAS: cuBLASLt's ~94 KiB of
// static thread-local storage, added to every thread of a process that links it, breaks small-
// stack threads (civetweb's /metrics server among them), and CPU-only runs need none of it.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "gpu/internal/cuda_backend.h"
#include "storage/log.h"

namespace strata::gpu {
namespace {

// The module's entry point (C linkage): a new backend, or null with the reason in `error`.
using CreateFn = Backend* (*)(int device, char* error, size_t error_size);

std::string ModulePath() {
  const char* env = std::getenv("STRATA_CUDA_MODULE");
  if (env != nullptr && *env != '\0') return env;
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "libstrata_cuda.so";
  std::string dir(exe, static_cast<size_t>(n));
  dir.resize(dir.rfind('/') + 1);
  return dir + "libstrata_cuda.so";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(int device) {
#ifndef STRATA_HAVE_CUDA
  (void)device;
  return absl::UnavailableError("this build of Strata has no CUDA backend (nvcc was not found)");
#else
  // Loaded once and never unloaded: backends and tensors point into it.
  static std::once_flag once;
  static CreateFn create = nullptr;
  static std::string load_error;
  std::call_once(once, [] {
    const std::string path = ModulePath();
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      load_error = absl::StrCat("cannot load the CUDA module ", path, ": ", dlerror());
      return;
    }
    create = reinterpret_cast<CreateFn>(dlsym(handle, "StrataCreateCudaBackend"));
    if (create == nullptr) load_error = absl::StrCat(path, " has no StrataCreateCudaBackend");
  });
  if (create == nullptr) return absl::UnavailableError(load_error);
  char error[512] = {0};
  Backend* b = create(device, error, sizeof error);
  if (b == nullptr) return absl::UnavailableError(error);
  return std::unique_ptr<Backend>(b);
#endif
}

}  // namespace strata::gpu
