// Threads that wait on the disk for a caller: a large lookup split into parts, the parts read at
// once.
//
// A RocksDB MultiGet reads the blocks it misses up to 32 per table file at a time, one batch after
// another: a grant's ~840 stored vectors out of the page cache took ~27 round trips to the disk in
// a row (bench/RESULTS.md). The store splits such a lookup into runs of keys and runs them here, so
// that several batches are in flight together. The helpers add reads in flight, not computation:
// they spend their time blocked on the disk.
//
// Run(n, fn) calls fn(i) once for each i in [0, n), on the calling thread (part 0 always) and on
// whichever helpers are free, and returns when every call has returned. Parts are claimed one at a
// time by whoever comes first; the caller, once out of parts to claim, waits only for parts a
// helper has already started. A call never waits behind another call's work: with every helper
// busy, the caller runs all of its parts itself, as it would without this class.
//
// Thread safety: Run may be called from any number of threads at once, fn included (a caller only
// ever waits on parts already running, never on queued ones). fn should not throw: an exception on
// the caller's thread is rethrown once the helpers' parts are done, the parts not yet started
// skipped; one on a helper's thread ends the process (std::terminate).
#ifndef STRATA_STORAGE_READ_FANOUT_H_
#define STRATA_STORAGE_READ_FANOUT_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "base/mutex.h"

namespace strata {

class ReadFanout final {
 public:
  // `helpers` threads (0: Run calls every part on the caller).
  explicit ReadFanout(int helpers);
  // Joins the helpers; no Run may be in progress.
  ~ReadFanout();
  ReadFanout(const ReadFanout&) = delete;
  ReadFanout& operator=(const ReadFanout&) = delete;

  [[nodiscard]] int helpers() const { return static_cast<int>(threads_.size()); }
  void Run(size_t n, absl::FunctionRef<void(size_t)> fn);

  // The process's fan-out for the metadata store's reads (3 helpers, never destroyed).
  static ReadFanout& ForReads();

 private:
  struct Call;
  static void RunParts(Call* call);
  void Help();

  Mutex mu_;
  // A call appears once per helper it asks for; a helper that finds it drained drops it.
  std::deque<std::shared_ptr<Call>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace strata

#endif  // STRATA_STORAGE_READ_FANOUT_H_
