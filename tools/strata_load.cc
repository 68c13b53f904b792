// strata-load: the bulk loader. Reads vectors (and optional ids and JSONL payloads) and either
// streams them to a running server (online) or builds a collection straight into a data directory
// (offline, for very large sets; the server must not be running on that directory).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/json_error.h"
#include "gpu/encoder.h"
#include "grpcpp/grpcpp.h"
#include "index/catalog.h"
#include "index/collection_config.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "proto/strata.grpc.pb.h"
#include "storage/env.h"
#include "storage/log.h"
#include "storage/program_usage.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"
#include "storage/vector_file.h"
#include "tools/build_wait.h"
#include "tools/client_channel.h"
#include "tools/hybrid_tune.h"
#include "tools/progress.h"

ABSL_FLAG(std::string, input, "", "vectors: .fbin/.u8bin/.i8bin, .fvecs/.bvecs or .npy");
ABSL_FLAG(std::string, text, "",
          "instead of --input: JSONL passages, one JSON object per line with 'text' (required), "
          "'id' (optional, all lines or none) and any metadata; the text is embedded (online: "
          "by the server's model; offline: by --model_dir) and stored as the payload text, the "
          "other fields as the payload JSON");
ABSL_FLAG(std::string, model_dir, "", "offline --text: the sentence-encoder model directory");
ABSL_FLAG(std::string, embed_backend, "auto", "offline --text: engine backend (auto, cpu, cuda)");
ABSL_FLAG(std::string, embed_precision, "auto",
          "offline --text: matmul precision on the CPU (auto, f32, bf16, int8)");
ABSL_FLAG(uint32_t, embed_batch, 256, "--text: texts per embedding request");
ABSL_FLAG(std::string, ids, "",
          "optional ids, one per row (.npy int/uint 32/64-bit, or .ibin); default: the JSONL "
          "'id' field when every line has one, else the row number plus --id_offset");
ABSL_FLAG(uint64_t, id_offset, 0, "added to row numbers when ids come from them");
ABSL_FLAG(std::string, payloads, "",
          "optional JSONL, one JSON object per row; its 'text' field becomes the payload text "
          "(indexed lexically), the other fields its JSON");
ABSL_FLAG(std::string, questions, "",
          "online, after loading: JSONL labelled questions ({\"question\": ..., \"relevant_ids\": "
          "[ids as loaded]}) to learn the collection's hybrid dense weight from (TuneHybrid)");
ABSL_FLAG(size_t, max_questions, 1024, "--questions: questions sent at most");
ABSL_FLAG(bool, precompute_kv, false,
          "online, after loading: have the server compute each loaded passage's KV cache entry "
          "for Generate now (PrecomputePassageKv), so first questions find them cached; needs a "
          "server started with --decoder");
ABSL_FLAG(std::string, kv_cache_mode, "int8",
          "--precompute_kv: the entries' format, as Generate's cache_mode (int8, int4, f16)");
ABSL_FLAG(std::string, collection, "", "target collection (created when missing)");
ABSL_FLAG(std::string, tenants, "",
          "online: who may see each row, one line per row: tenant names separated by commas (an "
          "empty line: no tenant, only the admin's whole-collection view). With --text, a "
          "JSONL 'tenants' array does the same. Missing tenants are created (README, "
          "\"Tenants\")");
ABSL_FLAG(std::vector<std::string>, text_fields, {},
          "a new collection: payload JSON fields indexed lexically with the text, e.g. title");
ABSL_FLAG(std::string, metric, "",
          "metric of a collection created here: l2, ip or cosine (default: l2 for vectors, "
          "cosine for --text)");
ABSL_FLAG(std::string, posting_encoding, "",
          "a created collection's postings: native, or float16 (float32 vectors only: half the "
          "disk and the pages each query reads; distances against float16-rounded vectors); "
          "default: float16 with --text (unit-norm embeddings lose nothing that matters), native "
          "otherwise");
ABSL_FLAG(std::string, mode, "online", "online (stream to --server) or offline (--data_dir)");
ABSL_FLAG(std::string, server, "127.0.0.1:50051", "online: address of strata-server");
ABSL_FLAG(uint32_t, batch, 1000, "online: points per Upsert request (at most 16 MiB of them)");
ABSL_FLAG(double, retry_seconds, 120,
          "online: how long one batch is retried (with back-off) while the server is unreachable");
ABSL_FLAG(std::string, checkpoint, "",
          "online: checkpoint file (default: <input>.<collection>.ckpt); a rerun resumes after the "
          "last acknowledged batch");
ABSL_FLAG(bool, restart, false, "online: ignore an existing checkpoint and load from row 0");
ABSL_FLAG(bool, build, true,
          "online: at the end, build the collection's index if it has none, or rebuild it when "
          "more vectors were appended since its build than it holds");
ABSL_FLAG(std::string, data_dir, "", "offline: the data directory to build into");
ABSL_FLAG(uint64_t, limit, 0, "load only the first N rows (0 = all)");

namespace {

namespace pb = ::strata::v1;
using Clock = std::chrono::steady_clock;

int Fail(const std::string& msg) {
  std::fprintf(stderr, "strata-load: %s\n", msg.c_str());
  return 1;
}

struct Input {
  strata::VectorSet vectors;            // text mode online: n and dim only, no data
  std::vector<uint64_t> ids;            // empty = row + offset
  std::vector<std::string> json, text;  // empty = no payloads
  // Who may see each row (--tenants, or the JSONL 'tenants' field); empty = not given.
  std::vector<std::vector<std::string>> tenants;
  bool embed_online = false;  // text mode online: vectors come from the Embed RPC
};

// An Upsert request's bytes, at most: what the loader bounds a batch by, beside --batch (a
// quarter of the server's default message limit).
constexpr uint64_t kRequestBytes = 16 << 20;

// Row `i`'s bytes in an Upsert request, about: its vector (or the embedding the loader adds), its
// payload and its tenant names.
uint64_t RequestRowBytes(const Input& in, const strata::VectorSet& v, uint64_t i) {
  uint64_t n = 32 + (in.embed_online ? uint64_t{v.dim} * sizeof(float) : v.row_bytes());
  if (!in.json.empty()) n += in.json[i].size() + in.text[i].size();
  if (!in.tenants.empty()) {
    for (const std::string& t : in.tenants[i]) n += t.size() + 4;
  }
  return n;
}

std::string Metric(bool text_mode) {
  std::string m = absl::GetFlag(FLAGS_metric);
  return m.empty() ? (text_mode ? "cosine" : "l2") : m;
}

absl::StatusOr<strata::PostingEncoding> PostingEncodingFlag(bool text_mode) {
  std::string e = absl::GetFlag(FLAGS_posting_encoding);
  if (e.empty())
    return text_mode ? strata::PostingEncoding::kFloat16 : strata::PostingEncoding::kNative;
  auto parsed = strata::ParsePostingEncoding(e);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--posting_encoding: ", parsed.status().message()));
  }
  return *parsed;
}

// An existing collection keeps its metric and encoding: an explicit --metric or
// --posting_encoding that differs (or names none) is an error rather than silently ignored.
absl::Status CheckExistingCollection(const std::string& collection, strata::Metric metric,
                                     strata::PostingEncoding encoding) {
  if (const std::string m = absl::GetFlag(FLAGS_metric); !m.empty()) {
    absl::StatusOr<strata::Metric> want = strata::ParseMetric(m);
    if (!want.ok())
      return absl::InvalidArgumentError(absl::StrCat("--metric: ", want.status().message()));
    if (*want != metric) {
      return absl::InvalidArgumentError(absl::StrCat(
          "collection '", collection, "' exists with metric ", strata::MetricName(metric),
          "; --metric=", m, " applies only to a new collection"));
    }
  }
  const std::string e = absl::GetFlag(FLAGS_posting_encoding);
  if (e.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(strata::PostingEncoding want, PostingEncodingFlag(false));
  if (want == encoding) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "collection '", collection, "' exists with ", strata::PostingEncodingName(encoding),
      " postings; --posting_encoding=", e, " applies only to a new collection"));
}

// A row's tenants against the server's limit per point (index/collection.h), before anything is
// created on the server.
absl::Status CheckRowTenants(absl::string_view where, size_t count) {
  if (count <= strata::kMaxPointTenants) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": ", count, " tenants on one row; a point takes at most ",
                   strata::kMaxPointTenants, " (strata-cli grant adds more after the load)"));
}

// --text: passages from JSONL. The payload JSON keeps every field but 'text', which is stored as
// the payload text.
absl::Status ReadPassages(const std::string& path, uint64_t limit, Input* in) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string line;
  uint64_t n = 0;
  int with_ids = -1;  // unknown until the first line
  while ((limit == 0 || n < limit) && std::getline(f, line)) {
    if (line.empty()) continue;
    const std::string where = absl::StrCat(path, ":", n + 1);
    auto j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": not JSON (", strata::JsonSyntaxError(line), ")"));
    }
    if (!j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
    }
    if (!j.contains("text") || !j["text"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": needs a string 'text' field"));
    }
    if (absl::StripAsciiWhitespace(j["text"].get_ref<const std::string&>()).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": 'text' holds no words (a passage is found by its words)"));
    }
    const bool has_id = j.contains("id");
    if (has_id && !j["id"].is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": 'id' is not a non-negative integer (Strata's ids are 64-bit integers: "
                       "rename a string id field - it stays in the payload - and rows are "
                       "numbered instead)"));
    }
    if (with_ids == -1) with_ids = has_id ? 1 : 0;
    if (has_id != (with_ids == 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": 'id' must be on every line or on none"));
    }
    if (has_id) in->ids.push_back(j["id"].get<uint64_t>());
    in->text.push_back(j["text"].get<std::string>());
    j.erase("text");
    if (j.contains("tenants")) {
      if (!j["tenants"].is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": 'tenants' must be an array of tenant names"));
      }
      std::vector<std::string> names;
      for (const auto& t : j["tenants"]) {
        if (!t.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": 'tenants' holds a non-string"));
        }
        names.push_back(t.get<std::string>());
        absl::Status valid = strata::CheckName("tenant name", names.back());
        if (!valid.ok())
          return absl::InvalidArgumentError(absl::StrCat(where, ": ", valid.message()));
      }
      RETURN_IF_ERROR(CheckRowTenants(where, names.size()));
      in->tenants.resize(n);  // rows before without 'tenants': none
      in->tenants.push_back(std::move(names));
      j.erase("tenants");
    } else if (!in->tenants.empty()) {
      in->tenants.emplace_back();
    }
    in->json.push_back(j.dump());
    ++n;
  }
  if (n == 0) return absl::InvalidArgumentError(absl::StrCat(path, " holds no passages"));
  if (!in->tenants.empty()) in->tenants.resize(n);
  return absl::OkStatus();
}

// --tenants: one line per row, tenant names separated by commas.
absl::Status ReadTenants(const std::string& path, uint64_t rows, Input* in) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--tenants ", path, " is a directory"));
  }
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open --tenants file ", path));
  in->tenants.clear();
  std::string line;
  while (in->tenants.size() < rows && std::getline(f, line)) {
    std::vector<std::string> names;
    for (absl::string_view t : absl::StrSplit(line, ',', absl::SkipWhitespace())) {
      names.emplace_back(absl::StripAsciiWhitespace(t));
      // Checked here, with the line, before anything is created on the server.
      absl::Status valid = strata::CheckName("tenant name", names.back());
      if (!valid.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", in->tenants.size() + 1, ": ", valid.message()));
      }
    }
    RETURN_IF_ERROR(CheckRowTenants(absl::StrCat(path, ":", in->tenants.size() + 1), names.size()));
    in->tenants.push_back(std::move(names));
  }
  if (in->tenants.size() != rows) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " has ", in->tenants.size(), " lines for ", rows, " rows"));
  }
  if (std::getline(f, line)) {
    std::fprintf(stderr, "strata-load: warning: %s has more lines than the %llu rows loaded\n",
                 path.c_str(), static_cast<unsigned long long>(rows));
  }
  return absl::OkStatus();
}

// Offline --text: every passage embedded here with the model in --model_dir.
absl::Status EmbedLocally(Input* in) {
  const std::string model = absl::GetFlag(FLAGS_model_dir);
  if (model.empty()) {
    return absl::InvalidArgumentError("offline --text needs --model_dir (the sentence encoder)");
  }
  ASSIGN_OR_RETURN(strata::gpu::BackendChoice backend,
                   strata::gpu::ParseBackendChoice(absl::GetFlag(FLAGS_embed_backend)));
  strata::gpu::EncoderOptions eo;
  eo.backend = backend;
  ASSIGN_OR_RETURN(eo.matmul,
                   strata::gpu::ParseMatmulPrecision(absl::GetFlag(FLAGS_embed_precision)));
  ASSIGN_OR_RETURN(auto encoder, strata::gpu::Encoder::Open(model, eo));
  const uint64_t n = in->text.size();
  const uint32_t dim = static_cast<uint32_t>(encoder->dimension());
  in->vectors.type = strata::ElementType::kFloat32;
  in->vectors.n = n;
  in->vectors.dim = dim;
  in->vectors.data.resize(n * dim * sizeof(float));
  const uint32_t batch = std::max<uint32_t>(1, absl::GetFlag(FLAGS_embed_batch));
  strata::ProgressBar bar("embedding", n, "passages");
  strata::gpu::EmbedStats stats;
  for (uint64_t row = 0; row < n; row += batch) {
    const uint64_t end = std::min<uint64_t>(n, row + batch);
    ASSIGN_OR_RETURN(std::vector<float> v,
                     encoder->Embed(absl::MakeConstSpan(in->text).subspan(row, end - row), &stats));
    std::memcpy(in->vectors.data.data() + row * dim * sizeof(float), v.data(),
                v.size() * sizeof(float));
    bar.Update(end);
  }
  bar.Finish();
  std::fprintf(stderr,
               "strata-load: embedded %llu passages (%lld tokens, %lld cut to %d tokens) on %s in "
               "%.1f s\n",
               static_cast<unsigned long long>(n), static_cast<long long>(stats.tokens),
               static_cast<long long>(stats.truncated), encoder->max_length(),
               encoder->backend_name().c_str(), stats.forward_seconds + stats.tokenize_seconds);
  return absl::OkStatus();
}

absl::Status ReadPayloads(const std::string& path, uint64_t rows, Input* in, bool* all_have_ids,
                          std::vector<uint64_t>* jsonl_ids) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string line;
  uint64_t n = 0;
  *all_have_ids = true;
  while (n < rows && std::getline(f, line)) {
    auto j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n + 1, ": not JSON (", strata::JsonSyntaxError(line), ")"));
    }
    if (!j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n + 1, ": not a JSON object"));
    }
    std::string text;
    if (j.contains("text")) {
      if (!j["text"].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", n + 1, ": 'text' is not a string"));
      }
      text = j["text"].get<std::string>();
    }
    if (j.contains("id") && j["id"].is_number_unsigned()) {
      jsonl_ids->push_back(j["id"].get<uint64_t>());
    } else {
      *all_have_ids = false;
    }
    // The text is stored once, as the payload text (as --text does).
    if (j.contains("text")) {
      j.erase("text");
      in->json.push_back(j.empty() ? std::string() : j.dump());
    } else {
      in->json.push_back(line);
    }
    in->text.push_back(std::move(text));
    ++n;
  }
  if (n != rows) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " has ", n, " lines for ", rows, " vectors"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Input> ReadInput(bool online) {
  Input in;
  const std::string path = absl::GetFlag(FLAGS_input);
  const std::string text = absl::GetFlag(FLAGS_text);
  if (path.empty() == text.empty()) {
    return absl::InvalidArgumentError("give --input (vectors) or --text (passages); see --help");
  }
  if (!text.empty()) {
    if (!absl::GetFlag(FLAGS_payloads).empty() || !absl::GetFlag(FLAGS_ids).empty()) {
      return absl::InvalidArgumentError(
          "--text carries its own ids and payloads; --payloads and --ids are for --input");
    }
    RETURN_IF_ERROR(ReadPassages(text, absl::GetFlag(FLAGS_limit), &in));
    if (!absl::GetFlag(FLAGS_tenants).empty()) {
      RETURN_IF_ERROR(ReadTenants(absl::GetFlag(FLAGS_tenants), in.text.size(), &in));
    }
    if (online) {
      in.embed_online = true;  // the server embeds; its dimension is learnt from the first call
      in.vectors.type = strata::ElementType::kFloat32;
      in.vectors.n = in.text.size();
    } else {
      RETURN_IF_ERROR(EmbedLocally(&in));
    }
    return in;
  }
  ASSIGN_OR_RETURN(in.vectors, strata::ReadVectors(path, absl::GetFlag(FLAGS_limit)));
  if (in.vectors.n == 0) return absl::InvalidArgumentError(absl::StrCat(path, " holds no vectors"));
  std::vector<uint64_t> jsonl_ids;
  bool all_have_ids = false;
  if (!absl::GetFlag(FLAGS_payloads).empty()) {
    RETURN_IF_ERROR(
        ReadPayloads(absl::GetFlag(FLAGS_payloads), in.vectors.n, &in, &all_have_ids, &jsonl_ids));
  }
  if (!absl::GetFlag(FLAGS_ids).empty()) {
    ASSIGN_OR_RETURN(in.ids, strata::ReadIds(absl::GetFlag(FLAGS_ids)));
    if (in.ids.size() < in.vectors.n) {
      return absl::InvalidArgumentError(absl::StrCat(
          absl::GetFlag(FLAGS_ids), " has ", in.ids.size(), " ids for ", in.vectors.n, " vectors"));
    }
    in.ids.resize(in.vectors.n);
  } else if (all_have_ids) {
    in.ids = std::move(jsonl_ids);
  }
  if (!absl::GetFlag(FLAGS_tenants).empty()) {
    RETURN_IF_ERROR(ReadTenants(absl::GetFlag(FLAGS_tenants), in.vectors.n, &in));
  }
  return in;
}

uint64_t IdOf(const Input& in, uint64_t row) {
  return in.ids.empty() ? row + absl::GetFlag(FLAGS_id_offset) : in.ids[row];
}

// --- Online
// ----------------------------------------------------------------------------------------

bool Retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED ||
         c == grpc::StatusCode::ABORTED || c == grpc::StatusCode::CANCELLED;
}

// Calls `rpc` until it succeeds, fails for good, or --retry_seconds pass (the last try at the
// limit); backs off from 100 ms to 5 s between tries.
template <typename F>
grpc::Status WithRetries(const char* what, F&& rpc) {
  auto start = Clock::now();
  double wait = 0.1;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    grpc::Status s = rpc(&ctx);
    if (s.ok() || !Retryable(s.error_code())) return s;
    const double left = absl::GetFlag(FLAGS_retry_seconds) -
                        std::chrono::duration<double>(Clock::now() - start).count();
    if (left <= 0) return s;
    const double nap = std::min(wait, left);
    strata::Log(strata::LogLevel::kWarning, "%s: %s; retry %d in %.1f s", what, s.error_message(),
                attempt, nap);
    std::this_thread::sleep_for(std::chrono::duration<double>(nap));
    wait = std::min(wait * 2, 5.0);
  }
}

// The end-of-load build failed after every row was stored: what is stored, what is not.
std::string BuildFailed(uint64_t stored, const char* what, const grpc::Status& s) {
  return absl::StrCat("every row is stored (", stored, " in this run), but ", what,
                      " failed: ", s.error_message(),
                      ". The vectors are searchable without it; a rerun of this command builds "
                      "the index (the checkpoint skips the stored rows), as does `strata-cli "
                      "build`, and a server restart builds a collection past its threshold");
}

// The file being loaded (--input or --text).
std::string InputPath() {
  return absl::GetFlag(FLAGS_input).empty() ? absl::GetFlag(FLAGS_text)
                                            : absl::GetFlag(FLAGS_input);
}

std::string Checkpoint(const std::string& collection) {
  std::string c = absl::GetFlag(FLAGS_checkpoint);
  return c.empty() ? absl::StrCat(InputPath(), ".", collection, ".ckpt") : c;
}

// What a checkpoint is bound to: the input file (path, size, modification time), the files beside
// it (--ids, --payloads, --tenants: the same), the collection (name and the uid the server gave
// it at creation) and the ids the rows get (--id_offset). Rows count only for the same load.
struct LoadIdentity {
  std::string input;
  uint64_t input_size = 0;
  int64_t input_mtime_ns = 0;
  std::string collection;
  std::string collection_uid;
  uint64_t total = 0;
  uint64_t id_offset = 0;
  std::string side_files;  // "--flag path size mtime_ns" lines

  std::string Serialize() const {
    return absl::StrCat("input=", input, "\ninput_size=", input_size,
                        "\ninput_mtime_ns=", input_mtime_ns, "\ncollection=", collection,
                        "\ncollection_uid=", collection_uid, "\ntotal=", total,
                        "\nid_offset=", id_offset, "\n", side_files);
  }
};

absl::StatusOr<LoadIdentity> IdentifyLoad(const std::string& collection, const std::string& uid,
                                          uint64_t total) {
  struct stat st {};
  LoadIdentity id;
  for (const auto& [flag, path] :
       {std::pair<const char*, std::string>{"ids", absl::GetFlag(FLAGS_ids)},
        {"payloads", absl::GetFlag(FLAGS_payloads)},
        {"tenants", absl::GetFlag(FLAGS_tenants)}}) {
    if (path.empty()) continue;
    if (stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
    }
    absl::StrAppend(&id.side_files, "input_", flag, "=", path, " ", st.st_size, " ",
                    int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec, "\n");
  }
  if (stat(InputPath().c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(InputPath(), ": ", std::strerror(errno)));
  }
  id.input = InputPath();
  id.input_size = static_cast<uint64_t>(st.st_size);
  id.input_mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  id.collection = collection;
  id.collection_uid = uid;
  id.total = total;
  id.id_offset = absl::GetFlag(FLAGS_id_offset);
  return id;
}

// The rows a checkpoint at `path` says are loaded, when it was made by this very load; else 0,
// saying on stderr why it does not count.
uint64_t ReadCheckpoint(const std::string& path, const LoadIdentity& want) {
  auto text = strata::ReadWholeFile(path);
  if (!text.ok()) return 0;
  uint64_t rows = 0;
  std::string body;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "rows=")) {
      if (!absl::SimpleAtoi(line.substr(5), &rows)) rows = 0;
    } else {
      absl::StrAppend(&body, line, "\n");
    }
  }
  // (A checkpoint from before id_offset was bound to it: written by a load at the default.)
  if (!absl::StrContains(body, "\nid_offset=")) {
    const size_t at = body.find("\ntotal=");
    const size_t end = at == std::string::npos ? at : body.find('\n', at + 1);
    if (end != std::string::npos) body.insert(end + 1, "id_offset=0\n");
  }
  const std::string expected = want.Serialize();
  if (body == expected && rows <= want.total) return rows;
  std::string why = "it is for another load";
  for (absl::string_view line : absl::StrSplit(expected, '\n', absl::SkipEmpty())) {
    if (!absl::StrContains(body, absl::StrCat(line, "\n"))) {
      const std::string key(line.substr(0, line.find('=')));
      why = key == "collection_uid"
                ? "the collection is not the one it was made for (recreated, or another server)"
            : absl::StartsWith(key, "input") ? absl::StrCat("the input changed since (", key, ")")
                                             : absl::StrCat("its ", key, " differs");
      break;
    }
  }
  std::fprintf(stderr, "strata-load: ignoring checkpoint %s: %s; loading from row 0\n",
               path.c_str(), why.c_str());
  return 0;
}

// Ctrl-C during an online load: says how to go on (the checkpoint is replaced atomically, so it
// holds the rows acknowledged before the signal), then dies of the signal.
char interrupt_message[1024];
size_t interrupt_length = 0;
extern "C" void OnInterrupt(int) {
  (void)!write(STDERR_FILENO, interrupt_message, interrupt_length);
  // Dies of the signal, as without the handler: a shell script running the load stops too.
  signal(SIGINT, SIG_DFL);
  raise(SIGINT);
}
void SayHowToResumeOnInterrupt(const std::string& checkpoint) {
  const std::string message =
      absl::StrCat("\nstrata-load: interrupted; the same command",
                   absl::GetFlag(FLAGS_restart) ? " without --restart" : "",
                   " resumes the load after the rows ", checkpoint, " holds\n");
  interrupt_length = std::min(message.size(), sizeof(interrupt_message));
  std::memcpy(interrupt_message, message.data(), interrupt_length);
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
}

absl::Status WriteCheckpoint(const std::string& path, const LoadIdentity& id, uint64_t rows) {
  return strata::WriteFileAtomic(path, absl::StrCat(id.Serialize(), "rows=", rows, "\n"));
}

// Embeds rows [begin, end) of the passages with the server's model into `req`'s points.
grpc::Status EmbedRows(pb::Strata::Stub& stub, const Input& in, uint64_t begin, uint64_t end,
                       pb::UpsertRequest* req) {
  const uint32_t batch = std::max<uint32_t>(1, absl::GetFlag(FLAGS_embed_batch));
  for (uint64_t row = begin; row < end; row += batch) {
    pb::EmbedRequest ereq;
    const uint64_t stop = std::min<uint64_t>(end, row + batch);
    for (uint64_t i = row; i < stop; ++i) ereq.add_texts(in.text[i]);
    pb::EmbedResponse eresp;
    grpc::Status s = WithRetries("embed", [&](grpc::ClientContext* ctx) {
      eresp.Clear();
      return stub.Embed(ctx, ereq, &eresp);
    });
    if (!s.ok()) return s;
    for (uint64_t i = row; i < stop; ++i) {
      *req->mutable_points(static_cast<int>(i - begin))->mutable_vector() =
          std::move(*eresp.mutable_vectors(static_cast<int>(i - row)));
    }
  }
  return grpc::Status::OK;
}

// The loaded points' passage KV cache entries, computed by the server in batches, with a progress
// bar; stops (with a warning, the load itself having succeeded) once the server's cache is full.
int PrecomputeKv(pb::Strata::Stub* stub, const Input& in, const std::string& collection) {
  pb::KvCacheMode mode = pb::CACHED_INT8;
  const std::string name = absl::GetFlag(FLAGS_kv_cache_mode);
  if (name == "int4") {
    mode = pb::CACHED_INT4;
  } else if (name == "f16") {
    mode = pb::CACHED_F16;
  } else if (name != "int8") {
    return Fail(absl::StrCat("--kv_cache_mode must be int8, int4 or f16, not '", name, "'"));
  }
  const uint64_t n = in.embed_online ? in.text.size() : in.vectors.n;
  constexpr uint64_t kBatch = 16;  // a few seconds of decoder work per call
  strata::ProgressBar bar("precomputing passage KV", n, "passages");
  uint64_t computed = 0, cached = 0, without_text = 0, bytes = 0;
  for (uint64_t row = 0; row < n; row += kBatch) {
    pb::PrecomputePassageKvRequest req;
    req.set_collection(collection);
    req.set_cache_mode(mode);
    for (uint64_t r = row; r < std::min(n, row + kBatch); ++r) req.add_ids(IdOf(in, r));
    pb::PrecomputePassageKvResponse resp;
    grpc::Status s = WithRetries("precompute", [&](grpc::ClientContext* ctx) {
      return stub->PrecomputePassageKv(ctx, req, &resp);
    });
    if (!s.ok()) {
      bar.Stop(row);
      return Fail(absl::StrCat("precomputing passage KV: ", s.error_message()));
    }
    computed += resp.computed();
    cached += resp.already_cached();
    without_text += resp.without_text();
    bytes += resp.bytes();
    if (resp.evictions() > 0) {
      bar.Stop(std::min(n, row + kBatch));
      std::fprintf(stderr,
                   "strata-load: warning: the server's passage KV cache is full (%.0f of %.0f MB):"
                   " stopped after %llu of %llu passages; raise strata-server's "
                   "--kv_cache_disk_mb (or --kv_cache_ram_mb) to keep more\n",
                   resp.cache_bytes() / 1e6, resp.cache_capacity_bytes() / 1e6,
                   static_cast<unsigned long long>(std::min(n, row + kBatch)),
                   static_cast<unsigned long long>(n));
      return 0;
    }
    bar.Update(std::min(n, row + kBatch));
  }
  bar.Finish();
  std::fprintf(stderr,
               "strata-load: passage KV: %llu computed (%.1f MB), %llu already cached, %llu "
               "without text\n",
               static_cast<unsigned long long>(computed), bytes / 1e6,
               static_cast<unsigned long long>(cached),
               static_cast<unsigned long long>(without_text));
  return 0;
}

// Creates the tenants the rows name that the collection lacks (the admin's call).
grpc::Status CreateMissingTenants(pb::Strata::Stub& stub, const std::string& collection,
                                  const std::vector<std::vector<std::string>>& rows) {
  std::set<std::string> named;
  for (const auto& r : rows) named.insert(r.begin(), r.end());
  pb::ListTenantsRequest lreq;
  lreq.set_collection(collection);
  pb::ListTenantsResponse have;
  grpc::Status s = WithRetries(
      "list tenants", [&](grpc::ClientContext* ctx) { return stub.ListTenants(ctx, lreq, &have); });
  if (!s.ok()) return s;
  for (const pb::TenantInfo& t : have.tenants()) named.erase(t.name());
  for (const std::string& name : named) {
    pb::CreateTenantRequest req;
    req.set_collection(collection);
    req.set_name(name);
    pb::TenantInfo info;
    s = WithRetries("create tenant",
                    [&](grpc::ClientContext* ctx) { return stub.CreateTenant(ctx, req, &info); });
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) return s;
  }
  if (!named.empty()) {
    std::fprintf(stderr, "strata-load: created %zu tenants of '%s'\n", named.size(),
                 collection.c_str());
  }
  return grpc::Status::OK;
}

int RunOnline(Input& in, const std::string& collection) {
  auto channel = strata::MakeClientChannel(absl::GetFlag(FLAGS_server));
  if (!channel.ok()) {
    std::fprintf(stderr, "strata-load: %s\n", std::string(channel.status().message()).c_str());
    return 2;
  }
  auto stub = pb::Strata::NewStub(*channel);
  strata::VectorSet& v = in.vectors;
  {
    // The checkpoint goes beside the input unless --checkpoint says otherwise: a place where it
    // cannot be written (a read-only data folder) is said before anything is loaded.
    strata::Env& env = *strata::Env::Default();
    const std::string probe = Checkpoint(collection) + ".probe";
    auto file = env.NewWritableFile(probe);
    if (!file.ok()) {
      return Fail(
          absl::StrCat("cannot write the load's checkpoint (", file.status().message(),
                       "): name a writable place with --checkpoint=FILE; nothing was loaded"));
    }
    (void)(*file)->Close();
    (void)env.RemoveFile(probe);
  }
  if (absl::GetFlag(FLAGS_precompute_kv)) {  // asked before loading anything
    pb::StatsRequest sreq;
    pb::StatsResponse sresp;
    grpc::Status s = WithRetries(
        "stats", [&](grpc::ClientContext* ctx) { return stub->Stats(ctx, sreq, &sresp); });
    if (!s.ok()) return Fail(absl::StrCat("stats: ", s.error_message()));
    if (!sresp.has_generation()) {
      return Fail(
          "--precompute_kv needs a server with a decoder (strata-server --decoder=...); nothing "
          "was loaded");
    }
  }
  if (in.embed_online) {  // the model's dimension, from embedding the first passage
    pb::EmbedRequest ereq;
    ereq.add_texts(in.text[0]);
    pb::EmbedResponse eresp;
    grpc::Status s = WithRetries(
        "embed", [&](grpc::ClientContext* ctx) { return stub->Embed(ctx, ereq, &eresp); });
    if (!s.ok()) {
      return Fail(
          absl::StrCat("embedding through ", absl::GetFlag(FLAGS_server), ": ", s.error_message()));
    }
    v.dim = eresp.dimension();
    std::fprintf(stderr, "strata-load: the server embeds with %s (%u-d)\n", eresp.model().c_str(),
                 v.dim);
  }

  // The collection: described, or created to match the file.
  pb::DescribeCollectionRequest dreq;
  dreq.set_name(collection);
  pb::CollectionInfo info;
  grpc::Status s = WithRetries("describe", [&](grpc::ClientContext* ctx) {
    return stub->DescribeCollection(ctx, dreq, &info);
  });
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    pb::CreateCollectionRequest creq;
    creq.set_name(collection);
    creq.set_dimension(v.dim);
    creq.set_element_type(strata::ToProto(v.type));
    std::string m = Metric(!absl::GetFlag(FLAGS_text).empty());
    auto metric = strata::ParseMetric(m);
    if (!metric.ok()) return Fail(absl::StrCat("--metric: ", metric.status().message()));
    creq.set_metric(strata::ToProto(*metric));
    auto enc = PostingEncodingFlag(!absl::GetFlag(FLAGS_text).empty());
    if (!enc.ok()) return Fail(std::string(enc.status().message()));
    creq.mutable_index()->set_posting_encoding(strata::ToProto(*enc));
    for (const std::string& f : absl::GetFlag(FLAGS_text_fields)) creq.add_text_fields(f);
    s = WithRetries("create", [&](grpc::ClientContext* ctx) {
      return stub->CreateCollection(ctx, creq, &info);
    });
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      s = WithRetries("describe", [&](grpc::ClientContext* ctx) {
        return stub->DescribeCollection(ctx, dreq, &info);
      });
    }
    if (s.ok()) {
      std::fprintf(stderr, "strata-load: created collection '%s' (%s, %s postings)\n",
                   collection.c_str(), m.c_str(), strata::PostingEncodingName(*enc));
    }
  }
  if (!s.ok()) {
    return Fail(absl::StrCat(
        "collection '", collection, "': ", s.error_message(),
        s.error_code() == grpc::StatusCode::UNAVAILABLE
            ? absl::StrCat(" (is strata-server running at ", absl::GetFlag(FLAGS_server), "?)")
            : ""));
  }
  auto existing = strata::FromProto(info.index().posting_encoding());
  if (!existing.ok()) return Fail(std::string(existing.status().message()));
  auto existing_metric = strata::FromProto(info.metric());
  if (!existing_metric.ok()) return Fail(std::string(existing_metric.status().message()));
  if (absl::Status e = CheckExistingCollection(collection, *existing_metric, *existing); !e.ok()) {
    return Fail(std::string(e.message()));
  }
  if (const auto want = absl::GetFlag(FLAGS_text_fields);
      !want.empty() &&
      !std::equal(want.begin(), want.end(), info.text_fields().begin(), info.text_fields().end())) {
    return Fail(absl::StrCat("collection '", collection, "' exists with text fields [",
                             absl::StrJoin(info.text_fields(), ","),
                             "]; --text_fields applies only to a new collection"));
  }
  if (info.dimension() != v.dim) {
    return Fail(absl::StrCat("collection '", collection, "' has dimension ", info.dimension(),
                             in.embed_online ? ", the server's model embeds to " : ", the file ",
                             v.dim));
  }
  if (!in.embed_online && info.element_type() != strata::ToProto(v.type)) {
    // (Rows go as the file's bytes, which the server reads in the collection's type.)
    auto held = strata::FromProto(info.element_type());
    return Fail(absl::StrCat("collection '", collection, "' holds ",
                             held.ok() ? strata::ElementTypeName(*held) : "unknown", " vectors, ",
                             InputPath(), " ", strata::ElementTypeName(v.type),
                             " ones: load a file of its type, or into another collection"));
  }

  if (!in.tenants.empty()) {
    s = CreateMissingTenants(*stub, collection, in.tenants);
    if (!s.ok()) return Fail(absl::StrCat("tenants of '", collection, "': ", s.error_message()));
  }

  const std::string ckpt = Checkpoint(collection);
  auto identity = IdentifyLoad(collection, info.uid(), v.n);
  if (!identity.ok()) return Fail(std::string(identity.status().message()));
  uint64_t start = absl::GetFlag(FLAGS_restart) ? 0 : ReadCheckpoint(ckpt, *identity);
  SayHowToResumeOnInterrupt(ckpt);
  if (start == v.n) {
    // (On to the end of the load: an index build the last run could not finish is made now.)
    std::fprintf(stderr,
                 "strata-load: %s says all %llu rows are loaded already (--restart loads them "
                 "again); checking the index\n",
                 ckpt.c_str(), static_cast<unsigned long long>(v.n));
  }
  if (start > 0) {
    std::fprintf(stderr, "strata-load: resuming at row %llu of %llu (checkpoint %s)\n",
                 static_cast<unsigned long long>(start), static_cast<unsigned long long>(v.n),
                 ckpt.c_str());
  }
  const uint32_t batch = std::max<uint32_t>(1, absl::GetFlag(FLAGS_batch));
  auto t0 = Clock::now();
  uint64_t stored = 0, rejected = 0;
  int shown = 0;
  {
    strata::ProgressBar bar("loading", v.n, "vectors");
    bar.Update(start);
    for (uint64_t row = start, end = start; row < v.n; row = end) {
      // At most --batch rows, and at most kRequestBytes of them (one row at least): a server's
      // request limit is in bytes too (64 MiB by default), and 1,000 rows of 32K float32 values
      // are 131 MB.
      uint64_t bytes = 0;
      for (end = row; end < v.n && end - row < batch; ++end) {
        const uint64_t one = RequestRowBytes(in, v, end);
        if (end > row && bytes + one > kRequestBytes) break;
        bytes += one;
      }
      pb::UpsertRequest req;
      req.set_collection(collection);
      for (uint64_t i = row; i < end; ++i) {
        pb::Point* p = req.add_points();
        p->set_id(IdOf(in, i));
        if (!in.embed_online) {
          p->mutable_vector()->set_raw(
              std::string(reinterpret_cast<const char*>(v.row(i)), v.row_bytes()));
        }
        if (!in.json.empty()) {
          p->mutable_payload()->set_json(in.json[i]);
          p->mutable_payload()->set_text(in.text[i]);
        }
        if (!in.tenants.empty()) {
          pb::TenantList* t = p->mutable_tenants();
          for (const std::string& name : in.tenants[i]) t->add_names(name);
        }
      }
      if (in.embed_online) {
        s = EmbedRows(*stub, in, row, end, &req);
        if (!s.ok()) {
          bar.Finish();
          return Fail(absl::StrCat("embedding rows ", row, "-", end - 1, ": ", s.error_message(),
                                   "; rerun to resume from the checkpoint ", ckpt));
        }
      }
      pb::UpsertResponse resp;
      s = WithRetries("upsert", [&](grpc::ClientContext* ctx) {
        resp.Clear();
        return stub->Upsert(ctx, req, &resp);
      });
      if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
          (absl::StrContains(s.error_message(), "in one request") ||
           absl::StrContains(s.error_message(), "larger than max") ||
           absl::StrContains(s.error_message(), "whole memory budget"))) {
        // The request itself is over a limit of the server's: a rerun would send it again.
        bar.Finish();
        return Fail(absl::StrCat("rows ", row, "-", end - 1, " (", end - row, " rows, ",
                                 req.ByteSizeLong(), " bytes in one request): ", s.error_message(),
                                 end - row > 1
                                     ? absl::StrCat("; rerun with a smaller --batch (it resumes "
                                                    "from the checkpoint ",
                                                    ckpt, ")")
                                     : std::string("; one row is over the server's limit: raise "
                                                   "its --max_message_mb or shorten the row")));
      }
      if (!s.ok() && s.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
        bar.Finish();
        return Fail(absl::StrCat("rows ", row, "-", end - 1, ": ", s.error_message(),
                                 "; rerun to resume from the checkpoint ", ckpt));
      }
      if (!s.ok()) {  // every row of the batch was refused
        rejected += end - row;
        if (shown++ < 10) std::fprintf(stderr, "strata-load: %s\n", s.error_message().c_str());
      } else {
        stored += resp.upserted();
        rejected += resp.errors_size();
        for (const auto& e : resp.errors()) {
          if (shown++ < 10) {
            std::fprintf(stderr, "strata-load: row %llu (id %llu): %s\n",
                         static_cast<unsigned long long>(row + e.index()),
                         static_cast<unsigned long long>(e.id()), e.message().c_str());
          }
        }
      }
      absl::Status c = WriteCheckpoint(ckpt, *identity, end);
      if (!c.ok()) {
        bar.Finish();
        return Fail(std::string(c.message()));
      }
      bar.Update(end);
    }
    bar.Finish();
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();

  // The collection as it is now (for the summary, and to decide on a build).
  pb::DescribeCollectionRequest dreq_end;
  dreq_end.set_name(collection);
  s = WithRetries("describe", [&](grpc::ClientContext* ctx) {
    return stub->DescribeCollection(ctx, dreq_end, &info);
  });
  if (absl::GetFlag(FLAGS_build) && s.ok() && info.state() == pb::CollectionInfo::BUILDING) {
    // A build under way (the server's own, started as the load passed the build threshold): it
    // holds the vectors it began with, so the load waits for it, then looks again.
    std::fprintf(stderr, "strata-load: waiting for the index build under way...\n");
    s = strata::WaitForBuild(stub.get(), collection, info.build().id(), &info);
    if (!s.ok()) return Fail(BuildFailed(stored, "waiting for the index build under way", s));
  }
  if (absl::GetFlag(FLAGS_build)) {
    // No index yet, or one that most vectors were appended to after it was built: (re)build.
    bool stale = info.state() == pb::CollectionInfo::INDEXED &&
                 info.appended_vectors() > info.indexed_vectors();
    if (s.ok() && info.count() > 0 && (info.state() == pb::CollectionInfo::FLAT || stale)) {
      std::fprintf(stderr, "strata-load: building the index of %llu vectors...\n",
                   static_cast<unsigned long long>(info.count()));
      pb::BuildIndexRequest breq;
      breq.set_collection(collection);
      grpc::ClientContext ctx;
      s = stub->BuildIndex(&ctx, breq, &info);
      if (s.ok()) s = strata::WaitForBuild(stub.get(), collection, info.build().id(), &info);
      if (!s.ok()) return Fail(BuildFailed(stored, "the index build", s));
    }
  }
  std::fprintf(stderr,
               "strata-load: %llu vectors stored, %llu rejected, in %.1f s (%.0f vectors/s); "
               "collection '%s' holds %llu\n",
               static_cast<unsigned long long>(stored), static_cast<unsigned long long>(rejected),
               secs, static_cast<double>(stored) / std::max(secs, 1e-9), collection.c_str(),
               static_cast<unsigned long long>(info.count()));
  if (rejected > 0) return Fail(absl::StrCat(rejected, " rows were rejected (reasons above)"));
  if (const std::string q = absl::GetFlag(FLAGS_questions); !q.empty()) {
    auto req = strata::ReadLabelledQuestions(q, absl::GetFlag(FLAGS_max_questions));
    if (!req.ok()) return Fail(std::string(req.status().message()));
    req->set_collection(collection);
    grpc::Status t = strata::TuneHybridAndReport(stub.get(), *req);
    if (!t.ok()) return Fail(absl::StrCat("learning the hybrid weight: ", t.error_message()));
  }
  if (absl::GetFlag(FLAGS_precompute_kv)) return PrecomputeKv(stub.get(), in, collection);
  return 0;
}

// --- Offline
// ---------------------------------------------------------------------------------------

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

}  // namespace

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
  auto in = ReadInput(mode == "online");
  if (!in.ok()) return Fail(std::string(in.status().message()));
  if (in->embed_online) {
    std::fprintf(stderr, "strata-load: %s: %zu passages, embedded by the server\n",
                 InputPath().c_str(), in->text.size());
  } else {
    std::fprintf(stderr, "strata-load: %s: %llu %s vectors of dimension %u\n", InputPath().c_str(),
                 static_cast<unsigned long long>(in->vectors.n),
                 strata::ElementTypeName(in->vectors.type), in->vectors.dim);
  }
  return mode == "online" ? RunOnline(*in, collection) : RunOffline(*in, collection);
}
