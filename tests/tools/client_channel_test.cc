// The tools' channel (tools/client_channel.h) against the real strata-server and strata-cli.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/service/server_process.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

// A loopback TCP proxy to 127.0.0.1:`target_port` that holds each connection for `delay` before
// it passes anything on either way: a server far away, or a TLS handshake on a loaded machine.
class SlowProxy {
 public:
  SlowProxy(int target_port, std::chrono::milliseconds delay)
      : target_port_(target_port), delay_(delay) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len), 0) << strerror(errno);
    EXPECT_EQ(listen(listen_fd_, 16), 0) << strerror(errno);
    EXPECT_EQ(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~SlowProxy() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    for (std::thread& t : pumps_) t.join();
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  void Accept() {
    while (!stop_) {
      const int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      pumps_.emplace_back([this, client] { Pump(client); });
    }
  }
  // Waits out the delay, then copies bytes both ways until either side closes or the proxy stops.
  void Pump(int client) {
    std::this_thread::sleep_for(delay_);
    const int server = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(target_port_));
    if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      char buf[16384];
      while (!stop_) {
        pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
        if (poll(fds, 2, 100) < 0) break;
        bool closed = false;
        for (int i = 0; i < 2 && !closed; ++i) {
          if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
          const ssize_t n = read(fds[i].fd, buf, sizeof buf);
          closed = n <= 0 || write(fds[1 - i].fd, buf, static_cast<size_t>(n)) != n;
        }
        if (closed) break;
      }
    }
    close(server);
    close(client);
  }

  const int target_port_;
  const std::chrono::milliseconds delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;  // touched by the acceptor only, until it is joined
};

// strata-cli reaches a server whose connection takes longer than gRPC's shortest attempt would
// allow if the tools set GRPC_ARG_MIN_RECONNECT_BACKOFF_MS low (they did: 100 ms, and every call
// through a 300 ms link failed at once with UNAVAILABLE).
TEST(ClientChannel, ReachesAServerWhoseConnectionTakesLong) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  server.Start();
  const int port = std::stoi(server.address().substr(server.address().rfind(':') + 1));
  SlowProxy proxy(port, std::chrono::milliseconds(300));
  const std::string cli_log = tmp.File("cli.log");
  EXPECT_EQ(WaitExit(Spawn(
                {Bin("strata-cli"), absl::StrCat("--server=127.0.0.1:", proxy.port()), "health"},
                cli_log)),
            0)
      << ReadLog(cli_log);
  EXPECT_NE(ReadLog(cli_log).find("SERVING"), std::string::npos) << ReadLog(cli_log);
}

}  // namespace
}  // namespace strata
