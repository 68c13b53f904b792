#include "tools/build_wait.h"

#include <chrono>
#include <memory>
#include <thread>

#include "tools/progress.h"

namespace strata {

grpc::Status WaitForBuild(v1::Strata::Stub* stub, const std::string& name, uint64_t build_id,
                          v1::CollectionInfo* info) {
  std::unique_ptr<ProgressBar> bar;
  std::string phase;
  for (;;) {
    v1::DescribeCollectionRequest req;
    req.set_name(name);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    grpc::Status s = stub->DescribeCollection(&ctx, req, info);
    if (!s.ok()) return s;
    const v1::IndexBuild& b = info->build();
    if (b.id() < build_id) {
      // Builds are numbered from 1 in each server process: ours is gone (a restart).
      if (bar) bar->Finish();
      return grpc::Status(grpc::StatusCode::ABORTED,
                          "index build " + std::to_string(build_id) +
                              " is no longer known to the server (restarted?); run the build "
                              "again");
    }
    {
      if (b.state() == v1::IndexBuild::DONE) break;
      if (b.state() == v1::IndexBuild::FAILED) {
        if (bar) bar->Finish();
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
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
