"""The frozen randomly initialised encoder baseline: no training at all. `dynarep pretrain
--method random` exports the encoder exactly as initialised by its seed, with the point-cloud
normalisation of the data, so that `train --encoder DIR --freeze` measures what architecture and
random features alone are worth.

Every pre-training method built with the same seed starts from this very encoder (the encoder is
built first), so `random` is also each method's starting point. `weight_noise` makes a control
for that: each weight tensor moved by Gaussian noise of that fraction of its own RMS, as far from
the start as pre-training moves it, in no learned direction (our control; no paper uses it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dynarep.errors import ConfigError
from dynarep.objectives.base import (
    CONFIGS,
    Objective,
    ObjectiveConfig,
    register_objective,
)


@dataclass
class RandomInitConfig(ObjectiveConfig):
    window: int = 1
    weight_noise: float = 0.0
    """Relative size of the Gaussian noise added to each weight tensor after initialisation."""


@register_objective("random")
class RandomInit(Objective):
    trains = False

    def __init__(self, cfg: RandomInitConfig):
        super().__init__(cfg)
        if cfg.weight_noise < 0:
            raise ConfigError(f"random weight_noise: expected a fraction >= 0, got {cfg.weight_noise}")
        if cfg.weight_noise:
            self.perturb(cfg.weight_noise)

    @torch.no_grad()
    def perturb(self, fraction: float) -> None:
        """w += fraction · rms(w) · N(0, 1) for every parameter tensor (zero tensors stay zero)."""
        for weight in self.encoder.parameters():
            weight += fraction * weight.pow(2).mean().sqrt() * torch.randn_like(weight)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise RuntimeError("the random-encoder baseline has nothing to train")


CONFIGS["random"] = RandomInitConfig
