// The CUDA emulator's runtime: the fiber scheduler behind kernel launches, device memory as
// tracked host memory, and a reference cublasGemmEx. See cuda_emu.h for what it does and does not
// check.
#include "tests/gpu/cuda_emu/cuda_emu.h"

#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"

namespace strata_cuda_emu {

uint3 g_thread_idx;
uint3 g_block_idx;
dim3 g_block_dim;
dim3 g_grid_dim;

namespace {

constexpr int kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxDynamicShared = 48 * 1024;
constexpr size_t kFiberStack = 64 * 1024;

struct State {
  cudaError_t last_error = cudaSuccess;    // from launches, cleared by cudaGetLastError
  cudaError_t sticky_error = cudaSuccess;  // from execution, returned until TakeReport
  Order order = Order::kForward;
  Report report;
  std::map<uintptr_t, size_t> allocations;  // device memory: start -> bytes
};
State& S() {
  static State s;
  return s;
}

void Fault(cudaError_t sticky, std::string what) {
  std::fprintf(stderr, "cuda emulator: %s\n", what.c_str());
  S().report.faults.push_back(std::move(what));
  if (sticky != cudaSuccess && S().sticky_error == cudaSuccess) S().sticky_error = sticky;
}

// ---- fibers: a stack and a saved context each -------------------------------------------------
// On x86-64 a context switch saves the callee-saved registers and the FP control words on the
// stack and swaps stack pointers (glibc's swapcontext also saves the signal mask, a system call
// per switch: ten times slower, and the emulator switches at every barrier of every thread).
// Elsewhere, and under AddressSanitizer (which follows swapcontext but not a hand-made switch),
// ucontext.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
extern "C" void strata_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl strata_emu_switch
    .type strata_emu_switch, @function
strata_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size strata_emu_switch, .-strata_emu_switch
    .section .note.GNU-stack, "", @progbits
    .text
)");

struct Context {
  void* sp = nullptr;
};
void SwitchTo(Context& from, Context& to) { strata_emu_switch(&from.sp, to.sp); }
// A context that starts `entry` on the stack [stack, stack + size).
void MakeContext(Context& c, char* stack, size_t size, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top);
  *--slot = 0;                                  // entry's own return address: never used
  *--slot = reinterpret_cast<uint64_t>(entry);  // where the switch's ret goes
  for (int i = 0; i < 6; ++i) *--slot = 0;      // rbp, rbx, r12-r15
  *--slot = uint64_t{0x037f} << 32 | 0x1f80;    // x87 control word, MXCSR: the defaults
  c.sp = slot;
}
#else
struct Context {
  ucontext_t uc;
};
void SwitchTo(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void MakeContext(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

// ---- the block scheduler ------------------------------------------------------------------------
enum class FiberState { kRunnable, kBlocked, kDone };

struct Fiber {
  Context context;
  uint3 index;
  FiberState state = FiberState::kRunnable;
  int64_t shuffles = 0;  // shuffles this thread took part in
};

// A barrier for `expected` threads; the last to arrive releases the others.
struct Barrier {
  int expected = 0;
  int arrived = 0;
  std::vector<int> waiting;
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;  // kept across blocks and launches
  std::vector<char> shared;                     // dynamic shared memory
  // Static shared arrays by declaration (file, line): one kernel runs at a time, so a
  // declaration's memory is its running block's.
  std::map<std::pair<const char*, int>, std::vector<char>> static_shared;
  Barrier block_barrier;
  std::vector<Barrier> warp_barriers;
  std::vector<float> warp_slots;  // 2 x 32 per warp: the values a shuffle exchanges
  Context scheduler;
  int current = -1;
  const std::function<void()>* body = nullptr;
};
Block& B() {
  static Block b;
  return b;
}

int LinearThread(const uint3& t) {
  return static_cast<int>(t.x + t.y * g_block_dim.x + t.z * g_block_dim.x * g_block_dim.y);
}

void FiberMain() {
  Block& b = B();
  (*b.body)();
  Fiber& f = b.fibers[static_cast<size_t>(b.current)];
  f.state = FiberState::kDone;
  SwitchTo(f.context, b.scheduler);  // never resumed
  std::abort();
}

// The running thread arrives at `bar`; it waits there unless it is the last to arrive.
void Arrive(Barrier& bar) {
  Block& b = B();
  ++S().report.barriers;
  if (++bar.arrived == bar.expected) {
    for (int i : bar.waiting) b.fibers[static_cast<size_t>(i)].state = FiberState::kRunnable;
    bar.waiting.clear();
    bar.arrived = 0;
    return;
  }
  const int me = b.current;
  Fiber& f = b.fibers[static_cast<size_t>(me)];
  f.state = FiberState::kBlocked;
  bar.waiting.push_back(me);
  SwitchTo(f.context, b.scheduler);
  // Resumed: the scheduler restored this thread's coordinates.
}

// Runs the threads of one block to completion; false (after a Fault) if they deadlocked.
bool RunBlock(const dim3& block, int threads) {
  Block& b = B();
  b.fibers.assign(static_cast<size_t>(threads), Fiber{});
  while (b.stacks.size() < static_cast<size_t>(threads)) {
    b.stacks.push_back(std::make_unique<char[]>(kFiberStack));
  }
  b.block_barrier = Barrier{threads, 0, {}};
  const int warps = (threads + 31) / 32;
  b.warp_barriers.assign(static_cast<size_t>(warps), Barrier{});
  for (int w = 0; w < warps; ++w) {
    b.warp_barriers[static_cast<size_t>(w)].expected = std::min(32, threads - w * 32);
  }
  b.warp_slots.assign(static_cast<size_t>(warps) * 2 * 32, 0.0f);
  int i = 0;
  for (unsigned z = 0; z < block.z; ++z) {
    for (unsigned y = 0; y < block.y; ++y) {
      for (unsigned x = 0; x < block.x; ++x, ++i) {
        Fiber& f = b.fibers[static_cast<size_t>(i)];
        f.index = uint3{x, y, z};
        MakeContext(f.context, b.stacks[static_cast<size_t>(i)].get(), kFiberStack, &FiberMain);
      }
    }
  }
  // Sweeps run every runnable thread once in index order (or reverse) before any runs again;
  // the greedy orders always resume the lowest (highest) runnable thread, so that one warp runs as
  // far ahead of the others as the barriers allow.
  const Order order = S().order;
  const bool reverse = order == Order::kReverse || order == Order::kHighestFirst;
  const bool greedy = order == Order::kLowestFirst || order == Order::kHighestFirst;
  int done = 0, cursor = 0;
  while (done < threads) {
    int pick = -1;
    for (int k = 0; k < threads && pick < 0; ++k) {
      const int pos = greedy ? k : (cursor + k) % threads;
      const int idx = reverse ? threads - 1 - pos : pos;
      if (b.fibers[static_cast<size_t>(idx)].state == FiberState::kRunnable) {
        pick = idx;
        cursor = pos + 1;
      }
    }
    if (pick < 0) {
      int blocked = 0;
      for (const Fiber& f : b.fibers) blocked += f.state == FiberState::kBlocked ? 1 : 0;
      Fault(cudaErrorLaunchFailure,
            absl::StrCat("block (", g_block_idx.x, ",", g_block_idx.y, ",", g_block_idx.z,
                         "): ", blocked, " of ", threads,
                         " threads wait at a barrier the others never reach (divergent "
                         "__syncthreads or shuffle)"));
      return false;  // the waiting fibers are abandoned; their stacks are reused
    }
    Fiber& f = b.fibers[static_cast<size_t>(pick)];
    b.current = pick;
    g_thread_idx = f.index;
    SwitchTo(b.scheduler, f.context);
    if (f.state == FiberState::kDone) ++done;
  }
  return true;
}

}  // namespace

void SyncThreads() { Arrive(B().block_barrier); }

float ShuffleXor(unsigned mask, float v, int lane_mask) {
  Block& b = B();
  const int t = LinearThread(g_thread_idx);
  const int warp = t / 32, lane = t % 32;
  Barrier& bar = b.warp_barriers[static_cast<size_t>(warp)];
  if (mask != 0xffffffffu || bar.expected != 32 || lane_mask < 0 || lane_mask >= 32) {
    Fault(cudaErrorLaunchFailure,
          absl::StrCat("__shfl_xor_sync(mask ", mask, ", lane mask ", lane_mask, ") in a warp of ",
                       bar.expected, " threads: the emulator supports full warps and masks only"));
    return v;
  }
  // Two sets of slots, used by turns: a lane can be at most one shuffle ahead of another (it
  // cannot pass the next barrier without it), so it never overwrites a slot still to be read.
  Fiber& f = b.fibers[static_cast<size_t>(b.current)];
  float* slots = &b.warp_slots[(static_cast<size_t>(warp) * 2 + f.shuffles++ % 2) * 32];
  slots[lane] = v;
  Arrive(bar);  // every lane has written
  return slots[lane ^ lane_mask];
}

void* DynamicShared() { return B().shared.data(); }

void* StaticShared(size_t bytes, const char* file, int line) {
  std::vector<char>& mem = B().static_shared[{file, line}];
  if (mem.size() < bytes) mem.resize(bytes, static_cast<char>(0xff));
  return mem.data();
}

void RunGrid(dim3 grid, dim3 block, size_t dynamic_smem, const std::function<void()>& body) {
  State& s = S();
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  std::string bad;
  if (threads == 0 || threads > kMaxThreadsPerBlock || block.x > 1024 || block.y > 1024 ||
      block.z > 64) {
    bad = absl::StrCat("block (", block.x, ",", block.y, ",", block.z, ")");
  } else if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
             grid.z > 65535) {
    bad = absl::StrCat("grid (", grid.x, ",", grid.y, ",", grid.z, ")");
  } else if (dynamic_smem > kMaxDynamicShared) {
    bad = absl::StrCat(dynamic_smem, " bytes of dynamic shared memory");
  }
  if (!bad.empty()) {
    s.last_error = cudaErrorInvalidConfiguration;
    Fault(cudaSuccess, absl::StrCat("invalid launch configuration: ", bad));
    return;
  }
  if (s.sticky_error != cudaSuccess) return;  // a failed context runs nothing more
  ++s.report.launches;
  Block& b = B();
  b.body = &body;
  g_grid_dim = grid;
  g_block_dim = block;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        g_block_idx = uint3{x, y, z};
        // Shared memory holds NaN floats until written, as if it were the block's own.
        b.shared.assign(dynamic_smem, static_cast<char>(0xff));
        for (auto& [key, mem] : b.static_shared) std::fill(mem.begin(), mem.end(), char(0xff));
        s.report.threads += static_cast<int64_t>(threads);
        if (!RunBlock(block, static_cast<int>(threads))) return;
      }
    }
  }
}

// ---- runtime ------------------------------------------------------------------------------------
const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? S().sticky_error : cudaErrorInvalidDevice;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "%s", "CUDA emulator (CPU)");
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = size_t{1} << 32;
  return cudaSuccess;
}

struct EmuStream {};
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  *stream = new EmuStream;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return S().sticky_error; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (S().sticky_error != cudaSuccess) return S().sticky_error;
  *p = std::malloc(bytes);
  if (*p == nullptr) return cudaErrorMemoryAllocation;
  S().allocations[reinterpret_cast<uintptr_t>(*p)] = bytes;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  auto it = S().allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == S().allocations.end()) {
    Fault(cudaSuccess, "cudaFree of a pointer cudaMalloc did not return");
    return cudaErrorInvalidValue;
  }
  S().allocations.erase(it);
  std::free(p);
  return cudaSuccess;
}

namespace {
// Whether [p, p + bytes) lies inside one device allocation.
bool InDeviceMemory(const void* p, size_t bytes) {
  const auto& a = S().allocations;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = a.upper_bound(addr);
  if (it == a.begin()) return false;
  --it;
  return addr >= it->first && addr + bytes <= it->first + it->second;
}
}  // namespace

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  if (S().sticky_error != cudaSuccess) return S().sticky_error;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (InDeviceMemory(dst, bytes) != dst_dev || (src_dev && !InDeviceMemory(src, bytes))) {
    Fault(cudaSuccess, absl::StrCat("cudaMemcpyAsync of ", bytes, " bytes (kind ", int{kind},
                                    "): a range is not where the kind says"));
    return cudaErrorInvalidValue;
  }
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  State& s = S();
  const cudaError_t e = s.last_error != cudaSuccess ? s.last_error : s.sticky_error;
  s.last_error = cudaSuccess;
  return e;
}

// ---- cuBLAS -------------------------------------------------------------------------------------
struct EmuBlas {
  cudaStream_t stream = nullptr;
};

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new EmuBlas;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
  }
  return "unknown";
}

namespace {
float LoadAs(cudaDataType_t t, const void* p, int64_t i) {
  switch (t) {
    case CUDA_R_16F:
      return strata::HalfToFloat(static_cast<const uint16_t*>(p)[i]);
    case CUDA_R_16BF:
      return strata::BFloat16ToFloat(static_cast<const uint16_t*>(p)[i]);
    case CUDA_R_32F:
      break;
  }
  return static_cast<const float*>(p)[i];
}
void StoreAs(cudaDataType_t t, void* p, int64_t i, float v) {
  switch (t) {
    case CUDA_R_16F:
      static_cast<uint16_t*>(p)[i] = strata::FloatToHalf(v);
      return;
    case CUDA_R_16BF:
      static_cast<uint16_t*>(p)[i] = strata::FloatToBFloat16(v);
      return;
    case CUDA_R_32F:
      break;
  }
  static_cast<float*>(p)[i] = v;
}
size_t SizeOf(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
}  // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* a, cudaDataType_t a_type, int lda, const void* b,
                            cudaDataType_t b_type, int ldb, const void* beta, void* c,
                            cudaDataType_t c_type, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto invalid = [](std::string why) {
    Fault(cudaSuccess, absl::StrCat("cublasGemmEx: ", why));
    return CUBLAS_STATUS_INVALID_VALUE;
  };
  const bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
  // The documented checks: sizes non-negative, leading dimensions at least the stored rows.
  if (m < 0 || n < 0 || k < 0) return invalid(absl::StrCat("m ", m, ", n ", n, ", k ", k));
  if (lda < std::max(1, ta ? k : m)) return invalid(absl::StrCat("lda ", lda));
  if (ldb < std::max(1, tb ? n : k)) return invalid(absl::StrCat("ldb ", ldb));
  if (ldc < std::max(1, m)) return invalid(absl::StrCat("ldc ", ldc));
  // The combinations CUBLAS_COMPUTE_32F takes (A and B alike; C the same or F32).
  const bool types_ok = compute == CUBLAS_COMPUTE_32F && a_type == b_type &&
                        (c_type == a_type || (a_type != CUDA_R_32F && c_type == CUDA_R_32F));
  if (!types_ok) {
    Fault(cudaSuccess, "cublasGemmEx: unsupported type combination");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  // Every pointer must address device memory large enough for the matrix as the arguments
  // describe it (the last column needs only its stored rows).
  auto fits = [](const void* p, cudaDataType_t t, int rows, int cols, int ld) {
    if (rows == 0 || cols == 0) return true;
    const size_t elems =
        static_cast<size_t>(ld) * static_cast<size_t>(cols - 1) + static_cast<size_t>(rows);
    return InDeviceMemory(p, elems * SizeOf(t));
  };
  if (!fits(a, a_type, ta ? k : m, ta ? m : k, lda)) return invalid("A is not in device memory");
  if (!fits(b, b_type, tb ? n : k, tb ? k : n, ldb)) return invalid("B is not in device memory");
  if (!fits(c, c_type, m, n, ldc)) return invalid("C is not in device memory");
  ++S().report.gemms;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  // op(A) as m rows of k floats and op(B)ᵀ as n rows of k floats, so that every element of C is a
  // dot product of two contiguous rows (in eight partial sums: fp32 accumulation, in some order,
  // as cuBLAS's own).
  std::vector<float> ra(static_cast<size_t>(m) * k), rb(static_cast<size_t>(n) * k);
  for (int i = 0; i < m; ++i) {
    for (int l = 0; l < k; ++l) {
      ra[static_cast<size_t>(i) * k + l] =
          LoadAs(a_type, a, ta ? l + int64_t{i} * lda : i + int64_t{l} * lda);
    }
  }
  for (int j = 0; j < n; ++j) {
    for (int l = 0; l < k; ++l) {
      rb[static_cast<size_t>(j) * k + l] =
          LoadAs(b_type, b, tb ? j + int64_t{l} * ldb : l + int64_t{j} * ldb);
    }
  }
  for (int j = 0; j < n; ++j) {
    const float* y = &rb[static_cast<size_t>(j) * k];
    for (int i = 0; i < m; ++i) {
      const float* x = &ra[static_cast<size_t>(i) * k];
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int l = 0;
      for (; l + 8 <= k; l += 8) {
        for (int u = 0; u < 8; ++u) part[u] += x[l + u] * y[l + u];
      }
      float acc = 0;
      for (; l < k; ++l) acc += x[l] * y[l];
      for (float p : part) acc += p;
      const int64_t at = i + int64_t{j} * ldc;
      // beta == 0: C is not read (it may hold NaN), as cuBLAS documents.
      StoreAs(c_type, c, at, al * acc + (be != 0 ? be * LoadAs(c_type, c, at) : 0.0f));
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

// ---- test controls ------------------------------------------------------------------------------
void SetOrder(Order order) { S().order = order; }

Report TakeReport() {
  State& s = S();
  Report r = std::move(s.report);
  s.report = Report{};
  s.sticky_error = cudaSuccess;
  s.last_error = cudaSuccess;
  return r;
}

}  // namespace strata_cuda_emu
