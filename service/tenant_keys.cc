#include "service/tenant_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "index/collection_config.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

constexpr absl::string_view kPrefix = "stk_";
constexpr size_t kIdHex = 16;
constexpr size_t kSecretHex = 48;
constexpr uint8_t kFormat = 1;

std::string Sha256(absl::string_view salt, absl::string_view key) {
  std::string salted(salt);
  salted.append(key.data(), key.size());
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(salted.data(), salted.size(), d, &n, EVP_sha256(), nullptr);
  OPENSSL_cleanse(salted.data(), salted.size());
  return std::string(reinterpret_cast<const char*>(d), sizeof d);
}

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return absl::InternalError("no random bytes (OpenSSL RAND_bytes)");
  }
  return out;
}

void PutString(std::string* out, absl::string_view s) {
  AppendU32(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}

// Reads a length-prefixed string at *pos; false when the record ends first.
bool GetString(absl::string_view in, size_t* pos, std::string* s) {
  if (in.size() - *pos < 4) return false;
  const uint32_t n = ReadU32(in, *pos);
  *pos += 4;
  if (in.size() - *pos < n) return false;
  *s = std::string(in.substr(*pos, n));
  *pos += n;
  return true;
}

bool IsHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

bool TenantKeys::LooksLikeTenantKey(absl::string_view key) {
  return key.size() == kPrefix.size() + kIdHex + 1 + kSecretHex && absl::StartsWith(key, kPrefix) &&
         key[kPrefix.size() + kIdHex] == '_' && IsHex(key.substr(kPrefix.size(), kIdHex)) &&
         IsHex(key.substr(kPrefix.size() + kIdHex + 1));
}

std::string TenantKeys::Encode(const Record& r) {
  std::string v(1, static_cast<char>(kFormat));
  v += r.salt;
  v += r.hash;
  AppendU64(&v, static_cast<uint64_t>(r.info.created_unix_seconds));
  PutString(&v, r.info.collection);
  PutString(&v, r.info.collection_uid);
  PutString(&v, r.info.label);
  AppendU32(&v, static_cast<uint32_t>(r.info.tenants.size()));
  for (const std::string& t : r.info.tenants) PutString(&v, t);
  return v;
}

absl::StatusOr<TenantKeys::Record> TenantKeys::Decode(absl::string_view key_id,
                                                      absl::string_view value) {
  const auto bad = [&] {
    return absl::DataLossError(
        absl::StrCat("tenant key record '", absl::CHexEscape(key_id), "' is malformed"));
  };
  if (key_id.size() != kIdHex || !IsHex(key_id)) return bad();
  if (value.size() < 1 + 16 + 32 + 8 || static_cast<uint8_t>(value[0]) != kFormat) return bad();
  Record r;
  r.info.key_id = std::string(key_id);
  r.salt = std::string(value.substr(1, 16));
  r.hash = std::string(value.substr(17, 32));
  r.info.created_unix_seconds = static_cast<int64_t>(ReadU64(value, 49));
  size_t pos = 57;
  if (!GetString(value, &pos, &r.info.collection) ||
      !GetString(value, &pos, &r.info.collection_uid) || !GetString(value, &pos, &r.info.label) ||
      value.size() - pos < 4) {
    return bad();
  }
  const uint32_t n = ReadU32(value, pos);
  pos += 4;
  if (n == 0 || n > kMaxKeyTenants) return bad();
  r.info.tenants.resize(n);
  for (std::string& t : r.info.tenants) {
    if (!GetString(value, &pos, &t) || !CheckName("tenant name", t).ok()) return bad();
  }
  if (pos != value.size()) return bad();
  return r;
}

absl::StatusOr<std::unique_ptr<TenantKeys>> TenantKeys::Open(MetadataStore* store) {
  auto keys = std::unique_ptr<TenantKeys>(new TenantKeys(store));
  MutexLock lock(&keys->mu_);
  RETURN_IF_ERROR(store->Scan(Cf::kApiKeys, "", [&](auto key, auto value) -> absl::Status {
    keys->mu_.AssertHeld();  // Open's
    ASSIGN_OR_RETURN(Record r, Decode(key, value));
    keys->keys_.emplace(r.info.key_id, std::move(r));
    return absl::OkStatus();
  }));
  if (!keys->keys_.empty()) Log(LogLevel::kInfo, "%d tenant keys", keys->keys_.size());
  return keys;
}

absl::StatusOr<std::string> TenantKeys::Create(absl::string_view collection, absl::string_view uid,
                                               absl::Span<const std::string> tenants,
                                               absl::string_view label, int64_t now_unix,
                                               TenantKeyInfo* info) {
  if (tenants.empty() || tenants.size() > kMaxKeyTenants) {
    return absl::InvalidArgumentError(
        absl::StrCat("a key names 1 to ", kMaxKeyTenants, " tenants, got ", tenants.size()));
  }
  if (label.size() > kMaxKeyLabelBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a key's label has at most ", kMaxKeyLabelBytes, " bytes"));
  }
  {
    ReaderMutexLock lock(&mu_);
    if (keys_.size() >= kMaxTenantKeys) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the server holds ", kMaxTenantKeys, " tenant keys, the most it can; revoke some"));
    }
  }
  ASSIGN_OR_RETURN(std::string id_bytes, RandomBytes(kIdHex / 2));
  ASSIGN_OR_RETURN(std::string secret_bytes, RandomBytes(kSecretHex / 2));
  Record r;
  r.info.key_id = absl::BytesToHexString(id_bytes);
  const std::string key =
      absl::StrCat(kPrefix, r.info.key_id, "_", absl::BytesToHexString(secret_bytes));
  OPENSSL_cleanse(secret_bytes.data(), secret_bytes.size());
  ASSIGN_OR_RETURN(r.salt, RandomBytes(16));
  r.hash = Sha256(r.salt, key);
  r.info.collection = std::string(collection);
  r.info.collection_uid = std::string(uid);
  r.info.tenants.assign(tenants.begin(), tenants.end());
  r.info.label = std::string(label);
  r.info.created_unix_seconds = now_unix;
  // Durable first, then usable (no lock held across the synced write).
  WriteBatch batch;
  batch.Put(Cf::kApiKeys, r.info.key_id, Encode(r));
  RETURN_IF_ERROR(store_->Write(&batch, /*sync=*/true));
  *info = r.info;
  MutexLock lock(&mu_);
  keys_.emplace(r.info.key_id, std::move(r));
  return key;
}

absl::StatusOr<uint32_t> TenantKeys::RevokeWhere(
    absl::FunctionRef<bool(const TenantKeyInfo&)> pred) {
  // Unusable at once (out of the map), then deleted durably; put back if the write fails.
  std::vector<Record> taken;
  {
    MutexLock lock(&mu_);
    for (auto it = keys_.begin(); it != keys_.end();) {
      if (pred(it->second.info)) {
        taken.push_back(std::move(it->second));
        keys_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  if (taken.empty()) return 0;
  WriteBatch batch;
  for (const Record& r : taken) batch.Delete(Cf::kApiKeys, r.info.key_id);
  absl::Status written = store_->Write(&batch, /*sync=*/true);
  if (!written.ok()) {
    MutexLock lock(&mu_);
    for (Record& r : taken) keys_.emplace(r.info.key_id, std::move(r));
    return written;
  }
  for (const Record& r : taken) {
    Log(LogLevel::kInfo, "tenant key %s (collection '%s') revoked", r.info.key_id,
        r.info.collection);
  }
  return static_cast<uint32_t>(taken.size());
}

absl::Status TenantKeys::Revoke(absl::string_view key_id) {
  ASSIGN_OR_RETURN(uint32_t n,
                   RevokeWhere([&](const TenantKeyInfo& k) { return k.key_id == key_id; }));
  if (n == 0) {
    return absl::NotFoundError(absl::StrCat("no tenant key with id '", ShownName(key_id), "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> TenantKeys::RevokeFor(absl::string_view uid, absl::string_view tenant) {
  return RevokeWhere([&](const TenantKeyInfo& k) {
    return k.collection_uid == uid &&
           std::find(k.tenants.begin(), k.tenants.end(), tenant) != k.tenants.end();
  });
}

absl::StatusOr<uint32_t> TenantKeys::RevokeCollection(absl::string_view uid) {
  return RevokeWhere([&](const TenantKeyInfo& k) { return k.collection_uid == uid; });
}

absl::StatusOr<uint32_t> TenantKeys::RevokeUnlisted(
    const absl::flat_hash_set<std::string>& listed) {
  return RevokeWhere([&](const TenantKeyInfo& k) { return !listed.contains(k.collection_uid); });
}

std::vector<TenantKeyInfo> TenantKeys::List(absl::string_view collection) const {
  std::vector<TenantKeyInfo> out;
  {
    ReaderMutexLock lock(&mu_);
    for (const auto& [id, r] : keys_) {
      if (collection.empty() || r.info.collection == collection) out.push_back(r.info);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TenantKeyInfo& a, const TenantKeyInfo& b) { return a.key_id < b.key_id; });
  return out;
}

absl::StatusOr<TenantKeyInfo> TenantKeys::Lookup(absl::string_view key) const {
  const absl::Status refused = absl::UnauthenticatedError("the API key is not valid");
  if (!LooksLikeTenantKey(key)) return refused;
  const std::string id(key.substr(kPrefix.size(), kIdHex));
  ReaderMutexLock lock(&mu_);
  auto it = keys_.find(id);
  if (it == keys_.end()) return refused;
  const std::string given = Sha256(it->second.salt, key);
  // Digests of equal length: the comparison's time tells nothing of the key.
  if (CRYPTO_memcmp(given.data(), it->second.hash.data(), given.size()) != 0) return refused;
  return it->second.info;
}

}  // namespace strata
