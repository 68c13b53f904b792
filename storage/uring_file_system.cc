#include "storage/uring_file_system.h"

#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
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
    if (abandoned_) {
      // The kernel may still write into the buffer: it goes with the ring, never back to the heap.
      (void)reader_.release();
      (void)buffer_.release();
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
  // Reads every request through the ring and fills its result; false (nothing of `reqs` changed)
  // when the base file must answer instead.
  bool ReadWithRing(rocksdb::FSReadRequest* reqs, size_t num_reqs) {
    size_t total = 0;
    for (size_t i = 0; i < num_reqs; ++i) {
      if (reqs[i].scratch == nullptr || reqs[i].len > UINT32_MAX) return false;
      total += reqs[i].len;
    }
    if (total == 0 || total > UringMultiReadFileSystem::kMaxBatchBytes) return false;
    // One ring per file: a second thread reading the same file meanwhile takes the base path.
    if (busy_.exchange(true, std::memory_order_acquire)) return false;
    const bool ok = ReadWithRingHeld(reqs, num_reqs, total);
    busy_.store(false, std::memory_order_release);
    return ok;
  }

  bool ReadWithRingHeld(rocksdb::FSReadRequest* reqs, size_t num_reqs, size_t total) {
    if (disabled_ || abandoned_) return false;
    if (file_ == nullptr) {
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
        return false;
      }
      if ((*file)->engine() != IoEngine::kIoUring) {
        // No io_uring in this process (BlockFile said so once): the base file's reads are as good.
        disabled_ = true;
        return false;
      }
      file_ = wrap_ ? wrap_(std::move(*file)) : std::move(*file);
    }
    if (reader_ == nullptr) {
      absl::StatusOr<std::unique_ptr<BlockReader>> reader = file_->NewReader();
      if (!reader.ok()) return false;  // e.g. out of locked memory for now; try again next time
      reader_ = std::move(*reader);
    }
    if (total > buffer_bytes_) {
      buffer_.reset(new char[total]);  // (not zeroed: every byte used is read first)
      buffer_bytes_ = total;
    }
    std::vector<ReadOp> ops(num_reqs);
    size_t at = 0;
    for (size_t i = 0; i < num_reqs; ++i) {
      ops[i] = {reqs[i].offset, static_cast<uint32_t>(reqs[i].len), buffer_.get() + at};
      at += reqs[i].len;
    }
    const absl::Status read = reader_->ReadBatch(ops, [](size_t) { return absl::OkStatus(); });
    if (reader_->abandoned_reads() > 0) {
      abandoned_ = true;  // the destructor leaks the ring and the buffer
      return false;
    }
    if (!reader_->usable()) reader_.reset();
    // A short read (a request past the end of the file) or an error: the base file gives each
    // request its own result and status.
    if (!read.ok()) return false;
    for (size_t i = 0; i < num_reqs; ++i) {
      std::memcpy(reqs[i].scratch, ops[i].buf, reqs[i].len);
      reqs[i].result = rocksdb::Slice(reqs[i].scratch, reqs[i].len);
      reqs[i].status = rocksdb::IOStatus::OK();
    }
    if (buffer_bytes_ > UringMultiReadFileSystem::kKeptBufferBytes) {
      buffer_.reset();
      buffer_bytes_ = 0;
    }
    return true;
  }

  const std::string path_;
  const std::shared_ptr<UringMultiReadStats> stats_;
  const BlockFileWrapper wrap_;
  // A try-lock (strata::Mutex has none): the members below belong to whichever thread set it.
  std::atomic<bool> busy_{false};
  std::unique_ptr<BlockFile> file_;
  std::unique_ptr<BlockReader> reader_;
  std::unique_ptr<char[]> buffer_;
  size_t buffer_bytes_ = 0;
  bool disabled_ = false;   // no io_uring for this file
  bool abandoned_ = false;  // the ring failed with reads in flight
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
