"""`dynarep train`: a policy from demonstrations, optionally on a pre-trained encoder.

Output directory:
  config.json                 the resolved configuration
  log.jsonl, tb/              training log (JSON lines) and TensorBoard scalars
  checkpoints/latest/         full training state (resume)
  policy/                     the exported policy: model.safetensors (EMA weights + normalizer)
                              and policy.json (configs, data summary); what `dynarep eval` loads
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dynarep.config import save_json, to_dict
from dynarep.data.normalizer import MinMaxNormalizer
from dynarep.data.sampler import SequenceSampler, episode_frames, split_episodes
from dynarep.data.store import Demonstrations, load_demonstrations
from dynarep.errors import ConfigError
from dynarep.policies.base import VISUAL_FEATURE, Policy, PolicyConfig, build_policy
from dynarep.runtime import provenance
from dynarep.training.export import export_policy, load_encoder, read_encoder_config
from dynarep.training.loop import TrainConfig, Trainer

POLICY_KEYS = ("point_cloud", "state", "action")



def policy_preset(name: str, kind: str = "diffusion") -> tuple[PolicyConfig, TrainConfig]:
    """`paper`: DP3's published sizes and schedule (for a GPU); `cpu`: minutes on two cores.

    paper: UNet 512/1024/2048 (255 M), batch 128, AdamW 1e-4, 500 warm-up steps, 8000 steps
    (about DP3's 1000 MetaWorld epochs of 10 demonstrations), no gradient clipping, EMA.
    cpu: UNet 64/128/256 (5.3 M, the size the DP3 authors' code was measured with here),
    batch 64, 1000 steps (64 k samples; the DP3 authors' code solved button-press here after 44 k),
    100 warm-up steps.
    """
    if name == "paper":
        return PolicyConfig(kind=kind), TrainConfig(steps=8000, batch_size=128, warmup_steps=500, grad_clip=0.0,
                                                    val_every=1000, checkpoint_every=1000)
    if name == "cpu":
        return (PolicyConfig(kind=kind, down_dims=(64, 128, 256)),
                TrainConfig(steps=1000, batch_size=64, warmup_steps=100, val_every=250, checkpoint_every=250))
    raise ConfigError(f"unknown preset '{name}'; choose 'paper' or 'cpu'")


@dataclass
class TrainPolicyArgs:
    """Train a policy (DP3-style diffusion, or the MLP probe) on demonstration datasets."""

    data: tuple[Path, ...] = ()
    """One or more zarr datasets (ours or DP3's layout)."""
    out: Path = Path("runs/policy")
    policy: str = "diffusion"
    """diffusion (DP3) or mlp (DynaFLIP's frozen-encoder probe)."""
    preset: str = "cpu"
    """paper (published sizes, for a GPU) or cpu (minutes on two cores)."""
    encoder: Path | None = None
    """A pre-trained encoder directory (from `dynarep pretrain`), or a `dynarep train` output whose
    policy's visual encoder to transfer (e.g. DP3's end-to-end encoder, frozen, as a control)."""
    freeze: bool = False
    """Keep the pre-trained encoder fixed (AFRO's protocol)."""
    finetune: bool = False
    """Train the pre-trained encoder too, at --encoder-lr."""
    encoder_lr: float = 1e-5
    standardize_features: bool = False
    """With --freeze: standardise the frozen encoder's features per dimension over the training frames
    (not in DP3 or AFRO; a diagnostic of feature scale)."""
    cache_features: bool = False
    """With --freeze: compute the frozen encoder's features of every frame once, before training,
    instead of at every step (the encoder's forward pass is about half of a frozen step on CPU). Same
    model, batches and random draws; the features match to float rounding, not bit for bit."""
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    checkpoint_every: int | None = None
    """Save the full training state every N steps (resume point); default from the preset."""
    grad_clip: float | None = None
    """Override the preset's gradient clipping (0 disables, as DP3 ships)."""
    warmup_steps: int | None = None
    seed: int = 0
    val_ratio: float = 0.02
    """DP3's split: with 10 demonstrations one is held out for validation."""
    max_episodes: int | None = None
    device: str = "auto"
    down_dims: tuple[int, ...] | None = None
    """Override the UNet widths of the preset."""
    encoder_name: str | None = None
    """Override the visual encoder of the preset (pointnet, point_transformer)."""
    eval_every: int = 0
    """DP3's protocol beside ours: roll out the EMA weights every N steps (0: off)."""
    eval_episodes: int = 20
    eval_task: str | None = None
    """Task for the periodic rollouts; default: the task of the data."""
    eval_max_steps: int = 200

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("--data: give at least one dataset")
        if self.freeze and self.finetune:
            raise ConfigError("--freeze and --finetune exclude each other")
        if (self.freeze or self.finetune) and self.encoder is None:
            raise ConfigError("--freeze/--finetune need --encoder DIR (a pre-trained encoder)")
        if self.standardize_features and not self.freeze:
            raise ConfigError("--standardize-features needs --freeze: the statistics are fixed once, before training")
        if self.cache_features and not self.freeze:
            raise ConfigError("--cache-features needs --freeze: only a frozen encoder's features stay fixed")


def resolve_configs(args: TrainPolicyArgs, demos: Demonstrations) -> tuple[PolicyConfig, TrainConfig]:
    pcfg, tcfg = policy_preset(args.preset, args.policy)
    pcfg.state_dim = demos.arrays["state"].shape[-1]
    pcfg.action_dim = demos.arrays["action"].shape[-1]
    pcfg.encoder.in_channels = min(pcfg.encoder.in_channels, demos.arrays["point_cloud"].shape[-1])
    if args.down_dims:
        pcfg.down_dims = tuple(args.down_dims)
    if args.encoder_name:
        pcfg.encoder.name = args.encoder_name
    if args.encoder is not None:
        pcfg.encoder = read_encoder_config(args.encoder)
    pcfg.standardize_features = args.standardize_features
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                 "checkpoint_every": args.checkpoint_every, "grad_clip": args.grad_clip,
                 "warmup_steps": args.warmup_steps}
    tcfg = dataclasses.replace(tcfg, **{k: v for k, v in overrides.items() if v is not None},
                               seed=args.seed, device=args.device,
                               encoder_lr=args.encoder_lr if args.finetune else None)
    return pcfg, tcfg


def with_cached_features(policy: Policy, arrays: dict[str, np.ndarray], device: str) -> dict[str, np.ndarray]:
    """The arrays with every frame's frozen visual feature in place of its point cloud."""
    run_on = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    features = policy.to(run_on).frozen_visual_features(torch.as_tensor(arrays["point_cloud"]))
    policy.to("cpu")  # the trainer places the policy itself
    rest = {k: v for k, v in arrays.items() if k != "point_cloud"}
    return {**rest, VISUAL_FEATURE: features.cpu().numpy()}


def seeded_policy(pcfg: PolicyConfig, seed: int) -> Policy:
    """The untrained policy of SEED. Its visual encoder is drawn first, so it equals the encoder that
    `dynarep pretrain --method random --seed SEED` exports, the start of every pre-training of that
    seed: DP3 from scratch, the random encoder and each method's encoder of one seed share a start."""
    torch.manual_seed(seed)
    return build_policy(pcfg)


def train_policy(args: TrainPolicyArgs, callbacks: list | None = None) -> Path:
    args.validate()
    demos = load_demonstrations(args.data, POLICY_KEYS)
    pcfg, tcfg = resolve_configs(args, demos)
    policy = seeded_policy(pcfg, tcfg.seed)
    normalizer = MinMaxNormalizer().fit(demos.arrays)
    if args.encoder is not None:
        encoder, enc_norm = load_encoder(args.encoder)
        policy.obs_encoder.visual.load_state_dict(encoder.state_dict())
        if enc_norm is not None:  # the encoder was trained on clouds normalised its own way
            normalizer = MinMaxNormalizer.from_state_dict({**normalizer.state_dict(), **enc_norm.state_dict()})
        if args.freeze:
            policy.encoder.freeze()
    policy.set_normalizer(normalizer)
    n_eps = len(demos.episode_ends)
    train_mask, val_mask = split_episodes(n_eps, args.val_ratio if n_eps > 1 else 0.0, seed=tcfg.seed,
                                          max_episodes=args.max_episodes)
    window = dict(sequence_length=pcfg.horizon, pad_before=pcfg.n_obs_steps - 1, pad_after=pcfg.n_action_steps - 1,
                  key_steps={"point_cloud": pcfg.n_obs_steps, "state": pcfg.n_obs_steps})
    arrays = demos.arrays
    if args.cache_features:
        arrays = with_cached_features(policy, arrays, tcfg.device)
        window["key_steps"] = {VISUAL_FEATURE: pcfg.n_obs_steps, "state": pcfg.n_obs_steps}
    if pcfg.standardize_features:  # statistics of the training frames' features, cached ones if there are
        frames = episode_frames(demos.episode_ends, train_mask)
        features = (torch.as_tensor(arrays[VISUAL_FEATURE][frames]) if VISUAL_FEATURE in arrays
                    else policy.frozen_visual_features(torch.as_tensor(arrays["point_cloud"][frames])))
        policy.obs_encoder.set_standardization(features)
    train = SequenceSampler(arrays, demos.episode_ends, episode_mask=train_mask, **window)
    val = SequenceSampler(arrays, demos.episode_ends, episode_mask=val_mask, **window) if val_mask.any() else None
    run_config = {"args": to_dict(args), "policy": to_dict(pcfg), "train": to_dict(tcfg), "data": demos.sources,
                  **provenance()}
    out = Path(args.out)
    save_json(run_config, out / "config.json")
    trainer = Trainer(policy, train, val, tcfg, out, run_config, callbacks=callbacks)
    trainer.fit()
    if trainer.acc.is_main_process:
        export_policy(out / "policy", policy, trainer.final_weights(), {
            "steps": trainer.step, "train_seconds": trainer.train_seconds, "data": demos.sources,
            "train_episodes": int(train_mask.sum()), "val_episodes": int(val_mask.sum()),
            "encoder": str(args.encoder) if args.encoder else None,
            "encoder_mode": "frozen" if args.freeze else "finetune" if args.finetune else "scratch",
            "observation": demos.sources[0]["observation"],
        })
    return out
