// The SPANN index: heads (cluster centroids chosen among the points) in RAM behind a navigation
// graph, posting lists on disk. Build() writes an index directory; Open() maps it back; Search()
// reads only the postings of the query's nearest heads, in one batch.
//
// Build (DESIGN.md, "SPANN"):
//   1. balanced hierarchical k-means picks ~head_share * n heads (clustering.h);
//   2. each vector goes to up to `max_replicas` postings among its `replica_candidates` nearest
//      heads, in order, skipping a head c when an already chosen c' has rng_factor * d(c, c') <=
//      d(x, c) (the RNG rule: boundary vectors are replicated, interior ones are not);
//   3. a posting over `posting_page_limit` pages drops its farthest replicas (a vector's nearest
//      head, its primary, is always kept, so every vector stays reachable);
//   4. postings are written to the posting file (storage/posting_file.h), the head graph saved, and
//      the MANIFEST written last: a directory without a valid MANIFEST is not an index.
//
// Search(q, k): the `max_postings` nearest heads (by default, at least as many as hold 2k vectors
// on average, up to 16 times the default budget, or every head where that is half of them or
// more), pruned by the distance ratio d(q, c_i) >
// prune_ratio * d(q, c_1) (L2 only) once the postings kept hold 2k vectors' live entries (over the
// share an allow set admits; a built posting's dead entries, and a collection's appended ones, are
// counted by SearchOverlay's estimates), one batched read, distances as postings arrive (exact, or
// against float16-rounded vectors for a float16 posting encoding), replicas de-duplicated, top k.
// Thread-safe: any number of concurrent Search calls.
#ifndef STRATA_INDEX_SPANN_INDEX_H_
#define STRATA_INDEX_SPANN_INDEX_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "index/id_set.h"
#include "index/top_k.h"
#include "index/types.h"
#include "storage/block_reader.h"
#include "storage/env.h"
#include "storage/vector_file.h"

namespace strata {

struct SpannBuildOptions {
  Metric metric = Metric::kL2;
  // Heads / vectors; 0 = by element type: 0.16 for float32 (SPANN's SIFT1M share), 0.10 for
  // 1-byte types, whose head RAM weighs more against their small raw size (both keep the index's
  // RAM under 25% of the raw vectors).
  double head_share = 0;
  uint32_t max_replicas = 8;
  uint32_t replica_candidates = 64;  // nearest heads considered for replicas
  float rng_factor = 1.0f;
  // Pages per posting before its farthest replicas are dropped. 0 = default: 3 for 1-byte types,
  // 12 for float32, 6 for float16 entries (the same ~125 entries as float32's 12 pages).
  uint32_t posting_page_limit = 0;
  PostingEncoding posting_encoding = PostingEncoding::kNative;  // kFloat16: float32 vectors only
  uint32_t branching = 32;                                      // k of the hierarchical k-means
  double balance = 1.0;  // size-penalty strength of the k-means
  int hnsw_m = 16;
  int hnsw_ef_construction = 100;
  uint64_t seed = 42;
  int threads = 0;  // 0 = all cores
  // Ids of the vectors, row by row; empty = vector i gets id i.
  absl::Span<const VectorId> ids;
  // Called with (phase, done, total) as the build progresses; may be null.
  std::function<void(const char* phase, uint64_t done, uint64_t total)> progress;
  // Checked between pieces of work (a clustering node, a head inserted, a vector assigned, a
  // posting written, and after tuning), on any of the build's threads; may be null. Once it
  // returns true (the build takes it as true from then on) the build stops within about one piece
  // per thread and returns Cancelled, with no manifest written: what it wrote never opens as an
  // index, and is the caller's to remove (as for any failure).
  std::function<bool()> cancelled;
  // The default search budget (SearchParams::max_postings = 0) is tuned at the end of the build
  // to reach this recall@10 on a sample of the index's own vectors (index/search_tuner.h: ~0.95
  // there holds >= 0.90 for queries from outside);
  // 0 = no tuning, the default stays 32.
  double tune_target_recall = 0.95;
  // Where the index's files are written (storage/env.h); null = the POSIX file system. Each file
  // is synced, and the directory too once the manifest, written last, is in it: the index is
  // complete and durable when Build returns OK.
  Env* env = nullptr;
};

// What a build did, for logs and benchmarks.
struct SpannBuildStats {
  uint64_t vectors = 0;
  uint64_t heads = 0;
  uint64_t entries = 0;              // posting entries written (vectors * average replicas)
  uint64_t truncated_replicas = 0;   // replicas dropped by the posting length cap
  uint64_t over_limit_postings = 0;  // postings whose primaries alone exceed the cap
  uint64_t outlier_heads = 0;        // heads of their own for outliers (among `heads`)
  uint32_t max_posting_entries = 0;
  uint64_t posting_file_bytes = 0;
  double seconds_clustering = 0, seconds_head_index = 0, seconds_assign = 0, seconds_write = 0;
  double seconds_tune = 0;
  uint32_t default_max_postings = 32;  // the tuned default search budget
  double tuned_recall = -1;            // its recall@10 on the tuning sample; -1 = not tuned
};

struct SearchParams {
  // Nearest heads whose postings are read; 0 = the index's default, tuned at build time
  // (SpannIndex::default_max_postings), or more - up to 16 times - for a k larger than its
  // postings hold.
  uint32_t max_postings = 0;
  // Skip posting i when d(q,c_i) > ratio * d(q,c_1), once those kept hold 2k vectors' entries
  // (L2); <= 0 disables.
  float prune_ratio = 8.0f;
  uint32_t ef_search = 0;  // HNSW beam over the heads; 0 = max(64, 2 * max_postings)
  // A tenant's search (index/collection.h, "Tenants"): true reads the tenant's extents, or its
  // stored vectors exactly for a small view, where it has them; false always searches the shared
  // postings with the tenant's access check inside the scan (benchmarks compare the two).
  bool use_tenant_extents = true;
};

struct SearchStats {
  uint32_t postings_read = 0;
  uint32_t pages_read = 0;
  uint64_t bytes_read = 0;
  uint32_t entries_scanned = 0;
  uint32_t navigation_us = 0;
  uint32_t io_wait_us = 0;  // time in ReadBatch not spent computing distances
  uint32_t distance_us = 0;
};

// A query in the index's element type: `bytes` holds dim * ElementSize(type) bytes.
struct VectorView {
  ElementType type = ElementType::kFloat32;
  absl::Span<const uint8_t> bytes;

  static VectorView Of(absl::Span<const float> v) {
    return {ElementType::kFloat32,
            {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)}};
  }
  static VectorView Of(absl::Span<const uint8_t> v) { return {ElementType::kUint8, v}; }
  static VectorView Of(absl::Span<const int8_t> v) {
    return {ElementType::kInt8, {reinterpret_cast<const uint8_t*>(v.data()), v.size()}};
  }
};

// Entries added to postings after the build (index/collection.h keeps them), in posting form
// (the vector's element type; normalised float32 for cosine).
class AppendedEntries {
 public:
  virtual ~AppendedEntries() = default;
  // Calls visit(id, vector) for every entry appended to `posting`. Waits on no lock and no I/O
  // it starts itself (the collection's rows are mapped file pages: one the kernel evicted is
  // read back from the disk on the way).
  virtual void ForEach(uint32_t posting,
                       absl::FunctionRef<void(VectorId, const uint8_t*)> visit) const = 0;
  // Entries appended to `posting`, live or not (what pruning counts toward a query's entries).
  [[nodiscard]] virtual size_t EntryCount(uint32_t posting) const = 0;
};

class SearchLock;
namespace internal {
class HeadGraph;
class HeadOverlay;
}  // namespace internal

// One head and its distance from a query.
using HeadHit = std::pair<float, uint32_t>;

// What a mutable collection layers over the immutable index for one search.
struct SearchOverlay {
  // Bit `id` set: the built index's entries for `id` are skipped (deleted, or replaced since the
  // build). Ids past the end are kept.
  absl::Span<const uint8_t> skip_bits;
  const AppendedEntries* appended = nullptr;  // may be null
  // Non-null: only these ids may be returned (a tenant's view, index/tenant_access.h); the
  // others are skipped as they are read, before any distance is computed.
  const IdSet* allow = nullptr;
  // Non-null: heads added and retired since the build (index/internal/head_overlay.h). A retired
  // head's posting is not read; an added head's posting holds appended entries only.
  const internal::HeadOverlay* heads = nullptr;
  // Non-null: the lock that keeps this overlay valid, held by the caller. Search releases it
  // while it reads postings from disk and scans them with the overlay Relock() gives back.
  SearchLock* lock = nullptr;
  // The share of the built index's vectors whose built entries are still served (not skipped):
  // pruning counts a built posting's entries at this share (without an allow set, whose own share
  // stands in for it), since deletes, replacements and reassignments leave dead entries in the
  // posting file until a rebuild.
  float built_live_share = 1;
};

// A caller's lock over a search's overlay (a collection's lock held shared), so that no lock is
// held across the search's disk reads: Search calls Unlock() before them and Relock() after them,
// on the same thread, and holds the lock again whenever it returns. Relock() gives the overlay to
// scan with (valid until Search returns), or an error Search returns (Aborted when the caller's
// state no longer matches this index: the caller may search again). Search itself returns Aborted
// when a head whose posting it read retired meanwhile (overlay.heads).
class SearchLock {
 public:
  virtual ~SearchLock() = default;
  virtual void Unlock() = 0;
  [[nodiscard]] virtual absl::StatusOr<SearchOverlay> Relock() = 0;
};

struct SpannOpenOptions {
  BlockFileOptions io;
  BlockFileWrapper wrap_block_file;  // tests: fault injection
};

class SpannIndex {
 public:
  virtual ~SpannIndex() = default;

  // Builds an index of `vectors` into directory `dir` (created; must not hold an index already).
  // Vector i gets id i. InvalidArgument for an empty set, NaN/Inf values, cosine on integer data,
  // float16 postings for integer data or for values beyond +-65504, or bad options; errors from
  // the disk as they come.
  [[nodiscard]] static absl::Status Build(const VectorSet& vectors, const std::string& dir,
                                          const SpannBuildOptions& options,
                                          SpannBuildStats* stats = nullptr);
  // Opens a built index. DataLoss/InvalidArgument naming the file for a missing, truncated, corrupt
  // or unknown-version part.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SpannIndex>> Open(
      const std::string& dir, const SpannOpenOptions& options = {});

  // The k nearest vectors of `query`, nearest first. InvalidArgument for a query of the wrong type
  // or dimension, NaN/Inf, k == 0 or k > size(). DataLoss naming the posting when a posting fails
  // its checksum or a read fails; the result is then untouched.
  [[nodiscard]] absl::Status Search(VectorView query, uint32_t k, const SearchParams& params,
                                    std::vector<Neighbor>* result,
                                    SearchStats* stats = nullptr) const {
    return Search(query, k, params, SearchOverlay{}, result, stats);
  }
  // As above, over the built entries filtered by `overlay.skip_bits` plus the entries appended to
  // the postings read. With an overlay k may exceed size(); fewer than k results come back when
  // fewer entries are reachable.
  [[nodiscard]] virtual absl::Status Search(VectorView query, uint32_t k,
                                            const SearchParams& params,
                                            const SearchOverlay& overlay,
                                            std::vector<Neighbor>* result,
                                            SearchStats* stats = nullptr) const = 0;

  // The postings a new vector joins: the build's replica rule (its `replica_candidates` nearest
  // heads, the RNG rule, at most `max_replicas`), nearest first, over the built heads changed by
  // `heads` (may be null). `v` in posting form. InvalidArgument for a vector of the wrong type or
  // dimension.
  [[nodiscard]] virtual absl::Status AssignPostings(VectorView v,
                                                    const internal::HeadOverlay* heads,
                                                    std::vector<uint32_t>* postings) const = 0;
  [[nodiscard]] absl::Status AssignPostings(VectorView v, std::vector<uint32_t>* postings) const {
    return AssignPostings(v, nullptr, postings);
  }
  // The `k` heads nearest `v` (posting form, unchecked), nearest first, over the built heads
  // changed by `heads` (may be null).
  [[nodiscard]] virtual absl::Status NearestHeads(const uint8_t* v, uint32_t k,
                                                  const internal::HeadOverlay* heads,
                                                  std::vector<HeadHit>* out) const = 0;
  // Built head `head`'s vector (posting form).
  [[nodiscard]] virtual const uint8_t* head_vector(uint32_t head) const = 0;
  // The built heads' graph: an overlay's added heads join it (internal::HeadOverlay::Clear).
  [[nodiscard]] virtual const internal::HeadGraph* head_graph() const = 0;
  // Reads built postings `postings` from disk in one batch of reads: each one's entries' ids are
  // appended to `ids` and their vectors in posting form (float16 entries widened to float32) to
  // `rows`, posting after posting in the order given; `ends` (may be null) gets ids->size() after
  // each. InvalidArgument for a posting the build has not; DataLoss naming the posting when it
  // fails its checksum; errors from the disk as they come. Thread-safe.
  [[nodiscard]] virtual absl::Status ReadPostings(absl::Span<const uint32_t> postings,
                                                  std::vector<VectorId>* ids,
                                                  std::vector<uint8_t>* rows,
                                                  std::vector<size_t>* ends) const = 0;
  // Entries built posting `posting` holds, live or not.
  [[nodiscard]] virtual uint32_t posting_entries(uint32_t posting) const = 0;
  // The build's cap on a posting's entries (posting_page_limit pages' worth).
  [[nodiscard]] virtual uint32_t entry_limit() const = 0;

  [[nodiscard]] virtual ElementType element_type() const = 0;
  [[nodiscard]] virtual PostingEncoding posting_encoding() const = 0;
  [[nodiscard]] virtual Metric metric() const = 0;
  [[nodiscard]] virtual uint32_t dim() const = 0;
  [[nodiscard]] virtual uint64_t size() const = 0;
  [[nodiscard]] virtual uint64_t num_heads() const = 0;
  // The search budget used when SearchParams::max_postings is 0: tuned at build time to
  // tuned_recall() (index/search_tuner.h); 32 and -1 for indexes built before tuning existed.
  [[nodiscard]] virtual uint32_t default_max_postings() const = 0;
  [[nodiscard]] virtual double tuned_recall() const = 0;
  // RAM of the index's own structures (head graph and codes, posting table), in bytes.
  [[nodiscard]] virtual uint64_t MemoryBytes() const = 0;
  [[nodiscard]] virtual uint64_t DiskBytes() const = 0;
  [[nodiscard]] virtual IoEngine io_engine() const = 0;
};

// The RNG replica rule, exposed for tests. `cand` are candidate heads sorted by d(x, c) ascending
// with those distances in `cand_dist`; `head_dist(a, b)` gives d(c_a, c_b). Returns the chosen
// positions in `cand` (at most max_replicas; the first candidate always).
[[nodiscard]] std::vector<uint32_t> SelectReplicas(
    absl::Span<const int64_t> cand, absl::Span<const float> cand_dist, uint32_t max_replicas,
    float rng_factor, absl::FunctionRef<float(int64_t, int64_t)> head_dist);

}  // namespace strata

#endif  // STRATA_INDEX_SPANN_INDEX_H_
