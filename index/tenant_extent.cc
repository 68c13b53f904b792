#include "index/tenant_extent.h"

#include <bit>
#include <cstring>

#include "storage/metadata_store.h"

namespace strata {

// Ids are copied in the machine's order; the format says little-endian.
static_assert(std::endian::native == std::endian::little, "tenant extents are little-endian");

std::string TenantExtentKey(uint32_t coll, uint32_t tenant) {
  std::string k = "x";
  AppendU32(&k, coll);
  AppendU32(&k, tenant);
  return k;
}

std::string EncodeTenantExtent(absl::Span<const VectorId> ids, size_t row_bytes,
                               absl::FunctionRef<const uint8_t*(size_t)> row) {
  std::string out;
  out.resize(ids.size() * (sizeof(VectorId) + row_bytes));
  char* p = out.data();
  for (size_t i = 0; i < ids.size(); ++i) {
    std::memcpy(p, &ids[i], sizeof(VectorId));
    std::memcpy(p + sizeof(VectorId), row(i), row_bytes);
    p += sizeof(VectorId) + row_bytes;
  }
  return out;
}

absl::Status DecodeTenantExtent(absl::string_view record, size_t row_bytes,
                                absl::FunctionRef<void(VectorId, const uint8_t*)> visit) {
  const size_t stride = sizeof(VectorId) + row_bytes;
  if (record.size() % stride != 0) {
    return absl::DataLossError("a tenant extent record is not whole rows");
  }
  VectorId last = 0;
  for (size_t off = 0; off < record.size(); off += stride) {
    VectorId id;
    std::memcpy(&id, record.data() + off, sizeof id);
    if (off > 0 && id <= last) {
      return absl::DataLossError("a tenant extent record's ids are not ascending");
    }
    last = id;
    visit(id, reinterpret_cast<const uint8_t*>(record.data() + off + sizeof(VectorId)));
  }
  return absl::OkStatus();
}

}  // namespace strata
