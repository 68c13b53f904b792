#include "gpu/passage_kv_cache.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "storage/log.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::gpu {
namespace {

constexpr char kSuffix[] = ".kv";

class FileKvStore final : public KvDiskStore {
 public:
  explicit FileKvStore(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Put(const std::string& name, const std::string& bytes) override {
    return WriteFileAtomic(Path(name), absl::Span<const char>(bytes.data(), bytes.size()));
  }
  absl::StatusOr<std::string> Get(const std::string& name) override {
    return ReadWholeFile(Path(name));
  }
  void Erase(const std::string& name) override { unlink(Path(name).c_str()); }
  std::vector<std::pair<std::string, size_t>> List() override {
    std::vector<std::tuple<int64_t, std::string, size_t>> found;  // (mtime ns, name, bytes)
    if (DIR* d = opendir(dir_.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string file = e->d_name;
        if (file.size() <= 3 || file.compare(file.size() - 3, 3, kSuffix) != 0) continue;
        struct stat st;
        if (stat(absl::StrCat(dir_, "/", file).c_str(), &st) != 0) continue;
        found.emplace_back(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec,
                           file.substr(0, file.size() - 3), static_cast<size_t>(st.st_size));
      }
      closedir(d);
    }
    std::sort(found.begin(), found.end());
    std::vector<std::pair<std::string, size_t>> out;
    for (auto& [mtime, name, bytes] : found) out.emplace_back(std::move(name), bytes);
    return out;
  }

 private:
  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name, kSuffix); }
  std::string dir_;
};

}  // namespace

std::string PassageKey::Encode() const {
  // Collection names and model names may hold any byte: hex keeps the name file-safe.
  return absl::StrCat(absl::BytesToHexString(model), "-", absl::BytesToHexString(collection), "-",
                      id, "-", absl::Hex(version), "-", KvFormatName(format));
}

absl::StatusOr<std::unique_ptr<KvDiskStore>> OpenKvDirectory(const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", dir));
  }
  // Entries stay for the cache to index; what a crash left half-written (WriteFileAtomic's
  // temporaries) goes.
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> partial;
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (absl::EndsWith(name, ".tmp")) partial.push_back(name);
    }
    closedir(d);
    for (const std::string& name : partial) unlink(absl::StrCat(dir, "/", name).c_str());
  } else {
    return ErrnoToStatus(errno, absl::StrCat("opendir ", dir));
  }
  return std::unique_ptr<KvDiskStore>(new FileKvStore(dir));
}

std::optional<PassageKey> PassageKey::Decode(absl::string_view name) {
  const std::vector<absl::string_view> parts = absl::StrSplit(name, '-');
  if (parts.size() != 5) return std::nullopt;
  PassageKey k;
  if (!absl::SimpleAtoi(parts[2], &k.id) || !absl::SimpleHexAtoi(parts[3], &k.version)) {
    return std::nullopt;
  }
  // (This Abseil's HexStringToBytes does not validate: the round trip below does.)
  k.model = absl::HexStringToBytes(parts[0]);
  k.collection = absl::HexStringToBytes(parts[1]);
  bool known = false;
  for (KvFormat f : {KvFormat::kF32, KvFormat::kF16, KvFormat::kInt8, KvFormat::kInt4}) {
    if (parts[4] == KvFormatName(f)) {
      k.format = f;
      known = true;
    }
  }
  if (!known || k.Encode() != name) return std::nullopt;
  return k;
}

PassageKvCache::PassageKvCache(PassageKvCacheOptions options)
    : ram_budget_(options.ram_bytes),
      disk_budget_(options.disk != nullptr ? options.disk_bytes : 0),
      disk_(std::move(options.disk)) {
  if (disk_ == nullptr) return;
  // What an earlier run spilled, oldest first: this model's entries are indexed (the newest at
  // the front of the LRU), the rest removed; then the budget is enforced.
  std::vector<std::string> remove;
  {
    MutexLock lock(&mu_);
    for (auto& [name, bytes] : disk_->List()) {
      std::optional<PassageKey> key = PassageKey::Decode(name);
      if (!key || key->model != options.model || disk_budget_ == 0 || disk_index_.contains(name)) {
        remove.push_back(name);
        continue;
      }
      disk_lru_.push_front({*std::move(key), bytes});
      disk_index_[name] = disk_lru_.begin();
      stats_.disk_bytes += bytes;
    }
    while (stats_.disk_bytes > disk_budget_ && !disk_lru_.empty()) {
      auto last = std::prev(disk_lru_.end());
      remove.push_back(last->key.Encode());
      DropDisk(last);
    }
    stats_.disk_entries = disk_lru_.size();
  }
  for (const std::string& name : remove) disk_->Erase(name);
  if (stats().disk_entries > 0 || !remove.empty()) {
    Log(LogLevel::kInfo,
        "passage KV cache: %llu entries (%.1f MB) kept on disk from before, %zu removed",
        static_cast<unsigned long long>(stats().disk_entries), stats().disk_bytes / 1e6,
        remove.size());
  }
  if (disk_budget_ > 0) writer_ = std::thread([this] { WriteSpills(); });
}

PassageKvCache::~PassageKvCache() {
  size_t kept = 0;
  {
    MutexLock lock(&mu_);
    // With an SSD tier, what RAM holds is written too (the most recent last, so newest on disk),
    // so the next start finds it; the pending bound does not apply here.
    if (writer_.joinable()) {
      for (auto it = ram_.rbegin(); it != ram_.rend(); ++it) {
        const std::string name = it->key.Encode();
        if (disk_index_.contains(name) || pending_index_.contains(name)) continue;
        pending_bytes_ += it->kv->bytes();
        pending_index_[name] = it->kv;
        pending_.push_back({it->key, it->kv, epoch_});
        ++kept;
      }
    }
    stopping_ = true;
  }
  if (kept > 0) {
    Log(LogLevel::kInfo, "passage KV cache: writing %zu entries from RAM to disk before exit",
        kept);
  }
  if (writer_.joinable()) writer_.join();  // writes what is pending first
}

std::shared_ptr<const PassageKv> PassageKvCache::Lookup(const PassageKey& key, KvTier* tier,
                                                        size_t* bytes_read) {
  const std::string name = key.Encode();
  uint64_t seen_epoch = 0;
  {
    MutexLock lock(&mu_);
    seen_epoch = epoch_;
    if (auto it = ram_index_.find(name); it != ram_index_.end()) {
      ram_.splice(ram_.begin(), ram_, it->second);
      ++stats_.ram_hits;
      *tier = KvTier::kRam;
      return ram_.front().kv;
    }
    if (auto it = pending_index_.find(name); it != pending_index_.end()) {
      ++stats_.ram_hits;  // still in memory, on its way to disk
      *tier = KvTier::kRam;
      return it->second;
    }
    if (!disk_index_.contains(name)) {
      ++stats_.misses;
      *tier = KvTier::kMiss;
      return nullptr;
    }
  }
  // On disk: read outside the lock.
  absl::StatusOr<std::string> bytes = disk_->Get(name);
  absl::StatusOr<PassageKv> kv =
      bytes.ok() ? PassageKv::Parse(*bytes) : absl::StatusOr<PassageKv>(bytes.status());
  if (!kv.ok()) {
    Log(LogLevel::kWarning, "passage KV cache: dropping an unreadable SSD entry: %s",
        std::string(kv.status().message()));
    bool erase = false;
    {
      MutexLock lock(&mu_);
      ++stats_.disk_errors;
      ++stats_.misses;
      if (auto it = disk_index_.find(name); it != disk_index_.end()) {
        DropDisk(it->second);
        erase = true;
      }
    }
    if (erase) disk_->Erase(name);
    *tier = KvTier::kMiss;
    return nullptr;
  }
  if (bytes_read != nullptr) *bytes_read += bytes->size();
  auto shared = std::make_shared<const PassageKv>(std::move(*kv));
  {
    MutexLock lock(&mu_);
    ++stats_.disk_hits;
  }
  *tier = KvTier::kDisk;
  // Promoted to RAM (its disk copy stays until evicted there), unless invalidated meanwhile.
  Insert(key, shared, seen_epoch);
  return shared;
}

bool PassageKvCache::Contains(const PassageKey& key) const {
  const std::string name = key.Encode();
  MutexLock lock(&mu_);
  return ram_index_.contains(name) || pending_index_.contains(name) || disk_index_.contains(name);
}

uint64_t PassageKvCache::epoch() const {
  MutexLock lock(&mu_);
  return epoch_;
}

bool PassageKvCache::InvalidatedSinceLocked(const PassageKey& key, uint64_t seen) const {
  if (seen == kAnyEpoch) return false;
  if (seen < forgotten_before_) return true;  // the record was trimmed: assume the worst
  if (auto it = collection_invalidated_.find(key.collection);
      it != collection_invalidated_.end() && it->second > seen) {
    return true;
  }
  auto it = id_invalidated_.find(std::make_pair(key.collection, key.id));
  return it != id_invalidated_.end() && it->second > seen;
}

bool PassageKvCache::Insert(const PassageKey& key, std::shared_ptr<const PassageKv> kv,
                            uint64_t seen_epoch, bool* stale) {
  if (stale != nullptr) *stale = false;
  if (kv == nullptr) return false;
  const std::string name = key.Encode();
  MutexLock lock(&mu_);
  if (InvalidatedSinceLocked(key, seen_epoch)) {
    if (stale != nullptr) *stale = true;
    return false;
  }
  if (kv->bytes() > ram_budget_) {
    // Larger than the RAM tier: straight to the SSD tier when it can hold it.
    if (disk_index_.contains(name) || pending_index_.contains(name)) return true;
    if (disk_budget_ == 0 || kv->bytes() > disk_budget_) {
      ++stats_.lost;
      return false;
    }
    ++stats_.inserts;
    pending_bytes_ += kv->bytes();
    pending_index_[name] = kv;
    pending_.push_back({key, std::move(kv), epoch_});
    return true;
  }
  ++stats_.inserts;
  if (auto it = ram_index_.find(name); it != ram_index_.end()) {
    stats_.ram_bytes -= it->second->kv->bytes();
    ram_.erase(it->second);
    ram_index_.erase(it);
  }
  ram_.push_front({key, std::move(kv)});
  ram_index_[name] = ram_.begin();
  stats_.ram_bytes += ram_.front().kv->bytes();
  // Evicted entries go to the writer thread (no file I/O on the caller's thread: it may be the
  // decoder's scheduler).
  while (stats_.ram_bytes > ram_budget_ && !ram_.empty()) {
    auto last = std::prev(ram_.end());
    stats_.ram_bytes -= last->kv->bytes();
    const std::string victim = last->key.Encode();
    ram_index_.erase(victim);
    ++stats_.ram_evictions;
    if (disk_budget_ > 0) {
      pending_bytes_ += last->kv->bytes();
      pending_index_[victim] = last->kv;
      pending_.push_back({std::move(last->key), std::move(last->kv), epoch_});
    } else {
      ++stats_.lost;
    }
    ram_.erase(last);
  }
  stats_.ram_entries = ram_.size();
  // Spills the writer has not reached are dropped beyond a bound (oldest first).
  while (pending_bytes_ > kMaxPendingBytes && !pending_.empty()) {
    DropPendingLocked(pending_.begin());
    ++stats_.lost;
  }
  return true;
}

void PassageKvCache::DropPendingLocked(std::deque<Pending>::iterator it) {
  pending_bytes_ -= it->kv->bytes();
  const std::string name = it->key.Encode();
  if (auto p = pending_index_.find(name); p != pending_index_.end() && p->second == it->kv) {
    pending_index_.erase(p);
  }
  pending_.erase(it);
}

void PassageKvCache::DropDisk(std::list<DiskEntry>::iterator it) {
  stats_.disk_bytes -= it->bytes;
  disk_index_.erase(it->key.Encode());
  disk_lru_.erase(it);
  stats_.disk_entries = disk_lru_.size();
}

void PassageKvCache::WriteSpills() {
  while (true) {
    Pending p;
    {
      MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !pending_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (pending_.empty()) return;  // stopping, everything written
      p = std::move(pending_.front());
      pending_.pop_front();
      pending_bytes_ -= p.kv->bytes();
      writing_ = true;
    }
    const std::string name = p.key.Encode();
    auto forget = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (auto it = pending_index_.find(name); it != pending_index_.end() && it->second == p.kv) {
        pending_index_.erase(it);
      }
    };
    {
      MutexLock lock(&mu_);
      if (auto it = disk_index_.find(name); it != disk_index_.end()) {
        disk_lru_.splice(disk_lru_.begin(), disk_lru_, it->second);  // promoted earlier: refresh
        forget();
        writing_ = false;
        continue;
      }
    }
    const std::string bytes = p.kv->Serialize();
    absl::Status s = bytes.size() > disk_budget_
                         ? absl::ResourceExhaustedError("larger than the SSD tier's budget")
                         : disk_->Put(name, bytes);
    std::vector<std::string> erase;
    {
      MutexLock lock(&mu_);
      forget();
      if (!s.ok()) {
        ++stats_.lost;
        if (!absl::IsResourceExhausted(s)) ++stats_.disk_errors;
      } else if (InvalidatedSinceLocked(p.key, p.epoch)) {
        // Its passage was replaced or deleted while it was written: the file goes.
        erase.push_back(name);
      } else if (!disk_index_.contains(name)) {
        disk_lru_.push_front({p.key, bytes.size()});
        disk_index_[name] = disk_lru_.begin();
        stats_.disk_bytes += bytes.size();
        while (stats_.disk_bytes > disk_budget_ && disk_lru_.size() > 1) {
          auto last = std::prev(disk_lru_.end());
          erase.push_back(last->key.Encode());
          DropDisk(last);
          ++stats_.disk_evictions;
        }
        stats_.disk_entries = disk_lru_.size();
      }
    }
    if (!s.ok() && !absl::IsResourceExhausted(s)) {
      Log(LogLevel::kWarning, "passage KV cache: SSD tier write failed (entry dropped): %s",
          std::string(s.message()));
    }
    for (const std::string& e : erase) disk_->Erase(e);
    MutexLock lock(&mu_);
    writing_ = false;
  }
}

void PassageKvCache::Flush() {
  MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_.empty() && !writing_; };
  mu_.Await(absl::Condition(&idle));
}

template <typename Pred>
void PassageKvCache::InvalidateIfLocked(Pred pred, std::vector<std::string>* erase) {
  for (auto it = ram_.begin(); it != ram_.end();) {
    if (pred(it->key)) {
      stats_.ram_bytes -= it->kv->bytes();
      ram_index_.erase(it->key.Encode());
      it = ram_.erase(it);
      ++stats_.invalidations;
    } else {
      ++it;
    }
  }
  stats_.ram_entries = ram_.size();
  for (size_t i = 0; i < pending_.size();) {
    if (pred(pending_[i].key)) {
      DropPendingLocked(pending_.begin() + static_cast<std::ptrdiff_t>(i));
      ++stats_.invalidations;
    } else {
      ++i;
    }
  }
  for (auto it = disk_lru_.begin(); it != disk_lru_.end();) {
    auto next = std::next(it);
    if (pred(it->key)) {
      erase->push_back(it->key.Encode());
      DropDisk(it);
      ++stats_.invalidations;
    }
    it = next;
  }
}

void PassageKvCache::Invalidate(const std::string& collection, absl::Span<const uint64_t> ids) {
  const absl::flat_hash_set<uint64_t> set(ids.begin(), ids.end());
  std::vector<std::string> erase;
  {
    MutexLock lock(&mu_);
    ++epoch_;
    if (set.size() > kMaxInvalidationRecords / 2) {
      forgotten_before_ = epoch_;  // (a tenant's drop: millions of ids would be held here)
    } else {
      if (id_invalidated_.size() + set.size() > kMaxInvalidationRecords) {
        ForgetOlderInvalidationsLocked();
      }
      for (uint64_t id : set) id_invalidated_[std::make_pair(collection, id)] = epoch_;
    }
    InvalidateIfLocked(
        [&](const PassageKey& k) { return set.contains(k.id) && k.collection == collection; },
        &erase);
  }
  for (const std::string& name : erase) disk_->Erase(name);
}

void PassageKvCache::ForgetOlderInvalidationsLocked() {
  std::vector<uint64_t> epochs;
  epochs.reserve(id_invalidated_.size());
  for (const auto& [passage, epoch] : id_invalidated_) epochs.push_back(epoch);
  if (epochs.empty()) return;
  auto mid = epochs.begin() + static_cast<std::ptrdiff_t>(epochs.size() / 2);
  std::nth_element(epochs.begin(), mid, epochs.end());
  const uint64_t median = *mid;
  // A forgotten record of epoch e refused inserts begun before e <= median: those begun before
  // the median are refused from now on; later ones no forgotten record concerned.
  absl::erase_if(id_invalidated_, [&](const auto& record) { return record.second <= median; });
  forgotten_before_ = std::max(forgotten_before_, median);
}

void PassageKvCache::InvalidateCollection(const std::string& collection) {
  std::vector<std::string> erase;
  {
    MutexLock lock(&mu_);
    ++epoch_;
    collection_invalidated_[collection] = epoch_;
    InvalidateIfLocked([&](const PassageKey& k) { return k.collection == collection; }, &erase);
  }
  for (const std::string& name : erase) disk_->Erase(name);
}

std::vector<std::pair<std::string, uint64_t>> PassageKvCache::Passages() const {
  absl::flat_hash_set<std::pair<std::string, uint64_t>> seen;
  MutexLock lock(&mu_);
  for (const RamEntry& e : ram_) seen.emplace(e.key.collection, e.key.id);
  for (const Pending& p : pending_) seen.emplace(p.key.collection, p.key.id);
  for (const DiskEntry& e : disk_lru_) seen.emplace(e.key.collection, e.key.id);
  return {seen.begin(), seen.end()};
}

uint64_t PassageKvCache::dropped() const {
  MutexLock lock(&mu_);
  return stats_.disk_evictions + stats_.lost;
}

PassageKvCacheStats PassageKvCache::stats() const {
  MutexLock lock(&mu_);
  PassageKvCacheStats s = stats_;
  s.entries = disk_index_.size();
  for (const auto& [name, unused] : ram_index_) s.entries += disk_index_.contains(name) ? 0 : 1;
  for (const auto& [name, unused] : pending_index_) {
    s.entries += disk_index_.contains(name) || ram_index_.contains(name) ? 0 : 1;
  }
  return s;
}

}  // namespace strata::gpu
