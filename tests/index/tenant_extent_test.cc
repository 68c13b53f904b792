#include "index/tenant_extent.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/crc32c.h"
#include "storage/fault_injection_env.h"
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
  absl::Status Sweep(
      Cf cf, absl::string_view prefix,
      absl::FunctionRef<absl::Status(absl::string_view, absl::string_view)> visit) const override {
    return store_->Sweep(cf, prefix, visit);
  }
  uint64_t BlockCacheUsage() const override { return store_->BlockCacheUsage(); }
  BatchedReads batched_reads() const override { return store_->batched_reads(); }
  absl::Status CompactPrefix(Cf cf, absl::string_view prefix,
                             const std::atomic<bool>* cancel) override {
    return store_->CompactPrefix(cf, prefix, cancel);
  }
  absl::Status ScanEach(
      Cf cf, absl::Span<const std::string> prefixes,
      absl::FunctionRef<absl::Status(size_t, absl::string_view, absl::string_view)> visit,
      const StoreSnapshot* at = nullptr) const override {
    return store_->ScanEach(cf, prefixes, visit, at);
  }
  absl::Status Flush() override { return store_->Flush(); }
  absl::Status Settle() override { return store_->Settle(); }
  uint64_t ApproximateBytes(Cf cf, absl::string_view prefix) const override {
    return store_->ApproximateBytes(cf, prefix);
  }
  const WalRecoveryReport& recovery() const override { return store_->recovery(); }
  std::string WritesRefused() const override { return store_->WritesRefused(); }
  void WatchWritesRefused(std::function<void()> changed) override {
    store_->WatchWritesRefused(std::move(changed));
  }

  mutable uint64_t tenant_reads_ = 0;    // keys read by Get, MultiGet and MultiGetLent
  mutable uint64_t chunks_scanned_ = 0;  // extent chunks visited by Scan

 private:
  std::unique_ptr<MetadataStore> store_;
};

// One collection's extents over a real store, with the stored vectors it reads kept in a map.
class Extents {
 public:
  explicit Extents(const std::string& dir, size_t extent_bytes = kTenantExtentBytes,
                   Env* env = Env::Default(), uint64_t slack = TenantExtents::kCompactionSlackBytes)
      : dir_(dir + "/collection"), extents_(*env, dir_, kColl, kRowBytes, extent_bytes, slack) {
    MetadataStoreOptions options;
    options.env = env;
    auto store = MetadataStore::Open(dir + "/meta", options);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::make_unique<CountingStore>(std::move(*store));
  }

  // Reads the layouts as an open does; the tenant's points are `ids`. Returns the tenants to
  // rebuild.
  std::vector<TenantExtents::Tenant> Load(const std::vector<VectorId>& ids) {
    WriteBatch batch;
    std::vector<TenantExtents::Tenant> rebuild;
    EXPECT_TRUE(extents_
                    .Load(
                        *store_, {kTenant},
                        [&](TenantExtents::Tenant) -> uint64_t { return ids.size(); }, &batch,
                        &rebuild)
                    .ok());
    EXPECT_TRUE(store_->Write(&batch, /*sync=*/true).ok());
    points_ = ids;
    return rebuild;
  }

  // The extents' files in the collection's directory.
  std::vector<std::string> Files() const {
    std::vector<std::string> names;
    if (!std::filesystem::exists(dir_)) return names;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // Runs a compaction through to its end; returns the chunks it dropped.
  std::vector<TenantExtents::Tenant> Compact() {
    WriteBatch batch;
    auto c = extents_.PlanCompaction(&batch);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return {};
    EXPECT_TRUE(store_->Write(&batch, /*sync=*/true).ok());
    std::vector<TenantExtents::Tenant> dropped = c->dropped;
    const std::string old = extents_.ApplyCompaction(*std::move(c));
    if (!old.empty()) std::filesystem::remove(old);
    return dropped;
  }

  // Where chunk i of the tenant's extent lies, from its layout record.
  BlobLocation ChunkAt(size_t i, uint64_t* file = nullptr) const {
    auto v = store_->Get(Cf::kTenants, TenantExtents::LayoutKey(kColl, kTenant), nullptr);
    EXPECT_TRUE(v.ok()) << v.status();
    if (file != nullptr) *file = ReadU64(*v, 4);
    const size_t at = 12 + 20 * i;
    return BlobLocation{ReadU64(*v, at + 8), static_cast<uint32_t>(ReadU32(*v, at + 4) * 256),
                        ReadU32(*v, at + 16)};
  }
  // Overwrites `n` bytes of the extents' file at `offset` with `byte`.
  void Damage(uint64_t offset, size_t n, char byte = 0x5A) const {
    uint64_t file = 0;
    ChunkAt(0, &file);
    std::fstream f(TenantExtents::FilePath(dir_, file),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    const std::string bytes(n, byte);
    f.write(bytes.data(), static_cast<std::streamsize>(n));
  }

  // The tenant's points become `ids` (ascending); `written` are the ids whose vectors the batch
  // writes (at their next version). Returns the chunks the batch writes.
  size_t Set(const std::vector<VectorId>& ids, const std::vector<VectorId>& written = {}) {
    std::map<VectorId, std::string> fresh;
    for (VectorId id : written) fresh[id] = RowOf(id, ++version_[id]);
    WriteBatch batch;
    auto change = extents_.Plan(
        kTenant, points_, ids,
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
    if (!change.ok()) return 0;
    // Chunks written: locations the extent did not have.
    size_t appended = 0;
    for (const BlobLocation& loc : change->locs) {
      appended += std::find(locs_.begin(), locs_.end(), loc) == locs_.end();
    }
    EXPECT_TRUE(extents_.Sync().ok());
    EXPECT_TRUE(store_->Write(&batch, /*sync=*/true).ok());
    extents_.Apply(*change);
    points_ = ids;
    locs_ = change->locs;
    return appended;
  }

  // The extent's rows, checked against the points' current vectors; false when it has none.
  bool ReadsExactly(const std::vector<VectorId>& ids) {
    std::vector<VectorId> got;
    bool rows_right = true;
    uint64_t bytes = 0, pages = 0;
    auto found = extents_.Read(
        kTenant,
        [&](VectorId id, const uint8_t* row) {
          got.push_back(id);
          rows_right &=
              std::string(reinterpret_cast<const char*>(row), kRowBytes) == RowOf(id, version_[id]);
        },
        &bytes, &pages);
    if (!found.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(found.status())) << found.status();
      return false;
    }
    if (!*found) return false;
    EXPECT_TRUE(rows_right);
    EXPECT_EQ(bytes, ids.size() * (4 + kRowBytes));
    // Pages: the chunks' own, and those of what lies between chunks read together (less than a
    // page each); no chunk spans more pages than its size needs.
    const size_t chunks = extents_.chunks(kTenant);
    EXPECT_GE(pages, (bytes + 4095) / 4096);
    EXPECT_LE(pages, (bytes + 4095) / 4096 + chunks);
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

  const std::string dir_;
  TenantExtents extents_;
  std::unique_ptr<CountingStore> store_;
  std::vector<BlobLocation> locs_;  // the extent's chunks, as the last Set left them
  std::vector<VectorId> points_;    // the tenant's points, as the last Set left them
  std::map<VectorId, int> version_;
  int vector_reads_ = 0;
};

std::vector<VectorId> Range(VectorId from, VectorId to) {
  std::vector<VectorId> v(to - from);
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(TenantExtents, SizesFollowTheirBytes) {
  TempDir dir;
  TenantExtents e(*Env::Default(), dir.path(), kColl, kRowBytes, kTenantExtentBytes);
  EXPECT_EQ(e.max_rows(), kTenantExtentBytes / 256);
  EXPECT_EQ(e.chunk_rows(), kTenantExtentChunkBytes / 256);
  // Rows larger than a chunk: one to a chunk; rows larger than the extent: one point.
  TenantExtents huge(*Env::Default(), dir.path(), kColl, 1 << 20, kTenantExtentBytes);
  EXPECT_EQ(huge.max_rows(), 1u);
  EXPECT_EQ(huge.chunk_rows(), 1u);
}

TEST(TenantExtents, AGrowingTenantRewritesOneChunkPerAppend) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids;
  for (VectorId id = 0; id < 700; ++id) {
    ids.push_back(id * 3 + 1);  // new points take higher ids
    x.vector_reads_ = 0;
    ASSERT_EQ(x.Set(ids, {ids.back()}), 1u) << "one append rewrites one chunk (point " << id << ")";
    ASSERT_EQ(x.vector_reads_, 0) << "its other rows come from the chunk it replaces";
  }
  EXPECT_TRUE(x.ReadsExactly(ids));
  // Cut as they fill: full chunks and the last one.
  EXPECT_EQ(x.extents_.chunks(kTenant), (700 + 127) / 128);
  // A vector replaced in the middle rewrites its chunk alone.
  EXPECT_EQ(x.Set(ids, {ids[300]}), 1u);
  EXPECT_TRUE(x.ReadsExactly(ids));
  // An unchanged point list writes nothing.
  EXPECT_EQ(x.Set(ids), 0u);
  EXPECT_EQ(x.extents_.live_bytes(), ids.size() * 256);
  EXPECT_EQ(x.Keys('x').size(), 0u) << "no chunk is a record of the store";
  EXPECT_EQ(x.Keys('X').size(), 1u);
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
  // Drop the first chunk's points entirely: bound 0 stays, holding the next points.
  std::vector<VectorId> tail(kept.begin() + kept.size() / 2, kept.end());
  x.Set(tail);
  EXPECT_TRUE(x.ReadsExactly(tail));
  // Old points granted again: every row right.
  std::vector<VectorId> all = Range(0, 1000);
  x.Set(all);
  EXPECT_TRUE(x.ReadsExactly(all));
  EXPECT_EQ(x.extents_.live_bytes(), all.size() * 256);
}

TEST(TenantExtents, ATenantPastItsSizeHasNone) {
  TempDir dir;
  Extents x(dir.path(), /*extent_bytes=*/64 * 256);  // 64 points
  x.Set(Range(0, 64));
  EXPECT_TRUE(x.ReadsExactly(Range(0, 64)));
  x.Set(Range(0, 65));
  EXPECT_EQ(x.extents_.chunks(kTenant), 0u);
  EXPECT_FALSE(x.ReadsExactly(Range(0, 65)));
  EXPECT_TRUE(x.Keys('X').empty());
  EXPECT_EQ(x.extents_.live_bytes(), 0u);
  x.Set(Range(1, 65));  // back within it: made again from the stored vectors
  EXPECT_TRUE(x.ReadsExactly(Range(1, 65)));
  x.Set({});
  EXPECT_TRUE(x.Keys('X').empty());
}

// A small extent never spans more pages than its bytes need (a tenant of at most 8 KiB of rows
// reads two pages), wherever the file's end was.
TEST(TenantExtents, ASmallExtentReadsTheFewestPages) {
  TempDir dir;
  Extents x(dir.path());
  for (VectorId n = 1; n <= 40; ++n) {
    const std::vector<VectorId> ids = Range(0, n);
    x.Set(ids, {n - 1});
    uint64_t bytes = 0, pages = 0;
    auto found = x.extents_.Read(
        kTenant, [](VectorId, const uint8_t*) {}, &bytes, &pages);
    ASSERT_TRUE(found.ok() && *found);
    EXPECT_EQ(pages, (n * 256 + 4095) / 4096) << n << " points";
  }
}

TEST(TenantExtents, ADamagedChunkIsReportedAndAChangeOfItsPointsMakesItAgain) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids = Range(0, 300);
  x.Set(ids);
  ASSERT_EQ(x.extents_.chunks(kTenant), 3u);
  const BlobLocation second = x.ChunkAt(1);
  x.Damage(second.offset + 1000, 1);
  EXPECT_FALSE(x.ReadsExactly(ids)) << "DataLoss: the caller searches otherwise";
  // A change elsewhere leaves it be (only the chunks a change rewrites are read).
  x.vector_reads_ = 0;
  ids.push_back(300);
  x.Set(ids, {300});
  EXPECT_EQ(x.vector_reads_, 0);
  EXPECT_FALSE(x.ReadsExactly(ids));
  // A change of one of its points makes it again, from the stored vectors.
  x.Set(ids, {200});
  EXPECT_EQ(x.vector_reads_, 1) << "the damaged chunk's rows are read from the stored vectors";
  EXPECT_TRUE(x.ReadsExactly(ids));
}

TEST(TenantExtents, ARowDamagedSoItsIdsDescendIsDataLoss) {
  TempDir dir;
  Extents x(dir.path());
  std::vector<VectorId> ids = Range(0, 100);
  x.Set(ids);
  // A valid crc over ids that do not ascend: the chunk is rewritten with its rows reversed and
  // the layout record points there (what a bug, rather than the disk, could leave).
  std::vector<VectorId> down(ids.rbegin(), ids.rend());
  const std::string chunk = EncodeTenantExtent(down, kRowBytes, [&](size_t i) {
    static std::string row;
    row = RowOf(down[i], 0);
    return reinterpret_cast<const uint8_t*>(row.data());
  });
  uint64_t file = 0;
  const BlobLocation at = x.ChunkAt(0, &file);
  {
    std::fstream f(TenantExtents::FilePath(x.dir_, file),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at.offset));
    f.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  }
  WriteBatch b;
  b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, kTenant),
        TenantExtents::EncodeLayout(
            file, {0}, {100},
            {BlobLocation{at.offset, at.size, crc32c::Value(chunk.data(), chunk.size())}}));
  ASSERT_TRUE(x.store_->Write(&b, true).ok());
  EXPECT_TRUE(x.Load(ids).empty());
  uint64_t bytes = 0, pages = 0;
  int visited = 0;
  auto found = x.extents_.Read(
      kTenant, [&](VectorId, const uint8_t*) { ++visited; }, &bytes, &pages);
  EXPECT_TRUE(absl::IsDataLoss(found.status())) << found.status();
  EXPECT_LE(visited, 1);
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
  uint64_t file = 0;
  {
    Extents x(dir.path());
    x.Set(ids);
    x.ChunkAt(0, &file);
    WriteBatch b;
    // Tenant 4: its points in the chunks of a store-held format (no layout record).
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 4, 0), chunk_of(Range(0, 100)));
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 4, 100), chunk_of(Range(100, 200)));
    // Tenant 5: the one-record format before chunks.
    std::string old = "x";
    AppendU32(&old, kColl);
    AppendU32(&old, 5);
    b.Put(Cf::kTenants, old, chunk_of({0}));
    // Tenant 7: a chunk and layout of the format before the file ([u32 bound][u32 rows]).
    b.Put(Cf::kTenants, TenantExtents::Key(kColl, 7, 0), chunk_of(Range(0, 100)));
    std::string before_file;
    AppendU32(&before_file, 0);
    AppendU32(&before_file, 100);
    b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, 7), before_file);
    // Tenant 8: a layout pointing past the file's end.
    b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, 8),
          TenantExtents::EncodeLayout(file, {0}, {100}, {BlobLocation{1 << 30, 100 * 256, 0}}));
    // Tenant 11: a layout whose offset, damaged, would wrap past the file's end.
    b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, 11),
          TenantExtents::EncodeLayout(file, {0}, {100},
                                      {BlobLocation{UINT64_MAX - 100, 100 * 256, 0}}));
    // Tenant 10: a layout pointing into another file than the others' (within its size).
    b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, 10),
          TenantExtents::EncodeLayout(file + 3, {0}, {100}, {BlobLocation{0, 100 * 256, 0}}));
    // Tenant 9, which no longer exists.
    b.Put(Cf::kTenants, TenantExtents::LayoutKey(kColl, 9),
          TenantExtents::EncodeLayout(file, {0}, {1}, {BlobLocation{0, 256, 0}}));
    ASSERT_TRUE(x.store_->Write(&b, false).ok());
    // A file no layout points to (a compaction's, left by a crash).
    std::ofstream(TenantExtents::FilePath(x.dir_, file + 5)) << "garbage";
    ASSERT_EQ(x.Files().size(), 2u);
  }
  Extents x(dir.path());
  const uint64_t reads = x.store_->tenant_reads_;
  WriteBatch batch;
  std::vector<TenantExtents::Tenant> rebuild;
  const std::vector<TenantExtents::Tenant> tenants = {kTenant, 4, 5, 6, 7, 8, 10, 11};
  const auto points = [&](TenantExtents::Tenant t) -> uint64_t {
    return t == kTenant ? ids.size() : t == 5 ? 1 : t == 6 ? 2 : 100;
  };
  ASSERT_TRUE(x.extents_.Load(*x.store_, tenants, points, &batch, &rebuild).ok());
  EXPECT_EQ(x.store_->tenant_reads_, reads);
  EXPECT_EQ(x.store_->chunks_scanned_, 4u) << "only the store-held chunks removed are read";
  EXPECT_EQ(x.extents_.chunks(kTenant), 3u);
  EXPECT_EQ(x.extents_.live_bytes(), ids.size() * 256);
  // All but kTenant's want an extent and are rebuilt; tenant 4's two chunks, tenant 5's record,
  // tenant 7's chunk and layout, and the layouts of tenants 8, 9, 10 and 11 go.
  EXPECT_EQ(rebuild, (std::vector<TenantExtents::Tenant>{4, 5, 6, 7, 8, 10, 11}));
  EXPECT_EQ(batch.count(), 9u);
  ASSERT_TRUE(x.store_->Write(&batch, false).ok());
  EXPECT_EQ(x.Keys('x').size(), 0u);
  EXPECT_EQ(x.Keys('X').size(), 1u);
  EXPECT_EQ(x.Files().size(), 1u) << "the file no layout points to is gone";
  x.points_ = ids;
  EXPECT_TRUE(x.ReadsExactly(ids));

  // The same layout checked against another point count: dropped, to be rebuilt.
  ids.pop_back();
  EXPECT_EQ(x.Load(ids), (std::vector<TenantExtents::Tenant>{kTenant}));
  EXPECT_EQ(x.extents_.chunks(kTenant), 0u);
  EXPECT_EQ(x.Keys('X').size(), 0u);
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
  EXPECT_EQ(x.Set(ids), 3u);
  EXPECT_EQ(x.vector_reads_, 1);
  EXPECT_TRUE(x.ReadsExactly(ids));
}

// Rewritten chunks leave garbage in the file; a compaction copies the live ones into the next
// file, each extent's chunks in order, and an open reads them there.
TEST(TenantExtents, ACompactionKeepsEveryRowAndFreesTheGarbage) {
  TempDir dir;
  std::vector<VectorId> ids = Range(0, 1000);
  constexpr uint64_t kSlack = 64 << 10;
  {
    Extents x(dir.path(), kTenantExtentBytes, Env::Default(), kSlack);
    x.Set(ids);
    const uint64_t live = ids.size() * 256;
    for (int round = 0; round < 40; ++round) {
      EXPECT_EQ(x.extents_.WantsCompaction(), x.extents_.file_bytes() > 2 * live + kSlack) << round;
      std::vector<VectorId> written;
      for (VectorId id = static_cast<VectorId>(round); id < 1000; id += 97) written.push_back(id);
      x.Set(ids, written);  // a point in most chunks: most are rewritten
    }
    ASSERT_TRUE(x.ReadsExactly(ids));
    EXPECT_EQ(x.extents_.live_bytes(), live);
    EXPECT_GT(x.extents_.file_bytes(), 20 * live);
    EXPECT_TRUE(x.extents_.WantsCompaction());
    const std::vector<std::string> before = x.Files();
    EXPECT_TRUE(x.Compact().empty());
    EXPECT_NE(x.Files(), before) << "the old file goes, the new one stays";
    EXPECT_EQ(x.Files().size(), 1u);
    EXPECT_FALSE(x.extents_.WantsCompaction());
    EXPECT_LT(x.extents_.file_bytes(), live + 8 * 4096);
    EXPECT_TRUE(x.ReadsExactly(ids));
    uint64_t bytes = 0, pages = 0;
    ASSERT_TRUE(x.extents_
                    .Read(
                        kTenant, [](VectorId, const uint8_t*) {}, &bytes, &pages)
                    .ok());
    EXPECT_EQ(bytes, live);
    EXPECT_LE(pages, (live + 4095) / 4096 + 8) << "its chunks back to back";
    // Later changes append to the new file.
    ids.push_back(1000);
    x.Set(ids, {1000, 5});
    EXPECT_TRUE(x.ReadsExactly(ids));
  }
  Extents x(dir.path());
  EXPECT_TRUE(x.Load(ids).empty());
  x.version_ = {};
  for (VectorId id = 0; id < 1000; ++id) {
    int v = 0;
    for (int round = 0; round < 40; ++round)
      v += id >= static_cast<VectorId>(round) && (id - static_cast<VectorId>(round)) % 97 == 0;
    if (v > 0) x.version_[id] = v;
  }
  x.version_[1000] = 1;
  x.version_[5] += 1;
  EXPECT_TRUE(x.ReadsExactly(ids));
}

// A crash between a plan's appends and its batch's commit: the layouts on disk point to the
// chunks before, which a power cut keeps (they were synced before their batch).
TEST(TenantExtents, APowerCutBeforeTheCommitKeepsTheExtentBefore) {
  TempDir dir;
  FaultInjectionEnv env;
  std::vector<VectorId> ids = Range(0, 300);
  {
    Extents x(dir.path(), kTenantExtentBytes, &env);
    x.Set(ids);
    // The next change appended (not synced, not committed), then the power goes.
    WriteBatch batch;
    std::vector<VectorId> more = Range(0, 400);
    auto change = x.extents_.Plan(
        kTenant, ids, more, [](VectorId) -> const uint8_t* { return nullptr; },
        [&](absl::Span<const VectorId> need, std::vector<std::string>* out) {
          out->clear();
          for (VectorId id : need) out->push_back(RowOf(id, 0));
          return absl::OkStatus();
        },
        &batch);
    ASSERT_TRUE(change.ok());
    EXPECT_GT(x.extents_.file_bytes(), 300u * 256 + 100 * 256);
  }
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  Extents x(dir.path(), kTenantExtentBytes, &env);
  EXPECT_TRUE(x.Load(ids).empty());
  EXPECT_TRUE(x.ReadsExactly(ids));
  // And the next change appends after what the file kept.
  ids.push_back(300);
  x.Set(ids, {300});
  EXPECT_TRUE(x.ReadsExactly(ids));
  EXPECT_TRUE(x.Load(ids).empty());
  EXPECT_TRUE(x.ReadsExactly(ids));
}

// A file with no extent left goes whole; the next chunk starts the next file.
TEST(TenantExtents, AFileWithNoExtentLeftIsDroppedWithoutACopy) {
  TempDir dir;
  Extents x(dir.path(), kTenantExtentBytes, Env::Default(), /*slack=*/0);
  x.Set(Range(0, 300));
  const std::vector<std::string> first = x.Files();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(x.extents_.DropFileIfEmpty().empty()) << "an extent lives there";
  x.Set({});
  EXPECT_TRUE(x.extents_.WantsCompaction());
  const std::string path = x.extents_.DropFileIfEmpty();
  EXPECT_EQ(path, TenantExtents::FilePath(x.dir_, 1));
  EXPECT_FALSE(x.extents_.WantsCompaction());
  EXPECT_EQ(x.extents_.file_bytes(), 0u);
  std::filesystem::remove(path);
  x.Set(Range(0, 10));
  EXPECT_TRUE(x.ReadsExactly(Range(0, 10)));
  EXPECT_EQ(x.Files(), (std::vector<std::string>{"tenant-extents-2"}));
}

// A compaction that fails part way leaves the extents where they were (its file gone) and is
// tried again only once the file has grown by the slack.
TEST(TenantExtents, AFailedCompactionLeavesTheExtentsAndWaits) {
  TempDir dir;
  FaultInjectionEnv env;
  constexpr uint64_t kSlack = 64 << 10;
  Extents x(dir.path(), kTenantExtentBytes, &env, kSlack);
  std::vector<VectorId> ids = Range(0, 500);
  x.Set(ids);
  for (int round = 0; !x.extents_.WantsCompaction(); ++round) {
    ASSERT_LT(round, 100);
    x.Set(ids, {static_cast<VectorId>(round % 500)});
  }
  const std::vector<std::string> before = x.Files();
  env.FailNth(FaultInjectionEnv::Op::kAppend, 2);  // the third chunk copied
  WriteBatch batch;
  auto c = x.extents_.PlanCompaction(&batch);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(x.Files(), before) << "the copy's file is removed";
  x.extents_.CompactionFailed();
  EXPECT_FALSE(x.extents_.WantsCompaction());
  EXPECT_TRUE(x.ReadsExactly(ids));
  // Grown by the slack: due again, and it goes through (into a file of a new number).
  while (!x.extents_.WantsCompaction()) x.Set(ids, {7});
  EXPECT_TRUE(x.Compact().empty());
  EXPECT_TRUE(x.ReadsExactly(ids));
  ASSERT_EQ(x.Files().size(), 1u);
  EXPECT_NE(x.Files(), before);
  EXPECT_TRUE(x.Load(ids).empty());
  EXPECT_TRUE(x.ReadsExactly(ids));
}

// An extent whose chunks a compaction cannot read is dropped from it (its layout deleted), the
// others moved.
TEST(TenantExtents, ACompactionDropsAnExtentItCannotRead) {
  TempDir dir;
  Extents x(dir.path(), kTenantExtentBytes, Env::Default(), /*slack=*/0);
  std::vector<VectorId> ids = Range(0, 300);
  x.Set(ids);
  x.Damage(x.ChunkAt(1).offset + 10, 1);
  EXPECT_EQ(x.Compact(), (std::vector<TenantExtents::Tenant>{kTenant}));
  EXPECT_EQ(x.extents_.chunks(kTenant), 0u);
  EXPECT_EQ(x.extents_.live_bytes(), 0u);
  EXPECT_TRUE(x.Keys('X').empty());
  x.vector_reads_ = 0;
  x.Set(ids, {5});  // made again whole, from the stored vectors
  EXPECT_EQ(x.vector_reads_, 1);
  EXPECT_TRUE(x.ReadsExactly(ids));
}

// A file the layouts point to that cannot be opened (a directory in its place) is lost derived
// data: the open goes on, the extents are rebuilt in a new file.
TEST(TenantExtents, AFileThatCannotBeOpenedIsRebuiltAround) {
  TempDir dir;
  std::vector<VectorId> ids = Range(0, 300);
  uint64_t file = 0;
  {
    Extents x(dir.path());
    x.Set(ids);
    x.ChunkAt(0, &file);
  }
  const std::string path = TenantExtents::FilePath(dir.path() + "/collection", file);
  std::filesystem::remove(path);
  std::filesystem::create_directory(path);
  Extents x(dir.path());
  EXPECT_EQ(x.Load(ids), (std::vector<TenantExtents::Tenant>{kTenant}));
  x.Set(ids);
  EXPECT_TRUE(x.ReadsExactly(ids));
  EXPECT_TRUE(x.Load(ids).empty());
  EXPECT_TRUE(x.ReadsExactly(ids));
}

}  // namespace
}  // namespace strata
