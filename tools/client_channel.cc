#include "tools/client_channel.h"

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/api_key.h"
#include "base/host_port.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/client_interceptor.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

ABSL_FLAG(std::string, api_key_file, "",
          "a file holding the API key the server asks for (also from STRATA_API_KEY); sent with "
          "every call as 'authorization: Bearer <key>'");
ABSL_FLAG(std::string, tls_ca_file, "",
          "talk TLS to the server, trusting this PEM certificate (the server's own or its CA's)");
ABSL_FLAG(bool, tls, false, "talk TLS to the server, trusting the system's certificate roots");

namespace strata {
namespace {

// Adds the authorization metadata to every call before it is sent.
class AddKey final : public grpc::experimental::Interceptor {
 public:
  explicit AddKey(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;
};

class AddKeyFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit AddKeyFactory(std::string key) : header_("Bearer " + std::move(key)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new AddKey(&header_);
  }

 private:
  const std::string header_;  // lives as long as the factory, which the channel owns
};

absl::StatusOr<std::string> ApiKey() {
  if (const std::string path = absl::GetFlag(FLAGS_api_key_file); !path.empty()) {
    auto text = ReadWholeFile(path);
    if (!text.ok())
      return absl::Status(text.status().code(), "--api_key_file: " + text.status().ToString());
    std::string key(absl::StripAsciiWhitespace(*text));
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--api_key_file ", path, " is empty"));
    }
    RETURN_IF_ERROR(CheckApiKey(key, absl::StrCat("the key in --api_key_file ", path)));
    return key;
  }
  const char* env = std::getenv("STRATA_API_KEY");
  std::string key(env != nullptr ? absl::StripAsciiWhitespace(env) : "");
  if (!key.empty()) RETURN_IF_ERROR(CheckApiKey(key, "STRATA_API_KEY"));
  return key;
}

}  // namespace

bool ClientUsesTls() {
  return absl::GetFlag(FLAGS_tls) || !absl::GetFlag(FLAGS_tls_ca_file).empty();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(
    const std::string& address, const grpc::ChannelArguments& args) {
  // A gRPC target with a scheme (unix:/path, dns:///host:port, ...) is gRPC's to check; a plain
  // HOST:PORT is checked here (gRPC would take a port past 65535 modulo 65536).
  if (!IsGrpcSchemeTarget(address)) {
    RETURN_IF_ERROR(ParseHostPort("--server", address, /*port_zero_ok=*/false).status());
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (const std::string ca = absl::GetFlag(FLAGS_tls_ca_file); ClientUsesTls()) {
    grpc::SslCredentialsOptions ssl;
    if (!ca.empty()) {
      auto pem = ReadWholeFile(ca);
      if (!pem.ok())
        return absl::Status(pem.status().code(), "--tls_ca_file: " + pem.status().ToString());
      if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("--tls_ca_file ", ca, " holds no PEM certificate"));
      }
      ssl.pem_root_certs = *pem;
    }
    creds = grpc::SslCredentials(ssl);
  }
  ASSIGN_OR_RETURN(std::string key, ApiKey());
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!key.empty()) interceptors.push_back(std::make_unique<AddKeyFactory>(std::move(key)));
  // The server bounds its replies (--max_message_mb, 64 MiB by default); the client takes what it
  // sends, where gRPC's default would stop at 4 MiB (a `get` of 10,000 128-d rows with vectors).
  grpc::ChannelArguments unbounded = args;
  unbounded.SetMaxReceiveMessageSize(-1);
  // A server restarted comes back within a second or two: the channel tries again at least every
  // second (gRPC's own back-off grows to two minutes, and a loader resumed ~12 s after the
  // server was back). GRPC_ARG_MIN_RECONNECT_BACKOFF_MS stays at gRPC's default: it is also the
  // least time a connection attempt is given (20 s), and at 100 ms a server whose connection and
  // handshake took longer (a remote one, TLS on a loaded machine) could never be reached - the
  // attempt timed out before the server's first frame, and the call failed at once.
  unbounded.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  unbounded.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, creds, unbounded,
                                                                 std::move(interceptors));
}

}  // namespace strata
