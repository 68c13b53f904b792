#include "storage/metadata_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/public_message.h"
#include "gtest/gtest.h"
#include "storage/block_reader.h"
#include "storage/fault_injection_env.h"
#include "storage/rocks_info_log.h"
#include "storage/scoped_fd.h"
#include "storage/wal_scan.h"
#include "tests/test_util.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Writes `n` synced one-key batches (k000..), each ~1 KiB, and closes the store as a crash
// leaves it (its log not flushed).
void WriteBatches(const std::string& path, int n) {
  MetadataStoreOptions options;
  options.flush_at_close = false;
  auto store = MetadataStore::Open(path, options);
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

// Bytes of the write-ahead log's files in `path`.
uint64_t LogBytes(const std::string& path) {
  uint64_t bytes = 0;
  std::error_code ignored;
  for (const auto& e : fs::directory_iterator(path, ignored)) {
    std::error_code gone;  // (RocksDB may remove it meanwhile)
    const uintmax_t size = fs::file_size(e.path(), gone);
    if (e.path().extension() == ".log" && !gone) bytes += size;
  }
  return bytes;
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

// A MultiGet of keys in many blocks of a table file reads them through one io_uring batch
// (storage/uring_file_system.h) and returns every value.
TEST(MetadataStore, MultiGetReadsTableBlocksInBatches) {
  TempDir tmp;
  const std::string path = tmp.File("meta");
  {
    auto store = *MetadataStore::Open(path);
    WriteBatch batch;
    for (int i = 0; i < 4000; ++i) {
      batch.Put(Cf::kVectors, absl::StrCat("v", 100000 + i), std::string(500, 'a' + i % 26));
    }
    ASSERT_TRUE(store->Write(&batch, /*sync=*/false).ok());
    ASSERT_TRUE(store->Flush().ok());
  }
  auto store = *MetadataStore::Open(path);  // (an empty block cache)
  std::vector<std::string> keys;
  for (int i = 0; i < 4000; i += 50) keys.push_back(absl::StrCat("v", 100000 + i));
  const auto got = store->MultiGet(Cf::kVectors, keys);
  ASSERT_EQ(got.size(), keys.size());
  for (size_t j = 0; j < keys.size(); ++j) {
    ASSERT_TRUE(got[j].ok()) << keys[j] << ": " << got[j].status();
    EXPECT_EQ(*got[j], std::string(500, 'a' + (j * 50) % 26)) << keys[j];
  }
  if (!IoUringAvailable()) GTEST_SKIP() << "no io_uring here: RocksDB's own reads answered";
  EXPECT_GT(store->batched_reads().ring_batches, 0u);
  EXPECT_GE(store->batched_reads().ring_reads, keys.size());
}

// A MultiGet of many keys is looked up in sorted runs on several threads (storage/read_fanout.h):
// each answer still lands at its key's place, for keys in any order, repeated or absent, with
// bytes above 0x7f (sorted as RocksDB sorts them, unsigned), in table files and in the memtable.
TEST(MetadataStore, AMultiGetOfManyKeysAnswersEachAtItsPlace) {
  TempDir tmp;
  auto store = *MetadataStore::Open(tmp.File("meta"));
  const auto key = [](int i) {
    std::string k = absl::StrCat("v", 100000 + i);
    k[0] = static_cast<char>(i % 3 == 0 ? 0xe1 : (i % 3 == 1 ? 0x41 : 0x07));
    return k;
  };
  const auto value = [](int i) { return absl::StrCat("value of ", i, std::string(i % 200, 'x')); };
  for (int part = 0; part < 2; ++part) {  // half in a table file, half in the memtable
    WriteBatch batch;
    for (int i = part; i < 3000; i += 2) batch.Put(Cf::kVectors, key(i), value(i));
    ASSERT_TRUE(store->Write(&batch, /*sync=*/false).ok());
    if (part == 0) {
      ASSERT_TRUE(store->Flush().ok());
    }
  }
  std::vector<int> asked;
  for (int i = 0; i < 3000; i += 2) asked.push_back(i);
  for (int i = 3000; i < 3200; ++i) asked.push_back(i);  // absent
  for (int i = 1; i < 3000; i += 2) asked.push_back(i);
  for (int i = 0; i < 300; ++i) asked.push_back(i * 7);  // again
  std::mt19937 rng(11);
  std::shuffle(asked.begin(), asked.end(), rng);
  std::vector<std::string> keys;
  for (int i : asked) keys.push_back(key(i));
  const auto got = store->MultiGet(Cf::kVectors, keys);
  ASSERT_EQ(got.size(), keys.size());
  for (size_t j = 0; j < keys.size(); ++j) {
    if (asked[j] >= 3000) {
      EXPECT_TRUE(absl::IsNotFound(got[j].status())) << asked[j];
    } else {
      ASSERT_TRUE(got[j].ok()) << asked[j] << ": " << got[j].status();
      EXPECT_EQ(*got[j], value(asked[j]));
    }
  }
}

// A sweep visits what a scan visits, and leaves the block cache as it was; a scan fills it.
TEST(MetadataStore, ASweepLeavesTheBlockCacheAsItWas) {
  TempDir tmp;
  const std::string path = tmp.File("meta");
  {
    auto store = *MetadataStore::Open(path);
    for (int b = 0; b < 8; ++b) {
      WriteBatch batch;
      for (int i = 0; i < 1000; ++i) {
        batch.Put(Cf::kVectors, absl::StrCat("p", b * 1000 + i + 100000), std::string(1000, 'v'));
      }
      ASSERT_TRUE(store->Write(&batch, /*sync=*/false).ok());
    }
    ASSERT_TRUE(store->Flush().ok());  // (reads come from table files, through the cache)
  }
  auto store = *MetadataStore::Open(path);
  const uint64_t before = store->BlockCacheUsage();
  int rows = 0;
  const auto count = [&](absl::string_view, absl::string_view v) {
    rows += v.size() == 1000;
    return absl::OkStatus();
  };
  ASSERT_TRUE(store->Sweep(Cf::kVectors, "p", count).ok());
  EXPECT_EQ(rows, 8000);
  EXPECT_LT(store->BlockCacheUsage(), before + (64 << 10)) << "8 MB swept into the cache";
  rows = 0;
  ASSERT_TRUE(store->Scan(Cf::kVectors, "p", count).ok());
  EXPECT_EQ(rows, 8000);
  EXPECT_GT(store->BlockCacheUsage(), before + (4 << 20));
}

// A store whose lock another holder keeps: Open fails at once (Unavailable, naming the likely
// cause) without a lock wait; with one, it waits until the holder lets go (a process killed just
// before, torn down by the kernel), then opens with what the holder wrote. Nothing is timed: the
// test lets the holder go once Open says it waits.
TEST(MetadataStore, OpenWaitsForALockHeldElsewhereWhenAsked) {
  TempDir tmp;
  auto holder = MetadataStore::Open(tmp.path());
  ASSERT_TRUE(holder.ok()) << holder.status();
  WriteBatch b;
  b.Put(Cf::kPayloads, "k", "written by the holder");
  ASSERT_TRUE((*holder)->Write(&b, /*sync=*/true).ok());

  auto refused = MetadataStore::Open(tmp.path());
  ASSERT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("another strata process"), std::string::npos);

  MetadataStoreOptions waiting;
  waiting.lock_wait = std::chrono::minutes(5);
  std::promise<void> started;
  waiting.test_lock_wait_started = [&] { started.set_value(); };
  std::future<void> wait_started = started.get_future();
  std::future<absl::StatusOr<std::unique_ptr<MetadataStore>>> opened =
      std::async(std::launch::async, [&] { return MetadataStore::Open(tmp.path(), waiting); });
  // Whichever comes first: Open waiting, or Open done (it gave up: the failure below).
  const auto ready = [](auto& f) {
    return f.wait_for(std::chrono::milliseconds(10)) == std::future_status::ready;
  };
  while (!ready(wait_started) && !ready(opened)) {
  }
  ASSERT_TRUE(ready(wait_started)) << "Open did not wait: " << opened.get().status();
  holder->reset();  // the holder goes
  auto store = opened.get();
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->Get(Cf::kPayloads, "k"), "written by the holder");
}

// Writes that overwrite the same keys again and again, beside a family written once, keep the
// log near max_wal_bytes (without the bound the log grows with every byte written until a
// memtable fills, and a family written once then pins the logs after it), and the next open
// finds every value.
TEST(MetadataStore, TheLogStaysBoundedWhateverIsOverwritten) {
  TempDir tmp;
  const std::string path = tmp.File("meta");
  MetadataStoreOptions options;
  options.max_wal_bytes = size_t{4} << 20;
  {
    auto store = *MetadataStore::Open(path, options);
    WriteBatch once;
    once.Put(Cf::kTenants, "t", "written once");
    ASSERT_TRUE(store->Write(&once, /*sync=*/true).ok());
    for (int round = 0; round < 200; ++round) {  // 50 MiB over four keys
      WriteBatch b;
      for (int k = 0; k < 4; ++k) {
        b.Put(Cf::kVectors, absl::StrCat("v", k), std::string(64 << 10, static_cast<char>(round)));
      }
      ASSERT_TRUE(store->Write(&b, /*sync=*/false).ok());
    }
    // The flushes the bound asks for run in the background, and a log goes once they are done:
    // on a loaded machine they lag the writes for a while, so this waits for the log to shrink
    // (without the bound it never does: 52 MB stay). RocksDB weighs the log against the bound
    // when a write comes, so small writes go on meanwhile, as a server's would: once the last
    // big ones outran the flushes, a log left over the bound waited for a next write (60 s
    // under ctest -j2, 15.7 MB).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (int tick = 0;
         LogBytes(path) > (uint64_t{8} << 20) && std::chrono::steady_clock::now() < deadline;
         ++tick) {
      WriteBatch small;
      small.Put(Cf::kTenants, "tick", absl::StrCat(tick));
      ASSERT_TRUE(store->Write(&small, /*sync=*/false).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_LE(LogBytes(path), uint64_t{8} << 20) << "the log grew with the bytes written";
  }
  auto store = *MetadataStore::Open(path, options);
  EXPECT_EQ(*store->Get(Cf::kTenants, "t"), "written once");
  EXPECT_EQ(*store->Get(Cf::kVectors, "v3"), std::string(64 << 10, static_cast<char>(199)));
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

namespace strata {
namespace {

// Every write of the store failing for a while (a full disk) fails those writes, the store's
// info log among them, and the store closes and opens again with what was written before.
// (RocksDB's own file logger, which aborted the process on its next line after a failed write,
// writes beside the Env, where the faults here do not reach it: the test below tells whose
// logger a store has.)
TEST(MetadataStore, WritesFailingForAWhileDoNotTakeTheProcessDown) {
  TempDir tmp;
  FaultInjectionEnv env;
  MetadataStoreOptions options;
  options.env = &env;
  {
    auto store = MetadataStore::Open(tmp.File("meta"), options);
    ASSERT_TRUE(store.ok()) << store.status();
    WriteBatch b;
    b.Put(Cf::kPayloads, "before", "kept");
    ASSERT_TRUE((*store)->Write(&b, /*sync=*/true).ok());
    env.FailNth(FaultInjectionEnv::Op::kAppend, 0, 200);  // every append, the info log's too
    for (int i = 0; i < 5; ++i) {
      WriteBatch f;
      f.Put(Cf::kPayloads, absl::StrCat("during", i), "lost");
      EXPECT_FALSE((*store)->Write(&f, /*sync=*/true).ok());
    }
  }                                                      // (closed with the faults still on)
  env.FailNth(FaultInjectionEnv::Op::kAppend, 1 << 30);  // (no more faults)
  auto store = MetadataStore::Open(tmp.File("meta"), options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->Get(Cf::kPayloads, "before", nullptr), "kept");
  EXPECT_TRUE(env.FileExists(tmp.File("meta/LOG")));
}

// A full disk stops RocksDB's writes; the store says so, and they stay refused, cleanly, until the
// store is opened again (RocksDB 7.8 cannot resume them safely in the process: after a log write
// failed with every memtable empty, the write after a resume aborted the process). Nothing
// acknowledged is lost. With and without rows in the memtables when the disk filled.
TEST(MetadataStore, AFullDiskRefusesWritesUntilTheStoreIsOpenedAgainAndSaysSo) {
  for (const bool written_before : {true, false}) {
    SCOPED_TRACE(written_before ? "rows in the memtables" : "empty memtables");
    TempDir tmp;
    FaultInjectionEnv env;
    MetadataStoreOptions options;
    options.env = &env;
    if (!written_before) {  // (an open flushes what it recovers: its memtables start empty)
      auto store = MetadataStore::Open(tmp.File("meta"), options);
      ASSERT_TRUE(store.ok()) << store.status();
      WriteBatch b;
      b.Put(Cf::kPayloads, "before", "kept");
      ASSERT_TRUE((*store)->Write(&b, /*sync=*/true).ok());
    }
    {
      auto store = MetadataStore::Open(tmp.File("meta"), options);
      ASSERT_TRUE(store.ok()) << store.status();
      std::atomic<int> changes{0};
      (*store)->WatchWritesRefused([&] { changes.fetch_add(1); });
      if (written_before) {
        WriteBatch b;
        b.Put(Cf::kPayloads, "before", "kept");
        ASSERT_TRUE((*store)->Write(&b, /*sync=*/true).ok());
      }
      EXPECT_EQ((*store)->WritesRefused(), "");

      env.SetDiskFull(true);
      const auto refused = [&](int i) {
        WriteBatch f;
        f.Put(Cf::kPayloads, absl::StrCat("during", i), "refused");
        const absl::Status s = (*store)->Write(&f, /*sync=*/true);
        EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
        EXPECT_TRUE(IsDiskFull(s)) << s;
        EXPECT_TRUE(absl::StrContains(s.message(), "the store refuses every write")) << s;
        // A tenant's caller gets the short line (base/public_message.h).
        EXPECT_EQ(ForPublic(s).message(),
                  "the server's disk is full: writes are refused until its administrator makes "
                  "room");
      };
      for (int i = 0; i < 3; ++i) refused(i);
      const std::string why = (*store)->WritesRefused();
      EXPECT_TRUE(absl::StrContains(why, "the disk is full")) << why;
      EXPECT_TRUE(absl::StrContains(why, "until the server is restarted")) << why;
      EXPECT_EQ(changes.load(), 1);  // (the first stop's reason stays)

      env.SetDiskFull(false);
      for (int i = 3; i < 6; ++i) refused(i);  // (still refused; the process goes on)
      EXPECT_FALSE((*store)->Flush().ok());
      EXPECT_EQ((*store)->WritesRefused(), why);
      (*store)->WatchWritesRefused(nullptr);
    }
    auto store = MetadataStore::Open(tmp.File("meta"), options);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->WritesRefused(), "");
    WriteBatch a;
    a.Put(Cf::kPayloads, "after", "kept");
    EXPECT_TRUE((*store)->Write(&a, /*sync=*/true).ok());
    EXPECT_EQ(*(*store)->Get(Cf::kPayloads, "before", nullptr), "kept");
    EXPECT_EQ(*(*store)->Get(Cf::kPayloads, "after", nullptr), "kept");
    for (int i = 0; i < 6; ++i) {
      EXPECT_TRUE(absl::IsNotFound(
          (*store)->Get(Cf::kPayloads, absl::StrCat("during", i), nullptr).status()));
    }
  }
}

// The store's info log is storage/rocks_info_log.h's, not RocksDB's file logger (which keeps up
// to 1,000 old logs): each open moves the last run's LOG aside, and the newest kKeepOld stay.
TEST(MetadataStore, ItsInfoLogIsOursAndKeepsTheLastRuns) {
  TempDir tmp;
  for (int run = 0; run < RocksInfoLog::kKeepOld + 2; ++run) {
    auto store = MetadataStore::Open(tmp.File("meta"), MetadataStoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
  }
  int old = 0;
  for (const auto& e : fs::directory_iterator(tmp.File("meta"))) {
    old += e.path().filename().string().rfind("LOG.old.", 0) == 0;
  }
  EXPECT_EQ(old, RocksInfoLog::kKeepOld);
  EXPECT_TRUE(fs::exists(tmp.File("meta/LOG")));
}

}  // namespace
}  // namespace strata
