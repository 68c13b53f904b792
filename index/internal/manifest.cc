#include "index/internal/manifest.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "storage/crc32c.h"

namespace strata::internal {
namespace {
constexpr char kFormatKey[] = "strata-index-format";
}

absl::StatusOr<std::string> Manifest::Get(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) {
    return absl::DataLossError(absl::StrCat(path_, ": missing key '", key, "'"));
  }
  return it->second;
}

absl::StatusOr<uint64_t> Manifest::GetU64(const std::string& key) const {
  auto v = Get(key);
  if (!v.ok()) return v.status();
  uint64_t out;
  if (!absl::SimpleAtoi(*v, &out)) {
    return absl::DataLossError(absl::StrCat(path_, ": key '", key, "' is not a number: ", *v));
  }
  return out;
}

absl::StatusOr<double> Manifest::GetDouble(const std::string& key) const {
  auto v = Get(key);
  if (!v.ok()) return v.status();
  double out;
  if (!absl::SimpleAtod(*v, &out)) {
    return absl::DataLossError(absl::StrCat(path_, ": key '", key, "' is not a number: ", *v));
  }
  return out;
}

std::string Manifest::Serialize() const {
  std::string out = absl::StrCat(kFormatKey, " ", kIndexFormatVersion, "\n");
  for (const auto& [k, v] : kv_) absl::StrAppend(&out, k, " ", v, "\n");
  absl::StrAppend(&out, "checksum ", absl::StrFormat("%08x", crc32c::Value(out.data(), out.size())),
                  "\n");
  return out;
}

absl::StatusOr<Manifest> Manifest::Parse(const std::string& text, const std::string& path) {
  Manifest m;
  m.path_ = path;
  size_t pos = text.rfind("checksum ");
  if (pos == std::string::npos || (pos != 0 && text[pos - 1] != '\n')) {
    return absl::DataLossError(absl::StrCat(path, ": no checksum line (truncated?)"));
  }
  std::string want = absl::StrFormat("%08x", crc32c::Value(text.data(), pos));
  std::string got(absl::StripAsciiWhitespace(text.substr(pos + 9)));
  if (got != want) return absl::DataLossError(absl::StrCat(path, ": checksum mismatch"));
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text.substr(0, pos), '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (first) {
      first = false;
      uint32_t version = 0;
      if (kv.first != kFormatKey || !absl::SimpleAtoi(kv.second, &version)) {
        return absl::DataLossError(absl::StrCat(path, ": not a Strata index manifest"));
      }
      if (version != kIndexFormatVersion) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": index format version ", version,
                                                       " is not supported (this build reads ",
                                                       kIndexFormatVersion, ")"));
      }
      continue;
    }
    m.kv_[kv.first] = kv.second;
  }
  if (first) return absl::DataLossError(absl::StrCat(path, ": empty manifest"));
  return m;
}

}  // namespace strata::internal
