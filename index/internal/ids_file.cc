#include "index/internal/ids_file.h"

#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "storage/crc32c.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata::internal {
namespace {
namespace fs = std::filesystem;
constexpr char kIdsMagic[8] = {'S', 'T', 'R', 'I', 'D', 'S', '0', '1'};
constexpr size_t kHeader = 24, kTrailer = 4;
static_assert(sizeof(VectorId) == 4, "ids.bin stores u32 ids");
}  // namespace

absl::Status WriteIdsFile(Env& env, const std::string& dir, absl::Span<const VectorId> ids,
                          absl::Span<const uint8_t> versions) {
  std::string out(kIdsMagic, sizeof kIdsMagic);
  uint32_t format = 1, zero = 0;
  uint64_t n = ids.size();
  out.append(reinterpret_cast<const char*>(&format), 4);
  out.append(reinterpret_cast<const char*>(&zero), 4);
  out.append(reinterpret_cast<const char*>(&n), 8);
  out.append(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(VectorId));
  out.append(reinterpret_cast<const char*>(versions.data()), versions.size());
  uint32_t crc = crc32c::Value(out.data(), out.size());
  out.append(reinterpret_cast<const char*>(&crc), 4);
  return WriteFileAtomic(env, (fs::path(dir) / kIdsFile).string(), out);
}

absl::Status ReadIdsFile(const std::string& dir, std::vector<VectorId>* ids,
                         std::vector<uint8_t>* versions) {
  std::string path = (fs::path(dir) / kIdsFile).string();
  ASSIGN_OR_RETURN(std::string in, ReadWholeFile(path));
  if (in.size() < kHeader + kTrailer || std::memcmp(in.data(), kIdsMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a Strata id file"));
  }
  uint32_t format, crc;
  uint64_t n;
  std::memcpy(&format, in.data() + 8, 4);
  std::memcpy(&n, in.data() + 16, 8);
  if (format != 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported format ", format));
  }
  // n is compared by division: n * 5 could wrap around for a crafted count.
  const uint64_t body = in.size() - kHeader - kTrailer;
  if (body % 5 != 0 || n != body / 5) {
    return absl::DataLossError(
        absl::StrCat(path, ": holds ", body, " bytes of entries, not the ", n, " its header says"));
  }
  std::memcpy(&crc, in.data() + in.size() - 4, 4);
  if (crc != crc32c::Value(in.data(), in.size() - 4)) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch"));
  }
  ids->resize(n);
  versions->resize(n);
  if (n == 0) return absl::OkStatus();
  std::memcpy(ids->data(), in.data() + kHeader, n * 4);
  std::memcpy(versions->data(), in.data() + kHeader + n * 4, n);
  return absl::OkStatus();
}

}  // namespace strata::internal
