// Following an index build from a client: BuildIndex returns at once, and the build's progress
// comes with DescribeCollection (CollectionInfo.build).
#ifndef STRATA_TOOLS_BUILD_WAIT_H_
#define STRATA_TOOLS_BUILD_WAIT_H_

#include <cstdint>
#include <string>

#include "grpcpp/grpcpp.h"
#include "proto/strata.grpc.pb.h"

namespace strata {

// Polls collection `name` until build `build_id` (or a later one, which includes it) is DONE or
// FAILED, drawing a progress bar on stderr; `info` gets the collection as it is then. OK when the
// build is done; FAILED_PRECONDITION with the build's error when it failed; the RPC's status
// when describing fails.
[[nodiscard]] grpc::Status WaitForBuild(v1::Strata::Stub* stub, const std::string& name,
                                        uint64_t build_id, v1::CollectionInfo* info);

}  // namespace strata

#endif  // STRATA_TOOLS_BUILD_WAIT_H_
