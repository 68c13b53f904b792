#include "storage/metadata_store.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/public_message.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/table_properties_collectors.h"
#include "rocksdb/write_batch.h"
#include "storage/log.h"
#include "storage/read_fanout.h"
#include "storage/rocks_info_log.h"
#include "storage/rocks_write_stop.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"
#include "storage/uring_file_system.h"
#include "storage/wal_scan.h"

namespace strata {
namespace {

// A MultiGet of at least two runs of kKeysPerRun keys is split into up to kMaxRuns runs, looked up
// on as many threads (storage/read_fanout.h). A run is four of MultiGet's batches of block reads
// (32 per table file): fewer would spend a thread's hand-off on a lookup the caller does as fast.
constexpr size_t kKeysPerRun = 128;
constexpr size_t kMaxRuns = 4;

#define RETURN_IF_ROCKS(expr, what)                                 \
  do {                                                              \
    const rocksdb::Status _rocks_status = (expr);                   \
    if (!_rocks_status.ok()) return FromRocks(_rocks_status, what); \
  } while (false)

constexpr const char* kCfNames[kNumColumnFamilies] = {"collections", "id_map",   "versions",
                                                      "payloads",    "vectors",  "postings",
                                                      "tenants",     "api_keys", "heads"};

// Whether an operation failed because another holder has the database's lock: another process
// (fcntl's "While lock file: ...") or this one ("lock hold by current process"). Not a failure
// to open the LOCK file itself.
bool LockHeld(const rocksdb::Status& s) {
  if (!s.IsIOError()) return false;
  const std::string text = s.ToString();
  return text.find("While lock file") != std::string::npos ||
         text.find("lock hold by current process") != std::string::npos;
}

// Waits, up to `options.lock_wait`, until no one else holds the lock of the database in `path`,
// by taking it and letting it go again (then the write-ahead log is read, and the database
// opened, after the holder let go: nothing it wrote after is missed).
void AwaitLock(rocksdb::Env* env, const std::string& path, const MetadataStoreOptions& options) {
  if (options.lock_wait.count() <= 0) return;
  const std::string lock_file = path + "/LOCK";
  const auto deadline = std::chrono::steady_clock::now() + options.lock_wait;
  bool said = false;
  for (;;) {
    rocksdb::FileLock* lock = nullptr;
    const rocksdb::Status s = env->LockFile(lock_file, &lock);
    if (s.ok()) {
      env->UnlockFile(lock).PermitUncheckedError();
      return;
    }
    // (Any other failure is Open's to report.)
    if (!LockHeld(s) || std::chrono::steady_clock::now() >= deadline) return;
    if (!said) {
      Log(LogLevel::kWarning,
          "metadata store %s is locked by another process; waiting up to %d ms for it to be let "
          "go (a process killed just before keeps it until the kernel has torn it down; a "
          "server still running keeps it)",
          path, options.lock_wait.count());
      if (options.test_lock_wait_started) options.test_lock_wait_started();
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (LockHeld(s)) {
    return absl::UnavailableError(
        absl::StrCat(msg, " (is another strata process using this data directory?)"));
  }
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(msg);
  // A full disk, as the rest of the server says it (storage/scoped_fd.h): RocksDB then refuses
  // writes until the store is opened again (WritesRefused).
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) {
    // (RocksDB's message names the file: not for a tenant's caller, base/public_message.h.)
    return WithPublicMessage(DiskFullError(msg),
                             "the server's disk is full: writes are refused until its "
                             "administrator makes room");
  }
  return absl::InternalError(msg);
}

// The smallest key greater than every key that starts with `prefix`; empty when none exists.
std::string PrefixEnd(absl::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(end.back());
    if (c != 0xFF) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return end;
}

class RocksSnapshot final : public StoreSnapshot {
 public:
  RocksSnapshot(rocksdb::DB* db, const rocksdb::Snapshot* snap) : db_(db), snap_(snap) {}
  ~RocksSnapshot() override { db_->ReleaseSnapshot(snap_); }
  const rocksdb::Snapshot* get() const { return snap_; }

 private:
  rocksdb::DB* const db_;
  const rocksdb::Snapshot* const snap_;
};

rocksdb::ReadOptions ReadAt(const StoreSnapshot* at) {
  rocksdb::ReadOptions options;
  if (at != nullptr) options.snapshot = static_cast<const RocksSnapshot*>(at)->get();
  return options;
}

class MetadataStoreImpl final : public MetadataStore {
 public:
  MetadataStoreImpl(std::shared_ptr<const UringMultiReadFileSystem> fs,
                    std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
                    std::vector<rocksdb::ColumnFamilyHandle*> handles, WalRecoveryReport recovery,
                    bool flush_at_close, std::shared_ptr<RocksWriteStop> write_stop)
      : write_stop_(std::move(write_stop)),
        fs_(std::move(fs)),
        env_(std::move(env)),
        db_(std::move(db)),
        handles_(std::move(handles)),
        recovery_(std::move(recovery)),
        flush_at_close_(flush_at_close) {}
  const WalRecoveryReport& recovery() const override { return recovery_; }
  std::string WritesRefused() const override { return write_stop_->refused(); }
  void WatchWritesRefused(std::function<void()> changed) override {
    write_stop_->Watch(std::move(changed));
  }
  BatchedReads batched_reads() const override {
    const UringMultiReadStats& s = fs_->stats();
    return {s.ring_batches.load(), s.ring_reads.load(), s.fallback_batches.load()};
  }
  ~MetadataStoreImpl() override {
    // A clean close leaves nothing in the log to replay: the next open starts at once whatever
    // was written before (a crash replays at most max_wal_bytes).
    rocksdb::FlushOptions fo;
    fo.wait = true;
    std::vector<rocksdb::ColumnFamilyHandle*> all(handles_.begin(), handles_.end());
    const rocksdb::Status flushed = flush_at_close_ ? db_->Flush(fo, all) : rocksdb::Status::OK();
    if (!flushed.ok()) {
      Log(LogLevel::kWarning,
          "metadata store: flush at close failed (%s); the next open replays "
          "the write-ahead log",
          flushed.ToString());
    }
    for (auto* h : handles_) {
      if (h != nullptr) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
    db_->Close().PermitUncheckedError();
  }

  absl::StatusOr<std::string> Get(Cf cf, absl::string_view key,
                                  const StoreSnapshot* at) const override {
    std::string value;
    rocksdb::Status s =
        db_->Get(ReadAt(at), handle(cf), rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return absl::NotFoundError("no such key");
    RETURN_IF_ROCKS(s, "metadata read");
    return value;
  }

  std::vector<absl::StatusOr<std::string>> MultiGet(Cf cf, absl::Span<const std::string> keys,
                                                    const StoreSnapshot* at) const override {
    std::vector<absl::StatusOr<std::string>> out;
    out.reserve(keys.size());
    MultiGetLent(cf, keys, at, [&](absl::Span<const absl::StatusOr<absl::string_view>> values) {
      for (const absl::StatusOr<absl::string_view>& v : values) {
        if (v.ok()) {
          out.emplace_back(std::string(*v));
        } else {
          out.emplace_back(v.status());
        }
      }
      return absl::OkStatus();
    }).IgnoreError();  // (the callback never fails)
    return out;
  }

  absl::Status MultiGetLent(
      Cf cf, absl::Span<const std::string> keys, const StoreSnapshot* at,
      absl::FunctionRef<absl::Status(absl::Span<const absl::StatusOr<absl::string_view>>)> use)
      const override {
    const size_t n = keys.size();
    // The keys in order (a run of them is a range of the table files), looked up in runs of at
    // least kKeysPerRun on the read fan-out's threads: each run's MultiGet has its own batches of
    // block reads in flight (storage/read_fanout.h).
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    const size_t runs = std::min(kMaxRuns, n / kKeysPerRun);
    if (runs > 1) {
      const rocksdb::Comparator* cmp = handle(cf)->GetComparator();
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return cmp->Compare(rocksdb::Slice(keys[a].data(), keys[a].size()),
                            rocksdb::Slice(keys[b].data(), keys[b].size())) < 0;
      });
    }
    std::vector<rocksdb::Slice> slices;
    slices.reserve(n);
    for (size_t i : order) slices.emplace_back(keys[i].data(), keys[i].size());
    std::vector<rocksdb::PinnableSlice> pinned(n);
    std::vector<rocksdb::Status> statuses(n);
    rocksdb::ReadOptions read = ReadAt(at);
    // The runs read one state of the store, as one MultiGet would: the caller's snapshot, or one
    // taken for the call.
    std::shared_ptr<const StoreSnapshot> own;
    if (runs > 1 && at == nullptr) {
      own = Snapshot();
      read = ReadAt(own.get());
    }
    const auto lookup = [&](size_t run) {
      const size_t from = run * n / std::max<size_t>(runs, 1);
      const size_t to = (run + 1) * n / std::max<size_t>(runs, 1);
      db_->MultiGet(read, handle(cf), to - from, slices.data() + from, pinned.data() + from,
                    statuses.data() + from, /*sorted_input=*/runs > 1);
    };
    if (runs > 1) {
      ReadFanout::ForReads().Run(runs, lookup);
    } else {
      lookup(0);
    }
    std::vector<absl::StatusOr<absl::string_view>> values(n, absl::UnknownError(""));
    for (size_t j = 0; j < n; ++j) {
      absl::StatusOr<absl::string_view>& v = values[order[j]];
      if (statuses[j].IsNotFound()) {
        v = absl::NotFoundError("no such key");
      } else if (!statuses[j].ok()) {
        v = FromRocks(statuses[j], "metadata read");
      } else {
        v = absl::string_view(pinned[j].data(), pinned[j].size());
      }
    }
    return use(values);
  }

  std::shared_ptr<const StoreSnapshot> Snapshot() const override {
    return std::make_shared<RocksSnapshot>(db_.get(), db_->GetSnapshot());
  }

  absl::Status Write(WriteBatch* batch, bool sync, bool wal) override {
    rocksdb::WriteBatch wb;
    for (const WriteBatch::Entry& e : batch->entries()) {
      rocksdb::Slice key(e.key.data(), e.key.size());
      rocksdb::Status s;
      switch (e.op) {
        case WriteBatch::Op::kPut:
          s = wb.Put(handle(e.cf), key, rocksdb::Slice(e.value.data(), e.value.size()));
          break;
        case WriteBatch::Op::kDelete:
          s = wb.Delete(handle(e.cf), key);
          break;
      }
      RETURN_IF_ROCKS(s, "metadata batch");
    }
    rocksdb::WriteOptions wo;
    wo.sync = sync && wal;
    wo.disableWAL = !wal;
    const rocksdb::Status written = db_->Write(wo, &wb);
    if (written.ok()) return absl::OkStatus();
    absl::Status s = FromRocks(written, "metadata write");
    // (A full disk's public message stays: the reason names the store's directory.)
    if (const std::string why = write_stop_->refused(); !why.empty()) {
      absl::Status out(s.code(),
                       absl::StrCat(s.message(), "; the store refuses every write: ", why));
      s.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
      s = std::move(out);
    }
    return s;
  }

  absl::Status Scan(
      Cf cf, absl::string_view prefix,
      absl::FunctionRef<absl::Status(absl::string_view, absl::string_view)> visit) const override {
    return ScanWith(cf, prefix, visit, /*fill_cache=*/true);
  }
  absl::Status Sweep(
      Cf cf, absl::string_view prefix,
      absl::FunctionRef<absl::Status(absl::string_view, absl::string_view)> visit) const override {
    return ScanWith(cf, prefix, visit, /*fill_cache=*/false);
  }
  uint64_t BlockCacheUsage() const override {
    uint64_t bytes = 0;  // (one cache for every family)
    if (!db_->GetIntProperty(handle(Cf::kPayloads), rocksdb::DB::Properties::kBlockCacheUsage,
                             &bytes)) {
      return 0;
    }
    return bytes;
  }
  absl::Status ScanWith(Cf cf, absl::string_view prefix,
                        absl::FunctionRef<absl::Status(absl::string_view, absl::string_view)> visit,
                        bool fill_cache) const {
    rocksdb::ReadOptions ro;
    ro.fill_cache = fill_cache;
    std::string end = PrefixEnd(prefix);
    rocksdb::Slice upper(end);
    if (!end.empty()) ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handle(cf)));
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key();
      rocksdb::Slice v = it->value();
      absl::Status s =
          visit(absl::string_view(k.data(), k.size()), absl::string_view(v.data(), v.size()));
      if (!s.ok()) return s;
    }
    RETURN_IF_ROCKS(it->status(), "metadata scan");
    return absl::OkStatus();
  }

  absl::Status ScanEach(
      Cf cf, absl::Span<const std::string> prefixes,
      absl::FunctionRef<absl::Status(size_t, absl::string_view, absl::string_view)> visit,
      const StoreSnapshot* at) const override {
    // An iterator per prefix, bounded by its end: none reads the block after its range (a cold
    // read each), and none grows RocksDB's readahead over the gaps between the ranges.
    for (size_t i = 0; i < prefixes.size(); ++i) {
      const rocksdb::Slice prefix(prefixes[i].data(), prefixes[i].size());
      rocksdb::ReadOptions ro = ReadAt(at);
      const std::string end = PrefixEnd(prefixes[i]);
      const rocksdb::Slice upper(end);
      if (!end.empty()) ro.iterate_upper_bound = &upper;
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handle(cf)));
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        rocksdb::Slice k = it->key();
        rocksdb::Slice v = it->value();
        RETURN_IF_ERROR(
            visit(i, absl::string_view(k.data(), k.size()), absl::string_view(v.data(), v.size())));
      }
      RETURN_IF_ROCKS(it->status(), "metadata scan");
    }
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    rocksdb::FlushOptions fo;
    fo.wait = true;
    std::vector<rocksdb::ColumnFamilyHandle*> all(handles_.begin(), handles_.end());
    RETURN_IF_ROCKS(db_->Flush(fo, all), "metadata flush");
    return absl::OkStatus();
  }

  absl::Status Settle() override {
    RETURN_IF_ERROR(Flush());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(30);
    for (;;) {
      uint64_t busy = 0, n = 0;
      if (db_->GetAggregatedIntProperty("rocksdb.background-errors", &n) && n > 0) {
        return absl::InternalError("metadata store: background work failed; it will not settle");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError("metadata store: still compacting after 30 minutes");
      }
      if (db_->GetAggregatedIntProperty("rocksdb.num-running-compactions", &n)) busy += n;
      if (db_->GetAggregatedIntProperty("rocksdb.num-running-flushes", &n)) busy += n;
      for (rocksdb::ColumnFamilyHandle* h : handles_) {
        if (db_->GetIntProperty(h, rocksdb::DB::Properties::kCompactionPending, &n)) busy += n;
      }
      if (busy == 0) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  absl::Status CompactPrefix(Cf cf, absl::string_view prefix,
                             const std::atomic<bool>* cancel) override {
    const std::string end = PrefixEnd(prefix);
    const rocksdb::Slice begin(prefix.data(), prefix.size()), limit(end);
    rocksdb::CompactRangeOptions options;
    // (RocksDB reads the flag; it never writes it.)
    options.canceled = const_cast<std::atomic<bool>*>(cancel);
    // (Files of the bottom level too: that is where a large collection's records lie.)
    options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
    const rocksdb::Status s =
        db_->CompactRange(options, handle(cf), &begin, end.empty() ? nullptr : &limit);
    if (cancel != nullptr && cancel->load() && !s.ok()) {
      return absl::CancelledError("metadata compaction cancelled");
    }
    RETURN_IF_ROCKS(s, "metadata compaction");
    return absl::OkStatus();
  }
  uint64_t ApproximateBytes(Cf cf, absl::string_view prefix) const override {
    std::string end = PrefixEnd(prefix);
    if (end.empty()) end = std::string(16, '\xff');
    rocksdb::Range r(rocksdb::Slice(prefix.data(), prefix.size()), rocksdb::Slice(end));
    uint64_t size = 0;
    rocksdb::SizeApproximationOptions opt;
    opt.include_memtables = true;
    opt.include_files = true;
    db_->GetApproximateSizes(opt, handle(cf), &r, 1, &size).PermitUncheckedError();
    return size;
  }

 private:
  rocksdb::ColumnFamilyHandle* handle(Cf cf) const { return handles_[static_cast<int>(cf) + 1]; }

  const std::shared_ptr<RocksWriteStop> write_stop_;    // also among RocksDB's listeners
  std::shared_ptr<const UringMultiReadFileSystem> fs_;  // env_'s file system
  std::unique_ptr<rocksdb::Env> env_;                   // outlives db_
  std::unique_ptr<rocksdb::DB> db_;
  // handles_[0] is RocksDB's default family (unused); Cf c lives at c + 1.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  const WalRecoveryReport recovery_;
  const bool flush_at_close_;
};

}  // namespace

const char* CfName(Cf cf) { return kCfNames[static_cast<int>(cf)]; }

void AppendU32(std::string* key, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) key->push_back(static_cast<char>((v >> s) & 0xFF));
}
void AppendU64(std::string* key, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) key->push_back(static_cast<char>((v >> s) & 0xFF));
}
uint32_t ReadU32(absl::string_view b, size_t o) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(b[o + i]);
  return v;
}
uint64_t ReadU64(absl::string_view b, size_t o) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = v << 8 | static_cast<uint8_t>(b[o + i]);
  return v;
}

namespace {
// What lies beyond the first damaged record of each write-ahead log in `path` (storage/wal_scan.h).
WalRecoveryReport ScanWalFiles(const std::string& path, bool* torn_tail_only) {
  // Logs in the order RocksDB replays them: by number (the file name).
  std::vector<std::pair<uint64_t, std::filesystem::path>> logs;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    uint64_t number = 0;
    if (e.path().extension() == ".log" && absl::SimpleAtoi(e.path().stem().string(), &number)) {
      logs.emplace_back(number, e.path());
    }
  }
  std::sort(logs.begin(), logs.end());
  WalRecoveryReport r;
  bool after_damage = false;
  *torn_tail_only = false;
  for (const auto& [number, file] : logs) {
    auto contents = ReadWholeFile(file.string());
    if (!contents.ok()) continue;
    const WalScan scan = ScanWal(*contents);
    if (after_damage && contents->empty()) continue;  // a log made at the last open: nothing lost
    if (after_damage) {  // recovery stops at the first damage: later logs are not replayed
      r.dropped_batches += scan.batches + scan.batches_after;
      r.dropped_bytes += contents->size();
      *torn_tail_only = false;
      continue;
    }
    if (!scan.damaged) continue;
    after_damage = true;
    r.dropped_batches += scan.batches_after;
    r.dropped_bytes += scan.bytes_after;
    *torn_tail_only = scan.damage_at_tail && scan.batches_after == 0;
    absl::StrAppend(&r.detail, "; ", file.filename().string(), " damaged at byte ",
                    scan.damaged_offset, " of ", contents->size());
  }
  return r;
}
}  // namespace

absl::StatusOr<std::unique_ptr<MetadataStore>> MetadataStore::Open(
    const std::string& path, const MetadataStoreOptions& options) {
  std::unique_ptr<rocksdb::Env> rocks_env;
  rocksdb::Options db_options;
  Env& env = options.env != nullptr ? *options.env : *Env::Default();
  if (options.create_if_missing) RETURN_IF_ERROR(CreateDirs(env, path));
  std::shared_ptr<rocksdb::FileSystem> fs = env.RocksDbFileSystem();
  if (fs == nullptr) fs = rocksdb::FileSystem::Default();
  // MultiGet's block reads in one io_uring batch (storage/uring_file_system.h).
  auto uring_fs = std::make_shared<UringMultiReadFileSystem>(std::move(fs));
  rocks_env = rocksdb::NewCompositeEnv(uring_fs);
  db_options.env = rocks_env.get();
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  // (Not RocksDB's own file logger: storage/rocks_info_log.h.)
  db_options.info_log = RocksInfoLog::Open(&env, path);
  db_options.max_background_jobs = 2;
  db_options.max_total_wal_size = options.max_wal_bytes;
  db_options.db_write_buffer_size = options.max_memtable_bytes;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  families.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (int i = 0; i < kNumColumnFamilies; ++i) {
    rocksdb::ColumnFamilyOptions o = cf_options;
    if (static_cast<Cf>(i) == Cf::kTenants) {
      // The tenants' extents (copies of vectors a tenant's search reads whole, in runs of keys)
      // gain little from compression and pay for it on every block a search reads that the
      // block cache misses.
      o.compression = rocksdb::kNoCompression;
      // Revokes and new vectors delete cell-extent rows (index/cell_extent.h) that searches then
      // iterate past until a compaction drops them: a table file written with many deletes is
      // compacted soon (a stranger's test saw searches slow from 0.8 to 11.6 ms over 328K
      // access changes).
      // Grant/revoke churn writes many versions of a cell's keys: with the default 64 MiB
      // memtable a cell-extent tenant's search iterated past them for ~5 ms where it took 0.26 ms
      // (90 calls of 4,000 ids on a 48K-point tenant); 8 MiB memtables flush them sooner.
      o.write_buffer_size = size_t{8} << 20;
      o.table_properties_collector_factories.push_back(
          rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/4096,
                                                        /*deletion_trigger=*/1024));
    }
    families.emplace_back(kCfNames[i], o);
  }
  // A stop of the writes lasts until the store is opened again (storage/rocks_write_stop.h):
  // neither its listener nor RocksDB's retries of retryable I/O errors resume them.
  auto write_stop = std::make_shared<RocksWriteStop>(path);
  db_options.max_bgerror_resume_count = 0;
  db_options.listeners.push_back(write_stop);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  // First as strictly as a crash allows: a last record cut short is fine, damage before it is not.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // Strata's own look at the logs first, so that what recovery drops is said and counted.
  AwaitLock(db_options.env, path, options);
  bool torn_tail_only = false;
  const WalRecoveryReport scanned = ScanWalFiles(path, &torn_tail_only);
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, families, &handles, &raw);
  WalRecoveryReport report;
  if (!scanned.detail.empty() && torn_tail_only && (s.ok() || s.IsCorruption())) {
    // The last record of the last log is cut short or fails its checksum, and nothing follows
    // it: what a crash in the middle of a write leaves (that write was never acknowledged).
    // Rarely it is damage to the last acknowledged write; the two cannot be told apart.
    Log(LogLevel::kWarning,
        "metadata store %s: dropping the last write-ahead log record, cut short by a crash%s", path,
        scanned.detail);
    if (!s.ok()) {
      db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
      s = rocksdb::DB::Open(db_options, path, families, &handles, &raw);
    }
  } else if (s.ok() && !scanned.detail.empty()) {
    Log(LogLevel::kError,
        "metadata store %s: the write-ahead log is damaged before its end%s, yet RocksDB opened "
        "it; up to %d write batches after the damage may be missing",
        path, scanned.detail, scanned.dropped_batches);
  } else if (s.IsCorruption() && !scanned.detail.empty()) {
    report = scanned;
    report.damaged = true;
    report.detail = absl::StrCat(s.ToString(), report.detail);
    const std::string what = absl::StrCat(
        "the write-ahead log of metadata store ", path, " is damaged before its end (",
        report.detail, "): at least ", report.dropped_batches, " acknowledged write batches (",
        report.dropped_bytes, " bytes) lie beyond the damage");
    if (options.wal_recovery == WalRecovery::kStrict) {
      return absl::DataLossError(absl::StrCat(
          what,
          ". Refusing to start (--wal_recovery=strict). Back up the data directory, then start "
          "with --wal_recovery=point_in_time to open at the last intact record, dropping them"));
    }
    Log(LogLevel::kError,
        "%s; opening at the last intact record and DROPPING them (--wal_recovery=point_in_time)",
        what);
    db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    s = rocksdb::DB::Open(db_options, path, families, &handles, &raw);
  }
  // Anything else (a damaged MANIFEST or table file) is RocksDB's to report.
  if (!s.ok()) return FromRocks(s, absl::StrCat("open metadata store ", path));
  Log(LogLevel::kInfo, "metadata store %s open (WAL recovery %s)", path,
      options.wal_recovery == WalRecovery::kStrict ? "strict" : "point-in-time");
  return std::unique_ptr<MetadataStore>(new MetadataStoreImpl(
      std::move(uring_fs), std::move(rocks_env), std::unique_ptr<rocksdb::DB>(raw),
      std::move(handles), std::move(report), options.flush_at_close, std::move(write_stop)));
}

}  // namespace strata
