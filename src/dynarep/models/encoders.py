"""Visual encoders behind one small interface, and the registry through which methods add theirs.

An encoder maps an observation dict to a feature vector: `forward(obs) -> (B, output_dim)`, where
`obs["point_cloud"]` is (B, N, C) and `obs["img"]` (B, 3, H, W) float in [0, 1]. `freeze()` makes it
a fixed feature extractor (no gradients, eval mode kept through `train()`), `unfreeze()` undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from dynarep.errors import ConfigError
from dynarep.registry import Registry


@dataclass
class EncoderConfig:
    """Which visual encoder and its sizes; fields an encoder does not use are ignored by it."""

    name: str = "pointnet"
    """Registered encoder: pointnet (DP3), point_transformer (AFRO's real-world variant), image_cnn."""
    out_dim: int = 64
    in_channels: int = 3
    """3 for xyz; 6 for xyz+rgb point clouds."""
    hidden: tuple[int, ...] = (64, 128, 256)
    """PointNet per-point widths, or the CNN's channels."""
    width: int = 256
    """Point transformer token width."""
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0


class Encoder(nn.Module):
    """Base class: the interface every visual encoder implements."""

    input_key: str = "point_cloud"

    def __init__(self, output_dim: int):
        super().__init__()
        self.output_dim = output_dim
        self.frozen = False

    def freeze(self) -> "Encoder":
        self.frozen = True
        self.requires_grad_(False)
        return self.eval()

    def unfreeze(self) -> "Encoder":
        self.frozen = False
        self.requires_grad_(True)
        return self

    def train(self, mode: bool = True) -> "Encoder":
        # A frozen encoder stays in eval mode when the policy around it trains.
        return super().train(mode and not self.frozen)


ENCODERS: Registry[Callable[[EncoderConfig], Encoder]] = Registry("encoder")
register_encoder = ENCODERS.register


def build_encoder(cfg: EncoderConfig) -> Encoder:
    return ENCODERS.get(cfg.name)(cfg)


def _points(obs: dict[str, torch.Tensor], channels: int) -> torch.Tensor:
    pc = obs["point_cloud"]
    if pc.shape[-1] < channels:
        raise ConfigError(f"encoder expects point clouds with {channels} channels, got shape {tuple(pc.shape)}")
    return pc[..., :channels]


class PointNetEncoder(Encoder):
    """DP3's encoder: per-point MLP with LayerNorm and ReLU, max-pool, linear projection + LayerNorm.

    No T-Net and no BatchNorm (DP3, Table VI: both hurt), 3→64→128→256→max→64 by default.
    """

    def __init__(self, in_channels: int = 3, hidden: tuple[int, ...] = (64, 128, 256), out_dim: int = 64):
        super().__init__(out_dim)
        layers: list[nn.Module] = []
        for a, b in zip((in_channels, *hidden[:-1]), hidden):
            layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.projection = nn.Sequential(nn.Linear(hidden[-1], out_dim), nn.LayerNorm(out_dim))
        self.in_channels = in_channels

    def point_features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-point features (B, N, hidden[-1]) before pooling, for probes and pictures."""
        return self.mlp(_points(obs, self.in_channels))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.projection(self.point_features(obs).max(dim=-2).values)


class _AttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class PointTransformerEncoder(Encoder):
    """AFRO's real-world encoder: point tokens with a learned xyz positional MLP, global
    self-attention blocks (no kNN grouping), LayerNorm, max-pool, projection + LayerNorm."""

    def __init__(self, in_channels: int = 3, width: int = 256, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 2.0, out_dim: int = 64):
        super().__init__(out_dim)
        self.in_channels = in_channels
        self.embed = nn.Sequential(nn.Linear(in_channels, width), nn.LayerNorm(width))
        self.pos = nn.Sequential(nn.Linear(3, width), nn.GELU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList(_AttentionBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.projection = nn.Sequential(nn.Linear(width, out_dim), nn.LayerNorm(out_dim))

    def point_features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        pc = _points(obs, self.in_channels)
        x = self.embed(pc) + self.pos(pc[..., :3])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.projection(self.point_features(obs).max(dim=-2).values)


class ImageEncoder(Encoder):
    """A small CNN for RGB methods: strided conv + GroupNorm + ReLU stages, global average pool,
    projection + LayerNorm. Sized for 84-128 px images on a CPU; ours (no published reference)."""

    input_key = "img"

    def __init__(self, hidden: tuple[int, ...] = (32, 64, 128, 256), out_dim: int = 64):
        super().__init__(out_dim)
        layers: list[nn.Module] = []
        for a, b in zip((3, *hidden[:-1]), hidden):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(8 if b % 8 == 0 else 1, b), nn.ReLU()]
        self.cnn = nn.Sequential(*layers)
        self.projection = nn.Sequential(nn.Linear(hidden[-1], out_dim), nn.LayerNorm(out_dim))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        img = obs["img"]
        if img.ndim != 4 or img.shape[1] != 3:
            raise ConfigError(f"image encoder expects (B, 3, H, W) images, got shape {tuple(img.shape)}")
        return self.projection(self.cnn(img).mean(dim=(-2, -1)))


@register_encoder("pointnet")
def _pointnet(cfg: EncoderConfig) -> Encoder:
    return PointNetEncoder(cfg.in_channels, tuple(cfg.hidden), cfg.out_dim)


@register_encoder("point_transformer")
def _point_transformer(cfg: EncoderConfig) -> Encoder:
    return PointTransformerEncoder(cfg.in_channels, cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.out_dim)


@register_encoder("image_cnn")
def _image_cnn(cfg: EncoderConfig) -> Encoder:
    hidden = tuple(cfg.hidden) if len(cfg.hidden) >= 2 else (32, 64, 128, 256)
    return ImageEncoder(hidden, cfg.out_dim)
