// strata-gemm-bench: the CPU backend's GEMM kernels beside OpenBLAS's SGEMM, on the shapes of a
// sentence encoder's Linear layers (all-MiniLM-L6-v2 by default: hidden 384, FFN 1536), in one
// run: GFLOP/s of every kernel this CPU runs and its ratio to OpenBLAS on the same shape. OpenBLAS
// runs with its own threads on the whole product (its best case); our kernels on OpenMP's.
// OPENBLAS_CORETYPE=Prescott shows what a CPU that Debian's OpenBLAS does not know gets.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gpu/internal/gemm.h"
#include "storage/program_usage.h"

extern "C" char* openblas_get_corename(void);

ABSL_FLAG(std::string, rows, "10,231,3696", "rows per product (tokens of a pass)");
ABSL_FLAG(int, hidden, 384, "model width");
ABSL_FLAG(int, ffn, 1536, "feed-forward width");
ABSL_FLAG(double, seconds, 0.5, "time per measurement (the best of its repetitions is kept)");

namespace {

using Clock = std::chrono::steady_clock;

// Best seconds per call of f over about `budget` seconds.
template <typename F>
double Best(F&& f, double budget) {
  f();  // warm-up
  double best = 1e30, spent = 0;
  int reps = 0;
  while (spent < budget || reps < 3) {
    const auto t0 = Clock::now();
    f();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    spent += s;
    ++reps;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Times the CPU GEMM kernels beside OpenBLAS on a sentence encoder's shapes.\n"
      "Example: strata-gemm-bench --rows=10,231,3696");
  absl::ParseCommandLine(argc, argv);
  namespace cpu = strata::gpu::cpu;
  const int64_t h = absl::GetFlag(FLAGS_hidden), f = absl::GetFlag(FLAGS_ffn);
  const double budget = absl::GetFlag(FLAGS_seconds);
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {{"qkv", 3 * h, h}, {"out", h, h}, {"ffn1", f, h}, {"ffn2", h, f}};
  std::printf("OpenBLAS core %s, %d OpenMP threads\n", openblas_get_corename(),
              omp_get_max_threads());
  std::printf("%6s %5s %-26s %9s %9s\n", "rows", "layer", "kernel", "GFLOP/s", "/OpenBLAS");
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (absl::string_view rs : absl::StrSplit(absl::GetFlag(FLAGS_rows), ',')) {
    int64_t m = 0;
    if (!absl::SimpleAtoi(rs, &m) || m <= 0) {
      std::fprintf(stderr, "strata-gemm-bench: bad --rows entry '%s'\n", std::string(rs).c_str());
      return 2;
    }
    for (const Shape& s : shapes) {
      std::vector<float> x(static_cast<size_t>(m * s.k)), w(static_cast<size_t>(s.n * s.k));
      std::vector<float> y(static_cast<size_t>(m * s.n));
      for (float& v : x) v = d(rng);
      for (float& v : w) v = 0.05f * d(rng);
      const double flops = 2.0 * m * s.n * s.k;
      openblas_set_num_threads(omp_get_max_threads());
      const double blas = Best(
          [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                        static_cast<int>(s.n), static_cast<int>(s.k), 1.0f, x.data(),
                        static_cast<int>(s.k), w.data(), static_cast<int>(s.k), 0.0f, y.data(),
                        static_cast<int>(s.n));
          },
          budget);
      std::printf("%6ld %5s %-26s %9.1f %9s\n", static_cast<long>(m), s.name, "OpenBLAS sgemm",
                  flops / blas / 1e9, "1.00x");
      openblas_set_num_threads(1);  // keep its idle pool off the cores while ours run
      for (const cpu::GemmKernel& kernel : cpu::AvailableGemmKernels()) {
        if (kernel.reference_only) continue;
        auto packed = cpu::PackedWeight::Pack(w.data(), s.n, s.k, kernel);
        if (!packed.ok()) return 1;
        cpu::GemmScratch scratch;
        const double t =
            Best([&] { cpu::Gemm(x.data(), m, *packed, nullptr, 0, y.data(), scratch); }, budget);
        std::printf("%6ld %5s %-26s %9.1f %8.2fx\n", static_cast<long>(m), s.name, kernel.name,
                    flops / t / 1e9, blas / t);
      }
    }
  }
  return 0;
}
