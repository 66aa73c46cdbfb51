"""The real MetaWorld: observations, ground truth and the exactness of 3D flow."""

from __future__ import annotations

import numpy as np
import pytest

import dynarep  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
from dynarep.errors import ConfigError
from dynarep.sim import render
from dynarep.sim.collect import run_expert_episode
from dynarep.sim.scene import (
    DEMO_STREAM,
    EVAL_STREAM,
    MetaWorldScene,
    ObservationConfig,
    episode_seed,
)

# Images at the point-cloud resolution: every cloud point is then exactly a pixel of the stored depth.
SMALL = ObservationConfig(image_size=128, point_render_size=128, num_points=256)


@pytest.fixture(scope="module")
def drawer_episode():
    scene = MetaWorldScene("drawer-open", SMALL, max_steps=200)
    arrays, ok = run_expert_episode(scene, episode_seed(0, DEMO_STREAM, "drawer-open", 0), 200)
    yield scene, arrays, ok
    scene.close()


def test_observation_shapes_dtypes_and_crop(drawer_episode):
    scene, a, ok = drawer_episode
    assert ok, "the scripted expert should open the drawer"
    T = len(a["action"])
    assert a["point_cloud"].shape == (T, 256, 3) and a["point_cloud"].dtype == np.float32
    assert a["img"].shape == (T, 128, 128, 3) and a["img"].dtype == np.uint8
    assert a["depth"].shape == (T, 128, 128) and a["depth"].dtype == np.float32
    assert a["seg"].shape == (T, 128, 128) and a["state"].shape == (T, 9) and a["full_state"].shape == (T, 39)
    assert a["action"].shape == (T, 4) and a["success"][-1] and not a["success"][:-1].any()
    low, high = np.array(SMALL.crop_low), np.array(SMALL.crop_high)
    assert (a["point_cloud"] >= low).all() and (a["point_cloud"] <= high).all()
    # DP3's state starts with the end-effector position, which MetaWorld's observation also starts with.
    np.testing.assert_allclose(a["state"][:, :3], a["full_state"][:, :3], atol=1e-5)
    names = scene.body_names()
    on = {names[b] for b in np.unique(a["point_body"])}
    assert "drawer_link" in on or "drawer" in on, on
    assert not {"tablelink", "world"} & on, f"table or floor points survived the crop: {on}"


def _depth_agreement(points, body, depth, seg, K, cam_to_world):
    """|rendered depth - point depth| for the points that project onto a pixel of their own body."""
    world_to_cam = np.linalg.inv(cam_to_world.astype(np.float64))
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    u = np.floor(cam[:, 0] / cam[:, 2] * K[0, 0] + K[0, 2]).astype(int)
    v = np.floor(cam[:, 1] / cam[:, 2] * K[1, 1] + K[1, 2]).astype(int)
    h, w = depth.shape
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (cam[:, 2] > 0)
    ok[ok] = seg[v[ok], u[ok]] == body
    return np.abs(depth[v[ok], u[ok]] - cam[ok, 2])


def test_point_cloud_agrees_with_stored_depth_and_cameras(drawer_episode):
    """Stored depth, intrinsics and extrinsics see the cloud's points where the cloud puts them."""
    scene, a, _ = drawer_episode
    t, drawer = 10, scene.model.body("drawer_link").id
    K = render.intrinsics(scene.model, scene.camera_ids[0], 128, 128)
    sel = a["point_body"][t] == drawer
    err = _depth_agreement(a["point_cloud"][t][sel], drawer, a["depth"][t], a["seg"][t], K, a["extrinsics"][t])
    assert len(err) >= 5 and np.median(err) < 1e-4


def test_flow_moves_points_with_the_drawer_and_not_the_scene(drawer_episode):
    from dynarep.data.geometry import point_flow

    scene, a, _ = drawer_episode
    drawer = scene.model.body("drawer_link").id
    T, k = len(a["action"]), 15
    t = T - 1 - k
    flow = point_flow(a["point_cloud"][t], a["point_body"][t], a["body_pos"][t], a["body_quat"][t],
                      a["body_pos"][t + k], a["body_quat"][t + k])
    on_drawer = a["point_body"][t] == drawer
    # the handle position comes from MetaWorld's own observation, not from the body poses
    handle_motion = a["full_state"][t + k, 4:7] - a["full_state"][t, 4:7]
    assert np.linalg.norm(handle_motion) > 0.02, "the drawer should move in the last steps"
    np.testing.assert_allclose(flow[on_drawer], np.broadcast_to(handle_motion, flow[on_drawer].shape), atol=2e-4)
    static = np.isin(a["point_body"][t], [b for b in range(scene.model.nbody) if scene.model.body_weldid[b] == 0])
    assert static.any()
    np.testing.assert_array_equal(flow[static], 0.0)


def test_flowed_points_land_on_the_rendered_surface(drawer_episode):
    """Points moved by the flow to t+k agree with the depth image rendered at t+k."""
    from dynarep.data.geometry import point_flow

    scene, a, _ = drawer_episode
    drawer = scene.model.body("drawer_link").id
    T, k = len(a["action"]), 15
    t = T - 1 - k
    sel = a["point_body"][t] == drawer
    p = a["point_cloud"][t][sel]
    moved = p + point_flow(p, a["point_body"][t][sel], a["body_pos"][t], a["body_quat"][t],
                           a["body_pos"][t + k], a["body_quat"][t + k])
    K = render.intrinsics(scene.model, scene.camera_ids[0], 128, 128)
    err = _depth_agreement(moved, drawer, a["depth"][t + k], a["seg"][t + k], K, a["extrinsics"][t + k])
    assert len(err) >= 5 and np.median(err) < 0.005


def test_same_seed_same_episode_and_streams_differ():
    scene = MetaWorldScene("button-press", SMALL, max_steps=30)
    seed = episode_seed(0, DEMO_STREAM, "button-press", 3)
    a1, _ = run_expert_episode(scene, seed, 20)
    a2, _ = run_expert_episode(scene, seed, 20)
    for key in a1:
        np.testing.assert_array_equal(a1[key], a2[key], err_msg=key)
    scene.close()
    demo = {episode_seed(0, DEMO_STREAM, "button-press", i) for i in range(200)}
    evals = {episode_seed(0, EVAL_STREAM, "button-press", i) for i in range(200)}
    assert not demo & evals


def test_multi_view_fuses_points_and_stores_each_camera():
    cfg = ObservationConfig(cameras=("corner4", "corner2"), image_size=48, point_render_size=128, num_points=128)
    scene = MetaWorldScene("button-press", cfg, max_steps=10)
    obs = scene.reset(1)
    for key in ("img", "depth", "seg", "extrinsics", "img_corner2", "depth_corner2", "seg_corner2", "extrinsics_corner2"):
        assert key in obs.arrays, key
    assert obs.arrays["img_corner2"].shape == (48, 48, 3)
    assert not np.allclose(obs.arrays["extrinsics"], obs.arrays["extrinsics_corner2"])
    scene.close()


def test_colour_points_have_six_channels():
    cfg = ObservationConfig(image_size=48, point_render_size=128, num_points=64, point_color=True)
    scene = MetaWorldScene("button-press", cfg, max_steps=10)
    pc = scene.reset(1).arrays["point_cloud"]
    assert pc.shape == (64, 6) and pc[:, 3:].max() > 1 and pc[:, 3:].max() <= 255
    scene.close()


def test_unknown_camera_names_the_camera_and_the_choices():
    with pytest.raises(ConfigError, match=r"camera 'nosuchcam' does not exist.*corner4"):
        MetaWorldScene("button-press", ObservationConfig(cameras=("nosuchcam",)))


def test_unknown_task_is_named():
    with pytest.raises(ConfigError, match="unknown MetaWorld task 'button-prss'.*button-press"):
        MetaWorldScene("button-prss", SMALL)
