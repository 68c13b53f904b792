#include "tests/test_util.h"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unordered_set>

namespace strata::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/strata-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* p = mkdtemp(buf.data());
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::string SharedDataDir() {
  if (const char* env = std::getenv("STRATA_SHARED_DATA"); env && *env) return env;
  std::filesystem::path p = std::filesystem::path(STRATA_SOURCE_DIR) / ".." / "shared" / "data";
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) return p.lexically_normal().string();
  return "";
}

std::optional<VectorSet> ReadMnistImages(const std::string& path, std::string* error) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = "cannot open " + path;
    return std::nullopt;
  }
  unsigned char hdr[16];
  if (gzread(f, hdr, 16) != 16) {
    gzclose(f);
    *error = path + ": short header";
    return std::nullopt;
  }
  auto be = [&](int o) {
    return (uint32_t{hdr[o]} << 24) | (uint32_t{hdr[o + 1]} << 16) | (uint32_t{hdr[o + 2]} << 8) |
           hdr[o + 3];
  };
  if (be(0) != 0x00000803) {
    gzclose(f);
    *error = path + ": not an IDX image file";
    return std::nullopt;
  }
  VectorSet set;
  set.type = ElementType::kUint8;
  set.n = be(4);
  set.dim = be(8) * be(12);
  set.data.resize(set.n * set.dim);
  int got = gzread(f, set.data.data(), static_cast<unsigned>(set.data.size()));
  gzclose(f);
  if (got != static_cast<int>(set.data.size())) {
    *error = path + ": truncated";
    return std::nullopt;
  }
  return set;
}

VectorSet Slice(const VectorSet& set, uint64_t first, uint64_t count) {
  VectorSet out;
  out.type = set.type;
  out.dim = set.dim;
  out.n = count;
  out.data.assign(set.row(first), set.row(first) + count * set.row_bytes());
  return out;
}

double RecallAtK(const GroundTruth& gt, const std::vector<std::vector<uint32_t>>& results,
                 uint32_t k) {
  double total = 0;
  for (size_t q = 0; q < results.size(); ++q) {
    const int32_t* ids = &gt.ids[q * gt.k];
    const float* d = &gt.distances[q * gt.k];
    std::unordered_set<uint32_t> ok;
    for (uint32_t j = 0; j < gt.k; ++j) {
      if (j < k || (!gt.distances.empty() && d[j] <= d[k - 1]))
        ok.insert(static_cast<uint32_t>(ids[j]));
    }
    uint32_t hits = 0;
    for (size_t j = 0; j < results[q].size() && j < k; ++j) hits += ok.count(results[q][j]);
    total += static_cast<double>(hits) / k;
  }
  return results.empty() ? 0 : total / static_cast<double>(results.size());
}

}  // namespace strata::testing
