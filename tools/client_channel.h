// The channel strata-cli and strata-load talk to strata-server on: TLS when asked for
// (--tls_ca_file: the server's certificate or the CA that signed it; --tls: the system's roots),
// and the API key (--api_key_file, else the STRATA_API_KEY environment variable) sent as
// `authorization: Bearer <key>` metadata with every call by a client interceptor, so no call site
// can forget it. The key is never printed.
#ifndef STRATA_TOOLS_CLIENT_CHANNEL_H_
#define STRATA_TOOLS_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace strata {

// A channel to `address` as the flags above say. InvalidArgument / NotFound name a flag whose file
// cannot be read or holds no key.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(
    const std::string& address, const grpc::ChannelArguments& args = {});
// Whether the flags ask for TLS.
[[nodiscard]] bool ClientUsesTls();

}  // namespace strata

#endif  // STRATA_TOOLS_CLIENT_CHANNEL_H_
