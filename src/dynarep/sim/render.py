"""Offscreen MuJoCo rendering of RGB, metric depth and per-pixel body ids for fixed cameras.

Why not `mujoco.Renderer`: it needs two GPU passes for depth and ids (one each) and one context per
image size. Measured on this machine (shared/methods/metaworld-cpu.md), one segmentation pass gives
both exact depth and ids at half the cost, and RGB without shadows/reflections/MSAA is 5-15x faster
than the default and looks the same. So this module owns one GL context sized for the largest
image and renders every camera and size into viewports of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede `import mujoco`; headless on a CPU

import mujoco
import numpy as np

from dynarep.errors import ConfigError


@dataclass
class CameraImages:
    """What one camera sees at one step, rows top-down as a person views the image."""

    depth: np.ndarray  # (H, W) float32, metres along the optical axis (z-depth)
    body: np.ndarray  # (H, W) int16, MuJoCo body id, -1 for background
    rgb: np.ndarray | None = None  # (H, W, 3) uint8


def camera_names(model: mujoco.MjModel) -> list[str]:
    return [model.camera(i).name for i in range(model.ncam)]


def camera_id(model: mujoco.MjModel, name: str) -> int:
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cid < 0:
        raise ConfigError(f"camera '{name}' does not exist; this scene has {camera_names(model)}")
    return cid


def intrinsics(model: mujoco.MjModel, cam: int, width: int, height: int) -> np.ndarray:
    """Pinhole matrix K for the image as stored (MuJoCo's fovy is vertical, pixels are square)."""
    f = 0.5 * height / np.tan(np.deg2rad(model.cam_fovy[cam]) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def extrinsics(data: mujoco.MjData, cam: int) -> np.ndarray:
    """Camera-to-world 4x4 of the OpenCV-convention camera (x right, y down, z forward).

    MuJoCo cameras look along -z with y up; flipping y and z gives the convention that most
    point-cloud code expects, so `T @ [K^-1 (u, v, 1) * depth, 1]` is the world point.
    """
    T = np.eye(4)
    T[:3, :3] = data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    T[:3, 3] = data.cam_xpos[cam]
    return T


def backproject(depth: np.ndarray, K: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Depth image (H, W) -> world points (H*W, 3), pixel centres at (u + 0.5, v + 0.5)."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    z = depth.astype(np.float64)
    cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], -1).reshape(-1, 3)
    return cam @ T[:3, :3].T + T[:3, 3]


class SceneRenderer:
    """Renders a set of cameras of one MuJoCo model at given sizes, headless.

    `hide_sites` removes MetaWorld's goal markers, which otherwise show up in depth and points.
    """

    def __init__(self, model: mujoco.MjModel, max_size: int, hide_sites: bool = True):
        self.model = model
        # The offscreen buffer must hold the largest viewport; MSAA off keeps ids and depth exact.
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), max_size)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), max_size)
        model.vis.quality.offsamples = 0
        self._gl = mujoco.GLContext(max_size, max_size)
        self._gl.make_current()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR  # reversed z: precise far away
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        self._opt = mujoco.MjvOption()
        if hide_sites:
            self._opt.sitegroup[:] = 0
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._perturb = mujoco.MjvPerturb()
        extent = model.stat.extent
        self._near = model.vis.map.znear * extent
        self._far = model.vis.map.zfar * extent

    def render(self, data: mujoco.MjData, cam: int, size: tuple[int, int], rgb: bool) -> CameraImages:
        """One segmentation pass (depth + ids), plus a plain RGB pass when asked."""
        width, height = size
        rect = mujoco.MjrRect(0, 0, width, height)
        self._gl.make_current()
        self._cam.fixedcamid = cam
        mujoco.mjv_updateScene(
            self.model, data, self._opt, self._perturb, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        flags = self._scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
        flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
        ids = np.empty((height, width, 3), np.uint8)
        raw = np.empty((height, width), np.float32)
        mujoco.mjr_render(rect, self._scene, self._ctx)
        mujoco.mjr_readPixels(ids, raw, rect, self._ctx)
        out = CameraImages(depth=self._metric_depth(raw)[::-1].copy(), body=self._body_ids(ids)[::-1].copy())
        if rgb:
            flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = False
            flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = False
            image = np.empty((height, width, 3), np.uint8)
            mujoco.mjr_render(rect, self._scene, self._ctx)
            mujoco.mjr_readPixels(image, None, rect, self._ctx)
            out.rgb = image[::-1].copy()
        return out

    def _metric_depth(self, raw: np.ndarray) -> np.ndarray:
        # Reversed-z buffer: 1 at the near plane, 0 at the far plane (validated to 1e-7 m).
        n, f = self._near, self._far
        return (f * n / (raw.astype(np.float64) * (f - n) + n)).astype(np.float32)

    def _body_ids(self, ids: np.ndarray) -> np.ndarray:
        seg = ids[..., 0].astype(np.int64) | (ids[..., 1].astype(np.int64) << 8) | (ids[..., 2].astype(np.int64) << 16)
        lut = np.full(self._scene.ngeom + 1, -1, np.int16)  # seg id 0 is the background
        for i in range(self._scene.ngeom):
            g = self._scene.geoms[i]
            if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                lut[g.segid + 1] = self.model.geom_bodyid[g.objid]
        return lut[np.minimum(seg, self._scene.ngeom)]

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.free()
            self._ctx = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __del__(self) -> None:  # EGL prints noise at exit unless contexts are freed first
        try:
            self.close()
        except Exception:
            pass
