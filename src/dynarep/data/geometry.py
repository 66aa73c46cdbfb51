"""Rigid-body geometry on point clouds: quaternions, per-point scene flow, cropping and sampling.

Conventions follow MuJoCo: quaternions are (w, x, y, z) and a body pose (x, q) maps a point given in
the body frame to the world frame as ``p_world = R(q) @ p_body + x``.
"""

from __future__ import annotations

import math

import fpsample
import numpy as np
from numpy.typing import ArrayLike

from dynarep.errors import DataError

# fpsample's QuickFPS builds a KD-tree of height h; it needs at least 2**h points.
FPS_TREE_HEIGHT = 5


def quat_to_mat(q: ArrayLike) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) in (w, x, y, z) order.

    Quaternions are normalised first, so slightly drifted unit quaternions are fine. A NaN
    quaternion (our padding for absent bodies) or an all-zero one yields a NaN matrix. The
    result is float64 for float64 input and float32 otherwise.
    """
    quat = np.asarray(q)
    if quat.shape[-1:] != (4,):
        raise DataError(f"quaternion array has shape {quat.shape} but expected (..., 4) in (w, x, y, z) order")
    out_dtype = np.float64 if quat.dtype == np.float64 else np.float32
    # Computing in float64 keeps R^T R = I to ~1e-16, which the flow of far-away points relies on.
    quat = quat.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(quat, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    mat = np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)
    return mat.astype(out_dtype, copy=False)


def _gather_per_point(per_body: np.ndarray, body_ids: np.ndarray) -> np.ndarray:
    """Pick, for every point, the row of its body: (..., B, C) and (..., N) -> (..., N, C)."""
    return np.take_along_axis(per_body, body_ids[..., None], axis=-2)


def _check_flow_shapes(
    points: np.ndarray,
    point_body: np.ndarray,
    body_pos_t: np.ndarray,
    body_quat_t: np.ndarray,
    body_pos_tk: np.ndarray,
    body_quat_tk: np.ndarray,
) -> None:
    """Raise DataError unless the six flow inputs have mutually consistent shapes."""
    if points.ndim < 2 or points.shape[-1] < 3:
        raise DataError(f"points have shape {points.shape} but expected (..., N, 3) or (..., N, 6)")
    if point_body.shape != points.shape[:-1]:
        raise DataError(f"point_body has shape {point_body.shape} but expected {points.shape[:-1]} to match points {points.shape}")
    if not np.issubdtype(point_body.dtype, np.integer):
        raise DataError(f"point_body has dtype {point_body.dtype} but expected an integer body id")
    for name, arr, width in (
        ("body_pos_t", body_pos_t, 3),
        ("body_quat_t", body_quat_t, 4),
        ("body_pos_tk", body_pos_tk, 3),
        ("body_quat_tk", body_quat_tk, 4),
    ):
        if arr.ndim != points.ndim or arr.shape[-1] != width or arr.shape[:-2] != points.shape[:-2]:
            lead = "".join(f"{d}, " for d in points.shape[:-2])
            raise DataError(f"{name} has shape {arr.shape} but expected ({lead}B, {width})")
    n_bodies = body_pos_t.shape[-2]
    if body_quat_t.shape[-2] != n_bodies or body_pos_tk.shape[-2] != n_bodies or body_quat_tk.shape[-2] != n_bodies:
        raise DataError(
            f"body arrays disagree on the number of bodies: body_pos_t {body_pos_t.shape}, body_quat_t "
            f"{body_quat_t.shape}, body_pos_tk {body_pos_tk.shape}, body_quat_tk {body_quat_tk.shape}"
        )
    if point_body.size and int(point_body.max()) >= n_bodies:
        raise DataError(f"point_body holds body id {int(point_body.max())} but the body arrays have only {n_bodies} bodies")


def point_flow(
    points: ArrayLike,
    point_body: ArrayLike,
    body_pos_t: ArrayLike,
    body_quat_t: ArrayLike,
    body_pos_tk: ArrayLike,
    body_quat_tk: ArrayLike,
) -> np.ndarray:
    """Displacement of every point from step t to step t+k if it moved rigidly with its body.

    Each point p is expressed in its body's frame at t, ``R_tᵀ (p - x_t)``, and mapped back to the
    world with the body's pose at t+k; the flow is the new position minus p.

    Shapes: ``points`` (..., N, 3) (extra channels such as rgb are ignored), ``point_body`` (..., N)
    integer body ids, ``body_pos_*`` (..., B, 3), ``body_quat_*`` (..., B, 4) wxyz. Any leading axes
    (e.g. time) are batched. Returns float32 (..., N, 3).

    Points on a body whose pose is bit-identical at t and t+k, and points with a negative body id
    (not on any body), get exactly zero flow. Points on a body whose pose is NaN get NaN flow.
    """
    pts = np.asarray(points)
    ids = np.asarray(point_body)
    pos_t, quat_t = np.asarray(body_pos_t), np.asarray(body_quat_t)
    pos_tk, quat_tk = np.asarray(body_pos_tk), np.asarray(body_quat_tk)
    _check_flow_shapes(pts, ids, pos_t, quat_t, pos_tk, quat_tk)

    xyz = pts[..., :3].astype(np.float64)
    off_body = ids < 0
    safe_ids = np.where(off_body, 0, ids).astype(np.intp)
    p_pos_t = _gather_per_point(pos_t.astype(np.float64), safe_ids)
    p_pos_tk = _gather_per_point(pos_tk.astype(np.float64), safe_ids)
    p_quat_t = _gather_per_point(quat_t.astype(np.float64), safe_ids)
    p_quat_tk = _gather_per_point(quat_tk.astype(np.float64), safe_ids)

    rot_t = quat_to_mat(p_quat_t)
    rot_tk = quat_to_mat(p_quat_tk)
    local = np.einsum("...ji,...j->...i", rot_t, xyz - p_pos_t)
    moved = np.einsum("...ij,...j->...i", rot_tk, local) + p_pos_tk
    flow = moved - xyz

    # Float round-off of R_tk R_tᵀ would leave ~1e-8 flow on static bodies; targets must be exactly 0.
    static = np.all(p_pos_t == p_pos_tk, axis=-1) & np.all(p_quat_t == p_quat_tk, axis=-1)
    flow[static | off_body] = 0.0
    return flow.astype(np.float32)


def crop_mask(points: ArrayLike, low: ArrayLike, high: ArrayLike) -> np.ndarray:
    """Boolean mask (..., N) of points whose xyz lies strictly inside the box (low, high).

    Strict inequalities, as in DP3's demonstration generator, so that cropping a cloud here selects
    exactly the points DP3 would keep. Extra channels beyond xyz are ignored.
    """
    pts = np.asarray(points)
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    if pts.shape[-1:] == () or pts.shape[-1] < 3:
        raise DataError(f"points have shape {pts.shape} but expected (..., N, 3) or (..., N, 6)")
    if lo.shape != (3,) or hi.shape != (3,):
        raise DataError(f"crop bounds have shapes low {lo.shape}, high {hi.shape} but expected (3,) each")
    xyz = pts[..., :3]
    return np.all(xyz > lo, axis=-1) & np.all(xyz < hi, axis=-1)


def farthest_point_sample(points: ArrayLike, n: int, seed: int = 0) -> np.ndarray:
    """Indices (n,) int64 of a farthest-point subsample of a cloud (M, 3+) using its xyz.

    Uses fpsample's QuickFPS (``bucket_fps_kdline_sampling``, KD-tree height 5, lowered for clouds
    of fewer than 32 points). ``seed`` picks the start index, so the result is deterministic for a
    given cloud and seed. Note that fpsample 1.0.2 interprets that start index in its internal
    KD-tree order, so the point at index ``start`` is not necessarily the first sample; only
    determinism is guaranteed, not which point comes first.

    Padding: when the cloud has n or fewer points, no sampling is done; all M indices are returned
    in order and then repeated cyclically (0, 1, ..., M-1, 0, 1, ...) up to n, so the result is
    deterministic and every point appears. A cloud with fewer than n *distinct* points can also
    yield repeated indices from fpsample itself.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise DataError(f"points have shape {pts.shape} but expected (M, 3) or (M, 6)")
    if n < 1:
        raise DataError(f"farthest_point_sample needs n >= 1 but got n={n}")
    n_points = pts.shape[0]
    if n_points == 0:
        raise DataError(f"cannot sample {n} points from an empty cloud of shape {pts.shape}")
    if n_points <= n:
        return np.resize(np.arange(n_points, dtype=np.int64), n)
    xyz = np.ascontiguousarray(pts[:, :3], dtype=np.float32)
    height = min(FPS_TREE_HEIGHT, int(math.floor(math.log2(n_points))))
    start = int(np.random.default_rng(seed).integers(n_points))
    indices = fpsample.bucket_fps_kdline_sampling(xyz, n, h=height, start_idx=start)
    return np.asarray(indices, dtype=np.int64)
