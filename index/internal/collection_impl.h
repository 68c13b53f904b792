// CollectionImpl: the class behind Collection (index/collection.h), defined here so that the
// files implementing its concepts share it: collection.cc (ids, writes, searches, text, bulk
// loads), collection_build.cc (index builds and their install), collection_open.cc (the open:
// records, generation, maintenance state, and damage), collection_tenants.cc (tenant calls and
// the small tenants' extents), posting_maintenance.cc (SPFresh's queue of postings to maintain,
// and the threads that run the steps) and maintenance_step.cc (one step: a split, merge, rewrite
// or seed, and the reassignment it calls for). Also the metadata store's key layout
// (storage/FORMAT.md, "Metadata store"), which both write. Private to index/.
//
// Thread-safety: as Collection's (every public method may be called concurrently); the locks and
// what each guards are stated at the members below and in collection.h, "Locks".
#ifndef STRATA_INDEX_INTERNAL_COLLECTION_IMPL_H_
#define STRATA_INDEX_INTERNAL_COLLECTION_IMPL_H_

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/mutex.h"
#include "base/public_message.h"
#include "index/cell_extent.h"
#include "index/collection.h"
#include "index/internal/appended_vectors.h"
#include "index/internal/head_overlay.h"
#include "index/internal/id_state.h"
#include "index/internal/posting_radii.h"
#include "index/kernels/distance.h"
#include "index/tenant_cells.h"
#include "index/tenant_extent.h"
#include "index/vector_rules.h"
#include "storage/half.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {

// The directory of index generation `gen` in collection directory `dir`.
inline std::string GenerationDir(const std::string& dir, uint64_t gen) {
  return (std::filesystem::path(dir) / absl::StrCat("index-", gen)).string();
}

// --- Keys (storage/FORMAT.md, "Metadata store") ------------------------------------------------
inline std::string CollPrefix(uint32_t coll) {
  std::string k;
  AppendU32(&k, coll);
  return k;
}
inline std::string IdKey(uint32_t coll, VectorId id) {
  std::string k = CollPrefix(coll);
  AppendU32(&k, id);
  return k;
}
inline std::string ExtKey(uint32_t coll, uint64_t ext) {
  std::string k = "e";
  AppendU32(&k, coll);
  AppendU64(&k, ext);
  return k;
}
inline std::string IntKey(uint32_t coll, VectorId id) {
  std::string k = "i";
  AppendU32(&k, coll);
  AppendU32(&k, id);
  return k;
}
// (Laid out as IdKey, in the heads family.)
inline std::string HeadKey(uint32_t coll, uint32_t head) { return IdKey(coll, head); }

// A vector's appended entries, as the postings family holds them under its IdKey: its version
// then the postings, primary first (storage/FORMAT.md). One record a vector, so moving or
// reassigning a vector writes one key, not one per posting left and joined.
inline std::string PostingsValue(uint8_t version, absl::Span<const uint32_t> postings) {
  std::string v(1, static_cast<char>(version));
  for (uint32_t p : postings) AppendU32(&v, p);
  return v;
}
// The key of one entry in the postings family as stores before the per-vector records held it
// (read, and rewritten as records, at open).
inline constexpr size_t kLegacyPostingKeyBytes = 12;
// Load's bound on a collection's internal ids: at most this many more than twice the version
// records read before (ids are handed out in order; only writes that failed leave gaps).
inline constexpr uint64_t kMostIdsSkipped = uint64_t{1} << 24;

// The rows' file of internal::AppendedVectors in the collection's directory: scratch, made at
// every open, its name removed at once (storage/mapped_arena.h).
inline constexpr char kAppendedRowsFile[] = "appended-rows";

using internal::IdState;
using internal::kInBase;
using internal::kLive;

inline std::string VersionValue(const IdState& s) {
  std::string v(2, '\0');
  v[0] = static_cast<char>(s.version);
  v[1] = static_cast<char>(s.flags & kLive);
  return v;
}

class CollectionImpl final : public Collection {
 public:
  CollectionImpl(MetadataStore* store, std::string dir, CollectionConfig config,
                 CollectionOptions options)
      : store_(store),
        dir_(std::move(dir)),
        config_(std::move(config)),
        generation_(config_.index_generation),
        options_(std::move(options)),
        env_(options_.env != nullptr ? *options_.env : *Env::Default()),
        row_bytes_(size_t{config_.dim} * ElementSize(config_.type)),
        extents_(env_, dir_, config_.id, row_bytes_, options_.tenant_extent_bytes,
                 options_.tenant_extent_compaction_slack_bytes),
        cell_extents_(config_.id, row_bytes_, extents_.max_rows(), options_.cell_extent_bytes),
        dist_(kernels::GetDistance(kernels::Best(), config_.type, config_.metric)),
        f16_dist_(kernels::GetFloat16Distance(kernels::Best(), config_.metric)),
        to_half_(kernels::Best().to_half),
        appended_(row_bytes_, &ids_),
        heads_overlay_(config_.type, config_.metric, config_.dim),
        tenants_(config_.id, config_.name),
        hybrid_{config_.hybrid_weight, config_.hybrid_mrr, config_.hybrid_questions},
        build_requested_(config_.build_requested) {}
  ~CollectionImpl() override {
    StopMaintainer();
    if (drop_committed_.load()) {
      if (absl::Status s = env_.RemoveTree(dir_); !s.ok()) {
        Log(LogLevel::kWarning, "removing dropped collection %s: %s", dir_, s.message());
      }
    }
  }

  absl::Status Load();
  // Starts the background maintenance threads (CollectionOptions::background_maintenance).
  void StartMaintainer();
  absl::Status RunMaintenance() override;
  void StopMaintenance() override { StopMaintainer(); }
  std::vector<uint32_t> PostingLengths() const override {
    ReaderMutexLock lock(&mu_);
    std::vector<uint32_t> out = ServingHeads();
    for (uint32_t& h : out) h = static_cast<uint32_t>(PostingEntries(h));
    return out;
  }

  CollectionConfig config() const override {
    ReaderMutexLock lock(&mu_);
    return Record(generation_);
  }
  // The collection record as it stands, at index generation `gen`.
  CollectionConfig Record(uint64_t gen) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    CollectionConfig c = config_;
    c.index_generation = gen;
    c.hybrid_weight = hybrid_.weight;
    c.hybrid_mrr = hybrid_.mrr;
    c.hybrid_questions = hybrid_.questions;
    c.build_requested = build_requested_;
    return c;
  }
  absl::Status RequestBuild() override;
  bool BuildRequested() const override {
    ReaderMutexLock lock(&mu_);
    return build_requested_;
  }
  using Collection::Delete;
  using Collection::Get;
  using Collection::HybridCandidates;
  using Collection::Search;
  using Collection::SearchText;
  using Collection::Upsert;
  absl::Status Upsert(const Scope& scope, absl::Span<const PointInput> points,
                      std::vector<RowError>* errors, uint64_t* upserted) override;
  absl::Status Delete(const Scope& scope, absl::Span<const uint64_t> ids,
                      uint64_t* deleted) override;
  absl::Status SearchText(const Scope& scope, const TextSearch& search, uint32_t k,
                          const SearchParams& params, std::vector<ScoredHit>* hits,
                          SearchStats* stats,
                          std::shared_ptr<const ReadMoment>* moment) const override;
  absl::Status HybridCandidates(const Scope& scope, const TextSearch& search, uint32_t k,
                                const SearchParams& params,
                                std::vector<FusionCandidate>* candidates, SearchStats* stats,
                                std::shared_ptr<const ReadMoment>* moment) const override;
  absl::Status SetHybridDefault(double weight, double mrr, uint32_t questions) override;
  absl::Status Get(const Scope& scope, absl::Span<const uint64_t> ids, bool with_vector,
                   bool with_payload, std::vector<PointOutput>* found,
                   std::vector<uint64_t>* missing, const ReadMoment* at) const override;
  uint64_t Count() const override {
    ReaderMutexLock lock(&mu_);
    return live_;
  }
  absl::StatusOr<uint64_t> Count(const Scope& scope) const override {
    RETURN_IF_ERROR(CheckNotDropped());
    ReaderMutexLock lock(&mu_);
    ASSIGN_OR_RETURN(const ViewRef view, View(scope));
    return view.ids == nullptr ? live_ : view.ids->size();
  }
  absl::Status CreateTenant(absl::string_view name, const TenantQuota& quota) override;
  absl::Status SetTenantQuota(absl::string_view name, const TenantQuota& quota) override;
  absl::StatusOr<TenantInfo> DescribeTenant(absl::string_view name) const override {
    RETURN_IF_ERROR(CheckNotDropped());
    ReaderMutexLock lock(&mu_);
    ASSIGN_OR_RETURN(TenantAccess::Tenant t, tenants_.Find(name));
    return tenants_.Describe(t);
  }
  absl::Status DropTenant(absl::string_view name, bool keep_points,
                          std::vector<uint64_t>* deleted) override;
  std::vector<TenantInfo> ListTenants() const override {
    ReaderMutexLock lock(&mu_);
    return tenants_.List();
  }
  absl::Status Grant(absl::string_view tenant, absl::Span<const uint64_t> ids, uint64_t* changed,
                     std::vector<uint64_t>* missing) override;
  absl::Status Revoke(absl::string_view tenant, absl::Span<const uint64_t> ids,
                      uint64_t* changed) override;
  // Grant (or revoke) of `ids` to `tenant`: one synced batch; ids of no live point in `missing`
  // (may be null).
  absl::Status ChangeAccess(bool grant, absl::string_view tenant, absl::Span<const uint64_t> ids,
                            uint64_t* changed, std::vector<uint64_t>* missing);
  uint64_t text_documents() const override {
    ReaderMutexLock lock(&mu_);
    return text_.documents();
  }
  absl::Status Search(const Scope& scope, VectorView query, uint32_t k, const SearchParams& params,
                      std::vector<Hit>* hits, SearchStats* stats,
                      std::shared_ptr<const ReadMoment>* moment) const override;
  absl::Status BuildIndex(
      std::function<void(const char*, uint64_t, uint64_t)> progress = nullptr) override;
  bool Damaged() const override {
    ReaderMutexLock lock(&mu_);
    return !damage_.ok() || !ReadDamage().empty();
  }
  bool WantsBuild() const override;  // (collection_build.cc)
  absl::Status BulkLoad(const VectorSet& vectors, absl::Span<const uint64_t> ids,
                        absl::Span<const std::string> payloads,
                        std::function<void(const char*, uint64_t, uint64_t)> progress) override;
  CollectionStats Stats() const override;
  uint32_t default_max_postings() const override {
    ReaderMutexLock lock(&mu_);
    return base_ == nullptr ? 0 : base_->default_max_postings();
  }
  void DropCommitted() override;
  void DropFailed(const absl::Status& why) override;
  void StopBuilds() override { builds_stopped_.store(true); }
  void MarkDropped() override {
    // Under the writer lock: a write or a build's commit either finished before, or sees the
    // flag and stores nothing (a commit after the catalog deleted the records would resurrect
    // them half).
    MutexLock write_lock(&write_mu_);
    WriterMutexLock lock(&mu_);
    dropped_.store(true);
  }

 private:
  std::string ReadDamage() const {
    MutexLock lock(&read_damage_mu_);
    return read_damage_;
  }
  // A search's read found damage `s`: noted (once) and logged.
  void NoteReadDamage(const absl::Status& s) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // A search's moment (ReadMoment): the store as the collection showed it then.
  // Whose search it was (the collection's uid, the scope's tenant), what it found (internal
  // ids: a Get at the moment finds no other point), and the store as it was then.
  struct Moment final : ReadMoment {
    std::string collection_uid, tenant;
    absl::flat_hash_set<VectorId> found;
    std::shared_ptr<const StoreSnapshot> store;
  };
  // The store as the collection shows it now: the snapshot of a commit under way, else the latest.
  std::shared_ptr<const StoreSnapshot> ShownStore() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return snap_ != nullptr ? snap_ : store_->Snapshot();
  }
  // Now as the moment of a search in `scope` that found `found`, into `moment` (may be null).
  template <typename Ids, typename IdOf>
  void NoteMoment(const Scope& scope, const Ids& found, IdOf id_of,
                  std::shared_ptr<const ReadMoment>* moment) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    if (moment == nullptr) return;
    auto m = std::make_shared<Moment>();
    m->collection_uid = config_.uid;
    m->tenant = std::string(scope.tenant);
    for (const auto& f : found) m->found.insert(id_of(f));
    m->store = ShownStore();
    *moment = std::move(m);
  }
  // The ids a scope may see: `ids` null for the whole collection, else tenant `tenant`'s set
  // (NotFound for an unknown tenant). Valid while mu_ is held.
  struct ViewRef {
    const IdSet* ids = nullptr;
    TenantAccess::Tenant tenant = 0;
  };
  absl::StatusOr<ViewRef> View(const Scope& scope) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    if (scope.whole()) return ViewRef{};
    ASSIGN_OR_RETURN(TenantAccess::Tenant t, tenants_.Find(scope.tenant));
    return ViewRef{&tenants_.Members(t), t};
  }
  // What a batch changes of the tenants' extents, applied once it is durable (ApplyExtents).
  struct ExtentPlan {
    std::vector<TenantExtents::Change> flat;
    std::vector<CellExtents::Change> cells;
  };
  // Plans into `batch` the extents (tenant_extent.h, cell_extent.h) of the tenants whose points
  // or vectors the batch changes, or their removal: `access`, the batch's access changes;
  // `vectors`, the stored bytes of the vectors it writes, by internal id; `touched`, tenants
  // that see a point whose vector it replaces. (A tenant that comes to want a cell extent gets it
  // whole in the batch: at most cell_extent_bytes.)
  absl::Status PlanExtents(absl::Span<const TenantAccess::Change> access,
                           const absl::flat_hash_map<VectorId, const uint8_t*>& vectors,
                           const absl::flat_hash_set<TenantAccess::Tenant>& touched,
                           WriteBatch* batch, ExtentPlan* plan) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The cell-extent part of PlanExtents for tenant t, which sees `size` points after the batch:
  // `state`, for each id the batch may change of t, whether t sees it before and after;
  // `vectors`, the batch's vectors. With no state and no cell extent: made whole.
  absl::Status PlanCellExtent(TenantAccess::Tenant t, uint64_t size,
                              const absl::flat_hash_map<VectorId, std::pair<bool, bool>>& state,
                              const absl::flat_hash_map<VectorId, const uint8_t*>& vectors,
                              const TenantCells& cells, WriteBatch* batch, ExtentPlan* plan) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The stored vectors of `ids` (in their order), read in batches at the store's latest state
  // (a writer's view); DataLoss for a missing one.
  absl::Status ReadStoredVectors(absl::Span<const VectorId> ids,
                                 std::vector<std::string>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // The collection's cells (tenant_cells.h) from a sample of a build's vectors; null when they are
  // fewer than TenantCells::kMinPointsPerCell a cell of the most CollectionOptions::tenant_cells
  // allows. Runs the k-means: no lock held.
  absl::StatusOr<std::shared_ptr<const TenantCells>> MakeCells(const VectorSet& set) const;
  // After a build that made the collection's cells: commits them (cells made again: with every
  // cell extent filed under the old ones dropped in the same batch), then the cell extent of each
  // tenant that wants one, each in a batch of its own (writers go on in between).
  absl::Status InstallCells(std::shared_ptr<const TenantCells> cells) ABSL_LOCKS_EXCLUDED(mu_);
  // InstallCells, when a build made `cells` (else nothing), its error naming the build's success.
  absl::Status InstallCellsAfterBuild(std::shared_ptr<const TenantCells> cells)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ApplyExtents(const ExtentPlan& plan) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const TenantExtents::Change& c : plan.flat) extents_.Apply(c);
    for (const CellExtents::Change& c : plan.cells) cell_extents_.Apply(c);
  }
  // Whether a stored row's distance is the index's as it is (the posting form is the stored
  // bytes: no cosine normalisation, no float16 rounding), without StoredDistance's copies.
  bool ScoresAsStored() const {
    return config_.metric != Metric::kCosine &&
           config_.posting_encoding != PostingEncoding::kFloat16;
  }
  // At open: every tenant's extent layout agrees with its point count, else the extent is
  // rebuilt (logged).
  absl::Status CheckExtents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_);
  // The nearest of a tenant's points in the cells nearest q, from its cell extent; false when it
  // has none, or its rows are not the tenant's points (then it is marked broken, logged once).
  absl::StatusOr<bool> SearchCells(const uint8_t* q, uint32_t k, const SearchParams& params,
                                   TenantAccess::Tenant t, std::vector<Neighbor>* result,
                                   SearchStats* st) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The exact nearest of a small tenant's points, from its extent; false when it has none, or
  // its rows are not exactly the tenant's points (then it is marked broken, logged once).
  absl::StatusOr<bool> SearchExtent(const uint8_t* q, uint32_t k, TenantAccess::Tenant t,
                                    std::vector<Neighbor>* result, SearchStats* st) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The distance from `q` (posting form) to a stored vector `raw` of point `id`, as the index
  // computes it: exact for an appended vector, against the float16-rounded one with float16
  // postings. `pf` and `half` are scratch.
  float StoredDistance(const uint8_t* q, VectorId id, const uint8_t* raw, std::vector<uint8_t>* pf,
                       std::vector<uint16_t>* half) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // A point's deletion, planned into a batch (its tenants' records are the caller's: they differ
  // between an admin's delete, a tenant's and a tenant drop), then applied once it is durable.
  struct PointDelete {
    VectorId id;
    bool had_appended;
    std::vector<uint32_t> old_postings;
  };
  absl::Status PlanDelete(VectorId id, WriteBatch* batch, std::vector<PointDelete>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void ApplyDelete(const PointDelete& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_);
  // The live internal ids of `ext` ids (repeats dropped); the others in `missing` (may be null).
  // Reads the store's latest state: for writers (whose plan nothing can change before it is
  // applied), hence write_mu_. Readers read at snap_ (DistancesTo; Get: Collection::Get's note).
  absl::Status LiveIds(absl::Span<const uint64_t> ext, std::vector<VectorId>* ids,
                       std::vector<uint64_t>* missing) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Opens index generation generation_ and marks its members in ids_.
  absl::Status OpenGeneration() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loads the heads posting maintenance added and retired (the `heads` family) over base_.
  absl::Status LoadHeads() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Load's way out when the index cannot serve (a file of its generation, or a record posting
  // maintenance stored, is damaged): the collection opens without it, refusing searches and
  // writes with `why` until a rebuild from its stored vectors replaces it (nothing of the
  // vectors is lost: they are in the store).
  void MarkIndexDamaged(absl::string_view why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loads what posting maintenance stored over base_ (heads, posting entries, the rows and
  // primaries of the vectors they name; `load_row` puts a stored vector's row in memory).
  // DataLoss for a record that cannot be read: Load then opens the collection with its index
  // damaged.
  absl::Status LoadMaintenance(const std::function<absl::Status(VectorId)>& load_row)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ResourceExhausted when `adding` bytes could take the lexical index past
  // CollectionOptions::max_text_index_bytes (collection_text.cc).
  absl::Status CheckTextRoom(uint64_t adding) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // FailedPrecondition naming the damage while the index is damaged, with a message for callers
  // other than the admin that names none of it (collection_open.cc).
  absl::Status CheckServing() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // OK until MarkDropped; then NotFound, or FailedPrecondition after DropFailed
  // (collection_open.cc).
  absl::Status CheckNotDropped() const;
  // Whether a build may go on: NotFound once dropped, Cancelled once StopBuilds was called.
  absl::Status CheckBuildGoesOn() const {
    RETURN_IF_ERROR(CheckNotDropped());
    if (builds_stopped_.load()) {
      return absl::CancelledError(absl::StrCat("the build of collection '", config_.name,
                                               "' was stopped before it finished (a server "
                                               "runs it again at its next start)"));
    }
    return absl::OkStatus();
  }
  // Posting form: the stored bytes, normalised for cosine.
  void ToPostingForm(const uint8_t* raw, uint8_t* out) const {
    std::memcpy(out, raw, row_bytes_);
    if (config_.metric == Metric::kCosine) {
      NormalizeInPlace(reinterpret_cast<float*>(out), config_.dim);
    }
  }
  const uint8_t* AppendedRow(VectorId id) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return appended_.Row(id);
  }
  // `id`'s row as written (posting form), when memory holds it so: an appended vector's, or a
  // built one's with native postings (with float16 postings memory holds a built vector's
  // rounded row). Null: read it from the store.
  const uint8_t* ExactRow(VectorId id) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    if (config_.posting_encoding == PostingEncoding::kFloat16 && BaseEntryLive(id)) return nullptr;
    return appended_.Row(id);
  }
  // `pf` (posting form) as the built index scores it: rounded to float16 with float16 postings
  // (in `scratch`), else `pf` itself.
  const uint8_t* BuiltForm(const uint8_t* pf, std::vector<uint8_t>* scratch) const {
    if (config_.posting_encoding != PostingEncoding::kFloat16) return pf;
    scratch->resize(row_bytes_);
    const auto* f = reinterpret_cast<const float*>(pf);
    auto* out = reinterpret_cast<float*>(scratch->data());
    for (uint32_t d = 0; d < config_.dim; ++d) out[d] = HalfToFloat(FloatToHalf(f[d]));
    return scratch->data();
  }
  bool BaseEntryLive(VectorId id) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    const IdState& s = ids_[id];
    return (s.flags & kLive) && (s.flags & kInBase) && s.version == s.base_version;
  }
  void SetSkip(VectorId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (skip_bits_.size() * 8 <= id) skip_bits_.resize(id / 8 + 1 + skip_bits_.size() / 2, 0);
    bool skip = !BaseEntryLive(id);
    uint8_t bit = static_cast<uint8_t>(1u << (id & 7));
    if (ids_[id].flags & kInBase) {  // (fixed within a generation: RebuildSkipBits recounts)
      const bool was = (skip_bits_[id >> 3] & bit) != 0;
      if (skip != was) skipped_in_base_ += skip ? 1 : -1;
    }
    if (skip) {
      skip_bits_[id >> 3] |= bit;
    } else {
      skip_bits_[id >> 3] &= static_cast<uint8_t>(~bit);
    }
  }
  // The postings a vector in posting form is appended to (empty when no index exists).
  absl::Status PostingsFor(const uint8_t* pf, std::vector<uint32_t>* out) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    out->clear();
    if (base_ == nullptr) return absl::OkStatus();
    return base_->AssignPostings(VectorView{config_.type, {pf, row_bytes_}}, &heads_overlay_, out);
  }
  // Removes id's row and appended entries from memory (the caller deletes their keys).
  void DropAppended(VectorId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { appended_.Drop(id); }
  // Whether `id` has a row or appended entries; if so, deletes its entries' record in `batch`
  // and lists their postings in `postings`.
  bool PlanDropAppended(VectorId id, WriteBatch* batch, std::vector<uint32_t>* postings) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    const absl::Span<const uint32_t> old = appended_.PostingsOf(id);
    postings->assign(old.begin(), old.end());
    if (!old.empty()) batch->Delete(Cf::kPostings, IdKey(config_.id, id));
    return !old.empty() || appended_.HasRow(id);
  }
  // Posting maintenance ("Posting maintenance" in collection.h).
  // Live entries past which a posting is split.
  uint32_t PostingLimit() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    if (options_.posting_limit != 0) return options_.posting_limit;
    return base_ == nullptr ? 0 : base_->entry_limit();
  }
  // Entries a search of `posting` scans, dead ones included.
  uint64_t PostingEntries(uint32_t posting) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    uint64_t n = appended_.EntryCount(posting);
    if (base_ != nullptr && posting < heads_overlay_.built_heads() &&
        !heads_overlay_.IsRetired(posting)) {
      n += base_->posting_entries(posting);
    }
    return n;
  }
  // The heads whose postings searches read: the built ones not retired, and the added ones.
  std::vector<uint32_t> ServingHeads() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    std::vector<uint32_t> out;
    if (base_ == nullptr) return out;
    for (uint32_t h = 0; h < heads_overlay_.built_heads(); ++h) {
      if (!heads_overlay_.IsRetired(h)) out.push_back(h);
    }
    heads_overlay_.ForEachAdded([&](uint32_t h, const uint8_t*) { out.push_back(h); });
    return out;
  }
  // Queues for maintenance those of `postings` that are too long (or, `shrunk`, too short), or
  // whose appended primaries reach past seed_radius_.
  void NotePostings(absl::Span<const uint32_t> postings, bool shrunk)
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The distance past which a vector is far from every head of `index` (seed_radius_).
  // (0 when seeding is off, or when the spacing could not be measured: logged.)
  float SeedRadiusOf(const SpannIndex& index) const;
  // Splits, merges, rewrites or seeds `posting` if it calls for it (one MaintenanceStep). The
  // caller took `posting` off the queue into in_step_ (TakePending).
  absl::Status MaintainPosting(uint32_t posting) ABSL_LOCKS_EXCLUDED(write_mu_, mu_);
  class MaintenanceStep;  // index/maintenance_step.cc
  // A posting is looked at once its entries pass 1.5x the limit (it is split when its live ones
  // pass the limit), and merged away under 1/8 of it.
  static uint64_t LookAtAbove(uint32_t limit) { return uint64_t{limit} + limit / 2; }
  static size_t MergeBelow(uint32_t limit) { return std::max<size_t>(1, limit / 8); }
  // A queued posting no step works on, moved into in_step_; none when there is none.
  std::optional<uint32_t> TakePending() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending_mu_);
  bool HasFreePending() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending_mu_);
  // A number for a head a step adds, past every other step's and every head of `heads`.
  uint32_t NewHeadNumber(const internal::HeadOverlay& heads) ABSL_LOCKS_EXCLUDED(pending_mu_);
  void StopMaintainer() ABSL_LOCKS_EXCLUDED(pending_mu_);
  // Sets building_; maintenance pauses while a build runs (the install starts the queue over).
  void SetBuilding(bool building) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    building_ = building;
    MutexLock lock(&pending_mu_);
    paused_ = building;
  }
  void AddAppended(VectorId id, const uint8_t* pf, absl::Span<const uint32_t> postings)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    appended_.Add(id, pf, postings, ids_[id].version);
    if (!postings.empty()) GrowRadius(postings[0], pf);  // (nearest first: the primary)
  }
  // Serving head `q`'s row (posting form); null for a head neither built and serving nor added.
  const uint8_t* HeadRow(uint32_t q) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    if (q >= heads_overlay_.built_heads()) return heads_overlay_.Row(q);
    return heads_overlay_.IsRetired(q) ? nullptr : base_->head_vector(q);
  }
  // Widens posting q's radius to reach `pf` (posting form), a vector that joined it.
  void GrowRadius(uint32_t q, const uint8_t* pf) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (config_.metric == Metric::kInnerProduct || base_ == nullptr) return;
    const uint8_t* head = HeadRow(q);
    if (head == nullptr) return;
    appended_radius_.Grow(q, kernels::EuclideanOf(config_.metric, dist_(pf, head, config_.dim)));
  }
  // The checks every lexical or hybrid search makes first: k in range, a lexical index.
  absl::Status CheckTextSearch(uint32_t k) const {
    RETURN_IF_ERROR(CheckNotDropped());
    if (k == 0 || k > kMaxTextK) {
      return absl::InvalidArgumentError(
          absl::StrCat("k of a lexical or hybrid search must be in [1, ", kMaxTextK, "], got ", k));
    }
    if (!options_.payload_text) {
      return absl::FailedPreconditionError(
          absl::StrCat("collection '", config_.name, "' has no lexical index"));
    }
    return absl::OkStatus();
  }
  // The text of point `id` as the lexical index read it, from its stored payload (phrase checks).
  absl::StatusOr<std::string> StoredText(VectorId id, const StoreSnapshot* at) const {
    ASSIGN_OR_RETURN(std::string payload, store_->Get(Cf::kPayloads, IdKey(config_.id, id), at));
    return options_.payload_text(payload, config_.text_fields);
  }
  // Rebuilds the lexical index from the stored payloads of the live points (text_index.h).
  absl::Status RebuildTextIndex() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The lexical terms of a payload ({} without a lexical index or payload).
  std::vector<std::string> PayloadTerms(absl::string_view payload) const {
    if (!options_.payload_text || payload.empty()) return {};
    return AnalyzeText(options_.payload_text(payload, config_.text_fields));
  }
  // Checks a query vector and converts it to posting form (`q`, row_bytes_).
  absl::Status QueryForm(VectorView query, std::vector<uint8_t>* q) const;
  // The k nearest live points to `q` (posting form), nearest first, by internal id.
  // In a tenant's view, the k nearest of its points only (index/collection.h, "Tenants").
  // `view` is updated when the search released mu_ (SearchIndex): the caller's view after it.
  absl::Status DenseSearch(const uint8_t* q, uint32_t k, const SearchParams& params, ViewRef* view,
                           std::vector<Neighbor>* result, SearchStats* st) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // DenseSearch over the built index (base_), reading its postings with mu_ released
  // (SearchRelock). Aborted when an install replaced the index meanwhile.
  absl::Status SearchIndex(const uint8_t* q, uint32_t k, const SearchParams& params, ViewRef* view,
                           std::vector<Neighbor>* result, SearchStats* st) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The SearchLock of SearchIndex: releases mu_ (held shared) for the postings' reads, then takes
  // it again and gives the overlay as it is then.
  class SearchRelock final : public SearchLock {
   public:
    SearchRelock(const CollectionImpl* c, const ViewRef& view) ABSL_SHARED_LOCKS_REQUIRED(c->mu_)
        : c_(c),
          base_(c->base_.get()),
          gen_(c->generation_),
          tenant_(view.ids != nullptr ? c->tenants_.Name(view.tenant) : std::string()),
          view_(view),
          overlay_{absl::MakeConstSpan(c->skip_bits_),
                   &c->appended_,
                   view.ids,
                   &c->heads_overlay_,
                   this,
                   c->BuiltLiveShare()} {}
    void Unlock() override ABSL_NO_THREAD_SAFETY_ANALYSIS { c_->mu_.ReaderUnlock(); }
    absl::StatusOr<SearchOverlay> Relock() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      c_->mu_.ReaderLock();
      RETURN_IF_ERROR(c_->CheckNotDropped());  // (its records go after: catalog.h, Drop)
      if (!tenant_.empty()) {
        // The tenant's view again, by name: a tenant dropped meanwhile has none (its number may
        // even be another tenant's now); one made again under the name is a new, empty view.
        absl::StatusOr<TenantAccess::Tenant> t = c_->tenants_.Find(tenant_);
        if (!t.ok()) {
          return absl::NotFoundError(
              absl::StrCat("tenant '", tenant_, "' was dropped during the search"));
        }
        view_ = ViewRef{&c_->tenants_.Members(*t), *t};
      }
      if (c_->base_.get() != base_ || c_->generation_ != gen_) {
        return absl::AbortedError("the index was rebuilt during the search");
      }
      overlay_ = SearchOverlay{absl::MakeConstSpan(c_->skip_bits_),
                               &c_->appended_,
                               view_.ids,
                               &c_->heads_overlay_,
                               this,
                               c_->BuiltLiveShare()};
      return overlay_;
    }
    // The view and overlay as the last Relock() found them (at first, as given).
    const ViewRef& view() const { return view_; }
    const SearchOverlay& overlay() const { return overlay_; }

   private:
    const CollectionImpl* const c_;
    const SpannIndex* const base_;
    const uint64_t gen_;
    const std::string tenant_;  // empty: the whole collection
    ViewRef view_;
    SearchOverlay overlay_;
  };

  // The exact distances from `q` (posting form) to live points `ids`' stored vectors.
  absl::Status DistancesTo(const uint8_t* q, absl::Span<const VectorId> ids,
                           std::vector<float>* out) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // A synced commit of `batch` holding mu_ across the sync: only at open (Load), when no reader
  // can wait on it yet.
  absl::Status CommitLocked(WriteBatch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    RETURN_IF_ERROR(extents_.Sync());
    return store_->Write(batch, /*sync=*/true);
  }
  // Makes durable the extent chunks a plan appended to the extents' file, before the batch that
  // points to them commits. The file is the writer's (write_mu_: plans append to it, this syncs
  // it); mu_ guards the extents' layouts, which this does not touch, so it is not held across
  // the fsync.
  absl::Status SyncExtents() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return extents_.Sync();
  }
  // Copies the live extent chunks into a new file, called when the extents' file has grown past
  // twice their bytes and the slack (TenantExtents::WantsCompaction); after an acknowledged write,
  // under write_mu_ only (the write that crossed the threshold waits for the copy: ~0.15 s for
  // 78 MiB). A failure is logged, and tried again once the file has grown by the slack: the
  // write that came before it is done.
  void MaybeCompactExtents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Every write of the collection's state, in three steps ("Locks" in collection.h): `plan`
  // reads the state with mu_ held shared (searches go on) and fills `batch`; a non-empty batch
  // is committed, holding no lock a reader takes; then it is published and `apply` changes the
  // in-memory state, with mu_ held exclusively. Nothing is applied unless the commit succeeded.
  // The caller holds write_mu_, so what `plan` read is what `apply` changes.
  //
  // Every batch is synced before it is applied (under write_mu_, as LevelDB's writer at the front
  // of its queue syncs its group: readers go on). `commit`: kAcknowledged's readers read the store
  // as it was before it until then. kMaintenance is for a write that acknowledges nothing to a
  // caller and writes only families no reader reads from the store (versions, postings, heads:
  // posting maintenance): it needs no snapshot for readers, which saves waiting twice for the
  // searches under way. (A Get at a search's moment reads versions, for the live bit only, which
  // maintenance never changes: its reassignments bump the version of a live vector.) (Steps once
  // went to the log unsynced, synced by their thread with the lock free; a sync per step measured
  // no slower with two threads running steps, and it keeps every record before the log's end
  // synced, which the strict WAL recovery counts on.)
  enum class Commit { kAcknowledged, kMaintenance };
  absl::Status Write(WriteBatch* batch, absl::FunctionRef<absl::Status()> plan,
                     absl::FunctionRef<void()> apply, Commit commit = Commit::kAcknowledged)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_) {
    rows_wanted_ = 0;
    {
      ReaderMutexLock lock(&mu_);
      RETURN_IF_ERROR(plan());
    }
    if (batch->count() == 0) return absl::OkStatus();
    const bool acknowledged = commit == Commit::kAcknowledged;
    // Room for the rows `apply` will store, made before the commit so that it cannot fail after:
    // the disk space with no lock a reader takes, then its mapping (which may move the rows)
    // with mu_ held exclusively.
    bool remap = false;
    if (rows_wanted_ > 0) {
      RETURN_IF_ERROR(AllocateAppendedRoom(rows_wanted_));
      ReaderMutexLock lock(&mu_);
      remap = !appended_.HasRoom(rows_wanted_);
    }
    if (acknowledged || remap) {
      WriterMutexLock lock(&mu_);
      if (remap) RETURN_IF_ERROR(appended_.Reserve(rows_wanted_));
      // Until the batch is shown, readers read the store as it was before it.
      if (acknowledged) snap_ = store_->Snapshot();
    }
    if (!acknowledged) {
      for (const WriteBatch::Entry& e : batch->entries()) {
        DCHECK(e.cf == Cf::kVersions || e.cf == Cf::kPostings || e.cf == Cf::kHeads);
      }
    }
    absl::Status committed = SyncExtents();
    if (committed.ok()) committed = store_->Write(batch, /*sync=*/true);
    if (committed.ok() && options_.test_after_commit) options_.test_after_commit();
    bool compact = false;
    {
      WriterMutexLock lock(&mu_);
      snap_.reset();  // the store and the state agree again: readers read the store's latest
      if (!committed.ok()) return committed;
      apply();
      compact = acknowledged && extents_.WantsCompaction();
    }
    TrimAppendedRows();  // (what a build's apply stopped mapping)
    if (compact) MaybeCompactExtents();
    return absl::OkStatus();
  }
  // AppendedVectors::AllocateRoom under write_mu_ alone: only writers change the rows' file, and
  // the allocation leaves the mapping that searches read (under mu_) as it is.
  absl::Status AllocateAppendedRoom(uint64_t rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return appended_.AllocateRoom(rows);
  }
  // AppendedVectors::Trim, likewise under write_mu_ alone.
  void TrimAppendedRows() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    appended_.Trim();
  }
  // The internal id of `ext`, read at `at` (null = the latest state: writers, under write_mu_).
  absl::StatusOr<VectorId> LookupExt(uint64_t ext, const StoreSnapshot* at = nullptr) const {
    auto v = store_->Get(Cf::kIdMap, ExtKey(config_.id, ext), at);
    if (!v.ok()) return v.status();
    if (v->size() != 4) {
      return absl::DataLossError(absl::StrCat("id map entry of ", ext, " is malformed"));
    }
    return ReadU32(*v, 0);
  }
  // Builds generation `gen` of the index from `set` (rows carry internal ids `ids` at
  // `versions`) into its directory, atomically (a .tmp directory renamed when complete).
  absl::Status BuildGeneration(uint64_t gen, const VectorSet& set, absl::Span<const VectorId> ids,
                               absl::Span<const uint8_t> versions,
                               std::function<void(const char*, uint64_t, uint64_t)> progress);
  // Switches to generation `gen`: carries over the writes made since its snapshot, commits, and
  // drops the previous generation.
  // `requests_seen`: the build requests (RequestBuild) made before the snapshot; a request made
  // after it stays recorded.
  absl::Status Install(uint64_t gen, absl::Span<const VectorId> ids,
                       absl::Span<const uint8_t> versions, uint64_t requests_seen);
  void RebuildSkipBits() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    skip_bits_.assign(ids_.size() / 8 + 1, 0);
    skipped_in_base_ = 0;
    for (VectorId id = 0; id < ids_.size(); ++id) SetSkip(id);
  }
  // The share of the built index's vectors whose built entries are served (SearchOverlay).
  float BuiltLiveShare() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    if (indexed_ == 0) return 1;
    DCHECK(skipped_in_base_ <= indexed_);
    return static_cast<float>(indexed_ - skipped_in_base_) / static_cast<float>(indexed_);
  }
  // More than half the built vectors' entries dead (deleted, replaced or reassigned since the
  // build; a split's move keeps a vector's other built entries served): the built postings then
  // serve under half what they hold, a search at a given budget finds fewer live neighbours
  // than a rebuild's would (bench/RESULTS.md, "Dead entries"), and a rebuild is wanted.
  bool MostlyDead() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return skipped_in_base_ > indexed_ / 2;
  }

  MetadataStore* const store_;
  const std::string dir_;
  const CollectionConfig config_;  // as opened; its index_generation is generation_'s start
  uint64_t generation_ ABSL_GUARDED_BY(mu_);
  const CollectionOptions options_;
  Env& env_;  // options_.env or the POSIX one
  const size_t row_bytes_;
  // The small tenants' extents (tenant_extent.h): which chunks each has.
  TenantExtents extents_ ABSL_GUARDED_BY(mu_);
  mutable std::atomic<uint64_t> extents_found_wrong_{0};  // CollectionStats::extents_found_wrong
  // Larger tenants' rows grouped by the collection's cells (cell_extent.h, tenant_cells.h); the
  // cells are null until a tenant first needs them.
  CellExtents cell_extents_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const TenantCells> cells_ ABSL_GUARDED_BY(mu_);
  const kernels::DistanceFn dist_;
  const kernels::DistanceFn f16_dist_;  // float32 query vs float16 vector (float16 postings)
  const kernels::ToHalfFn to_half_;     // float32 -> float16, as float16 postings store them
  std::atomic<bool> dropped_{false};
  mutable Mutex drop_failed_mu_;
  std::string drop_failed_ ABSL_GUARDED_BY(drop_failed_mu_);  // why the drop's write failed
  std::atomic<bool> builds_stopped_{false};                   // StopBuilds()
  std::atomic<bool> drop_committed_{false};  // the catalog's drop is durable: the files go
  mutable std::atomic<uint64_t> pages_read_{0}, bytes_read_{0};

  Mutex build_mu_ ABSL_ACQUIRED_BEFORE(write_mu_, mu_);  // one build at a time
  // Writers one at a time (LevelDB's writer queue, without the grouping): a write holds it from
  // its plan (read under mu_ shared, so searches go on) through its synced commit (no mu_ at all)
  // to its publication (mu_ exclusive, briefly). What a plan read cannot change before it is
  // applied, since every change of the state below is made under this lock.
  Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  // Rows a write's `plan` says its `apply` may store at most (Write makes room for them first).
  uint64_t rows_wanted_ ABSL_GUARDED_BY(write_mu_) = 0;
  // While a write commits (Write): the metadata store as it was before, which readers read so
  // that it agrees with the state below (a point being deleted still has its vector, one being
  // replaced its old one). Null otherwise: readers read the store's latest, and no snapshot
  // holds back RocksDB's compactions.
  std::shared_ptr<const StoreSnapshot> snap_ ABSL_GUARDED_BY(mu_);
  // Shared with searches reading its postings with mu_ released (a build's install may replace it
  // meanwhile; the search keeps the old one alive, then finds the generation changed and retries).
  std::shared_ptr<SpannIndex> base_ ABSL_GUARDED_BY(mu_);
  std::vector<IdState> ids_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> ext_of_ ABSL_GUARDED_BY(mu_);
  std::vector<uint8_t> skip_bits_ ABSL_GUARDED_BY(mu_);
  // Ids of the built index (indexed_ of them) whose skip bit is set (SetSkip keeps the count).
  uint64_t skipped_in_base_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t live_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t indexed_ ABSL_GUARDED_BY(mu_) = 0;
  // Vectors not served by the built index (all of them while FLAT), in posting form: those
  // written since the build, and their postings' entries (the search reads them under mu_ held
  // shared, through the overlay). Their rows lie in a mapped scratch file (kAppendedRowsFile),
  // filled again at every open.
  internal::AppendedVectors appended_ ABSL_GUARDED_BY(mu_);
  // Heads posting maintenance added and retired since the generation was built, and how many
  // times they changed (a step that finds them changed since it read them makes its own changes
  // again over them as they are).
  internal::HeadOverlay heads_overlay_ ABSL_GUARDED_BY(mu_);
  uint64_t heads_version_ ABSL_GUARDED_BY(mu_) = 0;
  struct MaintenanceCounts {
    uint64_t splits = 0, merges = 0, rewrites = 0, seeds = 0, reassigned = 0;
  };
  MaintenanceCounts maintained_ ABSL_GUARDED_BY(mu_);
  // How far each posting's appended primaries lie from its head (posting_radii.h): a split
  // checks, beside its neighbouring postings, the farther ones wide enough to reach a new head.
  // Not kept under the inner product.
  internal::PostingRadii appended_radius_ ABSL_GUARDED_BY(mu_);
  // The Euclidean distance past which a vector is far from every head (kSeedSpacings times the
  // built heads' median spacing, measured when the generation opens); a posting whose appended
  // primaries reach past it is queued, and its step gives those vectors heads of their own
  // ("Seeding" in index/collection.h). 0: never (inner product, or too few heads).
  float seed_radius_ ABSL_GUARDED_BY(mu_) = 0;
  // Postings to look at, queued by writes (under mu_) and taken by maintenance; the postings
  // the steps under way work on (no other step takes them meanwhile) and how many steps are under
  // way; and the background threads' stop flag.
  mutable Mutex pending_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::flat_hash_set<uint32_t> pending_ ABSL_GUARDED_BY(pending_mu_);
  absl::flat_hash_set<uint32_t> in_step_ ABSL_GUARDED_BY(pending_mu_);
  size_t steps_ ABSL_GUARDED_BY(pending_mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(pending_mu_) = false;
  bool paused_ ABSL_GUARDED_BY(pending_mu_) = false;  // building_: maintenance waits for it
  // The number the next head a step adds gets, at least (steps side by side number theirs apart;
  // 0 after an install: from the overlay's next_head()).
  uint32_t next_added_head_ ABSL_GUARDED_BY(pending_mu_) = 0;
  std::vector<std::thread> maintainers_;
  bool building_ ABSL_GUARDED_BY(mu_) = false;
  // Not OK while the index generation on disk cannot be opened (Load); cleared by the rebuild.
  absl::Status damage_ ABSL_GUARDED_BY(mu_);
  // A posting a search found failing its checksum (or unreadable): the index serves on - the
  // searches that read that posting fail with DataLoss - but is reported damaged and wants a
  // rebuild. Its own lock, as searches (readers of mu_) set it; cleared by Install.
  mutable Mutex read_damage_mu_ ABSL_ACQUIRED_AFTER(mu_);
  mutable std::string read_damage_ ABSL_GUARDED_BY(read_damage_mu_);
  std::vector<VectorId> dirty_ ABSL_GUARDED_BY(mu_);  // written while building_
  TextIndex text_ ABSL_GUARDED_BY(mu_);               // empty unless options_.payload_text
  TenantAccess tenants_ ABSL_GUARDED_BY(mu_);
  // The learned hybrid weight (config_'s hybrid_* as opened, then SetHybridDefault's).
  struct HybridDefault {
    double weight;
    double mrr;
    uint32_t questions;
  };
  HybridDefault hybrid_ ABSL_GUARDED_BY(mu_);
  // As the collection record says (RequestBuild sets it, an install clears it).
  bool build_requested_ ABSL_GUARDED_BY(mu_);
  // RequestBuild calls since the collection opened (changed under write_mu_ too).
  uint64_t build_requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t BuildRequestsSoFar() const {
    ReaderMutexLock lock(&mu_);
    return build_requests_;
  }
  // Writes the collection record with build_requested = `requested` (nothing when it says so
  // already), unless `unless_requested_since` is given and RequestBuild was called since that
  // count (a clear then leaves the newer request recorded).
  absl::Status SetBuildRequested(bool requested, std::optional<uint64_t> unless_requested_since);
};

}  // namespace strata::collection_internal

#endif  // STRATA_INDEX_INTERNAL_COLLECTION_IMPL_H_
