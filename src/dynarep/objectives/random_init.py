"""The frozen randomly initialised encoder baseline: no training at all. `dynarep pretrain
--method random` exports the encoder exactly as initialised by its seed, with the point-cloud
normalisation of the data, so that `train --encoder DIR --freeze` measures what architecture and
random features alone are worth."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dynarep.objectives.base import (
    CONFIGS,
    Objective,
    ObjectiveConfig,
    register_objective,
)


@dataclass
class RandomInitConfig(ObjectiveConfig):
    window: int = 1


@register_objective("random")
class RandomInit(Objective):
    trains = False

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise RuntimeError("the random-encoder baseline has nothing to train")


CONFIGS["random"] = RandomInitConfig
