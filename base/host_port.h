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
#include "absl/strings/match.h"
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
  const char* range = port_zero_ok ? "the port must be 0 to 65535" : "the port must be 1 to 65535";
  const size_t colon = address.rfind(':');
  const size_t bracket = address.rfind(']');
  if (colon == absl::string_view::npos || (bracket != absl::string_view::npos && colon < bracket)) {
    return bad("no port");
  }
  const absl::string_view digits = address.substr(colon + 1);
  uint32_t port = 0;
  if (digits.empty() || digits.size() > 5) return bad(range);
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return bad("the port is not a number");
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535 || (port == 0 && !port_zero_ok)) return bad(range);
  std::string host(address.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    // (gRPC reads an unbracketed "::1:50051" as host "::1:50051" on its default port.)
    return bad("an IPv6 host goes in brackets: [::1]:PORT");
  }
  if (host.empty()) return bad("no host");
  return HostPort{std::move(host), port};
}

// Whether `target` names a gRPC target of another form than HOST:PORT (a scheme: "unix:/path",
// "unix-abstract:name", "dns:///host:port", "ipv4:...", "ipv6:..."), which gRPC checks itself.
inline bool IsGrpcSchemeTarget(absl::string_view target) {
  for (absl::string_view scheme : {"unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:"}) {
    if (absl::StartsWith(target, scheme)) return true;
  }
  return false;
}

}  // namespace strata

#endif  // STRATA_BASE_HOST_PORT_H_
