// The passage KV cache's tiers: RAM LRU within its budget, spill to the SSD tier and back,
// damaged or failing disk entries as misses, invalidation, and stale versions never served.
#include "gpu/passage_kv_cache.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>

#include "storage/scoped_fd.h"
#include "tests/test_util.h"

namespace strata::gpu {
namespace {

std::shared_ptr<const PassageKv> Entry(int tokens, float seed) {
  std::vector<std::vector<float>> k(2), v(2);
  for (int l = 0; l < 2; ++l) {
    for (int i = 0; i < tokens * 64; ++i) {
      k[static_cast<size_t>(l)].push_back(seed + static_cast<float>(i % 7));
      v[static_cast<size_t>(l)].push_back(seed - static_cast<float>(i % 5));
    }
  }
  return std::make_shared<const PassageKv>(
      PassageKv::Compress(KvFormat::kInt8, tokens, 1, 64, k, v));
}

PassageKey Key(uint64_t id, uint64_t version = 1, const std::string& col = "docs") {
  return {"model", col, id, version, KvFormat::kInt8};
}

// A disk store in memory that can be told to fail or to damage what it returns.
class FakeDisk final : public KvDiskStore {
 public:
  absl::Status Put(const std::string& name, const std::string& bytes) override {
    if (fail_puts) return absl::UnavailableError("disk full");
    files[name] = bytes;
    if (on_put) on_put();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Get(const std::string& name) override {
    auto it = files.find(name);
    if (it == files.end()) return absl::NotFoundError(name);
    std::string b = it->second;
    if (damage && b.size() > 40) b[40] ^= 1;
    return b;
  }
  void Erase(const std::string& name) override { files.erase(name); }
  std::map<std::string, std::string> files;
  bool fail_puts = false, damage = false;
  std::function<void()> on_put;  // runs after a file is written (outside the cache's lock)
};

// An entry computed (or read from disk, or spilled) while its passage was invalidated never
// enters the cache afterwards.
TEST(PassageKvCache, NothingEntersAfterAnInvalidationThatCameWhileItWasMade) {
  const size_t one = Entry(32, 0)->bytes();
  auto disk = std::make_unique<FakeDisk>();
  FakeDisk* d = disk.get();
  PassageKvCacheOptions o;
  o.ram_bytes = one;
  o.disk = std::move(disk);
  o.disk_bytes = one * 8;
  PassageKvCache cache(std::move(o));
  KvTier tier;
  // Made while an invalidation came in: dropped; made after it: kept.
  const uint64_t before = cache.epoch();
  cache.Invalidate("docs", std::vector<uint64_t>{1});
  cache.Insert(Key(1), Entry(32, 1), before);
  EXPECT_EQ(cache.Lookup(Key(1), &tier), nullptr);
  cache.Insert(Key(1), Entry(32, 1), cache.epoch());
  EXPECT_NE(cache.Lookup(Key(1), &tier), nullptr);
  // Spilled while invalidated: the file goes and the index never holds it.
  d->on_put = [&] { cache.Invalidate("docs", std::vector<uint64_t>{1}); };
  cache.Insert(Key(2), Entry(32, 2));  // evicts 1 to disk, invalidated during its write
  cache.Flush();
  d->on_put = nullptr;
  EXPECT_EQ(cache.Lookup(Key(1), &tier), nullptr);
  EXPECT_EQ(tier, KvTier::kMiss);
  EXPECT_TRUE(d->files.empty());
  EXPECT_EQ(cache.stats().disk_entries, 0u);
}

TEST(PassageKvCache, RamKeepsTheMostRecentWithinItsBudget) {
  const size_t one = Entry(32, 0)->bytes();
  PassageKvCacheOptions o;
  o.ram_bytes = one * 3;
  PassageKvCache cache(std::move(o));
  for (uint64_t id = 1; id <= 3; ++id) cache.Insert(Key(id), Entry(32, static_cast<float>(id)));
  KvTier tier;
  ASSERT_NE(cache.Lookup(Key(1), &tier), nullptr);  // 1 is now the most recent
  EXPECT_EQ(tier, KvTier::kRam);
  cache.Insert(Key(4), Entry(32, 4));  // evicts 2, the least recent
  EXPECT_EQ(cache.Lookup(Key(2), &tier), nullptr);
  EXPECT_EQ(tier, KvTier::kMiss);
  EXPECT_NE(cache.Lookup(Key(1), &tier), nullptr);
  EXPECT_NE(cache.Lookup(Key(4), &tier), nullptr);
  EXPECT_EQ(cache.Lookup(Key(1, /*version=*/2), &tier), nullptr);  // other text: never served
  const PassageKvCacheStats s = cache.stats();
  EXPECT_LE(s.ram_bytes, one * 3);
  EXPECT_EQ(s.ram_evictions, 1u);
}

TEST(PassageKvCache, EvictedEntriesComeBackFromDisk) {
  const auto e = Entry(32, 0);
  auto disk = std::make_unique<FakeDisk>();
  FakeDisk* d = disk.get();
  PassageKvCacheOptions o;
  o.ram_bytes = e->bytes() * 2;
  o.disk_bytes = 100 * e->bytes();
  o.disk = std::move(disk);
  PassageKvCache cache(std::move(o));
  for (uint64_t id = 1; id <= 5; ++id) cache.Insert(Key(id), Entry(32, static_cast<float>(id)));
  cache.Flush();  // spills are written by the cache's own thread
  EXPECT_EQ(d->files.size(), 3u);
  EXPECT_EQ(cache.stats().entries, 5u);  // 2 in RAM, 3 on disk
  KvTier tier;
  size_t read = 0;
  auto back = cache.Lookup(Key(1), &tier, &read);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(tier, KvTier::kDisk);
  EXPECT_GT(read, back->bytes());
  EXPECT_EQ(back->Serialize(), Entry(32, 1)->Serialize());
  ASSERT_NE(cache.Lookup(Key(1), &tier), nullptr);
  EXPECT_EQ(tier, KvTier::kRam);  // promoted
  cache.Flush();
  // Counted once, though in RAM and on disk (the RAM entry it evicted went to disk).
  EXPECT_EQ(cache.stats().entries, 5u);
  EXPECT_GT(cache.stats().ram_entries + cache.stats().disk_entries, 5u);
  // A damaged file is a miss, and is dropped.
  d->damage = true;
  EXPECT_EQ(cache.Lookup(Key(2), &tier), nullptr);
  EXPECT_EQ(tier, KvTier::kMiss);
  EXPECT_EQ(d->files.count(Key(2).Encode()), 0u);
  EXPECT_EQ(cache.stats().disk_errors, 1u);
  // Invalidation empties both tiers of that passage.
  d->damage = false;
  const uint64_t three = 3;
  cache.Invalidate("docs", {&three, 1});
  cache.Flush();
  EXPECT_EQ(cache.Lookup(Key(3), &tier), nullptr);
  EXPECT_EQ(d->files.count(Key(3).Encode()), 0u);
  cache.InvalidateCollection("docs");
  cache.Flush();
  EXPECT_EQ(cache.stats().ram_entries, 0u);
  EXPECT_EQ(d->files.size(), 0u);
}

TEST(PassageKvCache, AFailingDiskLosesEntriesNotTheServer) {
  auto disk = std::make_unique<FakeDisk>();
  disk->fail_puts = true;
  const auto e = Entry(32, 0);
  PassageKvCacheOptions o;
  o.ram_bytes = e->bytes();
  o.disk_bytes = 100 * e->bytes();
  o.disk = std::move(disk);
  PassageKvCache cache(std::move(o));
  for (uint64_t id = 1; id <= 4; ++id) cache.Insert(Key(id), Entry(32, static_cast<float>(id)));
  cache.Flush();
  KvTier tier;
  EXPECT_EQ(cache.Lookup(Key(1), &tier), nullptr);
  EXPECT_NE(cache.Lookup(Key(4), &tier), nullptr);
  EXPECT_EQ(cache.stats().disk_errors, 3u);
  EXPECT_EQ(cache.stats().lost, 3u);
  EXPECT_EQ(cache.dropped(), 3u);
}

// An invalidation of one passage does not drop entries of others being made meanwhile; one of
// the collection drops them all; and an entry waiting to be written is served from memory.
TEST(PassageKvCache, InvalidationsAreScopedToTheirPassages) {
  PassageKvCacheOptions o;
  o.ram_bytes = Entry(32, 0)->bytes() * 4;
  PassageKvCache cache(std::move(o));
  KvTier tier;
  const uint64_t before = cache.epoch();
  cache.Invalidate("docs", std::vector<uint64_t>{7});
  cache.Invalidate("other", std::vector<uint64_t>{1});
  EXPECT_TRUE(cache.Insert(Key(1), Entry(32, 1), before));   // other passages: kept
  EXPECT_FALSE(cache.Insert(Key(7), Entry(32, 7), before));  // that passage: not kept
  EXPECT_TRUE(cache.Contains(Key(1)));
  EXPECT_FALSE(cache.Contains(Key(7)));
  const uint64_t later = cache.epoch();
  cache.InvalidateCollection("docs");
  EXPECT_FALSE(cache.Insert(Key(2), Entry(32, 2), later));
  EXPECT_FALSE(cache.Contains(Key(1)));  // the collection's entries went too
  EXPECT_EQ(cache.Lookup(Key(2), &tier), nullptr);
}

// The record of invalidated ids is bounded: past it the older half is forgotten, and only inserts
// begun before what was forgotten are refused (all of them, whatever their passage); an insert
// begun since, of a passage no invalidation concerns, is kept. One invalidation of more ids than
// half the record records none and refuses every insert begun before it.
TEST(PassageKvCache, ABoundedInvalidationRecordRefusesOnlyInsertsBegunBeforeWhatItForgot) {
  PassageKvCacheOptions o;
  o.ram_bytes = Entry(32, 0)->bytes() * 8;
  PassageKvCache cache(std::move(o));
  bool stale = false;
  const uint64_t oldest = cache.epoch();
  constexpr uint64_t kPer = PassageKvCache::kMaxInvalidationRecords / 8;
  for (uint64_t round = 0; round < 5; ++round) {  // 5/8 of the record, ids 1000000 and up
    std::vector<uint64_t> ids(kPer);
    for (uint64_t i = 0; i < kPer; ++i) ids[i] = 1000000 + round * kPer + i;
    cache.Invalidate("docs", ids);
  }
  const uint64_t recent = cache.epoch();
  for (uint64_t round = 5; round < 9; ++round) {  // past the record: the older half goes
    std::vector<uint64_t> ids(kPer);
    for (uint64_t i = 0; i < kPer; ++i) ids[i] = 1000000 + round * kPer + i;
    cache.Invalidate("docs", ids);
  }
  EXPECT_FALSE(cache.Insert(Key(1), Entry(32, 1), oldest, &stale));  // begun before: refused
  EXPECT_TRUE(stale);
  EXPECT_TRUE(cache.Insert(Key(2), Entry(32, 2), recent, &stale));  // begun since: kept
  EXPECT_FALSE(stale);
  EXPECT_FALSE(cache.Insert(Key(1000000 + 8 * kPer), Entry(32, 3), recent));  // still recorded
  const uint64_t before_many = cache.epoch();
  std::vector<uint64_t> many(PassageKvCache::kMaxInvalidationRecords);
  for (uint64_t i = 0; i < many.size(); ++i) many[i] = 5000000 + i;
  cache.Invalidate("docs", many);
  EXPECT_FALSE(cache.Insert(Key(3), Entry(32, 3), before_many));
  EXPECT_TRUE(cache.Insert(Key(3), Entry(32, 3), cache.epoch()));
}

TEST(PassageKey, EncodesAndDecodes) {
  const PassageKey k{"model.gguf:123", "a-b c\n", 42, 0xabcdef, KvFormat::kInt4};
  const std::optional<PassageKey> back = PassageKey::Decode(k.Encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->model, k.model);
  EXPECT_EQ(back->collection, k.collection);
  EXPECT_EQ(back->id, 42u);
  EXPECT_EQ(back->version, 0xabcdefu);
  EXPECT_EQ(back->format, KvFormat::kInt4);
  for (const char* bad : {"", "a", "zz-00-1-2-int8", "61-62-x-2-int8", "61-62-1-2-int9",
                          "61-62-1-2-int8-extra", "6-62-1-2-int8", "61-62-01-2-int8"}) {
    EXPECT_FALSE(PassageKey::Decode(bad).has_value()) << bad;
  }
}

// The SSD tier outlives the process: a restart indexes this model's entries (newest kept when
// over budget) and serves them; other models' entries and half-written files go.
TEST(PassageKvCache, TheFileTierIsKeptAcrossRestarts) {
  testing::TempDir dir;
  const std::string kv_dir = dir.File("kv");
  const size_t one = Entry(32, 0)->bytes();
  auto open = [&](const std::string& model, size_t disk_entries) {
    auto store = OpenKvDirectory(kv_dir);
    EXPECT_TRUE(store.ok()) << store.status();
    PassageKvCacheOptions o;
    o.model = model;
    o.ram_bytes = one;  // one entry in RAM: the rest spill
    o.disk = std::move(*store);
    o.disk_bytes = disk_entries * (one + 4096);
    return std::make_unique<PassageKvCache>(std::move(o));
  };
  auto key = [](const std::string& model, uint64_t id) {
    return PassageKey{model, "docs", id, 1, KvFormat::kInt8};
  };
  {
    auto cache = open("m1", 8);
    for (uint64_t id = 1; id <= 4; ++id) cache->Insert(key("m1", id), Entry(32, float(id)));
    cache->Flush();
    EXPECT_EQ(cache->stats().disk_entries, 3u);  // 1..3 spilled; 4 in RAM, written at exit
  }
  ASSERT_TRUE(WriteFileAtomic(kv_dir + "/junk.kv.tmp", absl::Span<const char>("x", 1)).ok());
  {
    auto cache = open("m1", 8);
    EXPECT_EQ(cache->stats().disk_entries, 4u);
    KvTier tier;
    auto kv = cache->Lookup(key("m1", 2), &tier);
    ASSERT_NE(kv, nullptr);
    EXPECT_EQ(tier, KvTier::kDisk);
    EXPECT_EQ(kv->Serialize(), Entry(32, 2)->Serialize());
    ASSERT_NE(cache->Lookup(key("m1", 4), &tier), nullptr);
    EXPECT_EQ(tier, KvTier::kDisk);
  }
  EXPECT_FALSE(std::ifstream(kv_dir + "/junk.kv.tmp").good());
  {
    auto cache = open("m1", 2);  // a smaller budget: the oldest go
    EXPECT_EQ(cache->stats().disk_entries, 2u);
    KvTier tier;
    EXPECT_EQ(cache->Lookup(key("m1", 1), &tier), nullptr);
  }
  {
    auto cache = open("m2", 8);  // another model (or other instructions): nothing is served
    EXPECT_EQ(cache->stats().disk_entries, 0u);
    KvTier tier;
    EXPECT_EQ(cache->Lookup(key("m1", 2), &tier), nullptr);
  }
  auto store = OpenKvDirectory(kv_dir);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->List().empty());
}

}  // namespace
}  // namespace strata::gpu
