// The max-pool of spikes kept as bits (spike_pool.cuh), for the GPU: NVRTC compiles this file once per
// storage dtype (TFB_STORAGE: 0 float, 1 bfloat16, 2 float16, 3 double); one thread per element written
// (the output's, the windows' codes, dL/dx's); blockIdx.x the image, blockIdx.y a block of its elements;
// the one-pass backward a block per a.planes planes.
#include "spike_pool.cuh"
#include "storage.cuh"

using namespace tfb;

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

extern "C" __global__ void tfb_pool_backward_plane(const PoolArgs a) {
  __shared__ PlaneShared sh;
  const i64 q0 = (i64)blockIdx.x * a.planes;   // the block's first plane
  pool_plane_load(a, q0, sh, (int)threadIdx.x, (int)blockDim.x);
  __syncthreads();
  pool_plane_prepare(a, q0, sh, (int)threadIdx.x, (int)blockDim.x);
  __syncthreads();
  pool_plane_gather<S>(a, q0, sh, (int)threadIdx.x, (int)blockDim.x);
}
