// strata-cli: talks to a running strata-server.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata.grpc.pb.h"
#include "service/server.h"
#include "storage/program_usage.h"
#include "storage/vector_file.h"
#include "tools/build_wait.h"
#include "tools/client_channel.h"
#include "tools/hybrid_tune.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "address of strata-server");
ABSL_FLAG(bool, wait, true,
          "build/repair: wait for the build to finish, showing its progress (else return once it "
          "is queued; `describe` follows it)");
ABSL_FLAG(double, timeout, 30, "seconds before a call gives up");
// create
ABSL_FLAG(uint32_t, dim, 0, "create: vector dimension");
ABSL_FLAG(std::string, type, "float32", "create: element type (float32, uint8, int8)");
ABSL_FLAG(std::string, metric, "l2", "create: metric (l2, ip, cosine)");
ABSL_FLAG(std::string, posting_encoding, "native",
          "create: how postings store vectors: native, or float16 (float32 only: half the disk and "
          "the pages each query reads, distances against float16-rounded vectors)");
ABSL_FLAG(uint64_t, build_threshold, 0, "create: vectors before the first index build (0 = 10000)");
// search
ABSL_FLAG(std::vector<std::string>, text_fields, {},
          "create: payload JSON fields indexed lexically with the payload text, e.g. title,tags");
ABSL_FLAG(std::string, vector, "", "search: the query as comma-separated numbers");
ABSL_FLAG(std::string, query_file, "", "search: read queries from a vector file instead");
ABSL_FLAG(std::string, text, "",
          "search: a text query, embedded by the server's model (strata-server --model_dir)");
ABSL_FLAG(std::string, mode, "",
          "search --text: dense, lexical (BM25 over the payload text) or hybrid (both, fused); "
          "default: the server's choice (hybrid when the collection has text and the server a "
          "model)");
ABSL_FLAG(std::string, fusion, "",
          "search --mode=hybrid: relative_score (default) or reciprocal_rank");
ABSL_FLAG(std::optional<double>, dense_weight, std::nullopt,
          "search --mode=hybrid: the dense side's weight in [0, 1] (default: the collection's "
          "learned weight, else 0.5)");
ABSL_FLAG(uint32_t, rerank, 0,
          "search --text: re-score this many best candidates (k to 100) with the server's "
          "cross-encoder (strata-server --reranker_model) and show the best k; 0 = no reranking");
ABSL_FLAG(std::string, questions, "",
          "tune: JSONL labelled questions, {\"question\": ..., \"relevant_ids\": [ids]}");
ABSL_FLAG(size_t, max_questions, 1024, "tune: questions sent at most (the server's --max_texts)");
ABSL_FLAG(bool, dry_run, false, "tune: report the weights without keeping the best");
ABSL_FLAG(int64_t, row, -1, "search: with --query_file, only this row (default: all rows)");
ABSL_FLAG(uint32_t, k, 10, "search: neighbours to return");
ABSL_FLAG(
    uint32_t, postings, 0,
    "search: postings to read (0 = the collection's default, tuned when its index was built)");
ABSL_FLAG(bool, with_payload, false, "search/get: return payloads");
ABSL_FLAG(std::string, tenant, "",
          "count/get/delete/search/ask: act in this tenant's view only (a tenant key with one "
          "tenant needs no --tenant)");
ABSL_FLAG(bool, keep_points, false,
          "tenant drop: keep the points the tenant created that no other tenant sees (default: "
          "delete them)");
ABSL_FLAG(std::string, label, "", "key create: a note shown by `key list` (who holds the key)");
ABSL_FLAG(std::string, max_points, "",
          "tenant create/quota: points the tenant may see (0 = no limit; quota: unset keeps it)");
ABSL_FLAG(std::string, max_rps, "",
          "tenant create/quota: calls per second the tenant's keys may make (0 = no limit; "
          "quota: unset keeps it)");
ABSL_FLAG(bool, with_vector, false, "search/get: return vectors");
ABSL_FLAG(int, clients, 1, "search: concurrent client threads, each on its own connection");
constexpr int kMostClients = 256;  // (a thread and a connection each)
// ask
ABSL_FLAG(uint32_t, passages, 4, "ask: passages the model reads (1 to 16)");
ABSL_FLAG(uint32_t, max_tokens, 256, "ask: tokens the answer may have at most");
ABSL_FLAG(double, temperature, 0, "ask: sampling temperature (0 = greedy)");
ABSL_FLAG(uint64_t, seed, 0, "ask: sampling seed");
ABSL_FLAG(double, repetition_penalty, 1.1,
          "ask: penalty on tokens among the last 64 (1 = none; small models loop without one)");
ABSL_FLAG(std::string, cache_mode, "int8",
          "ask: how the passages' keys and values come: int8, int4 or f16 (cached, computed once "
          "per passage), or full (every token computed for this question)");
ABSL_FLAG(std::optional<double>, recompute_ratio, std::nullopt,
          "ask: share of the cached passage tokens recomputed in this context (default 0.15)");
ABSL_FLAG(bool, quiet, false, "ask: print only the answer (no sources or timings)");
ABSL_FLAG(std::string, gt, "",
          "search: ground truth (big-ann .bin or .ivecs) for --query_file: print recall@k and "
          "latency over all queries instead of the hits");

namespace {

namespace pb = ::strata::v1;

const char kUsage[] =
    "Talks to a running strata-server.\n"
    "\n"
    "  strata-cli [--server=HOST:PORT] COMMAND [ARGS]\n"
    "\n"
    "  health                       the server's grpc.health.v1 status\n"
    "  list                         collections\n"
    "  create NAME --dim=D [--type=float32|uint8|int8] [--metric=l2|ip|cosine]\n"
    "                [--text_fields=title,...]\n"
    "  describe NAME                counts, sizes, index state\n"
    "  drop NAME\n"
    "  build NAME                   (re)build the collection's disk index now\n"
    "  repair NAME                  rebuild a damaged collection's index from its stored vectors\n"
    "  count NAME\n"
    "  search NAME --vector=1,2,3 | --query_file=F [--row=I] | --text=\"a question\"\n"
    "                [--mode=dense|lexical|hybrid --fusion=... --dense_weight=W] [--rerank=N]\n"
    "                               [--k=10] [--with_payload]\n"
    "                               with --gt=FILE: recall@k, QPS and latency over all queries\n"
    "                               (--clients=N: N concurrent connections)\n"
    "  get NAME ID...               [--with_vector] [--with_payload]\n"
    "  delete NAME ID...\n"
    "  embed TEXT...                embed texts with the server's model (vectors abridged)\n"
    "  ask NAME \"a question\"       answer from the collection's passages (RAG), streamed, then\n"
    "                               the sources [--passages=4 --max_tokens=256 --temperature=0\n"
    "                               --cache_mode=int8|int4|f16|full --recompute_ratio=0.15]\n"
    "  tune NAME --questions=F      learn the collection's hybrid dense weight from labelled\n"
    "                               questions [--dry_run] [--max_questions=1024]\n"
    "  stats                        server statistics\n"
    "\n"
    "  Tenants (admin key; see README, \"Tenants\"):\n"
    "  tenant create|drop|list NAME [TENANT] [--keep_points]\n"
    "                [--max_points=N --max_rps=R]   quotas (create, or `tenant quota`)\n"
    "  grant NAME TENANT ID...      let the tenant see these points\n"
    "  revoke NAME TENANT ID...     take them from its view\n"
    "  key create NAME TENANT[,TENANT...] [--label=TEXT]   prints the key, once\n"
    "  key revoke KEY_ID\n"
    "  key list [NAME]\n";

int Fail(const std::string& msg) {
  std::fprintf(stderr, "strata-cli: %s\n", msg.c_str());
  return 1;
}

int RpcFail(const grpc::Status& s) {
  std::string msg = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && !absl::StrContains(msg, "shutting down")) {
    // A plaintext call to a TLS server ends as a closed socket, not a refused connection or a
    // name that does not resolve: only then is TLS the likely cause.
    const bool may_be_tls = !strata::ClientUsesTls() &&
                            !absl::StrContains(msg, "Connection refused") &&
                            !absl::StrContains(msg, "DNS resolution failed");
    msg = absl::StrCat("cannot reach strata-server at ", absl::GetFlag(FLAGS_server), " (", msg,
                       may_be_tls ? "; a server with TLS needs --tls_ca_file or --tls)" : ")");
  }
  return Fail(absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
                           ": ", msg));
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_timeout) * 1000)));
  return ctx;
}

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
    std::printf("  lexical index: %llu points with text, %llu terms, %.1f MiB in memory\n",
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
  if (!p.payload().text().empty()) std::printf("  text \"%s\"", p.payload().text().c_str());
  std::printf("\n");
}

// The most words a command takes after its own (nullopt: a list of any length, or words the
// command checks itself). A word past them is a mistake to say, not to drop: `drop a b` must not
// drop only `a`.
std::optional<size_t> MaxWords(absl::string_view cmd, const std::vector<char*>& args) {
  static constexpr std::pair<absl::string_view, size_t> kFixed[] = {
      {"health", 0}, {"list", 0}, {"stats", 0}, {"create", 1}, {"describe", 1}, {"build", 1},
      {"repair", 1}, {"drop", 1}, {"count", 1}, {"search", 1}, {"tune", 1}};
  for (const auto& [name, most] : kFixed) {
    if (cmd == name) return most;
  }
  if (args.size() > 2) {
    const absl::string_view op = args[2];
    if (cmd == "tenant" && op == "list") return 2;  // tenant list NAME
    if (cmd == "key" && op == "list") return 2;     // key list [NAME]
  }
  return std::nullopt;
}

bool ParseIds(const std::vector<char*>& args, size_t from, std::vector<uint64_t>* ids) {
  for (size_t i = from; i < args.size(); ++i) {
    uint64_t v;
    if (!absl::SimpleAtoi(args[i], &v)) return false;
    ids->push_back(v);
  }
  return !ids->empty();
}

}  // namespace

int main(int argc, char** argv) {
  strata::SetProgramUsage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  if (!(absl::GetFlag(FLAGS_timeout) > 0)) return Fail("--timeout must be more than 0 seconds");
  const std::string cmd = args[1];
  static constexpr absl::string_view kCommands[] = {
      "health", "list",   "stats",  "create", "describe", "build", "repair",
      "drop",   "count",  "search", "get",    "delete",   "embed", "ask",
      "tune",   "tenant", "grant",  "revoke", "key"};
  if (std::find(std::begin(kCommands), std::end(kCommands), cmd) == std::end(kCommands)) {
    return Fail(absl::StrCat("unknown command '", cmd, "'; see --help"));
  }
  if (std::optional<size_t> most = MaxWords(cmd, args); most && args.size() > 2 + *most) {
    return Fail(absl::StrCat("'", cmd, "' takes at most ", *most, " argument",
                             *most == 1 ? "" : "s", "; unexpected '", args[2 + *most],
                             "'; see --help"));
  }
  auto made = strata::MakeClientChannel(absl::GetFlag(FLAGS_server));
  if (!made.ok()) return Fail(std::string(made.status().message()));
  std::shared_ptr<grpc::Channel> channel = *made;
  auto stub = pb::Strata::NewStub(channel);
  auto need_name = [&]() -> bool { return args.size() >= 3; };

  if (cmd == "health") {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    auto ctx = Context();
    grpc::Status s = health->Check(ctx.get(), req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("%s\n",
                grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()).c_str());
    return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }
  if (cmd == "list") {
    pb::ListCollectionsResponse resp;
    auto ctx = Context();
    grpc::Status s = stub->ListCollections(ctx.get(), {}, &resp);
    if (!s.ok()) return RpcFail(s);
    if (resp.collections_size() == 0) std::printf("no collections\n");
    for (const auto& c : resp.collections()) PrintInfo(c);
    return 0;
  }
  if (cmd == "stats") {
    pb::StatsResponse resp;
    auto ctx = Context();
    grpc::Status s = stub->Stats(ctx.get(), {}, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf(
        "strata-server %s, up %.0f s: %u collections, %llu vectors, index RAM %.1f MiB, "
        "disk %.1f MiB, %llu pages read\n",
        resp.version().c_str(), resp.uptime_seconds(), resp.collections(),
        static_cast<unsigned long long>(resp.vectors()), resp.index_memory_bytes() / 1048576.0,
        resp.index_disk_bytes() / 1048576.0,
        static_cast<unsigned long long>(resp.disk_pages_read()));
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
          static_cast<unsigned long long>(e.requests()),
          static_cast<unsigned long long>(e.batches()), static_cast<unsigned long long>(e.texts()),
          static_cast<unsigned long long>(e.tokens()));
    }
    if (resp.has_rerank()) {
      const pb::RerankStats& r = resp.rerank();
      std::printf(
          "  reranking: %s on %s: %llu searches (%llu refused), %llu pairs, %llu tokens\n",
          r.model().c_str(), r.backend().c_str(), static_cast<unsigned long long>(r.calls()),
          static_cast<unsigned long long>(r.refused()), static_cast<unsigned long long>(r.pairs()),
          static_cast<unsigned long long>(r.tokens()));
    }
    if (resp.has_generation()) {
      const pb::GenerationStats& g = resp.generation();
      std::printf(
          "  generation: %s on %s: %llu done, %llu cancelled, %llu failed, %llu running, %llu "
          "queued, mean batch %.2f; passage KV cache %llu RAM + %llu SSD hits, %llu misses, "
          "%.1f MiB RAM, %.1f MiB SSD\n",
          g.model().c_str(), g.backend().c_str(), static_cast<unsigned long long>(g.completed()),
          static_cast<unsigned long long>(g.cancelled()),
          static_cast<unsigned long long>(g.failed()), static_cast<unsigned long long>(g.running()),
          static_cast<unsigned long long>(g.queued()), g.mean_batch(),
          static_cast<unsigned long long>(g.cache_ram_hits()),
          static_cast<unsigned long long>(g.cache_disk_hits()),
          static_cast<unsigned long long>(g.cache_misses()), g.cache_ram_bytes() / 1048576.0,
          g.cache_disk_bytes() / 1048576.0);
    }
    return 0;
  }
  if (cmd == "embed") {
    if (args.size() < 3) return Fail("embed needs one or more texts");
    pb::EmbedRequest req;
    for (size_t i = 2; i < args.size(); ++i) req.add_texts(args[i]);
    pb::EmbedResponse resp;
    auto ctx = Context();
    grpc::Status s = stub->Embed(ctx.get(), req, &resp);
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
  if (!need_name()) return Fail(absl::StrCat("'", cmd, "' needs a collection name; see --help"));
  const std::string name = args[2];

  if (cmd == "create") {
    pb::CreateCollectionRequest req;
    req.set_name(name);
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
      return Fail(
          absl::StrCat("--posting_encoding must be native or float16, not '", encoding, "'"));
    }
    req.mutable_index()->set_build_threshold(absl::GetFlag(FLAGS_build_threshold));
    for (const std::string& f : absl::GetFlag(FLAGS_text_fields)) req.add_text_fields(f);
    pb::CollectionInfo resp;
    auto ctx = Context();
    grpc::Status s = stub->CreateCollection(ctx.get(), req, &resp);
    if (!s.ok()) return RpcFail(s);
    PrintInfo(resp);
    return 0;
  }
  if (cmd == "tune") {
    const std::string path = absl::GetFlag(FLAGS_questions);
    if (path.empty()) return Fail("tune needs --questions=FILE.jsonl (labelled questions)");
    auto req = strata::ReadLabelledQuestions(path, absl::GetFlag(FLAGS_max_questions));
    if (!req.ok()) return Fail(std::string(req.status().message()));
    req->set_collection(name);
    req->set_dry_run(absl::GetFlag(FLAGS_dry_run));
    grpc::Status s = strata::TuneHybridAndReport(stub.get(), *req);
    return s.ok() ? 0 : RpcFail(s);
  }
  if (cmd == "describe" || cmd == "build" || cmd == "repair") {
    pb::CollectionInfo resp;
    auto ctx = Context();
    grpc::Status s;
    if (cmd == "describe") {
      pb::DescribeCollectionRequest req;
      req.set_name(name);
      s = stub->DescribeCollection(ctx.get(), req, &resp);
    } else {
      pb::BuildIndexRequest req;
      req.set_collection(name);
      s = stub->BuildIndex(ctx.get(), req, &resp);
      if (s.ok() && absl::GetFlag(FLAGS_wait)) {
        std::fprintf(stderr,
                     "strata-cli: build %llu queued; waiting for it (--wait=false: don't)\n",
                     static_cast<unsigned long long>(resp.build().id()));
        s = strata::WaitForBuild(stub.get(), name, resp.build().id(), &resp);
      }
    }
    if (!s.ok()) return RpcFail(s);
    PrintInfo(resp);
    return 0;
  }
  if (cmd == "drop") {
    pb::DropCollectionRequest req;
    req.set_name(name);
    pb::DropCollectionResponse resp;
    auto ctx = Context();
    grpc::Status s = stub->DropCollection(ctx.get(), req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("dropped %s\n", name.c_str());
    return 0;
  }
  if (cmd == "tenant") {
    if (args.size() < 4) {
      return Fail("usage: strata-cli tenant create|drop|list|quota NAME [TENANT]");
    }
    const std::string op = args[2], coll = args[3];
    auto ctx = Context();
    if (op == "list") {
      pb::ListTenantsRequest req;
      req.set_collection(coll);
      pb::ListTenantsResponse resp;
      grpc::Status s = stub->ListTenants(ctx.get(), req, &resp);
      if (!s.ok()) return RpcFail(s);
      for (const pb::TenantInfo& t : resp.tenants()) {
        std::printf("%-24s %12llu points  %10.1f MiB of vectors", t.name().c_str(),
                    static_cast<unsigned long long>(t.points()), t.vector_bytes() / 1048576.0);
        if (t.quota().max_points() > 0) {
          std::printf("  max_points %llu", static_cast<unsigned long long>(t.quota().max_points()));
        }
        if (t.quota().max_requests_per_second() > 0) {
          std::printf("  max_rps %g", t.quota().max_requests_per_second());
        }
        std::printf("\n");
      }
      return 0;
    }
    if (args.size() != 5)
      return Fail(absl::StrCat("usage: strata-cli tenant ", op, " NAME TENANT"));
    // The quota flags given; `tenant quota` keeps what is not given.
    pb::TenantQuota quota;
    const std::string max_points = absl::GetFlag(FLAGS_max_points);
    const std::string max_rps = absl::GetFlag(FLAGS_max_rps);
    if (op == "quota") {
      if (max_points.empty() && max_rps.empty()) {
        return Fail("tenant quota needs --max_points and/or --max_rps");
      }
      pb::ListTenantsRequest lreq;
      lreq.set_collection(coll);
      pb::ListTenantsResponse have;
      auto lctx = Context();
      grpc::Status s = stub->ListTenants(lctx.get(), lreq, &have);
      if (!s.ok()) return RpcFail(s);
      for (const pb::TenantInfo& t : have.tenants()) {
        if (t.name() == args[4]) quota = t.quota();
      }
    }
    if (!max_points.empty()) {
      uint64_t v;
      if (!absl::SimpleAtoi(max_points, &v)) return Fail("--max_points must be an integer >= 0");
      quota.set_max_points(v);
    }
    if (!max_rps.empty()) {
      double v;
      if (!absl::SimpleAtod(max_rps, &v)) return Fail("--max_rps must be a number >= 0");
      quota.set_max_requests_per_second(v);
    }
    if (op == "create") {
      pb::CreateTenantRequest req;
      req.set_collection(coll);
      req.set_name(args[4]);
      *req.mutable_quota() = quota;
      pb::TenantInfo resp;
      grpc::Status s = stub->CreateTenant(ctx.get(), req, &resp);
      if (!s.ok()) return RpcFail(s);
      std::printf("tenant '%s' of '%s' created\n", args[4], coll.c_str());
      return 0;
    }
    if (op == "quota") {
      pb::SetTenantQuotaRequest req;
      req.set_collection(coll);
      req.set_name(args[4]);
      *req.mutable_quota() = quota;
      pb::TenantInfo resp;
      grpc::Status s = stub->SetTenantQuota(ctx.get(), req, &resp);
      if (!s.ok()) return RpcFail(s);
      std::printf("tenant '%s': max_points %llu, max_rps %g\n", args[4],
                  static_cast<unsigned long long>(resp.quota().max_points()),
                  resp.quota().max_requests_per_second());
      return 0;
    }
    if (op == "drop") {
      pb::DropTenantRequest req;
      req.set_collection(coll);
      req.set_name(args[4]);
      req.set_keep_points(absl::GetFlag(FLAGS_keep_points));
      pb::DropTenantResponse resp;
      grpc::Status s = stub->DropTenant(ctx.get(), req, &resp);
      if (!s.ok()) return RpcFail(s);
      std::printf(
          "tenant '%s' dropped: %llu points it created and only it saw %s, %u keys revoked\n",
          args[4], static_cast<unsigned long long>(resp.deleted_points()),
          req.keep_points() ? "kept" : "deleted", resp.revoked_keys());
      return 0;
    }
    return Fail(absl::StrCat("unknown tenant command '", op, "' (create, drop, list or quota)"));
  }
  if (cmd == "grant" || cmd == "revoke") {
    std::vector<uint64_t> ids;
    if (args.size() < 5 || !ParseIds(args, 4, &ids)) {
      return Fail(absl::StrCat("usage: strata-cli ", cmd, " NAME TENANT ID..."));
    }
    // In requests of the server's default batch limit: each is one write, so a failure leaves
    // the requests before it done (and says how far it got).
    const size_t per_request = strata::ServerLimits().max_batch;
    uint64_t changed = 0;
    size_t missing = 0;
    for (size_t at = 0; at < ids.size(); at += per_request) {
      pb::AccessRequest req;
      req.set_collection(args[2]);
      req.set_tenant(args[3]);
      for (size_t i = at; i < std::min(ids.size(), at + per_request); ++i) req.add_ids(ids[i]);
      pb::AccessResponse resp;
      auto ctx = Context();
      grpc::Status s = cmd == "grant" ? stub->GrantAccess(ctx.get(), req, &resp)
                                      : stub->RevokeAccess(ctx.get(), req, &resp);
      if (!s.ok()) {
        if (at > 0) {
          std::fprintf(stderr, "%s: the first %zu of %zu ids were done (%llu changed)\n",
                       cmd.c_str(), at, ids.size(), static_cast<unsigned long long>(changed));
        }
        return RpcFail(s);
      }
      changed += resp.changed();
      missing += static_cast<size_t>(resp.missing_ids_size());
    }
    std::printf("%s: %llu of %zu ids changed", cmd.c_str(),
                static_cast<unsigned long long>(changed), ids.size());
    if (missing > 0) std::printf(", %zu ids of no point", missing);
    std::printf("\n");
    return 0;
  }
  if (cmd == "key") {
    if (args.size() < 3) return Fail("usage: strata-cli key create|revoke|list ...");
    const std::string op = args[2];
    auto ctx = Context();
    if (op == "create") {
      if (args.size() != 5) return Fail("usage: strata-cli key create NAME TENANT[,TENANT...]");
      pb::CreateApiKeyRequest req;
      req.set_collection(args[3]);
      for (absl::string_view t : absl::StrSplit(args[4], ',', absl::SkipEmpty())) {
        req.add_tenants(std::string(t));
      }
      req.set_label(absl::GetFlag(FLAGS_label));
      pb::CreateApiKeyResponse resp;
      grpc::Status s = stub->CreateApiKey(ctx.get(), req, &resp);
      if (!s.ok()) return RpcFail(s);
      // The key alone on stdout (for a file); what it is, on stderr.
      std::printf("%s\n", resp.key().c_str());
      std::fprintf(stderr, "key %s for tenants %s of '%s': keep it secret, it is not shown again\n",
                   resp.info().key_id().c_str(), absl::StrJoin(resp.info().tenants(), ",").c_str(),
                   resp.info().collection().c_str());
      return 0;
    }
    if (op == "revoke") {
      if (args.size() != 4) return Fail("usage: strata-cli key revoke KEY_ID");
      pb::RevokeApiKeyRequest req;
      req.set_key_id(args[3]);
      pb::RevokeApiKeyResponse resp;
      grpc::Status s = stub->RevokeApiKey(ctx.get(), req, &resp);
      if (!s.ok()) return RpcFail(s);
      std::printf("key %s revoked\n", args[3]);
      return 0;
    }
    if (op == "list") {
      pb::ListApiKeysRequest req;
      if (args.size() > 3) req.set_collection(args[3]);
      pb::ListApiKeysResponse resp;
      grpc::Status s = stub->ListApiKeys(ctx.get(), req, &resp);
      if (!s.ok()) return RpcFail(s);
      // A label is the admin's free text: control characters (a newline, a terminal's escape
      // sequence) are shown as \xNN, not sent to the terminal.
      const auto printable = [](const std::string& text) {
        std::string out;
        for (char c : text) {
          const auto u = static_cast<unsigned char>(c);
          if (u < 0x20 || u == 0x7F) {
            absl::StrAppendFormat(&out, "\\x%02x", u);
          } else {
            out.push_back(c);
          }
        }
        return out;
      };
      for (const pb::ApiKeyInfo& k : resp.keys()) {
        std::printf("%s  %-20s %-30s %s\n", k.key_id().c_str(), k.collection().c_str(),
                    absl::StrJoin(k.tenants(), ",").c_str(), printable(k.label()).c_str());
      }
      return 0;
    }
    return Fail(absl::StrCat("unknown key command '", op, "' (create, revoke or list)"));
  }
  if (cmd == "count") {
    pb::CountRequest req;
    req.set_collection(name);
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    pb::CountResponse resp;
    auto ctx = Context();
    grpc::Status s = stub->Count(ctx.get(), req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("%llu\n", static_cast<unsigned long long>(resp.count()));
    return 0;
  }
  if (cmd == "get" || cmd == "delete") {
    std::vector<uint64_t> ids;
    if (!ParseIds(args, 3, &ids)) return Fail(absl::StrCat(cmd, " needs ids (unsigned integers)"));
    auto ctx = Context();
    if (cmd == "delete") {
      pb::DeleteRequest req;
      req.set_collection(name);
      req.set_tenant(absl::GetFlag(FLAGS_tenant));
      for (uint64_t id : ids) req.add_ids(id);
      pb::DeleteResponse resp;
      grpc::Status s = stub->Delete(ctx.get(), req, &resp);
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
    grpc::Status s = stub->Get(ctx.get(), req, &resp);
    if (!s.ok()) return RpcFail(s);
    for (const auto& p : resp.points()) PrintPoint(p);
    for (uint64_t id : resp.missing_ids()) {
      std::printf("id %llu: not found\n", static_cast<unsigned long long>(id));
    }
    return resp.missing_ids_size() == 0 ? 0 : 1;
  }
  if (cmd == "ask") {
    if (args.size() < 4) return Fail("usage: strata-cli ask COLLECTION \"a question\"");
    pb::GenerateRequest req;
    req.set_collection(args[2]);
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    std::string question;
    for (size_t i = 3; i < args.size(); ++i) absl::StrAppend(&question, i > 3 ? " " : "", args[i]);
    req.set_question(question);
    if (absl::GetFlag(FLAGS_passages) == 0) return Fail("--passages must be 1 to 16");
    req.set_k(absl::GetFlag(FLAGS_passages));
    req.mutable_params()->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
    req.mutable_params()->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
    req.mutable_params()->set_seed(absl::GetFlag(FLAGS_seed));
    req.mutable_params()->set_repetition_penalty(
        static_cast<float>(absl::GetFlag(FLAGS_repetition_penalty)));
    const std::string mode = absl::AsciiStrToLower(absl::GetFlag(FLAGS_cache_mode));
    if (mode == "int8") {
      req.set_cache_mode(pb::CACHED_INT8);
    } else if (mode == "int4") {
      req.set_cache_mode(pb::CACHED_INT4);
    } else if (mode == "f16") {
      req.set_cache_mode(pb::CACHED_F16);
    } else if (mode == "full") {
      req.set_cache_mode(pb::FULL_PREFILL);
    } else {
      return Fail("--cache_mode must be int8, int4, f16 or full");
    }
    if (auto r = absl::GetFlag(FLAGS_recompute_ratio)) {
      req.set_recompute_ratio(static_cast<float>(*r));
    }
    // Answers take a while on a CPU: at least ten minutes before giving up.
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(
                         std::max(600.0, absl::GetFlag(FLAGS_timeout)) * 1000)));
    auto reader = stub->Generate(&ctx, req);
    pb::GenerateResponse msg;
    pb::GenerateSummary summary;
    bool got_summary = false, wrote = false;
    while (reader->Read(&msg)) {
      if (msg.has_summary()) {
        summary = msg.summary();
        got_summary = true;
      } else {
        std::fwrite(msg.text().data(), 1, msg.text().size(), stdout);
        std::fflush(stdout);
        wrote = true;
      }
    }
    grpc::Status s = reader->Finish();
    if (wrote) std::printf("\n");  // (the answer's line ends; a refused call printed none)
    if (!s.ok()) return RpcFail(s);
    if (!got_summary || absl::GetFlag(FLAGS_quiet)) return 0;
    std::printf("\nSources:\n");
    for (const pb::Citation& c : summary.citations()) {
      std::string text = c.payload().text();
      for (char& ch : text) ch = ch == '\n' ? ' ' : ch;
      if (text.size() > 90) text = absl::StrCat(text.substr(0, 87), "...");
      std::string title;
      if (!c.payload().json().empty()) {
        title = absl::StrCat(" ", c.payload().json().substr(0, 80));
      }
      std::printf("  [%u] id %llu (score %.3f)%s\n      %s\n", c.number(),
                  static_cast<unsigned long long>(c.id()), c.score(), title.c_str(), text.c_str());
    }
    std::fflush(stdout);  // the sources before the figures (stderr is unbuffered)
    const pb::GenerationUsage& u = summary.usage();
    const pb::GenerationTimings& t = summary.timings();
    const pb::KvCacheReport& kv = summary.cache();
    std::fprintf(stderr,
                 "strata-cli: %s retrieval, %u prompt tokens (%u from passage KV entries, %u "
                 "recomputed), %u generated (%s); TTFT %.0f ms (retrieval %.0f, passage KV %.0f, "
                 "prefill %.0f), %.1f ms/token; cache %s: %u RAM + %u SSD hits, %u computed; "
                 "model %s\n",
                 absl::AsciiStrToLower(pb::SearchMode_Name(summary.retrieval_mode())).c_str(),
                 u.prompt_tokens(), u.cached_tokens(), u.recomputed_tokens(), u.generated_tokens(),
                 summary.finish_reason().c_str(), t.ttft_ms(), t.retrieval_ms(), t.kv_ms(),
                 t.prefill_ms(), t.per_token_ms(),
                 kv.format().empty() ? "off (full prefill)" : kv.format().c_str(), kv.ram_hits(),
                 kv.disk_hits(), kv.misses(), summary.model().c_str());
    return 0;
  }
  if (cmd == "search") {
    if (const int c = absl::GetFlag(FLAGS_clients); c < 1 || c > kMostClients) {
      return Fail(absl::StrCat("--clients must be 1 to ", kMostClients, ", not ", c));
    }
    std::vector<pb::Vector> queries;
    std::string text = absl::GetFlag(FLAGS_vector), file = absl::GetFlag(FLAGS_query_file);
    const std::string question = absl::GetFlag(FLAGS_text);
    const int given = int(!text.empty()) + int(!file.empty()) + int(!question.empty());
    if (given == 0) return Fail("search needs one of --vector, --query_file or --text");
    if (given > 1) return Fail("search takes only one of --vector, --query_file and --text");
    if (!question.empty()) {
      queries.emplace_back();  // a placeholder: the request carries the text
    } else if (!text.empty()) {
      pb::Vector v;
      for (absl::string_view part : absl::StrSplit(text, ',')) {
        float f;
        if (!absl::SimpleAtof(absl::StripAsciiWhitespace(part), &f)) {
          return Fail(absl::StrCat("--vector: '", part, "' is not a number"));
        }
        v.add_values(f);
      }
      queries.push_back(v);
    } else {
      auto set = strata::ReadVectors(file);
      if (!set.ok()) return Fail(std::string(set.status().message()));
      int64_t row = absl::GetFlag(FLAGS_row);
      if (row < -1)
        return Fail(absl::StrCat("--row must be a row number, or -1 for all, not ", row));
      if (row >= static_cast<int64_t>(set->n)) {
        return Fail(absl::StrCat("--row ", row, " is past the file's ", set->n, " rows"));
      }
      // As numbers, not the file's bytes: the server checks them against the collection's
      // dimension and element type (a uint8 file's rows search a float32 collection; bytes
      // would be read in the collection's type, whatever the file's).
      for (uint64_t i = row < 0 ? 0 : row; i < (row < 0 ? set->n : row + 1); ++i) {
        pb::Vector v;
        for (float x : strata::RowsAsFloat(*set, i, 1)) v.add_values(x);
        queries.push_back(v);
      }
    }
    pb::SearchMode mode = pb::SEARCH_MODE_UNSPECIFIED;
    pb::Fusion fusion = pb::FUSION_UNSPECIFIED;
    const std::optional<double> dense_weight = absl::GetFlag(FLAGS_dense_weight);
    if (const std::string m = absl::GetFlag(FLAGS_mode); !m.empty()) {
      if (!pb::SearchMode_Parse(absl::AsciiStrToUpper(m), &mode) ||
          mode == pb::SEARCH_MODE_UNSPECIFIED) {
        return Fail("--mode must be dense, lexical or hybrid");
      }
    }
    if (const std::string f = absl::GetFlag(FLAGS_fusion); !f.empty()) {
      if (!pb::Fusion_Parse(absl::AsciiStrToUpper(f), &fusion) ||
          fusion == pb::FUSION_UNSPECIFIED) {
        return Fail("--fusion must be relative_score or reciprocal_rank");
      }
    }
    const uint32_t rerank = absl::GetFlag(FLAGS_rerank);
    if (question.empty() &&
        (mode != pb::SEARCH_MODE_UNSPECIFIED || fusion != pb::FUSION_UNSPECIFIED ||
         dense_weight.has_value() || rerank > 0)) {
      return Fail("--mode, --fusion, --dense_weight and --rerank go with --text");
    }
    std::string gt_path = absl::GetFlag(FLAGS_gt);
    strata::GroundTruth gt;
    const uint32_t k = absl::GetFlag(FLAGS_k);
    if (!gt_path.empty()) {
      auto g = strata::ReadGroundTruth(gt_path);
      if (!g.ok()) return Fail(std::string(g.status().message()));
      gt = std::move(*g);
      if (file.empty() || absl::GetFlag(FLAGS_row) >= 0 || gt.n != queries.size() || gt.k < k) {
        return Fail(
            "--gt needs --query_file without --row, with one ground-truth row per query "
            "and at least k neighbours");
      }
    }
    // Queries are spread round-robin over --clients threads, each on its own connection.
    struct Result {
      grpc::Status status;
      pb::SearchResponse resp;
      double ms = 0;
    };
    std::vector<Result> results(queries.size());
    const int clients = absl::GetFlag(FLAGS_clients);
    auto worker = [&](int c) {
      std::unique_ptr<pb::Strata::Stub> mine;
      pb::Strata::Stub* own = stub.get();
      if (c > 0) {
        grpc::ChannelArguments args;
        args.SetInt("strata.client", c);  // distinct arguments: a connection of its own
        auto own_channel = strata::MakeClientChannel(absl::GetFlag(FLAGS_server), args);
        if (!own_channel.ok()) return;  // the first channel, made the same way, was made
        mine = pb::Strata::NewStub(*own_channel);
        own = mine.get();
      }
      for (size_t qi = static_cast<size_t>(c); qi < queries.size(); qi += clients) {
        pb::SearchRequest req;
        req.set_collection(name);
        req.set_tenant(absl::GetFlag(FLAGS_tenant));
        if (question.empty()) {
          *req.mutable_query() = queries[qi];
        } else {
          req.set_text(question);
          req.set_mode(mode);
          req.set_fusion(fusion);
          if (dense_weight.has_value()) req.set_dense_weight(static_cast<float>(*dense_weight));
          req.set_rerank(rerank);
        }
        req.set_k(k);
        req.mutable_params()->set_max_postings(absl::GetFlag(FLAGS_postings));
        req.set_with_payload(absl::GetFlag(FLAGS_with_payload));
        req.set_with_vector(absl::GetFlag(FLAGS_with_vector));
        auto ctx = Context();
        auto t0 = std::chrono::steady_clock::now();
        results[qi].status = own->Search(ctx.get(), req, &results[qi].resp);
        results[qi].ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
      }
    };
    auto wall0 = std::chrono::steady_clock::now();
    {
      std::vector<std::thread> threads;
      for (int c = 1; c < clients; ++c) threads.emplace_back(worker, c);
      worker(0);
      for (auto& t : threads) t.join();
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();

    std::vector<double> latency_ms;
    uint64_t hits_found = 0, server_us = 0;
    int failures = 0;
    for (size_t qi = 0; qi < queries.size(); ++qi) {
      const Result& r = results[qi];
      latency_ms.push_back(r.ms);
      if (!r.status.ok()) {
        if (++failures <= 3) RpcFail(r.status);  // the first few; the count comes at the end
        continue;
      }
      if (!gt_path.empty()) {
        std::set<int64_t> truth(gt.ids.begin() + static_cast<ptrdiff_t>(qi * gt.k),
                                gt.ids.begin() + static_cast<ptrdiff_t>(qi * gt.k + k));
        for (const auto& h : r.resp.hits()) {
          hits_found += truth.count(static_cast<int64_t>(h.id()));
        }
        server_us += r.resp.stats().server_micros();
        continue;
      }
      if (queries.size() > 1) std::printf("query %zu:\n", qi);
      for (int i = 0; i < r.resp.hits_size(); ++i) {
        const pb::Hit& h = r.resp.hits(i);
        if (h.has_scores()) {
          std::printf("%3d  id %-12llu", i + 1, static_cast<unsigned long long>(h.id()));
          if (r.resp.mode() != pb::DENSE) std::printf(" score %-10.4g", h.scores().score());
          if (h.scores().has_dense_distance()) {
            std::printf(" dense %-10.4g", h.scores().dense_distance());
          }
          if (h.scores().has_lexical_score()) {
            std::printf(" bm25 %-8.4g", h.scores().lexical_score());
          }
          if (h.scores().has_rerank_score()) {
            std::printf(" rerank %-8.4g", h.scores().rerank_score());
          }
        } else {
          std::printf("%3d  id %-12llu distance %-12g", i + 1,
                      static_cast<unsigned long long>(h.id()), h.distance());
        }
        if (!h.payload().text().empty()) {
          std::string t = h.payload().text().substr(0, 80);
          std::printf("  \"%s\"", t.c_str());
        } else if (!h.payload().json().empty()) {
          std::printf("  %s", h.payload().json().substr(0, 80).c_str());
        }
        std::printf("\n");
      }
      std::printf("(%s", pb::SearchMode_Name(r.resp.mode()).c_str());
      if (r.resp.mode() == pb::HYBRID) {
        std::printf(" by %s, dense weight %.2f", pb::Fusion_Name(r.resp.fusion()).c_str(),
                    r.resp.dense_weight());
      }
      std::printf("; %u postings, %u pages read, %u us on the server",
                  r.resp.stats().postings_read(), r.resp.stats().pages_read(),
                  r.resp.stats().server_micros());
      if (r.resp.stats().embed_micros() > 0) {
        std::printf(", of which %u embedding the query", r.resp.stats().embed_micros());
      }
      if (r.resp.reranked() > 0) {
        std::printf(", %u reranking %u candidates", r.resp.stats().rerank_micros(),
                    r.resp.reranked());
      }
      std::printf(")\n");
    }
    if (!gt_path.empty() && failures == 0) {
      std::vector<double> sorted = latency_ms;
      std::sort(sorted.begin(), sorted.end());
      double mean = 0;
      for (double v : sorted) mean += v / sorted.size();
      std::printf(
          "%zu queries over gRPC, %d client(s): recall@%u %.4f; %.0f QPS; latency mean %.3f ms, "
          "p50 %.3f, p99 %.3f (server-side mean %.3f ms)\n",
          queries.size(), clients, k, double(hits_found) / (double(queries.size()) * k),
          queries.size() / wall, mean, sorted[sorted.size() / 2], sorted[sorted.size() * 99 / 100],
          server_us / 1000.0 / queries.size());
    }
    if (failures > 0) {
      return Fail(absl::StrCat(failures, " of ", queries.size(), " queries failed"));
    }
    return 0;
  }
  return Fail(absl::StrCat("unknown command '", cmd, "'; see --help"));
}
