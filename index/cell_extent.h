// The copied rows of a tenant too large for a flat extent (index/tenant_extent.h), filed by the
// collection's cells (index/tenant_cells.h): its cell extent. A search ranks the cells by their
// distance to the query and reads the tenant's rows in the nearest ones only - at least the cells'
// probe_cells() (tuned when the cells were made: 16-20 of 256 on SIFT-like data) and
// kProbeRowsPerK rows a neighbour asked - each cell's rows one range of
// keys: per-tenant IVF lists over shared cells (Curator's per-node shortlists, packed on disk).
// At 1M SIFT-like, a tenant of 8,000-18,000 points reads ~170 KiB where the shared postings made
// it read 3 MiB, mostly other tenants' entries (bench/RESULTS.md). Approximate, as an IVF is: a
// neighbour in a cell not read is missed.
//
// A tenant has one while it sees more than the flat extent's rows and at most max_rows()
// (cell_extent_bytes of rows: 32 MiB by default, 254,200 SIFT-like points, 10,900 of 768-d
// float32); larger tenants search the shared postings with the access check, where most of what
// is read is theirs anyway. Like the flat extent it copies the tenant's vectors (on disk; memory
// holds each cell's row count).
//
// Storage, per (tenant, cell): a block, 'y' coll tenant cell 0xFF*5 -> [u32 id][stored vector]
// per row, ascending ids, read as one value; and changes since the block was written, one key
// each, 'y' coll tenant cell id -> the vector (the point filed, or filed anew) or "" (the block's
// row of that id no longer counts). A change (grant, revoke, new vector) writes only its rows'
// keys: a grant of 1,000 ids writes 1,000 keys, where rewriting blocks would write about one block
// per id. A cell whose change keys outgrow FoldAbove(its rows) is folded into its block by a later
// change (at most fold_bytes of blocks a write, the fullest cells first): a search reads a block at
// ~0.02 us a row where iterating keys costs ~0.25 us a row (bench/RESULTS.md). The per-cell row
// counts, with each cell's change keys (an upper bound: a removal's key may replace an addition's),
// are one record per tenant, 'Y' coll tenant (storage/FORMAT.md), read at open and checked against
// the tenant's point count.
//
// Derived data, kept exact by the collection in the same write batch as every change of the
// tenant's points or their vectors. A search checks that the counts add up to its points, that
// each cell read holds its count, and that every row it returns is one of the tenant's points,
// once (CollectionImpl::SearchCells; not every row read: a sparse set's plain binary search per
// row cost more than the distances, as measured then, and a row not returned shows nothing of its
// point), and a fold checks
// every row of its cell; a cell extent found wrong is marked broken, searched around, and made
// again whole by the tenant's next change.
//
// Thread safety: as TenantExtents (the collection's lock serialises writers against readers: Read,
// Plan and MarkBroken under it shared, Apply and Load exclusive; MarkBroken has its own mutex).
#ifndef STRATA_INDEX_CELL_EXTENT_H_
#define STRATA_INDEX_CELL_EXTENT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "index/types.h"
#include "storage/metadata_store.h"

namespace strata {

inline constexpr size_t kCellExtentBytes = size_t{32} << 20;

class CellExtents final {
 public:
  using Tenant = uint32_t;

  // What a search reads at least, beside the cells' probe_cells() nearest (of the collection's,
  // whether the tenant has rows there or not): cells until kProbeRowsPerK * k of its rows.
  static constexpr uint32_t kProbeRowsPerK = 128;
  // Block bytes one write folds at most (at least one cell, the fullest first). Under churn (90
  // calls granting or revoking 4,000 ids of a 48K-point tenant) 8 cells a write fell behind:
  // searches read hundreds of change keys a cell.
  static constexpr size_t kFoldBytesPerWrite = size_t{2} << 20;
  // A cell of `rows` rows is folded once it has more change keys than this.
  [[nodiscard]] static constexpr uint64_t FoldAbove(uint64_t rows) { return 32 + rows / 8; }

  // Per cell: its rows, and the change keys beside its block.
  struct CellCount {
    uint32_t rows = 0;
    uint32_t changes = 0;
  };
  using Counts = absl::flat_hash_map<uint32_t, CellCount>;
  // A tenant's cell extent after a batch (counts empty: it has none).
  struct Change {
    Tenant tenant = 0;
    Counts counts;
    bool whole = false;   // every row written (or none left): a broken mark is cleared
    uint32_t folded = 0;  // cells folded into their blocks
  };
  // A row to file: its id, cell and stored bytes.
  struct Row {
    VectorId id = 0;
    uint32_t cell = 0;
    const uint8_t* bytes = nullptr;
  };
  // A row to take out: its id and the cell it was filed under.
  struct Removal {
    VectorId id = 0;
    uint32_t cell = 0;
  };

  // Cell extents of collection `coll` (stored vectors of `row_bytes`), for tenants of more than
  // `min_rows` points (the flat extent's) and at most `extent_bytes` of rows.
  CellExtents(uint32_t coll, size_t row_bytes, size_t min_rows, size_t extent_bytes,
              size_t fold_bytes = kFoldBytesPerWrite);

  // Whether a tenant of `points` points without a cell extent gets one (when the collection has
  // cells), and whether one that has it keeps it: a quarter's slack on both sides, so that a
  // tenant going back and forth over a bound does not make its extent again at each crossing.
  [[nodiscard]] bool Wants(uint64_t points) const {
    return points > min_rows_ && points <= max_rows_;
  }
  [[nodiscard]] bool Keeps(uint64_t points) const {
    return points > min_rows_ * 3 / 4 && points <= max_rows_ + max_rows_ / 4;
  }
  [[nodiscard]] size_t max_rows() const { return max_rows_; }
  [[nodiscard]] bool Has(Tenant t) const { return layouts_.contains(t); }
  [[nodiscard]] bool Broken(Tenant t) const;
  // Rows of t's cell extent (0: none).
  [[nodiscard]] uint64_t Rows(Tenant t) const;

  // Reads t's rows in the cells of `ranked` (every cell, nearest first), from the first, until
  // at least `probe_cells` cells and `min_rows` rows, at `at`; visit(id, stored vector) per row,
  // cell after cell (within a cell, the changed rows, then the block's). `bytes`, `pages` (4 KiB
  // pages of the bytes, at least one a cell read) and `cells` get what was read. False: t has none,
  // or it is marked broken, or a cell held another number of rows than its count (nothing more
  // visited). DataLoss for a malformed row or block.
  [[nodiscard]] absl::StatusOr<bool> Read(const MetadataStore& store, Tenant t,
                                          const StoreSnapshot* at,
                                          absl::Span<const uint32_t> ranked, uint32_t probe_cells,
                                          uint64_t min_rows,
                                          absl::FunctionRef<void(VectorId, const uint8_t*)> visit,
                                          uint64_t* bytes, uint64_t* pages, uint32_t* cells) const;
  bool MarkBroken(Tenant t) const;

  // Plans t's cell extent made whole from `rows` (all of its points, any order; none: it has
  // none), whatever it held deleted (found by a scan of its rows' keys).
  [[nodiscard]] absl::StatusOr<Change> PlanWhole(const MetadataStore& store, Tenant t,
                                                 absl::Span<const Row> rows,
                                                 WriteBatch* batch) const;
  // Plans a change of t's existing cell extent: `removals` taken out, then `additions` filed,
  // and the cells that call for it folded (read from `store` at its latest: the caller
  // serialises writers). DataLoss (the caller makes the extent whole) when a removal's cell
  // holds fewer rows than are taken out of it, or a cell folded holds other rows than counted
  // or a row of a point t does not see after the change (`sees`): a fold checks every row, so
  // damage a search cannot see (it checks the rows it returns) is not carried on. The folds'
  // cells are read at once (storage/read_fanout.h): `sees` is called from several threads.
  [[nodiscard]] absl::StatusOr<Change> Plan(const MetadataStore& store, Tenant t,
                                            absl::Span<const Removal> removals,
                                            absl::Span<const Row> additions,
                                            absl::FunctionRef<bool(VectorId)> sees,
                                            WriteBatch* batch) const;
  // Plans t's cell extent deleted (a scan of its rows' keys).
  [[nodiscard]] absl::StatusOr<Change> PlanDrop(const MetadataStore& store, Tenant t,
                                                WriteBatch* batch) const;

  // At open, with the collection's `cells` (0: it has none): reads the counts and keeps those of
  // tenants in `tenants` that keep one (Keeps of points(t)) whose rows add up to points(t), in
  // cells below `cells`. The others are deleted in `batch` (counts and rows; with no cells,
  // every row of the collection's); `rebuild` gets the tenants that want one and have none now.
  [[nodiscard]] absl::Status Load(const MetadataStore& store, absl::Span<const Tenant> tenants,
                                  absl::FunctionRef<uint64_t(Tenant)> points, uint32_t cells,
                                  WriteBatch* batch, std::vector<Tenant>* rebuild);

  void Apply(const Change& change);
  [[nodiscard]] uint64_t MemoryBytes() const;

  [[nodiscard]] static std::string Key(uint32_t coll, Tenant t, uint32_t cell, VectorId id);
  [[nodiscard]] static std::string BlockKey(uint32_t coll, Tenant t, uint32_t cell);
  [[nodiscard]] static std::string LayoutKey(uint32_t coll, Tenant t);

 private:
  struct Layout {
    Counts counts;
    uint64_t rows = 0;
  };
  static std::string EncodeCounts(const Counts& counts);
  // Reads the cells `prefixes` (each 'y' coll tenant cell) at `at`: visit(i, id, row) per row of
  // prefixes[i], its changed rows first, then its block's. seen[i] gets the rows of prefixes[i];
  // keys (when not null) the change keys of each; `bytes` what was read.
  absl::Status ReadCells(const MetadataStore& store, absl::Span<const std::string> prefixes,
                         const StoreSnapshot* at,
                         absl::FunctionRef<void(size_t, VectorId, const uint8_t*)> visit,
                         std::vector<uint32_t>* seen, std::vector<std::vector<std::string>>* keys,
                         uint64_t* bytes) const;
  // Plans `cell` of t folded: its rows now (the store's latest), less `out`, with `in`, written
  // as its block (deleted when none are left), and its change keys deleted. DataLoss when it
  // then holds other than `rows` rows, a row of a point `sees` refuses, or `out` names a row it
  // does not hold.
  absl::Status PlanFold(const MetadataStore& store, Tenant t, uint32_t cell,
                        absl::Span<const VectorId> out, absl::Span<const Row> in, uint32_t rows,
                        absl::FunctionRef<bool(VectorId)> sees, WriteBatch* batch) const;
  // Deletes every key under `prefix` in the tenants family, one by one.
  static absl::Status DeleteUnder(const MetadataStore& store, absl::string_view prefix,
                                  WriteBatch* batch);

  const uint32_t coll_;
  const size_t row_bytes_;
  const size_t min_rows_;
  const size_t max_rows_;
  const size_t fold_bytes_;
  absl::flat_hash_map<Tenant, Layout> layouts_;
  mutable Mutex broken_mu_;
  mutable absl::flat_hash_set<Tenant> broken_ ABSL_GUARDED_BY(broken_mu_);
};

}  // namespace strata

#endif  // STRATA_INDEX_CELL_EXTENT_H_
