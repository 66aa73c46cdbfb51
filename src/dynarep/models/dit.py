"""A DiT (Peebles & Xie 2023) over a few latent tokens with adaLN-Zero conditioning: AFRO's
diffusion forward-dynamics model in feature space.

adaLN-Zero: each block's LayerNorms have no affine parameters; a zero-initialised linear map of
the condition produces shift, scale and gate for the attention and MLP branches, so every block
starts as the identity and the model starts by passing its input token through.
"""

from __future__ import annotations

import torch
from torch import nn

from dynarep.models.unet1d import SinusoidalEmbedding


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def xavier_linear(module: nn.Module) -> None:
    """DiT's initialisation: xavier-uniform weights and zero biases on every Linear."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DiTBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.adaLN[1].weight)
        nn.init.zeros_(self.adaLN[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1.unsqueeze(1) * self.attn(h, h, h, need_weights=False)[0]
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class LatentDiT(nn.Module):
    """Denoises a (N, D) feature given the diffusion step and named condition vectors.

    The condition is an MLP of [step embedding, linear(each condition)], as in AFRO's code:
    `Linear(3H, H) - SiLU - Linear(H, H)` for (step, current feature, latent action).
    """

    def __init__(self, feature_dim: int, cond_dims: tuple[int, ...], width: int = 256, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, final_norm: bool = False, init: str = "xavier"):
        super().__init__()
        self.x_in = nn.Linear(feature_dim, width)
        self.pos = nn.Parameter(torch.zeros(1, 1, width))
        self.step_embed = nn.Sequential(SinusoidalEmbedding(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.cond_in = nn.ModuleList(nn.Linear(d, width) for d in cond_dims)
        self.cond_mlp = nn.Sequential(nn.Linear(width * (1 + len(cond_dims)), width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6) if final_norm else nn.Identity()
        self.out = nn.Linear(width, feature_dim)
        if init == "xavier":
            self.apply(xavier_linear)
            for block in self.blocks:  # adaLN-Zero stays zero, so every block still starts as the identity
                nn.init.zeros_(block.adaLN[1].weight)
                nn.init.zeros_(block.adaLN[1].bias)

    def forward(self, x: torch.Tensor, step: torch.Tensor, *conds: torch.Tensor) -> torch.Tensor:
        c = self.cond_mlp(torch.cat([self.step_embed(step), *(f(v) for f, v in zip(self.cond_in, conds))], dim=-1))
        h = (self.x_in(x) + self.pos[:, 0]).unsqueeze(1)  # one token per feature
        for block in self.blocks:
            h = block(h, c)
        return self.out(self.norm(h[:, 0]))
