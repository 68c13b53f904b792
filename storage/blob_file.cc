#include "storage/blob_file.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "storage/crc32c.h"
#include "storage/status_macros.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older C libraries lack the name
#endif

namespace strata {

namespace {

constexpr uint64_t kPage = 4096;

// Address space for a mapping of a file of `size` bytes: twice its size, at least `least` (no
// memory: pages are mapped as they are read).
uint64_t MapBytes(uint64_t size, uint64_t least) {
  return std::max(least, (size * 2 + kPage - 1) / kPage * kPage);
}

}  // namespace

BlobFile::BlobFile(std::string path, std::unique_ptr<WritableFile> writer, ScopedFd reader,
                   uint64_t size, uint64_t min_map_bytes)
    : path_(std::move(path)), writer_(std::move(writer)), reader_(std::move(reader)), size_(size) {
  if (min_map_bytes == 0) return;
  const uint64_t bytes = MapBytes(size, min_map_bytes);
  void* map = mmap(nullptr, bytes, PROT_READ, MAP_SHARED | MAP_NORESERVE, reader_.get(), 0);
  if (map == MAP_FAILED) return;  // (reads copy)
  map_ = map;
  map_bytes_ = bytes;
}

BlobFile::~BlobFile() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

absl::StatusOr<std::unique_ptr<BlobFile>> BlobFile::Open(Env& env, std::string path,
                                                         uint64_t min_map_bytes) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> writer, env.OpenWritableFile(path));
  ASSIGN_OR_RETURN(ScopedFd reader, OpenFile(path, O_RDONLY | O_CLOEXEC));
  ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  return std::unique_ptr<BlobFile>(
      new BlobFile(std::move(path), std::move(writer), std::move(reader), size, min_map_bytes));
}

void BlobFile::GrowMapping() {
  if (map_ == nullptr || size() <= map_bytes_ / 2) return;
  const uint64_t bytes = MapBytes(size(), map_bytes_);
  void* map = mremap(map_, map_bytes_, bytes, MREMAP_MAYMOVE);
  if (map == MAP_FAILED) return;  // (the old mapping stays; reads past it copy)
  map_ = map;
  map_bytes_ = bytes;
}

absl::StatusOr<BlobLocation> BlobFile::Append(absl::string_view blob) {
  if (blob.size() > UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("a blob of ", blob.size(), " bytes for ", path_));
  }
  uint64_t at = size();
  const uint64_t pages = (blob.size() + kPage - 1) / kPage;
  if (!blob.empty() && (at + blob.size() - 1) / kPage - at / kPage + 1 > pages) {
    at = (at + kPage - 1) / kPage * kPage;
  }
  RETURN_IF_ERROR(writer_->WriteAt(at, blob));
  unsynced_ = true;
  size_.store(at + blob.size(), std::memory_order_release);
  return BlobLocation{at, static_cast<uint32_t>(blob.size()),
                      crc32c::Value(blob.data(), blob.size())};
}

absl::Status BlobFile::Sync() {
  if (!unsynced_) return absl::OkStatus();
  RETURN_IF_ERROR(writer_->Sync());  // (on an error unsynced_ stays: the next Sync tries again)
  unsynced_ = false;
  return absl::OkStatus();
}

absl::Status BlobFile::CheckSpan(absl::Span<const BlobLocation> locs) const {
  // Each within the file first (written so that a damaged offset near 2^64 cannot wrap past
  // it): then neither the order test nor SpanBytes can wrap.
  for (const BlobLocation& loc : locs) {
    if (loc.offset > size() || loc.size > size() - loc.offset) {
      return absl::DataLossError(
          absl::StrCat(path_, " ends before the blob at ", loc.offset, " (", loc.size, " bytes)"));
    }
  }
  for (size_t i = 1; i < locs.size(); ++i) {
    if (locs[i].offset < locs[i - 1].offset + locs[i - 1].size) {
      return absl::InvalidArgumentError(
          absl::StrCat("blobs read together from ", path_, " must be ascending and apart"));
    }
  }
  return absl::OkStatus();
}

absl::Status BlobFile::CheckCrcs(absl::Span<const BlobLocation> locs, const uint8_t* at) const {
  const uint64_t first = locs.front().offset;
  for (const BlobLocation& loc : locs) {
    if (crc32c::Value(at + (loc.offset - first), loc.size) != loc.crc) {
      return absl::DataLossError(
          absl::StrCat(path_, ": the blob at offset ", loc.offset, " fails its checksum"));
    }
  }
  return absl::OkStatus();
}

absl::Status BlobFile::Read(absl::Span<const BlobLocation> locs, uint8_t* out) const {
  if (locs.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(CheckSpan(locs));
  RETURN_IF_ERROR(PReadFull(reader_.get(), out, SpanBytes(locs), locs.front().offset, path_));
  return CheckCrcs(locs, out);
}

absl::StatusOr<const uint8_t*> BlobFile::ReadInPlace(absl::Span<const BlobLocation> locs,
                                                     std::string* scratch) const {
  if (locs.empty()) return reinterpret_cast<const uint8_t*>(scratch->data());
  RETURN_IF_ERROR(CheckSpan(locs));
  const uint64_t first = locs.front().offset, total = SpanBytes(locs);
  if (mapped() && first + total <= map_bytes_) {
    uint8_t* const base = static_cast<uint8_t*>(map_);
    const uint64_t lo = first / kPage * kPage;
    const uint64_t hi = (first + total + kPage - 1) / kPage * kPage;
    if (madvise(base + lo, hi - lo, MADV_POPULATE_READ) == 0) {
      RETURN_IF_ERROR(CheckCrcs(locs, base + first));
      return base + first;
    }
    // EINVAL, ENOSYS, EPERM: a kernel without the call, or a sandbox that refuses it: copy from
    // now on. Otherwise (EFAULT: a read error of the disk, or bytes past the file's end;
    // EHWPOISON; ENOMEM; EINTR) the copy below reads again and says what it finds.
    if (errno == EINVAL || errno == ENOSYS || errno == EPERM) map_usable_.store(false);
  }
  if (scratch->size() < total) scratch->resize(total);  // (never shrunk: no zeroing per read)
  uint8_t* const out = reinterpret_cast<uint8_t*>(scratch->data());
  RETURN_IF_ERROR(Read(locs, out));
  return out;
}

}  // namespace strata
