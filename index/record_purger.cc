#include "index/record_purger.h"

#include <pthread.h>

#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {
namespace {
constexpr absl::string_view kPurgePrefix = "\x01purge/";
// Deletes a purge writes per batch: memory stays bounded however large the collection.
constexpr size_t kPurgeBatchKeys = 4096;
// A purge of at least this many records flushes and compacts what it deleted (each flush and
// manual compaction has a fixed cost: a workload making and dropping small collections would pile
// up small table files); smaller ones leave it to RocksDB's own compactions.
constexpr uint64_t kCompactFromRecords = 100000;

// The key prefixes of every record of collection `id`, by family (storage/FORMAT.md).
std::vector<std::pair<Cf, std::string>> RecordPrefixes(uint32_t id) {
  std::string coll;
  AppendU32(&coll, id);
  std::vector<std::pair<Cf, std::string>> out;
  for (Cf cf : {Cf::kVersions, Cf::kPayloads, Cf::kVectors, Cf::kPostings, Cf::kHeads}) {
    out.emplace_back(cf, coll);
  }
  for (const char* kind : {"e", "i"}) out.emplace_back(Cf::kIdMap, absl::StrCat(kind, coll));
  for (const char* kind : {"n", "m", "q", "x", "X", "y", "Y", "C", "o"}) {
    out.emplace_back(Cf::kTenants, absl::StrCat(kind, coll));
  }
  return out;
}
}  // namespace

RecordPurger::RecordPurger(MetadataStore* store, std::function<void(uint32_t)> before_batch)
    : store_(store), before_batch_(std::move(before_batch)) {}

RecordPurger::~RecordPurger() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void RecordPurger::Stop() {
  MutexLock lock(&mu_);
  stop_ = true;
  stopping_.store(true);  // (a compaction under way reads it)
  queue_.clear();
}

std::string RecordPurger::PurgeKey(uint32_t id) {
  std::string key(kPurgePrefix);
  AppendU32(&key, id);
  return key;
}

absl::StatusOr<std::optional<uint32_t>> RecordPurger::ParsePurgeKey(absl::string_view key) {
  if (!absl::StartsWith(key, kPurgePrefix)) return std::nullopt;
  if (key.size() != kPurgePrefix.size() + 4) {
    return absl::DataLossError("catalog: malformed purge record");
  }
  return ReadU32(key, kPurgePrefix.size());
}

void RecordPurger::Enqueue(uint32_t id) {
  MutexLock lock(&mu_);
  if (stop_) return;
  queue_.push_back(id);
  if (thread_.joinable()) return;
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    // No thread: the records stay, with their purge records, for the next start.
    Log(LogLevel::kError, "catalog: no thread to delete dropped collections' records: %s",
        e.what());
    queue_.clear();
  }
}

void RecordPurger::WaitIdle() {
  MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](RecordPurger* p)
           ABSL_NO_THREAD_SAFETY_ANALYSIS { return !p->busy_ && (p->stop_ || p->queue_.empty()); },
      this));
}

bool RecordPurger::Stopping() const {
  MutexLock lock(&mu_);
  return stop_;
}

void RecordPurger::Run() {
  // Named for `top -H`, perf and debuggers (at most 15 characters).
  pthread_setname_np(pthread_self(), "strata-purge");
  for (;;) {
    uint32_t id = 0;
    {
      MutexLock lock(&mu_);
      busy_ = false;
      mu_.Await(absl::Condition(
          +[](RecordPurger* p)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return p->stop_ || !p->queue_.empty(); },
          this));
      if (stop_) return;
      id = queue_.front();
      queue_.pop_front();
      busy_ = true;
    }
    absl::Status s = Purge(id);
    if (absl::IsCancelled(s)) {
      Log(LogLevel::kInfo,
          "catalog: stopped deleting the records of dropped collection id %d; the next start "
          "goes on",
          id);
    } else if (!s.ok()) {
      Log(LogLevel::kError,
          "catalog: deleting the records of dropped collection id %d: %s (the next start tries "
          "again)",
          id, s.message());
    }
  }
}

absl::Status RecordPurger::Purge(uint32_t id) {
  WriteBatch batch;
  const auto write = [&]() -> absl::Status {
    if (batch.count() == 0) return absl::OkStatus();
    if (before_batch_) before_batch_(id);
    if (Stopping()) return absl::CancelledError("stopping");
    absl::Status s = store_->Write(&batch, /*sync=*/true);
    batch.Clear();
    return s;
  };
  uint64_t deleted = 0;
  for (const auto& family_prefix : RecordPrefixes(id)) {
    const Cf cf = family_prefix.first;  // (no structured binding: lambdas capture it)
    RETURN_IF_ERROR(
        store_->Sweep(cf, family_prefix.second, [&](absl::string_view key, absl::string_view) {
          batch.Delete(cf, key);
          ++deleted;
          return batch.count() >= kPurgeBatchKeys ? write() : absl::OkStatus();
        }));
  }
  batch.Delete(Cf::kCollections, PurgeKey(id));  // (with the last deletes: durable with them)
  RETURN_IF_ERROR(write());
  // Their disk space, now (RocksDB's own compactions may not reach those keys for long: a
  // stranger saw the store keep 76 MB for a dropped 200K-vector collection until a restart).
  // And the write-ahead logs that held them go once every family's memtable is flushed (else a
  // family with a few unflushed writes keeps a log of the whole load: 67 MB of 69 after a
  // 200K-vector collection's drop).
  if (deleted < kCompactFromRecords) {
    Log(LogLevel::kInfo, "catalog: deleted the %d records of dropped collection id %d", deleted,
        id);
    return absl::OkStatus();
  }
  absl::Status compacted = store_->Flush();
  for (const auto& [cf, prefix] : RecordPrefixes(id)) {
    if (!compacted.ok() || Stopping()) break;  // (what is left, RocksDB gives back in time)
    compacted = store_->CompactPrefix(cf, prefix, &stopping_);
  }
  if (!compacted.ok() && !absl::IsCancelled(compacted)) {
    Log(LogLevel::kWarning, "catalog: compacting dropped collection id %d's records: %s", id,
        compacted.message());
  }
  Log(LogLevel::kInfo, "catalog: deleted the %d records of dropped collection id %d", deleted, id);
  return absl::OkStatus();
}

}  // namespace strata
