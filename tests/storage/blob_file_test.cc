// BlobFile (storage/blob_file.h): blobs read back as appended, checked on every read, copied or
// in place; the page rule; what a failed append, a failed sync and a power cut leave.
#include "storage/blob_file.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "storage/fault_injection_env.h"
#include "tests/test_util.h"

namespace strata {
namespace {

std::string Blob(size_t n, char seed) {
  std::string b(n, '\0');
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<char>(seed + i * 7);
  return b;
}

// Whether this kernel has MADV_POPULATE_READ (Linux 5.14).
bool KernelPopulatesMappings() {
  void* m = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return false;
  const bool ok = madvise(m, 4096, MADV_POPULATE_READ) == 0;
  munmap(m, 4096);
  return ok;
}

std::string ReadBack(const BlobFile& f, const std::vector<BlobLocation>& locs, absl::Status* s) {
  std::string out(BlobFile::SpanBytes(locs), '\0');
  *s = f.Read(locs, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

TEST(BlobFile, BlobsReadBackAsAppendedAloneOrTogether) {
  testing::TempDir dir;
  auto f = BlobFile::Open(*Env::Default(), dir.File("b"));
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<BlobLocation> locs;
  std::vector<std::string> blobs;
  for (size_t n : {100, 5000, 1, 4096, 300}) {
    blobs.push_back(Blob(n, static_cast<char>(n)));
    auto loc = (*f)->Append(blobs.back());
    ASSERT_TRUE(loc.ok()) << loc.status();
    locs.push_back(*loc);
  }
  ASSERT_TRUE((*f)->Sync().ok());
  for (size_t i = 0; i < locs.size(); ++i) {
    absl::Status s;
    EXPECT_EQ(ReadBack(**f, {locs[i]}, &s), blobs[i]);
    EXPECT_TRUE(s.ok()) << s;
  }
  // Together: each blob where its offset says within what was read.
  absl::Status s;
  const std::string all = ReadBack(**f, locs, &s);
  ASSERT_TRUE(s.ok()) << s;
  for (size_t i = 0; i < locs.size(); ++i) {
    EXPECT_EQ(all.substr(locs[i].offset - locs[0].offset, locs[i].size), blobs[i]);
  }
  // Out of order, or overlapping: refused (before anything is read).
  uint8_t unused[1];
  EXPECT_TRUE(absl::IsInvalidArgument((*f)->Read(std::vector{locs[1], locs[0]}, unused)));
  EXPECT_TRUE(absl::IsInvalidArgument((*f)->Read(std::vector{locs[1], locs[1]}, unused)));
}

// A blob spans no more 4 KiB pages than its size needs, wherever the file ended.
TEST(BlobFile, NoBlobSpansMorePagesThanItNeeds) {
  testing::TempDir dir;
  auto f = BlobFile::Open(*Env::Default(), dir.File("b"));
  ASSERT_TRUE(f.ok());
  for (size_t n : {1000, 4000, 3000, 8192, 5000, 4096, 100, 12000}) {
    auto loc = (*f)->Append(Blob(n, 1));
    ASSERT_TRUE(loc.ok());
    const uint64_t pages = (loc->offset + n - 1) / 4096 - loc->offset / 4096 + 1;
    EXPECT_EQ(pages, (n + 4095) / 4096) << n << " bytes at " << loc->offset;
  }
}

TEST(BlobFile, DamageAndShortFilesAreDataLoss) {
  testing::TempDir dir;
  const std::string path = dir.File("b");
  auto f = BlobFile::Open(*Env::Default(), path);
  ASSERT_TRUE(f.ok());
  auto a = (*f)->Append(Blob(2000, 3));
  ASSERT_TRUE(a.ok() && (*f)->Sync().ok());
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(1500);
    io.put('\x7f');
  }
  absl::Status s;
  ReadBack(**f, {*a}, &s);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(std::string(s.message()).find(path), std::string::npos) << "names the file";
  // A location past what the file holds.
  ReadBack(**f, {BlobLocation{a->offset + 4096, 100, 0}}, &s);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  // One whose offset, damaged, would wrap past the file's end.
  ReadBack(**f, {BlobLocation{UINT64_MAX - 50, 100, 0}}, &s);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

// ReadInPlace: the same bytes and checks as Read, from the file's mapping (blobs appended after
// the open too), or copied into the caller's buffer when the file is opened unmapped.
TEST(BlobFile, ReadInPlaceReadsWhatReadReads) {
  testing::TempDir dir;
  for (bool mapped : {true, false}) {
    SCOPED_TRACE(mapped ? "mapped" : "unmapped");
    const std::string path = dir.File(mapped ? "m" : "u");
    std::vector<BlobLocation> locs;
    std::vector<std::string> blobs;
    {
      auto f = BlobFile::Open(*Env::Default(), path, mapped ? BlobFile::kMinMapBytes : 0);
      ASSERT_TRUE(f.ok()) << f.status();
      blobs.push_back(Blob(3000, 1));
      locs.push_back(*(*f)->Append(blobs.back()));
      ASSERT_TRUE((*f)->Sync().ok());
    }
    auto f = BlobFile::Open(*Env::Default(), path, mapped ? BlobFile::kMinMapBytes : 0);
    ASSERT_TRUE(f.ok()) << f.status();
    // Where the kernel can populate a mapping, a mapped file reads in place.
    EXPECT_EQ((*f)->mapped(), mapped && KernelPopulatesMappings());
    for (size_t n : {5000, 1, 70000}) {
      blobs.push_back(Blob(n, static_cast<char>(n)));
      locs.push_back(*(*f)->Append(blobs.back()));
    }
    std::string scratch;
    for (size_t i = 0; i < locs.size(); ++i) {
      auto at = (*f)->ReadInPlace({locs[i]}, &scratch);
      ASSERT_TRUE(at.ok()) << at.status();
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(*at), locs[i].size), blobs[i]);
      EXPECT_EQ(*at == reinterpret_cast<const uint8_t*>(scratch.data()), !(*f)->mapped());
    }
    auto at = (*f)->ReadInPlace(locs, &scratch);
    ASSERT_TRUE(at.ok()) << at.status();
    for (size_t i = 0; i < locs.size(); ++i) {
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(*at) + (locs[i].offset - locs[0].offset),
                            locs[i].size),
                blobs[i]);
    }
    EXPECT_TRUE(absl::IsInvalidArgument(
        (*f)->ReadInPlace(std::vector{locs[1], locs[0]}, &scratch).status()));
    if (!mapped) {
      EXPECT_FALSE((*f)->mapped());
    }
  }
}

// What Read finds damaged or missing, ReadInPlace finds too: a changed byte fails the crc, and
// bytes gone from under a mapping (the file cut short by something else) are DataLoss, not a
// SIGBUS that ends the process.
TEST(BlobFile, ReadInPlaceFindsDamageAndBytesGoneFromUnderItsMapping) {
  testing::TempDir dir;
  const std::string path = dir.File("b");
  auto f = BlobFile::Open(*Env::Default(), path);
  ASSERT_TRUE(f.ok());
  auto a = (*f)->Append(Blob(2000, 3));
  auto b = (*f)->Append(Blob(20000, 4));
  ASSERT_TRUE(a.ok() && b.ok() && (*f)->Sync().ok());
  std::string scratch;
  ASSERT_TRUE((*f)->ReadInPlace({*a}, &scratch).ok());
  ASSERT_TRUE((*f)->ReadInPlace({*b}, &scratch).ok());  // its pages mapped
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(1500);
    io.put('\x7f');
  }
  auto got = (*f)->ReadInPlace({*a}, &scratch);
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  EXPECT_NE(std::string(got.status().message()).find(path), std::string::npos);
  // Cut to a few bytes into b: its later pages are past the file's end.
  std::filesystem::resize_file(path, b->offset + 100);
  got = (*f)->ReadInPlace({*b}, &scratch);
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  got = (*f)->ReadInPlace({BlobLocation{b->offset + 8192, 100, 0}}, &scratch);
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  // Two locations in order whose span would wrap past 2^64: refused, by both reads.
  const std::vector<BlobLocation> wrap = {{0, 10, 0}, {UINT64_MAX - 5, 100, 0}};
  EXPECT_TRUE(absl::IsDataLoss((*f)->ReadInPlace(wrap, &scratch).status()));
  uint8_t small[16];
  EXPECT_TRUE(absl::IsDataLoss((*f)->Read(wrap, small)));
  // A location past what was appended, or one that would wrap: refused before any read.
  got = (*f)->ReadInPlace({BlobLocation{b->offset + b->size, 1, 0}}, &scratch);
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  got = (*f)->ReadInPlace({BlobLocation{UINT64_MAX - 50, 100, 0}}, &scratch);
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
}

// Blobs past the mapping are copied; once the file has grown past half of it, GrowMapping maps
// it again, larger, and they read in place.
TEST(BlobFile, BlobsPastTheMappingAreCopiedUntilItGrows) {
  if (!KernelPopulatesMappings()) GTEST_SKIP() << "no MADV_POPULATE_READ: every read copies";
  testing::TempDir dir;
  auto f = BlobFile::Open(*Env::Default(), dir.File("b"), 8192);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->map_bytes(), 8192u);
  auto a = (*f)->Append(Blob(3000, 1));
  auto b = (*f)->Append(Blob(9000, 2));  // past the 8 KiB mapped
  ASSERT_TRUE(a.ok() && b.ok());
  std::string scratch;
  auto at = (*f)->ReadInPlace({*a}, &scratch);
  ASSERT_TRUE(at.ok());
  EXPECT_NE(*at, reinterpret_cast<const uint8_t*>(scratch.data())) << "in place";
  at = (*f)->ReadInPlace({*b}, &scratch);
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(*at, reinterpret_cast<const uint8_t*>(scratch.data())) << "copied";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(*at), b->size), Blob(9000, 2));
  (*f)->GrowMapping();
  EXPECT_GE((*f)->map_bytes(), 2 * (*f)->size());
  at = (*f)->ReadInPlace({*b}, &scratch);
  ASSERT_TRUE(at.ok());
  EXPECT_NE(*at, reinterpret_cast<const uint8_t*>(scratch.data())) << "in place";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(*at), b->size), Blob(9000, 2));
  const uint64_t grown = (*f)->map_bytes();
  (*f)->GrowMapping();
  EXPECT_EQ((*f)->map_bytes(), grown) << "not past half: no change";
}

TEST(BlobFile, AFailedAppendLeavesNoHoleAndAFailedSyncIsTriedAgain) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  auto f = BlobFile::Open(env, dir.File("b"));
  ASSERT_TRUE(f.ok());
  auto a = (*f)->Append(Blob(100, 1));
  ASSERT_TRUE(a.ok());
  env.FailNth(FaultInjectionEnv::Op::kAppend, 0);
  EXPECT_FALSE((*f)->Append(Blob(100, 2)).ok());
  auto b = (*f)->Append(Blob(100, 3));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->offset, a->offset + a->size) << "the failed one's place is taken";
  ASSERT_TRUE((*f)->Sync().ok());
  EXPECT_TRUE((*f)->Sync().ok()) << "nothing appended since: a no-op";
  ASSERT_TRUE((*f)->Append(Blob(10, 4)).ok());
  env.FailNth(FaultInjectionEnv::Op::kSync, 0);
  const int64_t syncs = env.calls(FaultInjectionEnv::Op::kSync);
  EXPECT_FALSE((*f)->Sync().ok());
  // The blobs since the last sync are the caller's to forget; later ones follow them, and the
  // next Sync syncs (it is no no-op after a failure).
  auto c = (*f)->Append(Blob(10, 5));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*f)->Sync().ok());
  EXPECT_EQ(env.calls(FaultInjectionEnv::Op::kSync), syncs + 2);
  absl::Status s;
  EXPECT_EQ(ReadBack(**f, {*b}, &s), Blob(100, 3));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(ReadBack(**f, {*c}, &s), Blob(10, 5));
  EXPECT_TRUE(s.ok()) << s;
}

TEST(BlobFile, APowerCutKeepsWhatWasSyncedAndAReopenAppendsAfterIt) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  const std::string path = dir.File("b");
  BlobLocation kept;
  {
    auto f = BlobFile::Open(env, path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(env.SyncDir(dir.path()).ok());
    kept = *(*f)->Append(Blob(3000, 6));
    ASSERT_TRUE((*f)->Sync().ok());
    ASSERT_TRUE((*f)->Append(Blob(3000, 7)).ok());  // never synced
  }
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  auto f = BlobFile::Open(env, path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->size(), kept.offset + kept.size);
  absl::Status s;
  EXPECT_EQ(ReadBack(**f, {kept}, &s), Blob(3000, 6));
  EXPECT_TRUE(s.ok()) << s;
  auto next = (*f)->Append(Blob(500, 8));
  ASSERT_TRUE(next.ok());
  EXPECT_GE(next->offset, kept.offset + kept.size);
  EXPECT_EQ(ReadBack(**f, {*next}, &s), Blob(500, 8));
}

}  // namespace
}  // namespace strata
