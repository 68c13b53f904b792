#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/strata.grpc.pb.h"
#include "service/limits.h"
#include "tools/cli/cli_util.h"
#include "tools/cli/commands.h"

ABSL_FLAG(bool, keep_points, false,
          "tenant drop: keep the points the tenant created that no other tenant sees (default: "
          "delete them)");
ABSL_FLAG(std::string, label, "", "key create: a note shown by `key list` (who holds the key)");
ABSL_FLAG(std::string, max_points, "",
          "tenant create/quota: points the tenant may see (0 = no limit; quota: unset keeps it)");
ABSL_FLAG(std::string, max_rps, "",
          "tenant create/quota: calls per second the tenant's keys may make (0 = no limit; "
          "quota: unset keeps it)");

namespace strata::cli {

namespace pb = ::strata::v1;

int TenantCommand(const std::string& /*cmd*/, const std::vector<char*>& args,
                  pb::Strata::Stub* stub) {
  if (args.size() < 3) {
    return Fail("usage: strata-cli tenant create|drop|list|quota NAME [TENANT]");
  }
  const std::string op = args[2];
  if (op != "create" && op != "drop" && op != "list" && op != "quota") {
    return Fail(absl::StrCat("unknown tenant command '", op, "' (create, drop, list or quota)"));
  }
  if (args.size() < 4) {
    return Fail(
        absl::StrCat("usage: strata-cli tenant ", op, " NAME", op == "list" ? "" : " TENANT"));
  }
  const std::string coll = args[3];
  if (op == "list") {
    pb::ListTenantsRequest req;
    req.set_collection(coll);
    pb::ListTenantsResponse resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::ListTenants, req, &resp);
    if (!s.ok()) return RpcFail(s);
    for (const pb::TenantInfo& t : resp.tenants()) {
      std::printf("%-24s %12llu points  %10.1f MiB of vectors", t.name().c_str(),
                  static_cast<unsigned long long>(t.points()), t.vector_bytes() / 1048576.0);
      if (t.quota().max_points() > 0) {
        std::printf("  max_points %llu", static_cast<unsigned long long>(t.quota().max_points()));
      }
      if (t.quota().max_requests_per_second() > 0) {
        std::printf("  max_rps %g", t.quota().max_requests_per_second());
      }
      std::printf("\n");
    }
    return 0;
  }
  if (args.size() != 5) return Fail(absl::StrCat("usage: strata-cli tenant ", op, " NAME TENANT"));
  // The quota flags given; `tenant quota` keeps what is not given.
  pb::TenantQuota quota;
  const std::string max_points = absl::GetFlag(FLAGS_max_points);
  const std::string max_rps = absl::GetFlag(FLAGS_max_rps);
  if (op == "quota") {
    if (max_points.empty() && max_rps.empty()) {
      return Fail("tenant quota needs --max_points and/or --max_rps");
    }
    pb::ListTenantsRequest lreq;
    lreq.set_collection(coll);
    pb::ListTenantsResponse have;
    grpc::Status s = Call(stub, &pb::Strata::Stub::ListTenants, lreq, &have);
    if (!s.ok()) return RpcFail(s);
    for (const pb::TenantInfo& t : have.tenants()) {
      if (t.name() == args[4]) quota = t.quota();
    }
  }
  if (!max_points.empty()) {
    uint64_t v;
    if (!absl::SimpleAtoi(max_points, &v)) return Fail("--max_points must be an integer >= 0");
    quota.set_max_points(v);
  }
  if (!max_rps.empty()) {
    double v;
    if (!absl::SimpleAtod(max_rps, &v)) return Fail("--max_rps must be a number >= 0");
    quota.set_max_requests_per_second(v);
  }
  if (op == "create") {
    pb::CreateTenantRequest req;
    req.set_collection(coll);
    req.set_name(args[4]);
    *req.mutable_quota() = quota;
    pb::TenantInfo resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::CreateTenant, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("tenant '%s' of '%s' created\n", args[4], coll.c_str());
    return 0;
  }
  if (op == "quota") {
    pb::SetTenantQuotaRequest req;
    req.set_collection(coll);
    req.set_name(args[4]);
    *req.mutable_quota() = quota;
    pb::TenantInfo resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::SetTenantQuota, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("tenant '%s': max_points %llu, max_rps %g\n", args[4],
                static_cast<unsigned long long>(resp.quota().max_points()),
                resp.quota().max_requests_per_second());
    return 0;
  }
  if (op == "drop") {
    pb::DropTenantRequest req;
    req.set_collection(coll);
    req.set_name(args[4]);
    req.set_keep_points(absl::GetFlag(FLAGS_keep_points));
    pb::DropTenantResponse resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::DropTenant, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("tenant '%s' dropped: %llu points it created and only it saw %s, %u keys revoked\n",
                args[4], static_cast<unsigned long long>(resp.deleted_points()),
                req.keep_points() ? "kept" : "deleted", resp.revoked_keys());
    return 0;
  }
  return Fail(absl::StrCat("unknown tenant command '", op, "'"));  // (checked above)
}

int GrantOrRevoke(const std::string& cmd, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  std::vector<uint64_t> ids;
  if (args.size() < 5) return Fail(absl::StrCat("usage: strata-cli ", cmd, " NAME TENANT ID..."));
  if (absl::Status s = ParseIds(args, 4, &ids); !s.ok()) {
    return Fail(absl::StrCat(cmd, ": ", s.message()));
  }
  // In requests of the server's default batch limit (a server started with a lower --max_batch
  // refuses them, naming the flag): each is one write, so a failure leaves the requests before
  // it done, and says how far it got. A grant or revoke done again changes nothing, so the whole
  // command may simply be run again.
  const size_t per_request = strata::ServerLimits().max_batch;
  uint64_t changed = 0;
  size_t missing = 0;
  for (size_t at = 0; at < ids.size(); at += per_request) {
    pb::AccessRequest req;
    req.set_collection(args[2]);
    req.set_tenant(args[3]);
    for (size_t i = at; i < std::min(ids.size(), at + per_request); ++i) req.add_ids(ids[i]);
    pb::AccessResponse resp;
    grpc::Status s = cmd == "grant" ? Call(stub, &pb::Strata::Stub::GrantAccess, req, &resp)
                                    : Call(stub, &pb::Strata::Stub::RevokeAccess, req, &resp);
    if (!s.ok()) {
      if (at > 0) {
        std::fprintf(stderr,
                     "%s: the first %zu of %zu ids were done (%llu changed); running the same "
                     "command again is safe\n",
                     cmd.c_str(), at, ids.size(), static_cast<unsigned long long>(changed));
      }
      return RpcFail(s);
    }
    changed += resp.changed();
    missing += static_cast<size_t>(resp.missing_ids_size());
  }
  std::printf("%s: %llu of %zu ids changed", cmd.c_str(), static_cast<unsigned long long>(changed),
              ids.size());
  if (missing > 0) std::printf(", %zu ids of no point", missing);
  std::printf("\n");
  return 0;
}

int KeyCommand(const std::string& /*cmd*/, const std::vector<char*>& args, pb::Strata::Stub* stub) {
  if (args.size() < 3) return Fail("usage: strata-cli key create|revoke|list ...");
  const std::string op = args[2];
  if (op == "create") {
    if (args.size() != 5) return Fail("usage: strata-cli key create NAME TENANT[,TENANT...]");
    pb::CreateApiKeyRequest req;
    req.set_collection(args[3]);
    for (absl::string_view t : absl::StrSplit(args[4], ',', absl::SkipEmpty())) {
      req.add_tenants(std::string(t));
    }
    req.set_label(absl::GetFlag(FLAGS_label));
    pb::CreateApiKeyResponse resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::CreateApiKey, req, &resp);
    if (!s.ok()) return RpcFail(s);
    // The key alone on stdout (for a file); what it is, on stderr.
    std::printf("%s\n", resp.key().c_str());
    std::fprintf(stderr, "key %s for tenants %s of '%s': keep it secret, it is not shown again\n",
                 resp.info().key_id().c_str(), absl::StrJoin(resp.info().tenants(), ",").c_str(),
                 resp.info().collection().c_str());
    return 0;
  }
  if (op == "revoke") {
    if (args.size() != 4) return Fail("usage: strata-cli key revoke KEY_ID");
    pb::RevokeApiKeyRequest req;
    req.set_key_id(args[3]);
    pb::RevokeApiKeyResponse resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::RevokeApiKey, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("key %s revoked\n", args[3]);
    return 0;
  }
  if (op == "list") {
    pb::ListApiKeysRequest req;
    if (args.size() > 3) req.set_collection(args[3]);
    pb::ListApiKeysResponse resp;
    grpc::Status s = Call(stub, &pb::Strata::Stub::ListApiKeys, req, &resp);
    if (!s.ok()) return RpcFail(s);
    // A label is the admin's free text: control characters (a newline, a terminal's escape
    // sequence) are shown as \xNN, not sent to the terminal.
    const auto printable = [](const std::string& text) {
      std::string out;
      for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) {
          absl::StrAppendFormat(&out, "\\x%02x", u);
        } else {
          out.push_back(c);
        }
      }
      return out;
    };
    for (const pb::ApiKeyInfo& k : resp.keys()) {
      std::printf("%s  %-20s %-30s %s\n", k.key_id().c_str(), k.collection().c_str(),
                  absl::StrJoin(k.tenants(), ",").c_str(), printable(k.label()).c_str());
    }
    return 0;
  }
  return Fail(absl::StrCat("unknown key command '", op, "' (create, revoke or list)"));
}

}  // namespace strata::cli
