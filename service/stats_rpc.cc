// StrataService's Stats call (strata_service.h).

#include <chrono>

#include "gpu/embed_batcher.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata.grpc.pb.h"
#include "service/call_budget.h"
#include "service/strata_service.h"

namespace strata::service_internal {

grpc::Status StrataService::Stats(grpc::ServerContext* ctx, const pb::StatsRequest* req,
                                  pb::StatsResponse* resp) {
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
    resp->set_writes_refused(catalog_->store()->WritesRefused());
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
      out->set_cache_entries(c.entries);
    }
    return absl::OkStatus();
  });
}

}  // namespace strata::service_internal
