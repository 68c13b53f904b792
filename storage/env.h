// The file operations storage/ and index/ use, behind one interface (LevelDB's Env is the model),
// so that tests can inject write, sync and rename errors and simulate a power cut
// (storage/fault_injection_env.h). Env::Default() is POSIX. Every write of a
// collection's files goes through it: index builds (posting files, head graphs, id files,
// manifests, the generation directory's rename), the catalog's directories, and RocksDB's files
// (through RocksDbFileSystem()), and blob files' appends (storage/blob_file.h). Reads on the
// query path (io_uring, storage/block_reader.h; blob files' preads and read-only mappings;
// RocksDB's batched table reads, storage/uring_file_system.h), the
// tools' dataset files (storage/vector_file.h) and the sizing and mapping of scratch files
// (storage/mapped_arena.h, created and removed through the Env) use file descriptors directly.
//
// Thread safety: an Env and a WritableFile may be used from several threads, a WritableFile by
// one at a time.
#ifndef STRATA_STORAGE_ENV_H_
#define STRATA_STORAGE_ENV_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace strata {

// A file being written: from its start (NewWritableFile) or its end (OpenWritableFile). Bytes
// written are durable only once Sync returns OK (and a newly created file's name only once its
// directory is synced: Env::SyncDir).
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  [[nodiscard]] virtual absl::Status Append(absl::string_view data) = 0;
  [[nodiscard]] virtual absl::Status Sync() = 0;
  // Closes the file; later calls fail. The destructor closes it too, ignoring errors.
  [[nodiscard]] virtual absl::Status Close() = 0;
  // Writes `data` at `offset`, which may lie before the end (a header written last). Durable
  // like Append, once synced.
  [[nodiscard]] virtual absl::Status WriteAt(uint64_t offset, absl::string_view data) = 0;
  // Makes the file at least `size` bytes long, with disk space allocated for the bytes it adds
  // (fallocate; those below the end stay as they were): ResourceExhausted when the disk is full.
  // The bytes it adds read as zeros; they are not data written (nothing of them needs a sync).
  [[nodiscard]] virtual absl::Status Allocate(uint64_t size) = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  // The POSIX environment (never deleted).
  static Env* Default();

  // Creates `path`, or truncates it if it exists. Errors name the path (NotFound for a missing
  // directory, PermissionDenied, ResourceExhausted when the disk is full, ...).
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;
  // Opens `path` for writing without truncating it (creating it when missing): what it holds
  // already stays (and counts as durable); Append writes after it, WriteAt where it says.
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritableFile(
      const std::string& path) = 0;
  // Renames `from` to `to`, replacing `to` atomically; durable once their directory is synced.
  [[nodiscard]] virtual absl::Status RenameFile(const std::string& from, const std::string& to) = 0;
  [[nodiscard]] virtual absl::Status RemoveFile(const std::string& path) = 0;
  // Makes the directory's entries (created, renamed, removed files) durable.
  [[nodiscard]] virtual absl::Status SyncDir(const std::string& dir) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // Whether `path` exists (a file or a directory).
  [[nodiscard]] virtual bool FileExists(const std::string& path) = 0;
  // Creates directory `path` (its parent must exist); OK when it exists already. Durable once the
  // parent is synced.
  [[nodiscard]] virtual absl::Status CreateDir(const std::string& path) = 0;
  // Removes `path` and everything under it; OK when it does not exist.
  [[nodiscard]] virtual absl::Status RemoveTree(const std::string& path) = 0;
  // The names (not paths) of `dir`'s entries, in no particular order.
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) = 0;
  // The file system RocksDB should use for a store kept on this Env (storage/metadata_store.h),
  // or null for RocksDB's own POSIX one.
  [[nodiscard]] virtual std::shared_ptr<rocksdb::FileSystem> RocksDbFileSystem() { return nullptr; }
};

// Creates `path` and every missing directory above it, through `env` (CreateDir each), each made
// durable by a sync of its parent.
[[nodiscard]] absl::Status CreateDirs(Env& env, const std::string& path);

// Writes `data` to `path` so that after a crash at any point the file holds either its previous
// content or `data`, and `data` once this returns OK: a temporary file beside it, synced, renamed
// over `path`, and the directory synced. On an error the previous content stays.
[[nodiscard]] absl::Status WriteFileAtomic(Env& env, const std::string& path,
                                           absl::Span<const char> data);
// A string literal would convert to a Span that includes its terminating NUL: pass a std::string.
template <size_t N>
absl::Status WriteFileAtomic(Env& env, const std::string& path, const char (&literal)[N]) = delete;

}  // namespace strata

#endif  // STRATA_STORAGE_ENV_H_
