// FAISS peers for strata-bench: IVF-Flat, IVF-PQ and HNSW in RAM, and IVF-Flat with its lists on
// disk (OnDiskInvertedLists, page cache evicted before each timed pass, since Strata's O_DIRECT
// reads never hit it). Built once and cached under a directory, so reruns only search.
#ifndef STRATA_BENCH_PEERS_H_
#define STRATA_BENCH_PEERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/harness.h"
#include "index/types.h"
#include "storage/vector_file.h"

namespace strata::bench {

enum class PeerKind { kIvfFlat, kIvfPq, kHnsw, kIvfFlatOnDisk };
const char* PeerName(PeerKind k);
absl::StatusOr<PeerKind> ParsePeer(const std::string& name);

class Peer {
 public:
  virtual ~Peer() = default;
  // Builds (or loads from `cache_dir`) the peer over `base` (float32 view of any element type).
  static absl::StatusOr<std::unique_ptr<Peer>> Create(PeerKind kind, const VectorSet& base,
                                                      Metric metric, const std::string& cache_dir,
                                                      int threads);
  // Search-parameter values to sweep (nprobe or efSearch), and the name of that parameter.
  virtual std::vector<int> Sweep() const = 0;
  virtual const char* ParamName() const = 0;
  // Sets the parameter and prepares a cold pass (drops cached pages for on-disk lists).
  virtual absl::Status Prepare(int param) = 0;
  // Thread-safe k-NN of one float32 query.
  virtual absl::Status Search(const float* query, uint32_t k, std::vector<int64_t>* ids) const = 0;
  virtual double MemoryMb() const = 0;
  virtual double BuildSeconds() const = 0;
};

}  // namespace strata::bench

#endif  // STRATA_BENCH_PEERS_H_
