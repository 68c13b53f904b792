#include "storage/read_fanout.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace strata {

struct ReadFanout::Call {
  Call(size_t parts, absl::FunctionRef<void(size_t)> f) : n(parts), fn(f) {}
  const size_t n;
  // Valid while the caller is inside Run: called only for a part claimed below n, and the caller
  // returns only once every claimed part is done.
  const absl::FunctionRef<void(size_t)> fn;
  std::atomic<size_t> next{0};  // the next part to claim
  Mutex mu;
  size_t done ABSL_GUARDED_BY(mu) = 0;
};

ReadFanout::ReadFanout(int helpers) {
  threads_.reserve(static_cast<size_t>(std::max(helpers, 0)));
  for (int i = 0; i < helpers; ++i) threads_.emplace_back([this] { Help(); });
}

ReadFanout::~ReadFanout() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

ReadFanout& ReadFanout::ForReads() {
  static ReadFanout* const fanout = new ReadFanout(3);  // (never destroyed: helpers outlive main)
  return *fanout;
}

void ReadFanout::RunParts(Call* call) {
  for (;;) {
    const size_t i = call->next.fetch_add(1, std::memory_order_relaxed);
    if (i >= call->n) return;
    call->fn(i);
    MutexLock lock(&call->mu);
    ++call->done;
  }
}

void ReadFanout::Run(size_t n, absl::FunctionRef<void(size_t)> fn) {
  if (n == 0) return;
  if (n == 1 || threads_.empty()) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto call = std::make_shared<Call>(n, fn);
  {
    MutexLock lock(&mu_);
    const size_t asked = std::min(n - 1, threads_.size());
    for (size_t i = 0; i < asked; ++i) queue_.push_back(call);
  }
  RunParts(call.get());
  // Every part is claimed now; wait for the ones helpers are still running.
  MutexLock lock(&call->mu);
  call->mu.Await(absl::Condition(
      +[](Call* c) ABSL_NO_THREAD_SAFETY_ANALYSIS { return c->done == c->n; }, call.get()));
}

void ReadFanout::Help() {
  for (;;) {
    std::shared_ptr<Call> call;
    {
      MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ReadFanout* f)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return f->stop_ || !f->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      call = std::move(queue_.front());
      queue_.pop_front();
    }
    RunParts(call.get());
  }
}

}  // namespace strata
