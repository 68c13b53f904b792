// Turns a decoder's token bytes into text that is safe to send as it comes: whole UTF-8
// characters only (a token may end inside one), and nothing of a stop string (text that could
// still become one is held back until it cannot). Once a stop string appears, the text before it
// is released and the rest dropped.
//
// Not thread-safe; one per generation.
#ifndef STRATA_SERVICE_TEXT_STREAM_H_
#define STRATA_SERVICE_TEXT_STREAM_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace strata {

class TextStream final {
 public:
  explicit TextStream(std::vector<std::string> stops);
  // Adds bytes; returns the text that may be sent now (possibly empty).
  std::string Push(absl::string_view bytes);
  // The text still held (at the end of the generation); an incomplete UTF-8 character at the end
  // becomes U+FFFD.
  std::string Finish();
  // True once a stop string appeared (Push then returns nothing more).
  [[nodiscard]] bool stopped() const { return stopped_; }
  // Everything released so far.
  [[nodiscard]] const std::string& text() const { return released_; }

 private:
  std::vector<std::string> stops_;
  std::string held_, released_;
  bool stopped_ = false;
};

// The length of the longest prefix of `s` that ends on a UTF-8 character boundary (an incomplete
// sequence at the end is excluded; invalid bytes count as characters of their own).
size_t CompleteUtf8Prefix(absl::string_view s);

}  // namespace strata

#endif  // STRATA_SERVICE_TEXT_STREAM_H_
