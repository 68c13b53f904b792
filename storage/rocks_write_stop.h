// Whether a metadata store's RocksDB refuses writes now, and why. Private to storage/.
//
// RocksDB stops every write after a write-ahead log write or a flush fails (a "hard" background
// error). After any failure but a full disk (an I/O error) writes stay refused until the store is
// opened again, unless RocksDB's own retries of a retryable error succeed. On a full disk RocksDB
// would resume by itself only once a reserve is free (its SstFileManager waits for the largest
// memtable's size, 64 MiB here, which a small disk that its write-ahead log's preallocation
// takes ~70 MiB of never has): this listener turns that off, and the store resumes instead
// (MetadataStore: DB::Resume every few seconds while writes are refused for a full disk).
// RocksDB says none of this through its API; its listener calls do, and this listener keeps what
// they said.
#ifndef STRATA_STORAGE_ROCKS_WRITE_STOP_H_
#define STRATA_STORAGE_ROCKS_WRITE_STOP_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "rocksdb/listener.h"

namespace strata {

// Thread-safe.
class RocksWriteStop final : public rocksdb::EventListener {
 public:
  // `dir`: the store's (for the server's log); `resume_every`: how often the store tries to
  // resume writes after a full disk (said in refused()).
  RocksWriteStop(std::string dir, absl::Duration resume_every)
      : dir_(std::move(dir)), resume_every_(resume_every) {}

  // Why writes are refused now, and what ends it; empty while they are taken.
  [[nodiscard]] std::string refused() const;
  // Whether writes are refused for a full disk (the store's to resume).
  [[nodiscard]] bool refused_for_full_disk() const;
  // `changed` (may be empty) is called after each change of refused(), on the RocksDB thread
  // that saw it (a writer's, a flush's or the recovery's), with no lock of the store held: it may
  // call refused(), and must not call into the store. Returns once no call of the previous
  // watcher runs.
  void Watch(std::function<void()> changed);

  // rocksdb::EventListener (RocksDB calls these with its own mutex released).
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) override;
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status error,
                            bool* auto_recovery) override;
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override;

 private:
  void Set(std::string why, bool full_disk);

  const std::string dir_;
  const absl::Duration resume_every_;
  mutable Mutex mu_;
  std::string refused_ ABSL_GUARDED_BY(mu_);
  bool full_disk_ ABSL_GUARDED_BY(mu_) = false;
  // Held while the watcher runs, so that Watch can wait for it (never with mu_ held).
  Mutex watch_mu_;
  std::function<void()> watcher_ ABSL_GUARDED_BY(watch_mu_);
};

}  // namespace strata

#endif  // STRATA_STORAGE_ROCKS_WRITE_STOP_H_
