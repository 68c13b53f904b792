#include "service/metrics.h"

#include "absl/status/status.h"
#include "service/rag_engine.h"

namespace strata {

void Metrics::Record(const char* rpc, const grpc::Status& status, double seconds) {
  RpcCounters& c = counters(rpc);
  c.requests.fetch_add(1, std::memory_order_relaxed);
  if (!status.ok()) c.errors.fetch_add(1, std::memory_order_relaxed);
  c.micros.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  // gRPC and absl share the canonical code numbers.
  std::string code = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  requests_.Add({{"method", rpc}, {"code", code}}).Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  latency_.Add({{"method", rpc}}, kBuckets).Observe(seconds);
}

void Metrics::Fill(v1::StatsResponse* out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, c] : counters_) {
    v1::RpcStats* r = out->add_rpcs();
    r->set_rpc(name);
    r->set_requests(c->requests.load());
    r->set_errors(c->errors.load());
    uint64_t n = c->requests.load();
    r->set_mean_latency_ms(n ? c->micros.load() / 1000.0 / n : 0);
  }
}

std::vector<prometheus::MetricFamily> CatalogCollector::Collect() const {
  prometheus::MetricFamily vectors{
      "strata_vectors", "live vectors by collection", prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily ram{"strata_index_memory_bytes",
                               "RAM of the index structures by collection",
                               prometheus::MetricType::Gauge,
                               {}};
  prometheus::MetricFamily text_ram{"strata_text_index_memory_bytes",
                                    "RAM of the lexical (BM25) index by collection",
                                    prometheus::MetricType::Gauge,
                                    {}};
  prometheus::MetricFamily disk{"strata_index_disk_bytes",
                                "posting file bytes by collection",
                                prometheus::MetricType::Gauge,
                                {}};
  prometheus::MetricFamily pages{"strata_disk_pages_read_total",
                                 "4 KiB pages read by searches, by collection",
                                 prometheus::MetricType::Counter,
                                 {}};
  prometheus::MetricFamily bytes{"strata_disk_bytes_read_total",
                                 "bytes read by searches, by collection",
                                 prometheus::MetricType::Counter,
                                 {}};
  prometheus::MetricFamily damaged{
      "strata_collection_damaged",
      "1 while the collection's index is damaged (searches and writes fail until it is rebuilt), "
      "or its records could not be read at start (every call fails until it is dropped)",
      prometheus::MetricType::Gauge,
      {}};
  for (const auto& c : catalog_->List()) {
    CollectionStats s = c->Stats();
    std::vector<prometheus::ClientMetric::Label> label{{"collection", c->config().name}};
    auto gauge = [&](prometheus::MetricFamily* f, double v) {
      prometheus::ClientMetric m;
      m.label = label;
      m.gauge.value = v;
      f->metric.push_back(m);
    };
    auto counter = [&](prometheus::MetricFamily* f, double v) {
      prometheus::ClientMetric m;
      m.label = label;
      m.counter.value = v;
      f->metric.push_back(m);
    };
    gauge(&vectors, static_cast<double>(s.count));
    gauge(&ram, static_cast<double>(s.memory_bytes));
    gauge(&text_ram, static_cast<double>(s.text_memory_bytes));
    gauge(&disk, static_cast<double>(s.disk_bytes));
    counter(&pages, static_cast<double>(s.pages_read));
    counter(&bytes, static_cast<double>(s.bytes_read));
    gauge(&damaged, s.state == CollectionStats::State::kDamaged ? 1 : 0);
  }
  for (const Catalog::Unopened& u : catalog_->ListUnopened()) {  // (could not be opened)
    prometheus::ClientMetric m;
    m.label = {{"collection", u.config.name}};
    m.gauge.value = 1;
    damaged.metric.push_back(m);
  }
  std::vector<prometheus::MetricFamily> out = {vectors, ram, text_ram, disk, pages, bytes, damaged};
  using prometheus::MetricType;
  auto single = [&](const char* name, const char* help, MetricType type, double v) {
    prometheus::MetricFamily f{name, help, type, {}};
    prometheus::ClientMetric m;
    if (type == MetricType::Counter) {
      m.counter.value = v;
    } else {
      m.gauge.value = v;
    }
    f.metric.push_back(m);
    out.push_back(f);
  };
  auto total = [&](const char* name, const char* help, uint64_t v) {
    single(name, help, MetricType::Counter, static_cast<double>(v));
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    single(name, help, MetricType::Gauge, v);
  };
  single("strata_wal_dropped_batches",
         "acknowledged write batches dropped at start (damaged write-ahead log, "
         "--wal_recovery=point_in_time)",
         MetricType::Gauge, static_cast<double>(catalog_->store()->recovery().dropped_batches));
  single("strata_store_writes_refused",
         "1 while the server refuses every write (its metadata store stopped them: a full disk, "
         "an I/O error; Stats.writes_refused says why)",
         MetricType::Gauge, catalog_->store()->WritesRefused().empty() ? 0 : 1);
  const MetadataStore::BatchedReads reads = catalog_->store()->batched_reads();
  single("strata_store_ring_batches_total",
         "metadata store table-file batches read through io_uring (storage/uring_file_system.h)",
         MetricType::Counter, static_cast<double>(reads.ring_batches));
  single("strata_store_ring_blocks_total",
         "table-file blocks read in the metadata store's io_uring batches", MetricType::Counter,
         static_cast<double>(reads.ring_reads));
  single("strata_store_fallback_batches_total",
         "metadata store table-file batches read one block at a time (io_uring unavailable or "
         "every ring busy, the batch too large, or the ring's read failed or came up short)",
         MetricType::Counter, static_cast<double>(reads.fallback_batches));
  single("strata_call_memory_budget_bytes", "memory budget of the calls in flight (bytes)",
         MetricType::Gauge, static_cast<double>(memory_->capacity()));
  single("strata_call_memory_bytes", "memory reserved by the calls in flight (bytes)",
         MetricType::Gauge, static_cast<double>(memory_->used()));
  single("strata_call_memory_peak_bytes", "most memory reserved by calls at once (bytes)",
         MetricType::Gauge, static_cast<double>(memory_->peak()));
  single("strata_call_memory_refusals_total", "calls refused for want of memory budget",
         MetricType::Counter, static_cast<double>(memory_->refusals()));
  if (embedder_ != nullptr) {
    const gpu::EmbedBatcherStats e = embedder_->stats();
    total("strata_embed_batches_total", "embedding engine calls (dynamic batches)", e.batches);
    total("strata_embed_requests_total", "embedding requests served", e.requests);
    total("strata_embed_texts_total", "texts embedded", e.texts);
    total("strata_embed_tokens_total", "tokens embedded", e.tokens);
    total("strata_embed_held_total", "batches whose window was held open for company", e.held);
    total("strata_embed_cancelled_total", "embedding calls abandoned by their clients",
          e.cancelled);
  }
  if (rag_ != nullptr) {  // the decoder's answers (Stats.generation has the same and more)
    const gpu::GeneratorStats g = rag_->generator_stats();
    const gpu::PassageKvCacheStats c = rag_->cache().stats();
    gauge("strata_generation_running", "answers decoding now", static_cast<double>(g.running));
    gauge("strata_generation_queued", "answers waiting for room to decode",
          static_cast<double>(g.queued));
    gauge("strata_generation_preparing",
          "answers admitted, still making their passages' entries or filling their prompts",
          static_cast<double>(g.preparing));
    total("strata_generation_entries_made_total", "passage entries made for admitted answers",
          static_cast<uint64_t>(g.entries_made));
    gauge("strata_generation_kv_bytes", "KV of the answers decoding now (bytes)",
          static_cast<double>(g.kv_bytes));
    total("strata_generation_completed_total",
          "answers ended by their length, end of turn or a stop string", g.completed);
    total("strata_generation_cancelled_total",
          "answers cancelled (their clients went away, or the server stopped)", g.cancelled);
    total("strata_generation_failed_total", "answers that failed", g.failed);
    total("strata_passage_kv_ram_hits_total", "passage KV cache entries found in RAM", c.ram_hits);
    total("strata_passage_kv_disk_hits_total", "passage KV cache entries found on disk",
          c.disk_hits);
    total("strata_passage_kv_misses_total", "passage KV cache entries computed for want of one",
          c.misses);
    gauge("strata_passage_kv_ram_bytes", "passage KV cache in RAM (bytes)",
          static_cast<double>(c.ram_bytes));
    gauge("strata_passage_kv_disk_bytes", "passage KV cache on disk (bytes)",
          static_cast<double>(c.disk_bytes));
    gauge("strata_passage_kv_entries",
          "distinct passage KV cache entries (in RAM, on disk or both)",
          static_cast<double>(c.entries));
  }
  return out;
}

}  // namespace strata
