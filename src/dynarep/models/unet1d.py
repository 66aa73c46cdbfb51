"""The conditional 1-D UNet of Diffusion Policy (Chi et al. 2023) as DP3 uses it: temporal
convolutions over the action sequence, FiLM conditioning on (diffusion step ⊕ observation feature)
in every residual block (down, mid and up).

Written here rather than imported because diffusers' UNet1DModel has a different block layout
and no FiLM global conditioning; the layer sizes below follow the published model so that the
`paper` preset has DP3's 255 M parameters at down dims (512, 1024, 2048).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar (the diffusion step)."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        x = t.float()[:, None] * self.freqs[None]
        return torch.cat([x.sin(), x.cos()], dim=-1)


class ConvBlock(nn.Sequential):
    """Conv1d → GroupNorm → Mish."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish())


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; the condition scales and shifts the features in between (FiLM)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv1 = ConvBlock(c_in, c_out, kernel, groups)
        self.conv2 = ConvBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None, film: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(x)
        scale, shift = (self.film(cond) if film is None else film).unsqueeze(-1).chunk(2, dim=1)
        h = self.conv2(scale * h + shift)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """(B, T, action_dim) noisy actions + step + global condition → (B, T, action_dim)."""

    def __init__(self, action_dim: int, global_cond_dim: int, down_dims: tuple[int, ...] = (512, 1024, 2048),
                 step_embed_dim: int = 128, kernel: int = 5, groups: int = 8):
        super().__init__()
        self.step_encoder = nn.Sequential(
            SinusoidalEmbedding(step_embed_dim), nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        cond_dim = step_embed_dim + global_cond_dim
        dims = [action_dim, *down_dims]
        block = lambda a, b: FiLMResidualBlock(a, b, cond_dim, kernel, groups)  # noqa: E731
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([block(a, b), block(b, b),
                                            nn.Identity() if last else nn.Conv1d(b, b, 3, stride=2, padding=1)]))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()
        # Every up level upsamples: the down path halves the length once per level but the last.
        for a, b in reversed(list(zip(dims[1:-1], dims[2:]))):
            self.up.append(nn.ModuleList([block(2 * b, a), block(a, a), nn.ConvTranspose1d(a, a, 4, stride=2, padding=1)]))
        self.head = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], kernel, groups), nn.Conv1d(down_dims[0], action_dim, 1))

    def film_blocks(self) -> list[FiLMResidualBlock]:
        """Every FiLM block in the order `forward` runs them."""
        blocks = [b for res1, res2, _ in self.down for b in (res1, res2)] + list(self.mid)
        return blocks + [b for res1, res2, _ in self.up for b in (res1, res2)]

    def film_tables(self, steps: torch.Tensor, global_cond: torch.Tensor) -> list[torch.Tensor]:
        """Every block's FiLM scale/shift for each of `steps`: (S, B, 2C) per block.

        Sampling runs the same few diffusion steps with the same observation, so computing these
        once per action chunk replaces ~20 small matmuls per denoising step with one batched one.
        """
        emb = self.step_encoder(steps)
        S, B = emb.shape[0], global_cond.shape[0]
        cond = torch.cat([emb[:, None].expand(S, B, -1), global_cond[None].expand(S, B, -1)], dim=-1)
        return [block.film(cond) for block in self.film_blocks()]

    def forward(self, x: torch.Tensor, step: torch.Tensor, global_cond: torch.Tensor | None,
                films: list[torch.Tensor] | None = None) -> torch.Tensor:
        """`films` (one (B, 2C) per block, from `film_tables`) skips the condition path."""
        if films is None:
            if step.ndim == 0:
                step = step.expand(x.shape[0])
            cond = torch.cat([self.step_encoder(step), global_cond], dim=-1)
            films = [block.film(cond) for block in self.film_blocks()]
        films = iter(films)
        h = rearrange(x, "b t c -> b c t")
        skips = []
        for res1, res2, downsample in self.down:
            h = res2(res1(h, None, next(films)), None, next(films))
            skips.append(h)
            h = downsample(h)
        for res in self.mid:
            h = res(h, None, next(films))
        for res1, res2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(res2(res1(h, None, next(films)), None, next(films)))
        return rearrange(self.head(h), "b c t -> b t c")
