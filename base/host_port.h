// The "host:port" addresses of Strata's flags (--listen, --metrics_listen, a client's --server):
// one rule for all of them. The port is decimal digits, 0 to 65535 (0, where listening: the
// system picks one); the host is not empty ("[::1]" for IPv6). gRPC alone reads a port past
// 65535 modulo 65536, so `--server=127.0.0.1:122587` reached whatever listened on 57051.
#ifndef STRATA_BASE_HOST_PORT_H_
#define STRATA_BASE_HOST_PORT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace strata {

struct HostPort {
  std::string host;  // without an IPv6 address's brackets
  uint32_t port = 0;
};

// Splits `address`; InvalidArgument naming `what` (e.g. "--listen") and the rule otherwise.
// `port_zero_ok`: a listening address, where 0 asks the system for a port.
inline absl::StatusOr<HostPort> ParseHostPort(absl::string_view what, absl::string_view address,
                                              bool port_zero_ok) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", absl::CEscape(address), "' is not HOST:PORT (", why, ")"));
  };
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return bad("no port");
  const absl::string_view digits = address.substr(colon + 1);
  uint32_t port = 0;
  if (digits.empty() || digits.size() > 5) return bad("the port must be 0 to 65535");
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return bad("the port is not a number");
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535 || (port == 0 && !port_zero_ok)) {
    return bad(port_zero_ok ? "the port must be 0 to 65535" : "the port must be 1 to 65535");
  }
  std::string host(address.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return bad("no host");
  return HostPort{std::move(host), port};
}

}  // namespace strata

#endif  // STRATA_BASE_HOST_PORT_H_
