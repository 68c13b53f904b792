#include "storage/blob_file.h"

#include <fcntl.h>

#include "absl/strings/str_cat.h"
#include "storage/crc32c.h"
#include "storage/status_macros.h"

namespace strata {

BlobFile::BlobFile(std::string path, std::unique_ptr<WritableFile> writer, ScopedFd reader,
                   uint64_t size)
    : path_(std::move(path)), writer_(std::move(writer)), reader_(std::move(reader)), size_(size) {}

absl::StatusOr<std::unique_ptr<BlobFile>> BlobFile::Open(Env& env, std::string path) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> writer, env.OpenWritableFile(path));
  ASSIGN_OR_RETURN(ScopedFd reader, OpenFile(path, O_RDONLY | O_CLOEXEC));
  ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  return std::unique_ptr<BlobFile>(
      new BlobFile(std::move(path), std::move(writer), std::move(reader), size));
}

absl::StatusOr<BlobLocation> BlobFile::Append(absl::string_view blob) {
  if (blob.size() > UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("a blob of ", blob.size(), " bytes for ", path_));
  }
  constexpr uint64_t kPage = 4096;
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

absl::Status BlobFile::Read(absl::Span<const BlobLocation> locs, uint8_t* out) const {
  if (locs.empty()) return absl::OkStatus();
  for (size_t i = 1; i < locs.size(); ++i) {
    if (locs[i].offset < locs[i - 1].offset + locs[i - 1].size) {
      return absl::InvalidArgumentError(
          absl::StrCat("blobs read together from ", path_, " must be ascending and apart"));
    }
  }
  const uint64_t first = locs.front().offset, total = SpanBytes(locs);
  // (Written so that a damaged offset near 2^64 cannot wrap past it.)
  if (first > size() || total > size() - first) {
    return absl::DataLossError(
        absl::StrCat(path_, " ends before the blobs at ", first, " (", total, " bytes)"));
  }
  RETURN_IF_ERROR(PReadFull(reader_.get(), out, total, first, path_));
  for (const BlobLocation& loc : locs) {
    if (crc32c::Value(out + (loc.offset - first), loc.size) != loc.crc) {
      return absl::DataLossError(
          absl::StrCat(path_, ": the blob at offset ", loc.offset, " fails its checksum"));
    }
  }
  return absl::OkStatus();
}

}  // namespace strata
