#include "tools/load/checkpoint.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "storage/scoped_fd.h"
#include "tools/load/input.h"

ABSL_FLAG(std::string, checkpoint, "",
          "online: checkpoint file (default: <input>.<collection>.ckpt); a rerun resumes after the "
          "last acknowledged batch");
ABSL_FLAG(bool, restart, false, "online: ignore an existing checkpoint and load from row 0");

namespace strata::load {
namespace {

// Ctrl-C during an online load: says how to go on (the checkpoint is replaced atomically, so it
// holds the rows acknowledged before the signal), then dies of the signal.
char interrupt_message[1024];
size_t interrupt_length = 0;
extern "C" void OnInterrupt(int) {
  (void)!write(STDERR_FILENO, interrupt_message, interrupt_length);
  // Dies of the signal, as without the handler: a shell script running the load stops too.
  signal(SIGINT, SIG_DFL);
  raise(SIGINT);
}

}  // namespace

void SayHowToResumeOnInterrupt(const std::string& checkpoint) {
  const std::string message =
      absl::StrCat("\nstrata-load: interrupted; the same command",
                   absl::GetFlag(FLAGS_restart) ? " without --restart" : "",
                   " resumes the load after the rows ", checkpoint, " holds\n");
  interrupt_length = std::min(message.size(), sizeof(interrupt_message));
  std::memcpy(interrupt_message, message.data(), interrupt_length);
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
}

std::string Checkpoint(const std::string& collection, const std::string& tenant) {
  std::string c = absl::GetFlag(FLAGS_checkpoint);
  if (!c.empty()) return c;
  // (Names are letters, digits, '_' and '-': CheckName.)
  return absl::StrCat(InputPath(), ".", collection, tenant.empty() ? "" : ".", tenant, ".ckpt");
}

absl::StatusOr<LoadIdentity> IdentifyLoad(const std::string& collection, const std::string& uid,
                                          uint64_t total, const std::string& tenant) {
  struct stat st {};
  LoadIdentity id;
  for (const auto& [flag, path] :
       {std::pair<const char*, std::string>{"ids", absl::GetFlag(FLAGS_ids)},
        {"payloads", absl::GetFlag(FLAGS_payloads)},
        {"tenants", absl::GetFlag(FLAGS_tenants)}}) {
    if (path.empty()) continue;
    if (stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
    }
    absl::StrAppend(&id.side_files, "input_", flag, "=", path, " ", st.st_size, " ",
                    int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec, "\n");
  }
  if (stat(InputPath().c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(InputPath(), ": ", std::strerror(errno)));
  }
  id.input = InputPath();
  id.input_size = static_cast<uint64_t>(st.st_size);
  id.input_mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  id.collection = collection;
  id.collection_uid = uid;
  id.total = total;
  id.id_offset = absl::GetFlag(FLAGS_id_offset);
  id.tenant = tenant;
  return id;
}

LoadProgress ReadCheckpoint(const std::string& path, const LoadIdentity& want) {
  auto text = strata::ReadWholeFile(path);
  if (!text.ok()) return {};
  LoadProgress done;
  std::string body;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "rows=")) {
      if (!absl::SimpleAtoi(line.substr(5), &done.rows)) done.rows = 0;
    } else if (absl::StartsWith(line, "rejected=")) {  // (absent from older checkpoints: 0)
      if (!absl::SimpleAtoi(line.substr(9), &done.rejected)) done.rejected = 0;
    } else {
      absl::StrAppend(&body, line, "\n");
    }
  }
  // (A checkpoint from before id_offset was bound to it: written by a load at the default.)
  if (!absl::StrContains(body, "\nid_offset=")) {
    const size_t at = body.find("\ntotal=");
    const size_t end = at == std::string::npos ? at : body.find('\n', at + 1);
    if (end != std::string::npos) body.insert(end + 1, "id_offset=0\n");
  }
  const std::string expected = want.Serialize();
  if (body == expected && done.rows <= want.total && done.rejected <= done.rows) return done;
  std::string why = "it is for another load";
  for (absl::string_view line : absl::StrSplit(expected, '\n', absl::SkipEmpty())) {
    if (!absl::StrContains(body, absl::StrCat(line, "\n"))) {
      const std::string key(line.substr(0, line.find('=')));
      why = key == "collection_uid"
                ? "the collection is not the one it was made for (recreated, or another server)"
            : absl::StartsWith(key, "input") ? absl::StrCat("the input changed since (", key, ")")
                                             : absl::StrCat("its ", key, " differs");
      break;
    }
  }
  std::fprintf(stderr, "strata-load: ignoring checkpoint %s: %s; loading from row 0\n",
               path.c_str(), why.c_str());
  return {};
}

absl::Status WriteCheckpoint(const std::string& path, const LoadIdentity& id,
                             const LoadProgress& done) {
  return strata::WriteFileAtomic(
      path, absl::StrCat(id.Serialize(), "rows=", done.rows, "\nrejected=", done.rejected, "\n"));
}

}  // namespace strata::load
