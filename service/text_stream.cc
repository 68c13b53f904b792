#include "service/text_stream.h"

#include <utf8proc.h>

#include <algorithm>

namespace strata {
namespace {

// Invalid UTF-8 (a model can emit byte tokens that form none) becomes U+FFFD: a protobuf string
// must be valid UTF-8 for clients to read it.
std::string Sanitize(std::string s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n =
        utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &c);
    if (n <= 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s, i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
    }
  }
  return out;
}

}  // namespace

size_t CompleteUtf8Prefix(absl::string_view s) {
  // Look back at most 3 bytes for the start of a sequence that runs past the end.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking
    const size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

TextStream::TextStream(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string TextStream::Push(absl::string_view bytes) {
  if (stopped_) return "";
  held_.append(bytes.data(), bytes.size());
  // A stop string inside: release what precedes the earliest one, drop the rest.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out =
        held_.substr(0, CompleteUtf8Prefix(absl::string_view(held_).substr(0, first)));
    held_.clear();
    out = Sanitize(std::move(out));
    released_ += out;
    return out;
  }
  // Hold back the longest tail that is a prefix of some stop string, and an incomplete character.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, held_.size()); len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  const size_t cut = CompleteUtf8Prefix(absl::string_view(held_).substr(0, held_.size() - keep));
  std::string out = Sanitize(held_.substr(0, cut));
  held_.erase(0, cut);
  released_ += out;
  return out;
}

std::string TextStream::Finish() {
  if (stopped_) return "";
  std::string out = Sanitize(held_.substr(0, CompleteUtf8Prefix(held_)));
  if (CompleteUtf8Prefix(held_) < held_.size()) out += "\xEF\xBF\xBD";
  held_.clear();
  released_ += out;
  return out;
}

}  // namespace strata
