#include "tools/cli/cli_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/retry_later.h"
#include "tools/client_channel.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "address of strata-server");
ABSL_FLAG(double, timeout, 30, "seconds before a call gives up");
ABSL_FLAG(
    std::string, tenant, "",
    "count/get/delete/search/ask/describe: act in this tenant's view only (a tenant key with one "
    "tenant needs no --tenant)");
ABSL_FLAG(bool, with_payload, false, "search/get: return payloads");
ABSL_FLAG(std::string, mode, "",
          "search --text, ask: dense, lexical (BM25 over the payload text) or hybrid (both, "
          "fused); default: the server's choice (hybrid when the collection has text and the "
          "server a model)");
ABSL_FLAG(bool, with_vector, false, "search/get: return vectors");

namespace strata::cli {

bool ModeFlag(v1::SearchMode* mode) {
  *mode = v1::SEARCH_MODE_UNSPECIFIED;
  const std::string m = absl::GetFlag(FLAGS_mode);
  if (m.empty()) return true;
  return v1::SearchMode_Parse(absl::AsciiStrToUpper(m), mode) &&
         *mode != v1::SEARCH_MODE_UNSPECIFIED;
}

std::string Abridged(const std::string& s, size_t most) {
  std::string out = s;
  if (out.size() > most) {
    size_t keep = most >= 3 ? most - 3 : 0;
    // Not inside a character: back off over continuation bytes (10xxxxxx) to its first byte.
    while (keep > 0 && (static_cast<unsigned char>(out[keep]) & 0xC0) == 0x80) --keep;
    out = out.substr(0, keep) + "...";
  }
  for (char& ch : out) ch = ch == '\n' ? ' ' : ch;
  return out;
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "strata-cli: %s\n", msg.c_str());
  return 1;
}

int RpcFail(const grpc::Status& s) {
  std::string msg = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && !absl::StrContains(msg, "shutting down")) {
    // A plaintext call to a TLS server ends as a closed socket, not a refused connection or a
    // name that does not resolve: only then is TLS the likely cause.
    const bool may_be_tls = !strata::ClientUsesTls() &&
                            !absl::StrContains(msg, "Connection refused") &&
                            !absl::StrContains(msg, "DNS resolution failed");
    msg = absl::StrCat("cannot reach strata-server at ", absl::GetFlag(FLAGS_server), " (", msg,
                       may_be_tls ? "; a server with TLS needs --tls_ca_file or --tls)" : ")");
  }
  return Fail(absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
                           ": ", msg));
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_timeout) * 1000)));
  return ctx;
}

bool RefusedForNow(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
         absl::StrContains(s.error_message(), kRetryLater);
}

bool PauseBeforeRetry(int attempt, std::chrono::system_clock::time_point deadline) {
  const auto nap = std::chrono::milliseconds(std::min(2000, 100 << std::min(attempt, 5)));
  if (std::chrono::system_clock::now() + nap >= deadline) return false;
  std::this_thread::sleep_for(nap);
  return true;
}

absl::Status ParseIds(const std::vector<char*>& args, size_t from, std::vector<uint64_t>* ids) {
  for (size_t i = from; i < args.size(); ++i) {
    uint64_t v;
    if (!absl::SimpleAtoi(args[i], &v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", args[i], "' is not an id (ids are integers from 0 to 18446744073709551615)"));
    }
    ids->push_back(v);
  }
  if (ids->empty()) return absl::InvalidArgumentError("no ids given");
  return absl::OkStatus();
}

}  // namespace strata::cli
