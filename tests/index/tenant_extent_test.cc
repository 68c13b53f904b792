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

// A store that counts the keys read from the tenants family.
class CountingStore final : public MetadataStore {
 public:
  explicit CountingStore(std::unique_ptr<MetadataStore> store) : store_(std::move(store)) {}
  absl::StatusOr<std::string> Get(Cf cf, absl::string_view key,
                                  const StoreSnapshot* at) const override {
    tenant_reads_ += cf == Cf::kTenants;
    return store_->Get(cf, key, at);
  }
  std::vector<absl::StatusOr<std::string>> MultiGet(Cf cf, absl::Span<const std::string> keys,
                                                    const StoreSnapshot* at) const override {
    if (cf == Cf::kTenants) tenant_reads_ += keys.size();
    return store_->MultiGet(cf, keys, at);
  }
  absl::Status MultiGetLent(
      Cf cf, absl::Span<const std::string> keys, const StoreSnapshot* at,
      absl::FunctionRef<absl::Status(absl::Span<const absl::StatusOr<absl::string_view>>)> use)
      const override {
    if (cf == Cf::kTenants) tenant_reads_ += keys.size();
    return store_->MultiGetLent(cf, keys, at, use);
  }
  std::shared_ptr<const StoreSnapshot> Snapshot() const override { return store_->Snapshot(); }
  absl::Status Write(WriteBatch* batch, bool sync, bool wal = true) override {
    return store_->Write(batch, sync, wal);
  }
  absl::Status Scan(
      Cf cf, absl::string_view prefix,
      absl::FunctionRef<absl::Status(absl::string_view, absl::string_view)> visit) const override {
    return store_->Scan(cf, prefix, [&](absl::string_view key, absl::string_view value) {
      chunks_scanned_ += cf == Cf::kTenants && key[0] == 'x';
      return visit(key, value);
    });
  }
  absl::Status ScanEach(
      Cf cf, absl::Span<const std::string> prefixes,
      absl::FunctionRef<absl::Status(size_t, absl::string_view, absl::string_view)> visit,
      const StoreSnapshot* at = nullptr) const override {
    return store_->ScanEach(cf, prefixes, visit, at);
  }
  absl::Status Flush() override { return store_->Flush(); }
  absl::Status Settle() override { return store_->Settle(); }
  absl::Status SyncWal() override { return store_->SyncWal(); }
  uint64_t ApproximateBytes(Cf cf, absl::string_view prefix) const override {
    return store_->ApproximateBytes(cf, prefix);
  }
  const WalRecoveryReport& recovery() const override { return store_->recovery(); }

  mutable uint64_t tenant_reads_ = 0;    // keys read by Get, MultiGet and MultiGetLent
  mutable uint64_t chunks_scanned_ = 0;  // extent chunks visited by Scan

 private:
  std::unique_ptr<MetadataStore> store_;
};

// One collection's extents over a real store, with the stored vectors it reads kept in a map.
class Extents {
 public:
  explicit Extents(const std::string& dir, size_t extent_bytes = kTenantExtentBytes)
      : extents_(kColl, kRowBytes, extent_bytes) {
    auto store = MetadataStore::Open(dir);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::make_unique<CountingStore>(std::move(*store));
  }

  // The tenant's points become `ids` (ascending); `written` are the ids whose vectors the batch
  // writes (at their next version). Returns the chunks the batch writes.
  size_t Set(const std::vector<VectorId>& ids, const std::vector<VectorId>& written = {}) {
    std::map<VectorId, std::string> fresh;
    for (VectorId id : written) fresh[id] = RowOf(id, ++version_[id]);
    WriteBatch batch;
    auto change = extents_.Plan(
        *store_, kTenant, points_, ids,
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
    for (const auto& e : batch.entries()) puts += e.op == WriteBatch::Op::kPut && e.key[0] == 'x';
    EXPECT_TRUE(store_->Write(&batch, /*sync=*/false).ok());
    extents_.Apply(*change);
    points_ = ids;
    return puts;
  }

  // The extent's rows, checked against the points' current vectors; false when it has none.
  bool ReadsExactly(const std::vector<VectorId>& ids) {
    std::vector<VectorId> got;
    bool rows_right = true;
    uint64_t bytes = 0, pages = 0;
    auto found = extents_.Read(
        *store_, kTenant, nullptr,
        [&](VectorId id, const uint8_t* row) {
          got.push_back(id);
          rows_right &=
              std::string(reinterpret_cast<const char*>(row), kRowBytes) == RowOf(id, version_[id]);
        },
        &bytes, &pages);
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok() || !*found) return false;
    EXPECT_TRUE(rows_right);
    EXPECT_EQ(bytes, ids.size() * (4 + kRowBytes));
    // Pages: 4 KiB per chunk begun.
    EXPECT_GE(pages, (bytes + 4095) / 4096);
    EXPECT_LE(pages, (bytes + 4095) / 4096 + extents_.chunks(kTenant) - 1);
    return got == ids && rows_right;
  }

  // Keys of the tenants family under the collection's extents' chunks ('x') or layouts ('X').
  std::vector<std::string> Keys(char kind = 'x') const {
    std::vector<std::string> keys;
    std::string prefix(1, kind);
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
  std::unique_ptr<CountingStore> store_;
  std::vector<VectorId> points_;  // the tenant's points, as the last Set left them
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
    const uint64_t reads = x.store_->tenant_reads_;
    const size_t puts = x.Set(ids, {ids.back()});
    ASSERT_EQ(puts, 1u) << "one append rewrites one chunk (point " << id << ")";
    ASSERT_LE(x.store_->tenant_reads_ - reads, 1u) << "and reads that chunk alone";
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

TEST(TenantExtents, AMissingChunkIsReportedAndAChangeOfItsPointsMakesItAgain) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids = Range(0, 300);
  x.Set(ids);
  ASSERT_EQ(x.extents_.chunks(kTenant), 3u);
  WriteBatch lose;
  lose.Delete(Cf::kTenants, x.Keys()[1]);
  ASSERT_TRUE(x.store_->Write(&lose, false).ok());
  EXPECT_FALSE(x.ReadsExactly(ids)) << "a chunk missing: the caller searches otherwise";
  // A change elsewhere leaves it be (only the chunks a change rewrites are read).
  x.vector_reads_ = 0;
  ids.push_back(300);
  x.Set(ids, {300});
  EXPECT_EQ(x.vector_reads_, 0);
  EXPECT_FALSE(x.ReadsExactly(ids));
  // A change of one of its points makes it again, from the stored vectors.
  x.Set(ids, {200});
  EXPECT_EQ(x.vector_reads_, 1) << "the lost chunk's rows are read from the stored vectors";
  EXPECT_TRUE(x.ReadsExactly(ids));
}

TEST(TenantExtents, LoadKeepsWhatAgreesAndRebuildsTheRest) {
  TempDir dir;
  std::vector<VectorId> ids = Range(0, 300);
  const auto chunk_of = [](const std::vector<VectorId>& rows) {
    return EncodeTenantExtent(rows, kRowBytes, [&](size_t i) {
      static std::string row;
      row = RowOf(rows[i], 0);
      return reinterpret_cast<const uint8_t*>(row.data());
    });
  };
  {
    Extents x(dir.path());
    x.Set(ids);
    WriteBatch b;
    // Tenant 4: its points in the chunks of the format before layouts (no layout record).
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 4, 0), chunk_of(Range(0, 100)));
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 4, 100), chunk_of(Range(100, 200)));
    // Tenant 5: the one-record format before chunks.
    std::string old = "x";
    AppendU32(&old, kColl);
    AppendU32(&old, 5);
    b.Put(Cf::kTenants, old, chunk_of({0}));
    // Tenant 7: a layout of one chunk of more rows than a chunk holds.
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 7, 0), chunk_of(Range(0, 200)));
    b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, 7),
          TenantExtents::EncodeLayout({0}, {200}));
    // Tenant 9, which no longer exists.
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 9, 0), chunk_of({0}));
    b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, 9), TenantExtents::EncodeLayout({0}, {1}));
    ASSERT_TRUE(x.store_->Write(&b, false).ok());
  }
  Extents x(dir.path());
  const uint64_t reads = x.store_->tenant_reads_;
  WriteBatch batch;
  std::vector<TenantExtents::Tenant> rebuild;
  const std::vector<TenantExtents::Tenant> tenants = {kTenant, 4, 5, 6, 7};
  const auto points = [&](TenantExtents::Tenant t) -> uint64_t {
    return t == kTenant ? ids.size() : t == 5 ? 1 : t == 6 ? 2 : 200;
  };
  ASSERT_TRUE(x.extents_.Load(*x.store_, tenants, points, &batch, &rebuild).ok());
  EXPECT_EQ(x.store_->tenant_reads_, reads);
  EXPECT_EQ(x.store_->chunks_scanned_, 5u) << "only the chunks removed are read: kTenant's are not";
  EXPECT_EQ(x.extents_.chunks(kTenant), 3u);
  // All but kTenant's want an extent and are rebuilt; tenant 4's two chunks, tenant 5's record,
  // tenant 7's chunk and layout, and tenant 9's chunk and layout go.
  EXPECT_EQ(rebuild, (std::vector<TenantExtents::Tenant>{4, 5, 6, 7}));
  EXPECT_EQ(batch.count(), 7u);
  ASSERT_TRUE(x.store_->Write(&batch, false).ok());
  EXPECT_EQ(x.Keys().size(), 3u);
  EXPECT_EQ(x.Keys('X').size(), 1u);
  x.points_ = ids;
  EXPECT_TRUE(x.ReadsExactly(ids));

  // The same layout checked against another point count: dropped, to be rebuilt.
  WriteBatch again;
  rebuild.clear();
  ids.pop_back();
  ASSERT_TRUE(x.extents_
                  .Load(
                      *x.store_, {kTenant},
                      [&](TenantExtents::Tenant) -> uint64_t { return ids.size(); }, &again,
                      &rebuild)
                  .ok());
  EXPECT_EQ(rebuild, (std::vector<TenantExtents::Tenant>{kTenant}));
  EXPECT_EQ(x.extents_.chunks(kTenant), 0u);
  EXPECT_EQ(again.count(), 4u);  // three chunks and the layout
}

TEST(TenantExtents, ASearchRefusesAChunkThatDisagreesWithTheLayout) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids = Range(0, 200);
  x.Set(ids);
  ASSERT_TRUE(x.ReadsExactly(ids));
  WriteBatch b;
  b.Put(Cf::kTenants, TenantExtents::Key(kColl, kTenant, 128),
        EncodeTenantExtent({128}, kRowBytes, [&](size_t) {
          static const std::string row = RowOf(128, 0);
          return reinterpret_cast<const uint8_t*>(row.data());
        }));
  ASSERT_TRUE(x.store_->Write(&b, false).ok());
  uint64_t bytes = 0, pages = 0;
  int visited = 0;
  auto found = x.extents_.Read(
      *x.store_, kTenant, nullptr, [&](VectorId, const uint8_t*) { ++visited; }, &bytes, &pages);
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(*found);
  EXPECT_EQ(visited, 0);
}

TEST(TenantExtents, AnExtentMarkedBrokenIsRefusedThenMadeAgainWhole) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids = Range(0, 300);
  x.Set(ids);
  ASSERT_TRUE(x.ReadsExactly(ids));
  EXPECT_TRUE(x.extents_.MarkBroken(kTenant));
  EXPECT_FALSE(x.extents_.MarkBroken(kTenant)) << "true the first time only";
  EXPECT_FALSE(x.ReadsExactly(ids));
  // The same points: every chunk written again, every row from the stored vectors.
  x.vector_reads_ = 0;
  const uint64_t reads = x.store_->tenant_reads_;
  EXPECT_EQ(x.Set(ids), 3u);
  EXPECT_EQ(x.vector_reads_, 1);
  EXPECT_EQ(x.store_->tenant_reads_, reads) << "no chunk of a broken extent is trusted";
  EXPECT_TRUE(x.ReadsExactly(ids));
}

}  // namespace
}  // namespace strata
