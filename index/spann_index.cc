#include "index/spann_index.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/mutex.h"
#include "index/clustering.h"
#include "index/internal/head_graph.h"
#include "index/internal/head_overlay.h"
#include "index/internal/manifest.h"
#include "index/internal/spann_layout.h"
#include "index/kernels/distance.h"
#include "index/vector_rules.h"
#include "storage/half.h"
#include "storage/log.h"
#include "storage/posting_file.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
uint32_t MicrosSince(Clock::time_point t) {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}

// One query's scratch space; pooled so the hot path does not allocate.
struct QueryContext {
  std::unique_ptr<BlockReader> reader;
  AlignedBuffer buf;
  std::vector<ReadOp> ops;
  std::vector<uint32_t> op_posting;
  absl::flat_hash_set<VectorId> seen;
  std::vector<float> qf;
  internal::HeadSearchScratch nav;
  std::vector<std::pair<float, uint32_t>> heads;
  TopK top;
  std::vector<absl::Span<const uint8_t>> arrived;  // postings read, scanned after a relock
};

class SpannIndexImpl final : public SpannIndex {
 public:
  struct ReplicaRule {
    uint32_t max_replicas = 8;
    uint32_t candidates = 64;
    float rng_factor = 1.0f;
  };
  SpannIndexImpl(ElementType type, PostingEncoding encoding, Metric metric, uint32_t dim,
                 uint64_t n, std::unique_ptr<internal::HeadGraph> heads,
                 std::unique_ptr<PostingFile> postings, ReplicaRule rule,
                 uint32_t default_max_postings, double tuned_recall, uint32_t entry_limit)
      : type_(type),
        encoding_(encoding),
        metric_(metric),
        dim_(dim),
        n_(n),
        heads_(std::move(heads)),
        postings_(std::move(postings)),
        rule_(rule),
        default_max_postings_(default_max_postings),
        tuned_recall_(tuned_recall),
        entry_limit_(entry_limit),
        dist_(kernels::GetDistance(kernels::Best(), type, metric)),
        entry_dist_(encoding == PostingEncoding::kFloat16
                        ? kernels::GetFloat16Distance(kernels::Best(), metric)
                        : dist_) {
    uint64_t entries = 0;
    for (uint32_t p = 0; p < postings_->postings(); ++p) entries += postings_->location(p).count;
    if (postings_->postings() > 0 && n_ > 0) {
      mean_posting_entries_ =
          static_cast<double>(entries) / static_cast<double>(postings_->postings());
      entries_per_vector_ = static_cast<double>(entries) / static_cast<double>(n_);
    }
  }

  using SpannIndex::Search;
  absl::Status Search(VectorView query, uint32_t k, const SearchParams& params,
                      const SearchOverlay& overlay, std::vector<Neighbor>* result,
                      SearchStats* stats) const override;
  using SpannIndex::AssignPostings;
  absl::Status AssignPostings(VectorView v, const internal::HeadOverlay* heads,
                              std::vector<uint32_t>* postings) const override;
  absl::Status NearestHeads(const uint8_t* v, uint32_t k, const internal::HeadOverlay* heads,
                            std::vector<HeadHit>* out) const override;
  const uint8_t* head_vector(uint32_t head) const override { return heads_->vector(head); }
  const internal::HeadGraph* head_graph() const override { return heads_.get(); }
  absl::Status ReadPostings(absl::Span<const uint32_t> postings, std::vector<VectorId>* ids,
                            std::vector<uint8_t>* rows, std::vector<size_t>* ends) const override;
  uint32_t posting_entries(uint32_t posting) const override {
    return posting < postings_->postings() ? postings_->location(posting).count : 0;
  }
  uint32_t entry_limit() const override { return entry_limit_; }

  ElementType element_type() const override { return type_; }
  PostingEncoding posting_encoding() const override { return encoding_; }
  Metric metric() const override { return metric_; }
  uint32_t dim() const override { return dim_; }
  uint64_t size() const override { return n_; }
  uint64_t num_heads() const override { return heads_->size(); }
  uint32_t default_max_postings() const override { return default_max_postings_; }
  double tuned_recall() const override { return tuned_recall_; }
  uint64_t MemoryBytes() const override { return heads_->MemoryBytes() + postings_->table_bytes(); }
  uint64_t DiskBytes() const override { return postings_->data_pages() * kPageSize; }
  IoEngine io_engine() const override { return postings_->block_file().engine(); }

 private:
  // The `k` heads nearest `q` (posting form; normalised for cosine), nearest first: the graph's,
  // less the retired ones, with the added ones of `heads` (may be null). `ef` is the graph's beam.
  void Navigate(const void* q, uint32_t k, uint32_t ef, const internal::HeadOverlay* heads,
                QueryContext* ctx, std::vector<HeadHit>* out) const;
  // Head `head`'s vector: built, or added by `heads`.
  const uint8_t* HeadRow(uint32_t head, const internal::HeadOverlay* heads) const {
    if (head < heads_->size()) return heads_->vector(head);
    DCHECK(heads != nullptr && heads->Row(head) != nullptr);
    return heads->Row(head);
  }
  absl::StatusOr<std::unique_ptr<QueryContext>> Acquire() const {
    {
      MutexLock lock(&mu_);
      if (!pool_.empty()) {
        auto ctx = std::move(pool_.back());
        pool_.pop_back();
        return ctx;
      }
    }
    auto ctx = std::make_unique<QueryContext>();
    ASSIGN_OR_RETURN(ctx->reader, postings_->block_file().NewReader());
    return ctx;
  }
  // Gives an acquired context back (Release) when the scope it was acquired in ends.
  struct Lease {
    const SpannIndexImpl* self;
    std::unique_ptr<QueryContext>* ctx;
    ~Lease() { self->Release(std::move(*ctx)); }
  };
  // Pools the context, unless its reader broke: then it is dropped (the next query makes a new
  // one), or leaked whole when the kernel may still write into its buffers.
  void Release(std::unique_ptr<QueryContext> ctx) const {
    if (!ctx->reader->usable()) {
      if (ctx->reader->abandoned_reads() > 0) (void)ctx.release();  // NOLINT: on purpose
      return;
    }
    MutexLock lock(&mu_);
    pool_.push_back(std::move(ctx));
  }

  const ElementType type_;
  const PostingEncoding encoding_;
  const Metric metric_;
  const uint32_t dim_;
  const uint64_t n_;
  std::unique_ptr<internal::HeadGraph> heads_;
  std::unique_ptr<PostingFile> postings_;
  const ReplicaRule rule_;
  const uint32_t default_max_postings_;
  const double tuned_recall_;
  const uint32_t entry_limit_;
  const kernels::DistanceFn dist_;        // query vs a vector in the index's type (heads, overlay)
  const kernels::DistanceFn entry_dist_;  // query vs a posting entry's vector on disk
  double mean_posting_entries_ = 0;       // entries of a built posting, on average
  double entries_per_vector_ = 1;         // replicas of a built vector, on average
  mutable Mutex mu_;
  mutable std::vector<std::unique_ptr<QueryContext>> pool_ ABSL_GUARDED_BY(mu_);
};

absl::Status CheckQuery(VectorView query, ElementType type, Metric metric, uint32_t dim) {
  if (query.type != type) {
    return absl::InvalidArgumentError(absl::StrCat("vector is ", ElementTypeName(query.type),
                                                   " but the index holds ", ElementTypeName(type),
                                                   " vectors"));
  }
  if (query.bytes.size() != size_t{dim} * ElementSize(type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vector has dimension ", query.bytes.size() / ElementSize(type), ", the index has ", dim));
  }
  return CheckVectorValues(type, metric, dim, query.bytes.data(), "vector");
}

void SpannIndexImpl::Navigate(const void* q, uint32_t k, uint32_t ef,
                              const internal::HeadOverlay* heads, QueryContext* ctx,
                              std::vector<HeadHit>* out) const {
  if (heads == nullptr) {
    heads_->Search(q, k, ef, &ctx->nav, out);
    return;
  }
  // One walk over the built graph with the added heads joined to it, past the retired ones.
  // (The collection clears its overlay onto each generation it installs: one of another would
  // number the heads otherwise.)
  DCHECK(heads->built_graph() == heads_.get());
  heads->Nearest(q, k, ef, &ctx->nav, out);
}

absl::Status SpannIndexImpl::NearestHeads(const uint8_t* v, uint32_t k,
                                          const internal::HeadOverlay* heads,
                                          std::vector<HeadHit>* out) const {
  ASSIGN_OR_RETURN(std::unique_ptr<QueryContext> ctx, Acquire());
  Navigate(v, k, std::max(2 * k, 64u), heads, ctx.get(), out);
  Release(std::move(ctx));
  return absl::OkStatus();
}

absl::Status SpannIndexImpl::ReadPostings(absl::Span<const uint32_t> postings,
                                          std::vector<VectorId>* ids, std::vector<uint8_t>* rows,
                                          std::vector<size_t>* ends) const {
  if (postings.empty()) return absl::OkStatus();
  size_t total_pages = 0;
  for (uint32_t p : postings) {
    if (p >= postings_->postings()) {
      return absl::InvalidArgumentError(absl::StrCat("no built posting ", p));
    }
    total_pages += postings_->location(p).page_count;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<QueryContext> ctx, Acquire());
  const Lease lease{this, &ctx};
  ctx->buf.Resize(std::max<size_t>(total_pages, 1) * kPageSize);
  ctx->ops.clear();
  ctx->op_posting.clear();
  size_t page = 0;
  for (uint32_t p : postings) {
    const PostingLocation& loc = postings_->location(p);
    if (loc.count == 0) continue;
    ctx->ops.push_back(postings_->ReadFor(p, ctx->buf.data() + page * kPageSize));
    ctx->op_posting.push_back(p);
    page += loc.page_count;
  }
  // Entries of each op, in the order of `postings` (reads complete in any order).
  std::vector<absl::Span<const uint8_t>>& arrived = ctx->arrived;
  arrived.assign(ctx->ops.size(), {});
  RETURN_IF_ERROR(ctx->reader->ReadBatch(ctx->ops, [&](size_t i) -> absl::Status {
    ASSIGN_OR_RETURN(arrived[i], postings_->View(ctx->op_posting[i], ctx->ops[i].buf));
    return absl::OkStatus();
  }));
  const size_t entry_bytes = postings_->entry_bytes();
  const size_t row_bytes = size_t{dim_} * ElementSize(type_);
  size_t op = 0;
  for (uint32_t p : postings) {
    if (postings_->location(p).count != 0) {
      const absl::Span<const uint8_t> entries = arrived[op++];
      const size_t count = entries.size() / entry_bytes;
      const size_t first = rows->size();
      rows->resize(first + count * row_bytes);
      for (size_t e = 0; e < count; ++e) {
        const uint8_t* entry = entries.data() + e * entry_bytes;
        VectorId id;
        std::memcpy(&id, entry, sizeof id);
        ids->push_back(id);
        uint8_t* out = rows->data() + first + e * row_bytes;
        if (encoding_ == PostingEncoding::kFloat16) {
          for (uint32_t j = 0; j < dim_; ++j) {
            uint16_t h;
            std::memcpy(&h, entry + sizeof id + 2 * j, 2);
            const float f = HalfToFloat(h);
            std::memcpy(out + 4 * j, &f, 4);
          }
        } else {
          std::memcpy(out, entry + sizeof id, row_bytes);
        }
      }
    }
    if (ends != nullptr) ends->push_back(ids->size());
  }
  return absl::OkStatus();
}

absl::Status SpannIndexImpl::AssignPostings(VectorView v, const internal::HeadOverlay* heads,
                                            std::vector<uint32_t>* postings) const {
  RETURN_IF_ERROR(CheckQuery(v, type_, metric_, dim_));
  ASSIGN_OR_RETURN(std::unique_ptr<QueryContext> ctx, Acquire());
  const uint64_t total =
      heads_->size() + (heads != nullptr ? heads->added() - heads->retired() : 0);
  uint32_t cand = static_cast<uint32_t>(std::min<uint64_t>(rule_.candidates, total));
  // A narrower beam than the build's (2 * cand, at least 128): every write and each of posting
  // maintenance's reassignments pays this search. The replicas come from the nearest candidates
  // (the RNG rule rarely keeps far ones), the ones a narrower beam finds as well. Measured at 100K
  // vectors under drifting updates (bench/RESULTS.md, "Posting maintenance"): the beam of 128 cost
  // about half the update rate, for recall within the runs' noise.
  Navigate(v.bytes.data(), cand, std::max(cand, 64u), heads, ctx.get(), &ctx->heads);
  std::vector<int64_t> ids(ctx->heads.size());
  std::vector<float> dists(ctx->heads.size());
  for (size_t j = 0; j < ctx->heads.size(); ++j) {
    dists[j] = ctx->heads[j].first;
    ids[j] = ctx->heads[j].second;
  }
  auto head_dist = [&](int64_t a, int64_t b) {
    return dist_(HeadRow(static_cast<uint32_t>(a), heads), HeadRow(static_cast<uint32_t>(b), heads),
                 dim_);
  };
  std::vector<uint32_t> chosen =
      SelectReplicas(ids, dists, rule_.max_replicas, rule_.rng_factor, head_dist);
  postings->clear();
  for (uint32_t c : chosen) postings->push_back(static_cast<uint32_t>(ids[c]));
  Release(std::move(ctx));
  if (postings->empty()) return absl::InternalError("no head found for a vector");
  return absl::OkStatus();
}

absl::Status SpannIndexImpl::Search(VectorView query, uint32_t k, const SearchParams& params,
                                    const SearchOverlay& overlay, std::vector<Neighbor>* result,
                                    SearchStats* stats) const {
  const bool has_overlay = overlay.appended != nullptr || !overlay.skip_bits.empty() ||
                           overlay.allow != nullptr || overlay.heads != nullptr;
  if (query.type != type_) {
    return absl::InvalidArgumentError(absl::StrCat("query is ", ElementTypeName(query.type),
                                                   " but the index holds ", ElementTypeName(type_),
                                                   " vectors"));
  }
  if (query.bytes.size() != size_t{dim_} * ElementSize(type_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query has dimension ", query.bytes.size() / ElementSize(type_), ", the index has ", dim_));
  }
  if (k == 0 || (k > n_ && !has_overlay)) {
    return absl::InvalidArgumentError(
        absl::StrCat("k must be in [1, ", n_, "] (the number of vectors), got ", k));
  }
  if (!std::isfinite(params.prune_ratio)) {
    return absl::InvalidArgumentError("prune_ratio must be finite");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<QueryContext> ctx, Acquire());
  const Lease lease{this, &ctx};

  SearchStats st;
  auto t0 = Clock::now();
  const void* q = query.bytes.data();
  RETURN_IF_ERROR(CheckVectorValues(type_, metric_, dim_, query.bytes.data(), "query"));
  if (metric_ == Metric::kCosine) {
    ctx->qf.resize(dim_);
    FloatRows::Convert(type_, query.bytes.data(), dim_, true, ctx->qf.data());
    q = ctx->qf.data();
  }

  // Entries the postings read must hold for k answers: 2k vectors' replicas, over the share of
  // the index the caller's allow set admits. A budget whose postings hold fewer on average (a
  // large k) is widened to them, and pruning keeps postings until they hold that many, so that a
  // query lying on top of one head does not stop at its posting alone.
  const uint64_t heads_now =
      heads_->size() + (overlay.heads != nullptr ? overlay.heads->added() : 0);
  double wanted_entries = 2.0 * k * entries_per_vector_;
  if (overlay.allow != nullptr) {
    wanted_entries *=
        static_cast<double>(n_) / static_cast<double>(std::max<uint64_t>(overlay.allow->size(), 1));
  }
  uint32_t budget = params.max_postings != 0 ? params.max_postings : default_max_postings_;
  if (params.max_postings == 0 && overlay.allow == nullptr && mean_posting_entries_ > 0) {
    // At most 16 times the default, which bounds a query's reads and its buffer (a larger k
    // comes back short unless the caller's max_postings asks for more) - except where that
    // covers half the postings or more (a small collection): then every posting, so that a k as
    // large as the collection finds all of it.
    const double for_k = std::ceil(wanted_entries / mean_posting_entries_);
    double cap = 16.0 * default_max_postings_;
    if (for_k > cap && 2 * cap >= static_cast<double>(heads_now)) {
      cap = static_cast<double>(heads_now);
    }
    budget = static_cast<uint32_t>(std::min<double>(std::max<double>(budget, for_k), cap));
  }
  uint32_t nprobe = static_cast<uint32_t>(std::min<uint64_t>(budget, heads_now));
  uint32_t ef = params.ef_search ? params.ef_search : std::max(64u, 2 * nprobe);
  Navigate(q, nprobe, ef, overlay.heads, ctx.get(), &ctx->heads);
  st.navigation_us = MicrosSince(t0);

  // Query-aware pruning: postings far beyond the nearest head rarely hold a top-k neighbour; but
  // not before the postings kept hold the entries k answers want.
  uint32_t keep = 0;
  float base = -1;
  double kept_entries = 0;
  // A built posting's entries count at the share still served; with an allow set, the entries
  // wanted are scaled by the share it admits already (dead ids are in no allow set).
  const double built_share = overlay.allow != nullptr ? 1.0 : overlay.built_live_share;
  const uint32_t built = static_cast<uint32_t>(postings_->postings());
  for (const auto& [dist, head] : ctx->heads) {
    if (metric_ == Metric::kL2 && params.prune_ratio > 0) {
      if (base <= 0) base = dist;  // the first non-zero distance anchors the ratio
      if (base > 0 && dist > params.prune_ratio * base && kept_entries >= wanted_entries) break;
    }
    if (head < built) kept_entries += built_share * postings_->location(head).count;
    if (overlay.appended != nullptr) kept_entries += overlay.appended->EntryCount(head);
    ++keep;
  }

  // One batch: every surviving posting, each into its own page-aligned slice of the buffer.
  size_t total_pages = 0;
  for (uint32_t i = 0; i < keep; ++i) {
    const uint32_t p = ctx->heads[i].second;
    if (p < built) total_pages += postings_->location(p).page_count;
  }
  ctx->buf.Resize(std::max<size_t>(total_pages, 1) * kPageSize);
  ctx->ops.clear();
  ctx->op_posting.clear();
  size_t page = 0;
  for (uint32_t i = 0; i < keep; ++i) {
    uint32_t p = ctx->heads[i].second;
    if (p >= built) continue;  // an added head: appended entries only
    const PostingLocation& loc = postings_->location(p);
    if (loc.page_count == 0) continue;
    ctx->ops.push_back(postings_->ReadFor(p, ctx->buf.data() + page * kPageSize));
    ctx->op_posting.push_back(p);
    page += loc.page_count;
  }

  ctx->seen.clear();
  TopK& top = ctx->top;
  top.Reset(k);
  auto offer = [&](VectorId id, const uint8_t* vec, kernels::DistanceFn fn) {
    if (!ctx->seen.insert(id).second) return;  // a replica already scored
    top.Push(id, fn(q, vec, dim_));
  };
  // With a caller's lock the overlay is not read while the postings are: they are scanned once
  // all have arrived, with the overlay as it is then. Without one, each as it arrives.
  SearchOverlay now = overlay;
  const size_t entry_bytes = postings_->entry_bytes();
  const size_t vec_offset = sizeof(VectorId);
  uint64_t distance_ns = 0;
  const auto scan = [&](size_t i, absl::Span<const uint8_t> entries) {
    auto td = Clock::now();
    const uint8_t* skip = now.skip_bits.data();
    const uint64_t skip_limit = uint64_t{now.skip_bits.size()} * 8;
    const IdSet* allow = now.allow;
    size_t count = entries.size() / entry_bytes;
    for (size_t e = 0; e < count; ++e) {
      const uint8_t* entry = entries.data() + e * entry_bytes;
      VectorId id;
      std::memcpy(&id, entry, sizeof id);
      if (id < skip_limit && (skip[id >> 3] >> (id & 7) & 1) != 0) continue;
      if (allow != nullptr && !allow->Contains(id)) continue;
      offer(id, entry + vec_offset, entry_dist_);
    }
    st.entries_scanned += static_cast<uint32_t>(count);
    st.postings_read += 1;
    st.pages_read += ctx->ops[i].length / kPageSize;
    st.bytes_read += ctx->ops[i].length;
    distance_ns += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - td).count());
  };
  auto t_io = Clock::now();
  absl::Status read_status;
  if (overlay.lock == nullptr) {
    read_status = ctx->reader->ReadBatch(ctx->ops, [&](size_t i) -> absl::Status {
      ASSIGN_OR_RETURN(absl::Span<const uint8_t> entries,
                       postings_->View(ctx->op_posting[i], ctx->ops[i].buf));
      scan(i, entries);
      return absl::OkStatus();
    });
  } else {
    std::vector<absl::Span<const uint8_t>>& arrived = ctx->arrived;
    arrived.assign(ctx->ops.size(), {});
    overlay.lock->Unlock();
    read_status = ctx->reader->ReadBatch(ctx->ops, [&](size_t i) -> absl::Status {
      ASSIGN_OR_RETURN(arrived[i], postings_->View(ctx->op_posting[i], ctx->ops[i].buf));
      return absl::OkStatus();
    });
    absl::StatusOr<SearchOverlay> relocked = overlay.lock->Relock();
    // The caller's state changed meanwhile (Aborted: the index was replaced): that, not a read
    // error of an index no longer in use, is the answer.
    if (!relocked.ok()) read_status = relocked.status();
    if (read_status.ok()) {
      now = *relocked;
      // A posting read while unlocked whose head retired meanwhile (split or merged): its
      // vectors went elsewhere, so this search starts again on the new layout.
      for (uint32_t i = 0; i < keep && now.heads != nullptr; ++i) {
        const uint32_t h = ctx->heads[i].second;
        if (h < built ? now.heads->IsRetired(h) : !now.heads->IsAdded(h)) {
          read_status = absl::AbortedError("a posting it read was split or merged meanwhile");
          break;
        }
      }
    }
    if (read_status.ok()) {
      for (size_t i = 0; i < arrived.size(); ++i) scan(i, arrived[i]);
    }
  }
  if (!read_status.ok()) return read_status;
  uint32_t batch_us = MicrosSince(t_io);
  const IdSet* allow = now.allow;
  if (now.appended != nullptr) {
    auto td = Clock::now();
    for (uint32_t i = 0; i < keep; ++i) {
      now.appended->ForEach(ctx->heads[i].second, [&](VectorId id, const uint8_t* vec) {
        ++st.entries_scanned;
        if (allow == nullptr || allow->Contains(id)) offer(id, vec, dist_);
      });
    }
    distance_ns += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - td).count());
  }
  st.distance_us = static_cast<uint32_t>(distance_ns / 1000);
  st.io_wait_us = batch_us > st.distance_us ? batch_us - st.distance_us : 0;

  top.TakeSorted(result);
  if (stats != nullptr) *stats = st;
  return absl::OkStatus();
}

}  // namespace

std::vector<uint32_t> SelectReplicas(absl::Span<const int64_t> cand,
                                     absl::Span<const float> cand_dist, uint32_t max_replicas,
                                     float rng_factor,
                                     absl::FunctionRef<float(int64_t, int64_t)> head_dist) {
  std::vector<uint32_t> chosen;
  for (uint32_t i = 0; i < cand.size() && chosen.size() < max_replicas; ++i) {
    if (cand[i] < 0) break;
    bool blocked = false;
    for (uint32_t j : chosen) {
      // RNG rule: x is better served by c' (already chosen) than by c when c is closer to c' than
      // to x.
      if (rng_factor * head_dist(cand[i], cand[j]) <= cand_dist[i]) {
        blocked = true;
        break;
      }
    }
    if (!blocked) chosen.push_back(i);
  }
  return chosen;
}

absl::StatusOr<std::unique_ptr<SpannIndex>> SpannIndex::Open(const std::string& dir,
                                                             const SpannOpenOptions& options) {
  std::string mpath = internal::IndexFilePath(dir, internal::kManifestName);
  auto text = ReadWholeFile(mpath);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(absl::StrCat(dir, " holds no Strata index (no MANIFEST)"));
    }
    return text.status();
  }
  ASSIGN_OR_RETURN(internal::Manifest m, internal::Manifest::Parse(*text, mpath));
  ASSIGN_OR_RETURN(std::string type_name, m.Get("element_type"));
  auto type = ParseElementType(type_name);
  if (!type.ok()) return absl::DataLossError(absl::StrCat(mpath, ": ", type.status().message()));
  ASSIGN_OR_RETURN(std::string metric_name, m.Get("metric"));
  auto metric = ParseMetric(metric_name);
  if (!metric.ok())
    return absl::DataLossError(absl::StrCat(mpath, ": ", metric.status().message()));
  ASSIGN_OR_RETURN(uint64_t dim, m.GetU64("dim"));
  ASSIGN_OR_RETURN(uint64_t n, m.GetU64("vectors"));
  ASSIGN_OR_RETURN(uint64_t heads, m.GetU64("heads"));
  ASSIGN_OR_RETURN(uint64_t entry_bytes, m.GetU64("entry_bytes"));
  PostingEncoding encoding = PostingEncoding::kNative;  // indexes written before the key existed
  if (m.Has("posting_encoding")) {
    ASSIGN_OR_RETURN(std::string name, m.Get("posting_encoding"));
    auto e = ParsePostingEncoding(name);
    if (!e.ok()) return absl::DataLossError(absl::StrCat(mpath, ": ", e.status().message()));
    encoding = *e;
    if (encoding == PostingEncoding::kFloat16 && *type != ElementType::kFloat32) {
      return absl::DataLossError(
          absl::StrCat(mpath, ": float16 postings in a ", type_name, " index"));
    }
  }
  if (dim == 0 || dim > 65536 ||
      entry_bytes != sizeof(VectorId) +
                         internal::EntryVectorBytes(*type, encoding, static_cast<uint32_t>(dim))) {
    return absl::DataLossError(absl::StrCat(mpath, ": inconsistent dimension/entry size"));
  }
  std::string heads_path = internal::IndexFilePath(dir, internal::kHeadsFile);
  ASSIGN_OR_RETURN(auto head_index, internal::HeadGraph::Load(heads_path, *type, *metric,
                                                              static_cast<uint32_t>(dim)));
  if (head_index->size() != heads) {
    return absl::DataLossError(
        absl::StrCat(heads_path, ": ", head_index->size(), " heads, the manifest says ", heads));
  }
  PostingFileParams pparams{static_cast<uint32_t>(entry_bytes),
                            internal::PostingTag(*type, encoding)};
  ASSIGN_OR_RETURN(auto postings,
                   PostingFile::Open(internal::IndexFilePath(dir, internal::kPostingData),
                                     internal::IndexFilePath(dir, internal::kPostingTable), pparams,
                                     options.io, options.wrap_block_file));
  if (postings->postings() != heads) {
    return absl::DataLossError(absl::StrCat(dir, ": posting table has ", postings->postings(),
                                            " lists for ", heads, " heads"));
  }
  Log(LogLevel::kDebug, "opened %s: %d %s vectors (%s postings), %d heads, io engine %s", dir, n,
      type_name, PostingEncodingName(encoding), heads,
      IoEngineName(postings->block_file().engine()));
  SpannIndexImpl::ReplicaRule rule;
  if (m.Has("build.max_replicas")) {
    ASSIGN_OR_RETURN(uint64_t r, m.GetU64("build.max_replicas"));
    ASSIGN_OR_RETURN(uint64_t c, m.GetU64("build.replica_candidates"));
    ASSIGN_OR_RETURN(double factor, m.GetDouble("build.rng_factor"));
    if (r == 0 || r > 64 || c == 0 || c > 1024 || !(factor > 0)) {
      return absl::DataLossError(absl::StrCat(mpath, ": bad replica parameters"));
    }
    rule = {static_cast<uint32_t>(r), static_cast<uint32_t>(c), static_cast<float>(factor)};
  }
  uint64_t page_limit = internal::DefaultPageLimit(*type, encoding);
  if (m.Has("build.posting_page_limit")) {
    ASSIGN_OR_RETURN(page_limit, m.GetU64("build.posting_page_limit"));
    if (page_limit == 0 || page_limit > 65535) {
      return absl::DataLossError(absl::StrCat(mpath, ": bad build.posting_page_limit"));
    }
  }
  const uint64_t entry_limit = std::max<uint64_t>(1, page_limit * kPageSize / entry_bytes);
  uint64_t default_max_postings = 32;  // indexes built before tuning existed
  double tuned_recall = -1;
  if (m.Has("search.max_postings")) {
    ASSIGN_OR_RETURN(default_max_postings, m.GetU64("search.max_postings"));
    ASSIGN_OR_RETURN(tuned_recall, m.GetDouble("search.tuned_recall"));
    if (default_max_postings == 0 || default_max_postings > heads + 1024) {
      return absl::DataLossError(absl::StrCat(mpath, ": bad search.max_postings"));
    }
  }
  return std::unique_ptr<SpannIndex>(new SpannIndexImpl(
      *type, encoding, *metric, static_cast<uint32_t>(dim), n, std::move(head_index),
      std::move(postings), rule, static_cast<uint32_t>(default_max_postings), tuned_recall,
      static_cast<uint32_t>(entry_limit)));
}

}  // namespace strata
