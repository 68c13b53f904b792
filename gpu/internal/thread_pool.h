// The decoder's worker threads. A decode step is hundreds of small parallel loops a few
// microseconds apart (a matrix-vector product per projection per layer); OpenMP's workers
// throttle their spinning as soon as more OpenMP threads exist than cores (the server has teams
// for the encoder, the generator and calls computing passage caches) and then sleep and wake
// through the kernel at every loop, which halved decode speed on 2 cores. These workers spin for
// a while after each loop (kSpin) before sleeping, so a running generation keeps them hot and an
// idle server does not burn a core.
//
// One process-wide pool (Pool()), sized to the OpenMP thread count; the caller works too. Calls
// from several threads at once take turns. Not reentrant: fn must not call ParallelFor.
#ifndef STRATA_GPU_INTERNAL_THREAD_POOL_H_
#define STRATA_GPU_INTERNAL_THREAD_POOL_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace strata::gpu::cpu {

class ThreadPool final {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end) over [0, n) in chunks of at least `grain`, spread over the workers and the
  // caller; returns when all are done. An exception fn throws (on any thread) stops the chunks
  // not yet started and is rethrown here once no thread is inside fn any more.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void Work(int index);
  // Runs chunks of the current loop until none are left.
  void RunChunks();

  std::vector<std::thread> workers_;
  Mutex call_mu_;  // one loop at a time

  // The current loop.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};  // workers still inside the current loop
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> stop_{false};
  Mutex error_mu_;
  std::exception_ptr error_ ABSL_GUARDED_BY(error_mu_);
  Mutex sleep_mu_;
  uint64_t sleep_epoch_ ABSL_GUARDED_BY(sleep_mu_) = 0;
};

ThreadPool& Pool();

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_THREAD_POOL_H_
