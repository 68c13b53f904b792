// The gRPC service: one method per RPC of proto/strata.proto, over the catalog, the build queue,
// the embedding and decoding engines and the tenant keys a Server (service/server.h) owns.
// Each call runs through Run(): its share of the memory budget reserved, its metrics recorded,
// its status mapped to gRPC's. The methods live by concept: collection_rpcs.cc (collections,
// points, builds), search_rpcs.cc (searches, embedding), generate_rpcs.cc (RAG generation),
// tenant_rpcs.cc (tenants, access, keys), stats_rpc.cc (server statistics).
//
// Thread-safe: gRPC calls the methods from any of its threads.
#ifndef STRATA_SERVICE_STRATA_SERVICE_H_
#define STRATA_SERVICE_STRATA_SERVICE_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "base/public_message.h"
#include "base/retry_later.h"
#include "gpu/embed_batcher.h"
#include "grpcpp/grpcpp.h"
#include "index/catalog.h"
#include "proto/strata.grpc.pb.h"
#include "service/api_key_auth.h"
#include "service/build_queue.h"
#include "service/call_budget.h"
#include "service/call_memory_hold.h"
#include "service/grpc_log.h"
#include "service/limits.h"
#include "service/metrics.h"
#include "service/rag_engine.h"
#include "service/reranker.h"
#include "service/search_plan.h"
#include "service/server.h"
#include "service/tenant_keys.h"
#include "service/tenant_rate_limiter.h"
#include "storage/log.h"

namespace strata::service_internal {

using Clock = std::chrono::steady_clock;
namespace pb = ::strata::v1;

class StrataService final : public pb::Strata::Service {
 public:
  // `on_damage` hears of a collection whose search found a damaged posting, and of a drop
  // (with null: a dropped collection may have been the damaged one). `data_dir`: the server's,
  // as its paths are written (no tenant key's caller is told one: base/public_message.h).
  StrataService(Catalog* catalog, Metrics* metrics, BuildQueue* builds, MemoryBudget* memory,
                CallMemoryHold* hold, ServerLimits limits, gpu::EmbedBatcher* embedder,
                RagEngine* rag, Reranker* reranker, const ApiKeyAuth* auth, TenantKeys* keys,
                int max_generate_calls, std::string data_dir,
                std::function<void(const std::shared_ptr<Collection>&)> on_damage)
      : catalog_(catalog),
        metrics_(metrics),
        builds_(builds),
        memory_(memory),
        hold_(hold),
        limits_(limits),
        embedder_(embedder),
        rag_(rag),
        reranker_(reranker),
        auth_(auth),
        keys_(keys),
        max_generate_calls_(max_generate_calls),
        data_dir_(std::move(data_dir)),
        on_damage_(std::move(on_damage)),
        started_(Clock::now()) {}

  grpc::Status CreateCollection(grpc::ServerContext* ctx, const pb::CreateCollectionRequest* req,
                                pb::CollectionInfo* resp) override;

  grpc::Status DropCollection(grpc::ServerContext* ctx, const pb::DropCollectionRequest* req,
                              pb::DropCollectionResponse*) override;

  grpc::Status ListCollections(grpc::ServerContext* ctx, const pb::ListCollectionsRequest* req,
                               pb::ListCollectionsResponse* resp) override;

  grpc::Status DescribeCollection(grpc::ServerContext* ctx,
                                  const pb::DescribeCollectionRequest* req,
                                  pb::CollectionInfo* resp) override;

  // Queues the build and returns at once; CollectionInfo.build follows it.
  grpc::Status BuildIndex(grpc::ServerContext* ctx, const pb::BuildIndexRequest* req,
                          pb::CollectionInfo* resp) override;

  grpc::Status Upsert(grpc::ServerContext* ctx, const pb::UpsertRequest* req,
                      pb::UpsertResponse* resp) override;

  grpc::Status Delete(grpc::ServerContext* ctx, const pb::DeleteRequest* req,
                      pb::DeleteResponse* resp) override;

  grpc::Status Get(grpc::ServerContext* ctx, const pb::GetRequest* req,
                   pb::GetResponse* resp) override;

  grpc::Status Count(grpc::ServerContext* ctx, const pb::CountRequest* req,
                     pb::CountResponse* resp) override;

  grpc::Status Search(grpc::ServerContext* ctx, const pb::SearchRequest* req,
                      pb::SearchResponse* resp) override;

  grpc::Status SearchBatch(grpc::ServerContext* ctx, const pb::SearchBatchRequest* req,
                           pb::SearchBatchResponse* resp) override;

  grpc::Status TuneHybrid(grpc::ServerContext* ctx, const pb::TuneHybridRequest* req,
                          pb::TuneHybridResponse* resp) override;

  grpc::Status Embed(grpc::ServerContext* ctx, const pb::EmbedRequest* req,
                     pb::EmbedResponse* resp) override;

  // New calls get UNAVAILABLE from now on; returns once the calls in progress are done or
  // `deadline` passes.
  void Drain(Clock::time_point deadline) {
    draining_.store(true);
    while (in_flight_.load() > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  grpc::Status Generate(grpc::ServerContext* ctx, const pb::GenerateRequest* req,
                        grpc::ServerWriter<pb::GenerateResponse>* writer) override;

  grpc::Status PrecomputePassageKv(grpc::ServerContext* ctx,
                                   const pb::PrecomputePassageKvRequest* req,
                                   pb::PrecomputePassageKvResponse* resp) override;

  // --- Tenants and their keys: the admin's calls (Run refuses them to tenant keys).

  grpc::Status CreateTenant(grpc::ServerContext* ctx, const pb::CreateTenantRequest* req,
                            pb::TenantInfo* resp) override;

  grpc::Status SetTenantQuota(grpc::ServerContext* ctx, const pb::SetTenantQuotaRequest* req,
                              pb::TenantInfo* resp) override;

  grpc::Status DropTenant(grpc::ServerContext* ctx, const pb::DropTenantRequest* req,
                          pb::DropTenantResponse* resp) override;

  grpc::Status ListTenants(grpc::ServerContext* ctx, const pb::ListTenantsRequest* req,
                           pb::ListTenantsResponse* resp) override;

  grpc::Status GrantAccess(grpc::ServerContext* ctx, const pb::AccessRequest* req,
                           pb::AccessResponse* resp) override;

  grpc::Status RevokeAccess(grpc::ServerContext* ctx, const pb::AccessRequest* req,
                            pb::AccessResponse* resp) override;

  grpc::Status CreateApiKey(grpc::ServerContext* ctx, const pb::CreateApiKeyRequest* req,
                            pb::CreateApiKeyResponse* resp) override;

  grpc::Status RevokeApiKey(grpc::ServerContext* ctx, const pb::RevokeApiKeyRequest* req,
                            pb::RevokeApiKeyResponse*) override;

  grpc::Status ListApiKeys(grpc::ServerContext* ctx, const pb::ListApiKeysRequest* req,
                           pb::ListApiKeysResponse* resp) override;

  static TenantQuota QuotaFromProto(const pb::TenantQuota& q);
  static void TenantToProto(const TenantInfo& t, const CollectionConfig& cfg, pb::TenantInfo* out);

  static void KeyToProto(const TenantKeyInfo& k, pb::ApiKeyInfo* out);

  grpc::Status Stats(grpc::ServerContext* ctx, const pb::StatsRequest* req,
                     pb::StatsResponse* resp) override;

 private:
  std::string ModelName() const;

  // The request's texts against the limits, and the server's model present (`need_model`).
  // `queries`: searches' or questions' texts, which must hold a word (gpu::IsBlankText); Embed's
  // may not (the model's vector for no words).
  absl::Status CheckTexts(const std::vector<std::string>& texts, bool need_model = true,
                          bool queries = true) const;

  // Text queries embedded for `col`, which must hold float32 vectors of the model's dimension.
  // A call whose client has gone (cancelled, past its deadline) stops waiting for the engine.
  static std::function<bool()> Abandoned(grpc::ServerContext* ctx);

  absl::StatusOr<std::vector<pb::Vector>> EmbedQueries(grpc::ServerContext* ctx,
                                                       const Collection& col,
                                                       const std::vector<std::string>& texts);

  // Records the time spent embedding the query (`since` = when embedding began, `until` = when it
  // ended) in a search's stats, and counts it in server_micros.
  static void AddEmbedTime(Clock::time_point since, Clock::time_point until, pb::SearchStats* st);

  // Runs one call's `body` with its share of the memory budget (the request's bytes reserved
  // first), records it in the metrics and maps its status to gRPC.
  template <typename F>
  grpc::Status Run(const char* rpc, const grpc::ServerContext* ctx,
                   const google::protobuf::Message& request, F&& body) {
    auto t0 = Clock::now();
    // Counted before the draining check, so BeginDrain's waiter sees every call that got past it.
    in_flight_.fetch_add(1);
    struct Done {
      std::atomic<int>* n;
      ~Done() { n->fetch_sub(1); }
    } done{&in_flight_};
    CallBudget budget(memory_, limits_.max_message_bytes);
    absl::Status s;
    absl::StatusOr<Caller> caller = Caller{};  // (no key on an open server: the admin)
    try {
      if (draining_.load()) {
        s = absl::UnavailableError("the server is shutting down");
      } else if (auth_ != nullptr && !(caller = auth_->Identify(*ctx)).ok()) {
        s = caller.status();  // refused before anything of the request is looked at
      } else if (s = budget.Reserve(request.ByteSizeLong()); !s.ok()) {
      } else if constexpr (std::is_invocable_v<F, CallBudget&, const Caller&>) {
        s = body(budget, *caller);  // the handler confines a tenant key's call itself
      } else if (!caller->admin) {
        // Secure by default: a handler that does not take the caller is the admin's.
        s = absl::PermissionDeniedError(
            absl::StrCat(rpc,
                         " needs the admin key; a tenant key may call Upsert, Delete, Get, Count, "
                         "Search, SearchBatch, Generate, DescribeCollection and Embed on its own "
                         "tenants"));
      } else {
        s = body(budget);
      }
    } catch (const std::exception& e) {
      // Nothing below is meant to throw; if something does, the caller gets INTERNAL and the
      // server stays up.
      s = absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
    }
    s = NameDeadline(std::move(s), ctx->deadline(), std::chrono::system_clock::now());
    // The request and response live on until gRPC has sent the response (or given up on it).
    hold_->Hold(ctx, budget.TakeReserved());
    // A tenant key's caller is told no path, file or repair command (base/public_message.h); the
    // log keeps the whole status.
    const bool admin = !caller.ok() || caller->admin;
    const absl::Status told = admin ? s : ForPublic(s, data_dir_);
    grpc::Status g = ToGrpcStatus(told);
    metrics_->Record(rpc, g, std::chrono::duration<double>(Clock::now() - t0).count());
    LogCallError(rpc, admin, s, told);
    return g;
  }

  // A call's INTERNAL or DATA_LOSS error, or one its caller was told otherwise (`told`), into the
  // log whole, beside what the caller was told: at most kGrpcLogBurst lines per kGrpcLogWindow
  // (any client could repeat a failing call), the admin's calls and tenant keys' counted apart
  // (a tenant's failing calls cannot hide the admin's), with a count of those left out said
  // before the next line.
  void LogCallError(const char* rpc, bool admin, const absl::Status& s, const absl::Status& told);

  // Passes `s` on, first telling on_damage_ when it says a posting of `col` is damaged.
  absl::Status Damaged(const std::shared_ptr<Collection>& col, absl::Status s) {
    if (absl::IsDataLoss(s) && on_damage_) on_damage_(col);
    return s;
  }

  absl::Status CheckBatch(int n, const char* what) const {
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("empty batch: no ", what));
    if (static_cast<uint32_t>(n) > limits_.max_batch) {
      return absl::ResourceExhaustedError(
          absl::StrCat(n, " ", what, " in one request; the limit is ", limits_.max_batch,
                       " (strata-server --max_batch): send them in several requests"));
    }
    return absl::OkStatus();
  }

  // The search parameters of a request to `col`: the defaults where it leaves them 0, within the
  // server's caps (an index's tuned default budget included).
  absl::StatusOr<SearchParams> Params(uint32_t k, const pb::SearchParams& p,
                                      const Collection& col) const;

  // What a search returns beside ids and scores (`batch`: the query is one of a SearchBatch,
  // which changes the advice in a refusal).
  struct Emit {
    bool with_payload = false;
    bool with_vector = false;
    bool batch = false;
    bool rerank = false;  // the hits are a reranker's candidates (their payloads always come)
    Scope scope;          // whose view the payloads/vectors are read in (a hit revoked meanwhile
                          // keeps its id and scores only)
  };

  // A collection a call acts on and the view it acts in: `tenant` as the request names it (empty
  // = the whole collection), as far as the caller may. A tenant key is confined to its
  // collection (by uid: not one made again under the same name) and its tenants; it may leave
  // `tenant` empty when it has one. The scope refers to `tenant` or to `caller`.
  struct Target {
    std::shared_ptr<Collection> col;
    Scope scope;
  };
  absl::StatusOr<Target> FindFor(const Caller& caller, const std::string& collection,
                                 const std::string& tenant);

  // A tenant key's call that names no collection (Embed): counted against every tenant of the
  // key. PERMISSION_DENIED when the key's collection is gone.
  absl::Status AdmitKey(const TenantKeyInfo& key);

  // The search plan of a request to `col` (search_plan.h).
  absl::StatusOr<SearchPlan> Plan(const Collection& col, pb::SearchMode mode, pb::Fusion fusion,
                                  std::optional<float> dense_weight, bool text_query) const;

  // One vector query's hits into `resp`.
  absl::Status SearchOne(const Collection& col, const pb::Vector& query, uint32_t k,
                         const SearchParams& params, const Emit& emit, CallBudget* budget,
                         pb::SearchResponse* resp);

  // One text query's hits into `resp`, by `plan` (`query`: its embedding, unless LEXICAL).
  absl::Status SearchTextOne(const Collection& col, const SearchPlan& plan, const std::string& text,
                             const pb::Vector& query, uint32_t k, const SearchParams& params,
                             const Emit& emit, CallBudget* budget, pb::SearchResponse* resp);

  static void SetStats(const strata::SearchStats& st, Clock::time_point t0, pb::SearchStats* s);

  // Adds `n` hits to `resp` (`fill` sets the i-th one's id and scores), each counted against
  // `budget` as it is added, then their payloads/vectors as `emit` asks, as they were at the
  // search's `moment`.
  absl::Status EmitHits(const Collection& col, size_t n,
                        absl::FunctionRef<void(size_t, pb::Hit*)> fill, const Emit& emit,
                        const ReadMoment* moment, CallBudget* budget, pb::SearchResponse* resp);

  // Fetches the points `ids` from `col` in chunks of a few MiB at most and hands each found one
  // to `emit`, in request order; absent ids go to `missing`. Stops at the first error (of the
  // lookup or of `emit`), so a response that outgrows its budget stops fetching at once. `at`
  // (may be null): a search's moment to read them at (Collection::Get).
  absl::Status FetchPoints(const Collection& col, const Scope& scope,
                           absl::Span<const uint64_t> ids, bool with_vector, bool with_payload,
                           std::vector<uint64_t>* missing,
                           absl::FunctionRef<absl::Status(const PointOutput&)> emit,
                           const ReadMoment* at = nullptr) const;

  // A collection whose records could not be read at start (Catalog::Unopened): UNREADABLE,
  // with what its catalog record says and the damage.
  static void DescribeUnopened(const Catalog::Unopened& u, pb::CollectionInfo* out);

  // What a collection's configuration says of it.
  static void DescribeConfig(const CollectionConfig& c, pb::CollectionInfo* out);

  void Describe(const Collection& col, pb::CollectionInfo* out) const;

  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  Catalog* const catalog_;
  Metrics* const metrics_;
  BuildQueue* const builds_;
  MemoryBudget* const memory_;
  CallMemoryHold* const hold_;
  const ServerLimits limits_;
  gpu::EmbedBatcher* const embedder_;  // null: the server has no model
  RagEngine* const rag_;               // null: the server has no decoder
  Reranker* const reranker_;           // null: the server has no cross-encoder
  const ApiKeyAuth* const auth_;       // null: an open server (loopback only)
  TenantKeys* const keys_;
  TenantRateLimiter rate_limiter_;
  // Serialises making keys with dropping tenants, so no key is made for a tenant being dropped
  // (it would come back to life with a tenant made again under the same name).
  Mutex tenant_admin_mu_;
  // A Generate or PrecomputePassageKv call holds one of gRPC's sync threads while it waits for
  // the decoder (queued, then streaming): at most this many at once, so they can never take
  // every thread from other calls. EnterDecoderCall counts one in (the caller counts it out,
  // whatever it returns).
  const int max_generate_calls_;
  const std::string data_dir_;  // (told to no tenant key's caller)
  // LogCallError's: the admin's calls', tenant keys'.
  LogRateLimiter admin_error_log_{kGrpcLogBurst, kGrpcLogWindow};
  LogRateLimiter tenant_error_log_{kGrpcLogBurst, kGrpcLogWindow};
  std::atomic<int> decoder_calls_{0};
  absl::Status EnterDecoderCall() {
    if (decoder_calls_.fetch_add(1) + 1 <= max_generate_calls_) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server is already serving ", max_generate_calls_,
        " Generate and PrecomputePassageKv calls, its limit (half of --threads, and at most "
        "--generation_max_running + --generation_max_queued); ",
        kRetryLater));
  }
  const std::function<void(const std::shared_ptr<Collection>&)> on_damage_;
  const Clock::time_point started_;

  // After a write that may have left `col` grown or thinned well past its index
  // (Collection::WantsBuild): the server's own build. Not a repair (a damaged collection's
  // rebuild is on_damage_'s, which --auto_repair governs), and not again once the server's own
  // build of it failed (a request or a restart tries again), so that writes cannot start one
  // full rebuild after another.
  void ScheduleWantedBuild(const std::shared_ptr<Collection>& col) {
    if (!col->WantsBuild() || col->Damaged()) return;
    const std::optional<BuildStatus> last = builds_->Latest(col->config().uid);
    if (last && last->state == BuildStatus::State::kFailed && !last->requested) return;
    builds_->Schedule(col, /*requested=*/false);
  }
};

}  // namespace strata::service_internal

#endif  // STRATA_SERVICE_STRATA_SERVICE_H_
