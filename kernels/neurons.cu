// The fused-neuron CUDA kernels: each thread takes Cfg::vec consecutive neurons and runs all T steps
// of neuron.cuh's per-thread loops. NVRTC compiles this file at first use, once per configuration,
// for the GPU's own architecture (tfbench/ops/jit.py); the launcher (tfbench_ops.cpp) names the
// configuration with these -D switches:
//   TFB_NEURON        the neuron's struct (kernels/neurons/all.cuh), e.g. LIF, PLIF
//   TFB_STORAGE       0 float, 1 bfloat16, 2 float16, 3 double  (the dtype of x, s, h, gs, gx)
//   TFB_DECAY_INPUT, TFB_HARD_RESET, TFB_DETACH_RESET   0 or 1
//   TFB_SURROGATE     0 sigmoid, 1 atan, 2 rect
//   TFB_VEC           neurons per thread (1, 2, 4 or 8)
//   TFB_UNROLL        time steps loaded ahead of use (the kernels that keep h)
//   TFB_NORM          0, or BatchNorm folded in: 1 one channel per thread, 2 a channel per neuron
//   TFB_RESIDUAL      0 none, 1 dense, 2 bits, 3 dense normalised by its own BatchNorm (neuron.cuh's Args)
#include "neurons/all.cuh"
#include "storage.cuh"

using namespace tfb;

#ifndef TFB_NEURON
#define TFB_NEURON LIF
#endif
#ifndef TFB_DECAY_INPUT
#define TFB_DECAY_INPUT 1
#endif
#ifndef TFB_HARD_RESET
#define TFB_HARD_RESET 1
#endif
#ifndef TFB_DETACH_RESET
#define TFB_DETACH_RESET 0
#endif
#ifndef TFB_SURROGATE
#define TFB_SURROGATE 0
#endif
#ifndef TFB_VEC
#define TFB_VEC 1
#endif
#ifndef TFB_UNROLL
#define TFB_UNROLL 4
#endif
#ifndef TFB_NORM
#define TFB_NORM 0
#endif
#ifndef TFB_RESIDUAL
#define TFB_RESIDUAL 0
#endif

#if TFB_SURROGATE < 0 || TFB_SURROGATE > 2
#error "TFB_SURROGATE must be 0 (sigmoid), 1 (atan) or 2 (rect)"
#endif

typedef Storage<S>::acc A;   // the arithmetic type: float, or double for double storage
typedef TFB_NEURON N;
typedef Args<A, N::Params<A>> Arg;

// The switches as compile-time constants: every branch on them folds away.
struct Cfg {
  static constexpr bool decay_input = TFB_DECAY_INPUT, hard_reset = TFB_HARD_RESET, detach_reset = TFB_DETACH_RESET;
  static constexpr int surrogate = TFB_SURROGATE, vec = TFB_VEC, unroll = TFB_UNROLL;
  static constexpr int norm = TFB_NORM, chan_vec = TFB_NORM == 2 ? TFB_VEC : 1, residual = TFB_RESIDUAL;
};

__device__ __forceinline__ i64 first_neuron() { return ((i64)blockIdx.x * blockDim.x + threadIdx.x) * Cfg::vec; }

// The learning neuron's per-neuron dL/d(parameter) `g` summed over a.group consecutive neurons (a
// power of two that no channel boundary crosses, at most the block's neurons) into a.gparam[i /
// group]: within the thread, then over the group's lanes of the warp with shuffles, then over its
// warps through shared memory, always in the same order, so every run gives the same bits. The
// launcher sums those partials (one small reduction).
__device__ void write_partials(A (&g)[Cfg::vec], bool active, i64 i0, const Arg& a) {
  constexpr int V = Cfg::vec;
  const int group = a.group;
  if (group < V) {  // this thread's neurons span several groups (indices fixed at compile time: registers)
    A s = A(0);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      s += g[k];
      if ((k + 1) % group == 0) {
        if (active) a.gparam[(i0 + k + 1 - group) / group] = s;
        s = A(0);
      }
    }
    return;
  }
  A s = A(0);
#pragma unroll
  for (int k = 0; k < V; ++k) s += g[k];
  const int lanes = group / V;  // threads per group
  if (lanes <= 32) {
    for (int offset = lanes / 2; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset, lanes);
    if (threadIdx.x % lanes == 0 && active) a.gparam[i0 / group] = s;
    return;
  }
  __shared__ A warp_sums[32];
  for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x % lanes == 0 && active) {
    A total = A(0);
    for (int w = 0; w < lanes / 32; ++w) total += warp_sums[(threadIdx.x >> 5) + w];
    a.gparam[i0 / group] = total;
  }
}

extern "C" __global__ void tfb_forward(const Arg a) {
  const i64 i0 = first_neuron();
  if (i0 >= a.n) return;
  forward_thread<N, Cfg, S, A>(Cfg(), i0, a);
}

extern "C" __global__ void tfb_forward_ckpt(const Arg a) {
  const i64 i0 = first_neuron();
  if (i0 >= a.n) return;
  forward_ckpt_thread<N, Cfg, S, A>(Cfg(), i0, a);
}

extern "C" __global__ void tfb_backward(const Arg a) {
  const i64 i0 = first_neuron();
  A g[Cfg::vec];
  if (!N::learns || !a.gparam) {
    if (i0 >= a.n) return;
    backward_thread<N, Cfg, S, A>(Cfg(), i0, a, g);
    return;
  }
  const bool active = i0 < a.n;  // every thread of the block takes part in the reduction
#pragma unroll
  for (int k = 0; k < Cfg::vec; ++k) g[k] = A(0);
  if (active) backward_thread<N, Cfg, S, A>(Cfg(), i0, a, g);
  write_partials(g, active, i0, a);
}

extern "C" __global__ void tfb_backward_recompute(const Arg a) {
  const i64 i0 = first_neuron();
  A g[Cfg::vec];
  if (!N::learns || !a.gparam) {
    if (i0 >= a.n) return;
    backward_recompute_thread<N, Cfg, S, A>(Cfg(), i0, a, g);
    return;
  }
  const bool active = i0 < a.n;
#pragma unroll
  for (int k = 0; k < Cfg::vec; ++k) g[k] = A(0);
  if (active) backward_recompute_thread<N, Cfg, S, A>(Cfg(), i0, a, g);
  write_partials(g, active, i0, a);
}

extern "C" __global__ void tfb_stats(const Arg a) {
  const i64 i0 = first_neuron();
  if (i0 >= a.n) return;
  stats_thread<Cfg, S, A>(Cfg(), i0, a);
}

// BatchNorm's backward epilogue over [T, n] (neuron.cuh's epilogue_thread): a thread per Cfg::vec neurons of
// step blockIdx.y.
extern "C" __global__ void tfb_norm_epilogue(const Arg a) {
  const i64 i0 = first_neuron();
  if (i0 >= a.n) return;
  epilogue_thread<Cfg, S, A>(Cfg(), i0, (int)blockIdx.y, a);
}

// Spikes as bits (neuron.cuh's pack_byte, unpack_byte): a.x the [numel] storage tensor, a.res the
// bytes, a.n = numel; one thread per byte.
extern "C" __global__ void tfb_pack(const Arg a) {
  const i64 byte = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (byte * 8 >= a.n) return;
  pack_byte<S>(a.x, static_cast<unsigned char*>(a.gres), a.n, byte);
}

extern "C" __global__ void tfb_unpack(const Arg a) {
  const i64 byte = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (byte * 8 >= a.n) return;
  unpack_byte<S>(static_cast<const unsigned char*>(a.res), a.gx, a.n, byte);
}

// BatchNorm folded in, per channel: one block per channel, blockDim.x (a power of two, at most 1024)
// workers summing fixed strides of the channel's neurons, then a fixed tree in shared memory.
__device__ A block_sum(A v) {
  __shared__ A part[1024];
  part[threadIdx.x] = v;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  A total = part[0];
  __syncthreads();
  return total;
}

// Forward: a.sums = stats_thread's per-neuron (mean, M2) -> the channel's rows of a.stats, and the update.
extern "C" __global__ void tfb_channel_forward(const Arg a) {
  const i64 c = blockIdx.x, K = a.n / a.channels;
  A mean = A(0), var = A(0);
  if (a.batch_stats) {
    A s = A(0);
    for (i64 k = threadIdx.x; k < K; k += blockDim.x) s += a.sums[channel_neuron(a, c, k)];
    mean = block_sum(s) / (A)K;
    A q = A(0);
    for (i64 k = threadIdx.x; k < K; k += blockDim.x) {
      const i64 i = channel_neuron(a, c, k);
      const A d = a.sums[i] - mean;
      q += a.sums[a.n + i] + (A)a.steps * d * d;
    }
    var = block_sum(q) / (A)(K * a.steps);
  }
  if (threadIdx.x == 0) channel_finish_forward(a, c, mean, var);
}

// Backward: a.sums = the recompute pass's per-neuron (sum gy, sum gy (x - mean)) -> the channel's.
extern "C" __global__ void tfb_channel_backward(const Arg a) {
  const i64 c = blockIdx.x, K = a.n / a.channels;
  A s1 = A(0), s2 = A(0);
  for (i64 k = threadIdx.x; k < K; k += blockDim.x) {
    const i64 i = channel_neuron(a, c, k);
    s1 += a.sums[i];
    s2 += a.sums[a.n + i];
  }
  s1 = block_sum(s1);
  s2 = block_sum(s2);
  if (threadIdx.x == 0) channel_finish_backward(a, c, s1, s2);
}
