// An online load's checkpoint: the rows the server acknowledged, bound to the load they belong to
// (the input and its side files, the collection, the ids), so a rerun of the same command
// resumes after them and any other load starts from row 0. Ctrl-C says how to resume.
#ifndef STRATA_TOOLS_LOAD_CHECKPOINT_H_
#define STRATA_TOOLS_LOAD_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

ABSL_DECLARE_FLAG(bool, restart);

namespace strata::load {

// The checkpoint's path: --checkpoint, else INPUT.COLLECTION.ckpt beside the input, or
// INPUT.COLLECTION.TENANT.ckpt for a load in a tenant's view (two tenants loading one file each
// keep their own).
std::string Checkpoint(const std::string& collection, const std::string& tenant);

// What a checkpoint is bound to: the input file (path, size, modification time), the files beside
// it (--ids, --payloads, --tenants: the same), the collection (name and the uid the server gave
// it at creation), the ids the rows get (--id_offset) and the tenant whose view the load is in
// (--tenant, or a tenant key's). Rows count only for the same load.
struct LoadIdentity {
  std::string input;
  uint64_t input_size = 0;
  int64_t input_mtime_ns = 0;
  std::string collection;
  std::string collection_uid;
  uint64_t total = 0;
  uint64_t id_offset = 0;
  std::string side_files;  // "--flag path size mtime_ns" lines
  std::string tenant;      // empty: the admin's whole-collection load

  std::string Serialize() const {
    return absl::StrCat("input=", input, "\ninput_size=", input_size,
                        "\ninput_mtime_ns=", input_mtime_ns, "\ncollection=", collection,
                        "\ncollection_uid=", collection_uid, "\ntotal=", total,
                        "\nid_offset=", id_offset, "\n", side_files,
                        // (Only when set: an admin's checkpoint from before reads as before.)
                        tenant.empty() ? "" : absl::StrCat("tenant=", tenant, "\n"));
  }
};

// The identity of this load: the input files as they are now, `collection` with the `uid` the
// server gave it, `total` rows, --id_offset, and `tenant` (empty: none).
absl::StatusOr<LoadIdentity> IdentifyLoad(const std::string& collection, const std::string& uid,
                                          uint64_t total, const std::string& tenant);

// How far a load got: its first `rows` rows are acknowledged, `rejected` of them refused by the
// server (a rerun that resumes still reports them, and still exits 1).
struct LoadProgress {
  uint64_t rows = 0;
  uint64_t rejected = 0;
};

// What a checkpoint at `path` says of the load, when it was made by this very load; else none
// (rows 0), saying on stderr why it does not count. A load is told apart by its identity only: a
// tenant dropped and made again under its name is the same tenant to it (tenants carry no uid).
LoadProgress ReadCheckpoint(const std::string& path, const LoadIdentity& want);

// Replaces the checkpoint at `path` atomically with `done` of the load `id`.
absl::Status WriteCheckpoint(const std::string& path, const LoadIdentity& id,
                             const LoadProgress& done);

// From now on, Ctrl-C says how to resume after the rows `checkpoint` holds, then dies of SIGINT.
void SayHowToResumeOnInterrupt(const std::string& checkpoint);

}  // namespace strata::load

#endif  // STRATA_TOOLS_LOAD_CHECKPOINT_H_
