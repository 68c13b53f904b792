#include "index/tenant_extent.h"

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/metadata_store.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

constexpr uint32_t kColl = 7;
constexpr uint32_t kTenant = 3;
constexpr size_t kRowBytes = 252;  // 256-byte rows: 128 to a 32 KiB chunk

// The stored vector of point `id` at `version`.
std::string RowOf(VectorId id, int version) {
  std::string row(kRowBytes, '\0');
  for (size_t j = 0; j < kRowBytes; ++j) {
    row[j] = static_cast<char>((id * 31 + j * 7 + static_cast<size_t>(version) * 101) & 0xFF);
  }
  return row;
}

// One collection's extents over a real store, with the stored vectors it reads kept in a map.
class Extents {
 public:
  explicit Extents(const std::string& dir, size_t extent_bytes = kTenantExtentBytes)
      : extents_(kColl, kRowBytes, extent_bytes) {
    auto store = MetadataStore::Open(dir);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // The tenant's points become `ids` (ascending); `written` are the ids whose vectors the batch
  // writes (at their next version). Returns the batch's puts.
  size_t Set(const std::vector<VectorId>& ids, const std::vector<VectorId>& written = {}) {
    std::map<VectorId, std::string> fresh;
    for (VectorId id : written) fresh[id] = RowOf(id, ++version_[id]);
    WriteBatch batch;
    auto change = extents_.Plan(
        *store_, kTenant, ids,
        [&](VectorId id) -> const uint8_t* {
          auto f = fresh.find(id);
          return f == fresh.end() ? nullptr : reinterpret_cast<const uint8_t*>(f->second.data());
        },
        [&](absl::Span<const VectorId> need, std::vector<std::string>* out) {
          out->clear();
          ++vector_reads_;
          for (VectorId id : need) out->push_back(RowOf(id, version_[id]));
          return absl::OkStatus();
        },
        &batch);
    EXPECT_TRUE(change.ok()) << change.status();
    size_t puts = 0;
    for (const auto& e : batch.entries()) puts += e.op == WriteBatch::Op::kPut;
    EXPECT_TRUE(store_->Write(&batch, /*sync=*/false).ok());
    extents_.Apply(*change);
    return puts;
  }

  // The extent's rows, checked against the points' current vectors; false when it has none.
  bool ReadsExactly(const std::vector<VectorId>& ids) {
    std::vector<VectorId> got;
    bool rows_right = true;
    uint64_t bytes = 0;
    auto found = extents_.Read(
        *store_, kTenant, nullptr,
        [&](VectorId id, const uint8_t* row) {
          got.push_back(id);
          rows_right &=
              std::string(reinterpret_cast<const char*>(row), kRowBytes) == RowOf(id, version_[id]);
        },
        &bytes);
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok() || !*found) return false;
    EXPECT_TRUE(rows_right);
    EXPECT_EQ(bytes, ids.size() * (4 + kRowBytes));
    return got == ids && rows_right;
  }

  // Keys of the tenants family under the collection's extents.
  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    std::string prefix = "x";
    AppendU32(&prefix, kColl);
    EXPECT_TRUE(store_
                    ->Scan(Cf::kTenants, prefix,
                           [&](auto key, auto) {
                             keys.emplace_back(key);
                             return absl::OkStatus();
                           })
                    .ok());
    return keys;
  }

  TenantExtents extents_;
  std::unique_ptr<MetadataStore> store_;
  std::map<VectorId, int> version_;
  int vector_reads_ = 0;
};

std::vector<VectorId> Range(VectorId from, VectorId to) {
  std::vector<VectorId> v(to - from);
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(TenantExtents, SizesFollowTheirBytes) {
  TenantExtents e(kColl, kRowBytes, kTenantExtentBytes);
  EXPECT_EQ(e.max_rows(), kTenantExtentBytes / 256);
  EXPECT_EQ(e.chunk_rows(), kTenantExtentChunkBytes / 256);
  // Rows larger than a chunk: one to a chunk; rows larger than the extent: one point.
  TenantExtents huge(kColl, 1 << 20, kTenantExtentBytes);
  EXPECT_EQ(huge.max_rows(), 1u);
  EXPECT_EQ(huge.chunk_rows(), 1u);
}

TEST(TenantExtents, AGrowingTenantRewritesOneChunkPerAppend) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids;
  for (VectorId id = 0; id < 700; ++id) {
    ids.push_back(id * 3 + 1);  // new points take higher ids
    const size_t puts = x.Set(ids, {ids.back()});
    ASSERT_EQ(puts, 1u) << "one append rewrites one chunk (point " << id << ")";
  }
  EXPECT_TRUE(x.ReadsExactly(ids));
  // Cut as they fill: full chunks and the last one.
  EXPECT_EQ(x.extents_.chunks(kTenant), (700 + 127) / 128);
  EXPECT_EQ(x.Keys().size(), x.extents_.chunks(kTenant));
  // A vector replaced in the middle rewrites its chunk alone.
  EXPECT_EQ(x.Set(ids, {ids[300]}), 1u);
  EXPECT_TRUE(x.ReadsExactly(ids));
  // An unchanged point list writes nothing.
  EXPECT_EQ(x.Set(ids), 0u);
}

TEST(TenantExtents, RevokesMergeChunksAndAGrantFillsTheGaps) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids = Range(0, 1000);
  x.Set(ids);
  EXPECT_EQ(x.extents_.chunks(kTenant), 8u);
  ASSERT_TRUE(x.ReadsExactly(ids));
  // Keep one point in ten: chunks that fit half a chunk together merge.
  std::vector<VectorId> kept;
  for (VectorId id : ids) {
    if (id % 10 == 0) kept.push_back(id);
  }
  x.Set(kept);
  EXPECT_TRUE(x.ReadsExactly(kept));
  EXPECT_LE(x.extents_.chunks(kTenant), 2u);
  EXPECT_EQ(x.Keys().size(), x.extents_.chunks(kTenant));
  // Drop the first chunk's points entirely: bound 0 stays, holding the next points.
  std::vector<VectorId> tail(kept.begin() + kept.size() / 2, kept.end());
  x.Set(tail);
  EXPECT_TRUE(x.ReadsExactly(tail));
  // Old points granted again: every row right.
  std::vector<VectorId> all = Range(0, 1000);
  x.Set(all);
  EXPECT_TRUE(x.ReadsExactly(all));
  for (size_t i = 0; i < x.Keys().size(); ++i) {
    EXPECT_EQ(x.Keys()[i].size(), 13u);
  }
}

TEST(TenantExtents, ATenantPastItsSizeHasNone) {
  TempDir dir;
  Extents x(dir.path(), /*extent_bytes=*/64 * 256);  // 64 points
  x.Set(Range(0, 64));
  EXPECT_TRUE(x.ReadsExactly(Range(0, 64)));
  x.Set(Range(0, 65));
  EXPECT_EQ(x.extents_.chunks(kTenant), 0u);
  EXPECT_FALSE(x.ReadsExactly(Range(0, 65)));
  EXPECT_TRUE(x.Keys().empty());
  x.Set(Range(1, 65));  // back within it: made again from the stored vectors
  EXPECT_TRUE(x.ReadsExactly(Range(1, 65)));
  x.Set({});
  EXPECT_TRUE(x.Keys().empty());
}

TEST(TenantExtents, AMissingChunkIsReportedAndTheNextChangeMakesItAgain) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids = Range(0, 300);
  x.Set(ids);
  ASSERT_EQ(x.extents_.chunks(kTenant), 3u);
  WriteBatch lose;
  lose.Delete(Cf::kTenants, x.Keys()[1]);
  ASSERT_TRUE(x.store_->Write(&lose, false).ok());
  EXPECT_FALSE(x.ReadsExactly(ids)) << "a chunk missing: the caller searches otherwise";
  x.vector_reads_ = 0;
  ids.push_back(300);
  x.Set(ids, {300});
  EXPECT_EQ(x.vector_reads_, 1) << "the lost chunk's rows are read from the stored vectors";
  EXPECT_TRUE(x.ReadsExactly(ids));
}

TEST(TenantExtents, LoadKeepsWhatAgreesAndRebuildsTheRest) {
  TempDir dir;
  std::vector<VectorId> ids = Range(0, 300);
  {
    Extents x(dir.path());
    x.Set(ids);
    // Another tenant's extent in the one-record format of before chunks, and one of a tenant
    // that no longer exists.
    WriteBatch b;
    std::string old = "x";
    AppendU32(&old, kColl);
    AppendU32(&old, 5);
    b.Put(Cf::kTenants, old, std::string(4 + kRowBytes, '\0'));
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 9, 0), std::string(4 + kRowBytes, '\0'));
    // And tenant 4's points, right, but in one chunk of more rows than a chunk holds.
    const std::vector<VectorId> four = Range(0, 200);
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 4, 0),
          EncodeTenantExtent(four, kRowBytes, [&](size_t i) {
            static std::string row;
            row = RowOf(four[i], 0);
            return reinterpret_cast<const uint8_t*>(row.data());
          }));
    ASSERT_TRUE(x.store_->Write(&b, false).ok());
  }
  Extents x(dir.path());
  WriteBatch batch;
  std::vector<TenantExtents::Tenant> rebuild;
  const std::vector<TenantExtents::Tenant> tenants = {kTenant, 4, 5, 6};
  ASSERT_TRUE(x.extents_
                  .Load(
                      *x.store_, tenants,
                      [&](TenantExtents::Tenant t) {
                        return t == kTenant ? ids
                               : t == 4     ? Range(0, 200)
                               : t == 5     ? Range(0, 1)
                                            : Range(0, 2);
                      },
                      &batch, &rebuild)
                  .ok());
  EXPECT_EQ(x.extents_.chunks(kTenant), 3u);
  // Tenant 4's chunk is too long, tenant 5's record is of the old format, tenant 6 has none:
  // all wanted, all rebuilt; tenant 4's and 5's records and tenant 9's go.
  EXPECT_EQ(rebuild, (std::vector<TenantExtents::Tenant>{4, 5, 6}));
  EXPECT_EQ(batch.count(), 3u);
  ASSERT_TRUE(x.store_->Write(&batch, false).ok());
  EXPECT_EQ(x.Keys().size(), 3u);
  EXPECT_TRUE(x.ReadsExactly(ids));

  // The same extent checked against other members: dropped and rebuilt.
  WriteBatch again;
  rebuild.clear();
  ids.pop_back();
  ASSERT_TRUE(
      x.extents_
          .Load(
              *x.store_, {kTenant}, [&](TenantExtents::Tenant) { return ids; }, &again, &rebuild)
          .ok());
  EXPECT_EQ(rebuild, (std::vector<TenantExtents::Tenant>{kTenant}));
  EXPECT_EQ(x.extents_.chunks(kTenant), 0u);
  EXPECT_EQ(again.count(), 3u);
}

}  // namespace
}  // namespace strata
