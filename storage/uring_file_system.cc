#include "storage/uring_file_system.h"

#include <array>
#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/mutex.h"
#include "storage/block_reader.h"
#include "storage/log.h"

namespace strata {
namespace {

// MultiGet's batch (MultiGetContext::MAX_BATCH_SIZE): more requests than this are submitted as
// earlier ones complete.
constexpr unsigned kRingDepth = 32;

class UringMultiReadFile final : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  UringMultiReadFile(std::unique_ptr<rocksdb::FSRandomAccessFile> base, std::string path,
                     std::shared_ptr<UringMultiReadStats> stats, const BlockFileWrapper& wrap)
      : FSRandomAccessFileOwnerWrapper(std::move(base)),
        path_(std::move(path)),
        stats_(std::move(stats)),
        wrap_(wrap) {}
  UringMultiReadFile(const UringMultiReadFile&) = delete;
  UringMultiReadFile& operator=(const UringMultiReadFile&) = delete;

  ~UringMultiReadFile() override {
    for (Ring& ring : rings_) {
      if (ring.abandoned) {
        // The kernel may still write into the buffer: it goes with the ring, never back to the
        // heap.
        (void)ring.reader.release();
        (void)ring.buffer.release();
      }
    }
  }

  rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs,
                              const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    // One request gains nothing from a ring.
    if (num_reqs < 2) return target()->MultiRead(reqs, num_reqs, options, dbg);
    if (ReadWithRing(reqs, num_reqs)) {
      stats_->ring_batches.fetch_add(1, std::memory_order_relaxed);
      stats_->ring_reads.fetch_add(num_reqs, std::memory_order_relaxed);
      return rocksdb::IOStatus::OK();
    }
    stats_->fallback_batches.fetch_add(1, std::memory_order_relaxed);
    return target()->MultiRead(reqs, num_reqs, options, dbg);
  }

 private:
  struct Ring {
    // A try-lock (strata::Mutex has none): the members below belong to whichever thread set it.
    std::atomic<bool> busy{false};
    std::unique_ptr<BlockReader> reader;
    std::unique_ptr<char[]> buffer;
    size_t buffer_bytes = 0;
    bool abandoned = false;  // it failed with reads in flight: never used again
  };

  // Reads every request through a free ring and fills its result; false (nothing of `reqs`
  // changed) when the base file must answer instead.
  bool ReadWithRing(rocksdb::FSReadRequest* reqs, size_t num_reqs) {
    size_t total = 0;
    for (size_t i = 0; i < num_reqs; ++i) {
      if (reqs[i].scratch == nullptr || reqs[i].len > UINT32_MAX) return false;
      total += reqs[i].len;
    }
    if (total == 0 || total > UringMultiReadFileSystem::kMaxBatchBytes) return false;
    if (disabled_.load(std::memory_order_acquire)) return false;
    for (size_t r = 0; r < rings_.size(); ++r) {
      Ring& ring = rings_[r];
      if (ring.busy.exchange(true, std::memory_order_acquire)) continue;
      if (ring.abandoned) {  // (never used again: the next one may do)
        ring.busy.store(false, std::memory_order_release);
        continue;
      }
      const bool ok = ReadWithRingHeld(&ring, reqs, num_reqs, total,
                                       r == 0 ? UringMultiReadFileSystem::kKeptBufferBytes : 0);
      ring.busy.store(false, std::memory_order_release);
      return ok;
    }
    return false;  // every ring busy (or abandoned)
  }

  // The file's own descriptor, opened at its first MultiRead; null when the base file must answer.
  BlockFile* File() {
    {
      MutexLock lock(&file_mu_);
      if (file_ != nullptr) return file_.get();
    }
    BlockFileOptions options;
    options.engine = IoEngine::kAuto;
    options.direct = false;
    options.random_access = true;
    options.queue_depth = kRingDepth;
    absl::StatusOr<std::unique_ptr<BlockFile>> file = BlockFile::Open(path_, options);
    if (!file.ok()) {
      // E.g. out of descriptors: tried again at the next MultiRead. Said once per process.
      static std::atomic<bool> said{false};
      if (!said.exchange(true)) {
        Log(LogLevel::kWarning, "table file %s: batched reads go one at a time (%s)", path_,
            file.status().ToString());
      }
      return nullptr;
    }
    if ((*file)->engine() != IoEngine::kIoUring) {
      // No io_uring in this process (BlockFile said so once): the base file's reads are as good.
      disabled_.store(true, std::memory_order_release);
      return nullptr;
    }
    // (Threads that found no descriptor at once may each open one here: the first kept wins.)
    std::unique_ptr<BlockFile> opened = wrap_ ? wrap_(std::move(*file)) : std::move(*file);
    MutexLock lock(&file_mu_);
    if (file_ == nullptr) file_ = std::move(opened);  // (else another thread's came first)
    return file_.get();
  }

  // `keep`: the most buffer bytes the ring keeps after the call.
  bool ReadWithRingHeld(Ring* ring, rocksdb::FSReadRequest* reqs, size_t num_reqs, size_t total,
                        size_t keep) {
    if (ring->reader == nullptr) {
      BlockFile* file = File();
      if (file == nullptr) return false;
      absl::StatusOr<std::unique_ptr<BlockReader>> reader = file->NewReader();
      if (!reader.ok()) return false;  // e.g. out of locked memory for now; try again next time
      ring->reader = std::move(*reader);
    }
    if (total > ring->buffer_bytes) {
      ring->buffer.reset(new char[total]);  // (not zeroed: every byte used is read first)
      ring->buffer_bytes = total;
    }
    std::vector<ReadOp> ops(num_reqs);
    size_t at = 0;
    for (size_t i = 0; i < num_reqs; ++i) {
      ops[i] = {reqs[i].offset, static_cast<uint32_t>(reqs[i].len), ring->buffer.get() + at};
      at += reqs[i].len;
    }
    const absl::Status read = ring->reader->ReadBatch(ops, [](size_t) { return absl::OkStatus(); });
    if (ring->reader->abandoned_reads() > 0) {
      ring->abandoned = true;  // the destructor leaks the ring and the buffer
      return false;
    }
    if (!ring->reader->usable()) ring->reader.reset();
    // A short read (a request past the end of the file) or an error: the base file gives each
    // request its own result and status.
    if (!read.ok()) return false;
    for (size_t i = 0; i < num_reqs; ++i) {
      std::memcpy(reqs[i].scratch, ops[i].buf, reqs[i].len);
      reqs[i].result = rocksdb::Slice(reqs[i].scratch, reqs[i].len);
      reqs[i].status = rocksdb::IOStatus::OK();
    }
    if (ring->buffer_bytes > keep) {
      ring->buffer.reset();
      ring->buffer_bytes = 0;
    }
    return true;
  }

  const std::string path_;
  const std::shared_ptr<UringMultiReadStats> stats_;
  const BlockFileWrapper wrap_;
  std::atomic<bool> disabled_{false};  // no io_uring for this file
  Mutex file_mu_;
  // Set once, kept until the file closes (a ring abandoned with reads in flight keeps the kernel's
  // own reference to it).
  std::unique_ptr<BlockFile> file_ ABSL_GUARDED_BY(file_mu_);
  std::array<Ring, UringMultiReadFileSystem::kRingsPerFile> rings_;
};

}  // namespace

UringMultiReadFileSystem::UringMultiReadFileSystem(std::shared_ptr<rocksdb::FileSystem> base,
                                                   BlockFileWrapper wrap_for_test)
    : FileSystemWrapper(base),
      stats_(std::make_shared<UringMultiReadStats>()),
      wrap_for_test_(std::move(wrap_for_test)) {}

rocksdb::IOStatus UringMultiReadFileSystem::NewRandomAccessFile(
    const std::string& path, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSRandomAccessFile>* result, rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSRandomAccessFile> base;
  rocksdb::IOStatus s = target()->NewRandomAccessFile(path, options, &base, dbg);
  if (!s.ok() || base->use_direct_io()) {
    *result = std::move(base);
    return s;
  }
  *result = std::make_unique<UringMultiReadFile>(std::move(base), path, stats_, wrap_for_test_);
  return s;
}

}  // namespace strata
