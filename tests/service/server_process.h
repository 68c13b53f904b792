// Test helpers for end-to-end tests: the real strata-server binary as a child process on
// loopback, and small wrappers around processes and calls.
#ifndef STRATA_TESTS_SERVICE_SERVER_PROCESS_H_
#define STRATA_TESTS_SERVICE_SERVER_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata.grpc.pb.h"

namespace strata {

// The path of a built binary (build/bin/NAME).
std::string Bin(const std::string& name);
// A loopback port free now, and never handed out twice in this process.
int FreePort();
// Starts argv with stdout and stderr appended to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);
// Waits for `pid`: its exit code, or 128 + the signal that ended it.
int WaitExit(pid_t pid);
// The file's text, or "" when it cannot be read.
std::string ReadLog(const std::string& path);
// The whole HTTP/1.0 response to GET `path` on 127.0.0.1:`port` ("" when it cannot connect).
std::string HttpGet(int port, const std::string& path);

// One strata-server process on loopback. The first start lets the server pick a free port (read
// back from its ready file, so parallel tests cannot race for one); restarts reuse it.
class ServerProcess {
 public:
  ServerProcess(std::string data_dir, std::string log, std::vector<std::string> extra = {})
      : data_dir_(std::move(data_dir)), log_(std::move(log)), extra_(std::move(extra)) {}
  ~ServerProcess() {
    if (pid_ > 0) Kill();
  }

  // Starts the server (again, on the same port after the first start); fails the test if it
  // does not come up.
  void Start();

  // SIGTERM: returns the exit status.
  int Stop() {
    kill(pid_, SIGTERM);
    int rc = WaitExit(pid_);
    pid_ = -1;
    return rc;
  }
  void Kill() {
    kill(pid_, SIGKILL);
    WaitExit(pid_);
    pid_ = -1;
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  pid_t pid() const { return pid_; }
  v1::Strata::Stub* stub() { return stub_.get(); }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  const std::string& log() const { return log_; }

 private:
  std::string data_dir_, log_;
  std::vector<std::string> extra_;
  int port_ = 0;  // 0 until the first start
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Strata::Stub> stub_;
};

// Creates a collection (fails the test when the call does).
void CreateCollection(v1::Strata::Stub* stub, const std::string& name, uint32_t dim,
                      v1::ElementType type = v1::UINT8, v1::Metric metric = v1::L2);
// The collection's point count (fails the test when the call does).
uint64_t Count(v1::Strata::Stub* stub, const std::string& name);

// Upserts points [first, first + n) of dimension `dim` (value = id + 1 everywhere), each with a
// payload of `payload_bytes` bytes of text (fails the test when the call does).
void UpsertPoints(v1::Strata::Stub* stub, const std::string& name, uint32_t dim, uint64_t first,
                  uint64_t n, size_t payload_bytes = 0);
// The server's Stats (a failed call fails the test and gives an empty response).
v1::StatsResponse Stats(v1::Strata::Stub* stub);
// Expects the server to answer its health check SERVING.
void ExpectServing(ServerProcess* server);

// Queues an index build of `name` and waits until it is done (fails the test if it fails).
void BuildAndWait(v1::Strata::Stub* stub, const std::string& name, v1::CollectionInfo* info);

// One unary call with a 120 s deadline.
grpc::Status Call(auto method, v1::Strata::Stub* stub, const auto& req, auto* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return (stub->*method)(&ctx, req, resp);
}

}  // namespace strata

#endif  // STRATA_TESTS_SERVICE_SERVER_PROCESS_H_
