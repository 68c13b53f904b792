// StrataService's tenant calls: tenants, their quotas and access, API keys, and the scope a caller
// may act in (strata_service.h).

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/mutex.h"
#include "grpcpp/grpcpp.h"
#include "proto/convert.h"
#include "proto/strata.grpc.pb.h"
#include "service/api_key_auth.h"
#include "service/call_budget.h"
#include "service/strata_service.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::service_internal {

grpc::Status StrataService::CreateTenant(grpc::ServerContext* ctx,
                                         const pb::CreateTenantRequest* req, pb::TenantInfo* resp) {
  return Run("CreateTenant", ctx, *req, [&](CallBudget&) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    RETURN_IF_ERROR(col->CreateTenant(req->name(), QuotaFromProto(req->quota())));
    ASSIGN_OR_RETURN(TenantInfo info, col->DescribeTenant(req->name()));
    TenantToProto(info, col->config(), resp);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::SetTenantQuota(grpc::ServerContext* ctx,
                                           const pb::SetTenantQuotaRequest* req,
                                           pb::TenantInfo* resp) {
  return Run("SetTenantQuota", ctx, *req, [&](CallBudget&) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    RETURN_IF_ERROR(col->SetTenantQuota(req->name(), QuotaFromProto(req->quota())));
    ASSIGN_OR_RETURN(TenantInfo info, col->DescribeTenant(req->name()));
    TenantToProto(info, col->config(), resp);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::DropTenant(grpc::ServerContext* ctx, const pb::DropTenantRequest* req,
                                       pb::DropTenantResponse* resp) {
  return Run("DropTenant", ctx, *req, [&](CallBudget&) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    RETURN_IF_ERROR(CheckName("tenant name", req->name()));
    std::vector<uint64_t> deleted;
    uint32_t revoked = 0;
    {
      MutexLock admin_lock(&tenant_admin_mu_);
      RETURN_IF_ERROR(col->DescribeTenant(req->name()).status());  // NotFound naming it
      // Its keys go first: a crash between the two leaves a tenant without keys, never a key
      // that a tenant made again under the same name would bring back to life.
      ASSIGN_OR_RETURN(revoked, keys_->RevokeFor(col->config().uid, req->name()));
      RETURN_IF_ERROR(col->DropTenant(req->name(), req->keep_points(), &deleted));
    }
    if (!deleted.empty()) {
      // (Outside the lock: the cache erases the entries' files.)
      if (rag_ != nullptr) rag_->cache().Invalidate(req->collection(), deleted);
      ScheduleWantedBuild(col);
    }
    resp->set_deleted_points(deleted.size());
    resp->set_revoked_keys(revoked);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::ListTenants(grpc::ServerContext* ctx, const pb::ListTenantsRequest* req,
                                        pb::ListTenantsResponse* resp) {
  return Run("ListTenants", ctx, *req, [&](CallBudget& budget) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    const CollectionConfig cfg = col->config();
    for (const TenantInfo& t : col->ListTenants()) {
      pb::TenantInfo* out = resp->add_tenants();
      TenantToProto(t, cfg, out);
      RETURN_IF_ERROR(budget.AddResponse(CallBudget::EmbeddedBytes(out->ByteSizeLong()),
                                         "tenant " + t.name, "(no smaller listing exists)"));
    }
    return absl::OkStatus();
  });
}

grpc::Status StrataService::GrantAccess(grpc::ServerContext* ctx, const pb::AccessRequest* req,
                                        pb::AccessResponse* resp) {
  return Run("GrantAccess", ctx, *req, [&](CallBudget&) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
    uint64_t changed = 0;
    std::vector<uint64_t> missing;
    RETURN_IF_ERROR(col->Grant(req->tenant(), req->ids(), &changed, &missing));
    resp->set_changed(changed);
    for (uint64_t id : missing) resp->add_missing_ids(id);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::RevokeAccess(grpc::ServerContext* ctx, const pb::AccessRequest* req,
                                         pb::AccessResponse* resp) {
  return Run("RevokeAccess", ctx, *req, [&](CallBudget&) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
    uint64_t changed = 0;
    RETURN_IF_ERROR(col->Revoke(req->tenant(), req->ids(), &changed));
    resp->set_changed(changed);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::CreateApiKey(grpc::ServerContext* ctx,
                                         const pb::CreateApiKeyRequest* req,
                                         pb::CreateApiKeyResponse* resp) {
  return Run("CreateApiKey", ctx, *req, [&](CallBudget&) -> absl::Status {
    if (auth_ == nullptr) {
      return absl::FailedPreconditionError(
          "tenant keys need an admin key (strata-server --admin_key_file): on a server "
          "without one every caller is the admin, and a tenant key would confine no one");
    }
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    std::vector<std::string> tenants(req->tenants().begin(), req->tenants().end());
    std::sort(tenants.begin(), tenants.end());
    tenants.erase(std::unique(tenants.begin(), tenants.end()), tenants.end());
    MutexLock admin_lock(&tenant_admin_mu_);
    for (const std::string& t : tenants) {
      // InvalidArgument for a name no tenant can have (the empty one included), NotFound for
      // one the collection lacks.
      RETURN_IF_ERROR(CheckName("tenant name", t));
      RETURN_IF_ERROR(col->DescribeTenant(t).status());
    }
    TenantKeyInfo info;
    ASSIGN_OR_RETURN(std::string key,
                     keys_->Create(req->collection(), col->config().uid, tenants, req->label(),
                                   std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count(),
                                   &info));
    resp->set_key(std::move(key));
    KeyToProto(info, resp->mutable_info());
    Log(LogLevel::kInfo, "tenant key %s made for collection '%s' (%s)", info.key_id,
        info.collection, absl::StrJoin(info.tenants, ", "));
    return absl::OkStatus();
  });
}

grpc::Status StrataService::RevokeApiKey(grpc::ServerContext* ctx,
                                         const pb::RevokeApiKeyRequest* req,
                                         pb::RevokeApiKeyResponse*) {
  return Run("RevokeApiKey", ctx, *req,
             [&](CallBudget&) -> absl::Status { return keys_->Revoke(req->key_id()); });
}

grpc::Status StrataService::ListApiKeys(grpc::ServerContext* ctx, const pb::ListApiKeysRequest* req,
                                        pb::ListApiKeysResponse* resp) {
  return Run("ListApiKeys", ctx, *req, [&](CallBudget& budget) -> absl::Status {
    if (!req->collection().empty()) {
      RETURN_IF_ERROR(catalog_->Find(req->collection()).status());  // NotFound naming it
    }
    for (const TenantKeyInfo& k : keys_->List(req->collection())) {
      pb::ApiKeyInfo* out = resp->add_keys();
      KeyToProto(k, out);
      RETURN_IF_ERROR(budget.AddResponse(CallBudget::EmbeddedBytes(out->ByteSizeLong()),
                                         "key " + k.key_id, "list one collection's keys"));
    }
    return absl::OkStatus();
  });
}

TenantQuota StrataService::QuotaFromProto(const pb::TenantQuota& q) {
  return {q.max_points(), q.max_requests_per_second()};
}

void StrataService::TenantToProto(const TenantInfo& t, const CollectionConfig& cfg,
                                  pb::TenantInfo* out) {
  out->set_name(t.name);
  out->set_points(t.points);
  out->set_vector_bytes(t.points * cfg.dim * ElementSize(cfg.type));
  out->mutable_quota()->set_max_points(t.quota.max_points);
  out->mutable_quota()->set_max_requests_per_second(t.quota.max_requests_per_second);
}

void StrataService::KeyToProto(const TenantKeyInfo& k, pb::ApiKeyInfo* out) {
  out->set_key_id(k.key_id);
  out->set_collection(k.collection);
  for (const std::string& t : k.tenants) out->add_tenants(t);
  out->set_label(k.label);
  out->set_created_unix_seconds(k.created_unix_seconds);
}

absl::StatusOr<StrataService::Target> StrataService::FindFor(const Caller& caller,
                                                             const std::string& collection,
                                                             const std::string& tenant) {
  if (caller.admin) {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(collection));
    return Target{std::move(col), Scope{tenant}};
  }
  const TenantKeyInfo& key = caller.key;
  if (collection != key.collection) {
    return absl::PermissionDeniedError(absl::StrCat("this tenant key is for collection '",
                                                    key.collection, "', not '",
                                                    ShownName(collection), "'"));
  }
  ASSIGN_OR_RETURN(auto col, catalog_->Find(collection));
  if (col->config().uid != key.collection_uid) {
    return absl::PermissionDeniedError(
        absl::StrCat("this tenant key was made for an earlier collection '", collection,
                     "', since dropped; ask the admin for a new key"));
  }
  Scope scope;
  if (tenant.empty()) {
    if (key.tenants.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "this tenant key is for ", key.tenants.size(), " tenants (",
          absl::StrJoin(key.tenants, ", "),
          "): name one in the request's 'tenant' (strata-cli and strata-load: --tenant)"));
    }
    scope.tenant = key.tenants[0];
  } else if (std::find(key.tenants.begin(), key.tenants.end(), tenant) == key.tenants.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat("this tenant key may not act for tenant '", ShownName(tenant), "'"));
  } else {
    scope.tenant = tenant;
  }
  if (scope.whole()) {
    // Never the whole collection for a tenant key, whatever its record holds.
    return absl::PermissionDeniedError("this tenant key names no tenant");
  }
  // The tenant's request rate: its keys' calls only (the admin is not counted).
  ASSIGN_OR_RETURN(TenantInfo info, col->DescribeTenant(scope.tenant));
  RETURN_IF_ERROR(rate_limiter_.Admit(key.collection_uid, collection, scope.tenant,
                                      info.quota.max_requests_per_second));
  return Target{std::move(col), scope};
}

absl::Status StrataService::AdmitKey(const TenantKeyInfo& key) {
  auto col = catalog_->Find(key.collection);
  if ((col.ok() && (*col)->config().uid != key.collection_uid) || absl::IsNotFound(col.status())) {
    return absl::PermissionDeniedError("this tenant key's collection was dropped");
  }
  // (One that could not be opened at start: its own error, not "dropped".)
  RETURN_IF_ERROR(col.status());
  for (const std::string& t : key.tenants) {
    ASSIGN_OR_RETURN(TenantInfo info, (*col)->DescribeTenant(t));
    RETURN_IF_ERROR(rate_limiter_.Admit(key.collection_uid, key.collection, t,
                                        info.quota.max_requests_per_second));
  }
  return absl::OkStatus();
}

}  // namespace strata::service_internal
