"""DP3's diffusion policy: a conditional 1-D UNet denoises an action chunk, conditioned (FiLM) on
the observation features of the last `n_obs_steps` steps; DDIM with sample (x0) prediction.

Schedulers come from diffusers (DDIMScheduler, as DP3 configures it). Training draws one
diffusion step per sample; inference runs `inference_steps` DDIM steps from Gaussian noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from dynarep.models.unet1d import ConditionalUnet1D
from dynarep.policies.base import Policy, PolicyConfig, register_policy
from dynarep.policies.onnx_denoiser import OnnxDenoiser, check_backend


def make_scheduler(cfg: PolicyConfig) -> DDIMScheduler:
    return DDIMScheduler(
        num_train_timesteps=cfg.train_timesteps, beta_start=1e-4, beta_end=0.02, beta_schedule=cfg.beta_schedule,
        clip_sample=True, set_alpha_to_one=True, steps_offset=0, prediction_type=cfg.prediction_type,
    )


@register_policy("diffusion")
class DiffusionPolicy(Policy):
    def __init__(self, cfg: PolicyConfig):
        super().__init__(cfg)
        cond_dim = self.obs_encoder.output_dim * cfg.n_obs_steps
        self.unet = ConditionalUnet1D(cfg.action_dim, cond_dim, tuple(cfg.down_dims), cfg.step_embed_dim,
                                      cfg.kernel, cfg.groups)
        self.scheduler = make_scheduler(cfg)
        self.onnx_denoiser: OnnxDenoiser | None = None

    def use_inference_backend(self, backend: str, threads: int = 1) -> None:
        """'onnxruntime': sample with a snapshot of the current UNet weights in ONNX Runtime (CPU,
        batch-1 speed, see onnx_denoiser); 'torch': with the module itself. Training ignores it."""
        check_backend(backend, str(next(self.parameters()).device))
        if backend == "torch":
            self.onnx_denoiser = None
            return
        self.onnx_denoiser = OnnxDenoiser(self.unet, threads)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cond = self.global_condition(batch)
        actions = self.normalizer.normalize("action", batch["action"][:, : self.cfg.horizon])
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (actions.shape[0],), device=actions.device)
        noisy = self.scheduler.add_noise(actions, noise, t)
        pred = self.unet(noisy, t, cond)
        target = actions if self.cfg.prediction_type == "sample" else noise
        return {"loss": F.mse_loss(pred, target)}

    @torch.no_grad()
    def sample_actions(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoise a full (B, horizon, A) normalised action sequence."""
        shape = (cond.shape[0], self.cfg.horizon, self.cfg.action_dim)
        x = torch.randn(shape, generator=generator, device=cond.device, dtype=cond.dtype)
        self.scheduler.set_timesteps(self.cfg.inference_steps, device=cond.device)
        tables = self.unet.film_tables(self.scheduler.timesteps, cond)
        denoise = self.onnx_denoiser if self.onnx_denoiser is not None and not self.training else self.unet
        for i, t in enumerate(self.scheduler.timesteps):
            out = denoise(x, t, None, films=[table[i] for table in tables])
            x = self.scheduler.step(out, t, x, generator=generator).prev_sample
        return x

    @torch.no_grad()
    def predict_action(self, obs: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        cond = self.global_condition(obs)
        actions = self.normalizer.unnormalize("action", self.sample_actions(cond, generator))
        start = self.cfg.n_obs_steps - 1
        return actions[:, start : start + self.cfg.n_action_steps]
