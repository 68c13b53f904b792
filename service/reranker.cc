#include "service/reranker.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/retry_later.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {

namespace pb = ::strata::v1;

absl::StatusOr<std::unique_ptr<Reranker>> Reranker::Open(const std::string& model_dir,
                                                         const gpu::EncoderOptions& options,
                                                         int max_calls) {
  auto r = std::unique_ptr<Reranker>(new Reranker());
  ASSIGN_OR_RETURN(r->model_, gpu::CrossEncoder::Open(model_dir, options));
  r->max_calls_ = std::max(1, max_calls);
  r->model_name_ = std::filesystem::path(model_dir).filename().string();
  Log(LogLevel::kInfo, "reranker %s: a cross-encoder for SearchRequest.rerank, %d calls at once",
      r->model_name_, r->max_calls_);
  return r;
}

absl::Status Reranker::CheckDepth(uint32_t depth, uint32_t k, uint32_t max_k) {
  const uint32_t most = std::min(kMaxRerankDepth, max_k);
  if (depth < k || depth > most) {
    return absl::InvalidArgumentError(absl::StrCat("rerank is ", depth, "; it re-scores from k (",
                                                   k, ") to ", most, " candidates"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Reranker::Turn> Reranker::Enter() {
  Turn turn(this);  // gives the place back if refused
  if (calls_.fetch_add(1) + 1 > max_calls_) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server is already reranking for ", max_calls_,
        " calls, its limit (a quarter of --threads); ", kRetryLater, ", or search without rerank"));
  }
  return turn;
}

absl::Status Reranker::Rerank(const Turn& turn, const std::string& question, uint32_t k,
                              const std::function<bool()>& cancelled, pb::SearchResponse* resp) {
  assert(turn.owner_ == this && "Rerank needs this reranker's Turn");
  (void)turn;
  const auto start = std::chrono::steady_clock::now();
  // Only the hits with text go to the model (views of the payloads the response holds).
  std::vector<int> with_text;
  std::vector<absl::string_view> texts;
  for (int i = 0; i < resp->hits_size(); ++i) {
    const std::string& text = resp->hits(i).payload().text();
    if (text.empty()) continue;
    with_text.push_back(i);
    texts.emplace_back(text);
  }
  gpu::RerankStats stats;
  ASSIGN_OR_RETURN(std::vector<float> scores,
                   model_->Score(question, texts, &stats, cancelled ? cancelled : nullptr));
  reranked_.fetch_add(1, std::memory_order_relaxed);
  pairs_.fetch_add(static_cast<uint64_t>(stats.pairs), std::memory_order_relaxed);
  tokens_.fetch_add(static_cast<uint64_t>(stats.tokens), std::memory_order_relaxed);
  truncated_.fetch_add(static_cast<uint64_t>(stats.truncated), std::memory_order_relaxed);
  // Order: scored hits by score (ties: search order; NaN last), then the rest in search order.
  const size_t n = static_cast<size_t>(resp->hits_size());
  std::vector<float> score_of(n, -std::numeric_limits<float>::infinity());
  std::vector<bool> scored(n, false);
  for (size_t j = 0; j < with_text.size(); ++j) {
    const size_t i = static_cast<size_t>(with_text[j]);
    scored[i] = true;
    if (!std::isnan(scores[j])) score_of[i] = scores[j];
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (scored[a] != scored[b]) return static_cast<bool>(scored[a]);
    return scored[a] && score_of[a] > score_of[b];
  });
  order.resize(std::min<size_t>(order.size(), k));
  const bool dense = resp->mode() == pb::DENSE || resp->mode() == pb::SEARCH_MODE_UNSPECIFIED;
  google::protobuf::RepeatedPtrField<pb::Hit> kept;
  for (size_t i : order) {
    pb::Hit* h = kept.Add();
    h->Swap(resp->mutable_hits(static_cast<int>(i)));
    if (dense) h->mutable_scores()->set_dense_distance(h->distance());
    if (scored[i]) {
      h->mutable_scores()->set_rerank_score(score_of[i]);
      h->set_distance(-score_of[i]);
    } else {
      h->set_distance(std::numeric_limits<float>::infinity());
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

void Reranker::Report(pb::RerankStats* out) const {
  out->set_model(model_name_);
  out->set_backend(model_->encoder().backend_name());
  out->set_calls(reranked_.load(std::memory_order_relaxed));
  out->set_refused(refused_.load(std::memory_order_relaxed));
  out->set_pairs(pairs_.load(std::memory_order_relaxed));
  out->set_tokens(tokens_.load(std::memory_order_relaxed));
  out->set_truncated(truncated_.load(std::memory_order_relaxed));
}

}  // namespace strata
