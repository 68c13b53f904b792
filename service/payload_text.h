// What the lexical index reads of a stored payload: the service owns the payload's format (a
// serialised v1::Payload), so it tells collections how to read its text
// (CollectionOptions::payload_text).
//
// Thread-safe (a pure function).
#ifndef STRATA_SERVICE_PAYLOAD_TEXT_H_
#define STRATA_SERVICE_PAYLOAD_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace strata {

// The payload's text, then the string values (or arrays of strings) of `fields` in its JSON, a
// line each. Empty for a payload that does not parse (Get reports those as DATA_LOSS); a field
// that is absent or not text adds nothing.
[[nodiscard]] std::string PayloadText(absl::string_view stored,
                                      absl::Span<const std::string> fields);

}  // namespace strata

#endif  // STRATA_SERVICE_PAYLOAD_TEXT_H_
