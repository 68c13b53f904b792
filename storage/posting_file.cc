#include "storage/posting_file.h"

#include <fcntl.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "storage/crc32c.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

constexpr char kDataMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'D'};
constexpr char kTableMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'T'};
constexpr size_t kWriteChunk = 4 << 20;

// Page 0 of the data file. Little-endian, fixed layout; the rest of the page is zero.
struct DataHeader {
  char magic[8];
  uint32_t version;
  uint32_t entry_bytes;
  uint32_t tag;
  uint32_t table_crc;  // crc of the table file's body: ties the two files together
  uint64_t postings;
  uint64_t data_pages;  // pages in the file, header included
  uint32_t header_crc;  // crc32c of the bytes before this field
  uint32_t reserved;
};
static_assert(sizeof(DataHeader) == 48);

struct TableHeader {
  char magic[8];
  uint32_t version;
  uint32_t entry_bytes;
  uint32_t tag;
  uint32_t reserved;
  uint64_t postings;
};
static_assert(sizeof(TableHeader) == 32);

}  // namespace

PostingFileWriter::PostingFileWriter(Env& env, std::unique_ptr<WritableFile> file,
                                     std::string data_path, std::string table_path,
                                     PostingFileParams params)
    : env_(env),
      file_(std::move(file)),
      data_path_(std::move(data_path)),
      table_path_(std::move(table_path)),
      params_(params) {}

absl::StatusOr<std::unique_ptr<PostingFileWriter>> PostingFileWriter::Create(
    Env& env, const std::string& data_path, const std::string& table_path,
    PostingFileParams params) {
  if (params.entry_bytes == 0 || params.entry_bytes > 1 << 20) {
    return absl::InvalidArgumentError(absl::StrCat("bad entry size ", params.entry_bytes));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env.NewWritableFile(data_path));
  return std::unique_ptr<PostingFileWriter>(
      new PostingFileWriter(env, std::move(file), data_path, table_path, params));
}

absl::Status PostingFileWriter::FlushFull() {
  // Write whole pages only; keep the partial tail page in the buffer.
  size_t full = (buf_.size() / kPageSize) * kPageSize;
  if (full == 0) return absl::OkStatus();
  RETURN_IF_ERROR(file_->WriteAt(
      buf_start_, absl::string_view(reinterpret_cast<const char*>(buf_.data()), full)));
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(full));
  buf_start_ += full;
  return absl::OkStatus();
}

absl::Status PostingFileWriter::Append(absl::Span<const uint8_t> entries) {
  if (entries.size() % params_.entry_bytes != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("posting ", table_.size(), " has ", entries.size(),
                     " bytes, not a multiple of the entry size ", params_.entry_bytes));
  }
  PostingLocation loc;
  loc.count = static_cast<uint32_t>(entries.size() / params_.entry_bytes);
  if (!entries.empty()) {
    size_t min_pages = (entries.size() + kPageSize - 1) / kPageSize;
    size_t in_page = pos_ % kPageSize;
    // Never let a list straddle more pages than its size needs: start a fresh page when the tail of
    // the current one would push it over.
    if (in_page != 0 && (in_page + entries.size() + kPageSize - 1) / kPageSize > min_pages) {
      size_t pad = kPageSize - in_page;
      buf_.insert(buf_.end(), pad, 0);
      pos_ += pad;
      in_page = 0;
    }
    if (min_pages > UINT16_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("posting ", table_.size(), " is too long (", entries.size(), " bytes)"));
    }
    if (pos_ / kPageSize > UINT32_MAX) {
      return absl::ResourceExhaustedError("posting file exceeds 2^32 pages (16 TiB)");
    }
    loc.start_page = static_cast<uint32_t>(pos_ / kPageSize);
    loc.offset_in_page = static_cast<uint16_t>(in_page);
    loc.page_count = static_cast<uint16_t>((in_page + entries.size() + kPageSize - 1) / kPageSize);
    loc.crc = crc32c::Value(entries.data(), entries.size());
    buf_.insert(buf_.end(), entries.begin(), entries.end());
    pos_ += entries.size();
    if (buf_.size() >= kWriteChunk) RETURN_IF_ERROR(FlushFull());
  }
  table_.push_back(loc);
  return absl::OkStatus();
}

absl::Status PostingFileWriter::Finish() {
  // Pad the last page so every read of whole pages stays inside the file.
  size_t tail = pos_ % kPageSize;
  if (tail != 0) {
    buf_.insert(buf_.end(), kPageSize - tail, 0);
    pos_ += kPageSize - tail;
  }
  RETURN_IF_ERROR(FlushFull());

  // Table file first (its crc goes into the data header).
  std::vector<char> table(sizeof(TableHeader) + table_.size() * sizeof(PostingLocation) + 4);
  TableHeader th{};
  std::memcpy(th.magic, kTableMagic, 8);
  th.version = kPostingFileVersion;
  th.entry_bytes = params_.entry_bytes;
  th.tag = params_.tag;
  th.postings = table_.size();
  std::memcpy(table.data(), &th, sizeof th);
  std::memcpy(table.data() + sizeof th, table_.data(), table_.size() * sizeof(PostingLocation));
  uint32_t table_crc = crc32c::Value(table.data(), table.size() - 4);
  std::memcpy(table.data() + table.size() - 4, &table_crc, 4);
  RETURN_IF_ERROR(WriteFileAtomic(env_, table_path_, table));

  std::vector<char> page(kPageSize, 0);
  DataHeader h{};
  std::memcpy(h.magic, kDataMagic, 8);
  h.version = kPostingFileVersion;
  h.entry_bytes = params_.entry_bytes;
  h.tag = params_.tag;
  h.table_crc = table_crc;
  h.postings = table_.size();
  h.data_pages = pos_ / kPageSize;
  h.header_crc = crc32c::Value(&h, offsetof(DataHeader, header_crc));
  std::memcpy(page.data(), &h, sizeof h);
  RETURN_IF_ERROR(file_->WriteAt(0, absl::string_view(page.data(), page.size())));
  RETURN_IF_ERROR(file_->Sync());
  return file_->Close();
}

absl::StatusOr<std::unique_ptr<PostingFile>> PostingFile::Open(const std::string& data_path,
                                                               const std::string& table_path,
                                                               PostingFileParams expected,
                                                               const BlockFileOptions& io,
                                                               const BlockFileWrapper& wrap) {
  auto pf = std::unique_ptr<PostingFile>(new PostingFile());
  pf->data_path_ = data_path;
  pf->params_ = expected;

  // Table.
  ASSIGN_OR_RETURN(std::string table, ReadWholeFile(table_path));
  if (table.size() < sizeof(TableHeader) + 4 || std::memcmp(table.data(), kTableMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(table_path, ": not a Strata posting table"));
  }
  TableHeader th;
  std::memcpy(&th, table.data(), sizeof th);
  if (th.version != kPostingFileVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(table_path, ": posting table version ", th.version,
                     " is not supported (this build reads ", kPostingFileVersion, ")"));
  }
  if (table.size() != sizeof(TableHeader) + th.postings * sizeof(PostingLocation) + 4) {
    return absl::DataLossError(absl::StrCat(table_path, ": size ", table.size(),
                                            " does not match its ", th.postings, " postings"));
  }
  uint32_t stored_crc;
  std::memcpy(&stored_crc, table.data() + table.size() - 4, 4);
  uint32_t table_crc = crc32c::Value(table.data(), table.size() - 4);
  if (stored_crc != table_crc) {
    return absl::DataLossError(absl::StrCat(table_path, ": checksum mismatch"));
  }
  if (th.entry_bytes != expected.entry_bytes || th.tag != expected.tag) {
    return absl::InvalidArgumentError(absl::StrCat(table_path, ": entry size/tag ", th.entry_bytes,
                                                   "/", th.tag, " differ from the expected ",
                                                   expected.entry_bytes, "/", expected.tag));
  }
  pf->table_.resize(th.postings);
  std::memcpy(pf->table_.data(), table.data() + sizeof th, th.postings * sizeof(PostingLocation));

  // Data header.
  {
    ASSIGN_OR_RETURN(ScopedFd fd, OpenFile(data_path, O_RDONLY));
    DataHeader h;
    RETURN_IF_ERROR(PReadFull(fd.get(), &h, sizeof h, 0, data_path));
    if (std::memcmp(h.magic, kDataMagic, 8) != 0) {
      return absl::DataLossError(absl::StrCat(data_path, ": not a Strata posting file"));
    }
    if (h.header_crc != crc32c::Value(&h, offsetof(DataHeader, header_crc))) {
      return absl::DataLossError(absl::StrCat(data_path, ": header checksum mismatch"));
    }
    if (h.version != kPostingFileVersion) {
      return absl::InvalidArgumentError(
          absl::StrCat(data_path, ": posting file version ", h.version, " is not supported"));
    }
    if (h.table_crc != table_crc || h.postings != th.postings || h.entry_bytes != th.entry_bytes ||
        h.tag != th.tag) {
      return absl::DataLossError(
          absl::StrCat(data_path, " and ", table_path, " do not belong together"));
    }
    ASSIGN_OR_RETURN(uint64_t size, FileSize(data_path));
    if (size != h.data_pages * kPageSize) {
      return absl::DataLossError(absl::StrCat(data_path, ": ", size, " bytes, the header says ",
                                              h.data_pages * kPageSize, " (truncated?)"));
    }
    pf->data_pages_ = h.data_pages;
  }
  for (size_t i = 0; i < pf->table_.size(); ++i) {
    const PostingLocation& l = pf->table_[i];
    uint64_t bytes = uint64_t{l.count} * expected.entry_bytes;
    if (l.count > 0 &&
        (l.start_page == 0 || uint64_t{l.start_page} + l.page_count > pf->data_pages_ ||
         l.offset_in_page + bytes > uint64_t{l.page_count} * kPageSize)) {
      return absl::DataLossError(
          absl::StrCat(table_path, ": posting ", i, " points outside ", data_path));
    }
  }
  ASSIGN_OR_RETURN(pf->block_file_, BlockFile::Open(data_path, io));
  if (wrap) pf->block_file_ = wrap(std::move(pf->block_file_));
  return pf;
}

ReadOp PostingFile::ReadFor(uint32_t posting, char* buf) const {
  const PostingLocation& l = table_[posting];
  return ReadOp{uint64_t{l.start_page} * kPageSize, uint32_t{l.page_count} * uint32_t{kPageSize},
                buf};
}

absl::StatusOr<absl::Span<const uint8_t>> PostingFile::View(uint32_t posting,
                                                            const char* buf) const {
  const PostingLocation& l = table_[posting];
  const auto* p = reinterpret_cast<const uint8_t*>(buf) + l.offset_in_page;
  size_t bytes = size_t{l.count} * params_.entry_bytes;
  uint32_t crc = crc32c::Value(p, bytes);
  if (crc != l.crc) {
    return absl::DataLossError(absl::StrCat(
        "posting ", posting, " of ", data_path_, " is corrupt: checksum ", crc, " != stored ",
        l.crc, " (pages ", l.start_page, "..", l.start_page + l.page_count - 1, ")"));
  }
  return absl::Span<const uint8_t>(p, bytes);
}

}  // namespace strata
