// Why a JSON text does not parse, said without quoting it: nlohmann's own message quotes the
// bytes it last read, which may cut a UTF-8 character in two (a gRPC message must be UTF-8) or
// echo what a user would rather not see in a log.
#ifndef STRATA_BASE_JSON_ERROR_H_
#define STRATA_BASE_JSON_ERROR_H_

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace strata {

// Where `json` stops parsing: "a syntax error at byte N of M" (1-based), "... at its end" when
// it stops short (nlohmann counts one past the last byte then), or "bytes that are not UTF-8 at
// byte N of M"; "it parses" when it does.
inline std::string JsonSyntaxError(const std::string& json) {
  try {
    const nlohmann::json parsed = nlohmann::json::parse(json);
    return parsed.is_discarded() ? "discarded" : "it parses";
  } catch (const nlohmann::json::parse_error& e) {
    const char* what = absl::StrContains(e.what(), "UTF-8")       ? "bytes that are not UTF-8"
                       : absl::StrContains(e.what(), "surrogate") ? "half of a \\u surrogate pair"
                                                                  : "a syntax error";
    if (e.byte > json.size()) return absl::StrCat(what, " at its end (it stops short)");
    return absl::StrCat(what, " at byte ", e.byte, " of ", json.size());
  } catch (const nlohmann::json::out_of_range& e) {
    // (406: a number past a double's range, such as 1e999.)
    return e.id == 406 ? "a number too large for a double" : absl::StrCat("error ", e.id);
  } catch (const nlohmann::json::exception& e) {
    return absl::StrCat("error ", e.id);
  }
}

}  // namespace strata

#endif  // STRATA_BASE_JSON_ERROR_H_
