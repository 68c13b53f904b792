#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/strata.grpc.pb.h"
#include "tools/build_wait.h"
#include "tools/cli/cli_util.h"
#include "tools/cli/commands.h"
#include "tools/hybrid_tune.h"

ABSL_FLAG(bool, wait, true,
          "build/repair: wait for the build to finish, showing its progress (else return once it "
          "is queued; `describe` follows it)");
ABSL_FLAG(uint32_t, dim, 0, "create: vector dimension (required)");
ABSL_FLAG(std::string, type, "float32", "create: element type (float32, uint8, int8)");
ABSL_FLAG(std::string, metric, "l2", "create: metric (l2, ip, cosine)");
ABSL_FLAG(std::string, posting_encoding, "native",
          "create: how postings store vectors: native, or float16 (float32 only: half the disk and "
          "the pages each query reads, distances against float16-rounded vectors)");
ABSL_FLAG(uint64_t, build_threshold, 0, "create: vectors before the first index build (0 = 10000)");
ABSL_FLAG(std::vector<std::string>, text_fields, {},
          "create: payload JSON fields indexed lexically with the payload text, e.g. title,tags");
ABSL_FLAG(std::string, questions, "",
          "tune: JSONL labelled questions, {\"question\": ..., \"relevant_ids\": [ids]}");
ABSL_FLAG(size_t, max_questions, 1024, "tune: questions sent at most (the server's --max_texts)");
ABSL_FLAG(bool, dry_run, false, "tune: report the weights without keeping the best");

namespace strata::cli {

namespace pb = ::strata::v1;

namespace {

const char* StateName(pb::CollectionInfo::IndexState s) {
  switch (s) {
    case pb::CollectionInfo::FLAT:
      return "flat (exact search; no index yet)";
    case pb::CollectionInfo::INDEXED:
      return "indexed";
    case pb::CollectionInfo::BUILDING:
      return "building";
    case pb::CollectionInfo::DAMAGED:
      return "DAMAGED (searches and writes fail until it is rebuilt: strata-cli repair NAME)";
    case pb::CollectionInfo::UNREADABLE:
      return "UNREADABLE (its records could not be read at start: every call fails; its data is "
             "left as it is; strata-cli drop NAME deletes it)";
    default:
      return "unknown";
  }
}

void PrintInfo(const pb::CollectionInfo& c) {
  std::printf("%s: %llu vectors, dim %u, %s, %s\n", c.name().c_str(),
              static_cast<unsigned long long>(c.count()), c.dimension(),
              pb::ElementType_Name(c.element_type()).c_str(), pb::Metric_Name(c.metric()).c_str());
  if (!c.tenant().empty()) {
    std::printf(
        "  (tenant %s's view: the vectors it sees; the collection's index is the admin's)\n",
        c.tenant().c_str());
    return;
  }
  std::printf(
      "  index: %s, generation %llu, %llu vectors indexed (live or not), %llu written or moved "
      "since, %llu heads\n",
      StateName(c.state()), static_cast<unsigned long long>(c.index_generation()),
      static_cast<unsigned long long>(c.indexed_vectors()),
      static_cast<unsigned long long>(c.appended_vectors()),
      static_cast<unsigned long long>(c.heads()));
  if (c.default_max_postings() > 0) {
    std::printf("  default search: %u postings (tuned to recall@10 %.3f on its own vectors)\n",
                c.default_max_postings(), c.tuned_recall());
  }
  const pb::PostingMaintenance& m = c.maintenance();
  if (m.added_heads() + m.retired_heads() + m.splits() + m.merges() > 0) {
    std::printf(
        "  posting maintenance: %llu heads added and %llu retired since the build; %llu splits, "
        "%llu merges, %llu rewrites, %llu heads for far vectors, %llu vectors reassigned since "
        "the server started\n",
        static_cast<unsigned long long>(m.added_heads()),
        static_cast<unsigned long long>(m.retired_heads()),
        static_cast<unsigned long long>(m.splits()), static_cast<unsigned long long>(m.merges()),
        static_cast<unsigned long long>(m.rewrites()), static_cast<unsigned long long>(m.seeds()),
        static_cast<unsigned long long>(m.reassigned()));
  }
  const pb::TenantExtentStats& e = c.tenant_extents();
  if (e.flat_file_bytes() + e.cell_bytes() + e.found_wrong() > 0) {
    std::printf(
        "  tenants' extents: %.1f MiB flat (in a %.1f MiB file), %.1f MiB in cells; %llu found "
        "wrong since the server started\n",
        e.flat_bytes() / 1048576.0, e.flat_file_bytes() / 1048576.0, e.cell_bytes() / 1048576.0,
        static_cast<unsigned long long>(e.found_wrong()));
  }
  if (const pb::IndexBuild& b = c.build(); b.id() > 0) {
    std::printf("  build %llu (%s): %s", static_cast<unsigned long long>(b.id()),
                b.requested() ? "asked for" : "the server's own",
                absl::AsciiStrToLower(pb::IndexBuild::State_Name(b.state())).c_str());
    if (b.state() == pb::IndexBuild::RUNNING && !b.phase().empty()) {
      std::printf(", %s", b.phase().c_str());
      if (b.total() > 0) {
        std::printf(" %llu of %llu", static_cast<unsigned long long>(b.done()),
                    static_cast<unsigned long long>(b.total()));
      }
    }
    if (b.state() == pb::IndexBuild::FAILED) std::printf(": %s", b.error().c_str());
    std::printf("\n");
  }
  if (!c.damage().empty()) std::printf("  damage: %s\n", c.damage().c_str());
  if (c.text_fields_size() > 0) {
    std::printf("  text fields indexed with the payload text:");
    for (const std::string& f : c.text_fields()) std::printf(" %s", f.c_str());
    std::printf("\n");
  }
  if (c.text_points() > 0) {
    std::printf(
        "  lexical index: %llu points with words to find them by, %llu terms, %.1f MiB in "
        "memory\n",
        static_cast<unsigned long long>(c.text_points()),
        static_cast<unsigned long long>(c.text_terms()), c.text_memory_bytes() / 1048576.0);
    if (c.hybrid().learned()) {
      std::printf("  hybrid dense weight %.1f, learned on %u questions (MRR@10 %.4f)\n",
                  c.hybrid().dense_weight(), c.hybrid().questions(), c.hybrid().mrr_at_10());
    } else {
      std::printf("  hybrid dense weight %.1f (the default; strata-cli tune learns one)\n",
                  c.hybrid().dense_weight());
    }
  }
  std::printf("  memory %.1f MiB, disk %.1f MiB, build threshold %llu, %s postings\n",
              c.index_memory_bytes() / 1048576.0, c.index_disk_bytes() / 1048576.0,
              static_cast<unsigned long long>(c.index().build_threshold()),
              c.index().posting_encoding() == pb::POSTING_FLOAT16 ? "float16" : "native");
}

void PrintPoint(const pb::Point& p) {
  std::printf("id %llu", static_cast<unsigned long long>(p.id()));
  if (p.has_vector()) {
    std::printf("  vector [");
    for (int j = 0; j < p.vector().values_size(); ++j) {
      std::printf(j ? ",%g" : "%g", p.vector().values(j));
    }
    std::printf("]");
  }
  if (!p.payload().json().empty()) std::printf("  json %s", p.payload().json().c_str());
  if (!p.payload().text().empty()) {  // (whole: a text may hold NUL bytes, which %s stops at)
    std::printf("  text \"");
    std::fwrite(p.payload().text().data(), 1, p.payload().text().size(), stdout);
    std::printf("\"");
  }
  std::printf("\n");
}

}  // namespace

int Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  auto ctx = Context();
  grpc::Status s = health->Check(ctx.get(), req, &resp);
  if (!s.ok()) return RpcFail(s);
  std::printf("%s\n",
              grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()).c_str());
  // The server's partial states (service/server.h), said only when they fail. Exit status: 0 all
  // serve, 1 the server does not serve, 2 it serves but a part fails (it still answers searches).
  bool partial = false;
  const struct {
    const char* service;
    const char* what;
  } parts[] = {
      {"strata.v1.Strata/durability",
       "durability: NOT_SERVING (a collection is damaged, or acknowledged writes were "
       "dropped at start; `strata-cli list` and `stats` say which)"},
      {"strata.v1.Strata/writes",
       "writes: NOT_SERVING (the server refuses every write; `strata-cli stats` says why)"}};
  for (const auto& part : parts) {
    grpc::health::v1::HealthCheckRequest preq;
    preq.set_service(part.service);
    grpc::health::v1::HealthCheckResponse presp;
    auto pctx = Context();
    if (health->Check(pctx.get(), preq, &presp).ok() &&
        presp.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING) {
      std::printf("%s\n", part.what);
      partial = true;
    }
  }
  if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) return 1;
  return partial ? 2 : 0;
}

int List(const std::string& /*cmd*/, const std::vector<char*>& /*args*/, pb::Strata::Stub* stub) {
  pb::ListCollectionsResponse resp;
  grpc::Status s =
      Call(stub, &pb::Strata::Stub::ListCollections, pb::ListCollectionsRequest{}, &resp);
  if (!s.ok()) return RpcFail(s);
  if (resp.collections_size() == 0) std::printf("no collections\n");
  for (const auto& c : resp.collections()) PrintInfo(c);
  return 0;
}

int Stats(const std::string& /*cmd*/, const std::vector<char*>& /*args*/, pb::Strata::Stub* stub) {
  pb::StatsResponse resp;
  grpc::Status s = Call(stub, &pb::Strata::Stub::Stats, pb::StatsRequest{}, &resp);
  if (!s.ok()) return RpcFail(s);
  std::printf(
      "strata-server %s, up %.0f s: %u collections, %llu vectors, index RAM %.1f MiB, "
      "disk %.1f MiB, %llu pages read\n",
      resp.version().c_str(), resp.uptime_seconds(), resp.collections(),
      static_cast<unsigned long long>(resp.vectors()), resp.index_memory_bytes() / 1048576.0,
      resp.index_disk_bytes() / 1048576.0, static_cast<unsigned long long>(resp.disk_pages_read()));
  if (!resp.writes_refused().empty()) {
    std::printf("  WRITES REFUSED: %s\n", resp.writes_refused().c_str());
  }
  if (resp.damaged_collections() > 0) {
    std::printf("  damaged collections: %u (`strata-cli list` says why)\n",
                resp.damaged_collections());
  }
  if (resp.wal_recovery().damaged()) {
    std::printf(
        "  write-ahead log damaged at start: %llu acknowledged write batches dropped (%s)\n",
        static_cast<unsigned long long>(resp.wal_recovery().dropped_batches()),
        resp.wal_recovery().detail().c_str());
  }
  for (const auto& r : resp.rpcs()) {
    std::printf("  %-20s %8llu calls %6llu errors  mean %.3f ms\n", r.rpc().c_str(),
                static_cast<unsigned long long>(r.requests()),
                static_cast<unsigned long long>(r.errors()), r.mean_latency_ms());
  }
  if (resp.has_embed()) {
    const pb::EmbedEngineStats& e = resp.embed();
    std::printf(
        "  embedding: %s (%u-d) on %s: %llu requests in %llu batches, %llu texts, "
        "%llu tokens\n",
        e.model().c_str(), e.dimension(), e.backend().c_str(),
        static_cast<unsigned long long>(e.requests()), static_cast<unsigned long long>(e.batches()),
        static_cast<unsigned long long>(e.texts()), static_cast<unsigned long long>(e.tokens()));
  }
  if (resp.has_rerank()) {
    const pb::RerankStats& r = resp.rerank();
    std::printf("  reranking: %s on %s: %llu searches (%llu refused), %llu pairs, %llu tokens\n",
                r.model().c_str(), r.backend().c_str(), static_cast<unsigned long long>(r.calls()),
                static_cast<unsigned long long>(r.refused()),
                static_cast<unsigned long long>(r.pairs()),
                static_cast<unsigned long long>(r.tokens()));
  }
  if (resp.has_generation()) {
    const pb::GenerationStats& g = resp.generation();
    std::printf(
        "  generation: %s on %s: %llu done, %llu cancelled, %llu failed, %llu running, %llu "
        "queued, mean batch %.2f; passage KV cache %llu RAM + %llu SSD hits, %llu misses, "
        "%.1f MiB RAM, %.1f MiB SSD\n",
        g.model().c_str(), g.backend().c_str(), static_cast<unsigned long long>(g.completed()),
        static_cast<unsigned long long>(g.cancelled()), static_cast<unsigned long long>(g.failed()),
        static_cast<unsigned long long>(g.running()), static_cast<unsigned long long>(g.queued()),
        g.mean_batch(), static_cast<unsigned long long>(g.cache_ram_hits()),
        static_cast<unsigned long long>(g.cache_disk_hits()),
        static_cast<unsigned long long>(g.cache_misses()), g.cache_ram_bytes() / 1048576.0,
        g.cache_disk_bytes() / 1048576.0);
  }
  return 0;
}

int Embed(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  if (args.size() < 3) return Fail("embed needs one or more texts");
  pb::EmbedRequest req;
  for (size_t i = 2; i < args.size(); ++i) req.add_texts(args[i]);
  pb::EmbedResponse resp;
  grpc::Status s = Call(stub, &pb::Strata::Stub::Embed, req, &resp);
  if (!s.ok()) return RpcFail(s);
  std::printf(
      "%s, %u-d, %llu tokens%s\n", resp.model().c_str(), resp.dimension(),
      static_cast<unsigned long long>(resp.tokens()),
      resp.truncated() > 0 ? absl::StrCat(", ", resp.truncated(), " truncated").c_str() : "");
  for (int i = 0; i < resp.vectors_size(); ++i) {
    const auto& v = resp.vectors(i).values();
    double norm = 0;
    for (float x : v) norm += double(x) * x;
    std::printf("%d: norm %.4f [", i, std::sqrt(norm));
    for (int j = 0; j < std::min(6, v.size()); ++j) std::printf(j ? ", %.5f" : "%.5f", v[j]);
    std::printf(v.size() > 6 ? ", ...]\n" : "]\n");
  }
  return 0;
}

int Create(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  const std::string name = args[2];
  pb::CreateCollectionRequest req;
  req.set_name(name);
  if (absl::GetFlag(FLAGS_dim) == 0) return Fail("create needs --dim (the vectors' dimension)");
  req.set_dimension(absl::GetFlag(FLAGS_dim));
  std::string type = absl::GetFlag(FLAGS_type), metric = absl::GetFlag(FLAGS_metric);
  if (type == "float32") {
    req.set_element_type(pb::FLOAT32);
  } else if (type == "uint8") {
    req.set_element_type(pb::UINT8);
  } else if (type == "int8") {
    req.set_element_type(pb::INT8);
  } else {
    return Fail(absl::StrCat("--type must be float32, uint8 or int8, not '", type, "'"));
  }
  if (metric == "l2") {
    req.set_metric(pb::L2);
  } else if (metric == "ip") {
    req.set_metric(pb::INNER_PRODUCT);
  } else if (metric == "cosine") {
    req.set_metric(pb::COSINE);
  } else {
    return Fail(absl::StrCat("--metric must be l2, ip or cosine, not '", metric, "'"));
  }
  std::string encoding = absl::GetFlag(FLAGS_posting_encoding);
  if (encoding == "native") {
    req.mutable_index()->set_posting_encoding(pb::POSTING_NATIVE);
  } else if (encoding == "float16") {
    req.mutable_index()->set_posting_encoding(pb::POSTING_FLOAT16);
  } else {
    return Fail(absl::StrCat("--posting_encoding must be native or float16, not '", encoding, "'"));
  }
  req.mutable_index()->set_build_threshold(absl::GetFlag(FLAGS_build_threshold));
  for (const std::string& f : absl::GetFlag(FLAGS_text_fields)) req.add_text_fields(f);
  pb::CollectionInfo resp;
  grpc::Status s = Call(stub, &pb::Strata::Stub::CreateCollection, req, &resp);
  if (!s.ok()) return RpcFail(s);
  PrintInfo(resp);
  return 0;
}

int Tune(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  const std::string name = args[2];
  const std::string path = absl::GetFlag(FLAGS_questions);
  if (path.empty()) return Fail("tune needs --questions=FILE.jsonl (labelled questions)");
  auto req = strata::ReadLabelledQuestions(path, absl::GetFlag(FLAGS_max_questions));
  if (!req.ok()) return Fail(std::string(req.status().message()));
  req->set_collection(name);
  req->set_dry_run(absl::GetFlag(FLAGS_dry_run));
  grpc::Status s = strata::TuneHybridAndReport(stub, *req);
  return s.ok() ? 0 : RpcFail(s);
}

int DescribeOrBuild(const std::string& cmd, const std::vector<char*>& args,
                    pb::Strata::Stub* stub) {
  const std::string name = args[2];
  pb::CollectionInfo resp;
  grpc::Status s;
  if (cmd == "describe") {
    pb::DescribeCollectionRequest req;
    req.set_name(name);
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    s = Call(stub, &pb::Strata::Stub::DescribeCollection, req, &resp);
  } else {
    pb::BuildIndexRequest req;
    req.set_collection(name);
    s = Call(stub, &pb::Strata::Stub::BuildIndex, req, &resp);
    if (s.ok() && absl::GetFlag(FLAGS_wait)) {
      std::fprintf(stderr, "strata-cli: build %llu queued; waiting for it (--wait=false: don't)\n",
                   static_cast<unsigned long long>(resp.build().id()));
      s = strata::WaitForBuild(stub, name, resp.build().id(), &resp);
    }
  }
  if (!s.ok()) return RpcFail(s);
  PrintInfo(resp);
  return 0;
}

int Drop(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  const std::string name = args[2];
  pb::DropCollectionRequest req;
  req.set_name(name);
  pb::DropCollectionResponse resp;
  grpc::Status s = Call(stub, &pb::Strata::Stub::DropCollection, req, &resp);
  if (!s.ok()) return RpcFail(s);
  std::printf("dropped %s\n", name.c_str());
  return 0;
}

int Count(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  const std::string name = args[2];
  pb::CountRequest req;
  req.set_collection(name);
  req.set_tenant(absl::GetFlag(FLAGS_tenant));
  pb::CountResponse resp;
  grpc::Status s = Call(stub, &pb::Strata::Stub::Count, req, &resp);
  if (!s.ok()) return RpcFail(s);
  std::printf("%llu\n", static_cast<unsigned long long>(resp.count()));
  return 0;
}

int GetOrDelete(const std::string& cmd, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  const std::string name = args[2];
  std::vector<uint64_t> ids;
  if (absl::Status s = ParseIds(args, 3, &ids); !s.ok()) {
    return Fail(absl::StrCat(cmd, ": ", s.message()));
  }
  if (cmd == "delete") {
    pb::DeleteRequest req;
    req.set_collection(name);
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    for (uint64_t id : ids) req.add_ids(id);
    pb::DeleteResponse resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::Delete, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("deleted %llu of %zu\n", static_cast<unsigned long long>(resp.deleted()),
                ids.size());
    return 0;
  }
  pb::GetRequest req;
  req.set_collection(name);
  req.set_tenant(absl::GetFlag(FLAGS_tenant));
  for (uint64_t id : ids) req.add_ids(id);
  req.set_with_vector(absl::GetFlag(FLAGS_with_vector));
  req.set_with_payload(absl::GetFlag(FLAGS_with_payload));
  pb::GetResponse resp;
  grpc::Status s = Call(stub, &pb::Strata::Stub::Get, req, &resp);
  if (!s.ok()) return RpcFail(s);
  for (const auto& p : resp.points()) PrintPoint(p);
  for (uint64_t id : resp.missing_ids()) {
    std::printf("id %llu: not found\n", static_cast<unsigned long long>(id));
  }
  return resp.missing_ids_size() == 0 ? 0 : 1;
}

}  // namespace strata::cli
