#include "service/search_plan.h"

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace strata {

absl::StatusOr<SearchPlan> PlanSearch(v1::SearchMode mode, v1::Fusion fusion,
                                      std::optional<float> dense_weight,
                                      const SearchContext& context) {
  SearchPlan plan;
  switch (mode) {
    case v1::SEARCH_MODE_UNSPECIFIED:
      if (!context.text_query) {
        plan.mode = SearchMode::kDense;
      } else if (context.model_fits) {
        plan.mode = context.collection_has_text ? SearchMode::kHybrid : SearchMode::kDense;
      } else {
        // Without a fitting model a text query can only be lexical; with no text either, the
        // embedding step says why dense cannot answer.
        plan.mode = context.collection_has_text ? SearchMode::kLexical : SearchMode::kDense;
      }
      break;
    case v1::DENSE:
      plan.mode = SearchMode::kDense;
      break;
    case v1::LEXICAL:
      plan.mode = SearchMode::kLexical;
      break;
    case v1::HYBRID:
      plan.mode = SearchMode::kHybrid;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown search mode ", mode));
  }
  if (!context.text_query && plan.mode != SearchMode::kDense) {
    return absl::InvalidArgumentError(
        absl::StrCat("mode ", v1::SearchMode_Name(mode), " needs a text query ('text')"));
  }
  const bool fusion_set = fusion != v1::FUSION_UNSPECIFIED || dense_weight.has_value();
  if (fusion_set && mode != v1::HYBRID && mode != v1::SEARCH_MODE_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat("fusion and dense_weight apply to HYBRID "
                     "searches; this one is ",
                     v1::SearchMode_Name(mode)));
  }
  if (fusion_set && !context.text_query) {
    return absl::InvalidArgumentError(
        "fusion and dense_weight apply to HYBRID text searches; this query is a vector");
  }
  switch (fusion) {
    case v1::FUSION_UNSPECIFIED:
    case v1::RELATIVE_SCORE:
      plan.fusion.method = FusionMethod::kRelativeScore;
      break;
    case v1::RECIPROCAL_RANK:
      plan.fusion.method = FusionMethod::kReciprocalRank;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown fusion ", fusion));
  }
  if (dense_weight.has_value()) {
    plan.fusion.dense_weight = *dense_weight;
  } else if (plan.fusion.method == FusionMethod::kRelativeScore && context.learned_weight >= 0) {
    plan.fusion.dense_weight = context.learned_weight;
  }
  RETURN_IF_ERROR(CheckFusionParams(plan.fusion));
  return plan;
}

v1::SearchMode ToProto(SearchMode mode) {
  switch (mode) {
    case SearchMode::kDense:
      return v1::DENSE;
    case SearchMode::kLexical:
      return v1::LEXICAL;
    case SearchMode::kHybrid:
      return v1::HYBRID;
  }
  return v1::SEARCH_MODE_UNSPECIFIED;
}

v1::Fusion ToProto(FusionMethod method) {
  return method == FusionMethod::kReciprocalRank ? v1::RECIPROCAL_RANK : v1::RELATIVE_SCORE;
}

}  // namespace strata
