// The limits of one request and of the calls in flight: ServerLimits, the one home of their
// defaults (strata-server's flags and strata-cli read them from here).
#ifndef STRATA_SERVICE_LIMITS_H_
#define STRATA_SERVICE_LIMITS_H_

#include <cstdint>

namespace strata {

// Limits of one request, as users know them from other vector databases (Milvus: top-k and batch
// 16,384, dimension 32,768, request 64 MB).
struct ServerLimits {
  uint32_t max_k = 16384;
  uint32_t max_batch = 16384;  // points per upsert, ids per get/delete, queries per batch
  uint32_t max_dimension = 32768;
  uint32_t max_message_bytes = 64u << 20;
  uint32_t max_postings = 4096;  // search parameter caps
  uint32_t max_ef_search = 16384;
  uint32_t max_texts = 1024;        // texts per Embed call / text queries per batch
  uint32_t max_text_bytes = 65536;  // bytes per text
  // Bytes of one point's payload (JSON and text, as stored). Above max_text_bytes, so a passage
  // at the text limit fits with its metadata.
  uint32_t max_payload_bytes = 256u << 10;
  // Memory of all calls in flight together: requests, the rows they copy, responses being built
  // (service/call_budget.h). A call that would pass it gets RESOURCE_EXHAUSTED.
  uint64_t memory_budget_bytes = uint64_t{1} << 30;
  // Bytes a collection's lexical index may hold (CollectionOptions::max_text_index_bytes).
  uint64_t max_text_index_bytes = uint64_t{2} << 30;
};

}  // namespace strata

#endif  // STRATA_SERVICE_LIMITS_H_
