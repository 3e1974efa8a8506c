// Every fused neuron, and the list the op's C++ dispatches on (tfbench_ops.cpp). Adding a neuron:
// its header in this folder, one include and one X(...) line here, and its Python description
// (tfbench/ops/neurons/); docs/neurons.md and the README say the rest.
#pragma once
#include "lif.cuh"
#include "plif.cuh"

// X(struct, name the op is called with)
#define TFB_NEURONS(X) \
  X(LIF, "lif")        \
  X(PLIF, "plif")
