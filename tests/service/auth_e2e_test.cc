// End-to-end, who may call: with an admin key every Strata call must carry it (UNAUTHENTICATED
// otherwise), TLS on the port when certificate files are given, the command-line tools sending
// both, the key never in the log, and an open server (no key) refusing to listen beyond loopback.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/strata.grpc.pb.h"
#include "tests/service/server_process.h"
#include "tests/test_util.h"

namespace strata {
namespace {

namespace pb = ::strata::v1;
using testing::TempDir;

constexpr char kKey[] = "k3y-0f-the-4dmin-9f8e7d6c5b4a";

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A self-signed certificate for 127.0.0.1 and localhost, made by the openssl tool.
bool MakeCertificate(const TempDir& tmp) {
  const std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost",
      " -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout ", tmp.File("key.pem"), " -out ",
      tmp.File("cert.pem"), " > ", tmp.File("openssl.log"), " 2>&1");
  return std::system(cmd.c_str()) == 0;
}

std::unique_ptr<pb::Strata::Stub> TlsStub(const std::string& address, const std::string& ca) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadLog(ca);
  return pb::Strata::NewStub(grpc::CreateChannel(address, grpc::SslCredentials(ssl)));
}

// service/grpc_log.h's burst (the test does not link the service).
constexpr int kGrpcLogBurstForTest = 20;

// Channel arguments of their own, so each channel opens its own connection.
grpc::ChannelArguments UniqueArgs(int i) {
  grpc::ChannelArguments args;
  args.SetInt("strata.test.connection", i);
  return args;
}

grpc::Status List(pb::Strata::Stub* stub, const std::string& key) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!key.empty()) ctx.AddMetadata("authorization", key);
  pb::ListCollectionsRequest req;
  pb::ListCollectionsResponse resp;
  return stub->ListCollections(&ctx, req, &resp);
}

TEST(Auth, KeysAndTlsGuardEveryCall) {
  TempDir tmp;
  ASSERT_TRUE(MakeCertificate(tmp)) << ReadLog(tmp.File("openssl.log"));
  WriteFile(tmp.File("admin.key"), std::string(kKey) + "\n");
  ServerProcess server(
      tmp.File("data"), tmp.File("server.log"),
      {"--admin_key_file=" + tmp.File("admin.key"), "--tls_cert_file=" + tmp.File("cert.pem"),
       "--tls_key_file=" + tmp.File("key.pem")});
  ASSERT_NO_FATAL_FAILURE(server.Start());
  auto stub = TlsStub(server.address(), tmp.File("cert.pem"));

  grpc::Status s = List(stub.get(), "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_NE(s.error_message().find("Bearer"), std::string::npos) << s.error_message();
  s = List(stub.get(), "Bearer not-the-key-but-long-enough");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_NE(s.error_message().find("not valid"), std::string::npos) << s.error_message();
  s = List(stub.get(), kKey);  // the scheme is part of the header
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = List(stub.get(), absl::StrCat("Bearer ", kKey));
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = List(stub.get(), absl::StrCat("bearer ", kKey));
  EXPECT_TRUE(s.ok()) << s.error_message();
  {  // Two authorization headers are refused, whichever comes first.
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
    ctx.AddMetadata("authorization", "Bearer another-key-of-enough-length");
    pb::ListCollectionsRequest req;
    pb::ListCollectionsResponse resp;
    s = stub->ListCollections(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }

  // Plain text to a TLS port gets nowhere.
  auto plain = pb::Strata::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  s = List(plain.get(), absl::StrCat("Bearer ", kKey));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();

  // Health checks stay open to probes; the Strata service does not.
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadLog(tmp.File("cert.pem"));
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(server.address(), grpc::SslCredentials(ssl)));
  grpc::ClientContext hctx;
  grpc::health::v1::HealthCheckRequest hreq;
  grpc::health::v1::HealthCheckResponse hresp;
  ASSERT_TRUE(health->Check(&hctx, hreq, &hresp).ok());
  EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // The tools send what their flags (or STRATA_API_KEY) give them.
  const std::string cli_log = tmp.File("cli.log");
  pid_t cli = Spawn(
      {Bin("strata-cli"), "--server=" + server.address(), "--tls_ca_file=" + tmp.File("cert.pem"),
       "--api_key_file=" + tmp.File("admin.key"), "create", "docs", "--dim=4"},
      cli_log);
  EXPECT_EQ(WaitExit(cli), 0) << ReadLog(cli_log);
  const std::string bad_log = tmp.File("cli-nokey.log");
  cli = Spawn({Bin("strata-cli"), "--server=" + server.address(),
               "--tls_ca_file=" + tmp.File("cert.pem"), "list"},
              bad_log);
  EXPECT_NE(WaitExit(cli), 0);
  EXPECT_NE(ReadLog(bad_log).find("UNAUTHENTICATED"), std::string::npos) << ReadLog(bad_log);
  setenv("STRATA_API_KEY", kKey, 1);
  const std::string env_log = tmp.File("cli-env.log");
  cli = Spawn({Bin("strata-cli"), "--server=" + server.address(),
               "--tls_ca_file=" + tmp.File("cert.pem"), "list"},
              env_log);
  EXPECT_EQ(WaitExit(cli), 0) << ReadLog(env_log);
  EXPECT_NE(ReadLog(env_log).find("docs"), std::string::npos) << ReadLog(env_log);
  unsetenv("STRATA_API_KEY");
  // A key no gRPC client can send is refused by the tool, without quoting it (and without the
  // abort gRPC makes of an invalid header value).
  WriteFile(tmp.File("tab.key"), "secret-part-one\tsecret-part-two\n");
  const std::string tab_log = tmp.File("cli-tab.log");
  cli = Spawn(
      {Bin("strata-cli"), "--server=" + server.address(), "--tls_ca_file=" + tmp.File("cert.pem"),
       "--api_key_file=" + tmp.File("tab.key"), "list"},
      tab_log);
  EXPECT_EQ(WaitExit(cli), 1) << ReadLog(tab_log);
  EXPECT_NE(ReadLog(tab_log).find("not printable ASCII"), std::string::npos) << ReadLog(tab_log);
  EXPECT_EQ(ReadLog(tab_log).find("secret-part"), std::string::npos) << ReadLog(tab_log);

  // Plain text to the TLS port, again and again: gRPC logs each failed handshake, but the server's
  // log takes at most a burst of them per window (service/grpc_log.h).
  for (int i = 0; i < 3 * kGrpcLogBurstForTest; ++i) {
    auto p = pb::Strata::NewStub(grpc::CreateCustomChannel(
        server.address(), grpc::InsecureChannelCredentials(), UniqueArgs(i)));
    List(p.get(), "");
  }
  EXPECT_EQ(server.Stop(), 0);
  int grpc_lines = 0;
  {
    std::istringstream log(ReadLog(server.log()));
    for (std::string line; std::getline(log, line);)
      grpc_lines += line.find("] grpc ") != std::string::npos;
  }
  EXPECT_LE(grpc_lines, kGrpcLogBurstForTest + 2) << ReadLog(server.log());
  for (const std::string& log : {server.log(), cli_log, bad_log, env_log}) {
    EXPECT_EQ(ReadLog(log).find(kKey), std::string::npos) << "the key is in " << log;
  }
}

TEST(Auth, AnOpenServerStaysOnLoopbackAndBadKeysAreRefused) {
  TempDir tmp;
  auto start = [&](const std::vector<std::string>& extra, const std::string& log) {
    std::vector<std::string> argv = {Bin("strata-server"), "--data_dir=" + tmp.File("data"),
                                     "--metrics_listen="};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return WaitExit(Spawn(argv, log));
  };
  // No key: refused beyond loopback, saying why and what to do.
  const std::string open_log = tmp.File("open.log");
  EXPECT_NE(start({absl::StrCat("--listen=0.0.0.0:", FreePort())}, open_log), 0);
  EXPECT_NE(ReadLog(open_log).find("without an admin key"), std::string::npos) << ReadLog(open_log);
  // A short key, and TLS with half of its files.
  WriteFile(tmp.File("short.key"), "abc\n");
  const std::string short_log = tmp.File("short.log");
  EXPECT_NE(start({"--admin_key_file=" + tmp.File("short.key"), "--listen=127.0.0.1:0"}, short_log),
            0);
  EXPECT_NE(ReadLog(short_log).find("16 to 512"), std::string::npos) << ReadLog(short_log);
  // An empty key file (or variable) is an error, never an open server; so is a non-ASCII key.
  WriteFile(tmp.File("empty.key"), "  \n");
  const std::string empty_log = tmp.File("empty.log");
  EXPECT_NE(start({"--admin_key_file=" + tmp.File("empty.key"), "--listen=127.0.0.1:0"}, empty_log),
            0);
  EXPECT_NE(ReadLog(empty_log).find("is empty"), std::string::npos) << ReadLog(empty_log);
  WriteFile(tmp.File("bom.key"),
            "\xEF\xBB\xBF"
            "a-key-that-is-long-enough\n");
  const std::string bom_log = tmp.File("bom.log");
  EXPECT_NE(start({"--admin_key_file=" + tmp.File("bom.key"), "--listen=127.0.0.1:0"}, bom_log), 0);
  EXPECT_NE(ReadLog(bom_log).find("not printable ASCII"), std::string::npos) << ReadLog(bom_log);
  EXPECT_EQ(ReadLog(bom_log).find("a-key-that"), std::string::npos) << ReadLog(bom_log);
  const std::string half_log = tmp.File("half.log");
  EXPECT_NE(start({"--tls_cert_file=" + tmp.File("short.key"), "--listen=127.0.0.1:0"}, half_log),
            0);
  EXPECT_NE(ReadLog(half_log).find("both --tls_cert_file and --tls_key_file"), std::string::npos)
      << ReadLog(half_log);
}

}  // namespace
}  // namespace strata
