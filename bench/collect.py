"""Collection speed: our whole pipeline against the bare renderer, on this machine.

Prints steps per second of
  1. bare env.step with the scripted expert (no rendering),
  2. the bare renderer: env.step + `mujoco.Renderer` producing the same images we need
     (depth and segmentation at the point-cloud size, RGB/depth/segmentation at the image size),
     with no processing at all,
  3. our observation pipeline (MetaWorldScene.step + observe: one-pass depth+ids, back-projection,
     crop, FPS, state, body poses),
  4. `dynarep collect` end to end (episodes, experts, atomic per-episode files, zarr assembly).
The ratio 3/2 is the cost (or gain) of our own code. Run: `python bench/collect.py [--task T]`.
Single process, one llvmpipe thread, so numbers compare across machines of this kind.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")

import mujoco
import numpy as np

from dynarep.sim.collect import CollectConfig, collect
from dynarep.sim.scene import (
    DEMO_STREAM,
    MetaWorldScene,
    ObservationConfig,
    episode_seed,
    make_expert,
)


def expert_steps(task: str, steps: int, render_fn=None) -> float:
    scene = MetaWorldScene(task, ObservationConfig(), max_steps=500)
    expert = make_expert(task)
    done, t0, ep = 0, time.perf_counter(), 0
    while done < steps:
        obs = scene.reset(episode_seed(0, DEMO_STREAM, task, ep)).obs
        for _ in range(150):
            obs, _, _, _, info = scene.env.step(np.clip(expert.get_action(obs), -1, 1))
            if render_fn is not None:
                render_fn(scene)
            done += 1
            if info["success"] > 0.5 or done >= steps:
                break
        ep += 1
    rate = done / (time.perf_counter() - t0)
    scene.close()
    return rate


def bare_renderer(cfg: ObservationConfig):
    state = {}

    def render(scene: MetaWorldScene) -> None:
        if not state:
            state["big"] = mujoco.Renderer(scene.model, cfg.point_render_size, cfg.point_render_size)
            state["small"] = mujoco.Renderer(scene.model, cfg.image_size, cfg.image_size)
        for cam in cfg.cameras:
            for key, with_rgb in (("big", False), ("small", True)):
                r = state[key]
                r.update_scene(scene.data, cam)
                r.enable_depth_rendering(); r.render(); r.disable_depth_rendering()
                r.enable_segmentation_rendering(); r.render(); r.disable_segmentation_rendering()
                if with_rgb:
                    r.render()

    return render, state


def pipeline_steps(task: str, steps: int) -> float:
    scene = MetaWorldScene(task, ObservationConfig(), max_steps=500)
    expert = make_expert(task)
    done, t0, ep = 0, time.perf_counter(), 0
    while done < steps:
        step_obs = scene.reset(episode_seed(0, DEMO_STREAM, task, ep))
        for _ in range(150):
            step_obs, _, success, _ = scene.step(np.clip(expert.get_action(step_obs.obs), -1, 1))
            done += 1
            if success or done >= steps:
                break
        ep += 1
    rate = done / (time.perf_counter() - t0)
    scene.close()
    return rate


def collect_steps(task: str, episodes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.zarr"
        t0 = time.perf_counter()
        collect(CollectConfig(out=out, task=(task,), episodes=episodes))
        seconds = time.perf_counter() - t0
        from dynarep.data.store import ZarrDataset

        return ZarrDataset.open(out).n_steps / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="button-press")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--episodes", type=int, default=3)
    a = p.parse_args()
    cfg = ObservationConfig()
    rows = [("env.step + expert, no rendering", expert_steps(a.task, a.steps))]
    render, state = bare_renderer(cfg)
    rows.append(("bare mujoco.Renderer (same images, no processing)", expert_steps(a.task, a.steps, render)))
    for r in state.values():
        r.close()
    rows.append(("dynarep observation pipeline (images + 512-pt cloud + truth)", pipeline_steps(a.task, a.steps)))
    rows.append((f"dynarep collect end to end ({a.episodes} episodes, incl. env build + zarr)", collect_steps(a.task, a.episodes)))
    print(f"task {a.task}, cameras {cfg.cameras}, points from {cfg.point_render_size}px depth, images {cfg.image_size}px")
    for name, rate in rows:
        print(f"{name:75s} {rate:8.1f} steps/s")
    print(f"{'pipeline / bare renderer':75s} {rows[2][1] / rows[1][1]:8.2f}x")


if __name__ == "__main__":
    main()
