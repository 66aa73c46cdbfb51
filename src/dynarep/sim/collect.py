"""`dynarep collect`: MetaWorld's scripted experts -> a zarr dataset of 3D demonstrations.

How it stays safe to interrupt: every attempted episode is written on its own, atomically, into
`<out>.partial/` (successes as .npz, failures as a small .json). Running the same command again
skips what is there. Which episodes are kept depends only on the seeds (the first N successful
attempts in attempt order), never on the number of workers or on where a run was cut, so a resumed
collection gives the same dataset as an uninterrupted one. The final store is assembled in a
temporary directory and renamed into place; the partial directory is removed after that.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from dynarep.config import to_dict
from dynarep.errors import ConfigError, DataError, DynarepError
from dynarep.fileio import atomic_write_bytes
from dynarep.sim.scene import (
    DEMO_STREAM,
    MetaWorldScene,
    ObservationConfig,
    episode_seed,
    make_expert,
)
from dynarep.sim.tasks import DIFFICULTY, INSTRUCTIONS, expand_tasks

# Settings that change the data; a resumed run must agree on all of them.
_DATA_KEYS = ("task", "episodes", "seed", "obs", "max_steps")


@dataclass
class CollectConfig:
    """Collect expert demonstrations from MetaWorld into a zarr dataset."""

    out: Path = Path("data/demos.zarr")
    """Output dataset path (a directory ending in .zarr)."""
    task: tuple[str, ...] = ("button-press",)
    """MetaWorld task name(s), 'all' for the 50 tasks or 'dev' for the development set."""
    episodes: int = 10
    """Successful episodes to keep per task."""
    seed: int = 0
    """Base seed; episode configurations are drawn from it (demo stream, never used for eval)."""
    obs: Annotated[ObservationConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=ObservationConfig)
    max_steps: int = 200
    """Episode cap (DP3 uses 200); episodes that do not succeed by then are discarded."""
    max_tries: int = 0
    """Attempts per task before giving up; 0 means 3 x episodes + 10."""
    workers: int = 1
    """Processes that run episodes in parallel (one per core is best: llvmpipe gains nothing from threads)."""
    chunk_steps: int = 100
    """Zarr chunk length along time."""
    overwrite: bool = False
    """Replace an existing dataset at --out."""

    def tries_limit(self) -> int:
        return self.max_tries if self.max_tries > 0 else 3 * self.episodes + 10

    def validate(self) -> None:
        self.obs.validate()
        if self.episodes <= 0:
            raise ConfigError(f"--episodes must be positive, got {self.episodes}")
        if self.workers <= 0:
            raise ConfigError(f"--workers must be positive, got {self.workers}")
        if self.max_steps <= 0:
            raise ConfigError(f"--max-steps must be positive, got {self.max_steps}")
        if not str(self.out).rstrip("/").endswith(".zarr"):
            raise ConfigError(f"--out must name a .zarr directory, got '{self.out}'")


def data_settings(cfg: CollectConfig, tasks: list[str]) -> dict:
    d = {k: asdict(cfg)[k] if k != "obs" else asdict(cfg.obs) for k in _DATA_KEYS}
    d["task"] = list(tasks)
    return json.loads(json.dumps(d, default=list))


# --- one episode ----------------------------------------------------------------------------
_SCENES: dict[str, MetaWorldScene] = {}  # per process: building an env and a GL context takes ~1 s


def _scene(task: str, obs: ObservationConfig, max_steps: int) -> MetaWorldScene:
    if task not in _SCENES:
        _SCENES[task] = MetaWorldScene(task, obs, max_steps=max_steps)
    return _SCENES[task]


def run_expert_episode(scene: MetaWorldScene, seed: int, max_steps: int) -> tuple[dict[str, np.ndarray], bool]:
    """Roll the scripted expert until success or `max_steps`; arrays are (T, ...) per key."""
    expert = make_expert(scene.task)
    step_obs = scene.reset(seed)
    steps: list[dict[str, np.ndarray]] = []
    success = False
    for _ in range(max_steps):
        action = np.clip(expert.get_action(step_obs.obs), -1.0, 1.0).astype(np.float32)
        record = dict(step_obs.arrays, action=action)
        step_obs, reward, success, truncated = scene.step(action)
        record.update(reward=np.float32(reward), success=np.bool_(success))
        steps.append(record)
        if success or truncated:
            break
    return {k: np.stack([s[k] for s in steps]) for k in steps[0]}, success


def _attempt_path(parts: Path, task: str, attempt: int, ok: bool) -> Path:
    return parts / "attempts" / task / (f"{attempt:05d}.npz" if ok else f"{attempt:05d}.failed.json")


def run_attempt(parts: str, task: str, attempt: int, cfg_json: str) -> dict:
    """Worker entry point: run one attempt and persist it; returns a small summary."""
    cfg = json.loads(cfg_json)
    obs = ObservationConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["obs"].items()})
    scene = _scene(task, obs, cfg["max_steps"])
    seed = episode_seed(cfg["seed"], DEMO_STREAM, task, attempt)
    arrays, ok = run_expert_episode(scene, seed, cfg["max_steps"])
    summary = {"success": ok, "length": int(len(arrays["action"])), "seed": seed, "rand_vec": scene.rand_vec.tolist(),
               "body_names": scene.body_names()}
    path = _attempt_path(Path(parts), task, attempt, ok)
    if ok:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(summary).encode())
    else:
        atomic_write_bytes(path, json.dumps(summary).encode())
    return summary


def _existing_attempt(parts: Path, task: str, attempt: int) -> dict | None:
    ok_path = _attempt_path(parts, task, attempt, True)
    if ok_path.exists() and ok_path.with_suffix(".json").exists():
        return json.loads(ok_path.with_suffix(".json").read_text())
    failed = _attempt_path(parts, task, attempt, False)
    if failed.exists():
        return json.loads(failed.read_text())
    return None


# --- the whole collection -------------------------------------------------------------------
class _Runner:
    """Runs attempts in this process (workers == 1) or in a pool, handing back results in order."""

    def __init__(self, workers: int):
        self.pool = None
        if workers > 1:
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)

    def submit(self, *args) -> Future:
        if self.pool is not None:
            return self.pool.submit(run_attempt, *args)
        fut: Future = Future()
        fut.set_result(run_attempt(*args))
        return fut

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        for scene in _SCENES.values():
            scene.close()
        _SCENES.clear()


def _worker_init() -> None:
    # One llvmpipe thread per process: measured faster than sharing cores between threads.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    os.environ.setdefault("MUJOCO_GL", "egl")


def collect_task(task: str, cfg: CollectConfig, parts: Path, runner: _Runner, cfg_json: str, progress) -> dict:
    """Keep the first `episodes` successful attempts of one task; returns its statistics."""
    kept: list[int] = []
    tries = 0
    pending: deque[tuple[int, Future]] = deque()
    next_attempt, limit = 0, cfg.tries_limit()
    width = cfg.workers if runner.pool is not None else 1
    while len(kept) < cfg.episodes:
        while len(pending) < width and next_attempt < limit:
            done = _existing_attempt(parts, task, next_attempt)
            fut: Future
            if done is not None:
                fut = Future()
                fut.set_result(done)
            else:
                fut = runner.submit(str(parts), task, next_attempt, cfg_json)
            pending.append((next_attempt, fut))
            next_attempt += 1
        if not pending:
            raise DynarepError(
                f"{task}: only {len(kept)} of {cfg.episodes} expert episodes succeeded in {tries} tries "
                f"(max {limit}, episode cap {cfg.max_steps} steps); raise --max-tries or --max-steps"
            )
        attempt, fut = pending.popleft()
        result = fut.result()
        tries += 1
        if result["success"]:
            kept.append(attempt)
        progress.set_postfix_str(f"{task}: {len(kept)}/{cfg.episodes} kept, {tries} tries", refresh=False)
        progress.update(int(result["success"]))
    for _, fut in pending:  # attempts beyond the last kept one are not part of the dataset
        fut.cancel()
    return {"kept_attempts": kept, "tries": tries, "failed": tries - len(kept)}


def collect(cfg: CollectConfig) -> Path:
    """Run the whole collection; returns the path of the finished dataset."""
    from tqdm.auto import tqdm

    from dynarep.data.store import DatasetWriter

    cfg.validate()
    tasks = expand_tasks(list(cfg.task))
    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise DataError(f"{out} exists already; pass --overwrite to replace it or choose another --out")
    parts = out.with_name(out.name + ".partial")
    camera_setup(tasks[0], cfg.obs)  # fail on a bad camera before any work starts
    settings = data_settings(cfg, tasks)
    _prepare_parts(parts, settings)
    cfg_json = json.dumps(settings)
    start = time.time()
    runner = _Runner(cfg.workers)
    stats: dict[str, dict] = {}
    try:
        with tqdm(total=len(tasks) * cfg.episodes, desc="collect", unit="ep", dynamic_ncols=True) as bar:
            for task in tasks:
                stats[task] = collect_task(task, cfg, parts, runner, cfg_json, bar)
    finally:
        runner.close()
    attrs = _dataset_attrs(cfg, tasks, parts, stats, time.time() - start)
    n_bodies = max(len(names) for names in attrs["body_names"].values())
    with DatasetWriter(out, chunk_steps=cfg.chunk_steps, overwrite=cfg.overwrite, attrs=attrs) as writer:
        for ti, task in enumerate(tasks):
            for attempt in stats[task]["kept_attempts"]:
                path = _attempt_path(parts, task, attempt, True)
                summary = json.loads(path.with_suffix(".json").read_text())
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: pad_bodies(z[k], n_bodies) if k.startswith("body_") else z[k] for k in z.files}
                writer.add_episode(arrays, {"episode_task": np.int16(ti), "episode_seed": np.int64(summary["seed"])})
    shutil.rmtree(parts, ignore_errors=True)
    return out


def pad_bodies(poses: np.ndarray, n_bodies: int) -> np.ndarray:
    """Tasks have different numbers of bodies; pad (L, B, k) pose arrays with NaN to a common B."""
    pad = n_bodies - poses.shape[1]
    return np.concatenate([poses, np.full((poses.shape[0], pad, poses.shape[2]), np.nan, poses.dtype)], 1) if pad else poses


def _prepare_parts(parts: Path, settings: dict) -> None:
    cfg_file = parts / "settings.json"
    if cfg_file.exists():
        before = json.loads(cfg_file.read_text())
        if before != settings:
            changed = sorted(k for k in settings if before.get(k) != settings[k])
            raise DataError(
                f"{parts} holds an interrupted collection with other settings ({', '.join(changed)} differ); "
                f"rerun with the same options to resume, or delete {parts}"
            )
        return
    atomic_write_bytes(cfg_file, json.dumps(settings, indent=1).encode())


def _dataset_attrs(cfg: CollectConfig, tasks: list[str], parts: Path, stats: dict, seconds: float) -> dict:
    from importlib.metadata import version

    import mujoco
    import zarr

    import dynarep

    body_names = {}
    for task in tasks:
        first = _attempt_path(parts, task, stats[task]["kept_attempts"][0], True).with_suffix(".json")
        body_names[task] = json.loads(first.read_text())["body_names"]
    return {
        "dynarep_format": 1,
        "source": "metaworld",
        "tasks": tasks,
        "instructions": {t: INSTRUCTIONS[t] for t in tasks},
        "difficulty": {t: DIFFICULTY[t] for t in tasks},
        "cameras": camera_setup(tasks[0], cfg.obs),
        "body_names": body_names,
        "crop": {"low": list(cfg.obs.crop_low), "high": list(cfg.obs.crop_high)},
        "sampling": {"num_points": cfg.obs.num_points, "method": "farthest point (fpsample QuickFPS)",
                     "point_render_size": cfg.obs.point_render_size, "color": cfg.obs.point_color},
        "collection": {
            "seed": cfg.seed, "episodes_per_task": cfg.episodes, "max_steps": cfg.max_steps,
            "stop_on_success": True, "seconds": round(seconds, 1), "workers": cfg.workers,
            "per_task": {t: {"kept": len(s["kept_attempts"]), "tries": s["tries"]} for t, s in stats.items()},
        },
        "config": to_dict(cfg),
        "versions": {"dynarep": dynarep.__version__, "metaworld": version("metaworld"), "mujoco": mujoco.__version__,
                     "zarr": zarr.__version__, "numpy": np.__version__},
    }


def camera_setup(task: str, obs: ObservationConfig) -> list[dict]:
    """Intrinsics of the stored images per camera; raises ConfigError for a camera the scene lacks."""
    from dynarep.sim import render
    from dynarep.sim.scene import make_env

    env = make_env(task)
    try:
        s = obs.image_size
        return [
            {"name": c, "width": s, "height": s, "intrinsics": render.intrinsics(env.model, render.camera_id(env.model, c), s, s).tolist(),
             "point_render_size": obs.point_render_size,
             "extrinsics": "per step in data/extrinsics[_<camera>], OpenCV convention, camera-to-world"}
            for c in obs.cameras
        ]
    finally:
        env.close()
