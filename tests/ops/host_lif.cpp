// Host driver for kernels/lif.cuh: runs the CUDA kernels' per-thread loops over every neuron on the
// CPU, so the kernel maths is tested in CI, where there is no GPU. Built by test_kernel_host.py.
#include "lif.cuh"

using namespace lif;

extern "C" void host_forward(const storage_t* x, const acc_t* v0, storage_t* s, storage_t* h, acc_t* v_last,
                             long long n, int steps, const Params* p) {
  for (long long i = 0; i + LIF_VEC <= n; i += LIF_VEC) forward_thread(i, x, v0, s, h, v_last, n, steps, *p);
}

extern "C" void host_backward(const storage_t* gs, const storage_t* h, const acc_t* gv_last, storage_t* gx,
                              acc_t* gv0, long long n, int steps, const Params* p) {
  for (long long i = 0; i + LIF_VEC <= n; i += LIF_VEC) backward_thread(i, gs, h, gv_last, gx, gv0, n, steps, *p);
}

// The storage conversions, element-wise: float -> storage (rounded) -> float.
extern "C" void host_round_trip(const float* in, float* out, long long n) {
  for (long long i = 0; i < n; ++i) out[i] = (float)Storage<storage_t>::load(Storage<storage_t>::store(in[i]));
}

// The kernels that keep x instead of h: forward with membrane checkpoints, backward recomputing h.
extern "C" void host_forward_ckpt(const storage_t* x, const acc_t* v0, storage_t* s, acc_t* ckpt, acc_t* v_last,
                                  long long n, int steps, const Params* p) {
  for (long long i = 0; i + LIF_VEC <= n; i += LIF_VEC) forward_ckpt_thread(i, x, v0, s, ckpt, v_last, n, steps, *p);
}

extern "C" void host_backward_recompute(const storage_t* gs, const storage_t* x, const acc_t* v0, const acc_t* ckpt,
                                        const acc_t* gv_last, storage_t* gx, acc_t* gv0, long long n, int steps,
                                        const Params* p) {
  for (long long i = 0; i + LIF_VEC <= n; i += LIF_VEC)
    backward_recompute_thread(i, gs, x, v0, ckpt, gv_last, gx, gv0, n, steps, *p);
}
