"""Quaternions, rigid point flow, cropping and farthest point sampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dynarep.data import crop_mask, farthest_point_sample, point_flow, quat_to_mat
from dynarep.errors import DataError

ROT_Z_90 = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def test_quat_to_mat_known_rotations() -> None:
    np.testing.assert_allclose(quat_to_mat(IDENTITY), np.eye(3), atol=1e-15)
    np.testing.assert_allclose(quat_to_mat(ROT_Z_90), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(quat_to_mat(3.0 * ROT_Z_90), quat_to_mat(ROT_Z_90), atol=1e-15)


def test_quat_to_mat_matches_scipy_batched() -> None:
    quats = np.random.default_rng(0).normal(size=(2, 5, 4))
    mats = quat_to_mat(quats)
    assert mats.shape == (2, 5, 3, 3) and mats.dtype == np.float64
    xyzw = np.roll(quats.reshape(-1, 4), -1, axis=1)
    np.testing.assert_allclose(mats.reshape(-1, 3, 3), Rotation.from_quat(xyzw).as_matrix(), atol=1e-12)
    assert quat_to_mat(quats.astype(np.float32)).dtype == np.float32


def test_quat_to_mat_rejects_wrong_width() -> None:
    with pytest.raises(DataError, match=r"shape \(5, 3\).*\(\.\.\., 4\)"):
        quat_to_mat(np.zeros((5, 3)))


def two_body_poses() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Body 0 static (but not at the origin), body 1 translated by (0.1, 0, 0) and turned 90° about z."""
    static_quat = np.array([0.9, 0.1, -0.3, 0.2]) / np.linalg.norm([0.9, 0.1, -0.3, 0.2])
    pos_t = np.array([[0.4, -0.3, 0.2], [0.2, 0.3, 0.0]])
    quat_t = np.stack([static_quat, IDENTITY])
    pos_tk = np.array([[0.4, -0.3, 0.2], [0.3, 0.3, 0.0]])
    quat_tk = np.stack([static_quat, ROT_Z_90])
    return pos_t, quat_t, pos_tk, quat_tk


def test_point_flow_is_the_rigid_motion_and_exactly_zero_when_static() -> None:
    pos_t, quat_t, pos_tk, quat_tk = two_body_poses()
    points = np.array([[1.2, 0.3, 0.5], [0.2, 1.3, 0.0], [0.7, 0.1, 0.9], [5.0, 5.0, 5.0]], np.float32)
    bodies = np.array([1, 1, 0, -1])
    flow = point_flow(points, bodies, pos_t, quat_t, pos_tk, quat_tk)
    assert flow.shape == (4, 3) and flow.dtype == np.float32
    # (1.2, 0.3, 0.5) is (1, 0, 0.5) in body 1's frame -> (0, 1, 0.5) after the turn, + new position.
    np.testing.assert_allclose(flow[0], [0.3 - 1.2, 1.3 - 0.3, 0.0], atol=1e-6)
    np.testing.assert_allclose(flow[1], [0.3 - 0.2 - 1.0, 0.3 - 1.3, 0.0], atol=1e-6)
    assert np.array_equal(flow[2:], np.zeros((2, 3), np.float32))


def test_point_flow_ignores_rgb_channels() -> None:
    pos_t, quat_t, pos_tk, quat_tk = two_body_poses()
    points = np.array([[1.2, 0.3, 0.5, 255.0, 0.0, 12.0]])
    flow = point_flow(points, np.array([1]), pos_t, quat_t, pos_tk, quat_tk)
    np.testing.assert_allclose(flow, [[-0.9, 1.0, 0.0]], atol=1e-6)


def test_point_flow_batched_over_time_equals_loop() -> None:
    rng = np.random.default_rng(1)
    steps, n_points, n_bodies = 4, 6, 3
    points = rng.normal(size=(steps, n_points, 3))
    bodies = rng.integers(0, n_bodies, size=(steps, n_points))
    pos_t, pos_tk = rng.normal(size=(2, steps, n_bodies, 3))
    quat_t, quat_tk = rng.normal(size=(2, steps, n_bodies, 4))
    batched = point_flow(points, bodies, pos_t, quat_t, pos_tk, quat_tk)
    assert batched.shape == (steps, n_points, 3)
    for t in range(steps):
        np.testing.assert_array_equal(batched[t], point_flow(points[t], bodies[t], pos_t[t], quat_t[t], pos_tk[t], quat_tk[t]))


def test_point_flow_rejects_unknown_body_and_bad_shapes() -> None:
    pos_t, quat_t, pos_tk, quat_tk = two_body_poses()
    points = np.zeros((3, 3))
    with pytest.raises(DataError, match="body id 2 but the body arrays have only 2 bodies"):
        point_flow(points, np.array([0, 1, 2]), pos_t, quat_t, pos_tk, quat_tk)
    with pytest.raises(DataError, match=r"point_body has shape \(2,\) but expected \(3,\)"):
        point_flow(points, np.array([0, 1]), pos_t, quat_t, pos_tk, quat_tk)
    with pytest.raises(DataError, match=r"body_quat_tk has shape \(2, 3\) but expected \(B, 4\)"):
        point_flow(points, np.array([0, 1, 1]), pos_t, quat_t, pos_tk, quat_tk[:, :3])


def test_crop_mask_is_strict_and_ignores_rgb() -> None:
    points = np.array([[0.0, 0.0, 0.0, 9, 9, 9], [1.0, 0.5, 0.5, 9, 9, 9], [0.5, 0.5, 0.5, 9, 9, 9], [0.5, 2.0, 0.5, 9, 9, 9]])
    mask = crop_mask(points, [0, 0, 0], [1, 1, 1])
    assert mask.tolist() == [False, False, True, False]
    assert crop_mask(points[None].repeat(2, axis=0), [0, 0, 0], [1, 1, 1]).shape == (2, 4)
    with pytest.raises(DataError, match="crop bounds"):
        crop_mask(points, [0, 0], [1, 1, 1])


def test_farthest_point_sample_is_deterministic_and_spread() -> None:
    rng = np.random.default_rng(2)
    # Two tight clusters far apart: any farthest-point subsample must hit both.
    cloud = np.concatenate([rng.normal(0, 0.01, (200, 3)), rng.normal(5, 0.01, (200, 3))]).astype(np.float32)
    first = farthest_point_sample(cloud, 16, seed=3)
    assert first.dtype == np.int64 and first.shape == (16,)
    assert np.array_equal(first, farthest_point_sample(cloud, 16, seed=3))
    assert len(set(first.tolist())) == 16
    assert (first < 200).any() and (first >= 200).any()


def test_farthest_point_sample_small_clouds() -> None:
    cloud = np.random.default_rng(4).normal(size=(20, 6))
    assert len(set(farthest_point_sample(cloud, 10, seed=0).tolist())) == 10  # fewer than 2**5 points
    assert farthest_point_sample(cloud[:3], 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert farthest_point_sample(cloud[:4], 4).tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match="empty cloud"):
        farthest_point_sample(np.zeros((0, 3)), 4)
