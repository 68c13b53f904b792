#include "tests/service/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "storage/scoped_fd.h"
#include "tools/build_wait.h"

namespace strata {

namespace fs = std::filesystem;

std::string Bin(const std::string& name) { return std::string(STRATA_BIN_DIR) + "/" + name; }

// The kernel may offer the same ephemeral port to two quick bind(0) calls (e.g. the gRPC and
// the /metrics ports): hence the set of ports given.
int FreePort() {
  static std::mutex mu;
  static std::set<int> given;
  std::lock_guard<std::mutex> lock(mu);
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    const int port = ntohs(a.sin_port);
    if (given.insert(port).second) return port;
  }
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ReadLog(const std::string& path) {
  auto t = ReadWholeFile(path);
  return t.ok() ? *t : "";
}

void ServerProcess::Start() {
  std::string ready = data_dir_ + ".ready";
  // A restart binds the same port, which some other process (any outgoing connection's local
  // port, or a parallel test) may hold for a moment: then the server exits saying it cannot
  // listen, and we try again.
  for (int attempt = 0;; ++attempt) {
    fs::remove(ready);
    const size_t log_before = ReadLog(log_).size();
    std::vector<std::string> argv = {Bin("strata-server"), "--data_dir=" + data_dir_,
                                     absl::StrCat("--listen=127.0.0.1:", port_),
                                     "--metrics_listen=", "--ready_file=" + ready};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    pid_ = Spawn(argv, log_);
    bool exited = false;
    for (int i = 0; i < 600 && !fs::exists(ready) && !exited; ++i) {
      int status;
      exited = waitpid(pid_, &status, WNOHANG) != 0;
      if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!exited) break;
    pid_ = -1;
    const std::string log = ReadLog(log_).substr(log_before);
    const bool port_taken = port_ != 0 && log.find("cannot listen") != std::string::npos;
    ASSERT_TRUE(port_taken && attempt < 50) << "server exited:\n" << ReadLog(log_);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(fs::exists(ready)) << "server not ready:\n" << ReadLog(log_);
  int bound = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadLog(ready)), &bound));
  ASSERT_TRUE(port_ == 0 || bound == port_);
  port_ = bound;
  channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
  stub_ = v1::Strata::NewStub(channel_);
}

void BuildAndWait(v1::Strata::Stub* stub, const std::string& name, v1::CollectionInfo* info) {
  v1::BuildIndexRequest req;
  req.set_collection(name);
  grpc::Status s = Call(&v1::Strata::Stub::BuildIndex, stub, req, info);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_GT(info->build().id(), 0u);
  s = WaitForBuild(stub, name, info->build().id(), info);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

void CreateCollection(v1::Strata::Stub* stub, const std::string& name, uint32_t dim,
                      v1::ElementType type, v1::Metric metric) {
  v1::CreateCollectionRequest req;
  req.set_name(name);
  req.set_dimension(dim);
  req.set_element_type(type);
  req.set_metric(metric);
  v1::CollectionInfo info;
  grpc::Status s = Call(&v1::Strata::Stub::CreateCollection, stub, req, &info);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

uint64_t Count(v1::Strata::Stub* stub, const std::string& name) {
  v1::CountRequest req;
  req.set_collection(name);
  v1::CountResponse resp;
  grpc::Status s = Call(&v1::Strata::Stub::Count, stub, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.count();
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) < 0) return "";
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

void UpsertPoints(v1::Strata::Stub* stub, const std::string& name, uint32_t dim, uint64_t first,
                  uint64_t n, size_t payload_bytes) {
  v1::UpsertRequest req;
  req.set_collection(name);
  for (uint64_t i = first; i < first + n; ++i) {
    v1::Point* p = req.add_points();
    p->set_id(i);
    for (uint32_t j = 0; j < dim; ++j) p->mutable_vector()->add_values(static_cast<float>(i + 1));
    if (payload_bytes > 0) p->mutable_payload()->set_text(std::string(payload_bytes, 'p'));
  }
  v1::UpsertResponse resp;
  grpc::Status s = Call(&v1::Strata::Stub::Upsert, stub, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.upserted(), n);
}

v1::StatsResponse Stats(v1::Strata::Stub* stub) {
  v1::StatsRequest req;
  v1::StatsResponse resp;
  EXPECT_TRUE(Call(&v1::Strata::Stub::Stats, stub, req, &resp).ok());
  return resp;
}

void ExpectServing(ServerProcess* server) {
  auto health = grpc::health::v1::Health::NewStub(server->channel());
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace strata
