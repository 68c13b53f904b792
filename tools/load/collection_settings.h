// The settings strata-load gives a collection it creates (--metric, --posting_encoding,
// --text_fields), and the check that an existing collection is not asked for others.
#ifndef STRATA_TOOLS_LOAD_COLLECTION_SETTINGS_H_
#define STRATA_TOOLS_LOAD_COLLECTION_SETTINGS_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "index/types.h"

ABSL_DECLARE_FLAG(std::vector<std::string>, text_fields);

namespace strata::load {

// The metric of a collection created here: --metric, else cosine for text and l2 for vectors.
std::string Metric(bool text_mode);

// The postings of a collection created here: --posting_encoding, else float16 for text (unit-norm
// embeddings) and native for vectors.
absl::StatusOr<strata::PostingEncoding> PostingEncodingFlag(bool text_mode);

// An existing collection keeps its metric and encoding: an explicit --metric or
// --posting_encoding that differs (or names none) is an error rather than silently ignored.
absl::Status CheckExistingCollection(const std::string& collection, strata::Metric metric,
                                     strata::PostingEncoding encoding);

}  // namespace strata::load

#endif  // STRATA_TOOLS_LOAD_COLLECTION_SETTINGS_H_
