#include "tools/hybrid_tune.h"

#include <chrono>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "base/json_error.h"
#include "index/hybrid_tuner.h"
#include "nlohmann/json.hpp"

namespace strata {

absl::StatusOr<v1::TuneHybridRequest> ReadLabelledQuestions(const std::string& path, size_t limit) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  v1::TuneHybridRequest req;
  std::string line;
  for (size_t n = 1; static_cast<size_t>(req.questions_size()) < limit && std::getline(f, line);
       ++n) {
    if (line.empty()) continue;
    const std::string where = absl::StrCat(path, ":", n);
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": not JSON (", JsonSyntaxError(line), ")"));
    }
    if (!j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
    }
    v1::LabelledQuestion* q = req.add_questions();
    const char* text_key = j.contains("question") ? "question" : "text";
    if (!j.contains(text_key) || !j[text_key].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": needs a string 'question'"));
    }
    q->set_text(j[text_key].get<std::string>());
    nlohmann::json ids = j.contains("relevant_ids")  ? j["relevant_ids"]
                         : j.contains("context_ids") ? j["context_ids"]
                         : j.contains("context_id")  ? nlohmann::json::array({j["context_id"]})
                                                     : nlohmann::json::array();
    if (!ids.is_array() || ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": needs 'relevant_ids' (or 'context_id(s)'): the answering ids"));
    }
    if (ids.size() > static_cast<size_t>(kMaxRelevantIds)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", ids.size(), " relevant ids; the limit is ", kMaxRelevantIds));
    }
    for (const auto& id : ids) {
      if (!id.is_number_unsigned()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": ids must be non-negative integers, as loaded"));
      }
      q->add_relevant_ids(id.get<uint64_t>());
    }
  }
  if (req.questions_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no questions"));
  }
  size_t more = 0;
  while (std::getline(f, line)) more += !line.empty();
  if (more > 0) {
    std::fprintf(stderr, "note: using the first %d of the %zu questions in %s (--max_questions)\n",
                 req.questions_size(), req.questions_size() + more, path.c_str());
  }
  return req;
}

grpc::Status TuneHybridAndReport(v1::Strata::Stub* stub, const v1::TuneHybridRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  v1::TuneHybridResponse resp;
  grpc::Status st = stub->TuneHybrid(&ctx, req, &resp);
  if (!st.ok()) return st;
  std::printf("hybrid weights on %u labelled questions (relative-score fusion):\n",
              resp.questions());
  std::printf("  dense weight  MRR@10   R@1     R@10\n");
  for (const v1::WeightScore& w : resp.scores()) {
    std::printf("  %4.1f%s     %.4f  %.4f  %.4f\n", w.dense_weight(),
                w.dense_weight() == resp.dense_weight() ? " *" : "  ", w.mrr_at_10(),
                w.recall_at_1(), w.recall_at_10());
  }
  if (resp.best_weight() != resp.dense_weight()) {
    std::printf("the best, %.1f, does not beat the default by more than two standard errors\n",
                resp.best_weight());
  }
  std::printf("%s dense weight %.1f for collection '%s'\n",
              req.dry_run() ? "would choose" : "chose (kept as the default)", resp.dense_weight(),
              req.collection().c_str());
  return st;
}

}  // namespace strata
