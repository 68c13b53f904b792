// A small tenant's points packed beside each other in the metadata store (its extent): a tenant
// that sees at most max_rows() points - at most `extent_bytes` (kTenantExtentBytes, 1 MiB, by
// default) of [id][vector] rows; 7,943 SIFT-like points, 4,032 of 64-d float32, 340 of 768-d -
// is searched exactly by reading its extent's chunks in one batch, instead of one record per
// point however its points are spread over the collection (Curator's tenant extents). A tenant of
// at most 8 KiB of rows (62 SIFT-like points) reads two pages. Past the extent a tenant has a cell
// extent (index/cell_extent.h: its rows filed by the collection's cells, the nearest cells read),
// up to 32 MiB of rows; without one (before the collection has cells, or past that size) it is
// searched over its stored vectors, one record each (while it sees at most 2,048 points), else
// over the shared postings at up to 16 times the budget (bench/RESULTS.md "Tenants").
//
// The extent copies the tenant's vectors (as a cell extent does): at most extent_bytes per
// tenant (a point seen by several small tenants is in each one's extent; 78 MiB beside 729 MiB of
// postings for 1,000 Zipf-sized tenants over 1M SIFT-like vectors).
//
// An extent is a run of chunks of at most kTenantExtentChunkBytes (32 KiB; an eighth of a
// smaller extent) each, keyed by the lowest id the chunk may hold: chunk i holds the tenant's
// points with ids in [bound_i, bound_i+1), ascending, and bound_0 = 0. A change rewrites only the
// chunks whose rows it changes; a new point takes the next internal id, so it lands in the last
// chunk, and a tenant's writes rewrite about one chunk per batch however large its extent is. A
// chunk that outgrows its size is cut into full chunks and a remainder (ids come mostly in
// ascending order), an empty one goes, and two neighbours that fit in half a chunk together are
// merged.
//
// An extent is derived data, kept exact by the collection: planned into the same write batch as
// every change of the tenant's points or of their vectors (dropped when the tenant grows past
// max_rows()). Its layout - each chunk's bound and row count - is a small record of its own, read
// at open (the chunks are not: opening costs nothing per copied vector) and checked against the
// tenants' point counts there (an extent that disagrees, or has no layout record - the formats
// before it - is rebuilt). A search checks each chunk's size against the layout, and the
// collection checks the rows against the tenant's points (index/collection.cc, SearchExtent): an
// extent found wrong is marked broken (MarkBroken), searched around, and made again whole by the
// tenant's next change. Format (storage/FORMAT.md): a chunk is rows of [u32 internal id][the
// stored vector bytes], ascending.
//
// Thread safety: the collection serialises writers against readers (its lock): Read, Plan and
// MarkBroken under it shared, Apply and Load exclusive. MarkBroken may run concurrently with Read
// and Plan (its set has a mutex of its own). Read and Plan read the store; Apply changes memory
// once the batch is durable.
#ifndef STRATA_INDEX_TENANT_EXTENT_H_
#define STRATA_INDEX_TENANT_EXTENT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "index/types.h"
#include "storage/metadata_store.h"

namespace strata {

inline constexpr size_t kTenantExtentBytes = 1 << 20;
inline constexpr size_t kTenantExtentChunkBytes = 32768;

class TenantExtents final {
 public:
  using Tenant = uint32_t;

  // A tenant's extent after a batch: its chunks' bounds, ascending, and rows (empty: it has
  // none).
  struct Change {
    Tenant tenant = 0;
    std::vector<VectorId> bounds;
    std::vector<uint32_t> rows;
    bool whole = false;  // every chunk written (or none left): a broken mark is cleared
  };

  // Extents of collection `coll`, whose stored vectors are `row_bytes` each, of at most
  // `extent_bytes` of rows.
  TenantExtents(uint32_t coll, size_t row_bytes, size_t extent_bytes);

  // Tenants seeing 1 to max_rows() points have an extent (at least 1).
  [[nodiscard]] size_t max_rows() const { return max_rows_; }
  // Rows of one chunk at most (at least 1).
  [[nodiscard]] size_t chunk_rows() const { return chunk_rows_; }
  // Chunks of t's extent (0: none).
  [[nodiscard]] size_t chunks(Tenant t) const;

  // Calls visit(id, stored vector) for each row of t's extent, chunk after chunk (ascending),
  // read at `at` in one batch; `bytes` and `pages` get what was read (pages: 4 KiB per chunk
  // begun). False when t has no extent, or it is marked broken, or a chunk is missing or of
  // another size than its layout says (nothing was visited). DataLoss for a malformed chunk (the
  // rows of the chunks before it were visited).
  [[nodiscard]] absl::StatusOr<bool> Read(const MetadataStore& store, Tenant t,
                                          const StoreSnapshot* at,
                                          absl::FunctionRef<void(VectorId, const uint8_t*)> visit,
                                          uint64_t* bytes, uint64_t* pages) const;
  // Marks t's extent wrong (a caller of Read found rows other than the tenant's points, or none
  // where there should be): Read refuses it until a Plan of t makes it again whole. True the
  // first time.
  bool MarkBroken(Tenant t) const;

  // Plans t's extent for its points after a batch, `ids` (ascending; none or more than
  // max_rows(): no extent), into `batch`; `before`: its points before it (ascending), which its
  // extent holds (unless it is marked broken: then it is made again whole). `fresh(id)`: the
  // stored bytes of a vector the batch writes (null: unchanged by it). Only the chunks it
  // rewrites or merges away are read; rows they lack are read by `read_vectors(ids, out)` (their
  // stored bytes, in ids' order).
  [[nodiscard]] absl::StatusOr<Change> Plan(
      const MetadataStore& store, Tenant t, absl::Span<const VectorId> before,
      absl::Span<const VectorId> ids, absl::FunctionRef<const uint8_t*(VectorId)> fresh,
      absl::FunctionRef<absl::Status(absl::Span<const VectorId>, std::vector<std::string>*)>
          read_vectors,
      WriteBatch* batch) const;

  // At open: reads the layouts of the collection's extents (not their chunks) and keeps those
  // whose rows add up to `points(t)` (the tenant's point count), in chunks as this format makes
  // them. The others are deleted in `batch` with whatever chunks are under the tenant's prefix
  // (so are any under the prefix of a tenant without a layout: the formats before it), and
  // `rebuild` gets the tenants among them that want an extent (the caller plans them after this
  // batch's deletes).
  [[nodiscard]] absl::Status Load(const MetadataStore& store, absl::Span<const Tenant> tenants,
                                  absl::FunctionRef<uint64_t(Tenant)> points, WriteBatch* batch,
                                  std::vector<Tenant>* rebuild);

  void Apply(const Change& change);

  [[nodiscard]] uint64_t MemoryBytes() const;

  // A chunk's key in the tenants family: 'x' coll tenant bound (big-endian).
  [[nodiscard]] static std::string Key(uint32_t coll, Tenant t, VectorId bound);
  // The layout record's key: 'X' coll tenant; its value, [u32 bound][u32 rows] per chunk.
  [[nodiscard]] static std::string LayoutKey(uint32_t coll, Tenant t);
  [[nodiscard]] static std::string EncodeLayout(absl::Span<const VectorId> bounds,
                                                absl::Span<const uint32_t> rows);

 private:
  struct Layout {
    std::vector<VectorId> bounds;
    std::vector<uint32_t> rows;
  };
  // Whether `layout` is one this format makes, for `points` points.
  bool WellFormed(const Layout& layout, uint64_t points) const;

  const uint32_t coll_;
  const size_t row_bytes_;
  const size_t max_rows_;
  const size_t chunk_rows_;
  absl::flat_hash_map<Tenant, Layout> layouts_;  // tenants with an extent
  mutable Mutex broken_mu_;
  mutable absl::flat_hash_set<Tenant> broken_ ABSL_GUARDED_BY(broken_mu_);
};

// A chunk: `ids` ascending; row(i) gives ids[i]'s stored vector (row_bytes bytes).
[[nodiscard]] std::string EncodeTenantExtent(absl::Span<const VectorId> ids, size_t row_bytes,
                                             absl::FunctionRef<const uint8_t*(size_t)> row);
// Calls visit(id, vector) for each row of a chunk. DataLoss for a record that is not whole rows
// of ascending ids.
[[nodiscard]] absl::Status DecodeTenantExtent(
    absl::string_view record, size_t row_bytes,
    absl::FunctionRef<void(VectorId, const uint8_t*)> visit);

}  // namespace strata

#endif  // STRATA_INDEX_TENANT_EXTENT_H_
