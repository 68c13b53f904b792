#include "bench/peers.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "storage/log.h"
#include "storage/scoped_fd.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
absl::Status Guard(const std::string& what, Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

faiss::MetricType FaissMetric(Metric m) {
  return m == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

// Drops a file's pages from the page cache (it must not be mapped at the time).
void EvictFromPageCache(const std::string& path) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return;
  ::fdatasync(fd->get());
  ::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_DONTNEED);
}

class FaissPeer final : public Peer {
 public:
  FaissPeer(PeerKind kind, std::unique_ptr<faiss::Index> index, std::string path,
            std::string lists_path, double build_s)
      : kind_(kind),
        index_(std::move(index)),
        path_(std::move(path)),
        lists_path_(std::move(lists_path)),
        build_s_(build_s) {}

  std::vector<int> Sweep() const override {
    if (kind_ == PeerKind::kHnsw) return {16, 24, 32, 48, 64, 96, 128, 192, 256};
    return {1, 2, 4, 8, 12, 16, 24, 32, 48, 64};
  }
  const char* ParamName() const override {
    return kind_ == PeerKind::kHnsw ? "efSearch" : "nprobe";
  }

  absl::Status Prepare(int param) override {
    if (kind_ == PeerKind::kIvfFlatOnDisk) {
      // Unmap, evict, remap: the timed pass starts with a cold cache, as Strata's reads do.
      index_.reset();
      EvictFromPageCache(lists_path_);
      absl::Status s =
          Guard("load " + path_, [&] { index_.reset(faiss::read_index(path_.c_str())); });
      if (!s.ok()) return s;
    }
    if (kind_ == PeerKind::kHnsw) {
      // FAISS 1.7.3's IndexHNSW::search ignores SearchParametersHNSW::efSearch (measured here:
      // identical recall for every value), so set the index's own field; Prepare runs while no
      // search is in flight.
      static_cast<faiss::IndexHNSW*>(index_.get())->hnsw.efSearch = param;
    }
    param_ = param;
    return absl::OkStatus();
  }

  absl::Status Search(const float* query, uint32_t k, std::vector<int64_t>* ids) const override {
    thread_local std::vector<float> dist;  // no allocation per timed query
    dist.resize(k);
    ids->assign(k, -1);
    return Guard("search", [&] {
      if (kind_ == PeerKind::kHnsw) {
        faiss::SearchParametersHNSW p;
        p.efSearch = std::max<int>(param_, k);
        index_->search(1, query, k, dist.data(), ids->data(), &p);
      } else {
        faiss::SearchParametersIVF p;
        p.nprobe = param_;
        index_->search(1, query, k, dist.data(), ids->data(), &p);
      }
    });
  }

  double MemoryMb() const override {
    double bytes = 0;
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get())) {
      bytes += ivf->quantizer->ntotal * ivf->d * 4.0;
      if (kind_ != PeerKind::kIvfFlatOnDisk)
        bytes += ivf->ntotal * (ivf->code_size + 8.0);
      else
        bytes += ivf->nlist * 24.0;  // per-list metadata; the lists themselves are on disk
    } else if (auto* h = dynamic_cast<faiss::IndexHNSW*>(index_.get())) {
      bytes +=
          h->ntotal * h->d * 4.0 + h->hnsw.neighbors.size() * 4.0 + h->hnsw.offsets.size() * 8.0;
    }
    return bytes / 1048576.0;
  }
  double BuildSeconds() const override { return build_s_; }

 private:
  PeerKind kind_;
  std::unique_ptr<faiss::Index> index_;
  std::string path_, lists_path_;
  double build_s_;
  int param_ = 1;
};

}  // namespace

const char* PeerName(PeerKind k) {
  switch (k) {
    case PeerKind::kIvfFlat:
      return "faiss-ivfflat";
    case PeerKind::kIvfPq:
      return "faiss-ivfpq";
    case PeerKind::kHnsw:
      return "faiss-hnsw";
    case PeerKind::kIvfFlatOnDisk:
      return "faiss-ivfflat-ondisk";
  }
  return "?";
}

absl::StatusOr<PeerKind> ParsePeer(const std::string& name) {
  if (name == "ivfflat") return PeerKind::kIvfFlat;
  if (name == "ivfpq") return PeerKind::kIvfPq;
  if (name == "hnsw") return PeerKind::kHnsw;
  if (name == "ivfdisk") return PeerKind::kIvfFlatOnDisk;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown peer '", name, "' (expected ivfflat, ivfpq, hnsw, ivfdisk)"));
}

absl::StatusOr<std::unique_ptr<Peer>> Peer::Create(PeerKind kind, const VectorSet& base,
                                                   Metric metric, const std::string& cache_dir_arg,
                                                   int threads) {
  // Absolute: the on-disk lists' file name is stored inside the index file.
  const std::string cache_dir = std::filesystem::absolute(cache_dir_arg).string();
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", cache_dir, ": ", ec.message()));
  std::string path = absl::StrCat(cache_dir, "/", PeerName(kind), ".faiss");
  std::string lists = absl::StrCat(cache_dir, "/", PeerName(kind), ".ivfdata");
  std::string meta = path + ".build_seconds";
  omp_set_num_threads(threads);
  if (std::filesystem::exists(path)) {
    std::unique_ptr<faiss::Index> index;
    absl::Status s = Guard("load " + path, [&] {
      // On-disk lists ("ilod") map their .ivfdata file themselves; no flag is needed.
      index.reset(faiss::read_index(path.c_str()));
    });
    if (!s.ok()) return s;
    double build_s = 0;
    std::ifstream(meta) >> build_s;
    Log(LogLevel::kInfo, "%s: loaded from %s (built in %.1f s)", PeerName(kind), path, build_s);
    return std::unique_ptr<Peer>(new FaissPeer(kind, std::move(index), path, lists, build_s));
  }
  std::vector<float> x = RowsAsFloat(base, 0, base.n);
  const int d = static_cast<int>(base.dim);
  const auto n = static_cast<faiss::Index::idx_t>(base.n);
  const int nlist = std::max(16, static_cast<int>(4 * std::sqrt(static_cast<double>(base.n))));
  std::unique_ptr<faiss::Index> index;
  auto t0 = Clock::now();
  absl::Status s = Guard(std::string("build ") + PeerName(kind), [&] {
    if (kind == PeerKind::kHnsw) {
      auto h = std::make_unique<faiss::IndexHNSWFlat>(d, 32, FaissMetric(metric));
      h->hnsw.efConstruction = 40;
      h->add(n, x.data());
      index = std::move(h);
      return;
    }
    auto* quantizer = new faiss::IndexFlat(d, FaissMetric(metric));
    std::unique_ptr<faiss::IndexIVF> ivf;
    if (kind == PeerKind::kIvfPq) {
      int m = d % 32 == 0 ? 32 : (d % 16 == 0 ? 16 : 8);
      ivf = std::make_unique<faiss::IndexIVFPQ>(quantizer, d, nlist, m, 8, FaissMetric(metric));
    } else {
      ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer, d, nlist, FaissMetric(metric));
    }
    ivf->own_fields = true;
    ivf->cp.max_points_per_centroid = 64;  // train on up to 64 * nlist points
    ivf->train(n, x.data());
    ivf->add(n, x.data());
    if (kind == PeerKind::kIvfFlatOnDisk) {
      auto* ondisk = new faiss::OnDiskInvertedLists(ivf->nlist, ivf->code_size, lists.c_str());
      const faiss::InvertedLists* mem = ivf->invlists;
      ondisk->merge_from(&mem, 1);
      ivf->replace_invlists(ondisk, true);
    }
    index = std::move(ivf);
  });
  if (!s.ok()) return s;
  double build_s = std::chrono::duration<double>(Clock::now() - t0).count();
  s = Guard("write " + path, [&] { faiss::write_index(index.get(), path.c_str()); });
  if (!s.ok()) return s;
  std::ofstream(meta) << build_s;
  Log(LogLevel::kInfo, "%s: built in %.1f s (nlist %d), cached at %s", PeerName(kind), build_s,
      nlist, path);
  if (kind == PeerKind::kIvfFlatOnDisk) {
    // Reopen through the file so the on-disk path is the one measured.
    index.reset();
    s = Guard("load " + path, [&] { index.reset(faiss::read_index(path.c_str())); });
    if (!s.ok()) return s;
  }
  return std::unique_ptr<Peer>(new FaissPeer(kind, std::move(index), path, lists, build_s));
}

}  // namespace strata::bench
