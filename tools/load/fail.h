// How strata-load reports a failed load: one line on stderr, exit code 1.
#ifndef STRATA_TOOLS_LOAD_FAIL_H_
#define STRATA_TOOLS_LOAD_FAIL_H_

#include <cstdio>
#include <string>

namespace strata::load {

// Prints "strata-load: <msg>" on stderr; returns 1 (the exit code).
inline int Fail(const std::string& msg) {
  std::fprintf(stderr, "strata-load: %s\n", msg.c_str());
  return 1;
}

}  // namespace strata::load

#endif  // STRATA_TOOLS_LOAD_FAIL_H_
