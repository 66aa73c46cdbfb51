"""Min/max normalisation to [-1, 1] for numpy and torch, and its safetensors round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dynarep.data import MinMaxNormalizer
from dynarep.errors import DataError


def actions() -> np.ndarray:
    """Actions (50, 4) whose last dimension is constant."""
    values = np.random.default_rng(0).uniform(-3, 5, size=(50, 4)).astype(np.float32)
    values[:, 3] = 0.25
    return values


def test_min_maps_to_minus_one_and_max_to_one() -> None:
    data = actions()
    normalizer = MinMaxNormalizer().fit({"action": data})
    out = normalizer.normalize("action", data)
    assert out.dtype == np.float32 and out.shape == data.shape
    np.testing.assert_allclose(out[:, :3].min(axis=0), -1.0, atol=1e-6)
    np.testing.assert_allclose(out[:, :3].max(axis=0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out[:, 3], 0.0)  # constant dim: centred, not divided by ~0
    np.testing.assert_allclose(normalizer.unnormalize("action", out), data, atol=1e-5)


def test_torch_keeps_dtype_and_matches_numpy() -> None:
    data = actions()
    normalizer = MinMaxNormalizer().fit({"action": torch.from_numpy(data)})
    batch = torch.from_numpy(data).double().reshape(5, 10, 4)
    out = normalizer.normalize("action", batch)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (5, 10, 4)
    np.testing.assert_allclose(out.reshape(50, 4).numpy(), normalizer.normalize("action", data), atol=1e-6)
    back = normalizer.unnormalize("action", out)
    assert back.dtype == torch.float64
    torch.testing.assert_close(back, batch, atol=1e-5, rtol=0)


def test_state_dict_round_trips_through_safetensors(tmp_path: Path) -> None:
    data = {"action": actions(), "agent_pos": np.random.default_rng(1).normal(size=(50, 9))}
    normalizer = MinMaxNormalizer().fit(data)
    state = normalizer.state_dict()
    assert set(state) == {"action.scale", "action.offset", "agent_pos.scale", "agent_pos.offset"}
    assert all(t.dtype == torch.float32 and t.shape in ((4,), (9,)) for t in state.values())
    save_file(state, str(tmp_path / "normalizer.safetensors"))
    restored = MinMaxNormalizer.from_state_dict(load_file(str(tmp_path / "normalizer.safetensors")))
    assert sorted(restored.fields) == ["action", "agent_pos"]
    for name, values in data.items():
        np.testing.assert_array_equal(restored.normalize(name, values), normalizer.normalize(name, values))


def test_point_cloud_is_fitted_on_xyz_and_keeps_rgb() -> None:
    cloud = np.random.default_rng(2).uniform(-1, 2, size=(6, 32, 6)).astype(np.float32)
    cloud[..., 3:] = 128.0
    normalizer = MinMaxNormalizer().fit({"point_cloud": cloud})
    assert normalizer.state_dict()["point_cloud.scale"].shape == (3,)
    out = normalizer.normalize("point_cloud", cloud)
    assert out.shape == cloud.shape
    np.testing.assert_array_equal(out[..., 3:], 128.0)
    np.testing.assert_allclose(out[..., :3].reshape(-1, 3).min(axis=0), -1.0, atol=1e-6)
    np.testing.assert_allclose(out[..., :3].reshape(-1, 3).max(axis=0), 1.0, atol=1e-6)
    xyz = torch.from_numpy(cloud[..., :3].copy())
    torch.testing.assert_close(normalizer.unnormalize("point_cloud", normalizer.normalize("point_cloud", xyz)), xyz)


def test_normalizer_errors() -> None:
    normalizer = MinMaxNormalizer().fit({"action": actions()})
    with pytest.raises(DataError, match=r"no field 'state'; fitted fields: \['action'\]"):
        normalizer.normalize("state", np.zeros((2, 4)))
    with pytest.raises(DataError, match=r"'action' got shape \(2, 3\) but expected last dim 4"):
        normalizer.normalize("action", np.zeros((2, 3)))
    with pytest.raises(DataError, match="field 'action': it contains NaN"):
        MinMaxNormalizer().fit({"action": np.full((3, 2), np.nan)})
    with pytest.raises(DataError, match="no key 'action.offset'"):
        MinMaxNormalizer.from_state_dict({"action.scale": torch.ones(4)})
