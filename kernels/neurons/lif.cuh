// LIF: the leaky integrate-and-fire neuron of docs/neurons.md ("LIF"), and IF as tau = inf.
// The plainest neuron: constant parameters, nothing learnable. Copy this file to add a neuron.
#pragma once
#include "../neuron.cuh"

namespace tfb {

struct LIF {
  // The op's constants, in the order tfbench/ops/neurons/lif.py's `kernel_constants()` gives them.
  template <typename A> struct Params {
    A inv_tau;      // 1 / tau: 0 for an IF neuron (tau = inf); a multiply, not a division, per step
    A v_threshold;
    A v_reset;      // hard reset: the reset value; soft reset: 0 (the rest potential vr)
    A alpha;        // the surrogate's sharpness
  };
  template <typename A>
  static TFB_HD Params<A> make(const double* constants, const A* /*learned*/, i64 /*inner*/, i64 /*channels*/) {
    return {(A)constants[0], (A)constants[1], (A)constants[2], (A)constants[3]};
  }

  template <typename A> struct Local { A k; };  // 1 / tau for this neuron: the same for all
  template <typename A> static TFB_HD Local<A> local(const Params<A>& p, i64) { return {p.inv_tau}; }

  // h[t] = v + (x - (v - vr)) / tau, or v - (v - vr) / tau + x, the product rounded once (fma)
  template <class C, typename A>
  static TFB_HD A charge(const C& c, const Params<A>& p, const Local<A>& l, A v, A x) {
    if (c.decay_input) return fma_(x - (v - p.v_reset), l.k, v);
    return fma_(-(v - p.v_reset), l.k, v) + x;
  }

  template <class C, typename A> static TFB_HD A grad_x(const C& c, const Local<A>& l, A gh) {
    return c.decay_input ? gh * l.k : gh;
  }
  template <class C, typename A> static TFB_HD A grad_v(const C&, const Local<A>& l, A gh) {
    return gh * (A(1) - l.k);  // dh[t]/dv[t-1] = 1 - 1/tau
  }

  static constexpr bool learns = false;
  template <class C, typename A> static TFB_HD A param_term(const C&, const Params<A>&, A, A) { return A(0); }
  template <class C, typename A> static TFB_HD A param_scale(const C&, const Params<A>&, const Local<A>&) {
    return A(0);
  }
};

}  // namespace tfb
