// Background index builds: one thread builds the collections scheduled, one at a time, in order,
// and keeps each collection's latest build (its id, state, phase and progress) for
// DescribeCollection.
//
// Thread-safety: all methods may be called concurrently.
#ifndef STRATA_SERVICE_BUILD_QUEUE_H_
#define STRATA_SERVICE_BUILD_QUEUE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "index/collection.h"

namespace strata {

// One build, as a client follows it.
struct BuildStatus {
  enum class State { kQueued, kRunning, kDone, kFailed };
  uint64_t id = 0;  // unique within this server process, from 1
  State state = State::kQueued;
  bool requested = false;  // by a BuildIndex call; else the server's own (threshold, repair)
  std::string phase;       // while running: the build's current phase
  uint64_t done = 0, total = 0;
  std::string error;                                    // when failed
  absl::StatusCode error_code = absl::StatusCode::kOk;  // when failed
  int64_t queued_unix_ms = 0, started_unix_ms = 0, finished_unix_ms = 0;
};

class BuildQueue final {
 public:
  // `on_done` (optional) runs on the build thread after each build, done or failed, before its
  // status says so.
  explicit BuildQueue(std::function<void()> on_done = nullptr)
      : on_done_(std::move(on_done)), thread_([this] { Run(); }) {}
  ~BuildQueue() { Stop(); }
  BuildQueue(const BuildQueue&) = delete;
  BuildQueue& operator=(const BuildQueue&) = delete;

  // Queues a build of `c` and returns its id. A collection already queued keeps its place and
  // id (a request upgrades it to `requested`). `requested` builds run even when the collection
  // does not want one (WantsBuild); the server's own builds are skipped then. 0 when stopping.
  uint64_t Schedule(std::shared_ptr<Collection> c, bool requested);
  // The latest build of the collection with uid `uid` since the server started, if any.
  [[nodiscard]] std::optional<BuildStatus> Latest(const std::string& uid) const;
  // Stops the build in progress (Collection::StopBuilds: within about one piece of its work per
  // thread) and waits for it; drops the queued ones. A collection that still wants a build, or
  // whose requested build did not install (Collection::BuildRequested), gets one at the next
  // start.
  void Stop();

 private:
  struct Job {
    std::shared_ptr<Collection> collection;
    std::string uid;
  };
  void Run();
  // Updates the status of build `uid` under the lock.
  void Update(const std::string& uid, uint64_t id, const std::function<void(BuildStatus*)>& f);

  const std::function<void()> on_done_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::shared_ptr<Collection> running_;        // the collection whose build runs, if any
  std::map<std::string, BuildStatus> latest_;  // by collection uid
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace strata

#endif  // STRATA_SERVICE_BUILD_QUEUE_H_
