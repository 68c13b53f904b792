#include "storage/rocks_info_log.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/log.h"

namespace strata {

std::shared_ptr<RocksInfoLog> RocksInfoLog::Open(Env* env, const std::string& dir) {
  std::shared_ptr<RocksInfoLog> log(new RocksInfoLog(env, dir));
  const std::string path = dir + "/LOG";
  if (env->FileExists(path)) (void)env->RenameFile(path, path + ".old");
  MutexLock lock(&log->mu_);
  log->Reopen();
  return log;
}

void RocksInfoLog::Reopen() {
  file_.reset();
  size_ = 0;
  absl::StatusOr<std::unique_ptr<WritableFile>> f = env_->OpenWritableFile(dir_ + "/LOG");
  if (f.ok()) {
    file_ = *std::move(f);
  } else if (!said_) {
    said_ = true;
    strata::Log(LogLevel::kWarning, "metadata store: its info log cannot be written (%s)",
                f.status().message());
  }
}

void RocksInfoLog::Logv(const char* format, va_list ap) {
  Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
}

void RocksInfoLog::Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) {
  if (level < GetInfoLogLevel()) return;
  char buf[2048];
  const int n = std::vsnprintf(buf, sizeof buf, format, ap);
  if (n < 0) return;
  const absl::string_view text(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  if (level >= rocksdb::InfoLogLevel::WARN_LEVEL) {
    strata::Log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? LogLevel::kError : LogLevel::kWarning,
                "metadata store: %s", text);
  }
  const std::string line = absl::StrCat(
      absl::FormatTime("%Y/%m/%d-%H:%M:%E6S ", absl::Now(), absl::UTCTimeZone()), text, "\n");
  MutexLock lock(&mu_);
  if (file_ != nullptr && size_ + line.size() > kRotateBytes) {
    (void)file_->Close();
    file_.reset();
    (void)env_->RenameFile(dir_ + "/LOG", dir_ + "/LOG.old");
    Reopen();
  }
  if (file_ == nullptr) {
    ++dropped_;
    return;
  }
  if (absl::Status s = file_->Append(line); !s.ok()) {
    // (A full disk, most likely: the line is lost, the next one is tried.)
    ++dropped_;
    if (!said_) {
      said_ = true;
      strata::Log(LogLevel::kWarning,
                  "metadata store: a line of its info log could not be written (%s); such lines "
                  "are dropped",
                  s.message());
    }
    return;
  }
  size_ += line.size();
}

uint64_t RocksInfoLog::dropped() const {
  MutexLock lock(&mu_);
  return dropped_;
}

}  // namespace strata
