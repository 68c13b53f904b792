// Durable metadata in RocksDB: one database, one column family per kind of record. Every write is
// a batch committed atomically through the write-ahead log; with `sync` the call returns only
// after the log is on disk, so an acknowledged write survives kill -9 and power loss.
//
// Recovery: a log whose last record was cut short by a crash is replayed up to it and the database
// opens. A log damaged *before* its end (a flipped byte, a bad sector) holds acknowledged writes
// beyond the damage that RocksDB cannot replay: in strict mode (the default) Open refuses with
// DataLoss saying how many write batches lie beyond it; in point-in-time mode it opens at the
// last intact record, dropping them, and says so loudly (recovery(), an error-level log).
//
// Keys are built by callers from big-endian integers (KeyU32/KeyU64 below) so that a prefix scan
// returns records in numeric order. Thread-safe: RocksDB serialises writers internally.
#ifndef STRATA_STORAGE_METADATA_STORE_H_
#define STRATA_STORAGE_METADATA_STORE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/env.h"

namespace strata {

// Column families. Values are part of the on-disk contract (storage/FORMAT.md): never renumber.
enum class Cf : int {
  kCollections = 0,  // collection name -> collection record
  kIdMap = 1,        // 'e' coll ext64 -> int32 ; 'i' coll int32 -> ext64
  kVersions = 2,     // coll int32 -> [version u8][flags u8]
  kPayloads = 3,     // coll int32 -> payload bytes
  kVectors = 4,      // coll int32 -> vector bytes (the collection's element type)
  kPostings = 5,     // coll int32 -> [version u8][posting32]...: a vector's appended entries
  kTenants = 6,      // 'n' coll tenant32 -> name ; 'm' coll tenant32 int32 -> "" (may see)
  kApiKeys = 7,      // key id -> tenant key record (service/tenant_keys.h)
  kHeads = 8,        // coll head32 -> an added head's vector, or "" for a retired built head
};
inline constexpr int kNumColumnFamilies = 9;
[[nodiscard]] const char* CfName(Cf cf);

// Big-endian key pieces.
void AppendU32(std::string* key, uint32_t v);
void AppendU64(std::string* key, uint64_t v);
[[nodiscard]] uint32_t ReadU32(absl::string_view bytes, size_t offset);
[[nodiscard]] uint64_t ReadU64(absl::string_view bytes, size_t offset);

// A set of writes applied atomically, in order, by MetadataStore::Write.
class WriteBatch final {
 public:
  // No range deletes: RocksDB 7.8 (Debian 12's) aborts on an assertion when a compaction whose
  // output holds only a range tombstone fails (an I/O error, a power cut): deletes go key by key
  // (PowerLoss.CollectionDropsAreWholeAcrossCuts, TenantViewsHoldExactlyAcrossCuts).
  enum class Op : uint8_t { kPut, kDelete };
  struct Entry {
    Op op;
    Cf cf;
    std::string key;
    std::string value;
  };

  WriteBatch() = default;
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void Put(Cf cf, absl::string_view key, absl::string_view value) {
    bytes_ += key.size() + value.size();
    entries_.push_back({Op::kPut, cf, std::string(key), std::string(value)});
  }
  void Delete(Cf cf, absl::string_view key) {
    bytes_ += key.size();
    entries_.push_back({Op::kDelete, cf, std::string(key), {}});
  }
  void Clear() {
    entries_.clear();
    bytes_ = 0;
  }
  [[nodiscard]] size_t count() const { return entries_.size(); }
  [[nodiscard]] size_t bytes() const { return bytes_; }
  [[nodiscard]] const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
  size_t bytes_ = 0;
};

enum class WalRecovery {
  kStrict,       // refuse to open a log damaged before its end
  kPointInTime,  // open at the last intact record, dropping the writes after it
};

// What Open found in the write-ahead log.
struct WalRecoveryReport {
  bool damaged = false;          // a record before the log's end failed its checksum
  uint64_t dropped_batches = 0;  // intact write batches after the damage, not replayed
  uint64_t dropped_bytes = 0;
  std::string detail;  // RocksDB's words and where; empty when not damaged
};

struct MetadataStoreOptions {
  bool create_if_missing = true;
  WalRecovery wal_recovery = WalRecovery::kStrict;
  size_t block_cache_bytes = 64 << 20;
  // Bounds on what writes leave unflushed, in bytes. Past `max_wal_bytes` of live write-ahead
  // log, the column families holding the oldest log's records are flushed, so that it can go
  // (without it a family written once pins every log after it: RocksDB's default bound is four
  // times the families' memtables, ~5 GB here, and a restart replays all of it); past
  // `max_memtable_bytes` of memtables in all families together, a family is flushed.
  size_t max_wal_bytes = size_t{256} << 20;
  size_t max_memtable_bytes = size_t{256} << 20;
  // Closing flushes every family, so that the next open applies nothing from the log (it still
  // reads the logs a family left empty since its last flush pins: at most max_wal_bytes). false:
  // close as a crash leaves the store (tests of log recovery).
  bool flush_at_close = true;
  // Where the files live (storage/env.h): null = the POSIX file system. RocksDB writes through
  // env->RocksDbFileSystem() when that is not null (else RocksDB's own), and its MultiGets read
  // table files through storage/uring_file_system.h over either. Must outlive the store.
  Env* env = nullptr;
  // How long Open waits for the directory's lock while another process holds it, trying again
  // every 200 ms (0: it fails at once). A process killed just before holds it until the kernel
  // has torn it down, which takes a while for a large one: a supervisor's restart waits.
  std::chrono::milliseconds lock_wait{0};
  // Tests: called once Open starts waiting for the lock (may be null).
  std::function<void()> test_lock_wait_started;
};

// A consistent view of the store at one moment (a RocksDB snapshot): reads at it see every write
// committed before it was taken and none after. Held by shared_ptr; the view ends with its last
// reference (the store must outlive it). While held, RocksDB keeps what it needs to answer it.
class StoreSnapshot {
 public:
  virtual ~StoreSnapshot() = default;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Opens (creating when allowed) the database in directory `path`. Unavailable when another
  // process holds it; DataLoss when RocksDB finds corruption it cannot recover from, or (strict
  // mode) a log damaged before its end, naming how many write batches lie beyond the damage.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MetadataStore>> Open(
      const std::string& path, const MetadataStoreOptions& options = {});

  // NotFound when the key is absent. `at`: read at that snapshot (null = the latest state).
  [[nodiscard]] virtual absl::StatusOr<std::string> Get(
      Cf cf, absl::string_view key, const StoreSnapshot* at = nullptr) const = 0;
  // Get of several keys in one batched lookup (cheaper per key than Get), in `keys`' order, all
  // read at one state of the store. A lookup of 256 keys or more runs as up to four sorted runs on
  // the read fan-out's threads (storage/read_fanout.h), so that their block reads are in flight
  // together.
  [[nodiscard]] virtual std::vector<absl::StatusOr<std::string>> MultiGet(
      Cf cf, absl::Span<const std::string> keys, const StoreSnapshot* at = nullptr) const = 0;
  // MultiGet whose values are lent to `use`, valid during the call, not copied (reads of large
  // values): values[i] is the value of keys[i], NotFound, or the error. Returns what `use` does.
  [[nodiscard]] virtual absl::Status MultiGetLent(
      Cf cf, absl::Span<const std::string> keys, const StoreSnapshot* at,
      absl::FunctionRef<absl::Status(absl::Span<const absl::StatusOr<absl::string_view>> values)>
          use) const = 0;
  // The store as of now (every write that has returned is in it).
  [[nodiscard]] virtual std::shared_ptr<const StoreSnapshot> Snapshot() const = 0;
  // `sync`: return only once the write-ahead log is on disk. `wal` = false skips the log (bulk
  // loads that Flush() before they report success).
  [[nodiscard]] virtual absl::Status Write(WriteBatch* batch, bool sync, bool wal = true) = 0;
  // Calls visit(key, value) for every key with `prefix`, in key order, until visit returns
  // non-OK (which is returned).
  [[nodiscard]] virtual absl::Status Scan(
      Cf cf, absl::string_view prefix,
      absl::FunctionRef<absl::Status(absl::string_view key, absl::string_view value)> visit)
      const = 0;
  // As Scan, for a one-off pass over many records (a dropped collection's purge, a build's read of
  // every vector): the blocks it reads stay out of the block cache, so the pass does not evict
  // what searches keep there.
  [[nodiscard]] virtual absl::Status Sweep(
      Cf cf, absl::string_view prefix,
      absl::FunctionRef<absl::Status(absl::string_view key, absl::string_view value)> visit)
      const = 0;
  // Bytes the block cache holds now (tests, metrics).
  [[nodiscard]] virtual uint64_t BlockCacheUsage() const = 0;
  // Table-file reads a MultiGet batched (storage/uring_file_system.h): MultiReads served by one
  // io_uring batch, the blocks in them, and MultiReads handed to RocksDB's own reads.
  struct BatchedReads {
    uint64_t ring_batches = 0;
    uint64_t ring_reads = 0;
    uint64_t fallback_batches = 0;
  };
  [[nodiscard]] virtual BatchedReads batched_reads() const = 0;
  // Scan of each of `prefixes` (distinct, none a prefix of another) in turn, at `at` (as Get's):
  // visit(i, key, value) for every key with prefixes[i]. No block past a prefix's keys is read.
  [[nodiscard]] virtual absl::Status ScanEach(
      Cf cf, absl::Span<const std::string> prefixes,
      absl::FunctionRef<absl::Status(size_t i, absl::string_view key, absl::string_view value)>
          visit,
      const StoreSnapshot* at = nullptr) const = 0;
  // Writes memtables to SST files (after unlogged writes).
  [[nodiscard]] virtual absl::Status Flush() = 0;
  // (No call syncs the log after the fact: a write that must be durable is written with `sync`.
  // RocksDB 7.8's SyncWAL aborts on an assertion after, or beside, a log write that failed.)
  // Flushes the memtables, then waits until no flush or compaction is running or pending, polling
  // (benchmarks: timings without the store's background work beside them). Internal when the
  // store's background work has failed, DeadlineExceeded after 30 minutes.
  [[nodiscard]] virtual absl::Status Settle() = 0;
  // Compacts the keys under `prefix` (every level), so that the disk space of records deleted there
  // is given back now rather than when RocksDB's own compactions get to them. Blocks until done,
  // or until `*cancel` (may be null) turns true: then Cancelled, soon. Other calls go on
  // meanwhile.
  [[nodiscard]] virtual absl::Status CompactPrefix(Cf cf, absl::string_view prefix,
                                                   const std::atomic<bool>* cancel) = 0;
  // Approximate bytes on disk under `prefix`.
  [[nodiscard]] virtual uint64_t ApproximateBytes(Cf cf, absl::string_view prefix) const = 0;
  // What recovery found when the store was opened.
  [[nodiscard]] virtual const WalRecoveryReport& recovery() const = 0;
  // Why the store refuses every write now, and what ends it; empty while it takes writes.
  // RocksDB stops writes once a log write or a flush has failed (a full disk, an I/O error); they
  // stay refused until the store is opened again (storage/rocks_write_stop.h says why RocksDB 7.8
  // must not resume them in the process).
  // Writes meanwhile fail with that error (ResourceExhausted for a full disk), this reason
  // appended.
  [[nodiscard]] virtual std::string WritesRefused() const = 0;
  // `changed` (may be empty: none) is called after each change of WritesRefused(), on the RocksDB
  // thread that saw it, with no lock of the store held: it may call WritesRefused() and nothing
  // else of the store. Returns once no call of the previous `changed` runs.
  virtual void WatchWritesRefused(std::function<void()> changed) = 0;
};

}  // namespace strata

#endif  // STRATA_STORAGE_METADATA_STORE_H_
