// StrataService's RAG calls: Generate and PrecomputePassageKv (strata_service.h).

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata.grpc.pb.h"
#include "service/api_key_auth.h"
#include "service/call_budget.h"
#include "service/generate_call.h"
#include "service/search_plan.h"
#include "service/strata_service.h"
#include "storage/status_macros.h"

namespace strata::service_internal {

grpc::Status StrataService::Generate(grpc::ServerContext* ctx, const pb::GenerateRequest* req,
                                     grpc::ServerWriter<pb::GenerateResponse>* writer) {
  return Run("Generate", ctx, *req, [&](CallBudget& budget, const Caller& caller) -> absl::Status {
    // Who calls, first: a key confined to other tenants learns nothing else of this server.
    ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
    if (rag_ == nullptr) return ServeGenerate(*req, nullptr, {}, ctx, writer);  // names --decoder
    absl::Cleanup leave = [this] { decoder_calls_.fetch_sub(1); };
    RETURN_IF_ERROR(EnterDecoderCall());
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
      // A question is plain text: its double quotes are not the search's phrase syntax (a
      // quoted saying of stop words would otherwise filter every passage away).
      std::string text = req->question();
      std::replace(text.begin(), text.end(), '"', ' ');
      RETURN_IF_ERROR(
          Damaged(col, SearchTextOne(*col, plan, text, q[0], k, params, emit, &budget, &found)));
      out.mode = found.mode();
      out.hits.assign(found.hits().begin(), found.hits().end());
      return out;
    };
    return ServeGenerate(*req, rag_, retrieve, ctx, writer);
  });
}

grpc::Status StrataService::PrecomputePassageKv(grpc::ServerContext* ctx,
                                                const pb::PrecomputePassageKvRequest* req,
                                                pb::PrecomputePassageKvResponse* resp) {
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

std::function<bool()> StrataService::Abandoned(grpc::ServerContext* ctx) {
  return [ctx] { return ctx->IsCancelled(); };
}

}  // namespace strata::service_internal
