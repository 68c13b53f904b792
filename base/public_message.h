// What an error may tell a caller who is not the server's administrator (a tenant key). Errors
// are written for the administrator: they name files of the data directory, paths and the
// commands that repair things. A tenant's caller gets none of that: a status may carry a message
// of its own for such callers (WithPublicMessage); INTERNAL and DATA_LOSS errors without one get
// a generic message; any other error keeps its message, which names only what the request sent,
// a limit or a state of the collection (the rule for messages written in service/ and index/).
// The server's log keeps the whole status.
#ifndef STRATA_BASE_PUBLIC_MESSAGE_H_
#define STRATA_BASE_PUBLIC_MESSAGE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace strata {

inline constexpr char kPublicMessageUrl[] = "type.strata.dev/public-message";

// `s` carrying `message` for callers other than the administrator (`s` unchanged when OK).
inline absl::Status WithPublicMessage(absl::Status s, absl::string_view message) {
  if (!s.ok()) s.SetPayload(kPublicMessageUrl, absl::Cord(message));
  return s;
}

// `s` as a caller other than the administrator sees it: the same code, the message above.
inline absl::Status ForPublic(const absl::Status& s) {
  if (s.ok()) return s;
  if (auto m = s.GetPayload(kPublicMessageUrl)) {
    return absl::Status(s.code(), std::string(*m));
  }
  if (s.code() == absl::StatusCode::kInternal) {
    return absl::Status(s.code(),
                        "the server failed on its side; its administrator finds why in its log");
  }
  if (s.code() == absl::StatusCode::kDataLoss) {
    return absl::Status(s.code(),
                        "data this call needs is damaged on the server; its administrator finds "
                        "which in its log, and how to repair it");
  }
  return absl::Status(s.code(), s.message());
}

}  // namespace strata

#endif  // STRATA_BASE_PUBLIC_MESSAGE_H_
