// The collection's cells (index/tenant_cells.h) and the cell extents filed by them
// (index/cell_extent.h), over a real metadata store.
#include "index/cell_extent.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "index/kernels/distance.h"
#include "index/tenant_cells.h"
#include "storage/metadata_store.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

constexpr uint32_t kColl = 5;
constexpr uint32_t kTenant = 2;
constexpr uint32_t kDim = 8;
constexpr size_t kRowBytes = kDim;  // uint8

kernels::DistanceFn L2U8() {
  return kernels::GetDistance(kernels::Best(), ElementType::kUint8, Metric::kL2);
}

// n uint8 rows around `clusters` centres far apart.
std::vector<uint8_t> Clustered(size_t n, uint32_t clusters, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> rows(n * kDim);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t c = static_cast<uint32_t>(i % clusters);
    for (uint32_t d = 0; d < kDim; ++d) {
      const int centre = ((c >> d) & 1) != 0 ? 200 : 40;
      rows[i * kDim + d] = static_cast<uint8_t>(centre + static_cast<int>(rng() % 21) - 10);
    }
  }
  return rows;
}

TEST(TenantCells, FileEachPointUnderItsNearestCellAndRoundTrip) {
  const std::vector<uint8_t> rows = Clustered(4096, 16, 1);
  auto cells = TenantCells::Make(rows.data(), 4096, ElementType::kUint8, kDim, Metric::kL2, L2U8(),
                                 /*cells=*/16);
  ASSERT_TRUE(cells.ok()) << cells.status();
  ASSERT_EQ((*cells)->size(), 16u);
  // Sixteen clusters far apart, sixteen cells: each cluster under one cell, each cell one cluster.
  std::map<uint32_t, std::set<uint32_t>> cells_of_cluster;
  for (size_t i = 0; i < 4096; ++i) {
    cells_of_cluster[i % 16].insert((*cells)->CellOf(rows.data() + i * kDim));
  }
  std::set<uint32_t> used;
  for (const auto& [cluster, c] : cells_of_cluster) {
    EXPECT_EQ(c.size(), 1u) << "cluster " << cluster;
    used.insert(*c.begin());
  }
  EXPECT_EQ(used.size(), 16u);
  // Rank: every cell once, the vector's own cell first, by distance.
  std::vector<uint32_t> order;
  (*cells)->Rank(rows.data() + 5 * kDim, &order);
  ASSERT_EQ(order.size(), 16u);
  EXPECT_EQ(order[0], (*cells)->CellOf(rows.data() + 5 * kDim));
  EXPECT_EQ(std::set<uint32_t>(order.begin(), order.end()).size(), 16u);
  // The cells a search reads: tuned on the sample, within [kMinProbe, cells]; sixteen clusters
  // far apart need their own cell only, so the floor.
  EXPECT_EQ((*cells)->probe_cells(), TenantCells::kMinProbe);
  // The record round-trips; other shapes are refused.
  const std::string record = (*cells)->Encode();
  auto back = TenantCells::Decode(record, ElementType::kUint8, kDim, L2U8());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->Encode(), record);
  EXPECT_EQ((*back)->probe_cells(), (*cells)->probe_cells());
  for (size_t i = 0; i < 4096; i += 97) {
    EXPECT_EQ((*back)->CellOf(rows.data() + i * kDim), (*cells)->CellOf(rows.data() + i * kDim));
  }
  EXPECT_TRUE(absl::IsDataLoss(
      TenantCells::Decode(record.substr(0, record.size() - 1), ElementType::kUint8, kDim, L2U8())
          .status()));
  EXPECT_TRUE(absl::IsDataLoss(
      TenantCells::Decode(record, ElementType::kUint8, kDim + 1, L2U8()).status()));
  EXPECT_TRUE(
      absl::IsDataLoss(TenantCells::Decode("", ElementType::kUint8, kDim, L2U8()).status()));
  EXPECT_FALSE(
      TenantCells::Make(rows.data(), 15, ElementType::kUint8, kDim, Metric::kL2, L2U8(), 16).ok());
}

// A tenant's cell extent over a real store, against a model of its rows.
class Cells {
 public:
  explicit Cells(const std::string& dir, size_t fold_bytes = CellExtents::kFoldBytesPerWrite)
      : extents_(kColl, kRowBytes, 0, 1 << 20, fold_bytes) {
    auto store = MetadataStore::Open(dir);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Plans and writes a change; false when Plan refused it (nothing written).
  bool Change(const std::vector<CellExtents::Removal>& out,
              const std::vector<CellExtents::Row>& in) {
    WriteBatch batch;
    auto change = extents_.Plan(
        *store_, kTenant, out, in,
        [&](VectorId id) {
          for (const auto& r : out) {
            if (r.id == id)
              return std::any_of(in.begin(), in.end(), [&](const auto& a) { return a.id == id; });
          }
          return model_.contains(id) ||
                 std::any_of(in.begin(), in.end(), [&](const auto& a) { return a.id == id; });
        },
        &batch);
    if (!change.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(change.status())) << change.status();
      EXPECT_EQ(batch.count(), 0u);
      return false;
    }
    EXPECT_TRUE(store_->Write(&batch, false).ok());
    extents_.Apply(*change);
    folded_ += change->folded;
    for (const auto& r : out) model_.erase(r.id);
    for (const auto& r : in)
      model_[r.id] = {r.cell, std::string(reinterpret_cast<const char*>(r.bytes), kRowBytes)};
    return true;
  }
  void Whole(const std::vector<CellExtents::Row>& rows) {
    WriteBatch batch;
    absl::StatusOr<CellExtents::Change> change = extents_.PlanWhole(*store_, kTenant, rows, &batch);
    ASSERT_TRUE(change.ok()) << change.status();
    EXPECT_TRUE(store_->Write(&batch, false).ok());
    extents_.Apply(*change);
    model_.clear();
    for (const auto& r : rows)
      model_[r.id] = {r.cell, std::string(reinterpret_cast<const char*>(r.bytes), kRowBytes)};
  }
  // Reads with `ranked`, and checks the rows are the model's in the cells it says it read.
  std::vector<VectorId> Read(const std::vector<uint32_t>& ranked, uint32_t probe, uint64_t min_rows,
                             uint32_t* cells_read) {
    std::vector<VectorId> got;
    uint64_t bytes = 0, pages = 0;
    auto found = extents_.Read(
        *store_, kTenant, nullptr, ranked, probe, min_rows,
        [&](VectorId id, const uint8_t* row) {
          got.push_back(id);
          auto m = model_.find(id);
          EXPECT_TRUE(m != model_.end()) << id;
          if (m != model_.end()) {
            EXPECT_EQ(std::string(reinterpret_cast<const char*>(row), kRowBytes), m->second.second);
          }
        },
        &bytes, &pages, cells_read);
    EXPECT_TRUE(found.ok() && *found);
    EXPECT_GE(bytes, got.size() * (4 + kRowBytes));  // (a block's rows changed since count)
    std::set<uint32_t> read(ranked.begin(), ranked.begin() + *cells_read);
    size_t want = 0;
    for (const auto& [id, m] : model_) want += read.count(m.first);
    EXPECT_EQ(got.size(), want);
    return got;
  }

  CellExtents& extents() { return extents_; }
  MetadataStore* store() { return store_.get(); }
  [[nodiscard]] uint64_t folded() const { return folded_; }
  // Keys under the tenant's cell extent: change keys and blocks.
  std::pair<size_t, size_t> KeysAndBlocks() const {
    std::string prefix = "y";
    AppendU32(&prefix, kColl);
    AppendU32(&prefix, kTenant);
    size_t changes = 0, blocks = 0;
    EXPECT_TRUE(store_
                    ->Scan(Cf::kTenants, prefix,
                           [&](absl::string_view key, absl::string_view) {
                             (key.size() == 17 ? changes : blocks) += 1;
                             return absl::OkStatus();
                           })
                    .ok());
    return {changes, blocks};
  }
  const std::map<VectorId, std::pair<uint32_t, std::string>>& model() const { return model_; }

 private:
  CellExtents extents_;
  std::unique_ptr<MetadataStore> store_;
  std::map<VectorId, std::pair<uint32_t, std::string>> model_;  // id -> cell, row
  uint64_t folded_ = 0;
};

std::string Row(VectorId id, int version) {
  std::string r(kRowBytes, '\0');
  for (size_t d = 0; d < kRowBytes; ++d)
    r[d] = static_cast<char>((id * 13 + d * 5 + version * 71) & 0xFF);
  return r;
}

TEST(CellExtents, RandomChangesReadBackExactlyAndReopen) {
  TempDir tmp;
  std::mt19937_64 rng(3);
  std::vector<std::string> keep;  // rows' bytes, alive while their batches are written
  keep.reserve(100000);
  const auto row = [&](VectorId id, uint32_t cell) {
    keep.push_back(Row(id, static_cast<int>(keep.size())));
    return CellExtents::Row{id, cell, reinterpret_cast<const uint8_t*>(keep.back().data())};
  };
  std::vector<uint32_t> all(8);
  for (uint32_t c = 0; c < 8; ++c) all[c] = c;
  {
    Cells cells(tmp.path());
    std::vector<CellExtents::Row> first;
    for (VectorId id = 0; id < 300; id += 2) first.push_back(row(id, id % 8));
    cells.Whole(first);
    for (int step = 0; step < 200; ++step) {
      std::vector<CellExtents::Removal> out;
      std::vector<CellExtents::Row> in;
      std::set<VectorId> touched;
      for (int i = 0; i < 5; ++i) {
        const VectorId id = static_cast<VectorId>(rng() % 400);
        if (!touched.insert(id).second) continue;
        auto m = cells.model().find(id);
        if (m != cells.model().end()) {
          out.push_back({id, m->second.first});
          if (rng() % 2 == 0) in.push_back(row(id, static_cast<uint32_t>(rng() % 8)));  // moved
        } else {
          in.push_back(row(id, static_cast<uint32_t>(rng() % 8)));
        }
      }
      ASSERT_TRUE(cells.Change(out, in));
      uint32_t read = 0;
      std::vector<VectorId> got = cells.Read(all, 8, 0, &read);
      EXPECT_EQ(read, 8u);
      EXPECT_EQ(got.size(), cells.model().size());
      EXPECT_EQ(cells.extents().Rows(kTenant), cells.model().size());
    }
    // Cells were folded on the way, and each holds at most its fold bound of change keys.
    EXPECT_GT(cells.folded(), 10u);
    const auto [change_keys, blocks] = cells.KeysAndBlocks();
    EXPECT_LE(change_keys, 8 * (CellExtents::FoldAbove(cells.model().size() / 8) + 5));
    EXPECT_GT(blocks, 0u);
    // A removal from a cell that holds none is refused, nothing written.
    EXPECT_FALSE(cells.Change({{1000, 100}}, {}));
    // Reopened: the counts come back, and a tenant whose count disagrees is made again.
    std::vector<VectorId> ids;
    for (const auto& [id, m] : cells.model()) ids.push_back(id);
    const uint64_t n = ids.size();
    CellExtents again(kColl, kRowBytes, 0, 1 << 20);
    WriteBatch batch;
    std::vector<uint32_t> rebuild;
    ASSERT_TRUE(again
                    .Load(
                        *cells.store(), {kTenant}, [&](uint32_t) { return n; }, 8, &batch, &rebuild)
                    .ok());
    EXPECT_TRUE(rebuild.empty());
    EXPECT_EQ(batch.count(), 0u);
    EXPECT_EQ(again.Rows(kTenant), n);
    CellExtents wrong(kColl, kRowBytes, 0, 1 << 20);
    ASSERT_TRUE(
        wrong
            .Load(
                *cells.store(), {kTenant}, [&](uint32_t) { return n + 1; }, 8, &batch, &rebuild)
            .ok());
    EXPECT_EQ(rebuild, std::vector<uint32_t>{kTenant});
    EXPECT_FALSE(wrong.Has(kTenant));
    EXPECT_GT(batch.count(), 0u);  // its rows and counts deleted
    // Counts in a cell the collection does not have (4 cells here): refused the same way.
    CellExtents fewer(kColl, kRowBytes, 0, 1 << 20);
    std::vector<uint32_t> remake;
    WriteBatch deletes;
    ASSERT_TRUE(
        fewer
            .Load(
                *cells.store(), {kTenant}, [&](uint32_t) { return n; }, 4, &deletes, &remake)
            .ok());
    EXPECT_FALSE(fewer.Has(kTenant));
    EXPECT_EQ(remake, std::vector<uint32_t>{kTenant});
  }
}

// Cell extents as first written (every row a key, counts [u32 cell][u32 rows]) load, read back,
// and are folded into blocks by the next change.
TEST(CellExtents, TheFirstFormatLoadsAndIsFolded) {
  TempDir tmp;
  Cells cells(tmp.path());
  std::vector<std::string> keep;
  WriteBatch old;
  std::string counts;
  for (uint32_t cell = 0; cell < 2; ++cell) {
    for (VectorId id = 0; id < 100; ++id) {
      old.Put(Cf::kTenants, CellExtents::Key(kColl, kTenant, cell, cell * 1000 + id),
              Row(cell * 1000 + id, 0));
    }
    AppendU32(&counts, cell);
    AppendU32(&counts, 100);
  }
  old.Put(Cf::kTenants, CellExtents::LayoutKey(kColl, kTenant), counts);
  ASSERT_TRUE(cells.store()->Write(&old, false).ok());
  WriteBatch deletes;
  std::vector<uint32_t> rebuild;
  ASSERT_TRUE(
      cells.extents()
          .Load(
              *cells.store(), {kTenant}, [](uint32_t) { return 200; }, 4, &deletes, &rebuild)
          .ok());
  EXPECT_TRUE(rebuild.empty());
  EXPECT_EQ(deletes.count(), 0u);
  ASSERT_EQ(cells.extents().Rows(kTenant), 200u);
  uint64_t bytes = 0, pages = 0;
  uint32_t read = 0;
  size_t rows = 0;
  const std::vector<uint32_t> ranked = {0, 1, 2, 3};
  auto found = cells.extents().Read(
      *cells.store(), kTenant, nullptr, ranked, 4, 0,
      [&](VectorId id, const uint8_t* row) {
        ++rows;
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(row), kRowBytes), Row(id, 0));
      },
      &bytes, &pages, &read);
  ASSERT_TRUE(found.ok() && *found);
  EXPECT_EQ(rows, 200u);
  // A change of one row in cell 1: both cells' 100 change keys are past the bound, so both are
  // folded into blocks (a write folds whichever of the tenant's cells are due).
  WriteBatch batch;
  const std::string fresh = Row(1005, 1);
  auto change = cells.extents().Plan(
      *cells.store(), kTenant, {{1005, 1}},
      {{1005, 1, reinterpret_cast<const uint8_t*>(fresh.data())}}, [](VectorId) { return true; },
      &batch);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->folded, 2u);
  ASSERT_TRUE(cells.store()->Write(&batch, false).ok());
  cells.extents().Apply(*change);
  EXPECT_EQ(cells.KeysAndBlocks(), std::make_pair(size_t{0}, size_t{2}));
  rows = 0;
  found = cells.extents().Read(
      *cells.store(), kTenant, nullptr, ranked, 4, 0,
      [&](VectorId id, const uint8_t* row) {
        ++rows;
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(row), kRowBytes),
                  Row(id, id == 1005 ? 1 : 0));
      },
      &bytes, &pages, &read);
  ASSERT_TRUE(found.ok() && *found);
  EXPECT_EQ(rows, 200u);
}

// Folds: at most fold_bytes of blocks a write (the rest by later ones), every row checked against
// the tenant's points (a row it does not see is damage: DataLoss, nothing planned), and a cell
// left empty folded away, so that the counts read back at open.
TEST(CellExtents, FoldsAreCappedCheckTheirRowsAndEmptyCellsGo) {
  TempDir tmp;
  // Blocks of 8 cells of 60 rows a write.
  Cells cells(tmp.path(), 8 * 60 * (4 + kRowBytes));
  std::vector<std::string> keep;
  keep.reserve(4000);
  const auto row = [&](VectorId id, uint32_t cell) {
    keep.push_back(Row(id, 0));
    return CellExtents::Row{id, cell, reinterpret_cast<const uint8_t*>(keep.back().data())};
  };
  std::vector<CellExtents::Row> first;
  for (uint32_t cell = 0; cell < 12; ++cell) {
    for (VectorId i = 0; i < 10; ++i) first.push_back(row(cell * 1000 + i, cell));
  }
  cells.Whole(first);
  // 50 rows more in each of the 12 cells: all past FoldAbove, 8 folded (the budget's).
  std::vector<CellExtents::Row> more;
  for (uint32_t cell = 0; cell < 12; ++cell) {
    for (VectorId i = 10; i < 60; ++i) more.push_back(row(cell * 1000 + i, cell));
  }
  ASSERT_GT(50u, CellExtents::FoldAbove(10));
  const uint64_t before = cells.folded();
  ASSERT_TRUE(cells.Change({}, more));
  EXPECT_EQ(cells.folded() - before, 8u);
  ASSERT_TRUE(cells.Change({}, {row(500, 0)}));
  EXPECT_EQ(cells.folded() - before, 12u) << "the other 4 by the next write";
  // A fold that meets a row of a point the tenant does not see refuses the change.
  std::vector<CellExtents::Row> due;
  for (VectorId i = 100; i < 160; ++i) due.push_back(row(11 * 1000 + i, 11));
  WriteBatch refused;
  auto change = cells.extents().Plan(
      *cells.store(), kTenant, {}, due, [](VectorId id) { return id != 11 * 1000 + 3; }, &refused);
  ASSERT_FALSE(change.ok());
  EXPECT_TRUE(absl::IsDataLoss(change.status())) << change.status();
  EXPECT_EQ(refused.count(), 0u);
  // Cell 5 emptied: folded away, and the counts load back as they are.
  std::vector<CellExtents::Removal> out;
  for (const auto& [id, m] : cells.model()) {
    if (m.first == 5) out.push_back({id, 5});
  }
  ASSERT_TRUE(cells.Change(out, {}));
  const uint64_t n = cells.model().size();
  CellExtents again(kColl, kRowBytes, 0, 1 << 20);
  WriteBatch deletes;
  std::vector<uint32_t> rebuild;
  ASSERT_TRUE(
      again
          .Load(
              *cells.store(), {kTenant}, [&](uint32_t) { return n; }, 12, &deletes, &rebuild)
          .ok());
  EXPECT_TRUE(rebuild.empty());
  EXPECT_EQ(deletes.count(), 0u);
  EXPECT_EQ(again.Rows(kTenant), n);
}

// A tenant gets a cell extent past the flat extent's rows and up to the cell extent's, and keeps
// it within a quarter beyond either bound.
TEST(CellExtents, AQuarterOfSlackAtBothBounds) {
  const CellExtents e(kColl, kRowBytes, /*min_rows=*/1000, /*extent_bytes=*/12 * 8000);
  ASSERT_EQ(e.max_rows(), 8000u);
  EXPECT_FALSE(e.Wants(1000));
  EXPECT_TRUE(e.Wants(1001));
  EXPECT_TRUE(e.Wants(8000));
  EXPECT_FALSE(e.Wants(8001));
  EXPECT_FALSE(e.Keeps(750));
  EXPECT_TRUE(e.Keeps(751));
  EXPECT_TRUE(e.Keeps(10000));
  EXPECT_FALSE(e.Keeps(10001));
}

TEST(CellExtents, ReadsTheNearestCellsUntilBothFloors) {
  TempDir tmp;
  Cells cells(tmp.path());
  std::vector<std::string> keep;
  std::vector<CellExtents::Row> rows;
  // Cell c holds 10 * (c + 1) rows; cell 3 none.
  VectorId id = 0;
  for (uint32_t c = 0; c < 6; ++c) {
    if (c == 3) continue;
    for (uint32_t i = 0; i < 10 * (c + 1); ++i) keep.push_back(Row(id++, 0));
  }
  id = 0;
  size_t k = 0;
  for (uint32_t c = 0; c < 6; ++c) {
    if (c == 3) continue;
    for (uint32_t i = 0; i < 10 * (c + 1); ++i) {
      rows.push_back({id++, c, reinterpret_cast<const uint8_t*>(keep[k++].data())});
    }
  }
  cells.Whole(rows);
  const std::vector<uint32_t> ranked = {5, 3, 0, 1, 2, 4};
  uint32_t read = 0;
  // Two cells at least: 5 and 3 (none there): 60 rows.
  EXPECT_EQ(cells.Read(ranked, 2, 0, &read).size(), 60u);
  EXPECT_EQ(read, 2u);
  // And 75 rows: on to 0 and 1.
  EXPECT_EQ(cells.Read(ranked, 2, 75, &read).size(), 90u);
  EXPECT_EQ(read, 4u);
  // Past every row: every cell.
  EXPECT_EQ(cells.Read(ranked, 1, 100000, &read).size(), rows.size());
  EXPECT_EQ(read, 6u);
  // A row the counts do not know: the read is refused.
  WriteBatch extra;
  extra.Put(Cf::kTenants, CellExtents::Key(kColl, kTenant, 5, 999), std::string(kRowBytes, 'a'));
  ASSERT_TRUE(cells.store()->Write(&extra, false).ok());
  uint64_t bytes = 0, pages = 0;
  auto found = cells.extents().Read(
      *cells.store(), kTenant, nullptr, ranked, 1, 0, [](VectorId, const uint8_t*) {}, &bytes,
      &pages, &read);
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(*found);
}

}  // namespace
}  // namespace strata
