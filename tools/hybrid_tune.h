// Learning a collection's hybrid weight from a client (strata-cli tune, strata-load --questions):
// labelled questions read from JSONL and sent to the TuneHybrid RPC, its table printed.
#ifndef STRATA_TOOLS_HYBRID_TUNE_H_
#define STRATA_TOOLS_HYBRID_TUNE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata.grpc.pb.h"

namespace strata {

// Questions from `path`, one JSON object per line: "question" (or "text") and the ids of the
// points that answer it as "relevant_ids", "context_ids" (lists) or "context_id" (one), integers
// as loaded. The first `limit` questions at most (a note on stderr says when the file holds more).
// InvalidArgument naming the line for a malformed one.
[[nodiscard]] absl::StatusOr<v1::TuneHybridRequest> ReadLabelledQuestions(const std::string& path,
                                                                          size_t limit);

// Sends `req` and prints the weights' table and the choice to stdout.
[[nodiscard]] grpc::Status TuneHybridAndReport(v1::Strata::Stub* stub,
                                               const v1::TuneHybridRequest& req);

}  // namespace strata

#endif  // STRATA_TOOLS_HYBRID_TUNE_H_
