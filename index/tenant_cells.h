// The collection's coarse cells: about sqrt(n) centroids, at most kCells (balanced k-means over a
// sample of its vectors) by which a tenant too large for a flat extent has its copied rows grouped
// on disk (index/cell_extent.h), so that its search reads the rows of the cells nearest the query
// and not all of them - an IVF list per (tenant, cell), the cells shared by every tenant, as
// Curator's tree shares its nodes. A point's cell is a function of its vector alone: every
// tenant that sees it files it under the same cell.
//
// The cells are made by the first index build (or offline load) of a collection of at least
// kMinPointsPerCell points for each of kCells cells (4,096), from a sample of its vectors
// (kSamplePerCell a cell), and made again by a later build once the collection has grown into twice
// as many (CellsFor), the cell extents with them. In between they only group rows, so a drift of
// the data makes cells less even (more rows read per query), never an answer wrong. Format
// (storage/FORMAT.md): one record 'C' coll in the tenants family, [u32 1][u32 cells][u32 row
// bytes][u32 probe cells] then each centroid in the posting form.
//
// Immutable once made: safe to share between threads.
#ifndef STRATA_INDEX_TENANT_CELLS_H_
#define STRATA_INDEX_TENANT_CELLS_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "index/kernels/distance.h"
#include "index/types.h"

namespace strata {

class TenantCells final {
 public:
  static constexpr uint32_t kCells = 256;
  // Points a cell stands for before cells are made (16 a cell): fewer, and the cells would be a
  // poor partition of what the collection grows into.
  static constexpr uint64_t kMinPointsPerCell = 16;
  // Points the cells are trained on (at most, a cell).
  static constexpr uint64_t kSamplePerCell = 32;
  // Cells for a collection of `n` points: about sqrt(n), as IVF indexes have, from 16 up to
  // `most` (a collection of 9,500 784-d vectors with 256 cells held 0.19 MiB of centroids beside
  // its index's 1.0 MiB).
  [[nodiscard]] static uint32_t CellsFor(uint64_t n, uint32_t most) {
    const auto root = static_cast<uint64_t>(std::sqrt(static_cast<double>(n)));
    return static_cast<uint32_t>(std::min<uint64_t>(most, std::max<uint64_t>(16, root)));
  }

  // `cells` cells of `n` rows in the posting form (`dim` elements of `type`, unit length under
  // cosine), scored by `dist` (the collection's distance on that form). n >= cells.
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<const TenantCells>> Make(
      const uint8_t* rows, size_t n, ElementType type, uint32_t dim, Metric metric,
      kernels::DistanceFn dist, uint32_t cells = kCells);
  // The record's cells; InvalidArgument / DataLoss for a record of another shape.
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<const TenantCells>> Decode(
      absl::string_view record, ElementType type, uint32_t dim, kernels::DistanceFn dist);
  [[nodiscard]] std::string Encode() const;
  [[nodiscard]] static std::string Key(uint32_t coll);

  [[nodiscard]] uint32_t size() const { return cells_; }
  // Cells a tenant's search reads at least: the fewest whose rows hold kTuneRecall of the nearest
  // 10 of kTuneQueries of the sample's rows among the others (at least kMinProbe), found when
  // the cells were made. A sample of 8,192 rows stands for a tenant of that many points.
  [[nodiscard]] uint32_t probe_cells() const { return probe_cells_; }
  static constexpr uint32_t kMinProbe = 8;
  static constexpr size_t kTuneQueries = 200;
  static constexpr double kTuneRecall = 0.97;
  // The cell of a vector in the posting form: the nearest centroid (the lowest index on a tie).
  [[nodiscard]] uint32_t CellOf(const uint8_t* pf) const;
  // Every cell, nearest `q` (posting form) first.
  void Rank(const uint8_t* q, std::vector<uint32_t>* order) const;

  [[nodiscard]] uint64_t MemoryBytes() const { return sizeof(*this) + centroids_.capacity(); }

 private:
  TenantCells(uint32_t cells, size_t row_bytes, uint32_t dim, kernels::DistanceFn dist,
              std::vector<uint8_t> centroids, uint32_t probe_cells)
      : cells_(cells),
        row_bytes_(row_bytes),
        dim_(dim),
        dist_(dist),
        centroids_(std::move(centroids)),
        probe_cells_(probe_cells) {}
  // probe_cells() for these cells, from the `n` rows they were made from.
  uint32_t TuneProbe(const uint8_t* rows, size_t n) const;

  const uint32_t cells_;
  const size_t row_bytes_;
  const uint32_t dim_;
  const kernels::DistanceFn dist_;
  const std::vector<uint8_t> centroids_;  // cells_ rows of row_bytes_
  const uint32_t probe_cells_;
};

}  // namespace strata

#endif  // STRATA_INDEX_TENANT_CELLS_H_
