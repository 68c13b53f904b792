// A RocksDB FileSystem whose table files answer MultiRead with one io_uring batch.
//
// RocksDB's MultiGet gathers the data blocks it misses in its block cache, up to 32 per table file,
// and asks the file for them in one MultiRead. Debian's RocksDB is built without liburing, so its
// POSIX file reads them one pread after another: a grant of 1,000 ids whose stored vectors are out
// of the page cache waited on ~840 reads in a row (bench/RESULTS.md: about half the time through
// the ring). This wrapper submits a MultiRead's requests together (storage/block_reader.h's
// io_uring reader, buffered, no readahead), so the disk serves them in parallel; everything else
// goes to the base file system.
//
// The wrapper opens the table files again by path: it assumes a base file system whose files are
// the POSIX files of that name (RocksDB's own, or storage/fault_injection_env.h's, which passes
// reads through). One that changed what reads return (encryption, injected read faults) would be
// bypassed by the ring.
//
// A file opens its own descriptor and ring lazily, at its first MultiRead, and keeps them until
// RocksDB closes it: two descriptors per table file that served a MultiRead, beside RocksDB's
// own one, and one more per further ring (a store of thousands of table files needs a descriptor
// limit to match). Up to kRingsPerFile rings, one per thread reading the file at once, made as
// threads come to need them (a large MultiGet's runs, storage/read_fanout.h, often read one file
// together). A MultiRead that finds every ring busy, a kernel without io_uring, a failed ring, a
// short read (end of file) or any read error hands the whole request list to the base file's
// MultiRead, which then decides every request's result and status as before. The
// kernel reads into the ring's own buffer, copied to the caller's scratch once every read is in:
// a ring that fails with reads in flight is leaked with its buffer, never the caller's memory.
//
// Thread safety: the file system and its files may be used from any thread, as RocksDB requires.
#ifndef STRATA_STORAGE_URING_FILE_SYSTEM_H_
#define STRATA_STORAGE_URING_FILE_SYSTEM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "rocksdb/file_system.h"
#include "storage/block_reader.h"

namespace strata {

// What the wrapper did (tests read it). Counts only grow.
struct UringMultiReadStats {
  std::atomic<uint64_t> ring_batches{0};      // MultiReads served by io_uring
  std::atomic<uint64_t> ring_reads{0};        // requests in them
  std::atomic<uint64_t> fallback_batches{0};  // MultiReads handed to the base file
};

class UringMultiReadFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  // Requests past this many bytes in one MultiRead go to the base file (MultiGet asks for at most
  // 32 blocks).
  static constexpr size_t kMaxBatchBytes = size_t{4} << 20;
  // A file's first ring keeps its buffer between calls up to this size (a larger one is freed
  // after its call); the others free theirs after every call.
  static constexpr size_t kKeptBufferBytes = size_t{256} << 10;
  // Rings a table file may open, each for one thread's MultiRead at a time.
  static constexpr size_t kRingsPerFile = 4;

  // `wrap_for_test`, when set, wraps each file's BlockFile (storage/fault_injection.h).
  explicit UringMultiReadFileSystem(std::shared_ptr<rocksdb::FileSystem> base,
                                    BlockFileWrapper wrap_for_test = nullptr);
  UringMultiReadFileSystem(const UringMultiReadFileSystem&) = delete;
  UringMultiReadFileSystem& operator=(const UringMultiReadFileSystem&) = delete;

  static const char* kClassName() { return "StrataUringMultiReadFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // Direct-I/O files (Strata's stores use none) are not wrapped.
  rocksdb::IOStatus NewRandomAccessFile(const std::string& path,
                                        const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* dbg) override;

  [[nodiscard]] const UringMultiReadStats& stats() const { return *stats_; }

 private:
  // Shared with the files, which may outlive this object inside RocksDB's table cache.
  std::shared_ptr<UringMultiReadStats> stats_;
  BlockFileWrapper wrap_for_test_;
};

}  // namespace strata

#endif  // STRATA_STORAGE_URING_FILE_SYSTEM_H_
