// Posting maintenance (SPFresh's LIRE): CollectionImpl's queue of postings that call for a step,
// and the background threads that run the steps (a step itself: maintenance_step.cc; "Posting
// maintenance" in index/collection.h; "Maintenance" in docs/ARCHITECTURE.md).
#include <pthread.h>

#include <algorithm>
#include <optional>
#include <system_error>
#include <thread>

#include "index/internal/collection_impl.h"
#include "index/internal/head_spacing.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {
float CollectionImpl::SeedRadiusOf(const SpannIndex& index) const {
  if (!options_.seed_far_vectors) return 0;
  absl::StatusOr<float> spacing = internal::MedianHeadSpacing(index, internal::kSpacingSample);
  if (!spacing.ok()) {
    // A measurement, not the index: the collection goes on without seeding.
    Log(LogLevel::kWarning, "collection '%s': measuring its heads' spacing: %s (no seeding)",
        config_.name, spacing.status().message());
    return 0;
  }
  return internal::kFarSpacings * *spacing;
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
  // (LoadHeads refuses numbers from 2^31 up as damage: billions of steps from here.)
  DCHECK(h < (1u << 31));
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

}  // namespace strata::collection_internal
