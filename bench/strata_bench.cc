// strata-bench: recall / latency / QPS of Strata's disk index beside FAISS peers, on one data set,
// in one run. Builds the index (or opens it), measures the device's random-read IOPS, sweeps search
// parameters, and writes a table, CSV, JSON and a recall-QPS plot.
#include <omp.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/harness.h"
#include "bench/iops.h"
#include "bench/peers.h"
#include "index/spann_index.h"
#include "storage/log.h"
#include "storage/program_usage.h"
#include "tools/progress.h"

ABSL_FLAG(std::string, base, "",
          "base vectors (.fbin/.u8bin/.i8bin/.fvecs/.bvecs); needed to build");
ABSL_FLAG(std::string, queries, "", "query vectors (required)");
ABSL_FLAG(std::string, gt, "", "ground truth, big-ann layout or .ivecs (required)");
ABSL_FLAG(std::string, index, "",
          "index directory: opened if it holds an index, else built (required)");
ABSL_FLAG(std::string, metric, "l2", "l2, ip or cosine (for builds)");
ABSL_FLAG(double, head_share, 0,
          "heads / vectors (build; 0 = by type: 0.16 float32, 0.10 uint8/int8)");
ABSL_FLAG(uint32_t, max_replicas, 8, "replicas per vector (build)");
ABSL_FLAG(uint32_t, page_limit, 0, "posting length cap in 4 KiB pages (build; 0 = type default)");
ABSL_FLAG(
    std::string, posting_encoding, "native",
    "vectors in postings (build): native, or float16 (float32 only: half the pages per query)");
ABSL_FLAG(int, hnsw_m, 16, "links per head in the navigation graph (build)");
ABSL_FLAG(uint32_t, k, 10, "neighbours per query");
ABSL_FLAG(std::string, postings, "0,2,4,6,8,12,16,24,32,48,64",
          "max_postings values to sweep; 0 = the index's default, tuned at build time (none: only "
          "the peers)");
ABSL_FLAG(double, prune_ratio, 8.0, "query-aware pruning ratio (0 = off)");
ABSL_FLAG(uint32_t, ef_search, 0, "beam of the head-graph search (0 = max(64, 2 * postings))");
ABSL_FLAG(std::string, threads, "1,2", "thread counts for QPS");
ABSL_FLAG(uint64_t, max_queries, 0, "use only the first N queries (0 = all)");
ABSL_FLAG(std::string, peers, "ivfflat,ivfpq,hnsw,ivfdisk",
          "FAISS peers to run beside Strata, or none");
ABSL_FLAG(std::string, peer_dir, "", "where peer indexes are cached (default: <index>.peers)");
ABSL_FLAG(std::string, out, "", "output prefix for .csv/.json/.png (default: <index>/bench)");
ABSL_FLAG(std::string, io_engine, "auto", "auto, io_uring or pread");
ABSL_FLAG(double, iops_seconds, 3.0, "seconds spent measuring device IOPS (0 = skip)");
ABSL_FLAG(int, build_threads, 0, "threads for builds (0 = all cores)");

namespace strata::bench {
namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "strata-bench: %s\n", msg.c_str());
  return 1;
}

template <typename T>
bool ParseList(const std::string& s, std::vector<T>* out) {
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    T v;
    if (!absl::SimpleAtoi(part, &v)) return false;
    out->push_back(v);
  }
  return !out->empty();
}

void PrintRow(const RunResult& r, double io_bound_qps) {
  std::string qps;
  for (size_t i = 0; i < r.qps.size(); ++i) absl::StrAppendFormat(&qps, " %9.0f", r.qps[i]);
  std::printf(
      "%-22s %-14s %7.4f %7.4f%s %8.3f %8.3f %8.3f %8.1f %9.1f %9.1f%s\n", r.system.c_str(),
      r.params.c_str(), r.recall1, r.recall10, qps.c_str(), r.mean_ms, r.p50_ms, r.p99_ms,
      r.pages_per_query, r.bytes_per_query / 1024, r.ram_mb,
      io_bound_qps > 0 ? absl::StrFormat(" %9.0f  %s", io_bound_qps, r.breakdown).c_str() : "");
  std::fflush(stdout);
}

int Main() {
  const std::string queries_path = absl::GetFlag(FLAGS_queries);
  const std::string gt_path = absl::GetFlag(FLAGS_gt);
  const std::string index_dir = absl::GetFlag(FLAGS_index);
  if (queries_path.empty() || gt_path.empty() || index_dir.empty()) {
    return Fail("--queries, --gt and --index are required (see --help)");
  }
  std::vector<int> threads;
  std::vector<uint32_t> sweep;
  if (!ParseList(absl::GetFlag(FLAGS_threads), &threads)) return Fail("bad --threads list");
  if (absl::GetFlag(FLAGS_postings) != "none" &&
      !ParseList(absl::GetFlag(FLAGS_postings), &sweep)) {
    return Fail("bad --postings list (comma-separated counts, or none to run only the peers)");
  }
  std::vector<PeerKind> peers;
  if (absl::GetFlag(FLAGS_peers) != "none") {
    for (absl::string_view p : absl::StrSplit(absl::GetFlag(FLAGS_peers), ',', absl::SkipEmpty())) {
      auto kind = ParsePeer(std::string(p));
      if (!kind.ok()) return Fail(std::string(kind.status().message()));
      peers.push_back(*kind);
    }
  }
  auto metric = ParseMetric(absl::GetFlag(FLAGS_metric));
  if (!metric.ok()) return Fail(std::string(metric.status().message()));
  BlockFileOptions io;
  std::string engine = absl::GetFlag(FLAGS_io_engine);
  if (engine == "io_uring")
    io.engine = IoEngine::kIoUring;
  else if (engine == "pread")
    io.engine = IoEngine::kPread;
  else if (engine != "auto")
    return Fail("--io_engine must be auto, io_uring or pread");
  const uint32_t k = absl::GetFlag(FLAGS_k);

  auto queries = ReadVectors(queries_path);
  if (!queries.ok()) return Fail(queries.status().ToString());
  auto gt = ReadGroundTruth(gt_path);
  if (!gt.ok()) return Fail(gt.status().ToString());
  uint64_t nq = std::min<uint64_t>(queries->n, gt->n);
  if (absl::GetFlag(FLAGS_max_queries)) nq = std::min(nq, absl::GetFlag(FLAGS_max_queries));
  if (gt->k < k)
    return Fail(absl::StrCat("ground truth has only ", gt->k, " neighbours per query"));

  // Build if needed.
  double build_s = -1, build_peak_rss = 0;
  std::unique_ptr<VectorSet> base;
  auto load_base = [&]() -> absl::Status {
    if (base) return absl::OkStatus();
    if (absl::GetFlag(FLAGS_base).empty()) return absl::InvalidArgumentError("--base is needed");
    auto b = ReadVectors(absl::GetFlag(FLAGS_base));
    if (!b.ok()) return b.status();
    base = std::make_unique<VectorSet>(std::move(*b));
    return absl::OkStatus();
  };
  if (!std::filesystem::exists(index_dir + "/MANIFEST")) {
    if (auto s = load_base(); !s.ok())
      return Fail(absl::StrCat("building the index: ", s.message()));
    SpannBuildOptions o;
    o.metric = *metric;
    o.head_share = absl::GetFlag(FLAGS_head_share);
    o.max_replicas = absl::GetFlag(FLAGS_max_replicas);
    o.posting_page_limit = absl::GetFlag(FLAGS_page_limit);
    auto encoding = ParsePostingEncoding(absl::GetFlag(FLAGS_posting_encoding));
    if (!encoding.ok()) return Fail(encoding.status().ToString());
    o.posting_encoding = *encoding;
    o.hnsw_m = absl::GetFlag(FLAGS_hnsw_m);
    o.threads = absl::GetFlag(FLAGS_build_threads);
    ProgressBar bar("build", 1);
    std::string phase;
    o.progress = [&](const char* p, uint64_t done, uint64_t total) {
      if (phase != p) {
        phase = p;
        bar.Restart(absl::StrCat("build: ", p), total);
      }
      bar.Update(done);
    };
    SpannBuildStats stats;
    auto t0 = std::chrono::steady_clock::now();
    absl::Status s = SpannIndex::Build(*base, index_dir, o, &stats);
    bar.Finish();
    if (!s.ok()) return Fail(s.ToString());
    build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    build_peak_rss = PeakRssMb();
    std::printf(
        "build: %.1f s (clustering %.1f, head graph %.1f, assignment %.1f, write %.1f), "
        "%llu heads, %.2f replicas/vector, peak RSS %.0f MiB (input set included)\n",
        build_s, stats.seconds_clustering, stats.seconds_head_index, stats.seconds_assign,
        stats.seconds_write, (unsigned long long)stats.heads, double(stats.entries) / stats.vectors,
        build_peak_rss);
  }
  base.reset();  // free the input before measuring Strata's own memory

  SpannOpenOptions open_opt;
  open_opt.io = io;
  auto index = SpannIndex::Open(index_dir, open_opt);
  if (!index.ok()) return Fail(index.status().ToString());
  if ((*index)->element_type() != queries->type || (*index)->dim() != queries->dim) {
    return Fail("queries do not match the index (type or dimension)");
  }
  const double raw_mb = double((*index)->size()) * queries->row_bytes() / 1048576.0;
  const double own_mb = (*index)->MemoryBytes() / 1048576.0;
  const double rss_mb = CurrentRssMb();

  double iops = 0, qd1_us = 0;
  int iops_threads = 1;
  if (absl::GetFlag(FLAGS_iops_seconds) > 0) {
    // The device's best: one and two threads, each with 64 reads in flight.
    for (int t : {1, 2}) {
      auto r = MeasureRandomReadIops(index_dir + "/postings.dat", absl::GetFlag(FLAGS_iops_seconds),
                                     t, 64);
      if (!r.ok()) return Fail(r.status().ToString());
      if (r->iops > iops) iops_threads = t;
      iops = std::max(iops, r->iops);
      qd1_us = r->qd1_latency_us;
    }
  }
  std::printf(
      "\nindex: %llu %s vectors (%s postings), d=%u, %llu heads, io engine %s; own RAM %.1f MiB "
      "= %.1f%% of the raw vectors (%.1f MiB); process RSS %.1f MiB; disk %.1f MiB\n",
      (unsigned long long)(*index)->size(), ElementTypeName((*index)->element_type()),
      PostingEncodingName((*index)->posting_encoding()), (*index)->dim(),
      (unsigned long long)(*index)->num_heads(), IoEngineName((*index)->io_engine()), own_mb,
      100 * own_mb / raw_mb, raw_mb, rss_mb, (*index)->DiskBytes() / 1048576.0);
  std::printf(
      "default search budget: %u postings, tuned to recall@10 %.4f on the index's own "
      "vectors\n",
      (*index)->default_max_postings(), (*index)->tuned_recall());
  if (iops > 0) {
    std::printf(
        "device: %.0f random 4 KiB reads/s (O_DIRECT io_uring, QD 64 per thread, best at %d "
        "thread(s)); QD1 latency %.0f us\n",
        iops, iops_threads, qd1_us);
  }
  std::printf("queries: %llu, k=%u\n\n", (unsigned long long)nq, k);
  std::string qps_hdr;
  for (int t : threads) absl::StrAppendFormat(&qps_hdr, "  QPS@%-4d", t);
  std::printf("%-22s %-14s %7s %7s%s %8s %8s %8s %8s %9s %9s %9s\n", "system", "params", "R@1",
              "R@10", qps_hdr.c_str(), "mean_ms", "p50_ms", "p99_ms", "pages/q", "KiB/q", "RAM_MiB",
              "IObound  per-query time (mean over all passes)");

  std::vector<RunResult> results;
  for (uint32_t mp : sweep) {
    SearchParams p;
    p.max_postings = mp;
    p.prune_ratio = static_cast<float>(absl::GetFlag(FLAGS_prune_ratio));
    p.ef_search = absl::GetFlag(FLAGS_ef_search);
    const SpannIndex& idx = **index;
    const VectorSet& qs = *queries;
    std::atomic<uint64_t> nav_us{0}, io_us{0}, dist_us{0}, calls{0};
    SearchFn fn = [&](uint64_t q, std::vector<int64_t>* ids, uint64_t* pages) -> absl::Status {
      std::vector<Neighbor> res;
      SearchStats st;
      absl::Status s = idx.Search({qs.type, {qs.row(q), qs.row_bytes()}}, k, p, &res, &st);
      nav_us += st.navigation_us;
      io_us += st.io_wait_us;
      dist_us += st.distance_us;
      ++calls;
      ids->clear();
      for (const auto& n : res) ids->push_back(n.id);
      *pages = st.pages_read;
      return s;
    };
    RunResult r;
    r.system = "strata-spann";
    r.params = mp == 0 ? absl::StrCat("postings=default(", idx.default_max_postings(), ")")
                       : absl::StrCat("postings=", mp);
    if (auto s = Measure(fn, nq, *gt, k, threads, &r); !s.ok()) return Fail(s.ToString());
    r.ram_mb = own_mb;
    r.build_s = build_s;
    r.breakdown = absl::StrFormat("nav %.0f / io %.0f / dist %.0f us", double(nav_us) / calls,
                                  double(io_us) / calls, double(dist_us) / calls);
    PrintRow(r, iops > 0 && r.pages_per_query > 0 ? iops / r.pages_per_query : 0);
    results.push_back(r);
  }

  for (PeerKind kind : peers) {
    if (auto s = load_base(); !s.ok()) return Fail(absl::StrCat("peers: ", s.message()));
    std::string dir = absl::GetFlag(FLAGS_peer_dir).empty() ? index_dir + ".peers"
                                                            : absl::GetFlag(FLAGS_peer_dir);
    int bt = absl::GetFlag(FLAGS_build_threads);
    auto peer = Peer::Create(kind, *base, *metric, dir, bt > 0 ? bt : omp_get_max_threads());
    if (!peer.ok()) return Fail(peer.status().ToString());
    omp_set_num_threads(1);  // one query per call, as for Strata; threads come from the harness
    std::vector<std::vector<float>> fq(nq);
    for (uint64_t q = 0; q < nq; ++q) fq[q] = RowsAsFloat(*queries, q, 1);
    for (int param : (*peer)->Sweep()) {
      Peer* mutable_peer = peer->get();
      auto prepare = [mutable_peer, param] { return mutable_peer->Prepare(param); };
      const Peer& pr = **peer;
      SearchFn fn = [&](uint64_t q, std::vector<int64_t>* ids, uint64_t* pages) {
        *pages = 0;
        return pr.Search(fq[q].data(), k, ids);
      };
      RunResult r;
      r.system = PeerName(kind);
      r.params = absl::StrCat(pr.ParamName(), "=", param);
      if (auto s = Measure(fn, nq, *gt, k, threads, &r, prepare); !s.ok())
        return Fail(s.ToString());
      r.ram_mb = pr.MemoryMb();
      r.build_s = pr.BuildSeconds();
      PrintRow(r, 0);
      results.push_back(r);
    }
  }

  // CSV, JSON, plot.
  std::string out =
      absl::GetFlag(FLAGS_out).empty() ? index_dir + "/bench" : absl::GetFlag(FLAGS_out);
  {
    std::ofstream csv(out + ".csv");
    csv << "system,params,recall1,recall10";
    for (int t : threads) csv << ",qps_" << t << "t";
    csv << ",mean_ms,p50_ms,p99_ms,pages_per_query,bytes_per_query,ram_mb,build_s\n";
    for (const auto& r : results) {
      csv << r.system << "," << r.params << "," << r.recall1 << "," << r.recall10;
      for (double q : r.qps) csv << "," << q;
      csv << "," << r.mean_ms << "," << r.p50_ms << "," << r.p99_ms << "," << r.pages_per_query
          << "," << r.bytes_per_query << "," << r.ram_mb << "," << r.build_s << "\n";
    }
  }
  {
    std::ofstream js(out + ".json");
    js << "{\n  \"index\": {\"vectors\": " << (*index)->size() << ", \"dim\": " << (*index)->dim()
       << ", \"heads\": " << (*index)->num_heads() << ", \"own_ram_mb\": " << own_mb
       << ", \"raw_mb\": " << raw_mb << ", \"rss_mb\": " << rss_mb
       << ", \"disk_mb\": " << (*index)->DiskBytes() / 1048576.0 << ", \"build_s\": " << build_s
       << ", \"build_peak_rss_mb\": " << build_peak_rss
       << "},\n  \"device\": {\"iops_qd64\": " << iops << ", \"qd1_latency_us\": " << qd1_us
       << "},\n  \"runs\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      js << "    {\"system\": \"" << r.system << "\", \"params\": \"" << r.params
         << "\", \"recall1\": " << r.recall1 << ", \"recall10\": " << r.recall10 << ", \"qps\": ["
         << absl::StrJoin(r.qps, ", ") << "], \"mean_ms\": " << r.mean_ms
         << ", \"p50_ms\": " << r.p50_ms << ", \"p99_ms\": " << r.p99_ms
         << ", \"pages_per_query\": " << r.pages_per_query << ", \"ram_mb\": " << r.ram_mb << "}"
         << (i + 1 < results.size() ? ",\n" : "\n");
    }
    js << "  ]\n}\n";
  }
  {
    std::ofstream gp(out + ".gnuplot");
    gp << "set terminal pngcairo size 1000,650\nset output '" << out << ".png'\n"
       << "set title 'recall@" << k << " vs single-thread QPS'\nset xlabel 'recall@" << k
       << "'\nset ylabel 'QPS (1 thread)'\nset logscale y\nset grid\nset key bottom left\n"
       << "set termoption noenhanced\n"
       << "set datafile separator ','\nplot ";
    std::vector<std::string> systems;
    for (const auto& r : results) {
      if (std::find(systems.begin(), systems.end(), r.system) == systems.end())
        systems.push_back(r.system);
    }
    for (size_t i = 0; i < systems.size(); ++i) {
      gp << "'" << out << ".csv' using (strcol(1) eq '" << systems[i]
         << "' ? $4 : 1/0):5 with linespoints title '" << systems[i] << "'"
         << (i + 1 < systems.size() ? ", " : "\n");
    }
  }
  if (std::system(absl::StrCat("command -v gnuplot >/dev/null 2>&1 && gnuplot '", out,
                               ".gnuplot' 2>/dev/null")
                      .c_str()) == 0) {
    std::printf("\nwrote %s.csv, %s.json, %s.png\n", out.c_str(), out.c_str(), out.c_str());
  } else {
    std::printf("\nwrote %s.csv, %s.json (no gnuplot: plot script at %s.gnuplot)\n", out.c_str(),
                out.c_str(), out.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Benchmarks Strata's SPANN index beside FAISS peers on one data set.\n"
      "Example: strata-bench --base=data/sift1m/base.u8bin --queries=data/sift1m/query.u8bin "
      "--gt=data/sift1m/gt.bin --index=data/sift1m/index");
  absl::ParseCommandLine(argc, argv);
  return strata::bench::Main();
}
