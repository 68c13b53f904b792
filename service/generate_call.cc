#include "service/generate_call.h"

#include <chrono>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/public_message.h"
#include "gpu/wordpiece.h"
#include "nlohmann/json.hpp"
#include "storage/status_macros.h"

namespace strata {
namespace {

namespace pb = ::strata::v1;
using Clock = std::chrono::steady_clock;

double Ms(double seconds) { return seconds * 1000.0; }

absl::Status NoDecoder() {
  // (How to start the server is for its administrator, not a tenant's caller.)
  return WithPublicMessage(
      absl::FailedPreconditionError(
          "this server has no decoder: start strata-server with --decoder=PATH.gguf "
          "(tools/fetch-models.sh fetches SmolLM2-135M-Instruct)"),
      "this server has no decoder: Generate is off here");
}

absl::StatusOr<gpu::KvFormat> CachedFormat(pb::KvCacheMode mode) {
  switch (mode) {
    case pb::CACHED_F16:
      return gpu::KvFormat::kF16;
    case pb::CACHED_INT4:
      return gpu::KvFormat::kInt4;
    case pb::KV_CACHE_MODE_UNSPECIFIED:
    case pb::CACHED_INT8:
      return gpu::KvFormat::kInt8;
    case pb::FULL_PREFILL:
      return absl::InvalidArgumentError("FULL_PREFILL caches nothing: name a CACHED_ mode");
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown cache_mode ", mode));
  }
}

}  // namespace

std::string RagPassageText(const pb::Payload& p) {
  if (p.text().empty()) return "";
  if (!p.json().empty()) {
    const auto j = nlohmann::json::parse(p.json(), nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("title") && j["title"].is_string()) {
      const std::string title = j["title"].get<std::string>();
      if (!title.empty()) return absl::StrCat(title, "\n", p.text());
    }
  }
  return p.text();
}

namespace {

absl::Status ToRagRequest(const pb::GenerateRequest& req, int max_tokens, RagRequest* r) {
  const pb::GenerationParams& g = req.params();
  r->collection = req.collection();
  r->question = req.question();
  r->instructions = req.system();
  r->max_tokens = g.max_tokens() == 0 ? kDefaultGenerateTokens : static_cast<int>(g.max_tokens());
  if (g.max_tokens() > static_cast<uint32_t>(max_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat("params.max_tokens ", g.max_tokens(),
                                                   " is over the server's limit of ", max_tokens,
                                                   " (--max_generation_tokens)"));
  }
  r->sampling.temperature = g.temperature();
  r->sampling.top_k = static_cast<int>(std::min<uint32_t>(g.top_k(), 1u << 20));
  r->sampling.top_p = g.has_top_p() ? g.top_p() : 1.0f;
  r->sampling.repetition_penalty = g.has_repetition_penalty() ? g.repetition_penalty() : 1.0f;
  r->sampling.seed = g.seed();
  RETURN_IF_ERROR(gpu::CheckSamplingParams(r->sampling));
  if (g.stop_size() > kMaxStops) {
    return absl::ResourceExhaustedError(
        absl::StrCat(g.stop_size(), " stop strings; at most ", kMaxStops));
  }
  for (const std::string& s : g.stop()) {
    if (s.empty()) return absl::InvalidArgumentError("an empty stop string");
    if (s.size() > kMaxStopBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("a stop string has ", s.size(), " bytes; at most ", kMaxStopBytes));
    }
    r->stops.push_back(s);
  }
  if (req.cache_mode() == pb::FULL_PREFILL) {
    r->full_prefill = true;
  } else {
    ASSIGN_OR_RETURN(r->format, CachedFormat(req.cache_mode()));
  }
  if (req.has_recompute_ratio()) r->recompute_ratio = req.recompute_ratio();
  if (req.has_recompute_first()) r->recompute_first = req.recompute_first();
  return absl::OkStatus();
}

}  // namespace

absl::Status ServePrecompute(const pb::PrecomputePassageKvRequest& req, RagEngine* rag,
                             const FetchFn& fetch, grpc::ServerContext* ctx,
                             pb::PrecomputePassageKvResponse* resp) {
  if (rag == nullptr) return NoDecoder();
  ASSIGN_OR_RETURN(const gpu::KvFormat format, CachedFormat(req.cache_mode()));
  // Before the passages are read: what is deleted or dropped after is not kept.
  const uint64_t cache_epoch = rag->cache().epoch();
  std::vector<std::pair<uint64_t, pb::Payload>> found;
  std::vector<uint64_t> missing;
  RETURN_IF_ERROR(fetch(&found, &missing));
  for (uint64_t id : missing) resp->add_missing_ids(id);
  std::vector<RagPassage> passages;
  PrecomputeReport report;
  absl::flat_hash_set<uint64_t> seen;
  for (const auto& [id, payload] : found) {
    if (!seen.insert(id).second) continue;  // an id given twice is made once, counted once
    std::string text = RagPassageText(payload);
    if (text.empty()) {
      ++report.without_text;
      continue;
    }
    passages.push_back({id, std::move(text)});
  }
  const absl::Status s = rag->Precompute(
      req.collection(), passages, format, cache_epoch, [ctx] { return ctx->IsCancelled(); },
      &report);
  resp->set_computed(report.computed);
  resp->set_already_cached(report.already_cached);
  resp->set_without_text(report.without_text);
  resp->set_bytes(report.bytes);
  resp->set_evictions(report.evictions);
  resp->set_stale(report.stale);
  const gpu::PassageKvCacheStats c = rag->cache().stats();
  resp->set_cache_bytes(c.ram_bytes + c.disk_bytes);
  resp->set_cache_capacity_bytes(rag->cache().capacity());
  return s;
}

absl::Status ServeGenerate(const pb::GenerateRequest& req, RagEngine* rag,
                           const RetrieveFn& retrieve, grpc::ServerContext* ctx,
                           grpc::ServerWriter<pb::GenerateResponse>* writer) {
  const auto t0 = Clock::now();
  if (rag == nullptr) return NoDecoder();
  if (gpu::IsBlankText(req.question())) {
    return absl::InvalidArgumentError(
        "no question (empty, or only white space or invisible characters)");
  }
  const uint32_t k = req.k() == 0 ? kDefaultGeneratePassages : req.k();
  if (k > kMaxGeneratePassages) {
    return absl::InvalidArgumentError(
        absl::StrCat("k = ", k, " passages; at most ", kMaxGeneratePassages));
  }
  RagRequest r;
  RETURN_IF_ERROR(ToRagRequest(req, rag->max_tokens(), &r));
  RETURN_IF_ERROR(rag->Check(r));  // before any retrieval
  // Retrieval, with the cache's epoch read before it (RagRequest::cache_epoch).
  r.cache_epoch = rag->cache().epoch();
  ASSIGN_OR_RETURN(Retrieved found, retrieve(k));
  const double retrieval_s = std::chrono::duration<double>(Clock::now() - t0).count();
  pb::GenerateResponse summary_msg;
  pb::GenerateSummary* summary = summary_msg.mutable_summary();
  for (const pb::Hit& h : found.hits) {
    std::string text = RagPassageText(h.payload());
    if (text.empty()) continue;  // a point without text has nothing to read
    pb::Citation* c = summary->add_citations();
    c->set_number(static_cast<uint32_t>(r.passages.size() + 1));
    c->set_id(h.id());
    c->set_score(h.has_scores() ? h.scores().score() : -h.distance());
    *c->mutable_payload() = h.payload();
    r.passages.push_back({h.id(), std::move(text)});
  }
  if (r.passages.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "retrieval (", pb::SearchMode_Name(found.mode),
        ") found no passage for this question: nothing to answer from (a LEXICAL search needs a "
        "word of the question in the passages)"));
  }
  // Generation, streamed.
  RagReport report;
  const absl::Status s = rag->Answer(
      r,
      [writer](const std::string& text) {
        pb::GenerateResponse m;
        m.set_text(text);
        return writer->Write(m);
      },
      [ctx] { return ctx->IsCancelled(); }, &report);
  RETURN_IF_ERROR(s);
  summary->set_finish_reason(report.finish_reason);
  summary->set_retrieval_mode(found.mode);
  summary->set_model(rag->model_name());
  pb::GenerationUsage* u = summary->mutable_usage();
  u->set_prompt_tokens(static_cast<uint32_t>(report.prompt_tokens));
  u->set_cached_tokens(static_cast<uint32_t>(report.cached_tokens));
  u->set_recomputed_tokens(static_cast<uint32_t>(report.recomputed_tokens));
  u->set_generated_tokens(static_cast<uint32_t>(report.generated_tokens));
  u->set_passages_cut(static_cast<uint32_t>(report.passages_cut));
  pb::GenerationTimings* t = summary->mutable_timings();
  t->set_retrieval_ms(static_cast<float>(Ms(retrieval_s)));
  t->set_embedding_ms(static_cast<float>(Ms(found.embed_seconds)));
  t->set_kv_ms(static_cast<float>(Ms(report.kv_seconds)));
  t->set_queue_ms(static_cast<float>(Ms(report.queue_seconds)));
  t->set_prefill_ms(static_cast<float>(Ms(report.prefill_seconds)));
  // The generator times from its queue (entries it made included); before it came retrieval
  // and the lookups of the passages' entries.
  t->set_ttft_ms(
      static_cast<float>(Ms(retrieval_s + report.lookup_seconds + report.first_token_seconds)));
  if (report.generated_tokens > 1) {
    t->set_per_token_ms(
        static_cast<float>(Ms(report.decode_seconds / (report.generated_tokens - 1))));
  }
  t->set_total_ms(static_cast<float>(Ms(std::chrono::duration<double>(Clock::now() - t0).count())));
  pb::KvCacheReport* c = summary->mutable_cache();
  if (!r.full_prefill) c->set_format(std::string(gpu::KvFormatName(r.format)));
  c->set_ram_hits(static_cast<uint32_t>(report.ram_hits));
  c->set_disk_hits(static_cast<uint32_t>(report.disk_hits));
  c->set_misses(static_cast<uint32_t>(report.misses));
  c->set_bytes_read(report.bytes_read);
  c->set_bytes(report.cache_bytes);
  if (report.finish_reason == "cancelled") {
    return absl::CancelledError("the generation was cancelled");
  }
  if (!writer->Write(summary_msg)) return absl::CancelledError("the client went away");
  return absl::OkStatus();
}

}  // namespace strata
