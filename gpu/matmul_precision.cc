// MatmulPrecisionName (backend.h), apart from the backends: the CUDA module links it from the
// engine's base library (the module is linked with --no-undefined, so a symbol it misses fails
// the build rather than the module's load on a GPU machine).
#include "gpu/backend.h"

namespace strata::gpu {

absl::string_view MatmulPrecisionName(MatmulPrecision p) {
  switch (p) {
    case MatmulPrecision::kNative:
      return "f32";
    case MatmulPrecision::kBF16:
      return "bf16";
    case MatmulPrecision::kInt8:
      return "int8";
  }
  return "?";
}

}  // namespace strata::gpu
