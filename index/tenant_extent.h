// A small tenant's points packed beside each other in a file (its extent): a tenant that sees at
// most max_rows() points - at most `extent_bytes` (kTenantExtentBytes, 1 MiB, by default) of
// [id][vector] rows; 7,943 SIFT-like points, 4,032 of 64-d float32, 340 of 768-d - is searched
// exactly by reading its extent's chunks in place (storage/blob_file.h), instead of one record per
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
// Where the bytes live: the chunks are blobs of one append-only file per collection
// (storage/blob_file.h: `tenant-extents-<n>` in the collection's directory), read through the
// page cache in place from the file's mapping (BlobFile::ReadInPlace), not records of the metadata
// store - a cold read of a 26 KiB extent from RocksDB took ~40 us of index, filter and block-cache
// lookups beside ~10 us for the bytes (bench/RESULTS.md "Extents in a file of their own"). A
// rewritten chunk is appended and the old one becomes garbage; once the file holds more than twice
// the live chunks' bytes and 16 MiB more, a compaction copies the live chunks into the next file,
// each extent's chunks back to back, and the old file goes.
//
// An extent is derived data, kept exact by the collection: planned with every change of the
// tenant's points or of their vectors (dropped when the tenant grows past max_rows()). Its layout
// - each chunk's bound, row count and location in the file - is a small record in the metadata
// store, put in the same batch as the change; the chunks it points to are appended by Plan and
// made durable by Sync before the batch commits, so a crash at any point leaves layouts that
// point only to synced chunks (and garbage past them). Layouts are read at open (not the chunks:
// opening costs nothing per copied vector) and checked against the tenants' point counts and the
// file's size there (an extent that disagrees, or has a layout of an older format, is rebuilt).
// A search checks each chunk's crc and size, and the collection checks the rows against the
// tenant's points (index/collection_tenants.cc, SearchExtent): an extent found wrong is marked
// broken (MarkBroken), searched around, and made again whole by the tenant's next change.
// Format (storage/FORMAT.md): a chunk is rows of [u32 internal id][the stored vector bytes],
// ascending.
//
// Thread safety: the collection serialises writers against readers (its lock): Read, Plan,
// PlanCompaction, WantsCompaction and MarkBroken under it shared, Apply, ApplyCompaction and Load
// exclusive. Plan, PlanCompaction and Sync write the file: one writer at a time (the collection's
// writer lock), Sync with or without the collection's lock. MarkBroken may run concurrently with
// Read and Plan (its set has a mutex of its own).
#ifndef STRATA_INDEX_TENANT_EXTENT_H_
#define STRATA_INDEX_TENANT_EXTENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
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
#include "storage/blob_file.h"
#include "storage/env.h"
#include "storage/metadata_store.h"

namespace strata {

inline constexpr size_t kTenantExtentBytes = 1 << 20;
inline constexpr size_t kTenantExtentChunkBytes = 32768;

class TenantExtents final {
 public:
  using Tenant = uint32_t;

  // A tenant's extent after a batch: its chunks' bounds, ascending, rows and locations in the
  // file (empty: it has none).
  struct Change {
    Tenant tenant = 0;
    std::vector<VectorId> bounds;
    std::vector<uint32_t> rows;
    std::vector<BlobLocation> locs;
    bool whole = false;  // every chunk written (or none left): a broken mark is cleared
  };

  // Extents of collection `coll`, whose stored vectors are `row_bytes` each, of at most
  // `extent_bytes` of rows, in a file in `dir` (created when first needed) written through `env`
  // (which must outlive this), compacted past `compaction_slack_bytes` of garbage beyond the live
  // chunks' bytes.
  TenantExtents(Env& env, std::string dir, uint32_t coll, size_t row_bytes, size_t extent_bytes,
                uint64_t compaction_slack_bytes = kCompactionSlackBytes);

  // Tenants seeing 1 to max_rows() points have an extent (at least 1): MaxRows(row_bytes,
  // extent_bytes).
  [[nodiscard]] size_t max_rows() const { return max_rows_; }
  [[nodiscard]] static size_t MaxRows(size_t row_bytes, size_t extent_bytes);
  // Rows of one chunk at most (at least 1).
  [[nodiscard]] size_t chunk_rows() const { return chunk_rows_; }
  // Chunks of t's extent (0: none).
  [[nodiscard]] size_t chunks(Tenant t) const;

  // Calls visit(id, stored vector) for each row of t's extent, chunk after chunk (ascending);
  // chunks that lie within a page of each other in the file are read together. `bytes`
  // gets the chunks' bytes, `pages` the 4 KiB pages of the file the reads touched. False when t
  // has no extent, or it is marked broken (nothing was visited). DataLoss for a chunk whose bytes
  // are missing, fail their crc or are malformed (the rows of the chunks before it may have been
  // visited).
  [[nodiscard]] absl::StatusOr<bool> Read(Tenant t,
                                          absl::FunctionRef<void(VectorId, const uint8_t*)> visit,
                                          uint64_t* bytes, uint64_t* pages) const;
  // Marks t's extent wrong (a caller of Read found rows other than the tenant's points, or none
  // where there should be): Read refuses it until a Plan of t makes it again whole. True the
  // first time.
  bool MarkBroken(Tenant t) const;

  // Plans t's extent for its points after a batch, `ids` (ascending; none or more than
  // max_rows(): no extent): appends the chunks it rewrites to the file and puts the layout in
  // `batch`; `before`: its points before it (ascending), which its extent holds (unless it is
  // marked broken: then it is made again whole). `fresh(id)`: the stored bytes of a vector the
  // batch writes (null: unchanged by it). Only the chunks it rewrites or merges away are read;
  // rows they lack are read by `read_vectors(ids, out)` (their stored bytes, in ids' order).
  // The caller Syncs before committing `batch`.
  [[nodiscard]] absl::StatusOr<Change> Plan(
      Tenant t, absl::Span<const VectorId> before, absl::Span<const VectorId> ids,
      absl::FunctionRef<const uint8_t*(VectorId)> fresh,
      absl::FunctionRef<absl::Status(absl::Span<const VectorId>, std::vector<std::string>*)>
          read_vectors,
      WriteBatch* batch) const;
  // Makes the chunks appended by Plan and PlanCompaction durable: before the batch that points
  // to them commits. A no-op when none was appended since.
  [[nodiscard]] absl::Status Sync() const;

  // At open: reads the layouts of the collection's extents (not their chunks) and keeps those
  // whose rows add up to `points(t)` (the tenant's point count), in chunks as this format makes
  // them, within the file. The others are deleted in `batch` with whatever chunks of an older
  // format are under the tenant's prefix in the store (so are any under the prefix of a tenant
  // without a layout), and `rebuild` gets the tenants among them that want an extent (the caller
  // plans them after this batch's deletes). Files of the directory that no layout points to go.
  [[nodiscard]] absl::Status Load(const MetadataStore& store, absl::Span<const Tenant> tenants,
                                  absl::FunctionRef<uint64_t(Tenant)> points, WriteBatch* batch,
                                  std::vector<Tenant>* rebuild);

  void Apply(const Change& change);

  // Whether the file holds so much garbage that a compaction is due: the file is larger than
  // twice the live chunks' bytes plus the compaction slack (and than it was at a compaction that
  // failed, plus the slack, if one did).
  [[nodiscard]] bool WantsCompaction() const;
  // A compaction failed: the next waits until the file has grown by the slack again.
  void CompactionFailed();
  // When no extent is left: forgets the file (the next chunk starts a new one) and returns its
  // path, for the caller to remove outside its lock (no layout points to it); else empty.
  [[nodiscard]] std::string DropFileIfEmpty();
  // Every live chunk copied into a new file (each extent's chunks back to back), synced, with the
  // layouts that point there put in `batch`; an extent whose chunks fail to read is dropped (its
  // layout deleted; `dropped` names it, to be rebuilt by its tenant's next change).
  struct Compaction {
    std::shared_ptr<BlobFile> file;
    uint64_t number = 0;
    absl::flat_hash_map<Tenant, std::vector<BlobLocation>> locs;
    std::vector<Tenant> dropped;
  };
  [[nodiscard]] absl::StatusOr<Compaction> PlanCompaction(WriteBatch* batch) const;
  // Switches to the compaction's file once its batch is durable; returns the path of the file
  // it replaced, for the caller to remove once no reader can read it (outside its lock).
  [[nodiscard]] std::string ApplyCompaction(Compaction compaction);

  [[nodiscard]] uint64_t MemoryBytes() const;
  // Bytes of the live chunks, and of the file (live, garbage and holes).
  [[nodiscard]] uint64_t live_bytes() const { return live_bytes_; }
  // (Through `published_`: the writer may make the file while a reader of the stats holds the
  // collection's lock shared, as it does.)
  [[nodiscard]] uint64_t file_bytes() const {
    const BlobFile* f = published_.load(std::memory_order_acquire);
    return f == nullptr ? 0 : f->size();
  }

  static constexpr uint64_t kCompactionSlackBytes = uint64_t{16} << 20;

  // A chunk's key in the tenants family in the format before the file ('x' coll tenant bound,
  // big-endian): Load removes what it finds there.
  [[nodiscard]] static std::string Key(uint32_t coll, Tenant t, VectorId bound);
  // The layout record's key: 'X' coll tenant; its value (EncodeLayout): [u32 0xFFFFFFFE][u64 the
  // file's number], then per chunk [u32 bound][u32 rows][u64 offset][u32 crc] (the chunk's size
  // is rows times the row's).
  [[nodiscard]] static std::string LayoutKey(uint32_t coll, Tenant t);
  [[nodiscard]] static std::string EncodeLayout(uint64_t file, absl::Span<const VectorId> bounds,
                                                absl::Span<const uint32_t> rows,
                                                absl::Span<const BlobLocation> locs);
  // The file numbered `number` in `dir`.
  [[nodiscard]] static std::string FilePath(const std::string& dir, uint64_t number);
  // Whether `name` (in the collection's directory) is one of the extents' files (Load keeps the
  // one the layouts point to and removes the others).
  [[nodiscard]] static bool IsFileName(absl::string_view name, uint64_t* number = nullptr);

 private:
  struct Layout {
    std::vector<VectorId> bounds;
    std::vector<uint32_t> rows;
    std::vector<BlobLocation> locs;
  };
  // Whether `layout` is one this format makes, for `points` points, within a file of
  // `file_bytes`.
  bool WellFormed(const Layout& layout, uint64_t points, uint64_t file_bytes) const;
  // Calls use(i, bytes) for each chunk `which` (ascending indices into layout's chunks), reading
  // chunks within a page of each other together; adds what it read to bytes and pages.
  absl::Status ReadChunks(const BlobFile& file, const Layout& layout,
                          absl::Span<const size_t> which,
                          absl::FunctionRef<absl::Status(size_t, absl::string_view)> use,
                          uint64_t* bytes, uint64_t* pages) const;
  // PlanCompaction's work, into file `number` at `path`.
  absl::StatusOr<Compaction> CopyLive(uint64_t number, const std::string& path,
                                      WriteBatch* batch) const;
  // The file Plan appends to, made when first needed.
  absl::StatusOr<BlobFile*> Writable() const;

  Env& env_;
  const std::string dir_;
  const uint32_t coll_;
  const size_t row_bytes_;
  const size_t max_rows_;
  const size_t chunk_rows_;
  const uint64_t compaction_slack_bytes_;
  absl::flat_hash_map<Tenant, Layout> layouts_;  // tenants with an extent
  uint64_t live_bytes_ = 0;                      // of their chunks
  // The file the layouts point to, and its number. The writer makes it when first needed, when
  // no layout points to it yet, so no reader reads it then (Read touches it only for a tenant
  // with a layout); ApplyCompaction and DropFileIfEmpty replace it, exclusively.
  mutable std::shared_ptr<BlobFile> file_;
  // file_.get(), for file_bytes(): set wherever file_ changes (SetFile). The file it points to
  // goes only under the collection's exclusive lock, which no reader of the stats holds.
  mutable std::atomic<const BlobFile*> published_{nullptr};
  void SetFile(std::shared_ptr<BlobFile> file) const {
    file_ = std::move(file);
    published_.store(file_.get(), std::memory_order_release);
  }
  mutable uint64_t file_number_ = 0;
  mutable uint64_t highest_number_ = 0;  // of any file made, or seen in the directory at Load
  uint64_t failed_at_bytes_ = 0;         // the file's size when a compaction last failed
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
