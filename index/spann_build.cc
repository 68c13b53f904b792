// SpannIndex::Build (index/spann_index.h): heads by balanced hierarchical k-means, their
// navigation graph, replicas by the RNG rule, capped postings written, the MANIFEST last, then the
// default search budget tuned on the index just written.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "index/clustering.h"
#include "index/internal/head_graph.h"
#include "index/internal/head_spacing.h"
#include "index/internal/manifest.h"
#include "index/internal/spann_layout.h"
#include "index/kernels/distance.h"
#include "index/search_tuner.h"
#include "index/spann_index.h"
#include "index/vector_rules.h"
#include "storage/half.h"
#include "storage/log.h"
#include "storage/posting_file.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

absl::Status SpannIndex::Build(const VectorSet& vectors, const std::string& dir,
                               const SpannBuildOptions& options, SpannBuildStats* stats_out) {
  const uint64_t n = vectors.n;
  const uint32_t d = vectors.dim;
  const ElementType type = vectors.type;
  if (n == 0 || d == 0) return absl::InvalidArgumentError("cannot build an index of no vectors");
  if (d > kMaxDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat("dimension ", d, " is over the limit of ", kMaxDimension));
  }
  if (vectors.data.size() != n * vectors.row_bytes()) {
    return absl::InvalidArgumentError("vector data size does not match n * dim");
  }
  if (n > UINT32_MAX) return absl::InvalidArgumentError("an index holds at most 2^32-1 vectors");
  if (!options.ids.empty() && options.ids.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.ids.size(), " ids given for ", n, " vectors"));
  }
  if (options.metric == Metric::kCosine && type != ElementType::kFloat32) {
    return absl::InvalidArgumentError(
        "cosine needs float32 vectors (integers cannot be normalised)");
  }
  const PostingEncoding encoding = options.posting_encoding;
  if (encoding == PostingEncoding::kFloat16 && type != ElementType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat("float16 postings need float32 vectors; build ",
                                                   ElementTypeName(type),
                                                   " vectors with native postings"));
  }
  const double head_share = options.head_share != 0         ? options.head_share
                            : type == ElementType::kFloat32 ? 0.16
                                                            : 0.10;
  if (!(head_share > 0 && head_share <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "head_share must be in (0, 1] (0 picks the default), got ", options.head_share));
  }
  if (options.max_replicas == 0 || options.max_replicas > 64 || options.replica_candidates == 0 ||
      options.replica_candidates > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_replicas must be in [1, 64] and replica_candidates in [1, 1024], got ",
                     options.max_replicas, " and ", options.replica_candidates));
  }
  if (std::filesystem::exists(internal::IndexFilePath(dir, internal::kManifestName))) {
    return absl::AlreadyExistsError(absl::StrCat(dir, " already holds an index"));
  }
  Env& env = options.env != nullptr ? *options.env : *Env::Default();
  RETURN_IF_ERROR(CreateDirs(env, dir));

  SpannBuildStats stats;
  stats.vectors = n;
  auto progress = [&](const char* phase, uint64_t done, uint64_t total) {
    if (options.progress) options.progress(phase, done, total);
  };
  // Once true, true for the rest of the build (each loop's check after it relies on it), whatever
  // the caller's function does next.
  std::atomic<bool> cancel_seen{false};
  const std::function<bool()> cancelled = [&] {
    if (cancel_seen.load(std::memory_order_relaxed)) return true;
    if (!options.cancelled || !options.cancelled()) return false;
    cancel_seen.store(true, std::memory_order_relaxed);
    return true;
  };
  const auto stopped = [] { return absl::CancelledError("the build was cancelled"); };
  int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const bool cosine = options.metric == Metric::kCosine;

  // The vectors as floats for clustering, navigation and float16 postings, normalised for cosine:
  // converted row by row as they are read (no float copy of the set, which for integer data would
  // be 4x its size).
  const FloatRows frows(vectors.data.data(), type, d, cosine);
  for (uint64_t i = 0; i < n; ++i) {
    RETURN_IF_ERROR(
        CheckVectorValues(type, options.metric, d, vectors.row(i), absl::StrCat("vector ", i)));
  }
  if (type == ElementType::kFloat32) {
    const auto* raw = reinterpret_cast<const float*>(vectors.data.data());
    // Normalised (cosine) rows always fit float16; others are checked as they are.
    if (encoding == PostingEncoding::kFloat16 && !cosine) {
      for (uint64_t i = 0; i < n * d; ++i) {
        if (std::fabs(raw[i]) > kHalfMax) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "vector %d has %g at dimension %d, beyond float16's range (+-65504); build with "
              "native postings",
              i / d, raw[i], i % d));
        }
      }
    }
  }

  // 1. Heads.
  auto t = Clock::now();
  progress("clustering", 0, 1);
  ClusteringOptions copt;
  copt.branching = options.branching;
  copt.leaf_size = 1.0 / head_share;
  copt.balance = options.balance;
  copt.seed = options.seed;
  copt.threads = threads;
  copt.cancelled = cancelled;
  ASSIGN_OR_RETURN(ClusteringResult clusters, BalancedHierarchicalClustering(frows, n, copt));
  uint64_t H = clusters.heads.size();  // (grows by the outliers' heads, step 3b)
  stats.heads = H;
  stats.seconds_clustering = SecondsSince(t);
  progress("clustering", 1, 1);
  Log(LogLevel::kInfo, "build: %d heads (%.3f of %d vectors), tree depth %d, %.1f s", H,
      double(H) / n, n, clusters.depth, stats.seconds_clustering);

  // 2. Navigation graph over the heads, in the vectors' own type (normalised floats for cosine).
  t = Clock::now();
  const size_t row_bytes = cosine ? size_t{d} * 4 : vectors.row_bytes();
  // Row i as the graph and the native postings store it; `scratch` (d floats) holds a normalised
  // cosine row.
  auto row_of = [&](uint64_t i, float* scratch) -> const uint8_t* {
    return cosine ? reinterpret_cast<const uint8_t*>(frows.Row(i, scratch)) : vectors.row(i);
  };
  std::vector<uint8_t> head_rows(H * row_bytes);
  {
    std::vector<float> scratch(d);
    for (uint64_t h = 0; h < H; ++h) {
      std::memcpy(&head_rows[h * row_bytes], row_of(clusters.heads[h], scratch.data()), row_bytes);
    }
  }
  internal::HeadGraphOptions gopt;
  gopt.m = options.hnsw_m;
  gopt.ef_construction = options.hnsw_ef_construction;
  gopt.seed = options.seed;
  gopt.threads = threads;
  gopt.progress = [&](uint64_t done, uint64_t total) { progress("head graph", done, total); };
  gopt.cancelled = cancelled;
  progress("head graph", 0, H);
  ASSIGN_OR_RETURN(auto graph,
                   internal::HeadGraph::Build(type, options.metric, d, head_rows.data(), H, gopt));
  head_rows = {};
  // Outliers: far from every other head past kOutlierSpacings times the heads' median spacing
  // (none under inner product: no distance to bound with). Heads no walk reaches are measured by
  // every walk (FindIsolated); vectors get heads of their own (3b).
  const float outlier_radius =
      internal::kOutlierSpacings *
      internal::MedianHeadSpacing(*graph, options.metric, internal::kSpacingSample);
  const auto outlying = [&](float distance) {
    return outlier_radius > 0 && kernels::EuclideanOf(options.metric, distance) > outlier_radius;
  };
  // Both lists together hold at most this many: each costs every walk a distance (~0.6 us a walk
  // for 256 heads of 128 bytes, against ~30 us for the walk).
  const size_t most_measured = std::min<uint64_t>(256, std::max<uint64_t>(16, H / 1000));
  if (outlier_radius > 0) graph->FindIsolated(threads, cancelled, outlying, most_measured);
  if (cancelled()) return absl::CancelledError("the head graph's build was cancelled");
  stats.seconds_head_index = SecondsSince(t);
  Log(LogLevel::kInfo,
      "build: head graph (HNSW M=%d) in %.1f s, %.1f MiB; %d heads no link reached, linked "
      "from their nearest (%d left); %d heads no walk reaches, measured by every walk",
      gopt.m, stats.seconds_head_index, graph->MemoryBytes() / 1048576.0, graph->relinked(),
      graph->Unreached(), graph->isolated());

  // 3. Replicas: nearest heads of every vector, then the RNG rule.
  t = Clock::now();
  const uint32_t cand = static_cast<uint32_t>(std::min<uint64_t>(options.replica_candidates, H));
  const uint32_t R = options.max_replicas;
  std::vector<uint32_t> rep_head(n * R);
  std::vector<float> rep_dist(n * R);
  std::vector<uint8_t> rep_count(n);
  std::atomic<uint64_t> assigned{0};
  progress("assigning", 0, n);
#pragma omp parallel num_threads(threads)
  {
    internal::HeadSearchScratch scratch;
    std::vector<std::pair<float, uint32_t>> found;
    std::vector<int64_t> ids(cand);
    std::vector<float> dists(cand);
    std::vector<float> row(d);
#pragma omp for schedule(dynamic, 1024)
    for (uint64_t i = 0; i < n; ++i) {
      if (cancelled()) continue;  // (checked after the loop)
      graph->Search(row_of(i, row.data()), cand, std::max(2 * cand, 128u), &scratch, &found);
      ids.assign(cand, -1);
      for (size_t j = 0; j < found.size(); ++j) {
        ids[j] = found[j].second;
        dists[j] = found[j].first;
      }
      auto head_dist = [&](int64_t a, int64_t b) {
        return graph->Distance(graph->vector(static_cast<uint32_t>(a)), static_cast<uint32_t>(b));
      };
      std::vector<uint32_t> chosen = SelectReplicas(ids, dists, R, options.rng_factor, head_dist);
      rep_count[i] = static_cast<uint8_t>(chosen.size());
      for (size_t r = 0; r < chosen.size(); ++r) {
        rep_head[i * R + r] = static_cast<uint32_t>(ids[chosen[r]]);
        rep_dist[i * R + r] = dists[chosen[r]];
      }
      uint64_t done = assigned.fetch_add(1) + 1;
      if ((done & 8191) == 0 && omp_get_thread_num() == 0) progress("assigning", done, n);
    }
  }
  if (cancelled()) return stopped();
  progress("assigning", n, n);
  for (uint64_t i = 0; i < n; ++i) {
    if (rep_count[i] == 0) {
      return absl::InternalError(absl::StrCat("vector ", i, " found no head"));
    }
  }

  // 3b. Outliers. A vector far out from every head (past kOutlierSpacings times the heads' median
  // spacing) lies where every head is about as far as every other: walks stop among equals, and
  // its query need not meet the posting its own walk chose (a stranger's exact-match query for
  // such a vector missed it at the default budget). It gets a head of its own - or joins one an
  // earlier outlier got, within the same distance - which every walk measures directly
  // (HeadGraph::AppendIsolated). The farthest first, within what most_measured leaves.
  if (outlier_radius > 0) {
    std::vector<std::pair<float, uint64_t>> far;  // (primary distance, vector)
    for (uint64_t i = 0; i < n; ++i) {
      if (outlying(rep_dist[i * R])) far.emplace_back(rep_dist[i * R], i);
    }
    std::sort(far.begin(), far.end(), std::greater<>());
    std::vector<uint8_t> outlier_rows;  // (the graph's form)
    uint64_t outliers = 0, joined = 0, left = 0;
    const uint64_t most = most_measured - std::min(most_measured, graph->isolated());
    std::vector<float> scratch(d);
    for (const auto& [primary, i] : far) {
      if (cancelled()) return stopped();
      const uint8_t* row = row_of(i, scratch.data());
      float nearest = std::numeric_limits<float>::infinity();
      uint64_t at = 0;
      for (uint64_t j = 0; j < outliers; ++j) {
        const float dj = graph->Compare(row, &outlier_rows[j * row_bytes]);
        if (dj < nearest) {
          nearest = dj;
          at = j;
        }
      }
      if (outliers > 0 && !outlying(nearest)) {
        ++joined;
      } else if (outliers < most) {
        outlier_rows.insert(outlier_rows.end(), row, row + row_bytes);
        nearest = graph->Compare(row, row);
        at = outliers++;
      } else {
        ++left;  // (stays where its walk put it, with its replicas)
        continue;
      }
      rep_head[i * R] = static_cast<uint32_t>(H + at);
      rep_dist[i * R] = nearest;
      rep_count[i] = 1;
    }
    if (outliers > 0) {
      graph->AppendIsolated(outlier_rows.data(), outliers);
      H += outliers;
      stats.heads = H;
      stats.outlier_heads = outliers;
    }
    if (outliers + left > 0) {
      Log(LogLevel::kInfo,
          "build: %d outliers (past %.1f, %.1fx the heads' median spacing) got %d heads of their "
          "own%s",
          outliers + joined + left, outlier_radius, internal::kOutlierSpacings, outliers,
          left > 0 ? absl::StrCat("; ", left, " past the most such heads stay in walked postings")
                   : std::string());
    }
  }

  // 4. Postings: gather, cap, write. Entries are [u32 id][vector in the posting encoding], nearest
  // first.
  const size_t entry_bytes = sizeof(VectorId) + internal::EntryVectorBytes(type, encoding, d);
  const uint32_t page_limit = options.posting_page_limit
                                  ? options.posting_page_limit
                                  : internal::DefaultPageLimit(type, encoding);
  const size_t cap = std::max<size_t>(1, page_limit * kPageSize / entry_bytes);
  std::vector<uint64_t> start(H + 1, 0);
  for (uint64_t i = 0; i < n; ++i) {
    for (uint32_t r = 0; r < rep_count[i]; ++r) ++start[rep_head[i * R + r] + 1];
  }
  for (uint64_t h = 0; h < H; ++h) start[h + 1] += start[h];
  struct Item {
    float dist;
    VectorId id;
    bool primary;
  };
  std::vector<Item> items(start[H]);
  {
    std::vector<uint64_t> fill(start.begin(), start.end() - 1);
    for (uint64_t i = 0; i < n; ++i) {
      for (uint32_t r = 0; r < rep_count[i]; ++r) {
        uint32_t h = rep_head[i * R + r];
        items[fill[h]++] = {rep_dist[i * R + r], static_cast<VectorId>(i), r == 0};
      }
    }
  }
  rep_head = {};
  rep_dist = {};
  stats.seconds_assign = SecondsSince(t);

  t = Clock::now();
  PostingFileParams pparams{static_cast<uint32_t>(entry_bytes),
                            internal::PostingTag(type, encoding)};
  ASSIGN_OR_RETURN(
      auto writer,
      PostingFileWriter::Create(env, internal::IndexFilePath(dir, internal::kPostingData),
                                internal::IndexFilePath(dir, internal::kPostingTable), pparams));
  std::vector<uint8_t> buf;
  std::vector<float> scratch(d);
  progress("writing", 0, H);
  for (uint64_t h = 0; h < H; ++h) {
    if (cancelled()) return stopped();
    auto first = items.begin() + static_cast<ptrdiff_t>(start[h]);
    auto last = items.begin() + static_cast<ptrdiff_t>(start[h + 1]);
    // Primaries first (never dropped), then replicas by distance; keep up to the cap.
    std::sort(first, last, [](const Item& a, const Item& b) {
      if (a.primary != b.primary) return a.primary;
      return a.dist < b.dist;
    });
    size_t total = static_cast<size_t>(last - first);
    size_t primaries = std::count_if(first, last, [](const Item& it) { return it.primary; });
    size_t keep = std::max(primaries, std::min(total, cap));
    if (primaries > cap) ++stats.over_limit_postings;
    stats.truncated_replicas += total - keep;
    std::sort(first, first + static_cast<ptrdiff_t>(keep),
              [](const Item& a, const Item& b) { return a.dist < b.dist; });
    buf.resize(keep * entry_bytes);
    for (size_t e = 0; e < keep; ++e) {
      VectorId row = first[static_cast<ptrdiff_t>(e)].id;
      VectorId id = options.ids.empty() ? row : options.ids[row];
      uint8_t* out = buf.data() + e * entry_bytes;
      std::memcpy(out, &id, sizeof id);
      if (encoding == PostingEncoding::kFloat16) {
        const float* v = frows.Row(row, scratch.data());
        for (uint32_t j = 0; j < d; ++j) {
          uint16_t h = FloatToHalf(v[j]);
          std::memcpy(out + sizeof id + 2 * j, &h, 2);
        }
      } else {
        std::memcpy(out + sizeof id, row_of(row, scratch.data()), row_bytes);
      }
    }
    stats.entries += keep;
    stats.max_posting_entries = std::max<uint32_t>(stats.max_posting_entries, keep);
    RETURN_IF_ERROR(writer->Append(buf));
    if ((h & 4095) == 0 || h + 1 == H) progress("writing", h + 1, H);
  }
  RETURN_IF_ERROR(writer->Finish());
  stats.posting_file_bytes = writer->bytes_written();
  RETURN_IF_ERROR(graph->Save(env, internal::IndexFilePath(dir, internal::kHeadsFile)));
  stats.seconds_write = SecondsSince(t);
  if (cancelled()) return stopped();  // (before the manifest: a cancelled index never opens)

  internal::Manifest m;
  m.Set("element_type", ElementTypeName(type));
  m.Set("dim", d);
  m.Set("metric", MetricName(options.metric));
  m.Set("vectors", n);
  m.Set("heads", H);
  m.Set("entry_bytes", entry_bytes);
  m.Set("posting_encoding", PostingEncodingName(encoding));
  m.Set("heads_file", internal::kHeadsFile);
  m.Set("posting_data", internal::kPostingData);
  m.Set("posting_table", internal::kPostingTable);
  m.Set("build.head_share", absl::StrFormat("%g", head_share));
  m.Set("build.max_replicas", options.max_replicas);
  m.Set("build.replica_candidates", options.replica_candidates);
  m.Set("build.rng_factor", absl::StrFormat("%g", options.rng_factor));
  m.Set("build.hnsw_m", static_cast<uint64_t>(options.hnsw_m));
  m.Set("build.posting_page_limit", page_limit);
  m.Set("build.entries", stats.entries);
  m.Set("build.truncated_replicas", stats.truncated_replicas);
  RETURN_IF_ERROR(
      WriteFileAtomic(env, internal::IndexFilePath(dir, internal::kManifestName), m.Serialize()));
  if (options.tune_target_recall > 0) {
    // The default search budget, tuned on the finished index, then recorded in its manifest.
    t = Clock::now();
    progress("tuning search", 0, 1);
    ASSIGN_OR_RETURN(std::unique_ptr<SpannIndex> built, SpannIndex::Open(dir));
    SearchTuneOptions to;
    to.target_recall = options.tune_target_recall;
    to.threads = threads;
    ASSIGN_OR_RETURN(SearchTuneResult tuned, TuneSearch(*built, vectors, options.ids, to));
    built.reset();
    if (cancelled()) {
      // (Its manifest goes: a cancelled index never opens.)
      RETURN_IF_ERROR(env.RemoveFile(internal::IndexFilePath(dir, internal::kManifestName)));
      return stopped();
    }
    m.Set("search.max_postings", tuned.max_postings);
    m.Set("search.tuned_recall", absl::StrFormat("%.4f", tuned.recall));
    m.Set("search.tune_sample", tuned.sample);
    RETURN_IF_ERROR(
        WriteFileAtomic(env, internal::IndexFilePath(dir, internal::kManifestName), m.Serialize()));
    stats.default_max_postings = tuned.max_postings;
    stats.tuned_recall = tuned.recall;
    stats.seconds_tune = SecondsSince(t);
    progress("tuning search", 1, 1);
    Log(tuned.reached ? LogLevel::kInfo : LogLevel::kWarning,
        "build: default search budget %d postings: recall@10 %.3f on %d of the index's own "
        "vectors (target %.2f%s), tuned in %.1f s",
        tuned.max_postings, tuned.recall, tuned.sample, options.tune_target_recall,
        tuned.reached ? "" : ", not reached", stats.seconds_tune);
  }
  Log(LogLevel::kInfo,
      "build: %d entries (%.2f per vector), %d replicas dropped by the %d-page cap, "
      "longest posting %d, %.1f MiB on disk",
      stats.entries, double(stats.entries) / n, stats.truncated_replicas, page_limit,
      stats.max_posting_entries, stats.posting_file_bytes / 1048576.0);
  if (stats_out != nullptr) *stats_out = stats;
  return absl::OkStatus();
}

}  // namespace strata
