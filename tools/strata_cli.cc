// strata-cli: talks to a running strata-server. The commands live in tools/cli/ (commands.h).
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "proto/strata.grpc.pb.h"
#include "storage/program_usage.h"
#include "tools/cli/cli_util.h"
#include "tools/cli/commands.h"
#include "tools/client_channel.h"

namespace {

namespace pb = ::strata::v1;
using strata::cli::Fail;

const char kUsage[] =
    "Talks to a running strata-server.\n"
    "\n"
    "  strata-cli [--server=HOST:PORT] COMMAND [ARGS]\n"
    "\n"
    "  health                       the server's grpc.health.v1 status (and its durability and\n"
    "                               writes, when they fail); exit 0 serving, 1 not serving,\n"
    "                               2 serving with a part failing\n"
    "  list                         collections\n"
    "  create NAME --dim=D [--type=float32|uint8|int8] [--metric=l2|ip|cosine]\n"
    "                [--text_fields=title,...]\n"
    "  describe NAME                counts, sizes, index state\n"
    "  drop NAME\n"
    "  build NAME                   (re)build the collection's disk index now\n"
    "  repair NAME                  rebuild a damaged collection's index from its stored vectors\n"
    "  count NAME\n"
    "  search NAME --vector=1,2,3 | --query_file=F [--row=I] | --text=\"a question\"\n"
    "                [--mode=dense|lexical|hybrid --fusion=... --dense_weight=W] [--rerank=N]\n"
    "                               [--k=10] [--with_payload]\n"
    "                               with --gt=FILE: recall@k, QPS and latency over all queries\n"
    "                               (--clients=N: N concurrent connections)\n"
    "  get NAME ID...               [--with_vector] [--with_payload]\n"
    "  delete NAME ID...\n"
    "  embed TEXT...                embed texts with the server's model (vectors abridged)\n"
    "  ask NAME \"a question\"       answer from the collection's passages (RAG), streamed, then\n"
    "                               the sources [--passages=4 --max_tokens=256 --temperature=0\n"
    "                               --cache_mode=int8|int4|f16|full --recompute_ratio=0.15\n"
    "                               --mode=dense|lexical|hybrid]\n"
    "  tune NAME --questions=F      learn the collection's hybrid dense weight from labelled\n"
    "                               questions [--dry_run] [--max_questions=1024]\n"
    "  stats                        server statistics\n"
    "\n"
    "  Tenants (admin key; see README, \"Tenants\"):\n"
    "  tenant create|drop|list NAME [TENANT] [--keep_points]\n"
    "                [--max_points=N --max_rps=R]   quotas (create, or `tenant quota`)\n"
    "  grant NAME TENANT ID...      let the tenant see these points\n"
    "  revoke NAME TENANT ID...     take them from its view\n"
    "  key create NAME TENANT[,TENANT...] [--label=TEXT]   prints the key, once\n"
    "  key revoke KEY_ID\n"
    "  key list [NAME]\n";

// The most words a command takes after its own (nullopt: a list of any length, or words the
// command checks itself). A word past them is a mistake to say, not to drop: `drop a b` must not
// drop only `a`.
std::optional<size_t> MaxWords(absl::string_view cmd, const std::vector<char*>& args) {
  static constexpr std::pair<absl::string_view, size_t> kFixed[] = {
      {"health", 0}, {"list", 0}, {"stats", 0}, {"create", 1}, {"describe", 1}, {"build", 1},
      {"repair", 1}, {"drop", 1}, {"count", 1}, {"search", 1}, {"tune", 1}};
  for (const auto& [name, most] : kFixed) {
    if (cmd == name) return most;
  }
  if (args.size() > 2) {
    const absl::string_view op = args[2];
    if (cmd == "tenant" && op == "list") return 2;  // tenant list NAME
    if (cmd == "key" && op == "list") return 2;     // key list [NAME]
  }
  return std::nullopt;
}

// The flags of one command or another (those of the connection, and abseil's own, apply to
// every command and are not listed): a command given one it does not read says so, rather than
// leave it unread (`ask --k=2` would read 4 passages). "" = none.
constexpr std::pair<absl::string_view, absl::string_view> kCommandFlags[] = {
    {"create", "dim type metric posting_encoding build_threshold text_fields"},
    {"describe", "tenant"},
    {"build", "wait"},
    {"repair", "wait"},
    {"count", "tenant"},
    {"get", "tenant with_vector with_payload"},
    {"delete", "tenant"},
    {"search",
     "tenant vector query_file row text mode fusion dense_weight rerank k postings with_payload "
     "with_vector gt clients"},
    {"ask",
     "tenant passages mode max_tokens temperature seed repetition_penalty cache_mode "
     "recompute_ratio quiet"},
    {"tune", "questions max_questions dry_run"},
    {"tenant", "keep_points max_points max_rps"},
    {"key", "label"},
};

// The first flag on the command line that some command reads and `cmd` does not, if any.
std::optional<std::string> FlagNotFor(absl::string_view cmd, int argc, char** argv) {
  absl::flat_hash_set<absl::string_view> any, mine;
  for (const auto& [name, flags] : kCommandFlags) {
    for (absl::string_view f : absl::StrSplit(flags, ' ', absl::SkipEmpty())) {
      any.insert(f);
      if (name == cmd) mine.insert(f);
    }
  }
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--") break;  // the rest are words
    if (!absl::ConsumePrefix(&a, "-")) continue;
    absl::ConsumePrefix(&a, "-");
    a = a.substr(0, a.find('='));
    if (!any.contains(a) && absl::ConsumePrefix(&a, "no") && !any.contains(a)) continue;
    if (any.contains(a) && !mine.contains(a)) return std::string(a);
  }
  return std::nullopt;
}

struct Entry {
  absl::string_view name;
  strata::cli::CommandFn run;
  bool names_collection;  // args[2] must be there
};
constexpr Entry kCommands[] = {
    {"list", strata::cli::List, false},
    {"stats", strata::cli::Stats, false},
    {"embed", strata::cli::Embed, false},
    {"create", strata::cli::Create, true},
    {"tune", strata::cli::Tune, true},
    {"describe", strata::cli::DescribeOrBuild, true},
    {"build", strata::cli::DescribeOrBuild, true},
    {"repair", strata::cli::DescribeOrBuild, true},
    {"drop", strata::cli::Drop, true},
    {"tenant", strata::cli::TenantCommand, false},  // (its usage names what it needs)
    {"grant", strata::cli::GrantOrRevoke, true},
    {"revoke", strata::cli::GrantOrRevoke, true},
    {"key", strata::cli::KeyCommand, false},
    {"count", strata::cli::Count, true},
    {"get", strata::cli::GetOrDelete, true},
    {"delete", strata::cli::GetOrDelete, true},
    {"ask", strata::cli::Ask, true},
    {"search", strata::cli::Search, true},
};

}  // namespace

int main(int argc, char** argv) {
  strata::SetProgramUsage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  if (!(absl::GetFlag(FLAGS_timeout) > 0)) return Fail("--timeout must be more than 0 seconds");
  const std::string cmd = args[1];
  const Entry* entry = nullptr;
  for (const Entry& e : kCommands) {
    if (cmd == e.name) entry = &e;
  }
  if (entry == nullptr && cmd != "health") {
    return Fail(absl::StrCat("unknown command '", cmd, "'; see --help"));
  }
  if (std::optional<std::string> flag = FlagNotFor(cmd, argc, argv)) {
    return Fail(absl::StrCat("--", *flag, " does not apply to '", cmd, "'; see --help"));
  }
  if (std::optional<size_t> most = MaxWords(cmd, args); most && args.size() > 2 + *most) {
    return Fail(absl::StrCat("'", cmd, "' takes at most ", *most, " argument",
                             *most == 1 ? "" : "s", "; unexpected '", args[2 + *most],
                             "'; see --help"));
  }
  auto made = strata::MakeClientChannel(absl::GetFlag(FLAGS_server));
  if (!made.ok()) return Fail(std::string(made.status().message()));
  std::shared_ptr<grpc::Channel> channel = *made;
  if (entry == nullptr) return strata::cli::Health(channel);
  if (entry->names_collection && args.size() < 3) {
    return Fail(absl::StrCat("'", cmd, "' needs a collection name; see --help"));
  }
  auto stub = pb::Strata::NewStub(channel);
  return entry->run(cmd, args, stub.get());
}
