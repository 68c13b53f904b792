#include "index/types.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace strata {

const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kL2:
      return "l2";
    case Metric::kInnerProduct:
      return "ip";
    case Metric::kCosine:
      return "cosine";
  }
  return "unknown";
}

absl::StatusOr<Metric> ParseMetric(absl::string_view s) {
  std::string v = absl::AsciiStrToLower(s);
  if (v == "l2" || v == "euclidean") return Metric::kL2;
  if (v == "ip" || v == "inner_product" || v == "dot") return Metric::kInnerProduct;
  if (v == "cosine" || v == "cos") return Metric::kCosine;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown metric '", s, "' (expected l2, ip or cosine)"));
}

const char* PostingEncodingName(PostingEncoding e) {
  switch (e) {
    case PostingEncoding::kNative:
      return "native";
    case PostingEncoding::kFloat16:
      return "float16";
  }
  return "unknown";
}

absl::StatusOr<PostingEncoding> ParsePostingEncoding(absl::string_view s) {
  std::string v = absl::AsciiStrToLower(s);
  if (v == "native") return PostingEncoding::kNative;
  if (v == "float16" || v == "f16" || v == "fp16") return PostingEncoding::kFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown posting encoding '", s, "' (expected native or float16)"));
}

}  // namespace strata
