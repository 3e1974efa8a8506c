// The storage dtype S of an NVRTC-compiled module, named by its -D TFB_STORAGE switch:
// 0 float, 1 bfloat16, 2 float16, 3 double (the launcher's Storage enum in tfbench_ops.cpp).
#pragma once

#include "neuron.cuh"

#ifndef TFB_STORAGE
#define TFB_STORAGE 0
#endif
#if TFB_STORAGE == 0
typedef float S;
#elif TFB_STORAGE == 1
typedef tfb::bf16 S;
#elif TFB_STORAGE == 2
typedef tfb::f16 S;
#elif TFB_STORAGE == 3
typedef double S;
#else
#error "TFB_STORAGE must be 0 (float), 1 (bfloat16), 2 (float16) or 3 (double)"
#endif
