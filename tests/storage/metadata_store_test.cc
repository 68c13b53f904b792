#include "storage/metadata_store.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/fault_injection_env.h"
#include "storage/scoped_fd.h"
#include "storage/wal_scan.h"
#include "tests/test_util.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Writes `n` synced one-key batches (k000..), each ~1 KiB, and closes the store.
void WriteBatches(const std::string& path, int n) {
  auto store = MetadataStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < n; ++i) {
    WriteBatch b;
    b.Put(Cf::kPayloads, absl::StrCat("k", 1000 + i),
          std::string(1000, static_cast<char>('a' + i % 26)));
    ASSERT_TRUE((*store)->Write(&b, /*sync=*/true).ok());
  }
}

std::string TheLog(const std::string& path) {
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.path().extension() == ".log" && fs::file_size(e.path()) > 0) return e.path().string();
  }
  return "";
}

void FlipByte(const std::string& file, uint64_t at) {
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(at));
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  io.seekp(static_cast<std::streamoff>(at));
  io.write(&c, 1);
}

TEST(MetadataStore, MultiGetAnswersInOrderWithNotFoundForAbsentKeys) {
  TempDir tmp;
  auto store = MetadataStore::Open(tmp.File("db"));
  ASSERT_TRUE(store.ok()) << store.status();
  WriteBatch b;
  b.Put(Cf::kVectors, "b", "2");
  b.Put(Cf::kVectors, "a", "1");
  b.Put(Cf::kPayloads, "c", "not in vectors");
  ASSERT_TRUE((*store)->Write(&b, /*sync=*/true).ok());
  const std::vector<std::string> keys = {"b", "zz", "a", "c", "b"};
  const auto got = (*store)->MultiGet(Cf::kVectors, keys);
  ASSERT_EQ(got.size(), keys.size());
  EXPECT_EQ(*got[0], "2");
  EXPECT_TRUE(absl::IsNotFound(got[1].status()));
  EXPECT_EQ(*got[2], "1");
  EXPECT_TRUE(absl::IsNotFound(got[3].status()));  // another family's key
  EXPECT_EQ(*got[4], "2");
  EXPECT_TRUE((*store)->MultiGet(Cf::kVectors, {}).empty());
}

// A write to the log that failed (here, a power cut) makes the next SyncWal an error, not an
// abort: RocksDB 7.8's log writer asserts when it is synced after a failed append.
TEST(MetadataStore, SyncWalAfterAFailedLogWriteIsAnError) {
  TempDir tmp;
  FaultInjectionEnv env;
  MetadataStoreOptions options;
  options.env = &env;
  auto store = MetadataStore::Open(tmp.path() + "/meta", options);
  ASSERT_TRUE(store.ok()) << store.status();
  WriteBatch first, second;
  first.Put(Cf::kPayloads, "a", "1");
  ASSERT_TRUE((*store)->Write(&first, /*sync=*/false).ok());
  ASSERT_TRUE((*store)->SyncWal().ok());
  env.PowerCutAfter(0);
  second.Put(Cf::kPayloads, "b", "2");
  EXPECT_FALSE((*store)->Write(&second, /*sync=*/false).ok());
  const absl::Status synced = (*store)->SyncWal();
  EXPECT_FALSE(synced.ok());
  EXPECT_NE(synced.message().find("write-ahead log"), std::string::npos) << synced;
}

// SyncWal makes the writes before it durable, through the store's Env: after a power cut (the
// fault-injection Env drops every byte not synced) an unsynced write made before it survives and
// one made after it is lost.
TEST(MetadataStore, SyncWalMakesEarlierUnsyncedWritesSurviveAPowerCut) {
  TempDir tmp;
  FaultInjectionEnv env;
  MetadataStoreOptions options;
  options.env = &env;
  const std::string path = tmp.path() + "/meta";
  {
    auto store = MetadataStore::Open(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    WriteBatch before, after;
    before.Put(Cf::kPayloads, "before", "kept");
    ASSERT_TRUE((*store)->Write(&before, /*sync=*/false).ok());
    ASSERT_TRUE((*store)->SyncWal().ok());
    after.Put(Cf::kPayloads, "after", "lost");
    ASSERT_TRUE((*store)->Write(&after, /*sync=*/false).ok());
    absl::StatusOr<std::string> after_read = (*store)->Get(Cf::kPayloads, "after");
    ASSERT_TRUE(after_read.ok()) << after_read.status();
    EXPECT_EQ(*after_read, "lost");
    env.PowerCutAfter(0);  // nothing more reaches the disk, not even the close's writes
  }
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  env.PowerCutAfter(-1);
  auto store = MetadataStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::string> before = (*store)->Get(Cf::kPayloads, "before");
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(*before, "kept");
  EXPECT_TRUE(absl::IsNotFound((*store)->Get(Cf::kPayloads, "after").status()));
}

TEST(WalScan, CountsTheBatchesBeyondTheFirstDamagedRecord) {
  TempDir dir;
  WriteBatches(dir.File("db"), 200);
  const std::string log = TheLog(dir.File("db"));
  ASSERT_FALSE(log.empty());
  auto whole = ReadWholeFile(log);
  ASSERT_TRUE(whole.ok());
  WalScan clean = ScanWal(*whole);
  EXPECT_FALSE(clean.damaged);
  EXPECT_EQ(clean.batches, 200u);
  // A flipped byte in the payload of a record about a quarter of the way in.
  FlipByte(log, whole->size() / 4);
  whole = ReadWholeFile(log);
  WalScan hurt = ScanWal(*whole);
  EXPECT_TRUE(hurt.damaged);
  EXPECT_GT(hurt.batches, 40u);
  // The batches of the damaged record's block are not resynchronised; the rest are counted.
  EXPECT_GE(hurt.batches + hurt.batches_after, 200u - 40u);
  EXPECT_LT(hurt.batches + hurt.batches_after, 200u);
  EXPECT_GT(hurt.batches_after, 100u);
}

// A write-ahead log damaged before its end: strict mode refuses, saying what lies beyond;
// point-in-time mode opens at the damage and reports what it dropped.
TEST(MetadataStore, AWalDamagedBeforeItsEndIsRefusedOrReportedNeverSilent) {
  TempDir dir;
  const std::string path = dir.File("db");
  WriteBatches(path, 200);
  const std::string log = TheLog(path);
  ASSERT_FALSE(log.empty());
  FlipByte(log, fs::file_size(log) / 2);

  auto strict = MetadataStore::Open(path);
  ASSERT_FALSE(strict.ok());
  EXPECT_TRUE(absl::IsDataLoss(strict.status())) << strict.status();
  EXPECT_NE(strict.status().message().find("acknowledged write batches"), std::string::npos)
      << strict.status();
  EXPECT_NE(strict.status().message().find("point_in_time"), std::string::npos);

  MetadataStoreOptions pit;
  pit.wal_recovery = WalRecovery::kPointInTime;
  auto store = MetadataStore::Open(path, pit);
  ASSERT_TRUE(store.ok()) << store.status();
  const WalRecoveryReport& r = (*store)->recovery();
  EXPECT_TRUE(r.damaged);
  EXPECT_GT(r.dropped_batches, 50u);
  EXPECT_LT(r.dropped_batches, 101u);
  EXPECT_NE(r.detail.find(".log damaged at byte"), std::string::npos) << r.detail;
  // The first batches are there, the last is gone.
  EXPECT_TRUE((*store)->Get(Cf::kPayloads, "k1000").ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->Get(Cf::kPayloads, "k1199").status()));
}

// A crash that cuts the last record short is not damage: the store opens in strict mode.
TEST(MetadataStore, ALastRecordCutShortOpensInStrictMode) {
  TempDir dir;
  const std::string path = dir.File("db");
  WriteBatches(path, 50);
  const std::string log = TheLog(path);
  fs::resize_file(log, fs::file_size(log) - 300);
  auto store = MetadataStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->recovery().damaged);
  EXPECT_TRUE((*store)->Get(Cf::kPayloads, "k1048").ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->Get(Cf::kPayloads, "k1049").status()));
}

// The last record whole but failing its checksum, as a crash between writing its header and its
// payload can leave it: opens in strict mode without that (never acknowledged) write.
TEST(MetadataStore, ALastRecordFailingItsChecksumOpensInStrictMode) {
  TempDir dir;
  const std::string path = dir.File("db");
  WriteBatches(path, 50);
  const std::string log = TheLog(path);
  FlipByte(log, fs::file_size(log) - 10);
  auto store = MetadataStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->recovery().damaged);
  EXPECT_TRUE((*store)->Get(Cf::kPayloads, "k1048").ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->Get(Cf::kPayloads, "k1049").status()));
}

// Damage in the last block but before the last record is damage, not a torn tail.
TEST(MetadataStore, DamageInTheLastBlockBeforeTheLastRecordIsRefused) {
  TempDir dir;
  const std::string path = dir.File("db");
  WriteBatches(path, 50);
  const std::string log = TheLog(path);
  FlipByte(log, fs::file_size(log) - 3000);
  auto store = MetadataStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
}

}  // namespace
}  // namespace strata
