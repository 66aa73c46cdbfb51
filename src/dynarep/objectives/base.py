"""The pre-training objective interface: windows of observations in, named losses out, an
encoder to export. Every method is one file in this package that registers itself by name.

Batches: `point_cloud` (B, L, N, C) already normalised per axis (the objective owns a
MinMaxNormalizer that is exported with the encoder), plus any other key the objective asks for in
`data_keys`. Windows of `window` frames come from the same sampler as policies (episode-aware).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from dynarep.data.normalizer import MinMaxNormalizer
from dynarep.models.encoders import Encoder, EncoderConfig, build_encoder
from dynarep.registry import Registry


@dataclass
class ObjectiveConfig:
    """Fields shared by all objectives; each method subclasses it with its own."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    window: int = 33
    """Frames per sampled window."""
    pad_after: int = 0
    """Windows may run this many frames past an episode's end, repeating its last frame. AFRO's code
    samples through DP3's dataset, which pads 7 (n_action_steps - 1); dynarep's default keeps every
    window inside its episode, and `--set pad_after=7` reproduces theirs."""


class Objective(nn.Module):
    """Base class. Subclasses set `encoder`, implement `compute_loss` and may override the rest."""

    data_keys: tuple[str, ...] = ("point_cloud",)

    def __init__(self, cfg: ObjectiveConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder: Encoder = build_encoder(cfg.encoder)
        self.normalizer = MinMaxNormalizer()

    @property
    def window(self) -> int:
        return self.cfg.window

    def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalise the point clouds and keep the channels the encoder reads."""
        pc = batch["point_cloud"][..., : self.cfg.encoder.in_channels]
        return {**batch, "point_cloud": self.normalizer.normalize("point_cloud", pc)}

    def encode(self, encoder: nn.Module, clouds: torch.Tensor) -> torch.Tensor:
        """(B, L, N, C) clouds → (B, L, D) features, all frames in one encoder call."""
        B, L = clouds.shape[:2]
        return encoder({"point_cloud": clouds.reshape(B * L, *clouds.shape[2:])}).reshape(B, L, -1)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.compute_loss(self.prepare(batch))

    def on_step_end(self, step: int, total: int) -> None:
        """After each optimiser step (methods with an EMA teacher move it here)."""

    def parameter_groups(self, lr: float, encoder_lr: float | None) -> list[dict]:
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "name": "objective"}] if params else []

    def exported_encoder(self) -> Encoder:
        """The encoder a policy loads (AFRO: the online encoder, not the EMA teacher)."""
        return self.encoder

    def export_meta(self) -> dict[str, Any]:
        return {}


OBJECTIVES: Registry[Callable[..., Objective]] = Registry("pre-training method")
register_objective = OBJECTIVES.register
CONFIGS: dict[str, type] = {}


def objective_config(name: str) -> type:
    from dynarep.objectives import afro, dynamo3d, pointmae, random_init  # noqa: F401  (importing registers them)

    OBJECTIVES.get(name)  # a clear error for an unknown name
    return CONFIGS[name]


def build_objective(name: str, cfg: ObjectiveConfig) -> Objective:
    objective_config(name)
    return OBJECTIVES.get(name)(cfg)
