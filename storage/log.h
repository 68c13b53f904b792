// Minimal leveled logging to stderr. abseil 20220623 has no log library and the project avoids a
// logging dependency in the bottom layer; service/ may route this elsewhere later.
#ifndef STRATA_STORAGE_LOG_H_
#define STRATA_STORAGE_LOG_H_

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace strata {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo; STRATA_LOG_LEVEL=debug|info|warning|error.
LogLevel MinLogLevel();
void SetMinLogLevel(LogLevel level);
void LogMessage(LogLevel level, absl::string_view msg);

template <typename... Args>
void Log(LogLevel level, const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  if (level < MinLogLevel()) return;
  LogMessage(level, absl::StrFormat(fmt, args...));
}

}  // namespace strata

#endif  // STRATA_STORAGE_LOG_H_
