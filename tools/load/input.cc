#include "tools/load/input.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/json_error.h"
#include "gpu/encoder.h"
#include "gpu/wordpiece.h"
#include "index/collection.h"
#include "index/collection_config.h"
#include "nlohmann/json.hpp"
#include "storage/status_macros.h"
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
          "(indexed lexically), the other fields its JSON (a 'tenants' field too: --tenants says "
          "who sees each row)");
ABSL_FLAG(std::string, tenants, "",
          "online: who may see each row, one line per row: tenant names separated by commas (an "
          "empty line: no tenant, only the admin's whole-collection view). With --text, a "
          "JSONL 'tenants' array does the same. Missing tenants are created (README, "
          "\"Tenants\"). In a tenant's load (--tenant, or a tenant's key) a row may name that "
          "tenant only, and an empty line is the tenant's own point");
ABSL_FLAG(uint64_t, limit, 0, "load only the first N rows (0 = all)");

namespace strata::load {
namespace {

// A row's tenants against the server's limit per point (index/collection.h), before anything is
// created on the server.
absl::Status CheckRowTenants(absl::string_view where, size_t count) {
  if (count <= strata::kMaxPointTenants) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": ", count, " tenants on one row; a point takes at most ",
                   strata::kMaxPointTenants, " (strata-cli grant adds more after the load)"));
}

// --text: passages from JSONL. The payload JSON keeps every field but 'text', which is stored as
// the payload text. Every line is read: the first ten that are not passages are named together
// (with how many more), so one run shows what to mend.
absl::Status ReadPassages(const std::string& path, uint64_t limit, Input* in) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string line;
  uint64_t n = 0;           // passages (and lines that should have been)
  uint64_t at = 0;          // lines read
  int with_ids = -1;        // unknown until the first passage
  uint64_t ids_set_by = 0;  // the line that set it
  // Reads one line's passage (line `at` of the file, row `n`) into `in`.
  const auto read = [&](const std::string& where) -> absl::Status {
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
    if (gpu::IsBlankText(j["text"].get_ref<const std::string&>())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": 'text' holds no words (a passage is found by its words)"));
    }
    const bool has_id = j.contains("id");
    if (has_id && !j["id"].is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": 'id' is not an integer from 0 to 18446744073709551615 (Strata's ids "
                       "are unsigned 64-bit integers: "
                       "rename a string id field - it stays in the payload - and rows are "
                       "numbered instead)"));
    }
    if (with_ids == -1) {
      with_ids = has_id ? 1 : 0;
      ids_set_by = at;
    }
    if (has_id != (with_ids == 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ", has_id ? "has an 'id'" : "has no 'id'", " where line ", ids_set_by,
          has_id ? " has none" : " has one", " ('id' must be on every line or on none)"));
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
    in->lines.push_back(at);
    return absl::OkStatus();
  };
  std::vector<std::string> bad;
  uint64_t bad_lines = 0;
  while ((limit == 0 || n < limit) && std::getline(f, line)) {
    ++at;
    if (line.empty()) continue;
    absl::Status s = read(absl::StrCat(path, ":", at));
    if (!s.ok()) {
      if (bad.size() < 10) bad.emplace_back(s.message());
      ++bad_lines;
    }
    ++n;
  }
  if (bad_lines == 1) return absl::InvalidArgumentError(bad.front());
  if (bad_lines > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        bad_lines, " lines of ", path, " are not passages",
        bad_lines > bad.size() ? absl::StrCat(" (the first ", bad.size(), ")") : std::string(),
        ":\n  ", absl::StrJoin(bad, "\n  ")));
  }
  if (n == 0) return absl::InvalidArgumentError(absl::StrCat(path, " holds no passages"));
  if (!in->tenants.empty()) in->tenants.resize(n);
  // An id given twice is stored once, as its last line has it: legal, but rarely meant.
  absl::flat_hash_map<uint64_t, uint64_t> first_line;
  first_line.reserve(in->ids.size());
  uint64_t repeats = 0;
  std::string example;
  for (size_t r = 0; r < in->ids.size(); ++r) {
    auto [it, fresh] = first_line.emplace(in->ids[r], in->lines[r]);
    if (fresh) continue;
    if (repeats++ == 0) {
      example = absl::StrCat("id ", in->ids[r], " on lines ", it->second, " and ", in->lines[r]);
    }
  }
  if (repeats > 0) {
    std::fprintf(stderr,
                 "strata-load: warning: %llu rows of %s repeat an id of an earlier row (%s): the "
                 "collection keeps the last of them it stores\n",
                 static_cast<unsigned long long>(repeats), path.c_str(), example.c_str());
  }
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

}  // namespace

uint64_t RequestRowBytes(const Input& in, const strata::VectorSet& v, uint64_t i) {
  uint64_t n = 32 + (in.embed_online ? uint64_t{v.dim} * sizeof(float) : v.row_bytes());
  if (!in.json.empty()) n += in.json[i].size() + in.text[i].size();
  if (!in.tenants.empty()) {
    for (const std::string& t : in.tenants[i]) n += t.size() + 4;
  }
  return n;
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

std::string RowName(const Input& in, uint64_t row) {
  if (row < in.lines.size()) return absl::StrCat(InputPath(), ":", in.lines[row]);
  return absl::StrCat("row ", row);
}

std::string InputPath() {
  return absl::GetFlag(FLAGS_input).empty() ? absl::GetFlag(FLAGS_text)
                                            : absl::GetFlag(FLAGS_input);
}

}  // namespace strata::load
