#include "tools/build_wait.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "tools/progress.h"

namespace strata {
namespace {
// How long a wait goes on while the server does not answer.
constexpr int kServerGoneSeconds = 60;
}  // namespace

grpc::Status WaitForBuild(v1::Strata::Stub* stub, const std::string& name, uint64_t build_id,
                          v1::CollectionInfo* info) {
  std::unique_ptr<ProgressBar> bar;
  std::string phase;
  const std::string uid = info->uid();                   // the collection the build was asked of
  const uint64_t generation = info->index_generation();  // the index then
  std::chrono::steady_clock::time_point unavailable_since{};
  for (;;) {
    v1::DescribeCollectionRequest req;
    req.set_name(name);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    grpc::Status s = stub->DescribeCollection(&ctx, req, info);
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      // A server stopping or restarting (a supervisor brings it back, and a start runs a build
      // asked for again): wait for it a while.
      const auto now = std::chrono::steady_clock::now();
      if (unavailable_since == std::chrono::steady_clock::time_point{}) {
        unavailable_since = now;
        if (bar) bar->Finish();
        bar.reset();
        std::fprintf(stderr, "the server is not answering (%s); waiting up to %d s for it\n",
                     s.error_message().c_str(), kServerGoneSeconds);
      }
      if (now - unavailable_since < std::chrono::seconds(kServerGoneSeconds)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;
      }
      return s;
    }
    unavailable_since = {};
    if (s.error_code() == grpc::StatusCode::NOT_FOUND ||
        (s.ok() && !uid.empty() && info->uid() != uid)) {
      if (bar) bar->Finish();
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "collection '" + name + "' was dropped while index build " +
                              std::to_string(build_id) + " ran" +
                              (s.ok() ? " (a collection of that name was made again)" : ""));
    }
    if (!s.ok()) return s;
    const v1::IndexBuild& b = info->build();
    if (b.id() < build_id) {
      // Builds are numbered from 1 in each server process: the server restarted. A build asked
      // for is recorded, and a start runs it again: follow that one.
      if (b.id() == 0) {
        if (bar) bar->Finish();
        // (A generation installed since the build was asked for: it finished before the restart.)
        if (info->index_generation() > generation) return grpc::Status::OK;
        return grpc::Status(grpc::StatusCode::ABORTED,
                            "the server restarted and shows no build of collection '" + name +
                                "' (index build " + std::to_string(build_id) +
                                " is gone); run the build again");
      }
      std::fprintf(stderr, "the server restarted; following its index build %llu of '%s'\n",
                   static_cast<unsigned long long>(b.id()), name.c_str());
      build_id = b.id();
    }
    {
      if (b.state() == v1::IndexBuild::DONE) break;
      if (b.state() == v1::IndexBuild::FAILED) {
        if (bar) bar->Finish();
        // The build's own code (a full disk is RESOURCE_EXHAUSTED); UNKNOWN from a server that
        // does not say it.
        const uint32_t code = b.error_code();
        return grpc::Status(code > 0 && code <= grpc::StatusCode::UNAUTHENTICATED
                                ? static_cast<grpc::StatusCode>(code)
                                : grpc::StatusCode::UNKNOWN,
                            "index build " + std::to_string(b.id()) + " failed: " + b.error());
      }
      if (b.state() == v1::IndexBuild::RUNNING && !b.phase().empty() && b.total() > 0) {
        if (!bar) {
          bar = std::make_unique<ProgressBar>(b.phase(), b.total());
        } else if (b.phase() != phase) {
          bar->Restart(b.phase(), b.total());
        }
        phase = b.phase();
        bar->Update(b.done());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (bar) bar->Finish();
  return grpc::Status::OK;
}

}  // namespace strata
