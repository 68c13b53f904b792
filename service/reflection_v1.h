// grpc.reflection.v1.ServerReflection, which gRPC 1.51's reflection plugin does not serve (it
// serves only v1alpha; current grpcurl and Postman ask v1 first). Answers from the process's
// generated descriptor pool, as the plugin does: list_services, file_by_filename,
// file_containing_symbol, file_containing_extension and all_extension_numbers_of_type; an unknown
// name gets an error_response with NOT_FOUND. Each answer holds the file asked for and the
// files it imports.
//
// Thread-safety: any number of streams at once.
#ifndef STRATA_SERVICE_REFLECTION_V1_H_
#define STRATA_SERVICE_REFLECTION_V1_H_

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace strata {

class ReflectionV1 final : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // `services`: the full names list_services answers with.
  explicit ReflectionV1(std::vector<std::string> services) : services_(std::move(services)) {}

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>* stream) override;

 private:
  const std::vector<std::string> services_;
};

}  // namespace strata

#endif  // STRATA_SERVICE_REFLECTION_V1_H_
