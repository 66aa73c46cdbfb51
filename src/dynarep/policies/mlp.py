"""The 3-layer MLP policy of DynaFLIP's frozen-encoder probe: observation features of the last
`n_obs_steps` steps → the next `n_action_steps` actions, trained with MSE on normalised actions.
A deterministic, cheap judge of what a frozen representation makes easy to decode."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dynarep.policies.base import Policy, PolicyConfig, register_policy


@register_policy("mlp")
class MLPPolicy(Policy):
    def __init__(self, cfg: PolicyConfig):
        super().__init__(cfg)
        dims = (self.obs_encoder.output_dim * cfg.n_obs_steps, *cfg.mlp_hidden)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], cfg.n_action_steps * cfg.action_dim))
        self.head = nn.Sequential(*layers)

    def _chunk(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.head(self.global_condition(batch))
        return out.reshape(out.shape[0], self.cfg.n_action_steps, self.cfg.action_dim)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        start = self.cfg.n_obs_steps - 1
        target = batch["action"][:, start : start + self.cfg.n_action_steps]
        return {"loss": F.mse_loss(self._chunk(batch), self.normalizer.normalize("action", target))}

    @torch.no_grad()
    def predict_action(self, obs: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        return self.normalizer.unnormalize("action", self._chunk(obs))
