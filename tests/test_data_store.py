"""Writing, opening, validating and summarising zarr demonstration stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from support import FIXTURE as DP3_FIXTURE

from dynarep.data import ZarrDataset, write_dataset
from dynarep.data import store as store_module
from dynarep.data.geometry import quat_to_mat
from dynarep.errors import DataError

EPISODE_ENDS = [4, 10]
N_STEPS = 10
N_POINTS = 8


def synthetic_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny store's worth of data in our collector's layout."""
    rng = np.random.default_rng(seed)
    return {
        "point_cloud": rng.normal(size=(N_STEPS, N_POINTS, 3)).astype(np.float32),
        "point_body": rng.integers(0, 3, size=(N_STEPS, N_POINTS)).astype(np.int16),
        "body_pos": rng.normal(size=(N_STEPS, 3, 3)).astype(np.float32),
        "body_quat": np.tile(np.array([1, 0, 0, 0], np.float32), (N_STEPS, 3, 1)),
        "state": rng.normal(size=(N_STEPS, 9)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(N_STEPS, 4)).astype(np.float32),
        "reward": rng.uniform(size=N_STEPS).astype(np.float32),
        "success": np.arange(N_STEPS) % 4 == 3,
        "img": rng.integers(0, 255, size=(N_STEPS, 6, 5, 3)).astype(np.uint8),
        "depth_corner2": rng.uniform(size=(N_STEPS, 6, 5)).astype(np.float32),
        "seg": rng.integers(-1, 3, size=(N_STEPS, 6, 5)).astype(np.int16),
        "extrinsics": np.tile(np.eye(4, dtype=np.float32), (N_STEPS, 1, 1)),
    }


SYNTHETIC_META = {"episode_task": np.array([1, 0], np.int16), "episode_seed": np.array([7, 8], np.int64)}
SYNTHETIC_ATTRS = {
    "tasks": ["reach", "push"],
    "instructions": {"reach": "reach the goal", "push": "push the puck"},
    "crop": {"low": np.array([-1.0, -1.0, 0.0]), "high": (1.0, 1.0, 1.0)},
    "cameras": [{"name": "corner", "width": 5, "height": 6, "intrinsics": np.eye(3).tolist()}],
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A written synthetic store."""
    return write_dataset(tmp_path / "demo.zarr", synthetic_arrays(), EPISODE_ENDS, SYNTHETIC_META, SYNTHETIC_ATTRS, chunk_steps=3)


def raw_store(path: Path, data: dict[str, np.ndarray], episode_ends: list[int] | None) -> Path:
    """Write arrays with zarr directly, bypassing write_dataset's validation, to build broken stores."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    group = root.require_group("data")
    for key, arr in data.items():
        group.create_array(key, data=arr)
    meta = root.require_group("meta")
    if episode_ends is not None:
        meta.create_array("episode_ends", data=np.asarray(episode_ends, np.int64))
    return path


# ----- writing --------------------------------------------------------------------------------


def test_round_trip_preserves_arrays_dtypes_and_attrs(store: Path) -> None:
    arrays = synthetic_arrays()
    ds = ZarrDataset.open(store)
    assert ds.path == store
    assert (ds.n_episodes, ds.n_steps) == (2, 10)
    assert ds.episode_ends.dtype == np.int64 and ds.episode_ends.tolist() == EPISODE_ENDS
    assert ds.keys == sorted(arrays)
    loaded = ds.load()
    for key, arr in arrays.items():
        assert ds.shapes[key] == arr.shape
        assert ds.dtypes[key] == arr.dtype
        np.testing.assert_array_equal(loaded[key], arr)
    np.testing.assert_array_equal(ds.read("state", slice(2, 5)), arrays["state"][2:5])
    np.testing.assert_array_equal(ds.read("data/action", 3), arrays["action"][3])
    np.testing.assert_array_equal(ds.read("state", np.array([5, 1])), arrays["state"][[5, 1]])
    assert ds.attrs["dynarep_format"] == 1
    assert ds.attrs["crop"] == {"low": [-1.0, -1.0, 0.0], "high": [1.0, 1.0, 1.0]}
    assert ds.attrs["tasks"] == ["reach", "push"]


def test_written_store_uses_dp3_encoding(store: Path) -> None:
    zarray = json.loads((store / "data" / "point_cloud" / ".zarray").read_text())
    assert zarray["zarr_format"] == 2
    assert zarray["chunks"] == [3, N_POINTS, 3]
    assert zarray["compressor"] == {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0}
    assert (store / ".zgroup").exists() and (store / "meta" / "episode_ends" / ".zarray").exists()


def test_write_leaves_no_temp_dir_and_refuses_to_clobber(store: Path) -> None:
    assert [p.name for p in store.parent.iterdir()] == ["demo.zarr"]
    before = ZarrDataset.open(store).read("state")
    with pytest.raises(DataError, match="already exists") as info:
        write_dataset(store, synthetic_arrays(seed=1), EPISODE_ENDS)
    assert str(store) in str(info.value)
    np.testing.assert_array_equal(ZarrDataset.open(store).read("state"), before)
    assert [p.name for p in store.parent.iterdir()] == ["demo.zarr"]


def test_overwrite_replaces_store_atomically(store: Path) -> None:
    new = synthetic_arrays(seed=1)
    write_dataset(store, {"state": new["state"]}, [10], overwrite=True)
    ds = ZarrDataset.open(store)
    assert ds.keys == ["state"] and ds.n_episodes == 1
    np.testing.assert_array_equal(ds.read("state"), new["state"])
    assert [p.name for p in store.parent.iterdir()] == ["demo.zarr"]


def test_crash_during_write_removes_temp_and_keeps_old_store(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_swap = store_module._swap_into_place

    def crash_before_swap(tmp: Path, path: Path) -> None:
        assert tmp.name.startswith(".demo.zarr.tmp-") and tmp.exists()
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_swap_into_place", crash_before_swap)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(store, synthetic_arrays(seed=1), EPISODE_ENDS, overwrite=True)
    assert [p.name for p in store.parent.iterdir()] == ["demo.zarr"]
    np.testing.assert_array_equal(ZarrDataset.open(store).read("state"), synthetic_arrays()["state"])
    assert real_swap is not crash_before_swap


def test_writer_streams_episodes_and_equals_write_dataset(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    whole = write_dataset(tmp_path / "whole.zarr", arrays, EPISODE_ENDS)
    with store_module.DatasetWriter(tmp_path / "streamed.zarr") as writer:
        start = 0
        for i, end in enumerate(EPISODE_ENDS):
            writer.add_episode({k: v[start:end] for k, v in arrays.items()}, {"episode_seed": 10 + i})
            start = end
    a, b = ZarrDataset.open(whole), ZarrDataset.open(tmp_path / "streamed.zarr")
    for key in a.keys:
        np.testing.assert_array_equal(a.read(key), b.read(key))
    assert b.episode_info(1)["seed"] == 11


def test_writer_rejects_an_episode_of_another_shape_and_leaves_nothing(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    with pytest.raises(DataError, match=r"point_cloud.*episode 1"):
        with store_module.DatasetWriter(tmp_path / "x.zarr") as writer:
            writer.add_episode({k: v[:3] for k, v in arrays.items()})
            bad = {k: v[:3] for k, v in arrays.items()}
            bad["point_cloud"] = bad["point_cloud"][:, :5]
            writer.add_episode(bad)
    assert list(tmp_path.iterdir()) == []


def test_attrs_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="attribute 'attrs.bad' has type object"):
        write_dataset(tmp_path / "x.zarr", synthetic_arrays(), EPISODE_ENDS, attrs={"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_mismatched_time_axis(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    arrays["action"] = arrays["action"][:7]
    with pytest.raises(DataError) as info:
        write_dataset(tmp_path / "x.zarr", arrays, EPISODE_ENDS)
    message = str(info.value)
    assert "data/action" in message and "(7, 4)" in message and "10" in message
    assert not (tmp_path / "x.zarr").exists()


def test_write_rejects_non_increasing_episode_ends(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="episode_ends.*not strictly increasing"):
        write_dataset(tmp_path / "x.zarr", synthetic_arrays(), [6, 6, 10])


def test_write_rejects_nan_naming_key_and_index(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    arrays["action"][6, 2] = np.nan
    with pytest.raises(DataError) as info:
        write_dataset(tmp_path / "x.zarr", arrays, EPISODE_ENDS)
    assert "data/action" in str(info.value) and "(6, 2)" in str(info.value) and "nan" in str(info.value)


def test_write_allows_nan_padding_in_body_pose(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    arrays["body_pos"][:, 2] = np.nan
    ds = ZarrDataset.open(write_dataset(tmp_path / "x.zarr", arrays, EPISODE_ENDS))
    assert np.isnan(ds.read("body_pos")[:, 2]).all()


def test_write_rejects_meta_of_wrong_length(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"meta/episode_seed.*\(3,\).*2"):
        write_dataset(tmp_path / "x.zarr", synthetic_arrays(), EPISODE_ENDS, meta={"episode_seed": np.arange(3)})


# ----- DP3 fixture ----------------------------------------------------------------------------


def test_dp3_fixture_opens_unchanged() -> None:
    ds = ZarrDataset.open(DP3_FIXTURE)
    assert ds.n_episodes == 2 and ds.n_steps == 118
    assert ds.episode_ends.tolist() == [61, 118]
    assert ds.shapes["point_cloud"] == (118, 512, 6)
    assert ds.episode_slice(0) == slice(0, 61)
    assert ds.episode_slice(1) == slice(61, 118)
    assert ds.episode_slice(-1) == slice(61, 118)
    assert set(ds.keys) == {"img", "depth", "point_cloud", "state", "full_state", "action"}
    assert ds.attrs == {}
    xyz = ds.point_cloud_xyz(slice(0, 5))
    assert xyz.shape == (5, 512, 3)
    np.testing.assert_array_equal(xyz, ds.read("point_cloud", slice(0, 5))[..., :3])
    ds.check_finite("point_cloud")
    assert ds.episode_info(1) == {
        "episode": 1, "task": None, "task_index": None, "seed": None, "instruction": None,
        "start": 61, "end": 118, "length": 57,
    }


def test_dp3_fixture_summary() -> None:
    ds = ZarrDataset.open(DP3_FIXTURE)
    summary = ds.summary()
    assert summary["episodes"] == 2 and summary["steps"] == 118
    assert summary["keys"]["point_cloud"] == {"shape": [118, 512, 6], "dtype": "float32"}
    assert summary["tasks"] == {"unknown": 2}
    assert summary["bytes_stored"] == ds.nbytes_stored() > 0
    assert summary["bytes_per_step"] == pytest.approx(ds.nbytes_stored() / 118)
    json.dumps(summary)
    text = ds.format_summary()
    assert "episodes: 2" in text and "steps: 118" in text and "(118, 512, 6)" in text


# ----- episodes and summary of our own stores ------------------------------------------------


def test_episode_info_and_task_counts(store: Path) -> None:
    ds = ZarrDataset.open(store)
    assert ds.episode_info(0) == {
        "episode": 0, "task": "push", "task_index": 1, "seed": 7, "instruction": "push the puck",
        "start": 0, "end": 4, "length": 4,
    }
    assert ds.episode_info(1)["task"] == "reach" and ds.episode_info(1)["length"] == 6
    assert ds.summary()["tasks"] == {"push": 1, "reach": 1}
    assert ds.summary()["attrs"]["crop"]["high"] == [1.0, 1.0, 1.0]
    text = ds.format_summary()
    assert "dynarep format 1" in text and "push (1)" in text and "corner (5x6)" in text
    with pytest.raises(DataError, match="episode 2 does not exist.*2 episodes"):
        ds.episode_slice(2)
    assert ds.episode_of_step(3) == 0 and ds.episode_of_step(4) == 1


def test_single_task_store_without_episode_task(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "x.zarr", synthetic_arrays(), EPISODE_ENDS, attrs={"tasks": ["reach"]})
    assert ZarrDataset.open(path).summary()["tasks"] == {"reach": 2}


# ----- broken stores --------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.zarr"
    with pytest.raises(DataError, match="does not exist") as info:
        ZarrDataset.open(path)
    assert str(path) in str(info.value)


def test_directory_that_is_not_a_zarr_group(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a zarr group") as info:
        ZarrDataset.open(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_episode_ends(tmp_path: Path) -> None:
    path = tmp_path / "dp3.zarr"
    shutil.copytree(DP3_FIXTURE, path)
    shutil.rmtree(path / "meta" / "episode_ends")
    with pytest.raises(DataError) as info:
        ZarrDataset.open(path)
    assert str(path) in str(info.value) and "meta/episode_ends" in str(info.value)


def test_missing_key_in_read_lists_available_keys() -> None:
    ds = ZarrDataset.open(DP3_FIXTURE)
    with pytest.raises(DataError) as info:
        ds.read("point_body")
    message = str(info.value)
    assert "'data/point_body'" in message and "point_cloud" in message and "full_state" in message
    assert str(DP3_FIXTURE) in message


def test_point_cloud_without_channel_axis(tmp_path: Path) -> None:
    path = raw_store(tmp_path / "bad.zarr", {"point_cloud": np.zeros((12, 8), np.float32)}, [5, 12])
    with pytest.raises(DataError) as info:
        ZarrDataset.open(path)
    message = str(info.value)
    assert str(path) in message and "data/point_cloud" in message
    assert "(12, 8)" in message and "(T, N, 3) or (T, N, 6)" in message


def test_first_dim_disagrees_with_episode_ends(tmp_path: Path) -> None:
    data = {"state": np.zeros((12, 9), np.float32), "action": np.zeros((11, 4), np.float32)}
    with pytest.raises(DataError, match=r"data/action.*\(11, 4\).*first dim 12"):
        ZarrDataset.open(raw_store(tmp_path / "bad.zarr", data, [5, 12]))


def test_store_without_observation(tmp_path: Path) -> None:
    path = raw_store(tmp_path / "bad.zarr", {"action": np.zeros((12, 4), np.float32)}, [12])
    with pytest.raises(DataError, match="neither 'point_cloud' nor 'state'"):
        ZarrDataset.open(path)


def test_decreasing_episode_ends(tmp_path: Path) -> None:
    path = raw_store(tmp_path / "bad.zarr", {"state": np.zeros((12, 9), np.float32)}, [8, 5, 12])
    with pytest.raises(DataError, match=r"meta/episode_ends.*not strictly increasing.*value 5 at index 1"):
        ZarrDataset.open(path)


def test_nan_in_point_cloud_found_by_check_finite(tmp_path: Path) -> None:
    cloud = np.zeros((12, 8, 3), np.float32)
    cloud[9, 4, 1] = np.nan
    path = raw_store(tmp_path / "nan.zarr", {"point_cloud": cloud}, [5, 12])
    ds = ZarrDataset.open(path)
    with pytest.raises(DataError) as info:
        ds.check_finite("point_cloud")
    message = str(info.value)
    assert str(path) in message and "data/point_cloud" in message and "(9, 4, 1)" in message


# ----- flow from a store ----------------------------------------------------------------------


def rotation_z_quat(angle: float) -> np.ndarray:
    """wxyz quaternion of a rotation by ``angle`` about z."""
    return np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


@pytest.fixture
def flow_store(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Points rigidly attached to a static body 0 and a moving, spinning body 1."""
    steps = np.arange(6)
    pos = np.zeros((6, 2, 3))
    quat = np.zeros((6, 2, 4))
    pos[:, 0] = [0.5, -0.2, 0.1]
    quat[:, 0] = rotation_z_quat(0.3)
    pos[:, 1, 0] = 0.1 * steps
    quat[:, 1] = [rotation_z_quat(a) for a in np.pi / 6 * steps]
    local = np.array([[0.1, 0.0, 0.0], [0.0, 0.2, 0.1], [0.3, 0.0, 0.0], [0.0, -0.1, 0.2]])
    bodies = np.array([0, 0, 1, 1], np.int16)
    rot = quat_to_mat(quat[:, bodies])
    world = np.einsum("tnij,nj->tni", rot, local) + pos[:, bodies]
    arrays = {
        "point_cloud": world.astype(np.float32),
        "point_body": np.tile(bodies, (6, 1)),
        "body_pos": pos.astype(np.float32),
        "body_quat": quat.astype(np.float32),
    }
    return write_dataset(tmp_path / "flow.zarr", arrays, [3, 6]), world


def test_flow_matches_rigid_motion(flow_store: tuple[Path, np.ndarray]) -> None:
    path, world = flow_store
    ds = ZarrDataset.open(path)
    flow = ds.flow(3, 2)
    assert flow.shape == (4, 3) and flow.dtype == np.float32
    np.testing.assert_array_equal(flow[:2], 0.0)
    np.testing.assert_allclose(flow[2:], (world[5] - world[3])[2:], atol=1e-5)
    np.testing.assert_allclose(ds.flow(5, -2), -flow, atol=1e-5)


def test_flow_may_not_leave_the_episode(flow_store: tuple[Path, np.ndarray]) -> None:
    ds = ZarrDataset.open(flow_store[0])
    with pytest.raises(DataError, match=r"2\+1 = 3 leaves episode 0"):
        ds.flow(2, 1)
    with pytest.raises(DataError, match="leaves episode 1"):
        ds.flow(3, -1)


def test_episode_flow_agrees_with_flow(flow_store: tuple[Path, np.ndarray]) -> None:
    ds = ZarrDataset.open(flow_store[0])
    forward = ds.episode_flow(1, 1)
    assert forward.shape == (2, 4, 3)
    for j, t in enumerate([3, 4]):
        np.testing.assert_array_equal(forward[j], ds.flow(t, 1))
    backward = ds.episode_flow(1, -2)
    assert backward.shape == (1, 4, 3)
    np.testing.assert_array_equal(backward[0], ds.flow(5, -2))
    with pytest.raises(DataError, match="k=3 leaves episode 0 of length 3"):
        ds.episode_flow(0, 3)


def test_flow_needs_body_keys() -> None:
    ds = ZarrDataset.open(DP3_FIXTURE)
    with pytest.raises(DataError, match="'data/point_body' which is missing"):
        ds.flow(0, 1)


def test_flow_on_nan_padded_body_names_it(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    arrays["body_pos"][:, 2] = np.nan
    arrays["point_body"][:] = 2
    ds = ZarrDataset.open(write_dataset(tmp_path / "x.zarr", arrays, EPISODE_ENDS))
    with pytest.raises(DataError, match=r"body ids \[2\] whose pose .* is NaN"):
        ds.flow(0, 1)
