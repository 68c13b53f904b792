// What strata-cli's commands (tools/cli/commands.h) share: the flags more than one of them reads,
// the call deadline, and how a failure is printed (a message on stderr and exit code 1).
#ifndef STRATA_TOOLS_CLI_CLI_UTIL_H_
#define STRATA_TOOLS_CLI_CLI_UTIL_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata.pb.h"

ABSL_DECLARE_FLAG(std::string, server);
ABSL_DECLARE_FLAG(double, timeout);
ABSL_DECLARE_FLAG(std::string, tenant);
ABSL_DECLARE_FLAG(bool, with_payload);
ABSL_DECLARE_FLAG(bool, with_vector);
ABSL_DECLARE_FLAG(std::string, mode);

namespace strata::cli {

// --mode as a search mode (unspecified when not given); false for a word that names none.
[[nodiscard]] bool ModeFlag(v1::SearchMode* mode);

// Prints "strata-cli: <msg>" on stderr; returns 1 (the exit code).
int Fail(const std::string& msg);
// Fail() with the status's code and message, and a hint where the server was not reached.
int RpcFail(const grpc::Status& s);
// A client context whose deadline is --timeout from now.
std::unique_ptr<grpc::ClientContext> Context();
// Whether the server refused a call for a state that passes (its message says "retry later",
// base/retry_later.h: a busy server, a tenant's request-rate quota).
bool RefusedForNow(const grpc::Status& s);
// Pauses before the next try of a call RefusedForNow (0.1 s, doubling to 2 s); false when that
// would pass `deadline`.
bool PauseBeforeRetry(int attempt, std::chrono::system_clock::time_point deadline);

// (stub->*method)(req, resp) with a deadline --timeout from now, made again while the server
// refuses it for now (such a refusal comes before the call does anything, so any call may be
// made again), within that deadline.
template <typename Stub, typename Req, typename Resp>
grpc::Status Call(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                  const Req& req, Resp* resp) {
  const auto deadline = Context()->deadline();
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    grpc::Status s = (stub->*method)(&ctx, req, resp);
    if (!RefusedForNow(s) || !PauseBeforeRetry(attempt, deadline)) return s;
  }
}

// `s` cut to at most `most` bytes on a UTF-8 character's boundary, "..." added when cut (within
// `most`); line breaks shown as spaces. For previews of stored text.
[[nodiscard]] std::string Abridged(const std::string& s, size_t most);

// args[from..] as unsigned ids; InvalidArgument naming the first that is not one, or saying
// there are none.
absl::Status ParseIds(const std::vector<char*>& args, size_t from, std::vector<uint64_t>* ids);

}  // namespace strata::cli

#endif  // STRATA_TOOLS_CLI_CLI_UTIL_H_
