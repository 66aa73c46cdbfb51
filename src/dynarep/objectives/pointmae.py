"""Point-MAE (Pang et al. 2022): static masked-autoencoding pre-training of a point-cloud encoder, the
"3D-Pre-S" baseline of AFRO's Table 1 and Figures 5 and 6. One frame at a time, no dynamics:
  patches    G centres by farthest-point sampling, each with its k nearest points (relative to the centre)
  masking    a random `mask_ratio` of the patches per cloud
  encoding   the encoder sees only the points of the visible patches
  decoding   a small transformer over the encoder's output token and one mask token per masked patch
             (learned token + positional MLP of its centre) predicts each masked patch's k points
  loss       Chamfer distance (squared L2, both directions) between predicted and true masked patches
The log's `chamfer_other_feature` decodes each cloud's masked patches from another cloud's feature:
near `chamfer`, the decoder rebuilds the patches from their centres alone (a static scene allows
much of that) and the feature carries little.
Point-MAE's encoder is a transformer over patch tokens whose visible tokens all reach the decoder.
dynarep's policies read one global feature from DP3's PointNet (or the point transformer), so here
the decoder sees the visible part only through that exported feature: pre-training trains exactly
what the policy reads (our choice; AFRO's paper does not say how it adapted Point-MAE to its encoder).
Sizes: Point-MAE cuts 1024 points into 64 patches of 32 with mask ratio 0.6 and a 4-block decoder
of width 384; DP3's clouds have 512 points, so the defaults here are 32 patches of 16 (Point-MAE's
patches cover each point about twice, these about once; `--set num_groups=64 group_size=16` doubles
that) and the `cpu` preset's decoder is 2 blocks of width 128.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from dynarep.errors import ConfigError
from dynarep.objectives.base import CONFIGS, Objective, ObjectiveConfig, register_objective
from dynarep.objectives.teacher import feature_statistics


@dataclass
class PointMAEConfig(ObjectiveConfig):
    window: int = 1
    """Point-MAE sees single frames."""
    num_groups: int = 32
    group_size: int = 16
    mask_ratio: float = 0.6
    decoder_sees_centres: bool = True
    """Point-MAE tells the decoder where each masked patch lies. With false (our variant, not in
    Point-MAE) it is not told: it predicts all masked points as one set from the feature alone,
    which a static scene's layout cannot give away."""
    fdm_width: int = 384
    """Decoder width (named like AFRO's DiT width so that the `cpu` preset shrinks both alike)."""
    fdm_depth: int = 4
    """Decoder blocks."""
    decoder_heads: int = 4
    """Point-MAE's decoder has 6; 4 divides both presets' widths (384 and 128)."""


def farthest_point_centres(points: torch.Tensor, count: int) -> torch.Tensor:
    """(B, N, 3) → (B, count) indices by farthest-point sampling, starting from point 0.
    Written here rather than with fpsample because it runs on the batch's device, all clouds at once
    (fpsample takes one NumPy cloud at a time)."""
    B, N, _ = points.shape
    chosen = torch.zeros(B, count, dtype=torch.long, device=points.device)
    distance = torch.full((B, N), float("inf"), device=points.device)
    latest = torch.zeros(B, dtype=torch.long, device=points.device)
    batch = torch.arange(B, device=points.device)
    for i in range(count):
        chosen[:, i] = latest
        step = ((points - points[batch, latest][:, None]) ** 2).sum(-1)
        distance = torch.minimum(distance, step)
        latest = distance.argmax(dim=1)
    return chosen


def group_patches(points: torch.Tensor, groups: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, 3) → centres (B, G, 3) and the indices (B, G, k) of each centre's k nearest points."""
    batch = torch.arange(points.shape[0], device=points.device)[:, None]
    centres = points[batch, farthest_point_centres(points, groups)]
    return centres, torch.cdist(centres, points).topk(size, dim=-1, largest=False).indices


def chamfer(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared-L2 Chamfer distance between point sets (..., k, 3), both directions, averaged
    over the sets."""
    d = torch.cdist(pred, target) ** 2
    return d.min(dim=-1).values.mean() + d.min(dim=-2).values.mean()


class PatchDecoder(nn.Module):
    """A transformer over [encoder token, one mask token per masked patch] → k points per mask token.
    Each mask token carries its patch's centre (Point-MAE), or, with `slots`, a learned slot
    embedding instead, when the decoder is not told where the masked patches are."""

    def __init__(self, feature_dim: int, width: int, depth: int, heads: int, group_size: int, slots: int = 0):
        super().__init__()
        self.feature = nn.Linear(feature_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.position = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, width))
        self.slots = nn.Parameter(torch.randn(slots, width) * 0.02) if slots else None
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3 * group_size)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, feature: torch.Tensor, masked_centres: torch.Tensor | None) -> torch.Tensor:
        """(B, D), (B, M, 3) or None (slots) → (B, M, k, 3)."""
        where = self.position(masked_centres) if masked_centres is not None else self.slots.expand(len(feature), -1, -1)
        tokens = self.blocks(torch.cat([self.feature(feature)[:, None], self.mask_token + where], dim=1))
        return rearrange(self.head(self.norm(tokens[:, 1:])), "b m (k c) -> b m k c", c=3)


@register_objective("pointmae")
class PointMAE(Objective):
    def __init__(self, cfg: PointMAEConfig):
        super().__init__(cfg)
        if not 0 < cfg.mask_ratio < 1:
            raise ConfigError(f"pointmae mask_ratio: expected a fraction strictly between 0 and 1, got {cfg.mask_ratio}")
        if not 0 < self.masked_count() < cfg.num_groups:
            raise ConfigError(f"pointmae: mask_ratio {cfg.mask_ratio} of {cfg.num_groups} patches leaves no patch "
                              "masked or none visible")
        slots = 0 if cfg.decoder_sees_centres else self.masked_count()
        self.decoder = PatchDecoder(self.encoder.output_dim, cfg.fdm_width, cfg.fdm_depth, cfg.decoder_heads,
                                    cfg.group_size, slots)

    def masked_count(self) -> int:
        return round(self.cfg.mask_ratio * self.cfg.num_groups)

    def masked_split(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Random (visible, masked) patch indices per cloud: (B, G - M), (B, M)."""
        order = torch.rand(batch, self.cfg.num_groups, device=device).argsort(dim=1)
        return order[:, self.masked_count():], order[:, : self.masked_count()]

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        clouds = rearrange(batch["point_cloud"], "b l n c -> (b l) n c")
        if max(self.cfg.num_groups, self.cfg.group_size) > clouds.shape[1]:
            raise ConfigError(f"pointmae: {self.cfg.num_groups} patches of {self.cfg.group_size} points need clouds "
                              f"of at least that many points, got {clouds.shape[1]} (point_cloud {tuple(clouds.shape)})")
        centres, nearest = group_patches(clouds[..., :3], self.cfg.num_groups, self.cfg.group_size)
        visible, masked = self.masked_split(clouds.shape[0], clouds.device)
        rows = torch.arange(clouds.shape[0], device=clouds.device)[:, None]
        seen = clouds[rows[..., None], nearest[rows, visible]]  # (B, G - M, k, C), every channel
        feature = self.encoder({"point_cloud": rearrange(seen, "b g k c -> b (g k) c")})
        hidden = clouds[rows[..., None], nearest[rows, masked]][..., :3]
        loss, shuffled = self.reconstruction(feature, centres[rows, masked], hidden)
        return {"loss": loss, "chamfer": loss.detach(), "chamfer_other_feature": shuffled,
                **feature_statistics(feature)}

    def reconstruction(self, feature: torch.Tensor, centres: torch.Tensor, hidden: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Chamfer loss of the masked patches (B, M, k, 3) decoded from the feature, and, without a
        gradient, from another cloud's feature. Told the centres: each patch relative to its centre;
        not told: all masked points as one set, where they lie in the cloud."""
        if self.cfg.decoder_sees_centres:
            hidden = hidden - centres[:, :, None]
        else:
            centres, hidden = None, rearrange(hidden, "b m k c -> b 1 (m k) c")

        def decoded(f: torch.Tensor) -> torch.Tensor:
            pred = self.decoder(f, centres)
            return pred if centres is not None else rearrange(pred, "b m k c -> b 1 (m k) c")

        loss = chamfer(decoded(feature), hidden)
        with torch.no_grad():
            shuffled = chamfer(decoded(feature.roll(1, dims=0)), hidden)
        return loss, shuffled


CONFIGS["pointmae"] = PointMAEConfig
