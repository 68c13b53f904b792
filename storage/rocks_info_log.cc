#include "storage/rocks_info_log.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/log.h"

namespace strata {
namespace {

const char* LevelTag(rocksdb::InfoLogLevel level) {
  switch (level) {
    case rocksdb::InfoLogLevel::DEBUG_LEVEL:
      return "[DEBUG] ";
    case rocksdb::InfoLogLevel::INFO_LEVEL:
      return "";
    case rocksdb::InfoLogLevel::WARN_LEVEL:
      return "[WARN] ";
    case rocksdb::InfoLogLevel::ERROR_LEVEL:
      return "[ERROR] ";
    case rocksdb::InfoLogLevel::FATAL_LEVEL:
      return "[FATAL] ";
    default:
      return "[HEADER] ";
  }
}

}  // namespace

std::shared_ptr<RocksInfoLog> RocksInfoLog::Open(Env* env, const std::string& dir) {
  std::shared_ptr<RocksInfoLog> log(new RocksInfoLog(env, dir));
  MutexLock lock(&log->mu_);
  log->MoveAside();
  log->OpenFile();
  return log;
}

void RocksInfoLog::MoveAside() {
  const std::string path = dir_ + "/LOG";
  if (env_->FileExists(path)) {
    int64_t micros = absl::ToUnixMicros(absl::Now());
    while (env_->FileExists(absl::StrCat(path, ".old.", micros))) ++micros;  // (never overwrite)
    const std::string to = absl::StrCat(path, ".old.", micros);
    if (absl::Status s = env_->RenameFile(path, to); !s.ok()) {
      strata::Log(LogLevel::kWarning, "metadata store: moving its info log aside: %s", s.message());
    }
  }
  absl::StatusOr<std::vector<std::string>> children = env_->GetChildren(dir_);
  if (!children.ok()) return;
  std::vector<std::string> old;
  for (const std::string& c : *children) {
    if (absl::StartsWith(c, "LOG.old.")) old.push_back(c);
  }
  // (Same-length names of microseconds: the order of the names is the order of the times.)
  std::sort(old.begin(), old.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  for (size_t i = 0; i + kKeepOld < old.size(); ++i) (void)env_->RemoveFile(dir_ + "/" + old[i]);
}

void RocksInfoLog::OpenFile() {
  last_open_try_ = absl::Now();
  // (Appending: a LOG that could not be moved aside is kept, not truncated.)
  absl::StatusOr<std::unique_ptr<WritableFile>> f = env_->OpenWritableFile(dir_ + "/LOG");
  if (!f.ok()) {
    if (dropped_now_ == 0) {
      strata::Log(LogLevel::kWarning, "metadata store: its info log cannot be opened (%s)",
                  f.status().message());
    }
    return;
  }
  file_ = *std::move(f);
  size_ = 0;
  cut_ = false;
}

bool RocksInfoLog::Write(const std::string& line) {
  // After a failed append, a new line first: the failed one may have left half of it.
  const std::string text = cut_ ? "\n" + line : line;
  if (absl::Status s = file_->Append(text); !s.ok()) {
    cut_ = true;
    if (dropped_now_ == 0) {
      strata::Log(LogLevel::kWarning,
                  "metadata store: a line of its info log could not be written (%s); lines are "
                  "dropped until one can be",
                  s.message());
    }
    return false;
  }
  cut_ = false;
  size_ += text.size();
  return true;
}

void RocksInfoLog::Logv(const char* format, va_list ap) {
  Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
}

void RocksInfoLog::Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) {
  if (level < GetInfoLogLevel()) return;
  std::string text(1024, '\0');
  va_list copy;
  va_copy(copy, ap);
  const int n = std::vsnprintf(text.data(), text.size(), format, copy);
  va_end(copy);
  if (n < 0) return;
  if (static_cast<size_t>(n) >= text.size()) {
    // (RocksDB's statistics dump is one line of several KiB.)
    text.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(text.data(), text.size(), format, ap);
  }
  text.resize(static_cast<size_t>(n));
  // (Some of RocksDB's lines end with their own newline: one is enough.)
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (level >= rocksdb::InfoLogLevel::WARN_LEVEL && level != rocksdb::InfoLogLevel::HEADER_LEVEL) {
    strata::Log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? LogLevel::kError : LogLevel::kWarning,
                "metadata store: %s", text);
  }
  const absl::Time now = absl::Now();
  const std::string line =
      absl::StrCat(absl::FormatTime("%Y/%m/%d-%H:%M:%E6S ", now, absl::UTCTimeZone()),
                   LevelTag(level), text, "\n");
  MutexLock lock(&mu_);
  if (file_ != nullptr && size_ + line.size() > kRotateBytes) {
    (void)file_->Close();
    file_.reset();
    MoveAside();
    OpenFile();
  } else if (file_ == nullptr && now - last_open_try_ >= kRetryOpen) {
    OpenFile();
  }
  if (file_ == nullptr || !Write(line)) {
    ++dropped_;
    ++dropped_now_;
    return;
  }
  if (dropped_now_ > 0) {
    const std::string said = absl::StrCat(dropped_now_, " lines before this one were dropped");
    strata::Log(LogLevel::kWarning, "metadata store: its info log is written again (%s)", said);
    (void)Write(absl::StrCat(absl::FormatTime("%Y/%m/%d-%H:%M:%E6S ", now, absl::UTCTimeZone()),
                             "[WARN] (", said, ")\n"));
    dropped_now_ = 0;
  }
}

uint64_t RocksInfoLog::dropped() const {
  MutexLock lock(&mu_);
  return dropped_;
}

}  // namespace strata
