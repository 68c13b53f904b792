// A growable byte array kept in a file and mapped shared into the process: its pages are page
// cache, which the kernel writes back and evicts as it sees fit, not anonymous memory. For bytes
// that are a copy of data kept durably elsewhere and that the owner rebuilds at every open (the
// rows a collection writes between two builds: index/internal/appended_vectors.h). Nothing in it
// is durable: it is never synced, and its name is removed as soon as it is made, so nothing else
// can open, truncate or replace it (a truncated mapped file is a SIGBUS), and its disk space goes
// back when the arena goes or the process ends, however it ends.
//
// Disk space is allocated (fallocate) before any byte of it is reachable through the mapping, so
// a full disk is an error from Allocate, never a SIGBUS at a store. (A read error of the disk,
// for a page the kernel evicted earlier, is a SIGBUS, as for any mapped file.)
//
// The file is created, removed and allocated through an Env (tests fail those calls); its
// mapping and shrinking use a descriptor of its own: nothing about them is durable, so there is
// nothing for a power-cut model to record. Two descriptors per arena.
//
// Thread safety: Map and ShrinkTo may move or unmap the bytes (data() changes): the caller holds
// a lock that excludes every reader of them. Allocate and Trim do not touch the mapping and may
// run beside readers (one of them at a time, and not beside Map or ShrinkTo). Stores into
// distinct bytes may run concurrently.
//
// Copy-on-write file systems (btrfs, ZFS, bcachefs) do not keep a fallocate's blocks for the
// rewrite of a page: there a full disk can still end a store through the mapping with SIGBUS.
#ifndef STRATA_STORAGE_MAPPED_ARENA_H_
#define STRATA_STORAGE_MAPPED_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/env.h"
#include "storage/scoped_fd.h"

namespace strata {

class MappedArena final {
 public:
  // Creates `path` (replacing a file there) through `env`, empty, and removes the name:
  // capacity() 0, no mapping.
  static absl::StatusOr<std::unique_ptr<MappedArena>> Create(Env& env, std::string path);
  // Unmaps and closes: the file is gone.
  ~MappedArena();
  MappedArena(const MappedArena&) = delete;
  MappedArena& operator=(const MappedArena&) = delete;

  // The bytes [0, capacity()); null while capacity() is 0.
  [[nodiscard]] uint8_t* data() { return static_cast<uint8_t*>(map_); }
  [[nodiscard]] const uint8_t* data() const { return static_cast<const uint8_t*>(map_); }
  // Bytes usable at data(): the mapped share of the file.
  [[nodiscard]] uint64_t capacity() const { return mapped_; }
  // Bytes the file holds on disk (at least capacity(); more between Allocate and Map, and between
  // ShrinkTo and Trim). May be read beside Allocate and Trim.
  [[nodiscard]] uint64_t file_bytes() const { return allocated_.load(std::memory_order_relaxed); }
  // The file's size as the file system has it (fstat's st_size; its blocks are allocated).
  [[nodiscard]] absl::StatusOr<uint64_t> SizeOnDisk() const;
  // The name it was made under (no longer in its directory).
  [[nodiscard]] const std::string& path() const { return path_; }

  // Makes the file hold at least `bytes` with their disk space allocated, growing it to twice its
  // size, or by 256 MiB when it is larger than that, or, when the disk cannot give that much,
  // to just `bytes` (whole pages): ResourceExhausted naming the file when even that fails, the
  // file then cut back to what it was (a file system may keep blocks of a failed fallocate).
  // The mapping is left as it is.
  [[nodiscard]] absl::Status Allocate(uint64_t bytes);
  // Maps all the file holds (after Allocate): data() may move. An error leaves the mapping as it
  // was.
  [[nodiscard]] absl::Status Map();
  // Allocate, then Map.
  [[nodiscard]] absl::Status Reserve(uint64_t bytes);
  // Shrinks the mapping to `bytes` (whole pages; no-op when not smaller): capacity() is then
  // that. The bytes kept do not move. A failure is logged and leaves the mapping larger.
  void ShrinkTo(uint64_t bytes);
  // Gives the disk space past capacity() back (after ShrinkTo), cutting the file. Touches no
  // mapped byte: may run beside readers, like Allocate. A failure is logged and leaves the file
  // larger.
  void Trim();

 private:
  MappedArena(std::string path, std::unique_ptr<WritableFile> file, ScopedFd fd)
      : path_(std::move(path)), file_(std::move(file)), fd_(std::move(fd)) {}

  const std::string path_;
  std::unique_ptr<WritableFile> file_;  // (Allocate)
  ScopedFd fd_;                         // (the mapping)
  void* map_ = nullptr;
  uint64_t mapped_ = 0;
  std::atomic<uint64_t> allocated_{0};
};

}  // namespace strata

#endif  // STRATA_STORAGE_MAPPED_ARENA_H_
