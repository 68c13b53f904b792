#include "service/server.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gpu/embed_batcher.h"
#include "gpu/encoder.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "index/catalog.h"
#include "nlohmann/json.hpp"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "proto/convert.h"
#include "proto/strata.grpc.pb.h"
#include "service/metrics_http.h"
#include "storage/log.h"
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

// The vector's bytes in `type`, or InvalidArgument saying what is wrong with its shape or (for
// integer types) its values. NaN/Inf in float32 vectors are left to the collection, which checks
// every vector it stores or searches with.
absl::Status VectorBytes(const pb::Vector& v, ElementType type, uint32_t dim,
                         std::vector<uint8_t>* out) {
  const size_t esize = ElementSize(type);
  if (!v.raw().empty() && v.values_size() > 0) {
    return absl::InvalidArgumentError("vector sets both 'values' and 'raw'; set one");
  }
  if (!v.raw().empty()) {
    if (v.raw().size() != size_t{dim} * esize) {
      return absl::InvalidArgumentError(
          absl::StrCat("vector 'raw' has ", v.raw().size(), " bytes; dimension ", dim, " of ",
                       ElementTypeName(type), " needs ", size_t{dim} * esize));
    }
    out->assign(v.raw().begin(), v.raw().end());
    return absl::OkStatus();
  }
  if (v.values_size() == 0) return absl::InvalidArgumentError("vector is empty");
  if (static_cast<uint32_t>(v.values_size()) != dim) {
    return absl::InvalidArgumentError(absl::StrCat("vector has ", v.values_size(),
                                                   " values, the collection has dimension ", dim));
  }
  out->resize(size_t{dim} * esize);
  for (uint32_t j = 0; j < dim; ++j) {
    float f = v.values(static_cast<int>(j));
    if (type == ElementType::kFloat32) {
      std::memcpy(out->data() + j * 4, &f, 4);
      continue;
    }
    float lo = type == ElementType::kUint8 ? 0 : -128, hi = type == ElementType::kUint8 ? 255 : 127;
    if (f != std::floor(f) || f < lo || f > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("value ", f, " at dimension ", j, " is not a ", ElementTypeName(type)));
    }
    if (type == ElementType::kUint8) {
      (*out)[j] = static_cast<uint8_t>(f);
    } else {
      (*out)[j] = static_cast<uint8_t>(static_cast<int8_t>(f));
    }
  }
  return absl::OkStatus();
}

void BytesToVector(absl::Span<const uint8_t> bytes, ElementType type, pb::Vector* v) {
  size_t n = bytes.size() / ElementSize(type);
  for (size_t j = 0; j < n; ++j) {
    float f;
    if (type == ElementType::kFloat32) {
      std::memcpy(&f, bytes.data() + j * 4, 4);
    } else if (type == ElementType::kUint8) {
      f = bytes[j];
    } else {
      f = static_cast<int8_t>(bytes[j]);
    }
    v->add_values(f);
  }
}

// --- Metrics -------------------------------------------------------------------------------------

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

  void Record(const char* rpc, const grpc::Status& status, double seconds) {
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

  void Fill(pb::StatsResponse* out) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, c] : counters_) {
      pb::RpcStats* r = out->add_rpcs();
      r->set_rpc(name);
      r->set_requests(c->requests.load());
      r->set_errors(c->errors.load());
      uint64_t n = c->requests.load();
      r->set_mean_latency_ms(n ? c->micros.load() / 1000.0 / n : 0);
    }
  }

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
  // `embedder` may be null (no model).
  CatalogCollector(const Catalog* catalog, const gpu::EmbedBatcher* embedder)
      : catalog_(catalog), embedder_(embedder) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily vectors{
        "strata_vectors", "live vectors by collection", prometheus::MetricType::Gauge, {}};
    prometheus::MetricFamily ram{"strata_index_memory_bytes",
                                 "RAM of the index structures by collection",
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
      gauge(&disk, static_cast<double>(s.disk_bytes));
      counter(&pages, static_cast<double>(s.pages_read));
      counter(&bytes, static_cast<double>(s.bytes_read));
    }
    std::vector<prometheus::MetricFamily> out = {vectors, ram, disk, pages, bytes};
    if (embedder_ != nullptr) {
      const gpu::EmbedBatcherStats e = embedder_->stats();
      auto total = [&](const char* name, const char* help, uint64_t v) {
        prometheus::MetricFamily f{name, help, prometheus::MetricType::Counter, {}};
        prometheus::ClientMetric m;
        m.counter.value = static_cast<double>(v);
        f.metric.push_back(m);
        out.push_back(f);
      };
      total("strata_embed_batches_total", "embedding engine calls (dynamic batches)", e.batches);
      total("strata_embed_requests_total", "embedding requests served", e.requests);
      total("strata_embed_texts_total", "texts embedded", e.texts);
      total("strata_embed_tokens_total", "tokens embedded", e.tokens);
      total("strata_embed_held_total", "batches whose window was held open for company", e.held);
    }
    return out;
  }

 private:
  const Catalog* catalog_;
  const gpu::EmbedBatcher* embedder_;
};

// --- Background index builds ---------------------------------------------------------------------

class BuildQueue {
 public:
  BuildQueue() : thread_([this] { Run(); }) {}
  ~BuildQueue() { Stop(); }
  void Schedule(std::shared_ptr<Collection> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    for (const auto& q : queue_) {
      if (q == c) return;
    }
    queue_.push_back(std::move(c));
    cv_.notify_one();
  }
  // Waits for the build in progress; drops the queued ones.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      queue_.clear();
      cv_.notify_one();
    }
    thread_.join();
  }

 private:
  void Run() {
    for (;;) {
      std::shared_ptr<Collection> c;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        c = std::move(queue_.front());
        queue_.pop_front();
      }
      if (!c->WantsBuild()) continue;
      std::string name = c->config().name;
      Log(LogLevel::kInfo, "collection '%s': building its index in the background", name);
      absl::Status s = c->BuildIndex();
      if (!s.ok()) {
        Log(LogLevel::kError, "collection '%s': background build failed: %s", name, s.ToString());
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Collection>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// --- The service ---------------------------------------------------------------------------------

class StrataService final : public pb::Strata::Service {
 public:
  StrataService(Catalog* catalog, Metrics* metrics, BuildQueue* builds, ServerLimits limits,
                gpu::EmbedBatcher* embedder)
      : catalog_(catalog),
        metrics_(metrics),
        builds_(builds),
        limits_(limits),
        embedder_(embedder),
        started_(Clock::now()) {}

  grpc::Status CreateCollection(grpc::ServerContext*, const pb::CreateCollectionRequest* req,
                                pb::CollectionInfo* resp) override {
    return Run("CreateCollection", [&]() -> absl::Status {
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
      ASSIGN_OR_RETURN(auto col, catalog_->Create(c));
      Describe(*col, resp);
      return absl::OkStatus();
    });
  }

  grpc::Status DropCollection(grpc::ServerContext*, const pb::DropCollectionRequest* req,
                              pb::DropCollectionResponse*) override {
    return Run("DropCollection", [&] { return catalog_->Drop(req->name()); });
  }

  grpc::Status ListCollections(grpc::ServerContext*, const pb::ListCollectionsRequest*,
                               pb::ListCollectionsResponse* resp) override {
    return Run("ListCollections", [&] {
      for (const auto& c : catalog_->List()) Describe(*c, resp->add_collections());
      return absl::OkStatus();
    });
  }

  grpc::Status DescribeCollection(grpc::ServerContext*, const pb::DescribeCollectionRequest* req,
                                  pb::CollectionInfo* resp) override {
    return Run("DescribeCollection", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->name()));
      Describe(*col, resp);
      return absl::OkStatus();
    });
  }

  grpc::Status BuildIndex(grpc::ServerContext*, const pb::BuildIndexRequest* req,
                          pb::CollectionInfo* resp) override {
    return Run("BuildIndex", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(col->BuildIndex());
      Describe(*col, resp);
      return absl::OkStatus();
    });
  }

  grpc::Status Upsert(grpc::ServerContext*, const pb::UpsertRequest* req,
                      pb::UpsertResponse* resp) override {
    return Run("Upsert", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(CheckBatch(req->points_size(), "points"));
      CollectionConfig cfg = col->config();
      std::vector<std::vector<uint8_t>> vectors(req->points_size());
      std::vector<std::string> payloads(req->points_size());
      std::vector<PointInput> rows;
      std::vector<uint32_t> row_index;  // rows[i] is request point row_index[i]
      std::vector<RowError> errors;
      for (int i = 0; i < req->points_size(); ++i) {
        const pb::Point& p = req->points(i);
        absl::Status s = VectorBytes(p.vector(), cfg.type, cfg.dim, &vectors[i]);
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
        rows.push_back({p.id(), vectors[i], payloads[i]});
        row_index.push_back(static_cast<uint32_t>(i));
      }
      uint64_t upserted = 0;
      if (!rows.empty()) {
        std::vector<RowError> late;
        RETURN_IF_ERROR(col->Upsert(rows, &late, &upserted));
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
      if (col->WantsBuild()) builds_->Schedule(col);
      return absl::OkStatus();
    });
  }

  grpc::Status Delete(grpc::ServerContext*, const pb::DeleteRequest* req,
                      pb::DeleteResponse* resp) override {
    return Run("Delete", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
      uint64_t deleted = 0;
      RETURN_IF_ERROR(col->Delete(req->ids(), &deleted));
      resp->set_deleted(deleted);
      return absl::OkStatus();
    });
  }

  grpc::Status Get(grpc::ServerContext*, const pb::GetRequest* req,
                   pb::GetResponse* resp) override {
    return Run("Get", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      RETURN_IF_ERROR(CheckBatch(req->ids_size(), "ids"));
      ElementType type = col->config().type;
      std::vector<PointOutput> found;
      std::vector<uint64_t> missing;
      RETURN_IF_ERROR(
          col->Get(req->ids(), req->with_vector(), req->with_payload(), &found, &missing));
      for (const PointOutput& p : found) {
        pb::Point* out = resp->add_points();
        out->set_id(p.id);
        if (req->with_vector()) BytesToVector(p.vector, type, out->mutable_vector());
        if (!p.payload.empty() && !out->mutable_payload()->ParseFromString(p.payload)) {
          return absl::DataLossError(absl::StrCat("payload of id ", p.id, " is corrupt"));
        }
      }
      for (uint64_t id : missing) resp->add_missing_ids(id);
      return absl::OkStatus();
    });
  }

  grpc::Status Count(grpc::ServerContext*, const pb::CountRequest* req,
                     pb::CountResponse* resp) override {
    return Run("Count", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      resp->set_count(col->Count());
      return absl::OkStatus();
    });
  }

  grpc::Status Search(grpc::ServerContext*, const pb::SearchRequest* req,
                      pb::SearchResponse* resp) override {
    return Run("Search", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      ASSIGN_OR_RETURN(SearchParams params, Params(req->k(), req->params()));
      if (req->text().empty()) {
        return SearchOne(*col, req->query(), req->k(), params, req->with_payload(),
                         req->with_vector(), resp);
      }
      if (req->query().values_size() > 0 || !req->query().raw().empty()) {
        return absl::InvalidArgumentError("set either 'query' or 'text', not both");
      }
      const auto t0 = Clock::now();
      ASSIGN_OR_RETURN(std::vector<pb::Vector> q, EmbedQueries(*col, {req->text()}));
      const auto t1 = Clock::now();
      RETURN_IF_ERROR(
          SearchOne(*col, q[0], req->k(), params, req->with_payload(), req->with_vector(), resp));
      AddEmbedTime(t0, t1, resp->mutable_stats());
      return absl::OkStatus();
    });
  }

  grpc::Status SearchBatch(grpc::ServerContext*, const pb::SearchBatchRequest* req,
                           pb::SearchBatchResponse* resp) override {
    return Run("SearchBatch", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto col, catalog_->Find(req->collection()));
      if (req->queries_size() > 0 && req->texts_size() > 0) {
        return absl::InvalidArgumentError("set either 'queries' or 'texts', not both");
      }
      ASSIGN_OR_RETURN(SearchParams params, Params(req->k(), req->params()));
      std::vector<pb::Vector> embedded;
      const auto t0 = Clock::now();
      auto t1 = t0;
      if (req->texts_size() > 0) {
        std::vector<std::string> texts(req->texts().begin(), req->texts().end());
        ASSIGN_OR_RETURN(embedded, EmbedQueries(*col, texts));
        t1 = Clock::now();
      } else {
        RETURN_IF_ERROR(CheckBatch(req->queries_size(), "queries"));
      }
      const int n = req->texts_size() > 0 ? req->texts_size() : req->queries_size();
      for (int i = 0; i < n; ++i) {
        pb::SearchResponse* r = resp->add_results();
        const pb::Vector& q =
            req->texts_size() > 0 ? embedded[static_cast<size_t>(i)] : req->queries(i);
        absl::Status s =
            SearchOne(*col, q, req->k(), params, req->with_payload(), req->with_vector(), r);
        if (!s.ok()) {
          return absl::Status(s.code(), absl::StrCat("query ", i, ": ", s.message()));
        }
        if (req->texts_size() > 0) AddEmbedTime(t0, t1, r->mutable_stats());
      }
      return absl::OkStatus();
    });
  }

  grpc::Status Embed(grpc::ServerContext*, const pb::EmbedRequest* req,
                     pb::EmbedResponse* resp) override {
    return Run("Embed", [&]() -> absl::Status {
      std::vector<std::string> texts(req->texts().begin(), req->texts().end());
      RETURN_IF_ERROR(CheckTexts(texts));
      gpu::EmbedStats st;
      ASSIGN_OR_RETURN(std::vector<float> v, embedder_->Embed(texts, &st));
      const int dim = embedder_->encoder().dimension();
      for (size_t i = 0; i < texts.size(); ++i) {
        resp->add_vectors()->mutable_values()->Add(
            v.begin() + static_cast<ptrdiff_t>(i * dim),
            v.begin() + static_cast<ptrdiff_t>((i + 1) * dim));
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

  grpc::Status Stats(grpc::ServerContext*, const pb::StatsRequest*,
                     pb::StatsResponse* resp) override {
    return Run("Stats", [&] {
      resp->set_uptime_seconds(std::chrono::duration<double>(Clock::now() - started_).count());
      resp->set_version("0.1.0");
      for (const auto& c : catalog_->List()) {
        CollectionStats s = c->Stats();
        resp->set_collections(resp->collections() + 1);
        resp->set_vectors(resp->vectors() + s.count);
        resp->set_index_memory_bytes(resp->index_memory_bytes() + s.memory_bytes);
        resp->set_index_disk_bytes(resp->index_disk_bytes() + s.disk_bytes);
        resp->set_disk_pages_read(resp->disk_pages_read() + s.pages_read);
        resp->set_disk_bytes_read(resp->disk_bytes_read() + s.bytes_read);
      }
      metrics_->Fill(resp);
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
  absl::Status CheckTexts(const std::vector<std::string>& texts) const {
    if (embedder_ == nullptr) {
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
      if (texts[i].size() > limits_.max_text_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "text ", i, " has ", texts[i].size(), " bytes; the limit is ", limits_.max_text_bytes));
      }
    }
    return absl::OkStatus();
  }

  // Text queries embedded for `col`, which must hold float32 vectors of the model's dimension.
  absl::StatusOr<std::vector<pb::Vector>> EmbedQueries(const Collection& col,
                                                       const std::vector<std::string>& texts) {
    RETURN_IF_ERROR(CheckTexts(texts));
    const CollectionConfig cfg = col.config();
    const int dim = embedder_->encoder().dimension();
    if (cfg.type != ElementType::kFloat32 || cfg.dim != static_cast<uint32_t>(dim)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "collection '", cfg.name, "' holds ", cfg.dim, "-d ", ElementTypeName(cfg.type),
          " vectors; text queries are embedded by ", ModelName(), " as ", dim, "-d float32"));
    }
    ASSIGN_OR_RETURN(std::vector<float> v, embedder_->Embed(texts));
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

  template <typename F>
  grpc::Status Run(const char* rpc, F&& body) {
    auto t0 = Clock::now();
    // Counted before the draining check, so BeginDrain's waiter sees every call that got past it.
    in_flight_.fetch_add(1);
    struct Done {
      std::atomic<int>* n;
      ~Done() { n->fetch_sub(1); }
    } done{&in_flight_};
    absl::Status s;
    try {
      s = draining_.load() ? absl::UnavailableError("the server is shutting down") : body();
    } catch (const std::exception& e) {
      // Nothing below is meant to throw; if something does, the caller gets INTERNAL and the
      // server stays up.
      s = absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
    }
    grpc::Status g = ToGrpcStatus(s);
    metrics_->Record(rpc, g, std::chrono::duration<double>(Clock::now() - t0).count());
    if (!s.ok() &&
        (s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kDataLoss)) {
      Log(LogLevel::kError, "%s: %s", rpc, s.ToString());
    }
    return g;
  }

  absl::Status CheckBatch(int n, const char* what) const {
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("empty batch: no ", what));
    if (static_cast<uint32_t>(n) > limits_.max_batch) {
      return absl::ResourceExhaustedError(
          absl::StrCat(n, " ", what, " in one request; the limit is ", limits_.max_batch));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<SearchParams> Params(uint32_t k, const pb::SearchParams& p) const {
    if (k == 0 || k > limits_.max_k) {
      return absl::InvalidArgumentError(
          absl::StrCat("k must be in [1, ", limits_.max_k, "], got ", k));
    }
    SearchParams out;
    if (p.max_postings() != 0) out.max_postings = p.max_postings();
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

  absl::Status SearchOne(const Collection& col, const pb::Vector& query, uint32_t k,
                         const SearchParams& params, bool with_payload, bool with_vector,
                         pb::SearchResponse* resp) {
    auto t0 = Clock::now();
    CollectionConfig cfg = col.config();
    std::vector<uint8_t> q;
    RETURN_IF_ERROR(VectorBytes(query, cfg.type, cfg.dim, &q));
    std::vector<Hit> hits;
    strata::SearchStats st;
    RETURN_IF_ERROR(col.Search(VectorView{cfg.type, q}, k, params, &hits, &st));
    std::vector<PointOutput> extra;
    if (with_payload || with_vector) {
      std::vector<uint64_t> ids, missing;
      for (const Hit& h : hits) ids.push_back(h.id);
      RETURN_IF_ERROR(col.Get(ids, with_vector, with_payload, &extra, &missing));
    }
    size_t e = 0;
    for (const Hit& h : hits) {
      pb::Hit* out = resp->add_hits();
      out->set_id(h.id);
      out->set_distance(h.distance);
      // A hit deleted between the search and the lookup keeps its id and distance only.
      if (e < extra.size() && extra[e].id == h.id) {
        if (with_vector) BytesToVector(extra[e].vector, cfg.type, out->mutable_vector());
        if (with_payload && !extra[e].payload.empty()) {
          out->mutable_payload()->ParseFromString(extra[e].payload);
        }
        ++e;
      }
    }
    pb::SearchStats* s = resp->mutable_stats();
    s->set_postings_read(st.postings_read);
    s->set_pages_read(st.pages_read);
    s->set_bytes_read(st.bytes_read);
    s->set_entries_scanned(st.entries_scanned);
    s->set_server_micros(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
    return absl::OkStatus();
  }

  void Describe(const Collection& col, pb::CollectionInfo* out) const {
    CollectionConfig c = col.config();
    CollectionStats s = col.Stats();
    out->set_name(c.name);
    out->set_dimension(c.dim);
    out->set_element_type(ToProto(c.type));
    out->set_metric(ToProto(c.metric));
    out->mutable_index()->set_head_share(c.head_share);
    out->mutable_index()->set_max_replicas(c.max_replicas);
    out->mutable_index()->set_posting_page_limit(c.posting_page_limit);
    out->mutable_index()->set_posting_encoding(ToProto(c.posting_encoding));
    out->mutable_index()->set_build_threshold(c.build_threshold);
    out->set_count(s.count);
    out->set_state(s.state == CollectionStats::State::kBuilding  ? pb::CollectionInfo::BUILDING
                   : s.state == CollectionStats::State::kIndexed ? pb::CollectionInfo::INDEXED
                                                                 : pb::CollectionInfo::FLAT);
    out->set_indexed_vectors(s.indexed_vectors);
    out->set_appended_vectors(s.appended_vectors);
    out->set_heads(s.heads);
    out->set_index_memory_bytes(s.memory_bytes);
    out->set_index_disk_bytes(s.disk_bytes);
    out->set_index_generation(s.generation);
  }

  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  Catalog* const catalog_;
  Metrics* const metrics_;
  BuildQueue* const builds_;
  const ServerLimits limits_;
  gpu::EmbedBatcher* const embedder_;  // null: the server has no model
  const Clock::time_point started_;
};

class ServerImpl final : public Server {
 public:
  ~ServerImpl() override { Shutdown(5); }

  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& o) {
    auto s = std::unique_ptr<ServerImpl>(new ServerImpl);
    ASSIGN_OR_RETURN(s->catalog_, Catalog::Open(o.data_dir));
    s->metrics_ = std::make_unique<Metrics>();
    s->builds_ = std::make_unique<BuildQueue>();
    // Collections left over the build threshold by a previous run.
    for (const auto& c : s->catalog_->List()) {
      if (c->WantsBuild()) s->builds_->Schedule(c);
    }
    if (!o.embed.model_dir.empty()) {
      ASSIGN_OR_RETURN(gpu::BackendChoice backend, gpu::ParseBackendChoice(o.embed.backend));
      gpu::EncoderOptions eo;
      eo.backend = backend;
      eo.max_batch_tokens = static_cast<int>(o.embed.max_batch_tokens);
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
    s->service_ = std::make_unique<StrataService>(s->catalog_.get(), s->metrics_.get(),
                                                  s->builds_.get(), o.limits, s->embedder_.get());
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &s->port_);
    // gRPC binds with SO_REUSEPORT by default: a second server on the same port would start and
    // silently take half of the connections. A taken port must be an error instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.RegisterService(s->service_.get());
    builder.SetMaxReceiveMessageSize(static_cast<int>(o.limits.max_message_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(o.limits.max_message_bytes));
    // Calls are served on gRPC's sync thread pool: up to `threads` at once (searches wait on the
    // disk, so well above the core count), plus its pollers. Past that gRPC answers
    // RESOURCE_EXHAUSTED, which bounds the threads a burst of clients can make us start.
    int threads = o.threads > 0
                      ? o.threads
                      : std::max(32, 8 * static_cast<int>(std::thread::hardware_concurrency()));
    constexpr int kPollers = 2;
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kPollers);
    grpc::ResourceQuota quota("strata");
    quota.SetMaxThreads(threads + kPollers);
    builder.SetResourceQuota(quota);
    s->server_ = builder.BuildAndStart();
    if (s->server_ == nullptr || s->port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", o.listen, " (address in use or malformed?)"));
    }
    if (!o.metrics_listen.empty()) {
      s->collector_ = std::make_shared<CatalogCollector>(s->catalog_.get(), s->embedder_.get());
      ASSIGN_OR_RETURN(
          s->metrics_http_,
          MetricsHttpServer::Start(o.metrics_listen, {s->metrics_->registry(), s->collector_}));
    }
    Log(LogLevel::kInfo, "serving Strata gRPC on port %d (data %s, metrics %s)", s->port_,
        o.data_dir, o.metrics_listen.empty() ? "off" : o.metrics_listen + "/metrics");
    return std::unique_ptr<Server>(std::move(s));
  }

  int port() const override { return port_; }

  void Shutdown(double drain_seconds) override {
    if (down_.exchange(true)) return;
    Log(LogLevel::kInfo, "shutting down: draining calls (up to %.0f s)", drain_seconds);
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
    catalog_.reset();  // closes RocksDB: memtables are in the synced WAL already
    Log(LogLevel::kInfo, "shut down cleanly");
  }

 private:
  ServerImpl() = default;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<BuildQueue> builds_;
  std::unique_ptr<gpu::Encoder> encoder_;
  std::unique_ptr<gpu::EmbedBatcher> embedder_;  // uses encoder_
  std::unique_ptr<StrataService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  std::shared_ptr<CatalogCollector> collector_;
  int port_ = 0;
  std::atomic<bool> down_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  return ServerImpl::Start(options);
}

}  // namespace strata
