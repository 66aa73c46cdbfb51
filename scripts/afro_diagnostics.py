"""Where an AFRO run's feature spread comes from, read from its last training checkpoint.

  python scripts/afro_diagnostics.py runs/baseline/encoders/afro/pick-place [--windows 256]

On windows of the run's own data it prints, for the online features f, the EMA teacher's targets
and the forward model's predictions at low, middle and high diffusion steps: mean per-dimension
std, effective rank, the MSE to the target, and the share of the prediction's variance that comes
from the diffusion noise alone (the same inputs predicted under two noise draws). VICReg's variance
and covariance terms act on the prediction and the target only. If the prediction's spread comes
from the injected noise, those terms ask nothing of the encoder, and the encoder is free to
collapse. When the data has actions, a ridge probe (fit on half the pairs, scored on the other)
asks whether the latent action encodes the actions taken between the two frames and the robot's
displacement (AFRO's claim is that it does, without ever seeing actions), and, for reference, how
much of them the feature difference it is computed from holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dynarep.config import from_dict
from dynarep.data.normalizer import MinMaxNormalizer
from dynarep.data.sampler import SequenceSampler
from dynarep.data.store import load_demonstrations
from dynarep.errors import DataError
from dynarep.evaluation.probes import effective_rank, ridge_r2
from dynarep.objectives.base import build_objective, objective_config
from dynarep.training.checkpoint import load_checkpoint, load_matching


def read_config(run: Path) -> dict:
    """The run's config, or a one-line exit saying why this directory is not an AFRO run."""
    path = run / "config.json"
    if not path.is_file():
        sys.exit(f"{path}: not found; expected a `dynarep pretrain --method afro` output directory")
    config = json.loads(path.read_text())
    if config.get("method") != "afro":
        sys.exit(f"{path}: method is {config.get('method')!r}; these diagnostics read AFRO runs only")
    if not (run / "checkpoints" / "latest").exists():
        sys.exit(f"{run}/checkpoints/latest: not found; the run has no training checkpoint to read")
    return config


def load_run(run: Path):
    config = read_config(run)
    cfg = from_dict(objective_config(config["method"]), config["objective"], f"{run}/config.json")
    objective = build_objective(config["method"], cfg).eval()
    tensors, _ = load_checkpoint(run / "checkpoints" / "latest")
    load_matching(objective, tensors, "model.", run / "checkpoints" / "latest")
    paths = [Path(p["path"]) for p in config["data"]]
    try:  # actions and robot state, when the data has them, only to probe the latent actions
        demos = load_demonstrations(paths, keys=(*objective.data_keys, "state", "action"))
    except DataError:
        demos = load_demonstrations(paths, keys=objective.data_keys)
    objective.normalizer = MinMaxNormalizer().fit({"point_cloud": demos.arrays["point_cloud"]})
    return objective, SequenceSampler(demos.arrays, demos.episode_ends, cfg.window)


def what_happened(batch: dict[str, torch.Tensor], k: int, pairs: int) -> dict[str, np.ndarray]:
    """Per pair of frames (t, t+k): the sum of the k actions taken and the robot's displacement."""
    actions, state = batch["action"], batch["state"]
    frames = state[:, ::k]
    moved = (frames[:, 1:] - frames[:, :-1]).reshape(pairs, -1)
    M = frames.shape[1] - 1
    taken = torch.stack([actions[:, i * k:(i + 1) * k].sum(1) for i in range(M)], dim=1).reshape(pairs, -1)
    return {"actions taken (sum over k)": taken.numpy(), "end-effector displacement": moved[:, :3].numpy()}


def spread(x: torch.Tensor) -> str:
    return f"std {x.std(0).mean():.3f}, effective rank {effective_rank(x.numpy()):5.1f}"


def noise_share(p0: torch.Tensor, p1: torch.Tensor) -> float:
    """Share of a prediction's variance that comes from the diffusion noise: the variance between two
    noise draws of the same input, E[(p0 - p1)^2] / 2, over the variance of all predictions. Both are
    estimates, so near pure noise the ratio can pass 1 by sampling error; it is capped there."""
    noise = ((p0 - p1) ** 2).sum() / (2 * len(p0))
    both = torch.cat([p0, p1])
    total = ((both - both.mean(0)) ** 2).sum() / (len(both) - 1)
    return min(1.0, float(noise / total.clamp_min(1e-12)))


@torch.no_grad()
def diagnose(run: Path, windows: int, seed: int) -> None:
    objective, sampler = load_run(run)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batch = objective.prepare({k: torch.as_tensor(v) for k, v in
                               sampler.sample_batch(rng.integers(0, len(sampler), windows)).items()})
    f, target = objective.encode_pairs(batch)
    D = f.shape[-1]
    f_t, f_tk = f[:, :-1].reshape(-1, D), f[:, 1:].reshape(-1, D)
    y_tk = target[:, 1:].reshape(-1, D)
    action = objective.idm(f_t, f_tk)
    print(f"{run}: {len(f_t)} pairs from {windows} windows")
    print(f"  online features f      {spread(f_t)}")
    print(f"  teacher targets        {spread(y_tk)}")
    print(f"  latent actions         {spread(action)}")
    if "action" in batch:
        sources = {"latent action": action, "feature difference": f_tk - f_t}
        for name, target in what_happened(batch, objective.cfg.interval, f_t.shape[0]).items():
            half = len(target) // 2  # windows are independent draws; the first half fits, the second scores
            for source, x in sources.items():
                r2 = ridge_r2(x[:half].numpy(), target[:half], x[half:].numpy(), target[half:], 1e-3)
                print(f"  {source:18s} → {name:27s} R² {r2:5.2f} on held-out pairs")
    if objective.cfg.deterministic_fdm:  # no noise path: the prediction is a function of (f_t, action)
        pred = objective.predict_target(y_tk, f_t, action)
        print(f"  prediction (deterministic FDM)  {spread(pred)}, MSE to target {float(((pred - y_tk) ** 2).mean()):.4f}")
        return
    steps_total = objective.cfg.diffusion_steps
    for lo, hi in ((0, steps_total // 10), (steps_total * 9 // 20, steps_total * 11 // 20), (steps_total * 9 // 10, steps_total)):
        steps = torch.randint(lo, hi, (len(f_t),))
        preds = []
        for _ in range(2):
            noisy = objective.scheduler.add_noise(y_tk, torch.randn_like(y_tk), steps)
            preds.append(objective.fdm(noisy, steps, f_t, action))
        share = noise_share(*preds)
        mse = float(((preds[0] - y_tk) ** 2).mean())
        print(f"  prediction, steps {lo:2d}-{hi - 1:2d}  {spread(preds[0])}, MSE to target {mse:.4f}, "
              f"variance from the noise {share:.0%}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a `dynarep pretrain --method afro` output directory")
    p.add_argument("--windows", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    diagnose(a.run, a.windows, a.seed)


if __name__ == "__main__":
    main()
