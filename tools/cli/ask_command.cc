#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/strata.grpc.pb.h"
#include "tools/cli/cli_util.h"
#include "tools/cli/commands.h"

ABSL_FLAG(uint32_t, passages, 4, "ask: passages the model reads (1 to 16)");
ABSL_FLAG(uint32_t, max_tokens, 256,
          "ask: tokens the answer may have at most (0 = the server's default, 256)");
ABSL_FLAG(double, temperature, 0, "ask: sampling temperature (0 = greedy)");
ABSL_FLAG(uint64_t, seed, 0, "ask: sampling seed");
ABSL_FLAG(double, repetition_penalty, 1.1,
          "ask: penalty on tokens among the last 64 (1 = none; small models loop without one)");
ABSL_FLAG(std::string, cache_mode, "int8",
          "ask: how the passages' keys and values come: int8, int4 or f16 (cached, computed once "
          "per passage), or full (every token computed for this question)");
ABSL_FLAG(std::optional<double>, recompute_ratio, std::nullopt,
          "ask: share of the cached passage tokens recomputed in this context (default 0.15)");
ABSL_FLAG(bool, quiet, false, "ask: print only the answer (no sources or timings)");

namespace strata::cli {

namespace pb = ::strata::v1;

int Ask(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  if (args.size() < 4) return Fail("usage: strata-cli ask COLLECTION \"a question\"");
  pb::GenerateRequest req;
  req.set_collection(args[2]);
  req.set_tenant(absl::GetFlag(FLAGS_tenant));
  std::string question;
  for (size_t i = 3; i < args.size(); ++i) absl::StrAppend(&question, i > 3 ? " " : "", args[i]);
  req.set_question(question);
  if (absl::GetFlag(FLAGS_passages) == 0) return Fail("--passages must be 1 to 16");
  req.set_k(absl::GetFlag(FLAGS_passages));
  pb::SearchMode retrieval = pb::SEARCH_MODE_UNSPECIFIED;
  if (!ModeFlag(&retrieval)) return Fail("--mode must be dense, lexical or hybrid");
  req.set_mode(retrieval);
  req.mutable_params()->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  req.mutable_params()->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  req.mutable_params()->set_seed(absl::GetFlag(FLAGS_seed));
  req.mutable_params()->set_repetition_penalty(
      static_cast<float>(absl::GetFlag(FLAGS_repetition_penalty)));
  const std::string mode = absl::AsciiStrToLower(absl::GetFlag(FLAGS_cache_mode));
  if (mode == "int8") {
    req.set_cache_mode(pb::CACHED_INT8);
  } else if (mode == "int4") {
    req.set_cache_mode(pb::CACHED_INT4);
  } else if (mode == "f16") {
    req.set_cache_mode(pb::CACHED_F16);
  } else if (mode == "full") {
    req.set_cache_mode(pb::FULL_PREFILL);
  } else {
    return Fail("--cache_mode must be int8, int4, f16 or full");
  }
  if (auto r = absl::GetFlag(FLAGS_recompute_ratio)) {
    req.set_recompute_ratio(static_cast<float>(*r));
  }
  // Answers take a while on a CPU: at least ten minutes before giving up.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(
                       static_cast<int64_t>(std::max(600.0, absl::GetFlag(FLAGS_timeout)) * 1000)));
  auto reader = stub->Generate(&ctx, req);
  pb::GenerateResponse msg;
  pb::GenerateSummary summary;
  bool got_summary = false, wrote = false;
  while (reader->Read(&msg)) {
    if (msg.has_summary()) {
      summary = msg.summary();
      got_summary = true;
    } else {
      std::fwrite(msg.text().data(), 1, msg.text().size(), stdout);
      std::fflush(stdout);
      wrote = true;
    }
  }
  grpc::Status s = reader->Finish();
  if (wrote) std::printf("\n");  // (the answer's line ends; a refused call printed none)
  if (!s.ok()) return RpcFail(s);
  if (!got_summary || absl::GetFlag(FLAGS_quiet)) return 0;
  std::printf("\nSources:\n");
  for (const pb::Citation& c : summary.citations()) {
    const std::string text = Abridged(c.payload().text(), 90);
    std::string title;
    if (!c.payload().json().empty()) title = absl::StrCat(" ", Abridged(c.payload().json(), 80));
    std::printf("  [%u] id %llu (score %.3f)%s\n      %s\n", c.number(),
                static_cast<unsigned long long>(c.id()), c.score(), title.c_str(), text.c_str());
  }
  std::fflush(stdout);  // the sources before the figures (stderr is unbuffered)
  const pb::GenerationUsage& u = summary.usage();
  const pb::GenerationTimings& t = summary.timings();
  const pb::KvCacheReport& kv = summary.cache();
  std::fprintf(stderr,
               "strata-cli: %s retrieval, %u prompt tokens (%u from passage KV entries, %u "
               "recomputed), %u generated (%s); TTFT %.0f ms (retrieval %.0f, passage KV %.0f, "
               "prefill %.0f), %.1f ms/token; cache %s: %u RAM + %u SSD hits, %u computed; "
               "model %s\n",
               absl::AsciiStrToLower(pb::SearchMode_Name(summary.retrieval_mode())).c_str(),
               u.prompt_tokens(), u.cached_tokens(), u.recomputed_tokens(), u.generated_tokens(),
               summary.finish_reason().c_str(), t.ttft_ms(), t.retrieval_ms(), t.kv_ms(),
               t.prefill_ms(), t.per_token_ms(),
               kv.format().empty() ? "off (full prefill)" : kv.format().c_str(), kv.ram_hits(),
               kv.disk_hits(), kv.misses(), summary.model().c_str());
  return 0;
}

}  // namespace strata::cli
