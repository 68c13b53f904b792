#include "index/tenant_cells.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "index/clustering.h"
#include "storage/metadata_store.h"
#include "storage/vector_types.h"

namespace strata {
namespace {

constexpr uint32_t kFormat = 1;

// A float centroid in the posting form of `type` (rounded and clamped for the integer types).
void ToForm(const float* c, ElementType type, uint32_t dim, bool normalise, uint8_t* out) {
  std::vector<float> v(c, c + dim);
  if (normalise) {
    double norm = 0;
    for (float x : v) norm += double{x} * x;
    if (norm > 0) {
      const float inv = static_cast<float>(1.0 / std::sqrt(norm));
      for (float& x : v) x *= inv;
    }
  }
  switch (type) {
    case ElementType::kFloat32:
      std::memcpy(out, v.data(), dim * sizeof(float));
      return;
    case ElementType::kUint8:
      for (uint32_t d = 0; d < dim; ++d) {
        out[d] = static_cast<uint8_t>(std::clamp(std::lround(v[d]), 0L, 255L));
      }
      return;
    case ElementType::kInt8:
      for (uint32_t d = 0; d < dim; ++d) {
        out[d] =
            static_cast<uint8_t>(static_cast<int8_t>(std::clamp(std::lround(v[d]), -128L, 127L)));
      }
      return;
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TenantCells>> TenantCells::Make(const uint8_t* rows, size_t n,
                                                                     ElementType type, uint32_t dim,
                                                                     Metric metric,
                                                                     kernels::DistanceFn dist,
                                                                     uint32_t cells) {
  if (cells == 0 || n < cells || dim == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tenant cells: ", cells, " cells need as many vectors (got ", n, ")"));
  }
  const size_t row_bytes = size_t{dim} * ElementSize(type);
  // Posting-form rows are unit length already under cosine; the k-means runs under L2 on them
  // (as the heads' clustering does).
  const FloatRows floats(rows, type, dim, /*normalise=*/false);
  std::vector<VectorId> ids(n);
  std::iota(ids.begin(), ids.end(), VectorId{0});
  ClusteringOptions options;
  options.threads = 1;  // deterministic, and it runs inside one write
  options.sample_per_cluster = static_cast<uint32_t>(kSamplePerCell);
  std::vector<uint32_t> assign;
  std::vector<float> centroids;
  BalancedKMeans(floats, ids, cells, options, options.seed, &assign, &centroids);
  std::vector<uint8_t> form(size_t{cells} * row_bytes);
  for (uint32_t c = 0; c < cells; ++c) {
    ToForm(centroids.data() + size_t{c} * dim, type, dim, metric == Metric::kCosine,
           form.data() + c * row_bytes);
  }
  const TenantCells made(cells, row_bytes, dim, dist, form, cells);
  const uint32_t probe = made.TuneProbe(rows, n);
  return std::shared_ptr<const TenantCells>(
      new TenantCells(cells, row_bytes, dim, dist, std::move(form), probe));
}

uint32_t TenantCells::TuneProbe(const uint8_t* rows, size_t n) const {
  // Queries: rows of the sample, each against the others (the sample is as sparse in the
  // collection as a tenant of its size is).
  const size_t queries = std::min<size_t>(kTuneQueries, n / 2);
  const size_t k = std::min<size_t>(10, n - 1);
  std::vector<uint32_t> cell_of(n);
  for (size_t i = 0; i < n; ++i) cell_of[i] = CellOf(rows + i * row_bytes_);
  // For each true neighbour, the rank of its cell among the query's: it is read when more cells
  // than that are.
  std::vector<uint32_t> ranks;
  std::vector<uint32_t> order, rank_of(cells_);
  std::vector<std::pair<float, size_t>> by;
  for (size_t qi = 0; qi < queries; ++qi) {
    const size_t q = qi * n / queries;
    const uint8_t* qv = rows + q * row_bytes_;
    by.clear();
    for (size_t i = 0; i < n; ++i) {
      if (i != q) by.emplace_back(dist_(qv, rows + i * row_bytes_, dim_), i);
    }
    std::partial_sort(by.begin(), by.begin() + static_cast<ptrdiff_t>(k), by.end());
    Rank(qv, &order);
    for (uint32_t r = 0; r < cells_; ++r) rank_of[order[r]] = r;
    for (size_t j = 0; j < k; ++j) ranks.push_back(rank_of[cell_of[by[j].second]]);
  }
  if (ranks.empty()) return cells_;
  std::sort(ranks.begin(), ranks.end());
  const size_t at = static_cast<size_t>(kTuneRecall * static_cast<double>(ranks.size()));
  const uint32_t probe = ranks[std::min(at, ranks.size() - 1)] + 1;
  return std::clamp<uint32_t>(probe, std::min(kMinProbe, cells_), cells_);
}

absl::StatusOr<std::shared_ptr<const TenantCells>> TenantCells::Decode(absl::string_view record,
                                                                       ElementType type,
                                                                       uint32_t dim,
                                                                       kernels::DistanceFn dist) {
  const size_t row_bytes = size_t{dim} * ElementSize(type);
  if (record.size() < 16 || ReadU32(record, 0) != kFormat) {
    return absl::DataLossError("the tenant cells record is malformed or of an unknown format");
  }
  const uint32_t cells = ReadU32(record, 4);
  const uint32_t probe = ReadU32(record, 12);
  if (ReadU32(record, 8) != row_bytes || cells == 0 || probe == 0 || probe > cells ||
      record.size() != 16 + size_t{cells} * row_bytes) {
    return absl::DataLossError(absl::StrCat(
        "the tenant cells record holds ", cells, " cells of ", ReadU32(record, 8),
        " bytes in a record of ", record.size(), " bytes; this collection's rows are ", row_bytes));
  }
  std::vector<uint8_t> centroids(record.begin() + 16, record.end());
  return std::shared_ptr<const TenantCells>(
      new TenantCells(cells, row_bytes, dim, dist, std::move(centroids), probe));
}

std::string TenantCells::Encode() const {
  std::string out;
  AppendU32(&out, kFormat);
  AppendU32(&out, cells_);
  AppendU32(&out, static_cast<uint32_t>(row_bytes_));
  AppendU32(&out, probe_cells_);
  out.append(reinterpret_cast<const char*>(centroids_.data()), centroids_.size());
  return out;
}

std::string TenantCells::Key(uint32_t coll) {
  std::string k = "C";
  AppendU32(&k, coll);
  return k;
}

uint32_t TenantCells::CellOf(const uint8_t* pf) const {
  uint32_t best = 0;
  float best_d = dist_(pf, centroids_.data(), dim_);
  for (uint32_t c = 1; c < cells_; ++c) {
    const float d = dist_(pf, centroids_.data() + c * row_bytes_, dim_);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

void TenantCells::Rank(const uint8_t* q, std::vector<uint32_t>* order) const {
  std::vector<std::pair<float, uint32_t>> by(cells_);
  for (uint32_t c = 0; c < cells_; ++c)
    by[c] = {dist_(q, centroids_.data() + c * row_bytes_, dim_), c};
  std::sort(by.begin(), by.end());
  order->resize(cells_);
  for (uint32_t i = 0; i < cells_; ++i) (*order)[i] = by[i].second;
}

}  // namespace strata
