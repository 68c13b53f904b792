// strata-tenant-bench: tenants' searches on one collection, side by side in one run, by tenant
// size class (small / medium / large):
//   - Strata's tenant view (Collection::Search in a tenant's Scope: exact over a small view, the
//     shared postings with an access check above it);
//   - the shared Strata index with post-filtering (a whole-collection search for more than k,
//     filtered to the tenant's points);
//   - the shared Strata index with the tenant's access check inside the scan, whatever the
//     tenant's size (SearchParams::use_tenant_extents false);
//   - one index per tenant in RAM (FAISS: exact below 1,000 points, IVF-Flat above);
//   - one Strata collection per tenant (searched exactly below 10,000 points, its disk index
//     above), built for the tenants the queries use.
// Recall@10 is against brute force over the tenant's own points. Also: RAM of each layout, and the
// time of grants and revokes of 1,000 ids (synced writes, five of each). Data: SIFT-like vectors
// with tenants of Zipf-distributed sizes and a sharing knob (mean tenants per vector), MNIST
// with its ten digit labels as tenants (--mnist), or SQuAD v1.1 dev's passages embedded by the
// sentence encoder with their Wikipedia article as the tenant (--squad: 48 tenants; each
// question asked in its own passage's article).
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gpu/encoder.h"
#include "index/catalog.h"
#include "index/collection.h"
#include "nlohmann/json.hpp"
#include "storage/log.h"
#include "storage/program_usage.h"
#include "storage/status_macros.h"
#include "tools/progress.h"
#include "tools/synthetic.h"

ABSL_FLAG(uint64_t, n, 200000, "synthetic: base vectors (SIFT-like, uint8, 128-d)");
ABSL_FLAG(uint32_t, tenants, 1000, "synthetic: tenants");
ABSL_FLAG(double, zipf, 1.0, "synthetic: tenant sizes ~ 1 / rank^zipf");
ABSL_FLAG(double, sharing, 1.2, "synthetic: mean tenants per vector (>= 1)");
ABSL_FLAG(
    std::string, mnist, "",
    "instead: MNIST's t10k files, this prefix + -images-idx3-ubyte.gz / -labels-idx1-ubyte.gz "
    "(tenants: the ten digits)");
ABSL_FLAG(std::string, squad, "",
          "instead: SQuAD's files, this prefix + -passages.jsonl / -questions.jsonl (tenants: the "
          "48 articles; embedded with --model_dir)");
ABSL_FLAG(std::string, model_dir, "models/all-minilm-l6-v2",
          "sentence encoder for --squad (its passages and questions)");
ABSL_FLAG(uint32_t, queries_per_class, 200, "queries per tenant size class");
ABSL_FLAG(uint32_t, k, 10, "neighbours per query");
ABSL_FLAG(uint64_t, small_max, 256, "tenants with at most this many points are 'small'");
ABSL_FLAG(double, medium_max_share, 0.02,
          "tenants with at most this share of the collection are 'medium'; above, 'large'");
ABSL_FLAG(std::string, dir, "", "scratch directory (default: a new one under /tmp)");
ABSL_FLAG(uint64_t, seed, 1, "seed of the tenant assignment and the queries");
ABSL_FLAG(bool, peers_first, false,
          "make the per-tenant peers before loading the shared collection (default: after), so "
          "the first pass finds the shared collection's files the younger ones");
ABSL_FLAG(int, grant_rounds, 5,
          "rounds of the grant / revoke measurement (1,000 ids granted to the largest tenant, "
          "then those it added revoked)");
ABSL_FLAG(
    bool, cold_grants, false,
    "before each grant, drop the table files of the shared catalog's metadata store (DIR/meta) "
    "from the page cache (every stored vector the grant copies is read from the disk)");
ABSL_FLAG(uint32_t, passes, 1,
          "times the same queries run (every way alike); the tables are the last pass's, and a "
          "line per pass gives each pass's figures");

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Reads a gzip'd IDX file (MNIST) whole.
absl::StatusOr<std::string> ReadGz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string out;
  char buf[1 << 16];
  for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

struct Workload {
  VectorSet base, queries;
  std::vector<std::vector<uint32_t>> tenants_of;  // by row
  uint32_t tenant_count = 0;
  std::string name;
  // The tenant each query is asked in (empty: any tenant, drawn at random).
  std::vector<uint32_t> query_tenant;
};

// SQuAD v1.1 dev: each passage is a row, tenant = its article (the "AA" of squad11dev-AA-PPP);
// the first question of each passage is a query, asked in that passage's article.
absl::StatusOr<Workload> Squad(const std::string& prefix, const std::string& model_dir) {
  std::ifstream pf(prefix + "-passages.jsonl"), qf(prefix + "-questions.jsonl");
  if (!pf || !qf) return absl::NotFoundError(absl::StrCat("cannot open ", prefix, "-*.jsonl"));
  Workload w;
  std::vector<std::string> passages, questions;
  absl::flat_hash_map<std::string, uint32_t> row_of, tenant_of_title;
  std::string line;
  while (std::getline(pf, line)) {
    const auto p = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!p.is_object() || !p.contains("id")) continue;  // (a blank or malformed line)
    const std::string title = p.value("title", "");
    auto [it, added] = tenant_of_title.try_emplace(title, tenant_of_title.size());
    row_of[p.value("id", "")] = static_cast<uint32_t>(passages.size());
    passages.push_back(p.value("text", ""));
    w.tenants_of.push_back({it->second});
  }
  absl::flat_hash_set<std::string> asked;
  while (std::getline(qf, line)) {
    const auto q = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!q.is_object()) continue;
    const std::string context = q.value("context_id", "");
    auto it = row_of.find(context);
    if (it == row_of.end() || !asked.insert(context).second) continue;
    questions.push_back(q.value("question", ""));
    w.query_tenant.push_back(w.tenants_of[it->second][0]);
  }
  if (passages.empty() || questions.empty()) return absl::DataLossError("empty SQuAD files");
  ASSIGN_OR_RETURN(std::unique_ptr<gpu::Encoder> encoder, gpu::Encoder::Open(model_dir));
  std::fprintf(stderr, "embedding %zu passages and %zu questions (%s)\n", passages.size(),
               questions.size(), encoder->backend_name().c_str());
  ASSIGN_OR_RETURN(std::vector<float> pv, encoder->Embed(passages));
  ASSIGN_OR_RETURN(std::vector<float> qv, encoder->Embed(questions));
  const auto fill = [&](VectorSet& set, const std::vector<float>& v, uint64_t n) {
    set.type = ElementType::kFloat32;
    set.dim = static_cast<uint32_t>(encoder->dimension());
    set.n = n;
    set.data.resize(v.size() * sizeof(float));
    std::memcpy(set.data.data(), v.data(), set.data.size());
  };
  fill(w.base, pv, passages.size());
  fill(w.queries, qv, questions.size());
  w.tenant_count = static_cast<uint32_t>(tenant_of_title.size());
  w.name = absl::StrCat("SQuAD v1.1 dev passages (", w.base.dim, "-d float32, ",
                        encoder->backend_name(), "), tenants = the ", w.tenant_count, " articles");
  return w;
}

absl::StatusOr<Workload> Mnist(const std::string& prefix) {
  ASSIGN_OR_RETURN(std::string images, ReadGz(prefix + "-images-idx3-ubyte.gz"));
  ASSIGN_OR_RETURN(std::string labels, ReadGz(prefix + "-labels-idx1-ubyte.gz"));
  if (images.size() < 16 || labels.size() < 8) return absl::DataLossError("short MNIST files");
  const uint64_t n =
      (uint64_t{static_cast<uint8_t>(images[6])} << 8) | static_cast<uint8_t>(images[7]);
  const uint32_t dim = 28 * 28;
  if (images.size() != 16 + n * dim || labels.size() != 8 + n) {
    return absl::DataLossError("MNIST files of unexpected sizes");
  }
  // The last 500 images are the queries; each query searches every digit's tenant.
  const uint64_t nq = 500, nb = n - nq;
  Workload w;
  w.name = "MNIST t10k (784-d uint8), tenants = the 10 digits";
  w.base.type = w.queries.type = ElementType::kUint8;
  w.base.dim = w.queries.dim = dim;
  w.base.n = nb;
  w.queries.n = nq;
  w.base.data.assign(images.begin() + 16, images.begin() + 16 + static_cast<ptrdiff_t>(nb * dim));
  w.queries.data.assign(images.begin() + 16 + static_cast<ptrdiff_t>(nb * dim), images.end());
  w.tenant_count = 10;
  for (uint64_t i = 0; i < nb; ++i) {
    w.tenants_of.push_back({static_cast<uint32_t>(static_cast<uint8_t>(labels[8 + i]))});
  }
  return w;
}

Workload Synthetic() {
  SyntheticOptions o;
  o.seed = 7;
  auto g = SyntheticGenerator::Create(o);
  Workload w;
  const uint64_t n = absl::GetFlag(FLAGS_n);
  w.base = g->Generate(0, n);
  w.queries = g->Generate(n, 1000);
  w.tenant_count = absl::GetFlag(FLAGS_tenants);
  const double sharing = std::max(1.0, absl::GetFlag(FLAGS_sharing));
  w.name = absl::StrCat("SIFT-like ", n, " (128-d uint8), ", w.tenant_count,
                        " tenants of Zipf sizes (s = ", absl::GetFlag(FLAGS_zipf), "), ", sharing,
                        " tenants per vector on average");
  std::vector<double> weight(w.tenant_count);
  for (uint32_t t = 0; t < w.tenant_count; ++t) {
    weight[t] = 1.0 / std::pow(t + 1.0, absl::GetFlag(FLAGS_zipf));
  }
  std::discrete_distribution<uint32_t> pick(weight.begin(), weight.end());
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::uniform_real_distribution<double> u(0, 1);
  const double extra = sharing - 1;
  w.tenants_of.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::set<uint32_t> ts = {pick(rng)};
    uint32_t more = static_cast<uint32_t>(extra) + (u(rng) < extra - std::floor(extra) ? 1 : 0);
    for (uint32_t j = 0; j < more; ++j) ts.insert(pick(rng));
    w.tenants_of[i].assign(ts.begin(), ts.end());
  }
  return w;
}

// The share of the tenant extents' files under `dir` that is in the page cache (mincore): the
// first pass's reads of pages the kernel let go since the load wrote them go to the disk.
double ExtentsResident(const std::string& dir) {
  uint64_t pages = 0, resident = 0;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::filesystem::directory_entry& e = *it;
    std::error_code file_ec;
    if (!e.is_regular_file(file_ec) ||
        !e.path().filename().string().starts_with("tenant-extents-")) {
      continue;
    }
    const uint64_t size = e.file_size(file_ec);
    if (file_ec) continue;  // (gone since: a compaction's old file)
    const int fd = open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (size > 0) {
      void* m = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED) {
        std::vector<unsigned char> in((size + 4095) / 4096);
        if (mincore(m, size, in.data()) == 0) {
          pages += in.size();
          for (unsigned char c : in) resident += c & 1;
        }
        munmap(m, size);
      }
    }
    close(fd);
  }
  return pages == 0 ? 0 : static_cast<double>(resident) / static_cast<double>(pages);
}

// Asks the kernel to drop the RocksDB table files under `dir` from the page cache (they are
// clean: written once and synced).
void DropTablesFromPageCache(const std::string& dir) {
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code file_ec;
    if (!it->is_regular_file(file_ec) || it->path().extension() != ".sst") continue;
    const int fd = open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // (gone since: a compaction's old file)
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

// Component j of a stored row of `type` (uint8 or float32).
float At(ElementType type, const uint8_t* row, uint32_t j) {
  if (type == ElementType::kUint8) return static_cast<float>(row[j]);
  float x;
  std::memcpy(&x, row + j * sizeof(float), sizeof x);
  return x;
}

float L2(ElementType type, const uint8_t* a, const uint8_t* b, uint32_t dim) {
  float d = 0;
  for (uint32_t j = 0; j < dim; ++j) {
    const float x = At(type, a, j) - At(type, b, j);
    d += x * x;
  }
  return d;
}

struct Result {
  double recall = 0, ms = 0, kib = 0;
  uint64_t queries = 0;
  std::vector<double> times;  // ms, one per query
  void Add(double r, double t, double bytes) {
    recall += r;
    ms += t;
    kib += bytes / 1024;
    ++queries;
    times.push_back(t);
  }
  // The latency a share `q` of the queries stayed within (0.5: the median).
  double Quantile(double q) const {
    if (times.empty()) return 0;
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))];
  }
  std::string Row() const {
    if (queries == 0) return "— | — | —";
    return absl::StrFormat("%.3f | %.3f | %.0f", recall / queries, ms / queries, kib / queries);
  }
};

int Run() {
  absl::StatusOr<Workload> loaded =
      !absl::GetFlag(FLAGS_squad).empty()
          ? Squad(absl::GetFlag(FLAGS_squad), absl::GetFlag(FLAGS_model_dir))
      : !absl::GetFlag(FLAGS_mnist).empty() ? Mnist(absl::GetFlag(FLAGS_mnist))
                                            : Synthetic();
  if (!loaded.ok()) {
    std::fprintf(stderr, "strata-tenant-bench: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  Workload& w = *loaded;
  const uint64_t n = w.base.n;
  const uint32_t dim = w.base.dim, k = absl::GetFlag(FLAGS_k);
  std::vector<std::vector<uint64_t>> members(w.tenant_count);
  for (uint64_t i = 0; i < n; ++i) {
    for (uint32_t t : w.tenants_of[i]) members[t].push_back(i);
  }
  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    char tmpl[] = "/tmp/strata-tenant-bench-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  auto cat = Catalog::Open(dir);
  if (!cat.ok()) {
    std::fprintf(stderr, "strata-tenant-bench: %s\n", cat.status().ToString().c_str());
    return 1;
  }
  CollectionConfig c;
  c.name = "bench";
  c.dim = dim;
  c.type = w.base.type;
  c.build_threshold = UINT64_MAX;
  auto col = *(*cat)->Create(c);
  std::vector<std::string> names(w.tenant_count);
  for (uint32_t t = 0; t < w.tenant_count; ++t) {
    names[t] = absl::StrCat("t", t);
    if (!col->CreateTenant(names[t]).ok()) return 1;
  }
  // The shared collection: loaded and built here, or (--peers_first) after the peers are made, so
  // that its files are the younger ones when the first pass starts.
  double load_s = 0, build_s = 0;
  CollectionStats st;
  const auto load_shared = [&]() -> absl::Status {
    const auto t_load = Clock::now();
    ProgressBar bar("loading", n, "vectors");
    std::vector<std::vector<std::string>> row_names;
    for (uint64_t first = 0; first < n; first += 5000) {
      const uint64_t end = std::min<uint64_t>(n, first + 5000);
      row_names.assign(end - first, {});
      std::vector<PointInput> rows;
      for (uint64_t i = first; i < end; ++i) {
        for (uint32_t t : w.tenants_of[i]) row_names[i - first].push_back(names[t]);
        PointInput p{i, {w.base.row(i), w.base.row_bytes()}, {}};
        p.tenants = row_names[i - first];
        p.set_tenants = true;
        rows.push_back(p);
      }
      std::vector<RowError> errors;
      uint64_t upserted = 0;
      RETURN_IF_ERROR(col->Upsert(rows, &errors, &upserted));
      if (!errors.empty()) return absl::InternalError(errors[0].message);
      bar.Update(end);
    }
    load_s = Ms(t_load, Clock::now()) / 1000;
    const auto t_build = Clock::now();
    RETURN_IF_ERROR(col->BuildIndex());
    build_s = Ms(t_build, Clock::now()) / 1000;
    st = col->Stats();
    return absl::OkStatus();
  };
  const bool peers_first = absl::GetFlag(FLAGS_peers_first);
  if (!peers_first) {
    if (absl::Status s = load_shared(); !s.ok()) {
      std::fprintf(stderr, "strata-tenant-bench: loading the shared collection: %s\n",
                   s.ToString().c_str());
      return 1;
    }
  }

  // Size classes, and queries: a random tenant of the class with a random query vector.
  const uint64_t small_max = absl::GetFlag(FLAGS_small_max);
  const double medium_max = absl::GetFlag(FLAGS_medium_max_share) * static_cast<double>(n);
  auto class_of = [&](uint32_t t) {
    const double s = static_cast<double>(members[t].size());
    return s <= small_max ? 0 : s <= medium_max ? 1 : 2;
  };
  const char* kClassName[3] = {"small", "medium", "large"};
  std::vector<uint32_t> by_class[3];
  for (uint32_t t = 0; t < w.tenant_count; ++t) {
    if (members[t].size() >= k) by_class[class_of(t)].push_back(t);
  }
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed) + 1);

  // Per-tenant FAISS indexes, built for the tenants the queries use (RAM: of all tenants).
  std::map<uint32_t, std::unique_ptr<faiss::Index>> per_tenant;
  double per_tenant_bytes = 0;
  for (uint32_t t = 0; t < w.tenant_count; ++t) {
    const double s = static_cast<double>(members[t].size());
    const double nlist = s < 1000 ? 0 : std::round(std::sqrt(s));
    per_tenant_bytes += s * (dim * 4.0 + 8) + nlist * dim * 4.0;
  }
  auto faiss_index = [&](uint32_t t) -> faiss::Index* {
    auto it = per_tenant.find(t);
    if (it != per_tenant.end()) return it->second.get();
    const std::vector<uint64_t>& ids = members[t];
    std::vector<float> x(ids.size() * dim);
    for (size_t i = 0; i < ids.size(); ++i) {
      for (uint32_t j = 0; j < dim; ++j) x[i * dim + j] = At(w.base.type, w.base.row(ids[i]), j);
    }
    std::unique_ptr<faiss::Index> index;
    if (ids.size() < 1000) {
      index = std::make_unique<faiss::IndexFlatL2>(dim);
    } else {
      const size_t nlist = static_cast<size_t>(std::round(std::sqrt(ids.size())));
      auto* quantizer = new faiss::IndexFlatL2(dim);
      auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer, dim, nlist);
      ivf->own_fields = true;
      ivf->train(static_cast<faiss::Index::idx_t>(ids.size()), x.data());
      ivf->nprobe = std::max<size_t>(1, nlist / 8);
      index = std::move(ivf);
    }
    index->add(static_cast<faiss::Index::idx_t>(ids.size()), x.data());
    return (per_tenant[t] = std::move(index)).get();
  };

  // Per-tenant Strata collections, made for the tenants the queries use, in a catalog (and
  // metadata store) of their own, as separate deployments would be.
  auto own_cat = Catalog::Open(dir + "/per-tenant");
  if (!own_cat.ok()) {
    std::fprintf(stderr, "strata-tenant-bench: %s\n", own_cat.status().ToString().c_str());
    return 1;
  }
  std::map<uint32_t, std::shared_ptr<Collection>> own;
  auto own_collection = [&](uint32_t t) -> absl::StatusOr<Collection*> {
    auto it = own.find(t);
    if (it != own.end()) return it->second.get();
    CollectionConfig oc;
    oc.name = absl::StrCat("own", t);
    oc.dim = dim;
    oc.type = w.base.type;
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> made, (*own_cat)->Create(oc));
    const std::vector<uint64_t>& ids = members[t];
    for (size_t first = 0; first < ids.size(); first += 5000) {
      std::vector<PointInput> rows;
      for (size_t i = first; i < std::min(ids.size(), first + 5000); ++i) {
        rows.push_back({ids[i], {w.base.row(ids[i]), w.base.row_bytes()}, {}});
      }
      std::vector<RowError> errors;
      uint64_t upserted = 0;
      RETURN_IF_ERROR(made->Upsert(rows, &errors, &upserted));
    }
    if (made->WantsBuild()) RETURN_IF_ERROR(made->BuildIndex());
    return (own[t] = std::move(made)).get();
  };

  Result strata[3], post[3], in_scan[3], faiss_r[3], own_r[3];
  // Each pass's figures, per class: Strata, per-tenant FAISS, per-tenant Strata.
  std::vector<std::array<std::array<Result, 3>, 3>> pass_results;
  // Strata's queries again, by the tenant's path: a flat extent (searched exactly from it), a cell
  // extent (the cells nearest the query), or neither (the shared postings).
  const size_t extent_rows = TenantExtents::MaxRows(w.base.row_bytes(), kTenantExtentBytes);
  const size_t cell_rows =
      CellExtents(0, w.base.row_bytes(), extent_rows, kCellExtentBytes).max_rows();
  // [path][class]: flat extent, cell extent, shared postings.
  Result by_path[3][3];
  const auto path_of = [&](size_t points) {
    return points <= extent_rows ? 0 : points <= cell_rows ? 1 : 2;
  };
  const uint32_t per_class = absl::GetFlag(FLAGS_queries_per_class);
  // The queries of each class: a random tenant of the class and a random query vector, or (where
  // the workload pairs them) a random query of a tenant of the class, in its tenant.
  std::vector<std::pair<uint32_t, const uint8_t*>> queries_of[3];  // tenant, vector
  for (int cls = 0; cls < 3; ++cls) {
    if (by_class[cls].empty()) continue;
    std::vector<uint64_t> paired;  // queries asked in a tenant of the class
    for (uint64_t qi = 0; qi < w.query_tenant.size(); ++qi) {
      const uint32_t t = w.query_tenant[qi];
      if (members[t].size() >= k && class_of(t) == cls) paired.push_back(qi);
    }
    if (!w.query_tenant.empty() && paired.empty()) continue;
    for (uint32_t qi = 0; qi < per_class; ++qi) {
      if (w.query_tenant.empty()) {
        const uint32_t t = by_class[cls][rng() % by_class[cls].size()];
        queries_of[cls].emplace_back(t, w.queries.row(rng() % w.queries.n));
      } else {
        const uint64_t q = paired[rng() % paired.size()];
        queries_of[cls].emplace_back(w.query_tenant[q], w.queries.row(q));
      }
    }
  }
  {
    // Every peer the queries use is made first, then both metadata stores settle: no way is timed
    // beside another's loading, flushes or compactions.
    size_t made = 0;
    int classes = 0;
    for (int cls = 0; cls < 3; ++cls) classes += !queries_of[cls].empty();
    ProgressBar bar("per-tenant indexes", uint64_t{per_class} * classes, "queries' tenants");
    for (int cls = 0; cls < 3; ++cls) {
      for (const auto& [t, q] : queries_of[cls]) {
        faiss_index(t);
        if (absl::StatusOr<Collection*> oc = own_collection(t); !oc.ok()) {
          std::fprintf(stderr, "per-tenant collection: %s\n", oc.status().ToString().c_str());
          return 1;
        }
        bar.Update(++made);
      }
    }
    if (peers_first) {
      if (absl::Status s = load_shared(); !s.ok()) {
        std::fprintf(stderr, "strata-tenant-bench: loading the shared collection: %s\n",
                     s.ToString().c_str());
        return 1;
      }
    }
    for (Catalog* c : {cat->get(), own_cat->get()}) {
      if (absl::Status s = c->store()->Settle(); !s.ok()) {
        std::fprintf(stderr, "settle: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }
  // The same queries for each way, in blocks of kBlock: each way runs a block in turn, so that one
  // way's reads (the post-filter's thousands of postings) do not empty the caches the next one
  // reads from query by query, while the machine's noise (these machines are shared) spreads
  // over every way alike rather than falling on the one it happens to meet.
  // A later pass finds in the page cache and the CPU caches what the first one read: it tells a
  // way's cost on data it reads often from its cost on data it has not read for a while.
  constexpr uint32_t kBlock = 20;
  const uint32_t passes = std::max<uint32_t>(1, absl::GetFlag(FLAGS_passes));
  std::vector<double> resident_before;  // per pass
  // The ways `ways` over every class's queries, block by block (false: a search failed).
  const auto run_ways = [&](std::initializer_list<int> ways) -> bool {
    for (int cls = 0; cls < 3; ++cls) {
      if (queries_of[cls].empty()) continue;
      const std::vector<std::pair<uint32_t, const uint8_t*>>& queries = queries_of[cls];
      for (uint32_t first = 0; first < per_class; first += kBlock) {
        for (int way : ways) {
          for (uint32_t qi = first; qi < std::min(per_class, first + kBlock); ++qi) {
            const auto [t, q] = queries[qi];
            const std::vector<uint64_t>& ids = members[t];
            std::vector<std::pair<float, uint64_t>> exact;
            exact.reserve(ids.size());
            for (uint64_t id : ids) {
              exact.push_back({L2(w.base.type, q, w.base.row(id), dim), id});
            }
            std::partial_sort(exact.begin(), exact.begin() + k, exact.end());
            std::set<uint64_t> truth;
            for (uint32_t i = 0; i < k; ++i) truth.insert(exact[i].second);
            auto recall = [&](const std::vector<uint64_t>& got) {
              double r = 0;
              for (uint64_t id : got) r += truth.count(id);
              return r / k;
            };
            const VectorView view{w.base.type, {q, w.base.row_bytes()}};
            if (way == 0) {  // Strata, the tenant's view.
              std::vector<Hit> hits;
              SearchStats ss;
              const auto t0 = Clock::now();
              if (!col->Search(Scope{names[t]}, view, k, {}, &hits, &ss).ok()) return false;
              const double ms = Ms(t0, Clock::now());
              std::vector<uint64_t> got;
              for (const Hit& h : hits) got.push_back(h.id);
              strata[cls].Add(recall(got), ms, ss.bytes_read);
              by_path[path_of(ids.size())][cls].Add(recall(got), ms, ss.bytes_read);
            }
            if (way == 1) {  // Shared index, post-filtered: fetch enough for k of the tenant's
                             // points on average.
              const double share = static_cast<double>(ids.size()) / static_cast<double>(n);
              const uint32_t fetch =
                  static_cast<uint32_t>(std::min<double>(10000, std::ceil(2.0 * k / share)));
              std::vector<Hit> hits;
              SearchStats ss;
              const auto t0 = Clock::now();
              if (!col->Search(view, std::max(fetch, k), {}, &hits, &ss).ok()) return false;
              std::vector<uint64_t> got;
              for (const Hit& h : hits) {
                if (got.size() == k) break;
                if (std::binary_search(ids.begin(), ids.end(), h.id)) got.push_back(h.id);
              }
              const double ms = Ms(t0, Clock::now());
              post[cls].Add(recall(got), ms, ss.bytes_read);
            }
            if (way == 2) {  // One FAISS index per tenant.
              faiss::Index* index = faiss_index(t);
              std::vector<float> qf(dim);
              for (uint32_t j = 0; j < dim; ++j) qf[j] = At(w.base.type, q, j);
              std::vector<float> d(k);
              std::vector<faiss::Index::idx_t> l(k);
              const auto t0 = Clock::now();
              index->search(1, qf.data(), k, d.data(), l.data());
              const double ms = Ms(t0, Clock::now());
              std::vector<uint64_t> got;
              for (faiss::Index::idx_t x : l) {
                if (x >= 0) got.push_back(ids[static_cast<size_t>(x)]);
              }
              faiss_r[cls].Add(recall(got), ms, 0);
            }
            if (way == 4) {  // Shared index, the tenant's access check inside the scan.
              SearchParams scan;
              scan.use_tenant_extents = false;
              std::vector<Hit> hits;
              SearchStats ss;
              const auto t0 = Clock::now();
              if (!col->Search(Scope{names[t]}, view, k, scan, &hits, &ss).ok()) return false;
              const double ms = Ms(t0, Clock::now());
              std::vector<uint64_t> got;
              for (const Hit& h : hits) got.push_back(h.id);
              in_scan[cls].Add(recall(got), ms, ss.bytes_read);
            }
            if (way == 3) {  // The tenant's own Strata collection.
              absl::StatusOr<Collection*> oc = own_collection(t);
              if (!oc.ok()) {
                std::fprintf(stderr, "per-tenant collection: %s\n", oc.status().ToString().c_str());
                return false;
              }
              std::vector<Hit> hits;
              SearchStats ss;
              const auto t0 = Clock::now();
              if (!(*oc)->Search(view, k, {}, &hits, &ss).ok()) return false;
              const double ms = Ms(t0, Clock::now());
              std::vector<uint64_t> got;
              for (const Hit& h : hits) got.push_back(h.id);
              own_r[cls].Add(recall(got), ms, ss.bytes_read);
            }
          }
        }
      }
    }
    return true;
  };
  for (uint32_t pass = 0; pass < passes; ++pass) {
    resident_before.push_back(ExtentsResident(dir + "/collections"));
    for (Result* r : {strata, post, faiss_r, own_r}) std::fill(r, r + 3, Result{});
    for (Result(&r)[3] : by_path) std::fill(r, r + 3, Result{});
    if (!run_ways({0, 1, 2, 3})) return 1;
    pass_results.push_back({});
    for (int cls = 0; cls < 3; ++cls) {
      pass_results.back()[cls] = {strata[cls], faiss_r[cls], own_r[cls]};
    }
  }

  // Grant 1,000 random ids to the largest tenant and revoke those the grant added (synced
  // batches), a few times, each round leaving the tenant as it found it: one synced write's time
  // is as noisy as the disk's flushes.
  const int grant_rounds = std::max(1, absl::GetFlag(FLAGS_grant_rounds));
  const uint32_t largest = static_cast<uint32_t>(
      std::max_element(members.begin(), members.end(),
                       [](const auto& a, const auto& b) { return a.size() < b.size(); }) -
      members.begin());
  Result grants, revokes;
  uint64_t granted = 0;
  for (int round = 0; round < grant_rounds; ++round) {
    std::vector<uint64_t> grant_ids, added;
    for (uint32_t i = 0; i < 1000; ++i) {
      grant_ids.push_back(rng() % n);
      if (!std::binary_search(members[largest].begin(), members[largest].end(), grant_ids.back())) {
        added.push_back(grant_ids.back());
      }
    }
    uint64_t changed = 0;
    std::vector<uint64_t> missing;
    if (absl::GetFlag(FLAGS_cold_grants)) DropTablesFromPageCache(dir + "/meta");
    auto t0 = Clock::now();
    if (!col->Grant(names[largest], grant_ids, &changed, &missing).ok()) return 1;
    grants.Add(0, Ms(t0, Clock::now()), 0);
    granted += changed;
    t0 = Clock::now();
    if (!col->Revoke(names[largest], added, &changed).ok()) return 1;
    revokes.Add(0, Ms(t0, Clock::now()), 0);
  }

  // The shared index filtered inside the scan, in a pass of its own after the others and the
  // grants: its reads (tens of MB for a small tenant's query) would empty the caches the other
  // ways read from.
  if (!run_ways({4})) return 1;

  const double shared_mb = static_cast<double>(st.memory_bytes - st.tenant_memory_bytes) / 1048576;
  std::printf("\n%s; %llu vectors, loaded in %.1f s, index built in %.1f s\n\n", w.name.c_str(),
              static_cast<unsigned long long>(n), load_s, build_s);
  std::printf(
      "Recall@%u, mean latency (ms) and KiB read per query (postings, or the stored "
      "vectors of an exact search); 'in-scan filter' is the shared index searched with the "
      "tenant's access check inside the scan, whatever its size (in a pass of its own, after the "
      "others and the grants):\n\n",
      k);
  std::printf(
      "| class | tenants | points each | Strata tenant view | ms | KiB | shared + "
      "post-filter | ms | KiB | shared + in-scan filter | ms | KiB | per-tenant FAISS | ms | KiB | "
      "per-tenant Strata | ms | KiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int cls = 0; cls < 3; ++cls) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint32_t t : by_class[cls]) {
      lo = std::min<uint64_t>(lo, members[t].size());
      hi = std::max<uint64_t>(hi, members[t].size());
    }
    std::printf("| %s | %zu | %s | %s | %s | %s | %s | %s |\n", kClassName[cls],
                by_class[cls].size(),
                by_class[cls].empty() ? "—" : absl::StrCat(lo, "–", hi).c_str(),
                strata[cls].Row().c_str(), post[cls].Row().c_str(), in_scan[cls].Row().c_str(),
                faiss_r[cls].Row().c_str(), own_r[cls].Row().c_str());
  }
  // The mean hides what kind of slow a way is: a few queries that wait on the disk (a page the
  // page cache let go) or on the machine, or all of them.
  std::printf("\nmedian / p90 ms: ");
  for (int cls = 0; cls < 3; ++cls) {
    if (queries_of[cls].empty()) continue;
    std::printf(
        "%s: Strata %.3f / %.3f, post-filter %.3f / %.3f, in-scan filter %.3f / %.3f, FAISS "
        "%.3f / %.3f, per-tenant Strata %.3f / %.3f; ",
        kClassName[cls], strata[cls].Quantile(0.5), strata[cls].Quantile(0.9),
        post[cls].Quantile(0.5), post[cls].Quantile(0.9), in_scan[cls].Quantile(0.5),
        in_scan[cls].Quantile(0.9), faiss_r[cls].Quantile(0.5), faiss_r[cls].Quantile(0.9),
        own_r[cls].Quantile(0.5), own_r[cls].Quantile(0.9));
  }
  std::printf("\n");
  if (passes > 1) {
    std::printf(
        "\nby pass, mean / median / p90 ms (Strata | per-tenant FAISS | per-tenant Strata):\n");
    for (size_t p = 0; p < pass_results.size(); ++p) {
      std::printf("pass %zu (%.1f%% of the extents' file in the page cache before it):", p + 1,
                  100 * resident_before[p]);
      for (int cls = 0; cls < 3; ++cls) {
        if (queries_of[cls].empty()) continue;
        std::printf(" %s:", kClassName[cls]);
        for (const Result& r : pass_results[p][cls]) {
          std::printf("%s %.3f / %.3f / %.3f", &r == &pass_results[p][cls][0] ? "" : " |",
                      r.queries == 0 ? 0.0 : r.ms / r.queries, r.Quantile(0.5), r.Quantile(0.9));
        }
        std::printf(";");
      }
      std::printf("\n");
    }
  }
  std::printf(
      "\nRAM: shared index %.1f MiB; tenant access lists %.1f MiB (x%.3f of the shared "
      "index); per-tenant indexes of every tenant %.1f MiB (float32 vectors, as FAISS "
      "keeps them)\n",
      shared_mb, st.tenant_memory_bytes / 1048576.0,
      static_cast<double>(st.memory_bytes) / (st.memory_bytes - st.tenant_memory_bytes),
      per_tenant_bytes / 1048576);
  std::printf("disk: %.1f MiB of postings\n", st.disk_bytes / 1048576.0);
  static constexpr const char* kPathName[3] = {"flat extents", "cell extents", "shared postings"};
  for (int cls = 0; cls < 3; ++cls) {
    int paths = 0;
    for (int p = 0; p < 3; ++p) paths += by_path[p][cls].queries > 0;
    if (paths < 2) continue;
    std::printf("%s by path (recall | ms | KiB):", kClassName[cls]);
    for (int p = 0; p < 3; ++p) {
      if (by_path[p][cls].queries == 0) continue;
      std::printf(" %s %s over %llu queries;", kPathName[p], by_path[p][cls].Row().c_str(),
                  static_cast<unsigned long long>(by_path[p][cls].queries));
    }
    std::printf("\n");
  }
  {
    // The copies: every tenant small enough for a flat extent holds its rows there; the next,
    // up to the cell extents' size, in a cell extent.
    uint64_t tenants[2] = {0, 0}, rows[2] = {0, 0};
    for (const std::vector<uint64_t>& m : members) {
      if (m.empty()) continue;
      const int p = path_of(m.size());
      if (p == 2) continue;
      ++tenants[p];
      rows[p] += m.size();
    }
    std::printf(
        "copies: flat extents of %llu tenants of at most %zu points, %.1f MiB; cell extents of "
        "%llu tenants of at most %zu points, %.1f MiB\n",
        static_cast<unsigned long long>(tenants[0]), extent_rows,
        static_cast<double>(rows[0] * (4 + w.base.row_bytes())) / 1048576,
        static_cast<unsigned long long>(tenants[1]), cell_rows,
        static_cast<double>(rows[1] * (4 + w.base.row_bytes())) / 1048576);
  }
  std::printf(
      "grant of 1,000 ids to the largest tenant (%llu new on average), %d rounds%s: median %.1f "
      "ms, "
      "p90 %.1f, max %.1f; revoke of the ids it added: median %.1f ms, p90 %.1f, max %.1f\n",
      static_cast<unsigned long long>(granted / grant_rounds), grant_rounds,
      absl::GetFlag(FLAGS_cold_grants) ? " (table files out of the page cache)" : "",
      grants.Quantile(0.5), grants.Quantile(0.9), grants.Quantile(1.0), revokes.Quantile(0.5),
      revokes.Quantile(0.9), revokes.Quantile(1.0));
  // Closed before their files go: a metadata store removed under it fails its background work.
  own.clear();
  col.reset();
  own_cat->reset();
  cat->reset();
  std::error_code ec;
  if (absl::GetFlag(FLAGS_dir).empty()) std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Tenants' searches on one collection, side by side: Strata's tenant view, the shared index "
      "with post-filtering, and one FAISS index per tenant, by tenant size class.\n\n"
      "  strata-tenant-bench [--n=200000 --tenants=1000 --zipf=1 --sharing=1.2]\n"
      "  strata-tenant-bench --mnist=../shared/data/mnist-t10k\n"
      "  strata-tenant-bench --squad=../shared/data/squad-v1.1-dev\n");
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
