// How the service answers a search: the request's mode, fusion and weight resolved against the
// collection and the server (the one home of the default mode).
//
// Thread-safe (pure functions).
#ifndef STRATA_SERVICE_SEARCH_PLAN_H_
#define STRATA_SERVICE_SEARCH_PLAN_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "index/fusion.h"
#include "proto/strata.pb.h"

namespace strata {

struct SearchPlan {
  SearchMode mode = SearchMode::kDense;
  FusionParams fusion;  // kHybrid only
};

// What the plan depends on besides the request.
struct SearchContext {
  bool text_query = false;           // `text`/`texts` rather than vectors
  bool model_fits = false;           // the server has a model whose vectors the collection takes
  bool collection_has_text = false;  // some live point has payload text
  // The collection's learned dense weight (TuneHybrid), for relative-score fusion; < 0 = none.
  double learned_weight = -1;
};

// InvalidArgument naming the field for a mode, fusion or weight that does not apply (LEXICAL or
// HYBRID for a vector query; fusion or dense_weight with an explicit DENSE or LEXICAL), an unknown
// enum value, or a weight outside [0, 1]. With the mode left unset, fusion and dense_weight are
// accepted and unused when the default resolves to DENSE or LEXICAL (the response names the mode
// that answered). The model's absence is left to the embedding step to report.
[[nodiscard]] absl::StatusOr<SearchPlan> PlanSearch(v1::SearchMode mode, v1::Fusion fusion,
                                                    std::optional<float> dense_weight,
                                                    const SearchContext& context);

[[nodiscard]] v1::SearchMode ToProto(SearchMode mode);
[[nodiscard]] v1::Fusion ToProto(FusionMethod method);

}  // namespace strata

#endif  // STRATA_SERVICE_SEARCH_PLAN_H_
