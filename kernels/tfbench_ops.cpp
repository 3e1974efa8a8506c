// The fused-neuron ops' implementations, registered with PyTorch's dispatcher:
//   CPU       the per-thread loops of neuron.cuh compiled for the host, run over every neuron;
//   CUDA      the same loops as NVRTC-built kernels (neurons.cu), launched through the driver API;
//   Autograd  a C++ autograd node whose backward calls tfbench::neuron_backward (dispatched again).
// The schemas are declared once, in tfbench/ops/library.py, which also registers the fake
// implementations for torch.compile and loads this file (built at first use by
// torch.utils.cpp_extension against PyTorch's headers only: no CUDA toolkit). One path for eager
// calls, torch.compile and CUDA graphs.
//
// The launcher below is the one place that picks the launch shape (threads per block, neurons per
// thread, steps loaded ahead) and fills the kernels' argument struct (neuron.cuh's Args). The CUDA
// kernels' handles come from Python (tfbench::_kernels, NVRTC and a disk cache: tfbench/ops/jit.py),
// once per configuration; the stream is PyTorch's current one, through c10's device-generic
// interface; cuLaunchKernel is looked up in libcuda with dlsym.
#include <ATen/TensorOperators.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include <dlfcn.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "neurons/all.cuh"
#include "spike_pool.cuh"

namespace {

using at::Tensor;
using c10::ArrayRef;
using tfb::i64;

// ---------------------------------------------------------------------------------------------
// Settings (tfbench::_set): the launch shape, and poisoned outputs for the tests.
// Defaults measured on an H100 (kernels/NOTES.md); the tuning sweep (bench/tune.py) changes them.
// ---------------------------------------------------------------------------------------------
std::atomic<int64_t> g_block{128};        // threads per block: small blocks spread a small layer over more SMs
std::atomic<int64_t> g_unroll{4};         // steps loaded ahead in the kernels that keep h: 4 x 16 B in flight
std::atomic<int64_t> g_vec_bytes{16};     // widest access per thread and step: one 16-byte load
std::atomic<int64_t> g_min_threads{1024}; // per SM: use wide accesses only while this many threads remain
std::atomic<int64_t> g_force_vec{0};      // > 0: this many neurons per thread (the tuning sweep)
// Bytes of z up to which the norm op's backward keeps gy (a z-sized buffer) so that dL/dz is an elementwise
// epilogue instead of a second pass recomputing the membrane (for Spiking-ResNet18 on an H200 neither
// faster nor slower: kernels/NOTES.md, "Versions 10-13"). A layer with a residual keeps gy whatever its
// size: it is the residual's gradient.
std::atomic<int64_t> g_epilogue_bytes{16 << 20};
std::atomic<int64_t> g_poison{0};         // 1: every output starts as NaN (an unwritten element fails a test)

int64_t set_option(c10::string_view key, int64_t value) {
  std::atomic<int64_t>* slot = nullptr;
  if (key == "block") slot = &g_block;
  else if (key == "unroll") slot = &g_unroll;
  else if (key == "vec_bytes") slot = &g_vec_bytes;
  else if (key == "min_threads_per_sm") slot = &g_min_threads;
  else if (key == "vec") slot = &g_force_vec;
  else if (key == "epilogue_bytes") slot = &g_epilogue_bytes;
  else if (key == "poison") slot = &g_poison;
  TORCH_CHECK(slot != nullptr, "tfbench::_set: unknown setting '", std::string(key.data(), key.size()),
              "'; known: block, unroll, vec_bytes, min_threads_per_sm, vec, epilogue_bytes, poison");
  if (value < 0) return slot->load();  // a negative value only reads it
  if (key == "block") TORCH_CHECK(value >= 32 && value <= 1024 && (value & (value - 1)) == 0,
                                  "block must be a power of two in 32..1024, got ", value);
  if (key == "unroll") TORCH_CHECK(value == 1 || value == 2 || value == 4 || value == 8 || value == 16,
                                   "unroll must be 1, 2, 4, 8 or 16, got ", value);
  if (key == "vec") TORCH_CHECK(value == 0 || value == 1 || value == 2 || value == 4 || value == 8,
                                "vec must be 0 (choose per call), 1, 2, 4 or 8, got ", value);
  return slot->exchange(value);
}

Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (g_poison.load(std::memory_order_relaxed))  // NaN, or all ones for the bits' bytes
    return at::full(sizes, at::isFloatingType(options.dtype().toScalarType()) ? std::numeric_limits<double>::quiet_NaN()
                                                                             : 255.0, options);
  return at::empty(sizes, options);
}

// ---------------------------------------------------------------------------------------------
// What one call is: shapes, dtypes, the switches every neuron shares, the learned tensor's layout.
// ---------------------------------------------------------------------------------------------
enum Storage { kFloat = 0, kBFloat16 = 1, kHalf = 2, kDouble = 3 };

Storage storage_of(const Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return kFloat;
    case at::kBFloat16: return kBFloat16;
    case at::kHalf: return kHalf;
    case at::kDouble: return kDouble;
    default: TORCH_CHECK(false, "tfbench: x must be float32, bfloat16, float16 or float64, got ", t.scalar_type());
  }
}

struct Switches {
  bool decay_input, hard_reset, detach_reset;
  int surrogate;     // 0 sigmoid, 1 atan, 2 rect
  int norm = 0;      // BatchNorm folded in (the norm ops): 1; the launcher picks the kernel's 1 or 2
  int residual = 0;  // 0 none, 1 dense, 2 bits, 3 dense with its own BatchNorm (neuron.cuh's Cfg)
};

Switches switches_of(at::IntArrayRef s) {
  TORCH_CHECK(s.size() == 4, "tfbench: switches must be [decay_input, hard_reset, detach_reset, surrogate]");
  TORCH_CHECK(s[3] >= 0 && s[3] <= 2, "tfbench: surrogate code must be 0, 1 or 2, got ", s[3]);
  return {s[0] != 0, s[1] != 0, s[2] != 0, (int)s[3], 0, 0};
}

// The learned tensor (PLIF's w): one value for the layer ([] or [1]) or one per channel of a
// [T, B, C, ...] input ([C]); converted to the arithmetic dtype. `inner` = prod(x.shape[3:]).
struct Learned {
  Tensor values;           // undefined when the neuron learns nothing
  i64 channels = 1, inner = 1;
};

Learned learned_of(at::TensorList learned, const Tensor& x, at::ScalarType acc, i64 n, bool learns, const char* name) {
  Learned out;
  out.inner = n > 0 ? n : 1;
  TORCH_CHECK(learned.size() == (learns ? 1u : 0u), "tfbench: neuron ", name, " takes ", learns ? 1 : 0,
              " learned tensor(s), got ", learned.size());
  if (learned.empty()) return out;
  const Tensor& w = learned[0];
  TORCH_CHECK(w.device() == x.device(), "tfbench: the learned parameter must be on x's device (", x.device(),
              "), got ", w.device());
  out.values = w.to(acc).contiguous().view({-1});
  out.channels = out.values.numel();
  if (out.channels > 1) {
    TORCH_CHECK(x.dim() >= 3 && x.size(2) == out.channels, "tfbench: a per-channel parameter of ", out.channels,
                " values needs x of shape [T, B, C, ...] with C = ", out.channels, ", got ", x.sizes());
    i64 inner = 1;
    for (int64_t d = 3; d < x.dim(); ++d) inner *= x.size(d);
    out.inner = inner;
  } else {
    TORCH_CHECK(out.channels == 1, "tfbench: the learned parameter must not be empty");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The CUDA side: driver entry points, kernel handles per configuration, the launch shape.
// ---------------------------------------------------------------------------------------------
void* driver_symbol(const char* name) {
  static void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  TORCH_CHECK(lib != nullptr, "tfbench: libcuda.so.1 (the NVIDIA driver) could not be loaded");
  void* sym = dlsym(lib, name);
  TORCH_CHECK(sym != nullptr, "tfbench: ", name, " not found in libcuda.so.1");
  return sym;
}

using LaunchFn = int (*)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*,
                         void**, void**);

// A thread PyTorch has not run CUDA work on (the autograd engine's, say) may have no current
// context: make the device's primary context, the one PyTorch uses, current, then retry.
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
  TORCH_CHECK(code == 0, "tfbench: making the CUDA context current failed with CUDA error ", code);
}

int sm_count(int device) {
  static std::mutex lock;
  static std::unordered_map<int, int> counts;
  std::lock_guard<std::mutex> guard(lock);
  auto it = counts.find(device);
  if (it != counts.end()) return it->second;
  using GetAttribute = int (*)(int*, int, int);
  static auto attribute = reinterpret_cast<GetAttribute>(driver_symbol("cuDeviceGetAttribute"));
  int count = 0;
  int code = attribute(&count, 16 /* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT */, device);
  TORCH_CHECK(code == 0, "tfbench: reading the GPU's multiprocessor count failed with CUDA error ", code);
  counts[device] = count;
  return count;
}

enum Kernel { kForward = 0, kBackward = 1, kForwardCkpt = 2, kBackwardRecompute = 3, kStats = 4, kPack = 5,
              kUnpack = 6, kChannelForward = 7, kChannelBackward = 8, kEpilogue = 9 };
constexpr int kKernels = 10;
const char* const kKernelNames =
    "tfb_forward tfb_backward tfb_forward_ckpt tfb_backward_recompute tfb_stats tfb_pack tfb_unpack "
    "tfb_channel_forward tfb_channel_backward tfb_norm_epilogue";
// Workers per channel in the per-channel kernels (a block each): a power of two from 32 to 1,024, about
// one per 16 of the channel's K neurons, so that a large layer's few channels (the stem's 64) do not each
// wait on one block's long strided loops, nor a small layer's many channels on an idle tree.
// The most blocks in a grid's y dimension: the norm op's epilogue has the step there (norm.py's
// FOLDED_RESIDUAL_BN_STEPS is this value).
constexpr i64 kGridY = 65535;

int64_t channel_workers(i64 K) {
  int64_t w = 32;
  while (w < 1024 && w * 16 < K) w *= 2;
  return w;
}

struct KernelSet { void* fn[kKernels]; };

// Handles of one configuration's four kernels, compiled and loaded by Python on first use. The
// cache key packs the configuration into one integer, so a hit costs no string work.
const KernelSet& kernels(int neuron_index, const char* neuron, const Switches& sw, Storage storage, int vec,
                         int unroll, int device) {
  static std::mutex lock;
  static std::unordered_map<uint64_t, KernelSet> cache;
  const uint64_t key = (uint64_t)neuron_index | (uint64_t)storage << 8 | (uint64_t)sw.decay_input << 10 |
                       (uint64_t)sw.hard_reset << 11 | (uint64_t)sw.detach_reset << 12 |
                       (uint64_t)sw.surrogate << 13 | (uint64_t)vec << 16 | (uint64_t)unroll << 24 |
                       (uint64_t)device << 32 | (uint64_t)sw.norm << 56 | (uint64_t)sw.residual << 58;
  {
    std::lock_guard<std::mutex> guard(lock);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  std::string defines = std::string("TFB_NEURON=") + neuron + " TFB_STORAGE=" + std::to_string((int)storage) +
                        " TFB_DECAY_INPUT=" + std::to_string((int)sw.decay_input) +
                        " TFB_HARD_RESET=" + std::to_string((int)sw.hard_reset) +
                        " TFB_DETACH_RESET=" + std::to_string((int)sw.detach_reset) +
                        " TFB_SURROGATE=" + std::to_string(sw.surrogate) + " TFB_VEC=" + std::to_string(vec) +
                        " TFB_UNROLL=" + std::to_string(unroll) + " TFB_NORM=" + std::to_string(sw.norm) +
                        " TFB_RESIDUAL=" + std::to_string(sw.residual);
  // Not under the lock: Python takes the GIL, and a thread holding the GIL may be waiting here.
  static auto provider = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("tfbench::_kernels", "")
                             .typed<std::vector<int64_t>(c10::string_view, c10::string_view, c10::string_view,
                                                         int64_t)>();
  std::vector<int64_t> handles = provider.call("neurons.cu", defines, kKernelNames, device);
  TORCH_CHECK(handles.size() == kKernels, "tfbench::_kernels returned ", handles.size(), " handles, expected ",
              kKernels);
  KernelSet set;
  for (int i = 0; i < kKernels; ++i) set.fn[i] = reinterpret_cast<void*>(handles[i]);
  std::lock_guard<std::mutex> guard(lock);
  return cache.emplace(key, set).first->second;  // a set another thread stored first is kept
}

bool aligned(const Tensor& t, int64_t bytes) {
  return !t.defined() || reinterpret_cast<uintptr_t>(t.data_ptr()) % bytes == 0;
}

// Neurons per thread: the widest access (at most max_vec neurons) that divides n, still leaves enough
// threads to fill the GPU, and fits the alignment of every [T, n] tensor accessed that many at a time.
int choose_vec(i64 n, int64_t itemsize, int device, std::initializer_list<const Tensor*> vectors, int max_vec = 8) {
  if (g_force_vec.load() > 0) {
    int vec = (int)std::min<int64_t>(g_force_vec.load(), max_vec);
    bool ok = n % vec == 0;
    for (const Tensor* t : vectors) ok = ok && aligned(*t, vec * itemsize);
    return ok ? vec : 1;
  }
  const i64 enough = (i64)sm_count(device) * g_min_threads.load();
  for (int vec = max_vec; vec > 1; vec /= 2) {
    if (vec * itemsize > g_vec_bytes.load() || n % vec || n / vec < enough) continue;
    bool ok = true;
    for (const Tensor* t : vectors) ok = ok && aligned(*t, vec * itemsize);
    if (ok) return vec;
  }
  return 1;
}

// Neurons per partial sum of a learned parameter's gradient: a power of two that no channel
// boundary crosses (it divides `inner`), at most one block's neurons (reduced in the block).
int64_t choose_group(const Learned& l, int64_t neurons_per_block) {
  if (l.channels == 1) return neurons_per_block;
  int64_t group = 1;
  while (group < neurons_per_block && l.inner % (group * 2) == 0) group *= 2;
  return group;
}

// One kernel of one by-value argument struct, grid_x * grid_y blocks of `block` threads, on PyTorch's current stream.
void launch_kernel(void* fn, const void* arg, unsigned grid_x, unsigned grid_y, unsigned block,
                   const at::Device& device) {
  static auto launch = reinterpret_cast<LaunchFn>(driver_symbol("cuLaunchKernel"));
  void* stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(device).native_handle();
  void* params[1] = {const_cast<void*>(arg)};
  int code = launch(fn, grid_x, grid_y, 1, block, 1, 1, 0, stream, params, nullptr);
  if (code != 0) {
    make_primary_context_current(device.index());
    code = launch(fn, grid_x, grid_y, 1, block, 1, 1, 0, stream, params, nullptr);
  }
  TORCH_CHECK(code == 0, "tfbench: launching a kernel failed with CUDA error ", code);
}

template <typename A, class P>
void launch_cuda(void* fn, const tfb::Args<A, P>& args, int vec, int64_t block, const at::Device& device,
                 i64 blocks = 0) {  // blocks > 0: that many blocks, else enough for args.n / vec threads
  const i64 threads = (args.n + vec - 1) / vec;
  const unsigned grid = (unsigned)(blocks > 0 ? blocks : (threads + block - 1) / block);
  launch_kernel(fn, &args, grid, 1, (unsigned)block, device);
}

// ---------------------------------------------------------------------------------------------
// The CPU side: the same per-thread loops, one "thread" of kHostVec neurons after another.
// ---------------------------------------------------------------------------------------------
constexpr int kHostVec = 8;  // neurons per step of a host loop: 32 B of fp32, half a cache line

template <int V> struct HostCfg {
  bool decay_input, hard_reset, detach_reset;
  int surrogate, norm, residual;
  static constexpr int vec = V, unroll = 1, chan_vec = V;
};

template <class N, typename S, typename A, int V>
void host_kernel(Kernel which, const Switches& sw, i64 i0, const tfb::Args<A, typename N::template Params<A>>& a) {
  const HostCfg<V> c{sw.decay_input, sw.hard_reset, sw.detach_reset, sw.surrogate, sw.norm, sw.residual};
  A g[V];
  switch (which) {
    case kStats: tfb::stats_thread<HostCfg<V>, S, A>(c, i0, a); return;
    case kEpilogue:   // i0: the flat t * n + i
      tfb::epilogue_thread<HostCfg<V>, S, A>(c, i0 % a.n, (int)(i0 / a.n), a);
      return;
    case kPack: case kUnpack: case kChannelForward: case kChannelBackward: break;  // their own loops: run_host
    case kForward: tfb::forward_thread<N, HostCfg<V>, S, A>(c, i0, a); return;
    case kForwardCkpt: tfb::forward_ckpt_thread<N, HostCfg<V>, S, A>(c, i0, a); return;
    case kBackward: tfb::backward_thread<N, HostCfg<V>, S, A>(c, i0, a, g); break;
    case kBackwardRecompute: tfb::backward_recompute_thread<N, HostCfg<V>, S, A>(c, i0, a, g); break;
  }
  if (N::learns && a.gparam)
    for (int k = 0; k < V; ++k) a.gparam[(i0 + k) / a.group] += g[k];  // in neuron order: deterministic
}

template <class N, typename S, typename A>
void run_host(Kernel which, const Switches& sw, const tfb::Args<A, typename N::template Params<A>>& a) {
  if (which == kChannelForward || which == kChannelBackward) {  // one worker per channel, in order
    const i64 K = a.n / a.channels;
    for (i64 c = 0; c < a.channels; ++c) {
      A s1 = A(0), s2 = A(0);
      if (which == kChannelBackward) {
        for (i64 k = 0; k < K; ++k) {
          const i64 i = tfb::channel_neuron(a, c, k);
          s1 += a.sums[i];
          s2 += a.sums[a.n + i];
        }
        tfb::channel_finish_backward(a, c, s1, s2);
        continue;
      }
      if (a.batch_stats) {
        for (i64 k = 0; k < K; ++k) s1 += a.sums[tfb::channel_neuron(a, c, k)];
        s1 /= (A)K;
        for (i64 k = 0; k < K; ++k) {
          const i64 i = tfb::channel_neuron(a, c, k);
          const A d = a.sums[i] - s1;
          s2 += a.sums[a.n + i] + (A)a.steps * d * d;
        }
        s2 /= (A)(K * a.steps);
      }
      tfb::channel_finish_forward(a, c, s1, s2);
    }
    return;
  }
  if (which == kPack || which == kUnpack) {
    for (i64 byte = 0; byte * 8 < a.n; ++byte) {
      if (which == kPack) tfb::pack_byte<S>(a.x, static_cast<unsigned char*>(a.gres), a.n, byte);
      else tfb::unpack_byte<S>(static_cast<const unsigned char*>(a.res), a.gx, a.n, byte);
    }
    return;
  }
  const i64 body = a.n - a.n % kHostVec;
  for (int t = 0; t < (which == kEpilogue ? a.steps : 1); ++t) {   // the epilogue: every step's elements
    const i64 e = which == kEpilogue ? (i64)t * a.n : 0;
    for (i64 i0 = 0; i0 < body; i0 += kHostVec) host_kernel<N, S, A, kHostVec>(which, sw, e + i0, a);
    for (i64 i0 = body; i0 < a.n; ++i0) host_kernel<N, S, A, 1>(which, sw, e + i0, a);
  }
}

template <class N, typename A>
void run_host_storage(Kernel which, const Switches& sw, Storage storage,
                      const tfb::Args<A, typename N::template Params<A>>& a) {
  switch (storage) {
    case kFloat: run_host<N, float, A>(which, sw, a); return;
    case kBFloat16: run_host<N, tfb::bf16, A>(which, sw, a); return;
    case kHalf: run_host<N, tfb::f16, A>(which, sw, a); return;
    case kDouble: break;
  }
  TORCH_CHECK(false, "tfbench: unreachable storage code");
}

// ---------------------------------------------------------------------------------------------
// One call of a kernel, on either device.
// ---------------------------------------------------------------------------------------------
// The neuron's position in TFB_NEURONS (part of the kernel cache key).
template <class N> constexpr int neuron_index() {
  int i = 0, found = -1;
#define TFB_INDEX(S, NAME) if (std::is_same<N, tfb::S>::value) found = i; ++i;
  TFB_NEURONS(TFB_INDEX)
#undef TFB_INDEX
  return found;
}

template <class N, typename A>
void run(const char* name, Kernel which, const Switches& sw, Storage storage, tfb::Args<A, typename N::template Params<A>>& a,
         const Tensor& like, const Learned& learned, std::initializer_list<const Tensor*> vectors,
         Tensor* partials) {
  const bool learns = N::learns && partials != nullptr;
  if (!like.is_cuda()) {
    if (learns) {
      a.group = (int)choose_group(learned, kHostVec);
      *partials = at::zeros({(a.n + a.group - 1) / a.group}, like.options().dtype(
                                 storage == kDouble ? at::kDouble : at::kFloat));
      a.gparam = partials->data_ptr<A>();
    }
    if constexpr (std::is_same<A, double>::value) {
      tfb::Args<A, typename N::template Params<A>>& ad = a;
      run_host<N, double, double>(which, sw, ad);
    } else {
      run_host_storage<N, A>(which, sw, storage, a);
    }
    return;
  }
  const int device = like.device().index();
  const bool bytes = which == kPack || which == kUnpack;  // one thread per byte: 8 elements
  // the recomputing backward of a layer whose residual has its own BatchNorm also holds that residual and
  // its sums: at 8 neurons a thread it spills (nvcc -Xptxas -v: 116-644 B in bf16), at 4 it does not
  const int max_vec = which == kBackwardRecompute && sw.residual == 3 ? 4 : 8;
  const int vec = bytes ? 1 : choose_vec(a.n, like.element_size(), device, vectors, max_vec);
  const int64_t block = g_block.load();
  Switches kernel_sw = sw;  // BatchNorm folded in: one channel per thread when its neurons share one
  if (sw.norm) kernel_sw.norm = a.inner % vec == 0 ? 1 : 2;
  if (learns) {
    a.group = (int)choose_group(learned, block * vec);
    *partials = new_output({(a.n + a.group - 1) / a.group}, like.options().dtype(
                               storage == kDouble ? at::kDouble : at::kFloat));
    a.gparam = partials->data_ptr<A>();
  }
  const int unroll = (int)g_unroll.load();
  const KernelSet& set = kernels(neuron_index<N>(), name, kernel_sw, storage, vec, unroll, device);
  if (which == kChannelForward || which == kChannelBackward) {  // one block per channel
    launch_cuda(set.fn[which], a, 1, channel_workers(a.n / a.channels), like.device(), a.channels);
    return;
  }
  if (which == kEpilogue) {  // a thread per vec neurons, blockIdx.y the step
    TORCH_CHECK(a.steps <= kGridY, "tfbench: the norm op's epilogue takes at most 65,535 steps, got ", a.steps);
    launch_kernel(set.fn[which], &a, (unsigned)((a.n / vec + block - 1) / block), (unsigned)a.steps,
                  (unsigned)block, like.device());
    return;
  }
  launch_cuda(set.fn[which], a, bytes ? 8 : vec, block, like.device());
}

// The learned parameter's gradient from the kernel's partial sums: one small fixed-order
// reduction (ATen's), to the parameter's shape and dtype.
Tensor reduce_partials(const Tensor& partials, const Learned& learned, const Tensor& w, i64 n, int64_t group) {
  Tensor total;
  if (learned.channels == 1) {
    total = partials.sum();
  } else {
    const i64 batch = n / (learned.channels * learned.inner);
    total = partials.view({batch, learned.channels, learned.inner / group}).sum(at::IntArrayRef{0, 2});
  }
  return total.to(w.scalar_type()).view(w.sizes());
}

template <class N> struct Op {
  template <typename A> using Params = typename N::template Params<A>;

  template <typename A>
  static Params<A> params(ArrayRef<double> constants, const Learned& l) {
    const A* w = l.values.defined() ? l.values.template data_ptr<A>() : nullptr;
    return N::template make<A>(constants.data(), w, l.inner, l.channels);
  }

  template <typename A>
  static std::tuple<Tensor, Tensor, Tensor> forward(const char* name, const Tensor& x, const std::optional<Tensor>& v0_,
                                                    at::TensorList learned_, ArrayRef<double> constants,
                                                    const Switches& sw, bool save_input, bool want_v_last) {
    const Storage storage = storage_of(x);
    const auto acc = std::is_same<A, double>::value ? at::kDouble : at::kFloat;
    const i64 steps = x.size(0), n = steps ? x.numel() / steps : 0;
    const Learned learned = learned_of(learned_, x, acc, n, N::learns, name);
    Tensor v0 = v0_.has_value() && v0_->defined() ? v0_->to(acc).contiguous() : Tensor();
    Tensor s = new_output(x.sizes(), x.options());
    Tensor v_last = new_output(want_v_last ? x.sizes().slice(1) : at::IntArrayRef{0}, x.options().dtype(acc));
    Tensor kept;
    if (save_input) {
      std::vector<int64_t> shape = x.sizes().vec();
      shape[0] = steps > 0 ? (steps - 1) / TFB_CKPT : 0;
      kept = new_output(shape, x.options().dtype(acc));
    } else {
      kept = new_output(x.sizes(), x.options());
    }
    if (n == 0) return {s, kept, v_last};
    tfb::Args<A, Params<A>> a{};
    a.x = x.data_ptr();
    a.s = s.data_ptr();
    if (save_input) a.ckpt = kept.data_ptr<A>();
    else a.h = kept.data_ptr();
    a.v0 = v0.defined() ? v0.data_ptr<A>() : nullptr;
    a.v_last = want_v_last ? v_last.data_ptr<A>() : nullptr;
    a.n = n;
    a.steps = (int)steps;
    a.p = params<A>(constants, learned);
    if (save_input) run<N, A>(name, kForwardCkpt, sw, storage, a, x, learned, {&x, &s}, nullptr);
    else run<N, A>(name, kForward, sw, storage, a, x, learned, {&x, &s, &kept}, nullptr);
    return {s, kept, v_last};
  }

  template <typename A>
  static std::tuple<Tensor, Tensor, std::vector<Tensor>> backward(
      const char* name, const std::optional<Tensor>& gs_, const std::optional<Tensor>& gv_last_, const Tensor& kept,
      const std::optional<Tensor>& x_, const std::optional<Tensor>& v0_, at::TensorList learned_,
      ArrayRef<double> constants, const Switches& sw, bool save_input, bool want_gv0) {
    TORCH_CHECK(!save_input || (x_.has_value() && x_->defined()), "tfbench: save_input=True needs x in backward");
    const Tensor like = save_input ? x_->contiguous() : kept.contiguous();  // [T, *] in the storage dtype
    const Storage storage = storage_of(like);
    const auto acc = std::is_same<A, double>::value ? at::kDouble : at::kFloat;
    const i64 steps = like.size(0), n = steps ? like.numel() / steps : 0;
    const Learned learned = learned_of(learned_, like, acc, n, N::learns, name);
    Tensor gs = gs_.has_value() && gs_->defined() ? gs_->to(like.scalar_type()).contiguous() : at::zeros_like(like);
    Tensor gv_last = gv_last_.has_value() && gv_last_->defined() && gv_last_->numel() > 0
                         ? gv_last_->to(acc).contiguous() : Tensor();
    Tensor v0 = v0_.has_value() && v0_->defined() ? v0_->to(acc).contiguous() : Tensor();
    Tensor ckpt = save_input ? kept.to(acc).contiguous() : Tensor();
    Tensor gx = new_output(like.sizes(), like.options());
    Tensor gv0 = new_output(want_gv0 ? like.sizes().slice(1) : at::IntArrayRef{0}, like.options().dtype(acc));
    std::vector<Tensor> glearned;
    if (n == 0) {
      for (const Tensor& w : learned_) glearned.push_back(at::zeros_like(w));
      return {gx, gv0, glearned};
    }
    tfb::Args<A, Params<A>> a{};
    a.gs = gs.data_ptr();
    if (save_input) {
      a.x = like.data_ptr();
      a.ckpt = ckpt.data_ptr<A>();
    } else {
      a.h = like.data_ptr();
    }
    a.v0 = v0.defined() ? v0.data_ptr<A>() : nullptr;
    a.gv_last = gv_last.defined() ? gv_last.data_ptr<A>() : nullptr;
    a.gx = gx.data_ptr();
    a.gv0 = want_gv0 ? gv0.data_ptr<A>() : nullptr;
    a.n = n;
    a.steps = (int)steps;
    a.p = params<A>(constants, learned);
    Tensor partials;
    Tensor* want_partials = learned.values.defined() ? &partials : nullptr;
    run<N, A>(name, save_input ? kBackwardRecompute : kBackward, sw, storage, a, like, learned, {&gs, &like, &gx},
              want_partials);
    if (want_partials) glearned.push_back(reduce_partials(partials, learned, learned_[0], n, a.group));
    return {gx, gv0, glearned};
  }
};

// ---------------------------------------------------------------------------------------------
// BatchNorm folded into the neuron (tfbench/ops/norm.py drives these): z is [T, M, C, inner], a
// batch-norm layer's input seen time-major (channel dim 2; inner = 1 for channels-last). The
// residual is undefined, a tensor of z's shape and dtype, z's spikes as bits (uint8, element e is
// bit e % 8 of byte e / 8), or a tensor of z's shape and dtype normalised by a BatchNorm of its own
// first (a ResNet's downsample: its convolution's output). Per-channel tensors are float32 (float64
// for float64 z).
// ---------------------------------------------------------------------------------------------
struct Fold {
  i64 steps = 0, n = 0, channels = 1, inner = 1;
  int residual = 0;  // 0 none, 1 dense, 2 bits, 3 dense with its own BatchNorm
};

Fold fold_of(const Tensor& z, const std::optional<Tensor>& residual, bool residual_norm) {
  TORCH_CHECK(z.dim() == 4 && z.size(0) >= 1,
              "tfbench: the norm ops take z of shape [T, M, C, inner] with T >= 1, got ", z.sizes());
  Fold f;
  f.steps = z.size(0);
  f.n = z.numel() / f.steps;
  f.channels = z.size(2);
  f.inner = z.size(3);
  const bool given = residual.has_value() && residual->defined();
  TORCH_CHECK(given || !residual_norm, "tfbench: a residual BatchNorm needs the residual");
  if (given) {
    const Tensor& r = *residual;
    TORCH_CHECK(r.device() == z.device(), "tfbench: the residual must be on z's device");
    TORCH_CHECK(!residual_norm || r.scalar_type() != at::kByte, "tfbench: a residual BatchNorm normalises a dense "
                "residual, not bits");
    if (r.scalar_type() == at::kByte) {
      TORCH_CHECK(r.numel() == (z.numel() + 7) / 8, "tfbench: a residual of bits needs ", (z.numel() + 7) / 8,
                  " bytes for z of shape ", z.sizes(), ", got ", r.numel());
      f.residual = 2;
    } else {
      TORCH_CHECK(r.sizes() == z.sizes() && r.scalar_type() == z.scalar_type(),
                  "tfbench: a dense residual must have z's shape ", z.sizes(), " and dtype ", z.scalar_type(),
                  ", got ", r.sizes(), " ", r.scalar_type());
      f.residual = residual_norm ? 3 : 1;
    }
    // (the normalised residual's epilogue has the step in blockIdx.y, as the main one)
    TORCH_CHECK(!residual_norm || f.steps <= kGridY, "tfbench: a residual BatchNorm is folded in for at most "
                "65,535 steps, got ", f.steps);
  }
  return f;
}

Tensor per_channel(const Tensor& t, at::ScalarType acc, i64 channels, const char* what) {
  TORCH_CHECK(t.numel() == channels, "tfbench: ", what, " must have one value per channel (", channels, "), got ",
              t.numel());
  return t.to(acc).contiguous().view({-1});
}

// One BatchNorm as the forward takes it: its affine parameters ([C] in the arithmetic dtype, or
// undefined), its running statistics and step count (its buffers, updated in place) and how it is used.
struct BatchNormIn {
  Tensor weight, bias, running_mean, running_var, batches;
  bool batch_stats = true;
  double momentum = 0.1, eps = 1e-5;
};

BatchNormIn batch_norm_in(const Tensor& z, const Fold& f, at::ScalarType acc, const char* which,
                          const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
                          const std::optional<Tensor>& running_mean, const std::optional<Tensor>& running_var,
                          const std::optional<Tensor>& batches, bool batch_stats, double momentum, double eps) {
  auto defined = [](const std::optional<Tensor>& t) { return t.has_value() && t->defined() ? *t : Tensor(); };
  BatchNormIn bn{Tensor(), Tensor(), defined(running_mean), defined(running_var), defined(batches), batch_stats,
                 momentum, eps};
  const bool running = bn.running_mean.defined() && bn.running_var.defined();
  TORCH_CHECK(batch_stats || running, "tfbench: ", which, "BatchNorm without batch statistics needs its running "
              "statistics");
  TORCH_CHECK(!batch_stats || f.steps * (f.n / std::max<i64>(f.channels, 1)) > 1,
              "tfbench: expected more than 1 value per channel when training, got z of shape ", z.sizes());
  for (const std::optional<Tensor>* t : {&weight, &bias, &running_mean, &running_var})
    TORCH_CHECK(!t->has_value() || !(*t)->defined() || (*t)->device() == z.device(), "tfbench: ", which,
                "BatchNorm's parameters and statistics must be on z's device (", z.device(), "), got ",
                (*t)->device());
  if (running) {
    TORCH_CHECK(bn.running_mean.scalar_type() == acc && bn.running_var.scalar_type() == acc &&
                bn.running_mean.is_contiguous() && bn.running_var.is_contiguous(),
                "tfbench: ", which, "BatchNorm's running statistics must be contiguous ", acc, " (its buffers), got ",
                bn.running_mean.scalar_type(), " and ", bn.running_var.scalar_type());
  } else {
    bn.running_mean = bn.running_var = Tensor();
  }
  TORCH_CHECK(!(batch_stats && running) || momentum >= 0 || bn.batches.defined(),
              "tfbench: the cumulative average (momentum None) needs num_batches_tracked");
  if (running)
    TORCH_CHECK(bn.running_mean.numel() == f.channels && bn.running_var.numel() == f.channels, "tfbench: ", which,
                "BatchNorm's running statistics must have one value per channel (", f.channels, "), got ",
                bn.running_mean.numel(), " and ", bn.running_var.numel());
  if (bn.batches.defined())
    TORCH_CHECK(bn.batches.scalar_type() == at::kLong && bn.batches.numel() == 1 && bn.batches.device() == z.device(),
                "tfbench: ", which, "BatchNorm's num_batches_tracked must be one int64 on z's device");
  if (defined(weight).defined()) bn.weight = per_channel(*weight, acc, f.channels, "weight");
  if (defined(bias).defined()) bn.bias = per_channel(*bias, acc, f.channels, "bias");
  return bn;
}

// One call's channel values, [4, C] in the arithmetic dtype per BatchNorm (z's, then the residual's
// when it has one: [8, C]): the rows below, which forward fills. Backward writes its epilogue's two
// rows per BatchNorm (ea, eb) into a tensor of its own.
enum Row { kMean = 0, kInvstd = 1, kScale = 2, kShift = 3, kRows = 4 };

void pack_into(const Tensor& s, Tensor& bits);  // the spikes s (contiguous) as bits, into bits (below)

// A membrane-shaped argument of the norm ops (v0, dL/dv_T): undefined, or z's neurons of one step ([M, C, inner]
// or any shape of as many elements, in z's order) in the arithmetic dtype, contiguous.
Tensor membrane_of(const std::optional<Tensor>& t, const Tensor& z, const Fold& f, at::ScalarType acc, const char* what) {
  if (!t.has_value() || !t->defined()) return Tensor();
  TORCH_CHECK(t->numel() == f.n && t->device() == z.device(), "tfbench: ", what, " must hold one value per neuron of "
              "a step (", f.n, " for z of shape ", z.sizes(), ") on z's device, got ", t->sizes(), " on ", t->device());
  return t->to(acc).contiguous();
}

template <class N> struct NormOp {
  template <typename A> using Params = typename N::template Params<A>;

  // The arguments every kernel of one call shares for the BatchNorm of x (z, or the residual's input)
  // whose [4, C] rows are `stats`.
  template <typename A>
  static tfb::Args<A, Params<A>> args(const Fold& f, const Tensor& x, const Tensor& residual, const Tensor& stats,
                                      const Learned& learned, ArrayRef<double> constants, bool batch_stats) {
    tfb::Args<A, Params<A>> a{};
    a.x = x.data_ptr();
    a.n = f.n;
    a.steps = (int)f.steps;
    a.inner = f.inner;
    a.channels = f.channels;
    A* st = stats.data_ptr<A>();
    a.stats = st;
    a.mean = st + kMean * f.channels;
    a.scale = st + kScale * f.channels;
    a.shift = st + kShift * f.channels;
    a.res = f.residual ? residual.data_ptr() : nullptr;
    if (f.residual == 3) {  // the residual's BatchNorm: the next four rows
      a.rmean = st + (kRows + kMean) * f.channels;
      a.rscale = st + (kRows + kScale) * f.channels;
      a.rshift = st + (kRows + kShift) * f.channels;
    }
    a.batch_stats = batch_stats;
    a.p = Op<N>::template params<A>(constants, learned);
    return a;
  }

  // One BatchNorm's rows (mean, invstd, scale, shift) of `rows` ([4, C]) for its input x: from x's
  // batch statistics (the statistics pass, then a block per channel, which also updates the running
  // statistics) or from its running ones.
  template <typename A>
  static void channel_rows(const char* name, const Switches& sw, Fold f, const Tensor& x, const Tensor& rows,
                           const BatchNormIn& bn, const Learned& learned, ArrayRef<double> constants) {
    f.residual = 0;  // these kernels read x alone
    const bool update = bn.batch_stats && bn.running_mean.defined();  // (num_batches_tracked counted by kStats)
    Tensor sums = bn.batch_stats ? at::empty({2, f.n}, rows.options()) : Tensor();
    tfb::Args<A, Params<A>> a = args<A>(f, x, Tensor(), rows, learned, constants, bn.batch_stats);
    a.weight = bn.weight.defined() ? bn.weight.data_ptr<A>() : nullptr;
    a.bias = bn.bias.defined() ? bn.bias.data_ptr<A>() : nullptr;
    a.running_mean = bn.running_mean.defined() ? bn.running_mean.data_ptr<A>() : nullptr;
    a.running_var = bn.running_var.defined() ? bn.running_var.data_ptr<A>() : nullptr;
    a.batches = update && bn.batches.defined() ? reinterpret_cast<i64*>(bn.batches.data_ptr<int64_t>()) : nullptr;
    a.momentum = bn.momentum;
    a.eps = bn.eps;
    if (bn.batch_stats) {
      a.sums = sums.data_ptr<A>();
      run<N, A>(name, kStats, sw, storage_of(x), a, x, learned, {&x}, nullptr);
    }
    run<N, A>(name, kChannelForward, sw, storage_of(x), a, x, learned, {}, nullptr);
  }

  template <typename A>
  static std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> forward(
      const char* name, const Tensor& z, const Fold& f, const std::optional<Tensor>& res_, const BatchNormIn& bn,
      const BatchNormIn* res_bn, at::TensorList learned_, ArrayRef<double> constants, Switches sw, bool want_bits,
      const std::optional<Tensor>& v0_, bool want_v_last) {
    const auto acc = std::is_same<A, double>::value ? at::kDouble : at::kFloat;
    const auto copt = z.options().dtype(acc);
    const Learned learned = learned_of(learned_, z, acc, f.n, N::learns, name);
    const Tensor v0 = membrane_of(v0_, z, f, acc, "v0");
    Tensor v_last = new_output(want_v_last ? z.sizes().slice(1) : at::IntArrayRef{0}, copt);
    const Tensor residual = f.residual ? res_->contiguous() : Tensor();
    sw.norm = 1;
    sw.residual = f.residual;
    const std::vector<int64_t> rows{res_bn ? 2 * kRows : kRows, f.channels};
    Tensor stats = f.n == 0 ? at::zeros(rows, copt) : new_output(rows, copt);   // every row written below
    Tensor s = new_output(z.sizes(), z.options());
    std::vector<int64_t> shape = z.sizes().vec();
    shape[0] = (f.steps - 1) / TFB_CKPT;
    Tensor ckpt = new_output(shape, copt);
    Tensor bits = new_output({want_bits ? (z.numel() + 7) / 8 : 0}, z.options().dtype(at::kByte));
    if (f.n == 0) return {s, ckpt, stats, bits, v_last};
    channel_rows<A>(name, sw, f, z, stats.narrow(0, 0, kRows), bn, learned, constants);
    if (res_bn) channel_rows<A>(name, sw, f, residual, stats.narrow(0, kRows, kRows), *res_bn, learned, constants);
    tfb::Args<A, Params<A>> a = args<A>(f, z, residual, stats, learned, constants, bn.batch_stats);
    a.s = s.data_ptr();
    a.ckpt = ckpt.data_ptr<A>();
    a.v0 = v0.defined() ? v0.data_ptr<A>() : nullptr;
    a.v_last = want_v_last ? v_last.data_ptr<A>() : nullptr;
    const Tensor* dense_res = f.residual == 1 || f.residual == 3 ? &residual : &s;
    // the spikes' bits from the same kernel, where a byte's elements are one step's (on the GPU), else packed
    a.s_bits = want_bits && (!z.is_cuda() || f.n % 8 == 0) ? bits.data_ptr<uint8_t>() : nullptr;
    if (a.s_bits && !z.is_cuda()) bits.zero_();  // the host sets bit by bit: a last byte's unused bits stay 0
    run<N, A>(name, kForwardCkpt, sw, storage_of(z), a, z, learned, {&z, &s, dense_res}, nullptr);
    if (want_bits && !a.s_bits) pack_into(s, bits);
    return {s, ckpt, stats, bits, v_last};
  }

  template <typename A>
  static std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> backward(
      const char* name, const std::optional<Tensor>& gs_, const Tensor& ckpt_, const Tensor& z,
      const std::optional<Tensor>& res_, const Tensor& stats_, at::TensorList learned_, ArrayRef<double> constants,
      Switches sw, bool batch_stats, bool want_gz, bool want_gres, bool want_gaffine,
      const std::optional<Tensor>& gz_out, bool res_batch, bool want_gres_affine, const std::optional<Tensor>& gv_last_,
      const std::optional<Tensor>& v0_, bool want_gv0) {
    const auto acc = std::is_same<A, double>::value ? at::kDouble : at::kFloat;
    const auto copt = z.options().dtype(acc);
    const i64 C = z.dim() == 4 ? z.size(2) : 0;
    TORCH_CHECK(stats_.dim() == 2 && (stats_.size(0) == kRows || stats_.size(0) == 2 * kRows) &&
                stats_.size(1) == C && stats_.scalar_type() == acc,
                "tfbench: the norm op's stats must be its forward's [4, C] or [8, C]");
    const bool res_norm = stats_.size(0) == 2 * kRows;  // the residual had its own BatchNorm
    const Fold f = fold_of(z, res_, res_norm);
    const Learned learned = learned_of(learned_, z, acc, f.n, N::learns, name);
    const Tensor residual = f.residual ? res_->contiguous() : Tensor();
    const Tensor stats = stats_.contiguous();
    Tensor gs = gs_.has_value() && gs_->defined() ? gs_->to(z.scalar_type()).contiguous() : at::zeros_like(z);
    const Tensor ckpt = ckpt_.to(acc).contiguous();
    const Tensor v0 = membrane_of(v0_, z, f, acc, "v0");
    const Tensor gv_last = membrane_of(gv_last_, z, f, acc, "gv_last");
    Tensor gv0 = new_output(want_gv0 ? z.sizes().slice(1) : at::IntArrayRef{0}, copt);
    // dL/dz into gz_out when given (z itself, say: each element is read before it is overwritten, by the
    // thread that owns it); the first output is then empty (no output aliases an input: torch.compile
    // functionalizes the op)
    const bool into = want_gz && gz_out.has_value() && gz_out->defined();
    if (into)
      TORCH_CHECK(gz_out->sizes() == z.sizes() && gz_out->scalar_type() == z.scalar_type() && gz_out->is_contiguous(),
                  "tfbench: gz_out must be a contiguous tensor of z's shape and dtype");
    want_gres_affine = want_gres_affine && res_norm;
    auto per_channel_out = [&](bool wanted) {
      return new_output(wanted ? at::IntArrayRef{f.channels} : at::IntArrayRef{0}, copt);
    };
    Tensor gz = into ? *gz_out : new_output(want_gz ? z.sizes() : at::IntArrayRef{0}, z.options());
    Tensor gres = new_output(want_gres ? z.sizes() : at::IntArrayRef{0}, z.options());
    Tensor gweight = per_channel_out(want_gaffine), gbias = per_channel_out(want_gaffine);
    Tensor gres_weight = per_channel_out(want_gres_affine), gres_bias = per_channel_out(want_gres_affine);
    Tensor glearned;  // the learned tensor's gradient (the norm ops take at most one: PLIF's w), else [0]
    sw.norm = 1;
    sw.residual = f.residual;
    if (f.n == 0) {
      glearned = learned_.empty() ? z.new_empty({0}, copt) : at::zeros_like(learned_[0]);
      for (Tensor* t : {&gweight, &gbias, &gres_weight, &gres_bias}) t->zero_();
      return {into ? gz.new_empty({0}) : gz, gres, gweight, gbias, glearned, gres_weight, gres_bias, gv0};
    }
    const bool want_sums = batch_stats || want_gaffine || learned.values.defined();
    // the residual's BatchNorm differentiated: from gy (dL/dr), which the pass that sums stores, and its own sums
    const bool res_backward = res_norm && (want_gres || want_gres_affine);
    Tensor sums = want_sums ? new_output({2, f.n}, copt) : Tensor();
    Tensor res_sums = res_backward && (res_batch || want_gres_affine) ? new_output({2, f.n}, copt) : Tensor();
    // the epilogue's rows, ea and eb (then the residual BatchNorm's), written by the per-channel kernel
    Tensor epi = new_output({res_backward ? 4 : 2, f.channels}, copt);
    A* const ea = epi.data_ptr<A>();
    Tensor partials;
    tfb::Args<A, Params<A>> a = args<A>(f, z, residual, stats, learned, constants, batch_stats);
    a.gs = gs.data_ptr();
    a.ckpt = ckpt.data_ptr<A>();
    a.gweight = want_gaffine ? gweight.data_ptr<A>() : nullptr;
    a.gbias = want_gaffine ? gbias.data_ptr<A>() : nullptr;
    a.v0 = v0.defined() ? v0.data_ptr<A>() : nullptr;
    a.gv_last = gv_last.defined() ? gv_last.data_ptr<A>() : nullptr;
    a.gv0 = want_gv0 ? gv0.data_ptr<A>() : nullptr;  // (written by every recomputing pass: the same values)
    const Tensor* dense_res = f.residual == 1 || f.residual == 3 ? &residual : &gs;
    // one recomputing pass: the sums now or not, dL/dz and dL/dres now or not, BatchNorm's epilogue in it or
    // not; gy_out: gy stored there (a.gres already its pointer), with the residual BatchNorm's sums
    auto pass = [&](bool sums_now, bool outputs_now, bool epilogue, const Tensor* gy_out) {
      a.ea = epilogue ? ea : nullptr;
      a.eb = epilogue ? ea + f.channels : nullptr;
      a.gx = outputs_now && want_gz ? gz.data_ptr() : nullptr;
      if (!gy_out) a.gres = outputs_now && want_gres ? gres.data_ptr() : nullptr;
      a.sums = sums_now ? sums.data_ptr<A>() : nullptr;
      a.res_sums = gy_out && res_sums.defined() ? res_sums.data_ptr<A>() : nullptr;
      a.gparam = nullptr;  // set by run() only when this pass reduces the learned parameter's gradient
      Tensor* want_partials = sums_now && learned.values.defined() ? &partials : nullptr;
      run<N, A>(name, kBackwardRecompute, sw, storage_of(z), a, z, learned,
                {&gs, &z, dense_res, want_gz ? &gz : &gs, gy_out ? gy_out : want_gres ? &gres : &gs}, want_partials);
      if (want_partials) glearned = reduce_partials(partials, learned, learned_[0], f.n, a.group);
      if (sums_now) {
        a.ea = ea;
        a.eb = ea + f.channels;
        run<N, A>(name, kChannelBackward, sw, storage_of(z), a, z, learned, {}, nullptr);
      }
    };
    // gy, stored by the pass that sums: dL/dr itself for a residual without a BatchNorm of its own
    Tensor gy;
    // (the epilogue's grid takes at most 65,535 steps: longer runs take the recomputing pass)
    if (batch_stats && f.steps <= kGridY &&
        ((want_gz && (want_gres || z.numel() * z.element_size() <= g_epilogue_bytes.load())) || res_backward)) {
      // dL/dz needs the batch's two sums: the pass that makes them (and ea, eb) stores gy (as the residual's
      // gradient, or in a buffer of its own), then dL/dz is an elementwise epilogue over [T, n]
      gy = want_gres && !res_norm ? gres : new_output(z.sizes(), z.options());
      a.gres = gy.data_ptr();
      pass(true, false, false, &gy);
      if (want_gz) {
        a.ea = ea;
        a.eb = ea + f.channels;
        a.gs = gy.data_ptr();
        a.gx = gz.data_ptr();
        run<N, A>(name, kEpilogue, sw, storage_of(z), a, z, learned, {&gy, &z, &gz}, nullptr);
      }
    } else if (batch_stats) {  // the same sums, then a second recomputing pass writing dL/dz (z large: no gy kept)
      pass(true, false, false, nullptr);
      if (want_gz || want_gres) pass(false, true, true, nullptr);
    } else if (res_backward) {  // given statistics: dL/dz = gy * scale, gy kept for the residual's BatchNorm
      gy = new_output(z.sizes(), z.options());
      a.gres = gy.data_ptr();
      pass(want_sums, true, false, &gy);
    } else {  // given statistics, the sums alongside when wanted
      pass(want_sums, true, false, nullptr);
    }
    if (res_backward) {  // the residual's BatchNorm: its per-channel sums, then dL/d(its input) elementwise from gy
      Fold fr = f;
      fr.residual = 0;
      tfb::Args<A, Params<A>> ar = args<A>(fr, residual, Tensor(), stats.narrow(0, kRows, kRows), learned, constants,
                                           res_batch);
      A* const rea = ea + 2 * f.channels;
      if (res_sums.defined()) {
        ar.ea = rea;
        ar.eb = rea + f.channels;
        ar.sums = res_sums.data_ptr<A>();
        ar.gweight = want_gres_affine ? gres_weight.data_ptr<A>() : nullptr;
        ar.gbias = want_gres_affine ? gres_bias.data_ptr<A>() : nullptr;
        run<N, A>(name, kChannelBackward, sw, storage_of(z), ar, z, learned, {}, nullptr);
      }
      if (want_gres) {
        ar.ea = res_batch ? rea : nullptr;
        ar.eb = res_batch ? rea + f.channels : nullptr;
        ar.gs = gy.data_ptr();
        ar.gx = gres.data_ptr();
        run<N, A>(name, kEpilogue, sw, storage_of(z), ar, z, learned, {&gy, &residual, &gres}, nullptr);
      }
    }
    if (!glearned.defined()) glearned = z.new_empty({0}, copt);
    return {into ? gz.new_empty({0}) : gz, gres, gweight, gbias, glearned, gres_weight, gres_bias, gv0};
  }
};

// Spikes as bits: s (any shape, its memory order) -> uint8 [ceil(numel / 8)]; and back to [numel] of `dtype`.
template <typename Fn> void with_storage(at::ScalarType t, Fn fn) {
  if (t == at::kDouble) fn(0.0); else fn(0.0f);
}

Tensor pack_spikes(const Tensor& s_) {
  c10::DeviceGuard guard(s_.device());
  const Tensor s = s_.contiguous();
  Tensor bits = new_output({(s.numel() + 7) / 8}, s.options().dtype(at::kByte));
  pack_into(s, bits);
  return bits;
}

void pack_into(const Tensor& s, Tensor& bits) {  // s contiguous, bits its [ceil(numel / 8)] bytes
  if (s.numel() == 0) return;
  const Switches sw{true, true, false, 0, 0, 0};
  with_storage(s.scalar_type(), [&](auto zero) {
    using A = decltype(zero);
    tfb::Args<A, tfb::LIF::Params<A>> a{};
    a.x = s.data_ptr();
    a.gres = bits.data_ptr();
    a.n = s.numel();
    run<tfb::LIF, A>("LIF", kPack, sw, storage_of(s), a, s, Learned(), {}, nullptr);
  });
}

Tensor unpack_spikes(const Tensor& bits_, int64_t numel, at::ScalarType dtype) {
  c10::DeviceGuard guard(bits_.device());
  const Tensor bits = bits_.contiguous();
  TORCH_CHECK(bits.scalar_type() == at::kByte && bits.numel() == (numel + 7) / 8, "tfbench: unpack_spikes needs ",
              (numel + 7) / 8, " uint8 bytes for ", numel, " elements, got ", bits.numel(), " of ", bits.scalar_type());
  Tensor s = new_output({numel}, bits.options().dtype(dtype));
  if (numel == 0) return s;
  const Switches sw{true, true, false, 0, 0, 0};
  with_storage(dtype, [&](auto zero) {
    using A = decltype(zero);
    tfb::Args<A, tfb::LIF::Params<A>> a{};
    a.res = bits.data_ptr();
    a.gx = s.data_ptr();
    a.n = numel;
    run<tfb::LIF, A>("LIF", kUnpack, sw, storage_of(s), a, s, Learned(), {}, nullptr);
  });
  return s;
}

// A max-pool of spikes read from their bits (spike_pool.cuh): shape = the input's [N, C, H, W], in NHWC
// memory order when channels_last; out_hw the output's [Ho, Wo] (norm.py computes it as F.max_pool2d does).
tfb::PoolArgs pool_args(const Tensor& bits, at::IntArrayRef shape, bool channels_last, at::IntArrayRef kernel,
                        at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                        at::IntArrayRef out_hw) {
  TORCH_CHECK(shape.size() == 4 && kernel.size() == 2 && stride.size() == 2 && padding.size() == 2 &&
                  dilation.size() == 2 && out_hw.size() == 2,
              "tfbench: a spike max-pool takes a [N, C, H, W] shape and pairs (kernel, stride, padding, dilation, "
              "output size)");
  const i64 numel = shape[0] * shape[1] * shape[2] * shape[3];
  TORCH_CHECK(bits.scalar_type() == at::kByte && bits.numel() == (numel + 7) / 8, "tfbench: a spike max-pool needs ",
              (numel + 7) / 8, " uint8 bytes of bits for ", shape, ", got ", bits.numel(), " of ", bits.scalar_type());
  for (int d = 0; d < 2; ++d)  // every window starts inside the input (it may not read past it)
    TORCH_CHECK(kernel[d] > 0 && stride[d] > 0 && dilation[d] > 0 && padding[d] >= 0 && out_hw[d] > 0 &&
                    (out_hw[d] - 1) * stride[d] - padding[d] < shape[2 + d] &&
                    padding[d] * 2 <= (kernel[d] - 1) * dilation[d] + 1 && kernel[0] * kernel[1] <= 255,
                "tfbench: spike max-pool arguments out of range: shape ", shape, ", kernel ", kernel, ", stride ",
                stride, ", padding ", padding, ", dilation ", dilation, ", output ", out_hw);
  tfb::PoolArgs a{};
  a.bits = bits.data_ptr<uint8_t>();
  a.C = (int)shape[1], a.H = (int)shape[2], a.W = (int)shape[3], a.Ho = (int)out_hw[0], a.Wo = (int)out_hw[1];
  a.kh = (int)kernel[0], a.kw = (int)kernel[1], a.sh = (int)stride[0], a.sw = (int)stride[1];
  a.ph = (int)padding[0], a.pw = (int)padding[1], a.dh = (int)dilation[0], a.dw = (int)dilation[1];
  a.channels_last = channels_last ? 1 : 0;
  a.images = shape[0];
  TORCH_CHECK(shape[1] * shape[2] * shape[3] <= 65535LL * 256, "tfbench: a spike max-pool takes images of at most ",
              65535LL * 256, " elements, got ", shape[1] * shape[2] * shape[3]);
  a.fC = tfb::fast_div(a.C), a.fH = tfb::fast_div(a.H), a.fW = tfb::fast_div(a.W);
  a.fHo = tfb::fast_div(a.Ho), a.fWo = tfb::fast_div(a.Wo);
  a.fsh = tfb::fast_div(a.sh), a.fsw = tfb::fast_div(a.sw), a.fdh = tfb::fast_div(a.dh), a.fdw = tfb::fast_div(a.dw);
  return a;
}

// [N, C, rows, cols] in NCHW, or NHWC memory permuted to that shape.
Tensor new_map(i64 n, i64 c, i64 rows, i64 cols, bool channels_last, const at::TensorOptions& options) {
  if (channels_last) return new_output({n, rows, cols, c}, options).permute({0, 3, 1, 2});
  return new_output({n, c, rows, cols}, options);
}

enum PoolPass { kPoolForward = 0, kPoolCodes = 1, kPoolBackward = 2, kPoolBackwardPlane = 3 };

// One pass over a.images images of a.per_image elements each (the elements the pass writes); the
// one-pass backward (kPoolBackwardPlane) a block per a.planes planes.
void run_pool(PoolPass pass, tfb::PoolArgs& a, Storage storage, const Tensor& like) {
  if (a.images == 0 || a.per_image == 0) return;
  if (!like.is_cuda()) {
    auto image = [&](auto zero, i64 n) {
      using S = decltype(zero);
      if (pass == kPoolBackwardPlane) {   // each block's work as one thread of one (n: the block)
        tfb::PlaneShared sh;
        tfb::pool_plane_load(a, n * a.planes, sh, 0, 1);
        tfb::pool_plane_prepare(a, n * a.planes, sh, 0, 1);
        tfb::pool_plane_gather<S>(a, n * a.planes, sh, 0, 1);
        return;
      }
      for (int r = 0; r < a.per_image; ++r) {
        if (pass == kPoolForward) tfb::pool_forward_element<S>(a, n, r);
        else if (pass == kPoolCodes) tfb::pool_code_element(a, n, r);
        else tfb::pool_backward_element<S>(a, n, r);
      }
    };
    const i64 units = pass == kPoolBackwardPlane ? (a.images * a.C + a.planes - 1) / a.planes : a.images;
    for (i64 n = 0; n < units; ++n) {
      switch (storage) {
        case kFloat: image(0.0f, n); break;
        case kBFloat16: image(tfb::bf16{}, n); break;
        case kHalf: image(tfb::f16{}, n); break;
        case kDouble: image(0.0, n); break;
      }
    }
    return;
  }
  static std::mutex lock;
  static std::unordered_map<int64_t, std::vector<int64_t>> cache;  // (storage, device) -> the four kernels
  const int device = like.device().index();
  const int64_t key = (int64_t)storage | (int64_t)device << 8;
  std::vector<int64_t> fns;
  {
    std::lock_guard<std::mutex> guard(lock);
    auto it = cache.find(key);
    if (it != cache.end()) fns = it->second;
  }
  if (fns.empty()) {  // not under the lock: Python takes the GIL (as in kernels())
    static auto provider = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("tfbench::_kernels", "")
                               .typed<std::vector<int64_t>(c10::string_view, c10::string_view, c10::string_view,
                                                           int64_t)>();
    fns = provider.call("spike_pool.cu", "TFB_STORAGE=" + std::to_string((int)storage),
                        "tfb_pool_forward tfb_pool_codes tfb_pool_backward tfb_pool_backward_plane", device);
    TORCH_CHECK(fns.size() == 4, "tfbench::_kernels returned ", fns.size(), " handles, expected 4");
    std::lock_guard<std::mutex> guard(lock);
    cache.emplace(key, fns);
  }
  if (pass == kPoolBackwardPlane) {  // a block per a.planes planes
    const i64 blocks = (a.images * a.C + a.planes - 1) / a.planes;
    TORCH_CHECK(blocks <= INT32_MAX, "tfbench: a spike max-pool's backward of ", a.images * a.C, " planes is too large");
    launch_kernel(reinterpret_cast<void*>(fns[pass]), &a, (unsigned)blocks, 1, 256, like.device());
    return;
  }
  const int block = 256;  // blockIdx.x the image, blockIdx.y a block of its elements
  launch_kernel(reinterpret_cast<void*>(fns[pass]), &a, (unsigned)a.images,
                (unsigned)((a.per_image + block - 1) / block), (unsigned)block, like.device());
}

Tensor spike_max_pool2d(const Tensor& bits_, at::IntArrayRef shape, bool channels_last, at::ScalarType dtype,
                        at::IntArrayRef kernel, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, at::IntArrayRef out_hw) {
  c10::DeviceGuard guard(bits_.device());
  const Tensor bits = bits_.contiguous();
  tfb::PoolArgs a = pool_args(bits, shape, channels_last, kernel, stride, padding, dilation, out_hw);
  Tensor out = new_map(shape[0], shape[1], out_hw[0], out_hw[1], channels_last, bits.options().dtype(dtype));
  a.out = out.data_ptr();
  a.per_image = a.C * a.Ho * a.Wo;
  run_pool(kPoolForward, a, storage_of(out), out);
  return out;
}

Tensor spike_max_pool2d_backward(const Tensor& gout_, const Tensor& bits_, at::IntArrayRef shape, bool channels_last,
                                 at::IntArrayRef kernel, at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation, at::IntArrayRef out_hw) {
  c10::DeviceGuard guard(gout_.device());
  const Tensor bits = bits_.contiguous();
  tfb::PoolArgs a = pool_args(bits, shape, channels_last, kernel, stride, padding, dilation, out_hw);
  TORCH_CHECK(gout_.dim() == 4 && gout_.size(0) == shape[0] && gout_.size(1) == shape[1] &&
                  gout_.size(2) == out_hw[0] && gout_.size(3) == out_hw[1],
              "tfbench: a spike max-pool's backward needs dL/dout of shape [", shape[0], ", ", shape[1], ", ",
              out_hw[0], ", ", out_hw[1], "], got ", gout_.sizes());
  const Tensor gout = gout_.contiguous(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  Tensor gx = new_map(shape[0], shape[1], shape[2], shape[3], channels_last, gout.options());
  a.gout = gout.data_ptr();
  a.out = gx.data_ptr();
  if (tfb::pool_plane_fits(a)) {  // NCHW planes that fit a block's shared memory: one pass
    a.per_image = a.C * a.H * a.W;
    a.planes = tfb::pool_planes_per_block(a);
    a.fHW = tfb::fast_div(a.H * a.W), a.fOW = tfb::fast_div(a.Ho * a.Wo);
    run_pool(kPoolBackwardPlane, a, storage_of(gx), gx);
    return gx;
  }
  Tensor codes = at::empty({gout.numel()}, gout.options().dtype(at::kByte));  // one byte a window
  a.codes = codes.data_ptr<uint8_t>();
  a.per_image = a.C * a.Ho * a.Wo;
  run_pool(kPoolCodes, a, storage_of(gx), gx);
  a.per_image = a.C * a.H * a.W;
  run_pool(kPoolBackward, a, storage_of(gx), gx);
  return gx;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> norm_neuron_forward(
    const Tensor& z_, const std::optional<Tensor>& residual, const std::optional<Tensor>& weight,
    const std::optional<Tensor>& bias, const std::optional<Tensor>& running_mean,
    const std::optional<Tensor>& running_var, const std::optional<Tensor>& batches, at::TensorList learned,
    c10::string_view neuron, ArrayRef<double> constants, at::IntArrayRef switches, bool batch_stats, double momentum,
    double eps, bool want_bits, const std::optional<Tensor>& res_weight, const std::optional<Tensor>& res_bias,
    const std::optional<Tensor>& res_running_mean, const std::optional<Tensor>& res_running_var,
    const std::optional<Tensor>& res_batches, ArrayRef<double> res_norm, const std::optional<Tensor>& v0,
    bool want_v_last) {
  c10::DeviceGuard guard(z_.device());
  const Tensor z = z_.contiguous();
  const Switches sw = switches_of(switches);
  const bool dbl = z.scalar_type() == at::kDouble;
  const auto acc = dbl ? at::kDouble : at::kFloat;
  TORCH_CHECK(res_norm.empty() || res_norm.size() == 3,
              "tfbench: res_norm is [] or the residual BatchNorm's [batch_stats, momentum, eps]");
  const Fold f = fold_of(z, residual, !res_norm.empty());
  const BatchNormIn bn = batch_norm_in(z, f, acc, "", weight, bias, running_mean, running_var, batches, batch_stats,
                                       momentum, eps);
  BatchNormIn res_bn;
  if (!res_norm.empty())
    res_bn = batch_norm_in(z, f, acc, "the residual's ", res_weight, res_bias, res_running_mean, res_running_var,
                           res_batches, res_norm[0] != 0, res_norm[1], res_norm[2]);
  const BatchNormIn* rbn = res_norm.empty() ? nullptr : &res_bn;
#define TFB_NORM_FORWARD(S, NAME)                                                                                  \
  if (neuron == NAME)                                                                                              \
    return dbl ? NormOp<tfb::S>::forward<double>(#S, z, f, residual, bn, rbn, learned, constants, sw, want_bits,   \
                                                 v0, want_v_last)                                                  \
               : NormOp<tfb::S>::forward<float>(#S, z, f, residual, bn, rbn, learned, constants, sw, want_bits,    \
                                                v0, want_v_last);
  TFB_NEURONS(TFB_NORM_FORWARD)
#undef TFB_NORM_FORWARD
  TORCH_CHECK(false, "tfbench: unknown neuron '", std::string(neuron.data(), neuron.size()), "'");
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> norm_neuron_backward(
    const std::optional<Tensor>& gs, const Tensor& ckpt, const Tensor& z_, const std::optional<Tensor>& residual,
    const Tensor& stats, at::TensorList learned, c10::string_view neuron, ArrayRef<double> constants,
    at::IntArrayRef switches, bool batch_stats, bool want_gz, bool want_gres, bool want_gaffine,
    const std::optional<Tensor>& gz_out, bool res_batch, bool want_gres_affine, const std::optional<Tensor>& gv_last,
    const std::optional<Tensor>& v0, bool want_gv0) {
  c10::DeviceGuard guard(z_.device());
  const Tensor z = z_.contiguous();
  const Switches sw = switches_of(switches);
  const bool dbl = z.scalar_type() == at::kDouble;
#define TFB_NORM_BACKWARD(S, NAME)                                                                                 \
  if (neuron == NAME)                                                                                              \
    return dbl ? NormOp<tfb::S>::backward<double>(#S, gs, ckpt, z, residual, stats, learned, constants, sw,        \
                                                  batch_stats, want_gz, want_gres, want_gaffine, gz_out, res_batch, \
                                                  want_gres_affine, gv_last, v0, want_gv0)                         \
               : NormOp<tfb::S>::backward<float>(#S, gs, ckpt, z, residual, stats, learned, constants, sw,         \
                                                 batch_stats, want_gz, want_gres, want_gaffine, gz_out, res_batch,  \
                                                 want_gres_affine, gv_last, v0, want_gv0);
  TFB_NEURONS(TFB_NORM_BACKWARD)
#undef TFB_NORM_BACKWARD
  TORCH_CHECK(false, "tfbench: unknown neuron '", std::string(neuron.data(), neuron.size()), "'");
}

// The op's entry points: dispatch on the neuron's name (kernels/neurons/all.cuh) and the arithmetic dtype.
std::tuple<Tensor, Tensor, Tensor> neuron_forward(const Tensor& x_, const std::optional<Tensor>& v0,
                                                  at::TensorList learned, c10::string_view neuron,
                                                  ArrayRef<double> constants, at::IntArrayRef switches,
                                                  bool save_input, bool want_v_last) {
  TORCH_CHECK(x_.dim() >= 1 && x_.size(0) >= 1, "tfbench: x must have shape [T, *] with T >= 1, got ", x_.sizes());
  c10::DeviceGuard guard(x_.device());
  const Tensor x = x_.contiguous();
  const Switches sw = switches_of(switches);
  const bool dbl = x.scalar_type() == at::kDouble;
#define TFB_FORWARD(S, NAME)                                                                                  \
  if (neuron == NAME)                                                                                         \
    return dbl ? Op<tfb::S>::forward<double>(#S, x, v0, learned, constants, sw, save_input, want_v_last)      \
               : Op<tfb::S>::forward<float>(#S, x, v0, learned, constants, sw, save_input, want_v_last);
  TFB_NEURONS(TFB_FORWARD)
#undef TFB_FORWARD
  TORCH_CHECK(false, "tfbench: unknown neuron '", std::string(neuron.data(), neuron.size()), "'");
}

std::tuple<Tensor, Tensor, std::vector<Tensor>> neuron_backward(
    const std::optional<Tensor>& gs, const std::optional<Tensor>& gv_last, const Tensor& kept,
    const std::optional<Tensor>& x, const std::optional<Tensor>& v0, at::TensorList learned, c10::string_view neuron,
    ArrayRef<double> constants, at::IntArrayRef switches, bool save_input, bool want_gv0) {
  c10::DeviceGuard guard(kept.device());
  const Switches sw = switches_of(switches);
  const bool dbl = (save_input ? x->scalar_type() : kept.scalar_type()) == at::kDouble;
#define TFB_BACKWARD(S, NAME)                                                                                     \
  if (neuron == NAME)                                                                                             \
    return dbl ? Op<tfb::S>::backward<double>(#S, gs, gv_last, kept, x, v0, learned, constants, sw, save_input,   \
                                              want_gv0)                                                           \
               : Op<tfb::S>::backward<float>(#S, gs, gv_last, kept, x, v0, learned, constants, sw, save_input,    \
                                             want_gv0);
  TFB_NEURONS(TFB_BACKWARD)
#undef TFB_BACKWARD
  TORCH_CHECK(false, "tfbench: unknown neuron '", std::string(neuron.data(), neuron.size()), "'");
}

// ---------------------------------------------------------------------------------------------
// Autograd: forward below the autograd key, backward through tfbench::neuron_backward.
// ---------------------------------------------------------------------------------------------
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class NeuronFunction : public torch::autograd::Function<NeuronFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const std::optional<Tensor>& v0,
                               at::TensorList learned, c10::string_view neuron, ArrayRef<double> constants,
                               at::IntArrayRef switches, bool save_input, bool want_v_last) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("tfbench::neuron_forward", "")
                         .typed<decltype(neuron_forward)>();
    at::AutoDispatchBelowADInplaceOrView below;
    auto [s, kept, v_last] = op.call(x, v0, learned, neuron, constants, switches, save_input, want_v_last);
    std::vector<Tensor> saved{kept, save_input ? x : Tensor(), v0.has_value() ? *v0 : Tensor()};
    for (const Tensor& w : learned) saved.push_back(w);
    ctx->save_for_backward(saved);
    ctx->saved_data["neuron"] = std::string(neuron.data(), neuron.size());
    ctx->saved_data["constants"] = constants.vec();
    ctx->saved_data["switches"] = switches.vec();
    ctx->saved_data["save_input"] = save_input;
    ctx->saved_data["v0_dtype"] = v0.has_value() ? (int64_t)v0->scalar_type() : (int64_t)-1;
    ctx->set_materialize_grads(false);  // an unused output gets no zero-filled gradient (no extra pass)
    ctx->mark_non_differentiable({kept});
    return {s, kept, v_last};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("tfbench::neuron_backward", "")
                         .typed<decltype(neuron_backward)>();
    auto saved = ctx->get_saved_variables();
    std::vector<Tensor> learned(saved.begin() + 3, saved.end());
    const int64_t v0_dtype = ctx->saved_data["v0_dtype"].toInt();
    const bool want_gv0 = v0_dtype >= 0 && ctx->needs_input_grad(1);
    std::optional<Tensor> gs, gv_last, x, v0;
    if (grads.size() > 0 && grads[0].defined()) gs = grads[0];
    if (grads.size() > 2 && grads[2].defined()) gv_last = grads[2];
    if (saved[1].defined()) x = saved[1];
    if (saved[2].defined()) v0 = saved[2];
    const std::string neuron = ctx->saved_data["neuron"].toStringRef();
    const std::vector<double> constants = ctx->saved_data["constants"].toDoubleVector();
    const std::vector<int64_t> switches = ctx->saved_data["switches"].toIntVector();
    auto [gx, gv0, glearned] = op.call(gs, gv_last, saved[0], x, v0, learned, neuron, constants, switches,
                                       ctx->saved_data["save_input"].toBool(), want_gv0);
    variable_list out{gx, want_gv0 ? gv0.to((at::ScalarType)v0_dtype) : Tensor()};
    for (Tensor& g : glearned) out.push_back(g);
    for (int i = 0; i < 5; ++i) out.push_back(Tensor());  // neuron, constants, switches, save_input, want_v_last
    return out;
  }
};

std::tuple<Tensor, Tensor, Tensor> neuron_forward_autograd(const Tensor& x, const std::optional<Tensor>& v0,
                                                           at::TensorList learned, c10::string_view neuron,
                                                           ArrayRef<double> constants, at::IntArrayRef switches,
                                                           bool save_input, bool want_v_last) {
  auto out = NeuronFunction::apply(x, v0, learned, neuron, constants, switches, save_input, want_v_last);
  return {out[0], out[1], out[2]};
}

// ---------------------------------------------------------------------------------------------
// conv -> BatchNorm (-> residual) -> neuron (-> max-pool) as one C++ autograd node (tfbench::conv_norm_neuron,
// which norm.py's conv_norm_neuron calls: every layer of the lean path). Forward: the convolution (in
// autocast's dtype when on, its weight cast once and kept for backward), then NormOp's forward, which
// also writes the spikes' bits. Backward writes dL/dz over z and differentiates the convolution with
// ATen's convolution_backward. A layer of spikes kept as bits keeps those bits and z; one that
// recomputes (the stem) keeps x alone (in the convolution's dtype, or its bits) and runs its convolution
// again in backward, a slice of the batch at a time both ways, with the max-pool after the neuron in the
// node (read from the spikes' bits both ways). Every op inside is called through the dispatcher, so
// torch.compile traces through the node. No Python runs in either direction.
// ---------------------------------------------------------------------------------------------
// The dtype a convolution of x computes in: autocast's when it is on (it casts every floating input but
// float64), else x's (as norm.py's _compute_dtype for its convolution of spikes).
at::ScalarType compute_dtype(const Tensor& x) {
  const auto device = x.device().type();
  if (x.is_floating_point() && x.scalar_type() != at::kDouble && at::autocast::is_autocast_enabled(device))
    return at::autocast::get_autocast_dtype(device);
  return x.scalar_type();
}

bool channels_last(const Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

Tensor in_format(const Tensor& t, bool cl) {
  return t.contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

// [T*B, C, H, W] (NCHW or channels-last memory) as the norm ops' [T, M, C, inner] view, and back
// (norm.py's time_major / from_time_major).
Tensor time_major(const Tensor& x, int64_t steps, bool cl) {
  const i64 n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (cl) return x.permute({0, 2, 3, 1}).view({steps, (n / steps) * h * w, c, 1});
  return x.contiguous().view({steps, n / steps, c, h * w});
}

Tensor from_time_major(const Tensor& y, at::IntArrayRef shape, bool cl) {
  if (cl) return y.view({shape[0], shape[2], shape[3], shape[1]}).permute({0, 3, 1, 2});
  return y.view(shape);
}

// What the node takes besides its tensors: the convolution's arguments, BatchNorm's buffers and use (the
// residual BatchNorm's too, res_norm empty without one), the neuron as the norm ops take it, and the
// stem's way (recompute; its slices; the max-pool's kernel, stride, padding, dilation, output size).
struct ConvNormArgs {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups, steps, split_backward_bytes;
  std::optional<Tensor> running_mean, running_var, batches, res_running_mean, res_running_var, res_batches;
  bool batch_stats;
  double momentum, eps;
  std::vector<double> res_norm, constants;
  std::vector<int64_t> switches;
  std::string neuron;
  bool recompute;
  int64_t chunk_elements;
  std::vector<int64_t> pool;  // [] or kernel (2), stride (2), padding (2), dilation (2), out_hw (2)
  bool want_v_last;           // the neurons' final membrane as the node's third output (else [0])
};

std::optional<Tensor> given(const Tensor& t) { return t.defined() ? std::optional<Tensor>(t) : std::nullopt; }
Tensor value(const std::optional<Tensor>& t) { return t.has_value() ? *t : Tensor(); }

// The ops the node runs, through the dispatcher (the fake implementations under torch.compile).
#define TFB_OP(NAME, FN)                                                                                          \
  static auto NAME = c10::Dispatcher::singleton().findSchemaOrThrow("tfbench::" #FN, "").typed<decltype(FN)>();

// Image ranges [i, j) of x whose convolution output has at most `chunk` elements each (at least one image).
std::vector<std::pair<int64_t, int64_t>> conv_slices(const Tensor& x, const Tensor& w, const ConvNormArgs& k) {
  int64_t per_image = w.size(0);
  for (int d = 0; d < 2; ++d)
    per_image *= (x.size(2 + d) + 2 * k.padding[d] - k.dilation[d] * (w.size(2 + d) - 1) - 1) / k.stride[d] + 1;
  const int64_t step = std::max<int64_t>(1, k.chunk_elements / std::max<int64_t>(1, per_image));
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < x.size(0); i += step) out.push_back({i, std::min(x.size(0), i + step)});
  return out;
}

// conv2d(x, w) a slice of images at a time into one tensor, autocast off (x and w in the compute dtype
// already: the forward and the recomputation make the same calls on the same tensors, so the same z).
Tensor conv_in_chunks(const Tensor& x, const Tensor& w, const ConvNormArgs& k) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const auto slices = conv_slices(x, w, k);
  if (slices.size() == 1) return at::conv2d(x, w, {}, k.stride, k.padding, k.dilation, k.groups);
  Tensor z;
  for (auto [i, j] : slices) {
    Tensor zi = at::conv2d(x.slice(0, i, j), w, {}, k.stride, k.padding, k.dilation, k.groups);
    if (!z.defined()) {
      std::vector<int64_t> shape = zi.sizes().vec();
      shape[0] = x.size(0);
      z = at::empty(shape, zi.options().memory_format(channels_last(zi) ? at::MemoryFormat::ChannelsLast
                                                                          : at::MemoryFormat::Contiguous));
    }
    z.slice(0, i, j).copy_(zi);
  }
  return z;
}

// (dL/dx, dL/dw) of conv_in_chunks from dL/dz, slice by slice as it; dL/dw summed over the slices in
// float32 (or float64).
std::pair<Tensor, Tensor> conv_backward_in_chunks(const Tensor& gz, const Tensor& x, const Tensor& w,
                                                  const ConvNormArgs& k, bool want_gx, bool want_gw) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const auto slices = conv_slices(x, w, k);
  if (slices.size() == 1) {
    auto out = at::convolution_backward(gz, x, w, std::nullopt, k.stride, k.padding, k.dilation, false, {0, 0},
                                        k.groups, {want_gx, want_gw, false});
    return {std::get<0>(out), std::get<1>(out)};
  }
  Tensor gx = want_gx ? at::empty_like(x) : Tensor(), gw;
  for (auto [i, j] : slices) {
    auto out = at::convolution_backward(gz.slice(0, i, j), x.slice(0, i, j), w, std::nullopt, k.stride, k.padding,
                                        k.dilation, false, {0, 0}, k.groups, {want_gx, want_gw, false});
    if (want_gx) gx.slice(0, i, j).copy_(std::get<0>(out));
    if (want_gw) {
      Tensor gwi = std::get<1>(out).to(at::promote_types(std::get<1>(out).scalar_type(), at::kFloat));
      gw = gw.defined() ? gw.add_(gwi) : gwi;
    }
  }
  return {gx, gw};
}

struct ConvNormForward {
  Tensor out, s_bits, x_kept, z, wc, kept_res, ckpt, stats, v_last;
  std::vector<int64_t> s_shape;
  bool cl;
};

ConvNormForward conv_norm_forward(const Tensor& x, const Tensor& x_bits, const Tensor& conv_weight,
                                  const Tensor& weight, const Tensor& bias, const Tensor& residual,
                                  const Tensor& residual_bits, const Tensor& res_weight, const Tensor& res_bias,
                                  const Tensor& v0, at::TensorList learned, const ConvNormArgs& k) {
  TFB_OP(norm_forward, norm_neuron_forward)
  TFB_OP(pool_forward, spike_max_pool2d)
  TORCH_CHECK(x.dim() == 4 && k.steps >= 1 && x.size(0) % k.steps == 0, "tfbench: conv_norm_neuron takes x of "
              "shape [T*B, C, H, W] with T = steps >= 1 dividing its first dimension, got ", x.sizes(), " and steps ",
              k.steps);
  TORCH_CHECK(!x_bits.defined() || (x_bits.scalar_type() == at::kByte && x_bits.device() == x.device() &&
                                    x_bits.numel() == (x.numel() + 7) / 8),
              "tfbench: x_bits must be x's spikes as bits (pack_spikes(x): ", (x.numel() + 7) / 8, " bytes on x's "
              "device)");
  ConvNormForward f;
  const at::ScalarType dt = compute_dtype(x);
  // the weight in the convolution's dtype under autocast (cast once, kept for backward); else as given (a
  // dtype other than x's is refused by the convolution, as F.conv2d refuses it)
  f.wc = at::autocast::is_autocast_enabled(x.device().type()) ? conv_weight.to(dt) : conv_weight;
  if (k.recompute) {  // kept: x in the convolution's dtype (half of float32's under bf16), or its bits
    const Tensor xc = in_format(x.to(dt), channels_last(x));
    f.x_kept = x_bits.defined() ? x_bits : xc;
    f.z = conv_in_chunks(xc, f.wc, k);
  } else {
    f.x_kept = x_bits;
    f.z = at::conv2d(x, f.wc, {}, k.stride, k.padding, k.dilation, k.groups);
  }
  f.cl = channels_last(f.z);
  if (residual_bits.defined()) {
    TORCH_CHECK(!residual.defined() || channels_last(residual) == f.cl, "tfbench: the residual's bits must be in the "
                "convolution output's memory format (", f.cl ? "channels-last" : "contiguous", ")");
    f.kept_res = residual_bits;
  } else if (residual.defined()) {
    f.kept_res = time_major(in_format(residual, f.cl), k.steps, f.cl);  // z's memory format: the views line up
  }
  auto [s4, ckpt, stats, s_bits, v_last] = norm_forward.call(
      time_major(f.z, k.steps, f.cl), given(f.kept_res), given(weight), given(bias), k.running_mean, k.running_var,
      k.batches, learned, k.neuron, k.constants, k.switches, k.batch_stats, k.momentum, k.eps, true,
      given(res_weight), given(res_bias), k.res_running_mean, k.res_running_var, k.res_batches, k.res_norm, given(v0),
      k.want_v_last);
  f.v_last = v_last.view({-1});
  const Tensor s = from_time_major(s4, f.z.sizes(), f.cl);
  f.s_shape = s.sizes().vec();
  f.s_bits = s_bits;
  f.ckpt = ckpt;
  f.stats = stats;
  if (k.recompute) f.z = Tensor();  // recomputed in backward
  if (k.pool.empty()) {
    f.out = s;
  } else {  // the max-pool from the spikes' bits, which backward keeps instead of s
    const at::IntArrayRef p(k.pool);
    f.out = pool_forward.call(s_bits, f.s_shape, f.cl, s.scalar_type(), p.slice(0, 2), p.slice(2, 2), p.slice(4, 2),
                              p.slice(6, 2), p.slice(8, 2));
  }
  return f;
}

// What the node's backward needs besides its saved tensors, as one C++ object (a capsule in saved_data, not
// an IValue per field): the arguments (without the running statistics, which backward does not read), the
// shapes and formats, and each optional tensor's input index (needs_input_grad's; -1 when not given: autograd
// takes no undefined input; x is input 0).
struct ConvNormState : torch::CustomClassHolder {
  ConvNormArgs k;
  std::vector<int64_t> x_shape, s_shape;
  bool x_cl = false, x_is_bits = false, cl = false, res_batch = false, affine = false, res_affine = false;
  at::ScalarType weight_dtype = at::kFloat;
  int64_t in_conv_weight = 2, in_weight = -1, in_bias = -1, in_residual = -1, in_res_weight = -1, in_res_bias = -1,
          in_v0 = -1;
  at::ScalarType v0_dtype = at::kFloat;
};

class ConvNormNeuronFunction : public torch::autograd::Function<ConvNormNeuronFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const std::optional<Tensor>& x_bits_,
                               const Tensor& conv_weight, const std::optional<Tensor>& weight_,
                               const std::optional<Tensor>& bias_, const std::optional<Tensor>& residual_,
                               const std::optional<Tensor>& residual_bits_, const std::optional<Tensor>& res_weight_,
                               const std::optional<Tensor>& res_bias_, const std::optional<Tensor>& v0_,
                               at::TensorList learned, const ConvNormArgs& k) {
    const Tensor x_bits = value(x_bits_), weight = value(weight_), bias = value(bias_), residual = value(residual_),
                 residual_bits = value(residual_bits_), res_weight = value(res_weight_), res_bias = value(res_bias_),
                 v0 = value(v0_);
    ConvNormForward f = conv_norm_forward(x, x_bits, conv_weight, weight, bias, residual, residual_bits, res_weight,
                                          res_bias, v0, learned, k);
    auto st = c10::make_intrusive<ConvNormState>();
    int64_t input = x_bits.defined() ? 3 : 2;
    st->in_conv_weight = input - 1;
    int64_t in_residual_bits = -1;
    for (auto [index, t] : {std::pair<int64_t*, const Tensor*>{&st->in_weight, &weight}, {&st->in_bias, &bias},
                            {&st->in_residual, &residual}, {&in_residual_bits, &residual_bits},
                            {&st->in_res_weight, &res_weight}, {&st->in_res_bias, &res_bias}, {&st->in_v0, &v0}})
      *index = t->defined() ? input++ : (int64_t)-1;
    std::vector<Tensor> saved{f.x_kept, f.z, f.wc, f.kept_res, f.ckpt, f.stats, k.pool.empty() ? Tensor() : f.s_bits,
                              v0};
    for (const Tensor& w : learned) saved.push_back(w);
    ctx->save_for_backward(saved);
    st->k = k;
    for (auto* t : {&st->k.running_mean, &st->k.running_var, &st->k.batches, &st->k.res_running_mean,
                    &st->k.res_running_var, &st->k.res_batches})
      t->reset();
    st->x_shape = x.sizes().vec();
    st->x_cl = channels_last(x);
    st->x_is_bits = x_bits.defined();
    st->s_shape = f.s_shape;
    st->cl = f.cl;
    st->weight_dtype = conv_weight.scalar_type();
    st->res_batch = !k.res_norm.empty() && k.res_norm[0] != 0;
    st->affine = weight.defined();
    st->res_affine = !k.res_norm.empty() && res_weight.defined();
    if (v0.defined()) st->v0_dtype = v0.scalar_type();
    ctx->saved_data["state"] = c10::IValue::make_capsule(std::move(st));
    const Tensor bits_out = k.pool.empty() ? f.s_bits : f.s_bits.new_empty({0});  // the pooled spikes have none
    ctx->mark_non_differentiable({bits_out});
    ctx->set_materialize_grads(false);
    return {f.out, bits_out, f.v_last};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TFB_OP(norm_backward, norm_neuron_backward)
    TFB_OP(unpack, unpack_spikes)
    TFB_OP(pool_backward, spike_max_pool2d_backward)
    auto saved = ctx->get_saved_variables();
    const Tensor &x_kept = saved[0], &wc = saved[2], &kept_res = saved[3], &ckpt = saved[4], &stats = saved[5];
    const Tensor &s_bits = saved[6], &v0 = saved[7];
    Tensor z = saved[1];
    std::vector<Tensor> learned(saved.begin() + 8, saved.end());
    const auto st = c10::static_intrusive_pointer_cast<ConvNormState>(ctx->saved_data["state"].toCapsule());
    const ConvNormArgs& k = st->k;
    const bool cl = st->cl, recompute = k.recompute;
    const std::vector<int64_t>&x_shape = st->x_shape, &pool = k.pool;
    auto needs = [&](int64_t i) { return i >= 0 && ctx->needs_input_grad(i); };
    const bool want_gres = needs(st->in_residual);
    const bool want_affine = st->affine && (needs(st->in_weight) || needs(st->in_bias));
    const bool want_res_affine = st->res_affine && (needs(st->in_res_weight) || needs(st->in_res_bias));
    const bool want_gx = ctx->needs_input_grad(0), want_gw = needs(st->in_conv_weight), want_gv0 = needs(st->in_v0);
    int64_t numel = 1;
    for (int64_t v : x_shape) numel *= v;
    auto unpacked = [&]() {  // x from its bits, in its memory format and the convolution's dtype
      Tensor xc = unpack.call(x_kept, numel, wc.scalar_type());
      return st->x_cl ? xc.view({x_shape[0], x_shape[2], x_shape[3], x_shape[1]}).permute({0, 3, 1, 2})
                      : xc.view(x_shape);
    };
    Tensor xc;
    if (recompute) {  // the forward's z again, from x (kept in the convolution's dtype) or its bits
      xc = st->x_is_bits ? unpacked() : x_kept;
      z = conv_in_chunks(xc, wc, k);
    }
    std::optional<Tensor> gs;
    if (!grads.empty() && grads[0].defined()) {
      Tensor g = grads[0];
      if (!pool.empty()) {  // dL/ds, this node's own: made after the recomputation, freed before the conv's backward
        const at::IntArrayRef p(pool);
        g = pool_backward.call(g.to(z.scalar_type()), s_bits, st->s_shape, cl, p.slice(0, 2), p.slice(2, 2),
                               p.slice(4, 2), p.slice(6, 2), p.slice(8, 2));
      }
      gs = time_major(in_format(g.to(z.scalar_type()), cl), k.steps, cl);
    }
    const Tensor z4 = time_major(z, k.steps, cl);
    // dL/dz written over z: one buffer, not two; traced (torch.compile's fake and functional tensors carry the
    // Python key) a buffer of its own: inductor may give a recomputed z another layout, which a view written
    // through would not follow
    const bool over_z = !z4.key_set().has(c10::DispatchKey::Python);
    const std::optional<Tensor> gv_last =
        grads.size() > 2 && grads[2].defined() && grads[2].numel() > 0 ? given(grads[2]) : std::nullopt;
    auto [gz_own, gres, gweight, gbias, glearned, gres_weight, gres_bias, gv0] = norm_backward.call(
        gs, ckpt, z4, given(kept_res), stats, learned, k.neuron, k.constants, k.switches, k.batch_stats, true,
        want_gres, want_affine, over_z ? std::optional<Tensor>(z4) : std::nullopt, st->res_batch, want_res_affine,
        gv_last, given(v0), want_gv0);
    // the kept z is gone: a second backward over this graph is refused
    if (!recompute) torch::autograd::impl::bump_version(z);
    gs.reset();
    const Tensor gz = from_time_major(over_z ? z4 : gz_own, z.sizes(), cl);
    z = Tensor();
    Tensor gx, gw;
    if (recompute && (want_gx || want_gw)) {  // the stem: its large convolution differentiated a slice at a time too
      std::tie(gx, gw) = conv_backward_in_chunks(gz, xc, wc, k, want_gx, want_gw);
    } else if (want_gx || want_gw) {
      xc = unpacked();
      if (want_gx && want_gw && numel * xc.element_size() >= k.split_backward_bytes) {
        // dL/dw first, then the unpacked input goes before dL/dx (which needs only x's shape) and its workspace
        gw = std::get<1>(at::convolution_backward(gz, xc, wc, std::nullopt, k.stride, k.padding, k.dilation, false,
                                                  {0, 0}, k.groups, {false, true, false}));
        xc = Tensor();
        const Tensor shape_only = gz.new_empty({1}).expand(x_shape);
        gx = std::get<0>(at::convolution_backward(gz, shape_only, wc, std::nullopt, k.stride, k.padding, k.dilation,
                                                  false, {0, 0}, k.groups, {true, false, false}));
      } else {  // one call for both
        auto out = at::convolution_backward(gz, xc, wc, std::nullopt, k.stride, k.padding, k.dilation, false, {0, 0},
                                            k.groups, {want_gx, want_gw, false});
        gx = std::get<0>(out);
        gw = std::get<1>(out);
      }
    }
    variable_list out{gx,
                      Tensor(),
                      gw.defined() ? gw.to(st->weight_dtype) : Tensor(),
                      want_affine ? gweight : Tensor(),
                      want_affine ? gbias : Tensor(),
                      want_gres ? from_time_major(gres, gz.sizes(), cl) : Tensor(),
                      Tensor(),
                      want_res_affine ? gres_weight : Tensor(),
                      want_res_affine ? gres_bias : Tensor(),
                      want_gv0 ? gv0.view(v0.sizes()).to(st->v0_dtype) : Tensor()};
    if (!learned.empty()) out.push_back(glearned.numel() ? glearned : Tensor());  // (at most one)
    out.push_back(Tensor());  // the arguments
    return out;
  }
};

ConvNormArgs conv_norm_args(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            int64_t steps, const std::optional<Tensor>& running_mean,
                            const std::optional<Tensor>& running_var, const std::optional<Tensor>& batches,
                            bool batch_stats, double momentum, double eps, const std::optional<Tensor>& res_running_mean,
                            const std::optional<Tensor>& res_running_var, const std::optional<Tensor>& res_batches,
                            ArrayRef<double> res_norm, c10::string_view neuron, ArrayRef<double> constants,
                            at::IntArrayRef switches, int64_t split_backward_bytes, bool recompute,
                            int64_t chunk_elements, at::IntArrayRef pool, bool want_v_last) {
  TORCH_CHECK(pool.empty() || (pool.size() == 10 && recompute),
              "tfbench: conv_norm_neuron's pool is [] or kernel, stride, padding, dilation, out_hw (2 each), and "
              "needs recompute");
  return {stride.vec(), padding.vec(), dilation.vec(), groups, steps, split_backward_bytes, running_mean, running_var,
          batches, res_running_mean, res_running_var, res_batches, batch_stats, momentum, eps, res_norm.vec(),
          constants.vec(), switches.vec(), std::string(neuron.data(), neuron.size()), recompute, chunk_elements,
          pool.vec(), want_v_last};
}

#define TFB_CONV_NORM_PARAMS                                                                                        \
  const Tensor &x, const std::optional<Tensor>&x_bits, const Tensor &conv_weight,                                  \
      const std::optional<Tensor>&weight, const std::optional<Tensor>&bias, const std::optional<Tensor>&residual,   \
      const std::optional<Tensor>&residual_bits, const std::optional<Tensor>&res_weight,                            \
      const std::optional<Tensor>&res_bias, const std::optional<Tensor>&running_mean,                               \
      const std::optional<Tensor>&running_var, const std::optional<Tensor>&batches,                                 \
      const std::optional<Tensor>&res_running_mean, const std::optional<Tensor>&res_running_var,                    \
      const std::optional<Tensor>&res_batches, at::TensorList learned, c10::string_view neuron,                     \
      ArrayRef<double> constants, at::IntArrayRef switches, at::IntArrayRef stride, at::IntArrayRef padding,        \
      at::IntArrayRef dilation, int64_t groups, int64_t steps, bool batch_stats, double momentum, double eps,       \
      ArrayRef<double> res_norm, int64_t split_backward_bytes, bool recompute, int64_t chunk_elements,              \
      at::IntArrayRef pool, const std::optional<Tensor>&v0, bool want_v_last
#define TFB_CONV_NORM_ARGS                                                                                          \
  conv_norm_args(stride, padding, dilation, groups, steps, running_mean, running_var, batches, batch_stats,         \
                 momentum, eps, res_running_mean, res_running_var, res_batches, res_norm, neuron, constants,        \
                 switches, split_backward_bytes, recompute, chunk_elements, pool, want_v_last)

// The Autograd key's implementation: the node above.
std::tuple<Tensor, Tensor, Tensor> conv_norm_neuron_autograd(TFB_CONV_NORM_PARAMS) {
  auto out = ConvNormNeuronFunction::apply(x, x_bits, conv_weight, weight, bias, residual, residual_bits, res_weight,
                                           res_bias, v0, learned, TFB_CONV_NORM_ARGS);
  return {out[0], out[1], out[2]};
}

// The devices' implementation, reached without autograd (torch.inference_mode): the forward alone.
std::tuple<Tensor, Tensor, Tensor> conv_norm_neuron(TFB_CONV_NORM_PARAMS) {
  ConvNormForward f = conv_norm_forward(x, value(x_bits), conv_weight, value(weight), value(bias), value(residual),
                                        value(residual_bits), value(res_weight), value(res_bias), value(v0), learned,
                                        TFB_CONV_NORM_ARGS);
  return {f.out, pool.empty() ? f.s_bits : f.s_bits.new_empty({0}), f.v_last};
}

// The same entry points for both devices: each dispatches on the tensors' device itself (run()).
void device_impls(torch::Library& m) {
  m.impl("pack_spikes", TORCH_FN(pack_spikes));
  m.impl("unpack_spikes", TORCH_FN(unpack_spikes));
  m.impl("spike_max_pool2d", TORCH_FN(spike_max_pool2d));
  m.impl("spike_max_pool2d_backward", TORCH_FN(spike_max_pool2d_backward));
  m.impl("neuron_forward", TORCH_FN(neuron_forward));
  m.impl("neuron_backward", TORCH_FN(neuron_backward));
  m.impl("norm_neuron_forward", TORCH_FN(norm_neuron_forward));
  m.impl("norm_neuron_backward", TORCH_FN(norm_neuron_backward));
  m.impl("conv_norm_neuron", TORCH_FN(conv_norm_neuron));
}

}  // namespace

TORCH_LIBRARY_IMPL(tfbench, CPU, m) { device_impls(m); }

TORCH_LIBRARY_IMPL(tfbench, CUDA, m) { device_impls(m); }

TORCH_LIBRARY_IMPL(tfbench, Autograd, m) {
  m.impl("neuron_forward", TORCH_FN(neuron_forward_autograd));
  // The backward op is not differentiated again: straight through to the device implementation (else
  // PyTorch's boxed "autograd not implemented" fallback runs first, ~20 us per call on a slow host).
  m.impl("neuron_backward", torch::CppFunction::makeFallthrough());
  // The norm ops are called inside tfbench/ops/norm.py's autograd function, never differentiated.
  m.impl("pack_spikes", torch::CppFunction::makeFallthrough());
  m.impl("unpack_spikes", torch::CppFunction::makeFallthrough());
  m.impl("spike_max_pool2d", torch::CppFunction::makeFallthrough());
  m.impl("spike_max_pool2d_backward", torch::CppFunction::makeFallthrough());
  m.impl("norm_neuron_forward", torch::CppFunction::makeFallthrough());
  m.impl("norm_neuron_backward", torch::CppFunction::makeFallthrough());
  m.impl("conv_norm_neuron", TORCH_FN(conv_norm_neuron_autograd));
}

TORCH_LIBRARY_IMPL(tfbench, CompositeExplicitAutograd, m) {
  m.impl("_set", TORCH_FN(set_option));
}
