#include "service/build_queue.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/log.h"

namespace strata {
namespace {
int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }
}  // namespace

uint64_t BuildQueue::Schedule(std::shared_ptr<Collection> c, bool requested) {
  const std::string uid = c->config().uid;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return 0;
  for (const Job& q : queue_) {
    if (q.uid == uid) {
      BuildStatus& st = latest_[uid];
      st.requested = st.requested || requested;
      return st.id;
    }
  }
  BuildStatus st;
  st.id = next_id_++;
  st.requested = requested;
  st.queued_unix_ms = NowMs();
  latest_[uid] = st;
  queue_.push_back({std::move(c), uid});
  cv_.notify_one();
  return st.id;
}

std::optional<BuildStatus> BuildQueue::Latest(const std::string& uid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = latest_.find(uid);
  if (it == latest_.end()) return std::nullopt;
  return it->second;
}

void BuildQueue::Update(const std::string& uid, uint64_t id,
                        const std::function<void(BuildStatus*)>& f) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = latest_.find(uid);
  if (it != latest_.end() && it->second.id == id) f(&it->second);
}

void BuildQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    queue_.clear();
    if (running_ != nullptr) running_->StopBuilds();
    cv_.notify_one();
  }
  thread_.join();
}

void BuildQueue::Run() {
  for (;;) {
    Job job;
    BuildStatus status;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      status = latest_[job.uid];
    }
    const uint64_t id = status.id;
    if (!status.requested && !job.collection->WantsBuild()) {
      // Scheduled by the server, no longer needed (another build got there first): done, as
      // far as a client following it is concerned.
      Update(job.uid, id, [](BuildStatus* st) {
        st->state = BuildStatus::State::kDone;
        st->phase = "not needed";
        st->started_unix_ms = st->finished_unix_ms = NowMs();
      });
      continue;
    }
    Update(job.uid, id, [](BuildStatus* st) {
      st->state = BuildStatus::State::kRunning;
      st->started_unix_ms = NowMs();
    });
    {
      // (A Stop since the job was taken stops it at once.)
      std::lock_guard<std::mutex> lock(mu_);
      running_ = job.collection;
      if (stopping_) running_->StopBuilds();
    }
    const std::string name = job.collection->config().name;
    Log(LogLevel::kInfo, "collection '%s': build %d started (%s)", name, id,
        status.requested ? "requested" : "automatic");
    absl::Status s =
        job.collection->BuildIndex([&](const char* phase, uint64_t done, uint64_t total) {
          Update(job.uid, id, [&](BuildStatus* st) {
            st->phase = phase;
            st->done = done;
            st->total = total;
          });
        });
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.reset();
    }
    // Before the state says done, so that a client who saw it sees what on_done_ changed.
    if (on_done_) on_done_();
    Update(job.uid, id, [&](BuildStatus* st) {
      st->state = s.ok() ? BuildStatus::State::kDone : BuildStatus::State::kFailed;
      st->error = std::string(s.message());
      st->error_code = s.code();
      st->finished_unix_ms = NowMs();
    });
    if (s.ok()) {
      Log(LogLevel::kInfo, "collection '%s': build %d done", name, id);
    } else if (absl::IsCancelled(s) || absl::IsNotFound(s)) {
      Log(LogLevel::kInfo, "collection '%s': build %d stopped: %s", name, id, s.message());
    } else {
      Log(LogLevel::kError, "collection '%s': build %d failed: %s", name, id,
          s.ToString(absl::StatusToStringMode::kWithNoExtraData));
    }
  }
}

}  // namespace strata
