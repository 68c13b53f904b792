// Tenant API keys: made by the admin, each bound to one or more tenants of one collection (by
// the collection's uid, so a collection dropped and made again under the same name does not
// inherit them), revocable. Stored in the metadata store's `api_keys` family only as a salted
// SHA-256 (storage/FORMAT.md); the key itself is shown once, when it is made.
//
// A key reads "stk_<key id>_<secret>": the key id (16 hex digits, public: listings show it) finds
// the record, the whole key is hashed with the record's salt and compared in constant time.
//
// Thread-safe.
#ifndef STRATA_SERVICE_TENANT_KEYS_H_
#define STRATA_SERVICE_TENANT_KEYS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "storage/metadata_store.h"

namespace strata {

// Most tenants one key may name; most keys a server holds.
inline constexpr size_t kMaxKeyTenants = 64;
inline constexpr size_t kMaxTenantKeys = 100000;
inline constexpr size_t kMaxKeyLabelBytes = 256;

struct TenantKeyInfo {
  std::string key_id;
  std::string collection;
  std::string collection_uid;
  std::vector<std::string> tenants;
  std::string label;
  int64_t created_unix_seconds = 0;
};

class TenantKeys final {
 public:
  // Reads every key record. DataLoss naming the key id for a malformed one.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TenantKeys>> Open(MetadataStore* store);

  // Makes a key for `tenants` (1..kMaxKeyTenants names, the caller checked they exist) of the
  // collection `collection` / `uid`; returns the key, durable. ResourceExhausted past
  // kMaxTenantKeys; InvalidArgument for a label over kMaxKeyLabelBytes.
  [[nodiscard]] absl::StatusOr<std::string> Create(absl::string_view collection,
                                                   absl::string_view uid,
                                                   absl::Span<const std::string> tenants,
                                                   absl::string_view label, int64_t now_unix,
                                                   TenantKeyInfo* info);
  // NotFound for an unknown key id.
  [[nodiscard]] absl::Status Revoke(absl::string_view key_id);
  // Revokes every key naming `tenant` of collection `uid`; returns how many.
  [[nodiscard]] absl::StatusOr<uint32_t> RevokeFor(absl::string_view uid, absl::string_view tenant);
  // Revokes every key of collection `uid` (it was dropped); returns how many.
  [[nodiscard]] absl::StatusOr<uint32_t> RevokeCollection(absl::string_view uid);
  // Revokes every key of a collection whose uid is not in `listed` (a drop that stopped before
  // it revoked them); returns how many. Each is logged, naming its collection.
  [[nodiscard]] absl::StatusOr<uint32_t> RevokeUnlisted(
      const absl::flat_hash_set<std::string>& listed);
  // Keys of `collection` (empty = all), by key id.
  [[nodiscard]] std::vector<TenantKeyInfo> List(absl::string_view collection) const;

  // The key's record when `key` is a live tenant key; Unauthenticated otherwise (one message for
  // an unknown, revoked or wrong key).
  [[nodiscard]] absl::StatusOr<TenantKeyInfo> Lookup(absl::string_view key) const;
  // Whether `key` has a tenant key's form (then it is never taken for the admin key).
  [[nodiscard]] static bool LooksLikeTenantKey(absl::string_view key);

 private:
  struct Record {
    TenantKeyInfo info;
    std::string salt;  // 16 bytes
    std::string hash;  // 32 bytes: SHA-256(salt, key)
  };
  explicit TenantKeys(MetadataStore* store) : store_(store) {}
  static std::string Encode(const Record& r);
  static absl::StatusOr<Record> Decode(absl::string_view key_id, absl::string_view value);
  absl::StatusOr<uint32_t> RevokeWhere(absl::FunctionRef<bool(const TenantKeyInfo&)> pred);

  MetadataStore* const store_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, Record> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata

#endif  // STRATA_SERVICE_TENANT_KEYS_H_
