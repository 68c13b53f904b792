// Posting maintenance (SPFresh's LIRE): CollectionImpl's splits, merges and rewrites of postings,
// the reassignment they call for, and the background threads that run them ("Posting
// maintenance" in index/collection.h; "Maintenance" in docs/ARCHITECTURE.md).
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <system_error>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "index/internal/collection_impl.h"
#include "index/internal/head_spacing.h"
#include "index/internal/posting_split.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {
namespace {
// A posting is looked at once its entries pass 1.5x the limit (it is split when its live ones pass
// the limit), and merged away under 1/8 of it.
uint64_t LookAtAbove(uint32_t limit) { return uint64_t{limit} + limit / 2; }
size_t MergeBelow(uint32_t limit) { return std::max<size_t>(1, limit / 8); }
// Neighbouring postings whose vectors a split checks (SPFresh's second condition). At 200K
// vectors under drifting updates (bench/RESULTS.md, single runs), 128 against 64 reassigned 12%
// fewer vectors over the run (fewer splits followed) for ~0.003 more recall; 32 lost ~0.008; 256
// was ahead of 128 in recall mid-run but not at the end, and slower early.
constexpr uint32_t kSplitNeighbours = 128;
// Postings beyond the neighbourhood whose vectors a split checks too, the widest first
// (posting_radii.h): at most this many, which bounds a step's cost. At 200K vectors under
// drifting updates (bench/RESULTS.md; single runs of 20 rounds, so +-0.005 of recall), at most
// 64 / 256 / any number of them gave recall@10 at 10% replaced of 0.967 / 0.972 / 0.971 against
// 0.962 with none, and updates/s over rounds 11-20 of 2,834 / 2,088 / 1,262 against 2,876.
constexpr size_t kFarPostings = 128;
// A vector is far from every head past this many times the built heads' median spacing. Measured
// on 200K SIFT-like vectors (bench/RESULTS.md, "Seeding"): a new vector of the build's own
// distribution lies 1.04x the median spacing from its nearest head at the median, 1.34x at the
// 99th percentile and 1.48x at the 99.9th; one of the drifted distribution 1.36x at the 10th
// percentile and 1.56x at the median.
constexpr float kSeedSpacings = 1.5f;
// Heads sampled to measure the spacing.
constexpr uint32_t kSpacingSample = 1000;
// Postings a seed step takes the far vectors of at most (one commit and one sync for them all).
constexpr size_t kSeedBatch = 64;
// ... and stops taking more once it holds this many far vectors (a step's size is bounded).
constexpr size_t kSeedMostVectors = 512;
}  // namespace

float CollectionImpl::SeedRadiusOf(const SpannIndex& index) const {
  if (!options_.seed_far_vectors) return 0;
  absl::StatusOr<float> spacing = internal::MedianHeadSpacing(index, kSpacingSample);
  if (!spacing.ok()) {
    // A measurement, not the index: the collection goes on without seeding.
    Log(LogLevel::kWarning, "collection '%s': measuring its heads' spacing: %s (no seeding)",
        config_.name, spacing.status().message());
    return 0;
  }
  return kSeedSpacings * *spacing;
}

void CollectionImpl::NotePostings(absl::Span<const uint32_t> postings, bool shrunk) {
  if (base_ == nullptr || postings.empty()) return;
  const uint32_t limit = PostingLimit();
  MutexLock lock(&pending_mu_);
  for (uint32_t p : postings) {
    const uint64_t n = PostingEntries(p);
    if (n > LookAtAbove(limit) ||
        (shrunk && p >= heads_overlay_.built_heads() && n < MergeBelow(limit)) ||
        (seed_radius_ > 0 && appended_radius_.Of(p) > seed_radius_)) {
      pending_.insert(p);
    }
  }
}

void CollectionImpl::StartMaintainer() {
  if (!options_.background_maintenance) return;
  const auto run = [this] {
    // Named for `top -H`, perf and debuggers (at most 15 characters).
    pthread_setname_np(pthread_self(), "strata-maint");
    for (;;) {
      {
        MutexLock lock(&pending_mu_);
        pending_mu_.Await(absl::Condition(
            +[](CollectionImpl* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              return c->stop_ || (!c->paused_ && c->HasFreePending());
            },
            this));
        if (stop_) return;
      }
      if (absl::Status s = RunMaintenance(); !s.ok() && !absl::IsNotFound(s)) {
        Log(LogLevel::kWarning, "collection '%s': posting maintenance: %s", config_.name,
            s.message());
      }
    }
  };
  const int threads = std::max(1, options_.maintenance_threads);
  for (int t = 0; t < threads; ++t) {
    try {
      maintainers_.emplace_back(run);
    } catch (const std::system_error& e) {
      // Fewer threads than asked for (none: maintenance runs when RunMaintenance is called).
      Log(LogLevel::kWarning, "collection '%s': %d of %d posting maintenance threads started: %s",
          config_.name, t, threads, e.what());
      break;
    }
  }
}

void CollectionImpl::StopMaintainer() {
  {
    MutexLock lock(&pending_mu_);
    stop_ = true;
  }
  for (std::thread& t : maintainers_) {
    if (t.joinable()) t.join();
  }
}

bool CollectionImpl::HasFreePending() const {
  // (Stops at the first posting no step works on: it looks past at most in_step_.size() others.)
  for (uint32_t p : pending_) {
    if (!in_step_.contains(p)) return true;
  }
  return false;
}

std::optional<uint32_t> CollectionImpl::TakePending() {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    const uint32_t p = *it;
    if (in_step_.contains(p)) continue;
    pending_.erase(it);
    in_step_.insert(p);
    return p;
  }
  return std::nullopt;
}

uint32_t CollectionImpl::NewHeadNumber(const internal::HeadOverlay& heads) {
  MutexLock lock(&pending_mu_);
  const uint32_t h = std::max(next_added_head_, heads.next_head());
  next_added_head_ = h + 1;
  return h;
}

absl::Status CollectionImpl::RunMaintenance() {
  absl::Status first;
  for (;;) {
    std::optional<uint32_t> p;
    {
      MutexLock lock(&pending_mu_);
      // A posting no step works on, or else the end: nothing queued and no step under way (a
      // step under way may queue more).
      pending_mu_.Await(absl::Condition(
          +[](CollectionImpl* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return c->stop_ || c->paused_ || c->steps_ == 0 || c->HasFreePending();
          },
          this));
      if (stop_ || paused_) return first;
      p = TakePending();
      if (!p.has_value()) return first;  // (steps_ == 0: nothing is queued)
      ++steps_;
    }
    // A posting that fails stays as it is (queued again by the next write that touches it).
    absl::Status s = MaintainPosting(*p);
    {
      MutexLock lock(&pending_mu_);
      in_step_.erase(*p);
      --steps_;
    }
    if (!s.ok() && first.ok()) first = s;
  }
}

absl::Status CollectionImpl::MaintainPosting(uint32_t p) {
  RETURN_IF_ERROR(CheckNotDropped());
  // Everything up to the commit runs beside writers and other steps (on other postings), reading
  // the state under mu_ shared, piece by piece. The commit's plan, under write_mu_, keeps only
  // the moves and reassignments whose vectors did not change meanwhile, moves the vectors that
  // joined p meanwhile, and when other steps changed the heads meanwhile, makes this step's own
  // head changes again over the heads as they are and walks again the reassignments those
  // changes touch.
  const uint32_t coll = config_.id;
  std::shared_ptr<SpannIndex> base;
  uint64_t generation = 0;
  uint32_t limit = 0, built_heads = 0;
  uint64_t heads_now = 0;
  std::vector<uint8_t> old_head;
  std::vector<VectorId> keys_in_p;  // every appended entry of p
  // Vectors and their rows (posting form): the posting's live members, then the neighbours'
  // vectors that may move.
  std::vector<uint8_t> rows;
  absl::flat_hash_map<VectorId, size_t> row_at;
  const auto add_row = [&](VectorId id, const uint8_t* row) {
    row_at[id] = rows.size();
    rows.insert(rows.end(), row, row + row_bytes_);
  };
  const auto row_of = [&](VectorId id) { return rows.data() + row_at.at(id); };
  // The versions the vectors had when read: a plan for a vector changed since is dropped. And
  // their appended postings then: another step's move changes those, not the version.
  absl::flat_hash_map<VectorId, uint8_t> version_at;
  absl::flat_hash_map<VectorId, std::vector<uint32_t>> postings_at;
  std::vector<VectorId> members;
  // Appended members whose primary is p and which lie past seed_radius from its head (a seed
  // step gives them heads), and how far the other primaries lie (p's radius after it).
  std::vector<VectorId> far;
  float seed_radius = 0, kept_radius = 0, radius_was = 0;
  uint64_t radius_stamp = 0;
  std::vector<VectorId> need;  // built vectors whose exact rows are read from the store
  // Takes vector `id` into the step, with mu_ held: the version it has now, and its row (from
  // memory, or later from the store when memory holds it rounded).
  const auto take = [&](VectorId id) {
    mu_.AssertReaderHeld();
    version_at[id] = ids_[id].version;
    const absl::Span<const uint32_t> postings = appended_.PostingsOf(id);
    postings_at[id].assign(postings.begin(), postings.end());
    if (const uint8_t* r = ExactRow(id)) {
      add_row(id, r);
    } else {
      need.push_back(id);  // a built vector moved here before (memory holds it rounded)
    }
  };
  std::vector<HeadHit> hits;
  std::vector<uint32_t> neighbours;
  {
    ReaderMutexLock lock(&mu_);
    if (building_) {
      // A build began since p was taken: p waits for it (the install empties the queue).
      MutexLock pending_lock(&pending_mu_);
      pending_.insert(p);
      return absl::OkStatus();
    }
    if (base_ == nullptr || !damage_.ok()) return absl::OkStatus();
    base = base_;
    generation = generation_;
    built_heads = heads_overlay_.built_heads();
    const uint8_t* h = p < built_heads
                           ? (heads_overlay_.IsRetired(p) ? nullptr : base->head_vector(p))
                           : heads_overlay_.Row(p);
    if (h == nullptr) return absl::OkStatus();  // gone since it was queued
    old_head.assign(h, h + row_bytes_);
    limit = PostingLimit();
    heads_now = built_heads - heads_overlay_.retired() + heads_overlay_.added();
    seed_radius = seed_radius_;
    radius_stamp = appended_radius_.Stamp(p);
    radius_was = appended_radius_.Of(p);
    appended_.ForEachEntry(p, [&](VectorId id, uint8_t version) {
      mu_.AssertReaderHeld();
      keys_in_p.push_back(id);
      const IdState& st = ids_[id];
      if ((st.flags & kLive) && st.version == version && !row_at.contains(id)) {
        DCHECK(appended_.Row(id) != nullptr);
        members.push_back(id);
        take(id);
        if (seed_radius > 0 && appended_.PostingsOf(id).front() == p) {
          const float d = kernels::EuclideanOf(
              config_.metric, dist_(appended_.Row(id), old_head.data(), config_.dim));
          if (d > seed_radius) {
            far.push_back(id);
          } else {
            kept_radius = std::max(kept_radius, d);
          }
        }
      }
    });
  }
  // The built posting, from disk.
  std::vector<VectorId> built_ids;
  std::vector<uint8_t> built_rows;
  // A posting failing its checksum is damage, reported as a search's would be.
  const auto read_postings = [&](absl::Span<const uint32_t> qs, std::vector<VectorId>* ids,
                                 std::vector<uint8_t>* out,
                                 std::vector<size_t>* ends) -> absl::Status {
    absl::Status s = base->ReadPostings(qs, ids, out, ends);
    if (absl::IsDataLoss(s)) {
      ReaderMutexLock lock(&mu_);
      if (generation_ == generation) NoteReadDamage(s);
    }
    return s;
  };
  if (p < built_heads) RETURN_IF_ERROR(read_postings({p}, &built_ids, &built_rows, nullptr));
  {
    ReaderMutexLock lock(&mu_);
    for (VectorId id : built_ids) {
      if (id >= ids_.size() || !BaseEntryLive(id) || version_at.contains(id)) continue;
      members.push_back(id);
      take(id);
    }
  }
  // Exact rows of built vectors (a float16 posting holds rounded ones), from the store.
  // A vector deleted or replaced since it was read goes into `changed` (its step leaves it be).
  absl::flat_hash_set<VectorId> changed;
  const auto read_exact = [&](std::vector<VectorId>* ids) -> absl::Status {
    std::vector<std::string> keys;
    for (VectorId id : *ids) keys.push_back(IdKey(coll, id));
    std::vector<absl::StatusOr<std::string>> got = store_->MultiGet(Cf::kVectors, keys);
    std::vector<uint8_t> pf(row_bytes_);
    for (size_t i = 0; i < ids->size(); ++i) {
      const VectorId id = (*ids)[i];
      if (!got[i].ok() || got[i]->size() != row_bytes_) {
        ReaderMutexLock lock(&mu_);
        const IdState& st = ids_[id];
        if (absl::IsNotFound(got[i].status()) &&
            (!(st.flags & kLive) || st.version != version_at.at(id))) {
          changed.insert(id);  // deleted (or replaced) since: no longer this step's
          continue;
        }
        return absl::DataLossError(absl::StrCat("collection '", config_.name,
                                                "': the stored vector of internal id ", id,
                                                " is missing or malformed"));
      }
      ToPostingForm(reinterpret_cast<const uint8_t*>(got[i]->data()), pf.data());
      add_row(id, pf.data());
    }
    ids->clear();
    return absl::OkStatus();
  };
  // What the posting calls for, by its live members as read (the exact rows, read next, leave out
  // those deleted or replaced meanwhile).
  const uint64_t entries = (p < built_heads ? base->posting_entries(p) : 0) + keys_in_p.size();
  enum class Step { kSplit, kMerge, kRewrite, kSeed } step;
  // With no far vector left in p, its recorded radius comes down to what it measured (else the
  // radius would queue p again at every write that touches it).
  const auto narrow_radius = [&] {
    if (seed_radius <= 0 || !far.empty() || radius_was <= seed_radius) return;
    WriterMutexLock lock(&mu_);
    appended_radius_.Narrow(p, radius_stamp, kept_radius);
  };
  if (members.size() > limit) {
    step = Step::kSplit;
  } else if (!far.empty()) {
    step = Step::kSeed;  // vectors written far from every head
  } else if (members.size() < MergeBelow(limit) && heads_now > 1) {
    step = Step::kMerge;
  } else if (p < built_heads && entries > 2 * uint64_t{members.size()}) {
    step = Step::kRewrite;  // mostly dead entries
  } else {
    narrow_radius();
    return absl::OkStatus();
  }
  if (step == Step::kMerge && seed_radius > 0 && !members.empty()) {
    // A posting whose head no other lies near (a seed's, while few vectors joined it) keeps its
    // vectors: merged away, they would be far from every head and seeded again.
    bool alone = false;
    {
      ReaderMutexLock lock(&mu_);
      if (generation_ != generation) return absl::OkStatus();  // an install: p is gone
      RETURN_IF_ERROR(base->NearestHeads(old_head.data(), 2, &heads_overlay_, &hits));
      for (const HeadHit& hit : hits) {
        if (hit.second == p) continue;
        alone = kernels::EuclideanOf(config_.metric, hit.first) > seed_radius;
        break;
      }
    }
    if (alone) {
      narrow_radius();
      return absl::OkStatus();
    }
  }
  // A seed step takes the far vectors of other postings queued for them too (up to kSeedBatch
  // postings): one commit, and one sync, for them all. They stay, like p, with their other
  // vectors; each one's radius comes down to what its other primaries measure.
  struct Seeded {
    uint32_t posting;
    uint64_t stamp;
    float kept_radius;
  };
  std::vector<Seeded> also_seeded;
  std::vector<uint32_t> taken_too;  // the other postings taken off the queue into in_step_
  const auto release = absl::MakeCleanup([&] {
    if (taken_too.empty()) return;
    MutexLock pending_lock(&pending_mu_);
    for (uint32_t q : taken_too) in_step_.erase(q);
  });
  bool committed = false;
  // (Taken off the queue: queued again unless the step commits.)
  const auto requeue = absl::MakeCleanup([&] {
    if (committed || also_seeded.empty()) return;
    ReaderMutexLock lock(&mu_);
    if (generation_ != generation) return;  // an install started the queue over
    MutexLock pending_lock(&pending_mu_);
    for (const Seeded& s : also_seeded) pending_.insert(s.posting);
  });
  if (step == Step::kSeed) {
    ReaderMutexLock lock(&mu_);
    if (generation_ != generation) return absl::OkStatus();  // an install: p is gone
    std::vector<uint32_t> more;
    {
      MutexLock pending_lock(&pending_mu_);
      for (auto it = pending_.begin(); it != pending_.end() && more.size() < kSeedBatch;) {
        // (p itself, queued again by a write meanwhile, stays queued: its next step sees those.
        // So do postings another step works on.)
        if (*it != p && !in_step_.contains(*it) && appended_radius_.Of(*it) > seed_radius) {
          more.push_back(*it);
          taken_too.push_back(*it);
          in_step_.insert(*it);
          pending_.erase(it++);
        } else {
          ++it;
        }
      }
    }
    std::vector<uint32_t> left;  // taken off the queue, not looked at: queued again
    for (uint32_t q : more) {
      const uint8_t* hq = HeadRow(q);
      if (hq == nullptr) continue;  // (retired since it was queued)
      if (far.size() >= kSeedMostVectors) {
        left.push_back(q);
        continue;
      }
      Seeded& s = also_seeded.emplace_back(Seeded{q, appended_radius_.Stamp(q), 0});
      // Every live primary of q counts: a far one is taken (if p's read took it already, at this
      // version, as a replica of p's, it is far here all the same), any other one keeps q's
      // radius, so that it stays an upper bound.
      appended_.ForEachEntry(q, [&](VectorId id, uint8_t version) {
        mu_.AssertReaderHeld();
        const IdState& st = ids_[id];
        if (!(st.flags & kLive) || st.version != version || appended_.PostingsOf(id).front() != q) {
          return;
        }
        const float d =
            kernels::EuclideanOf(config_.metric, dist_(appended_.Row(id), hq, config_.dim));
        const auto taken = version_at.find(id);
        if (d > seed_radius && taken == version_at.end()) {
          far.push_back(id);
          take(id);
        } else if (d > seed_radius && taken->second == version) {
          far.push_back(id);
        } else {
          s.kept_radius = std::max(s.kept_radius, d);
        }
      });
    }
    if (!left.empty()) {
      MutexLock pending_lock(&pending_mu_);
      pending_.insert(left.begin(), left.end());
    }
  }
  if (step == Step::kSeed) {
    // Only the far vectors move: no other member's exact row is needed.
    const absl::flat_hash_set<VectorId> far_set(far.begin(), far.end());
    need.erase(std::remove_if(need.begin(), need.end(),
                              [&](VectorId id) { return !far_set.contains(id); }),
               need.end());
  }
  RETURN_IF_ERROR(read_exact(&need));
  if (!changed.empty()) {
    members.erase(std::remove_if(members.begin(), members.end(),
                                 [&](VectorId id) { return changed.contains(id); }),
                  members.end());
    far.erase(
        std::remove_if(far.begin(), far.end(), [&](VectorId id) { return changed.contains(id); }),
        far.end());
  }
  const size_t live = members.size();
  if (step == Step::kSplit && live <= limit) {
    // Deleted meanwhile: p waits for its next write, unless far vectors call for a seed step.
    if (!far.empty()) {
      MutexLock pending_lock(&pending_mu_);
      pending_.insert(p);
    }
    return absl::OkStatus();
  }
  internal::TwoWaySplit halves;
  std::vector<uint8_t> member_rows;
  if (step == Step::kSplit) {
    member_rows.reserve(live * row_bytes_);
    for (VectorId id : members)
      member_rows.insert(member_rows.end(), row_of(id), row_of(id) + row_bytes_);
    if (!internal::SplitInTwo(config_.type, config_.dim, member_rows.data(), live, p,
                              /*min_side=*/live / 8 + 1, &halves)) {
      return absl::OkStatus();  // fewer than two rows left: deleted meanwhile
    }
    // The neighbouring postings (SPFresh's second condition, below).
    ReaderMutexLock lock(&mu_);
    if (generation_ != generation) return absl::OkStatus();  // an install: p is gone
    RETURN_IF_ERROR(
        base->NearestHeads(old_head.data(), kSplitNeighbours + 1, &heads_overlay_, &hits));
    for (const HeadHit& hit : hits) {
      if (hit.second != p && neighbours.size() < kSplitNeighbours) neighbours.push_back(hit.second);
    }
  }

  // SPFresh's second condition: a vector of a neighbouring posting that is nearer a new head than
  // its own posting's is reassigned when no other neighbouring head is nearer still (its nearest
  // head, as far as the neighbourhood tells, is now a new one).
  std::vector<uint8_t> nheads;  // the neighbours' head rows
  {
    ReaderMutexLock lock(&mu_);
    for (uint32_t q : neighbours) {
      const uint8_t* hq = q < built_heads ? base->head_vector(q) : heads_overlay_.Row(q);
      if (hq != nullptr) nheads.insert(nheads.end(), hq, hq + row_bytes_);
    }
  }
  const size_t nn = nheads.size() / row_bytes_;
  // Whether no neighbouring head is nearer `r` than `d`: as far as the neighbourhood tells, a
  // head at distance d is r's nearest.
  const auto nearest_at = [&](const uint8_t* r, float d) {
    for (size_t i = 0; i < nn; ++i) {
      if (dist_(r, nheads.data() + i * row_bytes_, config_.dim) < d) return false;
    }
    return true;
  };
  std::vector<VectorId> candidates;
  struct Remeasured {
    uint32_t posting;
    uint64_t stamp;
    float radius;
  };
  std::vector<Remeasured> remeasured;  // far postings' radii, measured again
  if (step == Step::kSplit) {
    const uint8_t* h0 = member_rows.data() + halves.head[0] * row_bytes_;
    const uint8_t* h1 = member_rows.data() + halves.head[1] * row_bytes_;
    const size_t most = 2 * size_t{limit};
    // The neighbours' heads and appended entries, then their built postings in one batch of reads.
    struct Neighbour {
      std::vector<uint8_t> head;
      std::vector<VectorId> ids;  // appended entries, then built ones
      std::vector<uint8_t> rows;
      size_t appended = 0;
    };
    std::vector<Neighbour> around;
    std::vector<uint32_t> far_postings;  // beyond the neighbourhood: their appended entries only
    std::vector<uint32_t> built_around;  // built neighbours, and where they are in `around`
    std::vector<size_t> built_at;
    const bool euclidean = config_.metric != Metric::kInnerProduct;
    // A head's Euclidean distance to the nearer new head.
    const auto to_new_head = [&](const uint8_t* hq) {
      return std::min(kernels::EuclideanOf(config_.metric, dist_(hq, h0, config_.dim)),
                      kernels::EuclideanOf(config_.metric, dist_(hq, h1, config_.dim)));
    };
    float far_from = -1;  // < 0: every head is a neighbour, or no bound (inner product)
    if (euclidean && hits.size() >= kSplitNeighbours + 1) {
      const float spread =
          std::max(kernels::EuclideanOf(config_.metric, dist_(old_head.data(), h0, config_.dim)),
                   kernels::EuclideanOf(config_.metric, dist_(old_head.data(), h1, config_.dim)));
      far_from =
          std::max(0.0f, (kernels::EuclideanOf(config_.metric, hits.back().first) - spread) / 2);
    }
    {
      ReaderMutexLock lock(&mu_);
      for (uint32_t q : neighbours) {
        const uint8_t* hq = q < built_heads ? base->head_vector(q) : heads_overlay_.Row(q);
        if (hq == nullptr) continue;
        Neighbour& nb = around.emplace_back();
        nb.head.assign(hq, hq + row_bytes_);
        appended_.ForEach(q, [&](VectorId id, const uint8_t* row) {
          nb.ids.push_back(id);
          nb.rows.insert(nb.rows.end(), row, row + row_bytes_);
        });
        nb.appended = nb.ids.size();
        if (q < built_heads) {
          built_around.push_back(q);
          built_at.push_back(around.size() - 1);
        }
      }
      // Postings beyond the neighbourhood whose appended primaries may reach a new head. One
      // beyond it has its head at least r_far - spread from a new head (r_far: the farthest
      // neighbour's distance from the old head; spread: the new heads' own), so only radii over
      // half of that can reach (as far as the graph's walk found the neighbourhood exactly).
      if (far_from >= 0) {
        const absl::flat_hash_set<uint32_t> near_set(neighbours.begin(), neighbours.end());
        size_t visited = 0;  // (bounded too: the lock is held)
        appended_radius_.ForEachWiderThan(far_from, [&](uint32_t q, float r) {
          mu_.AssertReaderHeld();
          if (q == p || near_set.contains(q)) return true;
          const uint8_t* hq = HeadRow(q);
          if (hq != nullptr && to_new_head(hq) < 2.0f * r) far_postings.push_back(q);
          return far_postings.size() < kFarPostings && ++visited < 8 * kFarPostings;
        });
      }
    }
    {
      std::vector<VectorId> ids;
      std::vector<uint8_t> qrows;
      std::vector<size_t> ends;
      RETURN_IF_ERROR(read_postings(built_around, &ids, &qrows, &ends));
      size_t from = 0;
      for (size_t j = 0; j < built_around.size(); ++j) {
        Neighbour& nb = around[built_at[j]];
        nb.ids.insert(nb.ids.end(), ids.begin() + from, ids.begin() + ends[j]);
        nb.rows.insert(nb.rows.end(), qrows.begin() + from * row_bytes_,
                       qrows.begin() + ends[j] * row_bytes_);
        from = ends[j];
      }
    }
    for (const Neighbour& nb : around) {
      ReaderMutexLock lock(&mu_);  // (a neighbour at a time: writers go on between)
      for (size_t i = 0; i < nb.ids.size() && candidates.size() < most; ++i) {
        const VectorId id = nb.ids[i];
        if (version_at.contains(id)) continue;  // a member, or already a candidate
        if (i >= nb.appended ? id >= ids_.size() || !BaseEntryLive(id)
                             : !(ids_[id].flags & kLive)) {
          continue;  // dead, or deleted since it was read
        }
        const uint8_t* r = nb.rows.data() + i * row_bytes_;
        const float to_new = std::min(dist_(r, h0, config_.dim), dist_(r, h1, config_.dim));
        if (to_new >= dist_(r, nb.head.data(), config_.dim) || !nearest_at(r, to_new)) continue;
        candidates.push_back(id);
        take(id);
      }
    }
    // The far postings' entries, in memory: as above, for the entries far enough from their
    // head to be nearer a new head (|v - h| < |v - hq| needs |v - hq| > |hq - h| / 2). Each far
    // posting's radius is measured again over its primaries on the way: the commit narrows the
    // recorded one to it, unless it grew meanwhile (so the widest are not the same ones always).
    for (uint32_t q : far_postings) {
      ReaderMutexLock lock(&mu_);
      const uint8_t* hq = HeadRow(q);
      if (hq == nullptr) continue;
      const float half_way = to_new_head(hq) / 2;
      float radius = 0;
      appended_.ForEach(q, [&](VectorId id, const uint8_t* r) {
        mu_.AssertReaderHeld();
        const float own = dist_(r, hq, config_.dim);
        if (appended_.PostingsOf(id).front() == q) {
          radius = std::max(radius, kernels::EuclideanOf(config_.metric, own));
        }
        if (candidates.size() >= most || version_at.contains(id)) return;
        if (!(kernels::EuclideanOf(config_.metric, own) > half_way)) return;
        const float to_new = std::min(dist_(r, h0, config_.dim), dist_(r, h1, config_.dim));
        if (to_new >= own || !nearest_at(r, to_new)) return;
        candidates.push_back(id);
        take(id);
      });
      remeasured.push_back({q, appended_radius_.Stamp(q), radius});
    }
    RETURN_IF_ERROR(read_exact(&need));
    if (!changed.empty()) {
      candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                      [&](VectorId id) { return changed.contains(id); }),
                       candidates.end());
    }
  }

  // The step, worked out beside the writers: the heads after it, each member's move, the
  // reassignments (the replica rule over the heads after it).
  std::optional<internal::HeadOverlay> next;
  uint64_t heads_version = 0;  // heads_version_ as `next` copied the heads
  {
    ReaderMutexLock lock(&mu_);
    if (generation_ != generation) return absl::OkStatus();  // an install: p is gone
    next.emplace(heads_overlay_);
    heads_version = heads_version_;
  }
  if (step != Step::kSeed) next->Retire(p);
  std::vector<uint32_t> new_heads;
  const auto add_head = [&](const uint8_t* row) {
    const uint32_t h = NewHeadNumber(*next);
    next->Add(h, row);
    new_heads.push_back(h);
  };
  if (step == Step::kSplit) {
    add_head(member_rows.data() + halves.head[0] * row_bytes_);
    add_head(member_rows.data() + halves.head[1] * row_bytes_);
  } else if (step == Step::kRewrite) {
    add_head(old_head.data());
  }
  // The new head nearer `row` (a split or rewrite).
  const auto nearer_new = [&](const uint8_t* row) {
    if (new_heads.size() < 2) return new_heads[0];
    return next->Distance(row, new_heads[1]) < next->Distance(row, new_heads[0]) ? new_heads[1]
                                                                                 : new_heads[0];
  };
  std::vector<std::pair<VectorId, uint32_t>> moves;                   // one entry, in a new head
  std::vector<std::pair<VectorId, std::vector<uint32_t>>> reassigns;  // the postings it joins
  const auto reassign = [&](VectorId id, const uint8_t* row) -> absl::Status {
    std::vector<uint32_t> postings;
    RETURN_IF_ERROR(
        base->AssignPostings(VectorView{config_.type, {row, row_bytes_}}, &*next, &postings));
    reassigns.emplace_back(id, std::move(postings));
    return absl::OkStatus();
  };
  // A split's members go to the nearer new head, unless that leaves a half under an eighth of
  // them (rows all alike, or nearly: both heads at the same distance from most): then to the
  // halves SplitInTwo balanced. Either way both halves shrink, so splits cannot go on forever.
  bool by_side = false;
  if (step == Step::kSplit) {
    size_t second = 0;
    for (VectorId id : members) second += nearer_new(row_of(id)) == new_heads[1];
    const size_t least = std::min(live / 8 + 1, live / 2);
    by_side = std::min(second, live - second) < least;
  }
  // A seed step: each far vector in turn is reassigned over the heads so far (those the step adds
  // included, so that a far vector near an earlier one joins it); one whose nearest head is still
  // past seed_radius becomes a head instead, its posting its own alone (the replica rule keeps no
  // other: every other head is as near the new head as the vector). p stays, with its other
  // members.
  // Whether `row`, reassigned to `postings`, is still past seed_radius from its primary (the
  // nearest head).
  const auto still_far = [&](const uint8_t* row, const std::vector<uint32_t>& postings) {
    const uint32_t primary = postings.front();
    const uint8_t* head = primary < built_heads ? base->head_vector(primary) : next->Row(primary);
    return seed_radius > 0 &&
           kernels::EuclideanOf(config_.metric, dist_(row, head, config_.dim)) > seed_radius;
  };
  if (step == Step::kSeed) {
    for (VectorId id : far) {
      const uint8_t* row = row_of(id);
      RETURN_IF_ERROR(reassign(id, row));
      std::vector<uint32_t>& postings = reassigns.back().second;
      if (still_far(row, postings)) {
        add_head(row);
        postings.assign(1, new_heads.back());
      }
    }
  }
  // The reassignments of a split, merge or rewrite, walked after the loop below.
  std::vector<VectorId> to_walk;
  for (size_t i = 0; i < members.size() && step != Step::kSeed; ++i) {
    const VectorId id = members[i];
    const uint8_t* row = row_of(id);
    if (step == Step::kMerge) {
      to_walk.push_back(id);
      continue;
    }
    const uint32_t to = by_side ? new_heads[halves.side[i]] : nearer_new(row);
    // SPFresh's first condition: a vector whose nearest head was the old one, and which is no
    // nearer a new head than it was to the old one, may now be nearest another head: then it is
    // reassigned. (One that was here as a further replica, nearer another head all along, stays a
    // replica here, in the nearer half.)
    if (step == Step::kSplit) {
      const float d_old = dist_(row, old_head.data(), config_.dim);
      const float d_new = next->Distance(row, to);
      if (d_old <= d_new && nearest_at(row, d_old) && !nearest_at(row, d_new)) {
        to_walk.push_back(id);
        continue;
      }
    }
    moves.emplace_back(id, to);
  }
  to_walk.insert(to_walk.end(), candidates.begin(), candidates.end());
  for (VectorId id : to_walk) RETURN_IF_ERROR(reassign(id, row_of(id)));
  if (step == Step::kMerge) {
    // A posting whose vectors no other head lies near (a seed's, while few vectors joined it)
    // stays: merged, they would be far from every head and seeded again.
    for (const auto& [id, postings] : reassigns) {
      if (still_far(row_of(id), postings)) {
        narrow_radius();
        return absl::OkStatus();
      }
    }
  }

  // The commit: what still holds of the step, and the vectors appended to p meanwhile.
  WriteBatch batch;
  struct Reassigned {
    VectorId id;
    IdState state;
    const uint8_t* row;
    std::vector<uint32_t> postings;
  };
  std::vector<Reassigned> reassigned;
  std::vector<std::pair<VectorId, uint32_t>> moved;
  std::vector<uint8_t> late_rows;  // rows of vectors appended to p meanwhile
  std::vector<std::pair<VectorId, size_t>> late_row_at;
  const auto plan = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    RETURN_IF_ERROR(CheckNotDropped());
    if (generation_ != generation) return absl::OkStatus();  // an install: p is gone
    if (building_) {
      // A build began: nothing is committed, and p waits for the build (the install starts
      // the queue over; a failed build leaves p queued).
      MutexLock pending_lock(&pending_mu_);
      pending_.insert(p);
      return absl::OkStatus();
    }
    const auto unchanged = [&](VectorId id) {
      mu_.AssertReaderHeld();  // plan's
      const IdState& st = ids_[id];
      return (st.flags & kLive) && st.version == version_at.at(id);
    };
    // Other steps changed the heads since `next` copied them: this step's head changes again,
    // over the heads as they are now (no other step retires p: it is this step's), and the
    // reassignments walked again over those that lost a head retired meanwhile or whose vector
    // another step moved meanwhile (a move keeps the version).
    if (heads_version_ != heads_version) {
      std::vector<std::vector<uint8_t>> head_rows;
      for (uint32_t h : new_heads) head_rows.emplace_back(next->Row(h), next->Row(h) + row_bytes_);
      next.emplace(heads_overlay_);
      if (step != Step::kSeed) next->Retire(p);
      for (size_t i = 0; i < new_heads.size(); ++i) next->Add(new_heads[i], head_rows[i].data());
      const auto retired = [&](uint32_t h) {
        return h < next->built_heads() ? next->IsRetired(h) : !next->IsAdded(h);
      };
      for (auto& [id, postings] : reassigns) {
        const absl::Span<const uint32_t> now = appended_.PostingsOf(id);
        const std::vector<uint32_t>& then = postings_at.at(id);
        if (std::none_of(postings.begin(), postings.end(), retired) &&
            std::equal(now.begin(), now.end(), then.begin(), then.end())) {
          continue;
        }
        RETURN_IF_ERROR(base->AssignPostings(VectorView{config_.type, {row_of(id), row_bytes_}},
                                             &*next, &postings));
      }
    }
    absl::flat_hash_set<VectorId> planned;
    const auto plan_reassign = [&](VectorId id, const uint8_t* row,
                                   std::vector<uint32_t> postings) {
      mu_.AssertReaderHeld();  // plan's
      Reassigned r{id, ids_[id], row, std::move(postings)};
      r.state.version = internal::NextVersion(r.state);
      batch.Put(Cf::kVersions, IdKey(coll, id), VersionValue(r.state));
      batch.Put(Cf::kPostings, IdKey(coll, id), PostingsValue(r.state.version, r.postings));
      planned.insert(id);
      reassigned.push_back(std::move(r));
    };
    const auto plan_move = [&](VectorId id, uint32_t to) {
      mu_.AssertReaderHeld();  // plan's
      // Its postings after the step: `to` in p's place (apply's AddEntry and TakePosting), or
      // added (a built vector's first appended entry).
      const absl::Span<const uint32_t> now = appended_.PostingsOf(id);
      std::vector<uint32_t> after(now.begin(), now.end());
      if (auto at = std::find(after.begin(), after.end(), p); at != after.end()) {
        *at = to;
      } else {
        after.push_back(to);
      }
      batch.Put(Cf::kPostings, IdKey(coll, id), PostingsValue(ids_[id].version, after));
      planned.insert(id);
      moved.emplace_back(id, to);
    };
    // A reassignment that would give a vector the postings it has, primary first, is left out.
    const auto has_already = [&](VectorId id, const std::vector<uint32_t>& postings) {
      mu_.AssertReaderHeld();               // plan's
      if (BaseEntryLive(id)) return false;  // (it would leave the built postings)
      const absl::Span<const uint32_t> now = appended_.PostingsOf(id);
      return now.size() == postings.size() && !now.empty() && now[0] == postings[0] &&
             std::is_permutation(now.begin(), now.end(), postings.begin());
    };
    for (auto& [id, postings] : reassigns) {
      // (The row too: a version byte could come round to the same value meanwhile.)
      const uint8_t* now = ExactRow(id);
      if (unchanged(id) && (now == nullptr || std::memcmp(now, row_of(id), row_bytes_) == 0) &&
          !has_already(id, postings)) {
        plan_reassign(id, row_of(id), std::move(postings));
      }
    }
    for (const auto& [id, to] : moves) {
      if (unchanged(id)) plan_move(id, to);
    }
    if (step == Step::kSeed) {
      // A new head no planned reassignment joins (its vectors changed meanwhile) is not added.
      absl::flat_hash_set<uint32_t> joined;
      for (const Reassigned& r : reassigned) joined.insert(r.postings.begin(), r.postings.end());
      const auto unjoined = [&](uint32_t h) { return !joined.contains(h); };
      for (uint32_t h : new_heads) {
        if (unjoined(h)) next->Retire(h);
      }
      new_heads.erase(std::remove_if(new_heads.begin(), new_heads.end(), unjoined),
                      new_heads.end());
    }
    // p's entries now: a live one no plan covers was appended meanwhile. (The others' records
    // no longer list p: a dead vector's record went with it, a replaced one's was rewritten. A
    // seed step leaves p and the rest of its entries be.)
    std::vector<VectorId> late;
    if (step != Step::kSeed)
      appended_.ForEachEntry(p, [&](VectorId id, uint8_t version) {
        mu_.AssertReaderHeld();  // plan's
        const IdState& st = ids_[id];
        if ((st.flags & kLive) && st.version == version && !planned.contains(id))
          late.push_back(id);
      });
    for (VectorId id : late) {
      const uint8_t* row = appended_.Row(id);
      late_row_at.emplace_back(id, late_rows.size());
      late_rows.insert(late_rows.end(), row, row + row_bytes_);
      if (!new_heads.empty()) {
        plan_move(id, nearer_new(row));
      } else {
        std::vector<uint32_t> postings;
        RETURN_IF_ERROR(
            base->AssignPostings(VectorView{config_.type, {row, row_bytes_}}, &*next, &postings));
        plan_reassign(id, nullptr, std::move(postings));
      }
    }
    if (step == Step::kSeed) {
      // p stays.
    } else if (p < built_heads) {
      batch.Put(Cf::kHeads, HeadKey(coll, p), "");  // retired
    } else {
      batch.Delete(Cf::kHeads, HeadKey(coll, p));
    }
    for (uint32_t h : new_heads) {
      batch.Put(Cf::kHeads, HeadKey(coll, h),
                absl::string_view(reinterpret_cast<const char*>(next->Row(h)), row_bytes_));
    }
    // (A vector with a row keeps its slot.)
    rows_wanted_ = 0;
    for (const auto& [id, to] : moved) rows_wanted_ += !appended_.HasRow(id);
    for (const Reassigned& r : reassigned) rows_wanted_ += !appended_.HasRow(r.id);
    return absl::OkStatus();
  };
  const auto apply = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    committed = true;
    if (step != Step::kSeed || !new_heads.empty()) {
      heads_overlay_ = std::move(*next);
      ++heads_version_;
    }
    if (step == Step::kSeed) {
      // (Their far primaries leave them.)
      appended_radius_.Narrow(p, radius_stamp, kept_radius);
      for (const Seeded& s : also_seeded) {
        appended_radius_.Narrow(s.posting, s.stamp, s.kept_radius);
      }
      // Queued again if they call for anything still (too long, or far vectors left).
      std::vector<uint32_t> batch_postings;
      for (const Seeded& s : also_seeded) batch_postings.push_back(s.posting);
      NotePostings(batch_postings, /*shrunk=*/true);
    } else {
      appended_radius_.Erase(p);
    }
    for (const Remeasured& m : remeasured) appended_radius_.Narrow(m.posting, m.stamp, m.radius);
    // Postings to look at next: those that grew (a split's halves are never too short: each
    // holds at least an eighth of the members, above) and those that shrank.
    std::vector<uint32_t> touched(new_heads.begin(), new_heads.end()), shrunk;
    std::vector<uint8_t> rounded;
    const auto row_now = [&](VectorId id) -> const uint8_t* {
      for (const auto& [late_id, at] : late_row_at) {
        if (late_id == id) return late_rows.data() + at;
      }
      return row_of(id);
    };
    for (const auto& [id, to] : moved) {
      if (!appended_.HasRow(id)) {
        // A built vector: scored everywhere as its built replicas are (float16-rounded).
        appended_.PutRow(id, BuiltForm(row_of(id), &rounded));
      }
      appended_.AddEntry(to, id, ids_[id].version, /*in_place_of=*/p);
      if (appended_.PostingsOf(id).front() == to) GrowRadius(to, appended_.Row(id));
    }
    // (After the moves, which take p's place in their lists.)
    if (step != Step::kSeed) (void)appended_.TakePosting(p);
    for (const Reassigned& r : reassigned) {
      const uint8_t* row = r.row != nullptr ? r.row : row_now(r.id);
      const absl::Span<const uint32_t> left = appended_.PostingsOf(r.id);
      shrunk.insert(shrunk.end(), left.begin(), left.end());
      DropAppended(r.id);
      ids_[r.id] = r.state;
      AddAppended(r.id, row, r.postings);
      SetSkip(r.id);
      touched.insert(touched.end(), r.postings.begin(), r.postings.end());
    }
    maintained_.reassigned += reassigned.size();
    switch (step) {
      case Step::kSplit:
        ++maintained_.splits;
        break;
      case Step::kMerge:
        ++maintained_.merges;
        break;
      case Step::kRewrite:
        ++maintained_.rewrites;
        break;
      case Step::kSeed:
        maintained_.seeds += new_heads.size();
        break;
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    NotePostings(touched, /*shrunk=*/false);
    std::sort(shrunk.begin(), shrunk.end());
    shrunk.erase(std::unique(shrunk.begin(), shrunk.end()), shrunk.end());
    NotePostings(shrunk, /*shrunk=*/true);
  };
  if (options_.test_before_maintenance_commit) options_.test_before_maintenance_commit(old_head);
  {
    MutexLock write_lock(&write_mu_);
    RETURN_IF_ERROR(Write(&batch, plan, apply, Commit::kMaintenance));
  }
  if (!committed) return absl::OkStatus();
  Log(LogLevel::kDebug, "collection '%s': posting %d (%d live of %d entries) %s", config_.name, p,
      live, entries,
      step == Step::kSplit   ? absl::StrCat("split into ", new_heads[0], " and ", new_heads[1])
      : step == Step::kMerge ? std::string("merged away")
      : step == Step::kSeed
          ? absl::StrCat(far.size(), " far vectors given ", new_heads.size(), " new heads")
          : absl::StrCat("rewritten as ", new_heads[0]));
  return absl::OkStatus();
}

}  // namespace strata::collection_internal
