#include "service/grpc_log.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "grpc/support/log.h"
#include "storage/log.h"

namespace strata {

bool LogRateLimiter::Admit(absl::Time now, uint64_t* dropped) {
  MutexLock lock(&mu_);
  *dropped = 0;
  if (now - window_start_ >= window_) {
    *dropped = dropped_;
    window_start_ = now;
    passed_ = 0;
    dropped_ = 0;
  }
  if (passed_ < burst_) {
    ++passed_;
    return true;
  }
  ++dropped_;
  return false;
}

namespace {

LogRateLimiter& Limiter() {
  static auto* limiter = new LogRateLimiter(kGrpcLogBurst, kGrpcLogWindow);
  return *limiter;
}

void FromGrpc(gpr_log_func_args* args) {
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  if (level < MinLogLevel()) return;
  const char* message = args->message != nullptr ? args->message : "";
  uint64_t dropped = 0;
  if (!absl::StartsWith(message, "assertion failed") && !Limiter().Admit(absl::Now(), &dropped)) {
    return;
  }
  if (dropped > 0) {
    Log(LogLevel::kWarning,
        "grpc: %d more log lines in the last %d s were not written (at most %d "
        "per window: they come from remote peers)",
        dropped, absl::ToInt64Seconds(kGrpcLogWindow), kGrpcLogBurst);
  }
  const char* file = args->file != nullptr ? args->file : "";
  const char* slash = std::strrchr(file, '/');
  Log(level, "grpc %s:%d: %s", slash != nullptr ? slash + 1 : file, args->line, message);
}

}  // namespace

void RouteGrpcLogs() { gpr_set_log_function(FromGrpc); }

}  // namespace strata
