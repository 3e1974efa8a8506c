// A 2-D max-pool of spikes read from their bits (neuron.cuh's pack_byte: element e of the 0/1 tensor
// in its memory order is bit e % 8 of byte e / 8), forward and backward, one thread per output element.
//
// The maximum of a window of spikes is 1 when any is 1, and its position, the one PyTorch's max-pool
// picks, is the first 1 in the window's row-major scan, else the window's first element (its kernels
// start from -inf and take a value only when it is greater). So the forward needs no indices, and the
// backward finds each window's maximum again from the bits (no unpacked input, no int64 indices):
// dL/dx at (h, w) gathers dL/dout over the windows whose maximum is (h, w), in PyTorch's order (the
// windows' rows, then columns), summed in the arithmetic type (float, double for double).
//
// Compiled twice from this one text: by NVRTC (spike_pool.cu) and by the C++ compiler (tfbench_ops.cpp).
#pragma once

#include "neuron.cuh"

namespace tfb {

struct PoolArgs {
  const unsigned char* bits;   // the input spikes' bits: [N, C, H, W] in NCHW or NHWC memory order
  const void* gout;            // backward: dL/dout [N, C, Ho, Wo], in the same memory order
  void* out;                   // forward: out [N, C, Ho, Wo]; backward: dL/dx [N, C, H, W]
  i64 n;                       // elements of out
  int C, H, W, Ho, Wo;
  int kh, kw, sh, sw, ph, pw, dh, dw;
  int channels_last;           // 1: NHWC memory order, 0: NCHW
};

// (image, channel, row, column) of element e of a [*, C, rows, cols] tensor in the args' memory order.
struct Pos { i64 n; int c, y, x; };
TFB_HD Pos pool_pos(const PoolArgs& a, i64 e, int rows, int cols) {
  Pos p;
  if (a.channels_last) {
    p.c = (int)(e % a.C); e /= a.C;
    p.x = (int)(e % cols); e /= cols;
    p.y = (int)(e % rows); p.n = e / rows;
  } else {
    p.x = (int)(e % cols); e /= cols;
    p.y = (int)(e % rows); e /= rows;
    p.c = (int)(e % a.C); p.n = e / a.C;
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

// Window (oy, ox)'s maximum position as y * W + x (PyTorch's choice, above); *any: whether it is a 1.
TFB_HD int pool_argmax(const PoolArgs& a, i64 n, int c, int oy, int ox, bool* any) {
  int y0 = oy * a.sh - a.ph, x0 = ox * a.sw - a.pw;
  const int y1 = y0 + (a.kh - 1) * a.dh + 1 < a.H ? y0 + (a.kh - 1) * a.dh + 1 : a.H;
  const int x1 = x0 + (a.kw - 1) * a.dw + 1 < a.W ? x0 + (a.kw - 1) * a.dw + 1 : a.W;
  while (y0 < 0) y0 += a.dh;
  while (x0 < 0) x0 += a.dw;
  for (int y = y0; y < y1; y += a.dh)
    for (int x = x0; x < x1; x += a.dw)
      if (pool_bit(a, n, c, y, x)) { *any = true; return y * a.W + x; }
  *any = false;
  return y0 * a.W + x0;
}

template <typename S> TFB_HD void pool_forward_element(const PoolArgs& a, i64 e) {
  const Pos p = pool_pos(a, e, a.Ho, a.Wo);
  bool any = false;
  pool_argmax(a, p.n, p.c, p.y, p.x, &any);
  static_cast<S*>(a.out)[e] = Storage<S>::store(any ? 1.0f : 0.0f);
}

// The windows that may hold input row (or column) i: PyTorch's pooling backward's range [first, last).
TFB_HD int pool_first(int i, int pad, int k, int dil, int stride) {
  return i + pad < (k - 1) * dil + 1 ? 0 : (i + pad - ((k - 1) * dil + 1)) / stride + 1;
}
TFB_HD int pool_last(int i, int pad, int stride, int pooled) {
  return (i + pad) / stride + 1 < pooled ? (i + pad) / stride + 1 : pooled;
}

template <typename S> TFB_HD void pool_backward_element(const PoolArgs& a, i64 e) {
  typedef typename Storage<S>::acc A;
  const Pos p = pool_pos(a, e, a.H, a.W);
  const int here = p.y * a.W + p.x;
  const int oy1 = pool_last(p.y, a.ph, a.sh, a.Ho), ox1 = pool_last(p.x, a.pw, a.sw, a.Wo);
  A g = A(0);
  for (int oy = pool_first(p.y, a.ph, a.kh, a.dh, a.sh); oy < oy1; ++oy)
    for (int ox = pool_first(p.x, a.pw, a.kw, a.dw, a.sw); ox < ox1; ++ox) {
      bool any = false;
      if (pool_argmax(a, p.n, p.c, oy, ox, &any) == here)
        g += (A)Storage<S>::load(static_cast<const S*>(a.gout)[pool_index(a, p.n, p.c, oy, ox, a.Ho, a.Wo)]);
    }
  static_cast<S*>(a.out)[e] = Storage<S>::store(g);
}

}  // namespace tfb
