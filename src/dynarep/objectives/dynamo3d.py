"""DynaMo-3D: DynaMo's in-domain dynamics pre-training (Cui et al. 2024) on point clouds, the
baseline AFRO compares against. No diffusion, no inverse consistency:
  latent action  z = IDM([f_t, f_t+k])            (DynaMo's IDM sees both embeddings)
  prediction     ô = FDM([f_t, z])                (an MLP)
  loss           1 − cos(ô, EMA(f_t+k))  +  λ · off-diagonal covariance of the online features
The EMA target and its momentum schedule are shared with AFRO. DynaMo's IDM is a causal
transformer over the window; for a 64-d point-cloud feature we use an MLP over the pair (our
choice, documented as such; `idm_hidden` sets its size).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dynarep.objectives.afro import InverseDynamics, feature_statistics, mlp, update_ema
from dynarep.objectives.base import (
    CONFIGS,
    Objective,
    ObjectiveConfig,
    register_objective,
)
from dynarep.objectives.losses import off_diagonal_cov


@dataclass
class DynaMo3DConfig(ObjectiveConfig):
    interval: int = 1
    latent_action_dim: int = 16
    idm_hidden: tuple[int, ...] = (256, 128)
    fdm_hidden: tuple[int, ...] = (256, 256)
    covariance_weight: float = 0.04
    ema_start: float = 0.996


@register_objective("dynamo3d")
class DynaMo3D(Objective):
    def __init__(self, cfg: DynaMo3DConfig):
        super().__init__(cfg)
        D = self.encoder.output_dim
        self.teacher = copy.deepcopy(self.encoder).requires_grad_(False)
        self.idm = InverseDynamics(D, tuple(cfg.idm_hidden), cfg.latent_action_dim, use_difference=False)
        self.fdm = mlp((D + cfg.latent_action_dim, *cfg.fdm_hidden, D))
        self.momentum = cfg.ema_start

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        clouds = batch["point_cloud"][:, :: self.cfg.interval]
        f = self.encode(self.encoder, clouds)
        with torch.no_grad():
            target = self.encode(self.teacher, clouds)
        D = f.shape[-1]
        f_t, f_tk, y_tk = f[:, :-1].reshape(-1, D), f[:, 1:].reshape(-1, D), target[:, 1:].reshape(-1, D)
        pred = self.fdm(torch.cat([f_t, self.idm(f_t, f_tk)], dim=-1))
        cosine = (1 - F.cosine_similarity(pred, y_tk, dim=-1)).mean()
        cov = off_diagonal_cov(F.layer_norm(f.reshape(-1, D), (D,)))
        out = {"loss": cosine + self.cfg.covariance_weight * cov, "cosine": cosine.detach(), "covariance": cov.detach()}
        out.update(feature_statistics(f.reshape(-1, D)))
        return out

    @torch.no_grad()
    def on_step_end(self, step: int, total: int) -> None:
        self.momentum = self.cfg.ema_start + (1 - self.cfg.ema_start) * min(1.0, (step + 1) / max(total, 1))
        update_ema(self.teacher, self.encoder, self.momentum)

    def parameter_groups(self, lr: float, encoder_lr: float | None) -> list[dict]:
        params = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("teacher.")]
        return [{"params": params, "lr": lr, "name": "dynamo3d"}]


CONFIGS["dynamo3d"] = DynaMo3DConfig
