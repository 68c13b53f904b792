#include "service/parse_error_interceptor.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(ClarifyGrpcStatus, NamesWhatGrpcLeavesUnsaid) {
  const grpc::Status parse(grpc::StatusCode::INTERNAL, "");
  grpc::Status s = ClarifyGrpcStatus(parse, "/strata.v1.Strata/Search");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("/strata.v1.Strata/Search"), std::string::npos);

  s = ClarifyGrpcStatus(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "Server Threadpool Exhausted"),
      "/strata.v1.Strata/Search");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("--threads"), std::string::npos) << s.error_message();

  // Everything else, Strata's own answers included, passes unchanged.
  for (const grpc::Status& own :
       {grpc::Status::OK, grpc::Status(grpc::StatusCode::INTERNAL, "unexpected exception: x"),
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "k is over the limit")}) {
    s = ClarifyGrpcStatus(own, "/strata.v1.Strata/Search");
    EXPECT_EQ(s.error_code(), own.error_code());
    EXPECT_EQ(s.error_message(), own.error_message());
  }
}

}  // namespace
}  // namespace strata
