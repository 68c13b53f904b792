// Fault injection for the block-read path: wraps a BlockFile so its readers fail in planned ways.
// Used by tests to prove every disk fault becomes a clean Status (never a crash or a wrong answer).
#ifndef STRATA_STORAGE_FAULT_INJECTION_H_
#define STRATA_STORAGE_FAULT_INJECTION_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "storage/block_reader.h"

namespace strata {

enum class FaultKind {
  kNone,
  kFailRead,   // the read returns an I/O error (EIO)
  kShortRead,  // the read returns fewer bytes than asked
  kFlipBit,    // the read succeeds but one bit in every 256 bytes of the data is flipped
};

// Which ops fail: every op whose global sequence number (counted over all readers of the file,
// from 0) is >= first_op and (op - first_op) % every == 0. every = 0 means only first_op.
struct FaultPlan {
  FaultKind kind = FaultKind::kNone;
  uint64_t first_op = 0;
  uint64_t every = 0;
  uint32_t bit = 12345;  // kFlipBit: flips bit (bit % 8) of bytes (bit / 8) % 256 + 256 * j
};

// Wraps `base`; thread-safe like any BlockFile. injected() counts faults delivered so far.
class FaultInjectingBlockFile final : public BlockFile {
 public:
  FaultInjectingBlockFile(std::unique_ptr<BlockFile> base, FaultPlan plan)
      : base_(std::move(base)), plan_(plan) {}

  absl::StatusOr<std::unique_ptr<BlockReader>> NewReader() override;
  IoEngine engine() const override { return base_->engine(); }
  bool direct() const override { return base_->direct(); }
  uint64_t size() const override { return base_->size(); }
  const std::string& path() const override { return base_->path(); }

  [[nodiscard]] uint64_t injected() const { return injected_.load(); }

  // Decides the fault for the next op; internal to the wrapper's readers.
  FaultKind NextFault();
  [[nodiscard]] const FaultPlan& plan() const { return plan_; }
  void CountInjected() { injected_.fetch_add(1); }

 private:
  std::unique_ptr<BlockFile> base_;
  FaultPlan plan_;
  std::atomic<uint64_t> next_op_{0};
  std::atomic<uint64_t> injected_{0};
};

}  // namespace strata

#endif  // STRATA_STORAGE_FAULT_INJECTION_H_
