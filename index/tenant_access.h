// Which tenants may see which points of one collection (the access lists of Curator's
// multi-tenant index, ../docs/ARCHITECTURE.md "Tenants"): exact, in memory, and durable in the
// metadata store's `tenants` family (storage/FORMAT.md). A point's vector and payload are stored
// once however many tenants see it; only its access records are per tenant.
//
// In memory: per tenant the set of internal ids it may see (index/id_set.h: a sorted array or a
// bitmap, whichever is smaller), and per point how many tenants see it (2 bytes per id ever
// used), so a revoke or a tenant drop knows at once which points no tenant sees any more.
//
// Writes come in two halves, as everywhere in a collection: a Plan* method puts the records into
// the caller's batch and returns what to change in memory; the caller commits the batch (synced)
// and then calls Apply with it. Nothing changes in memory before the batch is durable.
//
// Thread-compatible: the collection serialises writers against readers (its lock).
#ifndef STRATA_INDEX_TENANT_ACCESS_H_
#define STRATA_INDEX_TENANT_ACCESS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "index/id_set.h"
#include "index/types.h"
#include "storage/metadata_store.h"

namespace strata {

// Tenants per collection, and tenants that may see one point.
inline constexpr uint32_t kMaxTenants = 65535;

// A tenant's limits; 0 = none.
struct TenantQuota {
  uint64_t max_points = 0;             // points it may see (upserts and grants beyond: refused)
  double max_requests_per_second = 0;  // enforced by the service, per tenant (its keys' calls)
};

struct TenantInfo {
  std::string name;
  uint64_t points = 0;        // points it may see
  uint64_t memory_bytes = 0;  // of its access set
  TenantQuota quota;
};

class TenantAccess final {
 public:
  using Tenant = uint32_t;

  // A change to make in memory once its batch is durable.
  struct Change {
    enum class Kind { kCreate, kDrop, kGrant, kRevoke, kQuota, kOwn, kDisown } kind = Kind::kCreate;
    Tenant tenant = 0;
    std::string name;           // kCreate
    TenantQuota quota;          // kCreate, kQuota
    std::vector<VectorId> ids;  // kGrant / kRevoke / kOwn / kDisown: ids it changes (no repeats)
  };

  TenantAccess(uint32_t coll, std::string collection_name)
      : coll_(coll), collection_name_(std::move(collection_name)) {}

  // Reads the collection's tenants and access records. `is_live(id)` says whether an id names a
  // live point; a record of a point that is not is DataLoss (a delete removes them in its batch).
  [[nodiscard]] absl::Status Load(const MetadataStore& store, uint64_t id_count,
                                  absl::FunctionRef<bool(VectorId)> is_live);

  // The tenant named `name`: NotFound naming it and the collection.
  [[nodiscard]] absl::StatusOr<Tenant> Find(absl::string_view name) const;
  [[nodiscard]] bool Sees(Tenant t, VectorId id) const { return sets_[t]->Contains(id); }
  // Whether tenant `t` owns point `id`: it created the point (its upsert), so it may replace and
  // delete it. A point a tenant was granted is read-only to it; a point no tenant owns is the
  // admin's. An owner always sees its points.
  [[nodiscard]] bool Owns(Tenant t, VectorId id) const { return owned_[t]->Contains(id); }
  [[nodiscard]] const IdSet& Members(Tenant t) const { return *sets_[t]; }
  // How many tenants may see `id` (0 = only the whole-collection view).
  [[nodiscard]] uint32_t TenantCount(VectorId id) const {
    return id < counts_.size() ? counts_[id] : 0;
  }
  // The tenants that may see `id` (a pass over the tenants: for writes, not searches).
  [[nodiscard]] std::vector<Tenant> TenantsOf(VectorId id) const;
  [[nodiscard]] const std::string& Name(Tenant t) const { return names_[t]; }
  [[nodiscard]] std::vector<TenantInfo> List() const;
  [[nodiscard]] std::vector<Tenant> Tenants() const;
  [[nodiscard]] TenantInfo Describe(Tenant t) const;
  // ResourceExhausted naming the quota when `t` would see more than its max_points with `more`
  // points added.
  [[nodiscard]] absl::Status CheckPointQuota(Tenant t, uint64_t more) const;
  [[nodiscard]] size_t tenant_count() const { return by_name_.size(); }
  [[nodiscard]] uint64_t MemoryBytes() const;

  // InvalidArgument for a bad name or quota, AlreadyExists, ResourceExhausted past kMaxTenants.
  [[nodiscard]] absl::StatusOr<Change> PlanCreate(absl::string_view name, const TenantQuota& quota,
                                                  WriteBatch* batch) const;
  // Replaces t's quota (InvalidArgument for a bad one).
  [[nodiscard]] absl::StatusOr<Change> PlanSetQuota(Tenant t, const TenantQuota& quota,
                                                    WriteBatch* batch) const;
  // Drops tenant `t`: its records go; `orphans` gets the points only it could see (the caller
  // deletes them in the same batch unless it keeps them).
  [[nodiscard]] Change PlanDrop(Tenant t, WriteBatch* batch, std::vector<VectorId>* orphans) const;
  // Lets `t` see `ids` (live points); ids it sees already are left out of the change.
  [[nodiscard]] Change PlanGrant(Tenant t, absl::Span<const VectorId> ids, WriteBatch* batch) const;
  // Takes `ids` from `t`'s view; ids it does not see are left out of the change. `orphans` (may
  // be null) gets the ids no tenant will see after it.
  [[nodiscard]] Change PlanRevoke(Tenant t, absl::Span<const VectorId> ids, WriteBatch* batch,
                                  std::vector<VectorId>* orphans) const;
  // Makes `t` the owner of `ids` (points it sees once the batch is applied; the caller checks no
  // other tenant owns them), or takes ownership away (ids it does not own are left out).
  [[nodiscard]] Change PlanOwn(Tenant t, absl::Span<const VectorId> ids, WriteBatch* batch) const;
  [[nodiscard]] Change PlanDisown(Tenant t, absl::Span<const VectorId> ids,
                                  WriteBatch* batch) const;
  // Points deleted: every tenant's record of them goes (one change per tenant concerned).
  [[nodiscard]] std::vector<Change> PlanForget(absl::Span<const VectorId> ids,
                                               WriteBatch* batch) const;

  void Apply(const Change& change);

 private:
  std::string NameKey(Tenant t) const;
  std::string QuotaKey(Tenant t) const;
  std::string OwnerKey(Tenant t, VectorId id) const;
  std::string MemberKey(Tenant t, VectorId id) const;
  void Count(VectorId id, int delta);

  const uint32_t coll_;
  const std::string collection_name_;
  absl::flat_hash_map<std::string, Tenant> by_name_;
  std::vector<std::string> names_;             // by tenant; empty = a free number
  std::vector<std::unique_ptr<IdSet>> sets_;   // by tenant
  std::vector<TenantQuota> quotas_;            // by tenant
  std::vector<std::unique_ptr<IdSet>> owned_;  // by tenant: the points it owns (of sets_)
  std::vector<uint16_t> counts_;               // by internal id
};

}  // namespace strata

#endif  // STRATA_INDEX_TENANT_ACCESS_H_
