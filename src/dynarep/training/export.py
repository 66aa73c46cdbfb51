"""Exported artefacts: encoders (from pre-training) and policies (from training), as
safetensors + JSON, and loading them back with errors that name what does not fit."""

from __future__ import annotations

from pathlib import Path

import torch

from dynarep.config import from_dict, to_dict
from dynarep.data.normalizer import MinMaxNormalizer
from dynarep.models.encoders import EncoderConfig, build_encoder
from dynarep.policies.base import Policy, PolicyConfig, build_policy
from dynarep.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_matching,
    read_meta,
    save_checkpoint,
)

ENCODER_WEIGHTS, ENCODER_META = "model.safetensors", "checkpoint.json"


def read_encoder_config(directory: Path) -> EncoderConfig:
    """The config of an exported encoder, or of the visual encoder of a trained policy."""
    if is_policy_run(directory):
        _, meta = load_checkpoint(policy_checkpoint_dir(directory))
        return from_dict(EncoderConfig, meta["policy"]["encoder"], where=f"{directory}/policy/checkpoint.json:policy.encoder")
    _, meta = load_checkpoint(directory)
    if meta.get("kind") != "encoder":
        raise CheckpointError(f"{directory}: is a '{meta.get('kind')}' checkpoint, not an exported encoder or a policy")
    return from_dict(EncoderConfig, meta["encoder"], where=f"{directory}/checkpoint.json:encoder")


def is_policy_run(directory: Path) -> bool:
    """Whether DIRECTORY is a `dynarep train` output (or its policy/ checkpoint) rather than an encoder."""
    meta_path = policy_checkpoint_dir(directory) / ENCODER_META
    return meta_path.is_file() and read_meta(meta_path).get("kind") == "policy"


def save_encoder(directory: Path, encoder: torch.nn.Module, cfg: EncoderConfig, normalizer: MinMaxNormalizer | None,
                 meta: dict | None = None) -> Path:
    """Export an encoder: its weights, its point-cloud normalisation and its config."""
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    if normalizer is not None and "point_cloud" in normalizer:
        tensors.update({f"normalizer.{k}": v for k, v in normalizer.state_dict().items() if k.startswith("point_cloud.")})
    return save_checkpoint(directory, tensors, {"kind": "encoder", "encoder": to_dict(cfg), **(meta or {})})


def load_encoder(directory: Path):
    """(encoder module, its point-cloud normalizer or None) from an exported encoder directory.

    A `dynarep train` output gives the visual encoder of its policy, with the point-cloud
    normalisation that policy reads its clouds with: a policy's end-to-end encoder transfers (and
    is probed) like a pre-trained one, e.g. as the frozen-encoder control of what the transfer
    protocol itself costs."""
    if is_policy_run(directory):
        policy = load_policy(directory)
        clouds = {k: v for k, v in policy.normalizer.state_dict().items() if k.startswith("point_cloud.")}
        return policy.obs_encoder.visual, (MinMaxNormalizer.from_state_dict(clouds)
                                           if policy.cfg.normalize_point_cloud and clouds else None)
    tensors, meta = load_checkpoint(directory)
    cfg = read_encoder_config(directory)
    encoder = build_encoder(cfg)
    load_matching(encoder, tensors, "encoder.", directory)
    norm = {k[len("normalizer."):]: v for k, v in tensors.items() if k.startswith("normalizer.")}
    return encoder, (MinMaxNormalizer.from_state_dict(norm) if norm else None)


def export_policy(directory: Path, policy: Policy, weights: dict[str, torch.Tensor], meta: dict) -> Path:
    tensors = {f"policy.{k}": v for k, v in weights.items()}
    tensors.update({f"normalizer.{k}": v for k, v in policy.normalizer.state_dict().items()})
    return save_checkpoint(directory, tensors, {"kind": "policy", "policy": to_dict(policy.cfg), **meta})


def load_policy(directory: Path, device: str | torch.device = "cpu") -> Policy:
    """A trained policy from `dynarep train`'s output directory (or its `policy/` subdirectory)."""
    return load_policy_and_meta(directory, device)[0]


def policy_checkpoint_dir(directory: Path) -> Path:
    """The policy checkpoint of a `dynarep train` output (its `policy/` subdirectory), or `directory`."""
    directory = Path(directory)
    return directory / "policy" if (directory / "policy").is_dir() else directory


def load_policy_and_meta(directory: Path, device: str | torch.device = "cpu") -> tuple[Policy, dict]:
    """The policy and its checkpoint metadata (training data, observation pipeline), read once."""
    directory = policy_checkpoint_dir(directory)
    tensors, meta = load_checkpoint(directory)
    if meta.get("kind") != "policy":
        raise CheckpointError(f"{directory}: is a '{meta.get('kind')}' checkpoint, not a policy")
    cfg = from_dict(PolicyConfig, meta["policy"], where=f"{directory}/checkpoint.json:policy")
    policy = build_policy(cfg)
    load_matching(policy, tensors, "policy.", directory)
    norm = {k[len("normalizer."):]: v for k, v in tensors.items() if k.startswith("normalizer.")}
    policy.set_normalizer(MinMaxNormalizer.from_state_dict(norm))
    return policy.to(device).eval(), meta
