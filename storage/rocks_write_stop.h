// Whether a metadata store's RocksDB refuses writes now, and why. Private to storage/.
//
// RocksDB stops every write after a write-ahead log write or a flush fails (a "hard" background
// error: a full disk, an I/O error). RocksDB 7.8 (Debian's) can resume in the process, by itself
// or through DB::Resume, but not safely: after a log write failed while every memtable was empty,
// the next write aborts the process on an assertion (the log writer keeps its error), and after
// any resume a waiting flush no longer waits (ErrorHandler::ClearBGError leaves is_db_stopped_
// set; fixed in RocksDB 8.9), which breaks the bulk load's durability barrier. So this listener
// turns RocksDB's own recovery off for every error that stops writes, and writes stay refused
// until the store is opened again (a restart, once the disk has room or is fixed). Errors that
// do not stop writes (a compaction's full disk: a "soft" error) keep RocksDB's recovery.
// RocksDB says none of this through its API; its listener calls do, and this listener keeps what
// they said.
#ifndef STRATA_STORAGE_ROCKS_WRITE_STOP_H_
#define STRATA_STORAGE_ROCKS_WRITE_STOP_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "rocksdb/listener.h"

namespace strata {

// Thread-safe.
class RocksWriteStop final : public rocksdb::EventListener {
 public:
  // `dir`: the store's (for the server's log).
  explicit RocksWriteStop(std::string dir) : dir_(std::move(dir)) {}

  // Why writes are refused now, and what ends it; empty while they are taken. The first stop's
  // reason stays (later errors of a stopped store say nothing new).
  [[nodiscard]] std::string refused() const;
  // `changed` (may be empty) is called after refused() changed, on the RocksDB thread that saw it
  // (a writer's or a flush's), with no lock of the store held: it may call refused(), and must
  // not call into the store. Returns once no call of the previous watcher runs.
  void Watch(std::function<void()> changed);

  // rocksdb::EventListener (RocksDB calls these with its own mutex released).
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) override;
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status error,
                            bool* auto_recovery) override;

 private:
  const std::string dir_;
  mutable Mutex mu_;
  std::string refused_ ABSL_GUARDED_BY(mu_);
  // Held while the watcher runs, so that Watch can wait for it (never with mu_ held).
  Mutex watch_mu_;
  std::function<void()> watcher_ ABSL_GUARDED_BY(watch_mu_);
};

}  // namespace strata

#endif  // STRATA_STORAGE_ROCKS_WRITE_STOP_H_
