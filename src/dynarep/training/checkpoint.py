"""Checkpoints as safetensors plus JSON: no pickle, so loading a file never runs code.

A checkpoint is a directory:
  model.safetensors      every tensor: weights, EMA weights, normalizer, optimizer state, RNG state
  checkpoint.json        config, step, optimizer/scheduler scalars, numpy and python RNG state, kind
Both are written to temporary names and renamed, JSON last, so a directory whose JSON exists is
complete. Optimizer state is flattened to tensors (`optim.state.<param>.<name>`) plus JSON for the
scalars and parameter groups, which is what `torch.optim.Optimizer.load_state_dict` needs back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dynarep.errors import DynarepError
from dynarep.fileio import atomic_write_via

WEIGHTS, META = "model.safetensors", "checkpoint.json"


class CheckpointError(DynarepError):
    """A checkpoint is missing, truncated or does not fit the model it is loaded into."""


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors and a JSON-able rest."""
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.state.{pid}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim.state."):
            pid, name = key[len("optim.state."):].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    directory = Path(directory)  # made by atomic_write_via if missing
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_via(directory / WEIGHTS, lambda p: save_file(clean, str(p)))
    atomic_write_via(directory / META, lambda p: p.write_text(json.dumps(meta, indent=1)))
    return directory


def read_meta(meta_path: Path) -> dict:
    """A checkpoint's JSON metadata; a broken file names itself."""
    try:
        return json.loads(Path(meta_path).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{meta_path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint directory; every failure names the file and what is wrong."""
    directory = Path(directory)
    weights, meta_path = directory / WEIGHTS, directory / META
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    for path in (weights, meta_path):
        if not path.exists():
            raise CheckpointError(f"{path}: missing; a checkpoint needs {WEIGHTS} and {META}")
    meta = read_meta(meta_path)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from None
    return tensors, meta


def load_matching(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: Path) -> None:
    """Load `prefix`-ed tensors into `module`, naming every missing key or shape mismatch."""
    own = module.state_dict()
    given = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(given))
    if missing:
        raise CheckpointError(f"{source}: missing weights {missing[:5]}{' ...' if len(missing) > 5 else ''} (prefix '{prefix}')")
    for key, value in given.items():
        if key in own and own[key].shape != value.shape:
            raise CheckpointError(
                f"{source}: weight '{prefix}{key}' has shape {tuple(value.shape)} but the model expects {tuple(own[key].shape)}"
            )
    unexpected = sorted(set(given) - set(own))
    if unexpected:
        raise CheckpointError(f"{source}: unexpected weights {unexpected[:5]} for this model (prefix '{prefix}')")
    module.load_state_dict(given)
