// Per-tenant request rates (TenantQuota::max_requests_per_second): a token bucket per tenant of
// each collection, refilled at the tenant's rate and holding one second's worth (at least one
// call), so a tenant may burst to its rate and not beyond. Calls past it are ResourceExhausted
// naming the quota. The clock is injected (tests).
//
// Memory: one small entry per tenant that called recently; entries idle for a minute are dropped
// once there are more than kMaxIdleEntries, so dropped tenants and collections do not pile up.
//
// Thread-safe.
#ifndef STRATA_SERVICE_TENANT_RATE_LIMITER_H_
#define STRATA_SERVICE_TENANT_RATE_LIMITER_H_

#include <chrono>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"

namespace strata {

class TenantRateLimiter final {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxIdleEntries = 10000;

  explicit TenantRateLimiter(std::function<Clock::time_point()> now = Clock::now)
      : now_(std::move(now)) {}

  // Takes one call from the bucket of `tenant` of collection `collection_uid` (shown as
  // `collection`), whose rate is `per_second` (0 = unlimited: always OK).
  [[nodiscard]] absl::Status Admit(absl::string_view collection_uid, absl::string_view collection,
                                   absl::string_view tenant, double per_second);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point last;
  };
  const std::function<Clock::time_point()> now_;
  Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  Clock::time_point last_sweep_ ABSL_GUARDED_BY(mu_){};
};

}  // namespace strata

#endif  // STRATA_SERVICE_TENANT_RATE_LIMITER_H_
