// Conversions between the public API's enums (proto/strata.proto) and the engine's own types, for
// the server and the tools. Header-only, so a tool that includes it links no index code.
#ifndef STRATA_PROTO_CONVERT_H_
#define STRATA_PROTO_CONVERT_H_

#include "absl/status/statusor.h"
#include "index/types.h"
#include "proto/strata.pb.h"
#include "storage/vector_types.h"

namespace strata {

inline v1::ElementType ToProto(ElementType t) {
  switch (t) {
    case ElementType::kFloat32:
      return v1::FLOAT32;
    case ElementType::kUint8:
      return v1::UINT8;
    case ElementType::kInt8:
      return v1::INT8;
  }
  return v1::ELEMENT_TYPE_UNSPECIFIED;
}
inline v1::Metric ToProto(Metric m) {
  switch (m) {
    case Metric::kL2:
      return v1::L2;
    case Metric::kInnerProduct:
      return v1::INNER_PRODUCT;
    case Metric::kCosine:
      return v1::COSINE;
  }
  return v1::METRIC_UNSPECIFIED;
}
inline v1::PostingEncoding ToProto(PostingEncoding e) {
  return e == PostingEncoding::kFloat16 ? v1::POSTING_FLOAT16 : v1::POSTING_NATIVE;
}

// InvalidArgument naming the field and its valid values for anything else (unspecified included).
inline absl::StatusOr<ElementType> FromProto(v1::ElementType t) {
  switch (t) {
    case v1::FLOAT32:
      return ElementType::kFloat32;
    case v1::UINT8:
      return ElementType::kUint8;
    case v1::INT8:
      return ElementType::kInt8;
    default:
      return absl::InvalidArgumentError("element_type must be FLOAT32, UINT8 or INT8");
  }
}
inline absl::StatusOr<Metric> FromProto(v1::Metric m) {
  switch (m) {
    case v1::L2:
      return Metric::kL2;
    case v1::INNER_PRODUCT:
      return Metric::kInnerProduct;
    case v1::COSINE:
      return Metric::kCosine;
    default:
      return absl::InvalidArgumentError("metric must be L2, INNER_PRODUCT or COSINE");
  }
}
inline absl::StatusOr<PostingEncoding> FromProto(v1::PostingEncoding e) {
  switch (e) {
    case v1::POSTING_NATIVE:
      return PostingEncoding::kNative;
    case v1::POSTING_FLOAT16:
      return PostingEncoding::kFloat16;
    default:
      return absl::InvalidArgumentError(
          "index.posting_encoding must be POSTING_NATIVE or POSTING_FLOAT16");
  }
}

}  // namespace strata

#endif  // STRATA_PROTO_CONVERT_H_
