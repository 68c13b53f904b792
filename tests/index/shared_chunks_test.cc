// The copy-on-write array under the heads' overlay (index/internal/shared_chunks.h): a copy reads
// what its source held when copied, whatever either writes afterwards, and chunks are cloned only
// where written.
#include "index/internal/shared_chunks.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace strata::internal {
namespace {

// The records as plain vectors, for comparison.
std::vector<std::vector<uint32_t>> Records(const SharedChunks<uint32_t>& a) {
  std::vector<std::vector<uint32_t>> out;
  for (size_t i = 0; i < a.size(); ++i) out.emplace_back(a.Get(i), a.Get(i) + a.width());
  return out;
}

TEST(SharedChunks, NewRecordsAreZeroAndKeepWhatIsWritten) {
  SharedChunks<uint32_t> a(3, 4);
  a.Resize(10);
  for (size_t i = 0; i < 10; ++i) {
    for (size_t j = 0; j < 3; ++j) EXPECT_EQ(a.Get(i)[j], 0u);
  }
  for (size_t i = 0; i < 10; ++i) a.Mutable(i)[1] = static_cast<uint32_t>(i + 1);
  uint32_t* r = a.Append();
  EXPECT_EQ(r[0] + r[1] + r[2], 0u);
  r[2] = 99;
  ASSERT_EQ(a.size(), 11u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(a.Get(i)[1], i + 1);
  EXPECT_EQ(a.Get(10)[2], 99u);
}

// Random writes, appends and copies over a model: every copy keeps its own records.
TEST(SharedChunks, CopiesKeepTheirOwnRecords) {
  std::mt19937_64 rng(7);
  std::vector<SharedChunks<uint32_t>> arrays;
  std::vector<std::vector<std::vector<uint32_t>>> models;
  arrays.emplace_back(2, 8);
  models.emplace_back();
  for (int step = 0; step < 20'000; ++step) {
    const size_t k = rng() % arrays.size();
    SharedChunks<uint32_t>& a = arrays[k];
    auto& m = models[k];
    const uint64_t r = rng() % 100;
    if (r < 2 && arrays.size() < 12) {
      a.Freeze();
      // (Copied through a local: the vector may move its elements as it grows.)
      SharedChunks<uint32_t> copy = a;
      auto model = m;
      arrays.push_back(std::move(copy));
      models.push_back(std::move(model));
    } else if (r < 40 || m.empty()) {
      uint32_t* rec = a.Append();
      rec[0] = static_cast<uint32_t>(rng());
      m.push_back({rec[0], 0});
    } else if (r < 45) {
      const size_t n = a.size() + rng() % 20;
      a.Resize(n);
      m.resize(n, {0, 0});
    } else {
      const size_t i = rng() % a.size();
      const auto v = static_cast<uint32_t>(rng());
      a.Mutable(i)[1] = v;
      m[i][1] = v;
    }
  }
  ASSERT_GE(arrays.size(), 6u);
  for (size_t k = 0; k < arrays.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(Records(arrays[k]), models[k]);
  }
}

// A copy shares every chunk until it writes one, and then clones that one only.
TEST(SharedChunks, AWriteClonesOneChunk) {
  SharedChunks<uint32_t> a(1, 16);
  a.Resize(64);  // 4 chunks
  a.Freeze();
  EXPECT_TRUE(a.frozen());
  SharedChunks<uint32_t> b = a;
  EXPECT_EQ(a.Get(0), b.Get(0));
  EXPECT_EQ(a.Get(63), b.Get(63));
  *b.Mutable(20) = 5;
  EXPECT_FALSE(b.frozen());
  EXPECT_NE(a.Get(20), b.Get(20));  // its chunk was cloned
  EXPECT_EQ(a.Get(16 + 15), a.Get(16) + 15);
  EXPECT_EQ(a.Get(0), b.Get(0));  // the others are still shared
  EXPECT_EQ(a.Get(40), b.Get(40));
  EXPECT_EQ(*a.Get(20), 0u);
  const uint32_t* before = b.Get(21);
  *b.Mutable(21) = 6;  // its own now: written in place
  EXPECT_EQ(b.Get(21), before);
  EXPECT_EQ(*b.Get(21), 6u);
  // The source, written after the copy (it froze): clones as well.
  *a.Mutable(40) = 7;
  EXPECT_EQ(*b.Get(40), 0u);
  EXPECT_EQ(*a.Get(40), 7u);
}

// Records never written share one zero chunk: growing the array costs a pointer per chunk, so a
// table sized by a large number (the heads' slots, by head number) holds memory only where written.
TEST(SharedChunks, RecordsNeverWrittenTakeNoMemory) {
  SharedChunks<uint32_t> a(1, 4096);
  a.Resize(size_t{1} << 24);  // 4,096 chunks of 16 KiB, were they made
  const uint64_t empty = a.MemoryBytes();
  EXPECT_LT(empty, 200'000u);
  EXPECT_EQ(*a.Get(12'345'678), 0u);
  *a.Mutable(12'345'678) = 9;
  EXPECT_EQ(a.MemoryBytes(), empty + 4096 * sizeof(uint32_t));
  EXPECT_EQ(*a.Get(12'345'678), 9u);
  EXPECT_EQ(*a.Get(12'345'679), 0u);
  EXPECT_EQ(*a.Get(0), 0u);
  // A move leaves an empty array behind.
  SharedChunks<uint32_t> b = std::move(a);
  EXPECT_EQ(b.size(), size_t{1} << 24);
  EXPECT_EQ(*b.Get(12'345'678), 9u);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): what a move leaves is the contract
  EXPECT_TRUE(a.frozen());
}

}  // namespace
}  // namespace strata::internal
