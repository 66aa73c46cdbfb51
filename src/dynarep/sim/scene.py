"""A MetaWorld task with cameras: 3D observations and simulator ground truth, the same for
collection and for closed-loop evaluation.

One `MetaWorldScene` holds one environment and one renderer. An *episode seed* pins the object and
goal configuration (MetaWorld's `rand_vec`), so the same seed gives the same episode, and the
seeds used for demonstrations and for evaluation come from separate streams (see `episode_seed`).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from dynarep.data.geometry import crop_mask, farthest_point_sample
from dynarep.errors import ConfigError, DynarepError
from dynarep.sim import render
from dynarep.sim.tasks import TASKS, canonical_task

TIME_SPLIT = ("simulation", "rendering", "point_cloud")

DEMO_STREAM, EVAL_STREAM = 0, 1

# MetaWorld's experts warn on every call that their gains saturate; the env clips actions anyway.
warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)


@dataclass
class ObservationConfig:
    """What the cameras see and how it becomes a point cloud.

    Defaults follow DP3 on MetaWorld v3 (corner4 is DP3's moved `corner2`) and the measurements in
    shared/methods/metaworld-cpu.md: depth for points is rendered at 256 px because at 128 px the
    crop leaves too few points (~540) for 512-point FPS; the stored images are DP3's 84 px.
    """

    cameras: tuple[str, ...] = ("corner4",)
    image_size: int = 84  # stored img/depth/seg, per camera
    point_render_size: int = 256  # depth used to build the point cloud
    num_points: int = 512
    point_color: bool = False  # store xyz+rgb (T, N, 6) as DP3's generator does
    crop_low: tuple[float, float, float] = (-0.5, 0.25, 0.005)  # z > 0.005 removes the table top and floor
    crop_high: tuple[float, float, float] = (0.5, 0.975, 0.6)  # y < 0.975 drops the back wall (inner face at 0.98), which took half the points
    store_images: bool = True

    def validate(self) -> None:
        if not self.cameras:
            raise ConfigError("cameras: at least one camera is needed")
        for key in ("image_size", "point_render_size", "num_points"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        if any(lo >= hi for lo, hi in zip(self.crop_low, self.crop_high)):
            raise ConfigError(f"crop box is empty: low {self.crop_low} high {self.crop_high}")


def episode_seed(base_seed: int, stream: int, task: str, index: int) -> int:
    """A 31-bit seed for the index-th episode of a task; streams keep demo and eval seeds apart."""
    seq = np.random.SeedSequence([base_seed, stream, TASKS.index(task), index])
    return int(seq.generate_state(1, np.uint32)[0] >> 1)


def make_env(task: str):
    """A goal-observable MetaWorld v3 environment (as DP3 uses), built directly, not via gym.make."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-v3-goal-observable"](seed=0)


def make_expert(task: str):
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[f"{task}-v3"]()


@dataclass
class StepObservation:
    """Everything recorded at one step; keys of `arrays` are the dataset keys without the time axis."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    obs: np.ndarray | None = None  # MetaWorld's 39-d vector, which the scripted expert reads


class MetaWorldScene:
    """One MetaWorld task, its cameras and the observation pipeline of dynarep."""

    def __init__(self, task: str, cfg: ObservationConfig, max_steps: int = 500):
        cfg.validate()
        self.task = canonical_task(task)
        self.cfg = cfg
        self.env = make_env(self.task)
        self.env.max_path_length = max(int(max_steps), 1)
        self.model, self.data = self.env.model, self.env.data
        self.camera_ids = [render.camera_id(self.model, c) for c in cfg.cameras]
        self.renderer = render.SceneRenderer(self.model, max(cfg.image_size, cfg.point_render_size))
        self._crop_low, self._crop_high = np.asarray(cfg.crop_low), np.asarray(cfg.crop_high)
        self._obs: np.ndarray | None = None
        self._fps_seed = 0
        self.seconds = dict.fromkeys(TIME_SPLIT, 0.0)
        """Wall time spent so far in physics, in rendering, and in making the point cloud."""

    # --- episode control -------------------------------------------------------------------
    def reset(self, seed: int) -> StepObservation:
        """Start the episode whose object/goal configuration is drawn from `seed`."""
        env = self.env
        mujoco.mj_resetData(self.model, self.data)  # no warm-start carried over: seed alone decides
        env.seed(int(seed))
        env.seeded_rand_vec, env._freeze_rand_vec = True, False
        t0 = time.perf_counter()
        obs, _ = env.reset()
        self.seconds["simulation"] += time.perf_counter() - t0
        env._freeze_rand_vec = True
        self._obs, self._fps_seed = obs, int(seed)
        return self.observe()

    def step(self, action: np.ndarray) -> tuple[StepObservation, float, bool, bool]:
        """Apply one action; returns (observation after it, reward, success, truncated)."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (4,) or not np.all(np.isfinite(action)):
            raise DynarepError(f"action must be 4 finite numbers, got shape {action.shape}: {action}")
        t0 = time.perf_counter()
        obs, reward, _, truncated, info = self.env.step(np.clip(action, -1.0, 1.0))
        self.seconds["simulation"] += time.perf_counter() - t0
        self._obs = obs
        return self.observe(), float(reward), bool(info["success"] > 0.5), bool(truncated)

    @property
    def rand_vec(self) -> np.ndarray:
        return np.array(self.env._last_rand_vec, dtype=np.float64)

    # --- observations ----------------------------------------------------------------------
    def robot_state(self) -> np.ndarray:
        """DP3's 9-d agent_pos: end-effector, right and left finger positions."""
        d = self.data
        return np.concatenate(
            [d.body("hand").xpos, d.site("rightEndEffector").xpos, d.site("leftEndEffector").xpos]
        ).astype(np.float32)

    def body_poses(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.xpos.astype(np.float32), self.data.xquat.astype(np.float32)

    def observe(self) -> StepObservation:
        cfg, arrays = self.cfg, {}
        clouds, bodies, colours = [], [], []
        for i, (name, cam) in enumerate(zip(cfg.cameras, self.camera_ids)):
            suffix = "" if i == 0 else f"_{name}"
            T = render.extrinsics(self.data, cam)
            size = cfg.point_render_size
            t0 = time.perf_counter()
            view = self.renderer.render(self.data, cam, (size, size), rgb=cfg.point_color)
            t1 = time.perf_counter()
            pts = render.backproject(view.depth, render.intrinsics(self.model, cam, size, size), T)
            self.seconds["rendering"] += t1 - t0
            self.seconds["point_cloud"] += time.perf_counter() - t1
            clouds.append(pts)
            bodies.append(view.body.reshape(-1))
            if cfg.point_color:
                colours.append(view.rgb.reshape(-1, 3))
            if cfg.store_images:
                s = cfg.image_size
                if s != size or view.rgb is None:
                    t0 = time.perf_counter()
                    view = self.renderer.render(self.data, cam, (s, s), rgb=True)
                    self.seconds["rendering"] += time.perf_counter() - t0
                arrays[f"img{suffix}"] = view.rgb
                arrays[f"depth{suffix}"] = view.depth
                arrays[f"seg{suffix}"] = view.body
            arrays[f"extrinsics{suffix}"] = T.astype(np.float32)
        arrays.update(self._point_cloud(np.concatenate(clouds), np.concatenate(bodies), colours))
        arrays["state"] = self.robot_state()
        arrays["full_state"] = np.asarray(self._obs, dtype=np.float32)
        arrays["body_pos"], arrays["body_quat"] = self.body_poses()
        return StepObservation(arrays=arrays, obs=self._obs)

    def _point_cloud(self, pts: np.ndarray, body: np.ndarray, colours: list[np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        try:
            return self._crop_and_sample(pts, body, colours)
        finally:
            self.seconds["point_cloud"] += time.perf_counter() - t0

    def _crop_and_sample(self, pts: np.ndarray, body: np.ndarray, colours: list[np.ndarray]) -> dict[str, np.ndarray]:
        keep = crop_mask(pts, self._crop_low, self._crop_high) & (body >= 0)
        pts, body = pts[keep], body[keep]
        if len(pts) == 0:
            raise DynarepError(
                f"{self.task}: no point inside the crop box {self.cfg.crop_low}..{self.cfg.crop_high} "
                f"from cameras {list(self.cfg.cameras)}"
            )
        idx = farthest_point_sample(pts, self.cfg.num_points, seed=self._fps_seed)
        cloud = pts[idx].astype(np.float32)
        if colours:
            rgb = np.concatenate(colours)[keep][idx].astype(np.float32)
            cloud = np.concatenate([cloud, rgb], axis=1)
        return {"point_cloud": cloud, "point_body": body[idx].astype(np.int16)}

    # --- metadata --------------------------------------------------------------------------
    def body_names(self) -> list[str]:
        return [self.model.body(i).name or f"body{i}" for i in range(self.model.nbody)]

    def close(self) -> None:
        self.renderer.close()
        self.env.close()
