// PLIF: the parametric LIF neuron of docs/neurons.md ("PLIF"; Fang et al. 2021, SpikingJelly's
// ParametricLIFNode): LIF whose 1/tau = sigmoid(w) is learned, one w per layer or per channel.
#pragma once
#include "../neuron.cuh"

namespace tfb {

// sigmoid with the accurate exponential (not the fast one): it is evaluated once per neuron.
TFB_HD float sigmoid_(float w) { return 1.0f / (1.0f + expf(-w)); }
TFB_HD double sigmoid_(double w) { return 1.0 / (1.0 + exp(-w)); }

struct PLIF {
  template <typename A> struct Params {
    A v_threshold;
    A v_reset;      // hard reset: the reset value; soft reset: 0 (the rest potential vr)
    A alpha;
    const A* w;     // [channels]: the learned parameter, 1/tau = sigmoid(w)
    i64 inner;      // neuron i is in channel (i / inner) % channels
    i64 channels;   // 1: one w for the layer
  };
  // constants in the order of tfbench/ops/neurons/plif.py's `kernel_constants()`
  template <typename A>
  static TFB_HD Params<A> make(const double* constants, const A* learned, i64 inner, i64 channels) {
    return {(A)constants[0], (A)constants[1], (A)constants[2], learned, inner, channels};
  }

  template <typename A> struct Local { A k; };  // this neuron's 1/tau
  template <typename A> static TFB_HD Local<A> local(const Params<A>& p, i64 i) {
    return {sigmoid_(p.w[p.channels == 1 ? 0 : channel_of(i, p.inner, p.channels)])};
  }

  // As SpikingJelly writes it: v + (x - (v - vr)) * k, or v - (v - vr) * k + x; each operation
  // rounded on its own (no fma), which is what its torch path computes.
  template <class C, typename A>
  static TFB_HD A charge(const C& c, const Params<A>& p, const Local<A>& l, A v, A x) {
    if (c.decay_input) return add_(v, mul_(x - (v - p.v_reset), l.k));
    return add_(v - mul_(v - p.v_reset, l.k), x);
  }

  template <class C, typename A> static TFB_HD A grad_x(const C& c, const Local<A>& l, A gh) {
    return c.decay_input ? gh * l.k : gh;
  }
  template <class C, typename A> static TFB_HD A grad_v(const C&, const Local<A>& l, A gh) {
    return gh * (A(1) - l.k);
  }

  // dL/dw = sum_t gh[t] * dh[t]/dk * dk/dw, k = sigmoid(w), dk/dw = k (1 - k):
  //   decay_input:      dh/dk = x - (v - vr) = (h - v) / k  ->  gh * (h - v) * (1 - k)
  //   not decay_input:  dh/dk = -(v - vr)                   ->  gh * (v - vr) * (-k (1 - k))
  // with v = v[t-1]. (h - v) needs no x, so the op that keeps only h learns w too.
  static constexpr bool learns = true;
  template <class C, typename A> static TFB_HD A param_term(const C& c, const Params<A>& p, A h, A v_prev) {
    return c.decay_input ? h - v_prev : v_prev - p.v_reset;
  }
  template <class C, typename A> static TFB_HD A param_scale(const C& c, const Params<A>&, const Local<A>& l) {
    return c.decay_input ? A(1) - l.k : -l.k * (A(1) - l.k);
  }
};

}  // namespace tfb
