#include "storage/uring_file_system.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "storage/block_reader.h"
#include "storage/fault_injection.h"
#include "storage/scoped_fd.h"
#include "tests/test_util.h"

namespace strata {
namespace {

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes `n` random bytes (seed) to `path` and returns them.
std::string WriteTable(const std::string& path, size_t n, uint32_t seed) {
  const std::string data = Bytes(n, seed);
  EXPECT_TRUE(WriteFileAtomic(path, std::vector<char>(data.begin(), data.end())).ok());
  return data;
}

std::unique_ptr<rocksdb::FSRandomAccessFile> OpenFile(rocksdb::FileSystem& fs,
                                                      const std::string& path) {
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  rocksdb::IOStatus s = fs.NewRandomAccessFile(path, rocksdb::FileOptions(), &file, nullptr);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return file;
}

TEST(UringMultiReadFileSystem, MultiReadReturnsTheBytesOfEveryRequest) {
  testing::TempDir dir;
  const std::string path = dir.File("table.sst");
  const std::string data = WriteTable(path, 1 << 20, 7);
  UringMultiReadFileSystem fs(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::FSRandomAccessFile> file = OpenFile(fs, path);
  ASSERT_NE(file, nullptr);

  // More requests than the ring's depth, of odd lengths and offsets, one overlapping another
  // (stricter than RocksDB, whose requests never overlap).
  std::mt19937 rng(11);
  std::vector<rocksdb::FSReadRequest> reqs(45);
  std::vector<std::string> scratch(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].len = 1 + rng() % 9000;
    reqs[i].offset = rng() % (data.size() - reqs[i].len);
    scratch[i].assign(reqs[i].len, '\0');
    reqs[i].scratch = scratch[i].data();
  }
  reqs[7].offset = std::min<uint64_t>(reqs[6].offset + 1, data.size() - reqs[7].len);
  ASSERT_TRUE(file->MultiRead(reqs.data(), reqs.size(), rocksdb::IOOptions(), nullptr).ok());
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(reqs[i].status.ok()) << i << ": " << reqs[i].status.ToString();
    EXPECT_EQ(reqs[i].result.ToString(), data.substr(reqs[i].offset, reqs[i].len)) << i;
  }
  if (!IoUringAvailable()) GTEST_SKIP() << "no io_uring here: the base file answered";
  EXPECT_EQ(fs.stats().ring_batches.load(), 1u);
  EXPECT_EQ(fs.stats().ring_reads.load(), reqs.size());
  EXPECT_EQ(fs.stats().fallback_batches.load(), 0u);
}

TEST(UringMultiReadFileSystem, ARequestPastTheEndGetsTheBaseFilesAnswer) {
  testing::TempDir dir;
  const std::string path = dir.File("table.sst");
  const std::string data = WriteTable(path, 10000, 3);
  UringMultiReadFileSystem fs(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::FSRandomAccessFile> file = OpenFile(fs, path);
  ASSERT_NE(file, nullptr);
  std::vector<rocksdb::FSReadRequest> reqs(3);
  std::vector<std::string> scratch(3, std::string(4096, '\0'));
  const uint64_t offsets[] = {0, 9000, 20000};  // whole, cut short by the end, past the end
  for (size_t i = 0; i < 3; ++i) {
    reqs[i].offset = offsets[i];
    reqs[i].len = 4096;
    reqs[i].scratch = scratch[i].data();
  }
  ASSERT_TRUE(file->MultiRead(reqs.data(), reqs.size(), rocksdb::IOOptions(), nullptr).ok());
  // POSIX answers: the bytes there are, OK.
  EXPECT_EQ(reqs[0].result.ToString(), data.substr(0, 4096));
  EXPECT_EQ(reqs[1].result.ToString(), data.substr(9000));
  EXPECT_TRUE(reqs[2].result.empty());
  for (const auto& r : reqs) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(fs.stats().ring_batches.load(), 0u);
  EXPECT_EQ(fs.stats().fallback_batches.load(), 1u);
}

// A read error, or a read cut short, in the ring's batch: the base file's reads answer, each
// request with its bytes.
TEST(UringMultiReadFileSystem, ARingReadErrorGoesToTheBaseFile) {
  if (!IoUringAvailable()) GTEST_SKIP() << "no io_uring here";
  testing::TempDir dir;
  const std::string path = dir.File("table.sst");
  const std::string data = WriteTable(path, 1 << 16, 9);
  for (FaultKind kind : {FaultKind::kFailRead, FaultKind::kShortRead}) {
    std::vector<FaultInjectingBlockFile*> faulty;
    UringMultiReadFileSystem fs(
        rocksdb::FileSystem::Default(), [&](std::unique_ptr<BlockFile> base) {
          FaultPlan plan;
          plan.kind = kind;
          plan.first_op = 2;  // the third read of the first batch
          auto f = std::make_unique<FaultInjectingBlockFile>(std::move(base), plan);
          faulty.push_back(f.get());
          return std::unique_ptr<BlockFile>(std::move(f));
        });
    std::unique_ptr<rocksdb::FSRandomAccessFile> file = OpenFile(fs, path);
    ASSERT_NE(file, nullptr);
    for (int call = 0; call < 2; ++call) {
      std::vector<rocksdb::FSReadRequest> reqs(6);
      std::vector<std::string> scratch(reqs.size(), std::string(3000, '\0'));
      for (size_t i = 0; i < reqs.size(); ++i) {
        reqs[i].offset = 9000 * i + 17 * call;
        reqs[i].len = 3000;
        reqs[i].scratch = scratch[i].data();
      }
      ASSERT_TRUE(file->MultiRead(reqs.data(), reqs.size(), rocksdb::IOOptions(), nullptr).ok());
      for (const auto& r : reqs) {
        ASSERT_TRUE(r.status.ok()) << r.status.ToString();
        EXPECT_EQ(r.result.ToString(), data.substr(r.offset, r.len));
      }
    }
    ASSERT_EQ(faulty.size(), 1u);
    EXPECT_EQ(faulty[0]->injected(), 1u);
    // The first call fell back; the second went through the ring again.
    EXPECT_EQ(fs.stats().fallback_batches.load(), 1u);
    EXPECT_EQ(fs.stats().ring_batches.load(), 1u);
  }
}

// RocksDB reads a table from many threads at once: each takes a free ring of the file or, with
// none free, its base reads, and every request gets its bytes.
TEST(UringMultiReadFileSystem, ThreadsReadingOneFileAllGetTheirBytes) {
  testing::TempDir dir;
  const std::string path = dir.File("table.sst");
  const std::string data = WriteTable(path, 1 << 18, 5);
  UringMultiReadFileSystem fs(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::FSRandomAccessFile> file = OpenFile(fs, path);
  ASSERT_NE(file, nullptr);
  constexpr int kThreads = 4, kCalls = 100;
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int call = 0; call < kCalls; ++call) {
        std::vector<rocksdb::FSReadRequest> reqs(8);
        std::vector<std::string> scratch(reqs.size(), std::string(4096, '\0'));
        for (size_t i = 0; i < reqs.size(); ++i) {
          reqs[i].len = 1 + rng() % 4096;
          reqs[i].offset = rng() % (data.size() - reqs[i].len);
          reqs[i].scratch = scratch[i].data();
        }
        if (!file->MultiRead(reqs.data(), reqs.size(), rocksdb::IOOptions(), nullptr).ok()) {
          ++wrong;
          continue;
        }
        for (const auto& r : reqs) {
          if (!r.status.ok() || r.result.ToString() != data.substr(r.offset, r.len)) ++wrong;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  if (!IoUringAvailable()) return;
  EXPECT_GT(fs.stats().ring_batches.load(), 0u);
}

// Readers whose batches wait at a gate until it opens, counting those inside.
class GatedBlockFile final : public BlockFile {
 public:
  struct Gate {
    Mutex mu;
    int inside ABSL_GUARDED_BY(mu) = 0;
    absl::Notification open;
  };
  GatedBlockFile(std::unique_ptr<BlockFile> base, Gate* gate)
      : base_(std::move(base)), gate_(gate) {}
  absl::StatusOr<std::unique_ptr<BlockReader>> NewReader() override {
    absl::StatusOr<std::unique_ptr<BlockReader>> reader = base_->NewReader();
    if (!reader.ok()) return reader.status();
    return std::unique_ptr<BlockReader>(new GatedReader(std::move(*reader), gate_));
  }
  IoEngine engine() const override { return base_->engine(); }
  bool direct() const override { return base_->direct(); }
  uint64_t size() const override { return base_->size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  class GatedReader final : public BlockReader {
   public:
    GatedReader(std::unique_ptr<BlockReader> base, Gate* gate)
        : base_(std::move(base)), gate_(gate) {}
    absl::Status ReadBatch(absl::Span<const ReadOp> ops,
                           absl::FunctionRef<absl::Status(size_t)> on_done) override {
      {
        MutexLock lock(&gate_->mu);
        ++gate_->inside;
      }
      gate_->open.WaitForNotification();
      return base_->ReadBatch(ops, on_done);
    }
    bool usable() const override { return base_->usable(); }
    size_t abandoned_reads() const override { return base_->abandoned_reads(); }

   private:
    std::unique_ptr<BlockReader> base_;
    Gate* gate_;
  };
  std::unique_ptr<BlockFile> base_;
  Gate* gate_;
};

// Threads reading one file at once each get a ring of their own, up to kRingsPerFile; one more
// takes the base file's reads.
TEST(UringMultiReadFileSystem, ThreadsReadingOneFileAtOnceEachGetARing) {
  if (!IoUringAvailable()) GTEST_SKIP() << "no io_uring here";
  testing::TempDir dir;
  const std::string path = dir.File("table.sst");
  const std::string data = WriteTable(path, 1 << 16, 3);
  GatedBlockFile::Gate gate;
  UringMultiReadFileSystem fs(rocksdb::FileSystem::Default(), [&](std::unique_ptr<BlockFile> b) {
    return std::unique_ptr<BlockFile>(new GatedBlockFile(std::move(b), &gate));
  });
  std::unique_ptr<rocksdb::FSRandomAccessFile> file = OpenFile(fs, path);
  ASSERT_NE(file, nullptr);
  const auto read_and_check = [&](uint64_t at) {
    std::vector<rocksdb::FSReadRequest> reqs(4);
    std::vector<std::string> scratch(reqs.size(), std::string(1000, '\0'));
    for (size_t i = 0; i < reqs.size(); ++i) {
      reqs[i].offset = at + 5000 * i;
      reqs[i].len = 1000;
      reqs[i].scratch = scratch[i].data();
    }
    ASSERT_TRUE(file->MultiRead(reqs.data(), reqs.size(), rocksdb::IOOptions(), nullptr).ok());
    for (const auto& r : reqs) {
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
      EXPECT_EQ(r.result.ToString(), data.substr(r.offset, r.len));
    }
  };
  constexpr size_t kRings = UringMultiReadFileSystem::kRingsPerFile;
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kRings; ++t) threads.emplace_back([&, t] { read_and_check(100 * t); });
  {
    MutexLock lock(&gate.mu);
    const bool all_inside =
        gate.mu.AwaitWithTimeout(absl::Condition(
                                     +[](GatedBlockFile::Gate* g) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                       return g->inside == static_cast<int>(kRings);
                                     },
                                     &gate),
                                 absl::Seconds(30));
    EXPECT_TRUE(all_inside) << gate.inside << " of " << kRings << " threads in a ring";
  }
  read_and_check(7);  // every ring busy: the base file answers at once
  EXPECT_EQ(fs.stats().fallback_batches.load(), 1u);
  gate.open.Notify();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(fs.stats().ring_batches.load(), kRings);
}

// RocksDB's MultiGet of keys spread over a table's blocks, with no block cache: every block is a
// MultiRead request, and each value comes back whole.
TEST(UringMultiReadFileSystem, MultiGetReadsTableBlocksThroughTheRing) {
  testing::TempDir dir;
  auto fs = std::make_shared<UringMultiReadFileSystem>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  rocksdb::Options options;
  options.env = env.get();
  options.create_if_missing = true;
  options.compression = rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions table;
  table.no_block_cache = true;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir.File("db"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);

  constexpr int kKeys = 4000;
  auto key = [](int i) { return absl::StrCat("k", 100000 + i); };
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key(i), Bytes(300, i)).ok());
  }
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());

  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; i += 37) keys.push_back(key(i));
  keys.push_back("k-absent");
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db->MultiGet(rocksdb::ReadOptions(), db->DefaultColumnFamily(), keys.size(), slices.data(),
               values.data(), statuses.data());
  for (size_t j = 0; j + 1 < keys.size(); ++j) {
    ASSERT_TRUE(statuses[j].ok()) << keys[j] << ": " << statuses[j].ToString();
    EXPECT_EQ(values[j].ToString(), Bytes(300, static_cast<uint32_t>(j * 37))) << keys[j];
  }
  EXPECT_TRUE(statuses.back().IsNotFound());
  if (!IoUringAvailable()) GTEST_SKIP() << "no io_uring here: the base file answered";
  EXPECT_GT(fs->stats().ring_batches.load(), 0u);
  EXPECT_GE(fs->stats().ring_reads.load(), keys.size() - 1);
}

}  // namespace
}  // namespace strata
