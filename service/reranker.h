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

  // A request's rerank depth: InvalidArgument unless k <= depth <= kMaxRerankDepth.
  [[nodiscard]] static absl::Status CheckDepth(uint32_t depth, uint32_t k);

  // Re-scores resp's hits by their payload text against `question`, keeps the best k (a hit
  // without text after every hit with text, in its search order), and records it in resp
  // (Hit.distance = -score, HitScores.rerank_score, reranked, stats.rerank_micros).
  // ResourceExhausted when max_calls calls are reranking already; Cancelled when `cancelled` turns
  // true.
  [[nodiscard]] absl::Status Rerank(const std::string& question, uint32_t k,
                                    const std::function<bool()>& cancelled,
                                    v1::SearchResponse* resp);

  // The model directory's name, for logs and Stats.
  [[nodiscard]] const std::string& model_name() const { return model_name_; }

 private:
  Reranker() = default;

  std::unique_ptr<gpu::CrossEncoder> model_;
  std::string model_name_;
  int max_calls_ = 1;
  std::atomic<int> calls_{0};
};

}  // namespace strata

#endif  // STRATA_SERVICE_RERANKER_H_
