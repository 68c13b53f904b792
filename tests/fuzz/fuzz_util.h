// Helpers for Strata's libFuzzer targets: fuzz bytes as the files a reader opens.
#ifndef STRATA_TESTS_FUZZ_FUZZ_UTIL_H_
#define STRATA_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace strata::fuzz {

// A directory of this process, made once (fuzzers run one input at a time).
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/strata-fuzz-XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) std::abort();
    return std::string(d);
  }();
  return dir;
}

// Writes `n` bytes to `name` in the scratch directory and returns its path.
inline std::string WriteScratch(const std::string& name, const uint8_t* data, size_t n) {
  const std::string path = ScratchDir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (n > 0 && std::fwrite(data, 1, n, f) != n) std::abort();
  std::fclose(f);
  return path;
}

// Splits the input into parts framed as [u32 little-endian length][bytes]; the last part takes
// what is left when a length runs past the end. At most `max_parts`.
inline std::vector<std::string> SplitFramed(const uint8_t* data, size_t size, size_t max_parts) {
  std::vector<std::string> parts;
  size_t at = 0;
  while (at < size && parts.size() + 1 < max_parts) {
    if (size - at < 4) break;
    uint32_t len;
    std::memcpy(&len, data + at, 4);
    at += 4;
    const size_t take = std::min<size_t>(len, size - at);
    parts.emplace_back(reinterpret_cast<const char*>(data + at), take);
    at += take;
  }
  if (at < size) parts.emplace_back(reinterpret_cast<const char*>(data + at), size - at);
  parts.resize(max_parts);
  return parts;
}

}  // namespace strata::fuzz

#endif  // STRATA_TESTS_FUZZ_FUZZ_UTIL_H_
