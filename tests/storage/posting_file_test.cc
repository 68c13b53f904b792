#include "storage/posting_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "storage/scoped_fd.h"
#include "tests/test_util.h"

namespace strata {
namespace {

constexpr uint32_t kEntry = 132;  // a uint8 SIFT entry: 4-byte id + 128 bytes

std::vector<std::vector<uint8_t>> MakePostings(int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint8_t>> out;
  for (int i = 0; i < count; ++i) {
    int entries = static_cast<int>(rng() % 90);  // 0..89 entries: 0 to ~3 pages
    std::vector<uint8_t> p(entries * kEntry);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    out.push_back(std::move(p));
  }
  return out;
}

absl::Status Write(const testing::TempDir& dir, const std::vector<std::vector<uint8_t>>& postings) {
  auto w =
      PostingFileWriter::Create(*Env::Default(), dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  if (!w.ok()) return w.status();
  for (const auto& p : postings) {
    if (auto s = (*w)->Append(p); !s.ok()) return s;
  }
  return (*w)->Finish();
}

std::vector<uint8_t> ReadPosting(PostingFile& f, uint32_t i, absl::Status* status) {
  const PostingLocation& loc = f.location(i);
  AlignedBuffer buf(std::max<size_t>(1, loc.page_count) * kPageSize);
  auto reader = f.block_file().NewReader();
  ReadOp op = f.ReadFor(i, buf.data());
  std::vector<uint8_t> out;
  *status = (*reader)->ReadBatch({&op, 1}, [&](size_t) -> absl::Status {
    auto v = f.View(i, buf.data());
    if (!v.ok()) return v.status();
    out.assign(v->begin(), v->end());
    return absl::OkStatus();
  });
  return out;
}

TEST(PostingFile, ReadsBackWrittenLists) {
  testing::TempDir dir;
  auto postings = MakePostings(300, 1);
  ASSERT_TRUE(Write(dir, postings).ok());
  auto f = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->postings(), postings.size());
  for (uint32_t i = 0; i < postings.size(); ++i) {
    const PostingLocation& loc = (*f)->location(i);
    EXPECT_EQ(loc.count, postings[i].size() / kEntry);
    if (postings[i].empty()) {
      EXPECT_EQ(loc.page_count, 0);
      continue;
    }
    absl::Status s;
    EXPECT_EQ(ReadPosting(**f, i, &s), postings[i]) << "posting " << i;
    EXPECT_TRUE(s.ok()) << s;
  }
}

TEST(PostingFile, ListsNeverStraddleNeedlessPages) {
  testing::TempDir dir;
  auto postings = MakePostings(500, 2);
  ASSERT_TRUE(Write(dir, postings).ok());
  auto f = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  ASSERT_TRUE(f.ok());
  for (uint32_t i = 0; i < postings.size(); ++i) {
    size_t bytes = postings[i].size();
    size_t min_pages = (bytes + kPageSize - 1) / kPageSize;
    EXPECT_EQ((*f)->location(i).page_count, min_pages) << "posting " << i;
  }
}

TEST(PostingFile, CorruptPostingIsDataLossNamingIt) {
  testing::TempDir dir;
  auto postings = MakePostings(50, 3);
  postings[17].assign(20 * kEntry, 0x5A);
  ASSERT_TRUE(Write(dir, postings).ok());
  PostingLocation loc;
  {
    auto f = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
    loc = (*f)->location(17);
  }
  // Flip one byte inside posting 17 on disk.
  {
    auto fd = OpenFile(dir.File("p.dat"), O_RDWR);
    ASSERT_TRUE(fd.ok());
    char c = 0x11;
    uint64_t at = uint64_t{loc.start_page} * kPageSize + loc.offset_in_page + 5 * kEntry + 9;
    ASSERT_TRUE(PWriteFull(fd->get(), &c, 1, at, "p.dat").ok());
  }
  auto f = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  ASSERT_TRUE(f.ok());
  absl::Status s;
  ReadPosting(**f, 17, &s);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("posting 17 "), std::string::npos) << s;
  ReadPosting(**f, 16, &s);
  EXPECT_TRUE(s.ok()) << s;  // neighbours are unaffected
}

TEST(PostingFile, RefusesTruncatedOrForeignFiles) {
  testing::TempDir dir;
  ASSERT_TRUE(Write(dir, MakePostings(40, 4)).ok());
  // Wrong expectations.
  auto wrong = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry + 4, 2});
  EXPECT_TRUE(absl::IsInvalidArgument(wrong.status())) << wrong.status();
  // Truncated data file.
  ASSERT_TRUE(FileSize(dir.File("p.dat")).ok());
  ASSERT_EQ(::truncate(dir.File("p.dat").c_str(),
                       static_cast<off_t>(*FileSize(dir.File("p.dat")) - kPageSize)),
            0);
  auto trunc = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  EXPECT_TRUE(absl::IsDataLoss(trunc.status())) << trunc.status();
  // Truncated table.
  ASSERT_TRUE(Write(dir, MakePostings(40, 4)).ok());
  ASSERT_EQ(::truncate(dir.File("p.tbl").c_str(), 100), 0);
  auto ttrunc = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  EXPECT_TRUE(absl::IsDataLoss(ttrunc.status())) << ttrunc.status();
  // Not a posting file at all.
  ASSERT_TRUE(WriteFileAtomic(dir.File("junk.dat"), std::vector<char>(8192, 'x')).ok());
  ASSERT_TRUE(Write(dir, MakePostings(40, 4)).ok());
  auto junk = PostingFile::Open(dir.File("junk.dat"), dir.File("p.tbl"), {kEntry, 2});
  EXPECT_TRUE(absl::IsDataLoss(junk.status())) << junk.status();
}

TEST(PostingFile, UnknownVersionIsRefusedClearly) {
  testing::TempDir dir;
  ASSERT_TRUE(Write(dir, MakePostings(10, 5)).ok());
  auto table = ReadWholeFile(dir.File("p.tbl"));
  ASSERT_TRUE(table.ok());
  std::string t = *table;
  t[8] = 9;  // version field; also breaks the crc, so either error is acceptable
  ASSERT_TRUE(WriteFileAtomic(dir.File("p.tbl"), t).ok());
  auto f = PostingFile::Open(dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  EXPECT_FALSE(f.ok());
  EXPECT_TRUE(absl::IsDataLoss(f.status()) || absl::IsInvalidArgument(f.status())) << f.status();
}

TEST(PostingFileWriter, RejectsPartialEntries) {
  testing::TempDir dir;
  auto w =
      PostingFileWriter::Create(*Env::Default(), dir.File("p.dat"), dir.File("p.tbl"), {kEntry, 2});
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> bad(kEntry + 1);
  EXPECT_TRUE(absl::IsInvalidArgument((*w)->Append(bad)));
}

}  // namespace
}  // namespace strata
