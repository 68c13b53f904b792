// strata-gen: writes a synthetic base set, queries from the same distribution (not in the base) and
// exact ground truth, in big-ann-benchmarks formats, and prints how hard the set is.
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "index/brute_force.h"
#include "storage/program_usage.h"
#include "storage/vector_file.h"
#include "tools/data_stats.h"
#include "tools/progress.h"
#include "tools/synthetic.h"

ABSL_FLAG(std::string, kind, "sift",
          "sift (uint8, 128-d, SIFT-like) or deep (float32, 96-d, Deep1B-like)");
ABSL_FLAG(uint64_t, n, 100000, "base vectors");
ABSL_FLAG(uint64_t, queries, 1000, "query vectors");
ABSL_FLAG(uint32_t, k, 100, "neighbours per query in the ground truth (0: no ground truth)");
ABSL_FLAG(uint64_t, seed, 1, "seed; the same seed gives the same files");
ABSL_FLAG(std::string, out, "", "output directory (required): base.<ext>, query.<ext>, gt.bin");
ABSL_FLAG(int, threads, 0, "threads (0 = all cores)");
ABSL_FLAG(uint32_t, dim, 0, "dimension (0 = the kind's default)");
ABSL_FLAG(std::string, measure, "",
          "only print the difficulty (LID, relative contrast) of this existing vector file");

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Generates a realistic synthetic vector set with queries and exact ground truth.\n"
      "Example: strata-gen --kind=sift --n=1000000 --queries=10000 --out=data/sift1m");
  absl::ParseCommandLine(argc, argv);
  using namespace strata;
  if (std::string path = absl::GetFlag(FLAGS_measure); !path.empty()) {
    auto set = ReadVectors(path);
    if (!set.ok()) {
      std::fprintf(stderr, "strata-gen: %s\n", set.status().ToString().c_str());
      return 1;
    }
    auto diff = MeasureDifficulty(*set);
    if (!diff.ok()) {
      std::fprintf(stderr, "strata-gen: %s\n", diff.status().ToString().c_str());
      return 1;
    }
    std::printf(
        "%s: LID median %.2f, relative contrast median %.3f (%llu base / %llu queries, "
        "k=20)\n",
        path.c_str(), diff->lid_median, diff->rc_median, (unsigned long long)diff->base,
        (unsigned long long)diff->queries);
    return 0;
  }
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "strata-gen: --out is required (see --help)\n");
    return 2;
  }
  SyntheticOptions o;
  std::string kind = absl::GetFlag(FLAGS_kind);
  if (kind == "sift") {
    o.kind = SyntheticKind::kSiftLike;
  } else if (kind == "deep") {
    o.kind = SyntheticKind::kDeepLike;
  } else {
    std::fprintf(stderr, "strata-gen: unknown --kind=%s (expected sift or deep)\n", kind.c_str());
    return 2;
  }
  o.seed = absl::GetFlag(FLAGS_seed);
  o.dim = absl::GetFlag(FLAGS_dim);
  uint64_t n = absl::GetFlag(FLAGS_n), nq = absl::GetFlag(FLAGS_queries);
  uint32_t k = absl::GetFlag(FLAGS_k);
  int threads = absl::GetFlag(FLAGS_threads);
  if (n == 0 || nq == 0 || n > UINT32_MAX) {
    std::fprintf(stderr, "strata-gen: --n must be in [1, 2^32) and --queries >= 1\n");
    return 2;
  }
  if (k > n) {
    std::fprintf(stderr, "strata-gen: --k=%u exceeds --n=%llu\n", k, (unsigned long long)n);
    return 2;
  }
  auto gen = SyntheticGenerator::Create(o);
  if (!gen.ok()) {
    std::fprintf(stderr, "strata-gen: %s\n", gen.status().ToString().c_str());
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "strata-gen: cannot create %s: %s\n", out.c_str(), ec.message().c_str());
    return 1;
  }
  const char* ext = o.kind == SyntheticKind::kSiftLike ? "u8bin" : "fbin";
  std::string base_path = absl::StrCat(out, "/base.", ext);
  std::string query_path = absl::StrCat(out, "/query.", ext);
  std::string gt_path = absl::StrCat(out, "/gt.bin");

  std::fprintf(stderr, "generating %llu %s-like base vectors and %llu queries (seed %llu)\n",
               (unsigned long long)n, kind.c_str(), (unsigned long long)nq,
               (unsigned long long)o.seed);
  VectorSet base = gen->Generate(0, n, threads);
  VectorSet queries = gen->Generate(n, nq, threads);  // rows past the base: same law, not in it
  if (auto s = WriteVectors(base_path, base); !s.ok()) {
    std::fprintf(stderr, "strata-gen: %s\n", s.ToString().c_str());
    return 1;
  }
  if (auto s = WriteVectors(query_path, queries); !s.ok()) {
    std::fprintf(stderr, "strata-gen: %s\n", s.ToString().c_str());
    return 1;
  }
  auto diff = MeasureDifficulty(base);
  if (diff.ok()) {
    std::printf(
        "difficulty (first %llu rows, %llu queries, k=20): LID median %.2f, relative "
        "contrast median %.3f\n",
        (unsigned long long)(diff->base + diff->queries), (unsigned long long)diff->queries,
        diff->lid_median, diff->rc_median);
  } else {
    std::printf("difficulty: not measured (%s)\n", std::string(diff.status().message()).c_str());
  }
  if (k > 0) {
    ProgressBar bar("ground truth", nq, "queries");
    auto gt = ExactKnn(base, queries, Metric::kL2, k, threads,
                       [&](uint64_t done, uint64_t) { bar.Update(done); });
    bar.Finish();
    if (!gt.ok()) {
      std::fprintf(stderr, "strata-gen: %s\n", gt.status().ToString().c_str());
      return 1;
    }
    if (auto s = WriteGroundTruth(gt_path, *gt); !s.ok()) {
      std::fprintf(stderr, "strata-gen: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf("wrote %s, %s%s\n", base_path.c_str(), query_path.c_str(),
              k > 0 ? absl::StrCat(", ", gt_path).c_str() : "");
  return 0;
}
