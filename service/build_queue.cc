#include "service/build_queue.h"

namespace strata {

void BuildQueue::Schedule(std::shared_ptr<Collection> c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  for (const auto& q : queue_) {
    if (q == c) return;
  }
  queue_.push_back(std::move(c));
  cv_.notify_one();
}

void BuildQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    queue_.clear();
    cv_.notify_one();
  }
  thread_.join();
}

void BuildQueue::Run() {
  for (;;) {
    std::shared_ptr<Collection> c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      c = std::move(queue_.front());
      queue_.pop_front();
    }
    if (!c->WantsBuild()) continue;
    std::string name = c->config().name;
    Log(LogLevel::kInfo, "collection '%s': building its index in the background", name);
    absl::Status s = c->BuildIndex();
    if (!s.ok()) {
      Log(LogLevel::kError, "collection '%s': background build failed: %s", name, s.ToString());
    }
  }
}

}  // namespace strata
