// An append-only file of blobs (byte strings), each found again by its BlobLocation: where it
// starts, its length and its crc32c. The owner keeps the locations (in records of its own, made
// durable after the blobs they point to) and decides when the file holds so many blobs it no
// longer points to that the live ones are worth copying into a new file; this file knows nothing
// of which blobs are live. Format: storage/FORMAT.md ("Blob files"): the blobs back to back, no
// header, no framing - a location is the only way in.
//
// Durability: a blob is durable once a Sync() after its Append returns OK. A power cut keeps a
// prefix of the file at least up to the last successful sync. A failed Sync leaves the blobs
// appended since the last successful one untrusted (Linux may have dropped their dirty pages and
// reports that once): the owner must not point to them - it commits nothing that does when the
// Sync fails - and later appends and syncs go on after them (the next Sync syncs again). A failed
// Append leaves no hole: the next one writes over what it may have written.
//
// Reads go through the page cache (a blob is read whole; several adjacent blobs in one call),
// checking each blob's length and crc: a read of damaged or missing bytes is DataLoss, never wrong
// data. Read copies with pread. ReadInPlace reads through a read-only shared mapping of the file:
// no copy and no page-cache lookups once the pages are mapped (strata-tenant-bench at 1M, data in
// the page cache: a small tenant's extent search 0.032 -> 0.015-0.019 ms mean, p90 0.046 ->
// 0.020-0.028; bench/RESULTS.md, "Extents read in place, a faster crc, a real workload"). A read of
// a mapped file that fails raises SIGBUS, so before it touches the bytes ReadInPlace asks the
// kernel to make their pages present (MADV_POPULATE_READ, Linux 5.14): a disk error, or bytes gone
// from the file, fails that call instead, and the bytes are read again by pread, which reports what
// it finds as Read does. The window left: a page the kernel evicts after that call, while its bytes
// are checked and used (microseconds), and then fails to read back. The crc is checked on the
// mapped bytes and the caller reads them again after: a process that rewrote the file in between
// (nothing does: it is append-only, its blobs never rewritten) could have unchecked bytes read.
// Where the kernel (or a sandbox) refuses the call, or the mapping could not be made, ReadInPlace
// copies as Read does. The mapping reserves address space, not memory: at least kMinMapBytes and
// twice the file's size (GrowMapping doubles it as the file grows); bytes past it are copied.
//
// Thread safety: Append and Sync by one thread at a time (the owner's writer); Read concurrently
// with them and with each other, for blobs whose Append returned (their bytes are in the file).
#ifndef STRATA_STORAGE_BLOB_FILE_H_
#define STRATA_STORAGE_BLOB_FILE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "storage/env.h"
#include "storage/scoped_fd.h"

namespace strata {

// Where one blob lives. 16 bytes.
struct BlobLocation {
  uint64_t offset = 0;
  uint32_t size = 0;
  uint32_t crc = 0;  // crc32c of the blob's bytes
  friend bool operator==(const BlobLocation&, const BlobLocation&) = default;
};
static_assert(sizeof(BlobLocation) == 16);

class BlobFile final {
 public:
  // Opens `path` through `env`, creating it when missing; blobs are appended after what it holds.
  // The file's name is durable once its directory is synced (the caller's: Env::SyncDir).
  // `min_map_bytes`: the least address space ReadInPlace's mapping reserves (0: no mapping; it
  // copies, as Read).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BlobFile>> Open(
      Env& env, std::string path, uint64_t min_map_bytes = kMinMapBytes);
  static constexpr uint64_t kMinMapBytes = uint64_t{256} << 20;
  ~BlobFile();
  BlobFile(const BlobFile&) = delete;
  BlobFile& operator=(const BlobFile&) = delete;

  // Appends `blob` (up to 4 GiB - 1) and returns its location. Not durable until Sync(). A blob
  // never spans more 4 KiB pages than its size needs: one that would starts at the next page
  // (the skipped bytes are a hole, never written).
  [[nodiscard]] absl::StatusOr<BlobLocation> Append(absl::string_view blob);
  // Makes every blob appended so far durable (a no-op when none was appended since the last
  // successful one).
  [[nodiscard]] absl::Status Sync();

  // Reads the blobs at `locs` (ascending, none overlapping the next) with one pread of the bytes
  // from the first one's start to the last one's end (SpanBytes: what lies between is read too,
  // so callers group blobs that lie close) into `out`, each blob at out + (its offset - the first
  // one's), and checks each one's crc. DataLoss naming the file when the bytes are not all there
  // or a crc disagrees; InvalidArgument when `locs` are out of order.
  [[nodiscard]] absl::Status Read(absl::Span<const BlobLocation> locs, uint8_t* out) const;
  // Reads the same bytes as Read, with the same checks and errors, in place where it can: returns
  // where the first blob starts, either in the file's mapping (valid while this file is open) or
  // in `scratch` (grown to at least SpanBytes(locs); valid until its next use).
  [[nodiscard]] absl::StatusOr<const uint8_t*> ReadInPlace(absl::Span<const BlobLocation> locs,
                                                           std::string* scratch) const;
  // Whether ReadInPlace reads through a mapping (for the tests), and the bytes it maps.
  [[nodiscard]] bool mapped() const { return map_ != nullptr && map_usable_.load(); }
  [[nodiscard]] uint64_t map_bytes() const { return map_bytes_; }
  // Once the file is larger than half its mapping, maps it again at twice its size (a no-op
  // otherwise, or when that fails: reads past the mapping copy). The caller makes sure no
  // ReadInPlace runs and no pointer one returned is used: the mapping may move.
  void GrowMapping();
  // The bytes Read(locs) reads: from the first blob's start to the last one's end.
  [[nodiscard]] static uint64_t SpanBytes(absl::Span<const BlobLocation> locs) {
    return locs.empty() ? 0 : locs.back().offset + locs.back().size - locs.front().offset;
  }

  // Bytes appended (and not failed): the next blob's offset.
  [[nodiscard]] uint64_t size() const { return size_.load(std::memory_order_acquire); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  BlobFile(std::string path, std::unique_ptr<WritableFile> writer, ScopedFd reader, uint64_t size,
           uint64_t min_map_bytes);
  // InvalidArgument for blobs out of order or overlapping, DataLoss for blobs past the file's end.
  [[nodiscard]] absl::Status CheckSpan(absl::Span<const BlobLocation> locs) const;
  // The blobs' crcs, the first blob's bytes at `at`.
  [[nodiscard]] absl::Status CheckCrcs(absl::Span<const BlobLocation> locs,
                                       const uint8_t* at) const;

  const std::string path_;
  std::unique_ptr<WritableFile> writer_;
  ScopedFd reader_;
  std::atomic<uint64_t> size_;
  bool unsynced_ = false;  // blobs appended since the last successful Sync
  // A read-only shared mapping of the file's first map_bytes_ bytes, made at open whatever the
  // file's size then (pages past its end are never touched: reads stay within size()); null
  // when none could be made. Reads past map_bytes_ copy.
  void* map_ = nullptr;
  uint64_t map_bytes_ = 0;
  // False once the kernel refused MADV_POPULATE_READ (unknown, or not permitted): every read
  // copies from then on.
  mutable std::atomic<bool> map_usable_{true};
};

}  // namespace strata

#endif  // STRATA_STORAGE_BLOB_FILE_H_
