"""Pieces shared by the latent-dynamics objectives (AFRO, DynaMo-3D): the EMA teacher that
provides targets, the inverse-dynamics model, and the feature-collapse watch."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from dynarep.errors import ConfigError
from dynarep.models.encoders import build_encoder
from dynarep.objectives.base import Objective, ObjectiveConfig


@dataclass
class LatentDynamicsConfig(ObjectiveConfig):
    interval: int = 2
    """k: steps between the two frames of a pair."""
    latent_action_dim: int = 16
    idm_hidden: tuple[int, ...] = (256, 128)
    ema_start: float = 0.996
    """Teacher momentum at step 0, rising linearly to 1 at the last step."""
    teacher_init: str = "copy"
    """"copy": the teacher starts as a copy of the online encoder (BYOL's convention); "independent":
    a second encoder with its own random initialisation, as AFRO's public code builds it."""

    def validate(self) -> None:
        if self.teacher_init not in ("copy", "independent"):
            raise ConfigError(f"teacher_init must be 'copy' or 'independent', got '{self.teacher_init}'")


class TeacherStudent(Objective):
    """An online encoder trained by gradients and an EMA copy of it (no gradient) giving targets."""

    def __init__(self, cfg: LatentDynamicsConfig):
        cfg.validate()
        super().__init__(cfg)
        teacher = copy.deepcopy(self.encoder) if cfg.teacher_init == "copy" else build_encoder(cfg.encoder)
        self.teacher = teacher.requires_grad_(False)
        self.momentum = cfg.ema_start

    def frames(self, clouds: torch.Tensor) -> torch.Tensor:
        """The frames of a window that form the pairs: 0, k, 2k, ..."""
        return clouds[:, :: self.cfg.interval]

    def encode_pairs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(online features with gradient, teacher targets), each (B, M, D) over the pair frames."""
        clouds = self.frames(batch["point_cloud"])
        f = self.encode(self.encoder, clouds)
        with torch.no_grad():
            target = self.encode(self.teacher, clouds)
        return f, target

    @torch.no_grad()
    def on_step_end(self, step: int, total: int) -> None:
        """EMA teacher update (params and float buffers), momentum linear from ema_start to 1."""
        self.momentum = self.cfg.ema_start + (1 - self.cfg.ema_start) * min(1.0, (step + 1) / max(total, 1))
        update_ema(self.teacher, self.encoder, self.momentum)

    def parameter_groups(self, lr: float, encoder_lr: float | None) -> list[dict]:
        params = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("teacher.")]
        return [{"params": params, "lr": lr, "name": type(self).__name__}]


def mlp(dims: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class InverseDynamics(nn.Module):
    """Latent action from a pair of features: by default from their difference only."""

    def __init__(self, feature_dim: int, hidden: tuple[int, ...], action_dim: int, use_difference: bool):
        super().__init__()
        self.use_difference = use_difference
        self.net = mlp((feature_dim * (1 if use_difference else 2), *hidden, action_dim))

    def forward(self, f_from: torch.Tensor, f_to: torch.Tensor) -> torch.Tensor:
        x = f_to - f_from if self.use_difference else torch.cat([f_from, f_to], dim=-1)
        return self.net(x)


@torch.no_grad()
def update_ema(target: nn.Module, online: nn.Module, momentum: float) -> None:
    t_params, o_params = list(target.parameters()), list(online.parameters())
    torch._foreach_lerp_(t_params, o_params, 1 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers()):
        if tb.is_floating_point():
            tb.lerp_(ob, 1 - momentum)
        else:
            tb.copy_(ob)


def feature_statistics(features: torch.Tensor) -> dict[str, torch.Tensor]:
    """Collapse watch over the batch: per-dimension standard deviation of the online features, and
    their effective rank (exp of the entropy of the covariance spectrum), which falls towards 1 when
    the features collapse onto a few directions even while each dimension still varies."""
    x = features.detach().float()
    std = x.std(dim=0)
    eig = torch.linalg.eigvalsh(torch.cov(x.T)).clamp_min(0)
    p = eig / eig.sum().clamp_min(1e-12)
    rank = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
    return {"feat_std_mean": std.mean(), "feat_std_min": std.min(), "feat_dead_dims": (std < 1e-2).float().mean(),
            "feat_effective_rank": rank}
