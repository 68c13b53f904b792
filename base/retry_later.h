// The words of a refusal the caller may retry. Every RESOURCE_EXHAUSTED that refuses a call for a
// state that passes says them: the server's memory budget for calls in flight in use, as many
// calls at once as it serves (its threads, the reranker's or the decoder's calls), as many
// generations or decoder tasks waiting as it queues, a tenant's request-rate quota. The same call
// may succeed after a pause. No other RESOURCE_EXHAUSTED says them: a request over a limit of one
// request, a quota of points or a full disk fails the same way again. strata-load retries the
// calls refused with them (with back-off) and no others.
#ifndef STRATA_BASE_RETRY_LATER_H_
#define STRATA_BASE_RETRY_LATER_H_

namespace strata {

inline constexpr char kRetryLater[] = "retry later";

}  // namespace strata

#endif  // STRATA_BASE_RETRY_LATER_H_
