// gRPC's and protobuf's own log lines (a failed TLS handshake, a connection reset, a request's
// string that is not UTF-8, ...) go through Strata's log, at most kGrpcLogBurst of them per
// kGrpcLogWindow: each is caused by a remote peer, so without a limit anyone who can connect
// could fill the server's disk with them (one line per plaintext connection to a TLS port, one
// per malformed request). Lines over the limit are counted and the count is logged when the
// next window opens. Assertion failures (logged just before the library aborts) always pass.
#ifndef STRATA_SERVICE_GRPC_LOG_H_
#define STRATA_SERVICE_GRPC_LOG_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace strata {

inline constexpr int kGrpcLogBurst = 20;
inline constexpr absl::Duration kGrpcLogWindow = absl::Seconds(10);

// Decides which lines of a stream pass: `burst` per `window`, the window starting with its first
// line. Thread-safe; the clock is the caller's (tests give their own times).
class LogRateLimiter final {
 public:
  LogRateLimiter(int burst, absl::Duration window) : burst_(burst), window_(window) {}

  // Whether a line at `now` passes. When it opens a new window after lines were dropped in the
  // last one, *dropped is set to their number (else 0), to be logged before the line.
  [[nodiscard]] bool Admit(absl::Time now, uint64_t* dropped);

 private:
  const int burst_;
  const absl::Duration window_;
  Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int passed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Routes gRPC's and protobuf's logs through Strata's (storage/log.h), rate-limited as above.
// Call once, before gRPC or protobuf is used (protobuf's handler is not thread-safe to set).
void RouteGrpcLogs();

}  // namespace strata

#endif  // STRATA_SERVICE_GRPC_LOG_H_
