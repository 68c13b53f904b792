#include "gpu/internal/thread_pool.h"

#include <omp.h>

#include <chrono>
#include <exception>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace strata::gpu::cpu {
namespace {

// How long an idle worker spins for the next loop before sleeping.
constexpr auto kSpin = std::chrono::microseconds(500);

inline void Relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { Work(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    MutexLock lock(&sleep_mu_);
    ++sleep_epoch_;
  }
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunChunks() {
  try {
    while (true) {
      const int64_t begin = next_.fetch_add(chunk_);
      if (begin >= n_) return;
      (*fn_)(begin, std::min(n_, begin + chunk_));
    }
  } catch (...) {
    // The first exception is rethrown on the caller once every thread has left fn; the chunks
    // not yet taken are skipped.
    next_.store(n_);
    MutexLock lock(&error_mu_);
    if (error_ == nullptr) error_ = std::current_exception();
  }
}

void ThreadPool::Work(int /*index*/) {
  uint64_t seen = 0;
  while (true) {
    // Spin for the next loop, then sleep until one starts.
    const auto until = std::chrono::steady_clock::now() + kSpin;
    while (epoch_.load(std::memory_order_acquire) == seen && !stop_.load()) {
      Relax();
      if (std::chrono::steady_clock::now() > until) {
        MutexLock lock(&sleep_mu_);
        auto woken = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sleep_mu_) {
          return sleep_epoch_ != seen || stop_.load();
        };
        sleep_mu_.Await(absl::Condition(&woken));
      }
    }
    if (stop_.load()) return;
    seen = epoch_.load(std::memory_order_acquire);
    RunChunks();
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int t = threads();
  if (t == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  MutexLock call(&call_mu_);
  fn_ = &fn;
  n_ = n;
  // About four chunks per thread: small enough to balance, large enough to stay sequential.
  chunk_ = std::max<int64_t>(grain, (n + 4 * t - 1) / (4 * t));
  next_.store(0);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  const uint64_t e = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  {
    MutexLock lock(&sleep_mu_);
    sleep_epoch_ = e;
  }
  RunChunks();
  while (pending_.load(std::memory_order_acquire) > 0) Relax();
  fn_ = nullptr;
  std::exception_ptr error;
  {
    MutexLock lock(&error_mu_);
    std::swap(error, error_);
  }
  if (error != nullptr) std::rethrow_exception(error);
}

ThreadPool& Pool() {
  static ThreadPool* pool = new ThreadPool(omp_get_max_threads());
  return *pool;
}

}  // namespace strata::gpu::cpu
