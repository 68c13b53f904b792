// Gives a request gRPC could not parse a clear status. gRPC's synchronous server answers a
// request body that is not a valid protobuf of the method's type (malformed bytes, or a string
// field that is not UTF-8) with INTERNAL and an empty message, before any handler runs. Our
// handlers never answer INTERNAL without a message, so this interceptor turns exactly that into
// INVALID_ARGUMENT naming the method and the likely causes.
#ifndef STRATA_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
#define STRATA_SERVICE_PARSE_ERROR_INTERCEPTOR_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"

namespace strata {

[[nodiscard]] std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ParseErrorInterceptorFactory();

}  // namespace strata

#endif  // STRATA_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
