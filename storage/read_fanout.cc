#include "storage/read_fanout.h"

#include <algorithm>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "base/check.h"

namespace strata {

struct ReadFanout::Call {
  Call(size_t parts, absl::FunctionRef<void(size_t)> f) : n(parts), fn(f) {}
  const size_t n;
  // Valid while the caller is inside Run: called only for a part claimed below n, and the caller
  // returns (or unwinds) only once no claimed part is running.
  const absl::FunctionRef<void(size_t)> fn;
  Mutex mu;
  size_t next ABSL_GUARDED_BY(mu) = 0;     // the next part to claim (n: none left)
  size_t running ABSL_GUARDED_BY(mu) = 0;  // parts claimed and not yet returned
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
    size_t i;
    {
      MutexLock lock(&call->mu);
      if (call->next >= call->n) return;
      i = call->next++;
      ++call->running;
    }
    call->fn(i);
    MutexLock lock(&call->mu);
    DCHECK(call->running > 0);
    --call->running;
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
    MutexLock lock(&call->mu);  // part 0 is the caller's
    call->next = 1;
    call->running = 1;
  }
  {
    MutexLock lock(&mu_);
    const size_t asked = std::min(n - 1, threads_.size());
    for (size_t i = 0; i < asked; ++i) queue_.push_back(call);
  }
  // Every part is claimed once this returns; then wait for the ones helpers are still running.
  // (Should fn throw here, no part is claimed any more and the helpers' parts are waited for all
  // the same: they use the caller's frame.)
  const auto wait_for_helpers = [&call] {
    MutexLock lock(&call->mu);
    call->mu.Await(absl::Condition(
        +[](Call* c) ABSL_NO_THREAD_SAFETY_ANALYSIS { return c->running == 0; }, call.get()));
  };
  try {
    fn(0);
    {
      MutexLock lock(&call->mu);
      --call->running;
    }
    RunParts(call.get());
  } catch (...) {
    {
      MutexLock lock(&call->mu);
      call->next = call->n;
      --call->running;  // the part that threw
    }
    wait_for_helpers();
    throw;
  }
  wait_for_helpers();
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
