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
