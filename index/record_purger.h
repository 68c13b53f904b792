// RecordPurger: deletes the metadata-store records of dropped collections, on a thread of its own.
//
// A drop (Catalog::Drop) is one synced write: the collection's record goes and a purge record
// (PurgeKey) comes. What is left - every record keyed by the collection's id, in every family:
// millions for a large collection - is this class's to delete, key by key in synced batches, the
// purge record with the last batch. Meanwhile nothing reads those records (ids are never reused),
// so the drop returns, and a server starts, without waiting for them.
//
// Why key by key: RocksDB 7.8's range deletes abort its compactions after an I/O error or a power
// cut (PowerLoss.CollectionDropsAreWholeAcrossCuts reproduced it). Measured: 800,001 records of a
// 200K-vector collection in 2.2 s.
//
// A purge that fails (a full disk, a power cut) is logged and left, with its purge record, for the
// next start; so is one the destructor stops between two batches.
//
// Thread-safe.
#ifndef STRATA_INDEX_RECORD_PURGER_H_
#define STRATA_INDEX_RECORD_PURGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"
#include "storage/metadata_store.h"

namespace strata {

class RecordPurger final {
 public:
  // `store` must outlive the purger. `before_batch` (tests only; may be null) is called on the
  // purger's thread before each batch it writes, with the collection's id.
  explicit RecordPurger(MetadataStore* store,
                        std::function<void(uint32_t id)> before_batch = nullptr);
  // Stop(), then waits for the thread.
  ~RecordPurger();
  RecordPurger(const RecordPurger&) = delete;
  RecordPurger& operator=(const RecordPurger&) = delete;

  // The purge record of collection `id`, in the collections family: written with its drop,
  // deleted with its last record.
  static std::string PurgeKey(uint32_t id);
  // The collection a purge record names; nullopt for a key that is no purge record, DataLoss for
  // a malformed one.
  static absl::StatusOr<std::optional<uint32_t>> ParsePurgeKey(absl::string_view key);

  // Deletes the records of dropped collection `id` (whose purge record is written), after those
  // queued before it.
  void Enqueue(uint32_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns once every purge queued so far is done, has failed or was stopped (tests, tools).
  void WaitIdle() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops after the batch under way (or cancels the compaction under way) and drops the queue;
  // later Enqueues do nothing. What is left keeps its purge record, for the next start. Does not
  // wait.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Cancelled when the destructor stopped it between batches.
  absl::Status Purge(uint32_t id) ABSL_LOCKS_EXCLUDED(mu_);
  bool Stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  MetadataStore* const store_;
  const std::function<void(uint32_t)> before_batch_;
  mutable Mutex mu_;
  std::deque<uint32_t> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // a purge is under way
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stopping_{false};  // stop_, for RocksDB's compaction to read
  std::thread thread_;                 // started by the first Enqueue
};

}  // namespace strata

#endif  // STRATA_INDEX_RECORD_PURGER_H_
