// What an API key may be, for the server that checks keys and the clients that send them: sent as
// an HTTP/2 header value, it must be printable ASCII without spaces, and long enough that guessing
// it online is not practical.
#ifndef STRATA_BASE_API_KEY_H_
#define STRATA_BASE_API_KEY_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace strata {

inline constexpr size_t kMinApiKeyBytes = 16;
// gRPC clients cap a call's headers (8 KiB for all of them together).
inline constexpr size_t kMaxApiKeyBytes = 512;

// OK for kMinApiKeyBytes to kMaxApiKeyBytes printable ASCII characters without spaces; else
// InvalidArgument saying what is wrong, never quoting the key. `what` names it ("the admin key",
// "--api_key_file").
[[nodiscard]] inline absl::Status CheckApiKey(absl::string_view key, absl::string_view what) {
  if (key.size() < kMinApiKeyBytes || key.size() > kMaxApiKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", key.size(), " bytes; ",
                                                   kMinApiKeyBytes, " to ", kMaxApiKeyBytes,
                                                   " are needed (e.g. openssl rand -hex 24)"));
  }
  for (char c : key) {
    if (c <= ' ' || c > '~') {  // char may be signed: bytes >= 0x80 are negative
      return absl::InvalidArgumentError(absl::StrCat(
          what,
          " holds a character that is not printable ASCII (white space, a control character or "
          "a non-ASCII byte such as a UTF-8 BOM); keys are sent as HTTP/2 header values"));
    }
  }
  return absl::OkStatus();
}

}  // namespace strata

#endif  // STRATA_BASE_API_KEY_H_
