#include "storage/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace strata {
namespace {

LogLevel LevelFromEnv() {
  const char* v = std::getenv("STRATA_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kInfo;
  if (std::strcmp(v, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(v, "warning") == 0) return LogLevel::kWarning;
  if (std::strcmp(v, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<LogLevel>& Level() {
  static std::atomic<LogLevel> level{LevelFromEnv()};
  return level;
}

}  // namespace

LogLevel MinLogLevel() { return Level().load(std::memory_order_relaxed); }
void SetMinLogLevel(LogLevel level) { Level().store(level, std::memory_order_relaxed); }

void LogMessage(LogLevel level, absl::string_view msg) {
  static constexpr char kTags[] = {'D', 'I', 'W', 'E'};
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm;
  gmtime_r(&now, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  std::fprintf(stderr, "%c %s strata] %.*s\n", kTags[static_cast<int>(level)], ts,
               static_cast<int>(msg.size()), msg.data());
}

}  // namespace strata
