// StrataService's searches (vector, text, hybrid; single and batched), hybrid tuning and embedding
// (strata_service.h).

#include <chrono>
#include <cmath>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "base/public_message.h"
#include "gpu/wordpiece.h"
#include "grpcpp/grpcpp.h"
#include "index/hybrid_tuner.h"
#include "proto/convert.h"
#include "proto/strata.grpc.pb.h"
#include "service/api_key_auth.h"
#include "service/call_budget.h"
#include "service/reranker.h"
#include "service/search_plan.h"
#include "service/strata_service.h"
#include "service/vector_convert.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::service_internal {
namespace {

// The fewest wire bytes `hits` hits of one query can take: each a field of its response (tag and
// length, 2 bytes), holding its id's tag and varint - the ids are distinct, so one may be 0 (no
// bytes), 127 take one varint byte and the rest two or more - and nothing else (a distance of
// 0 takes none).
uint64_t FewestHitBytes(uint64_t hits) {
  if (hits == 0) return 0;
  const uint64_t one_byte = std::min<uint64_t>(hits - 1, 127);
  return 2 * hits + 2 * one_byte + 3 * (hits - 1 - one_byte);
}

// The most wire bytes a SearchResponse takes beside its hits, as a field of a batch's response:
// its stats (six uint32 fields and a uint64, with tags: 47 bytes and 2 of framing), mode and
// fusion (2 each), dense_weight (5), reranked (6), and its own tag and length (6).
constexpr uint64_t kMostSearchResponseBytes = 49 + 2 + 2 + 5 + 6 + 6;

}  // namespace

grpc::Status StrataService::Search(grpc::ServerContext* ctx, const pb::SearchRequest* req,
                                   pb::SearchResponse* resp) {
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
        return WithPublicMessage(
            absl::FailedPreconditionError(
                "rerank needs the server's cross-encoder (strata-server --reranker_model)"),
            "rerank needs a cross-encoder, which this server has not: rerank is off here");
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

grpc::Status StrataService::SearchBatch(grpc::ServerContext* ctx, const pb::SearchBatchRequest* req,
                                        pb::SearchBatchResponse* resp) {
  return Run(
      "SearchBatch", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
        ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
        const std::shared_ptr<Collection>& col = target.col;
        if (req->queries_size() > 0 && req->texts_size() > 0) {
          return absl::InvalidArgumentError("set either 'queries' or 'texts', not both");
        }
        ASSIGN_OR_RETURN(SearchParams params, Params(req->k(), req->params(), *col));
        const bool text = req->texts_size() > 0;
        ASSIGN_OR_RETURN(
            SearchPlan plan,
            Plan(*col, req->mode(), req->fusion(),
                 req->has_dense_weight() ? std::optional<float>(req->dense_weight()) : std::nullopt,
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
        uint64_t fewest_hits = UINT64_MAX;
        for (int i = 0; i < n; ++i) {
          if (ctx->IsCancelled()) return absl::CancelledError("the client went away");
          pb::SearchResponse* r = resp->add_results();
          absl::Status s =
              text ? SearchTextOne(*col, plan, req->texts(i), embedded[static_cast<size_t>(i)],
                                   req->k(), params, emit, &budget, r)
                   : SearchOne(*col, req->queries(i), req->k(), params, emit, &budget, r);
          s = Damaged(col, s);
          if (!s.ok()) {
            return WithPrefix(absl::StrCat("query ", i, ": "), s);
          }
          if (text && plan.mode != SearchMode::kLexical) AddEmbedTime(t0, t1, r->mutable_stats());
          // Vector queries over one scope come back with as many hits each, min(k, what the
          // scope holds), short only where the index's widened budget still reads fewer (a
          // tenant's view, deletes under way): the fewest hits of the first ones, at the fewest
          // bytes such hits can take, tell early that the batch cannot fit. (A lexical query's
          // hits go from none to k.)
          if (!text) {
            fewest_hits = std::min<uint64_t>(fewest_hits, static_cast<uint64_t>(r->hits_size()));
            RETURN_IF_ERROR(budget.CheckFloor(
                static_cast<uint64_t>(i) + 1, static_cast<uint64_t>(n), FewestHitBytes(fewest_hits),
                "queries' answers", "send fewer queries per call or ask for a smaller k"));
          }
        }
        return absl::OkStatus();
      });
}

grpc::Status StrataService::TuneHybrid(grpc::ServerContext* ctx, const pb::TuneHybridRequest* req,
                                       pb::TuneHybridResponse* resp) {
  return Run("TuneHybrid", ctx, *req, [&](CallBudget&) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    if (req->questions_size() == 0) {
      return absl::InvalidArgumentError("no questions: TuneHybrid needs labelled questions");
    }
    if (col->text_documents() == 0) {
      return absl::FailedPreconditionError(absl::StrCat("collection '", req->collection(),
                                                        "' has no payload text: nothing to fuse"));
    }
    for (int i = 0; i < req->questions_size(); ++i) {
      if (req->questions(i).relevant_ids_size() > kMaxRelevantIds) {
        return absl::InvalidArgumentError(
            absl::StrCat("question ", i, " names ", req->questions(i).relevant_ids_size(),
                         " relevant ids; the limit is ", kMaxRelevantIds));
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
    absl::StatusOr<HybridTuning> tuned = TuneHybridWeight(*col, questions, params, Abandoned(ctx));
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

grpc::Status StrataService::Embed(grpc::ServerContext* ctx, const pb::EmbedRequest* req,
                                  pb::EmbedResponse* resp) {
  // Any caller: it computes, and reads no stored data; a tenant key's call counts against its
  // tenants' request rates.
  return Run("Embed", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
    if (!caller.admin) RETURN_IF_ERROR(AdmitKey(caller.key));
    std::vector<std::string> texts(req->texts().begin(), req->texts().end());
    RETURN_IF_ERROR(CheckTexts(texts, /*need_model=*/true, /*queries=*/false));
    gpu::EmbedStats st;
    ASSIGN_OR_RETURN(std::vector<float> v, embedder_->Embed(texts, &st, Abandoned(ctx)));
    const int dim = embedder_->encoder().dimension();
    for (size_t i = 0; i < texts.size(); ++i) {
      pb::Vector* out = resp->add_vectors();
      out->mutable_values()->Add(v.begin() + static_cast<ptrdiff_t>(i * dim),
                                 v.begin() + static_cast<ptrdiff_t>((i + 1) * dim));
      RETURN_IF_ERROR(budget.AddResponse(CallBudget::EmbeddedBytes(out->ByteSizeLong()),
                                         absl::StrCat("text ", i), "send fewer texts per call"));
    }
    resp->set_model(ModelName());
    resp->set_dimension(static_cast<uint32_t>(dim));
    resp->set_tokens(static_cast<uint64_t>(st.tokens));
    resp->set_truncated(static_cast<uint32_t>(st.truncated));
    return absl::OkStatus();
  });
}

std::string StrataService::ModelName() const {
  std::string dir = embedder_->encoder().model_dir();
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

absl::Status StrataService::CheckTexts(const std::vector<std::string>& texts, bool need_model,
                                       bool queries) const {
  if (need_model && embedder_ == nullptr) {
    return WithPublicMessage(
        absl::FailedPreconditionError(
            "this server has no embedding model: start strata-server with --model_dir "
            "(e.g. models/all-minilm-l6-v2, fetched by tools/fetch-models.sh)"),
        "this server has no embedding model, which this call needs");
  }
  if (texts.empty()) return absl::InvalidArgumentError("empty batch: no texts");
  if (texts.size() > limits_.max_texts) {
    return absl::ResourceExhaustedError(
        absl::StrCat(texts.size(), " texts in one request; the limit is ", limits_.max_texts,
                     " (strata-server --max_texts): send them in several requests"));
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("text ", i, " is empty"));
    }
    if (queries && gpu::IsBlankText(texts[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("text ", i, " holds no words (only white space or invisible characters)"));
    }
    if (texts[i].size() > limits_.max_text_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("text ", i, " has ", texts[i].size(), " bytes; the limit is ",
                       limits_.max_text_bytes, " (strata-server --max_text_bytes)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pb::Vector>> StrataService::EmbedQueries(
    grpc::ServerContext* ctx, const Collection& col, const std::vector<std::string>& texts) {
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

void StrataService::AddEmbedTime(Clock::time_point since, Clock::time_point until,
                                 pb::SearchStats* st) {
  const auto us = static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(until - since).count());
  st->set_embed_micros(us);
  st->set_server_micros(st->server_micros() + us);
}

absl::StatusOr<SearchParams> StrataService::Params(uint32_t k, const pb::SearchParams& p,
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

absl::StatusOr<SearchPlan> StrataService::Plan(const Collection& col, pb::SearchMode mode,
                                               pb::Fusion fusion, std::optional<float> dense_weight,
                                               bool text_query) const {
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

absl::Status StrataService::SearchOne(const Collection& col, const pb::Vector& query, uint32_t k,
                                      const SearchParams& params, const Emit& emit,
                                      CallBudget* budget, pb::SearchResponse* resp) {
  auto t0 = Clock::now();
  CollectionConfig cfg = col.config();
  std::vector<uint8_t> q;
  RETURN_IF_ERROR(VectorBytes(query, cfg.type, cfg.dim, &q));
  std::vector<Hit> hits;
  strata::SearchStats st;
  std::shared_ptr<const ReadMoment> moment;  // (wanted only for what the hits bring)
  const bool contents = emit.with_payload || emit.with_vector;
  RETURN_IF_ERROR(col.Search(emit.scope, VectorView{cfg.type, q}, k, params, &hits, &st,
                             contents ? &moment : nullptr));
  resp->set_mode(pb::DENSE);
  RETURN_IF_ERROR(EmitHits(
      col, hits.size(),
      [&](size_t i, pb::Hit* out) {
        out->set_id(hits[i].id);
        out->set_distance(hits[i].distance);
      },
      emit, moment.get(), budget, resp));
  SetStats(st, t0, resp->mutable_stats());
  return absl::OkStatus();
}

absl::Status StrataService::SearchTextOne(const Collection& col, const SearchPlan& plan,
                                          const std::string& text, const pb::Vector& query,
                                          uint32_t k, const SearchParams& params, const Emit& emit,
                                          CallBudget* budget, pb::SearchResponse* resp) {
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
  std::shared_ptr<const ReadMoment> moment;  // (wanted only for what the hits bring)
  const bool contents = emit.with_payload || emit.with_vector;
  RETURN_IF_ERROR(
      col.SearchText(emit.scope, search, k, params, &hits, &st, contents ? &moment : nullptr));
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
      emit, moment.get(), budget, resp));
  SetStats(st, t0, resp->mutable_stats());
  return absl::OkStatus();
}

void StrataService::SetStats(const strata::SearchStats& st, Clock::time_point t0,
                             pb::SearchStats* s) {
  s->set_postings_read(st.postings_read);
  s->set_pages_read(st.pages_read);
  s->set_bytes_read(st.bytes_read);
  s->set_entries_scanned(st.entries_scanned);
  s->set_server_micros(static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
}

absl::Status StrataService::EmitHits(const Collection& col, size_t n,
                                     absl::FunctionRef<void(size_t, pb::Hit*)> fill,
                                     const Emit& emit, const ReadMoment* moment, CallBudget* budget,
                                     pb::SearchResponse* resp) {
  const CollectionConfig cfg = col.config();
  const char* how = emit.rerank  ? "ask for a smaller rerank (its candidates' payloads are read)"
                    : emit.batch ? "send fewer queries per call or ask for a smaller k, or leave "
                                   "out with_vector/with_payload"
                                 : "ask for a smaller k, or leave out with_vector/with_payload";
  RETURN_IF_ERROR(budget->AddResponse(kMostSearchResponseBytes, "the answer's statistics", how));
  for (size_t i = 0; i < n; ++i) {
    pb::Hit* out = resp->add_hits();
    fill(i, out);
    RETURN_IF_ERROR(budget->AddResponse(CallBudget::EmbeddedBytes(out->ByteSizeLong()),
                                        absl::StrCat("hit ", i), how));
  }
  if (!emit.with_payload && !emit.with_vector) return absl::OkStatus();
  std::vector<uint64_t> ids, missing;
  ids.reserve(n);
  for (const pb::Hit& h : resp->hits()) ids.push_back(h.id());
  // Points come in hit order, as they were at the search's moment; a hit the scope lost since
  // (a revoke, or a delete in a tenant's view) keeps its id and scores only.
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
        const uint64_t bare = CallBudget::EmbeddedBytes(out->ByteSizeLong());
        if (emit.with_vector) BytesToVector(p.vector, cfg.type, out->mutable_vector());
        if (emit.with_payload && !p.payload.empty() &&
            !out->mutable_payload()->ParseFromString(p.payload)) {
          return absl::DataLossError(absl::StrCat("payload of id ", p.id, " is corrupt"));
        }
        return budget->AddResponse(CallBudget::EmbeddedBytes(out->ByteSizeLong()) - bare,
                                   absl::StrCat("hit ", e - 1), how);
      },
      moment);
}

}  // namespace strata::service_internal
