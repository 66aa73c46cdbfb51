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

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dynarep.objectives.base import CONFIGS, register_objective
from dynarep.objectives.losses import off_diagonal_cov
from dynarep.objectives.teacher import (
    InverseDynamics,
    LatentDynamicsConfig,
    TeacherStudent,
    feature_statistics,
    mlp,
)


@dataclass
class DynaMo3DConfig(LatentDynamicsConfig):
    interval: int = 1
    fdm_hidden: tuple[int, ...] = (256, 256)
    covariance_weight: float = 0.04


@register_objective("dynamo3d")
class DynaMo3D(TeacherStudent):
    def __init__(self, cfg: DynaMo3DConfig):
        super().__init__(cfg)
        D = self.encoder.output_dim
        self.idm = InverseDynamics(D, tuple(cfg.idm_hidden), cfg.latent_action_dim, use_difference=False)
        self.fdm = mlp((D + cfg.latent_action_dim, *cfg.fdm_hidden, D))

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        f, target = self.encode_pairs(batch)
        D = f.shape[-1]
        f_t, f_tk, y_tk = f[:, :-1].reshape(-1, D), f[:, 1:].reshape(-1, D), target[:, 1:].reshape(-1, D)
        pred = self.fdm(torch.cat([f_t, self.idm(f_t, f_tk)], dim=-1))
        cosine = (1 - F.cosine_similarity(pred, y_tk, dim=-1)).mean()
        cov = off_diagonal_cov(F.layer_norm(f.reshape(-1, D), (D,)))
        out = {"loss": cosine + self.cfg.covariance_weight * cov, "cosine": cosine.detach(), "covariance": cov.detach()}
        out.update(feature_statistics(f.reshape(-1, D)))
        return out


CONFIGS["dynamo3d"] = DynaMo3DConfig
