#include "service/server.h"

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/host_port.h"
#include "base/mutex.h"
#include "gpu/embed_batcher.h"
#include "gpu/encoder.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "index/catalog.h"
#include "proto/strata.grpc.pb.h"
#include "service/api_key_auth.h"
#include "service/build_queue.h"
#include "service/call_budget.h"
#include "service/call_memory_hold.h"
#include "service/metrics.h"
#include "service/metrics_http.h"
#include "service/parse_error_interceptor.h"
#include "service/payload_text.h"
#include "service/rag_engine.h"
#include "service/reflection_v1.h"
#include "service/reranker.h"
#include "service/strata_service.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status NameDeadline(absl::Status s, std::chrono::system_clock::time_point deadline,
                          std::chrono::system_clock::time_point now) {
  if (!absl::IsCancelled(s) || now < deadline) return s;
  return absl::DeadlineExceededError(
      absl::StrCat("the call's deadline passed (", s.message(), ")"));
}

namespace {

using service_internal::Clock;
using service_internal::StrataService;
namespace pb = ::strata::v1;

// True when `listen` ("host:port") names a loopback host: 127.0.0.0/8, localhost or [::1].
bool IsLoopback(absl::string_view listen) {
  const size_t colon = listen.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? listen : listen.substr(0, colon);
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "[::1]";
}

// Removes the cached passage entries whose collection or point no longer exists: a crash
// between a delete or a drop and the cache's invalidation, or an earlier version, can leave them
// on disk, where they would hold the text's keys and values, and disk budget, until evicted.
// A collection that cannot answer (damaged) keeps its entries: this never stops the start.
void DropCachedPassagesGone(const Catalog& catalog, gpu::PassageKvCache* cache) {
  absl::flat_hash_map<std::string, std::vector<uint64_t>> ids_of;
  for (auto& [collection, id] : cache->Passages()) ids_of[collection].push_back(id);
  size_t gone = 0;
  for (auto& [name, ids] : ids_of) {
    absl::StatusOr<std::shared_ptr<Collection>> col = catalog.Find(name);
    if (!col.ok()) {
      // NotFound, or a name no collection can have (InvalidArgument).
      if (!absl::IsNotFound(col.status()) && !absl::IsInvalidArgument(col.status())) continue;
      cache->InvalidateCollection(name);
      gone += ids.size();
      continue;
    }
    // A few thousand ids a lookup: the collection's lock is not held across them all.
    constexpr size_t kChunk = 4096;
    for (size_t at = 0; at < ids.size(); at += kChunk) {
      const absl::Span<const uint64_t> chunk =
          absl::MakeConstSpan(ids).subspan(at, std::min(kChunk, ids.size() - at));
      std::vector<PointOutput> found;
      std::vector<uint64_t> missing;
      const absl::Status s =
          (*col)->Get(chunk, /*with_vector=*/false, /*with_payload=*/false, &found, &missing);
      if (!s.ok()) {
        Log(LogLevel::kWarning,
            "passage KV cache: the entries of collection '%s' stay unchecked: %s", name,
            s.ToString());
        break;
      }
      cache->Invalidate(name, missing);
      gone += missing.size();
    }
  }
  if (gone > 0) {
    Log(LogLevel::kInfo,
        "passage KV cache: the entries of %zu passages whose point or collection is gone removed",
        gone);
  }
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

  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options) {
    auto s = std::unique_ptr<ServerImpl>(new ServerImpl);
    // The data directory as an absolute path: every path the server writes into a message then
    // starts with it, so that base/public_message.h can tell such messages from others (a short
    // relative --data_dir such as "d" would be found inside ordinary words).
    ServerOptions o = options;
    if (o.data_dir.empty()) return absl::InvalidArgumentError("--data_dir is empty");
    {
      std::error_code ec;
      const std::filesystem::path abs = std::filesystem::absolute(o.data_dir, ec);
      if (ec) {
        return absl::InvalidArgumentError(
            absl::StrCat("--data_dir ", o.data_dir, ": ", ec.message()));
      }
      o.data_dir = abs.lexically_normal().string();
      while (o.data_dir.size() > 1 && o.data_dir.back() == '/') o.data_dir.pop_back();
    }
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
    if (o.threads < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--threads must be 0 (by the cores) or more, got ", o.threads));
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
    collection_options.max_text_index_bytes = o.limits.max_text_index_bytes;
    ASSIGN_OR_RETURN(s->catalog_, Catalog::Open(o.data_dir, collection_options, store_options));
    ASSIGN_OR_RETURN(s->keys_, TenantKeys::Open(s->catalog_->store()));
    // Keys of a collection no longer listed: its drop was committed, and the run stopped before
    // it revoked them (DropCollection revokes them just after the drop's commit). They open
    // nothing; they go now.
    {
      absl::flat_hash_set<std::string> uids;
      for (const auto& c : s->catalog_->List()) uids.insert(c->config().uid);
      // (A collection that could not be opened is still listed: its keys stay. One whose damaged
      // record no longer says its uid might own any key: none goes this time.)
      bool owners_known = true;
      for (const Catalog::Unopened& u : s->catalog_->ListUnopened()) {
        uids.insert(u.config.uid);
        owners_known = owners_known && !u.config.uid.empty();
      }
      ASSIGN_OR_RETURN(const uint32_t revoked,
                       owners_known ? s->keys_->RevokeUnlisted(uids) : absl::StatusOr<uint32_t>(0));
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
    // Builds asked for that a previous run did not finish, collections left over the build
    // threshold, and damaged ones (their rebuild is the repair) unless the operator wants to
    // look first.
    for (const auto& c : s->catalog_->List()) {
      const bool damaged = c->Damaged();
      if (c->BuildRequested()) {
        Log(LogLevel::kInfo, "collection '%s': the build asked for before the stop is queued",
            c->config().name);
        s->builds_->Schedule(c, /*requested=*/true);
      } else if (c->WantsBuild() && (o.auto_repair || !damaged)) {
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
      DropCachedPassagesGone(*s->catalog_, &s->rag_->cache());
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
        s->keys_.get(), max_generate_calls, o.data_dir,
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
    // gRPC's own buffers (requests being received before a handler runs, which the call budget
    // cannot see) get a bound of the same size. A loose one: gRPC allocates, then reclaims what
    // is over it by closing idle connections and resetting streams of its choosing (possibly a
    // call whose handler already ran). Without it a flood over many connections was buffered
    // whole (192 x 15 MiB: 2.1-2.4 GiB; memory_limits_test).
    quota.Resize(o.limits.memory_budget_bytes);
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
    s->catalog_->store()->WatchWritesRefused([raw = s.get()] { raw->UpdateWritesHealth(); });
    s->UpdateWritesHealth();
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
                                                         s->embedder_.get(), s->rag_.get());
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
      if (c->Damaged()) durable = false;
    }
    server_->GetHealthCheckService()->SetServingStatus(kDurabilityHealth, durable);
  }

  // kWritesHealth follows the store's WritesRefused(); called from the store's watcher (on a
  // RocksDB thread) and at start.
  void UpdateWritesHealth() {
    // Its own mutex: the watcher may run on a writer's thread, which must not wait for
    // UpdateDurabilityHealth's reading of the collections.
    MutexLock lock(&writes_health_mu_);
    if (!serving_.load()) return;
    server_->GetHealthCheckService()->SetServingStatus(kWritesHealth,
                                                       catalog_->store()->WritesRefused().empty());
  }

  void Shutdown(double drain_seconds) override {
    if (down_.exchange(true)) return;
    if (catalog_ != nullptr) catalog_->store()->WatchWritesRefused(nullptr);
    serving_.store(false);
    if (server_ != nullptr) {  // (null: a start that failed before serving; nothing to drain)
      Log(LogLevel::kInfo, "shutting down: draining calls (up to %.0f s)", drain_seconds);
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
  Mutex writes_health_mu_;
  std::atomic<bool> down_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  return ServerImpl::Start(options);
}

}  // namespace strata
