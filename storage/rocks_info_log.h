// RocksDB's info log for a metadata store: its LOG file in the store's directory, written through
// an Env, with RocksDB's warnings and errors in the server's log too. Private to storage/.
//
// RocksDB's own file logger must not be used: in Debian's build (assertions on), a write of it
// that fails (a full disk) leaves its writer in error, and its next line then aborts the process
// (WritableFileWriter::AssertFalseAndGetStatusForPrevError), which took the server down as soon
// as its disk filled. Here a line that cannot be written is dropped and counted; the next ones
// are tried again (and a LOG that could not be opened, at most every kRetryOpen), and once one
// is written again the count of those dropped is said, in LOG and in the server's log.
//
// The LOG of an earlier run, and LOG once it passes kRotateBytes, become LOG.old.<microseconds>
// (as RocksDB names them: a run that cannot open the store, because another process holds it,
// moves that process's LOG aside but overwrites nothing); the newest kKeepOld are kept.
#ifndef STRATA_STORAGE_ROCKS_INFO_LOG_H_
#define STRATA_STORAGE_ROCKS_INFO_LOG_H_

#include <cstdarg>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "rocksdb/env.h"
#include "storage/env.h"

namespace strata {

// Thread-safe.
class RocksInfoLog final : public rocksdb::Logger {
 public:
  static constexpr uint64_t kRotateBytes = 64 << 20;
  static constexpr int kKeepOld = 4;
  static constexpr absl::Duration kRetryOpen = absl::Seconds(10);

  // The log of the store in `dir` (which exists), through `env` (which outlives it). Never
  // fails: while LOG cannot be opened, the warnings and errors still reach the server's log.
  static std::shared_ptr<RocksInfoLog> Open(Env* env, const std::string& dir);

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;  // (RocksDB's: at INFO)
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override;

  // Lines that could not be written to LOG since the open.
  [[nodiscard]] uint64_t dropped() const;

 private:
  RocksInfoLog(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  // LOG moved to LOG.old.<now>, and the oldest LOG.old.* past kKeepOld removed.
  void MoveAside() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens a new LOG; file_ stays null when it cannot.
  void OpenFile() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `line`; false when it could not.
  bool Write(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Env* const env_;
  const std::string dir_;
  mutable Mutex mu_;
  std::unique_ptr<WritableFile> file_ ABSL_GUARDED_BY(mu_);
  absl::Time last_open_try_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t size_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;      // since the open
  uint64_t dropped_now_ ABSL_GUARDED_BY(mu_) = 0;  // since the last line written
  bool cut_ ABSL_GUARDED_BY(mu_) = false;          // a failed append may have left half a line
};

}  // namespace strata

#endif  // STRATA_STORAGE_ROCKS_INFO_LOG_H_
