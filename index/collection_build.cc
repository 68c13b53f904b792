// CollectionImpl's index builds: the build request, the build of a generation beside searches
// and writes, and its install (index/internal/collection_impl.h).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/check.h"
#include "base/mutex.h"
#include "index/collection.h"
#include "index/internal/appended_vectors.h"
#include "index/internal/collection_impl.h"
#include "index/internal/head_overlay.h"
#include "index/internal/id_state.h"
#include "index/internal/ids_file.h"
#include "index/kernels/distance.h"
#include "index/tenant_extent.h"
#include "index/vector_rules.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {

absl::Status CollectionImpl::RequestBuild() {
  RETURN_IF_ERROR(CheckNotDropped());
  {
    MutexLock write_lock(&write_mu_);  // (as a clear checks the count: SetBuildRequested)
    WriterMutexLock lock(&mu_);
    // (Counted even when one is recorded already: a build whose snapshot came before this request
    // leaves it recorded, for the build the request queues.)
    ++build_requests_;
  }
  return SetBuildRequested(true, std::nullopt);
}

absl::Status CollectionImpl::SetBuildRequested(bool requested,
                                               std::optional<uint64_t> unless_requested_since) {
  RETURN_IF_ERROR(CheckNotDropped());
  // (Both fields change only under write_mu_, held from here to the commit.)
  MutexLock write_lock(&write_mu_);
  {
    ReaderMutexLock lock(&mu_);
    if (build_requested_ == requested) return absl::OkStatus();
    if (unless_requested_since.has_value() && build_requests_ != *unless_requested_since) {
      return absl::OkStatus();  // asked for again since: it stays
    }
  }
  WriteBatch batch;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    CollectionConfig next = Record(generation_);
    next.build_requested = requested;
    batch.Put(Cf::kCollections, next.name, next.Serialize());
    return absl::OkStatus();
  };
  return Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    build_requested_ = requested;
  });
}

absl::Status CollectionImpl::BuildGeneration(
    uint64_t gen, const VectorSet& set, absl::Span<const VectorId> ids,
    absl::Span<const uint8_t> versions,
    std::function<void(const char*, uint64_t, uint64_t)> progress) {
  std::string final_dir = GenerationDir(dir_, gen);
  std::string tmp = final_dir + ".tmp";
  RETURN_IF_ERROR(env_.RemoveTree(tmp));
  SpannBuildOptions bo;
  bo.env = &env_;
  bo.metric = config_.metric;
  bo.head_share = config_.head_share;
  bo.max_replicas = config_.max_replicas;
  bo.posting_page_limit = config_.posting_page_limit;
  bo.posting_encoding = config_.posting_encoding;
  bo.threads = options_.build_threads;
  bo.ids = ids;
  bo.progress = std::move(progress);
  // A drop, or a server stopping, stops the build within about one piece of work per thread.
  bo.cancelled = [this] { return dropped_.load() || builds_stopped_.load(); };
  // Small sets: a head share that leaves at least a few heads.
  SpannBuildStats bs;
  absl::Status built = SpannIndex::Build(set, tmp, bo, &bs);
  if (built.ok()) built = internal::WriteIdsFile(env_, tmp, ids, versions);
  if (!built.ok()) {
    // What it wrote goes now, not at the next open: a build that ran out of disk must not keep
    // the disk full.
    if (absl::Status s = env_.RemoveTree(tmp); !s.ok()) {
      Log(LogLevel::kWarning, "collection '%s': removing %s: %s", config_.name, tmp, s.message());
    }
    if (absl::IsCancelled(built)) RETURN_IF_ERROR(CheckBuildGoesOn());
    return built;
  }
  // Every file in `tmp` is synced, and so is `tmp` (WriteFileAtomic syncs the directory it
  // writes in); the rename is durable once `dir_` is. A directory of this generation already
  // there is an earlier build's whose install failed (never the live one: gen is past it), which
  // would make the rename fail.
  RETURN_IF_ERROR(env_.RemoveTree(final_dir));
  RETURN_IF_ERROR(env_.RenameFile(tmp, final_dir));
  RETURN_IF_ERROR(env_.SyncDir(dir_));
  Log(LogLevel::kInfo, "collection '%s': built index generation %d (%d vectors, %d heads)",
      config_.name, gen, set.n, bs.heads);
  return absl::OkStatus();
}

absl::Status CollectionImpl::Install(uint64_t gen, absl::Span<const VectorId> ids,
                                     absl::Span<const uint8_t> versions, uint64_t requests_seen) {
  std::string gdir = GenerationDir(dir_, gen);
  ASSIGN_OR_RETURN(std::unique_ptr<SpannIndex> fresh, SpannIndex::Open(gdir, options_.open));
  const float seed_radius = SeedRadiusOf(*fresh);

  MutexLock write_lock(&write_mu_);
  const uint32_t coll = config_.id;
  // By internal id: whether the new generation holds it, and at which version.
  std::vector<uint8_t> in_new, new_version;
  struct Carried {
    VectorId id;
    std::vector<uint8_t> pf;
    std::vector<uint32_t> postings;
  };
  std::vector<Carried> carried;
  WriteBatch batch;
  uint64_t old_gen = 0;
  bool keep_request = false;  // a build request made after the snapshot
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    // Membership of the new generation.
    in_new.assign(ids_.size(), 0);
    new_version.assign(ids_.size(), 0);
    for (size_t i = 0; i < ids.size(); ++i) {
      in_new[ids[i]] = 1;
      new_version[ids[i]] = versions[i];
    }
    // Every live vector the new generation does not hold at its current version is appended to
    // it. Those are the writes made since the snapshot (`dirty_`); a version that cycled all the
    // way round during one build (256 upserts of one id) would be missed, which is accepted.
    std::vector<VectorId> carry;
    {
      absl::flat_hash_set<VectorId> dirty(dirty_.begin(), dirty_.end());
      for (VectorId id : dirty) {
        if ((ids_[id].flags & kLive) && !(in_new[id] && new_version[id] == ids_[id].version)) {
          carry.push_back(id);
        }
      }
    }
    // The posting entries and head records go one by one, not as a range: a range deletion over a
    // family that holds little else leaves compactions whose output is the range tombstone alone,
    // on which Debian's RocksDB 7.8 asserts (CompactionJob stats take the smallest key of an empty
    // output; seen under power_loss_test, the posting entries' range once a build's first
    // install wrote it over an empty family). They are as many as the entries appended since the
    // last build.
    for (Cf cf : {Cf::kPostings, Cf::kHeads}) {
      RETURN_IF_ERROR(store_->Scan(cf, CollPrefix(coll), [&](auto key, auto) {
        batch.Delete(cf, std::string(key));
        return absl::OkStatus();
      }));
    }
    for (VectorId id : carry) {
      const uint8_t* row = AppendedRow(id);
      if (row == nullptr) {
        return absl::InternalError(absl::StrCat("vector ", ext_of_[id], " lost during a build"));
      }
      Carried c{id, std::vector<uint8_t>(row, row + row_bytes_), {}};
      RETURN_IF_ERROR(fresh->AssignPostings(VectorView{config_.type, c.pf}, &c.postings));
      batch.Put(Cf::kPostings, IdKey(coll, id), PostingsValue(ids_[id].version, c.postings));
      carried.push_back(std::move(c));
    }
    CollectionConfig next = Record(gen);
    // Done, unless asked for again after this build's snapshot (that build is still to come).
    keep_request = build_requested_ && build_requests_ != requests_seen;
    next.build_requested = keep_request;
    batch.Put(Cf::kCollections, next.name, next.Serialize());
    return absl::OkStatus();
  };
  const auto apply = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    // Committed: switch.
    old_gen = generation_;
    build_requested_ = keep_request;
    generation_ = gen;
    base_ = std::move(fresh);
    seed_radius_ = seed_radius;
    for (VectorId id = 0; id < ids_.size(); ++id) {
      ids_[id].flags = static_cast<uint8_t>((ids_[id].flags & kLive) | (in_new[id] ? kInBase : 0));
      ids_[id].base_version = new_version[id];
    }
    indexed_ = ids.size();
    appended_.Clear(/*keep_rows=*/carried.size());  // (room they had, as rows of their own)
    heads_overlay_.Clear(base_->head_graph());
    heads_overlay_.Freeze();  // (steps copy it)
    ++heads_version_;
    appended_radius_.Clear();
    {
      MutexLock pending_lock(&pending_mu_);
      pending_.clear();
      next_added_head_ = 0;  // (numbered from the new index's heads up)
    }
    for (const Carried& c : carried) AddAppended(c.id, c.pf.data(), c.postings);
    // (Postings the carried vectors made long, or reach far in, are queued.)
    for (const Carried& c : carried) NotePostings(c.postings, /*shrunk=*/false);
    RebuildSkipBits();
    SetBuilding(false);
    dirty_.clear();
    if (!damage_.ok()) {
      Log(LogLevel::kInfo, "collection '%s': repaired (%s)", config_.name, damage_.message());
      damage_ = absl::OkStatus();
    }
    {
      MutexLock damage_lock(&read_damage_mu_);
      if (!read_damage_.empty()) {
        Log(LogLevel::kInfo, "collection '%s': repaired (%s)", config_.name, read_damage_);
        read_damage_.clear();
      }
    }
  };
  RETURN_IF_ERROR(Write(&batch, plan, apply));
  if (old_gen != 0 && old_gen != gen) {
    if (absl::Status s = env_.RemoveTree(GenerationDir(dir_, old_gen)); !s.ok()) {
      Log(LogLevel::kWarning, "collection '%s': removing generation %d: %s", config_.name, old_gen,
          s.message());
    }
  }
  Log(LogLevel::kInfo, "collection '%s': generation %d live (%d vectors, %d carried over)",
      config_.name, gen, ids.size(), carried.size());
  return absl::OkStatus();
}

absl::Status CollectionImpl::BuildIndex(
    std::function<void(const char*, uint64_t, uint64_t)> progress) {
  auto report = [&](const char* phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  RETURN_IF_ERROR(CheckBuildGoesOn());
  MutexLock build_lock(&build_mu_);
  std::vector<VectorId> ids;
  std::vector<uint8_t> versions;
  uint64_t gen = 0;
  uint64_t requests_seen = 0;  // build requests made before this build's snapshot
  {
    MutexLock write_lock(&write_mu_);
    WriterMutexLock lock(&mu_);
    requests_seen = build_requests_;
    if (live_ != 0) {
      SetBuilding(true);
      dirty_.clear();
      for (VectorId id = 0; id < ids_.size(); ++id) {
        if (ids_[id].flags & kLive) {
          ids.push_back(id);
          versions.push_back(ids_[id].version);
        }
      }
      gen = generation_ + 1;
    }
  }
  if (gen == 0) {
    // A build asked for is done with: a retry at the next start would find nothing either.
    if (absl::Status s = SetBuildRequested(false, requests_seen); !s.ok()) {
      Log(LogLevel::kWarning, "collection '%s': its build request stays recorded: %s", config_.name,
          s.message());
    }
    return absl::FailedPreconditionError(
        absl::StrCat("collection '", config_.name, "' is empty: nothing to index"));
  }
  auto fail = [&](absl::Status s) {
    MutexLock write_lock(&write_mu_);
    WriterMutexLock lock(&mu_);
    SetBuilding(false);
    dirty_.clear();
    return s;
  };
  // The vectors of the snapshot. Writes go on meanwhile; any id they touch is in dirty_ and is
  // carried over by Install, so a vector read here at a newer version than recorded is harmless.
  report("reading vectors", 0, ids.size());
  VectorSet set;
  set.type = config_.type;
  set.dim = config_.dim;
  set.data.reserve(ids.size() * row_bytes_);
  std::vector<VectorId> kept_ids;
  std::vector<uint8_t> kept_versions;
  kept_ids.reserve(ids.size());
  size_t next = 0;
  std::vector<uint64_t> refused;  // the first few internal ids left out (external in the log)
  uint64_t refused_count = 0;
  // (A sweep: a pass over every vector must not evict what searches keep in the block cache.)
  absl::Status scan =
      store_->Sweep(Cf::kVectors, CollPrefix(config_.id), [&](auto key, auto value) {
        RETURN_IF_ERROR(CheckBuildGoesOn());  // (two atomic loads a row)
        VectorId id = ReadU32(key, 4);
        while (next < ids.size() && ids[next] < id) ++next;
        if (next < ids.size() && ids[next] == id && value.size() == row_bytes_) {
          // Rows stored before index/vector_rules.h refused them (a zero vector under cosine, a
          // norm whose distances overflow) stay stored but are left out of the index.
          if (!CheckVectorValues(config_.type, config_.metric, config_.dim,
                                 reinterpret_cast<const uint8_t*>(value.data()))
                   .ok()) {
            if (refused.size() < 10) refused.push_back(id);
            ++refused_count;
            return absl::OkStatus();
          }
          set.data.insert(set.data.end(), value.begin(), value.end());
          kept_ids.push_back(id);
          kept_versions.push_back(versions[next]);
        }
        return absl::OkStatus();
      });
  if (!scan.ok()) return fail(scan);
  report("reading vectors", ids.size(), ids.size());
  if (refused_count > 0) {
    {
      // The scan ran without the lock (writers go on): ext_of_ may have grown meanwhile.
      ReaderMutexLock lock(&mu_);
      for (uint64_t& id : refused) id = id < ext_of_.size() ? ext_of_[id] : id;
    }
    Log(LogLevel::kWarning,
        "collection '%s': %d stored vectors break the vector rules (a zero vector under cosine, "
        "or a norm over 1e18) and are left out of the index (ids %s%s); they were stored before "
        "the rules existed: upsert them again with valid vectors or delete them",
        config_.name, refused_count, absl::StrJoin(refused, ", "),
        refused_count > refused.size() ? ", ..." : "");
  }
  set.n = kept_ids.size();
  if (set.n == 0) {
    (void)SetBuildRequested(false, requests_seen);  // (as for an empty collection, above)
    return fail(absl::FailedPreconditionError("no vectors left to index"));
  }
  absl::Status s = BuildGeneration(gen, set, kept_ids, kept_versions, progress);
  if (!s.ok()) return fail(s);
  // The tenants' cells (tenant_cells.h): from the vectors at hand, the first time, and again once
  // the collection has grown into twice as many.
  std::shared_ptr<const TenantCells> cells;
  uint32_t have_cells;
  {
    ReaderMutexLock lock(&mu_);
    have_cells = cells_ != nullptr ? cells_->size() : 0;
  }
  if (absl::Status go = CheckBuildGoesOn(); !go.ok()) return fail(go);
  if (have_cells == 0 ||
      TenantCells::CellsFor(set.n, options_.tenant_cells) >= uint64_t{2} * have_cells) {
    absl::StatusOr<std::shared_ptr<const TenantCells>> made = MakeCells(set);
    if (!made.ok()) return fail(made.status());
    cells = *std::move(made);
  }
  set = {};
  report("installing", 0, 1);
  s = Install(gen, kept_ids, kept_versions, requests_seen);
  if (!s.ok()) return fail(s);
  report("installing", 1, 1);
  return InstallCellsAfterBuild(std::move(cells));
}

absl::Status CollectionImpl::InstallCellsAfterBuild(std::shared_ptr<const TenantCells> cells) {
  if (cells == nullptr) return absl::OkStatus();
  absl::Status s = InstallCells(std::move(cells));
  if (s.ok()) return s;
  return absl::Status(s.code(),
                      absl::StrCat("the index was built and installed; the tenants' cells or cell "
                                   "extents were not (the next build makes them): ",
                                   s.message()));
}

bool CollectionImpl::WantsBuild() const {
  ReaderMutexLock lock(&mu_);
  if (building_ || dropped_.load() || live_ == 0) return false;
  if (!damage_.ok() || !ReadDamage().empty()) return true;
  if (base_ == nullptr) return live_ >= config_.build_threshold;
  // Grown well past its index: more vectors appended (written or moved since the build, their
  // rows in the scratch file, their entries in RAM) than half the built ones, or more heads
  // added than half the built ones. A rebuild puts both back into postings and the graph. Or
  // thinned well past it: more than half the built vectors' entries dead (MostlyDead).
  return appended_.size() > std::max<uint64_t>(indexed_ / 2, config_.build_threshold) ||
         heads_overlay_.added() > std::max<uint64_t>(base_->num_heads() / 2, 1024) || MostlyDead();
}

}  // namespace strata::collection_internal
