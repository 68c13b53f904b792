#include "storage/rocks_write_stop.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "storage/log.h"

namespace strata {
namespace {

// Whether an error RocksDB reports stops its writes. Errors come with the severity RocksDB gave
// them, except retryable I/O errors (a file-scoped one), which come before it is given: those
// stop writes unless a compaction, or a flush with nothing in the log, met them (RocksDB's
// ErrorHandler, 7.8). With paranoid checks on (RocksDB's default, and the store's), no other
// error comes without a severity.
bool StopsWrites(rocksdb::BackgroundErrorReason reason, const rocksdb::Status& error) {
  if (error.ok()) return false;
  if (error.severity() >= rocksdb::Status::Severity::kHardError) return true;
  if (error.severity() != rocksdb::Status::Severity::kNoError) return false;
  return reason != rocksdb::BackgroundErrorReason::kCompaction &&
         reason != rocksdb::BackgroundErrorReason::kFlushNoWAL &&
         reason != rocksdb::BackgroundErrorReason::kManifestWriteNoWAL;
}

bool IsNoSpace(const rocksdb::Status& error) {
  return error.IsNoSpace() || error.subcode() == rocksdb::Status::kNoSpace;
}

}  // namespace

std::string RocksWriteStop::refused() const {
  MutexLock lock(&mu_);
  return refused_;
}

bool RocksWriteStop::refused_for_full_disk() const {
  MutexLock lock(&mu_);
  return full_disk_;
}

void RocksWriteStop::Watch(std::function<void()> changed) {
  MutexLock lock(&watch_mu_);
  watcher_ = std::move(changed);
}

void RocksWriteStop::OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                                       rocksdb::Status* error) {
  if (!StopsWrites(reason, *error)) return;
  if (IsNoSpace(*error) && error->severity() < rocksdb::Status::Severity::kFatalError) {
    Set(absl::StrCat("the disk is full (", error->ToString(),
                     "): writes resume by themselves once there is room for what the store "
                     "holds in memory (it tries every ",
                     absl::FormatDuration(resume_every_), ")"),
        /*full_disk=*/true);
  } else if (error->severity() >= rocksdb::Status::Severity::kFatalError) {
    Set(absl::StrCat("a write to disk failed (", error->ToString(),
                     "): writes are refused until the server restarts"),
        false);
  } else {
    Set(absl::StrCat("a write to disk failed (", error->ToString(),
                     "): writes are refused until RocksDB's own retries succeed or the server "
                     "restarts"),
        false);
  }
}

void RocksWriteStop::OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason,
                                          rocksdb::Status error, bool* auto_recovery) {
  // A full disk's stop is the store's to end (see the file comment); RocksDB's recovery of the
  // errors that do not stop writes (a compaction's) stays on.
  if (IsNoSpace(error) && StopsWrites(reason, error)) *auto_recovery = false;
}

void RocksWriteStop::OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) {
  if (info.new_bg_error.ok()) Set("", false);
}

void RocksWriteStop::Set(std::string why, bool full_disk) {
  {
    MutexLock lock(&mu_);
    full_disk_ = full_disk;
    if (refused_ == why) return;
    refused_ = why;
  }
  if (why.empty()) {
    Log(LogLevel::kInfo, "metadata store %s takes writes again", dir_);
  } else {
    Log(LogLevel::kError, "metadata store %s refuses every write: %s", dir_, why);
  }
  MutexLock lock(&watch_mu_);
  if (watcher_) watcher_();
}

}  // namespace strata
