"""Launching through torchrun: a rank that dies stops the job with its message, within seconds; the
CLI's --parallel runs record world size and mode once; DDP gradients equal one process's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tfbench import models
from tfbench.backends import get
from tfbench.parallel import launch
from tfbench.parallel.data_parallel import ShardedBatches
from tfbench.data.batches import Batches

from . import workers

HERE = Path(__file__).parent
# Starting 2 ranks (importing torch in each) takes ~10 s on a 2-core CI machine, 88 s once on a loaded
# one; a hang would take the launch's timeout (300 s below) or the group timeout (600 s). Anything under
# three minutes is "stopped, not hung".
STOP_WITHIN_S = 180


def test_a_dying_rank_stops_the_job(capfd):
    t0 = time.monotonic()
    result = launch.torchrun([], 2, script=str(HERE / "fail_script.py"), timeout_s=300)
    wall = time.monotonic() - t0
    assert result.returncode != 0
    assert wall < STOP_WITHIN_S, f"took {wall:.0f} s"
    assert result.failures, "no rank reported its failure"
    first = result.failures[0]
    assert first["rank"] == 1 and "injected failure in rank 1" in first["status"], result.failures
    err = capfd.readouterr().err
    assert "tfbench: rank 1 of 2 failed: error: RuntimeError: injected failure in rank 1" in err
    # rank 0 did not hang: it stopped on its own (a lost peer) or was stopped by torchrun
    others = [f for f in result.failures if f["rank"] == 0]
    assert all("rank 1" in f["status"] for f in others), others


def test_cli_temporal_and_data_runs_record_once(cli, tmp_path):
    # 2 micro-batches of 1 sample: T=4 keeps 2 values per channel in the last BatchNorm (1x1 at 28x28 input)
    for mode, T, batch, extra in (("temporal", 4, 2, ("--micro-batches", "2")), ("data", 2, 1, ())):
        result = cli("run", "--parallel", mode, "--nproc", "2", "--device", "cpu", "--dataset", "MNIST",
                     "--synthetic", "-T", T, "--batch-size", batch, "--epochs", "1", "--max-steps", "2",
                     *extra, "--out", tmp_path)
        assert result.exit_code == 0, result.output
    lines = [json.loads(l) for l in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [(d["parallel"], d["world_size"], d["micro_batches"], d["status"]) for d in lines] == [
        ("temporal", 2, 2, "ok"), ("data", 2, 1, "ok")]
    assert lines[1]["samples_per_s"] * lines[1]["step_ms"] / 1e3 == pytest.approx(2)  # global batch


def test_cli_errors_are_one_line(cli, tmp_path):
    from ..cli.conftest import assert_one_line_error

    assert_one_line_error(cli("run", "--parallel", "temporal", "--nproc", "3", "--device", "cpu", "-T", "4",
                              "--synthetic", "--out", tmp_path), "T=4, 3 processes", "multiple of 3")
    assert_one_line_error(cli("run", "--nproc", "2", "--device", "cpu", "--synthetic", "--out", tmp_path),
                          "2 processes need --parallel data or temporal")
    assert_one_line_error(cli("run", "--parallel", "data", "--nproc", "2", "--device", "cpu", "--micro-batches", "2",
                              "--synthetic", "--out", tmp_path), "micro-batches 2 applies only to --parallel temporal")
    assert_one_line_error(cli("run", "--parallel", "temporal", "--nproc", "2", "--device", "cpu", "-T", "4",
                              "--batch-size", "2", "--micro-batches", "3", "--synthetic", "--out", tmp_path),
                          "micro-batches 3 is more than the batch of 2 samples; choose 1..2")
    assert_one_line_error(cli("scale", "--device", "cpu", "--mode", "fastest", "--out", tmp_path),
                          "unknown mode 'fastest'; choose from: latency, throughput")
    result = cli("run", "--parallel", "temporal", "--nproc", "2", "--backend", "torch", "--device", "cpu",
                 "-T", "4", "--synthetic", "--out", tmp_path)
    assert result.exit_code == 1
    d = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[-1])
    assert d["status"].startswith("n/a: the temporal pipeline needs the membrane at segment boundaries")
    assert "torch does not expose" in d["status"]
    # a model built with its library's own neurons would run every segment from rest: refused, not run
    result = cli("run", "--parallel", "temporal", "--nproc", "2", "--arch", "sj:spiking_resnet18", "--device", "cpu",
                 "-T", "4", "--synthetic", "--out", tmp_path)
    assert result.exit_code == 1
    d = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[-1])
    assert d["status"].startswith("n/a: the temporal pipeline puts its own neuron") and "sj:spiking_resnet18" in d["status"]


class _Fixed(Batches):
    def __init__(self, xs):
        super().__init__()
        self.xs = xs

    def __len__(self):
        return len(self.xs)

    def _epoch(self, epoch):
        return iter(self.xs)


def test_sharded_batches_are_disjoint_and_cover_the_global_batch():
    xs = [(torch.arange(8.0).view(8, 1) + 10 * i, torch.arange(8) + 10 * i) for i in range(3)]
    shards = [list(ShardedBatches(_Fixed(xs), r, 4)) for r in range(4)]
    for i, (x, y) in enumerate(xs):
        assert torch.equal(torch.cat([s[i][0] for s in shards]), x)
        assert torch.equal(torch.cat([s[i][1] for s in shards]), y)


def test_ddp_gradients_equal_one_process(tmp_path):
    """DDP over 2 ranks (1 sample each) equals one process on the 2-sample batch with each sample's
    own BN statistics (the mean of the per-shard losses), every gradient to 1e-10."""
    world, batch, T = 2, 1, 2
    results = workers.spawn(workers.data_parallel_network, world, str(tmp_path), T, batch)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.build(workers.ARCH, lambda: get("tfbench").layer(workers.PARAMS),
                         num_classes=workers.CLASSES).double()
    x, y = workers.network_input(T, batch=batch * world)
    loss = sum(F.cross_entropy(model(x[:, r * batch:(r + 1) * batch]), y[r * batch:(r + 1) * batch])
               for r in range(world)) / world
    loss.backward()
    for r in results:
        for name, p in model.named_parameters():
            torch.testing.assert_close(r["grads"][name], p.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_cli_scale_records_and_model(cli, tmp_path):
    result = cli("scale", "--device", "cpu", "-T", "4", "-N", "64", "--gpus", "1,2", "--chunks", "2",
                 "--runs", "3", "--repeats", "2", "--warmup", "0", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    rows = [json.loads(l) for l in (tmp_path / "scaling.jsonl").read_text().splitlines()]
    cases = [("latency", 1, 1, 1), ("latency", 2, 2, 1), ("throughput", 1, 1, 3), ("throughput", 2, 1, 3)]
    assert sorted((r["mode"], r["gpus"], r["chunks"], r["runs"], r["direction"]) for r in rows) == [
        (*case, d) for case in cases for d in ("backward", "forward")]
    for r in rows:
        assert r["status"] == "ok" and r["checked"], r
        k, ts, tc = r["gpus"], r["ts_ms"], r["tc_ms"]
        if r["mode"] == "latency":
            assert r["model_speedup"] == pytest.approx(k * ts / (k * (k - 1) * tc + ts))
            assert r["speedup"] == pytest.approx(ts / r["median_ms"])
        else:
            R, tseg, hop = r["runs"], r["tseg_ms"], (tc if k > 1 else 0.0)
            assert r["model_speedup"] == pytest.approx(R * ts / (R * tseg + (k - 1) * (tseg + hop)))
            assert r["speedup"] == pytest.approx(R * ts / r["median_ms"])
            assert (tc is None) == (k == 1) and r["optimal_gpus"] is None
    text = (tmp_path / "scaling.md").read_text()
    assert "throughput, R=3" in text and "latency (best chunks)" in text
    assert (tmp_path / "scaling.png").is_file()


def test_old_run_records_keep_their_key():
    from tfbench.results.schema import RunRecord

    base = dict(dataset="MNIST", arch="Spiking-ResNet18", backend="tfbench", neuron="LIF", neuron_params="",
                device="cpu", device_name="x", T=4, batch_size=2, epochs=1, max_steps=1, lr=1e-3, seed=0,
                precision="fp32", synthetic=True, step_mode="multi", status="ok")
    plain = RunRecord(**base)
    assert {"parallel", "micro_batches"}.isdisjoint(plain.config())   # older records hash the same
    assert RunRecord(**base, parallel="data", world_size=2).key != plain.key
    temporal = RunRecord(**base, parallel="temporal", world_size=2)
    assert RunRecord(**base, parallel="temporal", world_size=2, micro_batches=4).key != temporal.key


def test_old_scaling_records_keep_their_key():
    from tfbench.results.schema import ScalingRecord

    base = dict(backend="tfbench", precision="fp32", T=4, N=8, gpus=2, chunks=2, direction="forward", device="cpu",
                device_name="x", neuron="n", status="ok", checked=True)
    latency = ScalingRecord(**base)
    assert {"mode", "runs"}.isdisjoint(latency.config())
    assert ScalingRecord(**base, mode="throughput", runs=8).key != latency.key
