#include "tools/load/online_load.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/retry_later.h"
#include "gpu/wordpiece.h"
#include "grpcpp/grpcpp.h"
#include "proto/convert.h"
#include "proto/strata.grpc.pb.h"
#include "storage/env.h"
#include "storage/log.h"
#include "storage/status_macros.h"
#include "tools/build_wait.h"
#include "tools/client_channel.h"
#include "tools/hybrid_tune.h"
#include "tools/load/checkpoint.h"
#include "tools/load/collection_settings.h"
#include "tools/load/fail.h"
#include "tools/progress.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "online: address of strata-server");
ABSL_FLAG(std::string, tenant, "",
          "online: load in this tenant's view (the points become the tenant's); with a tenant's "
          "key it is implied, and needed only when the key is for several tenants");
ABSL_FLAG(uint32_t, batch, 1000, "online: points per Upsert request (at most 16 MiB of them)");
ABSL_FLAG(double, retry_seconds, 120,
          "online: how long one batch is retried (with back-off) while the server is unreachable "
          "or asks to retry later (its memory budget in use, a tenant's request-rate quota)");
ABSL_FLAG(bool, build, true,
          "online: at the end, build the collection's index if it has none, or rebuild it when "
          "more vectors were appended since its build than it holds");
ABSL_FLAG(std::string, questions, "",
          "online, after loading: JSONL labelled questions ({\"question\": ..., \"relevant_ids\": "
          "[ids as loaded]}) to learn the collection's hybrid dense weight from (TuneHybrid)");
ABSL_FLAG(size_t, max_questions, 1024, "--questions: questions sent at most");
ABSL_FLAG(bool, precompute_kv, false,
          "online, after loading: have the server compute each loaded passage's KV cache entry "
          "for Generate now (PrecomputePassageKv), so first questions find them cached; needs a "
          "server started with --decoder");
ABSL_FLAG(std::string, kv_cache_mode, "int8",
          "--precompute_kv: the entries' format, as Generate's cache_mode (int8, int4, f16)");

namespace strata::load {
namespace {

namespace pb = ::strata::v1;
using Clock = std::chrono::steady_clock;

// The server unreachable or busy: the same call may succeed later. A RESOURCE_EXHAUSTED is
// retried only when the server says it passes (base/retry_later.h), or when its transport reset
// the stream: gRPC's memory quota (--memory_budget_mb) resets streams of its choosing with
// ENHANCE_YOUR_CALM ("Received RST_STREAM with error code 11"), which may be calls it already
// served (an upsert again is idempotent). A request over a limit would fail the same way again.
bool Retryable(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
      return true;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::StrContains(s.error_message(), strata::kRetryLater) ||
             absl::StrContains(s.error_message(), "RST_STREAM");
    default:
      return false;
  }
}

// The load's retry warnings. A load paced by the server (a tenant's rate quota, its memory
// budget) has most of its calls retried: the warnings are said at most once per 10 s, with how
// many were left out since the last, whatever the cause (a server away for long is said once
// per 10 s too). Thread-safe.
class RetryLog {
 public:
  static RetryLog& Get() {
    static RetryLog* log = new RetryLog;
    return *log;
  }
  void Say(const char* what, const grpc::Status& s, int attempt, double nap) {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    if (now - last_said_ < std::chrono::seconds(10)) {
      ++left_out_;
      return;
    }
    strata::Log(strata::LogLevel::kWarning, "%s: %s; retry %d in %.1f s%s", what, s.error_message(),
                attempt, nap, LeftOut());
    last_said_ = now;
    left_out_ = 0;
  }
  // At the end of the load: the retries left out since the last line, if any.
  void Flush() {
    std::lock_guard<std::mutex> lock(mu_);
    if (left_out_ == 0) return;
    strata::Log(strata::LogLevel::kWarning, "%llu retries since the last line not shown",
                static_cast<unsigned long long>(left_out_));
    left_out_ = 0;
  }

 private:
  std::string LeftOut() const {
    return left_out_ == 0
               ? std::string()
               : absl::StrCat(" (", left_out_, " retries since the last line not shown)");
  }
  std::mutex mu_;
  Clock::time_point last_said_;
  uint64_t left_out_ = 0;
};

// Calls `rpc` until it succeeds, fails for good, or --retry_seconds pass (the last try at the
// limit); backs off from 100 ms to 5 s between tries.
template <typename F>
grpc::Status WithRetries(const char* what, F&& rpc) {
  auto start = Clock::now();
  double wait = 0.1;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    grpc::Status s = rpc(&ctx);
    if (s.ok() || !Retryable(s)) return s;
    const double left = absl::GetFlag(FLAGS_retry_seconds) -
                        std::chrono::duration<double>(Clock::now() - start).count();
    if (left <= 0) return s;
    const double nap = std::min(wait, left);
    RetryLog::Get().Say(what, s, attempt, nap);
    std::this_thread::sleep_for(std::chrono::duration<double>(nap));
    wait = std::min(wait * 2, 5.0);
  }
}

// The end-of-load build failed after every row was stored: what is stored, what is not.
std::string BuildFailed(uint64_t stored, const char* what, const grpc::Status& s) {
  return absl::StrCat("every row is stored (", stored, " in this run), but ", what,
                      " failed: ", s.error_message(),
                      ". The vectors are searchable without it; a rerun of this command builds "
                      "the index (the checkpoint skips the stored rows), as does `strata-cli "
                      "build`, and a server restart builds a collection past its threshold");
}

// A passage the server would not embed: its row, and why.
struct RefusedText {
  uint64_t row = 0;
  std::string why;
};

grpc::Status EmbedRows(pb::Strata::Stub& stub, const Input& in, uint64_t begin, uint64_t row,
                       uint64_t stop, pb::UpsertRequest* req, std::vector<RefusedText>* refused,
                       uint32_t* batch);

// Embeds rows [row, stop) of the passages into `req`'s points (row `begin` is its first) in one
// request. A request the server refuses for what it carries (RESOURCE_EXHAUSTED that is not
// Retryable) is halved: a text it names ("text 3 has ... bytes", over --max_text_bytes) is found
// alone and goes to `refused` without a vector, the rest are embedded; a refusal of the request as
// a whole (more texts than --max_texts, too many bytes) lowers `*most`, the texts later requests
// carry. Any other failure (a server still busy after --retry_seconds, a text refused alone for
// another reason) is returned: the load stops, and a rerun resumes.
grpc::Status EmbedRange(pb::Strata::Stub& stub, const Input& in, uint64_t begin, uint64_t row,
                        uint64_t stop, pb::UpsertRequest* req, std::vector<RefusedText>* refused,
                        uint32_t* most) {
  pb::EmbedRequest ereq;
  for (uint64_t i = row; i < stop; ++i) ereq.add_texts(in.text[i]);
  pb::EmbedResponse eresp;
  grpc::Status s = WithRetries("embed", [&](grpc::ClientContext* ctx) {
    eresp.Clear();
    return stub.Embed(ctx, ereq, &eresp);
  });
  if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && !Retryable(s)) {
    // (The server numbers the texts of its request: "text 0" is this one when alone.)
    const bool names_text = absl::StartsWith(s.error_message(), "text ");
    if (stop - row == 1) {
      if (!absl::StartsWith(s.error_message(), "text 0 ")) return s;
      refused->push_back({row, absl::StrCat("its text ", s.error_message().substr(7))});
      return grpc::Status::OK;
    }
    if (!names_text) {
      // The request as a whole was too large: pieces of half its size, and no larger from now.
      *most = std::min<uint32_t>(*most, std::max<uint64_t>(1, (stop - row) / 2));
      return EmbedRows(stub, in, begin, row, stop, req, refused, most);
    }
    const uint64_t mid = row + (stop - row) / 2;
    grpc::Status first = EmbedRange(stub, in, begin, row, mid, req, refused, most);
    if (!first.ok()) return first;
    return EmbedRange(stub, in, begin, mid, stop, req, refused, most);
  }
  if (!s.ok()) return s;
  for (uint64_t i = row; i < stop; ++i) {
    *req->mutable_points(static_cast<int>(i - begin))->mutable_vector() =
        std::move(*eresp.mutable_vectors(static_cast<int>(i - row)));
  }
  return grpc::Status::OK;
}

// Embeds rows [row, stop) of the passages with the server's model into `req`'s points (row
// `begin` is its first), in requests of at most `*batch` texts (lowered for good when the server
// refuses one as too large); the rows refused alone go to `refused` (EmbedRange).
grpc::Status EmbedRows(pb::Strata::Stub& stub, const Input& in, uint64_t begin, uint64_t row,
                       uint64_t stop, pb::UpsertRequest* req, std::vector<RefusedText>* refused,
                       uint32_t* batch) {
  for (uint64_t at = row; at < stop;) {
    const uint64_t end = std::min<uint64_t>(stop, at + *batch);
    grpc::Status s = EmbedRange(stub, in, begin, at, end, req, refused, batch);
    if (!s.ok()) return s;
    at = end;
  }
  return grpc::Status::OK;
}

// The loaded points' passage KV cache entries, computed by the server in batches, with a progress
// bar; stops (with a warning, the load itself having succeeded) once the server's cache is full.
int PrecomputeKv(pb::Strata::Stub* stub, const Input& in, const std::string& collection) {
  pb::KvCacheMode mode = pb::CACHED_INT8;
  const std::string name = absl::GetFlag(FLAGS_kv_cache_mode);
  if (name == "int4") {
    mode = pb::CACHED_INT4;
  } else if (name == "f16") {
    mode = pb::CACHED_F16;
  } else if (name != "int8") {
    return Fail(absl::StrCat("--kv_cache_mode must be int8, int4 or f16, not '", name, "'"));
  }
  const uint64_t n = in.embed_online ? in.text.size() : in.vectors.n;
  constexpr uint64_t kBatch = 16;  // a few seconds of decoder work per call
  strata::ProgressBar bar("precomputing passage KV", n, "passages");
  uint64_t computed = 0, cached = 0, without_text = 0, bytes = 0;
  for (uint64_t row = 0; row < n; row += kBatch) {
    pb::PrecomputePassageKvRequest req;
    req.set_collection(collection);
    req.set_cache_mode(mode);
    for (uint64_t r = row; r < std::min(n, row + kBatch); ++r) req.add_ids(IdOf(in, r));
    pb::PrecomputePassageKvResponse resp;
    grpc::Status s = WithRetries("precompute", [&](grpc::ClientContext* ctx) {
      return stub->PrecomputePassageKv(ctx, req, &resp);
    });
    if (!s.ok()) {
      bar.Stop(row);
      return Fail(absl::StrCat("precomputing passage KV: ", s.error_message()));
    }
    computed += resp.computed();
    cached += resp.already_cached();
    without_text += resp.without_text();
    bytes += resp.bytes();
    if (resp.evictions() > 0) {
      bar.Stop(std::min(n, row + kBatch));
      std::fprintf(stderr,
                   "strata-load: warning: the server's passage KV cache is full (%.0f of %.0f MB):"
                   " stopped after %llu of %llu passages; raise strata-server's "
                   "--kv_cache_disk_mb (or --kv_cache_ram_mb) to keep more\n",
                   resp.cache_bytes() / 1e6, resp.cache_capacity_bytes() / 1e6,
                   static_cast<unsigned long long>(std::min(n, row + kBatch)),
                   static_cast<unsigned long long>(n));
      return 0;
    }
    bar.Update(std::min(n, row + kBatch));
  }
  bar.Finish();
  std::fprintf(stderr,
               "strata-load: passage KV: %llu computed (%.1f MB), %llu already cached, %llu "
               "without text\n",
               static_cast<unsigned long long>(computed), bytes / 1e6,
               static_cast<unsigned long long>(cached),
               static_cast<unsigned long long>(without_text));
  return 0;
}

// Creates the tenants the rows name that the collection lacks (the admin's call).
grpc::Status CreateMissingTenants(pb::Strata::Stub& stub, const std::string& collection,
                                  const std::vector<std::vector<std::string>>& rows) {
  std::set<std::string> named;
  for (const auto& r : rows) named.insert(r.begin(), r.end());
  pb::ListTenantsRequest lreq;
  lreq.set_collection(collection);
  pb::ListTenantsResponse have;
  grpc::Status s = WithRetries(
      "list tenants", [&](grpc::ClientContext* ctx) { return stub.ListTenants(ctx, lreq, &have); });
  if (!s.ok()) return s;
  for (const pb::TenantInfo& t : have.tenants()) named.erase(t.name());
  for (const std::string& name : named) {
    pb::CreateTenantRequest req;
    req.set_collection(collection);
    req.set_name(name);
    pb::TenantInfo info;
    s = WithRetries("create tenant",
                    [&](grpc::ClientContext* ctx) { return stub.CreateTenant(ctx, req, &info); });
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) return s;
  }
  if (!named.empty()) {
    std::fprintf(stderr, "strata-load: created %zu tenants of '%s'\n", named.size(),
                 collection.c_str());
  }
  return grpc::Status::OK;
}

// A load that stops, with the message Fail() prints.
absl::Status Stopped(std::string message) { return absl::AbortedError(std::move(message)); }

// One online load, in its phases. Not thread-safe: one thread runs it, once.
class OnlineLoad final {
 public:
  OnlineLoad(Input& in, std::string collection, std::unique_ptr<pb::Strata::Stub> stub)
      : in_(in), v_(in.vectors), collection_(std::move(collection)), stub_(std::move(stub)) {}
  OnlineLoad(const OnlineLoad&) = delete;
  OnlineLoad& operator=(const OnlineLoad&) = delete;

  int Run() {
    absl::Status s = CheckBeforeLoading();
    if (s.ok()) s = PrepareCollection();
    if (s.ok()) s = SendRows();
    if (s.ok()) s = FinishLoad();
    RetryLog::Get().Flush();
    if (!s.ok()) return Fail(std::string(s.message()));
    if (absl::GetFlag(FLAGS_precompute_kv)) {
      if (const int rc = PrecomputeKv(stub_.get(), in_, collection_); rc != 0) return rc;
    }
    // Rows refused by the runs this one resumed: said last, after the steps that follow a load
    // (this run refused none, so they ran), and the load still fails.
    if (rejected_before_ > 0) {
      return Fail(absl::StrCat(rejected_before_,
                               " rows were rejected by an earlier run of this "
                               "load, whose output named them; --restart sends every row again"));
    }
    return 0;
  }

 private:
  // What would stop the load after its first rows is said before them: a checkpoint that cannot
  // be written, --precompute_kv without a decoder, a --questions file that does not read; and
  // text learns the model's dimension.
  [[nodiscard]] absl::Status CheckBeforeLoading();
  // The collection described (in --tenant's view, or a tenant key's), or created to match the
  // file, and checked against the input; the tenants the rows name created.
  [[nodiscard]] absl::Status PrepareCollection();
  // With --questions, before the collection or its tenants are made: that the load is the
  // admin's, that the collection will hold payload text, and that the server embeds questions
  // for it (its model, at the collection's dimension, in float32). `exists`: info_ describes it
  // (else the load would create it).
  [[nodiscard]] absl::Status CheckQuestionsCanLearn(bool exists);
  // The rows, batch by batch from the checkpoint's, each acknowledged batch checkpointed.
  [[nodiscard]] absl::Status SendRows();
  // One batch: rows [row, end). Finishes `bar` before it returns an error that stops the load.
  [[nodiscard]] absl::Status SendBatch(uint64_t row, uint64_t end, ProgressBar& bar);
  // The index built where the load calls for it, the summary, and the hybrid weight learnt.
  [[nodiscard]] absl::Status FinishLoad();
  // The collection into info_, in --tenant's view (or a tenant key's), with retries.
  [[nodiscard]] grpc::Status Describe() {
    pb::DescribeCollectionRequest req;
    req.set_name(collection_);
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    return WithRetries("describe", [&](grpc::ClientContext* ctx) {
      return stub_->DescribeCollection(ctx, req, &info_);
    });
  }

  Input& in_;
  strata::VectorSet& v_;
  const std::string collection_;
  const std::unique_ptr<pb::Strata::Stub> stub_;
  pb::CollectionInfo info_;
  std::optional<pb::TuneHybridRequest> questions_;  // --questions, read before the load
  std::string ckpt_;
  LoadIdentity identity_;
  uint64_t stored_ = 0;
  uint64_t rejected_ = 0;         // by this run
  uint64_t rejected_before_ = 0;  // by the runs before it that the checkpoint resumes
  int shown_ = 0;                 // rejected rows said on stderr
  // Texts per Embed request: --embed_batch, lowered for good by a refusal of one as too large.
  uint32_t embed_batch_ = std::max<uint32_t>(1, absl::GetFlag(FLAGS_embed_batch));
  double seconds_ = 0;
};

absl::Status OnlineLoad::CheckBeforeLoading() {
  {
    // The checkpoint goes beside the input unless --checkpoint says otherwise: a place where it
    // cannot be written (a read-only data folder) is said before anything is loaded.
    strata::Env& env = *strata::Env::Default();
    const std::string probe = Checkpoint(collection_, "") + ".probe";
    auto file = env.NewWritableFile(probe);
    if (!file.ok()) {
      return Stopped(
          absl::StrCat("cannot write the load's checkpoint (", file.status().message(),
                       "): name a writable place with --checkpoint=FILE; nothing was loaded"));
    }
    (void)(*file)->Close();
    (void)env.RemoveFile(probe);
  }
  if (const std::string q = absl::GetFlag(FLAGS_questions); !q.empty()) {
    auto req = strata::ReadLabelledQuestions(q, absl::GetFlag(FLAGS_max_questions));
    if (!req.ok()) return Stopped(absl::StrCat(req.status().message(), "; nothing was loaded"));
    questions_ = *std::move(req);
  }
  if (absl::GetFlag(FLAGS_precompute_kv)) {  // asked before loading anything
    pb::StatsRequest sreq;
    pb::StatsResponse sresp;
    grpc::Status s = WithRetries(
        "stats", [&](grpc::ClientContext* ctx) { return stub_->Stats(ctx, sreq, &sresp); });
    if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      return Stopped(
          "--precompute_kv needs the admin key (the server computes and keeps the entries for "
          "every caller); nothing was loaded");
    }
    if (!s.ok()) return Stopped(absl::StrCat("stats: ", s.error_message()));
    if (!sresp.has_generation()) {
      return Stopped(
          "--precompute_kv needs a server with a decoder (strata-server --decoder=...); nothing "
          "was loaded");
    }
  }
  if (in_.embed_online) {  // the model's dimension, from embedding the first passage
    pb::EmbedRequest ereq;
    ereq.add_texts(in_.text[0]);
    pb::EmbedResponse eresp;
    grpc::Status s = WithRetries(
        "embed", [&](grpc::ClientContext* ctx) { return stub_->Embed(ctx, ereq, &eresp); });
    if (!s.ok()) {
      return Stopped(
          absl::StrCat("embedding through ", absl::GetFlag(FLAGS_server), ": ", s.error_message()));
    }
    v_.dim = eresp.dimension();
    std::fprintf(stderr, "strata-load: the server embeds with %s (%u-d)\n", eresp.model().c_str(),
                 v_.dim);
  }
  return absl::OkStatus();
}

absl::Status OnlineLoad::PrepareCollection() {
  // The collection: described, or created to match the file.
  grpc::Status s = Describe();
  if (questions_.has_value() && (s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND)) {
    RETURN_IF_ERROR(CheckQuestionsCanLearn(/*exists=*/s.ok()));  // (before anything is made)
  }
  // (A load in a named tenant's view creates nothing: a tenant that does not exist is NOT_FOUND
  // too, and the collection is the admin's to make.)
  if (s.error_code() == grpc::StatusCode::NOT_FOUND && absl::GetFlag(FLAGS_tenant).empty()) {
    pb::CreateCollectionRequest creq;
    creq.set_name(collection_);
    creq.set_dimension(v_.dim);
    creq.set_element_type(strata::ToProto(v_.type));
    std::string m = Metric(!absl::GetFlag(FLAGS_text).empty());
    auto metric = strata::ParseMetric(m);
    if (!metric.ok()) return Stopped(absl::StrCat("--metric: ", metric.status().message()));
    creq.set_metric(strata::ToProto(*metric));
    auto enc = PostingEncodingFlag(!absl::GetFlag(FLAGS_text).empty());
    if (!enc.ok()) return Stopped(std::string(enc.status().message()));
    creq.mutable_index()->set_posting_encoding(strata::ToProto(*enc));
    for (const std::string& f : absl::GetFlag(FLAGS_text_fields)) creq.add_text_fields(f);
    s = WithRetries("create", [&](grpc::ClientContext* ctx) {
      return stub_->CreateCollection(ctx, creq, &info_);
    });
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) s = Describe();
    if (s.ok()) {
      std::fprintf(stderr, "strata-load: created collection '%s' (%s, %s postings)\n",
                   collection_.c_str(), m.c_str(), strata::PostingEncodingName(*enc));
    }
  }
  if (!s.ok()) {
    return Stopped(absl::StrCat(
        "collection '", collection_, "': ", s.error_message(),
        s.error_code() == grpc::StatusCode::UNAVAILABLE
            ? absl::StrCat(" (is strata-server running at ", absl::GetFlag(FLAGS_server), "?)")
            : ""));
  }
  auto existing = strata::FromProto(info_.index().posting_encoding());
  if (!existing.ok()) return Stopped(std::string(existing.status().message()));
  auto existing_metric = strata::FromProto(info_.metric());
  if (!existing_metric.ok()) return Stopped(std::string(existing_metric.status().message()));
  if (absl::Status e = CheckExistingCollection(collection_, *existing_metric, *existing); !e.ok()) {
    return Stopped(std::string(e.message()));
  }
  if (const auto want = absl::GetFlag(FLAGS_text_fields);
      !want.empty() && !std::equal(want.begin(), want.end(), info_.text_fields().begin(),
                                   info_.text_fields().end())) {
    return Stopped(absl::StrCat("collection '", collection_, "' exists with text fields [",
                                absl::StrJoin(info_.text_fields(), ","),
                                "]; --text_fields applies only to a new collection"));
  }
  if (info_.dimension() != v_.dim) {
    return Stopped(
        absl::StrCat("collection '", collection_, "' has dimension ", info_.dimension(),
                     in_.embed_online ? ", the server's model embeds to " : ", the file ", v_.dim));
  }
  if (!in_.embed_online && info_.element_type() != strata::ToProto(v_.type)) {
    // (Rows go as the file's bytes, which the server reads in the collection's type.)
    auto held = strata::FromProto(info_.element_type());
    return Stopped(absl::StrCat("collection '", collection_, "' holds ",
                                held.ok() ? strata::ElementTypeName(*held) : "unknown",
                                " vectors, ", InputPath(), " ", strata::ElementTypeName(v_.type),
                                " ones: load a file of its type, or into another collection"));
  }
  if (!in_.tenants.empty() && !info_.tenant().empty()) {
    // In a tenant's view every row becomes the tenant's own; a row may name that tenant only
    // (who else sees a point is the admin's to say), and no tenant is created.
    for (size_t row = 0; row < in_.tenants.size(); ++row) {
      for (const std::string& name : in_.tenants[row]) {
        if (name == info_.tenant()) continue;
        return Stopped(absl::StrCat("row ", row, " names tenant '", name,
                                    "' (--tenants, or 'tenants' in the JSONL): a load in tenant '",
                                    info_.tenant(),
                                    "''s view may name only that tenant; who else sees a point is "
                                    "the admin's to say; nothing was loaded"));
      }
    }
  } else if (!in_.tenants.empty()) {
    s = CreateMissingTenants(*stub_, collection_, in_.tenants);
    if (!s.ok())
      return Stopped(absl::StrCat("tenants of '", collection_, "': ", s.error_message()));
  }
  return absl::OkStatus();
}

absl::Status OnlineLoad::CheckQuestionsCanLearn(bool exists) {
  if (!info_.tenant().empty() || !absl::GetFlag(FLAGS_tenant).empty()) {
    return Stopped(
        "--questions learns the whole collection's hybrid weight, the admin's: load without a "
        "tenant, or run strata-cli tune; nothing was loaded");
  }
  // Text comes from --text's passages, or from JSON payloads through the collection's text
  // fields (a row may still lack them: the server then says so after the load), or is there.
  const bool fields =
      exists ? info_.text_fields_size() > 0 : !absl::GetFlag(FLAGS_text_fields).empty();
  const bool text =
      !in_.text.empty() || (!in_.json.empty() && fields) || (exists && info_.text_points() > 0);
  if (!text) {
    return Stopped(absl::StrCat(
        "--questions learns how to fuse lexical and dense scores over payload text, and neither "
        "the rows (--text passages, or JSON payloads with the collection's text fields) nor "
        "collection '",
        collection_, "' hold any; nothing was loaded"));
  }
  for (int i = 0; i < questions_->questions_size(); ++i) {
    if (gpu::IsBlankText(questions_->questions(i).text())) {
      return Stopped(absl::StrCat("--questions: question ", i + 1, " of ",
                                  absl::GetFlag(FLAGS_questions),
                                  " (empty lines not counted) holds no words (only white space or "
                                  "invisible characters); nothing was loaded"));
    }
  }
  if (in_.embed_online) return absl::OkStatus();  // (the model embedded a passage already)
  const uint32_t dim = exists ? info_.dimension() : v_.dim;
  const bool float32 =
      exists ? info_.element_type() == pb::FLOAT32 : v_.type == strata::ElementType::kFloat32;
  pb::EmbedRequest ereq;
  ereq.add_texts(questions_->questions(0).text());
  pb::EmbedResponse eresp;
  grpc::Status s = WithRetries(
      "embed", [&](grpc::ClientContext* ctx) { return stub_->Embed(ctx, ereq, &eresp); });
  if (!s.ok()) {
    return Stopped(absl::StrCat("--questions are embedded by the server: ", s.error_message(),
                                "; nothing was loaded"));
  }
  if (eresp.dimension() != dim || !float32) {
    return Stopped(absl::StrCat("--questions: the server's model (", eresp.model(),
                                ") embeds questions to ", eresp.dimension(),
                                "-d float32 vectors, and collection '", collection_, "' ",
                                exists ? "holds" : "would hold", " ", dim, "-d ",
                                float32 ? "float32" : "integer", " ones; nothing was loaded"));
  }
  return absl::OkStatus();
}

absl::Status OnlineLoad::SendRows() {
  ckpt_ = Checkpoint(collection_, info_.tenant());
  ASSIGN_OR_RETURN(identity_, IdentifyLoad(collection_, info_.uid(), v_.n, info_.tenant()));
  const LoadProgress resumed =
      absl::GetFlag(FLAGS_restart) ? LoadProgress{} : ReadCheckpoint(ckpt_, identity_);
  const uint64_t start = resumed.rows;
  rejected_before_ = resumed.rejected;
  SayHowToResumeOnInterrupt(ckpt_);
  if (start == v_.n) {
    // (On to the end of the load: an index build the last run could not finish is made now.)
    std::fprintf(stderr,
                 "strata-load: %s says all %llu rows are loaded already (--restart loads them "
                 "again); checking the index\n",
                 ckpt_.c_str(), static_cast<unsigned long long>(v_.n));
  }
  if (start > 0) {
    std::fprintf(stderr, "strata-load: resuming at row %llu of %llu (checkpoint %s)\n",
                 static_cast<unsigned long long>(start), static_cast<unsigned long long>(v_.n),
                 ckpt_.c_str());
  }
  const uint32_t batch = std::max<uint32_t>(1, absl::GetFlag(FLAGS_batch));
  auto t0 = Clock::now();
  {
    strata::ProgressBar bar("loading", v_.n, "vectors");
    bar.Update(start);
    for (uint64_t row = start, end = start; row < v_.n; row = end) {
      // At most --batch rows, and at most kRequestBytes of them (one row at least): a server's
      // request limit is in bytes too (64 MiB by default), and 1,000 rows of 32K float32 values
      // are 131 MB.
      uint64_t bytes = 0;
      for (end = row; end < v_.n && end - row < batch; ++end) {
        const uint64_t one = RequestRowBytes(in_, v_, end);
        if (end > row && bytes + one > kRequestBytes) break;
        bytes += one;
      }
      RETURN_IF_ERROR(SendBatch(row, end, bar));
      absl::Status c = WriteCheckpoint(ckpt_, identity_, {end, rejected_before_ + rejected_});
      if (!c.ok()) {
        bar.Stop(row);
        return Stopped(std::string(c.message()));
      }
      bar.Update(end);
    }
    bar.Finish();
  }
  seconds_ = std::chrono::duration<double>(Clock::now() - t0).count();
  return absl::OkStatus();
}

absl::Status OnlineLoad::SendBatch(uint64_t row, uint64_t end, ProgressBar& bar) {
  pb::UpsertRequest req;
  req.set_collection(collection_);
  req.set_tenant(absl::GetFlag(FLAGS_tenant));
  for (uint64_t i = row; i < end; ++i) {
    pb::Point* p = req.add_points();
    p->set_id(IdOf(in_, i));
    if (!in_.embed_online) {
      p->mutable_vector()->set_raw(
          std::string(reinterpret_cast<const char*>(v_.row(i)), v_.row_bytes()));
    }
    if (!in_.json.empty()) {
      p->mutable_payload()->set_json(in_.json[i]);
      p->mutable_payload()->set_text(in_.text[i]);
    }
    // (In a tenant's view a row naming no tenant is simply the tenant's own.)
    if (!in_.tenants.empty() && !(in_.tenants[i].empty() && !info_.tenant().empty())) {
      pb::TenantList* t = p->mutable_tenants();
      for (const std::string& name : in_.tenants[i]) t->add_names(name);
    }
  }
  // The input row of each point of `req` (rows whose text the server would not embed are left
  // out, rejected here as the server rejects rows).
  std::vector<uint64_t> row_of(end - row);
  for (uint64_t i = row; i < end; ++i) row_of[i - row] = i;
  if (in_.embed_online) {
    std::vector<RefusedText> refused;
    grpc::Status s = EmbedRows(*stub_, in_, row, row, end, &req, &refused, &embed_batch_);
    if (!s.ok()) {
      bar.Stop(row);
      return Stopped(absl::StrCat("embedding rows ", row, "-", end - 1, ": ", s.error_message(),
                                  "; rerun to resume from the checkpoint ", ckpt_));
    }
    if (!refused.empty()) {
      google::protobuf::RepeatedPtrField<pb::Point> points;
      points.Swap(req.mutable_points());
      pb::UpsertRequest kept = req;  // (every field but the points)
      std::vector<uint64_t> kept_rows;
      size_t next = 0;  // into `refused`, in row order
      for (uint64_t i = row; i < end; ++i) {
        if (next < refused.size() && refused[next].row == i) {
          ++next;
          continue;
        }
        *kept.add_points() = std::move(points[static_cast<int>(i - row)]);
        kept_rows.push_back(i);
      }
      rejected_ += refused.size();
      for (const RefusedText& r : refused) {
        if (shown_++ < 10) {
          std::fprintf(stderr, "strata-load: %s (id %llu): %s\n", RowName(in_, r.row).c_str(),
                       static_cast<unsigned long long>(IdOf(in_, r.row)), r.why.c_str());
        }
      }
      req = std::move(kept);
      row_of = std::move(kept_rows);
      if (req.points_size() == 0) return absl::OkStatus();
    }
  }
  pb::UpsertResponse resp;
  grpc::Status s = WithRetries("upsert", [&](grpc::ClientContext* ctx) {
    resp.Clear();
    return stub_->Upsert(ctx, req, &resp);
  });
  if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      (absl::StrContains(s.error_message(), "in one request") ||
       absl::StrContains(s.error_message(), "larger than max") ||
       absl::StrContains(s.error_message(), "whole memory budget"))) {
    // The request itself is over a limit of the server's: a rerun would send it again.
    bar.Stop(row);
    return Stopped(absl::StrCat("rows ", row, "-", end - 1, " (", req.points_size(), " rows, ",
                                req.ByteSizeLong(), " bytes in one request): ", s.error_message(),
                                req.points_size() > 1
                                    ? absl::StrCat("; rerun with a smaller --batch (it resumes "
                                                   "from the checkpoint ",
                                                   ckpt_, ")")
                                    : std::string("; one row is over the server's limit: raise "
                                                  "its --max_message_mb or shorten the row")));
  }
  if (!s.ok() && s.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
    bar.Stop(row);
    return Stopped(absl::StrCat("rows ", row, "-", end - 1, ": ", s.error_message(),
                                "; rerun to resume from the checkpoint ", ckpt_));
  }
  if (!s.ok()) {  // every row of the batch was refused
    rejected_ += req.points_size();
    if (shown_++ < 10) std::fprintf(stderr, "strata-load: %s\n", s.error_message().c_str());
  } else {
    stored_ += resp.upserted();
    rejected_ += resp.errors_size();
    for (const auto& e : resp.errors()) {
      if (shown_++ < 10) {
        std::fprintf(
            stderr, "strata-load: %s (id %llu): %s\n",
            RowName(in_, e.index() < row_of.size() ? row_of[e.index()] : row + e.index()).c_str(),
            static_cast<unsigned long long>(e.id()), e.message().c_str());
      }
    }
  }
  return absl::OkStatus();
}

absl::Status OnlineLoad::FinishLoad() {
  // The collection as it is now (for the summary, and to decide on a build). A tenant's view
  // shows no index state: a load in one leaves the build to the admin and the server.
  grpc::Status s = Describe();
  if (absl::GetFlag(FLAGS_build) && s.ok() && !info_.tenant().empty()) {
    std::fprintf(stderr,
                 "strata-load: a load in tenant '%s''s view leaves the index build to the admin "
                 "(strata-cli build) and the server (past its build threshold)\n",
                 info_.tenant().c_str());
  }
  if (absl::GetFlag(FLAGS_build) && s.ok() && info_.state() == pb::CollectionInfo::BUILDING) {
    // A build under way (the server's own, started as the load passed the build threshold): it
    // holds the vectors it began with, so the load waits for it, then looks again.
    std::fprintf(stderr, "strata-load: waiting for the index build under way...\n");
    s = strata::WaitForBuild(stub_.get(), collection_, info_.build().id(), &info_);
    if (!s.ok()) return Stopped(BuildFailed(stored_, "waiting for the index build under way", s));
  }
  if (absl::GetFlag(FLAGS_build)) {
    // No index yet, or one that most vectors were appended to after it was built: (re)build.
    bool stale = info_.state() == pb::CollectionInfo::INDEXED &&
                 info_.appended_vectors() > info_.indexed_vectors();
    if (s.ok() && info_.count() > 0 && (info_.state() == pb::CollectionInfo::FLAT || stale)) {
      std::fprintf(stderr, "strata-load: building the index of %llu vectors...\n",
                   static_cast<unsigned long long>(info_.count()));
      pb::BuildIndexRequest breq;
      breq.set_collection(collection_);
      grpc::ClientContext ctx;
      s = stub_->BuildIndex(&ctx, breq, &info_);
      if (s.ok()) s = strata::WaitForBuild(stub_.get(), collection_, info_.build().id(), &info_);
      if (!s.ok()) return Stopped(BuildFailed(stored_, "the index build", s));
    }
  }
  std::fprintf(stderr,
               "strata-load: %llu vectors stored, %llu rejected%s, in %.1f s (%.0f vectors/s); "
               "collection '%s' holds %llu%s\n",
               static_cast<unsigned long long>(stored_), static_cast<unsigned long long>(rejected_),
               rejected_before_ > 0
                   ? absl::StrCat(" (", rejected_before_, " more by an earlier run)").c_str()
                   : "",
               seconds_, static_cast<double>(stored_) / std::max(seconds_, 1e-9),
               collection_.c_str(), static_cast<unsigned long long>(info_.count()),
               info_.tenant().empty()
                   ? ""
                   : absl::StrCat(" in tenant '", info_.tenant(), "''s view").c_str());

  if (rejected_ > 0) {
    return Stopped(absl::StrCat(
        rejected_before_ + rejected_, " rows were rejected (reasons above",
        rejected_before_ > 0 ? absl::StrCat("; ", rejected_before_, " by an earlier run") : "",
        ")"));
  }
  if (questions_.has_value()) {
    questions_->set_collection(collection_);
    grpc::Status t = strata::TuneHybridAndReport(stub_.get(), *questions_);
    if (!t.ok()) return Stopped(absl::StrCat("learning the hybrid weight: ", t.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace

int RunOnline(Input& in, const std::string& collection) {
  auto channel = strata::MakeClientChannel(absl::GetFlag(FLAGS_server));
  if (!channel.ok()) {
    std::fprintf(stderr, "strata-load: %s\n", std::string(channel.status().message()).c_str());
    return 2;
  }
  return OnlineLoad(in, collection, pb::Strata::NewStub(*channel)).Run();
}

}  // namespace strata::load
