// Keeps a call's memory reservation (service/call_budget.h) until gRPC is done with the call.
//
// gRPC's synchronous API serialises a handler's response after the handler returns and keeps
// the serialised copy until it is sent (or the call fails), so releasing the reservation when
// the handler returns would let a burst of slow clients hold far more than the budget. A
// server interceptor, created with each call and destroyed with it, releases what the handler
// handed over with Hold().
//
// Thread-safety: all methods may be called concurrently.
#ifndef STRATA_SERVICE_CALL_MEMORY_HOLD_H_
#define STRATA_SERVICE_CALL_MEMORY_HOLD_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "base/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "service/call_budget.h"

namespace strata {

class CallMemoryHold final {
 public:
  explicit CallMemoryHold(MemoryBudget* budget) : budget_(budget) {}
  CallMemoryHold(const CallMemoryHold&) = delete;
  CallMemoryHold& operator=(const CallMemoryHold&) = delete;

  // Keeps `bytes` (already reserved from the budget) until the call of `context` ends.
  void Hold(const grpc::ServerContextBase* context, uint64_t bytes);
  // Releases what is held for `context`; called when its call ends.
  void Release(const grpc::ServerContextBase* context);

  // The factory to register with ServerBuilder::experimental().SetInterceptorCreators.
  [[nodiscard]] std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  InterceptorFactory();

 private:
  MemoryBudget* const budget_;
  Mutex mu_;
  absl::flat_hash_map<const grpc::ServerContextBase*, uint64_t> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata

#endif  // STRATA_SERVICE_CALL_MEMORY_HOLD_H_
