#include "service/reranker.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace strata {

namespace pb = ::strata::v1;

absl::StatusOr<std::unique_ptr<Reranker>> Reranker::Open(const std::string& model_dir,
                                                         const gpu::EncoderOptions& options,
                                                         int max_calls) {
  auto r = std::unique_ptr<Reranker>(new Reranker());
  ASSIGN_OR_RETURN(r->model_, gpu::CrossEncoder::Open(model_dir, options));
  r->model_name_ = std::filesystem::path(model_dir).filename().string();
  if (r->model_name_.empty()) r->model_name_ = model_dir;
  r->max_calls_ = std::max(1, max_calls);
  return r;
}

absl::Status Reranker::CheckDepth(uint32_t depth, uint32_t k) {
  if (depth < k || depth > kMaxRerankDepth) {
    return absl::InvalidArgumentError(absl::StrCat("rerank is ", depth, "; it re-scores from k (",
                                                   k, ") to ", kMaxRerankDepth, " candidates"));
  }
  return absl::OkStatus();
}

absl::Status Reranker::Rerank(const std::string& question, uint32_t k,
                              const std::function<bool()>& cancelled, pb::SearchResponse* resp) {
  absl::Cleanup leave = [this] { calls_.fetch_sub(1); };
  if (calls_.fetch_add(1) + 1 > max_calls_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server is already reranking for ", max_calls_,
        " calls, its limit (a quarter of --threads); try again later, or search without rerank"));
  }
  const auto start = std::chrono::steady_clock::now();
  // Only the hits with text go to the model.
  std::vector<int> with_text;
  std::vector<std::string> texts;
  for (int i = 0; i < resp->hits_size(); ++i) {
    const std::string& text = resp->hits(i).payload().text();
    if (text.empty()) continue;
    with_text.push_back(i);
    texts.push_back(text);
  }
  gpu::RerankStats stats;
  ASSIGN_OR_RETURN(std::vector<float> scores,
                   model_->Score(question, texts, &stats, cancelled ? cancelled : nullptr));
  // Order: scored hits by score (ties: search order), then the rest in search order.
  std::vector<float> score_of(static_cast<size_t>(resp->hits_size()));
  std::vector<bool> scored(score_of.size(), false);
  for (size_t j = 0; j < with_text.size(); ++j) {
    score_of[static_cast<size_t>(with_text[j])] = scores[j];
    scored[static_cast<size_t>(with_text[j])] = true;
  }
  std::vector<size_t> order(score_of.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (scored[a] != scored[b]) return static_cast<bool>(scored[a]);
    return scored[a] && score_of[a] > score_of[b];
  });
  order.resize(std::min<size_t>(order.size(), k));
  google::protobuf::RepeatedPtrField<pb::Hit> kept;
  for (size_t i : order) {
    pb::Hit* h = kept.Add();
    h->Swap(resp->mutable_hits(static_cast<int>(i)));
    if (scored[i]) {
      h->mutable_scores()->set_rerank_score(score_of[i]);
      h->set_distance(-score_of[i]);
    }
  }
  resp->mutable_hits()->Swap(&kept);
  resp->set_reranked(static_cast<uint32_t>(with_text.size()));
  resp->mutable_stats()->set_rerank_micros(
      static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count()));
  return absl::OkStatus();
}

}  // namespace strata
