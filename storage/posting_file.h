// The posting-list file: every posting list of a SPANN index, packed into 4 KiB pages on disk, plus
// the in-memory table that locates each list. Layout and guarantees: storage/FORMAT.md.
//
// A posting is `count` entries of `entry_bytes` each, stored contiguously from (start_page,
// offset_in_page) over `page_count` pages, and never spanning more pages than its size needs. Each
// posting carries a crc32c over its bytes; View() checks it, so a corrupted posting is a DataLoss
// error naming it, never a silently wrong answer.
#ifndef STRATA_STORAGE_POSTING_FILE_H_
#define STRATA_STORAGE_POSTING_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/aligned_buffer.h"
#include "storage/block_reader.h"
#include "storage/env.h"
#include "storage/scoped_fd.h"

namespace strata {

inline constexpr uint32_t kPostingFileVersion = 1;

// Where one posting lives. 16 bytes, kept in RAM for every posting.
struct PostingLocation {
  uint32_t start_page = 0;      // page index in the data file (page 0 is the header)
  uint16_t offset_in_page = 0;  // byte offset of the first entry within start_page
  uint16_t page_count = 0;      // pages to read (0 for an empty posting)
  uint32_t count = 0;           // entries
  uint32_t crc = 0;             // crc32c of the count * entry_bytes bytes
};
static_assert(sizeof(PostingLocation) == 16);

// Parameters recorded in the file header. `tag` is free for the caller (the index stores its
// element type there) and is checked on open.
struct PostingFileParams {
  uint32_t entry_bytes = 0;
  uint32_t tag = 0;
};

// Writes postings in id order 0, 1, 2, ... then the table. Not thread-safe. The file is complete
// (and readable) only after Finish() returns OK; a crash before leaves a file Open() refuses.
class PostingFileWriter final {
 public:
  // Creates (truncates) `data_path` and will write the table to `table_path` at Finish(), both
  // through `env` (which must outlive the writer). Nothing is durable before Finish() returns;
  // the names of both files are durable once their directory is synced (WriteFileAtomic syncs
  // it for the table).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PostingFileWriter>> Create(
      Env& env, const std::string& data_path, const std::string& table_path,
      PostingFileParams params);
  ~PostingFileWriter() = default;
  PostingFileWriter(const PostingFileWriter&) = delete;
  PostingFileWriter& operator=(const PostingFileWriter&) = delete;

  // Appends the next posting: `entries` holds count * entry_bytes bytes. A posting's page count
  // must fit in 16 bits (256 MiB).
  [[nodiscard]] absl::Status Append(absl::Span<const uint8_t> entries);
  // Flushes, writes the header and table, fsyncs both files.
  [[nodiscard]] absl::Status Finish();

  [[nodiscard]] uint64_t postings() const { return table_.size(); }
  [[nodiscard]] uint64_t bytes_written() const { return pos_; }

 private:
  PostingFileWriter(Env& env, std::unique_ptr<WritableFile> file, std::string data_path,
                    std::string table_path, PostingFileParams params);
  absl::Status FlushFull();

  Env& env_;
  std::unique_ptr<WritableFile> file_;
  std::string data_path_;
  std::string table_path_;
  PostingFileParams params_;
  std::vector<PostingLocation> table_;
  uint64_t pos_ = kPageSize;  // next free byte in the file; page 0 is the header
  uint64_t buf_start_ = kPageSize;
  std::vector<uint8_t> buf_;  // bytes [buf_start_, pos_) not yet written
};

// A finished posting file, opened for batched reads. Thread-safe: queries share it, each with its
// own BlockReader from block_file().
class PostingFile final {
 public:
  // Opens and validates both files (magic, version, parameters, table checksum, sizes). DataLoss or
  // InvalidArgument with the path for anything it does not understand. `expected.entry_bytes` and
  // `expected.tag` must match the header.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PostingFile>> Open(
      const std::string& data_path, const std::string& table_path, PostingFileParams expected,
      const BlockFileOptions& io = {}, const BlockFileWrapper& wrap = nullptr);

  [[nodiscard]] size_t postings() const { return table_.size(); }
  [[nodiscard]] const PostingLocation& location(uint32_t posting) const { return table_[posting]; }
  [[nodiscard]] uint32_t entry_bytes() const { return params_.entry_bytes; }
  [[nodiscard]] uint64_t data_pages() const { return data_pages_; }
  [[nodiscard]] size_t table_bytes() const { return table_.size() * sizeof(PostingLocation); }

  // The read for a posting: page-aligned offset and length, into `buf` (page_count pages, aligned).
  [[nodiscard]] ReadOp ReadFor(uint32_t posting, char* buf) const;
  // After ReadFor's op completed into `buf`: checks the crc and returns the entries
  // (count * entry_bytes bytes). DataLoss naming the posting on mismatch.
  [[nodiscard]] absl::StatusOr<absl::Span<const uint8_t>> View(uint32_t posting,
                                                               const char* buf) const;

  [[nodiscard]] BlockFile& block_file() { return *block_file_; }

 private:
  PostingFile() = default;
  std::string data_path_;
  PostingFileParams params_;
  uint64_t data_pages_ = 0;
  std::vector<PostingLocation> table_;
  std::unique_ptr<BlockFile> block_file_;
};

}  // namespace strata

#endif  // STRATA_STORAGE_POSTING_FILE_H_
