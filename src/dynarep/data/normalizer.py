"""Per-dimension min/max normalisation to [-1, 1], as Diffusion Policy / DP3 do for actions and states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import numpy as np
import torch

from dynarep.errors import DataError

OUTPUT_MIN = -1.0
OUTPUT_MAX = 1.0
# Below this range a dimension is treated as constant; dividing by it would blow up noise.
RANGE_EPS = 1e-4
# Fields normalised on their xyz channels only; any further channels (rgb) pass through unchanged.
XYZ_FIELDS = ("point_cloud",)

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Numpy view of an array or tensor (tensors are detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _limits_to_affine(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale and offset mapping [low, high] to [-1, 1]; constant dims map to 0 with scale 1."""
    span = high - low
    constant = span < RANGE_EPS
    span = np.where(constant, OUTPUT_MAX - OUTPUT_MIN, span)
    scale = (OUTPUT_MAX - OUTPUT_MIN) / span
    offset = np.where(constant, (OUTPUT_MAX + OUTPUT_MIN) / 2 - low, OUTPUT_MIN - scale * low)
    return scale.astype(np.float32), offset.astype(np.float32)


class MinMaxNormalizer:
    """Affine per-dimension maps ``y = x * scale + offset`` for named fields, fitted from min/max.

    Works on numpy arrays and torch tensors of any leading shape; the last axis is the feature
    axis. Results keep the input's type, device and (floating) dtype.
    """

    def __init__(self) -> None:
        """An empty normaliser; call ``fit`` or use ``from_state_dict``."""
        self._scale: dict[str, np.ndarray] = {}
        self._offset: dict[str, np.ndarray] = {}

    @property
    def fields(self) -> list[str]:
        """Names of the fitted fields."""
        return list(self._scale)

    def __contains__(self, name: str) -> bool:
        return name in self._scale

    def fit(self, data: Mapping[str, np.ndarray | torch.Tensor]) -> MinMaxNormalizer:
        """Fit every field in ``data`` from its per-dimension min/max; returns self."""
        for name, values in data.items():
            arr = _to_numpy(values)
            if name in XYZ_FIELDS:
                arr = arr[..., :3]
            if arr.ndim == 0 or arr.size == 0:
                raise DataError(f"cannot fit normaliser field '{name}' from an array of shape {arr.shape}")
            flat = arr.reshape(-1, arr.shape[-1]).astype(np.float64)
            if not np.isfinite(flat).all():
                raise DataError(f"cannot fit normaliser field '{name}': it contains NaN/inf")
            self._scale[name], self._offset[name] = _limits_to_affine(flat.min(axis=0), flat.max(axis=0))
        return self

    def _params(self, name: str, x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
        """Scale, offset and feature count for a field, after checking x's last axis."""
        if name not in self._scale:
            raise DataError(f"normaliser has no field '{name}'; fitted fields: {self.fields}")
        scale, offset = self._scale[name], self._offset[name]
        dim = scale.shape[0]
        last = tuple(x.shape)[-1:] or (None,)
        fits = last[0] == dim or (name in XYZ_FIELDS and last[0] is not None and last[0] >= dim)
        if not fits:
            raise DataError(f"normaliser field '{name}' got shape {tuple(x.shape)} but expected last dim {dim}")
        return scale, offset, dim

    @staticmethod
    def _apply(x: ArrayT, scale: np.ndarray, offset: np.ndarray, dim: int, inverse: bool) -> ArrayT:
        """Apply the affine map (or its inverse) to the first ``dim`` channels of x."""
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.float32
            s = torch.as_tensor(scale, device=x.device, dtype=dtype)
            o = torch.as_tensor(offset, device=x.device, dtype=dtype)
            head = x[..., :dim].to(dtype)
            out = (head - o) / s if inverse else head * s + o
            return torch.cat([out, x[..., dim:].to(dtype)], dim=-1) if x.shape[-1] > dim else out
        arr = np.asarray(x)
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float32)
        s, o = scale.astype(dtype), offset.astype(dtype)
        head = arr[..., :dim].astype(dtype, copy=False)
        out = (head - o) / s if inverse else head * s + o
        return np.concatenate([out, arr[..., dim:].astype(dtype)], axis=-1) if arr.shape[-1] > dim else out

    def normalize(self, name: str, x: ArrayT) -> ArrayT:
        """Map a field's values to [-1, 1] (fitted range); point clouds keep their rgb channels."""
        scale, offset, dim = self._params(name, x)
        return self._apply(x, scale, offset, dim, inverse=False)

    def unnormalize(self, name: str, x: ArrayT) -> ArrayT:
        """Inverse of ``normalize``."""
        scale, offset, dim = self._params(name, x)
        return self._apply(x, scale, offset, dim, inverse=True)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat float32 tensors ``"<field>.scale"`` / ``"<field>.offset"``, saveable with safetensors."""
        state: dict[str, torch.Tensor] = {}
        for name in self.fields:
            state[f"{name}.scale"] = torch.tensor(self._scale[name], dtype=torch.float32)
            state[f"{name}.offset"] = torch.tensor(self._offset[name], dtype=torch.float32)
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor | np.ndarray]) -> MinMaxNormalizer:
        """Rebuild a normaliser from ``state_dict()`` output (e.g. loaded by safetensors)."""
        normalizer = cls()
        parts: dict[str, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            name, _, part = key.rpartition(".")
            if not name or part not in ("scale", "offset"):
                raise DataError(f"normaliser state key '{key}' is not of the form '<field>.scale' or '<field>.offset'")
            parts.setdefault(name, {})[part] = _to_numpy(value).astype(np.float32)
        for name, pair in parts.items():
            if set(pair) != {"scale", "offset"}:
                missing = ({"scale", "offset"} - set(pair)).pop()
                raise DataError(f"normaliser state has no key '{name}.{missing}'")
            if pair["scale"].ndim != 1 or pair["scale"].shape != pair["offset"].shape:
                raise DataError(
                    f"normaliser state '{name}' has scale shape {pair['scale'].shape} and offset shape "
                    f"{pair['offset'].shape} but expected equal (D,) shapes"
                )
            if not np.all(np.isfinite(pair["scale"])) or np.any(pair["scale"] == 0):
                raise DataError(f"normaliser state '{name}.scale' holds {pair['scale'].tolist()} but expected finite non-zero values")
            normalizer._scale[name], normalizer._offset[name] = pair["scale"], pair["offset"]
        return normalizer
