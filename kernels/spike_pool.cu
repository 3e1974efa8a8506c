// The max-pool of spikes kept as bits (spike_pool.cuh), for the GPU: NVRTC compiles this file once per
// storage dtype (TFB_STORAGE: 0 float, 1 bfloat16, 2 float16, 3 double); one thread per element written
// (the output's, the windows' codes, dL/dx's); blockIdx.x the image, blockIdx.y a block of its elements.
#include "spike_pool.cuh"

using namespace tfb;

#ifndef TFB_STORAGE
#define TFB_STORAGE 0
#endif
#if TFB_STORAGE == 0
typedef float S;
#elif TFB_STORAGE == 1
typedef bf16 S;
#elif TFB_STORAGE == 2
typedef f16 S;
#elif TFB_STORAGE == 3
typedef double S;
#else
#error "TFB_STORAGE must be 0 (float), 1 (bfloat16), 2 (float16) or 3 (double)"
#endif

extern "C" __global__ void tfb_pool_forward(const PoolArgs a) {
  const int r = blockIdx.y * blockDim.x + threadIdx.x;   // the element in image blockIdx.x
  if (r < a.per_image) pool_forward_element<S>(a, (i64)blockIdx.x, r);
}

extern "C" __global__ void tfb_pool_codes(const PoolArgs a) {
  const int r = blockIdx.y * blockDim.x + threadIdx.x;   // the element in image blockIdx.x
  if (r < a.per_image) pool_code_element(a, (i64)blockIdx.x, r);
}

extern "C" __global__ void tfb_pool_backward(const PoolArgs a) {
  const int r = blockIdx.y * blockDim.x + threadIdx.x;   // the element in image blockIdx.x
  if (r < a.per_image) pool_backward_element<S>(a, (i64)blockIdx.x, r);
}
