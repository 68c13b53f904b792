// A collection's configuration: what it holds (dimension, type, metric), how its index is
// built, and where it stands (its index generation). Persisted as one text record per collection
// in the metadata store (the catalog's family), "key=value" lines.
#ifndef STRATA_INDEX_COLLECTION_CONFIG_H_
#define STRATA_INDEX_COLLECTION_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "index/types.h"
#include "storage/vector_types.h"

namespace strata {

inline constexpr size_t kMaxTextFields = 16;
inline constexpr size_t kMaxNameLength = 64;

// The one rule for names a user gives (collections, tenants, text fields): 1 to kMaxNameLength
// characters of [A-Za-z0-9_-]. InvalidArgument naming `what` and the name otherwise.
[[nodiscard]] absl::Status CheckName(absl::string_view what, absl::string_view name);
// A name as error messages show it: C-escaped, cut after kMaxNameLength bytes ("..." marks the
// cut), so a caller cannot make the server echo megabytes back.
[[nodiscard]] std::string ShownName(absl::string_view name);

struct CollectionConfig {
  std::string name;
  uint32_t id = 0;  // key prefix in the metadata store; assigned by the catalog
  // Unique to this collection across servers and time (128 random bits, hex), assigned by the
  // catalog at creation: lets a client tell a collection from another of the same name (a
  // loader's checkpoint from a collection dropped and made again, or on another server).
  std::string uid;
  uint32_t dim = 0;
  ElementType type = ElementType::kFloat32;
  Metric metric = Metric::kL2;
  double head_share = 0;  // 0 = by element type
  uint32_t max_replicas = 8;
  uint32_t posting_page_limit = 0;  // 0 = by element type
  PostingEncoding posting_encoding = PostingEncoding::kNative;
  uint64_t build_threshold = 10000;
  uint64_t index_generation = 0;  // 0 = no index built yet
  // Top-level payload JSON fields indexed lexically beside the payload text (the service reads
  // them: CollectionOptions::payload_text). At most kMaxTextFields names of [A-Za-z0-9_-].
  std::vector<std::string> text_fields;
  // Hybrid search's default dense weight, learned from labelled questions (index/hybrid_tuner.h);
  // negative = none learned (the fusion's own default applies). With the MRR@10 it reached and
  // on how many questions.
  double hybrid_weight = -1;
  double hybrid_mrr = 0;
  uint32_t hybrid_questions = 0;
  // A build was asked for (Collection::RequestBuild) and no build has installed since: a start
  // that finds it schedules the build again (one cut short by a stop is not forgotten).
  bool build_requested = false;

  [[nodiscard]] std::string Serialize() const;
  // DataLoss for a malformed record.
  [[nodiscard]] static absl::StatusOr<CollectionConfig> Parse(absl::string_view text);
  // InvalidArgument naming the bad field.
  [[nodiscard]] absl::Status Validate() const;
};

}  // namespace strata

#endif  // STRATA_INDEX_COLLECTION_CONFIG_H_
