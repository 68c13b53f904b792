#include "tools/load/collection_settings.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "index/collection_config.h"
#include "storage/status_macros.h"

ABSL_FLAG(std::vector<std::string>, text_fields, {},
          "a new collection: payload JSON fields indexed lexically with the text, e.g. title");
ABSL_FLAG(std::string, metric, "",
          "metric of a collection created here: l2, ip or cosine (default: l2 for vectors, "
          "cosine for --text)");
ABSL_FLAG(std::string, posting_encoding, "",
          "a created collection's postings: native, or float16 (float32 vectors only: half the "
          "disk and the pages each query reads; distances against float16-rounded vectors); "
          "default: float16 with --text (unit-norm embeddings lose nothing that matters), native "
          "otherwise");

namespace strata::load {

std::string Metric(bool text_mode) {
  std::string m = absl::GetFlag(FLAGS_metric);
  return m.empty() ? (text_mode ? "cosine" : "l2") : m;
}

absl::StatusOr<strata::PostingEncoding> PostingEncodingFlag(bool text_mode) {
  std::string e = absl::GetFlag(FLAGS_posting_encoding);
  if (e.empty())
    return text_mode ? strata::PostingEncoding::kFloat16 : strata::PostingEncoding::kNative;
  auto parsed = strata::ParsePostingEncoding(e);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--posting_encoding: ", parsed.status().message()));
  }
  return *parsed;
}

absl::Status CheckExistingCollection(const std::string& collection, strata::Metric metric,
                                     strata::PostingEncoding encoding) {
  if (const std::string m = absl::GetFlag(FLAGS_metric); !m.empty()) {
    absl::StatusOr<strata::Metric> want = strata::ParseMetric(m);
    if (!want.ok())
      return absl::InvalidArgumentError(absl::StrCat("--metric: ", want.status().message()));
    if (*want != metric) {
      return absl::InvalidArgumentError(absl::StrCat(
          "collection '", collection, "' exists with metric ", strata::MetricName(metric),
          "; --metric=", m, " applies only to a new collection"));
    }
  }
  const std::string e = absl::GetFlag(FLAGS_posting_encoding);
  if (e.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(strata::PostingEncoding want, PostingEncodingFlag(false));
  if (want == encoding) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "collection '", collection, "' exists with ", strata::PostingEncodingName(encoding),
      " postings; --posting_encoding=", e, " applies only to a new collection"));
}

}  // namespace strata::load
