#include "tools/load/offline_load.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "index/catalog.h"
#include "proto/strata.pb.h"
#include "tools/load/collection_settings.h"
#include "tools/load/fail.h"
#include "tools/progress.h"

ABSL_FLAG(std::string, data_dir, "", "offline: the data directory to build into");

namespace strata::load {

namespace pb = ::strata::v1;
using Clock = std::chrono::steady_clock;

int RunOffline(const Input& in, const std::string& collection) {
  std::string dir = absl::GetFlag(FLAGS_data_dir);
  if (dir.empty()) return Fail("offline mode needs --data_dir");
  if (!in.tenants.empty()) {
    // The offline bulk load writes vectors and payloads only (Collection::BulkLoad).
    return Fail(
        "tenants (--tenants, or 'tenants' in the JSONL) load online only, through the server");
  }
  auto catalog = strata::Catalog::Open(dir);
  if (!catalog.ok()) return Fail(std::string(catalog.status().message()));
  auto t0 = Clock::now();
  std::shared_ptr<strata::Collection> col;
  auto found = (*catalog)->Find(collection);
  if (found.ok()) {
    col = *found;
    if (absl::Status e = CheckExistingCollection(collection, col->config().metric,
                                                 col->config().posting_encoding);
        !e.ok()) {
      return Fail(std::string(e.message()));
    }
  } else {
    strata::CollectionConfig cfg;
    cfg.name = collection;
    cfg.dim = in.vectors.dim;
    cfg.type = in.vectors.type;
    auto m = strata::ParseMetric(Metric(!absl::GetFlag(FLAGS_text).empty()));
    if (!m.ok()) return Fail(std::string(m.status().message()));
    cfg.metric = *m;
    auto enc = PostingEncodingFlag(!absl::GetFlag(FLAGS_text).empty());
    if (!enc.ok()) return Fail(std::string(enc.status().message()));
    cfg.posting_encoding = *enc;
    cfg.text_fields = absl::GetFlag(FLAGS_text_fields);
    auto created = (*catalog)->Create(cfg);
    if (!created.ok()) return Fail(std::string(created.status().message()));
    col = *created;
  }
  std::vector<std::string> payloads;
  if (!in.json.empty()) {
    payloads.resize(in.vectors.n);
    for (uint64_t i = 0; i < in.vectors.n; ++i) {
      pb::Payload p;
      p.set_json(in.json[i]);
      p.set_text(in.text[i]);
      payloads[i] = p.SerializeAsString();
    }
  }
  std::vector<uint64_t> ids = in.ids;
  if (ids.empty()) {
    ids.resize(in.vectors.n);
    for (uint64_t i = 0; i < in.vectors.n; ++i) ids[i] = IdOf(in, i);
  }
  strata::ProgressBar bar("storing", in.vectors.n);
  std::string phase = "storing";
  absl::Status s =
      col->BulkLoad(in.vectors, ids, payloads, [&](const char* p, uint64_t done, uint64_t total) {
        if (phase != p) {
          phase = p;
          bar.Restart(p, total);
        }
        bar.Update(done);
      });
  bar.Finish();
  if (!s.ok()) return Fail(std::string(s.message()));
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  strata::CollectionStats st = col->Stats();
  std::fprintf(stderr,
               "strata-load: offline load of %llu vectors into '%s' in %.1f s (%.0f vectors/s): "
               "%llu heads, index RAM %.1f MiB, disk %.1f MiB\n",
               static_cast<unsigned long long>(in.vectors.n), collection.c_str(), secs,
               in.vectors.n / std::max(secs, 1e-9), static_cast<unsigned long long>(st.heads),
               st.memory_bytes / 1048576.0, st.disk_bytes / 1048576.0);
  return 0;
}

}  // namespace strata::load
