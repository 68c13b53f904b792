#include "storage/block_reader.h"

#include <fcntl.h>

#include <vector>

#include "gtest/gtest.h"
#include "storage/aligned_buffer.h"
#include "storage/fault_injection.h"
#include "storage/scoped_fd.h"
#include "tests/test_util.h"

namespace strata {
namespace {

constexpr int kPages = 64;

// A file whose page p is filled with byte (p * 7 + 3).
std::string MakeFile(const testing::TempDir& dir) {
  std::string path = dir.File("blocks.dat");
  std::vector<char> data(kPages * kPageSize);
  for (int p = 0; p < kPages; ++p) {
    std::fill_n(data.begin() + p * kPageSize, kPageSize, static_cast<char>(p * 7 + 3));
  }
  EXPECT_TRUE(WriteFileAtomic(path, data).ok());
  return path;
}

class BlockReaderTest : public ::testing::TestWithParam<IoEngine> {};

TEST_P(BlockReaderTest, ReadsEveryOpOfABatch) {
  testing::TempDir dir;
  std::string path = MakeFile(dir);
  BlockFileOptions opt;
  opt.engine = GetParam();
  opt.queue_depth = 4;  // fewer than the ops: exercises refilling the ring
  if (opt.engine == IoEngine::kIoUring && !IoUringAvailable()) GTEST_SKIP() << "no io_uring here";
  auto file = BlockFile::Open(path, opt);
  ASSERT_TRUE(file.ok()) << file.status();
  auto reader = (*file)->NewReader();
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<int> pages = {5, 0, 63, 17, 17, 2, 40, 41, 9, 33};
  AlignedBuffer buf(pages.size() * 2 * kPageSize);
  std::vector<ReadOp> ops;
  for (size_t i = 0; i < pages.size(); ++i) {
    uint32_t len = pages[i] == 63 ? kPageSize : 2 * kPageSize;  // the last page alone
    ops.push_back({uint64_t(pages[i]) * kPageSize, len, buf.data() + i * 2 * kPageSize});
  }
  std::vector<int> done(ops.size(), 0);
  absl::Status s = (*reader)->ReadBatch(ops, [&](size_t i) {
    ++done[i];
    EXPECT_EQ(ops[i].buf[0], static_cast<char>(pages[i] * 7 + 3));
    EXPECT_EQ(ops[i].buf[kPageSize - 1], static_cast<char>(pages[i] * 7 + 3));
    if (ops[i].length > kPageSize) {
      EXPECT_EQ(ops[i].buf[kPageSize], static_cast<char>((pages[i] + 1) * 7 + 3));
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  for (int d : done) EXPECT_EQ(d, 1);
  // The reader is reusable.
  EXPECT_TRUE((*reader)->ReadBatch(ops, [](size_t) { return absl::OkStatus(); }).ok());
}

TEST_P(BlockReaderTest, ReadPastEndIsDataLoss) {
  testing::TempDir dir;
  std::string path = MakeFile(dir);
  BlockFileOptions opt;
  opt.engine = GetParam();
  if (opt.engine == IoEngine::kIoUring && !IoUringAvailable()) GTEST_SKIP() << "no io_uring here";
  auto file = BlockFile::Open(path, opt);
  ASSERT_TRUE(file.ok());
  auto reader = (*file)->NewReader();
  AlignedBuffer buf(2 * kPageSize);
  ReadOp op{uint64_t(kPages - 1) * kPageSize, 2 * kPageSize, buf.data()};
  absl::Status s = (*reader)->ReadBatch({&op, 1}, [](size_t) { return absl::OkStatus(); });
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("short read"), std::string::npos) << s;
}

TEST_P(BlockReaderTest, CallbackErrorStopsTheBatch) {
  testing::TempDir dir;
  std::string path = MakeFile(dir);
  BlockFileOptions opt;
  opt.engine = GetParam();
  opt.queue_depth = 2;
  if (opt.engine == IoEngine::kIoUring && !IoUringAvailable()) GTEST_SKIP() << "no io_uring here";
  auto file = BlockFile::Open(path, opt);
  auto reader = (*file)->NewReader();
  AlignedBuffer buf(8 * kPageSize);
  std::vector<ReadOp> ops;
  for (int i = 0; i < 8; ++i)
    ops.push_back({uint64_t(i) * kPageSize, kPageSize, buf.data() + i * kPageSize});
  int calls = 0;
  absl::Status s = (*reader)->ReadBatch(ops, [&](size_t) {
    return ++calls == 2 ? absl::DataLossError("bad posting") : absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(calls, 2);
  // Still usable afterwards.
  EXPECT_TRUE((*reader)->ReadBatch(ops, [](size_t) { return absl::OkStatus(); }).ok());
}

INSTANTIATE_TEST_SUITE_P(Engines, BlockReaderTest,
                         ::testing::Values(IoEngine::kIoUring, IoEngine::kPread),
                         [](const auto& info) { return std::string(IoEngineName(info.param)); });

// io_uring's own failures, injected at the completion wait: a batch returns only once every read
// it submitted has completed (or says it could not), and a reader whose ring failed says so.
class IoUringFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IoUringAvailable()) GTEST_SKIP() << "no io_uring here";
    path_ = MakeFile(dir_);
  }
  std::unique_ptr<BlockReader> Reader(std::function<int()> inject) {
    BlockFileOptions opt;
    opt.engine = IoEngine::kIoUring;
    opt.queue_depth = 4;
    opt.inject_wait_error = std::move(inject);
    auto file = BlockFile::Open(path_, opt);
    EXPECT_TRUE(file.ok()) << file.status();
    file_ = std::move(*file);
    auto reader = file_->NewReader();
    EXPECT_TRUE(reader.ok()) << reader.status();
    return std::move(*reader);
  }
  std::vector<ReadOp> Ops(AlignedBuffer& buf, int n) {
    std::vector<ReadOp> ops;
    for (int i = 0; i < n; ++i) {
      ops.push_back({uint64_t(i) * kPageSize, kPageSize, buf.data() + i * kPageSize});
    }
    return ops;
  }
  testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<BlockFile> file_;
};

TEST_F(IoUringFailureTest, InterruptedWaitsAreRetried) {
  int waits = 0;
  auto reader = Reader([&] { return ++waits % 3 == 1 ? -EINTR : 0; });
  AlignedBuffer buf(10 * kPageSize);
  const std::vector<ReadOp> ops = Ops(buf, 10);
  int done = 0;
  ASSERT_TRUE(reader->ReadBatch(ops, [&](size_t) { return ++done, absl::OkStatus(); }).ok());
  EXPECT_EQ(done, 10);
  EXPECT_TRUE(reader->usable());
  EXPECT_GT(waits, 10);
}

TEST_F(IoUringFailureTest, AFailedWaitDrainsTheRingAndRetiresTheReader) {
  // The third wait fails, the next ones work again: the batch stops with the error, but only
  // after every submitted read has completed; no completion is left for a next batch.
  int waits = 0;
  auto reader = Reader([&] { return ++waits == 3 ? -EIO : 0; });
  AlignedBuffer buf(10 * kPageSize);
  const std::vector<ReadOp> ops = Ops(buf, 10);
  int done = 0;
  const absl::Status s = reader->ReadBatch(ops, [&](size_t) { return ++done, absl::OkStatus(); });
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("io_uring wait"), std::string::npos) << s;
  EXPECT_EQ(done, 2);  // nothing delivered after the failure
  EXPECT_FALSE(reader->usable());
  EXPECT_EQ(reader->abandoned_reads(), 0u);
  // A retired reader refuses more work instead of reading stale completions.
  EXPECT_FALSE(reader->ReadBatch(ops, [](size_t) { return absl::OkStatus(); }).ok());
}

TEST_F(IoUringFailureTest, AWaitThatNeverRecoversAbandonsItsReadsInsteadOfHanging) {
  int waits = 0;
  auto reader = Reader([&] { return ++waits >= 2 ? -EIO : 0; });
  // Kept for good with the abandoned reads, as the contract asks (reachable, so no leak report).
  static AlignedBuffer* const buf = new AlignedBuffer(8 * kPageSize);
  const std::vector<ReadOp> ops = Ops(*buf, 8);
  const absl::Status s = reader->ReadBatch(ops, [](size_t) { return absl::OkStatus(); });
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(reader->usable());
  // The ring was full (its depth, 4) when it failed: one read had come back and been replaced.
  EXPECT_EQ(reader->abandoned_reads(), 4u);
}

TEST_F(IoUringFailureTest, AnEndlessStormOfInterruptsEndsTheBatchInsteadOfSpinning) {
  auto reader = Reader([] { return -EINTR; });
  static AlignedBuffer* const buf = new AlignedBuffer(8 * kPageSize);  // kept: reads abandoned
  const std::vector<ReadOp> ops = Ops(*buf, 8);
  const absl::Status s = reader->ReadBatch(ops, [](size_t) { return absl::OkStatus(); });
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(reader->usable());
  EXPECT_EQ(reader->abandoned_reads(), 4u);  // the ring's depth, none collected
}

TEST(BlockFile, MissingFileIsNotFound) {
  auto file = BlockFile::Open("/nonexistent/strata/file");
  EXPECT_TRUE(absl::IsNotFound(file.status())) << file.status();
}

TEST(FaultInjection, EveryFaultKindBecomesAnError) {
  testing::TempDir dir;
  std::string path = MakeFile(dir);
  AlignedBuffer buf(kPageSize);
  ReadOp op{0, kPageSize, buf.data()};
  for (FaultKind kind : {FaultKind::kFailRead, FaultKind::kShortRead}) {
    auto base = BlockFile::Open(path);
    ASSERT_TRUE(base.ok());
    FaultInjectingBlockFile file(std::move(*base), FaultPlan{kind, 0, 0, 0});
    auto reader = file.NewReader();
    absl::Status s = (*reader)->ReadBatch({&op, 1}, [](size_t) { return absl::OkStatus(); });
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_EQ(file.injected(), 1u);
    // Only the planned op fails.
    EXPECT_TRUE((*reader)->ReadBatch({&op, 1}, [](size_t) { return absl::OkStatus(); }).ok());
  }
  auto base = BlockFile::Open(path);
  FaultInjectingBlockFile file(std::move(*base), FaultPlan{FaultKind::kFlipBit, 0, 0, 8 * 100 + 2});
  auto reader = file.NewReader();
  ASSERT_TRUE((*reader)->ReadBatch({&op, 1}, [](size_t) { return absl::OkStatus(); }).ok());
  EXPECT_EQ(buf.data()[100], static_cast<char>(3 ^ 4));  // page 0 holds byte 3; bit 2 flipped
  EXPECT_EQ(buf.data()[101], static_cast<char>(3));
}

}  // namespace
}  // namespace strata
