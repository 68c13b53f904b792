// The service's choice of search mode, fusion and weight (service/search_plan.h).
#include "service/search_plan.h"

#include <limits>
#include <optional>

#include "gtest/gtest.h"

namespace strata {
namespace {

SearchContext Text(bool model_fits, bool has_text, double learned = -1) {
  SearchContext c;
  c.text_query = true;
  c.model_fits = model_fits;
  c.collection_has_text = has_text;
  c.learned_weight = learned;
  return c;
}

SearchMode ModeOf(v1::SearchMode mode, const SearchContext& c) {
  auto plan = PlanSearch(mode, v1::FUSION_UNSPECIFIED, std::nullopt, c);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? plan->mode : SearchMode::kDense;
}

TEST(SearchPlan, TheDefaultModeFollowsTheModelAndTheText) {
  EXPECT_EQ(ModeOf(v1::SEARCH_MODE_UNSPECIFIED, Text(true, true)), SearchMode::kHybrid);
  EXPECT_EQ(ModeOf(v1::SEARCH_MODE_UNSPECIFIED, Text(true, false)), SearchMode::kDense);
  EXPECT_EQ(ModeOf(v1::SEARCH_MODE_UNSPECIFIED, Text(false, true)), SearchMode::kLexical);
  // Neither: dense, so that the embedding step says why it cannot answer.
  EXPECT_EQ(ModeOf(v1::SEARCH_MODE_UNSPECIFIED, Text(false, false)), SearchMode::kDense);
  EXPECT_EQ(ModeOf(v1::SEARCH_MODE_UNSPECIFIED, SearchContext{}), SearchMode::kDense);
  // Explicit modes are taken as asked.
  EXPECT_EQ(ModeOf(v1::LEXICAL, Text(true, false)), SearchMode::kLexical);
  EXPECT_EQ(ModeOf(v1::HYBRID, Text(false, true)), SearchMode::kHybrid);
  EXPECT_EQ(ModeOf(v1::DENSE, Text(true, true)), SearchMode::kDense);
}

TEST(SearchPlan, WeightsComeFromTheRequestThenTheCollectionThenTheDefault) {
  auto plan = PlanSearch(v1::HYBRID, v1::FUSION_UNSPECIFIED, std::nullopt, Text(true, true));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->fusion.method, FusionMethod::kRelativeScore);
  EXPECT_EQ(plan->fusion.dense_weight, kDefaultDenseWeight);
  plan = PlanSearch(v1::HYBRID, v1::FUSION_UNSPECIFIED, std::nullopt, Text(true, true, 0.3));
  EXPECT_DOUBLE_EQ(plan->fusion.dense_weight, 0.3);
  plan = PlanSearch(v1::HYBRID, v1::RELATIVE_SCORE, 0.8f, Text(true, true, 0.3));
  EXPECT_DOUBLE_EQ(plan->fusion.dense_weight, 0.8f);
  // The learned weight is for relative-score fusion; RRF keeps its own default.
  plan = PlanSearch(v1::HYBRID, v1::RECIPROCAL_RANK, std::nullopt, Text(true, true, 0.3));
  EXPECT_EQ(plan->fusion.method, FusionMethod::kReciprocalRank);
  EXPECT_EQ(plan->fusion.dense_weight, kDefaultDenseWeight);
}

TEST(SearchPlan, RefusesWhatDoesNotApply) {
  SearchContext vector_query;
  for (v1::SearchMode m : {v1::LEXICAL, v1::HYBRID}) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        PlanSearch(m, v1::FUSION_UNSPECIFIED, std::nullopt, vector_query).status()));
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      PlanSearch(v1::SEARCH_MODE_UNSPECIFIED, v1::RECIPROCAL_RANK, std::nullopt, vector_query)
          .status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      PlanSearch(v1::DENSE, v1::FUSION_UNSPECIFIED, 0.5f, Text(true, true)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      PlanSearch(v1::LEXICAL, v1::RELATIVE_SCORE, std::nullopt, Text(true, true)).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(PlanSearch(static_cast<v1::SearchMode>(7), v1::FUSION_UNSPECIFIED,
                                         std::nullopt, Text(true, true))
                                  .status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      PlanSearch(v1::HYBRID, static_cast<v1::Fusion>(7), std::nullopt, Text(true, true)).status()));
  for (float w : {-0.1f, 1.1f, std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        PlanSearch(v1::HYBRID, v1::FUSION_UNSPECIFIED, w, Text(true, true)).status()))
        << w;
  }
  // Unset mode resolving to lexical: fusion and weight are accepted and unused.
  auto plan =
      PlanSearch(v1::SEARCH_MODE_UNSPECIFIED, v1::FUSION_UNSPECIFIED, 0.2f, Text(false, true));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->mode, SearchMode::kLexical);
}

}  // namespace
}  // namespace strata
