// Measures the device's random 4 KiB read rate on a file (O_DIRECT, io_uring), so benchmarks can
// report the I/O bound of a disk index beside its QPS.
#ifndef STRATA_BENCH_IOPS_H_
#define STRATA_BENCH_IOPS_H_

#include <string>

#include "absl/status/statusor.h"

namespace strata::bench {

struct IopsResult {
  double iops = 0;            // at the given queue depth and threads
  double qd1_latency_us = 0;  // mean latency of single reads
};

// Random page-aligned 4 KiB reads over `path` for about `seconds`, `threads` threads each keeping
// `queue_depth` reads in flight; then a short QD1 pass for latency.
absl::StatusOr<IopsResult> MeasureRandomReadIops(const std::string& path, double seconds,
                                                 int threads, unsigned queue_depth);

}  // namespace strata::bench

#endif  // STRATA_BENCH_IOPS_H_
