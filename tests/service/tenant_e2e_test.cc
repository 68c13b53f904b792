// End-to-end, tenants over gRPC with tenant keys: the codes a key gets beyond its tenants, a
// revoked or unknown key, key material kept out of the log and /metrics; then random tenant
// operations with kill -9 and restarts in between, each step followed by every tenant's Search,
// Get and Count through its own key, checked against an exact model of who may see what.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "index/catalog.h"
#include "proto/strata.grpc.pb.h"
#include "storage/vector_file.h"
#include "tests/service/server_process.h"
#include "tests/test_util.h"

namespace strata {
namespace {

namespace pb = ::strata::v1;
using testing::TempDir;

constexpr char kAdmin[] = "admin-key-of-the-tenant-test-1234";
constexpr uint64_t kIds = 40;

// Runs one call with `key` (empty = none) as the bearer token.
template <typename Req, typename Resp, typename Method>
grpc::Status Call(pb::Strata::Stub* stub, Method method, const std::string& key, const Req& req,
                  Resp* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
  return (stub->*method)(&ctx, req, resp);
}

class TenantServer {
 public:
  explicit TenantServer(const TempDir& tmp)
      : metrics_port_(FreePort()),
        server_(tmp.File("data"), tmp.File("server.log"),
                {"--admin_key_file=" + tmp.File("admin.key"),
                 absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port_)}) {
    std::ofstream(tmp.File("admin.key")) << kAdmin << "\n";
  }
  void Start() { server_.Start(); }
  void Kill() { server_.Kill(); }
  pb::Strata::Stub* stub() { return server_.stub(); }
  std::string address() const { return server_.address(); }
  const std::string& log() const { return server_.log(); }
  int metrics_port() const { return metrics_port_; }

  // Collection `name` (4-d float32, L2), as the admin.
  void MakeCollection(const std::string& name) {
    pb::CreateCollectionRequest req;
    req.set_name(name);
    req.set_dimension(4);
    req.set_element_type(pb::FLOAT32);
    req.set_metric(pb::L2);
    pb::CollectionInfo info;
    const grpc::Status s = Call(stub(), &pb::Strata::Stub::CreateCollection, kAdmin, req, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  // Tenant `name` of "docs", as the admin.
  void MakeTenant(const std::string& name) {
    pb::CreateTenantRequest req;
    req.set_collection("docs");
    req.set_name(name);
    pb::TenantInfo info;
    const grpc::Status s = Call(stub(), &pb::Strata::Stub::CreateTenant, kAdmin, req, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  std::string MakeKey(const std::vector<std::string>& tenants) {
    pb::CreateApiKeyRequest req;
    req.set_collection("docs");
    for (const auto& t : tenants) req.add_tenants(t);
    req.set_label("test");
    pb::CreateApiKeyResponse resp;
    grpc::Status s = Call(stub(), &pb::Strata::Stub::CreateApiKey, kAdmin, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.key();
  }

 private:
  int metrics_port_;
  ServerProcess server_;
};

pb::Point MakePoint(uint64_t id, std::mt19937_64* rng) {
  pb::Point p;
  p.set_id(id);
  std::normal_distribution<float> nd(0, 1);
  for (int j = 0; j < 4; ++j) p.mutable_vector()->add_values(nd(*rng));
  p.mutable_payload()->set_json(absl::StrCat("{\"id\":", id, "}"));
  p.mutable_payload()->set_text(absl::StrCat("passage number ", id));
  return p;
}

// A drop is committed before its records are deleted and its keys revoked: a run stopped in
// between (here the drop is made offline, as such a run leaves it) has its keys revoked at the
// next start, so they neither open anything nor outlive the collection in the key list.
TEST(TenantKeys, KeysOfADropCutShortAreRevokedAtTheNextStart) {
  TempDir tmp;
  TenantServer server(tmp);
  ASSERT_NO_FATAL_FAILURE(server.Start());
  server.MakeCollection("docs");
  server.MakeTenant("a");
  const std::string key = server.MakeKey({"a"});
  ASSERT_FALSE(key.empty());
  server.Kill();
  {
    absl::StatusOr<std::unique_ptr<Catalog>> cat = Catalog::Open(tmp.File("data"));
    ASSERT_TRUE(cat.ok()) << cat.status();
    ASSERT_TRUE((*cat)->Drop("docs").ok());
  }
  ASSERT_NO_FATAL_FAILURE(server.Start());
  pb::ListApiKeysRequest list;
  pb::ListApiKeysResponse keys;
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::ListApiKeys, kAdmin, list, &keys).ok());
  EXPECT_EQ(keys.keys_size(), 0);
  pb::ListCollectionsRequest req;
  pb::ListCollectionsResponse resp;
  EXPECT_EQ(Call(server.stub(), &pb::Strata::Stub::ListCollections, key, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(ReadLog(server.log()).find("(collection 'docs') revoked"), std::string::npos)
      << ReadLog(server.log());
  EXPECT_NE(ReadLog(server.log()).find("revoked 1 tenant keys of collections no longer listed"),
            std::string::npos)
      << ReadLog(server.log());
}

// A damaged index refuses a tenant's calls as the admin's, but tells the tenant no more than
// that: not the file, the data directory or the repair command, which the admin sees
// (base/public_message.h).
TEST(TenantKeys, ADamagedCollectionTellsATenantNoServerInternals) {
  TempDir tmp;
  std::ofstream(tmp.File("admin.key")) << kAdmin << "\n";
  const std::string data = tmp.File("data");
  ServerProcess server(data, tmp.File("server.log"),
                       {"--admin_key_file=" + tmp.File("admin.key"), "--auto_repair=false"});
  ASSERT_NO_FATAL_FAILURE(server.Start());
  pb::CreateCollectionRequest create;
  create.set_name("docs");
  create.set_dimension(4);
  create.set_element_type(pb::FLOAT32);
  create.set_metric(pb::L2);
  pb::CollectionInfo info;
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::CreateCollection, kAdmin, create, &info).ok());
  pb::CreateTenantRequest tenant;
  tenant.set_collection("docs");
  tenant.set_name("a");
  pb::TenantInfo tinfo;
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::CreateTenant, kAdmin, tenant, &tinfo).ok());
  pb::CreateApiKeyRequest kreq;
  kreq.set_collection("docs");
  kreq.add_tenants("a");
  pb::CreateApiKeyResponse kresp;
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::CreateApiKey, kAdmin, kreq, &kresp).ok());
  const std::string key = kresp.key();
  std::mt19937_64 rng(3);
  pb::TenantList only_a;
  only_a.add_names("a");
  for (uint64_t first = 0; first < 1000; first += 500) {
    pb::UpsertRequest up;
    up.set_collection("docs");
    for (uint64_t id = first; id < first + 500; ++id) *up.add_points() = MakePoint(id, &rng);
    for (pb::Point& p : *up.mutable_points()) *p.mutable_tenants() = only_a;
    pb::UpsertResponse ur;
    ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::Upsert, kAdmin, up, &ur).ok());
  }
  pb::BuildIndexRequest build;
  build.set_collection("docs");
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::BuildIndex, kAdmin, build, &info).ok());
  pb::DescribeCollectionRequest describe;
  describe.set_name("docs");
  for (int i = 0; i < 1200 && info.state() != pb::CollectionInfo::INDEXED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(
        Call(server.stub(), &pb::Strata::Stub::DescribeCollection, kAdmin, describe, &info).ok());
  }
  ASSERT_EQ(info.state(), pb::CollectionInfo::INDEXED);
  EXPECT_EQ(server.Stop(), 0);
  // The head graph's file, cut in half.
  std::string graph;
  for (const auto& e : std::filesystem::recursive_directory_iterator(data)) {
    if (e.path().filename() == "heads.graph") graph = e.path().string();
  }
  ASSERT_FALSE(graph.empty());
  std::filesystem::resize_file(graph, std::filesystem::file_size(graph) / 2);
  ASSERT_NO_FATAL_FAILURE(server.Start());

  pb::SearchRequest search;
  search.set_collection("docs");
  search.set_tenant("a");
  search.set_k(3);
  for (int j = 0; j < 4; ++j) search.mutable_query()->add_values(0.5f);
  pb::SearchResponse resp;
  const grpc::Status as_admin =
      Call(server.stub(), &pb::Strata::Stub::Search, kAdmin, search, &resp);
  EXPECT_EQ(as_admin.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(as_admin.error_message().find("heads.graph"), std::string::npos)
      << as_admin.error_message();
  EXPECT_NE(as_admin.error_message().find("strata-cli repair"), std::string::npos)
      << as_admin.error_message();
  const grpc::Status as_tenant = Call(server.stub(), &pb::Strata::Stub::Search, key, search, &resp);
  EXPECT_EQ(as_tenant.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(as_tenant.error_message().find("'docs' is damaged"), std::string::npos)
      << as_tenant.error_message();
  for (const std::string& internal : {std::string("heads.graph"), data, std::string("repair")}) {
    EXPECT_EQ(as_tenant.error_message().find(internal), std::string::npos)
        << as_tenant.error_message();
  }
  // So is a query of a batch (its error passed on with the query's number in front).
  pb::SearchBatchRequest batch;
  batch.set_collection("docs");
  batch.set_tenant("a");
  batch.set_k(3);
  *batch.add_queries() = search.query();
  pb::SearchBatchResponse batch_resp;
  const grpc::Status in_batch =
      Call(server.stub(), &pb::Strata::Stub::SearchBatch, key, batch, &batch_resp);
  EXPECT_EQ(in_batch.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(in_batch.error_message().find("query 0: collection 'docs' is damaged"),
            std::string::npos)
      << in_batch.error_message();
  EXPECT_EQ(in_batch.error_message().find("heads.graph"), std::string::npos)
      << in_batch.error_message();
  // A tenant's write is refused the same way.
  pb::UpsertRequest up;
  up.set_collection("docs");
  *up.add_points() = MakePoint(5000, &rng);
  up.mutable_points(0)->mutable_tenants()->add_names("a");
  pb::UpsertResponse ur;
  const grpc::Status write = Call(server.stub(), &pb::Strata::Stub::Upsert, key, up, &ur);
  EXPECT_EQ(write.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(write.error_message().find("heads.graph"), std::string::npos) << write.error_message();
  // The log keeps what the admin needs, beside what the tenant was told.
  EXPECT_NE(ReadLog(server.log()).find("heads.graph"), std::string::npos);
  EXPECT_NE(ReadLog(server.log()).find("a tenant key's caller was told"), std::string::npos)
      << ReadLog(server.log());
}

TEST(TenantKeys, AKeyIsConfinedToItsTenantsAndNeverShown) {
  TempDir tmp;
  TenantServer server(tmp);
  ASSERT_NO_FATAL_FAILURE(server.Start());
  pb::Strata::Stub* stub = server.stub();
  {
    pb::CreateCollectionRequest req;
    req.set_name("docs");
    req.set_dimension(4);
    req.set_element_type(pb::FLOAT32);
    req.set_metric(pb::L2);
    pb::CollectionInfo info;
    grpc::Status made = Call(stub, &pb::Strata::Stub::CreateCollection, kAdmin, req, &info);
    ASSERT_TRUE(made.ok()) << made.error_code() << " " << made.error_message();
    req.set_name("other");
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::CreateCollection, kAdmin, req, &info).ok());
  }
  for (const char* t : {"a", "b"}) {
    pb::CreateTenantRequest req;
    req.set_collection("docs");
    req.set_name(t);
    pb::TenantInfo info;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::CreateTenant, kAdmin, req, &info).ok());
  }
  const std::string ka = server.MakeKey({"a"});
  const std::string kab = server.MakeKey({"a", "b"});
  ASSERT_FALSE(ka.empty());
  {  // A key for a tenant that does not exist, or for a name no tenant can have, is refused.
    pb::CreateApiKeyRequest req;
    req.set_collection("docs");
    req.add_tenants("nobody");
    pb::CreateApiKeyResponse resp;
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::CreateApiKey, kAdmin, req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
    req.set_tenants(0, "");
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::CreateApiKey, kAdmin, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    // A huge tenant name is refused, and not echoed whole.
    pb::CountRequest cr;
    cr.set_collection("docs");
    cr.set_tenant(std::string(100000, 'x'));
    pb::CountResponse cn;
    grpc::Status s = Call(stub, &pb::Strata::Stub::Count, kAdmin, cr, &cn);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message().size();
    EXPECT_LT(s.error_message().size(), 1000u);
  }

  pb::CountRequest count;
  count.set_collection("docs");
  pb::CountResponse n;
  // Admin calls with a tenant key.
  {
    pb::ListCollectionsRequest req;
    pb::ListCollectionsResponse resp;
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::ListCollections, ka, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    pb::CreateTenantRequest ct;
    ct.set_collection("docs");
    ct.set_name("c");
    pb::TenantInfo info;
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::CreateTenant, ka, ct, &info).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    pb::CreateApiKeyRequest ck;
    ck.set_collection("docs");
    ck.add_tenants("a");
    pb::CreateApiKeyResponse ckr;
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::CreateApiKey, ka, ck, &ckr).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    pb::StatsRequest sr;
    pb::StatsResponse srr;
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::Stats, ka, sr, &srr).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // Its own tenant, implied or named; another tenant, the whole collection, another collection.
  EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, ka, count, &n).ok());
  count.set_tenant("a");
  EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, ka, count, &n).ok());
  count.set_tenant("b");
  EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, ka, count, &n).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, kab, count, &n).ok());
  count.clear_tenant();
  EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, kab, count, &n).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  count.set_collection("other");
  EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, ka, count, &n).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  count.set_collection("docs");
  {  // Generate asks who calls before anything else (this server has no decoder).
    const auto generate = [&](const std::string& key, const std::string& collection,
                              const std::string& tenant) {
      pb::GenerateRequest req;
      req.set_collection(collection);
      req.set_tenant(tenant);
      req.set_question("q");
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      ctx.AddMetadata("authorization", "Bearer " + key);
      auto reader = stub->Generate(&ctx, req);
      pb::GenerateResponse resp;
      while (reader->Read(&resp)) {
      }
      return reader->Finish();
    };
    EXPECT_EQ(generate(ka, "docs", "b").error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(generate(ka, "other", "").error_code(), grpc::StatusCode::PERMISSION_DENIED);
    // The administrator is told how to start the server with a decoder; a tenant only that
    // Generate is off (it learns no flag, file or command of the server).
    const grpc::Status off = generate(ka, "docs", "a");
    EXPECT_EQ(off.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(off.error_message(), "this server has no decoder: Generate is off here");
    const grpc::Status admin_off = generate(kAdmin, "docs", "a");
    EXPECT_EQ(admin_off.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(admin_off.error_message().find("--decoder"), std::string::npos)
        << admin_off.error_message();
  }
  // A tenant's upsert may not name another tenant, nor replace a point it cannot see.
  {
    std::mt19937_64 rng(1);
    pb::UpsertRequest up;
    up.set_collection("docs");
    *up.add_points() = MakePoint(1, &rng);
    pb::UpsertResponse ur;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::Upsert, kAdmin, up, &ur).ok());  // nobody's
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::Upsert, ka, up, &ur).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);  // every row refused
    *up.mutable_points(0) = MakePoint(2, &rng);
    up.mutable_points(0)->mutable_tenants()->add_names("b");
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::Upsert, ka, up, &ur).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    up.mutable_points(0)->mutable_tenants()->set_names(0, "a");
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Upsert, ka, up, &ur).ok());
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, ka, count, &n).ok());
    EXPECT_EQ(n.count(), 1u);
    // Its collection described: the configuration its writes must match, and its own count;
    // none of the whole collection's figures (it holds 2 points).
    pb::DescribeCollectionRequest dreq;
    dreq.set_name("docs");
    pb::CollectionInfo admins;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::DescribeCollection, kAdmin, dreq, &admins).ok());
    EXPECT_EQ(admins.count(), 2u);
    EXPECT_EQ(admins.state(), pb::CollectionInfo::FLAT);
    EXPECT_EQ(admins.text_points(), 2u);
    EXPECT_TRUE(admins.tenant().empty());
    pb::CollectionInfo expected;  // the configuration, the tenant, its count: nothing else
    expected.set_name(admins.name());
    expected.set_uid(admins.uid());
    expected.set_dimension(admins.dimension());
    expected.set_element_type(admins.element_type());
    expected.set_metric(admins.metric());
    *expected.mutable_index() = admins.index();
    *expected.mutable_text_fields() = admins.text_fields();
    expected.set_tenant("a");
    expected.set_count(1);
    pb::CollectionInfo seen;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::DescribeCollection, ka, dreq, &seen).ok());
    EXPECT_EQ(seen.DebugString(), expected.DebugString());
    dreq.set_tenant("a");  // the admin, in a's view
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::DescribeCollection, kAdmin, dreq, &seen).ok());
    EXPECT_EQ(seen.DebugString(), expected.DebugString());
    dreq.set_tenant("b");
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::DescribeCollection, ka, dreq, &seen).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    dreq.clear_tenant();
    dreq.set_name("other");
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::DescribeCollection, ka, dreq, &seen).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    // Squatting: tenant a created id 2 first; the admin's upsert of id 2 without tenants would
    // hand a the admin's content, so it is refused (the admin names who sees it, and owns it).
    pb::UpsertRequest admin_up;
    admin_up.set_collection("docs");
    *admin_up.add_points() = MakePoint(2, &rng);
    admin_up.mutable_points(0)->mutable_payload()->set_text("the admin's confidential text");
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::Upsert, kAdmin, admin_up, &ur).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    admin_up.mutable_points(0)->mutable_tenants()->add_names("b");
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Upsert, kAdmin, admin_up, &ur).ok());
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, ka, count, &n).ok());
    EXPECT_EQ(n.count(), 0u);  // a no longer sees id 2
    // A granted point is read-only to the tenant: its delete only takes it from its view.
    pb::AccessRequest grant;
    grant.set_collection("docs");
    grant.set_tenant("a");
    grant.add_ids(1);
    pb::AccessResponse gr;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::GrantAccess, kAdmin, grant, &gr).ok());
    *up.mutable_points(0) = MakePoint(1, &rng);
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::Upsert, ka, up, &ur).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    pb::DeleteRequest del;
    del.set_collection("docs");
    del.add_ids(1);
    pb::DeleteResponse dr;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::Delete, ka, del, &dr).ok());
    pb::CountRequest whole;
    whole.set_collection("docs");
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, kAdmin, whole, &n).ok());
    EXPECT_EQ(n.count(), 2u);  // ids 1 and 2 remain for the admin
  }
  // No key, a wrong key of the tenant form, a revoked key.
  EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, "", count, &n).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  std::string forged = ka;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, forged, count, &n).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  {
    pb::ListApiKeysRequest req;
    pb::ListApiKeysResponse resp;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::ListApiKeys, kAdmin, req, &resp).ok());
    ASSERT_EQ(resp.keys_size(), 2);
    std::string id_a;
    for (const auto& k : resp.keys()) {
      if (k.tenants_size() == 1) id_a = k.key_id();
      EXPECT_EQ(
          ka.find(k.key_id()) != std::string::npos || kab.find(k.key_id()) != std::string::npos,
          true);
    }
    pb::RevokeApiKeyRequest rv;
    rv.set_key_id(id_a);
    pb::RevokeApiKeyResponse rvr;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::RevokeApiKey, kAdmin, rv, &rvr).ok());
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::RevokeApiKey, kAdmin, rv, &rvr).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, ka, count, &n).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Dropping a tenant revokes its keys: kab names "b".
  {
    pb::DropTenantRequest req;
    req.set_collection("docs");
    req.set_name("b");
    pb::DropTenantResponse resp;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::DropTenant, kAdmin, req, &resp).ok());
    EXPECT_EQ(resp.revoked_keys(), 1u);
    count.set_tenant("a");
    EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, kab, count, &n).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // A request-rate quota: the tenant's key gets one call, then RESOURCE_EXHAUSTED naming it (the
  // rate is one call per 1,000 s, so no machine is slow enough to see a second).
  {
    pb::CreateTenantRequest req;
    req.set_collection("docs");
    req.set_name("slow");
    req.mutable_quota()->set_max_requests_per_second(0.001);
    pb::TenantInfo info;
    ASSERT_TRUE(Call(stub, &pb::Strata::Stub::CreateTenant, kAdmin, req, &info).ok());
    EXPECT_EQ(info.quota().max_requests_per_second(), 0.001);
    const std::string ks = server.MakeKey({"slow"});
    pb::CountRequest cr;
    cr.set_collection("docs");
    pb::CountResponse cn;
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, ks, cr, &cn).ok());
    grpc::Status s = Call(stub, &pb::Strata::Stub::Count, ks, cr, &cn);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_NE(s.error_message().find("max_requests_per_second"), std::string::npos);
    EXPECT_TRUE(Call(stub, &pb::Strata::Stub::Count, kAdmin, cr, &cn).ok());  // not the admin
    // Embed names no collection, but a tenant key's call counts against its tenant.
    pb::EmbedRequest er;
    er.add_texts("hello");
    pb::EmbedResponse ep;
    s = Call(stub, &pb::Strata::Stub::Embed, ks, er, &ep);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  }
  // No secret part of any key in the log or on /metrics.
  const std::string metrics = HttpGet(server.metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("strata_"), std::string::npos);
  for (const std::string& key : {std::string(kAdmin), ka, kab}) {
    const std::string secret = key.substr(key.size() - 24);
    EXPECT_EQ(ReadLog(server.log()).find(secret), std::string::npos);
    EXPECT_EQ(metrics.find(secret), std::string::npos);
  }
}

// A load with a tenant's key at its request-rate quota: the refusals say "retry later", and
// strata-load waits them out instead of stopping at the first (it retried only an unreachable
// server before). 4 calls a second against ~15 upserts and the load's other calls.
TEST(TenantKeys, ALoadAtATenantsRateQuotaWaitsAndFinishes) {
  TempDir tmp;
  TenantServer server(tmp);
  ASSERT_NO_FATAL_FAILURE(server.Start());
  server.MakeCollection("docs");
  pb::CreateTenantRequest req;
  req.set_collection("docs");
  req.set_name("paced");
  req.mutable_quota()->set_max_requests_per_second(4);
  pb::TenantInfo info;
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::CreateTenant, kAdmin, req, &info).ok());
  std::ofstream(tmp.File("tenant.key")) << server.MakeKey({"paced"}) << "\n";
  VectorSet rows;
  rows.type = ElementType::kFloat32;
  rows.dim = 4;
  rows.n = 60;
  rows.data.resize(rows.n * rows.row_bytes());
  for (uint64_t i = 0; i < rows.n * rows.dim; ++i) {
    const float x = static_cast<float>(i % 97);
    std::memcpy(rows.data.data() + i * sizeof(float), &x, sizeof(float));
  }
  const std::string input = tmp.File("rows.fbin");
  ASSERT_TRUE(WriteVectors(input, rows).ok());
  const std::string log = tmp.File("load.log");
  EXPECT_EQ(
      WaitExit(Spawn({Bin("strata-load"), "--input=" + input, "--collection=docs",
                      "--server=" + server.address(), "--api_key_file=" + tmp.File("tenant.key"),
                      "--batch=4", "--build=false"},
                     log)),
      0)
      << ReadLog(log);
  EXPECT_NE(ReadLog(log).find("max_requests_per_second"), std::string::npos) << ReadLog(log);
  // An expected wait is not a flood of warnings: retries are said at most once per 10 s (the
  // load takes ~4 s here; more under sanitizers).
  int retry_lines = 0;
  {
    std::istringstream lines(ReadLog(log));
    for (std::string line; std::getline(lines, line);) {
      retry_lines += line.find("; retry ") != std::string::npos;
    }
  }
  EXPECT_LE(retry_lines, 3) << ReadLog(log);  // (23 when every retry was said)
  pb::CountRequest cr;
  cr.set_collection("docs");
  cr.set_tenant("paced");
  pb::CountResponse n;
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::Count, kAdmin, cr, &n).ok());
  EXPECT_EQ(n.count(), 60u);
  // strata-cli waits out the quota too: counts back to back, each its own process, all answered
  // (the first ones use up the bucket; before, the next failed with RESOURCE_EXHAUSTED).
  for (int i = 0; i < 12; ++i) {
    const std::string cli_log = tmp.File("cli.log");
    EXPECT_EQ(WaitExit(Spawn({Bin("strata-cli"), "--server=" + server.address(),
                              "--api_key_file=" + tmp.File("tenant.key"), "count", "docs"},
                             cli_log)),
              0)
        << "count " << i << ": " << ReadLog(cli_log);
    EXPECT_NE(ReadLog(cli_log).find("60"), std::string::npos) << ReadLog(cli_log);
  }
  // The checkpoint is the tenant's: another tenant loading the same file is not told it is
  // loaded already, but that its rows are refused (the ids are paced's: ids are shared).
  server.MakeTenant("other");
  std::ofstream(tmp.File("other.key")) << server.MakeKey({"other"}) << "\n";
  const auto load_as_other = [&](const std::string& log) {
    return WaitExit(Spawn({Bin("strata-load"), "--input=" + input, "--collection=docs",
                           "--server=" + server.address(),
                           "--api_key_file=" + tmp.File("other.key"), "--batch=4", "--build=false"},
                          log));
  };
  const std::string again = tmp.File("again.log");
  EXPECT_EQ(load_as_other(again), 1) << ReadLog(again);
  EXPECT_NE(ReadLog(again).find("60 rows were rejected"), std::string::npos) << ReadLog(again);
  EXPECT_TRUE(std::filesystem::exists(input + ".docs.paced.ckpt"));  // one each
  EXPECT_TRUE(std::filesystem::exists(input + ".docs.other.ckpt"));
  // Run again, it resumes past the refused rows and still says they were refused.
  const std::string rerun = tmp.File("rerun.log");
  EXPECT_EQ(load_as_other(rerun), 1) << ReadLog(rerun);
  EXPECT_NE(ReadLog(rerun).find("60 rows were rejected by an earlier run"), std::string::npos)
      << ReadLog(rerun);
  // Rows saying who sees them: in a tenant's view, that tenant only - checked before any row;
  // a row naming none is the tenant's own.
  const auto load_with_tenants = [&](const std::string& line2, const std::string& log) {
    std::ofstream rows_tenants(tmp.File("rows.tenants"));
    for (int i = 0; i < 60; ++i) rows_tenants << (i == 1 ? line2 : std::string("other")) << "\n";
    rows_tenants.close();
    return WaitExit(
        Spawn({Bin("strata-load"), "--input=" + input, "--collection=docs",
               "--server=" + server.address(), "--api_key_file=" + tmp.File("other.key"),
               "--id_offset=1000", "--tenants=" + tmp.File("rows.tenants"), "--build=false"},
              log));
  };
  const std::string named = tmp.File("named.log");
  EXPECT_EQ(load_with_tenants("other,paced", named), 1) << ReadLog(named);
  EXPECT_NE(ReadLog(named).find("row 1 names tenant 'paced'"), std::string::npos) << ReadLog(named);
  cr.set_tenant("other");
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::Count, kAdmin, cr, &n).ok());
  EXPECT_EQ(n.count(), 0u);
  const std::string own = tmp.File("own.log");
  EXPECT_EQ(load_with_tenants("", own), 0) << ReadLog(own);
  ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::Count, kAdmin, cr, &n).ok());
  EXPECT_EQ(n.count(), 60u);
}

// The model: who may see each live point, and which tenant created it (owns it; "" = the admin).
struct Model {
  struct Point {
    std::set<std::string> tenants;
    std::string owner;
  };
  std::map<uint64_t, Point> points;
  std::set<uint64_t> Visible(const std::string& t) const {
    std::set<uint64_t> out;
    for (const auto& [id, p] : points) {
      if (p.tenants.count(t)) out.insert(id);
    }
    return out;
  }
};

TEST(TenantKeys, NoTenantSeesAnotherTenantsPointsThroughCrashes) {
  TempDir tmp;
  TenantServer server(tmp);
  ASSERT_NO_FATAL_FAILURE(server.Start());
  ASSERT_NO_FATAL_FAILURE(server.MakeCollection("docs"));
  const std::vector<std::string> names = {"red", "green", "blue"};
  std::map<std::string, std::string> keys;
  auto create = [&](const std::string& t) {
    pb::CreateTenantRequest req;
    req.set_collection("docs");
    req.set_name(t);
    pb::TenantInfo info;
    ASSERT_TRUE(Call(server.stub(), &pb::Strata::Stub::CreateTenant, kAdmin, req, &info).ok());
    keys[t] = server.MakeKey({t});
  };
  for (const auto& t : names) create(t);
  Model model;
  std::mt19937_64 rng(21);
  auto ids = [&](size_t most) {
    std::vector<uint64_t> out(1 + rng() % most);
    for (auto& id : out) id = rng() % kIds;
    return out;
  };
  for (int step = 0; step < 60; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    pb::Strata::Stub* stub = server.stub();
    const std::string& t = names[rng() % names.size()];
    switch (rng() % 7) {
      case 0: {  // the admin stores points for some tenants
        pb::UpsertRequest req;
        req.set_collection("docs");
        std::set<uint64_t> seen;
        for (uint64_t id : ids(8)) {
          if (!seen.insert(id).second) continue;
          pb::Point* p = req.add_points();
          *p = MakePoint(id, &rng);
          std::set<std::string> ts;
          for (const auto& n : names) {
            if (rng() % 3 == 0) ts.insert(n);
          }
          p->mutable_tenants();  // present even when empty: the point's tenants become none
          for (const auto& n : ts) p->mutable_tenants()->add_names(n);
          model.points[id] = {ts, ""};  // the admin names the tenants, and owns the point
        }
        pb::UpsertResponse resp;
        grpc::Status s = Call(stub, &pb::Strata::Stub::Upsert, kAdmin, req, &resp);
        ASSERT_TRUE(s.ok()) << s.error_message();
        break;
      }
      case 1: {  // a tenant stores its own points (others' are refused: it did not create them)
        pb::UpsertRequest req;
        req.set_collection("docs");
        std::set<uint64_t> seen;
        for (uint64_t id : ids(5)) {
          if (!seen.insert(id).second) continue;
          *req.add_points() = MakePoint(id, &rng);
          auto it = model.points.find(id);
          if (it == model.points.end()) model.points[id] = {{t}, t};
        }
        pb::UpsertResponse resp;
        grpc::Status s = Call(stub, &pb::Strata::Stub::Upsert, keys[t], req, &resp);
        ASSERT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
            << s.error_message();
        break;
      }
      case 2:
      case 3: {  // grant / revoke
        pb::AccessRequest req;
        req.set_collection("docs");
        req.set_tenant(t);
        const bool grant = rng() % 2 == 0;
        for (uint64_t id : ids(10)) {
          req.add_ids(id);
          auto it = model.points.find(id);
          if (it == model.points.end()) continue;
          if (grant) {
            it->second.tenants.insert(t);
          } else {
            it->second.tenants.erase(t);
            if (it->second.owner == t) it->second.owner.clear();
          }
        }
        pb::AccessResponse resp;
        grpc::Status s =
            Call(stub, grant ? &pb::Strata::Stub::GrantAccess : &pb::Strata::Stub::RevokeAccess,
                 kAdmin, req, &resp);
        ASSERT_TRUE(s.ok()) << s.error_message();
        break;
      }
      case 4: {  // a tenant deletes: what it created goes, what it was granted leaves its view
        pb::DeleteRequest req;
        req.set_collection("docs");
        for (uint64_t id : ids(6)) {
          req.add_ids(id);
          auto it = model.points.find(id);
          if (it == model.points.end()) continue;
          if (it->second.owner == t) {
            model.points.erase(it);
          } else {
            it->second.tenants.erase(t);
          }
        }
        pb::DeleteResponse resp;
        grpc::Status s = Call(stub, &pb::Strata::Stub::Delete, keys[t], req, &resp);
        ASSERT_TRUE(s.ok()) << s.error_message();
        break;
      }
      case 5: {  // offboarding: drop the tenant (deleting what only it saw), then onboard again
        pb::DropTenantRequest req;
        req.set_collection("docs");
        req.set_name(t);
        pb::DropTenantResponse resp;
        ASSERT_TRUE(Call(stub, &pb::Strata::Stub::DropTenant, kAdmin, req, &resp).ok());
        for (auto it = model.points.begin(); it != model.points.end();) {
          it->second.tenants.erase(t);
          if (it->second.owner == t) {
            if (it->second.tenants.empty()) {
              it = model.points.erase(it);
              continue;
            }
            it->second.owner.clear();
          }
          ++it;
        }
        // The old key died with the tenant.
        pb::CountRequest cr;
        cr.set_collection("docs");
        pb::CountResponse cn;
        EXPECT_EQ(Call(stub, &pb::Strata::Stub::Count, keys[t], cr, &cn).error_code(),
                  grpc::StatusCode::UNAUTHENTICATED);
        ASSERT_NO_FATAL_FAILURE(create(t));
        break;
      }
      default:  // kill -9 and restart
        server.Kill();
        ASSERT_NO_FATAL_FAILURE(server.Start());
        break;
    }
    stub = server.stub();
    // Every tenant, through its own key: Count, Get of every id, and a search for all of them.
    for (const auto& name : names) {
      SCOPED_TRACE("tenant " + name);
      const std::set<uint64_t> visible = model.Visible(name);
      pb::CountRequest cr;
      cr.set_collection("docs");
      pb::CountResponse cn;
      ASSERT_TRUE(Call(stub, &pb::Strata::Stub::Count, keys[name], cr, &cn).ok());
      EXPECT_EQ(cn.count(), visible.size());
      pb::GetRequest gr;
      gr.set_collection("docs");
      for (uint64_t id = 0; id < kIds; ++id) gr.add_ids(id);
      pb::GetResponse gp;
      ASSERT_TRUE(Call(stub, &pb::Strata::Stub::Get, keys[name], gr, &gp).ok());
      std::set<uint64_t> got;
      for (const auto& p : gp.points()) got.insert(p.id());
      EXPECT_EQ(got, visible);
      pb::SearchRequest sr;
      sr.set_collection("docs");
      sr.set_k(100);
      for (int j = 0; j < 4; ++j) sr.mutable_query()->add_values(0.5f);
      sr.set_with_payload(true);
      pb::SearchResponse sp;
      ASSERT_TRUE(Call(stub, &pb::Strata::Stub::Search, keys[name], sr, &sp).ok());
      std::set<uint64_t> found;
      for (const auto& h : sp.hits()) found.insert(h.id());
      EXPECT_EQ(found, visible);
      // Lexically (BM25 over the payload text), and in a batch of two queries.
      sr.clear_query();
      sr.set_text("passage");
      sr.set_mode(pb::LEXICAL);
      ASSERT_TRUE(Call(stub, &pb::Strata::Stub::Search, keys[name], sr, &sp).ok());
      found.clear();
      for (const auto& h : sp.hits()) found.insert(h.id());
      EXPECT_EQ(found, visible);
      pb::SearchBatchRequest br;
      br.set_collection("docs");
      br.set_k(100);
      for (int q = 0; q < 2; ++q) {
        pb::Vector* v = br.add_queries();
        for (int j = 0; j < 4; ++j) v->add_values(q == 0 ? 0.5f : -0.5f);
      }
      pb::SearchBatchResponse bp;
      ASSERT_TRUE(Call(stub, &pb::Strata::Stub::SearchBatch, keys[name], br, &bp).ok());
      ASSERT_EQ(bp.results_size(), 2);
      for (const auto& r : bp.results()) {
        found.clear();
        for (const auto& h : r.hits()) found.insert(h.id());
        EXPECT_EQ(found, visible);
      }
    }
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace strata
