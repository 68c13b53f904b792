// Bounds on the memory that calls use: one byte budget for the whole server, and the size of
// each response as it is built.
//
// MemoryBudget is the server's budget for calls in flight (--memory_budget_mb). Every call
// reserves its request's bytes when it starts and its response's bytes as rows are added, and
// gives everything back when it ends. A call that cannot reserve what it needs fails with
// RESOURCE_EXHAUSTED, so a burst of large calls is refused instead of growing the process.
//
// CallBudget is one call's share. It also holds the response to the message limit
// (--max_message_mb) while the response is built: the row that would cross it stops the call
// with RESOURCE_EXHAUSTED naming the limit and how to ask for less, before more is fetched.
//
// Sizes are estimates: a response row counts twice its wire bytes (the message object and the
// serialised copy gRPC sends) plus a fixed overhead for the object; a request counts its wire
// bytes. A request being received by gRPC, before its handler runs, is outside the budget: gRPC's
// resource quota, sized to the budget (service/server.cc), bounds those bytes instead (loosely:
// it reclaims after allocating), and up to --threads requests being parsed come on top.
//
// Thread-safety: MemoryBudget may be used by any number of threads; a CallBudget by one.
#ifndef STRATA_SERVICE_CALL_BUDGET_H_
#define STRATA_SERVICE_CALL_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace strata {

class MemoryBudget final {
 public:
  explicit MemoryBudget(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Reserves `bytes` when they fit beside what is reserved; false (and nothing reserved) if not.
  [[nodiscard]] bool TryReserve(uint64_t bytes);
  void Release(uint64_t bytes);

  [[nodiscard]] uint64_t capacity() const { return capacity_; }
  [[nodiscard]] uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  // The most reserved at once since the server started.
  [[nodiscard]] uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  // Reservations refused.
  [[nodiscard]] uint64_t refusals() const { return refusals_.load(std::memory_order_relaxed); }

 private:
  const uint64_t capacity_;
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> peak_{0};
  std::atomic<uint64_t> refusals_{0};
};

class CallBudget final {
 public:
  // Bytes counted per message object beside its wire bytes (a Hit, a Point).
  static constexpr uint64_t kMessageOverhead = 64;

  // `pool` must outlive the call budget; `max_response_bytes` is the message limit.
  CallBudget(MemoryBudget* pool, uint64_t max_response_bytes)
      : pool_(pool), max_response_bytes_(max_response_bytes) {}
  ~CallBudget() { pool_->Release(reserved_); }
  CallBudget(const CallBudget&) = delete;
  CallBudget& operator=(const CallBudget&) = delete;

  // Reserves `bytes` of working memory (the request, a copy of its rows, a chunk of fetched
  // rows). ResourceExhausted when the server's budget cannot take them.
  [[nodiscard]] absl::Status Reserve(uint64_t bytes);

  // Counts one more response message of `wire_bytes` (as it goes on the wire, framing included:
  // EmbeddedBytes), reserving its memory twice over (the
  // message object, and the serialised copy gRPC makes of the response). ResourceExhausted
  // when the response would pass the message limit ("... at <where>; <how_to_page>") or the
  // server's budget is spent.
  [[nodiscard]] absl::Status AddResponse(uint64_t wire_bytes, absl::string_view where,
                                         absl::string_view how_to_page);

  // For a response of `total` parts of which `done` are counted, each of the rest known to take
  // at least `floor_per_part` bytes: ResourceExhausted, before the rest is worked out, once
  // `done` >= kPartsToProject and what is counted plus that floor would pass the message limit
  // ("... <how_to_page>"). Otherwise the response is built and stopped at the limit as
  // AddResponse does.
  static constexpr uint64_t kPartsToProject = 32;
  [[nodiscard]] absl::Status CheckFloor(uint64_t done, uint64_t total, uint64_t floor_per_part,
                                        absl::string_view parts,
                                        absl::string_view how_to_page) const;

  // The wire bytes of a message of `body` bytes as a field of another (field numbers up to 15):
  // its tag, its length and itself.
  [[nodiscard]] static uint64_t EmbeddedBytes(uint64_t body);

  // Hands the reservation over (to be released by the caller later, see call_memory_hold.h):
  // returns its bytes and leaves the call budget holding none.
  [[nodiscard]] uint64_t TakeReserved() {
    const uint64_t bytes = reserved_;
    reserved_ = 0;
    return bytes;
  }

  [[nodiscard]] uint64_t response_bytes() const { return response_bytes_; }
  [[nodiscard]] uint64_t reserved() const { return reserved_; }

 private:
  MemoryBudget* const pool_;
  const uint64_t max_response_bytes_;
  uint64_t response_bytes_ = 0;
  uint64_t reserved_ = 0;
};

}  // namespace strata

#endif  // STRATA_SERVICE_CALL_BUDGET_H_
