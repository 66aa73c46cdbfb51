"""Pre-training speed: windows per second of each objective at the `cpu` and `paper` presets.

  python bench/pretrain.py --data data/button-press.zarr [--methods afro dynamo3d pointmae] [--presets cpu paper]

A window is one sample of the objective (AFRO `paper`: 33 frames of 512 points, 17 of them
encoded by the online and the EMA encoders). The full step is timed: encoders, IDM/FDM, VICReg,
backward, AdamW, teacher update; two warm-up steps are not counted. The AFRO authors' code at its
published sizes ran at about 7.6 windows/s on this kind of machine (shared/PROTOCOL.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


def windows_per_second(data: Path, method: str, preset: str, steps: int, batch: int | None,
                       device: str = "cpu") -> tuple[float, int]:
    from dynarep.data.normalizer import MinMaxNormalizer
    from dynarep.data.sampler import SequenceSampler
    from dynarep.data.store import load_demonstrations
    from dynarep.objectives.base import build_objective
    from dynarep.training.loop import to_device
    from dynarep.training.pretrain import pretrain_preset

    cfg, tcfg, _ = pretrain_preset(method, preset)
    demos = load_demonstrations((data,), keys=("point_cloud",))
    torch.manual_seed(0)
    objective = build_objective(method, cfg)
    objective.normalizer = MinMaxNormalizer().fit({"point_cloud": demos.arrays["point_cloud"]})
    objective.to(device)
    sampler = SequenceSampler(demos.arrays, demos.episode_ends, cfg.window)
    params = [p for g in objective.parameter_groups(1e-4, None) for p in g["params"]]
    opt = torch.optim.AdamW(params, lr=1e-4)
    B = batch or tcfg.batch_size
    rng = np.random.default_rng(0)
    for i in range(steps + 2):
        if i == 2:
            synchronize(device)
            t0 = time.perf_counter()
        out = objective(to_device(sampler.sample_batch(rng.integers(0, len(sampler), B)), torch.device(device)))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        objective.on_step_end(i, steps + 2)
    synchronize(device)
    return steps * B / (time.perf_counter() - t0), B


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--methods", nargs="+", default=["afro", "dynamo3d", "pointmae"])
    p.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=None)
    a = p.parse_args()
    from dynarep.runtime import tune_allocator

    tune_allocator()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for method in a.methods:
        for preset in a.presets:
            rate, batch = windows_per_second(a.data, method, preset, a.steps, a.batch)
            print(f"{method:9s} {preset:6s} batch {batch:4d}: {rate:7.1f} windows/s")


if __name__ == "__main__":
    main()
