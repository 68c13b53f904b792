// A minimal HTTP endpoint for Prometheus: GET /metrics answers with the text exposition of the
// registered collectables; any other path is 404, any other method 405. One thread of our own
// polls every connection: one that sends nothing, or half a request, holds only its own slot (64
// at most, the oldest closed for a new one; 5 s to send its request) and never the scrapes behind
// it. An answer is sent with a 1 s timeout.
//
// Why not prometheus-cpp's Exposer: it serves from civetweb threads with a small fixed stack, and
// the libraries linked in (OpenBLAS, through FAISS: 60 KiB of static thread-local storage, which
// glibc places on every thread's stack) leave those threads too little: a scrape crashed the
// server.
#ifndef STRATA_SERVICE_METRICS_HTTP_H_
#define STRATA_SERVICE_METRICS_HTTP_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "storage/scoped_fd.h"

namespace strata {

class MetricsHttpServer final {
 public:
  // Listens on `address` ("host:port"; port 0 picks one) and serves until destroyed.
  // Unavailable when the address cannot be bound, naming it and the reason.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::vector<std::shared_ptr<prometheus::Collectable>> sources);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  [[nodiscard]] int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  void Serve();
  // Answers one complete request `req` on `fd` (blocking, with a send timeout).
  void Handle(int fd, const std::string& req);

  ScopedFd listener_;
  int port_ = 0;
  std::vector<std::shared_ptr<prometheus::Collectable>> sources_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace strata

#endif  // STRATA_SERVICE_METRICS_HTTP_H_
