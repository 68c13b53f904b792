#include "index/internal/head_index.h"

#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>

#include <exception>

#include "absl/strings/str_cat.h"

namespace strata::internal {
namespace {

faiss::MetricType FaissMetric(Metric m) {
  return m == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

// Runs `fn`, mapping any exception FAISS throws to a Status naming `what`.
template <typename Fn>
absl::Status Guard(const char* what, Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const faiss::FaissException& e) {
    return absl::InternalError(absl::StrCat(what, ": FAISS: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

}  // namespace

HeadIndex::HeadIndex(std::unique_ptr<faiss::IndexHNSW> index, Metric metric)
    : index_(std::move(index)), metric_(metric) {}
HeadIndex::~HeadIndex() = default;

absl::StatusOr<std::unique_ptr<HeadIndex>> HeadIndex::Build(ElementType type, Metric metric,
                                                            uint32_t d, const float* heads,
                                                            uint64_t n,
                                                            const HeadIndexOptions& options) {
  std::unique_ptr<faiss::IndexHNSW> index;
  absl::Status s = Guard("building the head index", [&] {
    if (type == ElementType::kUint8) {
      index = std::make_unique<faiss::IndexHNSWSQ>(static_cast<int>(d),
                                                   faiss::ScalarQuantizer::QT_8bit_direct,
                                                   options.m, FaissMetric(metric));
    } else {
      index = std::make_unique<faiss::IndexHNSWFlat>(static_cast<int>(d), options.m,
                                                     FaissMetric(metric));
    }
    index->hnsw.efConstruction = options.ef_construction;
    index->train(static_cast<faiss::Index::idx_t>(n), heads);
    index->add(static_cast<faiss::Index::idx_t>(n), heads);
  });
  if (!s.ok()) return s;
  return std::unique_ptr<HeadIndex>(new HeadIndex(std::move(index), metric));
}

absl::StatusOr<std::unique_ptr<HeadIndex>> HeadIndex::Load(const std::string& path,
                                                           ElementType type, Metric metric,
                                                           uint32_t d) {
  std::unique_ptr<faiss::Index> raw;
  absl::Status s = Guard(path.c_str(), [&] { raw.reset(faiss::read_index(path.c_str())); });
  if (!s.ok()) return absl::DataLossError(s.message());
  auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(raw.get());
  if (hnsw == nullptr || hnsw->d != static_cast<int>(d) ||
      hnsw->metric_type != FaissMetric(metric) ||
      (type == ElementType::kUint8) != (dynamic_cast<faiss::IndexHNSWSQ*>(hnsw) != nullptr)) {
    return absl::DataLossError(absl::StrCat(path, ": not the head index this manifest describes"));
  }
  raw.release();
  return std::unique_ptr<HeadIndex>(new HeadIndex(std::unique_ptr<faiss::IndexHNSW>(hnsw), metric));
}

absl::Status HeadIndex::Save(const std::string& path) const {
  return Guard(path.c_str(), [&] { faiss::write_index(index_.get(), path.c_str()); });
}

absl::Status HeadIndex::Search(const float* queries, uint64_t nq, uint32_t k, uint32_t ef,
                               float* distances, int64_t* labels) const {
  faiss::SearchParametersHNSW params;
  params.efSearch = static_cast<int>(std::max(ef, k));
  absl::Status s = Guard("head search", [&] {
    index_->search(static_cast<faiss::Index::idx_t>(nq), queries,
                   static_cast<faiss::Index::idx_t>(k), distances, labels, &params);
  });
  if (!s.ok()) return s;
  if (metric_ != Metric::kL2) {
    for (uint64_t i = 0; i < nq * k; ++i) distances[i] = -distances[i];
  }
  return absl::OkStatus();
}

uint64_t HeadIndex::size() const { return static_cast<uint64_t>(index_->ntotal); }

uint64_t HeadIndex::MemoryBytes() const {
  uint64_t bytes = 0;
  if (const auto* codes = dynamic_cast<const faiss::IndexFlatCodes*>(index_->storage)) {
    bytes += codes->codes.size();
  }
  const faiss::HNSW& h = index_->hnsw;
  bytes += h.neighbors.size() * sizeof(h.neighbors[0]) + h.offsets.size() * sizeof(h.offsets[0]) +
           h.levels.size() * sizeof(h.levels[0]) + h.assign_probas.size() * sizeof(double);
  return bytes;
}

}  // namespace strata::internal
