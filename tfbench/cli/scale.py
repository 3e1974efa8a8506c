"""``tfbench scale``: one LIF layer split over 1, 2, 4 (8) GPUs by the temporal pipeline (the paper's Fig. 6):
the latency of one run (neurons in chunks) and the throughput of R independent runs pipelined."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..results.schema import SCALING_MODES as MODES
from .common import (choose, choose_list, console, device_option, err_console, fail, int_list, output_folder,
                     pick_device)


def scale(
    time_steps: Annotated[str, typer.Option("-T", "--time-steps", help="Time steps, comma-separated.")]
    = "1024,2048,4096",
    neurons: Annotated[int, typer.Option("-N", "--neurons", min=1, help="Neurons in the layer.")] = 1_000_000,
    gpus: Annotated[str, typer.Option(help=(
        "Process counts k to split T over, comma-separated; the job starts max(k) processes (one GPU each) and "
        "the first k form each pipeline. k=1 is Ts, the single-GPU time."))] = "1,2,4",
    mode: Annotated[str, typer.Option(help=(
        "latency: one run, its neurons in chunks flowing rank to rank (--chunks); throughput: R independent "
        "runs pipelined through the ranks, the whole layer per segment (--runs), as the paper's Fig. 6 "
        "averaged 1,000 runs. Comma-separated for both."))] = "latency,throughput",
    chunks: Annotated[str, typer.Option(help=(
        "latency: neuron chunks per rank, comma-separated (each is a row): rank g starts chunk c as soon as "
        "rank g-1 has sent it. More chunks fill the pipeline sooner; fewer keep each chunk's kernel wide "
        "enough to fill the GPU."))] = "16",
    runs: Annotated[str, typer.Option(help=(
        "throughput: independent runs R per timed repeat, comma-separated (each is a row). The fill and "
        "drain cost k-1 segments, so k GPUs give at most k*R/(R+k-1)."))] = "128",
    precision: Annotated[str, typer.Option(help="fp32, bf16 or fp16.")] = "fp32",
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats per case (median, p10, p90).")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed repeats first.")] = 3,
    unroll: Annotated[int | None, typer.Option(min=1, show_default="the op's default", help=(
        "The CUDA kernel's time unroll (steps loaded ahead) for this sweep, recorded in each row."))] = None,
    device: Annotated[str | None, typer.Option(callback=device_option, show_default="the best device present",
                                               help="cuda (one GPU per process, NCCL) or cpu (gloo).")] = None,
    out: Annotated[Path, typer.Option(help="Results folder: records appended to OUT/scaling.jsonl, the table "
                                           "and plot written beside it.")] = Path("results"),
) -> None:
    """Time one LIF layer split over k processes by the temporal pipeline, forward and backward: one run's
    latency with the paper's model k*Ts/(k*(k-1)*Tc+Ts), and R runs' throughput with
    R*Ts/(R*tseg+(k-1)*(tseg+Tc)), each beside the measured speed-up."""
    import torch

    from ..bench.scaling import ScalingConfig
    from ..parallel import dist as tdist
    from ..report import scaling as report
    from ..results.store import Store, load
    from . import distributed

    out = output_folder(out)
    Ts = tuple(int_list("T", time_steps))
    ks = tuple(sorted(int_list("gpus", gpus)))
    cs = tuple(int_list("chunks", chunks))
    modes = tuple(choose_list("mode", mode, MODES))
    rs = tuple(int_list("runs", runs))
    precision = choose("precision", precision, ["fp32", "bf16", "fp16"])
    dev = torch.device(pick_device(device))
    nproc = max(ks)
    for T in Ts:
        for k in ks:
            if T % k:
                fail(f"T={T} is not divisible by {k} GPUs; choose T values that every --gpus value divides")
    cfg = ScalingConfig(Ts=Ts, N=neurons, gpus=ks, chunks=cs, precision=precision, repeats=repeats, warmup=warmup,
                        unroll=unroll, modes=modes, runs=rs)
    if not tdist.in_launcher():
        if tdist.gpus_shared(dev.type, nproc):
            fail(f"tfbench scale times the hops between GPUs: {tdist.SHARE_GPUS_ENV}=1 would put {nproc} processes "
                 f"on {torch.cuda.device_count()} GPU(s); unset it, or choose --gpus <= {torch.cuda.device_count()}")
        distributed.check_gpus(dev.type, nproc)
        what = [f"latency with chunks {','.join(map(str, cs))}"] if "latency" in modes else []
        what += [f"throughput of {','.join(map(str, rs))} runs"] if "throughput" in modes else []
        err_console().print(f"tfbench scale: N={neurons:,}, T={','.join(map(str, Ts))}, gpus {','.join(map(str, ks))}, "
                            f"{' and '.join(what)}, {precision}, {nproc} processes ({dev.type})",
                            highlight=False, soft_wrap=True)
        distributed.launch_ranks(nproc)
        return
    from ..bench.scaling import run

    try:
        device = tdist.init(dev.type)
    except ValueError as e:
        fail(str(e), 1)
    if tdist.world_size() < nproc:
        fail(f"--gpus {max(ks)} needs {max(ks)} processes, torchrun started {tdist.world_size()}")
    try:
        records = run(cfg, device)
    except Exception as e:  # noqa: BLE001 - a failed rank stops the job with one line
        tdist.fail_fast(f"error: {tdist.one_line(e)}")
    if tdist.is_main():
        store = Store(out)
        for rec in records:
            store.append(rec)
        df = load(store.scaling.path, kind="scaling")
        keys = {r.key for r in records}
        table = report.scaling_table(df[df["key"].isin(keys)])
        console().print(report.to_markdown(table), highlight=False, soft_wrap=True, markup=False)
        (Path(out) / "scaling.md").write_text(report.scaling_markdown(df))
        made = []
        try:
            made = report.scaling_plot(df, out)
        except ValueError as e:
            err_console().print(f"no plot: {e}", highlight=False, soft_wrap=True)
        err_console().print(f"recorded in {store.scaling.path}; table {Path(out) / 'scaling.md'}"
                            + (f"; plot {made[0]}" if made else ""), highlight=False, soft_wrap=True)
    tdist.shutdown()
