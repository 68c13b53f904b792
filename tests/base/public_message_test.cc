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

// An error naming the server's data directory names it for the admin only.
TEST(PublicMessage, ErrorsNamingTheDataDirectoryNameItForTheAdminOnly) {
  const absl::Status full = ErrnoToStatus(ENOSPC, "write /srv/strata/collections/1/rows");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  const absl::Status told = ForPublic(full, "/srv/strata");
  EXPECT_EQ(told.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(told.message().find("/srv"), absl::string_view::npos) << told;
  EXPECT_NE(told.message().find("out of disk space"), absl::string_view::npos) << told;
  const absl::Status denied =
      ForPublic(ErrnoToStatus(EACCES, "open /srv/strata/ids.bin"), "/srv/strata");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message().find("/srv"), absl::string_view::npos) << denied;
  // (Without the directory given, or for a message without it: as it is.)
  EXPECT_EQ(ForPublic(full).message(), full.message());
  const absl::Status limit = absl::ResourceExhaustedError("k = 5000; the limit is 1024");
  EXPECT_EQ(ForPublic(limit, "/srv/strata"), limit);
}

// The directory is named only as a path: a directory whose name is inside ordinary words (a
// stranger's --data_dir=d made every tenant's error "the server failed on its side"), or the
// start of another file's name, is not.
TEST(PublicMessage, TheDataDirectoryIsFoundAsAPathOnly) {
  const absl::Status quota = absl::ResourceExhaustedError(
      "tenant 'acme' of collection 'docs' may see at most 3 points (its max_points quota)");
  EXPECT_EQ(ForPublic(quota, "/d"), quota);  // (the server makes its directory absolute)
  EXPECT_EQ(ForPublic(absl::NotFoundError("/srv/strata-old/x"), "/srv/strata").message(),
            "/srv/strata-old/x");
  EXPECT_TRUE(NamesDir("open /srv/strata/ids.bin", "/srv/strata"));
  EXPECT_TRUE(NamesDir("in /srv/strata: full", "/srv/strata"));
  EXPECT_TRUE(NamesDir("at /srv/strata", "/srv/strata"));
  EXPECT_FALSE(NamesDir("at /srv/strata2 and /srv/strata_b", "/srv/strata"));
  EXPECT_TRUE(NamesDir("at /srv/strata2 and /srv/strata/x", "/srv/strata"));
  EXPECT_FALSE(NamesDir("any/path/at/all", "/"));
}

// Words put in front keep the message for others, with the same words in front.
TEST(PublicMessage, APrefixKeepsTheMessageForOthers) {
  const absl::Status damaged = WithPublicMessage(
      absl::FailedPreconditionError("index /srv/strata/x/heads.graph is truncated"),
      "collection 'x' is damaged");
  const absl::Status prefixed = WithPrefix("query 3: ", damaged);
  EXPECT_EQ(prefixed.message(), "query 3: index /srv/strata/x/heads.graph is truncated");
  EXPECT_EQ(ForPublic(prefixed),
            absl::FailedPreconditionError("query 3: collection 'x' is damaged"));
  EXPECT_EQ(WithPrefix("query 3: ", absl::OkStatus()), absl::OkStatus());
}

}  // namespace
}  // namespace strata
