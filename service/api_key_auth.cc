#include "service/api_key_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata {

constexpr char kNoKey[] =
    "this server needs an API key: send it as gRPC metadata 'authorization: Bearer <key>' "
    "(strata-cli and strata-load: --api_key_file or STRATA_API_KEY)";

absl::StatusOr<std::unique_ptr<ApiKeyAuth>> ApiKeyAuth::Create(absl::string_view admin_key,
                                                               const TenantKeys* tenant_keys) {
  RETURN_IF_ERROR(CheckApiKey(admin_key, "the admin key"));
  if (TenantKeys::LooksLikeTenantKey(admin_key)) {
    return absl::InvalidArgumentError(
        "the admin key has the form of a tenant key (stk_...); choose another");
  }
  auto auth = std::unique_ptr<ApiKeyAuth>(new ApiKeyAuth());
  auth->tenant_keys_ = tenant_keys;
  if (RAND_bytes(auth->salt_.data(), static_cast<int>(auth->salt_.size())) != 1) {
    return absl::InternalError("no random bytes for the key's salt (OpenSSL RAND_bytes)");
  }
  auth->admin_ = auth->Hash(admin_key);
  return auth;
}

ApiKeyAuth::Digest ApiKeyAuth::Hash(absl::string_view key) const {
  std::string salted(reinterpret_cast<const char*>(salt_.data()), salt_.size());
  salted.append(key.data(), key.size());
  Digest d{};
  unsigned int n = 0;
  EVP_Digest(salted.data(), salted.size(), d.data(), &n, EVP_sha256(), nullptr);
  OPENSSL_cleanse(salted.data(), salted.size());
  return d;
}

absl::StatusOr<Caller> ApiKeyAuth::IdentifyHeader(absl::string_view authorization) const {
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::StartsWithIgnoreCase(authorization, kScheme)) {
    return absl::UnauthenticatedError("the authorization metadata is not 'Bearer <key>'");
  }
  const absl::string_view key = absl::StripAsciiWhitespace(authorization.substr(kScheme.size()));
  if (TenantKeys::LooksLikeTenantKey(key)) {
    if (tenant_keys_ == nullptr) return absl::UnauthenticatedError("the API key is not valid");
    ASSIGN_OR_RETURN(TenantKeyInfo info, tenant_keys_->Lookup(key));
    return Caller{false, std::move(info)};
  }
  const Digest given = Hash(key);
  // Both sides are digests of equal length: the comparison's time tells nothing of the key.
  if (CRYPTO_memcmp(given.data(), admin_.data(), given.size()) != 0) {
    return absl::UnauthenticatedError("the API key is not valid");
  }
  return Caller{};
}

namespace {

class HeaderProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit HeaderProcessor(const ApiKeyAuth* auth) : auth_(auth) {}
  bool IsBlocking() const override { return false; }  // a hash and a comparison
  grpc::Status Process(const InputMetadata& md, grpc::AuthContext*, OutputMetadata*,
                       OutputMetadata*) override {
    auto path = md.find(":path");
    if (path == md.end() ||
        !absl::StartsWith(absl::string_view(path->second.data(), path->second.size()),
                          "/strata.v1.Strata/")) {
      return grpc::Status::OK;  // health checks and reflection stay open
    }
    absl::Status s;
    auto it = md.find("authorization");
    if (md.count("authorization") > 1) {
      s = absl::UnauthenticatedError("more than one authorization header; send one");
    } else if (it == md.end()) {
      s = absl::UnauthenticatedError(kNoKey);
    } else {
      s = auth_->IdentifyHeader(absl::string_view(it->second.data(), it->second.size())).status();
    }
    return s.ok() ? grpc::Status::OK
                  : grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(s.message()));
  }

 private:
  const ApiKeyAuth* const auth_;
};

}  // namespace

std::shared_ptr<grpc::AuthMetadataProcessor> ApiKeyAuth::HeaderCheck() const {
  return std::make_shared<HeaderProcessor>(this);
}

absl::StatusOr<Caller> ApiKeyAuth::Identify(const grpc::ServerContextBase& ctx) const {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (md.count("authorization") > 1) {
    return absl::UnauthenticatedError("more than one authorization header; send one");
  }
  if (it == md.end()) {
    return absl::UnauthenticatedError(kNoKey);
  }
  return IdentifyHeader(absl::string_view(it->second.data(), it->second.size()));
}

}  // namespace strata
