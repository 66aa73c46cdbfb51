"""`dynarep collect` and `dynarep info` as a user runs them: real MetaWorld, real files, real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from support import DYNAREP, FIXTURE, dynarep

from dynarep.data.store import ZarrDataset

SMALL = ["--image-size", "32", "--point-render-size", "128", "--num-points", "128"]


@pytest.fixture(scope="module")
def two_task_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("collect") / "two.zarr"
    dynarep("collect", "--task", "button-press", "drawer-open", "--episodes", "2", "--out", str(out), *SMALL)
    return out


def test_collect_writes_the_promised_layout(two_task_dataset):
    ds = ZarrDataset.open(two_task_dataset)
    assert ds.n_episodes == 4 and ds.tasks == ["button-press", "drawer-open"]
    T = ds.n_steps
    expect = {"point_cloud": (T, 128, 3), "point_body": (T, 128), "state": (T, 9), "full_state": (T, 39),
              "action": (T, 4), "reward": (T,), "success": (T,), "img": (T, 32, 32, 3), "depth": (T, 32, 32),
              "seg": (T, 32, 32), "extrinsics": (T, 4, 4)}
    for key, shape in expect.items():
        assert ds.shapes[key] == shape, key
    assert ds.shapes["body_pos"][0] == T and ds.shapes["body_quat"][2] == 4
    # only successful episodes, each ending on its first success
    success = ds.read("success")
    for e in range(ds.n_episodes):
        s = success[ds.episode_slice(e)]
        assert s[-1] and not s[:-1].any()
    info = ds.episode_info(2)
    assert info["task"] == "drawer-open" and info["instruction"] == "open the drawer" and info["seed"] is not None
    attrs = ds.attrs
    assert attrs["crop"]["high"][1] < 1.0 and attrs["sampling"]["num_points"] == 128
    assert attrs["cameras"][0]["name"] == "corner4" and len(attrs["cameras"][0]["intrinsics"]) == 3
    assert attrs["collection"]["per_task"]["button-press"]["tries"] >= 2
    assert "drawer_link" in attrs["body_names"]["drawer-open"]
    assert attrs["versions"]["mujoco"].startswith("3.3")
    # compressed, DP3-compatible zarr v2 chunks along time
    root = zarr.open_group(str(two_task_dataset), mode="r")
    assert root["data/point_cloud"].metadata.zarr_format == 2
    assert not Path(str(two_task_dataset) + ".partial").exists()
    # the flow of the sampled points to t+k is available for any step and horizon
    t = int(ds.episode_slice(2).start) + 5
    assert ds.flow(t, 3).shape == (128, 3)


def test_info_reports_episodes_tasks_and_bytes(two_task_dataset):
    out = dynarep("info", str(two_task_dataset)).stdout
    assert "episodes" in out and "4" in out and "drawer-open" in out and "per step" in out
    assert "point_cloud" in out


def test_dp3_fixture_loads_and_reports():
    out = dynarep("info", str(FIXTURE)).stdout
    assert "118" in out and "2" in out and "point_cloud" in out


def _collect_args(out: Path) -> list[str]:
    return ["collect", "--task", "button-press", "--episodes", "3", "--seed", "7", "--out", str(out), *SMALL]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    whole = tmp_path_factory.mktemp("whole") / "whole.zarr"
    dynarep(*_collect_args(whole), timeout=600)
    return whole


def _assert_same_dataset(a_path: Path, b_path: Path) -> None:
    a, b = ZarrDataset.open(a_path), ZarrDataset.open(b_path)
    np.testing.assert_array_equal(a.episode_ends, b.episode_ends)
    assert a.keys == b.keys
    for key in a.keys:
        np.testing.assert_array_equal(a.read(key), b.read(key), err_msg=key)


def test_two_workers_give_the_same_dataset_as_one(uninterrupted, tmp_path):
    out = tmp_path / "w2.zarr"
    dynarep(*_collect_args(out), "--workers", "2", timeout=600)
    _assert_same_dataset(uninterrupted, out)


def test_killed_collection_resumes_to_the_same_dataset(uninterrupted, tmp_path):
    cut = tmp_path / "cut.zarr"
    proc = subprocess.Popen([*DYNAREP, *_collect_args(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = Path(str(cut) + ".partial") / "attempts" / "button-press"
    deadline = time.time() + 300
    while time.time() < deadline and not list(parts.glob("*.npz")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(parts.glob("*.npz")), "the first episode should have been saved before the kill"
    assert not cut.exists(), "a killed collection must not leave a dataset behind"
    dynarep(*_collect_args(cut), timeout=600)
    _assert_same_dataset(uninterrupted, cut)


def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "x.zarr"
    parts = Path(str(out) + ".partial")
    parts.mkdir()
    (parts / "settings.json").write_text(json.dumps({"episodes": 99}))
    proc = dynarep("collect", "--task", "button-press", "--episodes", "1", "--out", str(out), *SMALL, check=False)
    assert proc.returncode == 2 and "other settings" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["collect", "--task", "button-prss", "--out", "x.zarr"], "unknown MetaWorld task 'button-prss'"),
        (["collect", "--cameras", "nosuchcam", "--out", "x.zarr"], "camera 'nosuchcam' does not exist"),
        (["collect", "--episodes", "0", "--out", "x.zarr"], "--episodes must be positive"),
        (["info", "does/not/exist.zarr"], "does/not/exist.zarr"),
    ],
)
def test_bad_input_fails_with_one_clear_line(tmp_path, args, message):
    proc = dynarep(*args, check=False, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_info_on_a_store_with_a_missing_key_or_nan(tmp_path):
    import shutil

    broken = tmp_path / "broken.zarr"
    shutil.copytree(FIXTURE, broken)
    root = zarr.open_group(str(broken), mode="r+")
    del root["meta/episode_ends"]
    proc = dynarep("info", str(broken), check=False)
    assert proc.returncode == 2 and "episode_ends" in proc.stderr
    nan = tmp_path / "nan.zarr"
    shutil.copytree(FIXTURE, nan)
    root = zarr.open_group(str(nan), mode="r+")
    pc = root["data/point_cloud"][:]
    pc[5, 3, 1] = np.nan
    root["data/point_cloud"][:] = pc
    proc = dynarep("info", str(nan), "--check", check=False)
    assert proc.returncode == 2 and "point_cloud" in proc.stderr and "nan at index (5, 3, 1)" in proc.stderr


def test_every_command_has_help():
    for cmd in (["--help"], ["collect", "--help"], ["info", "--help"]):
        proc = dynarep(*cmd)
        assert "usage" in proc.stdout.lower()


@pytest.fixture(scope="module")
def every_task_store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mt50") / "all.zarr"
    dynarep("collect", "--task", "all", "--episodes", "1", "--out", str(out), "--workers", "2",
            "--max-steps", "500", "--image-size", "16", "--point-render-size", "128", "--num-points", "64", timeout=3000)
    return out


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_metaworld_task_collects(every_task_store):
    """All 50 tasks: one expert episode each, at tiny sizes (minutes on two idle cores)."""
    ds = ZarrDataset.open(every_task_store)
    assert ds.n_episodes == 50 and len(set(ds.tasks)) == 50


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_metaworld_task_trains_and_evaluates(every_task_store, tmp_path):
    """PROTOCOL.md: every task must collect, train and evaluate. One tiny multi-task policy on the
    50-task store, then a short closed-loop episode of each task with its blind replay."""
    from dynarep.evaluation.rollout import EvalArgs, evaluate
    from dynarep.training.train_policy import TrainPolicyArgs, train_policy

    run = train_policy(TrainPolicyArgs(data=(every_task_store,), out=tmp_path / "policy", steps=3, down_dims=(16, 32),
                                       batch_size=8, val_ratio=0.0, device="cpu"))
    tasks = sorted(set(ZarrDataset.open(every_task_store).tasks))
    for task in tasks:
        r = evaluate(EvalArgs(policy=run, task=task, episodes=1, max_steps=3, out=tmp_path / f"{task}.json"))
        assert r["task"] == task and r["episodes"] == 1 and r["outcomes"][0]["length"] <= 3, task
        assert r["blind_replay"]["episodes"] == 1, task
