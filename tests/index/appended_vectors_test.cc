// The vectors a collection took since its build (index/internal/appended_vectors.h): rows
// replaced and dropped, entries skipped once their id's version moves on or the id dies, and rows
// kept in a mapped file whose slots are reused and which grows without losing a row.
#include "index/internal/appended_vectors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "tests/test_util.h"

namespace strata::internal {
namespace {

// An AppendedVectors of 4-byte rows over `ids`, its file in a temp directory, with room for
// `rows` rows.
class Appended {
 public:
  explicit Appended(const std::vector<IdState>* ids, uint64_t rows = 16, size_t row_bytes = 4)
      : a_(row_bytes, ids) {
    EXPECT_TRUE(a_.Open(*Env::Default(), dir_.File("rows")).ok());
    EXPECT_TRUE(a_.Reserve(rows).ok());
  }
  AppendedVectors* operator->() { return &a_; }
  AppendedVectors& operator*() { return a_; }

 private:
  testing::TempDir dir_;
  AppendedVectors a_;
};

std::vector<uint8_t> Row(uint8_t fill) { return std::vector<uint8_t>(4, fill); }

std::map<VectorId, uint8_t> Seen(Appended& appended, uint32_t posting) {
  const AppendedVectors& a = *appended;
  std::map<VectorId, uint8_t> out;
  a.ForEach(posting, [&](VectorId id, const uint8_t* row) { out[id] = row[0]; });
  return out;
}

TEST(AppendedVectors, ServesLiveCurrentEntriesOnly) {
  std::vector<IdState> ids(3, IdState{0, 0, kLive});
  Appended a(&ids);
  const uint32_t postings_0[] = {7, 9}, postings_1[] = {7};
  a->Add(0, Row(10).data(), postings_0, 0);
  a->Add(1, Row(11).data(), postings_1, 0);
  EXPECT_EQ((Seen(a, 7)), (std::map<VectorId, uint8_t>{{0, 10}, {1, 11}}));
  EXPECT_EQ((Seen(a, 9)), (std::map<VectorId, uint8_t>{{0, 10}}));
  EXPECT_TRUE(Seen(a, 8).empty());
  // Id 0 replaced: version 1. Its entries are stale before they are dropped; then it has row 20,
  // only in posting 9.
  ids[0].version = 1;
  EXPECT_EQ((Seen(a, 7)), (std::map<VectorId, uint8_t>{{1, 11}}));
  EXPECT_TRUE(Seen(a, 9).empty());
  a->Drop(0);
  EXPECT_TRUE(a->PostingsOf(0).empty());
  const uint32_t postings_0b[] = {9};
  a->Add(0, Row(20).data(), postings_0b, 1);
  EXPECT_EQ(std::vector<uint32_t>(a->PostingsOf(0).begin(), a->PostingsOf(0).end()),
            std::vector<uint32_t>{9});
  EXPECT_EQ((Seen(a, 7)), (std::map<VectorId, uint8_t>{{1, 11}}));
  EXPECT_EQ((Seen(a, 9)), (std::map<VectorId, uint8_t>{{0, 20}}));
  EXPECT_EQ(a->Row(0)[0], 20);
  // Id 1 deleted: not served, even before its entries are dropped.
  ids[1].flags = 0;
  EXPECT_TRUE(Seen(a, 7).empty());
  a->Drop(1);
  EXPECT_EQ(a->Row(1), nullptr);
  EXPECT_EQ(a->size(), 1u);
  a->Clear();
  a->Trim();
  EXPECT_EQ(a->size(), 0u);
  EXPECT_EQ(a->MemoryBytes(), 0u);  // freed, not only emptied
  EXPECT_EQ(a->file_bytes(), 0u);
  EXPECT_TRUE(Seen(a, 9).empty());
}

// A vector's postings are listed as given, nearest head first (its primary); a move out of a
// posting that is about to go takes that posting's place in the list, so a moved primary stays
// first; and the open, which reads postings by number, can put the primary first again.
TEST(AppendedVectors, KeepsTheirPrimaryFirst) {
  std::vector<IdState> ids(2, IdState{0, 0, kLive});
  Appended a(&ids);
  const auto of = [&](VectorId id) {
    return std::vector<uint32_t>(a->PostingsOf(id).begin(), a->PostingsOf(id).end());
  };
  const uint32_t postings[] = {9, 4, 6};
  a->Add(0, Row(1).data(), postings, 0);
  EXPECT_EQ(of(0), (std::vector<uint32_t>{9, 4, 6}));
  a->AddEntry(12, 0, 0, /*in_place_of=*/9);  // posting 9 splits; 0 moves to 12
  (void)a->TakePosting(9);
  EXPECT_EQ(of(0), (std::vector<uint32_t>{12, 4, 6}));
  a->AddEntry(13, 0, 0, /*in_place_of=*/99);  // not listed: at the end
  EXPECT_EQ(of(0), (std::vector<uint32_t>{12, 4, 6, 13}));
  a->MakePrimary(0, 6);
  EXPECT_EQ(of(0), (std::vector<uint32_t>{6, 12, 4, 13}));
  a->MakePrimary(0, 77);  // not listed: a no-op
  a->MakePrimary(1, 6);   // no entries: a no-op
  EXPECT_EQ(of(0), (std::vector<uint32_t>{6, 12, 4, 13}));
  EXPECT_TRUE(of(1).empty());
  EXPECT_EQ(Seen(a, 12).size(), 1u);
  EXPECT_TRUE(Seen(a, 9).empty());
}

// Rows live in a file's slots: a dropped row's slot is the next new row's, a replaced row keeps
// its own, growing the file (remapping it, which may move the rows) keeps every row, and nothing
// of them is counted as memory.
TEST(AppendedVectors, RowsLiveInReusedSlotsOfAFile) {
  constexpr size_t kRowBytes = 512;
  constexpr VectorId kRows = 5000;  // 2.5 MB: the file grows from 64 KiB several times
  std::vector<IdState> ids(kRows, IdState{0, 0, kLive});
  Appended a(&ids, /*rows=*/0, kRowBytes);
  EXPECT_FALSE(a->HasRoom(1));
  const uint32_t posting[] = {1};
  const auto row = [&](uint8_t fill) {
    std::vector<uint8_t> r(kRowBytes, fill);
    r[kRowBytes - 1] = static_cast<uint8_t>(fill ^ 0xff);
    return r;
  };
  const auto fill = [](VectorId id) { return static_cast<uint8_t>(id * 7 + 3); };
  const auto holds = [&](VectorId id, uint8_t f) {
    const uint8_t* r = a->Row(id);
    return r != nullptr && r[0] == f && r[kRowBytes / 2] == f &&
           r[kRowBytes - 1] == static_cast<uint8_t>(f ^ 0xff);
  };
  int grew = 0;
  for (VectorId id = 0; id < kRows; ++id) {
    if (!a->HasRoom(1)) {
      ASSERT_TRUE(a->Reserve(1).ok());
      ++grew;
    }
    a->Add(id, row(fill(id)).data(), posting, 0);
  }
  EXPECT_GE(grew, 5);
  const uint64_t file = a->file_bytes();
  EXPECT_GE(file, uint64_t{kRows} * kRowBytes);
  EXPECT_LT(a->MemoryBytes(), uint64_t{kRows} * kRowBytes / 4);  // maps, not the rows
  for (VectorId id = 0; id < kRows; ++id) ASSERT_TRUE(holds(id, fill(id))) << id;
  // Half dropped, then as many new rows and a replacement: no room made, the file as it was.
  for (VectorId id = 0; id < kRows; id += 2) a->Drop(id);
  const uint64_t free_room = file / kRowBytes - kRows + kRows / 2;
  EXPECT_TRUE(a->HasRoom(free_room));
  EXPECT_FALSE(a->HasRoom(free_room + 1));
  for (VectorId id = 0; id < kRows; id += 2) {
    a->PutRow(id, row(static_cast<uint8_t>(fill(id) + 1)).data());
  }
  a->PutRow(1, row(99).data());  // replaced in place
  EXPECT_EQ(a->file_bytes(), file);
  EXPECT_TRUE(a->HasRoom(free_room - kRows / 2));
  EXPECT_FALSE(a->HasRoom(free_room - kRows / 2 + 1));
  EXPECT_EQ(a->size(), kRows);
  for (VectorId id = 0; id < kRows; ++id) {
    const uint8_t want = id == 1 ? 99 : id % 2 == 0 ? static_cast<uint8_t>(fill(id) + 1) : fill(id);
    ASSERT_TRUE(holds(id, want)) << id;
  }
  // Clear keeps room for what it is told; the file shrinks to it once trimmed.
  a->Clear(/*keep_rows=*/10);
  EXPECT_TRUE(a->HasRoom(10));
  EXPECT_EQ(a->file_bytes(), file);
  a->Trim();
  EXPECT_LT(a->file_bytes(), file);
  EXPECT_GE(a->file_bytes(), 10 * kRowBytes);
}

// Posting maintenance takes a posting's entries away (a split or merge) and gives its vectors
// entries elsewhere; a built vector can hold appended entries beside its built ones.
TEST(AppendedVectors, TakingAPostingLeavesRowsAndOtherEntries) {
  std::vector<IdState> ids(4, IdState{0, 0, kLive});
  Appended a(&ids);
  const uint32_t p_0[] = {3, 5}, p_1[] = {3};
  a->Add(0, Row(10).data(), p_0, 0);
  a->Add(1, Row(11).data(), p_1, 0);
  a->PutRow(2, Row(12).data());  // a built vector given an entry by a split
  a->AddEntry(3, 2, 0);
  ids[1].flags = 0;  // deleted: not among the live ones taken
  EXPECT_EQ(a->EntryCount(3), 3u);
  std::vector<VectorId> taken = a->TakePosting(3);
  std::sort(taken.begin(), taken.end());
  EXPECT_EQ(taken, (std::vector<VectorId>{0, 2}));
  EXPECT_EQ(a->EntryCount(3), 0u);
  EXPECT_TRUE(Seen(a, 3).empty());
  EXPECT_EQ((Seen(a, 5)), (std::map<VectorId, uint8_t>{{0, 10}}));
  EXPECT_EQ(std::vector<uint32_t>(a->PostingsOf(0).begin(), a->PostingsOf(0).end()),
            std::vector<uint32_t>{5});
  EXPECT_TRUE(a->PostingsOf(2).empty());
  ASSERT_TRUE(a->HasRow(2));
  a->AddEntry(8, 2, 0);
  a->AddEntry(8, 0, 0);
  EXPECT_EQ((Seen(a, 8)), (std::map<VectorId, uint8_t>{{0, 10}, {2, 12}}));
  // Entries before their row (as the open adds a moved built vector's): served once it comes.
  a->AddEntry(8, 3, 0);
  a->AddEntry(9, 3, 0);
  EXPECT_EQ((Seen(a, 8)), (std::map<VectorId, uint8_t>{{0, 10}, {2, 12}}));
  a->PutRow(3, Row(13).data());
  EXPECT_EQ((Seen(a, 8)), (std::map<VectorId, uint8_t>{{0, 10}, {2, 12}, {3, 13}}));
  EXPECT_EQ((Seen(a, 9)), (std::map<VectorId, uint8_t>{{3, 13}}));
  a->Drop(0);
  EXPECT_EQ((Seen(a, 8)), (std::map<VectorId, uint8_t>{{2, 12}, {3, 13}}));
  EXPECT_TRUE(Seen(a, 5).empty());
}

}  // namespace
}  // namespace strata::internal
