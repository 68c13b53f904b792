// Gives a request gRPC could not parse a clear status. gRPC's synchronous server answers a
// request body that is not a valid protobuf of the method's type (malformed bytes, or a string
// field that is not UTF-8) with INTERNAL and an empty message, before any handler runs. Our
// handlers never answer INTERNAL without a message, so this interceptor turns exactly that into
// INVALID_ARGUMENT naming the method and the likely causes. Likewise gRPC's answer when every
// handler thread is busy ("Server Threadpool Exhausted") becomes one naming --threads.
#ifndef STRATA_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
#define STRATA_SERVICE_PARSE_ERROR_INTERCEPTOR_H_

#include <memory>
#include <string>

#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"

namespace strata {

[[nodiscard]] std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ParseErrorInterceptorFactory();

// The status a call of `method` ("/strata.v1.Strata/Search") is answered with instead of
// `sent`: sent itself unless it is one of gRPC's own statuses above.
[[nodiscard]] grpc::Status ClarifyGrpcStatus(const grpc::Status& sent, const std::string& method);

}  // namespace strata

#endif  // STRATA_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
