// A 2-D max-pool of spikes read from their bits (neuron.cuh's pack_byte: element e of the 0/1 tensor
// in its memory order is bit e % 8 of byte e / 8), forward and backward.
//
// The maximum of a window of spikes is 1 when any is 1, and its position, the one PyTorch's max-pool
// picks, is the first 1 in the window's row-major scan, else the window's first element (its kernels
// start from -inf and take a value only when it is greater). So the forward needs no indices, and the
// backward finds each window's maximum again from the bits: one pass writes, per window, the maximum's
// place in the window as one byte (its code: row * kw + column), then one pass per input element
// gathers dL/dout over the windows whose code names it, in PyTorch's order (the windows' rows, then
// columns), summed in the arithmetic type (float, double for double). Each window is read once, not
// once per element it covers. A pass is a grid of (image, 256 of its elements) blocks: the positions
// come from 32-bit divisions by launch constants (FastDiv), never from a 64-bit division. In NCHW memory
// the backward is one pass instead, a block per few planes with the codes in shared memory (below).
//
// Compiled twice from this one text: by NVRTC (spike_pool.cu) and by the C++ compiler (tfbench_ops.cpp).
#pragma once

#include "neuron.cuh"

namespace tfb {

// Division by a divisor fixed for the launch, without the GPU's slow integer division: PyTorch's
// IntDivider's method (a multiply-high, an add and a shift), exact for dividends below 2^31; the host
// runs the same arithmetic (so the CPU tests check it).
struct FastDiv { unsigned d, m, s; };

TFB_HD FastDiv fast_div(unsigned d) {   // made on the host, once a launch; d >= 1
  FastDiv f{d, 0, 0};
  while (f.s < 32 && (1ull << f.s) < d) ++f.s;
  f.m = (unsigned)(((1ull << 32) * ((1ull << f.s) - d)) / d + 1);
  return f;
}

TFB_HD unsigned fdiv(const FastDiv& f, unsigned n) {
#if defined(__CUDA_ARCH__)
  const unsigned high = __umulhi(n, f.m);
#else
  const unsigned high = (unsigned)(((unsigned long long)n * f.m) >> 32);
#endif
  return (high + n) >> f.s;
}

struct PoolArgs {
  const unsigned char* bits;   // the input spikes' bits: [N, C, H, W] in NCHW or NHWC memory order
  const void* gout;            // backward: dL/dout [N, C, Ho, Wo], in the same memory order
  unsigned char* codes;        // [N, C, Ho, Wo]: each window's maximum's place in it (written, then read)
  void* out;                   // forward: out [N, C, Ho, Wo]; backward: dL/dx [N, C, H, W]
  i64 images;                  // N
  int per_image;               // elements of one image the pass writes: C * Ho * Wo, or C * H * W
  int C, H, W, Ho, Wo;
  int kh, kw, sh, sw, ph, pw, dh, dw;
  int channels_last;           // 1: NHWC memory order, 0: NCHW
  int planes;                  // the one-pass backward: planes a block
  FastDiv fC, fH, fW, fHo, fWo, fsh, fsw, fdh, fdw, fHW, fOW;   // fHW: H * W, fOW: Ho * Wo
};

// (channel, row, column) of element r of one image [C, rows, cols] in the args' memory order.
struct Pos { i64 n; int c, y, x; };
TFB_HD Pos pool_pos(const PoolArgs& a, i64 n, int r, const FastDiv& rows, const FastDiv& cols) {
  Pos p;
  p.n = n;
  unsigned q;
  if (a.channels_last) {
    q = fdiv(a.fC, (unsigned)r);
    p.c = r - (int)q * a.C;
    const unsigned y = fdiv(cols, q);
    p.x = (int)(q - y * cols.d);
    p.y = (int)y;
  } else {
    q = fdiv(cols, (unsigned)r);
    p.x = r - (int)(q * cols.d);
    const unsigned c = fdiv(rows, q);
    p.y = (int)(q - c * rows.d);
    p.c = (int)c;
  }
  return p;
}

TFB_HD i64 pool_index(const PoolArgs& a, i64 n, int c, int y, int x, int rows, int cols) {
  return a.channels_last ? ((n * rows + y) * cols + x) * a.C + c : ((n * a.C + c) * rows + y) * cols + x;
}

TFB_HD bool pool_bit(const PoolArgs& a, i64 n, int c, int y, int x) {
  const i64 e = pool_index(a, n, c, y, x, a.H, a.W);
  return (a.bits[e >> 3] >> (e & 7)) & 1;
}

// Window (oy, ox)'s maximum's place in it, row * kw + column (PyTorch's choice, above); *any: whether
// it is a 1. bit(y, x): the input's spike at row y, column x of the window's plane.
template <class Bit> TFB_HD int window_argmax(const PoolArgs& a, int oy, int ox, const Bit& bit, bool* any) {
  const int y_origin = oy * a.sh - a.ph, x_origin = ox * a.sw - a.pw;
  const int y1 = y_origin + (a.kh - 1) * a.dh + 1 < a.H ? y_origin + (a.kh - 1) * a.dh + 1 : a.H;
  const int x1 = x_origin + (a.kw - 1) * a.dw + 1 < a.W ? x_origin + (a.kw - 1) * a.dw + 1 : a.W;
  int i0 = 0, j0 = 0;   // the first rows and columns inside the input
  while (y_origin + i0 * a.dh < 0) ++i0;
  while (x_origin + j0 * a.dw < 0) ++j0;
  for (int i = i0; y_origin + i * a.dh < y1; ++i)
    for (int j = j0; x_origin + j * a.dw < x1; ++j)
      if (bit(y_origin + i * a.dh, x_origin + j * a.dw)) { *any = true; return i * a.kw + j; }
  *any = false;
  return i0 * a.kw + j0;
}

struct GlobalBit {   // plane (n, c)'s spikes, read from the bits in global memory
  const PoolArgs& a;
  i64 n;
  int c;
  TFB_HD bool operator()(int y, int x) const { return pool_bit(a, n, c, y, x); }
};

TFB_HD int pool_argmax(const PoolArgs& a, i64 n, int c, int oy, int ox, bool* any) {
  return window_argmax(a, oy, ox, GlobalBit{a, n, c}, any);
}

template <typename S> TFB_HD void pool_forward_element(const PoolArgs& a, i64 n, int r) {
  const Pos p = pool_pos(a, n, r, a.fHo, a.fWo);
  const i64 e = n * a.per_image + r;
  bool any = false;
  pool_argmax(a, p.n, p.c, p.y, p.x, &any);
  static_cast<S*>(a.out)[e] = Storage<S>::store(any ? 1.0f : 0.0f);
}

TFB_HD void pool_code_element(const PoolArgs& a, i64 n, int r) {
  const Pos p = pool_pos(a, n, r, a.fHo, a.fWo);
  const i64 e = n * a.per_image + r;
  bool any = false;
  a.codes[e] = (unsigned char)pool_argmax(a, p.n, p.c, p.y, p.x, &any);
}

// The windows that may hold input row (or column) i: PyTorch's pooling backward's range [first, last).
TFB_HD int pool_first(int i, int pad, int k, int dil, const FastDiv& stride) {
  return i + pad < (k - 1) * dil + 1 ? 0 : (int)fdiv(stride, (unsigned)(i + pad - ((k - 1) * dil + 1))) + 1;
}
TFB_HD int pool_last(int i, int pad, const FastDiv& stride, int pooled) {
  const int last = (int)fdiv(stride, (unsigned)(i + pad)) + 1;
  return last < pooled ? last : pooled;
}

// The place in the window of a row (column) at distance d >= 0 from its origin, or -1 off the dilation's grid.
TFB_HD int pool_tap(int d, const FastDiv& dil) {
  const int q = (int)fdiv(dil, (unsigned)d);
  return d - q * (int)dil.d ? -1 : q;
}

template <typename S> TFB_HD void pool_backward_element(const PoolArgs& a, i64 n, int r) {
  typedef typename Storage<S>::acc A;
  const Pos p = pool_pos(a, n, r, a.fH, a.fW);
  const int oy1 = pool_last(p.y, a.ph, a.fsh, a.Ho), ox1 = pool_last(p.x, a.pw, a.fsw, a.Wo);
  const int ox0 = pool_first(p.x, a.pw, a.kw, a.dw, a.fsw);
  A g = A(0);
  for (int oy = pool_first(p.y, a.ph, a.kh, a.dh, a.fsh); oy < oy1; ++oy) {
    const int dy = p.y - (oy * a.sh - a.ph);   // the row's distance from the window's origin
    const int i = dy < 0 ? -1 : pool_tap(dy, a.fdh);
    if (i < 0) continue;
    for (int ox = ox0; ox < ox1; ++ox) {
      const int dx = p.x - (ox * a.sw - a.pw);
      const int j = dx < 0 ? -1 : pool_tap(dx, a.fdw);
      if (j < 0) continue;
      const i64 o = pool_index(a, p.n, p.c, oy, ox, a.Ho, a.Wo);
      if (a.codes[o] == i * a.kw + j) g += (A)Storage<S>::load(static_cast<const S*>(a.gout)[o]);
    }
  }
  static_cast<S*>(a.out)[n * a.per_image + r] = Storage<S>::store(g);
}

// The backward in one pass for NCHW memory, a block per a.planes consecutive planes (image, channel:
// plane q is N * C's q-th, its elements and windows contiguous), in three phases with a barrier between
// them: the planes' bits copied into the block's shared memory; from them their windows' codes, and the
// rows' and columns' window ranges (the same for every plane); then each element gathers dL/dout over
// those ranges as pool_backward_element does (the same windows in the same order: the same sums bit for
// bit), its plane, row and column from two divisions. No code bytes in global memory, no chain of
// dependent global loads in a window's scan, none of the per-element divisions for the ranges, and
// enough planes a block (the launcher's choice) that every phase has work for all its threads. Planes
// of more than kPlaneWindows windows or of a side over kPlaneSide, and channels-last memory, take the
// two passes above.
constexpr int kPlaneWindows = 4096;
constexpr int kPlaneSide = 128;
constexpr int kPlaneBits = kPlaneSide * kPlaneSide;   // a block's elements at most
constexpr int kPlaneBytes = kPlaneBits / 8 + 4;      // their bits, from a byte boundary

struct PlaneShared {
  unsigned char bits[kPlaneBytes];                                           // from the first plane's first byte
  unsigned char codes[kPlaneWindows];                                        // window w of the block's planes
  short row0[kPlaneSide], row1[kPlaneSide], col0[kPlaneSide], col1[kPlaneSide];   // windows [first, last)
};

TFB_HD bool pool_plane_fits(const PoolArgs& a) {
  return !a.channels_last && a.Ho * a.Wo <= kPlaneWindows && a.H <= kPlaneSide && a.W <= kPlaneSide;
}

// Planes a block: about 1,024 elements, within the shared memory (made on the host, once a launch).
TFB_HD int pool_planes_per_block(const PoolArgs& a) {
  int p = 1024 / (a.H * a.W);
  if (p * a.Ho * a.Wo > kPlaneWindows) p = kPlaneWindows / (a.Ho * a.Wo);
  if (p * a.H * a.W > kPlaneBits) p = kPlaneBits / (a.H * a.W);
  return p < 1 ? 1 : p;
}

// The block's first plane q0 and its planes' count (the last block's may be fewer).
TFB_HD int block_planes(const PoolArgs& a, i64 q0) {
  const i64 left = a.images * a.C - q0;
  return left < a.planes ? (int)left : a.planes;
}

// Phase 1, thread t of nt: its share of the bytes of bits of the planes from q0, into sh.bits.
TFB_HD void pool_plane_load(const PoolArgs& a, i64 q0, PlaneShared& sh, int t, int nt) {
  const i64 first = q0 * a.H * a.W, byte0 = first >> 3;
  const int bytes = (int)(((first + (i64)block_planes(a, q0) * a.H * a.W + 7) >> 3) - byte0);
  for (int b = t; b < bytes; b += nt) sh.bits[b] = a.bits[byte0 + b];
}

struct SharedBit {   // one plane's spikes, read from its bits in shared memory
  const PlaneShared& sh;
  int offset, W;     // the plane's first bit in sh.bits, its row length
  TFB_HD bool operator()(int y, int x) const {
    const int e = offset + y * W + x;
    return (sh.bits[e >> 3] >> (e & 7)) & 1;
  }
};

// Phase 2, thread t of nt: its share of the codes of the planes from q0, and of the window ranges, into sh.
TFB_HD void pool_plane_prepare(const PoolArgs& a, i64 q0, PlaneShared& sh, int t, int nt) {
  const int offset = (int)((q0 * a.H * a.W) & 7), windows = a.Ho * a.Wo;
  for (int w = t; w < block_planes(a, q0) * windows; w += nt) {
    const int j = (int)fdiv(a.fOW, (unsigned)w), r = w - j * windows;   // plane q0 + j, its window r
    const int oy = (int)fdiv(a.fWo, (unsigned)r), ox = r - oy * a.Wo;
    bool any = false;
    sh.codes[w] = (unsigned char)window_argmax(a, oy, ox, SharedBit{sh, offset + j * a.H * a.W, a.W}, &any);
  }
  for (int y = t; y < a.H; y += nt) {
    sh.row0[y] = (short)pool_first(y, a.ph, a.kh, a.dh, a.fsh);
    sh.row1[y] = (short)pool_last(y, a.ph, a.fsh, a.Ho);
  }
  for (int x = t; x < a.W; x += nt) {
    sh.col0[x] = (short)pool_first(x, a.pw, a.kw, a.dw, a.fsw);
    sh.col1[x] = (short)pool_last(x, a.pw, a.fsw, a.Wo);
  }
}

// Phase 3, thread t of nt: its share of the planes' dL/dx, from sh (pool_plane_prepare's, all of it).
template <typename S> TFB_HD void pool_plane_gather(const PoolArgs& a, i64 q0, const PlaneShared& sh, int t,
                                                    int nt) {
  typedef typename Storage<S>::acc A;
  const int windows = a.Ho * a.Wo, elements = a.H * a.W;
  const S* gout = static_cast<const S*>(a.gout) + q0 * windows;
  S* gx = static_cast<S*>(a.out) + q0 * elements;
  for (int e = t; e < block_planes(a, q0) * elements; e += nt) {
    const int j = (int)fdiv(a.fHW, (unsigned)e), r = e - j * elements;   // plane q0 + j, its element r
    const int y = (int)fdiv(a.fW, (unsigned)r), x = r - y * a.W;
    const int ox0 = sh.col0[x], ox1 = sh.col1[x], oy1 = sh.row1[y];
    const unsigned char* codes = sh.codes + j * windows;
    A g = A(0);
    for (int oy = sh.row0[y]; oy < oy1; ++oy) {
      const int dy = y - (oy * a.sh - a.ph);   // the row's distance from the window's origin
      const int i = dy < 0 ? -1 : a.dh == 1 ? dy : pool_tap(dy, a.fdh);
      if (i < 0) continue;
      for (int ox = ox0; ox < ox1; ++ox) {
        const int dx = x - (ox * a.sw - a.pw);
        const int jx = dx < 0 ? -1 : a.dw == 1 ? dx : pool_tap(dx, a.fdw);
        if (jx < 0) continue;
        const int o = oy * a.Wo + ox;
        if (codes[o] == i * a.kw + jx) g += (A)Storage<S>::load(gout[j * windows + o]);
      }
    }
    gx[e] = Storage<S>::store(g);
  }
}

}  // namespace tfb
