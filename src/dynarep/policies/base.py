"""What every policy shares: the observation encoder (visual encoder ⊕ state MLP, as DP3), the
normalizer, the config, and the two calls the training loop and the evaluator make.

Batches are dicts of tensors with a time axis: `point_cloud` (B, T, N, C), `state` (B, T, D),
`action` (B, T, A). The first `n_obs_steps` steps are the observation; actions span `horizon`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from dynarep.data.normalizer import MinMaxNormalizer
from dynarep.errors import ConfigError
from dynarep.models.encoders import Encoder, EncoderConfig, build_encoder
from dynarep.registry import Registry

OBS_KEYS = ("point_cloud", "state")
VISUAL_FEATURE = "visual_feature"
"""Batch key of precomputed visual features (B, T, D): a frozen encoder's output, computed once
(`dynarep train --freeze --cache-features`); when present the encoder is not run."""


@dataclass
class PolicyConfig:
    """Policy architecture. `kind` picks the registered policy; unused fields are ignored."""

    kind: str = "diffusion"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    state_hidden: tuple[int, ...] = (64, 64)
    horizon: int = 16
    n_obs_steps: int = 2
    n_action_steps: int = 8
    # diffusion (DP3: DDIM, sample prediction, cosine schedule, 100 train / 10 inference steps)
    down_dims: tuple[int, ...] = (512, 1024, 2048)
    step_embed_dim: int = 128
    kernel: int = 5
    groups: int = 8
    train_timesteps: int = 100
    inference_steps: int = 10
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"
    # MLP policy (DynaFLIP's frozen-encoder probe: 3 layers)
    mlp_hidden: tuple[int, ...] = (256, 256)
    normalize_point_cloud: bool = True
    """DP3 min-max normalises xyz per axis (its LinearNormalizer 'limits' mode)."""
    standardize_features: bool = False
    """Standardise the visual feature per dimension with its mean and std over the training frames,
    fixed once before training (for a frozen encoder). Neither DP3 nor AFRO does this; it separates
    what a frozen encoder's features hold from the scale at which they hold it."""
    state_dim: int = 9
    action_dim: int = 4

    def validate(self) -> None:
        if not 1 <= self.n_obs_steps <= self.horizon:
            raise ConfigError(f"n_obs_steps must be in [1, horizon={self.horizon}], got {self.n_obs_steps}")
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs_steps + 1:
            raise ConfigError(
                f"n_action_steps={self.n_action_steps} does not fit horizon {self.horizon} after {self.n_obs_steps} obs steps"
            )
        if self.kind == "diffusion" and self.horizon % (2 ** (len(self.down_dims) - 1)):
            raise ConfigError(f"horizon {self.horizon} must be divisible by 2^(len(down_dims)-1) for the UNet")


class ObservationEncoder(nn.Module):
    """DP3's observation encoder: the visual feature concatenated with a state MLP feature."""

    def __init__(self, visual: Encoder, state_dim: int, state_hidden: tuple[int, ...], standardize: bool = False):
        super().__init__()
        self.visual = visual
        self.standardize = standardize
        if standardize:  # buffers only when used, so checkpoints without them still load
            self.register_buffer("feature_mean", torch.zeros(visual.output_dim))
            self.register_buffer("feature_std", torch.ones(visual.output_dim))
        layers: list[nn.Module] = []
        dims = (state_dim, *state_hidden)
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(state_hidden) - 1:
                layers.append(nn.ReLU())
        self.state_mlp = nn.Sequential(*layers)
        self.output_dim = visual.output_dim + state_hidden[-1]

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        visual = obs[VISUAL_FEATURE] if VISUAL_FEATURE in obs else self.visual(obs)
        if self.standardize:
            visual = (visual - self.feature_mean) / self.feature_std
        return torch.cat([visual, self.state_mlp(obs["state"])], dim=-1)

    @torch.no_grad()
    def visual_features(self, clouds: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """The visual encoder's (N, D) features of (N, P, C) normalised clouds, `chunk` at a time on
        the encoder's device (the clouds may stay in host memory)."""
        device = next(self.visual.parameters()).device
        return torch.cat([self.visual({"point_cloud": c.to(device)}) for c in clouds.split(chunk)])

    @torch.no_grad()
    def set_standardization(self, features: torch.Tensor) -> None:
        """Standardise with the per-dimension mean and std of (N, D) visual features."""
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-6))


class Policy(nn.Module):
    """Base class: observation dict (with time axis) in, action chunk out."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.obs_encoder = ObservationEncoder(build_encoder(cfg.encoder), cfg.state_dim, tuple(cfg.state_hidden),
                                              cfg.standardize_features)
        self.normalizer = MinMaxNormalizer()

    @property
    def encoder(self) -> Encoder:
        return self.obs_encoder.visual

    def set_normalizer(self, normalizer: MinMaxNormalizer) -> None:
        self.normalizer = normalizer

    def normalize_obs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The first n_obs_steps of every observation key, normalised, flattened to (B*To, ...)."""
        out = {}
        To = self.cfg.n_obs_steps
        for key in (*OBS_KEYS, VISUAL_FEATURE):
            if key not in batch:
                continue
            x = batch[key][:, :To]
            if key == "point_cloud":
                x = self.normalize_clouds(x)
            elif key == "state":
                x = self.normalizer.normalize(key, x)
            out[key] = x.reshape(-1, *x.shape[2:])
        return out

    def normalize_clouds(self, clouds: torch.Tensor) -> torch.Tensor:
        """Raw point clouds (..., P, C) as the encoder reads them: its channels, normalised as DP3."""
        x = clouds[..., : self.cfg.encoder.in_channels]
        return self.normalizer.normalize("point_cloud", x) if self.cfg.normalize_point_cloud else x

    def frozen_visual_features(self, clouds: torch.Tensor) -> torch.Tensor:
        """(N, D) features of (N, P, C) raw clouds, for training on a frozen encoder without running
        it at every step. They match the per-step features to float rounding only: matrix kernels
        block by batch size, so a cached run is not bit-identical to an uncached one."""
        if not self.encoder.frozen:
            raise ConfigError("visual features can be cached only for a frozen encoder (--freeze)")
        return self.obs_encoder.visual_features(self.normalize_clouds(clouds))

    def global_condition(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_obs_steps * feature) condition vector."""
        B = next(iter(batch.values())).shape[0]
        return self.obs_encoder(self.normalize_obs(batch)).reshape(B, -1)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.compute_loss(batch)

    def predict_action(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_action_steps, action_dim) actions to execute, in the environment's units."""
        raise NotImplementedError

    def use_inference_backend(self, backend: str, threads: int = 1) -> None:
        """Run inference with `backend`; only PyTorch unless a policy says otherwise."""
        if backend != "torch":
            raise ConfigError(f"the {self.cfg.kind} policy infers with PyTorch only, not '{backend}'")

    def parameter_groups(self, lr: float, encoder_lr: float | None) -> list[dict]:
        """Optimizer groups: the visual encoder gets its own learning rate when fine-tuned (AFRO: 1e-5)."""
        visual = [p for p in self.encoder.parameters() if p.requires_grad]
        visual_ids = {id(p) for p in self.encoder.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in visual_ids]
        groups = [{"params": rest, "lr": lr, "name": "policy"}]
        if visual:
            groups.append({"params": visual, "lr": encoder_lr or lr, "name": "encoder"})
        return groups


POLICIES: Registry[Callable[[PolicyConfig], Policy]] = Registry("policy")
register_policy = POLICIES.register


def build_policy(cfg: PolicyConfig) -> Policy:
    from dynarep.policies import diffusion, mlp  # noqa: F401  (importing registers them)

    return POLICIES.get(cfg.kind)(cfg)
