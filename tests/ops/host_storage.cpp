// Host driver for kernels/neuron.cuh's storage conversions (built by test_storage_host.py): float ->
// bf16/fp16 (rounded) -> float, element-wise, with the header's own software conversions.
#include "neuron.cuh"

using namespace tfb;

extern "C" void round_trip_bf16(const float* in, float* out, long long n) {
  for (long long i = 0; i < n; ++i) out[i] = Storage<bf16>::load(Storage<bf16>::store(in[i]));
}

extern "C" void round_trip_f16(const float* in, float* out, long long n) {
  for (long long i = 0; i < n; ++i) out[i] = Storage<f16>::load(Storage<f16>::store(in[i]));
}
