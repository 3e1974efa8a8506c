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
  std::vector<int64_t> forward;     // CUfunction per width
  std::vector<int64_t> backward;
  int64_t block;                    // threads per block
  int64_t min_threads;              // use a width > 1 only while n / width >= this (SMs x threads per SM)
  bool dbl;                         // Params in double (float64 storage)
  double inv_tau, v_threshold, v_reset, alpha;
};

template <typename A>
struct ParamsT { A inv_tau, v_threshold, v_reset, alpha; };

template <typename A>
struct Args {
  void* a; void* b; void* c; void* d; void* e;
  long long n;
  int steps;
  ParamsT<A> p;
};

bool aligned(const at::Tensor* t, int64_t bytes) {
  return t == nullptr || !t->defined() || reinterpret_cast<uintptr_t>(t->data_ptr()) % bytes == 0;
}

template <typename A>
void launch_impl(const Config& cfg, bool fwd, void* p0, void* p1, void* p2, void* p3, void* p4, int64_t n,
                 int64_t steps, int64_t width_index, int64_t width, const at::Device& device) {
  Args<A> args{p0, p1, p2, p3, p4, (long long)n, (int)steps,
               {(A)cfg.inv_tau, (A)cfg.v_threshold, (A)cfg.v_reset, (A)cfg.alpha}};
  void* params[8] = {&args.a, &args.b, &args.c, &args.d, &args.e, &args.n, &args.steps, &args.p};
  int64_t threads = (n + width - 1) / width;
  unsigned grid = (unsigned)((threads + cfg.block - 1) / cfg.block);
  void* fn = reinterpret_cast<void*>(fwd ? cfg.forward[width_index] : cfg.backward[width_index]);
  void* stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(device).native_handle();
  int code = launcher()(fn, grid, 1, 1, (unsigned)cfg.block, 1, 1, 0, stream, params, nullptr);
  if (code != 0) {
    make_primary_context_current(device.index());
    code = launcher()(fn, grid, 1, 1, (unsigned)cfg.block, 1, 1, 0, stream, params, nullptr);
  }
  if (code != 0)
    throw std::runtime_error(std::string("tfbench: launching the fused LIF ") + (fwd ? "forward" : "backward") +
                             " kernel failed with CUDA error " + std::to_string(code));
}

void launch(const Config& cfg, bool fwd, std::initializer_list<const at::Tensor*> tensors, int64_t n,
            int64_t steps, const at::Device& device) {
  // the widest width that divides n, leaves enough threads, and fits the alignment of every tensor
  int64_t index = 0;
  for (int64_t i = (int64_t)cfg.widths.size() - 1; i > 0; --i) {
    int64_t w = cfg.widths[i];
    if (n % w || n / w < cfg.min_threads) continue;
    bool ok = true;
    for (const at::Tensor* t : tensors) ok = ok && aligned(t, w * (t && t->defined() ? t->element_size() : 1));
    if (ok) { index = i; break; }
  }
  std::vector<void*> ptrs;
  for (const at::Tensor* t : tensors) ptrs.push_back(t && t->defined() ? t->data_ptr() : nullptr);
  if (cfg.dbl)
    launch_impl<double>(cfg, fwd, ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], n, steps, index, cfg.widths[index], device);
  else
    launch_impl<float>(cfg, fwd, ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], n, steps, index, cfg.widths[index], device);
}

class LIFNode : public torch::autograd::Function<LIFNode> {
 public:
  // x: [T, *] contiguous CUDA; v0: [*] contiguous in the arithmetic dtype, or undefined.
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                              const at::Tensor& v0, int64_t config, bool want_v_last,
                                              bool v0_given) {
    const Config& cfg = *reinterpret_cast<const Config*>(config);
    c10::DeviceGuard guard(x.device());
    const int64_t steps = x.size(0), n = steps ? x.numel() / steps : 0;
    auto acc = cfg.dbl ? at::kDouble : at::kFloat;
    at::Tensor s = at::empty_like(x), h = at::empty_like(x);
    // an unwanted v_T is an empty tensor (autograd rejects undefined outputs) and is not written
    at::Tensor v_last = at::empty(want_v_last ? x.sizes().slice(1) : at::IntArrayRef{0}, x.options().dtype(acc));
    const at::Tensor none;
    if (n > 0)
      launch(cfg, true, {&x, v0_given ? &v0 : &none, &s, &h, want_v_last ? &v_last : &none}, n, steps, x.device());
    ctx->save_for_backward({h});
    ctx->saved_data["config"] = config;
    ctx->saved_data["v0_given"] = v0_given;
    ctx->set_materialize_grads(false);
    ctx->mark_non_differentiable({h});
    return {s, h, v_last};
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const Config& cfg = *reinterpret_cast<const Config*>(ctx->saved_data["config"].toInt());
    const bool v0_given = ctx->saved_data["v0_given"].toBool();
    at::Tensor h = ctx->get_saved_variables()[0];
    c10::DeviceGuard guard(h.device());
    auto acc = cfg.dbl ? at::kDouble : at::kFloat;
    // with materialize_grads off, unused outputs' gradients are undefined (or absent)
    const bool has_gs = grads.size() > 0 && grads[0].defined();
    const bool has_gv = grads.size() > 2 && grads[2].defined() && grads[2].numel() > 0;
    at::Tensor gs = has_gs ? grads[0].to(h.scalar_type()).contiguous() : at::zeros_like(h);
    at::Tensor gv_last = has_gv ? grads[2].to(acc).contiguous() : at::Tensor();
    const int64_t steps = h.size(0), n = steps ? h.numel() / steps : 0;
    at::Tensor gx = at::empty_like(h);
    at::Tensor gv0 = v0_given ? at::empty(h.sizes().slice(1), h.options().dtype(acc)) : at::Tensor();
    if (n > 0) launch(cfg, false, {&gs, &h, &gv_last, &gx, &gv0}, n, steps, h.device());
    return {gx, gv0, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

int64_t make_config(std::vector<int64_t> widths, std::vector<int64_t> forward, std::vector<int64_t> backward,
                    int64_t block, int64_t min_threads, bool dbl, double inv_tau, double v_threshold,
                    double v_reset, double alpha) {
  // Configurations live as long as the process (a handful per model): the node keeps a raw pointer.
  auto* cfg = new Config{std::move(widths), std::move(forward), std::move(backward), block, min_threads, dbl,
                         inv_tau, v_threshold, v_reset, alpha};
  return reinterpret_cast<int64_t>(cfg);
}

std::vector<at::Tensor> lif(const at::Tensor& x, const c10::optional<at::Tensor>& v0, int64_t config,
                            bool want_v_last) {
  // autograd's apply rejects undefined tensor inputs: without v0, x stands in (never read as v0)
  auto out = LIFNode::apply(x, v0.has_value() ? *v0 : x, config, want_v_last, v0.has_value());
  return {out[0], out[2]};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("make_config", &make_config, "register one neuron configuration's kernels; returns its handle");
  m.def("lif", &lif, "fused LIF forward with a C++ autograd node: (s, v_T)");
}
