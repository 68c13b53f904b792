// strata-access-check-bench: the two ways issue 14 names for a tenant's access check inside the
// scan of shared postings, side by side on one thread: the tenant's id set (index/id_set.h, a
// bitmap or a sorted array, what a search uses) probed per entry, and a list of tenants stored
// with each entry in the posting. Each search scans the entries of 32 postings (a 1M collection's
// default budget) as the real scan does: the dead-entry bit first, then the access check, then the
// distance for the entries the tenant sees. Prints nanoseconds per search and per entry, the
// bytes an entry takes, and what a grant of 1,000 ids costs each way (the id set: measured; the
// lists: the postings it would rewrite, from the replica count given).
// A kernel benchmark: it builds postings in memory (no disk), as the scan sees them once read.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "index/id_set.h"
#include "index/kernels/distance.h"
#include "storage/program_usage.h"

ABSL_FLAG(uint32_t, n, 1000000, "points in the collection (ids drawn from [0, n))");
ABSL_FLAG(uint32_t, postings, 8000, "postings in memory (searches pick 32 of them at random)");
ABSL_FLAG(uint32_t, posting_entries, 78, "entries per posting (a 1M build's mean)");
ABSL_FLAG(uint32_t, dim, 128, "uint8 dimensions");
ABSL_FLAG(std::string, shares, "0.01,0.03,0.1,0.3",
          "shares of the collection the searching tenant sees (comma-separated)");
ABSL_FLAG(double, sharing, 1.2, "mean tenants per point (the lists' length)");
ABSL_FLAG(uint32_t, tenants, 1000, "tenants (ids in the lists)");
ABSL_FLAG(uint32_t, searches, 4000, "searches timed per way and share");
ABSL_FLAG(double, replicas, 4.12, "posting entries per point (a 1M build's: its log says)");

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kPostingsPerSearch = 32;

struct Posting {
  std::vector<uint8_t> plain;   // [id u32][vector]
  std::vector<uint8_t> listed;  // [id u32][count u16][tenant u32 x count][vector]
};

int Run() {
  const uint32_t n = absl::GetFlag(FLAGS_n), np = absl::GetFlag(FLAGS_postings);
  const uint32_t pe = absl::GetFlag(FLAGS_posting_entries), dim = absl::GetFlag(FLAGS_dim);
  const uint32_t tenants = absl::GetFlag(FLAGS_tenants), searches = absl::GetFlag(FLAGS_searches);
  const double sharing = absl::GetFlag(FLAGS_sharing);
  std::vector<double> shares;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_shares), ',')) {
    double v = 0;
    if (!absl::SimpleAtod(s, &v) || v <= 0 || v > 1) {
      std::fprintf(stderr, "strata-access-check-bench: --shares are numbers in (0, 1]\n");
      return 2;
    }
    shares.push_back(v);
  }
  if (n == 0 || np < kPostingsPerSearch || pe == 0 || dim == 0 || tenants < 2 || searches == 0 ||
      sharing < 1) {
    std::fprintf(stderr,
                 "strata-access-check-bench: --n, --posting_entries, --dim, --searches > 0, "
                 "--postings >= 32, --tenants >= 2, --sharing >= 1\n");
    return 2;
  }
  const kernels::KernelTable& table = kernels::Best();
  const kernels::DistanceFn dist = kernels::GetDistance(table, ElementType::kUint8, Metric::kL2);
  const size_t row = sizeof(uint32_t) + dim;
  std::mt19937_64 rng(7);
  std::vector<uint8_t> query(dim);
  for (uint8_t& b : query) b = static_cast<uint8_t>(rng());
  std::vector<uint8_t> dead((n + 7) / 8, 0);  // the dead-entry bits (none dead: probed anyway)

  std::printf(
      "%u postings of %u entries (%u-d uint8), ids of %u points; %u tenants, %.2f per "
      "point; one thread, %s kernels\n\n",
      np, pe, dim, n, tenants, sharing, SimdLevelName(table.level));
  std::printf(
      "| tenant's share | id set form | admin (no check) ns/search | id set ns/search | "
      "lists ns/search | id set ns/entry over admin | lists ns/entry over admin | id set by "
      "plain binary search, ns/entry over admin | bytes per entry, plain / listed "
      "|\n|---|---|---|---|---|---|---|---|---|\n");
  for (double share : shares) {
    // The tenant's points, and each point's list (the tenant when it sees the point, others to
    // make the mean length `sharing`).
    std::bernoulli_distribution sees(share);
    std::geometric_distribution<uint32_t> more(1.0 / sharing);  // mean sharing - 1 extra tenants
    std::vector<uint32_t> members;
    std::vector<std::vector<uint32_t>> lists(n);
    for (uint32_t id = 0; id < n; ++id) {
      const bool in = sees(rng);
      if (in) {
        members.push_back(id);
        lists[id].push_back(0);
      }
      const uint32_t extra = more(rng) + (in ? 0 : 1);
      for (uint32_t e = 0; e < extra; ++e) {
        lists[id].push_back(1 + static_cast<uint32_t>(rng() % (tenants - 1)));
      }
    }
    IdSet allow;
    allow.Insert(members);
    std::vector<Posting> postings(np);
    uint64_t plain_bytes = 0, listed_bytes = 0;
    for (Posting& p : postings) {
      for (uint32_t e = 0; e < pe; ++e) {
        const uint32_t id = static_cast<uint32_t>(rng() % n);
        uint8_t head[4];
        std::memcpy(head, &id, 4);
        std::vector<uint8_t> vec(dim);
        for (uint8_t& b : vec) b = static_cast<uint8_t>(rng());
        p.plain.insert(p.plain.end(), head, head + 4);
        p.plain.insert(p.plain.end(), vec.begin(), vec.end());
        p.listed.insert(p.listed.end(), head, head + 4);
        const uint16_t count = static_cast<uint16_t>(lists[id].size());
        uint8_t c[2];
        std::memcpy(c, &count, 2);
        p.listed.insert(p.listed.end(), c, c + 2);
        for (uint32_t t : lists[id]) {
          uint8_t tb[4];
          std::memcpy(tb, &t, 4);
          p.listed.insert(p.listed.end(), tb, tb + 4);
        }
        p.listed.insert(p.listed.end(), vec.begin(), vec.end());
      }
      plain_bytes += p.plain.size();
      listed_bytes += p.listed.size();
    }
    std::vector<uint32_t> picks(uint64_t{searches} * kPostingsPerSearch);
    for (uint32_t& p : picks) p = static_cast<uint32_t>(rng() % np);

    // way 0: no check; 1: the id set; 2: the lists; 3: the id set by a plain binary search of its
    // array (IdSet::ContainsReference; a bitmap's test either way). Returns ns per search; `sum`
    // keeps the distances alive.
    double sum = 0;
    const auto time_way = [&](int way) {
      const auto start = Clock::now();
      for (uint32_t s = 0; s < searches; ++s) {
        float best = 3.4e38f;
        for (uint32_t k = 0; k < kPostingsPerSearch; ++k) {
          const Posting& p = postings[picks[uint64_t{s} * kPostingsPerSearch + k]];
          const std::vector<uint8_t>& bytes = way == 2 ? p.listed : p.plain;
          for (size_t at = 0; at < bytes.size();) {
            const uint8_t* entry = bytes.data() + at;
            uint32_t id;
            std::memcpy(&id, entry, 4);
            const uint8_t* vec = entry + 4;
            at += row;
            bool ok = true;
            if (way == 2) {  // the list before the vector: a refused entry's vector is not read
              uint16_t count;
              std::memcpy(&count, entry + 4, 2);
              ok = false;
              for (uint16_t i = 0; i < count; ++i) {
                uint32_t t;
                std::memcpy(&t, entry + 6 + 4 * i, 4);
                ok |= t == 0;
              }
              vec = entry + 6 + 4 * size_t{count};
              at += 2 + 4 * size_t{count};
            }
            if ((dead[id >> 3] >> (id & 7) & 1) != 0) continue;
            if (way == 1) ok = allow.Contains(id);
            if (way == 3) ok = allow.ContainsReference(id);
            if (!ok) continue;
            best = std::min(best, dist(query.data(), vec, dim));
          }
        }
        sum += best;
      }
      return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / searches;
    };
    time_way(0);  // warm-up
    double ns[4] = {1e300, 1e300, 1e300, 1e300};
    for (int pass = 0; pass < 3; ++pass) {  // the best of three, interleaved
      for (int way = 0; way < 4; ++way) ns[way] = std::min(ns[way], time_way(way));
    }
    const double entries = static_cast<double>(kPostingsPerSearch) * pe;
    std::printf("| %.2f | %s | %.0f | %.0f | %.0f | %+.2f | %+.2f | %+.2f | %.1f / %.1f |\n", share,
                allow.dense() ? "bitmap" : "sorted array", ns[0], ns[1], ns[2],
                (ns[1] - ns[0]) / entries, (ns[2] - ns[0]) / entries, (ns[3] - ns[0]) / entries,
                static_cast<double>(plain_bytes) / (static_cast<double>(np) * pe),
                static_cast<double>(listed_bytes) / (static_cast<double>(np) * pe));
    if (sum == 0) std::printf("(sum %f)\n", sum);

    // A grant of 1,000 ids the tenant does not see yet: the id set's change, timed.
    std::vector<uint32_t> grant;
    for (uint32_t id = 0; grant.size() < 1000 && id < n; id += 1 + n / 4000) {
      if (!allow.Contains(id)) grant.push_back(id);
    }
    const auto g0 = Clock::now();
    allow.Insert(grant);
    const double grant_us = std::chrono::duration<double, std::micro>(Clock::now() - g0).count();
    const double replicas = absl::GetFlag(FLAGS_replicas);
    const double posting_mib =
        static_cast<double>(listed_bytes) / np / (1 << 20);  // one listed posting
    std::printf(
        "  grant of %zu ids: the id set changes in %.0f us (and 1 key per id); with lists, "
        "up to %.0f postings rewritten (%.2f entries per point), %.1f MiB\n",
        grant.size(), grant_us, replicas * grant.size(), replicas,
        replicas * grant.size() * posting_mib);
  }
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "The two ways of a tenant's access check inside the scan of shared postings (its id set, or "
      "a list of tenants stored with each entry), side by side on one thread.\n\n"
      "  strata-access-check-bench [--shares=0.01,0.03,0.1,0.3 --sharing=1.2]");
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
