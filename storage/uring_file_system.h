// A RocksDB FileSystem whose table files answer MultiRead with one io_uring batch.
//
// RocksDB's MultiGet gathers the data blocks it misses in its block cache, up to 32 per table file,
// and asks the file for them in one MultiRead. Debian's RocksDB is built without liburing, so its
// POSIX file reads them one pread after another: a grant of 1,000 ids whose stored vectors are out
// of the page cache waited on ~840 reads in a row (bench/RESULTS.md: 0.8-1.5 s against 58-77 ms
// through the ring, on a slow moment of a VM's disk).
// This wrapper submits a MultiRead's requests together (storage/block_reader.h's io_uring reader,
// buffered), so the disk serves them in parallel; everything else goes to the base file system.
//
// A file opens its own descriptor and ring lazily, at its first MultiRead, and keeps them until
// RocksDB closes it: two descriptors per table file that served a MultiRead, beside RocksDB's
// own one (a store of thousands of table files needs a descriptor limit to match). One ring: a
// MultiRead that finds it busy (another thread on the same file), a kernel without io_uring, a
// failed ring, a short read (end of file) or any read error hands the whole request list to the
// base file's MultiRead, which then decides every request's result and status as before. The
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

namespace strata {

// What the wrapper did, for tests and logs. Counts only grow.
struct UringMultiReadStats {
  std::atomic<uint64_t> ring_batches{0};      // MultiReads served by io_uring
  std::atomic<uint64_t> ring_reads{0};        // requests in them
  std::atomic<uint64_t> fallback_batches{0};  // MultiReads handed to the base file
};

class UringMultiReadFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  // Requests past this many bytes in one MultiRead go to the base file (the ring's buffer is
  // kept between calls; MultiGet asks for at most 32 blocks).
  static constexpr size_t kMaxBatchBytes = size_t{4} << 20;

  explicit UringMultiReadFileSystem(std::shared_ptr<rocksdb::FileSystem> base);

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
};

}  // namespace strata

#endif  // STRATA_STORAGE_URING_FILE_SYSTEM_H_
