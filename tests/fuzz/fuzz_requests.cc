// Requests as gRPC hands them to the service: the input's first byte picks a method of
// strata.v1.Strata, the rest is the request's bytes - parsed, validated and served by a real
// in-process Server over a temporary data directory (small limits keep each input cheap). Any
// answer is fine; a crash, a sanitizer finding or a hang is not.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "service/server.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const char* const kMethods[] = {"CreateCollection",
                                "DropCollection",
                                "ListCollections",
                                "DescribeCollection",
                                "BuildIndex",
                                "Upsert",
                                "Delete",
                                "Get",
                                "Count",
                                "Search",
                                "SearchBatch",
                                "Stats",
                                "Embed",
                                "CreateTenant",
                                "SetTenantQuota",
                                "DropTenant",
                                "ListTenants",
                                "GrantAccess",
                                "RevokeAccess",
                                "CreateApiKey",
                                "RevokeApiKey",
                                "ListApiKeys"};

struct Fixture {
  std::unique_ptr<strata::Server> server;
  std::unique_ptr<grpc::GenericStub> stub;
};

Fixture& Get() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    strata::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.data_dir = strata::fuzz::ScratchDir() + "/data";
    o.metrics_listen = "";
    o.limits.max_dimension = 256;
    o.limits.max_k = 1000;
    o.limits.max_batch = 1000;
    o.limits.max_message_bytes = 1 << 20;
    o.limits.memory_budget_bytes = uint64_t{64} << 20;
    auto s = strata::Server::Start(o);
    if (!s.ok()) std::abort();
    fx->server = std::move(s).value();
    fx->stub = std::make_unique<grpc::GenericStub>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", fx->server->port()), grpc::InsecureChannelCredentials()));
    return fx;
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Fixture& fx = Get();
  const std::string method = absl::StrCat(
      "/strata.v1.Strata/", kMethods[data[0] % (sizeof(kMethods) / sizeof(kMethods[0]))]);
  grpc::Slice slice(data + 1, size - 1);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::promise<grpc::Status> done;
  fx.stub->UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                     [&](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status s = done.get_future().get();
  // The server must answer every request before the deadline, with a message when it refuses.
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) std::abort();
  if (!s.ok() && s.error_message().empty()) std::abort();
  return 0;
}
