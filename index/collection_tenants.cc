// CollectionImpl's tenant calls: creating, dropping and changing tenants and their access, and
// the small tenants' extents (tenant_extent.h) - planned with every write that changes a tenant's
// points or vectors, checked at open, and searched. The access sets themselves are
// tenant_access.h's; DenseSearch (collection.cc) chooses a view's search.
#include <algorithm>
#include <iterator>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
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
  // Where the posting form is the stored bytes (no cosine normalisation, no float16 rounding),
  // a row is scored as it is: the value StoredDistance gives, without its copies.
  const bool as_stored =
      config_.metric != Metric::kCosine && config_.posting_encoding != PostingEncoding::kFloat16;
  const absl::StatusOr<bool> found = extents_.Read(
      *store_, t, snap_.get(),
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
    Log(LogLevel::kError,
        "collection '%s': the extent of tenant '%s' is missing, malformed or holds other rows "
        "than the tenant's points (%s); searching its stored vectors until its next write makes "
        "it again",
        config_.name, tenants_.Name(t),
        found.ok() ? "read whole" : std::string(found.status().message()));
  }
  return false;
}

absl::Status CollectionImpl::PlanExtents(
    absl::Span<const TenantAccess::Change> access,
    const absl::flat_hash_map<VectorId, const uint8_t*>& vectors,
    const absl::flat_hash_set<TenantAccess::Tenant>& touched, WriteBatch* batch,
    std::vector<TenantExtents::Change>* changes) const {
  using Tenant = TenantAccess::Tenant;
  changes->clear();
  absl::flat_hash_map<Tenant, std::vector<const TenantAccess::Change*>> changed;
  absl::flat_hash_set<Tenant> dropped;
  for (const TenantAccess::Change& c : access) {
    if (c.kind == TenantAccess::Change::Kind::kDrop) {
      dropped.insert(c.tenant);
    } else if (c.kind == TenantAccess::Change::Kind::kGrant ||
               c.kind == TenantAccess::Change::Kind::kRevoke) {
      changed[c.tenant].push_back(&c);
    }
  }
  for (Tenant t : touched) changed[t];
  for (Tenant t : dropped) changed[t];
  const auto fresh = [&](VectorId id) -> const uint8_t* {
    auto v = vectors.find(id);
    return v == vectors.end() ? nullptr : v->second;
  };
  const auto read_vectors = [&](absl::Span<const VectorId> ids,
                                std::vector<std::string>* out) -> absl::Status {
    std::vector<std::string> keys;
    for (VectorId id : ids) keys.push_back(IdKey(config_.id, id));
    std::vector<absl::StatusOr<std::string>> stored = store_->MultiGet(Cf::kVectors, keys);
    out->clear();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!stored[i].ok() && !absl::IsNotFound(stored[i].status())) return stored[i].status();
      if (!stored[i].ok()) {
        return absl::DataLossError(absl::StrCat("collection '", config_.name,
                                                "': stored vector of internal id ", ids[i],
                                                " is missing"));
      }
      out->push_back(std::move(*stored[i]));
    }
    return absl::OkStatus();
  };
  for (const auto& [t, list] : changed) {
    // The tenant's points after the batch (grants hold only new ids, revokes only held ones).
    std::vector<VectorId> ids;
    // (Its extent, if it has one, holds its points before the batch.)
    const std::vector<VectorId> before =
        extents_.chunks(t) > 0 ? tenants_.Members(t).ToVector() : std::vector<VectorId>{};
    if (!dropped.contains(t)) {
      int64_t size = static_cast<int64_t>(tenants_.Members(t).size());
      for (const TenantAccess::Change* c : list) {
        const int64_t n = static_cast<int64_t>(c->ids.size());
        size += c->kind == TenantAccess::Change::Kind::kGrant ? n : -n;
      }
      DCHECK(size >= 0);
      // (A tenant past the extent's size has none: its id list is not needed.)
      if (static_cast<uint64_t>(size) <= extents_.max_rows()) {
        ids = extents_.chunks(t) > 0 ? before : tenants_.Members(t).ToVector();
        for (const TenantAccess::Change* c : list) {
          std::vector<VectorId> next;
          if (c->kind == TenantAccess::Change::Kind::kGrant) {
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
    }
    if (ids.empty() && extents_.chunks(t) == 0) continue;  // none before, none after
    ASSIGN_OR_RETURN(TenantExtents::Change c,
                     extents_.Plan(*store_, t, before, ids, fresh, read_vectors, batch));
    changes->push_back(std::move(c));
  }
  return absl::OkStatus();
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
  for (TenantAccess::Tenant t : rebuild) {
    Log(LogLevel::kWarning,
        "collection '%s': the extent of tenant '%s' disagrees with its access records (or is "
        "of an older format); rebuilt",
        config_.name, tenants_.Name(t));
  }
  std::vector<TenantExtents::Change> changes;
  const absl::flat_hash_set<TenantAccess::Tenant> touched(rebuild.begin(), rebuild.end());
  RETURN_IF_ERROR(PlanExtents({}, {}, touched, &batch, &changes));
  if (batch.count() == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CommitLocked(&batch));
  for (const TenantExtents::Change& c : changes) extents_.Apply(c);
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
                                        uint64_t* deleted) {
  RETURN_IF_ERROR(CheckNotDropped());
  *deleted = 0;
  MutexLock write_lock(&write_mu_);
  std::vector<VectorId> orphans;
  WriteBatch batch;
  std::vector<TenantExtents::Change> extent_changes;
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
    }
    return PlanExtents({change}, {}, {}, &batch, &extent_changes);
  };
  RETURN_IF_ERROR(Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    tenants_.Apply(change);
    for (const TenantExtents::Change& e : extent_changes) extents_.Apply(e);
    for (const PointDelete& d : plans) ApplyDelete(d);
  }));
  *deleted = plans.size();
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
  std::vector<TenantExtents::Change> extent_changes;
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
    return PlanExtents({change}, {}, {}, &batch, &extent_changes);
  };
  return Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    tenants_.Apply(change);
    for (const TenantExtents::Change& e : extent_changes) extents_.Apply(e);
    *changed = change.ids.size();
  });
}

}  // namespace strata::collection_internal
