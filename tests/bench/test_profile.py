"""``tfbench profile``'s breakdown: names sorted into categories; a real run profiled end to end."""

from __future__ import annotations

import pytest

from tfbench.bench import profile as prof
from tfbench.results.schema import RunConfig


@pytest.mark.parametrize("name, expected", [
    ("lif_forward", "neuron (fused kernels)"),
    ("_multistep_lif_backward_kernel_static", "neuron (fused kernels)"),
    ("tfb_backward_recompute", "neuron (fused kernels)"),
    ("tfb_channel_forward", "neuron (fused kernels)"),
    ("tfbench::norm_neuron_forward", "neuron (fused kernels)"),
    ("tfb_pool_backward_plane", "pooling"),
    ("tfbench::spike_max_pool2d_backward", "pooling"),
    ("void cudnn::pooling_fw_4d_kernel<float, float, cudnn::maxpooling_func<float>>", "pooling"),
    ("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1, true>", "batchnorm"),
    ("aten::native_batch_norm_backward", "batchnorm"),
    ("sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nchw", "convolution"),
    ("aten::convolution_backward", "convolution"),
    ("void cudnn::engines_precompiled::nchwToNhwcKernel<float, float, float, false, true>",
     "layout copies (NCHW<->NHWC, contiguous)"),
    ("void at::native::elementwise_kernel<128, 2, direct_copy_kernel_cuda>", "layout copies (NCHW<->NHWC, contiguous)"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdam>", "optimizer (Adam)"),
    ("void at::native::vectorized_elementwise_kernel<4, CUDAFunctor_add<float>>", "elementwise (incl. a neuron written as PyTorch ops)"),
    ("something unheard of", prof.OTHER),
])
def test_names_fall_into_categories(name: str, expected: str) -> None:
    assert prof.category(name) == expected


def test_profile_of_a_real_run() -> None:
    cfg = RunConfig(dataset="MNIST", backend="torch", synthetic=True, T=2, batch_size=2, epochs=1,
                    max_steps=prof.STEPS, device="cpu")
    p = prof.profile_step(cfg)
    assert p.status == "ok" and p.device == "cpu" and p.step_ms > 0
    assert p.categories["convolution"] > 0 and p.categories["batchnorm"] > 0
    assert p.busy_ms == pytest.approx(sum(p.categories.values()))
    assert p.top and all(ms > 0 for _, _, ms, _ in p.top)
    cats, top = prof.as_table(p)
    assert cats["category"].iloc[-1].startswith("step") and len(top) == len(p.top)


@pytest.mark.parametrize("lean", [False, True], ids=["default", "lean"])
def test_tfbench_neurons_have_their_category(lean: bool) -> None:
    """tfbench's ops (the fused neuron; lean: BatchNorm folded into it) are counted as neurons, not "other"."""
    cfg = RunConfig(dataset="MNIST", backend="tfbench", synthetic=True, T=2, batch_size=2, epochs=1,
                    max_steps=prof.STEPS, device="cpu", lean=lean)
    p = prof.profile_step(cfg)
    assert p.status == "ok"
    assert p.categories.get("neuron (fused kernels)", 0) > 0
    assert not any(name.startswith("tfbench::") and cat != "neuron (fused kernels)" and "pool" not in name
                   for name, cat, _, _ in p.top)
    if lean:   # BatchNorm is folded into the neurons: no BatchNorm op of its own in the blocks
        assert p.categories.get("batchnorm", 0) < p.categories["neuron (fused kernels)"]


def test_too_few_steps_is_one_clear_error() -> None:
    cfg = RunConfig(dataset="MNIST", synthetic=True, T=2, batch_size=2, max_steps=3, device="cpu")
    with pytest.raises(ValueError, match="too few to profile"):
        prof.profile_step(cfg)
