// strata-walk-bench: the head graph's walk (index/internal/head_graph.h), which every search,
// every write and each of posting maintenance's reassignments pays, beside FAISS's HNSW search
// on the same heads (float32 rows, and 8-bit scalar-quantised ones), one thread each, in one
// run: microseconds per walk and recall@10 of the walk's nearest heads against exact search.
// Also the same heads as posting maintenance leaves them: a graph built over 80% of them with the
// other 20% joined one by one (growing_graph.h: links, and bridges from built nodes), which is
// what walks cross between rebuilds.
// A kernel benchmark: it reads the index's internal graph API on purpose.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "faiss/IndexHNSW.h"
#include "index/brute_force.h"
#include "index/internal/growing_graph.h"
#include "index/internal/head_graph.h"
#include "storage/program_usage.h"
#include "tools/synthetic.h"

ABSL_FLAG(uint64_t, heads, 25000, "heads in the graph (SIFT-like, uint8, 128-d)");
ABSL_FLAG(uint64_t, queries, 20000, "walks timed per way");
ABSL_FLAG(uint32_t, ef, 64, "beam (the writes' and reassignments' beam is 64)");
ABSL_FLAG(int, repeats, 3, "timed passes per way (the best is shown)");
ABSL_FLAG(bool, faiss, true, "time FAISS's HNSW beside (its builds take most of the run)");

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

double RecallAt10(const GroundTruth& gt, uint64_t q, const std::vector<int64_t>& found) {
  size_t hits = 0;
  for (uint32_t j = 0; j < 10; ++j) {
    for (size_t i = 0; i < std::min<size_t>(10, found.size()); ++i) {
      hits += found[i] == static_cast<int64_t>(gt.ids[q * gt.k + j]);
    }
  }
  return static_cast<double>(hits) / 10.0;
}

int Run() {
  const uint64_t n = absl::GetFlag(FLAGS_heads), nq = absl::GetFlag(FLAGS_queries);
  const uint32_t ef = absl::GetFlag(FLAGS_ef);
  if (n == 0 || nq == 0 || ef < 10) {
    std::fprintf(stderr, "strata-walk-bench: --heads and --queries > 0, --ef >= 10\n");
    return 2;
  }
  SyntheticOptions o;
  o.seed = 1;
  auto gen = SyntheticGenerator::Create(o);
  if (!gen.ok()) return 1;
  const VectorSet heads = gen->Generate(0, n);
  const VectorSet queries = gen->Generate(10 * n, nq);
  const GroundTruth gt = *ExactKnn(heads, queries, Metric::kL2, 10);
  omp_set_num_threads(1);

  internal::HeadGraphOptions go;
  go.threads = 1;
  auto graph = internal::HeadGraph::Build(ElementType::kUint8, Metric::kL2, heads.dim,
                                          heads.data.data(), heads.n, go);
  if (!graph.ok()) {
    std::fprintf(stderr, "strata-walk-bench: %s\n", std::string(graph.status().message()).c_str());
    return 1;
  }
  // The same heads, 80% built and 20% joined (numbered as the heads are: built first).
  const uint64_t built_n = n - n / 5;
  auto part = internal::HeadGraph::Build(ElementType::kUint8, Metric::kL2, heads.dim,
                                         heads.data.data(), built_n, go);
  if (!part.ok()) return 1;
  internal::GrowingGraph grown(part->get());
  const auto add0 = Clock::now();
  for (uint64_t i = built_n; i < n; ++i) grown.Add(heads.row(i));
  const double add_us = std::chrono::duration<double, std::micro>(Clock::now() - add0).count() /
                        static_cast<double>(std::max<uint64_t>(n - built_n, 1));
  std::vector<float> heads_f(heads.data.begin(), heads.data.end());
  std::vector<float> queries_f(queries.data.begin(), queries.data.end());
  faiss::IndexHNSWFlat flat(static_cast<int>(heads.dim), 16);
  faiss::IndexHNSWSQ sq(static_cast<int>(heads.dim), faiss::ScalarQuantizer::QT_8bit, 16);
  for (faiss::IndexHNSW* f :
       {static_cast<faiss::IndexHNSW*>(&flat), static_cast<faiss::IndexHNSW*>(&sq)}) {
    if (!absl::GetFlag(FLAGS_faiss)) break;
    f->hnsw.efConstruction = 100;  // (as the head graph's build)
    if (!f->is_trained) f->train(static_cast<faiss::Index::idx_t>(n), heads_f.data());
    f->add(static_cast<faiss::Index::idx_t>(n), heads_f.data());
    f->hnsw.efSearch = static_cast<int>(ef);
  }

  std::printf("%lu heads, %lu walks a pass, beam %u, one thread\n\n", static_cast<unsigned long>(n),
              static_cast<unsigned long>(nq), ef);
  std::printf("| way | us per walk | recall@10 | vs Strata |\n|---|---|---|---|\n");
  double strata_us = 0;
  const auto time_way = [&](const char* name, auto&& walk) {
    double best = 1e30, recall = 0;
    std::vector<int64_t> found;
    for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
      recall = 0;
      const auto t0 = Clock::now();
      for (uint64_t q = 0; q < nq; ++q) {
        walk(q, &found);
        recall += RecallAt10(gt, q, found);
      }
      best = std::min(best, std::chrono::duration<double, std::micro>(Clock::now() - t0).count() /
                                static_cast<double>(nq));
    }
    if (strata_us == 0) strata_us = best;
    std::printf("| %s | %.1f | %.4f | %.2fx |\n", name, best, recall / static_cast<double>(nq),
                best / strata_us);
  };
  internal::HeadSearchScratch scratch;
  std::vector<std::pair<float, uint32_t>> out;
  time_way("Strata head graph (uint8)", [&](uint64_t q, std::vector<int64_t>* found) {
    (*graph)->Walk(queries.row(q), ef, nullptr, &scratch, &out);
    found->clear();
    for (const auto& [d, node] : out) found->push_back(node);
  });
  time_way("Strata, 80% built + 20% joined", [&](uint64_t q, std::vector<int64_t>* found) {
    grown.Search(queries.row(q), ef, ef, &scratch, &out);
    found->clear();
    for (const auto& [d, node] : out) found->push_back(node);
  });
  if (!absl::GetFlag(FLAGS_faiss)) {
    std::printf("\n(joining a node took %.1f us)\n", add_us);
    return 0;
  }
  std::vector<float> dist(ef);
  std::vector<faiss::Index::idx_t> ids(ef);
  for (const auto& way :
       {std::pair<const char*, faiss::IndexHNSW*>{"FAISS HNSW flat (float32)", &flat},
        {"FAISS HNSW SQ8", &sq}}) {
    faiss::IndexHNSW* const index = way.second;  // (no structured binding: the lambda captures it)
    time_way(way.first, [&](uint64_t q, std::vector<int64_t>* found) {
      index->search(1, queries_f.data() + q * heads.dim, ef, dist.data(), ids.data());
      found->assign(ids.begin(), ids.end());
    });
  }
  // FAISS with every query in one call (its per-call costs, a visited table and a parallel
  // region, spread over the batch): what its own benchmarks time.
  std::vector<float> all_dist(nq * ef);
  std::vector<faiss::Index::idx_t> all_ids(nq * ef);
  for (auto [name, index] :
       {std::pair<const char*, faiss::IndexHNSW*>{"FAISS HNSW flat (float32), one batch", &flat},
        {"FAISS HNSW SQ8, one batch", &sq}}) {
    double best = 1e30, recall = 0;
    for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
      const auto t0 = Clock::now();
      index->search(static_cast<faiss::Index::idx_t>(nq), queries_f.data(), ef, all_dist.data(),
                    all_ids.data());
      best = std::min(best, std::chrono::duration<double, std::micro>(Clock::now() - t0).count() /
                                static_cast<double>(nq));
    }
    recall = 0;
    for (uint64_t q = 0; q < nq; ++q) {
      recall += RecallAt10(
          gt, q, std::vector<int64_t>(all_ids.begin() + q * ef, all_ids.begin() + (q + 1) * ef));
    }
    std::printf("| %s | %.1f | %.4f | %.2fx |\n", name, best, recall / static_cast<double>(nq),
                best / strata_us);
  }
  std::printf("\n(joining a node took %.1f us)\n", add_us);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "The head graph's walk beside FAISS's HNSW search on the same heads, one thread.\n\n"
      "  strata-walk-bench [--heads=25000 --queries=20000 --ef=64 --faiss=true]\n");
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
