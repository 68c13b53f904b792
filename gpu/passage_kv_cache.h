// The passage KV cache: each passage's keys and values (PassageKv) computed once and kept for
// the next question that retrieves it, in tiers
//   host RAM   an LRU within a byte budget; what it evicts spills to
//   SSD        one checksummed file per entry in a directory, an LRU within its own byte budget
//              (a damaged or unreadable file is a miss, and is removed).
// (A GPU tier sits above RAM once the CUDA backend runs decoders; on the CPU backend host RAM is
// where the decoder reads.) Entries are keyed by (model, collection, passage id, passage
// version, format); the version is a hash of the passage's text, so a stale entry can never be
// served, and Invalidate() frees a passage's entries when it is upserted or deleted.
//
// Thread-safe. Lookups and inserts hold the lock only for the index; file reads happen outside
// it on the caller's thread, and file writes (spills) on the cache's own writer thread, so no
// caller - in particular the decoder's scheduler - ever waits on an fsync. An entry waiting to be
// written is still served from memory; beyond kMaxPendingBytes waiting, the oldest are dropped.
#ifndef STRATA_GPU_PASSAGE_KV_CACHE_H_
#define STRATA_GPU_PASSAGE_KV_CACHE_H_

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "gpu/passage_kv.h"

namespace strata::gpu {

struct PassageKey {
  std::string model;       // the model's identity (Decoder's file name and size)
  std::string collection;  // collection name
  uint64_t id = 0;         // point id
  uint64_t version = 0;    // hash of the passage text the entry was computed from
  KvFormat format = KvFormat::kInt8;

  // A file-name-safe unique string of the key, and back (nullopt for a string Encode would not
  // have made).
  [[nodiscard]] std::string Encode() const;
  [[nodiscard]] static std::optional<PassageKey> Decode(absl::string_view name);
};

// Where a lookup found its entry.
enum class KvTier { kMiss, kRam, kDisk };

// The SSD tier's storage, behind an interface so tests can fail it. Names are PassageKey::Encode.
class KvDiskStore {
 public:
  virtual ~KvDiskStore() = default;
  [[nodiscard]] virtual absl::Status Put(const std::string& name, const std::string& bytes) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::string> Get(const std::string& name) = 0;
  virtual void Erase(const std::string& name) = 0;
  // The entries stored now, least recently written first, with their sizes.
  [[nodiscard]] virtual std::vector<std::pair<std::string, size_t>> List() { return {}; }
};
// Files in `dir` (created). Entries an earlier run left are kept (PassageKvCache indexes them at
// start); half-written files from a crash are removed.
[[nodiscard]] absl::StatusOr<std::unique_ptr<KvDiskStore>> OpenKvDirectory(const std::string& dir);

struct PassageKvCacheOptions {
  // The model whose entries this cache holds: entries of another model (or none given) found on
  // disk at start are removed, the others indexed (oldest evicted first) and served.
  std::string model;
  size_t ram_bytes = size_t{512} << 20;
  size_t disk_bytes = 0;              // 0: no SSD tier
  std::unique_ptr<KvDiskStore> disk;  // required when disk_bytes > 0
};

struct PassageKvCacheStats {
  uint64_t ram_hits = 0, disk_hits = 0, misses = 0, inserts = 0;
  uint64_t ram_evictions = 0, disk_evictions = 0, disk_errors = 0, invalidations = 0;
  uint64_t lost = 0;  // evicted from RAM but not kept on disk (no SSD tier, too big, a failed
                      // write, or too many waiting to be written)
  size_t ram_bytes = 0, disk_bytes = 0, ram_entries = 0, disk_entries = 0;
  // Distinct entries: one promoted to RAM from disk (its disk copy kept) is in both tiers' counts,
  // once here. Counted by stats().
  size_t entries = 0;
};

class PassageKvCache final {
 public:
  explicit PassageKvCache(PassageKvCacheOptions options);
  // With an SSD tier: writes the spills still waiting and what RAM holds (within the disk
  // budget), so a restart finds them.
  ~PassageKvCache();
  PassageKvCache(const PassageKvCache&) = delete;
  PassageKvCache& operator=(const PassageKvCache&) = delete;

  // The entry for `key`, or null; *tier says where it was found (a disk hit is promoted to RAM).
  // *bytes_read (when given) adds the bytes read from disk.
  std::shared_ptr<const PassageKv> Lookup(const PassageKey& key, KvTier* tier,
                                          size_t* bytes_read = nullptr);
  // Whether an entry for `key` is held (RAM, waiting to be written, or disk), without reading or
  // promoting it.
  [[nodiscard]] bool Contains(const PassageKey& key) const;
  // Keeps `kv` under `key` in RAM (an entry larger than the whole RAM budget goes to the SSD tier
  // when that can hold it, else is not kept); what that evicts goes to the SSD tier by the
  // writer thread. With `seen_epoch` (epoch() read before
  // the entry was computed), it is not kept when its passage (collection and id) or its
  // collection was invalidated in between: an entry made from a passage that was just replaced
  // or deleted never enters the cache after its invalidation. True when kept; `stale` (when
  // given) says whether a refusal was for that reason (else the cache had no room for it).
  static constexpr uint64_t kAnyEpoch = ~uint64_t{0};
  bool Insert(const PassageKey& key, std::shared_ptr<const PassageKv> kv,
              uint64_t seen_epoch = kAnyEpoch, bool* stale = nullptr);
  // Counts invalidations (see Insert).
  [[nodiscard]] uint64_t epoch() const;
  // Waits until every spill waiting to be written has been written (or dropped). For tests and
  // benchmarks.
  void Flush();
  // Drops every entry of (collection, id) for the ids, any version and format, from both tiers.
  void Invalidate(const std::string& collection, absl::Span<const uint64_t> ids);
  // Drops every entry of a collection (it was dropped).
  void InvalidateCollection(const std::string& collection);
  // The (collection, passage id) of every entry held, in any tier, each once: for a caller that
  // checks them against what exists (the server at start, for entries a crash or an earlier
  // version left behind).
  [[nodiscard]] std::vector<std::pair<std::string, uint64_t>> Passages() const;

  [[nodiscard]] PassageKvCacheStats stats() const;
  // Entries the cache has dropped (not moved to another tier): disk evictions, and `lost`.
  [[nodiscard]] uint64_t dropped() const;

  static constexpr size_t kMaxPendingBytes = size_t{64} << 20;
  // Invalidated (collection, id) pairs remembered for Insert's check; past it the older half is
  // forgotten and inserts that began before the newest forgotten one are refused. One call
  // invalidating more than half of it records nothing: every insert begun before it is refused.
  static constexpr size_t kMaxInvalidationRecords = 1 << 16;
  // The RAM and SSD budgets together.
  [[nodiscard]] size_t capacity() const { return ram_budget_ + disk_budget_; }

 private:
  struct RamEntry {
    PassageKey key;
    std::shared_ptr<const PassageKv> kv;
  };
  struct DiskEntry {
    PassageKey key;
    size_t bytes;
  };
  // An entry evicted from RAM at `epoch`, waiting for the writer.
  struct Pending {
    PassageKey key;
    std::shared_ptr<const PassageKv> kv;
    uint64_t epoch = 0;
  };
  // The writer thread: writes pending spills to disk, indexes them unless their passage was
  // invalidated meanwhile (the file then goes), evicts the disk LRU over budget.
  void WriteSpills();
  void DropPendingLocked(std::deque<Pending>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  [[nodiscard]] bool InvalidatedSinceLocked(const PassageKey& key, uint64_t seen) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the older half of id_invalidated_ (forgotten_before_ moves up to cover it).
  void ForgetOlderInvalidationsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // By value: the caller's iterator may live in the index slot this erases.
  void DropDisk(std::list<DiskEntry>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops matching entries from every tier; disk files to erase (outside the lock) into *erase.
  template <typename Pred>
  void InvalidateIfLocked(Pred pred, std::vector<std::string>* erase)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t ram_budget_, disk_budget_;
  std::unique_ptr<KvDiskStore> disk_;

  mutable Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, uint64_t> collection_invalidated_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::pair<std::string, uint64_t>, uint64_t> id_invalidated_
      ABSL_GUARDED_BY(mu_);
  uint64_t forgotten_before_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<const PassageKv>> pending_index_
      ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;  // the writer holds a spill out of pending_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::list<RamEntry> ram_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<std::string, std::list<RamEntry>::iterator> ram_index_ ABSL_GUARDED_BY(mu_);
  std::list<DiskEntry> disk_lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::list<DiskEntry>::iterator> disk_index_ ABSL_GUARDED_BY(mu_);
  PassageKvCacheStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread writer_;  // with an SSD tier; started last
};

}  // namespace strata::gpu

#endif  // STRATA_GPU_PASSAGE_KV_CACHE_H_
