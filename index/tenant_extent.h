// A small tenant's points packed into one record of the metadata store (its extent): a tenant
// that sees at most TenantExtentRows(row_bytes) points - an extent of at most 32 KiB, eight
// pages; two pages for a tenant of at most 8 KiB of vectors (62 SIFT-like points) - is searched
// by reading that one record instead of one record per point, however its points are spread over
// the collection (Curator's tenant extents). The extent copies the tenant's vectors: the one
// place a point is stored more than once, bounded by 32 KiB per tenant.
//
// An extent is derived data, kept exact by the collection: rewritten in the same write batch as
// every change of the tenant's points or of their vectors, removed when the tenant grows past
// the limit, and checked against the access sets when the collection opens (rebuilt if it
// disagrees). Format (storage/FORMAT.md): rows of [u32 internal id][the stored vector bytes],
// ascending by id.
#ifndef STRATA_INDEX_TENANT_EXTENT_H_
#define STRATA_INDEX_TENANT_EXTENT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "index/types.h"

namespace strata {

inline constexpr size_t kTenantExtentBytes = 32768;

// Points of a tenant whose extent fits kTenantExtentBytes (at least 1).
[[nodiscard]] inline size_t TenantExtentRows(size_t row_bytes) {
  const size_t rows = kTenantExtentBytes / (sizeof(VectorId) + row_bytes);
  return rows == 0 ? 1 : rows;
}

// The extent record's key in the tenants family: 'x' coll tenant.
[[nodiscard]] std::string TenantExtentKey(uint32_t coll, uint32_t tenant);

// `ids` ascending; row(i) gives ids[i]'s stored vector (row_bytes bytes).
[[nodiscard]] std::string EncodeTenantExtent(absl::Span<const VectorId> ids, size_t row_bytes,
                                             absl::FunctionRef<const uint8_t*(size_t)> row);
// Calls visit(id, vector) for each row. DataLoss for a record that is not whole rows of
// ascending ids.
[[nodiscard]] absl::Status DecodeTenantExtent(
    absl::string_view record, size_t row_bytes,
    absl::FunctionRef<void(VectorId, const uint8_t*)> visit);

}  // namespace strata

#endif  // STRATA_INDEX_TENANT_EXTENT_H_
