#include "storage/fault_injection.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace strata {
namespace {

class FaultInjectingReader final : public BlockReader {
 public:
  FaultInjectingReader(std::unique_ptr<BlockReader> base, FaultInjectingBlockFile* file)
      : base_(std::move(base)), file_(file) {}

  absl::Status ReadBatch(absl::Span<const ReadOp> ops,
                         absl::FunctionRef<absl::Status(size_t)> on_done) override {
    faults_.assign(ops.size(), FaultKind::kNone);
    for (auto& f : faults_) f = file_->NextFault();
    return base_->ReadBatch(ops, [&](size_t i) -> absl::Status {
      const ReadOp& op = ops[i];
      switch (faults_[i]) {
        case FaultKind::kNone:
          break;
        case FaultKind::kFailRead:
          file_->CountInjected();
          return absl::DataLossError(absl::StrCat("read ", file_->path(), " at offset ", op.offset,
                                                  ": Input/output error (injected)"));
        case FaultKind::kShortRead:
          file_->CountInjected();
          return absl::DataLossError(absl::StrCat("short read of ", file_->path(), ": got ",
                                                  op.length / 2, " of ", op.length,
                                                  " bytes at offset ", op.offset, " (injected)"));
        case FaultKind::kFlipBit: {
          file_->CountInjected();
          const uint32_t bit = file_->plan().bit;
          for (uint64_t at = (bit / 8) % 256; at < op.length; at += 256) {
            op.buf[at] ^= static_cast<char>(1u << (bit % 8));
          }
          break;
        }
      }
      return on_done(i);
    });
  }

  bool usable() const override { return base_->usable(); }
  size_t abandoned_reads() const override { return base_->abandoned_reads(); }

 private:
  std::unique_ptr<BlockReader> base_;
  FaultInjectingBlockFile* file_;
  std::vector<FaultKind> faults_;
};

}  // namespace

FaultKind FaultInjectingBlockFile::NextFault() {
  uint64_t op = next_op_.fetch_add(1);
  if (plan_.kind == FaultKind::kNone || op < plan_.first_op) return FaultKind::kNone;
  uint64_t rel = op - plan_.first_op;
  if (plan_.every == 0 ? rel == 0 : rel % plan_.every == 0) return plan_.kind;
  return FaultKind::kNone;
}

absl::StatusOr<std::unique_ptr<BlockReader>> FaultInjectingBlockFile::NewReader() {
  ASSIGN_OR_RETURN(auto base, base_->NewReader());
  return std::unique_ptr<BlockReader>(new FaultInjectingReader(std::move(base), this));
}

}  // namespace strata
