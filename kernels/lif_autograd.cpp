// The eager fast path of the fused LIF op: a C++ autograd node that launches the NVRTC-built kernels
// of lif.cu (their CUfunction handles come from tfbench/ops/jit.py) with no Python in the forward
// or the backward. Built at first use by tfbench/ops/lif/fast.py with the system C++ compiler
// against PyTorch's headers only (no CUDA headers: the stream comes from c10's device-generic
// interface, the driver's cuLaunchKernel from dlsym); where it cannot be built, tfbench uses the
// Python autograd.Function with the same kernels.
#include <torch/extension.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using LaunchFn = int (*)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*,
                         void**, void**);

void* driver_symbol(const char* name) {
  static void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) throw std::runtime_error("tfbench: libcuda.so.1 could not be loaded");
  void* sym = dlsym(lib, name);
  if (!sym) throw std::runtime_error(std::string("tfbench: ") + name + " not found in libcuda.so.1");
  return sym;
}

LaunchFn launcher() {
  static LaunchFn fn = reinterpret_cast<LaunchFn>(driver_symbol("cuLaunchKernel"));
  return fn;
}

// A thread PyTorch has not run CUDA work on (the autograd engine's, say) has no current context:
// make the device's primary context, the one PyTorch uses, current. Error messages are built
// without iostreams (std::to_string): the extension's and PyTorch's C++ runtimes may differ.
void make_primary_context_current(int device) {
  using DeviceGet = int (*)(int*, int);
  using Retain = int (*)(void**, int);
  using SetCurrent = int (*)(void*);
  static auto get = reinterpret_cast<DeviceGet>(driver_symbol("cuDeviceGet"));
  static auto retain = reinterpret_cast<Retain>(driver_symbol("cuDevicePrimaryCtxRetain"));
  static auto set = reinterpret_cast<SetCurrent>(driver_symbol("cuCtxSetCurrent"));
  int dev = 0;
  void* ctx = nullptr;
  int code = get(&dev, device);
  if (code == 0) code = retain(&ctx, dev);  // the reference is kept: PyTorch holds the context for good anyway
  if (code == 0) code = set(ctx);
  if (code != 0)
    throw std::runtime_error("tfbench: making the CUDA context current failed with CUDA error " + std::to_string(code));
}

// One neuron configuration on one device: the kernels for each neurons-per-thread width, and the
// neuron's parameters (lif.cuh's Params, float or double).
struct Config {
  std::vector<int64_t> widths;      // e.g. {1, 2, 4}: kernels exist for these LIF_VEC values
  std::vector<int64_t> forward;     // CUfunction per width: lif_forward (keeps h)
  std::vector<int64_t> backward;    // lif_backward
  std::vector<int64_t> forward_ckpt;        // lif_forward_ckpt (keeps x and membrane checkpoints)
  std::vector<int64_t> backward_recompute;  // lif_backward_recompute
  int64_t ckpt;                     // LIF_CKPT: steps per checkpoint segment
  int64_t block;                    // threads per block
  int64_t min_threads;              // use a width > 1 only while n / width >= this (SMs x threads per SM)
  bool dbl;                         // Params in double (float64 storage)
  double inv_tau, v_threshold, v_reset, alpha;
};

template <typename A>
struct ParamsT { A inv_tau, v_threshold, v_reset, alpha; };

// The kernel's parameters: P pointers, then n, steps and the neuron (lif.cu's signatures).
template <typename A, int P>
struct Args {
  void* ptr[P];
  long long n;
  int steps;
  ParamsT<A> p;
};

enum Kernel { kForward, kBackward, kForwardCkpt, kBackwardRecompute };
const char* const kNames[] = {"forward", "backward", "forward (checkpoints)", "backward (recompute)"};

const std::vector<int64_t>& kernels(const Config& cfg, Kernel k) {
  switch (k) {
    case kForward: return cfg.forward;
    case kBackward: return cfg.backward;
    case kForwardCkpt: return cfg.forward_ckpt;
    default: return cfg.backward_recompute;
  }
}

bool aligned(const at::Tensor* t, int64_t bytes) {
  return t == nullptr || !t->defined() || reinterpret_cast<uintptr_t>(t->data_ptr()) % bytes == 0;
}

template <typename A, int P>
void launch_impl(const Config& cfg, Kernel kernel, const std::vector<void*>& ptrs, int64_t n, int64_t steps,
                 int64_t width_index, int64_t width, const at::Device& device) {
  Args<A, P> args;
  for (int i = 0; i < P; ++i) args.ptr[i] = ptrs[i];
  args.n = (long long)n;
  args.steps = (int)steps;
  args.p = {(A)cfg.inv_tau, (A)cfg.v_threshold, (A)cfg.v_reset, (A)cfg.alpha};
  void* params[P + 3];
  for (int i = 0; i < P; ++i) params[i] = &args.ptr[i];
  params[P] = &args.n;
  params[P + 1] = &args.steps;
  params[P + 2] = &args.p;
  int64_t threads = (n + width - 1) / width;
  unsigned grid = (unsigned)((threads + cfg.block - 1) / cfg.block);
  void* fn = reinterpret_cast<void*>(kernels(cfg, kernel)[width_index]);
  void* stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(device).native_handle();
  int code = launcher()(fn, grid, 1, 1, (unsigned)cfg.block, 1, 1, 0, stream, params, nullptr);
  if (code != 0) {
    make_primary_context_current(device.index());
    code = launcher()(fn, grid, 1, 1, (unsigned)cfg.block, 1, 1, 0, stream, params, nullptr);
  }
  if (code != 0)
    throw std::runtime_error(std::string("tfbench: launching the fused LIF ") + kNames[kernel] +
                             " kernel failed with CUDA error " + std::to_string(code));
}

// `tensors`: the kernel's pointer arguments in order (null or undefined: a null pointer); `vectors`:
// those accessed LIF_VEC at a time, whose alignment limits the width.
void launch(const Config& cfg, Kernel kernel, std::initializer_list<const at::Tensor*> tensors,
            std::initializer_list<const at::Tensor*> vectors, int64_t n, int64_t steps, const at::Device& device) {
  // the widest width that divides n, leaves enough threads, and fits the alignment of every tensor
  int64_t index = 0;
  for (int64_t i = (int64_t)cfg.widths.size() - 1; i > 0; --i) {
    int64_t w = cfg.widths[i];
    if (n % w || n / w < cfg.min_threads) continue;
    bool ok = true;
    for (const at::Tensor* t : vectors) ok = ok && aligned(t, w * (t && t->defined() ? t->element_size() : 1));
    if (ok) { index = i; break; }
  }
  std::vector<void*> ptrs;
  for (const at::Tensor* t : tensors) ptrs.push_back(t && t->defined() ? t->data_ptr() : nullptr);
  const int64_t w = cfg.widths[index];
  if (ptrs.size() == 7) {
    if (cfg.dbl) launch_impl<double, 7>(cfg, kernel, ptrs, n, steps, index, w, device);
    else launch_impl<float, 7>(cfg, kernel, ptrs, n, steps, index, w, device);
  } else {
    if (cfg.dbl) launch_impl<double, 5>(cfg, kernel, ptrs, n, steps, index, w, device);
    else launch_impl<float, 5>(cfg, kernel, ptrs, n, steps, index, w, device);
  }
}

class LIFNode : public torch::autograd::Function<LIFNode> {
 public:
  // x: [T, *] contiguous CUDA; v0: [*] contiguous in the arithmetic dtype, or undefined.
  // save_input: keep x (and v0, and membrane checkpoints) instead of h; backward recomputes h.
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                              const at::Tensor& v0, int64_t config, bool want_v_last,
                                              bool v0_given, bool save_input) {
    const Config& cfg = *reinterpret_cast<const Config*>(config);
    c10::DeviceGuard guard(x.device());
    const int64_t steps = x.size(0), n = steps ? x.numel() / steps : 0;
    auto acc = cfg.dbl ? at::kDouble : at::kFloat;
    at::Tensor s = at::empty_like(x);
    // an unwanted v_T is an empty tensor (autograd rejects undefined outputs) and is not written
    at::Tensor v_last = at::empty(want_v_last ? x.sizes().slice(1) : at::IntArrayRef{0}, x.options().dtype(acc));
    const at::Tensor none;
    const at::Tensor& v0_arg = v0_given ? v0 : none;
    at::Tensor kept;  // h, or the membrane checkpoints [(T - 1) / LIF_CKPT, *]
    if (save_input) {
      std::vector<int64_t> shape = x.sizes().vec();
      shape[0] = steps > 0 ? (steps - 1) / cfg.ckpt : 0;
      kept = at::empty(shape, x.options().dtype(acc));
      if (n > 0)
        launch(cfg, kForwardCkpt, {&x, &v0_arg, &s, &kept, want_v_last ? &v_last : &none}, {&x, &s}, n, steps,
               x.device());
      ctx->save_for_backward({x, v0_arg, kept});
    } else {
      kept = at::empty_like(x);
      if (n > 0)
        launch(cfg, kForward, {&x, &v0_arg, &s, &kept, want_v_last ? &v_last : &none}, {&x, &s, &kept}, n, steps,
               x.device());
      ctx->save_for_backward({kept});
    }
    ctx->saved_data["config"] = config;
    ctx->saved_data["v0_given"] = v0_given;
    ctx->saved_data["save_input"] = save_input;
    ctx->set_materialize_grads(false);
    ctx->mark_non_differentiable({kept});
    return {s, kept, v_last};
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const Config& cfg = *reinterpret_cast<const Config*>(ctx->saved_data["config"].toInt());
    const bool v0_given = ctx->saved_data["v0_given"].toBool();
    const bool save_input = ctx->saved_data["save_input"].toBool();
    auto saved = ctx->get_saved_variables();
    const at::Tensor& like = saved[0];  // h, or x: the [T, *] tensor in the storage dtype
    c10::DeviceGuard guard(like.device());
    auto acc = cfg.dbl ? at::kDouble : at::kFloat;
    // with materialize_grads off, unused outputs' gradients are undefined (or absent)
    const bool has_gs = grads.size() > 0 && grads[0].defined();
    const bool has_gv = grads.size() > 2 && grads[2].defined() && grads[2].numel() > 0;
    at::Tensor gs = has_gs ? grads[0].to(like.scalar_type()).contiguous() : at::zeros_like(like);
    at::Tensor gv_last = has_gv ? grads[2].to(acc).contiguous() : at::Tensor();
    const int64_t steps = like.size(0), n = steps ? like.numel() / steps : 0;
    at::Tensor gx = at::empty_like(like);
    at::Tensor gv0 = v0_given ? at::empty(like.sizes().slice(1), like.options().dtype(acc)) : at::Tensor();
    if (n > 0) {
      if (save_input)
        launch(cfg, kBackwardRecompute, {&gs, &saved[0], &saved[1], &saved[2], &gv_last, &gx, &gv0},
               {&gs, &saved[0], &gx}, n, steps, like.device());
      else
        launch(cfg, kBackward, {&gs, &saved[0], &gv_last, &gx, &gv0}, {&gs, &saved[0], &gx}, n, steps, like.device());
    }
    return {gx, gv0, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

int64_t make_config(std::vector<int64_t> widths, std::vector<int64_t> forward, std::vector<int64_t> backward,
                    std::vector<int64_t> forward_ckpt, std::vector<int64_t> backward_recompute, int64_t ckpt,
                    int64_t block, int64_t min_threads, bool dbl, double inv_tau, double v_threshold,
                    double v_reset, double alpha) {
  // Configurations live as long as the process (a handful per model): the node keeps a raw pointer.
  auto* cfg = new Config{std::move(widths), std::move(forward), std::move(backward), std::move(forward_ckpt),
                         std::move(backward_recompute), ckpt, block, min_threads, dbl,
                         inv_tau, v_threshold, v_reset, alpha};
  return reinterpret_cast<int64_t>(cfg);
}

std::vector<at::Tensor> lif(const at::Tensor& x, const c10::optional<at::Tensor>& v0, int64_t config,
                            bool want_v_last, bool save_input) {
  // autograd's apply rejects undefined tensor inputs: without v0, x stands in (never read as v0)
  auto out = LIFNode::apply(x, v0.has_value() ? *v0 : x, config, want_v_last, v0.has_value(), save_input);
  return {out[0], out[2]};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("make_config", &make_config, "register one neuron configuration's kernels; returns its handle");
  m.def("lif", &lif, "fused LIF forward with a C++ autograd node: (s, v_T)");
}
