#include "service/call_budget.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/retry_later.h"

namespace strata {
namespace {

std::string Mib(uint64_t bytes) { return absl::StrFormat("%.0f MiB", bytes / 1048576.0); }
// A size of any magnitude: KiB under 1 MiB, else MiB with a tenth.
std::string Size(uint64_t bytes) {
  return bytes < (uint64_t{1} << 20) ? absl::StrFormat("%.0f KiB", bytes / 1024.0)
                                     : absl::StrFormat("%.1f MiB", bytes / 1048576.0);
}

}  // namespace

bool MemoryBudget::TryReserve(uint64_t bytes) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > capacity_ || used > capacity_ - bytes) {
      refusals_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  uint64_t now = used + bytes;
  uint64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return true;
}

void MemoryBudget::Release(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

absl::Status CallBudget::Reserve(uint64_t bytes) {
  if (!pool_->TryReserve(bytes)) {  // counted as a refusal either way
    if (reserved_ + bytes > pool_->capacity()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "this call needs more than the server's whole memory budget for calls in flight (",
          Mib(pool_->capacity()), ", --memory_budget_mb): send a smaller request or ask for less"));
    }
    return absl::ResourceExhaustedError(
        absl::StrCat("the server's memory budget for calls in flight (", Mib(pool_->capacity()),
                     ", --memory_budget_mb) cannot take this call's ", Mib(reserved_ + bytes),
                     " now; ", kRetryLater, " or send smaller requests"));
  }
  reserved_ += bytes;
  return absl::OkStatus();
}

absl::Status CallBudget::CheckFloor(uint64_t done, uint64_t total, uint64_t floor_per_part,
                                    absl::string_view parts, absl::string_view how_to_page) const {
  if (done < kPartsToProject || done >= total) return absl::OkStatus();
  const double least = static_cast<double>(response_bytes_) +
                       static_cast<double>(total - done) * static_cast<double>(floor_per_part);
  if (least <= static_cast<double>(max_response_bytes_)) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the response would exceed the ", Mib(max_response_bytes_),
      " message limit (--max_message_mb): the first ", done, " ", parts, " came to ",
      Size(response_bytes_), ", and the other ", total - done, " need at least ", floor_per_part,
      " bytes each, at least ", Size(static_cast<uint64_t>(least)), " in all; ", how_to_page));
}

uint64_t CallBudget::EmbeddedBytes(uint64_t body) {
  uint64_t length_bytes = 1;
  for (uint64_t v = body; v >= 0x80; v >>= 7) ++length_bytes;
  return 1 + length_bytes + body;
}

absl::Status CallBudget::AddResponse(uint64_t wire_bytes, absl::string_view where,
                                     absl::string_view how_to_page) {
  if (response_bytes_ + wire_bytes > max_response_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the response would exceed the ", Mib(max_response_bytes_),
                     " message limit (--max_message_mb) at ", where, "; ", how_to_page));
  }
  response_bytes_ += wire_bytes;
  return Reserve(2 * wire_bytes + kMessageOverhead);
}

}  // namespace strata
