// The second stage of a text search (SearchRequest.rerank): the server's cross-encoder
// (strata-server --reranker_model, gpu/cross_encoder.h) re-scores a search's best candidates by
// reading the question and each candidate's payload text together, and the best k by that score
// are answered.
//
// The cross-encoder runs on the calling RPC thread, one call at a time on its backend; at most
// `max_calls` calls rerank at once (more get RESOURCE_EXHAUSTED), so waiting rerankers never take
// every one of gRPC's threads. Thread-safe.
#ifndef STRATA_SERVICE_RERANKER_H_
#define STRATA_SERVICE_RERANKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gpu/cross_encoder.h"
#include "proto/strata.pb.h"

namespace strata {

// The deepest second stage: candidates re-scored per query.
inline constexpr uint32_t kMaxRerankDepth = 100;

class Reranker final {
 public:
  // Loads the cross-encoder; its errors are the loader's (gpu/cross_encoder.h).
  static absl::StatusOr<std::unique_ptr<Reranker>> Open(const std::string& model_dir,
                                                        const gpu::EncoderOptions& options,
                                                        int max_calls);
  Reranker(const Reranker&) = delete;
  Reranker& operator=(const Reranker&) = delete;

  // A request's rerank depth: InvalidArgument unless k <= depth <= min(kMaxRerankDepth, max_k).
  [[nodiscard]] static absl::Status CheckDepth(uint32_t depth, uint32_t k, uint32_t max_k);

  // One call's place among the max_calls that may rerank at once; given back when destroyed.
  class Turn final {
   public:
    Turn(Turn&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Turn& operator=(Turn&&) = delete;
    Turn(const Turn&) = delete;
    ~Turn() {
      if (owner_ != nullptr) owner_->calls_.fetch_sub(1);
    }

   private:
    friend class Reranker;
    explicit Turn(Reranker* owner) : owner_(owner) {}
    Reranker* owner_;
  };
  // Taken before the search whose hits will be reranked. ResourceExhausted when max_calls calls
  // hold one already.
  [[nodiscard]] absl::StatusOr<Turn> Enter();

  // Re-scores resp's hits by their payload text against `question` and keeps the best k: hits
  // with text by score (Hit.distance = -score, HitScores.rerank_score; in DENSE mode the search's
  // distance moves to HitScores.dense_distance), then hits without text in search order with
  // distance +infinity. Records reranked and stats.rerank_micros. Cancelled when `cancelled`
  // turns true between the model's passes.
  [[nodiscard]] absl::Status Rerank(const Turn& turn, const std::string& question, uint32_t k,
                                    const std::function<bool()>& cancelled,
                                    v1::SearchResponse* resp);

  // Totals since start, for Stats.
  void Report(v1::RerankStats* out) const;

 private:
  Reranker() = default;

  std::unique_ptr<gpu::CrossEncoder> model_;
  std::string model_name_;
  int max_calls_ = 1;
  std::atomic<int> calls_{0};
  // Totals for Report.
  std::atomic<uint64_t> reranked_{0}, refused_{0}, pairs_{0}, tokens_{0}, truncated_{0};
};

}  // namespace strata

#endif  // STRATA_SERVICE_RERANKER_H_
