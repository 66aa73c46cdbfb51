"""What a frozen representation encodes, without rollouts.

`dynarep probe --encoder DIR --data PATH`:
- a linear probe (ridge regression, closed form) from frozen features to the robot state (DP3's 9-d
  state) and to the object state (MetaWorld's first object position, `full_state[4:7]`), fitted on
  some episodes and scored (R², per target group) on held-out episodes: how much control-relevant
  information the encoder keeps, in the style of DynaMo's offline probes;
- when the data has actions, two action probes on the same split: from f_t to the action a_t (what
  a policy on the frozen features must read out) and, for inverse dynamics, from (f_t, f_{t+1} - f_t)
  to a_t (whether the change between two frames holds the action that caused it, which a
  dynamics-aware pre-training claims to teach). State probes saturate near R² 1 even for a random
  encoder on one task's demonstrations; the action probes leave more room between encoders. The
  same two probes on the simulator's true state (`full_state`) are reported beside them, as the
  ceiling of a linear read-out;
- feature statistics (per-dimension standard deviation: the collapse watch), and the same after
  a Mish, because DP3's FiLM conditioning passes the features through Mish before its Linear: a
  frozen feature that sits near Mish's minimum (about -1.2) reaches the policy flattened;
- optionally a picture of one point cloud coloured by the first three PCA components of the
  encoder's per-point features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dynarep.config import save_json
from dynarep.data.sampler import split_episodes
from dynarep.data.store import ZarrDataset
from dynarep.errors import ConfigError
from dynarep.runtime import provenance

TARGETS = {"robot_state": ("state", slice(None)), "object_position": ("full_state", slice(4, 7))}
ACTION_PROBES = ("action", "inverse_dynamics")  # the keys `action_probes` scores, after the state TARGETS


@dataclass
class ProbeArgs:
    """Linear probes from frozen encoder features to robot state, object state, actions and inverse
    dynamics; feature spread; a PCA picture."""

    encoder: Path = Path("runs/pretrain")
    """An exported encoder directory (from `dynarep pretrain`), or a trained policy's directory (from
    `dynarep train`), whose visual encoder is probed: e.g. what DP3 learned from scratch."""
    data: Path = Path("data/demos.zarr")
    out: Path = Path("probe.json")
    val_ratio: float = 0.3
    ridge: float = 1e-3
    seed: int = 0
    pca_image: Path | None = None
    """Write a PCA-coloured point cloud picture here."""
    pca_step: int = 40


@torch.no_grad()
def encode_dataset(encoder, normalizer, clouds: np.ndarray, batch: int = 256) -> np.ndarray:
    feats = []
    for i in range(0, len(clouds), batch):
        pc = torch.from_numpy(clouds[i : i + batch, :, : encoder.in_channels]).float()
        if normalizer is not None and "point_cloud" in normalizer:
            pc = normalizer.normalize("point_cloud", pc)
        feats.append(encoder({"point_cloud": pc}).numpy())
    return np.concatenate(feats)


def effective_rank(features: np.ndarray) -> float:
    """exp(entropy) of the normalised covariance spectrum (Roy & Vetterli 2007): how many directions
    the features really use; a collapsing encoder drives it towards 1 while per-dimension stds can
    still look healthy."""
    eig = np.clip(np.linalg.eigvalsh(np.cov(features, rowvar=False)), 0, None)
    p = eig / max(eig.sum(), 1e-12)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def ridge_r2(x_train, y_train, x_val, y_val, ridge: float) -> float:
    """R² on validation of a ridge regression with standardised inputs and targets."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    ymu, ysd = y_train.mean(0), y_train.std(0) + 1e-6
    xt, xv = (x_train - mu) / sd, (x_val - mu) / sd
    xt, xv = np.hstack([xt, np.ones((len(xt), 1))]), np.hstack([xv, np.ones((len(xv), 1))])
    w = np.linalg.solve(xt.T @ xt + ridge * len(xt) * np.eye(xt.shape[1]), xt.T @ ((y_train - ymu) / ysd))
    pred = xv @ w * ysd + ymu
    ss_res = ((y_val - pred) ** 2).sum(0)
    ss_tot = ((y_val - y_val.mean(0)) ** 2).sum(0) + 1e-12
    return float(np.mean(1 - ss_res / ss_tot))


def probe(args: ProbeArgs) -> dict:
    from dynarep.training.export import load_encoder

    encoder, normalizer = load_encoder(args.encoder)
    encoder.eval()
    ds = ZarrDataset.open(args.data)
    if ds.n_episodes < 2:
        raise ConfigError(f"{args.data}: the probe needs at least 2 episodes to hold some out, found {ds.n_episodes}")
    features = encode_dataset(encoder, normalizer, ds.read("point_cloud").astype(np.float32))
    train_mask, val_mask = split_episodes(ds.n_episodes, args.val_ratio, seed=args.seed)
    step_episode = np.repeat(np.arange(ds.n_episodes), ds.episode_lengths)
    tr, va = train_mask[step_episode], val_mask[step_episode]
    scores = {}
    for name, (key, cols) in TARGETS.items():
        if key in ds:
            y = ds.read(key)[:, cols].astype(np.float64)
            scores[name] = ridge_r2(features[tr], y[tr], features[va], y[va], args.ridge)
    reference = {}
    if "action" in ds:
        actions = ds.read("action").astype(np.float64)
        scores.update(action_probes(features, actions, ds.episode_lengths, tr, args.ridge))
        if "full_state" in ds:  # the same probes on the simulator's true state: a linear read-out's ceiling
            reference = action_probes(ds.read("full_state").astype(np.float64), actions, ds.episode_lengths, tr, args.ridge)
    report = {
        "encoder": str(args.encoder), "data": str(args.data), "r2": scores, "r2_from_true_state": reference,
        "train_steps": int(tr.sum()), "val_steps": int(va.sum()), "feature_std": feature_spread(features),
    }
    report.update(provenance())
    if args.pca_image is not None:
        from dynarep.evaluation.plots import scatter_cloud

        step = min(args.pca_step, ds.n_steps - 1)
        xyz, colours = pca_colours(encoder, normalizer, ds.read("point_cloud", step)[:, : encoder.in_channels])
        scatter_cloud(xyz, colours, args.pca_image, title=f"step {step}: first 3 PCA components of per-point features")
        report["pca_image"] = str(args.pca_image)
        # kept beside the picture so that a report can draw the cloud interactively
        report["pca_points"] = {"step": step, "xyz": np.round(xyz, 4).tolist(), "rgb": np.round(colours, 3).tolist()}
    save_json(report, Path(args.out))
    return report


def feature_spread(features: np.ndarray) -> dict:
    """Per-dimension std over the dataset (mean, min, dims below 0.01), effective rank, and the mean
    std after a Mish, the first thing DP3's FiLM conditioning does to the features."""
    std = features.std(0)
    after_mish = torch.nn.functional.mish(torch.from_numpy(features)).numpy().std(0)
    return {"mean": float(std.mean()), "min": float(std.min()), "dead_dims": int((std < 1e-2).sum()),
            "dims": int(std.size), "effective_rank": effective_rank(features), "after_mish_mean": float(after_mish.mean())}


def action_probes(features: np.ndarray, actions: np.ndarray, lengths: np.ndarray, train: np.ndarray,
                  ridge: float) -> dict[str, float]:
    """R² on held-out steps (`~train`) of a_t from f_t, and of a_t from (f_t, f_{t+1} - f_t) over the
    steps that have a successor in their episode."""
    has_next = np.ones(len(features), bool)
    has_next[np.cumsum(lengths) - 1] = False
    now = np.flatnonzero(has_next)
    pairs = np.hstack([features[now], features[now + 1] - features[now]])
    tr, y = train[now], actions[now]
    return dict(zip(ACTION_PROBES, (ridge_r2(features[train], actions[train], features[~train], actions[~train], ridge),
                                    ridge_r2(pairs[tr], y[tr], pairs[~tr], y[~tr], ridge))))


@torch.no_grad()
def pca_colours(encoder, normalizer, cloud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xyz, rgb in [0, 1]) of one cloud: its per-point features projected on their first 3 principal axes."""
    pc = torch.from_numpy(cloud.astype(np.float32))[None]
    if normalizer is not None and "point_cloud" in normalizer:
        pc = normalizer.normalize("point_cloud", pc)
    if not hasattr(encoder, "point_features"):
        raise ConfigError(f"encoder {type(encoder).__name__} has no per-point features to colour a cloud with")
    feats = encoder.point_features({"point_cloud": pc})[0].numpy()
    centred = feats - feats.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = centred @ vt[:3].T
    return cloud[:, :3].astype(np.float32), (comps - comps.min(0)) / (np.ptp(comps, axis=0) + 1e-9)


def format_probe(report: dict) -> str:
    r2 = ", ".join(f"{k} R² {v:.3f}" for k, v in report["r2"].items())
    fs = report["feature_std"]
    return (f"{r2}; feature std mean {fs['mean']:.3f}, min {fs['min']:.3f}, dead dims {fs['dead_dims']}/{fs['dims']}, "
            f"effective rank {fs['effective_rank']:.1f}, std after Mish {fs['after_mish_mean']:.3f}")
