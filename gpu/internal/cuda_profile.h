// The CUDA backend's per-op timer (STRATA_CUDA_PROFILE); included only by
// gpu/internal/cuda_backend.cu.
#ifndef STRATA_GPU_INTERNAL_CUDA_PROFILE_H_
#define STRATA_GPU_INTERNAL_CUDA_PROFILE_H_

#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace strata::gpu::internal {

// STRATA_CUDA_PROFILE set: each op waits for the device before it returns, and its wall time
// (its host work, copies and kernels) is added up per op and printed to stderr when the backend
// is destroyed. For finding where the time goes; it slows everything down.
class OpProfile {
 public:
  OpProfile() : on_(std::getenv("STRATA_CUDA_PROFILE") != nullptr) {}
  ~OpProfile() {
    if (!on_ || ops_.empty()) return;
    double total = 0;
    for (const auto& [op, e] : ops_) total += e.seconds;
    std::fprintf(stderr, "cuda backend profile (STRATA_CUDA_PROFILE): %.3f s in ops\n", total);
    for (const auto& [op, e] : ops_) {
      std::fprintf(stderr, "  %-28s %9lld calls %10.3f ms %6.1f%% %8.1f us/call\n", op.c_str(),
                   static_cast<long long>(e.calls), e.seconds * 1e3, 100 * e.seconds / total,
                   e.seconds * 1e6 / static_cast<double>(e.calls));
    }
  }
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;
  [[nodiscard]] bool on() const { return on_; }
  void Add(const char* op, double seconds) {
    Entry& e = ops_[op];
    ++e.calls;
    e.seconds += seconds;
  }

 private:
  struct Entry {
    int64_t calls = 0;
    double seconds = 0;
  };
  const bool on_;
  std::map<std::string, Entry> ops_;
};

class ProfileScope {
 public:
  ProfileScope(OpProfile& p, const char* op, cudaStream_t stream)
      : p_(p), op_(op), stream_(stream), start_(std::chrono::steady_clock::now()) {}
  ~ProfileScope() {
    if (!p_.on()) return;
    cudaStreamSynchronize(stream_);
    p_.Add(op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  OpProfile& p_;
  const char* op_;
  cudaStream_t stream_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace strata::gpu::internal

#endif  // STRATA_GPU_INTERNAL_CUDA_PROFILE_H_
