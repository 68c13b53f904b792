#include "index/record_purger.h"

#include <atomic>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "index/catalog.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

// Records of collection `id` in every family its records live in, `per_family` in each (keys as
// storage/FORMAT.md lays them out: the id first, or after a kind letter), and its purge record.
void WriteCollectionRecords(MetadataStore* store, uint32_t id, int per_family) {
  std::string coll;
  AppendU32(&coll, id);
  WriteBatch batch;
  for (int i = 0; i < per_family; ++i) {
    std::string row = coll;
    AppendU32(&row, static_cast<uint32_t>(i));
    for (Cf cf : {Cf::kVersions, Cf::kPayloads, Cf::kVectors, Cf::kPostings, Cf::kHeads}) {
      batch.Put(cf, row, std::string(64, 'v'));
    }
    batch.Put(Cf::kIdMap, "e" + row, "v");
    batch.Put(Cf::kIdMap, "i" + row, "v");
    batch.Put(Cf::kTenants, "n" + row, "v");
    batch.Put(Cf::kTenants, "Y" + row, "v");
  }
  batch.Put(Cf::kCollections, RecordPurger::PurgeKey(id), "");
  ASSERT_TRUE(store->Write(&batch, /*sync=*/true).ok());
}

// Records per family, of every collection, and purge records.
std::map<std::string, int> Census(const MetadataStore& store) {
  std::map<std::string, int> out;
  for (Cf cf : {Cf::kVersions, Cf::kPayloads, Cf::kVectors, Cf::kPostings, Cf::kHeads, Cf::kIdMap,
                Cf::kTenants, Cf::kCollections}) {
    EXPECT_TRUE(store
                    .Scan(cf, "",
                          [&](absl::string_view key, absl::string_view) {
                            const bool kind = cf == Cf::kIdMap || cf == Cf::kTenants;
                            const std::string what =
                                cf == Cf::kCollections
                                    ? std::string(key)
                                    : absl::StrCat(CfName(cf), "/", ReadU32(key, kind ? 1 : 0));
                            ++out[what];
                            return absl::OkStatus();
                          })
                    .ok());
  }
  return out;
}

// Every record of the dropped collection goes, in batches, and its purge record with the last;
// another collection's records (an id that is a prefix of none of them) stay.
TEST(RecordPurger, DeletesEveryRecordOfTheCollectionAndNoOther) {
  TempDir tmp;
  auto store = *MetadataStore::Open(tmp.File("meta"));
  // 108,000 records: past the size from which a purge compacts what it deleted.
  ASSERT_NO_FATAL_FAILURE(WriteCollectionRecords(store.get(), 5, 12000));
  ASSERT_NO_FATAL_FAILURE(WriteCollectionRecords(store.get(), 6, 10));
  WriteBatch keep;
  keep.Delete(Cf::kCollections, RecordPurger::PurgeKey(6));  // 6 is a listed collection
  ASSERT_TRUE(store->Write(&keep, true).ok());
  ASSERT_TRUE(store->Flush().ok());  // (on disk, as a large collection's records are)
  std::string coll5;
  AppendU32(&coll5, 5);
  const uint64_t before = store->ApproximateBytes(Cf::kVectors, coll5);
  EXPECT_GT(before, 10000u);
  std::atomic<int> batches{0};
  {
    RecordPurger purger(store.get(), [&](uint32_t id) {
      EXPECT_EQ(id, 5u);
      ++batches;
    });
    purger.Enqueue(5);
    purger.WaitIdle();
  }
  EXPECT_EQ(batches.load(), 27);  // 108,000 deletes and the purge record, 4,096 a batch
  // Their disk space is given back (compacted), not left to RocksDB's own compactions.
  EXPECT_LT(store->ApproximateBytes(Cf::kVectors, coll5), before / 10);
  const std::map<std::string, int> left = Census(*store);
  for (const auto& [what, n] : left) {
    EXPECT_EQ(what.find("/5"), std::string::npos) << what << ": " << n << " left";
  }
  EXPECT_EQ(left.size(), 7u);  // collection 6's records, in each of the 7 families
  EXPECT_EQ(left.at("versions/6"), 10);
  EXPECT_EQ(left.at("tenants/6"), 20);
}

// Stopped between two batches: what the first deleted is gone, the rest stays with its purge
// record (for the next start), and later Enqueues do nothing.
TEST(RecordPurger, AStopBetweenBatchesLeavesTheRestWithItsPurgeRecord) {
  TempDir tmp;
  auto store = *MetadataStore::Open(tmp.File("meta"));
  ASSERT_NO_FATAL_FAILURE(WriteCollectionRecords(store.get(), 5, 1000));
  RecordPurger* self = nullptr;
  int batches = 0;
  RecordPurger purger(store.get(), [&](uint32_t) {
    if (++batches == 2) self->Stop();
  });
  self = &purger;
  purger.Enqueue(5);
  purger.WaitIdle();
  EXPECT_EQ(batches, 2);
  std::map<std::string, int> left = Census(*store);
  int records = 0;
  for (const auto& [what, n] : left) records += what == RecordPurger::PurgeKey(5) ? 0 : n;
  EXPECT_EQ(records, 9000 - 4096);
  EXPECT_EQ(left.count(RecordPurger::PurgeKey(5)), 1u);
  purger.Enqueue(5);
  purger.WaitIdle();
  EXPECT_EQ(batches, 2);
}

TEST(RecordPurger, PurgeKeysParseBack) {
  EXPECT_EQ(*RecordPurger::ParsePurgeKey(RecordPurger::PurgeKey(77)), 77u);
  EXPECT_EQ(*RecordPurger::ParsePurgeKey("docs"), std::nullopt);
  EXPECT_TRUE(absl::IsDataLoss(RecordPurger::ParsePurgeKey("\x01purge/12").status()));
}

// A drop returns before its records are deleted (the purger's first batch waits for it to), and
// a catalog opened with a drop's records left returns before they are deleted too: both finish in
// the background. (Were either done in the call, the batch would wait for a notification that
// comes only after the call returns: it would give up after a minute and the test fail.)
TEST(RecordPurger, DropsAndStartsReturnBeforeTheRecordsGo) {
  TempDir tmp;
  absl::Notification returned;
  std::atomic<bool> waited_in_vain{false};
  CollectionOptions options;
  options.test_before_purge_batch = [&](uint32_t) {
    if (!returned.WaitForNotificationWithTimeout(absl::Minutes(1))) waited_in_vain = true;
  };
  uint32_t id = 0;
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    CollectionConfig cfg;
    cfg.name = "c";
    cfg.dim = 4;
    auto c = *cat->Create(cfg);
    id = c->config().id;
    std::vector<std::vector<float>> rows(100, std::vector<float>{1, 2, 3, 4});
    std::vector<PointInput> in;
    for (size_t i = 0; i < rows.size(); ++i) {
      in.push_back({i, {reinterpret_cast<const uint8_t*>(rows[i].data()), 16}, {}});
    }
    std::vector<RowError> errors;
    uint64_t n = 0;
    ASSERT_TRUE(c->Upsert(in, &errors, &n).ok());
    c.reset();
    ASSERT_TRUE(cat->Drop("c").ok());
    EXPECT_TRUE(absl::IsNotFound(cat->Find("c").status()));
    EXPECT_GT(Census(*cat->store())[absl::StrCat("vectors/", id)], 0) << "deleted in the call";
    returned.Notify();
    cat->WaitForPurges();
    EXPECT_FALSE(waited_in_vain.load());
    const std::map<std::string, int> left = Census(*cat->store());
    for (const auto& [what, n] : left) EXPECT_EQ(what.find("\x01purge"), std::string::npos);
    EXPECT_EQ(left.count(absl::StrCat("vectors/", id)), 0u);
  }
  // A drop's records a stop left (written here as one leaves them), found by the next start.
  {
    auto store = *MetadataStore::Open(tmp.File("meta"));
    ASSERT_NO_FATAL_FAILURE(WriteCollectionRecords(store.get(), 90, 100));
  }
  absl::Notification opened;
  options.test_before_purge_batch = [&](uint32_t) {
    if (!opened.WaitForNotificationWithTimeout(absl::Minutes(1))) waited_in_vain = true;
  };
  auto cat = Catalog::Open(tmp.path(), options);
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_EQ(Census(*(*cat)->store())["vectors/90"], 100) << "deleted in the open";
  opened.Notify();
  (*cat)->WaitForPurges();
  EXPECT_FALSE(waited_in_vain.load());
  const std::map<std::string, int> left = Census(*(*cat)->store());
  EXPECT_EQ(left.count("vectors/90"), 0u);
  EXPECT_EQ(left.count(RecordPurger::PurgeKey(90)), 0u);
  // (Its id is never handed out again.)
  CollectionConfig cfg;
  cfg.name = "d";
  cfg.dim = 4;
  EXPECT_GT((*(*cat)->Create(cfg))->config().id, 90u);
}

}  // namespace
}  // namespace strata
