// Device memory of the CUDA backend (gpu/internal/cuda_backend.cu, its only includer): a pool of
// blocks per backend for tensors, and a scratch buffer that grows for the scratch between the
// kernels of one call. Both rely on the backend running everything on one stream.
#ifndef STRATA_GPU_INTERNAL_CUDA_MEMORY_H_
#define STRATA_GPU_INTERNAL_CUDA_MEMORY_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "gpu/internal/cuda_check.h"

namespace strata::gpu::internal {

// Device memory recycled by the backend that allocated it. cudaMalloc costs tens of microseconds
// and cudaFree waits for the whole device, while the decoder allocates its activations for every
// step. A tensor's block goes back to its backend's pool when the tensor dies and is handed out
// again for a request of the same size (rounded up to 256 bytes), so a reused block has the
// bounds compute-sanitizer knows it by. Reuse is safe in stream order: a backend runs everything
// on its one stream, so the kernels that used a block run before any that reuse it. Idle blocks
// are kept up to kIdleBytes per pool; past that, for blocks whose backend is gone, and when
// STRATA_CUDA_POOL=0 (every block freed at once, for memory checkers), they go back to CUDA. All
// pools share one registry of blocks under one lock; cudaFree runs outside it.
class BlockPool final {
 public:
  explicit BlockPool(int device) : device_(device) {}
  ~BlockPool() {
    std::vector<void*> idle;
    {
      MutexLock lock(&Mu());
      for (const auto& [bytes, p] : idle_) {
        Owners().erase(p);
        idle.push_back(p);
      }
      idle_.clear();
      for (auto& [p, owner] : Owners()) {
        if (owner.pool == this) owner.pool = nullptr;  // freed when its tensor dies
      }
    }
    for (void* p : idle) cudaFree(p);
  }
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  absl::StatusOr<void*> Take(size_t bytes) {
    bytes = std::max<size_t>(256, (bytes + 255) / 256 * 256);
    {
      MutexLock lock(&Mu());
      if (auto it = idle_.find(bytes); it != idle_.end()) {
        void* p = it->second;
        idle_bytes_ -= it->first;
        idle_.erase(it);
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err == cudaErrorMemoryAllocation) {  // every pool's idle blocks may be what is missing
      (void)cudaGetLastError();
      ReleaseAllIdle();
      err = cudaMalloc(&p, bytes);
    }
    CUDA_RETURN_IF_ERROR(err);
    MutexLock lock(&Mu());
    Owners()[p] = {this, bytes};
    return p;
  }

  // A Tensor's Free.
  static void Release(void* p) {
    static const bool reuse = [] {
      const char* v = std::getenv("STRATA_CUDA_POOL");
      return v == nullptr || std::string(v) != "0";
    }();
    int device = -1;
    {
      MutexLock lock(&Mu());
      auto it = Owners().find(p);
      if (it == Owners().end()) return;  // not ours (cannot happen: every block comes from Take)
      BlockPool* pool = it->second.pool;
      const size_t bytes = it->second.bytes;
      if (reuse && pool != nullptr && pool->idle_bytes_ + bytes <= kIdleBytes) {
        pool->idle_.emplace(bytes, p);
        pool->idle_bytes_ += bytes;
        return;
      }
      Owners().erase(it);
      if (pool != nullptr) device = pool->device_;
    }
    if (device >= 0) cudaSetDevice(device);
    cudaFree(p);
  }

 private:
  struct Owner {
    BlockPool* pool;  // null once the pool is destroyed
    size_t bytes;
  };
  static constexpr size_t kIdleBytes = size_t{1} << 30;
  static Mutex& Mu() {
    static auto* mu = new Mutex();
    return *mu;
  }
  static std::unordered_map<void*, Owner>& Owners() ABSL_EXCLUSIVE_LOCKS_REQUIRED(Mu()) {
    static auto* owners = new std::unordered_map<void*, Owner>();
    return *owners;
  }
  // Every pool's idle blocks back to CUDA (a failed cudaMalloc's second chance).
  static void ReleaseAllIdle() {
    std::vector<void*> idle;
    {
      MutexLock lock(&Mu());
      for (auto& [p, owner] : Owners()) {
        if (owner.pool != nullptr && owner.pool->idle_bytes_ > 0) {
          for (const auto& [bytes, q] : owner.pool->idle_) idle.push_back(q);
          owner.pool->idle_.clear();
          owner.pool->idle_bytes_ = 0;
        }
      }
      for (void* p : idle) Owners().erase(p);
    }
    for (void* p : idle) cudaFree(p);
  }

  const int device_;
  std::multimap<size_t, void*> idle_ ABSL_GUARDED_BY(Mu());  // by size
  size_t idle_bytes_ ABSL_GUARDED_BY(Mu()) = 0;
};

// Device memory that grows to the largest size asked of it (scratch between kernels of one call;
// the stream orders its reuse).
class DeviceScratch {
 public:
  DeviceScratch() = default;
  ~DeviceScratch() { cudaFree(p_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  absl::StatusOr<void*> Get(size_t bytes) {
    if (bytes > bytes_) {
      CUDA_RETURN_IF_ERROR(cudaFree(p_));  // waits for the kernels that used it
      p_ = nullptr;
      bytes_ = 0;
      CUDA_RETURN_IF_ERROR(cudaMalloc(&p_, bytes));
      bytes_ = bytes;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace strata::gpu::internal

#endif  // STRATA_GPU_INTERNAL_CUDA_MEMORY_H_
