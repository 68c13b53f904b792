// Who may call: with an admin key configured (strata-server --admin_key_file, or the
// STRATA_ADMIN_KEY environment variable), every Strata call must carry it as gRPC metadata,
// `authorization: Bearer <key>`; a call without it, or with another key, is UNAUTHENTICATED.
// Without a key the server is open, and only listens on loopback (service/server.cc).
//
// With TLS the key is checked on the call's headers, before its request is received (HeaderCheck);
// without TLS, once gRPC has received it (Check, from every handler). The key is held as a salted
// hash, compared in time that does not depend on where a wrong key
// differs, and never logged. Tenant keys (service/tenant_keys.h) are accepted too: a call
// carrying one is the tenant's (Caller), which the handlers confine to its tenants.
// Thread-safe (immutable after construction; the tenant keys are thread-safe).
#ifndef STRATA_SERVICE_API_KEY_AUTH_H_
#define STRATA_SERVICE_API_KEY_AUTH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/api_key.h"
#include "grpcpp/security/auth_metadata_processor.h"
#include "grpcpp/server_context.h"
#include "service/tenant_keys.h"

namespace strata {

// Who a call is: the admin (the admin key, or anyone on an open server) or a tenant key's holder.
struct Caller {
  bool admin = true;
  TenantKeyInfo key;  // !admin: the key's collection and tenants
};

class ApiKeyAuth final {
 public:
  // InvalidArgument for a key CheckApiKey refuses (or one shaped like a tenant key); the message
  // never holds the key. `tenant_keys` (may be null) must outlive the auth.
  static absl::StatusOr<std::unique_ptr<ApiKeyAuth>> Create(absl::string_view admin_key,
                                                            const TenantKeys* tenant_keys);
  // The caller when `ctx` carries the admin key or a live tenant key; else Unauthenticated
  // saying what is missing or wrong.
  [[nodiscard]] absl::StatusOr<Caller> Identify(const grpc::ServerContextBase& ctx) const;
  // The same for the value of an authorization header ("Bearer <key>").
  [[nodiscard]] absl::StatusOr<Caller> IdentifyHeader(absl::string_view authorization) const;

  // With TLS: gRPC's hook that sees a call's headers before its request is read, so a caller
  // without the key cannot make the server receive (and hold) its request at all. Checks calls
  // to the Strata service; health checks and reflection pass. The auth must outlive it.
  [[nodiscard]] std::shared_ptr<grpc::AuthMetadataProcessor> HeaderCheck() const;

 private:
  ApiKeyAuth() = default;
  using Digest = std::array<unsigned char, 32>;  // SHA-256
  [[nodiscard]] Digest Hash(absl::string_view key) const;

  std::array<unsigned char, 16> salt_{};  // random per process
  Digest admin_{};
  const TenantKeys* tenant_keys_ = nullptr;
};

}  // namespace strata

#endif  // STRATA_SERVICE_API_KEY_AUTH_H_
