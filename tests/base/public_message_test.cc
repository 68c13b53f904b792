#include "base/public_message.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "storage/scoped_fd.h"

namespace strata {
namespace {

TEST(PublicMessage, ACallerOtherThanTheAdminSeesNoInternals) {
  // A message of its own for such callers, with the code kept.
  const absl::Status damaged = WithPublicMessage(
      absl::FailedPreconditionError("index /srv/strata/x/heads.graph is truncated"),
      "collection 'x' is damaged");
  EXPECT_EQ(ForPublic(damaged), absl::FailedPreconditionError("collection 'x' is damaged"));
  EXPECT_EQ(ForPublic(WithPublicMessage(absl::OkStatus(), "never")), absl::OkStatus());
  // INTERNAL and DATA_LOSS without one: a generic message.
  const absl::Status internal = ForPublic(absl::InternalError("rocksdb: /srv/strata/meta/LOCK"));
  EXPECT_EQ(internal.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(internal.message().find("/srv"), absl::string_view::npos) << internal;
  const absl::Status lost = ForPublic(absl::DataLossError("posting 7 of /srv/p.dat: checksum"));
  EXPECT_EQ(lost.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(lost.message().find("/srv"), absl::string_view::npos) << lost;
  // Any other error keeps its message (it names what the request sent, or a limit).
  const absl::Status bad = absl::InvalidArgumentError("k must be at least 1");
  EXPECT_EQ(ForPublic(bad), bad);
}

// A file operation's error names its file for the admin only.
TEST(PublicMessage, FileErrorsNameNoPathForOthers) {
  const absl::Status full = ErrnoToStatus(ENOSPC, "write /srv/strata/scratch");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("/srv/strata/scratch"), absl::string_view::npos);
  EXPECT_EQ(ForPublic(full).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(ForPublic(full).message().find("disk is full"), absl::string_view::npos);
  const absl::Status denied = ForPublic(ErrnoToStatus(EACCES, "open /srv/strata/ids.bin"));
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message().find("/srv"), absl::string_view::npos) << denied;
}

}  // namespace
}  // namespace strata
