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
// FAILED, drawing a progress bar on stderr; `info` comes in as the collection was when the build
// was asked for (its uid tells a collection dropped and made again) and gets the collection as it
// is then. While the server does not answer it waits up to a minute for it, and after a restart
// it follows the build the start queued (a requested build is run again). OK when the build is
// done; the build's own code (IndexBuild.error_code; UNKNOWN from a server that gives none) with
// its error when it failed; NOT_FOUND when the collection
// was dropped meanwhile; ABORTED when a restarted server has no build of it; the RPC's status when
// describing fails.
[[nodiscard]] grpc::Status WaitForBuild(v1::Strata::Stub* stub, const std::string& name,
                                        uint64_t build_id, v1::CollectionInfo* info);

}  // namespace strata

#endif  // STRATA_TOOLS_BUILD_WAIT_H_
