// One Generate call (the RPC in proto/strata.proto): validates the request, retrieves the
// passages through the service's own search, runs the RAG engine and streams the answer and the
// closing summary. And PrecomputePassageKv, which makes the same passage entries ahead of
// questions. Kept apart from generate_rpcs.cc, which hands them the retrieval and the points.
#ifndef STRATA_SERVICE_GENERATE_CALL_H_
#define STRATA_SERVICE_GENERATE_CALL_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/sync_stream.h"
#include "proto/strata.pb.h"
#include "service/rag_engine.h"

namespace strata {

inline constexpr uint32_t kDefaultGeneratePassages = 4;
inline constexpr uint32_t kMaxGeneratePassages = 16;
inline constexpr int kDefaultGenerateTokens = 256;
inline constexpr int kMaxStops = 8;
inline constexpr size_t kMaxStopBytes = 64;

// What the service's search found for a question: the hits with payloads, best first.
struct Retrieved {
  v1::SearchMode mode = v1::SEARCH_MODE_UNSPECIFIED;
  std::vector<v1::Hit> hits;
  double embed_seconds = 0;
};
using RetrieveFn = std::function<absl::StatusOr<Retrieved>(uint32_t k)>;

// A point's passage as the prompt shows it: its payload's "title" (when the JSON has one) on a
// line of its own, then its text. Empty without text.
[[nodiscard]] std::string RagPassageText(const v1::Payload& payload);

// The points of `ids` that exist, with payloads (id, payload), and the ids that do not.
using FetchFn = std::function<absl::Status(std::vector<std::pair<uint64_t, v1::Payload>>* found,
                                           std::vector<uint64_t>* missing)>;

// Serves PrecomputePassageKv (`rag` null: FAILED_PRECONDITION); the caller has checked the ids'
// count against the server's batch limit.
[[nodiscard]] absl::Status ServePrecompute(const v1::PrecomputePassageKvRequest& req,
                                           RagEngine* rag, const FetchFn& fetch,
                                           grpc::ServerContext* ctx,
                                           v1::PrecomputePassageKvResponse* resp);

// Serves the call. `rag` null: FAILED_PRECONDITION (no decoder). Errors before the first
// message are returned; once streaming, the summary reports how it ended (a client that goes
// away ends it "cancelled", returned as CANCELLED).
[[nodiscard]] absl::Status ServeGenerate(const v1::GenerateRequest& req, RagEngine* rag,
                                         const RetrieveFn& retrieve, grpc::ServerContext* ctx,
                                         grpc::ServerWriter<v1::GenerateResponse>* writer);

}  // namespace strata

#endif  // STRATA_SERVICE_GENERATE_CALL_H_
