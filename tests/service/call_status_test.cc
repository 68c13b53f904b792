#include <chrono>

#include "gtest/gtest.h"
#include "service/server.h"

namespace strata {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

// A handler that stopped because its call was cancelled is counted as the client saw it: past
// the call's deadline that is DEADLINE_EXCEEDED; before it (the client cancelled), CANCELLED.
// Other codes, and calls without a deadline, are left as they are.
TEST(NameDeadline, ACancelledCallPastItsDeadlineIsDeadlineExceeded) {
  const system_clock::time_point now = system_clock::time_point() + seconds(1000);
  const absl::Status stopped = absl::CancelledError("the client went away");
  const absl::Status past = NameDeadline(stopped, now - seconds(1), now);
  EXPECT_TRUE(absl::IsDeadlineExceeded(past)) << past;
  EXPECT_NE(past.message().find("the client went away"), absl::string_view::npos) << past;
  EXPECT_TRUE(absl::IsDeadlineExceeded(NameDeadline(stopped, now, now)));
  EXPECT_TRUE(absl::IsCancelled(NameDeadline(stopped, now + seconds(1), now)));
  EXPECT_TRUE(absl::IsCancelled(NameDeadline(stopped, system_clock::time_point::max(), now)));
  EXPECT_TRUE(absl::IsNotFound(NameDeadline(absl::NotFoundError("x"), now - seconds(1), now)));
  EXPECT_TRUE(NameDeadline(absl::OkStatus(), now - seconds(1), now).ok());
}

}  // namespace
}  // namespace strata
