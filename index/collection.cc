#include "index/collection.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/mutex.h"
#include "index/internal/appended_vectors.h"
#include "index/internal/collection_impl.h"
#include "index/internal/head_overlay.h"
#include "index/internal/id_state.h"
#include "index/internal/ids_file.h"
#include "index/kernels/distance.h"
#include "index/tenant_extent.h"
#include "index/vector_rules.h"
#include "storage/half.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {
namespace {

namespace fs = std::filesystem;

// A vector of the collection's shape whose values obey index/vector_rules.h for its metric.
absl::Status CheckRow(const CollectionConfig& c, absl::Span<const uint8_t> v) {
  size_t want = size_t{c.dim} * ElementSize(c.type);
  if (v.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("vector has ", v.size() / ElementSize(c.type),
                                                   " dimensions, the collection has ", c.dim));
  }
  return CheckVectorValues(c.type, c.metric, c.dim, v.data());
}

// A row to store: CheckRow, and within float16's range when the index keeps float16 postings
// (cosine rows are normalised first, so any finite row fits).
absl::Status CheckStoredRow(const CollectionConfig& c, absl::Span<const uint8_t> v) {
  RETURN_IF_ERROR(CheckRow(c, v));
  if (c.posting_encoding == PostingEncoding::kFloat16 && c.metric != Metric::kCosine) {
    const auto* f = reinterpret_cast<const float*>(v.data());
    for (uint32_t j = 0; j < c.dim; ++j) {
      if (std::fabs(f[j]) > kHalfMax) {
        return absl::InvalidArgumentError(
            absl::StrCat("vector has ", f[j], " at dimension ", j,
                         ", beyond the range of the collection's float16 postings (+-65504)"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CollectionImpl::Upsert(const Scope& scope, absl::Span<const PointInput> points,
                                    std::vector<RowError>* errors, uint64_t* upserted) {
  RETURN_IF_ERROR(CheckNotDropped());
  errors->clear();
  *upserted = 0;
  // The last row of each id wins; earlier ones count as upserted and overwritten.
  absl::flat_hash_map<uint64_t, uint32_t> last;
  std::vector<uint32_t> rows;
  for (uint32_t i = 0; i < points.size(); ++i) {
    absl::Status s = CheckStoredRow(config_, points[i].vector);
    if (s.ok() && points[i].tenants.size() > kMaxPointTenants) {
      s = absl::InvalidArgumentError(absl::StrCat("the point names ", points[i].tenants.size(),
                                                  " tenants; an upsert may name ", kMaxPointTenants,
                                                  " at most (GrantAccess adds more)"));
    }
    if (!s.ok()) {
      errors->push_back({i, points[i].id, std::string(s.message())});
      continue;
    }
    last[points[i].id] = i;
    rows.push_back(i);
  }
  // The lexical side's terms, analysed before taking the lock.
  std::vector<std::vector<std::string>> terms(points.size());
  for (uint32_t i : rows) {
    if (last[points[i].id] == i) terms[i] = PayloadTerms(points[i].payload);
  }

  // Writers one at a time; the plan reads the state under the shared lock (searches go on).
  MutexLock write_lock(&write_mu_);
  std::optional<TenantAccess::Tenant> scope_tenant;
  // Who may see each point after the batch: per tenant, the ids it gains and loses.
  absl::flat_hash_map<TenantAccess::Tenant, std::vector<VectorId>> grants, revokes;
  absl::flat_hash_set<TenantAccess::Tenant> touched;  // see a point whose vector is replaced
  absl::flat_hash_map<TenantAccess::Tenant, std::vector<VectorId>> owns, disowns;
  absl::flat_hash_set<uint64_t> refused;  // ids whose last row failed a tenant check
  struct Change {
    VectorId id;
    uint32_t row;
    uint64_t ext;
    IdState state;
    bool is_new;
    bool had_appended;
    std::vector<uint32_t> old_postings;
    std::vector<uint32_t> postings;
    std::vector<uint8_t> pf;
  };
  std::vector<Change> changes;
  changes.reserve(last.size());
  WriteBatch batch;
  ExtentPlan extent_plan;
  const uint32_t coll = config_.id;
  VectorId next_id = 0;
  std::vector<TenantAccess::Change> access;
  // Earlier rows of an id whose last row was refused were not stored either: say so.
  const auto report_superseded = [&] {
    for (uint32_t i : rows) {
      if (refused.contains(points[i].id) && last[points[i].id] != i) {
        errors->push_back({i, points[i].id,
                           absl::StrCat("not stored: a later row of id ", points[i].id, " (row ",
                                        last[points[i].id], ") was refused")});
      }
    }
  };
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    RETURN_IF_ERROR(CheckServing());
    if (!scope.whole()) {
      ASSIGN_OR_RETURN(scope_tenant, tenants_.Find(scope.tenant));
    }
    next_id = static_cast<VectorId>(ids_.size());
    for (uint32_t i : rows) {
      const PointInput& p = points[i];
      if (last[p.id] != i) continue;
      Change c;
      c.row = i;
      c.ext = p.id;
      auto found = LookupExt(p.id);
      if (!found.ok() && !absl::IsNotFound(found.status())) return found.status();
      if (found.ok() && *found >= ids_.size()) {
        return absl::DataLossError(absl::StrCat("id map of ", p.id, " names unknown id ", *found));
      }
      const bool exists = found.ok() && (ids_[*found].flags & kLive);
      // Who may see the point: checked before anything of the row is written.
      std::vector<TenantAccess::Tenant> now, next;
      if (exists) now = tenants_.TenantsOf(*found);
      touched.insert(now.begin(), now.end());
      std::string refusal;
      if (scope_tenant.has_value()) {
        if (p.set_tenants && p.tenants.empty()) {
          refusal = absl::StrCat(
              "a tenant's upsert may not take the point from its own view "
              "(Point.tenants is empty; delete it instead)");
        } else if (p.set_tenants && !(p.tenants.size() == 1 && p.tenants[0] == scope.tenant)) {
          refusal = absl::StrCat("a tenant's upsert may name no tenant but its own ('",
                                 scope.tenant, "')");
        } else if (exists && !tenants_.Owns(*scope_tenant, *found)) {
          refusal =
              absl::StrCat("point ", p.id, " exists and was not created by tenant '", scope.tenant,
                           "': a tenant may replace only the points it created (ids are "
                           "shared by the collection's tenants)");
        }
        next = exists ? now : std::vector<TenantAccess::Tenant>{*scope_tenant};
      } else if (p.set_tenants) {
        for (const std::string& name : p.tenants) {
          absl::StatusOr<TenantAccess::Tenant> t = tenants_.Find(name);
          if (!t.ok()) {
            refusal = std::string(t.status().message());
            break;
          }
          next.push_back(*t);
        }
        std::sort(next.begin(), next.end());
        next.erase(std::unique(next.begin(), next.end()), next.end());
      } else {
        next = now;
        // A tenant's point keeps its tenants only while the tenant owns it: the admin writing new
        // content into it (an id a tenant may have claimed first) must say who sees it.
        for (TenantAccess::Tenant t : now) {
          if (!tenants_.Owns(t, *found)) continue;
          refusal = absl::StrCat("point ", p.id, " was created by tenant '", tenants_.Name(t),
                                 "': an admin upsert replacing it must name its tenants "
                                 "(Point.tenants), and the admin then owns it");
        }
      }
      if (!refusal.empty()) {
        errors->push_back({i, p.id, std::move(refusal)});
        refused.insert(p.id);
        continue;
      }
      if (found.ok()) {
        c.id = *found;
        c.is_new = false;
        c.state = ids_[c.id];
      } else {
        if (next_id == UINT32_MAX) {
          return absl::ResourceExhaustedError("collection holds 2^32-1 ids, the most it can");
        }
        c.id = next_id++;
        c.is_new = true;
        c.state = IdState{};
      }
      for (TenantAccess::Tenant t : next) {
        if (!std::binary_search(now.begin(), now.end(), t)) grants[t].push_back(c.id);
      }
      // Ownership: a tenant's new point is its own; the admin's upsert with tenants takes it over.
      if (scope_tenant.has_value() && !exists) owns[*scope_tenant].push_back(c.id);
      if (!scope_tenant.has_value() && p.set_tenants) {
        for (TenantAccess::Tenant t : now) disowns[t].push_back(c.id);
      }
      for (TenantAccess::Tenant t : now) {
        if (!std::binary_search(next.begin(), next.end(), t)) revokes[t].push_back(c.id);
      }
      // Replacing: the appended entries of the old vector go (the built index's are skipped by
      // version).
      c.had_appended = false;
      if (!c.is_new && (c.state.flags & kLive)) {
        c.had_appended = PlanDropAppended(c.id, &batch, &c.old_postings);
      }
      if (!c.is_new) c.state.version = internal::NextVersion(c.state);
      c.state.flags |= kLive;
      c.pf.resize(row_bytes_);
      ToPostingForm(p.vector.data(), c.pf.data());
      RETURN_IF_ERROR(PostingsFor(c.pf.data(), &c.postings));

      std::string vkey = IdKey(coll, c.id);
      batch.Put(Cf::kVersions, vkey, VersionValue(c.state));
      batch.Put(Cf::kVectors, vkey,
                absl::string_view(reinterpret_cast<const char*>(p.vector.data()), row_bytes_));
      if (p.payload.empty()) {
        batch.Delete(Cf::kPayloads, vkey);
      } else {
        batch.Put(Cf::kPayloads, vkey, p.payload);
      }
      if (c.is_new) {
        std::string idv;
        AppendU32(&idv, c.id);
        batch.Put(Cf::kIdMap, ExtKey(coll, p.id), idv);
        std::string extv;
        AppendU64(&extv, p.id);
        batch.Put(Cf::kIdMap, IntKey(coll, c.id), extv);
      }
      if (!c.postings.empty()) {
        batch.Put(Cf::kPostings, vkey, PostingsValue(c.state.version, c.postings));
      }
      changes.push_back(std::move(c));
    }
    if (changes.empty()) return absl::OkStatus();
    if (options_.max_text_index_bytes > 0) {
      std::vector<absl::Span<const std::string>> texts;
      for (const Change& c : changes) {
        if (!terms[c.row].empty()) texts.emplace_back(terms[c.row]);
      }
      if (!texts.empty()) RETURN_IF_ERROR(CheckTextRoom(text_.BytesToAdd(texts)));
    }
    // (A vector with a row keeps its slot: replaced in place, or dropped and added again.)
    rows_wanted_ =
        static_cast<uint64_t>(std::count_if(changes.begin(), changes.end(), [&](const Change& c) {
          mu_.AssertReaderHeld();  // plan's
          return !appended_.HasRow(c.id);
        }));
    for (auto& [t, ids] : grants) {
      access.push_back(tenants_.PlanGrant(t, ids, &batch));
      RETURN_IF_ERROR(tenants_.CheckPointQuota(t, access.back().ids.size()));
    }
    for (auto& [t, ids] : revokes) access.push_back(tenants_.PlanRevoke(t, ids, &batch, nullptr));
    for (auto& [t, ids] : disowns) access.push_back(tenants_.PlanDisown(t, ids, &batch));
    for (auto& [t, ids] : owns) access.push_back(tenants_.PlanOwn(t, ids, &batch));
    absl::flat_hash_map<VectorId, const uint8_t*> stored_vectors;
    for (const Change& c : changes) stored_vectors[c.id] = points[c.row].vector.data();
    RETURN_IF_ERROR(PlanExtents(access, stored_vectors, touched, &batch, &extent_plan));
    return absl::OkStatus();
  };
  const auto apply = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    if (next_id > ids_.size()) {
      ids_.resize(next_id);
      ext_of_.resize(next_id, 0);
    }
    for (Change& c : changes) {
      bool was_live = ids_[c.id].flags & kLive;
      if (c.had_appended) {
        DropAppended(c.id);
        NotePostings(c.old_postings, /*shrunk=*/true);
      }
      ids_[c.id] = c.state;
      ext_of_[c.id] = c.ext;
      if (!was_live) ++live_;
      AddAppended(c.id, c.pf.data(), c.postings);
      NotePostings(c.postings, /*shrunk=*/false);
      SetSkip(c.id);
      text_.Put(c.id, terms[c.row]);
      if (building_) dirty_.push_back(c.id);
    }
    for (const TenantAccess::Change& a : access) tenants_.Apply(a);
    ApplyExtents(extent_plan);
  };
  RETURN_IF_ERROR(Write(&batch, plan, apply));
  if (!changes.empty()) {
    *upserted = static_cast<uint64_t>(std::count_if(
        rows.begin(), rows.end(), [&](uint32_t i) { return !refused.contains(points[i].id); }));
  }
  report_superseded();
  return absl::OkStatus();
}

absl::Status CollectionImpl::LiveIds(absl::Span<const uint64_t> ext, std::vector<VectorId>* ids,
                                     std::vector<uint64_t>* missing) const {
  // One batched lookup of the id map (a grant of 1,000 ids is 1,000 lookups).
  absl::flat_hash_set<uint64_t> seen;
  std::vector<uint64_t> unique;
  std::vector<std::string> keys;
  for (uint64_t e : ext) {
    if (!seen.insert(e).second) continue;
    unique.push_back(e);
    keys.push_back(ExtKey(config_.id, e));
  }
  std::vector<absl::StatusOr<std::string>> found = store_->MultiGet(Cf::kIdMap, keys);
  for (size_t i = 0; i < unique.size(); ++i) {
    if (!found[i].ok() && !absl::IsNotFound(found[i].status())) return found[i].status();
    if (found[i].ok() && found[i]->size() != 4) {
      return absl::DataLossError(absl::StrCat("id map entry of ", unique[i], " is malformed"));
    }
    const VectorId id = found[i].ok() ? ReadU32(*found[i], 0) : 0;
    if (!found[i].ok() || id >= ids_.size() || !(ids_[id].flags & kLive)) {
      if (missing != nullptr) missing->push_back(unique[i]);
      continue;
    }
    ids->push_back(id);
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::PlanDelete(VectorId id, WriteBatch* batch,
                                        std::vector<PointDelete>* out) const {
  const uint32_t coll = config_.id;
  PointDelete d{id, false, {}};
  d.had_appended = PlanDropAppended(id, batch, &d.old_postings);
  IdState s = ids_[id];
  s.flags &= static_cast<uint8_t>(~kLive);
  std::string key = IdKey(coll, id);
  batch->Put(Cf::kVersions, key, VersionValue(s));  // the tombstone
  batch->Delete(Cf::kVectors, key);
  batch->Delete(Cf::kPayloads, key);
  out->push_back(std::move(d));
  return absl::OkStatus();
}

void CollectionImpl::ApplyDelete(const PointDelete& d) {
  DCHECK(tenants_.TenantCount(d.id) == 0);
  if (d.had_appended) {
    DropAppended(d.id);
    NotePostings(d.old_postings, /*shrunk=*/true);
  }
  ids_[d.id].flags &= static_cast<uint8_t>(~kLive);
  --live_;
  SetSkip(d.id);
  text_.Erase(d.id);
  if (building_) dirty_.push_back(d.id);
}

absl::Status CollectionImpl::Delete(const Scope& scope, absl::Span<const uint64_t> ids,
                                    uint64_t* deleted) {
  RETURN_IF_ERROR(CheckNotDropped());
  *deleted = 0;
  // Writers one at a time; the plan reads the state under the shared lock (searches go on).
  MutexLock write_lock(&write_mu_);
  WriteBatch batch;
  ExtentPlan extent_plan;
  std::vector<TenantAccess::Change> access;
  std::vector<VectorId> gone;  // points deleted outright
  std::vector<PointDelete> plans;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    RETURN_IF_ERROR(CheckServing());
    std::vector<VectorId> live;
    RETURN_IF_ERROR(LiveIds(ids, &live, nullptr));
    if (scope.whole()) {
      gone = live;
      for (TenantAccess::Change& c : tenants_.PlanForget(gone, &batch))
        access.push_back(std::move(c));
    } else {
      // A tenant's delete: the points it owns go (from every view: it created them); those it
      // was granted leave its view only (they are the admin's, who may still see them).
      ASSIGN_OR_RETURN(TenantAccess::Tenant t, tenants_.Find(scope.tenant));
      std::vector<VectorId> granted;
      for (VectorId id : live) {
        if (tenants_.Owns(t, id)) {
          gone.push_back(id);
        } else if (tenants_.Sees(t, id)) {
          granted.push_back(id);
        }
      }
      *deleted = gone.size() + granted.size();
      for (TenantAccess::Change& c : tenants_.PlanForget(gone, &batch))
        access.push_back(std::move(c));
      if (!granted.empty()) access.push_back(tenants_.PlanRevoke(t, granted, &batch, nullptr));
    }
    for (VectorId id : gone) RETURN_IF_ERROR(PlanDelete(id, &batch, &plans));
    if (batch.count() == 0) return absl::OkStatus();
    return PlanExtents(access, {}, {}, &batch, &extent_plan);
  };
  return Write(&batch, plan, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    for (const TenantAccess::Change& c : access) tenants_.Apply(c);
    ApplyExtents(extent_plan);
    for (const PointDelete& d : plans) ApplyDelete(d);
    if (scope.whole()) *deleted = plans.size();
  });
}

absl::Status CollectionImpl::Get(const Scope& scope, absl::Span<const uint64_t> ids,
                                 bool with_vector, bool with_payload,
                                 std::vector<PointOutput>* found, std::vector<uint64_t>* missing,
                                 const ReadMoment* at_moment) const {
  RETURN_IF_ERROR(CheckNotDropped());
  found->clear();
  missing->clear();
  const auto* moment = dynamic_cast<const Moment*>(at_moment);
  if (at_moment != nullptr && (moment == nullptr || moment->collection_uid != config_.uid)) {
    return absl::InvalidArgumentError(
        absl::StrCat("collection '", config_.name, "': a read moment of another collection"));
  }
  if (moment != nullptr && moment->tenant != scope.tenant) {
    return absl::InvalidArgumentError(
        absl::StrCat("collection '", config_.name, "': a read moment of another scope"));
  }
  {
    ReaderMutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckNotDropped());
    RETURN_IF_ERROR(View(scope).status());
  }
  // The ids' internal numbers, read with no lock held. An id map entry, once written, keeps its
  // number for good (a delete leaves it; a new write of the id takes the number again), so the
  // latest state serves whenever it is read.
  constexpr VectorId kNoVector = ~VectorId{0};  // (no id reaches it: 2^32 - 1 ids at most)
  const uint32_t coll = config_.id;
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (uint64_t ext : ids) keys.push_back(ExtKey(coll, ext));
  const std::vector<absl::StatusOr<std::string>> mapped =
      store_->MultiGet(Cf::kIdMap, keys, nullptr);
  if (options_.test_get_between_reads) options_.test_get_between_reads(1);
  // Which are live and in the scope, and the store as the collection shows them (the snapshot
  // of a commit under way, else now): one moment for both, under the lock again. (A drop marks
  // the collection under it and deletes its records after: the snapshot holds them.) At a
  // search's moment: which are in the scope now; whether they were live then is read below.
  std::vector<VectorId> internal;
  internal.reserve(ids.size());
  std::shared_ptr<const StoreSnapshot> at;
  {
    ReaderMutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckNotDropped());
    ASSIGN_OR_RETURN(const ViewRef view, View(scope));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!mapped[i].ok() && !absl::IsNotFound(mapped[i].status())) return mapped[i].status();
      if (mapped[i].ok() && mapped[i]->size() != 4) {
        return absl::DataLossError(absl::StrCat("id map entry of ", ids[i], " is malformed"));
      }
      const VectorId id = mapped[i].ok() ? ReadU32(*mapped[i], 0) : kNoVector;
      if (id == kNoVector || id >= ids_.size() ||
          (moment == nullptr ? !(ids_[id].flags & kLive) : !moment->found.contains(id)) ||
          (view.ids != nullptr && !view.ids->Contains(id))) {
        missing->push_back(ids[i]);
        internal.push_back(kNoVector);
      } else {
        internal.push_back(id);
      }
    }
    at = moment != nullptr ? moment->store : ShownStore();
  }
  if (options_.test_get_between_reads) options_.test_get_between_reads(2);
  // Their vectors and payloads, at that moment (no lock held).
  keys.clear();
  for (VectorId id : internal) {
    if (id != kNoVector) keys.push_back(IdKey(coll, id));
  }
  if (moment != nullptr) {
    // Live at the search's moment: its version record then says so (a point written since has
    // none).
    const std::vector<absl::StatusOr<std::string>> versions =
        store_->MultiGet(Cf::kVersions, keys, at.get());
    size_t k = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (internal[i] == kNoVector) continue;
      const absl::StatusOr<std::string>& v = versions[k++];
      if (!v.ok() && !absl::IsNotFound(v.status())) return v.status();
      if (v.ok() && v->size() != 2) {
        return absl::DataLossError(absl::StrCat("version record of id ", ids[i], " is malformed"));
      }
      if (!v.ok() || !(static_cast<uint8_t>((*v)[1]) & kLive)) internal[i] = kNoVector;
    }
    keys.clear();
    for (VectorId id : internal) {
      if (id != kNoVector) keys.push_back(IdKey(coll, id));
    }
    // (`missing` in request order again.)
    std::vector<uint64_t> in_order;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (internal[i] == kNoVector) in_order.push_back(ids[i]);
    }
    *missing = std::move(in_order);
  }
  std::vector<absl::StatusOr<std::string>> vectors, payloads;
  if (with_vector) vectors = store_->MultiGet(Cf::kVectors, keys, at.get());
  if (with_payload) payloads = store_->MultiGet(Cf::kPayloads, keys, at.get());
  size_t k = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (internal[i] == kNoVector) continue;
    PointOutput out;
    out.id = ids[i];
    if (with_vector) {
      if (!vectors[k].ok()) return vectors[k].status();
      if (vectors[k]->size() != row_bytes_) {
        return absl::DataLossError(absl::StrCat("stored vector of id ", ids[i], " is malformed"));
      }
      out.vector.assign(vectors[k]->begin(), vectors[k]->end());
    }
    if (with_payload) {
      if (payloads[k].ok()) {
        out.payload = std::move(*payloads[k]);
      } else if (!absl::IsNotFound(payloads[k].status())) {
        return payloads[k].status();
      }
    }
    ++k;
    found->push_back(std::move(out));
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::QueryForm(VectorView query, std::vector<uint8_t>* q) const {
  if (query.type != config_.type) {
    return absl::InvalidArgumentError(absl::StrCat("query is ", ElementTypeName(query.type),
                                                   ", the collection holds ",
                                                   ElementTypeName(config_.type)));
  }
  RETURN_IF_ERROR(CheckRow(config_, query.bytes));
  q->resize(row_bytes_);
  ToPostingForm(query.bytes.data(), q->data());
  return absl::OkStatus();
}

absl::Status CollectionImpl::DenseSearch(const uint8_t* q, uint32_t k, const SearchParams& params,
                                         ViewRef* view, std::vector<Neighbor>* result,
                                         SearchStats* st) const {
  for (int attempt = 0;; ++attempt) {
    const IdSet* allow = view->ids;
    const bool shortcuts = params.use_tenant_extents;
    if (allow != nullptr && shortcuts && allow->size() <= extents_.max_rows()) {
      ASSIGN_OR_RETURN(bool found, SearchExtent(q, k, view->tenant, result, st));
      if (found) return absl::OkStatus();
      // (An extent found wrong: the same answer, exact, from one record per point.)
    }
    if (allow != nullptr && shortcuts && cell_extents_.Has(view->tenant)) {
      ASSIGN_OR_RETURN(bool found, SearchCells(q, k, params, view->tenant, result, st));
      if (found) return absl::OkStatus();
      // (None, or one found wrong: the paths below.)
    }
    if (allow != nullptr &&
        ((shortcuts &&
          allow->size() <= std::max<uint64_t>(kExactTenantPoints, extents_.max_rows())) ||
         base_ == nullptr)) {
      // A small view (or no index): exact, over the view's own vectors.
      const std::vector<VectorId> ids = allow->ToVector();
      std::vector<float> distances;
      RETURN_IF_ERROR(DistancesTo(q, ids, &distances));
      TopK top;
      top.Reset(k);
      for (size_t i = 0; i < ids.size(); ++i) top.Push(ids[i], distances[i]);
      top.TakeSorted(result);
      st->entries_scanned = static_cast<uint32_t>(ids.size());
      st->bytes_read = ids.size() * row_bytes_;  // from the metadata store (or its cache)
      return absl::OkStatus();
    }
    if (base_ != nullptr) {
      absl::Status s = SearchIndex(q, k, params, view, result, st);
      if (!absl::IsAborted(s)) return s;
      // The index was rebuilt, or postings split, while the postings were read: again, on the
      // index as it is now (and the view). Either takes far longer than a search: more than a
      // few in a row is a bug.
      if (attempt == 7) {
        return absl::UnavailableError(
            "the index was rebuilt or reorganised 8 times during one search; retry");
      }
      continue;
    }
    // FLAT: exact search over every live vector.
    TopK top;
    top.Reset(k);
    appended_.ForEachRow(
        [&](VectorId id, const uint8_t* row) { top.Push(id, dist_(q, row, config_.dim)); });
    top.TakeSorted(result);
    st->entries_scanned = static_cast<uint32_t>(appended_.size());
    return absl::OkStatus();
  }
}

absl::Status CollectionImpl::SearchIndex(const uint8_t* q, uint32_t k, const SearchParams& params,
                                         ViewRef* view, std::vector<Neighbor>* result,
                                         SearchStats* st) const {
  // Alive until the search returns, whatever an install does meanwhile.
  const std::shared_ptr<SpannIndex> base = base_;
  SearchRelock relock(this, *view);
  SearchOverlay overlay = relock.overlay();
  const IdSet* allow = overlay.allow;
  SearchParams scaled = params;
  if (allow != nullptr) {
    // A tenant seeing a share s of the collection finds about s of each posting's entries
    // usable, so it reads more postings: 1/sqrt(s) times the budget, at most 16 times, and
    // more again while fewer than k came back. (tests/index/tenant_test.cc, 20K SIFT-like: a
    // 15% tenant at recall@10 0.994 with 1/sqrt(s), 173 pages a query; 1/s read 439 pages for
    // 1.000.)
    const uint32_t budget =
        params.max_postings != 0 ? params.max_postings : base->default_max_postings();
    const double share = static_cast<double>(allow->size()) / static_cast<double>(live_);
    const double scale = std::clamp(std::sqrt(1.0 / std::max(share, 1e-9)), 1.0, 16.0);
    scaled.max_postings = static_cast<uint32_t>(std::ceil(budget * scale));
  }
  for (int widened = 0;; ++widened) {
    absl::Status searched =
        base->Search(VectorView{config_.type, {q, row_bytes_}}, k, scaled, overlay, result, st);
    // The search ended holding mu_ again: the view and overlay as they are now.
    *view = relock.view();
    overlay = relock.overlay();
    allow = overlay.allow;
    if (absl::IsDataLoss(searched)) NoteReadDamage(searched);
    RETURN_IF_ERROR(searched);
    pages_read_.fetch_add(st->pages_read, std::memory_order_relaxed);
    bytes_read_.fetch_add(st->bytes_read, std::memory_order_relaxed);
    // At most two widenings (16x the scaled budget): a query's cost stays bounded.
    const uint64_t heads = base->num_heads() + heads_overlay_.added();
    if (allow == nullptr || result->size() >= std::min<uint64_t>(k, allow->size()) ||
        scaled.max_postings >= heads || widened == 2) {
      return absl::OkStatus();
    }
    scaled.max_postings =
        static_cast<uint32_t>(std::min<uint64_t>(uint64_t{scaled.max_postings} * 4, heads));
  }
}

float CollectionImpl::StoredDistance(const uint8_t* q, VectorId id, const uint8_t* raw,
                                     std::vector<uint8_t>* pf, std::vector<uint16_t>* half) const {
  if (const uint8_t* row = ExactRow(id)) return dist_(q, row, config_.dim);
  pf->resize(row_bytes_);
  ToPostingForm(raw, pf->data());
  if (config_.posting_encoding != PostingEncoding::kFloat16)
    return dist_(q, pf->data(), config_.dim);
  // As the postings hold it: the float16-rounded vector.
  const auto* f = reinterpret_cast<const float*>(pf->data());
  half->resize(config_.dim);
  to_half_(f, half->data(), config_.dim);
  return f16_dist_(q, half->data(), config_.dim);
}

absl::Status CollectionImpl::DistancesTo(const uint8_t* q, absl::Span<const VectorId> ids,
                                         std::vector<float>* out) const {
  out->assign(ids.size(), 0);
  // Appended vectors are in memory; the built index's are read from the store in one batch (the
  // index may hold them only in float16).
  std::vector<size_t> stored;
  std::vector<std::string> keys;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (const uint8_t* row = ExactRow(ids[i])) {
      (*out)[i] = dist_(q, row, config_.dim);
    } else {
      stored.push_back(i);
      keys.push_back(IdKey(config_.id, ids[i]));
    }
  }
  if (keys.empty()) return absl::OkStatus();
  std::vector<absl::StatusOr<std::string>> raw = store_->MultiGet(Cf::kVectors, keys, snap_.get());
  std::vector<uint8_t> pf(row_bytes_);
  std::vector<uint16_t> half;
  for (size_t j = 0; j < stored.size(); ++j) {
    const VectorId id = ids[stored[j]];
    if (!raw[j].ok() && !absl::IsNotFound(raw[j].status())) return raw[j].status();
    if (!raw[j].ok() || raw[j]->size() != row_bytes_) {
      return absl::DataLossError(absl::StrCat("stored vector of id ",
                                              id < ext_of_.size() ? ext_of_[id] : 0,
                                              " is missing or malformed"));
    }
    (*out)[stored[j]] =
        StoredDistance(q, id, reinterpret_cast<const uint8_t*>(raw[j]->data()), &pf, &half);
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::Search(const Scope& scope, VectorView query, uint32_t k,
                                    const SearchParams& params, std::vector<Hit>* hits,
                                    SearchStats* stats,
                                    std::shared_ptr<const ReadMoment>* moment) const {
  RETURN_IF_ERROR(CheckNotDropped());
  std::vector<uint8_t> q;
  RETURN_IF_ERROR(QueryForm(query, &q));
  if (k == 0) return absl::InvalidArgumentError("k must be at least 1");

  hits->clear();
  ReaderMutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckNotDropped());  // (again under the lock, as Get's)
  RETURN_IF_ERROR(CheckServing());
  ASSIGN_OR_RETURN(ViewRef view, View(scope));
  std::vector<Neighbor> result;
  SearchStats st;
  RETURN_IF_ERROR(DenseSearch(q.data(), k, params, &view, &result, &st));
  hits->reserve(result.size());
  for (const Neighbor& n : result) {
    if (n.id >= ext_of_.size()) {
      return absl::DataLossError(absl::StrCat("collection '", config_.name,
                                              "': the index returned unknown internal id ", n.id));
    }
    hits->push_back({ext_of_[n.id], n.distance});
  }
  if (stats != nullptr) *stats = st;
  // (mu_ held since the last of the index's reads: SearchIndex)
  NoteMoment(
      scope, result, [](const Neighbor& n) { return n.id; }, moment);
  return absl::OkStatus();
}

absl::Status CollectionImpl::BulkLoad(
    const VectorSet& vectors, absl::Span<const uint64_t> ext_ids,
    absl::Span<const std::string> payloads,
    std::function<void(const char*, uint64_t, uint64_t)> progress) {
  RETURN_IF_ERROR(CheckNotDropped());
  MutexLock build_lock(&build_mu_);
  const uint64_t n = vectors.n;
  if (vectors.type != config_.type || vectors.dim != config_.dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the file holds ", ElementTypeName(vectors.type), " vectors of dimension ", vectors.dim,
        "; the collection takes ", ElementTypeName(config_.type), " of dimension ", config_.dim));
  }
  if (!ext_ids.empty() && ext_ids.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(ext_ids.size(), " ids for ", n, " vectors"));
  }
  if (!payloads.empty() && payloads.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(payloads.size(), " payloads for ", n, " vectors"));
  }
  if (n == 0) return absl::InvalidArgumentError("no vectors to load");
  if (n >= UINT32_MAX) return absl::InvalidArgumentError("at most 2^32-2 vectors per collection");
  {
    // Writers wait while the rows go in (an upsert meanwhile would take their internal ids).
    MutexLock write_lock(&write_mu_);
    // Again under the writer lock, which a drop marks the collection under: rows written after
    // a drop's purge began would be left behind it.
    RETURN_IF_ERROR(CheckNotDropped());
    {
      ReaderMutexLock lock(&mu_);
      if (!ids_.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "collection '", config_.name,
            "' is not empty: an offline load needs a new collection (load online to add to "
            "it; a load cut short before its index was written left its rows: build the index "
            "with strata-cli build on a server over this data directory, or drop the collection "
            "and load again)"));
      }
    }
    auto ext_of = [&](uint64_t i) { return ext_ids.empty() ? i : ext_ids[i]; };
    {
      absl::flat_hash_map<uint64_t, uint64_t> seen;
      seen.reserve(n);
      for (uint64_t i = 0; i < n; ++i) {
        auto [it, inserted] = seen.insert({ext_of(i), i});
        if (!inserted) {
          return absl::InvalidArgumentError(
              absl::StrCat("id ", ext_of(i), " appears at rows ", it->second, " and ", i));
        }
        absl::Status row = CheckStoredRow(config_, {vectors.row(i), vectors.row_bytes()});
        if (!row.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("row ", i, " (id ", ext_of(i), "): ", row.message()));
        }
      }
    }
    // Metadata first, unlogged (a crash before the final commit leaves a collection without an
    // index generation whose rows a re-run refuses; the loader drops and recreates it).
    const uint32_t coll = config_.id;
    WriteBatch batch;
    IdState live_state{0, 0, kLive};
    for (uint64_t i = 0; i < n; ++i) {
      auto id = static_cast<VectorId>(i);
      std::string key = IdKey(coll, id);
      batch.Put(Cf::kVersions, key, VersionValue(live_state));
      batch.Put(Cf::kVectors, key,
                absl::string_view(reinterpret_cast<const char*>(vectors.row(i)), row_bytes_));
      if (!payloads.empty() && !payloads[i].empty()) batch.Put(Cf::kPayloads, key, payloads[i]);
      std::string idv, extv;
      AppendU32(&idv, id);
      AppendU64(&extv, ext_of(i));
      batch.Put(Cf::kIdMap, ExtKey(coll, ext_of(i)), idv);
      batch.Put(Cf::kIdMap, IntKey(coll, id), extv);
      if (batch.bytes() > (32u << 20) || i + 1 == n) {
        RETURN_IF_ERROR(store_->Write(&batch, /*sync=*/false, /*wal=*/false));
        batch.Clear();
        if (progress) progress("storing", i + 1, n);
      }
    }
    RETURN_IF_ERROR(store_->Flush());
    {
      WriterMutexLock lock(&mu_);
      ids_.assign(n, live_state);
      ext_of_.resize(n);
      for (uint64_t i = 0; i < n; ++i) ext_of_[i] = ext_of(i);
      live_ = n;
      SetBuilding(true);
      dirty_.clear();
      if (absl::Status text = RebuildTextIndex(); !text.ok()) {
        SetBuilding(false);
        return text;
      }
    }
  }
  std::vector<VectorId> ids(n);
  for (uint64_t i = 0; i < n; ++i) ids[i] = static_cast<VectorId>(i);
  std::vector<uint8_t> versions(n, 0);
  uint64_t gen = 1;
  absl::Status s = BuildGeneration(gen, vectors, ids, versions, progress);
  absl::StatusOr<std::shared_ptr<const TenantCells>> cells = nullptr;
  if (s.ok()) {
    cells = MakeCells(vectors);
    s = cells.status();
  }
  if (s.ok()) s = Install(gen, ids, versions, /*requests_seen=*/BuildRequestsSoFar());
  if (!s.ok()) {
    MutexLock write_lock(&write_mu_);
    WriterMutexLock lock(&mu_);
    SetBuilding(false);
    return s;
  }
  return InstallCellsAfterBuild(*std::move(cells));
}

CollectionStats CollectionImpl::Stats() const {
  ReaderMutexLock lock(&mu_);
  CollectionStats s;
  s.count = live_;
  const std::string read_damage = ReadDamage();
  s.state = building_                               ? CollectionStats::State::kBuilding
            : !damage_.ok() || !read_damage.empty() ? CollectionStats::State::kDamaged
            : base_ != nullptr                      ? CollectionStats::State::kIndexed
                                                    : CollectionStats::State::kFlat;
  s.damage = !damage_.ok() ? std::string(damage_.message()) : read_damage;
  s.indexed_vectors = indexed_;
  s.appended_vectors = appended_.size();
  s.generation = generation_;
  s.memory_bytes = appended_.MemoryBytes() + ids_.size() * (sizeof(IdState) + sizeof(uint64_t)) +
                   skip_bits_.size() + heads_overlay_.MemoryBytes() +
                   appended_radius_.MemoryBytes();
  s.added_heads = heads_overlay_.added();
  s.retired_heads = heads_overlay_.retired();
  s.splits = maintained_.splits;
  s.merges = maintained_.merges;
  s.rewrites = maintained_.rewrites;
  s.seeds = maintained_.seeds;
  s.reassigned = maintained_.reassigned;
  if (base_ != nullptr) {
    s.heads = base_->num_heads();
    s.default_max_postings = base_->default_max_postings();
    s.tuned_recall = base_->tuned_recall();
    s.memory_bytes += base_->MemoryBytes();
    s.disk_bytes = base_->DiskBytes();
  }
  s.appended_file_bytes = appended_.file_bytes();
  s.disk_bytes += s.appended_file_bytes;
  s.pages_read = pages_read_.load();
  s.bytes_read = bytes_read_.load();
  s.text_documents = text_.documents();
  s.text_terms = text_.terms();
  s.text_memory_bytes = text_.MemoryBytes();
  s.tenants = tenants_.tenant_count();
  s.tenant_memory_bytes = tenants_.MemoryBytes() + extents_.MemoryBytes() +
                          cell_extents_.MemoryBytes() +
                          (cells_ != nullptr ? cells_->MemoryBytes() : 0);
  s.memory_bytes += s.tenant_memory_bytes;
  s.extents_found_wrong = extents_found_wrong_.load();
  s.tenant_extent_bytes = extents_.live_bytes();
  s.tenant_extent_file_bytes = extents_.file_bytes();
  for (TenantAccess::Tenant t : tenants_.Tenants()) {
    if (cell_extents_.Has(t)) s.cell_extent_bytes += cell_extents_.Rows(t) * (4 + row_bytes_);
  }
  return s;
}

}  // namespace strata::collection_internal

namespace strata {

absl::StatusOr<std::unique_ptr<Collection>> Collection::Open(MetadataStore* store,
                                                             const std::string& dir,
                                                             const CollectionConfig& config,
                                                             const CollectionOptions& options) {
  auto c = std::make_unique<collection_internal::CollectionImpl>(store, dir, config, options);
  RETURN_IF_ERROR(c->Load());
  c->StartMaintainer();
  return std::unique_ptr<Collection>(std::move(c));
}

}  // namespace strata
