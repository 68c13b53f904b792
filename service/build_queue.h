// Background index builds: one thread builds the collections scheduled, one at a time, in order.
//
// Thread-safety: Schedule and Stop may be called concurrently.
#ifndef STRATA_SERVICE_BUILD_QUEUE_H_
#define STRATA_SERVICE_BUILD_QUEUE_H_

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "index/collection.h"
#include "storage/log.h"

namespace strata {

class BuildQueue {
 public:
  BuildQueue() : thread_([this] { Run(); }) {}
  ~BuildQueue() { Stop(); }
  void Schedule(std::shared_ptr<Collection> c);
  // Waits for the build in progress; drops the queued ones.
  void Stop();

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Collection>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace strata

#endif  // STRATA_SERVICE_BUILD_QUEUE_H_
