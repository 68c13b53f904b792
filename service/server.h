// strata-server's core: the Strata gRPC service over a catalog (index/catalog.h), with health
// checking, reflection, Prometheus metrics and background index builds.
//
// Every request is validated before it reaches a collection; failures map to gRPC codes by one
// function (ToGrpcStatus). Limits (ServerLimits) are enforced per request.
#ifndef STRATA_SERVICE_SERVER_H_
#define STRATA_SERVICE_SERVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/support/status.h"
#include "service/limits.h"

namespace strata {

// The sentence encoder behind Embed and text search (none when model_dir is empty).
struct EmbedOptions {
  std::string model_dir;
  std::string backend = "auto";     // auto | cpu | cuda
  std::string precision = "auto";   // auto | f32 | bf16 | int8 (gpu::ParseMatmulPrecision)
  int64_t max_batch_tokens = 8192;  // dynamic batching: tokens per engine call
  int max_wait_us = 2000;           // how long a request waits for others to join its batch
  // A cross-encoder (BertForSequenceClassification with one output) for SearchRequest.rerank, on
  // the same backend and precision; empty = none.
  std::string reranker_model_dir;
};

// The decoder behind Generate (none when `decoder` is empty) and its passage KV cache.
struct GenerateOptions {
  std::string decoder;               // a GGUF file (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)
  int max_running = 16;              // generations decoding at once (batched together)
  int max_queued = 64;               // waiting beyond those; more get RESOURCE_EXHAUSTED
  uint64_t kv_budget_mb = 2048;      // KV sequences of running generations together
  uint64_t kv_cache_ram_mb = 512;    // passage KV cache, host RAM tier
  uint64_t kv_cache_disk_mb = 4096;  // passage KV cache, SSD tier (data_dir/kv-cache); 0 = none
  int max_tokens = 1024;             // most tokens one answer may ask for
  bool int8_activations = true;      // gpu::DecoderOptions::int8_activations
  std::string backend = "cpu";       // cpu, cuda or auto (gpu::ParseBackendChoice)
  int64_t gpu_kv_mb = 1024;          // on CUDA: gpu::DecoderOptions::device_span_bytes, in MiB
};

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // port 0 picks a free one (see Server::port)
  std::string data_dir = "strata-data";
  std::string metrics_listen = "127.0.0.1:9464";  // empty = no /metrics endpoint
  // Calls served at once (gRPC handler threads); more concurrent calls are refused with
  // RESOURCE_EXHAUSTED. 0 = max(32, 8 * cores).
  int threads = 0;
  ServerLimits limits;
  EmbedOptions embed;
  GenerateOptions generate;
  // Rebuild damaged collections' indexes from their stored vectors at start (else they wait for
  // `strata-cli repair`).
  bool auto_repair = true;
  // Callers prove who they are with this key (service/api_key_auth.h); empty = an open server,
  // which then only listens on loopback. Held in memory as a salted hash only.
  std::string admin_key;
  // TLS on the gRPC port: PEM certificate chain and private key files (both or neither).
  std::string tls_cert_file;
  std::string tls_key_file;
  // A write-ahead log damaged before its end: refuse to start (strict), or open at the last
  // intact record, dropping the writes after it (point_in_time). storage/metadata_store.h.
  std::string wal_recovery = "strict";
};

[[nodiscard]] grpc::Status ToGrpcStatus(const absl::Status& s);

// A call's status as its client sees it: a handler stopped by ServerContext::IsCancelled after
// the call's deadline passed returns CANCELLED, where gRPC tells the client DEADLINE_EXCEEDED;
// this names it so (the message kept), for the metrics and the log.
[[nodiscard]] absl::Status NameDeadline(absl::Status s,
                                        std::chrono::system_clock::time_point deadline,
                                        std::chrono::system_clock::time_point now);

// The grpc.health.v1 service name that reports durability apart from serving: NOT_SERVING while
// acknowledged writes were dropped at start (--wal_recovery=point_in_time over a damaged log) or a
// collection is damaged, so monitoring can page on it without taking the server out of rotation.
// "" and "strata.v1.Strata" report whether the server serves.
inline constexpr char kDurabilityHealth[] = "strata.v1.Strata/durability";
// The grpc.health.v1 service name that is NOT_SERVING while the server refuses every write (its
// metadata store stopped them: a full disk, until space is back; an I/O error, until a restart).
// StatsResponse.writes_refused says why.
inline constexpr char kWritesHealth[] = "strata.v1.Strata/writes";

class Server {
 public:
  virtual ~Server() = default;
  // Opens the data directory and starts serving. Errors name the cause (a data directory in use,
  // an address taken, corrupt metadata).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  // The bound port (useful with port 0).
  [[nodiscard]] virtual int port() const = 0;
  // Stops accepting, lets in-flight calls finish (up to `drain_seconds`), waits for a running
  // index build, and closes the data directory. Idempotent.
  virtual void Shutdown(double drain_seconds) = 0;
};

}  // namespace strata

#endif  // STRATA_SERVICE_SERVER_H_
