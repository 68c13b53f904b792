#include "service/reflection_v1.h"

#include <set>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"

namespace strata {
namespace {

namespace rv1 = ::grpc::reflection::v1;
namespace gp = ::google::protobuf;

// Adds `file` and, first, the files it imports that `sent` does not hold yet.
void AddFile(const gp::FileDescriptor* file, std::set<std::string>* sent,
             rv1::FileDescriptorResponse* out) {
  if (!sent->insert(file->name()).second) return;
  for (int i = 0; i < file->dependency_count(); ++i) AddFile(file->dependency(i), sent, out);
  gp::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out->add_file_descriptor_proto(proto.SerializeAsString());
}

void NotFound(const std::string& what, rv1::ServerReflectionResponse* resp) {
  resp->mutable_error_response()->set_error_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
  resp->mutable_error_response()->set_error_message(what + " not found");
}

}  // namespace

grpc::Status ReflectionV1::ServerReflectionInfo(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<rv1::ServerReflectionResponse, rv1::ServerReflectionRequest>* stream) {
  const gp::DescriptorPool* pool = gp::DescriptorPool::generated_pool();
  rv1::ServerReflectionRequest req;
  while (stream->Read(&req)) {
    // Each answer carries the file asked for with all it imports (clients read an empty answer
    // as "not found").
    std::set<std::string> sent;
    rv1::ServerReflectionResponse resp;
    resp.set_valid_host(req.host());
    *resp.mutable_original_request() = req;
    const gp::FileDescriptor* file = nullptr;
    switch (req.message_request_case()) {
      case rv1::ServerReflectionRequest::kListServices:
        for (const std::string& name : services_) {
          resp.mutable_list_services_response()->add_service()->set_name(name);
        }
        break;
      case rv1::ServerReflectionRequest::kFileByFilename:
        file = pool->FindFileByName(req.file_by_filename());
        if (file == nullptr) NotFound("file " + req.file_by_filename(), &resp);
        break;
      case rv1::ServerReflectionRequest::kFileContainingSymbol:
        file = pool->FindFileContainingSymbol(req.file_containing_symbol());
        if (file == nullptr) NotFound("symbol " + req.file_containing_symbol(), &resp);
        break;
      case rv1::ServerReflectionRequest::kFileContainingExtension: {
        const gp::Descriptor* type =
            pool->FindMessageTypeByName(req.file_containing_extension().containing_type());
        const gp::FieldDescriptor* ext =
            type == nullptr ? nullptr
                            : pool->FindExtensionByNumber(
                                  type, req.file_containing_extension().extension_number());
        if (ext != nullptr) file = ext->file();
        if (file == nullptr) NotFound("extension", &resp);
        break;
      }
      case rv1::ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const gp::Descriptor* type =
            pool->FindMessageTypeByName(req.all_extension_numbers_of_type());
        if (type == nullptr) {
          NotFound("type " + req.all_extension_numbers_of_type(), &resp);
          break;
        }
        std::vector<const gp::FieldDescriptor*> exts;
        pool->FindAllExtensions(type, &exts);
        rv1::ExtensionNumberResponse* out = resp.mutable_all_extension_numbers_response();
        out->set_base_type_name(type->full_name());
        for (const gp::FieldDescriptor* e : exts) out->add_extension_number(e->number());
        break;
      }
      default:
        resp.mutable_error_response()->set_error_code(
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
        resp.mutable_error_response()->set_error_message("the request names no query");
        break;
    }
    if (file != nullptr) AddFile(file, &sent, resp.mutable_file_descriptor_response());
    if (!stream->Write(resp)) break;
  }
  return grpc::Status::OK;
}

}  // namespace strata
