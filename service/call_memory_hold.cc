#include "service/call_memory_hold.h"

#include <malloc.h>

#include "base/tsan.h"

namespace strata {
namespace {

constexpr uint64_t kTrimAfterBytes = 16u << 20;

// Lives as long as its call; passes every interception point through unchanged.
class ReleaseAtCallEnd final : public grpc::experimental::Interceptor {
 public:
  ReleaseAtCallEnd(CallMemoryHold* hold, const grpc::ServerContextBase* context)
      : hold_(hold), context_(context) {
    TsanPublish(this);  // gRPC may run and destroy it on another thread (base/tsan.h)
  }
  ~ReleaseAtCallEnd() override {
    TsanReceive(this);
    hold_->Release(context_);
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  CallMemoryHold* const hold_;
  const grpc::ServerContextBase* const context_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(CallMemoryHold* hold) : hold_(hold) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ReleaseAtCallEnd(hold_, info->server_context());
  }

 private:
  CallMemoryHold* const hold_;
};

}  // namespace

void CallMemoryHold::Hold(const grpc::ServerContextBase* context, uint64_t bytes) {
  if (bytes == 0) return;
  MutexLock lock(&mu_);
  held_[context] += bytes;
}

void CallMemoryHold::Release(const grpc::ServerContextBase* context) {
  uint64_t bytes = 0;
  {
    MutexLock lock(&mu_);
    auto it = held_.find(context);
    if (it == held_.end()) return;
    bytes = it->second;
    held_.erase(it);
  }
  budget_->Release(bytes);
  // A large call's memory goes back to the system, not only to the allocator's free lists
  // (glibc keeps freed memory in its arenas: a burst of big calls left the process ~3x the
  // budget after it ended). Costly enough to do only for big calls.
  if (bytes >= kTrimAfterBytes) malloc_trim(0);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CallMemoryHold::InterceptorFactory() {
  return std::make_unique<Factory>(this);
}

}  // namespace strata
