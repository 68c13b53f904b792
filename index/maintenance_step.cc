// One step of posting maintenance (SPFresh's LIRE) on one posting: CollectionImpl::MaintenanceStep
// reads the posting, decides what it calls for (a split, a merge, a rewrite, or heads for
// vectors written far from every head), works the step out beside writers and other steps, and
// commits it under the writer lock. The queue and the threads that run steps are in
// posting_maintenance.cc ("Posting maintenance" in index/collection.h; "Maintenance" in
// docs/ARCHITECTURE.md).
#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "index/internal/collection_impl.h"
#include "index/internal/posting_split.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {
namespace {
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
// Postings a seed step takes the far vectors of at most (one commit and one sync for them all).
constexpr size_t kSeedBatch = 64;
// ... and stops taking more once it holds this many far vectors (a step's size is bounded).
constexpr size_t kSeedMostVectors = 512;
}  // namespace

// The step on posting p. Everything up to the commit runs beside writers and other steps (on
// other postings), reading the collection's state under mu_ shared, a piece at a time. The
// commit's plan, under write_mu_, keeps only the moves and reassignments whose vectors did not
// change meanwhile, moves the vectors that joined p meanwhile, and when other steps changed the
// heads meanwhile, makes this step's own head changes again over the heads as they are and walks
// again the reassignments those changes touch.
//
// Each phase returns false (or an error) when the step ends there; Run() goes through them in
// order. Not thread-safe: one thread runs a step, once.
class CollectionImpl::MaintenanceStep {
 public:
  MaintenanceStep(CollectionImpl* c, uint32_t p) : c_(*c), p_(p) {}
  // Postings a seed step took off the queue go back to it unless the step committed.
  ~MaintenanceStep();
  MaintenanceStep(const MaintenanceStep&) = delete;
  MaintenanceStep& operator=(const MaintenanceStep&) = delete;

  absl::Status Run() ABSL_LOCKS_EXCLUDED(c_.write_mu_, c_.mu_);

 private:
  enum class Kind { kSplit, kMerge, kRewrite, kSeed };
  struct Seeded {  // another posting whose far vectors a seed step takes
    uint32_t posting;
    uint64_t stamp;
    float kept_radius;
  };
  struct Remeasured {  // a far posting's radius, measured again
    uint32_t posting;
    uint64_t stamp;
    float radius;
  };
  struct Reassigned {  // a reassignment the commit keeps
    VectorId id;
    IdState state;
    const uint8_t* row;
    std::vector<uint32_t> postings;
  };

  // The phases, in order.
  absl::StatusOr<bool> ReadAppendedMembers() ABSL_LOCKS_EXCLUDED(c_.mu_);
  absl::Status ReadBuiltMembers() ABSL_LOCKS_EXCLUDED(c_.mu_);
  bool Decide() ABSL_LOCKS_EXCLUDED(c_.mu_);
  absl::StatusOr<bool> MergeCanGo() ABSL_LOCKS_EXCLUDED(c_.mu_);
  bool TakeOtherSeeds() ABSL_LOCKS_EXCLUDED(c_.mu_);
  absl::StatusOr<bool> ReadMemberRows() ABSL_LOCKS_EXCLUDED(c_.mu_);
  absl::StatusOr<bool> SplitAndFindNeighbours() ABSL_LOCKS_EXCLUDED(c_.mu_);
  absl::Status FindCandidates() ABSL_LOCKS_EXCLUDED(c_.mu_);
  absl::StatusOr<bool> WorkOut() ABSL_LOCKS_EXCLUDED(c_.mu_);
  absl::Status CommitStep() ABSL_LOCKS_EXCLUDED(c_.write_mu_, c_.mu_);
  absl::Status Plan(WriteBatch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c_.write_mu_)
      ABSL_SHARED_LOCKS_REQUIRED(c_.mu_);
  void Apply() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c_.write_mu_, c_.mu_);
  void LogDone() const;

  // Takes vector `id` into the step: the version it has now, its appended postings, and its row
  // (from memory, or later from the store when memory holds it rounded).
  void Take(VectorId id) ABSL_SHARED_LOCKS_REQUIRED(c_.mu_);
  void AddRow(VectorId id, const uint8_t* row) {
    row_at_[id] = rows_.size();
    rows_.insert(rows_.end(), row, row + c_.row_bytes_);
  }
  const uint8_t* RowOf(VectorId id) const { return rows_.data() + row_at_.at(id); }
  // Reads postings `qs` of the base; a posting failing its checksum is damage, reported as a
  // search's would be.
  absl::Status ReadPostings(absl::Span<const uint32_t> qs, std::vector<VectorId>* ids,
                            std::vector<uint8_t>* rows, std::vector<size_t>* ends)
      ABSL_LOCKS_EXCLUDED(c_.mu_);
  // The exact rows of the vectors in need_ (a float16 posting holds rounded ones), from the
  // store. A vector deleted or replaced since it was taken goes into changed_ and out of `from`.
  absl::Status ReadExact(std::vector<VectorId>* from) ABSL_LOCKS_EXCLUDED(c_.mu_);
  // With no far vector left in p, its recorded radius comes down to what it measured (else the
  // radius would queue p again at every write that touches it).
  void NarrowRadius() ABSL_LOCKS_EXCLUDED(c_.mu_);
  // Whether no neighbouring head is nearer `row` than `d`: as far as the neighbourhood tells, a
  // head at distance d is row's nearest.
  bool NearestAt(const uint8_t* row, float d) const;
  // The new head nearer `row` (a split or rewrite).
  uint32_t NearerNew(const uint8_t* row) const;
  // Whether `row`, reassigned to `postings`, is still past the seed radius from its primary.
  bool StillFar(const uint8_t* row, const std::vector<uint32_t>& postings) const;
  void AddHead(const uint8_t* row);
  // The postings the replica rule gives `row` over next_.
  absl::Status Assign(const uint8_t* row, std::vector<uint32_t>* postings) const {
    return base_->AssignPostings(VectorView{c_.config_.type, {row, c_.row_bytes_}}, &*next_,
                                 postings);
  }

  CollectionImpl& c_;
  const uint32_t p_;
  Kind kind_ = Kind::kRewrite;

  // Read first.
  std::shared_ptr<SpannIndex> base_;
  uint64_t generation_read_ = 0;
  uint32_t limit_ = 0, built_heads_ = 0;
  uint64_t heads_now_ = 0;
  uint64_t entries_ = 0;  // p's entries, dead ones included
  std::vector<uint8_t> old_head_;
  std::vector<VectorId> keys_in_p_;  // every appended entry of p
  // Vectors and their rows (posting form): the posting's live members, then the neighbours'
  // vectors that may move.
  std::vector<uint8_t> rows_;
  absl::flat_hash_map<VectorId, size_t> row_at_;
  // The versions the vectors had when taken: a plan for a vector changed since is dropped. And
  // their appended postings then: another step's move changes those, not the version.
  absl::flat_hash_map<VectorId, uint8_t> version_at_;
  absl::flat_hash_map<VectorId, std::vector<uint32_t>> postings_at_;
  std::vector<VectorId> members_;
  size_t live_ = 0;  // members_ once their rows are read
  // Appended members whose primary is p and which lie past the seed radius from its head (a seed
  // step gives them heads), and how far the other primaries lie (p's radius after it).
  std::vector<VectorId> far_;
  float seed_radius_read_ = 0, kept_radius_ = 0, radius_was_ = 0;
  uint64_t radius_stamp_ = 0;
  std::vector<VectorId> need_;             // taken vectors whose exact rows the store holds
  absl::flat_hash_set<VectorId> changed_;  // taken, then deleted or replaced meanwhile
  std::vector<HeadHit> hits_;

  // A seed step's other postings.
  std::vector<Seeded> also_seeded_;
  std::vector<uint32_t> taken_too_;  // taken off the queue into in_step_
  bool committed_ = false;

  // A split's halves, its neighbourhood, and the neighbours' vectors that may move.
  internal::TwoWaySplit halves_;
  std::vector<uint8_t> member_rows_;
  std::vector<uint32_t> neighbours_;
  std::vector<uint8_t> nheads_;  // the neighbours' head rows
  std::vector<VectorId> candidates_;
  std::vector<Remeasured> remeasured_;

  // Worked out: the heads after the step, each member's move, the reassignments.
  std::optional<internal::HeadOverlay> next_;
  uint64_t heads_version_copied_ = 0;  // the collection's heads_version_ as next_ copied them
  std::vector<uint32_t> new_heads_;
  std::vector<std::pair<VectorId, uint32_t>> moves_;                   // one entry, in a new head
  std::vector<std::pair<VectorId, std::vector<uint32_t>>> reassigns_;  // the postings it joins

  // What the commit keeps.
  std::vector<Reassigned> reassigned_;
  std::vector<std::pair<VectorId, uint32_t>> moved_;
  std::vector<uint8_t> late_rows_;  // rows of vectors appended to p meanwhile
  std::vector<std::pair<VectorId, size_t>> late_row_at_;
};

CollectionImpl::MaintenanceStep::~MaintenanceStep() {
  if (!committed_ && !also_seeded_.empty()) {
    ReaderMutexLock lock(&c_.mu_);
    if (c_.generation_ == generation_read_) {  // (else an install started the queue over)
      MutexLock pending_lock(&c_.pending_mu_);
      for (const Seeded& s : also_seeded_) c_.pending_.insert(s.posting);
    }
  }
  if (!taken_too_.empty()) {
    MutexLock pending_lock(&c_.pending_mu_);
    for (uint32_t q : taken_too_) c_.in_step_.erase(q);
  }
}

absl::Status CollectionImpl::MaintenanceStep::Run() {
  RETURN_IF_ERROR(c_.CheckNotDropped());
  ASSIGN_OR_RETURN(bool go, ReadAppendedMembers());
  if (!go) return absl::OkStatus();
  RETURN_IF_ERROR(ReadBuiltMembers());
  if (!Decide()) return absl::OkStatus();
  if (kind_ == Kind::kMerge) {
    ASSIGN_OR_RETURN(go, MergeCanGo());
    if (!go) return absl::OkStatus();
  }
  if (kind_ == Kind::kSeed && !TakeOtherSeeds()) return absl::OkStatus();
  ASSIGN_OR_RETURN(go, ReadMemberRows());
  if (!go) return absl::OkStatus();
  if (kind_ == Kind::kSplit) {
    ASSIGN_OR_RETURN(go, SplitAndFindNeighbours());
    if (!go) return absl::OkStatus();
    RETURN_IF_ERROR(FindCandidates());
  }
  ASSIGN_OR_RETURN(go, WorkOut());
  if (!go) return absl::OkStatus();
  RETURN_IF_ERROR(CommitStep());
  if (committed_) LogDone();
  return absl::OkStatus();
}

void CollectionImpl::MaintenanceStep::Take(VectorId id) {
  version_at_[id] = c_.ids_[id].version;
  const absl::Span<const uint32_t> postings = c_.appended_.PostingsOf(id);
  postings_at_[id].assign(postings.begin(), postings.end());
  if (const uint8_t* r = c_.ExactRow(id)) {
    AddRow(id, r);
  } else {
    need_.push_back(id);  // a built vector moved here before (memory holds it rounded)
  }
}

absl::Status CollectionImpl::MaintenanceStep::ReadPostings(absl::Span<const uint32_t> qs,
                                                           std::vector<VectorId>* ids,
                                                           std::vector<uint8_t>* rows,
                                                           std::vector<size_t>* ends) {
  absl::Status s = base_->ReadPostings(qs, ids, rows, ends);
  if (absl::IsDataLoss(s)) {
    ReaderMutexLock lock(&c_.mu_);
    if (c_.generation_ == generation_read_) c_.NoteReadDamage(s);
  }
  return s;
}

absl::Status CollectionImpl::MaintenanceStep::ReadExact(std::vector<VectorId>* from) {
  std::vector<std::string> keys;
  for (VectorId id : need_) keys.push_back(IdKey(c_.config_.id, id));
  std::vector<absl::StatusOr<std::string>> got = c_.store_->MultiGet(Cf::kVectors, keys);
  std::vector<uint8_t> pf(c_.row_bytes_);
  for (size_t i = 0; i < need_.size(); ++i) {
    const VectorId id = need_[i];
    if (!got[i].ok() || got[i]->size() != c_.row_bytes_) {
      ReaderMutexLock lock(&c_.mu_);
      const IdState& st = c_.ids_[id];
      if (absl::IsNotFound(got[i].status()) &&
          (!(st.flags & kLive) || st.version != version_at_.at(id))) {
        changed_.insert(id);  // deleted (or replaced) since: no longer this step's
        continue;
      }
      return absl::DataLossError(absl::StrCat("collection '", c_.config_.name,
                                              "': the stored vector of internal id ", id,
                                              " is missing or malformed"));
    }
    c_.ToPostingForm(reinterpret_cast<const uint8_t*>(got[i]->data()), pf.data());
    AddRow(id, pf.data());
  }
  need_.clear();
  if (!changed_.empty()) {
    from->erase(std::remove_if(from->begin(), from->end(),
                               [&](VectorId id) { return changed_.contains(id); }),
                from->end());
  }
  return absl::OkStatus();
}

void CollectionImpl::MaintenanceStep::NarrowRadius() {
  if (seed_radius_read_ <= 0 || !far_.empty() || radius_was_ <= seed_radius_read_) return;
  WriterMutexLock lock(&c_.mu_);
  c_.appended_radius_.Narrow(p_, radius_stamp_, kept_radius_);
}

bool CollectionImpl::MaintenanceStep::NearestAt(const uint8_t* row, float d) const {
  const size_t n = nheads_.size() / c_.row_bytes_;
  for (size_t i = 0; i < n; ++i) {
    if (c_.dist_(row, nheads_.data() + i * c_.row_bytes_, c_.config_.dim) < d) return false;
  }
  return true;
}

uint32_t CollectionImpl::MaintenanceStep::NearerNew(const uint8_t* row) const {
  if (new_heads_.size() < 2) return new_heads_[0];
  return next_->Distance(row, new_heads_[1]) < next_->Distance(row, new_heads_[0]) ? new_heads_[1]
                                                                                   : new_heads_[0];
}

bool CollectionImpl::MaintenanceStep::StillFar(const uint8_t* row,
                                               const std::vector<uint32_t>& postings) const {
  const uint32_t primary = postings.front();
  const uint8_t* head = primary < built_heads_ ? base_->head_vector(primary) : next_->Row(primary);
  return seed_radius_read_ > 0 &&
         kernels::EuclideanOf(c_.config_.metric, c_.dist_(row, head, c_.config_.dim)) >
             seed_radius_read_;
}

void CollectionImpl::MaintenanceStep::AddHead(const uint8_t* row) {
  const uint32_t h = c_.NewHeadNumber(*next_);
  next_->Add(h, row);
  new_heads_.push_back(h);
}

// p's head, its appended live members, and those of them written far from every head.
absl::StatusOr<bool> CollectionImpl::MaintenanceStep::ReadAppendedMembers() {
  ReaderMutexLock lock(&c_.mu_);
  if (c_.building_) {
    // A build began since p was taken: p waits for it (the install empties the queue).
    MutexLock pending_lock(&c_.pending_mu_);
    c_.pending_.insert(p_);
    return false;
  }
  if (c_.base_ == nullptr || !c_.damage_.ok()) return false;
  base_ = c_.base_;
  generation_read_ = c_.generation_;
  built_heads_ = c_.heads_overlay_.built_heads();
  const uint8_t* h = p_ < built_heads_
                         ? (c_.heads_overlay_.IsRetired(p_) ? nullptr : base_->head_vector(p_))
                         : c_.heads_overlay_.Row(p_);
  if (h == nullptr) return false;  // gone since it was queued
  old_head_.assign(h, h + c_.row_bytes_);
  limit_ = c_.PostingLimit();
  heads_now_ = built_heads_ - c_.heads_overlay_.retired() + c_.heads_overlay_.added();
  seed_radius_read_ = c_.seed_radius_;
  radius_stamp_ = c_.appended_radius_.Stamp(p_);
  radius_was_ = c_.appended_radius_.Of(p_);
  c_.appended_.ForEachEntry(p_, [&](VectorId id, uint8_t version) {
    c_.mu_.AssertReaderHeld();
    keys_in_p_.push_back(id);
    const IdState& st = c_.ids_[id];
    if ((st.flags & kLive) && st.version == version && !row_at_.contains(id)) {
      DCHECK(c_.appended_.Row(id) != nullptr);
      members_.push_back(id);
      Take(id);
      if (seed_radius_read_ > 0 && c_.appended_.PostingsOf(id).front() == p_) {
        const float d = kernels::EuclideanOf(
            c_.config_.metric, c_.dist_(c_.appended_.Row(id), old_head_.data(), c_.config_.dim));
        if (d > seed_radius_read_) {
          far_.push_back(id);
        } else {
          kept_radius_ = std::max(kept_radius_, d);
        }
      }
    }
  });
  return true;
}

// The built posting's live members, from disk.
absl::Status CollectionImpl::MaintenanceStep::ReadBuiltMembers() {
  std::vector<VectorId> built_ids;
  std::vector<uint8_t> built_rows;
  if (p_ < built_heads_) RETURN_IF_ERROR(ReadPostings({p_}, &built_ids, &built_rows, nullptr));
  ReaderMutexLock lock(&c_.mu_);
  for (VectorId id : built_ids) {
    if (id >= c_.ids_.size() || !c_.BaseEntryLive(id) || version_at_.contains(id)) continue;
    members_.push_back(id);
    Take(id);
  }
  entries_ = (p_ < built_heads_ ? base_->posting_entries(p_) : 0) + keys_in_p_.size();
  return absl::OkStatus();
}

// What the posting calls for, by its live members as read (the exact rows, read next, leave out
// those deleted or replaced meanwhile).
bool CollectionImpl::MaintenanceStep::Decide() {
  if (members_.size() > limit_) {
    kind_ = Kind::kSplit;
  } else if (!far_.empty()) {
    kind_ = Kind::kSeed;  // vectors written far from every head
  } else if (members_.size() < CollectionImpl::MergeBelow(limit_) && heads_now_ > 1) {
    kind_ = Kind::kMerge;
  } else if (p_ < built_heads_ && entries_ > 2 * uint64_t{members_.size()}) {
    kind_ = Kind::kRewrite;  // mostly dead entries
  } else {
    NarrowRadius();
    return false;
  }
  return true;
}

// A posting whose head no other lies near (a seed's, while few vectors joined it) keeps its
// vectors: merged away, they would be far from every head and seeded again.
absl::StatusOr<bool> CollectionImpl::MaintenanceStep::MergeCanGo() {
  if (seed_radius_read_ <= 0 || members_.empty()) return true;
  bool alone = false;
  {
    ReaderMutexLock lock(&c_.mu_);
    if (c_.generation_ != generation_read_) return false;  // an install: p is gone
    RETURN_IF_ERROR(base_->NearestHeads(old_head_.data(), 2, &c_.heads_overlay_, &hits_));
    for (const HeadHit& hit : hits_) {
      if (hit.second == p_) continue;
      alone = kernels::EuclideanOf(c_.config_.metric, hit.first) > seed_radius_read_;
      break;
    }
  }
  if (alone) NarrowRadius();
  return !alone;
}

// A seed step takes the far vectors of other postings queued for them too (up to kSeedBatch
// postings): one commit, and one sync, for them all. They stay, like p, with their other vectors;
// each one's radius comes down to what its other primaries measure.
bool CollectionImpl::MaintenanceStep::TakeOtherSeeds() {
  ReaderMutexLock lock(&c_.mu_);
  if (c_.generation_ != generation_read_) return false;  // an install: p is gone
  std::vector<uint32_t> more;
  {
    MutexLock pending_lock(&c_.pending_mu_);
    for (auto it = c_.pending_.begin(); it != c_.pending_.end() && more.size() < kSeedBatch;) {
      // (p itself, queued again by a write meanwhile, stays queued: its next step sees those.
      // So do postings another step works on.)
      if (*it != p_ && !c_.in_step_.contains(*it) &&
          c_.appended_radius_.Of(*it) > seed_radius_read_) {
        more.push_back(*it);
        taken_too_.push_back(*it);
        c_.in_step_.insert(*it);
        c_.pending_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  std::vector<uint32_t> left;  // taken off the queue, not looked at: queued again
  for (uint32_t q : more) {
    const uint8_t* hq = c_.HeadRow(q);
    if (hq == nullptr) continue;  // (retired since it was queued)
    if (far_.size() >= kSeedMostVectors) {
      left.push_back(q);
      continue;
    }
    Seeded& s = also_seeded_.emplace_back(Seeded{q, c_.appended_radius_.Stamp(q), 0});
    // Every live primary of q counts: a far one is taken (if p's read took it already, at this
    // version, as a replica of p's, it is far here all the same), any other one keeps q's
    // radius, so that it stays an upper bound.
    c_.appended_.ForEachEntry(q, [&](VectorId id, uint8_t version) {
      c_.mu_.AssertReaderHeld();
      const IdState& st = c_.ids_[id];
      if (!(st.flags & kLive) || st.version != version ||
          c_.appended_.PostingsOf(id).front() != q) {
        return;
      }
      const float d = kernels::EuclideanOf(c_.config_.metric,
                                           c_.dist_(c_.appended_.Row(id), hq, c_.config_.dim));
      const auto taken = version_at_.find(id);
      if (d > seed_radius_read_ && taken == version_at_.end()) {
        far_.push_back(id);
        Take(id);
      } else if (d > seed_radius_read_ && taken->second == version) {
        far_.push_back(id);
      } else {
        s.kept_radius = std::max(s.kept_radius, d);
      }
    });
  }
  if (!left.empty()) {
    MutexLock pending_lock(&c_.pending_mu_);
    c_.pending_.insert(left.begin(), left.end());
  }
  return true;
}

// The exact rows of the members the step moves (a seed step moves only the far ones).
absl::StatusOr<bool> CollectionImpl::MaintenanceStep::ReadMemberRows() {
  if (kind_ == Kind::kSeed) {
    const absl::flat_hash_set<VectorId> far_set(far_.begin(), far_.end());
    need_.erase(std::remove_if(need_.begin(), need_.end(),
                               [&](VectorId id) { return !far_set.contains(id); }),
                need_.end());
  }
  RETURN_IF_ERROR(ReadExact(&members_));
  if (!changed_.empty()) {
    far_.erase(std::remove_if(far_.begin(), far_.end(),
                              [&](VectorId id) { return changed_.contains(id); }),
               far_.end());
  }
  live_ = members_.size();
  if (kind_ == Kind::kSplit && live_ <= limit_) {
    // Deleted meanwhile: p waits for its next write, unless far vectors call for a seed step.
    if (!far_.empty()) {
      MutexLock pending_lock(&c_.pending_mu_);
      c_.pending_.insert(p_);
    }
    return false;
  }
  return true;
}

// A split's two halves (local 2-means), and the postings around p.
absl::StatusOr<bool> CollectionImpl::MaintenanceStep::SplitAndFindNeighbours() {
  member_rows_.reserve(live_ * c_.row_bytes_);
  for (VectorId id : members_) {
    member_rows_.insert(member_rows_.end(), RowOf(id), RowOf(id) + c_.row_bytes_);
  }
  if (!internal::SplitInTwo(c_.config_.type, c_.config_.dim, member_rows_.data(), live_, p_,
                            /*min_side=*/live_ / 8 + 1, &halves_)) {
    return false;  // fewer than two rows left: deleted meanwhile
  }
  ReaderMutexLock lock(&c_.mu_);
  if (c_.generation_ != generation_read_) return false;  // an install: p is gone
  RETURN_IF_ERROR(
      base_->NearestHeads(old_head_.data(), kSplitNeighbours + 1, &c_.heads_overlay_, &hits_));
  for (const HeadHit& hit : hits_) {
    if (hit.second != p_ && neighbours_.size() < kSplitNeighbours) {
      neighbours_.push_back(hit.second);
    }
  }
  for (uint32_t q : neighbours_) {
    const uint8_t* hq = q < built_heads_ ? base_->head_vector(q) : c_.heads_overlay_.Row(q);
    if (hq != nullptr) nheads_.insert(nheads_.end(), hq, hq + c_.row_bytes_);
  }
  return true;
}

// SPFresh's second condition: a vector of a neighbouring posting that is nearer a new head than
// its own posting's is reassigned when no other neighbouring head is nearer still (its nearest
// head, as far as the neighbourhood tells, is now a new one).
absl::Status CollectionImpl::MaintenanceStep::FindCandidates() {
  const size_t row_bytes = c_.row_bytes_;
  const uint32_t dim = c_.config_.dim;
  const Metric metric = c_.config_.metric;
  const uint8_t* h0 = member_rows_.data() + halves_.head[0] * row_bytes;
  const uint8_t* h1 = member_rows_.data() + halves_.head[1] * row_bytes;
  const size_t most = 2 * size_t{limit_};
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
  const bool euclidean = metric != Metric::kInnerProduct;
  // A head's Euclidean distance to the nearer new head.
  const auto to_new_head = [&](const uint8_t* hq) {
    return std::min(kernels::EuclideanOf(metric, c_.dist_(hq, h0, dim)),
                    kernels::EuclideanOf(metric, c_.dist_(hq, h1, dim)));
  };
  float far_from = -1;  // < 0: every head is a neighbour, or no bound (inner product)
  if (euclidean && hits_.size() >= kSplitNeighbours + 1) {
    const float spread =
        std::max(kernels::EuclideanOf(metric, c_.dist_(old_head_.data(), h0, dim)),
                 kernels::EuclideanOf(metric, c_.dist_(old_head_.data(), h1, dim)));
    far_from = std::max(0.0f, (kernels::EuclideanOf(metric, hits_.back().first) - spread) / 2);
  }
  {
    ReaderMutexLock lock(&c_.mu_);
    for (uint32_t q : neighbours_) {
      const uint8_t* hq = q < built_heads_ ? base_->head_vector(q) : c_.heads_overlay_.Row(q);
      if (hq == nullptr) continue;
      Neighbour& nb = around.emplace_back();
      nb.head.assign(hq, hq + row_bytes);
      c_.appended_.ForEach(q, [&](VectorId id, const uint8_t* row) {
        nb.ids.push_back(id);
        nb.rows.insert(nb.rows.end(), row, row + row_bytes);
      });
      nb.appended = nb.ids.size();
      if (q < built_heads_) {
        built_around.push_back(q);
        built_at.push_back(around.size() - 1);
      }
    }
    // Postings beyond the neighbourhood whose appended primaries may reach a new head. One
    // beyond it has its head at least r_far - spread from a new head (r_far: the farthest
    // neighbour's distance from the old head; spread: the new heads' own), so only radii over
    // half of that can reach (as far as the graph's walk found the neighbourhood exactly).
    if (far_from >= 0) {
      const absl::flat_hash_set<uint32_t> near_set(neighbours_.begin(), neighbours_.end());
      size_t visited = 0;  // (bounded too: the lock is held)
      c_.appended_radius_.ForEachWiderThan(far_from, [&](uint32_t q, float r) {
        c_.mu_.AssertReaderHeld();
        if (q == p_ || near_set.contains(q)) return true;
        const uint8_t* hq = c_.HeadRow(q);
        if (hq != nullptr && to_new_head(hq) < 2.0f * r) far_postings.push_back(q);
        return far_postings.size() < kFarPostings && ++visited < 8 * kFarPostings;
      });
    }
  }
  {
    std::vector<VectorId> ids;
    std::vector<uint8_t> qrows;
    std::vector<size_t> ends;
    RETURN_IF_ERROR(ReadPostings(built_around, &ids, &qrows, &ends));
    size_t from = 0;
    for (size_t j = 0; j < built_around.size(); ++j) {
      Neighbour& nb = around[built_at[j]];
      nb.ids.insert(nb.ids.end(), ids.begin() + from, ids.begin() + ends[j]);
      nb.rows.insert(nb.rows.end(), qrows.begin() + from * row_bytes,
                     qrows.begin() + ends[j] * row_bytes);
      from = ends[j];
    }
  }
  for (const Neighbour& nb : around) {
    // An entry within half the way from its head to the nearer new head is nearer its own head
    // (the far postings' test below): one distance for it, where the test itself takes three.
    const float half_way = euclidean ? to_new_head(nb.head.data()) / 2 : -1;
    ReaderMutexLock lock(&c_.mu_);  // (a neighbour at a time: writers go on between)
    for (size_t i = 0; i < nb.ids.size() && candidates_.size() < most; ++i) {
      const VectorId id = nb.ids[i];
      if (version_at_.contains(id)) continue;  // a member, or already a candidate
      if (i >= nb.appended ? id >= c_.ids_.size() || !c_.BaseEntryLive(id)
                           : !(c_.ids_[id].flags & kLive)) {
        continue;  // dead, or deleted since it was read
      }
      const uint8_t* r = nb.rows.data() + i * row_bytes;
      const float own = c_.dist_(r, nb.head.data(), dim);
      if (euclidean && !(kernels::EuclideanOf(metric, own) > half_way)) continue;
      const float to_new = std::min(c_.dist_(r, h0, dim), c_.dist_(r, h1, dim));
      if (to_new >= own || !NearestAt(r, to_new)) continue;
      candidates_.push_back(id);
      Take(id);
    }
  }
  // The far postings' entries, in memory: as above, for the entries far enough from their head
  // to be nearer a new head (|v - h| < |v - hq| needs |v - hq| > |hq - h| / 2). Each far
  // posting's radius is measured again on the way: the commit narrows the recorded one to it,
  // unless it grew meanwhile (so the widest are not the same ones always).
  for (uint32_t q : far_postings) {
    ReaderMutexLock lock(&c_.mu_);
    const uint8_t* hq = c_.HeadRow(q);
    if (hq == nullptr) continue;
    const float half_way = to_new_head(hq) / 2;
    float radius = 0;
    c_.appended_.ForEach(q, [&](VectorId id, const uint8_t* r) {
      c_.mu_.AssertReaderHeld();
      const float own = c_.dist_(r, hq, dim);
      const float own_e = kernels::EuclideanOf(metric, own);
      // Only a primary counts toward the radius: the lookup (a hash probe per entry, ~6% of the
      // CPU at 1M under updates when made for every entry) only for an entry that would widen it.
      if (own_e > radius && c_.appended_.PostingsOf(id).front() == q) radius = own_e;
      if (candidates_.size() >= most || version_at_.contains(id)) return;
      if (!(own_e > half_way)) return;
      const float to_new = std::min(c_.dist_(r, h0, dim), c_.dist_(r, h1, dim));
      if (to_new >= own || !NearestAt(r, to_new)) return;
      candidates_.push_back(id);
      Take(id);
    });
    remeasured_.push_back({q, c_.appended_radius_.Stamp(q), radius});
  }
  return ReadExact(&candidates_);
}

// The step, worked out beside the writers: the heads after it, each member's move, the
// reassignments (the replica rule over the heads after it).
absl::StatusOr<bool> CollectionImpl::MaintenanceStep::WorkOut() {
  {
    ReaderMutexLock lock(&c_.mu_);
    if (c_.generation_ != generation_read_) return false;  // an install: p is gone
    next_.emplace(c_.heads_overlay_);
    heads_version_copied_ = c_.heads_version_;
  }
  if (kind_ != Kind::kSeed) next_->Retire(p_);
  if (kind_ == Kind::kSplit) {
    AddHead(member_rows_.data() + halves_.head[0] * c_.row_bytes_);
    AddHead(member_rows_.data() + halves_.head[1] * c_.row_bytes_);
  } else if (kind_ == Kind::kRewrite) {
    AddHead(old_head_.data());
  }
  const auto reassign = [&](VectorId id) -> absl::Status {
    std::vector<uint32_t> postings;
    RETURN_IF_ERROR(Assign(RowOf(id), &postings));
    reassigns_.emplace_back(id, std::move(postings));
    return absl::OkStatus();
  };
  // A split's members go to the nearer new head, unless that leaves a half under an eighth of
  // them (rows all alike, or nearly: both heads at the same distance from most): then to the
  // halves SplitInTwo balanced. Either way both halves shrink, so splits cannot go on forever.
  bool by_side = false;
  if (kind_ == Kind::kSplit) {
    size_t second = 0;
    for (VectorId id : members_) second += NearerNew(RowOf(id)) == new_heads_[1];
    const size_t least = std::min(live_ / 8 + 1, live_ / 2);
    by_side = std::min(second, live_ - second) < least;
  }
  // A seed step: each far vector in turn is reassigned over the heads so far (those the step adds
  // included, so that a far vector near an earlier one joins it); one whose nearest head is still
  // past the seed radius becomes a head instead, its posting its own alone (the replica rule
  // keeps no other: every other head is as near the new head as the vector). p stays, with its
  // other members.
  if (kind_ == Kind::kSeed) {
    for (VectorId id : far_) {
      RETURN_IF_ERROR(reassign(id));
      std::vector<uint32_t>& postings = reassigns_.back().second;
      if (StillFar(RowOf(id), postings)) {
        AddHead(RowOf(id));
        postings.assign(1, new_heads_.back());
      }
    }
  }
  // The reassignments of a split, merge or rewrite, walked after the loop below.
  std::vector<VectorId> to_walk;
  for (size_t i = 0; i < members_.size() && kind_ != Kind::kSeed; ++i) {
    const VectorId id = members_[i];
    const uint8_t* row = RowOf(id);
    if (kind_ == Kind::kMerge) {
      to_walk.push_back(id);
      continue;
    }
    const uint32_t to = by_side ? new_heads_[halves_.side[i]] : NearerNew(row);
    // SPFresh's first condition: a vector whose nearest head was the old one, and which is no
    // nearer a new head than it was to the old one, may now be nearest another head: then it is
    // reassigned. (One that was here as a further replica, nearer another head all along, stays a
    // replica here, in the nearer half.)
    if (kind_ == Kind::kSplit) {
      const float d_old = c_.dist_(row, old_head_.data(), c_.config_.dim);
      const float d_new = next_->Distance(row, to);
      if (d_old <= d_new && NearestAt(row, d_old) && !NearestAt(row, d_new)) {
        to_walk.push_back(id);
        continue;
      }
    }
    moves_.emplace_back(id, to);
  }
  to_walk.insert(to_walk.end(), candidates_.begin(), candidates_.end());
  for (VectorId id : to_walk) RETURN_IF_ERROR(reassign(id));
  if (kind_ == Kind::kMerge) {
    // A posting whose vectors no other head lies near (a seed's, while few vectors joined it)
    // stays: merged, they would be far from every head and seeded again.
    for (const auto& [id, postings] : reassigns_) {
      if (StillFar(RowOf(id), postings)) {
        NarrowRadius();
        return false;
      }
    }
  }
  return true;
}

absl::Status CollectionImpl::MaintenanceStep::CommitStep() {
  WriteBatch batch;
  if (c_.options_.test_before_maintenance_commit) {
    c_.options_.test_before_maintenance_commit(old_head_);
  }
  MutexLock write_lock(&c_.write_mu_);
  return c_.Write(
      &batch,
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c_.write_mu_)
          ABSL_SHARED_LOCKS_REQUIRED(c_.mu_) { return Plan(&batch); },
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c_.write_mu_, c_.mu_) { Apply(); },
      CollectionImpl::Commit::kMaintenance);
}

// The commit's plan: what still holds of the step, and the vectors appended to p meanwhile.
absl::Status CollectionImpl::MaintenanceStep::Plan(WriteBatch* batch) {
  const uint32_t coll = c_.config_.id;
  RETURN_IF_ERROR(c_.CheckNotDropped());
  if (c_.generation_ != generation_read_) return absl::OkStatus();  // an install: p is gone
  if (c_.building_) {
    // A build began: nothing is committed, and p waits for the build (the install starts the
    // queue over; a failed build leaves p queued).
    MutexLock pending_lock(&c_.pending_mu_);
    c_.pending_.insert(p_);
    return absl::OkStatus();
  }
  const auto unchanged = [&](VectorId id) {
    c_.mu_.AssertReaderHeld();  // Plan's
    const IdState& st = c_.ids_[id];
    return (st.flags & kLive) && st.version == version_at_.at(id);
  };
  // Other steps changed the heads since next_ copied them: this step's head changes again, over
  // the heads as they are now (no other step retires p: it is this step's), and the
  // reassignments walked again over those that lost a head retired meanwhile or whose vector
  // another step moved meanwhile (a move keeps the version).
  if (c_.heads_version_ != heads_version_copied_) {
    std::vector<std::vector<uint8_t>> head_rows;
    for (uint32_t h : new_heads_) {
      head_rows.emplace_back(next_->Row(h), next_->Row(h) + c_.row_bytes_);
    }
    next_.emplace(c_.heads_overlay_);
    if (kind_ != Kind::kSeed) next_->Retire(p_);
    for (size_t i = 0; i < new_heads_.size(); ++i) next_->Add(new_heads_[i], head_rows[i].data());
    const auto retired = [&](uint32_t h) {
      return h < next_->built_heads() ? next_->IsRetired(h) : !next_->IsAdded(h);
    };
    for (auto& [id, postings] : reassigns_) {
      const absl::Span<const uint32_t> now = c_.appended_.PostingsOf(id);
      const std::vector<uint32_t>& then = postings_at_.at(id);
      if (std::none_of(postings.begin(), postings.end(), retired) &&
          std::equal(now.begin(), now.end(), then.begin(), then.end())) {
        continue;
      }
      RETURN_IF_ERROR(Assign(RowOf(id), &postings));
    }
  }
  absl::flat_hash_set<VectorId> planned;
  const auto plan_reassign = [&](VectorId id, const uint8_t* row, std::vector<uint32_t> postings) {
    c_.mu_.AssertReaderHeld();  // Plan's
    Reassigned r{id, c_.ids_[id], row, std::move(postings)};
    r.state.version = internal::NextVersion(r.state);
    batch->Put(Cf::kVersions, IdKey(coll, id), VersionValue(r.state));
    batch->Put(Cf::kPostings, IdKey(coll, id), PostingsValue(r.state.version, r.postings));
    planned.insert(id);
    reassigned_.push_back(std::move(r));
  };
  const auto plan_move = [&](VectorId id, uint32_t to) {
    c_.mu_.AssertReaderHeld();  // Plan's
    // Its postings after the step: `to` in p's place (Apply's AddEntry and TakePosting), or
    // added (a built vector's first appended entry).
    const absl::Span<const uint32_t> now = c_.appended_.PostingsOf(id);
    std::vector<uint32_t> after(now.begin(), now.end());
    if (auto at = std::find(after.begin(), after.end(), p_); at != after.end()) {
      *at = to;
    } else {
      after.push_back(to);
    }
    batch->Put(Cf::kPostings, IdKey(coll, id), PostingsValue(c_.ids_[id].version, after));
    planned.insert(id);
    moved_.emplace_back(id, to);
  };
  // A reassignment that would give a vector the postings it has, primary first, is left out.
  const auto has_already = [&](VectorId id, const std::vector<uint32_t>& postings) {
    c_.mu_.AssertReaderHeld();               // Plan's
    if (c_.BaseEntryLive(id)) return false;  // (it would leave the built postings)
    const absl::Span<const uint32_t> now = c_.appended_.PostingsOf(id);
    return now.size() == postings.size() && !now.empty() && now[0] == postings[0] &&
           std::is_permutation(now.begin(), now.end(), postings.begin());
  };
  for (auto& [id, postings] : reassigns_) {
    // (The row too: a version byte could come round to the same value meanwhile.)
    const uint8_t* now = c_.ExactRow(id);
    if (unchanged(id) && (now == nullptr || std::memcmp(now, RowOf(id), c_.row_bytes_) == 0) &&
        !has_already(id, postings)) {
      plan_reassign(id, RowOf(id), std::move(postings));
    }
  }
  for (const auto& [id, to] : moves_) {
    if (unchanged(id)) plan_move(id, to);
  }
  if (kind_ == Kind::kSeed) {
    // A new head no planned reassignment joins (its vectors changed meanwhile) is not added.
    absl::flat_hash_set<uint32_t> joined;
    for (const Reassigned& r : reassigned_) joined.insert(r.postings.begin(), r.postings.end());
    const auto unjoined = [&](uint32_t h) { return !joined.contains(h); };
    for (uint32_t h : new_heads_) {
      if (unjoined(h)) next_->Retire(h);
    }
    new_heads_.erase(std::remove_if(new_heads_.begin(), new_heads_.end(), unjoined),
                     new_heads_.end());
  }
  // p's entries now: a live one no plan covers was appended meanwhile. (The others' records no
  // longer list p: a dead vector's record went with it, a replaced one's was rewritten. A seed
  // step leaves p and the rest of its entries be.)
  std::vector<VectorId> late;
  if (kind_ != Kind::kSeed) {
    c_.appended_.ForEachEntry(p_, [&](VectorId id, uint8_t version) {
      c_.mu_.AssertReaderHeld();  // Plan's
      const IdState& st = c_.ids_[id];
      if ((st.flags & kLive) && st.version == version && !planned.contains(id)) {
        late.push_back(id);
      }
    });
  }
  for (VectorId id : late) {
    const uint8_t* row = c_.appended_.Row(id);
    late_row_at_.emplace_back(id, late_rows_.size());
    late_rows_.insert(late_rows_.end(), row, row + c_.row_bytes_);
    if (!new_heads_.empty()) {
      plan_move(id, NearerNew(row));
    } else {
      std::vector<uint32_t> postings;
      RETURN_IF_ERROR(Assign(row, &postings));
      plan_reassign(id, nullptr, std::move(postings));
    }
  }
  if (kind_ == Kind::kSeed) {
    // p stays.
  } else if (p_ < built_heads_) {
    batch->Put(Cf::kHeads, HeadKey(coll, p_), "");  // retired
  } else {
    batch->Delete(Cf::kHeads, HeadKey(coll, p_));
  }
  for (uint32_t h : new_heads_) {
    batch->Put(Cf::kHeads, HeadKey(coll, h),
               absl::string_view(reinterpret_cast<const char*>(next_->Row(h)), c_.row_bytes_));
  }
  // (A vector with a row keeps its slot.)
  c_.rows_wanted_ = 0;
  for (const auto& [id, to] : moved_) c_.rows_wanted_ += !c_.appended_.HasRow(id);
  for (const Reassigned& r : reassigned_) c_.rows_wanted_ += !c_.appended_.HasRow(r.id);
  return absl::OkStatus();
}

// The step, applied to the collection's state once its batch is durable.
void CollectionImpl::MaintenanceStep::Apply() {
  committed_ = true;
  if (kind_ != Kind::kSeed || !new_heads_.empty()) {
    c_.heads_overlay_ = std::move(*next_);
    c_.heads_overlay_.Freeze();  // (other steps copy it)
    ++c_.heads_version_;
  }
  if (kind_ == Kind::kSeed) {
    // (Their far primaries leave them.)
    c_.appended_radius_.Narrow(p_, radius_stamp_, kept_radius_);
    for (const Seeded& s : also_seeded_) {
      c_.appended_radius_.Narrow(s.posting, s.stamp, s.kept_radius);
    }
    // Queued again if they call for anything still (too long, or far vectors left).
    std::vector<uint32_t> seeded;
    for (const Seeded& s : also_seeded_) seeded.push_back(s.posting);
    c_.NotePostings(seeded, /*shrunk=*/true);
  } else {
    c_.appended_radius_.Erase(p_);
  }
  for (const Remeasured& m : remeasured_) {
    c_.appended_radius_.Narrow(m.posting, m.stamp, m.radius);
  }
  // Postings to look at next: those that grew (a split's halves are never too short: each holds
  // at least an eighth of the members, above) and those that shrank.
  std::vector<uint32_t> touched(new_heads_.begin(), new_heads_.end()), shrunk;
  std::vector<uint8_t> rounded;
  const auto row_now = [&](VectorId id) -> const uint8_t* {
    for (const auto& [late_id, at] : late_row_at_) {
      if (late_id == id) return late_rows_.data() + at;
    }
    return RowOf(id);
  };
  for (const auto& [id, to] : moved_) {
    if (!c_.appended_.HasRow(id)) {
      // A built vector: scored everywhere as its built replicas are (float16-rounded).
      c_.appended_.PutRow(id, c_.BuiltForm(RowOf(id), &rounded));
    }
    c_.appended_.AddEntry(to, id, c_.ids_[id].version, /*in_place_of=*/p_);
    if (c_.appended_.PostingsOf(id).front() == to) c_.GrowRadius(to, c_.appended_.Row(id));
  }
  // (After the moves, which take p's place in their lists.)
  if (kind_ != Kind::kSeed) (void)c_.appended_.TakePosting(p_);
  for (const Reassigned& r : reassigned_) {
    const uint8_t* row = r.row != nullptr ? r.row : row_now(r.id);
    const absl::Span<const uint32_t> left = c_.appended_.PostingsOf(r.id);
    shrunk.insert(shrunk.end(), left.begin(), left.end());
    c_.DropAppended(r.id);
    c_.ids_[r.id] = r.state;
    c_.AddAppended(r.id, row, r.postings);
    c_.SetSkip(r.id);
    touched.insert(touched.end(), r.postings.begin(), r.postings.end());
  }
  c_.maintained_.reassigned += reassigned_.size();
  switch (kind_) {
    case Kind::kSplit:
      ++c_.maintained_.splits;
      break;
    case Kind::kMerge:
      ++c_.maintained_.merges;
      break;
    case Kind::kRewrite:
      ++c_.maintained_.rewrites;
      break;
    case Kind::kSeed:
      c_.maintained_.seeds += new_heads_.size();
      break;
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  c_.NotePostings(touched, /*shrunk=*/false);
  std::sort(shrunk.begin(), shrunk.end());
  shrunk.erase(std::unique(shrunk.begin(), shrunk.end()), shrunk.end());
  c_.NotePostings(shrunk, /*shrunk=*/true);
}

void CollectionImpl::MaintenanceStep::LogDone() const {
  Log(LogLevel::kDebug, "collection '%s': posting %d (%d live of %d entries) %s", c_.config_.name,
      p_, live_, entries_,
      kind_ == Kind::kSplit   ? absl::StrCat("split into ", new_heads_[0], " and ", new_heads_[1])
      : kind_ == Kind::kMerge ? std::string("merged away")
      : kind_ == Kind::kSeed
          ? absl::StrCat(far_.size(), " far vectors given ", new_heads_.size(), " new heads")
          : absl::StrCat("rewritten as ", new_heads_[0]));
}

absl::Status CollectionImpl::MaintainPosting(uint32_t p) { return MaintenanceStep(this, p).Run(); }

}  // namespace strata::collection_internal
