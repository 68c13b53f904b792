// Whether a metadata store's RocksDB refuses writes now, and why. Private to storage/.
//
// RocksDB stops every write after a write-ahead log write or a flush fails (a "hard" background
// error). On a full disk it then resumes by itself: its SstFileManager looks at the free space
// every 5 s and resumes once a reserve is free (the largest column family's memtable, 64 MiB
// here). After any other failure (an I/O error) writes stay refused until the store is opened
// again. RocksDB says none of this through its API; its listener calls do, and this listener
// keeps what they said.
#ifndef STRATA_STORAGE_ROCKS_WRITE_STOP_H_
#define STRATA_STORAGE_ROCKS_WRITE_STOP_H_

#include <cstdint>
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
  // `dir`: the store's (for the server's log); `reserve_bytes`: the free space RocksDB waits for
  // after a full disk.
  RocksWriteStop(std::string dir, uint64_t reserve_bytes)
      : dir_(std::move(dir)), reserve_bytes_(reserve_bytes) {}

  // Why writes are refused now, and what ends it; empty while they are taken.
  [[nodiscard]] std::string refused() const;
  // `changed` (may be empty) is called after each change of refused(), on the RocksDB thread
  // that saw it (a writer's, a flush's or the recovery's), with no lock of the store held: it may
  // call refused(), and must not call into the store. Returns once no call of the previous
  // watcher runs.
  void Watch(std::function<void()> changed);

  // rocksdb::EventListener (RocksDB calls these with its own mutex released).
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) override;
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override;

 private:
  void Set(std::string why);

  const std::string dir_;
  const uint64_t reserve_bytes_;
  mutable Mutex mu_;
  std::string refused_ ABSL_GUARDED_BY(mu_);
  // Held while the watcher runs, so that Watch can wait for it (never with mu_ held).
  Mutex watch_mu_;
  std::function<void()> watcher_ ABSL_GUARDED_BY(watch_mu_);
};

}  // namespace strata

#endif  // STRATA_STORAGE_ROCKS_WRITE_STOP_H_
