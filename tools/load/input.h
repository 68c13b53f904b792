// What strata-load reads before it sends or writes anything: the rows (vectors, or passages to
// embed), their ids, payloads and tenants, each problem named with its file and line.
#ifndef STRATA_TOOLS_LOAD_INPUT_H_
#define STRATA_TOOLS_LOAD_INPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "storage/vector_file.h"

ABSL_DECLARE_FLAG(std::string, input);
ABSL_DECLARE_FLAG(std::string, text);
ABSL_DECLARE_FLAG(std::string, ids);
ABSL_DECLARE_FLAG(std::string, payloads);
ABSL_DECLARE_FLAG(std::string, tenants);
ABSL_DECLARE_FLAG(uint64_t, id_offset);
ABSL_DECLARE_FLAG(std::string, embed_backend);
ABSL_DECLARE_FLAG(std::string, embed_precision);
ABSL_DECLARE_FLAG(uint32_t, embed_batch);

namespace strata::load {

struct Input {
  strata::VectorSet vectors;            // text mode online: n and dim only, no data
  std::vector<uint64_t> ids;            // empty = row + offset
  std::vector<std::string> json, text;  // empty = no payloads
  // Who may see each row (--tenants, or the JSONL 'tenants' field); empty = not given.
  std::vector<std::vector<std::string>> tenants;
  bool embed_online = false;    // text mode online: vectors come from the Embed RPC
  std::vector<uint64_t> lines;  // --text: each row's line in the file (blank lines count)
};

// An Upsert request's bytes, at most: what the loader bounds a batch by, beside --batch (a
// quarter of the server's default message limit).
constexpr uint64_t kRequestBytes = 16 << 20;

// Row `i`'s bytes in an Upsert request, about: its vector (or the embedding the loader adds), its
// payload and its tenant names.
uint64_t RequestRowBytes(const Input& in, const strata::VectorSet& v, uint64_t i);

// The rows to load: --input's vectors (with --ids, --payloads and --tenants beside them) or
// --text's passages, at most --limit. `online`: the server embeds the passages later (the vectors
// hold their count and type only); else they are embedded here with --model_dir.
absl::StatusOr<Input> ReadInput(bool online);

// Row `row`'s id: from --ids or the JSONL when given, else the row number plus --id_offset.
uint64_t IdOf(const Input& in, uint64_t row);

// How messages name row `row`: "FILE:LINE" for --text passages, else "row N" (from 0).
std::string RowName(const Input& in, uint64_t row);

// The file being loaded (--input or --text).
std::string InputPath();

}  // namespace strata::load

#endif  // STRATA_TOOLS_LOAD_INPUT_H_
