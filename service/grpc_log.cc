#include "service/grpc_log.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"
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

// One line of `library` (gRPC or protobuf) at `file`:`line`, through the limiter unless
// `always` (a line just before the library aborts).
void Limited(const char* library, LogLevel level, bool always, const char* file, int line,
             const char* message) {
  if (level < MinLogLevel()) return;
  uint64_t dropped = 0;
  if (!always && !Limiter().Admit(absl::Now(), &dropped)) return;
  if (dropped > 0) {
    Log(LogLevel::kWarning,
        "%d more log lines of gRPC and protobuf in the last %d s were not written (at most %d "
        "per window: they come from remote peers)",
        dropped, absl::ToInt64Seconds(kGrpcLogWindow), kGrpcLogBurst);
  }
  file = file != nullptr ? file : "";
  const char* slash = std::strrchr(file, '/');
  Log(level, "%s %s:%d: %s", library, slash != nullptr ? slash + 1 : file, line, message);
}

void FromGrpc(gpr_log_func_args* args) {
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  const char* message = args->message != nullptr ? args->message : "";
  Limited("grpc", level, absl::StartsWith(message, "assertion failed"), args->file, args->line,
          message);
}

// Protobuf logs, among others, every string field of a request that is not UTF-8: a line per
// call that any caller can make, before its key is checked on a plaintext port.
void FromProtobuf(google::protobuf::LogLevel level, const char* file, int line,
                  const std::string& message) {
  const LogLevel ours = level >= google::protobuf::LOGLEVEL_ERROR     ? LogLevel::kError
                        : level == google::protobuf::LOGLEVEL_WARNING ? LogLevel::kWarning
                                                                      : LogLevel::kInfo;
  Limited("protobuf", ours, level == google::protobuf::LOGLEVEL_FATAL, file, line, message.c_str());
}

}  // namespace

void RouteGrpcLogs() {
  gpr_set_log_function(FromGrpc);
  google::protobuf::SetLogHandler(FromProtobuf);
}

}  // namespace strata
