// The index MANIFEST: a small text file of "key value" lines ending in a crc32c line. Written last
// (atomically) by a build, so its presence and validity mark a complete index. Private to index/.
#ifndef STRATA_INDEX_INTERNAL_MANIFEST_H_
#define STRATA_INDEX_INTERNAL_MANIFEST_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace strata::internal {

inline constexpr char kManifestName[] = "MANIFEST";
inline constexpr uint32_t kIndexFormatVersion = 1;

class Manifest final {
 public:
  void Set(const std::string& key, const std::string& value) { kv_[key] = value; }
  void Set(const std::string& key, uint64_t value) { kv_[key] = std::to_string(value); }

  [[nodiscard]] bool Has(const std::string& key) const { return kv_.count(key) != 0; }
  [[nodiscard]] absl::StatusOr<std::string> Get(const std::string& key) const;
  [[nodiscard]] absl::StatusOr<uint64_t> GetU64(const std::string& key) const;
  [[nodiscard]] absl::StatusOr<double> GetDouble(const std::string& key) const;

  // Serialises with the format line first and the checksum line last.
  [[nodiscard]] std::string Serialize() const;
  // Parses and verifies; DataLoss naming `path` for anything malformed, InvalidArgument for an
  // unsupported format version.
  [[nodiscard]] static absl::StatusOr<Manifest> Parse(const std::string& text,
                                                      const std::string& path);

 private:
  std::map<std::string, std::string> kv_;
  std::string path_;
};

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_MANIFEST_H_
