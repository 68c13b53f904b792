// An Env for tests that fails chosen operations and simulates a power cut: what was not synced is
// lost. LevelDB's FaultInjectionTestEnv is the model. Over a base Env (the POSIX one by default),
// it records for each file written through it how many bytes were synced, which files and
// directories were created or renamed since their directory was last synced, and what a rename
// replaced. DropUnsyncedData() then puts the disk where a power cut would leave it: each file cut
// back to its synced length, each rename not made durable undone (the replaced file restored),
// each file or directory created since its parent's last sync removed (with all it holds).
//
// RocksDB's files take the same model: RocksDbFileSystem() gives RocksDB a file system whose
// writes, syncs, renames and directory syncs are recorded here too, so one power cut hits the
// metadata store and the index files alike.
//
// PowerCutAfter(n) makes the cut happen in the middle of whatever runs: from the n-th next
// write-side call on (any Op, RocksDB's included), every such call fails and does nothing, as
// if the machine had stopped there; the caller then closes what it has open, and
// DropUnsyncedData() leaves the disk as the cut would.
//
// Simplifications: a real disk may also have kept some unsynced bytes; this one keeps none (the
// cautious side). Removals (RemoveFile, RemoveTree, RocksDB's deletes) are taken as durable at
// once, and a WriteAt over bytes already synced is kept by a power cut (page-sized headers
// written before the file's first sync are what Strata writes that way). Thread-safe.
#ifndef STRATA_STORAGE_FAULT_INJECTION_ENV_H_
#define STRATA_STORAGE_FAULT_INJECTION_ENV_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "storage/env.h"

namespace strata {

class FaultInjectionEnv final : public Env {
 public:
  // The write-side operations; RocksDB's calls count as the matching one (a WriteAt, an
  // Allocate or a truncation as kAppend, a directory's creation as kCreate).
  enum class Op { kCreate, kAppend, kSync, kRename, kSyncDir, kRemove };

  explicit FaultInjectionEnv(Env* base = Env::Default()) : base_(base) {}
  ~FaultInjectionEnv() override;

  // The `nth` (from 0) next call of `op` fails, and the `count` - 1 calls of `op` after it,
  // each with an InternalError naming the injected fault, as an EIO would; the operation does
  // nothing then.
  void FailNth(Op op, int nth, int count = 1);
  // Calls of `op` since construction.
  [[nodiscard]] int64_t calls(Op op) const;
  // Write-side calls of every kind since construction.
  [[nodiscard]] int64_t write_calls() const;

  // The power cut in the middle of things: the `n`-th (from 0) next write-side call and all later
  // ones fail (InternalError "simulated power cut") until DropUnsyncedData(). A negative `n`
  // disarms a cut that has not happened yet.
  void PowerCutAfter(int64_t n);
  // Whether a cut set by PowerCutAfter has happened.
  [[nodiscard]] bool power_is_cut() const;

  // A full disk, on demand: while `full`, every append (Op::kAppend, RocksDB's included) fails
  // with ResourceExhausted, as ENOSPC would (RocksDB sees IOStatus::NoSpace), and RocksDB's free
  // space query of any path answers 0; the operation does nothing then. Creates, renames and
  // removals still succeed. `only_paths_ending`: only appends to such files fail (and the free
  // space stays).
  void SetDiskFull(bool full, std::string only_paths_ending = "");

  // A slow disk, on demand: while held, every sync (Op::kSync: WritableFile::Sync and RocksDB's
  // syncs) of a file whose path ends with `suffix` (e.g. ".log": RocksDB's write-ahead logs)
  // waits inside the call until ReleaseSyncs(). AwaitHeldSyncs(n) returns once n syncs are
  // waiting there.
  void HoldSyncs(std::string suffix = "");
  void ReleaseSyncs();
  void AwaitHeldSyncs(int n);

  // The power cut: see the file comment. Ends a cut set by PowerCutAfter. Returns the first
  // error of the base Env, if any.
  [[nodiscard]] absl::Status DropUnsyncedData();

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritableFile(const std::string& path) override;
  absl::Status RenameFile(const std::string& from, const std::string& to) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return base_->ReadFile(path);
  }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }
  absl::Status CreateDir(const std::string& path) override;
  absl::Status RemoveTree(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> GetChildren(const std::string& dir) override {
    return base_->GetChildren(dir);
  }
  // RocksDB's POSIX file system, seen through this Env's record (created on first use).
  std::shared_ptr<rocksdb::FileSystem> RocksDbFileSystem() override;

 private:
  class File;
  class RocksFs;
  class RocksFile;
  class RocksDir;
  struct State {
    uint64_t written = 0, synced = 0;
  };
  struct PendingRename {  // not yet durable: undone by a power cut
    std::string from, to;
    std::optional<std::string> replaced;  // what `to` held before, if it was a file
  };

  bool DiskIsFull() const {
    MutexLock lock(&mu_);
    return disk_full_ && full_suffix_.empty();
  }
  // An injected failure for this call of `op` (an injected fault or the power cut), or OK; counts
  // the call.
  absl::Status Inject(Op op, const std::string& what) ABSL_LOCKS_EXCLUDED(mu_);
  // What happened, once the base call succeeded. Paths are normalised (Norm in the .cc).
  void Created(const std::string& path, bool existed) ABSL_LOCKS_EXCLUDED(mu_);
  // A file opened again for appending: what it holds already counts as durable unless recorded.
  void Reopened(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);
  void Written(const std::string& path, uint64_t end) ABSL_LOCKS_EXCLUDED(mu_);
  void Appended(const std::string& path, uint64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  void Truncated(const std::string& path, uint64_t size) ABSL_LOCKS_EXCLUDED(mu_);
  void Synced(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);
  void Renamed(const std::string& from, const std::string& to, std::optional<std::string> replaced)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Removed(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);
  void DirSynced(const std::string& dir) ABSL_LOCKS_EXCLUDED(mu_);
  // What a rename of `to` would replace (its content when it is a regular file).
  absl::StatusOr<std::optional<std::string>> Replaced(const std::string& to);

  Env* const base_;
  mutable Mutex mu_;
  std::map<std::string, State> files_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> created_ ABSL_GUARDED_BY(mu_);  // since their directory's last sync
  std::vector<PendingRename> renames_ ABSL_GUARDED_BY(mu_);
  std::map<Op, int64_t> calls_ ABSL_GUARDED_BY(mu_);
  // The first call number that fails, and how many in a row do.
  std::map<Op, std::pair<int64_t, int>> fail_at_ ABSL_GUARDED_BY(mu_);
  int64_t cut_in_ ABSL_GUARDED_BY(mu_) = -1;  // write calls before the cut; -1 = none
  bool cut_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_syncs_ ABSL_GUARDED_BY(mu_) = false;
  std::string hold_suffix_ ABSL_GUARDED_BY(mu_);
  int held_syncs_ ABSL_GUARDED_BY(mu_) = 0;  // syncs waiting at the hold
  bool disk_full_ ABSL_GUARDED_BY(mu_) = false;
  std::string full_suffix_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<rocksdb::FileSystem> rocks_fs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata

#endif  // STRATA_STORAGE_FAULT_INJECTION_ENV_H_
