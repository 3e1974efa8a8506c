// The fused LIF op's CUDA entry points: each thread takes LIF_VEC consecutive neurons and runs all
// T steps of lif.cuh's per-thread loop. NVRTC compiles this file at first use, once per
// configuration (the -D macros listed in lif.cuh), for the GPU's own architecture.
#include "lif.cuh"

using namespace lif;

extern "C" __global__ void lif_forward(const storage_t* __restrict__ x, const acc_t* __restrict__ v0,
                                       storage_t* __restrict__ s, storage_t* __restrict__ h,
                                       acc_t* __restrict__ v_last, i64 n, int steps, Params p) {
  i64 i0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * LIF_VEC;
  if (i0 >= n) return;
  forward_thread(i0, x, v0, s, h, v_last, n, steps, p);
}

extern "C" __global__ void lif_backward(const storage_t* __restrict__ gs, const storage_t* __restrict__ h,
                                        const acc_t* __restrict__ gv_last, storage_t* __restrict__ gx,
                                        acc_t* __restrict__ gv0, i64 n, int steps, Params p) {
  i64 i0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * LIF_VEC;
  if (i0 >= n) return;
  backward_thread(i0, gs, h, gv_last, gx, gv0, n, steps, p);
}

// Keep x instead of h: the forward writes s and a membrane checkpoint every LIF_CKPT steps; the
// backward recomputes h from x segment by segment (lif.cuh, forward_ckpt_thread).
extern "C" __global__ void lif_forward_ckpt(const storage_t* __restrict__ x, const acc_t* __restrict__ v0,
                                            storage_t* __restrict__ s, acc_t* __restrict__ ckpt,
                                            acc_t* __restrict__ v_last, i64 n, int steps, Params p) {
  i64 i0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * LIF_VEC;
  if (i0 >= n) return;
  forward_ckpt_thread(i0, x, v0, s, ckpt, v_last, n, steps, p);
}

extern "C" __global__ void lif_backward_recompute(const storage_t* __restrict__ gs, const storage_t* __restrict__ x,
                                                  const acc_t* __restrict__ v0, const acc_t* __restrict__ ckpt,
                                                  const acc_t* __restrict__ gv_last, storage_t* __restrict__ gx,
                                                  acc_t* __restrict__ gv0, i64 n, int steps, Params p) {
  i64 i0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * LIF_VEC;
  if (i0 >= n) return;
  backward_recompute_thread(i0, gs, x, v0, ckpt, gv_last, gx, gv0, n, steps, p);
}
