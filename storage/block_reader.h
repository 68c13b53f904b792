// Batched random block reads from one file: the disk half of every SPANN query.
//
// A BlockFile is an opened, read-only file (thread-safe, shared). Each query thread takes its own
// BlockReader from it (not thread-safe; one ring each) and submits all of a query's reads at once;
// completions are handed back as they arrive, so distance work overlaps the remaining I/O.
//
// Engines: io_uring (O_DIRECT, queue depth per reader) when the kernel allows it, else pread. The
// choice is made once at Open() and logged. A fault-injecting wrapper (fault_injection.h) exercises
// every error path in tests.
#ifndef STRATA_STORAGE_BLOCK_READER_H_
#define STRATA_STORAGE_BLOCK_READER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace strata {

// One read: `length` bytes at `offset` into `buf`. With O_DIRECT, offset, length and buf must be
// 4 KiB-aligned (AlignedBuffer gives that). `buf` must stay valid until ReadBatch returns, and
// for good if the reader then reports abandoned_reads() > 0.
struct ReadOp {
  uint64_t offset = 0;
  uint32_t length = 0;
  char* buf = nullptr;
};

enum class IoEngine { kAuto, kIoUring, kPread };
[[nodiscard]] const char* IoEngineName(IoEngine e);

struct BlockFileOptions {
  IoEngine engine = IoEngine::kAuto;  // kAuto: io_uring if it works here, else pread (logged once)
  bool direct = true;                 // O_DIRECT; falls back to buffered (logged) where unsupported
  unsigned queue_depth = 128;         // io_uring entries per reader
  // Buffered reads only: no readahead on this descriptor (POSIX_FADV_RANDOM), for reads of
  // scattered blocks where pages read ahead would be wasted.
  bool random_access = false;
  // Tests: called before each io_uring completion wait; a nonzero return (a negative errno)
  // stands for the wait's result, as if the ring had failed. Null in production.
  std::function<int()> inject_wait_error;
};

class BlockReader {
 public:
  virtual ~BlockReader() = default;
  // Reads every op. Calls `on_done(i)` once per successfully completed op i, in completion order,
  // on the calling thread. Stops and returns the first error: an I/O error or short read (DataLoss
  // naming the offset), or a non-OK status from on_done. After an error the contents of unfinished
  // buffers are unspecified.
  // A batch never leaves a read of its own in flight for the next one: a reader that returns
  // has collected every completion it submitted, unless abandoned_reads() says otherwise.
  [[nodiscard]] virtual absl::Status ReadBatch(absl::Span<const ReadOp> ops,
                                               absl::FunctionRef<absl::Status(size_t)> on_done) = 0;
  // False once the reader cannot take another batch (its io_uring ring failed): the caller drops
  // it and takes a new one from BlockFile::NewReader instead of pooling it.
  [[nodiscard]] virtual bool usable() const { return true; }
  // Reads of the last batch that the kernel may still complete after ReadBatch returned: their
  // ring failed and could not be drained. Their buffers must never be freed or reused (the
  // caller leaks them, with the reader); 0 in every other case.
  [[nodiscard]] virtual size_t abandoned_reads() const { return 0; }
};

class BlockFile {
 public:
  virtual ~BlockFile() = default;
  // Opens `path` read-only. NotFound if missing; the engine actually used is engine().
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BlockFile>> Open(
      const std::string& path, const BlockFileOptions& options = {});

  // A new reader for the calling thread. Thread-safe.
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<BlockReader>> NewReader() = 0;
  [[nodiscard]] virtual IoEngine engine() const = 0;
  [[nodiscard]] virtual bool direct() const = 0;
  [[nodiscard]] virtual uint64_t size() const = 0;
  [[nodiscard]] virtual const std::string& path() const = 0;
};

// Wraps an opened BlockFile in another (tests: fault injection). Null means none.
using BlockFileWrapper = std::function<std::unique_ptr<BlockFile>(std::unique_ptr<BlockFile>)>;

// Whether io_uring can be set up in this process (probed once, cached).
[[nodiscard]] bool IoUringAvailable();

}  // namespace strata

#endif  // STRATA_STORAGE_BLOCK_READER_H_
