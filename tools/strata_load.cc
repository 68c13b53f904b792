// strata-load: the bulk loader. Reads vectors (and optional ids and JSONL payloads) and either
// streams them to a running server (online) or builds a collection straight into a data directory
// (offline, for very large sets; the server must not be running on that directory). Its parts
// live in tools/load/: reading the input, the checkpoint, the online and the offline load.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "index/types.h"
#include "storage/program_usage.h"
#include "tools/load/fail.h"
#include "tools/load/input.h"
#include "tools/load/offline_load.h"
#include "tools/load/online_load.h"

ABSL_FLAG(std::string, collection, "", "target collection (created when missing)");
ABSL_FLAG(std::string, mode, "online", "online (stream to --server) or offline (--data_dir)");

using strata::load::Fail;
using strata::load::InputPath;

int main(int argc, char** argv) {
  strata::SetProgramUsage(
      "Loads vectors into Strata.\n"
      "  online:  strata-load --input=base.fbin --collection=docs [--server=HOST:PORT]\n"
      "           streams batches to a running server, retries with back-off, resumes from a\n"
      "           checkpoint after an interruption; upserts are idempotent by id.\n"
      "  offline: strata-load --mode=offline --data_dir=DIR --input=base.u8bin --collection=docs\n"
      "           writes the collection and builds its index directly (server stopped).\n"
      "Payloads: --payloads=rows.jsonl (one JSON object per row). Ids: --ids=ids.npy.\n"
      "  text:    strata-load --text=passages.jsonl --collection=docs\n"
      "           JSONL lines {\"id\": 7, \"text\": \"...\", ...}: embedded by the server's model\n"
      "           (offline: --model_dir=models/all-minilm-l6-v2), text kept as the payload.");
  absl::ParseCommandLine(argc, argv);
  std::string collection = absl::GetFlag(FLAGS_collection);
  if (collection.empty()) return Fail("--collection is required (see --help)");
  if (absl::GetFlag(FLAGS_batch) == 0) return Fail("--batch must be at least 1");
  if (absl::GetFlag(FLAGS_embed_batch) == 0) return Fail("--embed_batch must be at least 1");
  std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "online" && mode != "offline") {
    return Fail(absl::StrCat("--mode must be online or offline, not '", mode, "'"));
  }
  if (mode == "online" && (absl::GetFlag(FLAGS_embed_precision) != "auto" ||
                           absl::GetFlag(FLAGS_embed_backend) != "auto")) {
    std::fprintf(stderr,
                 "strata-load: warning: --embed_precision and --embed_backend apply to offline "
                 "--text only; online, the server embeds with its own settings\n");
  }
  if (mode == "offline" && absl::GetFlag(FLAGS_precompute_kv)) {
    return Fail("--precompute_kv needs an online load (the server computes and keeps the entries)");
  }
  if (mode == "offline" && !absl::GetFlag(FLAGS_questions).empty()) {
    return Fail(
        "--questions needs an online load (the server learns the weight); "
        "after an offline load, start the server and run strata-cli tune");
  }
  auto in = strata::load::ReadInput(mode == "online");
  if (!in.ok()) return Fail(std::string(in.status().message()));
  if (in->embed_online) {
    std::fprintf(stderr, "strata-load: %s: %zu passages, embedded by the server\n",
                 InputPath().c_str(), in->text.size());
  } else {
    std::fprintf(stderr, "strata-load: %s: %llu %s vectors of dimension %u\n", InputPath().c_str(),
                 static_cast<unsigned long long>(in->vectors.n),
                 strata::ElementTypeName(in->vectors.type), in->vectors.dim);
  }
  return mode == "online" ? strata::load::RunOnline(*in, collection)
                          : strata::load::RunOffline(*in, collection);
}
