#include "service/parse_error_interceptor.h"

#include <string>

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
      const grpc::Status s = methods->GetSendStatus();
      if (s.error_code() == grpc::StatusCode::INTERNAL && s.error_message().empty()) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            "the request could not be parsed as the message " + method_ +
                " takes: malformed protobuf bytes, a field of the wrong type, or a string field "
                "that is not valid UTF-8"));
      }
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

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ParseErrorInterceptorFactory() {
  return std::make_unique<Factory>();
}

}  // namespace strata
