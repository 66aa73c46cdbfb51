"""AFRO (Liang et al., CVPR 2026): dynamics-aware 3D pre-training without action labels.

From a window of point clouds, frames k steps apart are encoded by the online encoder E_o (f) and
by its EMA teacher E_t (targets). Per consecutive pair (t, t+k):
  latent action       α = IDM(f_{t+k} − f_t)                       (inverse dynamics on the difference)
  forward dynamics    x̂ = FDM(noisy E_t(p_{t+k}), s | f_t, α)      (a DiT with adaLN-Zero, x0-prediction,
                                                                     cosine DDIM schedule, 100 steps)
  inverse consistency the same IDM and FDM predict E_t(p_t) from f_{t+k} and α' = IDM(f_t − f_{t+k})
  loss                VICReg(x̂, target) for both directions (25 / 25 / 1)
Gradients reach E_o through the FDM condition and the latent action; the teacher follows E_o with
momentum rising from 0.996 to 1 over training; as in the authors' code it starts from its own random
initialisation, not as a copy of E_o (`teacher_init`). Sizes follow the authors' code (shared/methods/afro.md):
IDM 64→256→128→16 with GELU, DiT width 256, depth 4, 4 heads, interval k = 2, windows of 33 frames.

Table 5's ablations are flags: `deterministic_fdm`, `use_difference=False` (raw pair),
`inverse_consistency=False`, `loss="mse"`, `latent_action_dim`, `interval`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from dynarep.errors import ConfigError
from dynarep.models.dit import LatentDiT
from dynarep.objectives.base import (
    CONFIGS,
    register_objective,
)
from dynarep.objectives.losses import vicreg
from dynarep.objectives.teacher import (
    InverseDynamics,
    LatentDynamicsConfig,
    TeacherStudent,
    feature_statistics,
)


@dataclass
class AFROConfig(LatentDynamicsConfig):
    fdm_width: int = 256
    fdm_depth: int = 4
    fdm_heads: int = 4
    fdm_mlp_ratio: float = 4.0
    diffusion_steps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    vicreg_weights: tuple[float, float, float] = (25.0, 25.0, 1.0)
    forward_weight: float = 1.0
    reverse_weight: float = 1.0
    teacher_init: str = "independent"
    """AFRO's public code builds the EMA teacher as a second, independently initialised encoder (its
    deepcopy line is commented out); the paper does not say. "copy" starts it as the online encoder."""
    fdm_final_norm: bool = False
    """A LayerNorm before the DiT's output layer. The authors' code defines one but never applies it;
    True restores what dynarep did before (it fixes each prediction's norm)."""
    fdm_init: str = "xavier"
    """"xavier": xavier-uniform Linear weights and zero biases (adaLN still zero), as the authors'
    DiT; "default": PyTorch's initialisation."""
    # Table 5 ablations
    deterministic_fdm: bool = False
    """FDM as a plain transformer: no noise, its token is the current feature, step 0."""
    use_difference: bool = True
    """False: the IDM reads the raw pair [f_t, f_t+k] instead of f_t+k − f_t."""
    inverse_consistency: bool = True
    loss: str = "vicreg"
    """vicreg or mse."""

    def validate(self) -> None:
        super().validate()
        if self.fdm_init not in ("xavier", "default"):
            raise ConfigError(f"fdm_init must be 'xavier' or 'default', got '{self.fdm_init}'")
        if self.window < self.interval + 1:
            raise ConfigError(f"window {self.window} is shorter than one pair at interval {self.interval}")
        if self.loss not in ("vicreg", "mse"):
            raise ConfigError(f"loss must be 'vicreg' or 'mse', got '{self.loss}'")


@register_objective("afro")
class AFRO(TeacherStudent):
    def __init__(self, cfg: AFROConfig):
        super().__init__(cfg)
        D = self.encoder.output_dim
        self.idm = InverseDynamics(D, tuple(cfg.idm_hidden), cfg.latent_action_dim, cfg.use_difference)
        self.fdm = LatentDiT(D, (D, cfg.latent_action_dim), cfg.fdm_width, cfg.fdm_depth, cfg.fdm_heads, cfg.fdm_mlp_ratio,
                             final_norm=cfg.fdm_final_norm, init=cfg.fdm_init)
        self.scheduler = DDIMScheduler(num_train_timesteps=cfg.diffusion_steps, beta_schedule=cfg.beta_schedule,
                                       clip_sample=True, prediction_type="sample")

    def predict_target(self, target: torch.Tensor, f_cond: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """FDM prediction of `target` (N, D) given the current feature and latent action."""
        n = target.shape[0]
        if self.cfg.deterministic_fdm:
            return self.fdm(f_cond, torch.zeros(n, dtype=torch.long, device=target.device), f_cond, action)
        steps = torch.randint(0, self.cfg.diffusion_steps, (n,), device=target.device)
        noisy = self.scheduler.add_noise(target, torch.randn_like(target), steps)
        return self.fdm(noisy, steps, f_cond, action)

    def match(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.cfg.loss == "mse":
            return {"loss": F.mse_loss(pred, target)}
        inv_w, var_w, cov_w = self.cfg.vicreg_weights
        return vicreg(pred, target, inv_w, var_w, cov_w)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        f, target = self.encode_pairs(batch)  # (B, M, D) each
        D = f.shape[-1]
        f_t, f_tk = f[:, :-1].reshape(-1, D), f[:, 1:].reshape(-1, D)
        y_t, y_tk = target[:, :-1].reshape(-1, D), target[:, 1:].reshape(-1, D)
        fwd = self.match(self.predict_target(y_tk, f_t, self.idm(f_t, f_tk)), y_tk)
        out = {"loss": self.cfg.forward_weight * fwd["loss"], "forward": fwd["loss"].detach()}
        if self.cfg.inverse_consistency:
            rev = self.match(self.predict_target(y_t, f_tk, self.idm(f_tk, f_t)), y_t)
            out["loss"] = out["loss"] + self.cfg.reverse_weight * rev["loss"]
            out["reverse"] = rev["loss"].detach()
        out.update({k: v.detach() for k, v in fwd.items() if k != "loss"})
        out.update(feature_statistics(f.reshape(-1, D)))
        out["momentum"] = torch.tensor(self.momentum)
        return out


CONFIGS["afro"] = AFROConfig
