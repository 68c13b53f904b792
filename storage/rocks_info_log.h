// RocksDB's info log for a metadata store: its LOG file in the store's directory, written through
// an Env, with RocksDB's warnings and errors in the server's log too. Private to storage/.
//
// RocksDB's own file logger must not be used: in Debian's build (assertions on), a write of it
// that fails (a full disk) leaves its writer in error, and its next line then aborts the process
// (WritableFileWriter::AssertFalseAndGetStatusForPrevError), which took the server down as soon
// as its disk filled. Here a line that cannot be written is dropped and counted, and the lines
// after it are tried again. LOG grows to kRotateBytes, then becomes LOG.old (one kept).
#ifndef STRATA_STORAGE_ROCKS_INFO_LOG_H_
#define STRATA_STORAGE_ROCKS_INFO_LOG_H_

#include <cstdarg>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "rocksdb/env.h"
#include "storage/env.h"

namespace strata {

// Thread-safe.
class RocksInfoLog final : public rocksdb::Logger {
 public:
  static constexpr uint64_t kRotateBytes = 64 << 20;

  // The log of the store in `dir` (which exists), through `env` (which outlives it). A LOG left
  // by an earlier run becomes LOG.old. Never fails: a LOG that cannot be opened leaves the
  // warnings and errors in the server's log only (said there once).
  static std::shared_ptr<RocksInfoLog> Open(Env* env, const std::string& dir);

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;  // (RocksDB's: at INFO)
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override;

  // Lines that could not be written to LOG since the open.
  [[nodiscard]] uint64_t dropped() const;

 private:
  RocksInfoLog(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  // Opens LOG again (after a rotation, or a failed open); null when it cannot.
  void Reopen() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Env* const env_;
  const std::string dir_;
  mutable Mutex mu_;
  std::unique_ptr<WritableFile> file_ ABSL_GUARDED_BY(mu_);
  uint64_t size_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool said_ ABSL_GUARDED_BY(mu_) = false;  // the first failure, in the server's log
};

}  // namespace strata

#endif  // STRATA_STORAGE_ROCKS_INFO_LOG_H_
