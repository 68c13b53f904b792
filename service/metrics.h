// The server's request metrics: counters and latencies per RPC (Stats and /metrics), and the
// per-collection gauges computed when /metrics is scraped.
//
// Thread-safety: Metrics::Record and Fill may be called concurrently.
#ifndef STRATA_SERVICE_METRICS_H_
#define STRATA_SERVICE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gpu/embed_batcher.h"
#include "grpcpp/support/status.h"
#include "index/catalog.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "proto/strata.pb.h"
#include "service/call_budget.h"

namespace strata {

class RagEngine;

struct RpcCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> micros{0};
};

class Metrics {
 public:
  Metrics()
      : registry_(std::make_shared<prometheus::Registry>()),
        requests_(prometheus::BuildCounter()
                      .Name("strata_requests_total")
                      .Help("gRPC requests by method and status code")
                      .Register(*registry_)),
        latency_(prometheus::BuildHistogram()
                     .Name("strata_request_duration_seconds")
                     .Help("gRPC request latency by method")
                     .Register(*registry_)) {}

  void Record(const char* rpc, const grpc::Status& status, double seconds);

  void Fill(v1::StatsResponse* out);

  std::shared_ptr<prometheus::Registry> registry() { return registry_; }

 private:
  RpcCounters& counters(const char* rpc) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& p = counters_[rpc];
    if (!p) p = std::make_unique<RpcCounters>();
    return *p;
  }

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<RpcCounters>> counters_;
};

// Gauges computed when /metrics is scraped.
class CatalogCollector final : public prometheus::Collectable {
 public:
  // `embedder` (no model) and `rag` (no decoder) may be null.
  CatalogCollector(const Catalog* catalog, const MemoryBudget* memory,
                   const gpu::EmbedBatcher* embedder, RagEngine* rag)
      : catalog_(catalog), memory_(memory), embedder_(embedder), rag_(rag) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Catalog* catalog_;
  const MemoryBudget* memory_;
  const gpu::EmbedBatcher* embedder_;
  RagEngine* rag_;
};

}  // namespace strata

#endif  // STRATA_SERVICE_METRICS_H_
