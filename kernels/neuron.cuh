// The fused-neuron kernel template: storage dtypes, the per-thread loops over all T steps, written
// once for every neuron (docs/neurons.md is the maths). A neuron is a struct in kernels/neurons/
// (lif.cuh, plif.cuh) with its parameters, charge, and parameter gradient; fire, reset and the
// surrogate are the ones below, shared by the neurons of docs/neurons.md.
//
// Compiled three ways from this one text:
//   - by NVRTC for the GPU (neurons.cu, one module per configuration, built at first use);
//   - by the system C++ compiler inside the op's extension (tfbench_ops.cpp): the CPU op;
//   - by the same compiler in the CPU test suite, through that extension.
//
// Layout: time-major [T, n], n = prod(*); one thread owns Cfg::vec consecutive neurons for all T
// steps, the membrane in registers. The kernel-side configuration is a type `Cfg` with members
//   decay_input, hard_reset, detach_reset (bool), surrogate (0 sigmoid, 1 atan, 2 rect)
//   vec (neurons per thread), unroll (time steps loaded ahead in the kernels that keep h)
//   norm (0: x is the input current; 1: BatchNorm folded in, the input is x * scale[c] + shift[c]
//     with one channel c for the thread's vec neurons; 2: the same, a channel per neuron)
//   chan_vec (per-channel values held per thread: 1, or vec when norm is 2 or on the host)
//   residual (0 none; 1 a dense [T, n] tensor added to the input; 2 the same as bits, for spikes;
//     3 a dense tensor normalised by its own BatchNorm first: the downsample's, folded in too)
// On the GPU these are `static constexpr` (neurons.cu, from NVRTC -D switches), so every branch on
// them folds away; on the host they are run-time fields, so one build covers every configuration.
#pragma once

#if defined(__CUDACC__)
#define TFB_HD __host__ __device__ __forceinline__
#else
#include <cmath>
#include <cstring>
#define TFB_HD inline
#endif
#define TFB_RESTRICT __restrict__

// Steps per membrane checkpoint of the kernels that keep x instead of h (save="input"). 8: the
// checkpoints then add 8/8 = 1 B/element (5% of the 20 the variant moves in fp32), and the recompute
// backward holds 8 * vec membranes in registers (32 fp32 at 4 neurons/thread, 64 at bf16's 8), which
// still fits without spills; 16 would halve the 1 B but double the registers. tfbench/ops/library.py
// reads this line (fake shapes), so it is the one place the value is set.
#define TFB_CKPT 8

namespace tfb {

typedef long long i64;
typedef unsigned short u16;

// ---------------------------------------------------------------------------------------------
// Storage types. bf16/fp16 are carried as raw 16-bit patterns so that NVRTC needs no CUDA
// headers (a user's machine has none), and the same code compiles on the host.
// ---------------------------------------------------------------------------------------------
struct bf16 { u16 bits; };
struct f16 { u16 bits; };

TFB_HD float bits_to_float(unsigned u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f; std::memcpy(&f, &u, 4); return f;
#endif
}
TFB_HD unsigned float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  unsigned u; std::memcpy(&u, &f, 4); return u;
#endif
}

// bfloat16: the high half of a float; round to nearest even, NaN stays NaN.
TFB_HD float to_float(bf16 x) { return bits_to_float((unsigned)x.bits << 16); }
TFB_HD bf16 bf16_rn(float f) {
  unsigned u = float_to_bits(f);
  bf16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) { r.bits = (u16)((u >> 16) | 0x40u); return r; }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.bits = (u16)(u >> 16);
  return r;
}

// float16: the hardware conversion on the GPU, IEEE round-to-nearest-even in software on the host.
TFB_HD float to_float(f16 x) {
#if defined(__CUDA_ARCH__)
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits)); return f;
#else
  unsigned sign = (unsigned)(x.bits & 0x8000u) << 16, exp = (x.bits >> 10) & 0x1fu, man = x.bits & 0x3ffu;
  if (exp == 0x1fu) return bits_to_float(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    float mag = (float)man * 5.9604644775390625e-08f;  // man * 2^-24, exact
    return sign ? -mag : mag;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}
TFB_HD f16 f16_rn(float f) {
  f16 r;
#if defined(__CUDA_ARCH__)
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
#else
  unsigned u = float_to_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) { r.bits = (u16)(sign | 0x7e00u); return r; }      // NaN
  if (a >= 0x477ff000u) { r.bits = (u16)(sign | 0x7c00u); return r; }     // rounds to inf
  if (a < 0x38800000u) {                                                  // subnormal or zero
    float m = std::fabs(f) * 16777216.0f;                                 // in units of 2^-24
    r.bits = (u16)(sign | (unsigned)std::nearbyint(m));
    return r;
  }
  unsigned e = (a >> 23) - 112u, man = a & 0x7fffffu;
  unsigned h = (e << 10) | (man >> 13), rest = man & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  r.bits = (u16)(sign | h);
#endif
  return r;
}

// One representable step of a 16-bit float pattern towards +inf or -inf.
TFB_HD u16 step16(u16 b, bool up) {
  bool neg = (b & 0x8000u) != 0, zero = (b & 0x7fffu) == 0;
  if (zero) return up ? (u16)0x0001u : (u16)0x8001u;
  return (up != neg) ? (u16)(b + 1) : (u16)(b - 1);
}

// The storage dtype's conversions. store_h rounds the membrane so that the spike recomputed from
// the stored value (h >= v_threshold) is the spike the forward emitted: when rounding to nearest
// would cross the threshold, it takes the neighbour on h's side (one step, since rounding to
// nearest moves by at most half a step).
template <typename S> struct Storage;
template <> struct Storage<float> {
  typedef float acc;
  static TFB_HD float load(float x) { return x; }
  static TFB_HD float store(float x) { return x; }
  static TFB_HD float store_h(float h, bool, float) { return h; }
};
template <> struct Storage<double> {
  typedef double acc;
  static TFB_HD double load(double x) { return x; }
  static TFB_HD double store(double x) { return x; }
  static TFB_HD double store_h(double h, bool, double) { return h; }
};
template <> struct Storage<bf16> {
  typedef float acc;
  static TFB_HD float load(bf16 x) { return to_float(x); }
  static TFB_HD bf16 store(float x) { return bf16_rn(x); }
  static TFB_HD bf16 store_h(float h, bool spike, float thr) {
    bf16 r = bf16_rn(h);
    float back = to_float(r);
    if ((back >= thr) != spike) r.bits = step16(r.bits, back < h);
    return r;
  }
};
template <> struct Storage<f16> {
  typedef float acc;
  static TFB_HD float load(f16 x) { return to_float(x); }
  static TFB_HD f16 store(float x) { return f16_rn(x); }
  static TFB_HD f16 store_h(float h, bool spike, float thr) {
    f16 r = f16_rn(h);
    float back = to_float(r);
    if ((back >= thr) != spike) r.bits = step16(r.bits, back < h);
    return r;
  }
};

// V neurons of one time step, moved as one aligned access on the GPU (16 bytes for 4 floats or 8
// halves; the launcher checks the alignment); element by element on the host (no alignment needed).
template <typename S, int V> struct alignas(sizeof(S) * V) Pack { S v[V]; };

template <typename S, int V> TFB_HD Pack<S, V> load_pack(const void* base, i64 offset) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const Pack<S, V>*>(static_cast<const S*>(base) + offset);
#else
  Pack<S, V> p;
  std::memcpy(p.v, static_cast<const S*>(base) + offset, sizeof(S) * V);
  return p;
#endif
}
template <typename S, int V> TFB_HD void store_pack(void* base, i64 offset, const Pack<S, V>& p) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<Pack<S, V>*>(static_cast<S*>(base) + offset) = p;
#else
  std::memcpy(static_cast<S*>(base) + offset, p.v, sizeof(S) * V);
#endif
}

// ---------------------------------------------------------------------------------------------
// Arithmetic helpers. Each is rounded once and never contracted by the compiler: the forward and
// the backward's recomputation (another kernel) must round h identically.
// ---------------------------------------------------------------------------------------------
TFB_HD float fma_(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
TFB_HD double fma_(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
TFB_HD float mul_(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;  // the host build uses -ffp-contract=off
#endif
}
TFB_HD double mul_(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
TFB_HD float add_(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
TFB_HD double add_(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// Fast exponential and division on the GPU (one multi-function-unit op each): the surrogate is
// evaluated once per element in backward and the special-function unit, not memory, was the limit
// for bf16 (kernels/NOTES.md, v2). Their error (a few ulp) is far below the tests' fp32 bounds.
TFB_HD float exp_(float a) {
#if defined(__CUDA_ARCH__)
  return __expf(a);
#else
  return std::exp(a);
#endif
}
TFB_HD float rcp_(float a) {
#if defined(__CUDA_ARCH__)
  return __fdividef(1.0f, a);
#else
  return 1.0f / a;
#endif
}
TFB_HD double rcp_(double a) { return 1.0 / a; }
TFB_HD double exp_(double a) { return exp(a); }
TFB_HD float abs_(float a) { return fabsf(a); }
TFB_HD double abs_(double a) { return fabs(a); }

// ---------------------------------------------------------------------------------------------
// What every neuron of docs/neurons.md shares: the spike, the reset and the surrogate derivative.
// P is the neuron's parameter struct; it has v_threshold, v_reset (hard reset: the reset value;
// soft reset: 0, the rest potential vr) and alpha.
// ---------------------------------------------------------------------------------------------
template <class P, typename A> TFB_HD bool fire(const P& p, A h) { return h >= p.v_threshold; }

template <class C, class P, typename A> TFB_HD A reset(const C& c, const P& p, A h, bool spike) {
  if (c.hard_reset) return spike ? p.v_reset : h;
  return spike ? h - p.v_threshold : h;
}

template <class C, class P, typename A> TFB_HD A surrogate(const C& c, const P& p, A u) {
  if (c.surrogate == 0) {          // sigmoid: alpha sig(alpha u) (1 - sig(alpha u))
    A sg = rcp_(A(1) + exp_(-p.alpha * u));
    return p.alpha * sg * (A(1) - sg);
  }
  if (c.surrogate == 1) {          // atan: alpha / 2 / (1 + (pi/2 alpha u)^2)
    A w = A(1.5707963267948966) * p.alpha * u;
    return A(0.5) * p.alpha * rcp_(A(1) + w * w);
  }
  return abs_(u) < A(1) / (A(2) * p.alpha) ? p.alpha : A(0);  // rect: unit area, width 1/alpha
}

// dL/dh[t] from dL/ds[t] and dL/dv[t]; h is the pre-reset membrane (docs/neurons.md, "Backward").
template <class C, class P, typename A> TFB_HD A grad_h(const C& c, const P& p, A gs, A gv, A h) {
  A g = surrogate(c, p, h - p.v_threshold);
  A keep = fire(p, h) ? A(0) : A(1);
  A dvdh;
  if (c.hard_reset) dvdh = c.detach_reset ? keep : keep + (p.v_reset - h) * g;
  else dvdh = c.detach_reset ? A(1) : A(1) - p.v_threshold * g;
  return gs * g + gv * dvdh;
}

// The neuron interface the loops below use (kernels/neurons/lif.cuh is the plainest example):
//   template <typename A> struct Params;            its constants (and learnable tensors' pointers)
//   template <typename A> struct Local { A k; };    per-neuron values, loaded once per thread
//   static Local<A> local(p, i)                     for neuron i
//   static A charge(c, p, l, v, x)                  h[t] from v[t-1] and x[t]
//   static A grad_x(c, l, gh), grad_v(c, l, gh)     dL/dx[t], dL/dv[t-1] from dL/dh[t]
//   static constexpr bool learns                    whether it has a learnable parameter, and then
//   static A param_term(c, p, h, v_prev)            dh[t]/d(parameter), up to param_scale
//   static A param_scale(c, p, l)                   the factor applied to sum_t gh[t] * param_term
// The loops hand param_term the membrane before the step, v[t-1] (v0 for t = 0): the backward
// recovers it from h[t-1] as reset(h[t-1]) with no extra load (a value carried from step to step).

// ---------------------------------------------------------------------------------------------
// The arguments of every kernel, one struct for all four, filled by the launcher
// (tfbench_ops.cpp) and read by the kernels: the one definition of the kernels' parameters.
// Storage pointers are untyped (the storage dtype is a compile-time choice of the kernel).
// ---------------------------------------------------------------------------------------------
template <typename A, class P> struct Args {
  const void* x;        // [T, n] storage: input current (forward kernels, recompute backward)
  const void* gs;       // [T, n] storage: dL/ds (backward kernels)
  void* s;              // [T, n] storage: spikes (forward kernels)
  unsigned char* s_bits;  // [ceil(T n / 8)] or null: the spikes as bits too (pack_byte's order; forward_ckpt)
  void* h;              // [T, n] storage: pre-reset membrane (written by forward, read by backward)
  A* ckpt;              // [ceil(T / TFB_CKPT) - 1, n]: membrane checkpoints (save="input")
  const A* v0;          // [n] or null: initial membrane (null: the rest potential)
  A* v_last;            // [n] or null: final membrane v_T (null: not wanted)
  const A* gv_last;     // [n] or null: dL/dv_T (null: v_T unused)
  void* gx;             // [T, n] storage: dL/dx
  A* gv0;               // [n] or null: dL/dv0 (null: not wanted)
  A* gparam;            // [ceil(n / group)] or null: partial sums of dL/d(parameter) (learning neurons)
  i64 n;                // neurons
  int steps;            // T
  int group;            // neurons per partial sum of gparam (a power of two, see the launcher)
  P p;                  // the neuron's parameters
  // BatchNorm folded into the neuron (Cfg::norm > 0; only the kernels that keep x): neuron i is in
  // channel (i / inner) % channels, and its input current at step t is
  //   x[t, i] * scale[c] + shift[c]  (+ the residual r[t, i])
  // (scale = weight / sqrt(var + eps), shift = bias - mean * scale: BatchNorm's output, one fma).
  const A* scale;       // [channels]
  const A* shift;       // [channels]
  const A* mean;        // [channels] backward: the mean used (the batch's, or the running one in eval)
  A* ea;                // [channels] or null: backward epilogue, dL/dx = gy*scale + (x - mean)*ea + eb
  A* eb;                // [channels] or null (null: dL/dx = gy * scale, BatchNorm in eval mode); the
                        //   per-channel backward kernel writes both, the others read them
  const void* res;      // [T, n] storage (Cfg::residual 1) or bits (2: element e is bit e % 8 of byte e / 8)
  void* gres;           // [T, n] storage or null: dL/dr = dL/dy (backward)
  // Residual 3: r[t, i] = res[t, i] * rscale[c] + rshift[c], the residual's own BatchNorm (its rows of
  // the call's stats); backward sums per neuron what that BatchNorm's backward needs, as for x.
  const A* rscale;      // [channels] or null (kernels that do not read the residual)
  const A* rshift;      // [channels]
  const A* rmean;       // [channels] backward: the residual BatchNorm's mean used
  A* res_sums;          // [2, n] or null: per neuron, sum_t gy[t] and sum_t gy[t] * (res[t] - rmean) (backward)
  A* sums;              // [2, n] or null: per neuron, sum_t gy[t] and sum_t gy[t] * (x[t] - mean)
                        //   (backward); the statistics kernel writes its mean_t x and sum_t (x - mean)^2
  i64 inner;            // neurons per channel and batch element (1 for channels-last)
  i64 channels;
  // The per-channel kernel (channel_* below): the call's [4, C] channel values (rows: mean, invstd,
  // scale, shift), BatchNorm's affine parameters, running statistics and their update.
  A* stats;             // [4, channels]
  const A* weight;      // [channels] or null (no affine: 1)
  const A* bias;        // [channels] or null (no affine: 0)
  A* running_mean;      // [channels] or null: updated (forward with batch statistics), else read
  A* running_var;
  i64* batches;         // [] or null: num_batches_tracked, counted by the statistics pass (stats_thread)
  A* gweight;           // [channels] or null: dL/dweight, dL/dbias (backward)
  A* gbias;
  double momentum;      // < 0: the cumulative average (nn.BatchNorm2d's momentum=None)
  double eps;
  bool batch_stats;     // the batch's statistics (training, or no running ones) rather than the running ones
};

// ---------------------------------------------------------------------------------------------
// The per-thread loops. `i0` is the first of this thread's Cfg::vec neurons; the caller guarantees
// i0 + vec <= n. Offsets are 64-bit: T * n may exceed 2^31.
// ---------------------------------------------------------------------------------------------
template <class N, class C, typename S, typename A>
TFB_HD void forward_thread(const C& c, i64 i0, const Args<A, typename N::template Params<A>>& a) {
  typedef Storage<S> St;
  constexpr int V = C::vec, U = C::unroll;
  typedef Pack<S, V> pack_t;
  const auto& p = a.p;
  const i64 n = a.n;
  typename N::template Local<A> l[V];
  A v[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    l[k] = N::local(p, i0 + k);
    v[k] = a.v0 ? a.v0[i0 + k] : p.v_reset;
  }
  int t = 0;
  for (; t + U <= a.steps; t += U) {
    pack_t xs[U];
#pragma unroll
    for (int u = 0; u < U; ++u) xs[u] = load_pack<S, V>(a.x, (i64)(t + u) * n + i0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      pack_t sp, hp;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        A hk = N::charge(c, p, l[k], v[k], St::load(xs[u].v[k]));
        bool spike = fire(p, hk);
        sp.v[k] = St::store(spike ? A(1) : A(0));
        hp.v[k] = St::store_h(hk, spike, p.v_threshold);
        v[k] = reset(c, p, hk, spike);
      }
      store_pack<S, V>(a.s, (i64)(t + u) * n + i0, sp);
      store_pack<S, V>(a.h, (i64)(t + u) * n + i0, hp);
    }
  }
  for (; t < a.steps; ++t) {
    pack_t xp = load_pack<S, V>(a.x, (i64)t * n + i0), sp, hp;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      A hk = N::charge(c, p, l[k], v[k], St::load(xp.v[k]));
      bool spike = fire(p, hk);
      sp.v[k] = St::store(spike ? A(1) : A(0));
      hp.v[k] = St::store_h(hk, spike, p.v_threshold);
      v[k] = reset(c, p, hk, spike);
    }
    store_pack<S, V>(a.s, (i64)t * n + i0, sp);
    store_pack<S, V>(a.h, (i64)t * n + i0, hp);
  }
  if (a.v_last)
#pragma unroll
    for (int k = 0; k < V; ++k) a.v_last[i0 + k] = v[k];
}

// One backward step for the thread's neuron k: gh from (gs, gv, h); dL/dx out; gv becomes dL/dv[t-1].
// For a learning neuron it also adds the previous (later) step's parameter term, now that v[t] =
// reset(h[t]) -- that step's v_prev -- is known, and remembers this step's gh and h for the next.
template <class N, class C, class P, typename A>
TFB_HD A backward_step(const C& c, const P& p, const typename N::template Local<A>& l, A gs, A h, A& gv,
                       A& gsum, A& gh_next, A& h_next) {
  A gh = grad_h(c, p, gs, gv, h);
  gv = N::grad_v(c, l, gh);
  if (N::learns) {
    gsum += gh_next * N::param_term(c, p, h_next, reset(c, p, h, fire(p, h)));
    gh_next = gh;
    h_next = h;
  }
  return N::grad_x(c, l, gh);
}

// The end of a backward loop: dL/dv0, and the learning neuron's per-neuron dL/d(parameter) into
// `gparam` (step 0's term, with v_prev = v0, is added here).
template <class N, class C, typename A, int V>
TFB_HD void backward_finish(const C& c, i64 i0, const Args<A, typename N::template Params<A>>& a,
                            const typename N::template Local<A> (&l)[V], const A (&gv)[V], A (&gsum)[V],
                            const A (&gh_next)[V], const A (&h_next)[V], A (&gparam)[V]) {
  if (a.gv0)
#pragma unroll
    for (int k = 0; k < V; ++k) a.gv0[i0 + k] = gv[k];
  if (N::learns)
#pragma unroll
    for (int k = 0; k < V; ++k) {
      A v_first = a.v0 ? a.v0[i0 + k] : a.p.v_reset;
      gsum[k] += gh_next[k] * N::param_term(c, a.p, h_next[k], v_first);
      gparam[k] = gsum[k] * N::param_scale(c, a.p, l[k]);
    }
}

// Keeps h. gparam: the thread's per-neuron dL/d(parameter) (learning neurons), for the caller to reduce.
template <class N, class C, typename S, typename A>
TFB_HD void backward_thread(const C& c, i64 i0, const Args<A, typename N::template Params<A>>& a,
                            A (&gparam)[C::vec]) {
  typedef Storage<S> St;
  constexpr int V = C::vec, U = C::unroll;
  typedef Pack<S, V> pack_t;
  const auto& p = a.p;
  const i64 n = a.n;
  typename N::template Local<A> l[V];
  A gv[V], gsum[V], gh_next[V], h_next[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    l[k] = N::local(p, i0 + k);
    gv[k] = a.gv_last ? a.gv_last[i0 + k] : A(0);
    gsum[k] = A(0);
    gh_next[k] = A(0);  // step T's: none, so its term is 0
    h_next[k] = A(0);
  }
  int t = a.steps - 1;
  for (; t + 1 - U >= 0; t -= U) {
    pack_t gp[U], hp[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      gp[u] = load_pack<S, V>(a.gs, (i64)(t - u) * n + i0);
      hp[u] = load_pack<S, V>(a.h, (i64)(t - u) * n + i0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      pack_t out;
#pragma unroll
      for (int k = 0; k < V; ++k)
        out.v[k] = St::store(backward_step<N>(c, p, l[k], St::load(gp[u].v[k]), St::load(hp[u].v[k]), gv[k],
                                              gsum[k], gh_next[k], h_next[k]));
      store_pack<S, V>(a.gx, (i64)(t - u) * n + i0, out);
    }
  }
  for (; t >= 0; --t) {
    pack_t gp = load_pack<S, V>(a.gs, (i64)t * n + i0), hp = load_pack<S, V>(a.h, (i64)t * n + i0), out;
#pragma unroll
    for (int k = 0; k < V; ++k)
      out.v[k] = St::store(backward_step<N>(c, p, l[k], St::load(gp.v[k]), St::load(hp.v[k]), gv[k], gsum[k],
                                            gh_next[k], h_next[k]));
    store_pack<S, V>(a.gx, (i64)t * n + i0, out);
  }
  backward_finish<N>(c, i0, a, l, gv, gsum, gh_next, h_next, gparam);
}

// ---------------------------------------------------------------------------------------------
// Keep x instead of h (save="input"). The forward writes only s, and the membrane v at every
// TFB_CKPT-th step boundary: ckpt[j - 1] = v before step j * TFB_CKPT, j = 1..J-1, J = ceil(T /
// TFB_CKPT) segments (the first starts from v0, which needs no copy). The backward takes the
// segments from last to first: from the segment's starting membrane it recomputes the segment's h
// from x into registers with charge() and reset() exactly as the forward ran them (h at the
// arithmetic precision, so its spike is the forward's bit for bit in every storage dtype: no
// rounded h, hence no store_h nudge), then runs the backward over those steps in reverse.
// ---------------------------------------------------------------------------------------------
TFB_HD int segment_steps(int t0, int steps) { return steps - t0 < TFB_CKPT ? steps - t0 : TFB_CKPT; }

// ---------------------------------------------------------------------------------------------
// BatchNorm folded into the neuron (Cfg::norm > 0, the kernels that keep x): the per-channel
// values one thread needs, loaded once, and the input current the neuron charges with. The
// forward and the backward's recomputation compute it with the same operations, so the recomputed
// h is the forward's bit for bit. A residual of spikes given as bits adds exactly 0 or 1.
// ---------------------------------------------------------------------------------------------
// The channel of neuron i, (i / inner) % channels: in 32-bit arithmetic where every value fits (a 64-bit
// division is a long software routine on the GPU; kernels that take one per element, not per neuron over T
// steps, pay it in full).
TFB_HD i64 channel_of(i64 i, i64 inner, i64 channels) {
  if ((unsigned long long)(i | inner | channels) < (1ull << 32))
    return (i64)((unsigned)i / (unsigned)inner % (unsigned)channels);
  return i / inner % channels;
}

template <class C, typename A> struct Channel {
  A scale[C::chan_vec], shift[C::chan_vec], mean[C::chan_vec], ea[C::chan_vec], eb[C::chan_vec];
};

template <class C, typename A, class P>
TFB_HD void load_channels(const C& c, i64 i0, const Args<A, P>& a, Channel<C, A>& ch, bool backward) {
  if (!c.norm) return;
#pragma unroll
  for (int k = 0; k < C::chan_vec; ++k) {
    const i64 j = channel_of(i0 + k, a.inner, a.channels);
    ch.scale[k] = a.scale[j];
    ch.shift[k] = a.shift[j];
    if (backward) {
      ch.mean[k] = a.mean[j];
      ch.ea[k] = a.ea ? a.ea[j] : A(0);
      ch.eb[k] = a.eb ? a.eb[j] : A(0);
    }
  }
}

// Residual 3's BatchNorm for the thread's neurons: its scale and shift, for the forward and the
// recomputation. Backward loads them (and the mean its sums need) a segment at a time where they are
// used, so that they hold registers only there (with a channel per neuron they are 3 x vec values).
template <class C, typename A> struct ResidualNorm { A scale[C::chan_vec], shift[C::chan_vec]; };

template <class C, typename A, class P>
TFB_HD void load_residual_norm(const C& c, i64 i0, const Args<A, P>& a, ResidualNorm<C, A>& rn) {
  if (c.residual != 3) return;
#pragma unroll
  for (int k = 0; k < C::chan_vec; ++k) {
    const i64 j = channel_of(i0 + k, a.inner, a.channels);
    rn.scale[k] = a.rscale[j];
    rn.shift[k] = a.rshift[j];
  }
}

// The residual of the thread's V neurons at flat offset e = t * n + i0 (residual 3: normalised by rn). Bits:
// on the GPU e is a multiple of V (the launcher's vec divides n) and V divides 8, so the V bits lie in one
// byte; the host loop takes 8 neurons from any i0 (n need not be a multiple of 8), so there each element
// reads its own bit.
template <class C, typename S, typename A, int V, class P>
TFB_HD void load_residual(const C& c, const Args<A, P>& a, i64 e, const ResidualNorm<C, A>& rn, A (&r)[V]) {
  if (c.residual == 1 || c.residual == 3) {
    Pack<S, V> rp = load_pack<S, V>(a.res, e);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      r[k] = Storage<S>::load(rp.v[k]);
      if (c.residual == 3) r[k] = fma_(r[k], rn.scale[k % C::chan_vec], rn.shift[k % C::chan_vec]);
    }
  } else if (c.residual == 2) {
    const unsigned char* bits = static_cast<const unsigned char*>(a.res);
#if defined(__CUDA_ARCH__)
    const unsigned byte = bits[e >> 3];
    const int shift = (int)(e & 7);
#pragma unroll
    for (int k = 0; k < V; ++k) r[k] = ((byte >> (shift + k)) & 1u) ? A(1) : A(0);
#else
    for (int k = 0; k < V; ++k) r[k] = ((bits[(e + k) >> 3] >> ((e + k) & 7)) & 1u) ? A(1) : A(0);
#endif
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) r[k] = A(0);
  }
}

// The input current of neuron k from its stored x (and residual r).
template <class C, typename A>
TFB_HD A input_current(const C& c, const Channel<C, A>& ch, int k, A x, A r) {
  if (c.norm) x = fma_(x, ch.scale[k % C::chan_vec], ch.shift[k % C::chan_vec]);
  if (c.residual) x = add_(x, r);
  return x;
}

// The thread's V spikes m (bit k: element e + k of the flat [T * n]) into bits, element e' as bit e' % 8
// of byte e' / 8. On the GPU the 8 / V threads of one byte (consecutive lanes; the launcher asks for bits
// here only when n % 8 == 0, so a byte's elements are one step's, and all its threads are running)
// combine their spikes with shuffles and the first writes the byte; the host sets each element's bit.
template <int V> TFB_HD void store_bits(unsigned char* bits, i64 e, unsigned m) {
#if defined(__CUDA_ARCH__)
  if (V < 8) {
    constexpr unsigned G = 8 / V;   // threads a byte
    const unsigned lane = threadIdx.x & 31u;
    const unsigned group = ((1u << G) - 1u) << (lane & ~(G - 1u));
    m <<= (lane % G) * V;
#pragma unroll
    for (unsigned offset = 1; offset < G; offset *= 2) m |= __shfl_xor_sync(group, m, offset);
    if (lane % G == 0) bits[e >> 3] = (unsigned char)m;
    return;
  }
  bits[e >> 3] = (unsigned char)m;
#else
  for (int k = 0; k < V; ++k) {
    const i64 b = e + k;
    bits[b >> 3] = (unsigned char)((bits[b >> 3] & ~(1u << (b & 7))) | (((m >> k) & 1u) << (b & 7)));
  }
#endif
}

template <class N, class C, typename S, typename A>
TFB_HD void forward_ckpt_thread(const C& c, i64 i0, const Args<A, typename N::template Params<A>>& a) {
  typedef Storage<S> St;
  constexpr int V = C::vec, K = TFB_CKPT;
  typedef Pack<S, V> pack_t;
  const auto& p = a.p;
  const i64 n = a.n;
  typename N::template Local<A> l[V];
  Channel<C, A> ch;
  load_channels(c, i0, a, ch, false);
  ResidualNorm<C, A> rn;
  load_residual_norm(c, i0, a, rn);
  A v[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    l[k] = N::local(p, i0 + k);
    v[k] = a.v0 ? a.v0[i0 + k] : p.v_reset;
  }
  for (int t0 = 0; t0 < a.steps; t0 += K) {
    const int len = segment_steps(t0, a.steps);
    if (t0 > 0)
#pragma unroll
      for (int k = 0; k < V; ++k) a.ckpt[(i64)(t0 / K - 1) * n + i0 + k] = v[k];
    pack_t xs[K];
#pragma unroll
    for (int u = 0; u < K; ++u)
      if (u < len) xs[u] = load_pack<S, V>(a.x, (i64)(t0 + u) * n + i0);
#pragma unroll
    for (int u = 0; u < K; ++u) {
      if (u < len) {
        A r[V];
        load_residual<C, S, A, V>(c, a, (i64)(t0 + u) * n + i0, rn, r);
        pack_t sp;
        unsigned m = 0;
#pragma unroll
        for (int k = 0; k < V; ++k) {
          A hk = N::charge(c, p, l[k], v[k], input_current(c, ch, k, St::load(xs[u].v[k]), r[k]));
          bool spike = fire(p, hk);
          sp.v[k] = St::store(spike ? A(1) : A(0));
          m |= (unsigned)spike << k;
          v[k] = reset(c, p, hk, spike);
        }
        store_pack<S, V>(a.s, (i64)(t0 + u) * n + i0, sp);
        if (a.s_bits) store_bits<V>(a.s_bits, (i64)(t0 + u) * n + i0, m);
      }
    }
  }
  if (a.v_last)
#pragma unroll
    for (int k = 0; k < V; ++k) a.v_last[i0 + k] = v[k];
}

// With BatchNorm folded in (c.norm), gy = dL/dy (y the input current) is also summed per neuron
// (a.sums: sum_t gy, sum_t gy (x - mean)), and dL/dx = gy*scale + (x - mean)*ea + eb is written
// only where a.gx is given; a.gres takes gy itself (the residual's gradient, or gy kept for
// epilogue_thread). Residual 3: a.res_sums takes sum_t gy and sum_t gy (res - rmean), the residual's
// stored values read again (not kept in registers from the recomputation).
template <class N, class C, typename S, typename A>
TFB_HD void backward_recompute_thread(const C& c, i64 i0, const Args<A, typename N::template Params<A>>& a,
                                      A (&gparam)[C::vec]) {
  typedef Storage<S> St;
  constexpr int V = C::vec, K = TFB_CKPT;
  typedef Pack<S, V> pack_t;
  const auto& p = a.p;
  const i64 n = a.n;
  typename N::template Local<A> l[V];
  Channel<C, A> ch;
  load_channels(c, i0, a, ch, true);
  A gv[V], gsum[V], gh_next[V], h_next[V], sum_gy[V], sum_gyx[V], sum_gyr[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    l[k] = N::local(p, i0 + k);
    gv[k] = a.gv_last ? a.gv_last[i0 + k] : A(0);
    gsum[k] = A(0);
    gh_next[k] = A(0);
    h_next[k] = A(0);
    sum_gy[k] = A(0);
    sum_gyx[k] = A(0);
    sum_gyr[k] = A(0);
  }
  for (int j = (a.steps - 1) / K; j >= 0; --j) {
    const int t0 = j * K, len = segment_steps(t0, a.steps);
    A v[V];
#pragma unroll
    for (int k = 0; k < V; ++k)
      v[k] = j > 0 ? a.ckpt[(i64)(j - 1) * n + i0 + k] : (a.v0 ? a.v0[i0 + k] : p.v_reset);
    // the segment's h, recomputed as forward_ckpt_thread computed it
    pack_t xs[K];
#pragma unroll
    for (int u = 0; u < K; ++u)
      if (u < len) xs[u] = load_pack<S, V>(a.x, (i64)(t0 + u) * n + i0);
    A hs[K][V];
    {
      ResidualNorm<C, A> rn;
      load_residual_norm(c, i0, a, rn);
#pragma unroll
      for (int u = 0; u < K; ++u) {
        if (u < len) {
          A r[V];
          load_residual<C, S, A, V>(c, a, (i64)(t0 + u) * n + i0, rn, r);
#pragma unroll
          for (int k = 0; k < V; ++k) {
            A hk = N::charge(c, p, l[k], v[k], input_current(c, ch, k, St::load(xs[u].v[k]), r[k]));
            hs[u][k] = hk;
            v[k] = reset(c, p, hk, fire(p, hk));
          }
        }
      }
    }
    // the backward over the segment, last step first
    pack_t gp[K];
#pragma unroll
    for (int u = 0; u < K; ++u)
      if (u < len) gp[u] = load_pack<S, V>(a.gs, (i64)(t0 + u) * n + i0);
    A rmean[C::chan_vec];   // residual 3's BatchNorm's mean, for its sums
    if (c.residual == 3 && a.res_sums)
#pragma unroll
      for (int k = 0; k < C::chan_vec; ++k) rmean[k] = a.rmean[channel_of(i0 + k, a.inner, a.channels)];
#pragma unroll
    for (int u = K - 1; u >= 0; --u) {
      if (u < len) {
        pack_t out, gr, rp;
        if (c.residual == 3 && a.res_sums) rp = load_pack<S, V>(a.res, (i64)(t0 + u) * n + i0);
#pragma unroll
        for (int k = 0; k < V; ++k) {
          A gy = backward_step<N>(c, p, l[k], St::load(gp[u].v[k]), hs[u][k], gv[k], gsum[k], gh_next[k],
                                  h_next[k]);
          if (c.norm) {
            const int q = k % C::chan_vec;
            const A xc = St::load(xs[u].v[k]) - ch.mean[q];
            sum_gy[k] += gy;
            sum_gyx[k] += gy * xc;
            if (c.residual == 3 && a.res_sums) sum_gyr[k] += gy * (St::load(rp.v[k]) - rmean[q]);
            out.v[k] = St::store(fma_(xc, ch.ea[q], fma_(gy, ch.scale[q], ch.eb[q])));
          } else {
            out.v[k] = St::store(gy);
          }
          gr.v[k] = St::store(gy);
        }
        if (a.gx) store_pack<S, V>(a.gx, (i64)(t0 + u) * n + i0, out);
        if (a.gres) store_pack<S, V>(a.gres, (i64)(t0 + u) * n + i0, gr);
      }
    }
  }
  if (a.sums)
#pragma unroll
    for (int k = 0; k < V; ++k) {
      a.sums[i0 + k] = sum_gy[k];
      a.sums[n + i0 + k] = sum_gyx[k];
    }
  if (c.residual == 3 && a.res_sums)
#pragma unroll
    for (int k = 0; k < V; ++k) {
      a.res_sums[i0 + k] = sum_gy[k];
      a.res_sums[n + i0 + k] = sum_gyr[k];
    }
  backward_finish<N>(c, i0, a, l, gv, gsum, gh_next, h_next, gparam);
}

// BatchNorm's backward epilogue on its own (c.norm), once gy is stored: dL/dx = gy*scale + (x - mean)*ea + eb
// for the thread's V neurons from i0 at step t, flat offset e0 = t * n + i0 of [T, n] (a.gs: gy, a.x: x,
// a.gx: dL/dx, which may be x's buffer: each element is read before it is written, by its own thread).
// No time dependence, so a thread per V elements of one step, not per neuron; the same operations as
// backward_recompute_thread's epilogue, so the same bits from the same stored gy.
template <class C, typename S, typename A, class P>
TFB_HD void epilogue_thread(const C& c, i64 i0, int t, const Args<A, P>& a) {
  typedef Storage<S> St;
  constexpr int V = C::vec;
  const i64 e0 = (i64)t * a.n + i0;
  Channel<C, A> ch;
  load_channels(c, i0, a, ch, true);
  const Pack<S, V> gp = load_pack<S, V>(a.gs, e0), xp = load_pack<S, V>(a.x, e0);
  Pack<S, V> out;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int q = k % C::chan_vec;
    const A xc = St::load(xp.v[k]) - ch.mean[q];
    out.v[k] = St::store(fma_(xc, ch.ea[q], fma_(St::load(gp.v[k]), ch.scale[q], ch.eb[q])));
  }
  store_pack<S, V>(a.gx, e0, out);
}

// BatchNorm's statistics, first stage: per neuron, the mean over T of x and the sum of squared
// deviations from it (Welford's update, in the arithmetic dtype), into a.sums [2, n]. The launcher
// combines the neurons of a channel exactly (the per-neuron means' spread added to the mean of the
// per-neuron variances): one pass over x, no cancellation. The first neuron's thread also counts the
// batch into num_batches_tracked (a.batches, when the running statistics are updated), which the
// per-channel pass after this one reads for the cumulative average.
template <class C, typename S, typename A, class P>
TFB_HD void stats_thread(const C&, i64 i0, const Args<A, P>& a) {
  typedef Storage<S> St;
  constexpr int V = C::vec;
  const i64 n = a.n;
  if (i0 == 0 && a.batches) *a.batches += 1;
  A mean[V], m2[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    mean[k] = A(0);
    m2[k] = A(0);
  }
  for (int t = 0; t < a.steps; ++t) {
    Pack<S, V> xp = load_pack<S, V>(a.x, (i64)t * n + i0);
    const A w = A(1) / A(t + 1);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const A x = St::load(xp.v[k]), d = x - mean[k];
      mean[k] += d * w;
      m2[k] += d * (x - mean[k]);
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) {
    a.sums[i0 + k] = mean[k];
    a.sums[n + i0 + k] = m2[k];
  }
}

// ---------------------------------------------------------------------------------------------
// Per channel (BatchNorm folded in): the neurons' sums of the kernels above reduced to one channel's
// values, by a group of `lanes` workers that each sum a fixed stride of the channel's K = n / C
// neurons in order, then combine their partials in a fixed tree: the same bits on every run. The GPU
// runs one block per channel (neurons.cu); the host one worker. Element k of channel c is neuron
// (k / inner) * C * inner + c * inner + k % inner.
// ---------------------------------------------------------------------------------------------
template <typename A, class P> TFB_HD i64 channel_neuron(const Args<A, P>& a, i64 c, i64 k) {
  const i64 q = (unsigned long long)(k | a.inner) < (1ull << 32) ? (i64)((unsigned)k / (unsigned)a.inner)
                                                                 : k / a.inner;   // as channel_of
  return q * a.channels * a.inner + c * a.inner + (k - q * a.inner);
}

// Forward, after stats_thread: from the channel's batch mean and variance (reduced by the caller, the
// kernel's block or the host loop: mean = sum_i mean_i / K, var = sum_i (M2_i + T (mean_i - mean)^2) /
// (K T)) or the running ones, the running update as nn.BatchNorm2d makes it, and the rows mean,
// invstd, scale, shift.
template <typename A, class P> TFB_HD void channel_finish_forward(const Args<A, P>& a, i64 c, A mean, A var) {
  const i64 count = (i64)a.steps * (a.n / a.channels);
  if (a.batch_stats && a.running_mean) {
    const A factor = a.momentum >= 0 ? (A)a.momentum : A(1) / (A)(*a.batches);
    const A unbiased = var * (A)count / (A)(count > 1 ? count - 1 : 1);
    a.running_mean[c] = a.running_mean[c] + factor * (mean - a.running_mean[c]);
    a.running_var[c] = a.running_var[c] + factor * (unbiased - a.running_var[c]);
  }
  if (!a.batch_stats) {
    mean = a.running_mean[c];
    var = a.running_var[c];
  }
  const i64 C = a.channels;
  const A invstd = A(1) / sqrt(var + (A)a.eps);
  const A scale = a.weight ? a.weight[c] * invstd : invstd;
  a.stats[0 * C + c] = mean;
  a.stats[1 * C + c] = invstd;
  a.stats[2 * C + c] = scale;
  a.stats[3 * C + c] = (a.bias ? a.bias[c] : A(0)) - mean * scale;
}

// Backward, from the channel's (sum gy, sum gy (x - mean)): dL/dweight, dL/dbias, and with batch
// statistics the epilogue's ea, eb (dL/dx = gy scale + (x - mean) ea + eb).
template <typename A, class P> TFB_HD void channel_finish_backward(const Args<A, P>& a, i64 c, A s1, A s2) {
  const i64 C = a.channels;
  const A invstd = a.stats[1 * C + c], scale = a.stats[2 * C + c];
  if (a.gweight) a.gweight[c] = s2 * invstd;
  if (a.gbias) a.gbias[c] = s1;
  if (a.batch_stats) {
    const A count = (A)((i64)a.steps * (a.n / a.channels));
    a.ea[c] = -scale * invstd * invstd * s2 / count;
    a.eb[c] = -scale * s1 / count;
  }
}

// Spikes as bits and back (the lean path's convolutions keep their input so): element e of a 0/1
// tensor is bit e % 8 of byte e / 8. One "thread" per byte; `bytes` = ceil(numel / 8), the last byte's
// missing elements are 0 bits. A byte's 8 elements move as one access (whole_byte: all 8 there and, on
// the GPU, aligned, as in a tensor of its own; a view may start anywhere and then goes element by element).
template <typename S> TFB_HD bool whole_byte(const void* s, i64 numel, i64 byte) {
  if (byte * 8 + 8 > numel) return false;
#if defined(__CUDA_ARCH__)
  return reinterpret_cast<unsigned long long>(static_cast<const S*>(s) + byte * 8) % sizeof(Pack<S, 8>) == 0;
#else
  return true;
#endif
}

template <typename S>
TFB_HD void pack_byte(const void* s, unsigned char* bits, i64 numel, i64 byte) {
  unsigned v = 0;
  const i64 e0 = byte * 8;
  if (whole_byte<S>(s, numel, byte)) {
    const Pack<S, 8> p = load_pack<S, 8>(s, e0);
    for (int b = 0; b < 8; ++b)
      if (Storage<S>::load(p.v[b]) != 0) v |= 1u << b;
  } else {
    for (int b = 0; b < 8; ++b)
      if (e0 + b < numel && Storage<S>::load(static_cast<const S*>(s)[e0 + b]) != 0) v |= 1u << b;
  }
  bits[byte] = (unsigned char)v;
}

template <typename S>
TFB_HD void unpack_byte(const unsigned char* bits, void* s, i64 numel, i64 byte) {
  const unsigned v = bits[byte];
  const i64 e0 = byte * 8;
  if (whole_byte<S>(s, numel, byte)) {
    Pack<S, 8> p;
    for (int b = 0; b < 8; ++b) p.v[b] = Storage<S>::store(((v >> b) & 1u) ? 1.0f : 0.0f);
    store_pack<S, 8>(s, e0, p);
    return;
  }
  for (int b = 0; b < 8; ++b)
    if (e0 + b < numel) static_cast<S*>(s)[e0 + b] = Storage<S>::store(((v >> b) & 1u) ? 1.0f : 0.0f);
}

}  // namespace tfb
