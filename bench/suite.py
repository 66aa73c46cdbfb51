"""The benchmark suite: collection, pre-training, policy training and inference, in one run.

  python -m bench [--out bench.json] [--device auto] [--full] [--task button-press]

Writes one JSON (machine, versions, and one record per benchmark) and prints one table. Every
benchmark runs in its own fresh process, so that its peak resident memory (or, on a GPU, peak
allocated memory) is its own. Training rows also give the FLOPs of a sample (counted by PyTorch's
FlopCounterMode, forward + backward) and the fraction of this machine's float32 matrix-multiply
peak that the measured throughput reaches. `--full` adds the `paper` presets (slow on a CPU).
Numbers drift on shared machines: compare implementations by alternating them in one window.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def peak_memory_mb(device: str) -> float | None:
    import torch

    from dynarep.runtime import peak_memory_mb as peak_resident_mb

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_resident_mb()


def matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> dict:
    """float32 GEMM throughput: the ceiling training rows are compared with."""
    import torch

    from bench.policy import synchronize

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return {"value": 2 * n**3 / min(times) / 1e9, "unit": "GFLOP/s"}


def collect_bench(task: str, episodes: int, steps: int, data_out: str) -> dict:
    """Observation pipeline steps/s, and `dynarep collect` end to end (its store feeds the others)."""
    from bench.collect import pipeline_steps
    from dynarep.data.store import ZarrDataset
    from dynarep.sim.collect import CollectConfig, collect

    pipeline = pipeline_steps(task, steps)
    t0 = time.perf_counter()
    collect(CollectConfig(out=Path(data_out), task=(task,), episodes=episodes))
    end_to_end = ZarrDataset.open(data_out).n_steps / (time.perf_counter() - t0)
    return {"pipeline": pipeline, "end_to_end": end_to_end}


def pretrain_bench(data: str, method: str, preset: str, steps: int, device: str) -> dict:
    from bench.pretrain import windows_per_second

    rate, batch = windows_per_second(Path(data), method, preset, steps, None, device)
    return {"value": rate, "unit": "windows/s", "batch": batch}


def train_bench(data: str, preset: str, steps: int, device: str) -> dict:
    from bench.policy import train_throughput, training_flops_per_sample

    rate = train_throughput(Path(data), preset, steps, None, device)
    return {"value": rate, "unit": "samples/s", "flops_per_sample": training_flops_per_sample(Path(data), preset, device)}


def inference_bench(preset: str, repeats: int, device: str, backend: str = "torch") -> dict:
    from bench.policy import chunk_latencies

    times = chunk_latencies(preset, repeats, device, backend) * 1e3
    return {"value": float(np.median(times)), "unit": "ms per action chunk",
            **{f"p{q}_ms": float(np.percentile(times, q)) for q in (50, 90, 99)}}


def isolated(device: str, fn, *args) -> dict:
    """Run one benchmark in a fresh spawned process; add its wall time and peak memory on `device`."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_child_init) as pool:
        return pool.submit(_measured, device, fn, *args).result()


def _child_init() -> None:
    from dynarep.runtime import tune_allocator

    tune_allocator()


def _measured(device: str, fn, *args) -> dict:
    t0 = time.perf_counter()
    result = fn(*args)
    return {**result, "seconds": time.perf_counter() - t0, "peak_memory_mb": peak_memory_mb(device)}


def machine(device: str) -> dict:
    import torch

    from dynarep.runtime import versions

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
            "versions": versions()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_suite(a: argparse.Namespace) -> dict:
    device = resolve_device(a.device)
    rows: list[dict] = []

    def add(name: str, record: dict) -> None:
        rows.append({"name": name, **record})
        print(f"  {name}: {record['value']:.1f} {record['unit']}", flush=True)

    peak = isolated(device, matmul_peak, device)
    add("matmul peak (float32)", peak)
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / f"{a.task}.zarr")
        c = isolated("cpu", collect_bench, a.task, a.episodes, a.collect_steps, data)
        add("collect: observation pipeline", {"value": c["pipeline"], "unit": "steps/s", "peak_memory_mb": c["peak_memory_mb"]})
        add("collect: end to end", {"value": c["end_to_end"], "unit": "steps/s", "peak_memory_mb": c["peak_memory_mb"],
                                    "seconds": c["seconds"]})
        presets = ["cpu", "paper"] if a.full else ["cpu"]
        for preset in presets:
            for method in ("afro", "dynamo3d"):
                add(f"pretrain {method} ({preset})", isolated(device, pretrain_bench, data, method, preset, a.steps, device))
            t = isolated(device, train_bench, data, preset, a.steps, device)
            t["fraction_of_matmul_peak"] = t["value"] * t["flops_per_sample"] / (peak["value"] * 1e9)
            add(f"train DP3 policy ({preset})", t)
            add(f"inference DP3 policy ({preset})", isolated(device, inference_bench, preset, a.repeats, device))
            if device == "cpu" and importlib.util.find_spec("onnxruntime"):
                add(f"inference DP3, onnxruntime ({preset})",
                    isolated(device, inference_bench, preset, a.repeats, device, "onnxruntime"))
    args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
    return {"machine": machine(device), "created": time.strftime("%Y-%m-%d %H:%M:%S"), "args": args, "results": rows}


def table(report: dict) -> str:
    lines = [f"{'benchmark':34s} {'value':>10s}  {'unit':20s} {'p90':>8s} {'peak MB':>8s} {'of peak':>7s}"]
    for r in report["results"]:
        p90 = f"{r['p90_ms']:.1f}" if "p90_ms" in r else ""
        frac = f"{100 * r['fraction_of_matmul_peak']:.0f}%" if "fraction_of_matmul_peak" in r else ""
        mem = f"{r['peak_memory_mb']:.0f}" if r.get("peak_memory_mb") is not None else ""
        lines.append(f"{r['name']:34s} {r['value']:10.1f}  {r['unit']:20s} {p90:>8s} {mem:>8s} {frac:>7s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench.json"))
    p.add_argument("--device", default="auto")
    p.add_argument("--task", default="button-press")
    p.add_argument("--episodes", type=int, default=3, help="episodes collected (and used by the training benchmarks)")
    p.add_argument("--collect-steps", type=int, default=200)
    p.add_argument("--steps", type=int, default=6, help="timed training steps per benchmark (after 2 warm-up steps)")
    p.add_argument("--repeats", type=int, default=30, help="action chunks timed for the latency percentiles")
    p.add_argument("--full", action="store_true", help="also the paper presets")
    a = p.parse_args(argv)
    from dynarep.runtime import allocator, reexec_under_jemalloc

    if argv is None:  # the same allocator as the `dynarep` command
        reexec_under_jemalloc("bench", sys.argv[1:])
    print(f"benchmark suite on {resolve_device(a.device)}, {allocator()} malloc", flush=True)
    report = run_suite(a)
    from dynarep.config import save_json

    save_json(report, a.out)
    print(table(report))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
