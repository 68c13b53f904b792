#include "index/tenant_access.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "index/collection_config.h"
#include "storage/status_macros.h"

namespace strata {

std::string TenantAccess::NameKey(Tenant t) const {
  std::string k = "n";
  AppendU32(&k, coll_);
  AppendU32(&k, t);
  return k;
}

std::string TenantAccess::QuotaKey(Tenant t) const {
  std::string k = "q";
  AppendU32(&k, coll_);
  AppendU32(&k, t);
  return k;
}

namespace {

std::string EncodeQuota(const TenantQuota& q) {
  std::string v;
  AppendU64(&v, q.max_points);
  uint64_t bits;
  static_assert(sizeof bits == sizeof q.max_requests_per_second);
  std::memcpy(&bits, &q.max_requests_per_second, sizeof bits);
  AppendU64(&v, bits);
  return v;
}

absl::Status CheckQuota(const TenantQuota& q) {
  if (!(q.max_requests_per_second >= 0) || !std::isfinite(q.max_requests_per_second)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_requests_per_second must be finite and >= 0 (0 = no limit), got ",
                     q.max_requests_per_second));
  }
  return absl::OkStatus();
}

}  // namespace

std::string TenantAccess::OwnerKey(Tenant t, VectorId id) const {
  std::string k = "o";
  AppendU32(&k, coll_);
  AppendU32(&k, t);
  AppendU32(&k, id);
  return k;
}

std::string TenantAccess::MemberKey(Tenant t, VectorId id) const {
  std::string k = "m";
  AppendU32(&k, coll_);
  AppendU32(&k, t);
  AppendU32(&k, id);
  return k;
}

void TenantAccess::Count(VectorId id, int delta) {
  if (counts_.size() <= id) {
    // An eighth more than needed, allocated exactly (a vector's own growth could double it).
    const size_t n = id + 1 + counts_.size() / 8;
    counts_.reserve(n);
    counts_.resize(n, 0);
  }
  DCHECK(delta > 0 || counts_[id] > 0);
  counts_[id] = static_cast<uint16_t>(counts_[id] + delta);
}

absl::Status TenantAccess::Load(const MetadataStore& store, uint64_t id_count,
                                absl::FunctionRef<bool(VectorId)> is_live) {
  std::string prefix = "n";
  AppendU32(&prefix, coll_);
  RETURN_IF_ERROR(store.Scan(Cf::kTenants, prefix, [&](auto key, auto value) {
    if (key.size() != 9 || CheckName("tenant name", value).ok() == false) {
      return absl::DataLossError(
          absl::StrCat("collection '", collection_name_, "': malformed tenant record"));
    }
    const Tenant t = ReadU32(key, 5);
    if (t >= kMaxTenants) {
      return absl::DataLossError(
          absl::StrCat("collection '", collection_name_, "': tenant number ", t, " out of range"));
    }
    if (names_.size() <= t) {
      names_.resize(t + 1);
      sets_.resize(t + 1);
      quotas_.resize(t + 1);
      owned_.resize(t + 1);
    }
    if (by_name_.contains(value)) {
      return absl::DataLossError(absl::StrCat("collection '", collection_name_,
                                              "': two tenant records name '", value, "'"));
    }
    names_[t] = std::string(value);
    sets_[t] = std::make_unique<IdSet>();
    owned_[t] = std::make_unique<IdSet>();
    by_name_[names_[t]] = t;
    return absl::OkStatus();
  }));
  prefix[0] = 'q';
  RETURN_IF_ERROR(store.Scan(Cf::kTenants, prefix, [&](auto key, auto value) {
    const Tenant t = key.size() == 9 ? ReadU32(key, 5) : kMaxTenants;
    if (value.size() != 16 || t >= names_.size() || names_[t].empty()) {
      return absl::DataLossError(
          absl::StrCat("collection '", collection_name_, "': malformed tenant quota record"));
    }
    quotas_[t].max_points = ReadU64(value, 0);
    const uint64_t bits = ReadU64(value, 8);
    std::memcpy(&quotas_[t].max_requests_per_second, &bits, sizeof bits);
    return CheckQuota(quotas_[t]);
  }));
  // Access ('m') and ownership ('o') records: one (tenant, internal id) pair per key, per
  // tenant in `out`. Ownership is checked against access below, so liveness only here.
  auto scan_pairs = [&](char kind, const char* what,
                        std::vector<std::vector<VectorId>>* out) -> absl::Status {
    prefix[0] = kind;
    out->assign(names_.size(), {});
    return store.Scan(Cf::kTenants, prefix, [&](auto key, auto value) {
      if (key.size() != 13 || !value.empty()) {
        return absl::DataLossError(
            absl::StrCat("collection '", collection_name_, "': malformed ", what, " record"));
      }
      const Tenant t = ReadU32(key, 5);
      const VectorId id = ReadU32(key, 9);
      if (t >= names_.size() || names_[t].empty()) {
        return absl::DataLossError(absl::StrCat("collection '", collection_name_, "': ", what,
                                                " record of unknown tenant ", t));
      }
      if (kind == 'm' && (id >= id_count || !is_live(id))) {
        return absl::DataLossError(absl::StrCat("collection '", collection_name_,
                                                "': access record of tenant '", names_[t],
                                                "' names internal id ", id, ", not a live point"));
      }
      (*out)[t].push_back(id);
      return absl::OkStatus();
    });
  };
  std::vector<std::vector<VectorId>> members, owned;
  RETURN_IF_ERROR(scan_pairs('m', "access", &members));
  // Ownership: a subset of each tenant's points.
  RETURN_IF_ERROR(scan_pairs('o', "ownership", &owned));
  counts_.clear();
  for (Tenant t = 0; t < owned.size(); ++t) {
    if (owned[t].empty()) continue;
    std::vector<VectorId> sorted = members[t];
    std::sort(sorted.begin(), sorted.end());
    for (VectorId id : owned[t]) {
      if (!std::binary_search(sorted.begin(), sorted.end(), id)) {
        return absl::DataLossError(absl::StrCat("collection '", collection_name_, "': tenant '",
                                                names_[t], "' owns internal id ", id,
                                                " without seeing it"));
      }
    }
    owned_[t]->Insert(owned[t]);
  }
  // 2 bytes per id, allocated once some tenant sees a point.
  for (Tenant t = 0; t < members.size(); ++t) {
    if (members[t].empty()) continue;
    sets_[t]->Insert(members[t]);
    if (counts_.empty()) counts_.assign(id_count, 0);
    for (VectorId id : members[t]) {
      if (counts_[id] == UINT16_MAX) {
        return absl::DataLossError(absl::StrCat("collection '", collection_name_, "': internal id ",
                                                id, " has too many tenants"));
      }
      ++counts_[id];
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TenantAccess::Tenant> TenantAccess::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    RETURN_IF_ERROR(CheckName("tenant name", name));  // a name no tenant can have
    return absl::NotFoundError(
        absl::StrCat("collection '", collection_name_, "' has no tenant '", name, "'"));
  }
  return it->second;
}

std::vector<TenantAccess::Tenant> TenantAccess::TenantsOf(VectorId id) const {
  std::vector<Tenant> out;
  if (TenantCount(id) == 0) return out;
  for (Tenant t = 0; t < sets_.size(); ++t) {
    if (sets_[t] != nullptr && sets_[t]->Contains(id)) out.push_back(t);
  }
  DCHECK_EQ(out.size(), TenantCount(id));
  return out;
}

std::vector<TenantInfo> TenantAccess::List() const {
  std::vector<TenantInfo> out;
  for (const auto& [name, t] : by_name_) out.push_back(Describe(t));
  std::sort(out.begin(), out.end(),
            [](const TenantInfo& a, const TenantInfo& b) { return a.name < b.name; });
  return out;
}

std::vector<TenantAccess::Tenant> TenantAccess::Tenants() const {
  std::vector<Tenant> out;
  for (const auto& [name, t] : by_name_) out.push_back(t);
  std::sort(out.begin(), out.end());
  return out;
}

TenantInfo TenantAccess::Describe(Tenant t) const {
  return {names_[t], sets_[t]->size(), sets_[t]->MemoryBytes(), quotas_[t]};
}

absl::Status TenantAccess::CheckPointQuota(Tenant t, uint64_t more) const {
  const uint64_t most = quotas_[t].max_points;
  if (most == 0 || sets_[t]->size() + more <= most) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "tenant '", names_[t], "' of collection '", collection_name_, "' may see at most ", most,
      " points (its max_points quota); it sees ", sets_[t]->size(), " and this call adds ", more));
}

uint64_t TenantAccess::MemoryBytes() const {
  uint64_t bytes = sizeof(*this) + counts_.capacity() * sizeof(uint16_t);
  for (const auto& s : sets_) {
    if (s != nullptr) bytes += s->MemoryBytes();
  }
  for (const auto& s : owned_) {
    if (s != nullptr) bytes += s->MemoryBytes();
  }
  for (const std::string& n : names_) bytes += sizeof(n) + n.capacity();
  return bytes + by_name_.capacity() * (sizeof(std::pair<std::string, Tenant>) + 1);
}

absl::StatusOr<TenantAccess::Change> TenantAccess::PlanCreate(absl::string_view name,
                                                              const TenantQuota& quota,
                                                              WriteBatch* batch) const {
  RETURN_IF_ERROR(CheckName("tenant name", name));
  RETURN_IF_ERROR(CheckQuota(quota));
  if (by_name_.contains(name)) {
    return absl::AlreadyExistsError(
        absl::StrCat("collection '", collection_name_, "' already has a tenant '", name, "'"));
  }
  Tenant t = 0;
  while (t < names_.size() && !names_[t].empty()) ++t;
  if (t >= kMaxTenants) {
    return absl::ResourceExhaustedError(absl::StrCat("collection '", collection_name_, "' has ",
                                                     kMaxTenants, " tenants, the most it can"));
  }
  batch->Put(Cf::kTenants, NameKey(t), name);
  batch->Put(Cf::kTenants, QuotaKey(t), EncodeQuota(quota));
  return Change{Change::Kind::kCreate, t, std::string(name), quota, {}};
}

absl::StatusOr<TenantAccess::Change> TenantAccess::PlanSetQuota(Tenant t, const TenantQuota& quota,
                                                                WriteBatch* batch) const {
  RETURN_IF_ERROR(CheckQuota(quota));
  batch->Put(Cf::kTenants, QuotaKey(t), EncodeQuota(quota));
  return Change{Change::Kind::kQuota, t, {}, quota, {}};
}

TenantAccess::Change TenantAccess::PlanDrop(Tenant t, WriteBatch* batch,
                                            std::vector<VectorId>* orphans) const {
  batch->Delete(Cf::kTenants, NameKey(t));
  batch->Delete(Cf::kTenants, QuotaKey(t));
  // Key by key, as every delete of the store (no range deletes: storage/metadata_store.h): the
  // batch holds a delete per point the tenant sees or owns (~60 bytes each here, and RocksDB's
  // copy), atomic with the rest of the drop.
  Change change{Change::Kind::kDrop, t, {}, {}, {}};
  sets_[t]->ForEach([&](VectorId id) {
    batch->Delete(Cf::kTenants, MemberKey(t, id));
    change.ids.push_back(id);
    if (TenantCount(id) == 1) orphans->push_back(id);
  });
  owned_[t]->ForEach([&](VectorId id) { batch->Delete(Cf::kTenants, OwnerKey(t, id)); });
  return change;
}

TenantAccess::Change TenantAccess::PlanGrant(Tenant t, absl::Span<const VectorId> ids,
                                             WriteBatch* batch) const {
  Change change{Change::Kind::kGrant, t, {}, {}, {}};
  for (VectorId id : ids) {
    if (sets_[t]->Contains(id)) continue;
    change.ids.push_back(id);
  }
  std::sort(change.ids.begin(), change.ids.end());
  change.ids.erase(std::unique(change.ids.begin(), change.ids.end()), change.ids.end());
  for (VectorId id : change.ids) batch->Put(Cf::kTenants, MemberKey(t, id), "");
  return change;
}

TenantAccess::Change TenantAccess::PlanRevoke(Tenant t, absl::Span<const VectorId> ids,
                                              WriteBatch* batch,
                                              std::vector<VectorId>* orphans) const {
  Change change{Change::Kind::kRevoke, t, {}, {}, {}};
  for (VectorId id : ids) {
    if (sets_[t]->Contains(id)) change.ids.push_back(id);
  }
  std::sort(change.ids.begin(), change.ids.end());
  change.ids.erase(std::unique(change.ids.begin(), change.ids.end()), change.ids.end());
  for (VectorId id : change.ids) {
    batch->Delete(Cf::kTenants, MemberKey(t, id));
    if (owned_[t]->Contains(id)) batch->Delete(Cf::kTenants, OwnerKey(t, id));
    if (orphans != nullptr && TenantCount(id) == 1) orphans->push_back(id);
  }
  return change;
}

TenantAccess::Change TenantAccess::PlanOwn(Tenant t, absl::Span<const VectorId> ids,
                                           WriteBatch* batch) const {
  Change change{Change::Kind::kOwn, t, {}, {}, {}};
  for (VectorId id : ids) {
    if (!owned_[t]->Contains(id)) change.ids.push_back(id);
  }
  std::sort(change.ids.begin(), change.ids.end());
  change.ids.erase(std::unique(change.ids.begin(), change.ids.end()), change.ids.end());
  for (VectorId id : change.ids) batch->Put(Cf::kTenants, OwnerKey(t, id), "");
  return change;
}

TenantAccess::Change TenantAccess::PlanDisown(Tenant t, absl::Span<const VectorId> ids,
                                              WriteBatch* batch) const {
  Change change{Change::Kind::kDisown, t, {}, {}, {}};
  for (VectorId id : ids) {
    if (owned_[t]->Contains(id)) change.ids.push_back(id);
  }
  std::sort(change.ids.begin(), change.ids.end());
  change.ids.erase(std::unique(change.ids.begin(), change.ids.end()), change.ids.end());
  for (VectorId id : change.ids) batch->Delete(Cf::kTenants, OwnerKey(t, id));
  return change;
}

std::vector<TenantAccess::Change> TenantAccess::PlanForget(absl::Span<const VectorId> ids,
                                                           WriteBatch* batch) const {
  absl::flat_hash_map<Tenant, std::vector<VectorId>> by_tenant;
  for (VectorId id : ids) {
    for (Tenant t : TenantsOf(id)) by_tenant[t].push_back(id);
  }
  std::vector<Change> changes;
  for (auto& [t, list] : by_tenant) changes.push_back(PlanRevoke(t, list, batch, nullptr));
  return changes;
}

void TenantAccess::Apply(const Change& change) {
  const Tenant t = change.tenant;
  switch (change.kind) {
    case Change::Kind::kCreate:
      if (names_.size() <= t) {
        names_.resize(t + 1);
        sets_.resize(t + 1);
        quotas_.resize(t + 1);
      }
      if (owned_.size() <= t) owned_.resize(t + 1);
      names_[t] = change.name;
      sets_[t] = std::make_unique<IdSet>();
      owned_[t] = std::make_unique<IdSet>();
      quotas_[t] = change.quota;
      by_name_[change.name] = t;
      return;
    case Change::Kind::kQuota:
      quotas_[t] = change.quota;
      return;
    case Change::Kind::kDrop:
      for (VectorId id : change.ids) Count(id, -1);
      by_name_.erase(names_[t]);
      names_[t].clear();
      sets_[t].reset();
      owned_[t].reset();
      return;
    case Change::Kind::kGrant:
      sets_[t]->Insert(change.ids);
      for (VectorId id : change.ids) Count(id, +1);
      return;
    case Change::Kind::kOwn:
      owned_[t]->Insert(change.ids);
      return;
    case Change::Kind::kDisown:
      owned_[t]->Erase(change.ids);
      return;
    case Change::Kind::kRevoke:
      owned_[t]->Erase(change.ids);
      sets_[t]->Erase(change.ids);
      for (VectorId id : change.ids) Count(id, -1);
      return;
  }
}

}  // namespace strata
