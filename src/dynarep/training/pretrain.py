"""`dynarep pretrain`: a self-supervised objective on observation windows, with the same loop as
policies; the encoder is exported into the output directory for `dynarep train --encoder DIR`.

Output directory: model.safetensors + checkpoint.json (the exported encoder, its config and the
point-cloud normalisation it was trained with), config.json, log.jsonl (per-step losses and the
feature-collapse watch), tb/, checkpoints/latest/ (resume).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path

import torch

from dynarep.config import coerce_value, save_json, to_dict
from dynarep.data.normalizer import MinMaxNormalizer
from dynarep.data.sampler import SequenceSampler
from dynarep.data.store import load_demonstrations
from dynarep.errors import ConfigError
from dynarep.objectives.base import ObjectiveConfig, build_objective, objective_config
from dynarep.runtime import provenance
from dynarep.training.export import save_encoder
from dynarep.training.loop import TrainConfig, Trainer


def pretrain_preset(method: str, preset: str) -> tuple[ObjectiveConfig, TrainConfig, int | None]:
    """(objective config, train config, epochs or None). `paper`: AFRO's published settings
    (batch 192, AdamW 1e-4, 5 warm-up steps, 301 epochs over the windows, 33-frame windows);
    `cpu`: 17-frame windows, a DiT of width 128 and depth 2, batch 32, 400 steps."""
    cfg = objective_config(method)()
    if preset == "paper":
        return cfg, TrainConfig(batch_size=192, warmup_steps=5, grad_clip=0.0, ema=False, val_every=10**9,
                                checkpoint_every=500), 301
    if preset == "cpu":
        cfg.window = min(cfg.window, 17)
        for key, value in {"fdm_width": 128, "fdm_depth": 2}.items():
            if hasattr(cfg, key):
                setattr(cfg, key, value)
        return cfg, TrainConfig(steps=400, batch_size=32, warmup_steps=20, ema=False, val_every=10**9,
                                checkpoint_every=100, log_every=5), None
    raise ConfigError(f"unknown preset '{preset}'; choose 'paper' or 'cpu'")


@dataclass
class PretrainArgs:
    """Pre-train a visual encoder with a self-supervised objective (no action labels needed)."""

    method: str = "afro"
    """afro, dynamo3d, pointmae, or random (the frozen random-encoder baseline)."""
    data: tuple[Path, ...] = ()
    out: Path = Path("runs/pretrain")
    preset: str = "cpu"
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    encoder_name: str | None = None
    """pointnet (default, DP3's) or point_transformer."""
    set: tuple[str, ...] = ()
    """Method options as KEY=VALUE, e.g. --set interval=4 deterministic_fdm=true loss=mse."""
    checkpoint_every: int | None = None


def apply_overrides(cfg: ObjectiveConfig, pairs: tuple[str, ...]) -> ObjectiveConfig:
    """KEY=VALUE strings onto a method config, typed by the config's own annotations."""
    hints = typing.get_type_hints(type(cfg))
    updates = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in hints:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE with KEY one of {sorted(hints)}")
        try:
            value = json.loads(raw)  # numbers, true/false, lists
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, (int, float)) and typing.get_origin(hints[key]) is tuple:
            value = [value]
        updates[key] = coerce_value(hints[key], value, f"--set {key}")
    return dataclasses.replace(cfg, **updates)


def pretrain(args: PretrainArgs) -> Path:
    if not args.data:
        raise ConfigError("--data: give at least one dataset")
    cfg, tcfg, epochs = pretrain_preset(args.method, args.preset)
    if args.encoder_name:
        cfg.encoder.name = args.encoder_name
    cfg = apply_overrides(cfg, args.set)
    probe = build_objective(args.method, cfg)
    demos = load_demonstrations(args.data, keys=probe.data_keys)
    cfg.encoder.in_channels = min(cfg.encoder.in_channels, demos.arrays["point_cloud"].shape[-1])
    torch.manual_seed(args.seed)
    objective = build_objective(args.method, cfg)
    objective.normalizer = MinMaxNormalizer().fit({"point_cloud": demos.arrays["point_cloud"]})
    sampler = SequenceSampler(demos.arrays, demos.episode_ends, cfg.window, pad_after=cfg.pad_after)
    overrides = {"batch_size": args.batch_size, "lr": args.lr, "checkpoint_every": args.checkpoint_every}
    tcfg = dataclasses.replace(tcfg, **{k: v for k, v in overrides.items() if v is not None}, seed=args.seed,
                               device=args.device)
    steps = args.steps if args.steps is not None else (
        math.ceil(epochs * len(sampler) / tcfg.batch_size) if epochs else tcfg.steps)
    tcfg = dataclasses.replace(tcfg, steps=max(1, steps))
    out = Path(args.out)
    run_config = {"args": to_dict(args), "method": args.method, "objective": to_dict(cfg), "train": to_dict(tcfg),
                  "data": demos.sources, "windows": len(sampler), **provenance()}
    save_json(run_config, out / "config.json")
    trained_steps, seconds = 0, 0.0
    if getattr(objective, "trains", True) and args.steps != 0:
        trainer = Trainer(objective, sampler, None, tcfg, out, run_config)
        trainer.fit()
        trained_steps, seconds = trainer.step, trainer.train_seconds
        if not trainer.acc.is_main_process:
            return out
    save_encoder(out, objective.exported_encoder(), cfg.encoder, objective.normalizer, {
        "method": args.method, "objective": to_dict(cfg), "steps": trained_steps, "data": demos.sources,
        "pretrain_seconds": seconds, **objective.export_meta(),
    })
    return out
