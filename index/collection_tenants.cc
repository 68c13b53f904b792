// CollectionImpl's tenant calls: creating, dropping and changing tenants and their access, and
// the small tenants' extents (tenant_extent.h) - planned with every write that changes a tenant's
// points or vectors, checked at open, and searched. The access sets themselves are
// tenant_access.h's; DenseSearch (collection.cc) chooses a view's search.
#include <algorithm>
#include <iterator>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/check.h"
#include "index/internal/collection_impl.h"
#include "index/top_k.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {

absl::StatusOr<bool> CollectionImpl::SearchExtent(const uint8_t* q, uint32_t k,
                                                  TenantAccess::Tenant t,
                                                  std::vector<Neighbor>* result,
                                                  SearchStats* st) const {
  result->clear();
  const IdSet& members = tenants_.Members(t);
  if (members.empty()) return true;
  TopK top;
  top.Reset(k);
  std::vector<uint8_t> pf;
  std::vector<uint16_t> half;
  uint64_t rows = 0, bytes = 0, pages = 0;
  // The rows must be exactly the tenant's points: ascending across the chunks (so no repeats),
  // each one of its points, as many as it has. Derived data found otherwise is never served.
  // (A sparse set is walked beside the rows: row i must be its i-th member.)
  bool exact = true;
  VectorId last = 0;
  const absl::Span<const uint32_t> sparse = members.SparseIds();
  const bool as_stored = ScoresAsStored();
  const absl::StatusOr<bool> found = extents_.Read(
      t,
      [&](VectorId id, const uint8_t* raw) {
        mu_.AssertReaderHeld();  // SearchExtent's
        if (!sparse.empty()) {
          exact &= rows < sparse.size() && sparse[rows] == id;
        } else {
          exact &= (rows == 0 || id > last) && members.Contains(id);
        }
        last = id;
        ++rows;
        if (!exact) return;
        top.Push(id,
                 as_stored ? dist_(q, raw, config_.dim) : StoredDistance(q, id, raw, &pf, &half));
      },
      &bytes, &pages);
  // (A malformed chunk is damage to derived data: searched around like a wrong one.)
  if (!found.ok() && !absl::IsDataLoss(found.status())) return found.status();
  if (found.ok() && *found && exact && rows == members.size()) {
    top.TakeSorted(result);
    st->entries_scanned = static_cast<uint32_t>(rows);
    st->bytes_read = bytes;
    st->pages_read = static_cast<uint32_t>(pages);
    return true;
  }
  // A bug, or damage: the search goes on without it (exactly, over the tenant's stored vectors),
  // and the tenant's next change makes it again whole.
  if (extents_.MarkBroken(t)) {
    extents_found_wrong_.fetch_add(1);
    Log(LogLevel::kError,
        "collection '%s': the extent of tenant '%s' is missing, malformed or holds other rows "
        "than the tenant's points (%s); searching its stored vectors until its next write makes "
        "it again",
        config_.name, tenants_.Name(t),
        found.ok() ? "read whole" : std::string(found.status().message()));
  }
  return false;
}

absl::StatusOr<bool> CollectionImpl::SearchCells(const uint8_t* q, uint32_t k,
                                                 const SearchParams& params, TenantAccess::Tenant t,
                                                 std::vector<Neighbor>* result,
                                                 SearchStats* st) const {
  result->clear();
  if (cells_ == nullptr || !cell_extents_.Has(t) || cell_extents_.Broken(t)) return false;
  const IdSet& members = tenants_.Members(t);
  std::vector<uint32_t> ranked;
  cells_->Rank(q, &ranked);
  // A budget asked for beyond the index's default reads cells in proportion.
  uint32_t probe = cells_->probe_cells();
  if (params.max_postings > 0 && base_ != nullptr && base_->default_max_postings() > 0) {
    probe = static_cast<uint32_t>(std::clamp<uint64_t>(
        uint64_t{probe} * params.max_postings / base_->default_max_postings(), 1, cells_->size()));
  }
  TopK top;
  top.Reset(k);
  std::vector<uint8_t> pf;
  std::vector<uint16_t> half;
  const bool as_stored = ScoresAsStored();
  // The cells' counts must add up to as many points as the tenant has (checked in memory; each
  // cell read holds its count: CellExtents::Read), and every row returned must be one of them,
  // once. (Only those returned: a membership test per row read - a plain binary search of a
  // sparse set, when this was measured - took more time than the distances. A row of another
  // point that is not returned shows nothing of it.)
  bool exact = cell_extents_.Rows(t) == members.size();
  uint64_t rows = 0, bytes = 0, pages = 0;
  uint32_t cells_read = 0;
  const absl::StatusOr<bool> found = cell_extents_.Read(
      *store_, t, snap_.get(), ranked, probe, uint64_t{CellExtents::kProbeRowsPerK} * k,
      [&](VectorId id, const uint8_t* raw) {
        mu_.AssertReaderHeld();  // SearchCells'
        ++rows;
        // (An id past the collection's is damage: StoredDistance would look it up.)
        if (id >= ids_.size()) exact = false;
        if (!exact) return;
        top.Push(id,
                 as_stored ? dist_(q, raw, config_.dim) : StoredDistance(q, id, raw, &pf, &half));
      },
      &bytes, &pages, &cells_read);
  if (!found.ok() && !absl::IsDataLoss(found.status())) return found.status();
  if (found.ok() && *found && exact) {
    top.TakeSorted(result);
    absl::flat_hash_set<VectorId> returned;
    for (const Neighbor& n : *result) {
      exact &= members.Contains(n.id) && returned.insert(n.id).second;
    }
  }
  if (found.ok() && *found && exact) {
    st->entries_scanned = static_cast<uint32_t>(rows);
    st->bytes_read = bytes;
    st->pages_read = static_cast<uint32_t>(pages);
    st->postings_read = cells_read;
    return true;
  }
  if (cell_extents_.MarkBroken(t)) {
    extents_found_wrong_.fetch_add(1);
    Log(LogLevel::kError,
        "collection '%s': the cell extent of tenant '%s' is missing, malformed or holds other "
        "rows than the tenant's points (%s); searching around it until its next write makes it "
        "again",
        config_.name, tenants_.Name(t),
        found.ok() ? "read whole" : std::string(found.status().message()));
  }
  result->clear();
  return false;
}

absl::Status CollectionImpl::PlanExtents(
    absl::Span<const TenantAccess::Change> access,
    const absl::flat_hash_map<VectorId, const uint8_t*>& vectors,
    const absl::flat_hash_set<TenantAccess::Tenant>& touched, WriteBatch* batch,
    ExtentPlan* plan) const {
  using Tenant = TenantAccess::Tenant;
  using Kind = TenantAccess::Change::Kind;
  *plan = ExtentPlan{};
  absl::flat_hash_map<Tenant, std::vector<const TenantAccess::Change*>> changed;
  absl::flat_hash_set<Tenant> dropped;
  for (const TenantAccess::Change& c : access) {
    if (c.kind == Kind::kDrop) {
      dropped.insert(c.tenant);
    } else if (c.kind == Kind::kGrant || c.kind == Kind::kRevoke) {
      changed[c.tenant].push_back(&c);
    }
  }
  for (Tenant t : touched) changed[t];
  for (Tenant t : dropped) changed[t];
  // Each changed tenant's point count after the batch (grants hold only new ids, revokes only
  // held ones).
  const auto size_after = [&](Tenant t, const std::vector<const TenantAccess::Change*>& list) {
    mu_.AssertReaderHeld();  // PlanExtents'
    if (dropped.contains(t)) return uint64_t{0};
    int64_t size = static_cast<int64_t>(tenants_.Members(t).size());
    for (const TenantAccess::Change* c : list) {
      const int64_t n = static_cast<int64_t>(c->ids.size());
      size += c->kind == Kind::kGrant ? n : -n;
    }
    DCHECK(size >= 0);
    return static_cast<uint64_t>(size);
  };
  // (No cells, no cell extents: a build makes the cells, and the cell extents of the tenants
  // that want them, InstallCells.)
  const TenantCells* cells = cells_.get();
  const auto fresh = [&](VectorId id) -> const uint8_t* {
    auto v = vectors.find(id);
    return v == vectors.end() ? nullptr : v->second;
  };
  const auto read_vectors = [&](absl::Span<const VectorId> ids,
                                std::vector<std::string>* out) -> absl::Status {
    write_mu_.AssertHeld();  // PlanExtents'
    return ReadStoredVectors(ids, out);
  };
  for (const auto& [t, list] : changed) {
    const uint64_t size = size_after(t, list);
    // The tenant's points after the batch.
    std::vector<VectorId> ids;
    // (Its extent, if it has one, holds its points before the batch.)
    const std::vector<VectorId> before =
        extents_.chunks(t) > 0 ? tenants_.Members(t).ToVector() : std::vector<VectorId>{};
    // (A tenant past the extent's size has none: its id list is not needed.)
    if (size > 0 && size <= extents_.max_rows()) {
      ids = extents_.chunks(t) > 0 ? before : tenants_.Members(t).ToVector();
      for (const TenantAccess::Change* c : list) {
        std::vector<VectorId> next;
        if (c->kind == Kind::kGrant) {
          std::set_union(ids.begin(), ids.end(), c->ids.begin(), c->ids.end(),
                         std::back_inserter(next));
        } else {
          std::set_difference(ids.begin(), ids.end(), c->ids.begin(), c->ids.end(),
                              std::back_inserter(next));
        }
        ids = std::move(next);
      }
      DCHECK_EQ(ids.size(), static_cast<size_t>(size));
    }
    if (!ids.empty() || extents_.chunks(t) > 0) {
      ASSIGN_OR_RETURN(TenantExtents::Change c,
                       extents_.Plan(t, before, ids, fresh, read_vectors, batch));
      plan->flat.push_back(std::move(c));
    }
    if (cells == nullptr) continue;
    // The ids the batch may change of t: whether t sees each before and after it.
    absl::flat_hash_map<VectorId, std::pair<bool, bool>> state;
    const IdSet& members = tenants_.Members(t);
    // (Also for a tenant that comes to want one: its extent is made whole from the state.)
    if (cell_extents_.Has(t) || cell_extents_.Wants(size)) {
      for (const TenantAccess::Change* c : list) {
        for (VectorId id : c->ids) {
          auto [at, fresh_entry] =
              state.try_emplace(id, members.Contains(id), members.Contains(id));
          at->second.second = c->kind == Kind::kGrant;
        }
      }
      if (touched.contains(t)) {
        for (const auto& [id, v] : vectors) {
          if (members.Contains(id)) state.try_emplace(id, true, true);
        }
      }
    }
    RETURN_IF_ERROR(PlanCellExtent(t, size, state, vectors, *cells, batch, plan));
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::ReadStoredVectors(absl::Span<const VectorId> ids,
                                               std::vector<std::string>* out) const {
  out->clear();
  out->reserve(ids.size());
  // In batches, so that a large tenant's read holds one batch of keys at a time.
  constexpr size_t kBatch = 4096;
  for (size_t from = 0; from < ids.size(); from += kBatch) {
    const size_t to = std::min(ids.size(), from + kBatch);
    std::vector<std::string> keys;
    keys.reserve(to - from);
    for (size_t i = from; i < to; ++i) keys.push_back(IdKey(config_.id, ids[i]));
    std::vector<absl::StatusOr<std::string>> stored = store_->MultiGet(Cf::kVectors, keys);
    for (size_t i = 0; i < stored.size(); ++i) {
      if (!stored[i].ok() && !absl::IsNotFound(stored[i].status())) return stored[i].status();
      if (!stored[i].ok() || stored[i]->size() != row_bytes_) {
        return absl::DataLossError(absl::StrCat("collection '", config_.name,
                                                "': stored vector of internal id ", ids[from + i],
                                                " is missing or of the wrong size"));
      }
      out->push_back(std::move(*stored[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::PlanCellExtent(
    TenantAccess::Tenant t, uint64_t size,
    const absl::flat_hash_map<VectorId, std::pair<bool, bool>>& state,
    const absl::flat_hash_map<VectorId, const uint8_t*>& vectors, const TenantCells& cells,
    WriteBatch* batch, ExtentPlan* plan) const {
  if (cell_extents_.Has(t) ? !cell_extents_.Keeps(size) : !cell_extents_.Wants(size)) {
    if (cell_extents_.Has(t)) {
      ASSIGN_OR_RETURN(CellExtents::Change c, cell_extents_.PlanDrop(*store_, t, batch));
      plan->cells.push_back(std::move(c));
    }
    return absl::OkStatus();
  }
  std::vector<uint8_t> pf(row_bytes_);
  const auto cell_of = [&](const uint8_t* raw) {
    ToPostingForm(raw, pf.data());
    return cells.CellOf(pf.data());
  };
  const auto fresh = [&](VectorId id) -> const uint8_t* {
    auto v = vectors.find(id);
    return v == vectors.end() ? nullptr : v->second;
  };
  if (cell_extents_.Has(t) && !cell_extents_.Broken(t)) {
    // Out: what t no longer sees, and what it sees with a new vector (filed under the cell of
    // the stored vector, the one the batch replaces). In: what it sees anew, and the new vectors.
    std::vector<VectorId> out_ids, read_in;
    std::vector<CellExtents::Row> additions;
    for (const auto& [id, s] : state) {
      const uint8_t* f = fresh(id);
      if (s.first && (!s.second || f != nullptr)) out_ids.push_back(id);
      if (s.second && (!s.first || f != nullptr)) {
        if (f != nullptr) {
          additions.push_back({id, cell_of(f), f});
        } else {
          read_in.push_back(id);
        }
      }
    }
    std::vector<std::string> old_rows, in_rows;
    RETURN_IF_ERROR(ReadStoredVectors(out_ids, &old_rows));
    RETURN_IF_ERROR(ReadStoredVectors(read_in, &in_rows));
    std::vector<CellExtents::Removal> removals;
    for (size_t i = 0; i < out_ids.size(); ++i) {
      removals.push_back(
          {out_ids[i], cell_of(reinterpret_cast<const uint8_t*>(old_rows[i].data()))});
    }
    for (size_t i = 0; i < read_in.size(); ++i) {
      const auto* raw = reinterpret_cast<const uint8_t*>(in_rows[i].data());
      additions.push_back({read_in[i], cell_of(raw), raw});
    }
    // Whether t sees a point after the batch (a fold checks its cells' rows against it).
    const IdSet& members = tenants_.Members(t);
    // (Called from the read fan-out's threads too: this thread's reader lock covers them, as
    // Plan returns only once they are done.)
    const auto sees = [&](VectorId id) {
      mu_.AssertReaderHeld();  // PlanCellExtent's
      auto s = state.find(id);
      return s != state.end() ? s->second.second : members.Contains(id);
    };
    absl::StatusOr<CellExtents::Change> c =
        cell_extents_.Plan(*store_, t, removals, additions, sees, batch);
    if (c.ok()) {
      plan->cells.push_back(*std::move(c));
      return absl::OkStatus();
    }
    if (!absl::IsDataLoss(c.status())) return c.status();
    Log(LogLevel::kError,
        "collection '%s': the cell extent of tenant '%s' disagrees with its points (%s); made "
        "again whole",
        config_.name, tenants_.Name(t), c.status().message());
  }
  // Whole: every point t sees after the batch.
  std::vector<VectorId> ids;
  tenants_.Members(t).ForEach([&](VectorId id) {
    auto s = state.find(id);
    if (s == state.end() || s->second.second) ids.push_back(id);
  });
  for (const auto& [id, s] : state) {
    if (s.second && !s.first) ids.push_back(id);
  }
  DCHECK_EQ(ids.size(), static_cast<size_t>(size));
  std::vector<VectorId> stored_ids;
  for (VectorId id : ids) {
    if (fresh(id) == nullptr) stored_ids.push_back(id);
  }
  std::vector<std::string> stored;
  RETURN_IF_ERROR(ReadStoredVectors(stored_ids, &stored));
  std::vector<CellExtents::Row> rows;
  rows.reserve(ids.size());
  size_t next = 0;
  for (VectorId id : ids) {
    const uint8_t* raw = fresh(id);
    if (raw == nullptr) raw = reinterpret_cast<const uint8_t*>(stored[next++].data());
    rows.push_back({id, cell_of(raw), raw});
  }
  ASSIGN_OR_RETURN(CellExtents::Change c, cell_extents_.PlanWhole(*store_, t, rows, batch));
  plan->cells.push_back(std::move(c));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const TenantCells>> CollectionImpl::MakeCells(
    const VectorSet& set) const {
  // (None for a collection under kMinPointsPerCell points a cell of the most it may have: too
  // small for a tenant past its flat extent to matter.)
  const uint32_t k = TenantCells::CellsFor(set.n, options_.tenant_cells);
  if (k == 0 || set.n < TenantCells::kMinPointsPerCell * options_.tenant_cells) return nullptr;
  // An even sample, in the posting form.
  const uint64_t n = std::min<uint64_t>(set.n, TenantCells::kSamplePerCell * k);
  std::vector<uint8_t> rows(n * row_bytes_);
  for (uint64_t i = 0; i < n; ++i) {
    ToPostingForm(set.row(i * set.n / n), rows.data() + i * row_bytes_);
  }
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(
      std::shared_ptr<const TenantCells> cells,
      TenantCells::Make(rows.data(), n, config_.type, config_.dim, config_.metric, dist_, k));
  Log(LogLevel::kInfo,
      "collection '%s': %d cells for the tenants' cell extents made from %d vectors in %.1f s "
      "(a search reads the nearest %d at least)",
      config_.name, cells->size(), n, absl::ToDoubleSeconds(absl::Now() - start),
      cells->probe_cells());
  return cells;
}

absl::Status CollectionImpl::InstallCells(std::shared_ptr<const TenantCells> cells) {
  {
    MutexLock write_lock(&write_mu_);
    WriteBatch batch;
    bool made = false;
    ExtentPlan dropped;
    RETURN_IF_ERROR(Write(
        &batch,
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          RETURN_IF_ERROR(CheckNotDropped());
          // (Made meanwhile, or as many already: kept.)
          if (cells_ != nullptr && cells_->size() >= cells->size()) return absl::OkStatus();
          batch.Put(Cf::kTenants, TenantCells::Key(config_.id), cells->Encode());
          // Cells made again (the collection outgrew them): the cell extents filed under the
          // old ones go in the same batch, and are made again below.
          for (TenantAccess::Tenant t : tenants_.Tenants()) {
            if (!cell_extents_.Has(t)) continue;
            ASSIGN_OR_RETURN(CellExtents::Change c, cell_extents_.PlanDrop(*store_, t, &batch));
            dropped.cells.push_back(std::move(c));
          }
          made = true;
          return absl::OkStatus();
        },
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
          if (!made) return;
          cells_ = cells;
          ApplyExtents(dropped);
        }));
  }
  // Each tenant's cell extent in a batch of its own (at most cell_extent_bytes of rows), the
  // writer lock let go in between.
  std::vector<TenantAccess::Tenant> tenants;
  {
    ReaderMutexLock lock(&mu_);
    for (TenantAccess::Tenant t : tenants_.Tenants()) {
      if (!cell_extents_.Has(t) && cell_extents_.Wants(tenants_.Members(t).size())) {
        tenants.push_back(t);
      }
    }
  }
  for (TenantAccess::Tenant t : tenants) {
    MutexLock write_lock(&write_mu_);
    WriteBatch batch;
    ExtentPlan plan;
    RETURN_IF_ERROR(Write(
        &batch,
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          RETURN_IF_ERROR(CheckNotDropped());
          // (Dropped, given one, or grown past it meanwhile: nothing to do.)
          const std::vector<TenantAccess::Tenant> now = tenants_.Tenants();
          if (std::find(now.begin(), now.end(), t) == now.end() || cell_extents_.Has(t) ||
              cells_ == nullptr) {
            return absl::OkStatus();
          }
          return PlanCellExtent(t, tenants_.Members(t).size(), {}, {}, *cells_, &batch, &plan);
        },
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) { ApplyExtents(plan); }));
  }
  if (!tenants.empty()) {
    Log(LogLevel::kInfo, "collection '%s': cell extents made for %d tenants", config_.name,
        tenants.size());
  }
  return absl::OkStatus();
}

void CollectionImpl::MaybeCompactExtents() {
  {
    std::string unused;
    {
      // (Write saw the compaction due under mu_; write_mu_ held since, nothing changed it.)
      WriterMutexLock lock(&mu_);
      // No extent left: nothing to copy, the file goes.
      unused = extents_.DropFileIfEmpty();
    }
    if (!unused.empty()) {
      if (absl::Status r = env_.RemoveFile(unused); !r.ok()) {
        Log(LogLevel::kWarning, "collection '%s': %s (removed at the next open)", config_.name,
            r.message());
      }
      return;
    }
  }
  const absl::Time start = absl::Now();
  WriteBatch batch;
  TenantExtents::Compaction compaction;
  uint64_t live = 0, before = 0;
  std::string old;
  const absl::Status s = Write(
      &batch,
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        live = extents_.live_bytes();
        before = extents_.file_bytes();
        ASSIGN_OR_RETURN(compaction, extents_.PlanCompaction(&batch));
        return absl::OkStatus();
      },
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
        extents_found_wrong_.fetch_add(compaction.dropped.size());
        for (TenantAccess::Tenant t : compaction.dropped) {
          Log(LogLevel::kError,
              "collection '%s': the extent of tenant '%s' could not be read to be compacted; "
              "dropped until its next change makes it again",
              config_.name, tenants_.Name(t));
        }
        old = extents_.ApplyCompaction(std::move(compaction));
      });
  if (!s.ok()) {
    // (The copy is left: a commit that failed may have reached the log all the same, so layouts
    // may point to it after a restart. The next open keeps whichever file the layouts point to.)
    Log(LogLevel::kWarning,
        "collection '%s': compacting the tenants' extents: %s (tried again once the file has "
        "grown by %d MiB)",
        config_.name, s.message(), options_.tenant_extent_compaction_slack_bytes >> 20);
    WriterMutexLock lock(&mu_);
    extents_.CompactionFailed();
    return;
  }
  // (No reader reads the old file now: they read under mu_, and Apply replaced it under it.)
  if (!old.empty()) {
    if (absl::Status r = env_.RemoveFile(old); !r.ok()) {
      Log(LogLevel::kWarning, "collection '%s': %s (removed at the next open)", config_.name,
          r.message());
    }
  }
  Log(LogLevel::kInfo,
      "collection '%s': tenants' extents compacted: %.1f MiB of chunks copied out of a %.1f MiB "
      "file in %.2f s",
      config_.name, live / 1048576.0, before / 1048576.0,
      absl::ToDoubleSeconds(absl::Now() - start));
}

absl::Status CollectionImpl::CheckExtents() {
  WriteBatch batch;
  std::vector<TenantAccess::Tenant> rebuild;
  const std::vector<TenantAccess::Tenant> tenants = tenants_.Tenants();
  RETURN_IF_ERROR(extents_.Load(
      *store_, tenants,
      [&](TenantAccess::Tenant t) {
        mu_.AssertHeld();  // CheckExtents'
        return tenants_.Members(t).size();
      },
      &batch, &rebuild));
  extents_found_wrong_.fetch_add(rebuild.size());
  if (!rebuild.empty()) {
    // (One line, however many: an open after a format change rebuilds every extent.)
    std::string names;
    for (size_t i = 0; i < rebuild.size() && i < 3; ++i) {
      absl::StrAppend(&names, i > 0 ? ", '" : "'", tenants_.Name(rebuild[i]), "'");
    }
    if (rebuild.size() > 3) absl::StrAppend(&names, " and ", rebuild.size() - 3, " more");
    Log(LogLevel::kWarning,
        "collection '%s': the extents of %d tenants (%s) are missing, disagree with their access "
        "records or are of an older format; rebuilt",
        config_.name, rebuild.size(), names);
  }
  // The cells (made by a build), and the cell extents: made again for tenants that want one and
  // have none (one found wrong, or a crash between a build's cells and its cell extents).
  cells_ = nullptr;
  absl::StatusOr<std::string> record =
      store_->Get(Cf::kTenants, TenantCells::Key(config_.id), /*at=*/nullptr);
  if (record.ok()) {
    absl::StatusOr<std::shared_ptr<const TenantCells>> cells =
        TenantCells::Decode(*record, config_.type, config_.dim, dist_);
    if (cells.ok()) {
      cells_ = *std::move(cells);
    } else {
      // Every cell extent goes (the batch below), until the next build makes new cells.
      Log(LogLevel::kError,
          "collection '%s': %s; the tenants' cell extents are dropped until the next build",
          config_.name, cells.status().message());
      batch.Delete(Cf::kTenants, TenantCells::Key(config_.id));
    }
  } else if (!absl::IsNotFound(record.status())) {
    return record.status();
  }
  std::vector<TenantAccess::Tenant> remake;
  RETURN_IF_ERROR(cell_extents_.Load(
      *store_, tenants,
      [&](TenantAccess::Tenant t) {
        mu_.AssertHeld();  // CheckExtents'
        return tenants_.Members(t).size();
      },
      cells_ != nullptr ? cells_->size() : 0, &batch, &remake));
  // (Flat extents are rebuilt here, in one batch: at most 1 MiB each.)
  const absl::flat_hash_set<TenantAccess::Tenant> touched(rebuild.begin(), rebuild.end());
  ExtentPlan plan;
  RETURN_IF_ERROR(PlanExtents({}, {}, touched, &batch, &plan));
  if (batch.count() > 0) {
    RETURN_IF_ERROR(CommitLocked(&batch));
    ApplyExtents(plan);
  }
  // A cell extent (up to cell_extent_bytes) in a batch of its own.
  if (!remake.empty()) {
    Log(LogLevel::kWarning, "collection '%s': making the cell extents of %d tenants", config_.name,
        remake.size());
  }
  for (TenantAccess::Tenant t : remake) {
    WriteBatch one;
    ExtentPlan made;
    RETURN_IF_ERROR(PlanCellExtent(t, tenants_.Members(t).size(), {}, {}, *cells_, &one, &made));
    if (one.count() == 0) continue;
    RETURN_IF_ERROR(CommitLocked(&one));
    ApplyExtents(made);
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::SetTenantQuota(absl::string_view name, const TenantQuota& quota) {
  RETURN_IF_ERROR(CheckNotDropped());
  MutexLock write_lock(&write_mu_);
  WriteBatch batch;
  TenantAccess::Change change;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    ASSIGN_OR_RETURN(TenantAccess::Tenant t, tenants_.Find(name));
    ASSIGN_OR_RETURN(change, tenants_.PlanSetQuota(t, quota, &batch));
    return absl::OkStatus();
  };
  return Write(&batch, plan,
               [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) { tenants_.Apply(change); });
}

absl::Status CollectionImpl::CreateTenant(absl::string_view name, const TenantQuota& quota) {
  RETURN_IF_ERROR(CheckNotDropped());
  MutexLock write_lock(&write_mu_);
  WriteBatch batch;
  TenantAccess::Change change;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    ASSIGN_OR_RETURN(change, tenants_.PlanCreate(name, quota, &batch));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    tenants_.Apply(change);
  }));
  Log(LogLevel::kInfo, "collection '%s': tenant '%s' created", config_.name, name);
  return absl::OkStatus();
}

absl::Status CollectionImpl::DropTenant(absl::string_view name, bool keep_points,
                                        std::vector<uint64_t>* deleted) {
  RETURN_IF_ERROR(CheckNotDropped());
  deleted->clear();
  MutexLock write_lock(&write_mu_);
  std::vector<VectorId> orphans;
  WriteBatch batch;
  ExtentPlan extent_plan;
  TenantAccess::Change change;
  std::vector<PointDelete> plans;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    ASSIGN_OR_RETURN(TenantAccess::Tenant t, tenants_.Find(name));
    change = tenants_.PlanDrop(t, &batch, &orphans);
    // Only the points it created go with it; the admin's points it alone was granted stay.
    std::erase_if(orphans, [&](VectorId id) {
      mu_.AssertReaderHeld();  // DropTenant's plan
      return !tenants_.Owns(t, id);
    });
    if (!keep_points) {
      // Deleting points needs a serving index (their appended entries are found through it).
      if (!orphans.empty()) RETURN_IF_ERROR(CheckServing());
      for (VectorId id : orphans) RETURN_IF_ERROR(PlanDelete(id, &batch, &plans));
      for (VectorId id : orphans) deleted->push_back(ext_of_[id]);
    }
    return PlanExtents({change}, {}, {}, &batch, &extent_plan);
  };
  RETURN_IF_ERROR(Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    tenants_.Apply(change);
    ApplyExtents(extent_plan);
    for (const PointDelete& d : plans) ApplyDelete(d);
  }));
  DCHECK(deleted->size() == plans.size());
  Log(LogLevel::kInfo,
      "collection '%s': tenant '%s' dropped (%d points it created and only it saw %s)",
      config_.name, name, orphans.size(), keep_points ? "kept" : "deleted");
  return absl::OkStatus();
}

absl::Status CollectionImpl::Grant(absl::string_view tenant, absl::Span<const uint64_t> ids,
                                   uint64_t* changed, std::vector<uint64_t>* missing) {
  missing->clear();
  return ChangeAccess(/*grant=*/true, tenant, ids, changed, missing);
}

absl::Status CollectionImpl::Revoke(absl::string_view tenant, absl::Span<const uint64_t> ids,
                                    uint64_t* changed) {
  return ChangeAccess(/*grant=*/false, tenant, ids, changed, nullptr);
}

absl::Status CollectionImpl::ChangeAccess(bool grant, absl::string_view tenant,
                                          absl::Span<const uint64_t> ids, uint64_t* changed,
                                          std::vector<uint64_t>* missing) {
  RETURN_IF_ERROR(CheckNotDropped());
  *changed = 0;
  MutexLock write_lock(&write_mu_);
  WriteBatch batch;
  ExtentPlan extent_plan;
  TenantAccess::Change change;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    ASSIGN_OR_RETURN(TenantAccess::Tenant t, tenants_.Find(tenant));
    std::vector<VectorId> live;
    RETURN_IF_ERROR(LiveIds(ids, &live, missing));
    change =
        grant ? tenants_.PlanGrant(t, live, &batch) : tenants_.PlanRevoke(t, live, &batch, nullptr);
    if (change.ids.empty()) return absl::OkStatus();  // nothing to write
    if (grant) RETURN_IF_ERROR(tenants_.CheckPointQuota(t, change.ids.size()));
    return PlanExtents({change}, {}, {}, &batch, &extent_plan);
  };
  return Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    tenants_.Apply(change);
    ApplyExtents(extent_plan);
    *changed = change.ids.size();
  });
}

}  // namespace strata::collection_internal
