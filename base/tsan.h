// Happens-before edges ThreadSanitizer cannot see for itself: an object one thread makes and
// another uses, handed over inside an uninstrumented library (gRPC creates a call's server
// interceptors on the thread that accepted the call and may run or destroy them on another).
// The maker calls TsanPublish(obj) when done writing it; each later user calls
// TsanReceive(obj) before reading it. No-ops outside the STRATA_TSAN build.
#ifndef STRATA_BASE_TSAN_H_
#define STRATA_BASE_TSAN_H_

#ifdef STRATA_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace strata {

#ifdef STRATA_TSAN
inline void TsanPublish(const void* p) { __tsan_release(const_cast<void*>(p)); }
inline void TsanReceive(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
#else
inline void TsanPublish(const void*) {}
inline void TsanReceive(const void*) {}
#endif

}  // namespace strata

#endif  // STRATA_BASE_TSAN_H_
