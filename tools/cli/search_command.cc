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
#include "storage/vector_file.h"
#include "tools/cli/cli_util.h"
#include "tools/cli/commands.h"
#include "tools/client_channel.h"

ABSL_FLAG(std::string, vector, "", "search: the query as comma-separated numbers");
ABSL_FLAG(std::string, query_file, "", "search: read queries from a vector file instead");
ABSL_FLAG(std::string, text, "",
          "search: a text query, embedded by the server's model (strata-server --model_dir)");
ABSL_FLAG(std::string, fusion, "",
          "search --mode=hybrid: relative_score (default) or reciprocal_rank");
ABSL_FLAG(std::optional<double>, dense_weight, std::nullopt,
          "search --mode=hybrid: the dense side's weight in [0, 1] (default: the collection's "
          "learned weight, else 0.5)");
ABSL_FLAG(uint32_t, rerank, 0,
          "search --text: re-score this many best candidates (k to 100) with the server's "
          "cross-encoder (strata-server --reranker_model) and show the best k; 0 = no reranking");
ABSL_FLAG(int64_t, row, -1, "search: with --query_file, only this row (default: all rows)");
ABSL_FLAG(uint32_t, k, 10, "search: neighbours to return");
ABSL_FLAG(
    uint32_t, postings, 0,
    "search: postings to read (0 = the collection's default, tuned when its index was built)");
ABSL_FLAG(int, clients, 1, "search: concurrent client threads, each on its own connection");
constexpr int kMostClients = 256;  // (a thread and a connection each)
ABSL_FLAG(std::string, gt, "",
          "search: ground truth (big-ann .bin or .ivecs) for --query_file: print recall@k and "
          "latency over all queries instead of the hits");

namespace strata::cli {

namespace pb = ::strata::v1;

int Search(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  const std::string name = args[2];
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
    if (row < -1) return Fail(absl::StrCat("--row must be a row number, or -1 for all, not ", row));
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
  if (!ModeFlag(&mode)) return Fail("--mode must be dense, lexical or hybrid");
  if (const std::string f = absl::GetFlag(FLAGS_fusion); !f.empty()) {
    if (!pb::Fusion_Parse(absl::AsciiStrToUpper(f), &fusion) || fusion == pb::FUSION_UNSPECIFIED) {
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
    pb::Strata::Stub* own = stub;
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
      auto t0 = std::chrono::steady_clock::now();
      // (A search the server refused for now is made again: its time counts the pauses.)
      results[qi].status = Call(own, &pb::Strata::Stub::Search, req, &results[qi].resp);
      results[qi].ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
        std::printf("  \"%s\"", Abridged(h.payload().text(), 80).c_str());
      } else if (!h.payload().json().empty()) {
        std::printf("  %s", Abridged(h.payload().json(), 80).c_str());
      }
      std::printf("\n");
    }
    std::printf("(%s", pb::SearchMode_Name(r.resp.mode()).c_str());
    if (r.resp.mode() == pb::HYBRID) {
      std::printf(" by %s, dense weight %.2f", pb::Fusion_Name(r.resp.fusion()).c_str(),
                  r.resp.dense_weight());
    }
    std::printf("; %u postings, %u pages read, %u us on the server", r.resp.stats().postings_read(),
                r.resp.stats().pages_read(), r.resp.stats().server_micros());
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

}  // namespace strata::cli
