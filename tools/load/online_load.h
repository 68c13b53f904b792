// strata-load's online mode: the rows streamed to a running server in Upsert batches, retried
// with back-off while the server is unreachable or says "retry later", each acknowledged batch
// recorded in the checkpoint; then the index built (not in a tenant's view: --tenant, or a
// tenant key), and on request the hybrid weight learnt and the passages' KV cache entries
// computed.
#ifndef STRATA_TOOLS_LOAD_ONLINE_LOAD_H_
#define STRATA_TOOLS_LOAD_ONLINE_LOAD_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "tools/load/input.h"

ABSL_DECLARE_FLAG(uint32_t, batch);
ABSL_DECLARE_FLAG(std::string, questions);
ABSL_DECLARE_FLAG(bool, precompute_kv);

namespace strata::load {

// Loads `in` into `collection` on --server (created when missing, unless the load is in a
// tenant's view); returns the exit code (2 when --server cannot be used).
int RunOnline(Input& in, const std::string& collection);

}  // namespace strata::load

#endif  // STRATA_TOOLS_LOAD_ONLINE_LOAD_H_
