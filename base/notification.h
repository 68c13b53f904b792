// strata::Notification: a one-shot event, as absl::Notification, built on strata::Mutex so that
// ThreadSanitizer sees what Notify publishes (see base/mutex.h). Notify at most once; waits may
// come from any number of threads, before or after it. Thread-safe.
#ifndef STRATA_BASE_NOTIFICATION_H_
#define STRATA_BASE_NOTIFICATION_H_

#include "absl/time/time.h"
#include "base/mutex.h"

namespace strata {

class Notification final {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
  }
  [[nodiscard]] bool HasBeenNotified() const {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() const {
    MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&notified_));
  }
  // Returns whether it was notified within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&notified_), timeout);
  }

 private:
  mutable Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace strata

#endif  // STRATA_BASE_NOTIFICATION_H_
