// An Env for tests that fails chosen operations and simulates a power cut: what was not synced is
// lost. LevelDB's FaultInjectionTestEnv is the model. Over a base Env (the POSIX one by default),
// it records for each file written through it how many bytes were synced, which files were
// created or renamed since their directory was last synced, and what a rename replaced.
// DropUnsyncedData() then puts the disk where a power cut would leave it: each file cut back to
// its synced length, each rename not made durable undone (the replaced file restored), each file
// created since its directory's last sync removed.
//
// A simplification on the cautious side: a real disk may also have kept some unsynced bytes;
// this one keeps none. Thread-safe.
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
  enum class Op { kCreate, kAppend, kSync, kRename, kSyncDir };

  explicit FaultInjectionEnv(Env* base = Env::Default()) : base_(base) {}

  // The `nth` (from 0) next call of `op` fails, once, with an InternalError naming the injected
  // fault, as an EIO would; the operation does nothing then.
  void FailNth(Op op, int nth);
  // Calls of `op` since construction.
  [[nodiscard]] int64_t calls(Op op) const;

  // The power cut: see the file comment. Returns the first error of the base Env, if any.
  [[nodiscard]] absl::Status DropUnsyncedData();

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  absl::Status RenameFile(const std::string& from, const std::string& to) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return base_->ReadFile(path);
  }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }

 private:
  class File;
  struct State {
    uint64_t written = 0, synced = 0;
  };
  struct PendingRename {  // not yet durable: undone by a power cut
    std::string from, to;
    std::optional<std::string> replaced;  // what `to` held before, if it existed
  };

  // An injected failure for this call of `op`, or OK (and counts the call).
  absl::Status Inject(Op op, const std::string& what) ABSL_LOCKS_EXCLUDED(mu_);
  void Appended(const std::string& path, uint64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  void Synced(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);

  Env* const base_;
  mutable Mutex mu_;
  std::map<std::string, State> files_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> created_ ABSL_GUARDED_BY(mu_);  // since their directory's last sync
  std::vector<PendingRename> renames_ ABSL_GUARDED_BY(mu_);
  std::map<Op, int64_t> calls_ ABSL_GUARDED_BY(mu_);
  std::map<Op, int64_t> fail_at_ ABSL_GUARDED_BY(mu_);  // the call number that fails
};

}  // namespace strata

#endif  // STRATA_STORAGE_FAULT_INJECTION_ENV_H_
