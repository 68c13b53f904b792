// A mutable collection: the disk index (spann_index.h) built from a snapshot of the vectors, plus
// every change since, kept durable in the metadata store (storage/metadata_store.h).
//
// Ids. Users name points by uint64 external ids; the collection maps each to a uint32 internal id
// for its whole life (a deleted id that comes back reuses it). Every internal id carries a version
// byte, bumped by each upsert.
//
// Writes (SPFresh's insert path): a new or replaced vector is appended to the postings the build's
// replica rule picks for it (nearest heads, RNG rule), each entry tagged with the vector's
// version; the built index's own entries for that id are skipped from then on (its version no
// longer matches the one recorded at build time). A delete is a tombstone. One
// Upsert or Delete call is one RocksDB batch, synced before it returns; the in-memory view is
// updated right after, so an acknowledged write is both durable and visible to the next search
// (read-your-writes).
//
// Locks. Writers go one at a time (a writer lock of their own). Every write - upserts, deletes,
// tenants and grants, a build's install, configuration, a posting maintenance step - plans its
// batch under the collection's lock held shared, so searches run beside it; commits it (a
// client's write with its fsync) holding no lock a reader takes; then shows it under the lock
// held exclusively, for the time of an in-memory update. While a client's write commits, readers
// read the metadata store at a snapshot taken just before it, so what they read there agrees with
// the in-memory view; otherwise its latest state (no snapshot is held between writes, which would
// keep RocksDB from compacting). A maintenance step's batch writes nothing readers read from the
// store, so it needs no snapshot (it is synced in its commit, as a client's write is). A search of
// the built index releases the lock while its postings are read from disk (SearchLock,
// spann_index.h) and scans them against the state as it is once it holds the lock again, so a slow
// disk delays no write; an install of a new generation meanwhile makes it search again. A Get
// likewise reads the store with no lock held (Get, below; it holds a snapshot for its reads). Still
// read under the lock held shared: the metadata store's records (a small tenant's extent or stored
// vectors, phrase checks), mostly from RocksDB's block cache, and the appended vectors' rows
// (mapped file pages: one the kernel evicted is read back from the disk meanwhile). The in-memory
// update stores those rows into mapped pages too (a page fault there waits under the exclusive
// lock, as a store into page cache can); the disk space they need is allocated before, with no
// lock a reader takes, and the mapping grown under the exclusive lock only when it must (a
// remap, no I/O).
//
// Before the first build (fewer than build_threshold vectors) the collection is FLAT: searched
// exactly. BuildIndex() builds a new index generation from the live vectors in the background of
// searches and of writes; writes made during the build are carried over to the new generation in
// its short final step.
//
// Text. With CollectionOptions::payload_text set, the text of each payload is also indexed
// lexically (index/text_index.h: BM25, rebuilt from the stored payloads at open, so exactly as
// durable as the vectors) and SearchText answers lexical and hybrid queries (index/fusion.h).
//
// Tenants (index/tenant_access.h). A collection may have tenants, each allowed to see a set of
// its points; a point may be seen by several (stored once). Calls take a Scope: the whole
// collection (the admin's view, as before tenants existed) or one tenant's view, which never
// returns, counts or changes a point outside it. A tenant's Search over a small view is exact:
// from its extent (index/tenant_extent.h: its vectors packed together, up to
// CollectionOptions::tenant_extent_bytes). A larger view reads the cells nearest the query of its
// cell extent (index/cell_extent.h: its vectors filed by the collection's cells, up to
// CollectionOptions::cell_extent_bytes). Without either (or with one found wrong) a view of at
// most kExactTenantPoints points is searched exactly over its stored vectors, and a larger one
// searches the shared postings, skipping the entries it may not see as they are read, with a
// search budget scaled up by how small a share of the collection it sees. Lexical scores use the
// whole collection's term statistics.
//
// Posting maintenance (SPFresh's LIRE, "Maintenance" in ../docs/ARCHITECTURE.md): a posting that
// writes push past its limit (the build's entry cap) is split in two by 2-means; the two halves'
// heads join the index's heads (internal/head_overlay.h) and the old head retires. Each vector of
// the split posting moves to the nearer half, unless its nearest head was the old one and is now
// neither half (SPFresh's first condition): then, like the vectors of the 128 neighbouring
// postings now nearest a new head (its second), it is reassigned by the replica rule. A posting
// left nearly empty by deletes is merged away (its vectors reassigned), and a built posting
// mostly of dead entries is rewritten without them. Steps run on background threads
// (CollectionOptions::maintenance_threads), each on a posting no other step holds: a step is
// worked out beside writes, searches and other steps, then committed as one batch (so a crash or
// power cut leaves it whole or not begun) whose plan, under the writer lock, drops the moves of
// vectors changed meanwhile, moves the vectors that joined the posting meanwhile, and makes its
// head changes over those other steps committed meanwhile, and is synced, like a client's write,
// before it shows. Added
// heads join the built heads' graph (internal/growing_graph.h), so one walk finds both. A search
// that read a posting whose head retired meanwhile starts again.
//
// Seeding: a vector written farther from every head than 1.5x the built heads' median spacing
// (a new region of the space) queues its posting, and that posting's step reassigns its far
// vectors in turn, each one still that far from every head becoming a head of its own (so later
// far vectors near it join it), instead of waiting for the far posting to fill up and split. A
// merge keeps a posting whose vectors no other head lies near. CollectionOptions::
// seed_far_vectors turns it off (benchmarks).
//
// The vectors written or moved since the build keep their rows in a mapped scratch file beside
// RocksDB (internal/appended_vectors.h), and their posting entries in RAM. Known limits (later
// issues): those rows lie by vector, not by posting, so a search of postings the page cache let
// go reads a page per row; a collection that grows far past its build is best rebuilt
// (BuildIndex), which folds them, and the added heads, back into the disk index.
//
// Thread-safety: all methods may be called concurrently.
#ifndef STRATA_INDEX_COLLECTION_H_
#define STRATA_INDEX_COLLECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "index/cell_extent.h"
#include "index/collection_config.h"
#include "index/fusion.h"
#include "index/spann_index.h"
#include "index/tenant_access.h"
#include "index/tenant_extent.h"
#include "index/text_index.h"
#include "index/types.h"
#include "storage/metadata_store.h"
#include "storage/vector_file.h"

namespace strata {

// One point to upsert; `vector` holds dim * ElementSize(type) bytes in the collection's type.
struct PointInput {
  uint64_t id = 0;
  absl::Span<const uint8_t> vector;
  absl::string_view payload;  // opaque bytes; empty = none
  // With `set_tenants`: the tenants (by name) that may see the point, replacing those it had.
  // Without: an existing point keeps its tenants; a new one gets none (only the whole-collection
  // view sees it) - or, in a tenant's scope, that tenant.
  absl::Span<const std::string> tenants = {};
  bool set_tenants = false;
};

// Whose view a call has: the whole collection (`tenant` empty: the admin's view) or the points
// tenant `tenant` may see.
struct Scope {
  absl::string_view tenant;
  [[nodiscard]] bool whole() const { return tenant.empty(); }
};

// A tenant's search over at most this many points (or as many as its extent holds, if more) is
// exact (index/collection.h, "Tenants").
inline constexpr uint64_t kExactTenantPoints = 2048;
// Tenants one upserted point may name (more by GrantAccess).
inline constexpr size_t kMaxPointTenants = 1024;

struct RowError {
  uint32_t index = 0;
  uint64_t id = 0;
  std::string message;
};

struct PointOutput {
  uint64_t id = 0;
  std::vector<uint8_t> vector;  // raw, in the collection's type
  std::string payload;
};

struct Hit {
  uint64_t id = 0;
  float distance = 0;
};

// A hit of a lexical or hybrid search.
struct ScoredHit {
  uint64_t id = 0;
  double score = 0;        // higher is better: the fused score (hybrid) or BM25 (lexical)
  bool has_dense = false;  // hybrid: always (a candidate found by text alone is measured)
  float dense_distance = 0;
  bool has_lexical = false;
  double lexical_score = 0;  // BM25; 0 = no query term in the point's text
};

// A text query answered by the lexical index alone (kLexical) or fused with the dense search of
// its embedding `query` (kHybrid).
struct TextSearch {
  SearchMode mode = SearchMode::kHybrid;
  absl::string_view text;
  VectorView query;  // kHybrid: the embedded text, in the collection's type
  FusionParams fusion;
};

struct CollectionStats {
  // kDamaged: the index on disk could not be opened (see Collection::Open).
  enum class State { kFlat, kIndexed, kBuilding, kDamaged };
  uint64_t count = 0;
  State state = State::kFlat;
  uint64_t indexed_vectors = 0;
  uint64_t appended_vectors = 0;
  uint64_t heads = 0;
  uint64_t memory_bytes = 0;
  uint64_t disk_bytes = 0;  // the index's files: the built index's, and appended_file_bytes
  // The file holding the rows of appended_vectors (mapped, not in RAM; made again at every open).
  uint64_t appended_file_bytes = 0;
  uint64_t generation = 0;
  uint64_t pages_read = 0;  // cumulative, by searches
  uint64_t bytes_read = 0;
  std::string damage;  // why the index is damaged; empty when it is not
  // The index's default search budget and the recall@10 it was tuned to (index/search_tuner.h);
  // 0 and -1 without an index.
  uint32_t default_max_postings = 0;
  double tuned_recall = -1;
  // The lexical index (in memory, rebuilt at open): points with text, distinct terms, bytes.
  uint64_t text_documents = 0;
  uint64_t text_terms = 0;
  uint64_t text_memory_bytes = 0;
  uint64_t tenants = 0;
  uint64_t tenant_memory_bytes = 0;  // the access sets and extents' chunk bounds
  // Posting maintenance since the generation was built (collection.h, "Posting maintenance").
  uint64_t added_heads = 0;    // heads split, rewritten and seeded postings gained
  uint64_t retired_heads = 0;  // built heads whose postings were split, merged or rewritten
  // Since the collection was opened:
  uint64_t splits = 0, merges = 0, rewrites = 0;
  uint64_t seeds = 0;  // heads given to vectors written far from every head ("Seeding")

  uint64_t reassigned = 0;  // vectors given new postings by the replica rule
  // Tenants' extents found wrong (derived data that disagreed with the access records, failed
  // its checks or could not be read): flat extents rebuilt at open, and extents of either kind a
  // search refused (searched around until the tenant's next change). 0 unless the disk or a bug
  // damaged one.
  uint64_t extents_found_wrong = 0;
  // Bytes of the tenants' copies: flat extents (live chunks), the file holding them, and cell
  // extents' rows.
  uint64_t tenant_extent_bytes = 0;
  uint64_t tenant_extent_file_bytes = 0;
  uint64_t cell_extent_bytes = 0;
};

struct CollectionOptions {
  SpannOpenOptions open;
  int build_threads = 0;  // 0 = all cores
  // Extracts the text to index lexically from a stored payload; null = no lexical index.
  PayloadTextFn payload_text;
  // Bytes the lexical index may hold (Bm25Index::MemoryBytes): an upsert whose texts could take
  // it past them is refused whole with RESOURCE_EXHAUSTED, nothing written (texts of mostly
  // distinct words cost up to ~10x their size). 0 = no limit. Opening indexes every stored text
  // whatever this says (a lowered limit refuses only new texts; the open logs it).
  uint64_t max_text_index_bytes = 0;
  // Where the collection's index files are written (storage/env.h); null = the POSIX file
  // system. Must outlive the collection.
  Env* env = nullptr;
  // Tests only: called by every write (upserts, deletes, tenant changes, a build's install) once
  // its batch is committed and before the collection shows it (no lock readers take is held).
  std::function<void()> test_after_commit;
  // Tests only: called by a posting maintenance step once it is worked out and before it takes
  // the writer lock to commit (writes made here are ones the step must take into account), with
  // the vector of the head whose posting it splits, merges or rewrites (posting form). It may
  // write to the collection, or wait for another thread's steps; not call RunMaintenance itself
  // (which waits for this step).
  std::function<void(absl::Span<const uint8_t> head)> test_before_maintenance_commit;
  // Tests only: called by every Get with no lock held (writes may run here): with 1 once it has
  // read its ids' entries, before it checks them; with 2 once it has, before it reads their
  // vectors and payloads.
  std::function<void(int step)> test_get_between_reads;
  // Tests only: called by the catalog's purger (index/record_purger.h) before each batch of a
  // dropped collection's records it deletes, with the collection's id.
  std::function<void(uint32_t id)> test_before_purge_batch;
  // Posting maintenance on threads of the collection's own, as writes call for it; false: only
  // when RunMaintenance() is called (tests, tools).
  bool background_maintenance = true;
  // Background maintenance threads, each running a step at a time beside the others (on different
  // postings). Two: a step waits on the disk for part of its time (its neighbours' postings, its
  // log sync), and searches do too.
  int maintenance_threads = 2;
  // Live entries past which a posting is split; 0 = the index's entry cap (its build's
  // posting_page_limit). A posting is looked at once its entries, dead ones included, pass one and
  // a half times that.
  uint32_t posting_limit = 0;
  // Posting maintenance gives vectors written far from every head heads of their own ("Seeding"
  // above); false: they wait for splits to bring heads near (benchmarks compare the two).
  bool seed_far_vectors = true;
  // Tests only: bytes of [id][vector] rows a tenant's extent (index/tenant_extent.h) may copy
  // (tenants that see at most that many points' worth are searched exactly from it). Every
  // program opening a data directory must use the same size: an extent that does not fit the
  // size it is opened with is dropped, or made again, at open.
  size_t tenant_extent_bytes = kTenantExtentBytes;
  // Tests only: garbage the tenants' extents' file may hold beyond the live chunks' bytes before
  // a write compacts it (TenantExtents::WantsCompaction).
  uint64_t tenant_extent_compaction_slack_bytes = TenantExtents::kCompactionSlackBytes;
  // Tests only: bytes of rows a tenant past the flat extent may copy into a cell extent
  // (index/cell_extent.h); larger tenants search the shared postings. The same rule as above.
  size_t cell_extent_bytes = kCellExtentBytes;
  // Tests only: cells a collection makes for its cell extents (index/tenant_cells.h).
  uint32_t tenant_cells = 256;
};

// The moment a search read the collection at. Search, SearchText and HybridCandidates give it
// (their `moment`); a Get at it reads the points' vectors and payloads as they were then, so a
// hit comes with the vector and payload its distance and scores were computed on, whatever
// writes came since. It holds a snapshot of the metadata store (what the snapshot pins stays on
// disk): keep it for one call. Opaque; thread-safe.
class ReadMoment {
 public:
  virtual ~ReadMoment() = default;
};

class Collection {
 public:
  virtual ~Collection() = default;

  // Loads the collection `config` from `store`, its index generation from `dir`. DataLoss naming
  // the part for inconsistent or corrupt metadata. An index generation that cannot be opened
  // (a file missing, truncated or failing its checksum) does not fail Open: the collection
  // opens *damaged* - Search, Upsert and Delete fail with FailedPrecondition naming the file,
  // Get and Count still work, Stats says why, WantsBuild() is true - until BuildIndex() rebuilds
  // the index from the vectors in the metadata store, which hold every acknowledged write.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Collection>> Open(
      MetadataStore* store, const std::string& dir, const CollectionConfig& config,
      const CollectionOptions& options = {});

  [[nodiscard]] virtual CollectionConfig config() const = 0;

  // Upserts `points`. Rows that fail validation (wrong size, NaN/Inf, an unknown tenant) are
  // reported in `errors` by index and skipped; the rest are stored. Ownership: a tenant's upsert
  // of a new id creates a point the tenant owns (tenant_access.h); it may replace only points it
  // owns. An admin upsert without tenants may not replace a point a tenant owns (it names the
  // point's tenants, and takes it over). A later row with the same id
  // as an earlier one wins. On a non-OK return nothing was stored: ResourceExhausted when the
  // points would take a tenant past its max_points quota. In a tenant's scope a row may
  // name no tenant but its own, and may replace only a point the tenant sees (ids are shared by
  // the collection's tenants): other rows are errors.
  [[nodiscard]] virtual absl::Status Upsert(const Scope& scope, absl::Span<const PointInput> points,
                                            std::vector<RowError>* errors, uint64_t* upserted) = 0;
  [[nodiscard]] absl::Status Upsert(absl::Span<const PointInput> points,
                                    std::vector<RowError>* errors, uint64_t* upserted) {
    return Upsert(Scope{}, points, errors, upserted);
  }
  // Deletes the ids that exist in the scope; `deleted` counts them. In a tenant's scope, the points
  // it owns are deleted (from every view) and those it was granted leave its view only.
  [[nodiscard]] virtual absl::Status Delete(const Scope& scope, absl::Span<const uint64_t> ids,
                                            uint64_t* deleted) = 0;
  [[nodiscard]] absl::Status Delete(absl::Span<const uint64_t> ids, uint64_t* deleted) {
    return Delete(Scope{}, ids, deleted);
  }
  // The points found in the scope, in request order; the others in `missing`. Reads the store
  // with no lock held, so a Get waiting on the disk stalls no writer: each point returned was
  // live and in the scope when the call checked them, under the lock, and comes with its vector
  // and payload as they were at that moment (a snapshot of the store taken then).
  // With `at` (the moment of a search of this collection in this scope: else InvalidArgument), a
  // point is found when that search found it, it was live at that moment and it is in the scope
  // now (a tenant that lost it since sees nothing of it), with its vector and payload as they
  // were at that moment.
  [[nodiscard]] virtual absl::Status Get(const Scope& scope, absl::Span<const uint64_t> ids,
                                         bool with_vector, bool with_payload,
                                         std::vector<PointOutput>* found,
                                         std::vector<uint64_t>* missing,
                                         const ReadMoment* at = nullptr) const = 0;
  [[nodiscard]] absl::Status Get(absl::Span<const uint64_t> ids, bool with_vector,
                                 bool with_payload, std::vector<PointOutput>* found,
                                 std::vector<uint64_t>* missing) const {
    return Get(Scope{}, ids, with_vector, with_payload, found, missing);
  }
  [[nodiscard]] virtual uint64_t Count() const = 0;
  // Live points in the scope; NotFound for an unknown tenant.
  [[nodiscard]] virtual absl::StatusOr<uint64_t> Count(const Scope& scope) const = 0;
  // Live points in the lexical index (with payload text). Cheap, unlike Stats().
  [[nodiscard]] virtual uint64_t text_documents() const = 0;

  // The k nearest live points of the scope, nearest first (fewer when it holds fewer).
  // InvalidArgument for a query of the wrong size or with NaN/Inf, or k == 0; NotFound for an
  // unknown tenant (or one dropped during the search); Unavailable, to retry, in the unlikely
  // case that builds replace the index again and again while it reads ("Locks" above).
  // `moment` (may be null): the moment the hits were read at, for Get.
  [[nodiscard]] virtual absl::Status Search(
      const Scope& scope, VectorView query, uint32_t k, const SearchParams& params,
      std::vector<Hit>* hits, SearchStats* stats = nullptr,
      std::shared_ptr<const ReadMoment>* moment = nullptr) const = 0;
  [[nodiscard]] absl::Status Search(VectorView query, uint32_t k, const SearchParams& params,
                                    std::vector<Hit>* hits, SearchStats* stats = nullptr) const {
    return Search(Scope{}, query, k, params, hits, stats);
  }

  // The k best live points for a text query: by BM25 (kLexical), or by fusing BM25 with the dense
  // search of `search.query` (kHybrid; each side's top max(k, its depth) candidates (fusion.h),
  // every candidate scored on both sides: its dense distance as the index computes it - exact, or
  // against the float16-rounded vector with float16 postings - and its BM25). Best first.
  // InvalidArgument for k outside [1, kMaxTextK], a bad weight, or (kHybrid) a bad query vector;
  // ResourceExhausted for too many query terms (ParseTextQuery); FailedPrecondition without a
  // lexical index (CollectionOptions::payload_text) and, as for every search, while the index is
  // damaged (the lexical side is intact, but one answer for both sides keeps the rule simple). A
  // text that analyses to no term finds nothing lexically (hybrid then ranks by the dense side).
  // Candidates whose distance is not finite (rows stored before the vector rules) are left out.
  // `moment` (may be null): the moment the hits were read at, for Get.
  [[nodiscard]] virtual absl::Status SearchText(
      const Scope& scope, const TextSearch& search, uint32_t k, const SearchParams& params,
      std::vector<ScoredHit>* hits, SearchStats* stats = nullptr,
      std::shared_ptr<const ReadMoment>* moment = nullptr) const = 0;
  [[nodiscard]] absl::Status SearchText(const TextSearch& search, uint32_t k,
                                        const SearchParams& params, std::vector<ScoredHit>* hits,
                                        SearchStats* stats = nullptr) const {
    return SearchText(Scope{}, search, k, params, hits, stats);
  }
  // The candidates a kHybrid SearchText for k fuses (ids external), before fusion: each side's
  // top max(k, its depth), every one scored on both sides. Fuse(candidates, fusion, k) gives
  // SearchText's hits; a weight tuner fuses one set of candidates at many weights. `moment` (may
  // be null): the moment the candidates were read at, for Get.
  [[nodiscard]] virtual absl::Status HybridCandidates(
      const Scope& scope, const TextSearch& search, uint32_t k, const SearchParams& params,
      std::vector<FusionCandidate>* candidates, SearchStats* stats = nullptr,
      std::shared_ptr<const ReadMoment>* moment = nullptr) const = 0;
  [[nodiscard]] absl::Status HybridCandidates(const TextSearch& search, uint32_t k,
                                              const SearchParams& params,
                                              std::vector<FusionCandidate>* candidates,
                                              SearchStats* stats = nullptr) const {
    return HybridCandidates(Scope{}, search, k, params, candidates, stats);
  }

  // --- Tenants (durable, one synced batch each; see "Tenants" above)
  // InvalidArgument for a bad name or quota, AlreadyExists, ResourceExhausted past kMaxTenants.
  [[nodiscard]] virtual absl::Status CreateTenant(absl::string_view name,
                                                  const TenantQuota& quota = {}) = 0;
  // Replaces the tenant's quota. A tenant over a lowered max_points keeps its points and is
  // refused new ones.
  [[nodiscard]] virtual absl::Status SetTenantQuota(absl::string_view name,
                                                    const TenantQuota& quota) = 0;
  // NotFound for an unknown tenant.
  [[nodiscard]] virtual absl::StatusOr<TenantInfo> DescribeTenant(absl::string_view name) const = 0;
  // Drops the tenant: it sees nothing any more, and the points it created (owns) that no other
  // tenant sees are deleted unless `keep_points` (then, and for the points it created that others
  // see, the admin owns them). `deleted` gets their ids (for the caller to drop what it derived
  // from them, e.g. cached passage entries).
  [[nodiscard]] virtual absl::Status DropTenant(absl::string_view name, bool keep_points,
                                                std::vector<uint64_t>* deleted) = 0;
  [[nodiscard]] virtual std::vector<TenantInfo> ListTenants() const = 0;
  // Lets `tenant` see the points `ids` (`changed` counts those it did not see); ids of no live
  // point are listed in `missing`. NotFound for an unknown tenant; ResourceExhausted past its
  // max_points quota (nothing changes).
  [[nodiscard]] virtual absl::Status Grant(absl::string_view tenant, absl::Span<const uint64_t> ids,
                                           uint64_t* changed, std::vector<uint64_t>* missing) = 0;
  // Takes the points `ids` from `tenant`'s view (`changed` counts those it saw). A point no
  // tenant sees any more stays, in the whole-collection view (delete it to remove it).
  [[nodiscard]] virtual absl::Status Revoke(absl::string_view tenant,
                                            absl::Span<const uint64_t> ids, uint64_t* changed) = 0;
  // Makes `weight` (in [0, 1]) the collection's default dense weight for hybrid search, durably,
  // with the MRR@10 it reached on `questions` labelled questions (config() reports them).
  [[nodiscard]] virtual absl::Status SetHybridDefault(double weight, double mrr,
                                                      uint32_t questions) = 0;

  // Builds a new index generation from the live vectors and switches to it. One build at a time
  // (a second call waits). FailedPrecondition when the collection is empty. `progress` (optional)
  // hears each phase ("reading vectors", the index build's own phases, "installing") with its
  // units done and total, from the calling thread or the build's.
  [[nodiscard]] virtual absl::Status BuildIndex(
      std::function<void(const char* phase, uint64_t done, uint64_t total)> progress = nullptr) = 0;
  // True when no index exists yet and the live count has reached build_threshold, the index is
  // damaged (a rebuild repairs it), or the collection has grown well past its index: more
  // vectors appended (written, or moved by posting maintenance, since the build) than
  // max(half the built vectors, build_threshold), or more added heads than max(half the built
  // heads, 1024), or more than half the built vectors deleted, replaced or reassigned since.
  [[nodiscard]] virtual bool WantsBuild() const = 0;
  // Whether the index is damaged (at open, or a posting a read found corrupt): Stats().damage
  // without the rest of Stats.
  [[nodiscard]] virtual bool Damaged() const = 0;
  // Records, durably (one synced write), that a build was asked for, so that a build a stop cut
  // short, or never started, is not forgotten: BuildRequested() stays true across restarts until
  // a build installs (or finds nothing to index). The caller schedules the build itself.
  // NotFound once dropped.
  [[nodiscard]] virtual absl::Status RequestBuild() = 0;
  [[nodiscard]] virtual bool BuildRequested() const = 0;

  // Offline bulk load into an empty collection: stores the rows (unlogged batches, then a flush)
  // and builds the index. `ids` (one per row) and `payloads` (empty, or one per row) are optional.
  // FailedPrecondition when the collection is not empty.
  [[nodiscard]] virtual absl::Status BulkLoad(
      const VectorSet& vectors, absl::Span<const uint64_t> ids,
      absl::Span<const std::string> payloads,
      std::function<void(const char* phase, uint64_t done, uint64_t total)> progress) = 0;

  [[nodiscard]] virtual CollectionStats Stats() const = 0;
  // Entries per posting a search may read (dead ones included), one per serving head; empty
  // without an index. For tests and benchmarks: O(heads).
  [[nodiscard]] virtual std::vector<uint32_t> PostingLengths() const = 0;
  // Splits, merges, rewrites and seeds the postings writes have pushed past their limits until
  // none is left and no step is running (the background threads' included): what the background
  // threads do. The first error (the posting stays as it was).
  [[nodiscard]] virtual absl::Status RunMaintenance() = 0;
  // Stops the background maintenance threads and waits for their steps in progress (the catalog
  // calls it as it closes, so that no thread of the collection's own acts on the metadata store
  // after it; the caller's own calls are the caller's). RunMaintenance does nothing after it.
  virtual void StopMaintenance() = 0;
  // The index's default search budget (SearchParams::max_postings = 0); 0 without an index.
  // Cheap, unlike Stats(): for the search path.
  [[nodiscard]] virtual uint32_t default_max_postings() const = 0;

  // As the catalog drops it, before its write: later calls fail with NotFound, and a build under
  // way stops within about one piece of its work per thread (a clustering node, a head, a vector
  // assigned, a posting written) and returns NotFound.
  virtual void MarkDropped() = 0;
  // A build under way, and any later one, stops as for a drop and returns Cancelled, its files
  // removed (a server stopping: it need not wait out a long build). The collection is otherwise
  // as it was.
  virtual void StopBuilds() = 0;
  // Once the catalog's drop is durable: the directory is removed when the last reference goes (a
  // drop whose write failed leaves the files to the collection a restart lists again).
  virtual void DropCommitted() = 0;
  // After MarkDropped, when the catalog's write failed (`why`): whether the drop took effect stays
  // undecided (the write may have reached the log) until the collection is dropped again or the
  // server restarts, and calls fail with FailedPrecondition saying so instead of NotFound.
  virtual void DropFailed(const absl::Status& why) = 0;
};

}  // namespace strata

#endif  // STRATA_INDEX_COLLECTION_H_
