// End-to-end hardening: requests that used to crash or swell the server are refused with clear
// codes while it keeps serving (issue: no request can crash or exhaust the server).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "index/collection_config.h"
#include "proto/strata.grpc.pb.h"
#include "service/grpc_log.h"
#include "storage/env.h"
#include "storage/metadata_store.h"
#include "storage/vector_file.h"
#include "tests/service/server_process.h"
#include "tests/test_util.h"
#include "tools/build_wait.h"

namespace strata {
namespace {

namespace pb = ::strata::v1;
namespace fs = std::filesystem;
using testing::TempDir;

// The health status of service `name` ("" = the server's).
grpc::health::v1::HealthCheckResponse::ServingStatus Health(ServerProcess* server,
                                                            const std::string& name) {
  auto health = grpc::health::v1::Health::NewStub(server->channel());
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(name);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  EXPECT_TRUE(health->Check(&ctx, req, &resp).ok()) << name;
  return resp.status();
}

// `body`, as it is, to `method` ("/strata.v1.Strata/Count"): the call's status. (On a completion
// queue: gRPC 1.51's callback form of the generic call races with its own completion thread
// when the answer comes at once, as ThreadSanitizer reported.)
grpc::Status RawCall(ServerProcess* server, const std::string& method, const std::string& body) {
  grpc::GenericStub generic(server->channel());
  grpc::Slice slice(body);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      generic.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  grpc::Status st;
  call->Finish(&response, &st, &cq);
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(tag, &cq);
  EXPECT_TRUE(ok);
  return st;
}

// strata-cli grant and revoke take more ids than one request may carry (the server's batch
// limit, 16,384): they go in several requests, and the counts add up.
TEST(Hardening, TheCliGrantsMoreIdsThanOneRequestCarries) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  auto* stub = server.stub();
  CreateCollection(stub, "c", 4, pb::FLOAT32);
  for (uint64_t first = 0; first < 20000; first += 10000) {
    ASSERT_NO_FATAL_FAILURE(UpsertPoints(stub, "c", 4, first, 10000));
  }
  pb::CreateTenantRequest tenant;
  tenant.set_collection("c");
  tenant.set_name("t");
  pb::TenantInfo info;
  ASSERT_TRUE(Call(&pb::Strata::Stub::CreateTenant, stub, tenant, &info).ok());
  const std::string out = tmp.File("cli.out");
  for (const std::string op : {"grant", "revoke"}) {
    std::vector<std::string> argv = {Bin("strata-cli"), "--server=" + server.address(), op, "c",
                                     "t"};
    for (int id = 0; id < 20001; ++id) argv.push_back(std::to_string(id));  // 20000: no point
    ASSERT_EQ(WaitExit(Spawn(argv, out)), 0) << ReadLog(out);
    EXPECT_NE(ReadLog(out).find(op + ": 20000 of 20001 ids changed"), std::string::npos)
        << ReadLog(out);
    pb::CountRequest count;
    count.set_collection("c");
    count.set_tenant("t");
    pb::CountResponse counted;
    ASSERT_TRUE(Call(&pb::Strata::Stub::Count, stub, count, &counted).ok());
    EXPECT_EQ(counted.count(), op == "grant" ? 20000u : 0u);
  }
  EXPECT_EQ(server.Stop(), 0);
}

TEST(Hardening, VectorsWithoutAFiniteDistanceAreRefused) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  auto* stub = server.stub();
  CreateCollection(stub, "ip", 4, pb::FLOAT32, pb::INNER_PRODUCT);
  CreateCollection(stub, "cos", 4, pb::FLOAT32, pb::COSINE);
  auto upsert = [&](const std::string& name, std::vector<float> v) {
    pb::UpsertRequest req;
    req.set_collection(name);
    pb::Point* p = req.add_points();
    p->set_id(1);
    for (float f : v) p->mutable_vector()->add_values(f);
    pb::UpsertResponse resp;
    return Call(&pb::Strata::Stub::Upsert, stub, req, &resp);
  };
  auto search = [&](const std::string& name, std::vector<float> v) {
    pb::SearchRequest req;
    req.set_collection(name);
    req.set_k(1);
    for (float f : v) req.mutable_query()->add_values(f);
    pb::SearchResponse resp;
    return Call(&pb::Strata::Stub::Search, stub, req, &resp);
  };
  grpc::Status s = upsert("ip", {3e38f, 0, 0, 0});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("norm"), std::string::npos) << s.error_message();
  EXPECT_EQ(search("ip", {1e20f, 1e20f, 0, 0}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = upsert("cos", {0, 0, 0, 0});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("all zeros"), std::string::npos) << s.error_message();
  ASSERT_TRUE(upsert("cos", {3e38f, 1, 0, 0}).ok());  // normalised in double: fine
  EXPECT_EQ(search("cos", {0, 0, 0, 0}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(search("cos", {1, 0, 0, 0}).ok());
  EXPECT_EQ(server.Stop(), 0);
}

// Smaller points: health by service name, messages that name the problem, --help.
TEST(Hardening, ClearAnswersToOddRequests) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  auto* stub = server.stub();
  auto health = grpc::health::v1::Health::NewStub(server.channel());
  for (const char* service : {"", "strata.v1.Strata"}) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = health->Check(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << "'" << service << "': " << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  // A name no collection could have is INVALID_ARGUMENT in every call, as Create says it, and
  // echoed escaped; a valid name that is not there is NOT_FOUND.
  pb::CountRequest count;
  count.set_collection(std::string("a\0b", 3));
  pb::CountResponse n;
  grpc::Status s = Call(&pb::Strata::Stub::Count, stub, count, &n);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().find('\0'), std::string::npos);
  EXPECT_NE(s.error_message().find("a\\x00"), std::string::npos) << s.error_message();
  pb::DropCollectionRequest drop;
  drop.set_name("no such/name");
  pb::DropCollectionResponse dropped;
  s = Call(&pb::Strata::Stub::DropCollection, stub, drop, &dropped);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("collection name"), std::string::npos) << s.error_message();
  drop.set_name("absent");
  s = Call(&pb::Strata::Stub::DropCollection, stub, drop, &dropped);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  // Bytes that are no protobuf of the method's type, and a string field that is not UTF-8:
  // INVALID_ARGUMENT naming the method (gRPC alone answers INTERNAL with no message).
  for (const std::string& body :
       {std::string("\xff\xff\xff\xff", 4), std::string("\x0a\x02\xff\xfe", 4)}) {
    const grpc::Status st = RawCall(&server, "/strata.v1.Strata/Count", body);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find("/strata.v1.Strata/Count"), std::string::npos)
        << st.error_message();
  }
  // A search with neither a vector nor a text says so.
  CreateCollection(stub, "c", 4, pb::FLOAT32);
  CreateCollection(stub, "d", 4, pb::FLOAT32);
  pb::SearchRequest search;
  search.set_collection("c");
  search.set_k(1);
  pb::SearchResponse hits;
  s = Call(&pb::Strata::Stub::Search, stub, search, &hits);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("'text'"), std::string::npos) << s.error_message();
  // strata-cli refuses words past what a command takes, and does nothing: `drop c d` drops
  // neither (before, it dropped c and ignored d).
  const std::string cli_log = tmp.File("cli.log");
  EXPECT_NE(WaitExit(Spawn({Bin("strata-cli"), "--server=" + server.address(), "drop", "c", "d"},
                           cli_log)),
            0);
  EXPECT_NE(ReadLog(cli_log).find("unexpected 'd'"), std::string::npos) << ReadLog(cli_log);
  EXPECT_NE(
      WaitExit(Spawn({Bin("strata-cli"), "--server=" + server.address(), "nosuchcmd"}, cli_log)),
      0);
  EXPECT_NE(ReadLog(cli_log).find("unknown command 'nosuchcmd'"), std::string::npos)
      << ReadLog(cli_log);
  // A flag of another command is refused, not left unread: `drop c --tenant=t` drops nothing,
  // `ask --k=2` does not read 4 passages (ask's are --passages).
  const uint64_t in_c = Count(stub, "c");
  for (const auto& [argv, flag] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"drop", "c", "--tenant=t"}, "--tenant does not apply to 'drop'"},
           {{"ask", "c", "q", "--k=2"}, "--k does not apply to 'ask'"},
           {{"count", "c", "--nowith_vector"}, "--with_vector does not apply to 'count'"},
           // And a command missing what it needs says what that is.
           {{"tenant", "frob", "c"}, "unknown tenant command 'frob'"},
           {{"key"}, "usage: strata-cli key create|revoke|list"},
           {{"create", "x"}, "create needs --dim"}}) {
    std::vector<std::string> all = {Bin("strata-cli"), "--server=" + server.address()};
    all.insert(all.end(), argv.begin(), argv.end());
    EXPECT_EQ(WaitExit(Spawn(all, cli_log)), 1) << flag;
    EXPECT_NE(ReadLog(cli_log).find(flag), std::string::npos) << ReadLog(cli_log);
  }
  EXPECT_EQ(Count(stub, "c"), in_c);  // (Count fails on a collection dropped)
  // Flags that cannot mean what they say are refused, not read another way.
  for (const auto& [flags, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--vector=1,,2,3"}, "'' is not a number"},
           {{"--vector=1,2,3,4", "--text=x"}, "only one of"},
           {{"--timeout=0", "--vector=1,2,3,4"}, "--timeout must be"},
           {{"--clients=0", "--vector=1,2,3,4"}, "--clients must be 1 to"}}) {
    std::vector<std::string> argv = {Bin("strata-cli"), "--server=" + server.address(), "search",
                                     "c"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    EXPECT_NE(WaitExit(Spawn(argv, cli_log)), 0) << flags[0];
    EXPECT_NE(ReadLog(cli_log).find(says), std::string::npos) << ReadLog(cli_log);
  }
  pb::ListCollectionsResponse listed;
  ASSERT_TRUE(
      Call(&pb::Strata::Stub::ListCollections, stub, pb::ListCollectionsRequest(), &listed).ok());
  EXPECT_EQ(listed.collections_size(), 2);
  // A port past 65535 is refused, not taken modulo 65536 (where it reached this server's port,
  // or another's): by the clients, and by the server.
  const std::string port = server.address().substr(server.address().rfind(':') + 1);
  const std::string wrapped = absl::StrCat("127.0.0.1:", std::stoul(port) + 65536);
  for (const std::string& program : {std::string("strata-cli"), std::string("strata-load")}) {
    const std::string log = tmp.File(program + ".port");
    std::vector<std::string> argv = {Bin(program), "--server=" + wrapped};
    if (program == "strata-cli") {
      argv.push_back("list");
    } else {
      VectorSet one;
      one.type = ElementType::kFloat32;
      one.n = 1;
      one.dim = 4;
      one.data.assign(16, 0);
      ASSERT_TRUE(WriteVectors(tmp.File("one.fbin"), one).ok());
      argv.push_back("--input=" + tmp.File("one.fbin"));
      argv.push_back("--collection=c");
    }
    EXPECT_NE(WaitExit(Spawn(argv, log)), 0) << program;
    EXPECT_NE(ReadLog(log).find("is not HOST:PORT"), std::string::npos) << ReadLog(log);
  }
  EXPECT_EQ(server.Stop(), 0);
  {
    const std::string log = tmp.File("server.port");
    EXPECT_NE(WaitExit(Spawn({Bin("strata-server"), "--data_dir=" + tmp.File("other"),
                              "--listen=127.0.0.1:70000", "--metrics_listen="},
                             log)),
              0);
    EXPECT_NE(ReadLog(log).find("--listen '127.0.0.1:70000' is not HOST:PORT"), std::string::npos)
        << ReadLog(log);
  }
  // Limits that would refuse every call of their kind are refused at start.
  for (const std::string flag :
       {"--max_k=0", "--max_batch=0", "--max_texts=0", "--max_text_bytes=0",
        "--max_payload_bytes=0", "--drain_seconds=-1"}) {
    const std::string log = tmp.File("server.limit");
    EXPECT_EQ(WaitExit(Spawn({Bin("strata-server"), "--data_dir=" + tmp.File("other"), flag,
                              "--metrics_listen="},
                             log)),
              2)
        << flag;
    EXPECT_NE(ReadLog(log).find(flag.substr(0, flag.find('='))), std::string::npos) << ReadLog(log);
  }

  // --help shows each program's own flags.
  const std::vector<std::pair<std::string, std::string>> programs = {
      {"strata-server", "--memory_budget_mb"}, {"strata-cli", "--server"}};
  for (const auto& [program, flag] : programs) {
    const std::string log = tmp.File(program + ".help");
    WaitExit(Spawn({Bin(program), "--help"}, log));
    const std::string text = ReadLog(log);
    EXPECT_EQ(text.find("No flags matched"), std::string::npos) << program << ":\n" << text;
    EXPECT_NE(text.find(flag.substr(2)), std::string::npos) << program << ":\n" << text;
  }
}

// Requests protobuf logs a line for (a string field that is not UTF-8) cannot fill the server's
// log: protobuf's lines pass the same limit as gRPC's (service/grpc_log.h), where they were
// written one per call, before any key is checked on a plaintext port.
TEST(Hardening, MalformedRequestsCannotFloodTheLog) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  const std::string body("\x0a\x03\xff\xfe\xfd", 5);  // a collection name of 3 bytes, not UTF-8
  for (int i = 0; i < 100; ++i) {  // one after another: more at once than --threads are refused
    const grpc::Status st = RawCall(&server, "/strata.v1.Strata/Search", body);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  }
  EXPECT_EQ(server.Stop(), 0);
  const std::string log = ReadLog(server.log());
  int lines = 0;
  for (size_t at = log.find("UTF-8"); at != std::string::npos; at = log.find("UTF-8", at + 1)) {
    ++lines;
  }
  EXPECT_GE(lines, 1);
  EXPECT_LE(lines, kGrpcLogBurst) << log.substr(0, 2000);
}

// Listening beyond loopback is said loudly (there is no authentication yet).
// Beyond loopback a server needs a key (auth_e2e_test: refused without one); with a key but
// without TLS it warns that the key travels in clear text.
TEST(Hardening, ListeningBeyondLoopbackWithoutTlsIsWarned) {
  TempDir tmp;
  const std::string log = tmp.File("server.log");
  {
    std::ofstream key(tmp.File("admin.key"));
    key << "a-long-enough-admin-key-0123456789\n";
  }
  pid_t pid = Spawn(
      {Bin("strata-server"), "--data_dir=" + tmp.File("data"),
       absl::StrCat("--listen=0.0.0.0:", FreePort()), "--admin_key_file=" + tmp.File("admin.key"),
       "--metrics_listen=", "--ready_file=" + tmp.File("ready")},
      log);
  for (int i = 0; i < 600 && ReadLog(tmp.File("ready")).empty(); ++i) {
    usleep(50 * 1000);
  }
  kill(pid, SIGTERM);
  EXPECT_EQ(WaitExit(pid), 0) << ReadLog(log);
  EXPECT_NE(ReadLog(log).find("clear text"), std::string::npos) << ReadLog(log);
  EXPECT_EQ(ReadLog(log).find("a-long-enough-admin-key"), std::string::npos) << "key in the log";
}

// Clients that connect to /metrics and send nothing do not hold up a scrape.
TEST(Hardening, IdleMetricsConnectionsDoNotStallScrapes) {
  TempDir tmp;
  const int metrics_port = FreePort();
  ServerProcess server(tmp.File("data"), tmp.File("server.log"),
                       {absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port)});
  ASSERT_NO_FATAL_FAILURE(server.Start());
  auto connect_to = [&]() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(metrics_port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  };
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(connect_to());
  write(idle[0], "GET /met", 8);  // half a request
  // One connection at a time would answer this after every idle one timed out (8 x 5 s); the
  // scrape gives up after 15 s.
  const int fd = connect_to();
  timeval tv{15, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd, get.data(), get.size()), static_cast<ssize_t>(get.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer.substr(0, 200);
  EXPECT_NE(answer.find("strata_"), std::string::npos);
  close(fd);
  for (int i : idle) close(i);
  EXPECT_EQ(server.Stop(), 0);
}

// The one index generation directory of collection `id` under `data_dir`.
std::string GenerationDir(const std::string& data_dir, int id) {
  std::string found;
  for (const auto& e :
       fs::directory_iterator(fs::path(data_dir) / "collections" / std::to_string(id))) {
    if (e.path().filename().string().rfind("index-", 0) == 0) found = e.path().string();
  }
  return found;
}

pb::CollectionInfo Describe(pb::Strata::Stub* stub, const std::string& name) {
  pb::DescribeCollectionRequest req;
  req.set_name(name);
  pb::CollectionInfo info;
  grpc::Status s = Call(&pb::Strata::Stub::DescribeCollection, stub, req, &info);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return info;
}

// Searches `name` with stored point `id`'s own vector: OK and that point first, or the status.
grpc::Status SearchSelf(pb::Strata::Stub* stub, const std::string& name, uint64_t id) {
  pb::GetRequest get;
  get.set_collection(name);
  get.add_ids(id);
  get.set_with_vector(true);
  pb::GetResponse got;
  grpc::Status s = Call(&pb::Strata::Stub::Get, stub, get, &got);
  if (!s.ok()) return s;
  pb::SearchRequest req;
  req.set_collection(name);
  req.set_k(5);
  *req.mutable_query() = got.points(0).vector();
  pb::SearchResponse resp;
  s = Call(&pb::Strata::Stub::Search, stub, req, &resp);
  if (s.ok()) {
    EXPECT_EQ(resp.hits_size(), 5);
    EXPECT_EQ(resp.hits(0).id(), id);
  }
  return s;
}

// One damaged index file stops only its own collection: the server starts, the other collection
// serves, the damaged one says which file is wrong (DescribeCollection, Stats, its calls, the log)
// and a rebuild from its stored vectors repairs it - by hand, or by itself at start.
TEST(Hardening, ADamagedIndexStopsOnlyItsCollectionAndIsRepaired) {
  TempDir tmp;
  const std::string data = tmp.File("data");
  ServerProcess server(data, tmp.File("server.log"), {"--auto_repair=false"});
  ASSERT_NO_FATAL_FAILURE(server.Start());
  auto* stub = server.stub();
  const uint32_t dim = 16;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  for (const std::string name : {"good", "bad"}) {
    CreateCollection(stub, name, dim, pb::FLOAT32);
    pb::UpsertRequest req;
    req.set_collection(name);
    for (uint64_t i = 0; i < 2000; ++i) {
      pb::Point* p = req.add_points();
      p->set_id(i);
      for (uint32_t j = 0; j < dim; ++j) p->mutable_vector()->add_values(nd(rng));
    }
    pb::UpsertResponse ur;
    ASSERT_TRUE(Call(&pb::Strata::Stub::Upsert, stub, req, &ur).ok());
    pb::CollectionInfo info;
    ASSERT_NO_FATAL_FAILURE(BuildAndWait(stub, name, &info));
  }
  EXPECT_EQ(server.Stop(), 0);

  struct Fault {
    const char* file;
    const char* what;  // truncate | flip | remove
  };
  const Fault faults[] = {{"postings.tbl", "truncate"}, {"heads.graph", "flip"},
                          {"ids.bin", "remove"},        {"MANIFEST", "flip"},
                          {"postings.dat", "remove"},   {"ids.bin", "flip"}};
  for (const Fault& f : faults) {
    SCOPED_TRACE(std::string(f.what) + " " + f.file);
    const std::string path = GenerationDir(data, 2) + "/" + f.file;
    ASSERT_TRUE(fs::exists(path)) << path;
    if (std::string(f.what) == "remove") {
      fs::remove(path);
    } else if (std::string(f.what) == "truncate") {
      fs::resize_file(path, fs::file_size(path) / 2);
    } else {
      std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
      io.seekg(static_cast<std::streamoff>(fs::file_size(path) / 2));
      char c = 0;
      io.read(&c, 1);
      c = static_cast<char>(c ^ 0x5a);
      io.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
      io.write(&c, 1);
    }
    ASSERT_NO_FATAL_FAILURE(server.Start());
    stub = server.stub();
    EXPECT_TRUE(SearchSelf(stub, "good", 7).ok());
    grpc::Status s = SearchSelf(stub, "bad", 7);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_NE(s.error_message().find(f.file), std::string::npos) << s.error_message();
    const pb::CollectionInfo info = Describe(stub, "bad");
    EXPECT_EQ(info.state(), pb::CollectionInfo::DAMAGED);
    EXPECT_NE(info.damage().find(f.file), std::string::npos) << info.damage();
    EXPECT_EQ(info.count(), 2000u);
    EXPECT_EQ(Stats(stub).damaged_collections(), 1u);
    EXPECT_EQ(Health(&server, "strata.v1.Strata/durability"),
              grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    EXPECT_EQ(Health(&server, ""), grpc::health::v1::HealthCheckResponse::SERVING);
    EXPECT_NE(ReadLog(server.log()).find("is damaged"), std::string::npos);
    {  // strata-cli health: serving, a part failing (exit 2), and which.
      const std::string health_log = tmp.File("health.log");
      EXPECT_EQ(WaitExit(Spawn({Bin("strata-cli"), "--server=" + server.address(), "health"},
                               health_log)),
                2)
          << ReadLog(health_log);
      EXPECT_NE(ReadLog(health_log).find("durability: NOT_SERVING"), std::string::npos)
          << ReadLog(health_log);
    }
    // Writes wait for the repair; nothing stored is lost meanwhile.
    pb::UpsertRequest up;
    up.set_collection("bad");
    pb::Point* p = up.add_points();
    p->set_id(5000);
    for (uint32_t j = 0; j < dim; ++j) p->mutable_vector()->add_values(1);
    pb::UpsertResponse ur;
    EXPECT_EQ(Call(&pb::Strata::Stub::Upsert, stub, up, &ur).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
    // strata-cli repair.
    const std::string cli_log = tmp.File("cli.log");
    EXPECT_EQ(WaitExit(Spawn({Bin("strata-cli"), "--server=" + server.address(), "repair", "bad"},
                             cli_log)),
              0)
        << ReadLog(cli_log);
    EXPECT_EQ(Describe(stub, "bad").state(), pb::CollectionInfo::INDEXED);
    EXPECT_TRUE(SearchSelf(stub, "bad", 7).ok());
    EXPECT_TRUE(SearchSelf(stub, "bad", 1999).ok());
    EXPECT_EQ(Stats(stub).damaged_collections(), 0u);
    EXPECT_EQ(Health(&server, "strata.v1.Strata/durability"),
              grpc::health::v1::HealthCheckResponse::SERVING);
    EXPECT_EQ(server.Stop(), 0);
  }

  // Without --auto_repair=false the server repairs at start by itself.
  fs::remove(GenerationDir(data, 2) + "/heads.graph");
  ServerProcess autorepair(data, tmp.File("auto.log"));
  ASSERT_NO_FATAL_FAILURE(autorepair.Start());
  pb::CollectionInfo info;
  for (int i = 0; i < 1200; ++i) {
    info = Describe(autorepair.stub(), "bad");
    if (info.build().state() == pb::IndexBuild::DONE) break;
    usleep(50 * 1000);
  }
  EXPECT_EQ(info.state(), pb::CollectionInfo::INDEXED) << info.damage();
  EXPECT_TRUE(SearchSelf(autorepair.stub(), "bad", 11).ok());
  EXPECT_NE(ReadLog(autorepair.log()).find("repaired"), std::string::npos);
  EXPECT_EQ(autorepair.Stop(), 0);

  // A posting failing its checksum is found only by a search that reads it: that search gets
  // DATA_LOSS, and the collection is reported damaged until a rebuild repairs it (here by hand;
  // the server schedules it itself unless --auto_repair=false).
  {
    const std::string dat = GenerationDir(data, 2) + "/postings.dat";
    std::fstream io(dat, std::ios::in | std::ios::out | std::ios::binary);
    for (uint64_t at = 100; at < fs::file_size(dat); at += 4096) {
      io.seekp(static_cast<std::streamoff>(at));
      io.put('\x5a');
    }
  }
  ServerProcess reads(data, tmp.File("reads.log"), {"--auto_repair=false"});
  ASSERT_NO_FATAL_FAILURE(reads.Start());
  EXPECT_EQ(Describe(reads.stub(), "bad").state(), pb::CollectionInfo::INDEXED);  // not seen yet
  EXPECT_EQ(Health(&reads, "strata.v1.Strata/durability"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  grpc::Status s = SearchSelf(reads.stub(), "bad", 7);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_NE(s.error_message().find("postings.dat"), std::string::npos) << s.error_message();
  info = Describe(reads.stub(), "bad");
  EXPECT_EQ(info.state(), pb::CollectionInfo::DAMAGED);
  EXPECT_NE(info.damage().find("searches reading it fail with DATA_LOSS"), std::string::npos)
      << info.damage();
  EXPECT_EQ(Health(&reads, "strata.v1.Strata/durability"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_TRUE(SearchSelf(reads.stub(), "good", 7).ok());
  pb::CollectionInfo repaired;
  ASSERT_NO_FATAL_FAILURE(BuildAndWait(reads.stub(), "bad", &repaired));
  EXPECT_EQ(repaired.state(), pb::CollectionInfo::INDEXED);
  EXPECT_TRUE(SearchSelf(reads.stub(), "bad", 7).ok());
  EXPECT_EQ(Health(&reads, "strata.v1.Strata/durability"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(reads.Stop(), 0);

  // A record of the collection's own in the metadata store that cannot be read (here a
  // malformed version record) keeps only that collection from opening: the server starts and
  // serves the others, lists it UNREADABLE naming the record, answers DATA_LOSS for it, and lets
  // it be dropped (it had stopped the whole server from starting).
  {
    auto store = MetadataStore::Open(data + "/meta");
    ASSERT_TRUE(store.ok()) << store.status();
    uint32_t bad_id = 0;
    ASSERT_TRUE((*store)
                    ->Scan(Cf::kCollections, "",
                           [&](absl::string_view key, absl::string_view value) {
                             if (key == "bad") bad_id = CollectionConfig::Parse(value)->id;
                             return absl::OkStatus();
                           })
                    .ok());
    ASSERT_NE(bad_id, 0u);
    std::string key;
    AppendU32(&key, bad_id);
    AppendU32(&key, 5);
    WriteBatch batch;
    batch.Put(Cf::kVersions, key, "xyz");  // (a version record is 2 bytes)
    ASSERT_TRUE((*store)->Write(&batch, /*sync=*/true).ok());
  }
  ServerProcess unopened(data, tmp.File("unopened.log"), {"--auto_repair=false"});
  ASSERT_NO_FATAL_FAILURE(unopened.Start());
  stub = unopened.stub();
  EXPECT_TRUE(SearchSelf(stub, "good", 7).ok());
  s = SearchSelf(stub, "bad", 7);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_NE(s.error_message().find("malformed version record"), std::string::npos)
      << s.error_message();
  pb::ListCollectionsResponse listed;
  ASSERT_TRUE(
      Call(&pb::Strata::Stub::ListCollections, stub, pb::ListCollectionsRequest(), &listed).ok());
  ASSERT_EQ(listed.collections_size(), 2);
  bool bad_listed = false;
  for (const pb::CollectionInfo& c : listed.collections()) {
    if (c.name() != "bad") continue;
    bad_listed = true;
    EXPECT_EQ(c.state(), pb::CollectionInfo::UNREADABLE);
    EXPECT_EQ(c.dimension(), dim);
    EXPECT_NE(c.damage().find("malformed version record"), std::string::npos) << c.damage();
  }
  EXPECT_TRUE(bad_listed);
  EXPECT_EQ(Stats(stub).damaged_collections(), 1u);
  EXPECT_EQ(Health(&unopened, "strata.v1.Strata/durability"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_NE(ReadLog(unopened.log()).find("could not be opened"), std::string::npos);
  pb::CreateCollectionRequest create;
  create.set_name("bad");
  create.set_dimension(dim);
  create.set_element_type(pb::FLOAT32);
  create.set_metric(pb::L2);
  pb::CollectionInfo created;
  EXPECT_EQ(Call(&pb::Strata::Stub::CreateCollection, stub, create, &created).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  pb::DropCollectionRequest drop;
  drop.set_name("bad");
  pb::DropCollectionResponse dropped;
  s = Call(&pb::Strata::Stub::DropCollection, stub, drop, &dropped);
  EXPECT_TRUE(s.ok()) << s.error_message();
  CreateCollection(stub, "bad", dim, pb::FLOAT32);
  EXPECT_EQ(Stats(stub).damaged_collections(), 0u);
  EXPECT_EQ(Health(&unopened, "strata.v1.Strata/durability"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(unopened.Stop(), 0);
}

// A loader's checkpoint belongs to one load: the same input into the same collection. Loading a
// file into a fresh server (a new collection of the same name) or a changed file starts over.
TEST(Hardening, AStrataLoadCheckpointOnlyResumesItsOwnLoad) {
  TempDir tmp;
  const std::string input = tmp.File("base.fbin");
  VectorSet set;
  set.type = ElementType::kFloat32;
  set.n = 3000;
  set.dim = 8;
  set.data.resize(set.n * set.dim * 4);
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0, 1);
  for (uint64_t i = 0; i < set.n * set.dim; ++i) {
    reinterpret_cast<float*>(set.data.data())[i] = nd(rng);
  }
  ASSERT_TRUE(WriteVectors(input, set).ok());
  auto load = [&](ServerProcess& server, const std::string& log) {
    return WaitExit(Spawn({Bin("strata-load"), "--input=" + input, "--collection=pts",
                           "--server=" + server.address()},
                          log));
  };
  {
    ServerProcess first(tmp.File("data1"), tmp.File("server1.log"));
    ASSERT_NO_FATAL_FAILURE(first.Start());
    ASSERT_EQ(load(first, tmp.File("load1.log")), 0) << ReadLog(tmp.File("load1.log"));
    ASSERT_EQ(load(first, tmp.File("load2.log")), 0);
    EXPECT_NE(ReadLog(tmp.File("load2.log")).find("loaded already"), std::string::npos)
        << ReadLog(tmp.File("load2.log"));
    EXPECT_EQ(first.Stop(), 0);
  }
  // A fresh server: the collection of the same name is another one.
  ServerProcess second(tmp.File("data2"), tmp.File("server2.log"));
  ASSERT_NO_FATAL_FAILURE(second.Start());
  ASSERT_EQ(load(second, tmp.File("load3.log")), 0) << ReadLog(tmp.File("load3.log"));
  EXPECT_NE(ReadLog(tmp.File("load3.log")).find("not the one it was made for"), std::string::npos)
      << ReadLog(tmp.File("load3.log"));
  pb::CountRequest count;
  count.set_collection("pts");
  pb::CountResponse n;
  ASSERT_TRUE(Call(&pb::Strata::Stub::Count, second.stub(), count, &n).ok());
  EXPECT_EQ(n.count(), 3000u);
  // The input changed (a longer file): start over too.
  set.n = 3100;
  set.data.resize(set.n * set.dim * 4, 0);
  ASSERT_TRUE(WriteVectors(input, set).ok());
  ASSERT_EQ(load(second, tmp.File("load4.log")), 0) << ReadLog(tmp.File("load4.log"));
  EXPECT_NE(ReadLog(tmp.File("load4.log")).find("the input changed"), std::string::npos)
      << ReadLog(tmp.File("load4.log"));
  ASSERT_TRUE(Call(&pb::Strata::Stub::Count, second.stub(), count, &n).ok());
  EXPECT_EQ(n.count(), 3100u);
  // Other ids (--id_offset) are another load: its rows go in too (the checkpoint ignored). Before,
  // the checkpoint said they were loaded already and none was.
  const auto load_with = [&](const std::vector<std::string>& flags, const std::string& log) {
    std::vector<std::string> argv = {Bin("strata-load"), "--input=" + input, "--collection=pts",
                                     "--server=" + second.address()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return WaitExit(Spawn(argv, log));
  };
  ASSERT_EQ(load_with({"--id_offset=100000"}, tmp.File("load5.log")), 0)
      << ReadLog(tmp.File("load5.log"));
  EXPECT_NE(ReadLog(tmp.File("load5.log")).find("its id_offset differs"), std::string::npos)
      << ReadLog(tmp.File("load5.log"));
  ASSERT_TRUE(Call(&pb::Strata::Stub::Count, second.stub(), count, &n).ok());
  EXPECT_EQ(n.count(), 6200u);
  // So is another --ids file (.ibin: u32 rows, u32 1, then one int32 id a row), once loaded.
  const auto write_ids = [&](int32_t first) {
    std::string ibin(8 + 4 * set.n, '\0');
    const uint32_t header[2] = {static_cast<uint32_t>(set.n), 1};
    std::memcpy(ibin.data(), header, 8);
    for (uint64_t i = 0; i < set.n; ++i) {
      const int32_t id = first + static_cast<int32_t>(i);
      std::memcpy(ibin.data() + 8 + 4 * i, &id, 4);
    }
    ASSERT_TRUE(WriteFileAtomic(*Env::Default(), tmp.File("ids.ibin"), ibin).ok());
  };
  ASSERT_NO_FATAL_FAILURE(write_ids(200000));
  ASSERT_EQ(load_with({"--ids=" + tmp.File("ids.ibin")}, tmp.File("load6.log")), 0)
      << ReadLog(tmp.File("load6.log"));
  ASSERT_NO_FATAL_FAILURE(write_ids(300000));
  ASSERT_EQ(load_with({"--ids=" + tmp.File("ids.ibin")}, tmp.File("load7.log")), 0)
      << ReadLog(tmp.File("load7.log"));
  EXPECT_NE(ReadLog(tmp.File("load7.log")).find("the input changed since (input_ids)"),
            std::string::npos)
      << ReadLog(tmp.File("load7.log"));
  ASSERT_TRUE(Call(&pb::Strata::Stub::Count, second.stub(), count, &n).ok());
  EXPECT_EQ(n.count(), 6200u + 2 * 3100u);
  // Flags that apply only to a new collection are refused when they differ, or name nothing;
  // so is a batch of 0.
  for (const auto& [flag, says] : std::vector<std::pair<std::string, std::string>>{
           {"--metric=ip", "exists with metric l2"},
           {"--metric=bogus", "--metric"},
           {"--batch=0", "--batch must be at least 1"}}) {
    const std::string log = tmp.File("load-refused.log");
    EXPECT_NE(load_with({flag, "--restart"}, log), 0) << flag;
    EXPECT_NE(ReadLog(log).find(says), std::string::npos) << flag << ": " << ReadLog(log);
  }
  ASSERT_TRUE(Call(&pb::Strata::Stub::Count, second.stub(), count, &n).ok());
  EXPECT_EQ(n.count(), 6200u + 2 * 3100u);
  EXPECT_EQ(second.Stop(), 0);
}

// A --tenants row naming more tenants than a point takes is refused before the load creates
// anything on the server (before, it created every tenant named, then every row was refused).
TEST(Hardening, StrataLoadRefusesARowOfTooManyTenantsUpFront) {
  TempDir tmp;
  const std::string input = tmp.File("base.fbin");
  VectorSet set;
  set.type = ElementType::kFloat32;
  set.n = 2;
  set.dim = 4;
  set.data.assign(set.n * set.dim * 4, 0);
  reinterpret_cast<float*>(set.data.data())[0] = 1;
  ASSERT_TRUE(WriteVectors(input, set).ok());
  {
    std::ofstream t(tmp.File("tenants.txt"));
    for (int i = 0; i < 1025; ++i) t << (i > 0 ? "," : "") << "t" << i;
    t << "\na\n";
  }
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  EXPECT_NE(WaitExit(Spawn({Bin("strata-load"), "--input=" + input, "--collection=pts",
                            "--tenants=" + tmp.File("tenants.txt"), "--server=" + server.address()},
                           tmp.File("load.log"))),
            0);
  EXPECT_NE(ReadLog(tmp.File("load.log")).find("1025 tenants on one row"), std::string::npos)
      << ReadLog(tmp.File("load.log"));
  pb::ListCollectionsRequest list;
  pb::ListCollectionsResponse listed;
  ASSERT_TRUE(Call(&pb::Strata::Stub::ListCollections, server.stub(), list, &listed).ok());
  EXPECT_EQ(listed.collections_size(), 0) << "nothing created";
  EXPECT_EQ(server.Stop(), 0);
}

// A vector file of another element type than the collection's: strata-load refuses it up front
// (its rows would go as bytes, read in the collection's type), and strata-cli search sends its
// rows as numbers (a uint8 query file searches a float32 collection).
TEST(Hardening, AVectorFileOfAnotherTypeIsNeverReadAsTheCollectionsBytes) {
  TempDir tmp;
  VectorSet floats;
  floats.type = ElementType::kFloat32;
  floats.n = 2;
  floats.dim = 4;
  const float rows[8] = {1, 0, 0, 0, 0, 7, 0, 0};
  floats.data.assign(reinterpret_cast<const uint8_t*>(rows),
                     reinterpret_cast<const uint8_t*>(rows + 8));
  ASSERT_TRUE(WriteVectors(tmp.File("base.fbin"), floats).ok());
  VectorSet bytes;
  bytes.type = ElementType::kUint8;
  bytes.n = 2;
  bytes.dim = 4;
  bytes.data = {1, 0, 0, 0, 0, 7, 0, 0};
  ASSERT_TRUE(WriteVectors(tmp.File("q.u8bin"), bytes).ok());
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  const std::string log = tmp.File("tool.log");
  ASSERT_EQ(WaitExit(Spawn({Bin("strata-load"), "--input=" + tmp.File("base.fbin"),
                            "--collection=f", "--server=" + server.address()},
                           log)),
            0)
      << ReadLog(log);
  EXPECT_NE(WaitExit(Spawn({Bin("strata-load"), "--input=" + tmp.File("q.u8bin"), "--collection=f",
                            "--server=" + server.address()},
                           log)),
            0);
  EXPECT_NE(ReadLog(log).find("holds float32 vectors"), std::string::npos) << ReadLog(log);
  ASSERT_EQ(WaitExit(Spawn({Bin("strata-cli"), "--server=" + server.address(), "search", "f",
                            "--query_file=" + tmp.File("q.u8bin"), "--row=1", "--k=1"},
                           log)),
            0)
      << ReadLog(log);
  EXPECT_NE(ReadLog(log).find("id 1 "), std::string::npos) << ReadLog(log);
  EXPECT_NE(ReadLog(log).find("distance 0 "), std::string::npos) << ReadLog(log);
  EXPECT_EQ(server.Stop(), 0);
}

// BuildIndex returns at once with a build id; DescribeCollection follows the build to its end.
TEST(Hardening, BuildIndexReturnsAtOnceAndDescribeFollowsTheBuild) {
  TempDir tmp;
  ServerProcess server(tmp.File("data"), tmp.File("server.log"));
  ASSERT_NO_FATAL_FAILURE(server.Start());
  auto* stub = server.stub();
  CreateCollection(stub, "empty", 4, pb::FLOAT32);
  pb::BuildIndexRequest req;
  req.set_collection("empty");
  pb::CollectionInfo info;
  EXPECT_EQ(Call(&pb::Strata::Stub::BuildIndex, stub, req, &info).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  const uint32_t dim = 16;
  CreateCollection(stub, "b", dim, pb::FLOAT32);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  pb::UpsertRequest up;
  up.set_collection("b");
  for (uint64_t i = 0; i < 5000; ++i) {
    pb::Point* p = up.add_points();
    p->set_id(i);
    for (uint32_t j = 0; j < dim; ++j) p->mutable_vector()->add_values(nd(rng));
  }
  pb::UpsertResponse ur;
  ASSERT_TRUE(Call(&pb::Strata::Stub::Upsert, stub, up, &ur).ok());
  req.set_collection("b");
  ASSERT_TRUE(Call(&pb::Strata::Stub::BuildIndex, stub, req, &info).ok());
  const uint64_t id = info.build().id();
  EXPECT_GT(id, 0u);
  EXPECT_TRUE(info.build().requested());
  EXPECT_NE(info.build().state(), pb::IndexBuild::FAILED);
  grpc::Status s = WaitForBuild(stub, "b", id, &info);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(info.build().id(), id);
  EXPECT_EQ(info.build().state(), pb::IndexBuild::DONE);
  EXPECT_EQ(info.state(), pb::CollectionInfo::INDEXED);
  EXPECT_EQ(info.indexed_vectors(), 5000u);
  EXPECT_GE(info.build().finished_unix_ms(), info.build().started_unix_ms());
  // strata-cli build --wait=false returns once it is queued; describe shows the build.
  const std::string log = tmp.File("cli.log");
  EXPECT_EQ(
      WaitExit(Spawn(
          {Bin("strata-cli"), "--server=" + server.address(), "--wait=false", "build", "b"}, log)),
      0)
      << ReadLog(log);
  s = WaitForBuild(stub, "b", id + 1, &info);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(info.build().id(), id + 1);
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace strata
