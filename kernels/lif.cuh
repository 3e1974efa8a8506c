// The maths of the fused LIF op (../shared/LIF_SPEC.md), shared by the CUDA kernels in lif.cu
// (compiled at first use by NVRTC) and by a host build in the CPU test suite, which runs these
// very per-thread loops over every neuron and compares them with tfbench/ops/lif/reference.py.
//
// Layout: time-major [T, N]; one thread owns LIF_VEC consecutive neurons for all T steps, the
// membrane in registers. Each thread loads LIF_UNROLL time steps before it uses the first, so
// several independent loads are in flight per thread (the loop over T is otherwise serial).
//
// Compile-time configuration (set with -D by tfbench/ops/lif/cuda.py, or by the host test):
//   LIF_STORAGE      0 float, 1 bfloat16, 2 float16, 3 double  (the dtype of x, s, h, gs, gx)
//   LIF_DECAY_INPUT  1: h = v + (x - (v - vr)) / tau;  0: h = v - (v - vr) / tau + x
//   LIF_HARD_RESET   1: v = s ? v_reset : h;           0: v = h - s * v_threshold
//   LIF_DETACH_RESET 1: no gradient through the spike in the reset
//   LIF_SURROGATE    0 sigmoid, 1 atan, 2 rect
//   LIF_VEC          neurons per thread (1, 2, 4 or 8); the host side picks it per call
//   LIF_UNROLL       time steps loaded ahead of use (the kernels that keep h)
//   LIF_CKPT         steps per checkpoint segment of the kernels that keep x instead of h (below)
#pragma once

#if defined(__CUDACC__)
#define LIF_HD __host__ __device__ __forceinline__
#define LIF_RESTRICT __restrict__
#else
#include <cmath>
#include <cstring>
#define LIF_HD inline
#define LIF_RESTRICT __restrict__
#endif

#ifndef LIF_STORAGE
#define LIF_STORAGE 0
#endif
#ifndef LIF_DECAY_INPUT
#define LIF_DECAY_INPUT 1
#endif
#ifndef LIF_HARD_RESET
#define LIF_HARD_RESET 1
#endif
#ifndef LIF_DETACH_RESET
#define LIF_DETACH_RESET 0
#endif
#ifndef LIF_SURROGATE
#define LIF_SURROGATE 0
#endif
#ifndef LIF_VEC
#define LIF_VEC 1
#endif
#ifndef LIF_UNROLL
#define LIF_UNROLL 4
#endif
// 8: the checkpoints then add 8/8 = 1 B/element (5% of the 20 the variant moves in fp32), and the
// backward holds 8 * LIF_VEC recomputed membranes in registers (32 fp32 at 4 neurons/thread, 64 at
// bf16's 8), which still fits without spills; 16 would halve the 1 B but double the registers.
#ifndef LIF_CKPT
#define LIF_CKPT 8
#endif

namespace lif {

typedef long long i64;
typedef unsigned short u16;

// ---------------------------------------------------------------------------------------------
// Storage types. bf16/fp16 are carried as raw 16-bit patterns so that NVRTC needs no CUDA
// headers (a user's machine has none), and the same code compiles on the host.
// ---------------------------------------------------------------------------------------------
struct bf16 { u16 bits; };
struct f16 { u16 bits; };

LIF_HD float bits_to_float(unsigned u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f; std::memcpy(&f, &u, 4); return f;
#endif
}
LIF_HD unsigned float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  unsigned u; std::memcpy(&u, &f, 4); return u;
#endif
}

// bfloat16: the high half of a float; round to nearest even, NaN stays NaN.
LIF_HD float to_float(bf16 x) { return bits_to_float((unsigned)x.bits << 16); }
LIF_HD bf16 bf16_rn(float f) {
  unsigned u = float_to_bits(f);
  bf16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) { r.bits = (u16)((u >> 16) | 0x40u); return r; }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.bits = (u16)(u >> 16);
  return r;
}

// float16: the hardware conversion on the GPU, IEEE round-to-nearest-even in software on the host.
LIF_HD float to_float(f16 x) {
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
LIF_HD f16 f16_rn(float f) {
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
LIF_HD u16 step16(u16 b, bool up) {
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
  static LIF_HD float load(float x) { return x; }
  static LIF_HD float store(float x) { return x; }
  static LIF_HD float store_h(float h, bool, float) { return h; }
};
template <> struct Storage<double> {
  typedef double acc;
  static LIF_HD double load(double x) { return x; }
  static LIF_HD double store(double x) { return x; }
  static LIF_HD double store_h(double h, bool, double) { return h; }
};
template <> struct Storage<bf16> {
  typedef float acc;
  static LIF_HD float load(bf16 x) { return to_float(x); }
  static LIF_HD bf16 store(float x) { return bf16_rn(x); }
  static LIF_HD bf16 store_h(float h, bool spike, float thr) {
    bf16 r = bf16_rn(h);
    float back = to_float(r);
    if ((back >= thr) != spike) r.bits = step16(r.bits, back < h);
    return r;
  }
};
template <> struct Storage<f16> {
  typedef float acc;
  static LIF_HD float load(f16 x) { return to_float(x); }
  static LIF_HD f16 store(float x) { return f16_rn(x); }
  static LIF_HD f16 store_h(float h, bool spike, float thr) {
    f16 r = f16_rn(h);
    float back = to_float(r);
    if ((back >= thr) != spike) r.bits = step16(r.bits, back < h);
    return r;
  }
};

#if LIF_STORAGE == 0
typedef float storage_t;
#elif LIF_STORAGE == 1
typedef bf16 storage_t;
#elif LIF_STORAGE == 2
typedef f16 storage_t;
#elif LIF_STORAGE == 3
typedef double storage_t;
#else
#error "LIF_STORAGE must be 0 (float), 1 (bfloat16), 2 (float16) or 3 (double)"
#endif
typedef Storage<storage_t>::acc acc_t;  // the arithmetic type: float, or double for double storage

// LIF_VEC neurons of one time step, moved as one aligned access (16 bytes for 4 floats or 8 halves).
template <typename S, int V> struct alignas(sizeof(S) * V) Pack { S v[V]; };
typedef Pack<storage_t, LIF_VEC> pack_t;

// The neuron's parameters, passed by value to the kernels (the layout matches cuda.py's ctypes struct).
struct Params {
  acc_t inv_tau;      // 1 / tau: 0 for an IF neuron (tau = inf); a multiply, not a division, per step
  acc_t v_threshold;
  acc_t v_reset;      // hard reset: the reset value; soft reset: 0 (the rest potential vr of LIF_SPEC)
  acc_t alpha;        // the surrogate's sharpness
};

// ---------------------------------------------------------------------------------------------
// One step of the neuron (LIF_SPEC.md, "Forward") and of its backward ("Backward").
// ---------------------------------------------------------------------------------------------
// a * b + c rounded once, spelled out: the forward and the backward's recomputation (another
// kernel) must round h identically, so the compiler is given no product to contract as it likes.
LIF_HD float fma_(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
LIF_HD double fma_(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

LIF_HD acc_t charge(acc_t v, acc_t x, const Params& p) {
#if LIF_DECAY_INPUT
  return fma_(x - (v - p.v_reset), p.inv_tau, v);           // v + (x - (v - vr)) / tau
#else
  return fma_(-(v - p.v_reset), p.inv_tau, v) + x;          // v - (v - vr) / tau + x
#endif
}

LIF_HD acc_t reset(acc_t h, bool spike, const Params& p) {
#if LIF_HARD_RESET
  return spike ? p.v_reset : h;
#else
  return spike ? h - p.v_threshold : h;
#endif
}

// Fast exponential and division on the GPU (one multi-function-unit op each): the backward's
// surrogate is evaluated once per element and the special-function unit, not memory, was the limit
// for bf16 (kernels/NOTES.md). Their error (a few ulp) is far below the 1e-5 the tests require.
LIF_HD float exp_(float a) {
#if defined(__CUDA_ARCH__)
  return __expf(a);
#else
  return expf(a);
#endif
}
LIF_HD float rcp_(float a) {
#if defined(__CUDA_ARCH__)
  return __fdividef(1.0f, a);
#else
  return 1.0f / a;
#endif
}
LIF_HD double rcp_(double a) { return 1.0 / a; }
LIF_HD double exp_(double a) { return exp(a); }
LIF_HD float abs_(float a) { return fabsf(a); }
LIF_HD double abs_(double a) { return fabs(a); }

LIF_HD acc_t surrogate(acc_t u, const Params& p) {
#if LIF_SURROGATE == 0
  acc_t sg = rcp_(acc_t(1) + exp_(-p.alpha * u));
  return p.alpha * sg * (acc_t(1) - sg);
#elif LIF_SURROGATE == 1
  acc_t w = acc_t(1.5707963267948966) * p.alpha * u;
  return acc_t(0.5) * p.alpha * rcp_(acc_t(1) + w * w);
#elif LIF_SURROGATE == 2
  return abs_(u) < acc_t(1) / (acc_t(2) * p.alpha) ? p.alpha : acc_t(0);
#else
#error "LIF_SURROGATE must be 0 (sigmoid), 1 (atan) or 2 (rect)"
#endif
}

// dL/dh[t] from dL/ds[t] and dL/dv[t]; h is the stored pre-reset membrane.
LIF_HD acc_t grad_h(acc_t gs, acc_t gv, acc_t h, const Params& p) {
  acc_t g = surrogate(h - p.v_threshold, p);
  bool spike = h >= p.v_threshold;
  acc_t keep = spike ? acc_t(0) : acc_t(1);
#if LIF_HARD_RESET && LIF_DETACH_RESET
  acc_t dvdh = keep;
#elif LIF_HARD_RESET
  acc_t dvdh = keep + (p.v_reset - h) * g;
#elif LIF_DETACH_RESET
  acc_t dvdh = acc_t(1);
#else
  acc_t dvdh = acc_t(1) - p.v_threshold * g;
#endif
  return gs * g + gv * dvdh;
}

LIF_HD acc_t grad_x(acc_t gh, const Params& p) {
#if LIF_DECAY_INPUT
  return gh * p.inv_tau;
#else
  return gh;
#endif
}

// ---------------------------------------------------------------------------------------------
// The per-thread loops. `i0` is the first of this thread's LIF_VEC neurons; the caller guarantees
// i0 + LIF_VEC <= n. Offsets are 64-bit: T * n may exceed 2^31.
// ---------------------------------------------------------------------------------------------
typedef Storage<storage_t> St;

// x: [T, n]; v0: [n] or null (then v0 = v_reset); s, h: [T, n]; v_last: [n] or null (not wanted).
LIF_HD void forward_thread(i64 i0, const storage_t* LIF_RESTRICT x, const acc_t* LIF_RESTRICT v0,
                           storage_t* LIF_RESTRICT s, storage_t* LIF_RESTRICT h,
                           acc_t* LIF_RESTRICT v_last, i64 n, int steps, Params p) {
  acc_t v[LIF_VEC];
#pragma unroll
  for (int k = 0; k < LIF_VEC; ++k) v[k] = v0 ? v0[i0 + k] : p.v_reset;

  int t = 0;
  for (; t + LIF_UNROLL <= steps; t += LIF_UNROLL) {
    pack_t xs[LIF_UNROLL];
#pragma unroll
    for (int u = 0; u < LIF_UNROLL; ++u)
      xs[u] = *reinterpret_cast<const pack_t*>(x + (i64)(t + u) * n + i0);
#pragma unroll
    for (int u = 0; u < LIF_UNROLL; ++u) {
      pack_t sp, hp;
#pragma unroll
      for (int k = 0; k < LIF_VEC; ++k) {
        acc_t hk = charge(v[k], St::load(xs[u].v[k]), p);
        bool spike = hk >= p.v_threshold;
        sp.v[k] = St::store(spike ? acc_t(1) : acc_t(0));
        hp.v[k] = St::store_h(hk, spike, p.v_threshold);
        v[k] = reset(hk, spike, p);
      }
      *reinterpret_cast<pack_t*>(s + (i64)(t + u) * n + i0) = sp;
      *reinterpret_cast<pack_t*>(h + (i64)(t + u) * n + i0) = hp;
    }
  }
  for (; t < steps; ++t) {
    pack_t xp = *reinterpret_cast<const pack_t*>(x + (i64)t * n + i0), sp, hp;
#pragma unroll
    for (int k = 0; k < LIF_VEC; ++k) {
      acc_t hk = charge(v[k], St::load(xp.v[k]), p);
      bool spike = hk >= p.v_threshold;
      sp.v[k] = St::store(spike ? acc_t(1) : acc_t(0));
      hp.v[k] = St::store_h(hk, spike, p.v_threshold);
      v[k] = reset(hk, spike, p);
    }
    *reinterpret_cast<pack_t*>(s + (i64)t * n + i0) = sp;
    *reinterpret_cast<pack_t*>(h + (i64)t * n + i0) = hp;
  }
#pragma unroll
  if (v_last)
#pragma unroll
    for (int k = 0; k < LIF_VEC; ++k) v_last[i0 + k] = v[k];
}

// gs, h: [T, n]; gv_last: [n] or null (the final membrane unused); gx: [T, n]; gv0: [n] or null.
LIF_HD void backward_thread(i64 i0, const storage_t* LIF_RESTRICT gs, const storage_t* LIF_RESTRICT h,
                            const acc_t* LIF_RESTRICT gv_last, storage_t* LIF_RESTRICT gx,
                            acc_t* LIF_RESTRICT gv0, i64 n, int steps, Params p) {
  const acc_t keep = acc_t(1) - p.inv_tau;  // dh[t]/dv[t-1]
  acc_t gv[LIF_VEC];
#pragma unroll
  for (int k = 0; k < LIF_VEC; ++k) gv[k] = gv_last ? gv_last[i0 + k] : acc_t(0);

  int t = steps - 1;
  for (; t + 1 - LIF_UNROLL >= 0; t -= LIF_UNROLL) {
    pack_t gp[LIF_UNROLL], hp[LIF_UNROLL];
#pragma unroll
    for (int u = 0; u < LIF_UNROLL; ++u) {
      gp[u] = *reinterpret_cast<const pack_t*>(gs + (i64)(t - u) * n + i0);
      hp[u] = *reinterpret_cast<const pack_t*>(h + (i64)(t - u) * n + i0);
    }
#pragma unroll
    for (int u = 0; u < LIF_UNROLL; ++u) {
      pack_t out;
#pragma unroll
      for (int k = 0; k < LIF_VEC; ++k) {
        acc_t gh = grad_h(St::load(gp[u].v[k]), gv[k], St::load(hp[u].v[k]), p);
        out.v[k] = St::store(grad_x(gh, p));
        gv[k] = gh * keep;
      }
      *reinterpret_cast<pack_t*>(gx + (i64)(t - u) * n + i0) = out;
    }
  }
  for (; t >= 0; --t) {
    pack_t gp = *reinterpret_cast<const pack_t*>(gs + (i64)t * n + i0);
    pack_t hp = *reinterpret_cast<const pack_t*>(h + (i64)t * n + i0), out;
#pragma unroll
    for (int k = 0; k < LIF_VEC; ++k) {
      acc_t gh = grad_h(St::load(gp.v[k]), gv[k], St::load(hp.v[k]), p);
      out.v[k] = St::store(grad_x(gh, p));
      gv[k] = gh * keep;
    }
    *reinterpret_cast<pack_t*>(gx + (i64)t * n + i0) = out;
  }
#pragma unroll
  if (gv0)
#pragma unroll
    for (int k = 0; k < LIF_VEC; ++k) gv0[i0 + k] = gv[k];
}


// ---------------------------------------------------------------------------------------------
// Keep x instead of h (lif(..., save="input")). The forward writes only s, and the membrane v at
// every LIF_CKPT-th step boundary: ckpt[c - 1] = v before step c * LIF_CKPT, c = 1..C-1, C =
// ceil(T / LIF_CKPT) segments (the first segment starts from v0, which needs no copy). The backward
// takes the segments from last to first: from the segment's starting membrane it recomputes the
// segment's h from x into registers, with charge() and reset() exactly as the forward ran them
// (fp32 h, so its spike h >= v_threshold is the forward's spike bit for bit, in every storage
// dtype: no rounded h is involved, hence no store_h nudge), then runs the backward over those steps
// in reverse. Per element: forward reads x, writes s; backward reads x and gs, writes gx; plus
// 2 x 4 B per neuron per checkpoint.
// ---------------------------------------------------------------------------------------------
LIF_HD int segment_steps(int t0, int steps) { return steps - t0 < LIF_CKPT ? steps - t0 : LIF_CKPT; }

// x: [T, n]; v0: [n] or null (v_reset); s: [T, n]; ckpt: [C - 1, n]; v_last: [n] or null.
LIF_HD void forward_ckpt_thread(i64 i0, const storage_t* LIF_RESTRICT x, const acc_t* LIF_RESTRICT v0,
                                storage_t* LIF_RESTRICT s, acc_t* LIF_RESTRICT ckpt,
                                acc_t* LIF_RESTRICT v_last, i64 n, int steps, Params p) {
  acc_t v[LIF_VEC];
#pragma unroll
  for (int k = 0; k < LIF_VEC; ++k) v[k] = v0 ? v0[i0 + k] : p.v_reset;

  for (int t0 = 0; t0 < steps; t0 += LIF_CKPT) {
    const int len = segment_steps(t0, steps);
    if (t0 > 0)
#pragma unroll
      for (int k = 0; k < LIF_VEC; ++k) ckpt[(i64)(t0 / LIF_CKPT - 1) * n + i0 + k] = v[k];
    pack_t xs[LIF_CKPT];
#pragma unroll
    for (int u = 0; u < LIF_CKPT; ++u)
      if (u < len) xs[u] = *reinterpret_cast<const pack_t*>(x + (i64)(t0 + u) * n + i0);
#pragma unroll
    for (int u = 0; u < LIF_CKPT; ++u) {
      if (u < len) {
        pack_t sp;
#pragma unroll
        for (int k = 0; k < LIF_VEC; ++k) {
          acc_t hk = charge(v[k], St::load(xs[u].v[k]), p);
          bool spike = hk >= p.v_threshold;
          sp.v[k] = St::store(spike ? acc_t(1) : acc_t(0));
          v[k] = reset(hk, spike, p);
        }
        *reinterpret_cast<pack_t*>(s + (i64)(t0 + u) * n + i0) = sp;
      }
    }
  }
  if (v_last)
#pragma unroll
    for (int k = 0; k < LIF_VEC; ++k) v_last[i0 + k] = v[k];
}

// gs, x: [T, n]; v0: [n] or null; ckpt: [C - 1, n] (forward_ckpt_thread's); gv_last: [n] or null;
// gx: [T, n]; gv0: [n] or null.
LIF_HD void backward_recompute_thread(i64 i0, const storage_t* LIF_RESTRICT gs, const storage_t* LIF_RESTRICT x,
                                      const acc_t* LIF_RESTRICT v0, const acc_t* LIF_RESTRICT ckpt,
                                      const acc_t* LIF_RESTRICT gv_last, storage_t* LIF_RESTRICT gx,
                                      acc_t* LIF_RESTRICT gv0, i64 n, int steps, Params p) {
  const acc_t keep = acc_t(1) - p.inv_tau;  // dh[t]/dv[t-1]
  acc_t gv[LIF_VEC];
#pragma unroll
  for (int k = 0; k < LIF_VEC; ++k) gv[k] = gv_last ? gv_last[i0 + k] : acc_t(0);

  for (int c = (steps - 1) / LIF_CKPT; c >= 0; --c) {
    const int t0 = c * LIF_CKPT, len = segment_steps(t0, steps);
    acc_t v[LIF_VEC];
#pragma unroll
    for (int k = 0; k < LIF_VEC; ++k)
      v[k] = c > 0 ? ckpt[(i64)(c - 1) * n + i0 + k] : (v0 ? v0[i0 + k] : p.v_reset);
    // the segment's h, recomputed as forward_ckpt_thread computed it
    pack_t xs[LIF_CKPT];
#pragma unroll
    for (int u = 0; u < LIF_CKPT; ++u)
      if (u < len) xs[u] = *reinterpret_cast<const pack_t*>(x + (i64)(t0 + u) * n + i0);
    acc_t hs[LIF_CKPT][LIF_VEC];
#pragma unroll
    for (int u = 0; u < LIF_CKPT; ++u) {
      if (u < len) {
#pragma unroll
        for (int k = 0; k < LIF_VEC; ++k) {
          acc_t hk = charge(v[k], St::load(xs[u].v[k]), p);
          bool spike = hk >= p.v_threshold;
          hs[u][k] = hk;
          v[k] = reset(hk, spike, p);
        }
      }
    }
    // the backward over the segment, last step first
    pack_t gp[LIF_CKPT];
#pragma unroll
    for (int u = 0; u < LIF_CKPT; ++u)
      if (u < len) gp[u] = *reinterpret_cast<const pack_t*>(gs + (i64)(t0 + u) * n + i0);
#pragma unroll
    for (int u = LIF_CKPT - 1; u >= 0; --u) {
      if (u < len) {
        pack_t out;
#pragma unroll
        for (int k = 0; k < LIF_VEC; ++k) {
          acc_t gh = grad_h(St::load(gp[u].v[k]), gv[k], hs[u][k], p);
          out.v[k] = St::store(grad_x(gh, p));
          gv[k] = gh * keep;
        }
        *reinterpret_cast<pack_t*>(gx + (i64)(t0 + u) * n + i0) = out;
      }
    }
  }
  if (gv0)
#pragma unroll
    for (int k = 0; k < LIF_VEC; ++k) gv0[i0 + k] = gv[k];
}

}  // namespace lif
