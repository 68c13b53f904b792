#include "service/server.h"

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/host_port.h"
#include "base/mutex.h"
#include "gpu/embed_batcher.h"
#include "gpu/encoder.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "index/catalog.h"
#include "index/hybrid_tuner.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "proto/strata.grpc.pb.h"
#include "service/api_key_auth.h"
#include "service/build_queue.h"
#include "service/call_budget.h"
#include "service/call_memory_hold.h"
#include "service/generate_call.h"
#include "service/metrics.h"
#include "service/metrics_http.h"
#include "service/parse_error_interceptor.h"
#include "service/payload_text.h"
#include "service/rag_engine.h"
#include "service/reflection_v1.h"
#include "service/reranker.h"
#include "service/search_plan.h"
#include "service/tenant_rate_limiter.h"
#include "service/vector_convert.h"
#include "storage/log.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

namespace {

using Clock = std::chrono::steady_clock;
namespace pb = ::strata::v1;

// --- The service ---------------------------------------------------------------------------------

class StrataService final : public pb::Strata::Service {
 public:
  // `on_damage` hears of a collection whose search found a damaged posting, and of a drop
  // (with null: a dropped collection may have been the damaged one).
  StrataService(Catalog* catalog, Metrics* metrics, BuildQueue* builds, MemoryBudget* memory,
                CallMemoryHold* hold, ServerLimits limits, gpu::EmbedBatcher* embedder,
                RagEngine* rag, Reranker* reranker, const ApiKeyAuth* auth, TenantKeys* keys,
                int max_generate_calls,
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
        on_damage_(std::move(on_damage)),
        started_(Clock::now()) {}

  grpc::Status CreateCollection(grpc::ServerContext* ctx, const pb::CreateCollectionRequest* req,
                                pb::CollectionInfo* resp) override {
    return Run("CreateCollection", ctx, *req, [&](CallBudget&) -> absl::Status {
      CollectionConfig c;
      c.name = req->name();
      c.dim = req->dimension();
      if (c.dim > limits_.max_dimension) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dimension ", c.dim, " is over this server's limit of ", limits_.max_dimension));
      }
      ASSIGN_OR_RETURN(c.type, FromProto(req->element_type()));
      ASSIGN_OR_RETURN(c.metric, FromProto(req->metric()));
      c.head_share = req->index().head_share();
      if (req->index().max_replicas() != 0) c.max_replicas = req->index().max_replicas();
      c.posting_page_limit = req->index().posting_page_limit();
      ASSIGN_OR_RETURN(c.posting_encoding, FromProto(req->index().posting_encoding()));
      if (req->index().build_threshold() != 0) c.build_threshold = req->index().build_threshold();
      c.text_fields.assign(req->text_fields().begin(), req->text_fields().end());
      ASSIGN_OR_RETURN(auto col, catalog_->Create(c));
      Describe(*col, resp);
      return absl::OkStatus();
    });
  }

  grpc::Status DropCollection(grpc::ServerContext* ctx, const pb::DropCollectionRequest* req,
                              pb::DropCollectionResponse*) override {
    return Run("DropCollection", ctx, *req, [&](CallBudget&) -> absl::Status {
      std::string uid;
      RETURN_IF_ERROR(catalog_->Drop(req->name(), &uid));
      // Keys of the collection name it by uid and no longer open anything; they go too.
      if (absl::StatusOr<uint32_t> n = keys_->RevokeCollection(uid); !n.ok()) {
        Log(LogLevel::kWarning, "dropping collection '%s': its tenant keys stay listed: %s",
            req->name(), n.status().ToString());
      }
      if (rag_ != nullptr) rag_->cache().InvalidateCollection(req->name());
      if (on_damage_) on_damage_(nullptr);  // the dropped collection may have been the damaged one
      return absl::OkStatus();
    });
  }

  grpc::Status ListCollections(grpc::ServerContext* ctx, const pb::ListCollectionsRequest* req,
                               pb::ListCollectionsResponse* resp) override {
    return Run("ListCollections", ctx, *req, [&](CallBudget&) {
      for (const auto& c : catalog_->List()) Describe(*c, resp->add_collections());
      for (const Catalog::Unopened& u : catalog_->ListUnopened()) {
        DescribeUnopened(u, resp->add_collections());
      }
      return absl::OkStatus();
    });
  }

  grpc::Status DescribeCollection(grpc::ServerContext* ctx,
                                  const pb::DescribeCollectionRequest* req,
                                  pb::CollectionInfo* resp) override {
    return Run("DescribeCollection", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->name()));
      Describe(*col, resp);
      return absl::OkStatus();
    });
  }

  // Queues the build and returns at once; CollectionInfo.build follows it.
  grpc::Status BuildIndex(grpc::ServerContext* ctx, const pb::BuildIndexRequest* req,
                          pb::CollectionInfo* resp) override {
    return Run("BuildIndex", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      if (col->Count() == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("collection '", req->collection(), "' is empty: nothing to index"));
      }
      if (builds_->Schedule(col, /*requested=*/true) == 0) {
        return absl::UnavailableError("the server is shutting down");
      }
      Describe(*col, resp);
      return absl::OkStatus();
    });
  }

  grpc::Status Upsert(grpc::ServerContext* ctx, const pb::UpsertRequest* req,
                      pb::UpsertResponse* resp) override {
    return Run("Upsert", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
      ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
      const std::shared_ptr<Collection>& col = target.col;
      RETURN_IF_ERROR(CheckBatch(req->points_size(), "points"));
      // The rows are copied once more (converted vectors, serialised payloads, the write batch).
      RETURN_IF_ERROR(budget.Reserve(req->ByteSizeLong()));
      CollectionConfig cfg = col->config();
      std::vector<std::vector<uint8_t>> vectors(req->points_size());
      std::vector<std::string> payloads(req->points_size());
      std::vector<std::vector<std::string>> tenants(req->points_size());
      std::vector<PointInput> rows;
      std::vector<uint32_t> row_index;  // rows[i] is request point row_index[i]
      std::vector<RowError> errors;
      for (int i = 0; i < req->points_size(); ++i) {
        const pb::Point& p = req->points(i);
        absl::Status s = VectorBytes(p.vector(), cfg.type, cfg.dim, &vectors[i]);
        if (s.ok() && p.payload().ByteSizeLong() > limits_.max_payload_bytes) {
          s = absl::InvalidArgumentError(
              absl::StrCat("payload has ", p.payload().ByteSizeLong(), " bytes; the limit is ",
                           limits_.max_payload_bytes, " (--max_payload_bytes)"));
        }
        if (s.ok() && !p.payload().json().empty()) {
          auto parsed = nlohmann::json::parse(p.payload().json(), nullptr, /*allow_exceptions=*/
                                              false);
          if (parsed.is_discarded() || !parsed.is_object()) {
            s = absl::InvalidArgumentError("payload json is not a JSON object");
          }
        }
        if (!s.ok()) {
          errors.push_back({static_cast<uint32_t>(i), p.id(), std::string(s.message())});
          continue;
        }
        if (p.has_payload() && (!p.payload().json().empty() || !p.payload().text().empty())) {
          payloads[i] = p.payload().SerializeAsString();
        }
        PointInput row{p.id(), vectors[i], payloads[i]};
        if (p.has_tenants()) {
          tenants[i].assign(p.tenants().names().begin(), p.tenants().names().end());
          row.tenants = tenants[i];
          row.set_tenants = true;
        }
        rows.push_back(row);
        row_index.push_back(static_cast<uint32_t>(i));
      }
      uint64_t upserted = 0;
      if (!rows.empty()) {
        std::vector<RowError> late;
        RETURN_IF_ERROR(col->Upsert(target.scope, rows, &late, &upserted));
        for (RowError& e : late) {
          e.index = row_index[e.index];
          errors.push_back(std::move(e));
        }
      }
      if (upserted == 0 && !errors.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "no point stored: point ", errors[0].index, " (id ", errors[0].id,
            "): ", errors[0].message,
            errors.size() > 1 ? absl::StrCat(" (and ", errors.size() - 1, " more rows failed)")
                              : ""));
      }
      std::sort(errors.begin(), errors.end(),
                [](const RowError& a, const RowError& b) { return a.index < b.index; });
      resp->set_upserted(upserted);
      for (const RowError& e : errors) {
        pb::RowError* out = resp->add_errors();
        out->set_index(e.index);
        out->set_id(e.id);
        out->set_message(e.message);
      }
      if (rag_ != nullptr && upserted > 0) {
        // The rows stored only: a refused row (another tenant's id) must not evict its cache.
        absl::flat_hash_set<uint64_t> failed;
        for (const RowError& e : errors) failed.insert(e.id);
        std::vector<uint64_t> ids;
        for (const PointInput& row : rows) {
          if (!failed.contains(row.id)) ids.push_back(row.id);
        }
        rag_->cache().Invalidate(req->collection(), ids);
      }
      if (col->WantsBuild()) builds_->Schedule(col, /*requested=*/false);
      return absl::OkStatus();
    });
  }

  grpc::Status Delete(grpc::ServerContext* ctx, const pb::DeleteRequest* req,
                      pb::DeleteResponse* resp) override {
    return Run("Delete", ctx, *req, [&](CallBudget&, const Caller& caller) -> absl::Status {
      ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
      RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
      uint64_t deleted = 0;
      RETURN_IF_ERROR(target.col->Delete(target.scope, req->ids(), &deleted));
      if (rag_ != nullptr) {
        rag_->cache().Invalidate(req->collection(),
                                 std::vector<uint64_t>(req->ids().begin(), req->ids().end()));
      }
      resp->set_deleted(deleted);
      return absl::OkStatus();
    });
  }

  grpc::Status Get(grpc::ServerContext* ctx, const pb::GetRequest* req,
                   pb::GetResponse* resp) override {
    return Run("Get", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
      ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
      const std::shared_ptr<Collection>& col = target.col;
      RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
      const ElementType type = col->config().type;
      std::vector<uint64_t> missing;
      size_t row = 0;
      RETURN_IF_ERROR(FetchPoints(
          *col, target.scope, req->ids(), req->with_vector(), req->with_payload(), &missing,
          [&](const PointOutput& p) -> absl::Status {
            pb::Point* out = resp->add_points();
            out->set_id(p.id);
            if (req->with_vector()) BytesToVector(p.vector, type, out->mutable_vector());
            if (!p.payload.empty() && !out->mutable_payload()->ParseFromString(p.payload)) {
              return absl::DataLossError(absl::StrCat("payload of id ", p.id, " is corrupt"));
            }
            return budget.AddResponse(
                out->ByteSizeLong(), absl::StrCat("point ", row++, " (id ", p.id, ")"),
                "get fewer ids per call, or leave out with_vector/with_payload");
          }));
      for (uint64_t id : missing) resp->add_missing_ids(id);
      return absl::OkStatus();
    });
  }

  grpc::Status Count(grpc::ServerContext* ctx, const pb::CountRequest* req,
                     pb::CountResponse* resp) override {
    return Run("Count", ctx, *req, [&](CallBudget&, const Caller& caller) -> absl::Status {
      ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
      ASSIGN_OR_RETURN(uint64_t count, target.col->Count(target.scope));
      resp->set_count(count);
      return absl::OkStatus();
    });
  }

  grpc::Status Search(grpc::ServerContext* ctx, const pb::SearchRequest* req,
                      pb::SearchResponse* resp) override {
    return Run("Search", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
      ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
      const std::shared_ptr<Collection>& col = target.col;
      ASSIGN_OR_RETURN(SearchParams params, Params(req->k(), req->params(), *col));
      const bool has_vector = req->query().values_size() > 0 || !req->query().raw().empty();
      if (req->text().empty() && !has_vector) {
        return absl::InvalidArgumentError("no query: set 'query' (a vector) or 'text'");
      }
      if (!req->text().empty() && has_vector) {
        return absl::InvalidArgumentError("set either 'query' or 'text', not both");
      }
      if (!req->text().empty()) RETURN_IF_ERROR(CheckTexts({req->text()}, /*need_model=*/false));
      ASSIGN_OR_RETURN(
          SearchPlan plan,
          Plan(*col, req->mode(), req->fusion(),
               req->has_dense_weight() ? std::optional<float>(req->dense_weight()) : std::nullopt,
               !req->text().empty()));
      const bool rerank = req->rerank() > 0;
      // The reranker's turn is taken before any work, so a call over its limit costs nothing.
      std::optional<Reranker::Turn> turn;
      if (rerank) {
        // The request's own checks first: a malformed request is malformed on every server.
        if (req->text().empty()) {
          return absl::InvalidArgumentError("rerank re-scores text queries: set 'text'");
        }
        RETURN_IF_ERROR(Reranker::CheckDepth(req->rerank(), req->k(), limits_.max_k));
        if (reranker_ == nullptr) {
          return absl::FailedPreconditionError(
              "rerank needs the server's cross-encoder (strata-server --reranker_model)");
        }
        absl::StatusOr<Reranker::Turn> entered = reranker_->Enter();
        if (!entered.ok()) return entered.status();
        turn.emplace(std::move(entered).value());
      }
      // Reranking reads every candidate's text: payloads come along, and go if not asked for.
      const Emit emit{req->with_payload() || rerank, req->with_vector(), /*batch=*/false, rerank,
                      target.scope};
      if (req->text().empty()) {
        return Damaged(col, SearchOne(*col, req->query(), req->k(), params, emit, &budget, resp));
      }
      const auto t0 = Clock::now();
      std::vector<pb::Vector> q(1);
      if (plan.mode != SearchMode::kLexical) {
        ASSIGN_OR_RETURN(q, EmbedQueries(ctx, *col, {req->text()}));
      }
      const auto t1 = Clock::now();
      const uint32_t depth = rerank ? req->rerank() : req->k();
      RETURN_IF_ERROR(Damaged(
          col, SearchTextOne(*col, plan, req->text(), q[0], depth, params, emit, &budget, resp)));
      if (rerank) {
        RETURN_IF_ERROR(reranker_->Rerank(
            *turn, req->text(), req->k(), [ctx] { return ctx->IsCancelled(); }, resp));
        if (!req->with_payload()) {
          for (pb::Hit& h : *resp->mutable_hits()) h.clear_payload();
        }
        pb::SearchStats* st = resp->mutable_stats();
        st->set_server_micros(st->server_micros() + st->rerank_micros());
      }
      if (plan.mode != SearchMode::kLexical) AddEmbedTime(t0, t1, resp->mutable_stats());
      return absl::OkStatus();
    });
  }

  grpc::Status SearchBatch(grpc::ServerContext* ctx, const pb::SearchBatchRequest* req,
                           pb::SearchBatchResponse* resp) override {
    return Run(
        "SearchBatch", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
          ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
          const std::shared_ptr<Collection>& col = target.col;
          if (req->queries_size() > 0 && req->texts_size() > 0) {
            return absl::InvalidArgumentError("set either 'queries' or 'texts', not both");
          }
          ASSIGN_OR_RETURN(SearchParams params, Params(req->k(), req->params(), *col));
          const bool text = req->texts_size() > 0;
          ASSIGN_OR_RETURN(SearchPlan plan,
                           Plan(*col, req->mode(), req->fusion(),
                                req->has_dense_weight() ? std::optional<float>(req->dense_weight())
                                                        : std::nullopt,
                                text));
          std::vector<pb::Vector> embedded;
          const auto t0 = Clock::now();
          auto t1 = t0;
          if (text) {
            std::vector<std::string> texts(req->texts().begin(), req->texts().end());
            if (plan.mode == SearchMode::kLexical) {
              RETURN_IF_ERROR(CheckTexts(texts, /*need_model=*/false));
              embedded.resize(texts.size());
            } else {
              ASSIGN_OR_RETURN(embedded, EmbedQueries(ctx, *col, texts));
            }
            t1 = Clock::now();
          } else {
            RETURN_IF_ERROR(CheckBatch(req->queries_size(), "queries"));
          }
          const Emit emit{req->with_payload(), req->with_vector(), /*batch=*/true, /*rerank=*/false,
                          target.scope};
          const int n = text ? req->texts_size() : req->queries_size();
          for (int i = 0; i < n; ++i) {
            if (ctx->IsCancelled()) return absl::CancelledError("the client went away");
            pb::SearchResponse* r = resp->add_results();
            absl::Status s =
                text ? SearchTextOne(*col, plan, req->texts(i), embedded[static_cast<size_t>(i)],
                                     req->k(), params, emit, &budget, r)
                     : SearchOne(*col, req->queries(i), req->k(), params, emit, &budget, r);
            s = Damaged(col, s);
            if (!s.ok()) {
              return absl::Status(s.code(), absl::StrCat("query ", i, ": ", s.message()));
            }
            if (text && plan.mode != SearchMode::kLexical) AddEmbedTime(t0, t1, r->mutable_stats());
          }
          return absl::OkStatus();
        });
  }

  grpc::Status TuneHybrid(grpc::ServerContext* ctx, const pb::TuneHybridRequest* req,
                          pb::TuneHybridResponse* resp) override {
    return Run("TuneHybrid", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      if (req->questions_size() == 0) {
        return absl::InvalidArgumentError("no questions: TuneHybrid needs labelled questions");
      }
      if (col->text_documents() == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "collection '", req->collection(), "' has no payload text: nothing to fuse"));
      }
      constexpr int kMaxRelevant = 1024;
      for (int i = 0; i < req->questions_size(); ++i) {
        if (req->questions(i).relevant_ids_size() > kMaxRelevant) {
          return absl::InvalidArgumentError(
              absl::StrCat("question ", i, " names ", req->questions(i).relevant_ids_size(),
                           " relevant ids; the limit is ", kMaxRelevant));
        }
        // Every relevant id must be a point of the collection: an unknown one (a typo, ids of
        // another load) would teach the weight nothing and count as a miss.
        const auto& ids = req->questions(i).relevant_ids();
        std::vector<PointOutput> found;
        std::vector<uint64_t> missing;
        RETURN_IF_ERROR(
            col->Get(ids, /*with_vector=*/false, /*with_payload=*/false, &found, &missing));
        if (!missing.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("question ", i, ": relevant id ", missing[0], " is not in collection '",
                           req->collection(), "' (relevant ids are the points' ids as loaded)"));
        }
      }
      std::vector<std::string> texts;
      for (const pb::LabelledQuestion& q : req->questions()) texts.push_back(q.text());
      // The model's checks (present, fitting the collection) and the text limits.
      ASSIGN_OR_RETURN(std::vector<pb::Vector> embedded, EmbedQueries(ctx, *col, texts));
      const CollectionConfig cfg = col->config();
      std::vector<LabelledQuestion> questions(texts.size());
      for (size_t i = 0; i < texts.size(); ++i) {
        questions[i].text = texts[i];
        RETURN_IF_ERROR(VectorBytes(embedded[i], cfg.type, cfg.dim, &questions[i].query));
        const auto& ids = req->questions(static_cast<int>(i)).relevant_ids();
        questions[i].relevant.insert(ids.begin(), ids.end());
      }
      ASSIGN_OR_RETURN(SearchParams params, Params(10, pb::SearchParams(), *col));
      absl::StatusOr<HybridTuning> tuned =
          TuneHybridWeight(*col, questions, params, Abandoned(ctx));
      if (!tuned.ok()) return Damaged(col, tuned.status());
      const HybridTuning& tuning = *tuned;
      if (std::all_of(tuning.table.begin(), tuning.table.end(),
                      [](const WeightScore& w) { return w.mrr_at_10 == 0; })) {
        return absl::FailedPreconditionError(
            "no question found a relevant point in its top 10 at any weight: nothing to learn "
            "from (are the relevant ids right?)");
      }
      if (!req->dry_run()) {
        const auto& best =
            *std::find_if(tuning.table.begin(), tuning.table.end(),
                          [&](const WeightScore& w) { return w.weight == tuning.weight; });
        RETURN_IF_ERROR(col->SetHybridDefault(tuning.weight, best.mrr_at_10,
                                              static_cast<uint32_t>(questions.size())));
        Log(LogLevel::kInfo,
            "collection '%s': hybrid dense weight %.1f learned on %d questions (MRR@10 %.4f)",
            cfg.name, tuning.weight, questions.size(), best.mrr_at_10);
      }
      resp->set_dense_weight(static_cast<float>(tuning.weight));
      resp->set_best_weight(static_cast<float>(tuning.best_weight));
      resp->set_questions(static_cast<uint32_t>(questions.size()));
      for (const WeightScore& w : tuning.table) {
        pb::WeightScore* out = resp->add_scores();
        out->set_dense_weight(static_cast<float>(w.weight));
        out->set_mrr_at_10(w.mrr_at_10);
        out->set_recall_at_1(w.recall_at_1);
        out->set_recall_at_10(w.recall_at_10);
      }
      return absl::OkStatus();
    });
  }

  grpc::Status Embed(grpc::ServerContext* ctx, const pb::EmbedRequest* req,
                     pb::EmbedResponse* resp) override {
    // Any caller: it computes, and reads no stored data; a tenant key's call counts against its
    // tenants' request rates.
    return Run("Embed", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
      if (!caller.admin) RETURN_IF_ERROR(AdmitKey(caller.key));
      std::vector<std::string> texts(req->texts().begin(), req->texts().end());
      RETURN_IF_ERROR(CheckTexts(texts));
      gpu::EmbedStats st;
      ASSIGN_OR_RETURN(std::vector<float> v, embedder_->Embed(texts, &st, Abandoned(ctx)));
      const int dim = embedder_->encoder().dimension();
      for (size_t i = 0; i < texts.size(); ++i) {
        pb::Vector* out = resp->add_vectors();
        out->mutable_values()->Add(v.begin() + static_cast<ptrdiff_t>(i * dim),
                                   v.begin() + static_cast<ptrdiff_t>((i + 1) * dim));
        RETURN_IF_ERROR(budget.AddResponse(out->ByteSizeLong(), absl::StrCat("text ", i),
                                           "send fewer texts per call"));
      }
      resp->set_model(ModelName());
      resp->set_dimension(static_cast<uint32_t>(dim));
      resp->set_tokens(static_cast<uint64_t>(st.tokens));
      resp->set_truncated(static_cast<uint32_t>(st.truncated));
      return absl::OkStatus();
    });
  }

  // New calls get UNAVAILABLE from now on; returns once the calls in progress are done or
  // `deadline` passes.
  void Drain(Clock::time_point deadline) {
    draining_.store(true);
    while (in_flight_.load() > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  grpc::Status Generate(grpc::ServerContext* ctx, const pb::GenerateRequest* req,
                        grpc::ServerWriter<pb::GenerateResponse>* writer) override {
    return Run(
        "Generate", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
          if (rag_ == nullptr)
            return ServeGenerate(*req, nullptr, {}, ctx, writer);  // names --decoder
          absl::Cleanup leave = [this] { decoder_calls_.fetch_sub(1); };
          RETURN_IF_ERROR(EnterDecoderCall());
          ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
          const std::shared_ptr<Collection>& col = target.col;
          for (const auto& [what, text] :
               {std::pair<const char*, const std::string*>{"question", &req->question()},
                {"system", &req->system()}}) {
            if (text->size() > limits_.max_text_bytes) {
              return absl::ResourceExhaustedError(
                  absl::StrCat(what, " has ", text->size(), " bytes; the limit is ",
                               limits_.max_text_bytes, " (--max_text_bytes)"));
            }
          }
          if (!req->question().empty() && col->text_documents() == 0) {
            return absl::FailedPreconditionError(absl::StrCat(
                "collection '", req->collection(),
                "' holds no passage text to answer from (points need payload text; strata-load "
                "--text loads passages)"));
          }
          // The passages: the service's own text search, with payloads.
          auto retrieve = [&](uint32_t k) -> absl::StatusOr<Retrieved> {
            ASSIGN_OR_RETURN(SearchPlan plan, Plan(*col, req->mode(), pb::FUSION_UNSPECIFIED,
                                                   std::nullopt, /*text_query=*/true));
            ASSIGN_OR_RETURN(SearchParams params, Params(k, pb::SearchParams(), *col));
            Retrieved out;
            const auto t0 = Clock::now();
            std::vector<pb::Vector> q(1);
            if (plan.mode != SearchMode::kLexical) {
              ASSIGN_OR_RETURN(q, EmbedQueries(ctx, *col, {req->question()}));
            }
            out.embed_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
            pb::SearchResponse found;
            const Emit emit{/*with_payload=*/true, /*with_vector=*/false, /*batch=*/false,
                            /*rerank=*/false, target.scope};
            RETURN_IF_ERROR(Damaged(col, SearchTextOne(*col, plan, req->question(), q[0], k, params,
                                                       emit, &budget, &found)));
            out.mode = found.mode();
            out.hits.assign(found.hits().begin(), found.hits().end());
            return out;
          };
          return ServeGenerate(*req, rag_, retrieve, ctx, writer);
        });
  }

  grpc::Status PrecomputePassageKv(grpc::ServerContext* ctx,
                                   const pb::PrecomputePassageKvRequest* req,
                                   pb::PrecomputePassageKvResponse* resp) override {
    return Run("PrecomputePassageKv", ctx, *req, [&](CallBudget& budget) -> absl::Status {
      if (rag_ == nullptr) return ServePrecompute(*req, nullptr, {}, ctx, resp);
      absl::Cleanup leave = [this] { decoder_calls_.fetch_sub(1); };
      RETURN_IF_ERROR(EnterDecoderCall());
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
      auto fetch = [&](std::vector<std::pair<uint64_t, pb::Payload>>* found,
                       std::vector<uint64_t>* missing) -> absl::Status {
        return FetchPoints(
            *col, Scope{}, req->ids(), /*with_vector=*/false, /*with_payload=*/true, missing,
            [&](const PointOutput& p) -> absl::Status {
              // The payloads are held while their entries are made.
              RETURN_IF_ERROR(budget.Reserve(2 * p.payload.size() + CallBudget::kMessageOverhead));
              pb::Payload payload;
              if (!p.payload.empty() && !payload.ParseFromString(p.payload)) {
                return absl::DataLossError(absl::StrCat("payload of id ", p.id, " is corrupt"));
              }
              found->emplace_back(p.id, std::move(payload));
              return absl::OkStatus();
            });
      };
      return ServePrecompute(*req, rag_, fetch, ctx, resp);
    });
  }

  // --- Tenants and their keys: the admin's calls (Run refuses them to tenant keys).

  grpc::Status CreateTenant(grpc::ServerContext* ctx, const pb::CreateTenantRequest* req,
                            pb::TenantInfo* resp) override {
    return Run("CreateTenant", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(col->CreateTenant(req->name(), QuotaFromProto(req->quota())));
      ASSIGN_OR_RETURN(TenantInfo info, col->DescribeTenant(req->name()));
      TenantToProto(info, col->config(), resp);
      return absl::OkStatus();
    });
  }

  grpc::Status SetTenantQuota(grpc::ServerContext* ctx, const pb::SetTenantQuotaRequest* req,
                              pb::TenantInfo* resp) override {
    return Run("SetTenantQuota", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(col->SetTenantQuota(req->name(), QuotaFromProto(req->quota())));
      ASSIGN_OR_RETURN(TenantInfo info, col->DescribeTenant(req->name()));
      TenantToProto(info, col->config(), resp);
      return absl::OkStatus();
    });
  }

  grpc::Status DropTenant(grpc::ServerContext* ctx, const pb::DropTenantRequest* req,
                          pb::DropTenantResponse* resp) override {
    return Run("DropTenant", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(CheckName("tenant name", req->name()));
      MutexLock admin_lock(&tenant_admin_mu_);
      RETURN_IF_ERROR(col->DescribeTenant(req->name()).status());  // NotFound naming it
      // Its keys go first: a crash between the two leaves a tenant without keys, never a key
      // that a tenant made again under the same name would bring back to life.
      ASSIGN_OR_RETURN(uint32_t revoked, keys_->RevokeFor(col->config().uid, req->name()));
      uint64_t deleted = 0;
      RETURN_IF_ERROR(col->DropTenant(req->name(), req->keep_points(), &deleted));
      resp->set_deleted_points(deleted);
      resp->set_revoked_keys(revoked);
      return absl::OkStatus();
    });
  }

  grpc::Status ListTenants(grpc::ServerContext* ctx, const pb::ListTenantsRequest* req,
                           pb::ListTenantsResponse* resp) override {
    return Run("ListTenants", ctx, *req, [&](CallBudget& budget) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      const CollectionConfig cfg = col->config();
      for (const TenantInfo& t : col->ListTenants()) {
        pb::TenantInfo* out = resp->add_tenants();
        TenantToProto(t, cfg, out);
        RETURN_IF_ERROR(budget.AddResponse(out->ByteSizeLong(), "tenant " + t.name,
                                           "(no smaller listing exists)"));
      }
      return absl::OkStatus();
    });
  }

  grpc::Status GrantAccess(grpc::ServerContext* ctx, const pb::AccessRequest* req,
                           pb::AccessResponse* resp) override {
    return Run("GrantAccess", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
      uint64_t changed = 0;
      std::vector<uint64_t> missing;
      RETURN_IF_ERROR(col->Grant(req->tenant(), req->ids(), &changed, &missing));
      resp->set_changed(changed);
      for (uint64_t id : missing) resp->add_missing_ids(id);
      return absl::OkStatus();
    });
  }

  grpc::Status RevokeAccess(grpc::ServerContext* ctx, const pb::AccessRequest* req,
                            pb::AccessResponse* resp) override {
    return Run("RevokeAccess", ctx, *req, [&](CallBudget&) -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
      uint64_t changed = 0;
      RETURN_IF_ERROR(col->Revoke(req->tenant(), req->ids(), &changed));
      resp->set_changed(changed);
      return absl::OkStatus();
    });
  }

  grpc::Status CreateApiKey(grpc::ServerContext* ctx, const pb::CreateApiKeyRequest* req,
                            pb::CreateApiKeyResponse* resp) override {
    return Run("CreateApiKey", ctx, *req, [&](CallBudget&) -> absl::Status {
      if (auth_ == nullptr) {
        return absl::FailedPreconditionError(
            "tenant keys need an admin key (strata-server --admin_key_file): on a server "
            "without one every caller is the admin, and a tenant key would confine no one");
      }
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      std::vector<std::string> tenants(req->tenants().begin(), req->tenants().end());
      std::sort(tenants.begin(), tenants.end());
      tenants.erase(std::unique(tenants.begin(), tenants.end()), tenants.end());
      MutexLock admin_lock(&tenant_admin_mu_);
      for (const std::string& t : tenants) {
        // InvalidArgument for a name no tenant can have (the empty one included), NotFound for
        // one the collection lacks.
        RETURN_IF_ERROR(CheckName("tenant name", t));
        RETURN_IF_ERROR(col->DescribeTenant(t).status());
      }
      TenantKeyInfo info;
      ASSIGN_OR_RETURN(std::string key,
                       keys_->Create(req->collection(), col->config().uid, tenants, req->label(),
                                     std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count(),
                                     &info));
      resp->set_key(std::move(key));
      KeyToProto(info, resp->mutable_info());
      Log(LogLevel::kInfo, "tenant key %s made for collection '%s' (%s)", info.key_id,
          info.collection, absl::StrJoin(info.tenants, ", "));
      return absl::OkStatus();
    });
  }

  grpc::Status RevokeApiKey(grpc::ServerContext* ctx, const pb::RevokeApiKeyRequest* req,
                            pb::RevokeApiKeyResponse*) override {
    return Run("RevokeApiKey", ctx, *req,
               [&](CallBudget&) -> absl::Status { return keys_->Revoke(req->key_id()); });
  }

  grpc::Status ListApiKeys(grpc::ServerContext* ctx, const pb::ListApiKeysRequest* req,
                           pb::ListApiKeysResponse* resp) override {
    return Run("ListApiKeys", ctx, *req, [&](CallBudget& budget) -> absl::Status {
      if (!req->collection().empty()) {
        RETURN_IF_ERROR(catalog_->Find(req->collection()).status());  // NotFound naming it
      }
      for (const TenantKeyInfo& k : keys_->List(req->collection())) {
        pb::ApiKeyInfo* out = resp->add_keys();
        KeyToProto(k, out);
        RETURN_IF_ERROR(budget.AddResponse(out->ByteSizeLong(), "key " + k.key_id,
                                           "list one collection's keys"));
      }
      return absl::OkStatus();
    });
  }

  static TenantQuota QuotaFromProto(const pb::TenantQuota& q) {
    return {q.max_points(), q.max_requests_per_second()};
  }
  static void TenantToProto(const TenantInfo& t, const CollectionConfig& cfg, pb::TenantInfo* out) {
    out->set_name(t.name);
    out->set_points(t.points);
    out->set_vector_bytes(t.points * cfg.dim * ElementSize(cfg.type));
    out->mutable_quota()->set_max_points(t.quota.max_points);
    out->mutable_quota()->set_max_requests_per_second(t.quota.max_requests_per_second);
  }

  static void KeyToProto(const TenantKeyInfo& k, pb::ApiKeyInfo* out) {
    out->set_key_id(k.key_id);
    out->set_collection(k.collection);
    for (const std::string& t : k.tenants) out->add_tenants(t);
    out->set_label(k.label);
    out->set_created_unix_seconds(k.created_unix_seconds);
  }

  grpc::Status Stats(grpc::ServerContext* ctx, const pb::StatsRequest* req,
                     pb::StatsResponse* resp) override {
    return Run("Stats", ctx, *req, [&](CallBudget&) {
      resp->set_uptime_seconds(std::chrono::duration<double>(Clock::now() - started_).count());
      resp->set_version("0.1.0");
      for (const auto& c : catalog_->List()) {
        CollectionStats s = c->Stats();
        resp->set_collections(resp->collections() + 1);
        if (s.state == CollectionStats::State::kDamaged) {
          resp->set_damaged_collections(resp->damaged_collections() + 1);
        }
        resp->set_vectors(resp->vectors() + s.count);
        resp->set_index_memory_bytes(resp->index_memory_bytes() + s.memory_bytes +
                                     s.text_memory_bytes);
        resp->set_index_disk_bytes(resp->index_disk_bytes() + s.disk_bytes);
        resp->set_disk_pages_read(resp->disk_pages_read() + s.pages_read);
        resp->set_disk_bytes_read(resp->disk_bytes_read() + s.bytes_read);
      }
      const size_t unopened = catalog_->ListUnopened().size();
      resp->set_collections(resp->collections() + unopened);
      resp->set_damaged_collections(resp->damaged_collections() + unopened);
      metrics_->Fill(resp);
      const WalRecoveryReport& wal = catalog_->store()->recovery();
      resp->mutable_wal_recovery()->set_damaged(wal.damaged);
      resp->mutable_wal_recovery()->set_dropped_batches(wal.dropped_batches);
      resp->mutable_wal_recovery()->set_dropped_bytes(wal.dropped_bytes);
      resp->mutable_wal_recovery()->set_detail(wal.detail);
      pb::CallMemoryStats* m = resp->mutable_call_memory();
      m->set_budget_bytes(memory_->capacity());
      m->set_in_use_bytes(memory_->used());
      m->set_peak_bytes(memory_->peak());
      m->set_refusals(memory_->refusals());
      if (embedder_ != nullptr) {
        const gpu::EmbedBatcherStats e = embedder_->stats();
        pb::EmbedEngineStats* out = resp->mutable_embed();
        out->set_model(ModelName());
        out->set_backend(embedder_->encoder().backend_name());
        out->set_dimension(static_cast<uint32_t>(embedder_->encoder().dimension()));
        out->set_batches(e.batches);
        out->set_requests(e.requests);
        out->set_texts(e.texts);
        out->set_tokens(e.tokens);
        out->set_held(e.held);
        out->set_cancelled(e.cancelled);
      }
      if (reranker_ != nullptr) reranker_->Report(resp->mutable_rerank());
      if (rag_ != nullptr) {
        const gpu::GeneratorStats g = rag_->generator_stats();
        const gpu::PassageKvCacheStats c = rag_->cache().stats();
        pb::GenerationStats* out = resp->mutable_generation();
        out->set_model(rag_->model_name());
        out->set_backend(rag_->decoder().backend_name());
        out->set_running(static_cast<uint64_t>(g.running));
        out->set_queued(static_cast<uint64_t>(g.queued));
        out->set_preparing(static_cast<uint64_t>(g.preparing));
        out->set_entries_made(static_cast<uint64_t>(g.entries_made));
        out->set_completed(static_cast<uint64_t>(g.completed));
        out->set_cancelled(static_cast<uint64_t>(g.cancelled));
        out->set_failed(static_cast<uint64_t>(g.failed));
        out->set_mean_batch(g.steps > 0 ? static_cast<double>(g.batched_rows) / g.steps : 0.0);
        out->set_kv_bytes(g.kv_bytes);
        out->set_cache_ram_hits(c.ram_hits);
        out->set_cache_disk_hits(c.disk_hits);
        out->set_cache_misses(c.misses);
        out->set_cache_ram_bytes(c.ram_bytes);
        out->set_cache_disk_bytes(c.disk_bytes);
        out->set_cache_entries(c.ram_entries + c.disk_entries);
      }
      return absl::OkStatus();
    });
  }

 private:
  std::string ModelName() const {
    std::string dir = embedder_->encoder().model_dir();
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    const size_t slash = dir.rfind('/');
    return slash == std::string::npos ? dir : dir.substr(slash + 1);
  }

  // The request's texts against the limits, and the server's model present.
  absl::Status CheckTexts(const std::vector<std::string>& texts, bool need_model = true) const {
    if (need_model && embedder_ == nullptr) {
      return absl::FailedPreconditionError(
          "this server has no embedding model: start strata-server with --model_dir "
          "(e.g. models/all-minilm-l6-v2, fetched by tools/fetch-models.sh)");
    }
    if (texts.empty()) return absl::InvalidArgumentError("empty batch: no texts");
    if (texts.size() > limits_.max_texts) {
      return absl::ResourceExhaustedError(
          absl::StrCat(texts.size(), " texts in one request; the limit is ", limits_.max_texts));
    }
    for (size_t i = 0; i < texts.size(); ++i) {
      if (texts[i].empty()) {
        return absl::InvalidArgumentError(absl::StrCat("text ", i, " is empty"));
      }
      if (!need_model && absl::StripAsciiWhitespace(texts[i]).empty()) {  // a search query
        return absl::InvalidArgumentError(absl::StrCat("text ", i, " holds only white space"));
      }
      if (texts[i].size() > limits_.max_text_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "text ", i, " has ", texts[i].size(), " bytes; the limit is ", limits_.max_text_bytes));
      }
    }
    return absl::OkStatus();
  }

  // Text queries embedded for `col`, which must hold float32 vectors of the model's dimension.
  // A call whose client has gone (cancelled, past its deadline) stops waiting for the engine.
  static std::function<bool()> Abandoned(grpc::ServerContext* ctx) {
    return [ctx] { return ctx->IsCancelled(); };
  }

  absl::StatusOr<std::vector<pb::Vector>> EmbedQueries(grpc::ServerContext* ctx,
                                                       const Collection& col,
                                                       const std::vector<std::string>& texts) {
    RETURN_IF_ERROR(CheckTexts(texts));
    const CollectionConfig cfg = col.config();
    const int dim = embedder_->encoder().dimension();
    if (cfg.type != ElementType::kFloat32 || cfg.dim != static_cast<uint32_t>(dim)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "collection '", cfg.name, "' holds ", cfg.dim, "-d ", ElementTypeName(cfg.type),
          " vectors; text queries are embedded by ", ModelName(), " as ", dim, "-d float32"));
    }
    ASSIGN_OR_RETURN(std::vector<float> v, embedder_->Embed(texts, nullptr, Abandoned(ctx)));
    std::vector<pb::Vector> out(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      out[i].mutable_values()->Add(v.begin() + static_cast<ptrdiff_t>(i * dim),
                                   v.begin() + static_cast<ptrdiff_t>((i + 1) * dim));
    }
    return out;
  }

  // Records the time spent embedding the query (`since` = when embedding began, `until` = when it
  // ended) in a search's stats, and counts it in server_micros.
  static void AddEmbedTime(Clock::time_point since, Clock::time_point until, pb::SearchStats* st) {
    const auto us = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(until - since).count());
    st->set_embed_micros(us);
    st->set_server_micros(st->server_micros() + us);
  }

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
    try {
      absl::StatusOr<Caller> caller = Caller{};
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
                         "Search, SearchBatch, Generate and Embed on its own tenants"));
      } else {
        s = body(budget);
      }
    } catch (const std::exception& e) {
      // Nothing below is meant to throw; if something does, the caller gets INTERNAL and the
      // server stays up.
      s = absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
    }
    // The request and response live on until gRPC has sent the response (or given up on it).
    hold_->Hold(ctx, budget.TakeReserved());
    grpc::Status g = ToGrpcStatus(s);
    metrics_->Record(rpc, g, std::chrono::duration<double>(Clock::now() - t0).count());
    if (!s.ok() &&
        (s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kDataLoss)) {
      Log(LogLevel::kError, "%s: %s", rpc, s.ToString());
    }
    return g;
  }

  // Passes `s` on, first telling on_damage_ when it says a posting of `col` is damaged.
  absl::Status Damaged(const std::shared_ptr<Collection>& col, absl::Status s) {
    if (absl::IsDataLoss(s) && on_damage_) on_damage_(col);
    return s;
  }

  absl::Status CheckBatch(int n, const char* what) const {
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("empty batch: no ", what));
    if (static_cast<uint32_t>(n) > limits_.max_batch) {
      return absl::ResourceExhaustedError(
          absl::StrCat(n, " ", what, " in one request; the limit is ", limits_.max_batch));
    }
    return absl::OkStatus();
  }

  // The search parameters of a request to `col`: the defaults where it leaves them 0, within the
  // server's caps (an index's tuned default budget included).
  absl::StatusOr<SearchParams> Params(uint32_t k, const pb::SearchParams& p,
                                      const Collection& col) const {
    if (k == 0 || k > limits_.max_k) {
      return absl::InvalidArgumentError(
          absl::StrCat("k must be in [1, ", limits_.max_k, "], got ", k));
    }
    SearchParams out;
    if (p.max_postings() != 0) {
      out.max_postings = p.max_postings();
    } else if (col.default_max_postings() > limits_.max_postings) {
      out.max_postings = limits_.max_postings;
    }
    if (out.max_postings > limits_.max_postings) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_postings must be at most ", limits_.max_postings));
    }
    if (!std::isfinite(p.prune_ratio())) {
      return absl::InvalidArgumentError("prune_ratio must be finite");
    }
    if (p.prune_ratio() != 0) out.prune_ratio = p.prune_ratio();
    if (p.ef_search() > limits_.max_ef_search) {
      return absl::InvalidArgumentError(
          absl::StrCat("ef_search must be at most ", limits_.max_ef_search));
    }
    out.ef_search = p.ef_search();
    return out;
  }

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
                                 const std::string& tenant) {
    if (caller.admin) {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(collection));
      return Target{std::move(col), Scope{tenant}};
    }
    const TenantKeyInfo& key = caller.key;
    if (collection != key.collection) {
      return absl::PermissionDeniedError(absl::StrCat("this tenant key is for collection '",
                                                      key.collection, "', not '",
                                                      ShownName(collection), "'"));
    }
    ASSIGN_OR_RETURN(auto col, catalog_->Find(collection));
    if (col->config().uid != key.collection_uid) {
      return absl::PermissionDeniedError(
          absl::StrCat("this tenant key was made for an earlier collection '", collection,
                       "', since dropped; ask the admin for a new key"));
    }
    Scope scope;
    if (tenant.empty()) {
      if (key.tenants.size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "this tenant key is for ", key.tenants.size(), " tenants (",
            absl::StrJoin(key.tenants, ", "), "): name one in the request's 'tenant'"));
      }
      scope.tenant = key.tenants[0];
    } else if (std::find(key.tenants.begin(), key.tenants.end(), tenant) == key.tenants.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("this tenant key may not act for tenant '", ShownName(tenant), "'"));
    } else {
      scope.tenant = tenant;
    }
    if (scope.whole()) {
      // Never the whole collection for a tenant key, whatever its record holds.
      return absl::PermissionDeniedError("this tenant key names no tenant");
    }
    // The tenant's request rate: its keys' calls only (the admin is not counted).
    ASSIGN_OR_RETURN(TenantInfo info, col->DescribeTenant(scope.tenant));
    RETURN_IF_ERROR(rate_limiter_.Admit(key.collection_uid, collection, scope.tenant,
                                        info.quota.max_requests_per_second));
    return Target{std::move(col), scope};
  }

  // A tenant key's call that names no collection (Embed): counted against every tenant of the
  // key. PERMISSION_DENIED when the key's collection is gone.
  absl::Status AdmitKey(const TenantKeyInfo& key) {
    auto col = catalog_->Find(key.collection);
    if (!col.ok() || (*col)->config().uid != key.collection_uid) {
      return absl::PermissionDeniedError("this tenant key's collection was dropped");
    }
    for (const std::string& t : key.tenants) {
      ASSIGN_OR_RETURN(TenantInfo info, (*col)->DescribeTenant(t));
      RETURN_IF_ERROR(rate_limiter_.Admit(key.collection_uid, key.collection, t,
                                          info.quota.max_requests_per_second));
    }
    return absl::OkStatus();
  }

  // The search plan of a request to `col` (search_plan.h).
  absl::StatusOr<SearchPlan> Plan(const Collection& col, pb::SearchMode mode, pb::Fusion fusion,
                                  std::optional<float> dense_weight, bool text_query) const {
    SearchContext context;
    context.text_query = text_query;
    if (text_query) {
      const CollectionConfig cfg = col.config();
      context.model_fits = embedder_ != nullptr && cfg.type == ElementType::kFloat32 &&
                           cfg.dim == static_cast<uint32_t>(embedder_->encoder().dimension());
      context.collection_has_text = col.text_documents() > 0;
      context.learned_weight = cfg.hybrid_weight;
    }
    return PlanSearch(mode, fusion, dense_weight, context);
  }

  // One vector query's hits into `resp`.
  absl::Status SearchOne(const Collection& col, const pb::Vector& query, uint32_t k,
                         const SearchParams& params, const Emit& emit, CallBudget* budget,
                         pb::SearchResponse* resp) {
    auto t0 = Clock::now();
    CollectionConfig cfg = col.config();
    std::vector<uint8_t> q;
    RETURN_IF_ERROR(VectorBytes(query, cfg.type, cfg.dim, &q));
    std::vector<Hit> hits;
    strata::SearchStats st;
    RETURN_IF_ERROR(col.Search(emit.scope, VectorView{cfg.type, q}, k, params, &hits, &st));
    resp->set_mode(pb::DENSE);
    RETURN_IF_ERROR(EmitHits(
        col, hits.size(),
        [&](size_t i, pb::Hit* out) {
          out->set_id(hits[i].id);
          out->set_distance(hits[i].distance);
        },
        emit, budget, resp));
    SetStats(st, t0, resp->mutable_stats());
    return absl::OkStatus();
  }

  // One text query's hits into `resp`, by `plan` (`query`: its embedding, unless LEXICAL).
  absl::Status SearchTextOne(const Collection& col, const SearchPlan& plan, const std::string& text,
                             const pb::Vector& query, uint32_t k, const SearchParams& params,
                             const Emit& emit, CallBudget* budget, pb::SearchResponse* resp) {
    if (plan.mode == SearchMode::kDense) {
      return SearchOne(col, query, k, params, emit, budget, resp);
    }
    auto t0 = Clock::now();
    CollectionConfig cfg = col.config();
    TextSearch search;
    search.mode = plan.mode;
    search.text = text;
    search.fusion = plan.fusion;
    std::vector<uint8_t> q;
    if (plan.mode == SearchMode::kHybrid) {
      RETURN_IF_ERROR(VectorBytes(query, cfg.type, cfg.dim, &q));
      search.query = VectorView{cfg.type, q};
    }
    std::vector<ScoredHit> hits;
    strata::SearchStats st;
    RETURN_IF_ERROR(col.SearchText(emit.scope, search, k, params, &hits, &st));
    resp->set_mode(ToProto(plan.mode));
    if (plan.mode == SearchMode::kHybrid) {
      resp->set_fusion(ToProto(plan.fusion.method));
      resp->set_dense_weight(static_cast<float>(plan.fusion.dense_weight));
    }
    RETURN_IF_ERROR(EmitHits(
        col, hits.size(),
        [&](size_t i, pb::Hit* out) {
          const ScoredHit& h = hits[i];
          out->set_id(h.id);
          out->set_distance(static_cast<float>(-h.score));
          pb::HitScores* sc = out->mutable_scores();
          sc->set_score(static_cast<float>(h.score));
          if (h.has_dense) sc->set_dense_distance(h.dense_distance);
          if (h.has_lexical) sc->set_lexical_score(static_cast<float>(h.lexical_score));
        },
        emit, budget, resp));
    SetStats(st, t0, resp->mutable_stats());
    return absl::OkStatus();
  }

  static void SetStats(const strata::SearchStats& st, Clock::time_point t0, pb::SearchStats* s) {
    s->set_postings_read(st.postings_read);
    s->set_pages_read(st.pages_read);
    s->set_bytes_read(st.bytes_read);
    s->set_entries_scanned(st.entries_scanned);
    s->set_server_micros(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
  }

  // Adds `n` hits to `resp` (`fill` sets the i-th one's id and scores), each counted against
  // `budget` as it is added, then their payloads/vectors as `emit` asks.
  absl::Status EmitHits(const Collection& col, size_t n,
                        absl::FunctionRef<void(size_t, pb::Hit*)> fill, const Emit& emit,
                        CallBudget* budget, pb::SearchResponse* resp) {
    const CollectionConfig cfg = col.config();
    const char* how = emit.rerank  ? "ask for a smaller rerank (its candidates' payloads are read)"
                      : emit.batch ? "send fewer queries per call or ask for a smaller k, or leave "
                                     "out with_vector/with_payload"
                                   : "ask for a smaller k, or leave out with_vector/with_payload";
    for (size_t i = 0; i < n; ++i) {
      pb::Hit* out = resp->add_hits();
      fill(i, out);
      RETURN_IF_ERROR(budget->AddResponse(out->ByteSizeLong(), absl::StrCat("hit ", i), how));
    }
    if (!emit.with_payload && !emit.with_vector) return absl::OkStatus();
    std::vector<uint64_t> ids, missing;
    ids.reserve(n);
    for (const pb::Hit& h : resp->hits()) ids.push_back(h.id());
    // Points come in hit order; a hit deleted between the search and the lookup keeps its id
    // and scores only.
    int e = 0;
    return FetchPoints(
        col, emit.scope, ids, emit.with_vector, emit.with_payload, &missing,
        [&](const PointOutput& p) -> absl::Status {
          while (e < resp->hits_size() && resp->hits(e).id() != p.id) ++e;
          if (e == resp->hits_size()) {
            return absl::InternalError(
                absl::StrCat("point ", p.id, " came back from a lookup of hits it is not among"));
          }
          pb::Hit* out = resp->mutable_hits(e++);
          const size_t bare = out->ByteSizeLong();
          if (emit.with_vector) BytesToVector(p.vector, cfg.type, out->mutable_vector());
          if (emit.with_payload && !p.payload.empty() &&
              !out->mutable_payload()->ParseFromString(p.payload)) {
            return absl::DataLossError(absl::StrCat("payload of id ", p.id, " is corrupt"));
          }
          return budget->AddResponse(out->ByteSizeLong() - bare, absl::StrCat("hit ", e - 1), how);
        });
  }

  // Fetches the points `ids` from `col` in chunks of a few MiB at most and hands each found one
  // to `emit`, in request order; absent ids go to `missing`. Stops at the first error (of the
  // lookup or of `emit`), so a response that outgrows its budget stops fetching at once.
  absl::Status FetchPoints(const Collection& col, const Scope& scope,
                           absl::Span<const uint64_t> ids, bool with_vector, bool with_payload,
                           std::vector<uint64_t>* missing,
                           absl::FunctionRef<absl::Status(const PointOutput&)> emit) const {
    constexpr uint64_t kChunkBytes = 4u << 20;
    const CollectionConfig cfg = col.config();
    const uint64_t row_bytes = (with_vector ? uint64_t{cfg.dim} * ElementSize(cfg.type) : 0) +
                               (with_payload ? limits_.max_payload_bytes : 0) +
                               CallBudget::kMessageOverhead;
    const size_t chunk = static_cast<size_t>(std::max<uint64_t>(1, kChunkBytes / row_bytes));
    std::vector<PointOutput> found;
    std::vector<uint64_t> absent;
    for (size_t at = 0; at < ids.size(); at += chunk) {
      RETURN_IF_ERROR(
          col.Get(scope, ids.subspan(at, chunk), with_vector, with_payload, &found, &absent));
      missing->insert(missing->end(), absent.begin(), absent.end());
      for (const PointOutput& p : found) RETURN_IF_ERROR(emit(p));
    }
    return absl::OkStatus();
  }

  // A collection whose records could not be read at start (Catalog::Unopened): UNREADABLE,
  // with what its catalog record says and the damage.
  static void DescribeUnopened(const Catalog::Unopened& u, pb::CollectionInfo* out) {
    DescribeConfig(u.config, out);
    out->set_index_generation(u.config.index_generation);
    out->set_state(pb::CollectionInfo::UNREADABLE);
    out->set_damage(std::string(u.why.message()));
  }

  // What a collection's configuration says of it.
  static void DescribeConfig(const CollectionConfig& c, pb::CollectionInfo* out) {
    out->set_name(c.name);
    out->set_uid(c.uid);
    out->set_dimension(c.dim);
    out->set_element_type(ToProto(c.type));
    out->set_metric(ToProto(c.metric));
    out->mutable_index()->set_head_share(c.head_share);
    out->mutable_index()->set_max_replicas(c.max_replicas);
    out->mutable_index()->set_posting_page_limit(c.posting_page_limit);
    out->mutable_index()->set_posting_encoding(ToProto(c.posting_encoding));
    out->mutable_index()->set_build_threshold(c.build_threshold);
    for (const std::string& f : c.text_fields) out->add_text_fields(f);
  }

  void Describe(const Collection& col, pb::CollectionInfo* out) const {
    CollectionConfig c = col.config();
    CollectionStats s = col.Stats();
    DescribeConfig(c, out);
    out->set_count(s.count);
    switch (s.state) {
      case CollectionStats::State::kFlat:
        out->set_state(pb::CollectionInfo::FLAT);
        break;
      case CollectionStats::State::kIndexed:
        out->set_state(pb::CollectionInfo::INDEXED);
        break;
      case CollectionStats::State::kBuilding:
        out->set_state(pb::CollectionInfo::BUILDING);
        break;
      case CollectionStats::State::kDamaged:
        out->set_state(pb::CollectionInfo::DAMAGED);
        break;
    }
    out->set_damage(s.damage);
    out->set_default_max_postings(s.default_max_postings);
    out->set_tuned_recall(s.tuned_recall);
    out->set_text_points(s.text_documents);
    out->set_text_terms(s.text_terms);
    out->set_text_memory_bytes(s.text_memory_bytes);
    pb::HybridDefault* hybrid = out->mutable_hybrid();
    hybrid->set_learned(c.hybrid_weight >= 0);
    hybrid->set_dense_weight(
        static_cast<float>(c.hybrid_weight >= 0 ? c.hybrid_weight : kDefaultDenseWeight));
    hybrid->set_mrr_at_10(c.hybrid_mrr);
    hybrid->set_questions(c.hybrid_questions);
    if (std::optional<BuildStatus> b = builds_->Latest(c.uid)) {
      pb::IndexBuild* ob = out->mutable_build();
      ob->set_id(b->id);
      switch (b->state) {
        case BuildStatus::State::kQueued:
          ob->set_state(pb::IndexBuild::QUEUED);
          break;
        case BuildStatus::State::kRunning:
          ob->set_state(pb::IndexBuild::RUNNING);
          break;
        case BuildStatus::State::kDone:
          ob->set_state(pb::IndexBuild::DONE);
          break;
        case BuildStatus::State::kFailed:
          ob->set_state(pb::IndexBuild::FAILED);
          break;
      }
      ob->set_requested(b->requested);
      ob->set_phase(b->phase);
      ob->set_done(b->done);
      ob->set_total(b->total);
      ob->set_error(b->error);
      ob->set_queued_unix_ms(b->queued_unix_ms);
      ob->set_started_unix_ms(b->started_unix_ms);
      ob->set_finished_unix_ms(b->finished_unix_ms);
    }
    out->set_indexed_vectors(s.indexed_vectors);
    out->set_appended_vectors(s.appended_vectors);
    out->set_heads(s.heads);
    out->set_index_memory_bytes(s.memory_bytes);
    out->set_index_disk_bytes(s.disk_bytes);
    out->set_index_generation(s.generation);
    pb::PostingMaintenance* m = out->mutable_maintenance();
    m->set_added_heads(s.added_heads);
    m->set_retired_heads(s.retired_heads);
    m->set_splits(s.splits);
    m->set_merges(s.merges);
    m->set_rewrites(s.rewrites);
    m->set_seeds(s.seeds);
    m->set_reassigned(s.reassigned);
    pb::TenantExtentStats* e = out->mutable_tenant_extents();
    e->set_flat_bytes(s.tenant_extent_bytes);
    e->set_flat_file_bytes(s.tenant_extent_file_bytes);
    e->set_cell_bytes(s.cell_extent_bytes);
    e->set_found_wrong(s.extents_found_wrong);
  }

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
  std::atomic<int> decoder_calls_{0};
  absl::Status EnterDecoderCall() {
    if (decoder_calls_.fetch_add(1) + 1 <= max_generate_calls_) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server is already serving ", max_generate_calls_,
        " Generate and PrecomputePassageKv calls, its limit (half of --threads, and at most "
        "--generation_max_running + --generation_max_queued); try again later"));
  }
  const std::function<void(const std::shared_ptr<Collection>&)> on_damage_;
  const Clock::time_point started_;
};

// True when `listen` ("host:port") names a loopback host: 127.0.0.0/8, localhost or [::1].
bool IsLoopback(absl::string_view listen) {
  const size_t colon = listen.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? listen : listen.substr(0, colon);
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "[::1]";
}

// How the encoder and the reranker run: the engine's backend, precision and pass size.
absl::StatusOr<gpu::EncoderOptions> EngineOptions(const EmbedOptions& e) {
  gpu::EncoderOptions eo;
  ASSIGN_OR_RETURN(eo.backend, gpu::ParseBackendChoice(e.backend));
  ASSIGN_OR_RETURN(eo.matmul, gpu::ParseMatmulPrecision(e.precision));
  eo.max_batch_tokens = static_cast<int>(e.max_batch_tokens);
  return eo;
}

// The gRPC port's credentials: TLS from the certificate and key files, else plain text.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  auto cert = ReadWholeFile(o.tls_cert_file);
  if (!cert.ok())
    return absl::Status(cert.status().code(), "--tls_cert_file: " + cert.status().ToString());
  auto key = ReadWholeFile(o.tls_key_file);
  if (!key.ok())
    return absl::Status(key.status().code(), "--tls_key_file: " + key.status().ToString());
  if (cert->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_cert_file ", o.tls_cert_file, " holds no PEM certificate"));
  }
  if (key->find("PRIVATE KEY-----") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key_file ", o.tls_key_file, " holds no PEM private key"));
  }
  pair.cert_chain = *cert;
  pair.private_key = *key;
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(ssl);
}

class ServerImpl final : public Server {
 public:
  ~ServerImpl() override { Shutdown(5); }

  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& o) {
    auto s = std::unique_ptr<ServerImpl>(new ServerImpl);
    // Where, checked before anything opens (gRPC would take a port past 65535 modulo 65536).
    if (!IsGrpcSchemeTarget(o.listen)) {
      RETURN_IF_ERROR(ParseHostPort("--listen", o.listen, /*port_zero_ok=*/true).status());
    }
    if (!o.metrics_listen.empty()) {
      RETURN_IF_ERROR(
          ParseHostPort("--metrics_listen", o.metrics_listen, /*port_zero_ok=*/true).status());
    }
    // Who may call.
    if (!o.admin_key.empty()) {
      // Checked now, made once the tenant keys are read (below).
      RETURN_IF_ERROR(CheckApiKey(o.admin_key, "the admin key"));
    } else if (!IsLoopback(o.listen)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to listen on ", o.listen,
          ", beyond loopback, without an admin key: anyone who could connect could read, change "
          "and drop every collection. Set --admin_key_file (or STRATA_ADMIN_KEY), or listen on "
          "127.0.0.1"));
    }
    if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
      return absl::InvalidArgumentError("TLS needs both --tls_cert_file and --tls_key_file");
    }
    MetadataStoreOptions store_options;
    if (o.wal_recovery == "strict") {
      store_options.wal_recovery = WalRecovery::kStrict;
    } else if (o.wal_recovery == "point_in_time") {
      store_options.wal_recovery = WalRecovery::kPointInTime;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--wal_recovery must be strict or point_in_time, got '", o.wal_recovery, "'"));
    }
    // A supervisor's restart right after a kill -9 can find the old process still holding the
    // directory's lock while the kernel tears it down (seen: ~0.5 s for a large one).
    store_options.lock_wait = std::chrono::seconds(10);
    CollectionOptions collection_options;
    collection_options.payload_text = PayloadText;  // the lexical index reads Payload.text
    ASSIGN_OR_RETURN(s->catalog_, Catalog::Open(o.data_dir, collection_options, store_options));
    ASSIGN_OR_RETURN(s->keys_, TenantKeys::Open(s->catalog_->store()));
    // Keys of a collection no longer listed: its drop was committed, and the run stopped before
    // it revoked them (DropCollection revokes them just after the drop's commit). They open
    // nothing; they go now.
    {
      absl::flat_hash_set<std::string> uids;
      for (const auto& c : s->catalog_->List()) uids.insert(c->config().uid);
      // (A collection that could not be opened is still listed: its keys stay.)
      for (const Catalog::Unopened& u : s->catalog_->ListUnopened()) uids.insert(u.config.uid);
      ASSIGN_OR_RETURN(const uint32_t revoked, s->keys_->RevokeUnlisted(uids));
      if (revoked > 0) {
        Log(LogLevel::kWarning,
            "revoked %d tenant keys of collections no longer listed (a drop cut short)", revoked);
      }
    }
    if (!o.admin_key.empty()) {
      ASSIGN_OR_RETURN(s->auth_, ApiKeyAuth::Create(o.admin_key, s->keys_.get()));
    }
    // Opening rebuilt the lexical indexes through batches of payload text: give the heap back.
    malloc_trim(0);
    s->metrics_ = std::make_unique<Metrics>();
    s->builds_ = std::make_unique<BuildQueue>([raw = s.get()] { raw->UpdateDurabilityHealth(); });
    // Collections left over the build threshold by a previous run, and damaged ones (their
    // rebuild is the repair) unless the operator wants to look first.
    for (const auto& c : s->catalog_->List()) {
      const bool damaged = !c->Stats().damage.empty();
      if (c->WantsBuild() && (o.auto_repair || !damaged)) {
        s->builds_->Schedule(c, /*requested=*/false);
      }
    }
    if (!o.embed.model_dir.empty()) {
      ASSIGN_OR_RETURN(gpu::EncoderOptions eo, EngineOptions(o.embed));
      auto encoder = gpu::Encoder::Open(o.embed.model_dir, eo);
      if (!encoder.ok()) {
        return absl::Status(
            encoder.status().code(),
            absl::StrCat("cannot load the embedding model: ", encoder.status().message()));
      }
      s->encoder_ = std::move(encoder).value();
      s->embedder_ = std::make_unique<gpu::EmbedBatcher>(
          s->encoder_.get(), gpu::EmbedBatcherOptions{o.embed.max_batch_tokens,
                                                      absl::Microseconds(o.embed.max_wait_us)});
    }
    if (!o.generate.decoder.empty()) {
      RagOptions ro;
      ro.decoder_path = o.generate.decoder;
      ro.decoder.int8_activations = o.generate.int8_activations;
      ASSIGN_OR_RETURN(ro.decoder.backend, gpu::ParseBackendChoice(o.generate.backend));
      if (o.generate.gpu_kv_mb < 0 || o.generate.gpu_kv_mb > (int64_t{1} << 30)) {
        return absl::InvalidArgumentError("--decoder_gpu_kv_mb must be 0 to 2^30");
      }
      ro.decoder.device_span_bytes = o.generate.gpu_kv_mb << 20;
      ro.generator.max_running = o.generate.max_running;
      ro.generator.max_queued = o.generate.max_queued;
      ro.generator.kv_budget_bytes = static_cast<size_t>(o.generate.kv_budget_mb) << 20;
      ro.generator.kv_budget_name = "the server's KV budget for answers (--generation_kv_mb)";
      ro.kv_ram_bytes = static_cast<size_t>(o.generate.kv_cache_ram_mb) << 20;
      ro.kv_disk_bytes = static_cast<size_t>(o.generate.kv_cache_disk_mb) << 20;
      ro.kv_dir = o.data_dir + "/kv-cache";
      ro.max_tokens = o.generate.max_tokens;
      auto rag = RagEngine::Open(ro);
      if (!rag.ok()) {
        return absl::Status(rag.status().code(),
                            absl::StrCat("cannot load the decoder: ", rag.status().message()));
      }
      s->rag_ = std::move(rag).value();
    }
    // Calls are served on gRPC's sync thread pool: up to `threads` at once (searches wait on the
    // disk, so well above the core count), plus its pollers. Past that gRPC answers
    // RESOURCE_EXHAUSTED, which bounds the threads a burst of clients can make us start.
    const int threads =
        o.threads > 0 ? o.threads
                      : std::max(32, 8 * static_cast<int>(std::thread::hardware_concurrency()));
    const int max_generate_calls =
        std::max(1, std::min(threads / 2, o.generate.max_running + o.generate.max_queued));
    if (!o.embed.reranker_model_dir.empty()) {
      ASSIGN_OR_RETURN(gpu::EncoderOptions eo, EngineOptions(o.embed));
      auto reranker = Reranker::Open(o.embed.reranker_model_dir, eo, std::max(1, threads / 4));
      if (!reranker.ok()) {
        return absl::Status(reranker.status().code(), absl::StrCat("cannot load the reranker: ",
                                                                   reranker.status().message()));
      }
      s->reranker_ = std::move(reranker).value();
    }
    s->memory_ = std::make_unique<MemoryBudget>(o.limits.memory_budget_bytes);
    s->hold_ = std::make_unique<CallMemoryHold>(s->memory_.get());
    s->service_ = std::make_unique<StrataService>(
        s->catalog_.get(), s->metrics_.get(), s->builds_.get(), s->memory_.get(), s->hold_.get(),
        o.limits, s->embedder_.get(), s->rag_.get(), s->reranker_.get(), s->auth_.get(),
        s->keys_.get(), max_generate_calls,
        [raw = s.get(), auto_repair = o.auto_repair](const std::shared_ptr<Collection>& c) {
          raw->UpdateDurabilityHealth();
          if (c == nullptr || !auto_repair || !c->WantsBuild()) return;
          // Once the server's own repair has failed, only a request (or a restart) tries again:
          // a failing search must not start one full rebuild after another.
          const std::optional<BuildStatus> last = raw->builds_->Latest(c->config().uid);
          if (last && last->state == BuildStatus::State::kFailed && !last->requested) return;
          raw->builds_->Schedule(c, /*requested=*/false);
        });
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials(o));
    if (s->auth_ != nullptr && !o.tls_cert_file.empty()) {
      credentials->SetAuthMetadataProcessor(s->auth_->HeaderCheck());
    }
    builder.AddListeningPort(o.listen, credentials, &s->port_);
    // gRPC binds with SO_REUSEPORT by default: a second server on the same port would start and
    // silently take half of the connections. A taken port must be an error instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.RegisterService(s->service_.get());
    s->reflection_v1_ = std::make_unique<ReflectionV1>(std::vector<std::string>{
        pb::Strata::service_full_name(), "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"});
    builder.RegisterService(s->reflection_v1_.get());
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(s->hold_->InterceptorFactory());
    creators.push_back(ParseErrorInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
    builder.SetMaxReceiveMessageSize(static_cast<int>(o.limits.max_message_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(o.limits.max_message_bytes));
    constexpr int kPollers = 2;  // beside the `threads` above
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kPollers);
    grpc::ResourceQuota quota("strata");
    quota.SetMaxThreads(threads + kPollers);
    builder.SetResourceQuota(quota);
    s->server_ = builder.BuildAndStart();
    if (s->server_ == nullptr || s->port_ == 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", o.listen,
          o.tls_cert_file.empty() ? " (address in use or malformed?)"
                                  : " (address in use or malformed, or the TLS certificate and key "
                                    "do not belong together?)"));
    }
    // Health by service name as well as the server's (""), and durability apart (see server.h).
    s->server_->GetHealthCheckService()->SetServingStatus(pb::Strata::service_full_name(), true);
    s->serving_.store(true);
    s->UpdateDurabilityHealth();
    if (s->auth_ == nullptr) {
      Log(LogLevel::kInfo,
          "open mode: no admin key, so every caller may do everything; listening on loopback "
          "only (--admin_key_file or STRATA_ADMIN_KEY to require a key)");
      if (const size_t n = s->keys_->List("").size(); n > 0) {
        Log(LogLevel::kWarning,
            "%d tenant keys exist but confine no one without an admin key: every caller, with "
            "or without one, is the admin. Restart with --admin_key_file (or STRATA_ADMIN_KEY) "
            "to enforce them",
            n);
      }
    } else {
      Log(LogLevel::kInfo,
          "every call must carry the admin key (authorization: Bearer ...); TLS %s",
          o.tls_cert_file.empty() ? "off" : "on");
      if (!IsLoopback(o.listen) && o.tls_cert_file.empty()) {
        Log(LogLevel::kWarning,
            "listening on %s without TLS: the API key and all data travel in clear text "
            "(--tls_cert_file, --tls_key_file)",
            o.listen);
      }
    }
    if (!o.metrics_listen.empty()) {
      s->collector_ = std::make_shared<CatalogCollector>(s->catalog_.get(), s->memory_.get(),
                                                         s->embedder_.get());
      ASSIGN_OR_RETURN(
          s->metrics_http_,
          MetricsHttpServer::Start(o.metrics_listen, {s->metrics_->registry(), s->collector_}));
    }
    // The metrics address as bound (a requested port 0 became a real one).
    std::string metrics = "off";
    if (s->metrics_http_ != nullptr) {
      const std::string host = o.metrics_listen.substr(0, o.metrics_listen.rfind(':'));
      metrics = absl::StrCat(host, ":", s->metrics_http_->port(), "/metrics");
    }
    Log(LogLevel::kInfo, "serving Strata gRPC on port %d (data %s, metrics %s)", s->port_,
        o.data_dir, metrics);
    return std::unique_ptr<Server>(std::move(s));
  }

  int port() const override { return port_; }

  // kDurabilityHealth is NOT_SERVING while acknowledged writes were dropped at start (a damaged
  // WAL opened point-in-time) or a collection is damaged; called at start and after each build.
  void UpdateDurabilityHealth() {
    // One update at a time, from the reading to the writing: a handler thread and the build
    // thread must not write their readings in the wrong order.
    MutexLock lock(&health_mu_);
    if (!serving_.load()) return;
    bool durable = !catalog_->store()->recovery().damaged && catalog_->ListUnopened().empty();
    for (const auto& c : catalog_->List()) {
      // `damage` stays set while a repair build runs (the state then says BUILDING).
      if (!c->Stats().damage.empty()) durable = false;
    }
    server_->GetHealthCheckService()->SetServingStatus(kDurabilityHealth, durable);
  }

  void Shutdown(double drain_seconds) override {
    if (down_.exchange(true)) return;
    Log(LogLevel::kInfo, "shutting down: draining calls (up to %.0f s)", drain_seconds);
    serving_.store(false);
    if (server_ != nullptr) {
      // Our own drain: gRPC's Shutdown(deadline) also waits on idle client connections (~5 s
      // with gRPC 1.51), so it is called once no call of ours is left.
      server_->GetHealthCheckService()->SetServingStatus(false);
      service_->Drain(Clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000)));
      server_->GetHealthCheckService()->Shutdown();
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
    }
    metrics_http_.reset();
    if (builds_) builds_->Stop();
    embedder_.reset();
    rag_.reset();      // ends running generations (their calls have drained or been cancelled)
    catalog_.reset();  // closes RocksDB: memtables are in the synced WAL already
    Log(LogLevel::kInfo, "shut down cleanly");
  }

 private:
  ServerImpl() = default;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<MemoryBudget> memory_;
  std::unique_ptr<CallMemoryHold> hold_;  // uses memory_; outlives server_'s calls
  std::unique_ptr<BuildQueue> builds_;
  std::unique_ptr<gpu::Encoder> encoder_;
  std::unique_ptr<gpu::EmbedBatcher> embedder_;  // uses encoder_
  std::unique_ptr<Reranker> reranker_;
  std::unique_ptr<TenantKeys> keys_;
  std::unique_ptr<ApiKeyAuth> auth_;
  std::unique_ptr<RagEngine> rag_;
  std::unique_ptr<StrataService> service_;
  std::unique_ptr<ReflectionV1> reflection_v1_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  std::shared_ptr<CatalogCollector> collector_;
  int port_ = 0;
  std::atomic<bool> serving_{false};  // server_ is up (the build thread may update health)
  Mutex health_mu_;
  std::atomic<bool> down_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  return ServerImpl::Start(options);
}

}  // namespace strata
