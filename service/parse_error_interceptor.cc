#include "service/parse_error_interceptor.h"

#include <string>

#include "base/retry_later.h"
#include "base/tsan.h"

namespace strata {
namespace {

class ParseErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ParseErrorInterceptor(const char* method) : method_(method ? method : "") {
    TsanPublish(this);  // gRPC may run and destroy it on another thread (base/tsan.h)
  }
  ~ParseErrorInterceptor() override { TsanReceive(this); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    TsanReceive(this);
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status sent = methods->GetSendStatus();
      grpc::Status clear = ClarifyGrpcStatus(sent, method_);
      if (clear.error_message() != sent.error_message()) methods->ModifySendStatus(clear);
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ParseErrorInterceptor(info->method());
  }
};

}  // namespace

grpc::Status ClarifyGrpcStatus(const grpc::Status& sent, const std::string& method) {
  if (sent.error_code() == grpc::StatusCode::INTERNAL && sent.error_message().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request could not be parsed as the message " + method +
                            " takes: malformed protobuf bytes, a field of the wrong type, or a "
                            "string field that is not valid UTF-8");
  }
  if (sent.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      sent.error_message() == "Server Threadpool Exhausted") {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        std::string("the server is serving as many calls at once as it has "
                                    "threads (strata-server --threads); ") +
                            kRetryLater);
  }
  return sent;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ParseErrorInterceptorFactory() {
  return std::make_unique<Factory>();
}

}  // namespace strata
