#include "service/metrics_http.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/host_port.h"
#include "prometheus/text_serializer.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

constexpr size_t kMaxRequestBytes = 16 << 10;
// A connection sends its request within this, or is closed.
constexpr std::chrono::seconds kRequestTimeout{5};
// Connections waiting for their request at once; one more closes the oldest.
constexpr size_t kMaxConnections = 64;

// Writes all of `data` (the socket is blocking with a send timeout).
void SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

std::string Response(int code, const char* reason, const std::string& type,
                     const std::string& body) {
  return absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, std::vector<std::shared_ptr<prometheus::Collectable>> sources) {
  ASSIGN_OR_RETURN(const HostPort parsed,
                   ParseHostPort("metrics address", address, /*port_zero_ok=*/true));
  const std::string& host = parsed.host;
  const uint32_t port = parsed.port;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics address '", address, "': ", gai_strerror(rc)));
  }
  auto server = std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer());
  std::string why = "no usable address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    ScopedFd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) continue;
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || listen(fd.get(), 16) != 0) {
      why = std::strerror(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    server->port_ =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    server->listener_ = std::move(fd);
    break;
  }
  freeaddrinfo(res);
  if (!server->listener_.valid()) {
    return absl::UnavailableError(absl::StrCat("cannot serve /metrics on ", address, ": ", why));
  }
  server->sources_ = std::move(sources);
  MetricsHttpServer* raw = server.get();
  server->thread_ = std::thread([raw] { raw->Serve(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void MetricsHttpServer::Serve() {
  // One thread, many connections: a client that connects and sends nothing (or half a request)
  // holds only its own slot until its deadline, never the scrapes behind it.
  struct Conn {
    ScopedFd fd;
    std::string request;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Conn> conns;
  std::vector<pollfd> polls;
  while (!stop_.load()) {
    polls.assign(1, pollfd{listener_.get(), POLLIN, 0});
    for (const Conn& c : conns) polls.push_back(pollfd{c.fd.get(), POLLIN, 0});
    const int ready = poll(polls.data(), polls.size(), 200);  // wake up to notice stop_
    const auto now = std::chrono::steady_clock::now();
    if (ready > 0) {
      for (size_t i = conns.size(); i-- > 0;) {  // back to front: erasing keeps indexes valid
        if ((polls[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        Conn& c = conns[i];
        char buf[2048];
        const ssize_t n = recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n > 0) c.request.append(buf, static_cast<size_t>(n));
        const bool complete = c.request.find("\r\n\r\n") != std::string::npos;
        if (complete || c.request.size() >= kMaxRequestBytes) {
          // The answer is small (tens of KiB): sent with a short timeout, then closed.
          timeval tv{1, 0};
          setsockopt(c.fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
          Handle(c.fd.get(), c.request);
        }
        if (complete || n <= 0 || c.request.size() >= kMaxRequestBytes) {
          conns.erase(conns.begin() + static_cast<ptrdiff_t>(i));
        }
      }
      if ((polls[0].revents & POLLIN) != 0) {
        ScopedFd conn(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.valid()) {
          if (conns.size() >= kMaxConnections) conns.erase(conns.begin());  // the oldest goes
          conns.push_back(Conn{std::move(conn), std::string(), now + kRequestTimeout});
        }
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [now](const Conn& c) { return c.deadline <= now; }),
                conns.end());
  }
}

void MetricsHttpServer::Handle(int fd, const std::string& req) {
  const size_t line_end = req.find("\r\n");
  const std::string line = req.substr(0, line_end);
  const size_t sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    SendAll(fd, Response(400, "Bad Request", "text/plain", "bad request\n"));
    return;
  }
  const std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") {
    SendAll(fd, Response(404, "Not Found", "text/plain", "only /metrics is served here\n"));
    return;
  }
  if (method != "GET" && method != "HEAD") {
    SendAll(fd, Response(405, "Method Not Allowed", "text/plain", "use GET\n"));
    return;
  }
  std::vector<prometheus::MetricFamily> families;
  for (const auto& s : sources_) {
    auto f = s->Collect();
    families.insert(families.end(), std::make_move_iterator(f.begin()),
                    std::make_move_iterator(f.end()));
  }
  std::ostringstream body;
  prometheus::TextSerializer().Serialize(body, families);
  std::string resp = Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body.str());
  if (method == "HEAD") resp.resize(resp.find("\r\n\r\n") + 4);
  SendAll(fd, resp);
}

}  // namespace strata
