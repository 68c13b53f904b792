// The decoder's checks for a backend other than the CPU (CUDA on a device, or through the
// emulator): each returns what went wrong, in words (empty: all held), so that cuda_test and
// cuda_emu_test run the same checks.
#ifndef STRATA_TESTS_GPU_DECODER_BACKEND_CHECKS_H_
#define STRATA_TESTS_GPU_DECODER_BACKEND_CHECKS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/gpu/tiny_model.h"

namespace strata::testing {

// Tiny decoders of every GGUF type in both layouts (`layers` layers) against the float64
// reference forward, as one prompt and token by token: top-1 everywhere, log-probabilities within
// 2e-3 (the few-row product, the panel product, the gather, RoPE and cached attention all run).
absl::StatusOr<std::vector<std::string>> TinyDecodersAgainstTheReference(BackendFactory make,
                                                                         int layers,
                                                                         const std::string& dir);

// Passage KV assembly (testing::AssemblyLogits) on the backend against the CPU's (fp32
// activations): cached in place equals a full prefill, moved with everything recomputed equals
// one (1e-4), and every assembly agrees with the CPU's (1e-3).
absl::StatusOr<std::vector<std::string>> AssemblyAgainstTheCpu(BackendFactory make,
                                                               const std::string& dir);

// The device tier: with it on, the second assembly of the same entry takes it from there
// (device_hits) and gives the same logits as the first and as assemblies with the tier off.
absl::StatusOr<std::vector<std::string>> DeviceTierRepeats(BackendFactory make,
                                                           const std::string& dir);

}  // namespace strata::testing

#endif  // STRATA_TESTS_GPU_DECODER_BACKEND_CHECKS_H_
