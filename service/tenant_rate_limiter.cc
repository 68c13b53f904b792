#include "service/tenant_rate_limiter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/retry_later.h"

namespace strata {

absl::Status TenantRateLimiter::Admit(absl::string_view collection_uid,
                                      absl::string_view collection, absl::string_view tenant,
                                      double per_second) {
  if (per_second <= 0) return absl::OkStatus();
  const Clock::time_point now = now_();
  const double capacity = std::max(1.0, per_second);
  MutexLock lock(&mu_);
  // Idle buckets go at most once a minute (a sweep is a pass over all of them).
  if (buckets_.size() > kMaxIdleEntries && now - last_sweep_ > std::chrono::minutes(1)) {
    absl::erase_if(buckets_, [&](const auto& entry) {
      return now - entry.second.last > std::chrono::minutes(1);
    });
    last_sweep_ = now;
  }
  auto [it, fresh] = buckets_.try_emplace(absl::StrCat(collection_uid, "/", tenant));
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = capacity;
  } else {
    const double elapsed = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(capacity, b.tokens + std::max(0.0, elapsed) * per_second);
  }
  b.last = now;
  if (b.tokens < 1) {
    return absl::ResourceExhaustedError(
        absl::StrCat("tenant '", tenant, "' of collection '", collection, "' is over its quota of ",
                     per_second, " requests per second (max_requests_per_second); ", kRetryLater));
  }
  b.tokens -= 1;
  return absl::OkStatus();
}

}  // namespace strata
