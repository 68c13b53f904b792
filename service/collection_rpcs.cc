// StrataService's collection calls: create, drop, list, describe, build, and the points' upserts,
// deletes, gets and counts (strata_service.h).

#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "base/json_error.h"
#include "google/protobuf/io/coded_stream.h"
#include "grpcpp/grpcpp.h"
#include "index/catalog.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "proto/strata.grpc.pb.h"
#include "service/api_key_auth.h"
#include "service/build_queue.h"
#include "service/call_budget.h"
#include "service/strata_service.h"
#include "service/vector_convert.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::service_internal {
namespace {

pb::CollectionInfo::IndexState StateOf(CollectionStats::State state) {
  switch (state) {
    case CollectionStats::State::kFlat:
      return pb::CollectionInfo::FLAT;
    case CollectionStats::State::kIndexed:
      return pb::CollectionInfo::INDEXED;
    case CollectionStats::State::kBuilding:
      return pb::CollectionInfo::BUILDING;
    case CollectionStats::State::kDamaged:
      return pb::CollectionInfo::DAMAGED;
  }
  return pb::CollectionInfo::INDEX_STATE_UNSPECIFIED;
}

}  // namespace

grpc::Status StrataService::CreateCollection(grpc::ServerContext* ctx,
                                             const pb::CreateCollectionRequest* req,
                                             pb::CollectionInfo* resp) {
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

grpc::Status StrataService::DropCollection(grpc::ServerContext* ctx,
                                           const pb::DropCollectionRequest* req,
                                           pb::DropCollectionResponse*) {
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

grpc::Status StrataService::ListCollections(grpc::ServerContext* ctx,
                                            const pb::ListCollectionsRequest* req,
                                            pb::ListCollectionsResponse* resp) {
  return Run("ListCollections", ctx, *req, [&](CallBudget&) {
    for (const auto& c : catalog_->List()) Describe(*c, resp->add_collections());
    for (const Catalog::Unopened& u : catalog_->ListUnopened()) {
      DescribeUnopened(u, resp->add_collections());
    }
    return absl::OkStatus();
  });
}

grpc::Status StrataService::DescribeCollection(grpc::ServerContext* ctx,
                                               const pb::DescribeCollectionRequest* req,
                                               pb::CollectionInfo* resp) {
  return Run("DescribeCollection", ctx, *req,
             [&](CallBudget&, const Caller& caller) -> absl::Status {
               ASSIGN_OR_RETURN(Target target, FindFor(caller, req->name(), req->tenant()));
               if (target.scope.whole()) {
                 Describe(*target.col, resp);
                 return absl::OkStatus();
               }
               // A tenant's view: what its writes must match, and what it sees.
               DescribeConfig(target.col->config(), resp);
               resp->set_tenant(std::string(target.scope.tenant));
               ASSIGN_OR_RETURN(const uint64_t count, target.col->Count(target.scope));
               resp->set_count(count);
               return absl::OkStatus();
             });
}

grpc::Status StrataService::BuildIndex(grpc::ServerContext* ctx, const pb::BuildIndexRequest* req,
                                       pb::CollectionInfo* resp) {
  return Run("BuildIndex", ctx, *req, [&](CallBudget&) -> absl::Status {
    ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
    if (col->Count() == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("collection '", req->collection(), "' is empty: nothing to index"));
    }
    // Recorded first: a stop before the build is done leaves it to the next start.
    if (absl::Status recorded = col->RequestBuild(); !recorded.ok()) {
      return absl::Status(recorded.code(),
                          absl::StrCat("the build request could not be recorded, and no build was "
                                       "queued: ",
                                       recorded.message()));
    }
    if (builds_->Schedule(col, /*requested=*/true) == 0) {
      return absl::UnavailableError(
          "the server is shutting down (the build is recorded: the next start runs it)");
    }
    Describe(*col, resp);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::Upsert(grpc::ServerContext* ctx, const pb::UpsertRequest* req,
                                   pb::UpsertResponse* resp) {
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
        if (parsed.is_discarded()) {
          s = absl::InvalidArgumentError(
              absl::StrCat("payload json does not parse: ", JsonSyntaxError(p.payload().json())));
        } else if (!parsed.is_object()) {
          s = absl::InvalidArgumentError(
              absl::StrCat("payload json is ", parsed.type_name(), ", not a JSON object"));
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
    ScheduleWantedBuild(col);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::Delete(grpc::ServerContext* ctx, const pb::DeleteRequest* req,
                                   pb::DeleteResponse* resp) {
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
    if (deleted > 0) ScheduleWantedBuild(target.col);
    return absl::OkStatus();
  });
}

grpc::Status StrataService::Get(grpc::ServerContext* ctx, const pb::GetRequest* req,
                                pb::GetResponse* resp) {
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
              CallBudget::EmbeddedBytes(out->ByteSizeLong()),
              absl::StrCat("point ", row++, " (id ", p.id, ")"),
              "get fewer ids per call, or leave out with_vector/with_payload");
        }));
    uint64_t missing_bytes = 0;
    for (uint64_t id : missing) {
      resp->add_missing_ids(id);
      missing_bytes += google::protobuf::io::CodedOutputStream::VarintSize64(id);
    }
    if (!missing.empty()) {  // a packed field: one tag and length for them all
      RETURN_IF_ERROR(budget.AddResponse(CallBudget::EmbeddedBytes(missing_bytes),
                                         "the ids not found", "get fewer ids per call"));
    }
    return absl::OkStatus();
  });
}

grpc::Status StrataService::Count(grpc::ServerContext* ctx, const pb::CountRequest* req,
                                  pb::CountResponse* resp) {
  return Run("Count", ctx, *req, [&](CallBudget&, const Caller& caller) -> absl::Status {
    ASSIGN_OR_RETURN(Target target, FindFor(caller, req->collection(), req->tenant()));
    ASSIGN_OR_RETURN(uint64_t count, target.col->Count(target.scope));
    resp->set_count(count);
    return absl::OkStatus();
  });
}

void StrataService::LogCallError(const char* rpc, bool admin, const absl::Status& s,
                                 const absl::Status& told) {
  const bool internal =
      s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kDataLoss;
  if (s.ok() || (!internal && told.message() == s.message())) return;
  uint64_t dropped = 0;
  if (!(admin ? admin_error_log_ : tenant_error_log_).Admit(absl::Now(), &dropped)) return;
  if (dropped > 0) {
    Log(LogLevel::kWarning, "%llu errors of %s calls were not logged since the last one",
        static_cast<unsigned long long>(dropped), admin ? "the admin's" : "tenant keys'");
  }
  const std::string caller_told =
      told.message() == s.message()
          ? std::string()
          : absl::StrCat(" (a tenant key's caller was told \"", told.message(), "\")");
  Log(internal ? LogLevel::kError : LogLevel::kWarning, "%s: %s%s", rpc,
      s.ToString(absl::StatusToStringMode::kWithNoExtraData), caller_told);
}

absl::Status StrataService::FetchPoints(const Collection& col, const Scope& scope,
                                        absl::Span<const uint64_t> ids, bool with_vector,
                                        bool with_payload, std::vector<uint64_t>* missing,
                                        absl::FunctionRef<absl::Status(const PointOutput&)> emit,
                                        const ReadMoment* moment) const {
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
        col.Get(scope, ids.subspan(at, chunk), with_vector, with_payload, &found, &absent, moment));
    missing->insert(missing->end(), absent.begin(), absent.end());
    for (const PointOutput& p : found) RETURN_IF_ERROR(emit(p));
  }
  return absl::OkStatus();
}

void StrataService::DescribeUnopened(const Catalog::Unopened& u, pb::CollectionInfo* out) {
  DescribeConfig(u.config, out);
  out->set_index_generation(u.config.index_generation);
  out->set_state(pb::CollectionInfo::UNREADABLE);
  out->set_damage(std::string(u.why.message()));
}

void StrataService::DescribeConfig(const CollectionConfig& c, pb::CollectionInfo* out) {
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

void StrataService::Describe(const Collection& col, pb::CollectionInfo* out) const {
  CollectionConfig c = col.config();
  CollectionStats s = col.Stats();
  DescribeConfig(c, out);
  out->set_count(s.count);
  out->set_state(StateOf(s.state));
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
    ob->set_error_code(static_cast<uint32_t>(b->error_code));
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

}  // namespace strata::service_internal
