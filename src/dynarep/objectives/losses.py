"""Losses shared by the objectives."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def off_diagonal_cov(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances of (N, D) features, divided by D (VICReg)."""
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / max(n - 1, 1)
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d


def vicreg(z1: torch.Tensor, z2: torch.Tensor, inv_w: float = 25.0, var_w: float = 25.0, cov_w: float = 1.0,
           eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """VICReg (Bardes et al. 2022) as AFRO's code computes it, between predictions and targets.

    invariance = MSE(z1, z2); variance = mean hinge of (1 - std) per dimension, averaged over both;
    covariance = off-diagonal covariance of each, summed. Returns the weighted total and the terms.
    """
    inv = F.mse_loss(z1, z2)
    std1 = torch.sqrt(z1.var(dim=0) + eps)
    std2 = torch.sqrt(z2.var(dim=0) + eps)
    var = 0.5 * (F.relu(1 - std1).mean() + F.relu(1 - std2).mean())
    cov = off_diagonal_cov(z1) + off_diagonal_cov(z2)
    return {"loss": inv_w * inv + var_w * var + cov_w * cov, "invariance": inv, "variance": var, "covariance": cov}
