#include "storage/rocks_write_stop.h"

#include <utility>

#include "absl/strings/str_cat.h"
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

}  // namespace

std::string RocksWriteStop::refused() const {
  MutexLock lock(&mu_);
  return refused_;
}

void RocksWriteStop::Watch(std::function<void()> changed) {
  MutexLock lock(&watch_mu_);
  watcher_ = std::move(changed);
}

void RocksWriteStop::OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                                       rocksdb::Status* error) {
  if (!StopsWrites(reason, *error)) return;
  const bool no_space = error->IsNoSpace() || error->subcode() == rocksdb::Status::kNoSpace;
  std::string why =
      no_space ? absl::StrCat("the disk is full (", error->ToString(),
                              "): writes are refused until the server is restarted, once the "
                              "disk has room again")
               : absl::StrCat("a write to disk failed (", error->ToString(),
                              "): writes are refused until the server is restarted");
  {
    MutexLock lock(&mu_);
    if (!refused_.empty()) return;  // (stopped already: the first reason stays)
    refused_ = why;
  }
  Log(LogLevel::kError, "metadata store %s refuses every write: %s", dir_, why);
  MutexLock lock(&watch_mu_);
  if (watcher_) watcher_();
}

void RocksWriteStop::OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason,
                                          rocksdb::Status error, bool* auto_recovery) {
  // (See the file comment: a stop lasts until the store is opened again.)
  if (StopsWrites(reason, error)) *auto_recovery = false;
}

}  // namespace strata
