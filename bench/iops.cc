#include "bench/iops.h"

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/aligned_buffer.h"
#include "storage/block_reader.h"

namespace strata::bench {

absl::StatusOr<IopsResult> MeasureRandomReadIops(const std::string& path, double seconds,
                                                 int threads, unsigned queue_depth) {
  using Clock = std::chrono::steady_clock;
  BlockFileOptions opt;
  opt.queue_depth = queue_depth;
  auto file = BlockFile::Open(path, opt);
  if (!file.ok()) return file.status();
  const uint64_t pages = (*file)->size() / kPageSize;
  if (pages < 2) return absl::InvalidArgumentError(absl::StrCat(path, " is too small to measure"));
  std::atomic<uint64_t> reads{0};
  std::atomic<bool> failed{false};
  auto run = [&](int tid, unsigned depth, double secs, std::atomic<uint64_t>* count) {
    auto reader = (*file)->NewReader();
    if (!reader.ok()) {
      failed = true;
      return;
    }
    std::mt19937_64 rng(1234 + tid);
    // Batches of 16x the queue depth: the reader refills the ring as reads complete, so the device
    // sees a steady `depth` in flight except at batch ends.
    const unsigned batch = depth == 1 ? 1 : 16 * depth;
    AlignedBuffer buf(size_t{batch} * kPageSize);
    std::vector<ReadOp> ops(batch);
    auto end = Clock::now() + std::chrono::duration<double>(secs);
    while (Clock::now() < end) {
      for (unsigned i = 0; i < batch; ++i) {
        ops[i] = {(rng() % pages) * kPageSize, static_cast<uint32_t>(kPageSize),
                  buf.data() + i * kPageSize};
      }
      if (!(*reader)->ReadBatch(ops, [](size_t) { return absl::OkStatus(); }).ok()) {
        failed = true;
        return;
      }
      count->fetch_add(batch);
    }
  };
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(run, t, queue_depth, seconds, &reads);
  for (auto& th : pool) th.join();
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failed) return absl::InternalError("a read failed while measuring IOPS");
  IopsResult r;
  r.iops = reads.load() / wall;
  std::atomic<uint64_t> single{0};
  auto t1 = Clock::now();
  run(99, 1, std::min(1.0, seconds), &single);
  double w1 = std::chrono::duration<double>(Clock::now() - t1).count();
  r.qd1_latency_us = single.load() ? w1 * 1e6 / single.load() : 0;
  return r;
}

}  // namespace strata::bench
