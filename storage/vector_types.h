// Element types of stored vectors, shared by every module.
#ifndef STRATA_STORAGE_VECTOR_TYPES_H_
#define STRATA_STORAGE_VECTOR_TYPES_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace strata {

// Values are persisted in file headers: never renumber.
enum class ElementType : uint32_t { kFloat32 = 1, kUint8 = 2, kInt8 = 3 };

[[nodiscard]] constexpr size_t ElementSize(ElementType t) {
  return t == ElementType::kFloat32 ? 4 : 1;
}
[[nodiscard]] const char* ElementTypeName(ElementType t);
// Accepts "float32"/"float", "uint8"/"u8", "int8"/"i8".
[[nodiscard]] absl::StatusOr<ElementType> ParseElementType(absl::string_view s);
[[nodiscard]] bool IsValidElementType(uint32_t raw);

// Widens `count` values of type `t` at `src` to float32 at `out` (a copy for float32).
void ConvertToFloat(ElementType t, const uint8_t* src, size_t count, float* out);

}  // namespace strata

#endif  // STRATA_STORAGE_VECTOR_TYPES_H_
