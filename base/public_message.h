// What an error may tell a caller who is not the server's administrator (a tenant key). Errors
// are written for the administrator: they name files of the data directory, paths and the
// commands that repair things. A tenant's caller gets none of that (ForPublic): the message a
// status carries for such callers where its maker set one (WithPublicMessage); else, for an
// INTERNAL or DATA_LOSS error, or one whose message names the server's data directory, a
// generic line; any other error keeps its message, which names only what the request sent, a
// limit or a state of the collection. The server logs the whole status of every error it
// rewrote so. A status that is passed on with more words in front keeps its message for such
// callers (WithPrefix).
#ifndef STRATA_BASE_PUBLIC_MESSAGE_H_
#define STRATA_BASE_PUBLIC_MESSAGE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace strata {

inline constexpr char kPublicMessageUrl[] = "type.strata.dev/public-message";

// `s` carrying `message` for callers other than the administrator (`s` unchanged when OK).
inline absl::Status WithPublicMessage(absl::Status s, absl::string_view message) {
  if (!s.ok()) s.SetPayload(kPublicMessageUrl, absl::Cord(message));
  return s;
}

// `s` with `prefix` before its message, and before the message it carries for callers other
// than the administrator (its other payloads kept).
inline absl::Status WithPrefix(absl::string_view prefix, const absl::Status& s) {
  if (s.ok()) return s;
  absl::Status out(s.code(), absl::StrCat(prefix, s.message()));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, url == kPublicMessageUrl
                            ? absl::Cord(absl::StrCat(prefix, std::string(payload)))
                            : payload);
  });
  return out;
}

// Whether `message` names the directory `dir` (absolute) or a path under it: `dir` not followed
// by more of a file name (a directory "/srv/d" is not named by "/srv/dx"). A `dir` of "/" or
// less names nothing.
inline bool NamesDir(absl::string_view message, absl::string_view dir) {
  if (dir.size() <= 1) return false;
  for (size_t at = message.find(dir); at != absl::string_view::npos;
       at = message.find(dir, at + 1)) {
    const size_t end = at + dir.size();
    if (end == message.size()) return true;
    const char c = message[end];
    const bool name_goes_on = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!name_goes_on) return true;
  }
  return false;
}

// `s` as a caller other than the administrator sees it: the same code, the message above.
// `data_dir` (may be empty): the server's data directory, absolute, as its paths are written.
inline absl::Status ForPublic(const absl::Status& s, absl::string_view data_dir = {}) {
  if (s.ok()) return s;
  if (auto m = s.GetPayload(kPublicMessageUrl)) return absl::Status(s.code(), std::string(*m));
  if (s.code() == absl::StatusCode::kDataLoss) {
    return absl::Status(s.code(),
                        "data this call needs is damaged on the server; its administrator finds "
                        "which in its log, and how to repair it");
  }
  const bool names_data_dir = NamesDir(s.message(), data_dir);
  if (names_data_dir && s.code() == absl::StatusCode::kResourceExhausted) {
    // (A file operation's: a full disk, most often.)
    return absl::Status(s.code(),
                        "the server ran out of disk space (or another resource) for this call; "
                        "its administrator finds which in its log");
  }
  if (s.code() == absl::StatusCode::kInternal || names_data_dir) {
    return absl::Status(s.code(), absl::StrCat("the server failed on its side (",
                                               absl::StatusCodeToString(s.code()),
                                               "); its administrator finds why in its log"));
  }
  return absl::Status(s.code(), s.message());
}

}  // namespace strata

#endif  // STRATA_BASE_PUBLIC_MESSAGE_H_
