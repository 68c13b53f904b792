#include "service/vector_convert.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {

absl::Status VectorBytes(const v1::Vector& v, ElementType type, uint32_t dim,
                         std::vector<uint8_t>* out) {
  const size_t esize = ElementSize(type);
  if (!v.raw().empty() && v.values_size() > 0) {
    return absl::InvalidArgumentError("vector sets both 'values' and 'raw'; set one");
  }
  if (!v.raw().empty()) {
    if (v.raw().size() != size_t{dim} * esize) {
      return absl::InvalidArgumentError(
          absl::StrCat("vector 'raw' has ", v.raw().size(), " bytes; dimension ", dim, " of ",
                       ElementTypeName(type), " needs ", size_t{dim} * esize));
    }
    out->assign(v.raw().begin(), v.raw().end());
    return absl::OkStatus();
  }
  if (v.values_size() == 0) return absl::InvalidArgumentError("vector is empty");
  if (static_cast<uint32_t>(v.values_size()) != dim) {
    return absl::InvalidArgumentError(absl::StrCat("vector has ", v.values_size(),
                                                   " values, the collection has dimension ", dim));
  }
  out->resize(size_t{dim} * esize);
  for (uint32_t j = 0; j < dim; ++j) {
    float f = v.values(static_cast<int>(j));
    if (type == ElementType::kFloat32) {
      std::memcpy(out->data() + j * 4, &f, 4);
      continue;
    }
    float lo = type == ElementType::kUint8 ? 0 : -128, hi = type == ElementType::kUint8 ? 255 : 127;
    if (f != std::floor(f) || f < lo || f > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("value ", f, " at dimension ", j, " is not a ", ElementTypeName(type)));
    }
    if (type == ElementType::kUint8) {
      (*out)[j] = static_cast<uint8_t>(f);
    } else {
      (*out)[j] = static_cast<uint8_t>(static_cast<int8_t>(f));
    }
  }
  return absl::OkStatus();
}

void BytesToVector(absl::Span<const uint8_t> bytes, ElementType type, v1::Vector* v) {
  size_t n = bytes.size() / ElementSize(type);
  for (size_t j = 0; j < n; ++j) {
    float f;
    if (type == ElementType::kFloat32) {
      std::memcpy(&f, bytes.data() + j * 4, 4);
    } else if (type == ElementType::kUint8) {
      f = bytes[j];
    } else {
      f = static_cast<int8_t>(bytes[j]);
    }
    v->add_values(f);
  }
}

}  // namespace strata
