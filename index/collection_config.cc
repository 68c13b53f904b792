#include "index/collection_config.h"

#include <algorithm>
#include <cctype>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "index/vector_rules.h"
#include "storage/status_macros.h"

namespace strata {

std::string CollectionConfig::Serialize() const {
  return absl::StrFormat(
             "format=1\nname=%s\nid=%d\ndim=%d\ntype=%s\nmetric=%s\nhead_share=%.17g\nmax_replicas="
             "%d\n"
             "posting_page_limit=%d\nposting_encoding=%s\nbuild_threshold=%d\nindex_generation=%d\n"
             "uid=%s\n",
             name, id, dim, ElementTypeName(type), MetricName(metric), head_share, max_replicas,
             posting_page_limit, PostingEncodingName(posting_encoding), build_threshold,
             index_generation, uid) +
         (hybrid_weight >= 0 ? absl::StrFormat("hybrid_weight=%.17g\nhybrid_mrr=%.17g\n"
                                               "hybrid_questions=%d\n",
                                               hybrid_weight, hybrid_mrr, hybrid_questions)
                             : std::string()) +
         (text_fields.empty()
              ? std::string()
              : absl::StrCat("text_fields=", absl::StrJoin(text_fields, ","), "\n")) +
         (build_requested ? "build_requested=1\n" : "");
}

absl::StatusOr<CollectionConfig> CollectionConfig::Parse(absl::string_view text) {
  CollectionConfig c;
  absl::flat_hash_map<std::string, std::string> kv;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat("collection record line '", line, "' is malformed"));
    }
    kv[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  auto get = [&](const char* key) -> absl::StatusOr<std::string> {
    auto it = kv.find(key);
    if (it == kv.end()) {
      return absl::DataLossError(absl::StrCat("collection record lacks '", key, "'"));
    }
    return it->second;
  };
  auto num = [&](const char* key, uint64_t* out) -> absl::Status {
    ASSIGN_OR_RETURN(std::string v, get(key));
    if (!absl::SimpleAtoi(v, out)) {
      return absl::DataLossError(absl::StrCat("collection record: bad ", key, " '", v, "'"));
    }
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(std::string format, get("format"));
  if (format != "1") {
    return absl::InvalidArgumentError(
        absl::StrCat("collection record format ", format, " is not supported"));
  }
  ASSIGN_OR_RETURN(c.name, get("name"));
  // Records written before collections had a uid lack it; the catalog gives them one at open.
  if (auto it = kv.find("uid"); it != kv.end()) c.uid = it->second;
  uint64_t v;
  RETURN_IF_ERROR(num("id", &v));
  c.id = static_cast<uint32_t>(v);
  RETURN_IF_ERROR(num("dim", &v));
  c.dim = static_cast<uint32_t>(v);
  ASSIGN_OR_RETURN(std::string type, get("type"));
  auto t = ParseElementType(type);
  if (!t.ok()) return absl::DataLossError(t.status().message());
  c.type = *t;
  ASSIGN_OR_RETURN(std::string metric, get("metric"));
  auto m = ParseMetric(metric);
  if (!m.ok()) return absl::DataLossError(m.status().message());
  c.metric = *m;
  ASSIGN_OR_RETURN(std::string share, get("head_share"));
  if (!absl::SimpleAtod(share, &c.head_share)) {
    return absl::DataLossError("collection record: bad head_share");
  }
  RETURN_IF_ERROR(num("max_replicas", &v));
  c.max_replicas = static_cast<uint32_t>(v);
  RETURN_IF_ERROR(num("posting_page_limit", &v));
  c.posting_page_limit = static_cast<uint32_t>(v);
  if (kv.contains("posting_encoding")) {  // absent in records written before it existed: native
    auto e = ParsePostingEncoding(kv["posting_encoding"]);
    if (!e.ok()) return absl::DataLossError(e.status().message());
    c.posting_encoding = *e;
  }
  RETURN_IF_ERROR(num("build_threshold", &c.build_threshold));
  RETURN_IF_ERROR(num("index_generation", &c.index_generation));
  if (kv.contains("build_requested")) {  // only while a requested build is to come
    if (kv["build_requested"] != "1") {
      return absl::DataLossError("collection record: bad build_requested");
    }
    c.build_requested = true;
  }
  if (kv.contains("text_fields")) {  // only when the collection has some
    c.text_fields = absl::StrSplit(kv["text_fields"], ',', absl::SkipEmpty());
  }
  if (kv.contains("hybrid_weight")) {  // only once a weight was learned
    if (!absl::SimpleAtod(kv["hybrid_weight"], &c.hybrid_weight) ||
        !(c.hybrid_weight >= 0 && c.hybrid_weight <= 1) ||
        !absl::SimpleAtod(kv["hybrid_mrr"], &c.hybrid_mrr)) {
      return absl::DataLossError("collection record: bad hybrid_weight or hybrid_mrr");
    }
    RETURN_IF_ERROR(num("hybrid_questions", &v));
    c.hybrid_questions = static_cast<uint32_t>(v);
  }
  return c;
}

std::string ShownName(absl::string_view name) {
  if (name.size() <= kMaxNameLength) return absl::CHexEscape(name);
  return absl::StrCat(absl::CHexEscape(name.substr(0, kMaxNameLength)), "... (", name.size(),
                      " bytes)");
}

absl::Status CheckName(absl::string_view what, absl::string_view name) {
  const bool ok = !name.empty() && name.size() <= kMaxNameLength &&
                  std::all_of(name.begin(), name.end(), [](char ch) {
                    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
                  });
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", ShownName(name), "' must have 1 to ",
                                                   kMaxNameLength,
                                                   " characters of letters, digits, '_' and '-'"));
  }
  return absl::OkStatus();
}

absl::Status CollectionConfig::Validate() const {
  RETURN_IF_ERROR(CheckName("collection name", name));
  if (dim == 0 || dim > kMaxDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat("dimension must be in [1, ", kMaxDimension, "], got ", dim));
  }
  if (metric == Metric::kCosine && type != ElementType::kFloat32) {
    return absl::InvalidArgumentError("cosine needs float32 vectors");
  }
  if (!(head_share >= 0 && head_share <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_share must be in [0, 1] (0 = default), got ", head_share));
  }
  if (max_replicas == 0 || max_replicas > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_replicas must be in [1, 64], got ", max_replicas));
  }
  if (posting_page_limit > 1024) {
    return absl::InvalidArgumentError("posting_page_limit must be at most 1024");
  }
  if (posting_encoding == PostingEncoding::kFloat16 && type != ElementType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("float16 postings need float32 vectors, not ", ElementTypeName(type)));
  }
  if (text_fields.size() > kMaxTextFields) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", kMaxTextFields, " text_fields, got ", text_fields.size()));
  }
  for (size_t i = 0; i < text_fields.size(); ++i) {
    const std::string& f = text_fields[i];
    if (std::find(text_fields.begin(), text_fields.begin() + static_cast<ptrdiff_t>(i), f) !=
        text_fields.begin() + static_cast<ptrdiff_t>(i)) {
      return absl::InvalidArgumentError(
          absl::StrCat("text field '", absl::CHexEscape(f), "' is named twice"));
    }
    RETURN_IF_ERROR(CheckName("text field", f));
  }
  return absl::OkStatus();
}

}  // namespace strata
