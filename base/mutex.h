// strata::Mutex: the one mutex of Strata's code, with its scoped locks.
//
// In every build but ThreadSanitizer's it is absl::Mutex, forwarded inline. Debian's Abseil is not
// built with ThreadSanitizer, so TSan cannot see absl::Mutex hand memory from one thread to
// another (the futex hand-off happens inside the uninstrumented library) and reports races that
// are not there. With STRATA_TSAN defined (cmake -DSTRATA_TSAN=ON) the same class is a
// std::shared_mutex and a std::condition_variable_any, which TSan intercepts; it is slower (every
// Unlock wakes every waiter to re-check its condition) and only meant for that build.
//
// Semantics are absl::Mutex's for the operations below: Lock/Unlock exclusive, ReaderLock/
// ReaderUnlock shared, Await* with the lock held exclusively (absl::Condition is evaluated with
// the lock held, on whatever thread holds it). Not reentrant. Thread-safe.
#ifndef STRATA_BASE_MUTEX_H_
#define STRATA_BASE_MUTEX_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#ifdef STRATA_TSAN
#include <chrono>
#include <condition_variable>
#include <shared_mutex>
#endif

namespace strata {

class ABSL_LOCKABLE Mutex final {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION();
  void Unlock() ABSL_UNLOCK_FUNCTION();
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION();
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION();
  // Tell clang's lock analysis (-Wthread-safety) that the caller holds the lock, where it cannot
  // see it: in a lambda run under a lock its caller took. absl::Mutex checks that someone holds
  // it (in the ThreadSanitizer build, nothing is checked).
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK();
  void AssertReaderHeld() const ABSL_ASSERT_SHARED_LOCK();

  // With the lock held exclusively: releases it until cond holds, returns with it held.
  void Await(const absl::Condition& cond);
  // As Await, giving up after `timeout` / at `deadline`; returns whether cond holds (the lock is
  // held again either way).
  bool AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout);
  bool AwaitWithDeadline(const absl::Condition& cond, absl::Time deadline);

 private:
#ifdef STRATA_TSAN
  std::shared_mutex mu_;
  std::condition_variable_any changed_;
#else
  absl::Mutex mu_;
#endif
};

// Exclusive lock for a scope.
class ABSL_SCOPED_LOCKABLE MutexLock final {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Shared lock for a scope.
class ABSL_SCOPED_LOCKABLE ReaderMutexLock final {
 public:
  explicit ReaderMutexLock(Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) { mu_->ReaderLock(); }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Exclusive lock for a scope, named so where readers of the same mutex are the rule.
using WriterMutexLock = MutexLock;

#ifdef STRATA_TSAN

inline void Mutex::Lock() { mu_.lock(); }
inline void Mutex::Unlock() {
  // A waiter's condition may have become true under the lock being released. Woken before the
  // release, not after: once released, a waiter may return and destroy this mutex (as
  // absl::Mutex allows, and Notification relies on); the woken wait for mu_ to be free.
  changed_.notify_all();
  mu_.unlock();
}
inline void Mutex::ReaderLock() { mu_.lock_shared(); }
inline void Mutex::ReaderUnlock() { mu_.unlock_shared(); }
inline void Mutex::AssertHeld() const {}
inline void Mutex::AssertReaderHeld() const {}
// Waiting releases the lock, as Unlock does: what this thread changed under it may be what
// another waiter waits for, so they are woken once before the first wait (not at every wake-up,
// or two waiters would wake each other for ever).
inline void Mutex::Await(const absl::Condition& cond) {
  if (cond.Eval()) return;
  changed_.notify_all();
  do {
    changed_.wait(mu_);
  } while (!cond.Eval());
}
inline bool Mutex::AwaitWithDeadline(const absl::Condition& cond, absl::Time deadline) {
  if (cond.Eval()) return true;
  changed_.notify_all();
  const auto until = absl::ToChronoTime(deadline);
  do {
    if (changed_.wait_until(mu_, until) == std::cv_status::timeout) return cond.Eval();
  } while (!cond.Eval());
  return true;
}
inline bool Mutex::AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout) {
  return AwaitWithDeadline(cond, absl::Now() + timeout);
}

#else

inline void Mutex::Lock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.Lock(); }
inline void Mutex::Unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.Unlock(); }
inline void Mutex::ReaderLock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.ReaderLock(); }
inline void Mutex::ReaderUnlock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.ReaderUnlock(); }
inline void Mutex::AssertHeld() const { mu_.AssertHeld(); }
inline void Mutex::AssertReaderHeld() const { mu_.AssertReaderHeld(); }
inline void Mutex::Await(const absl::Condition& cond) { mu_.Await(cond); }
inline bool Mutex::AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout) {
  return mu_.AwaitWithTimeout(cond, timeout);
}
inline bool Mutex::AwaitWithDeadline(const absl::Condition& cond, absl::Time deadline) {
  return mu_.AwaitWithDeadline(cond, deadline);
}

#endif  // STRATA_TSAN

}  // namespace strata

#endif  // STRATA_BASE_MUTEX_H_
