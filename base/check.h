// DCHECK(condition): an invariant of Strata's own code (never a check of input, which gets a
// Status). Checked in debug builds and in the sanitizer builds (STRATA_DCHECK_ALWAYS_ON); a
// failure prints the condition and where it is, then aborts. Compiled out of release builds,
// where the condition is not evaluated: it must have no side effects.
#ifndef STRATA_BASE_CHECK_H_
#define STRATA_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

namespace strata::internal {

[[noreturn]] inline void DcheckFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: DCHECK failed: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace strata::internal

#if !defined(NDEBUG) || defined(STRATA_DCHECK_ALWAYS_ON)
#define DCHECK(condition)             \
  ((condition) ? static_cast<void>(0) \
               : ::strata::internal::DcheckFailed(#condition, __FILE__, __LINE__))
#else
#define DCHECK(condition) static_cast<void>(sizeof(static_cast<bool>(condition)))
#endif
#define DCHECK_EQ(a, b) DCHECK((a) == (b))

#endif  // STRATA_BASE_CHECK_H_
