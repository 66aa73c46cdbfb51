"""Point-MAE's pieces against their definitions, and pre-training → frozen transfer on real data."""

from __future__ import annotations

import json

import pytest
import torch
from support import FIXTURE

from dynarep.objectives.pointmae import PointMAE, PointMAEConfig, chamfer, farthest_point_centres, group_patches
from dynarep.training.checkpoint import load_checkpoint
from dynarep.training.export import load_policy
from dynarep.training.pretrain import PretrainArgs, pretrain
from dynarep.training.train_policy import TrainPolicyArgs, train_policy


def test_farthest_point_sampling_picks_the_spread_out_points():
    # a line of points 0..9 plus one far outlier: from point 0 the farthest is the outlier, then 9
    line = torch.tensor([[float(i), 0.0, 0.0] for i in range(10)] + [[0.0, 50.0, 0.0]])[None]
    assert farthest_point_centres(line, 3)[0].tolist() == [0, 10, 9]


def test_patches_hold_each_centres_nearest_points():
    torch.manual_seed(0)
    points = torch.rand(2, 64, 3)
    centres, nearest = group_patches(points, groups=4, size=5)
    assert centres.shape == (2, 4, 3) and nearest.shape == (2, 4, 5)
    for b in range(2):
        for g in range(4):
            distance = (points[b] - centres[b, g]).norm(dim=-1)
            assert set(nearest[b, g].tolist()) == set(distance.argsort()[:5].tolist())


def test_chamfer_is_zero_on_the_same_set_in_any_order_and_the_squared_shift_otherwise():
    points = torch.rand(3, 8, 3)
    assert chamfer(points, points.flip(1)).item() == pytest.approx(0.0, abs=1e-6)
    # a shift of 0.01 along x: far below the spacing of these four points, so each one's nearest is its own copy
    grid = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    assert chamfer(grid, grid + torch.tensor([0.01, 0, 0])).item() == pytest.approx(2 * 0.01**2, rel=1e-3)


def test_encoder_sees_only_the_visible_patches():
    torch.manual_seed(0)
    mae = PointMAE(PointMAEConfig(num_groups=8, group_size=4, mask_ratio=0.5, fdm_width=32, fdm_depth=1))
    clouds = torch.rand(2, 1, 32, 3)
    seen = []
    mae.encoder.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]["point_cloud"]))
    torch.manual_seed(1)
    out = mae.compute_loss({"point_cloud": clouds})
    torch.manual_seed(1)  # the same draw of masks
    visible, masked = mae.masked_split(2, clouds.device)
    assert set(visible[0].tolist()).isdisjoint(masked[0].tolist()) and len(visible[0]) == len(masked[0]) == 4
    _, nearest = group_patches(clouds[:, 0], 8, 4)
    for b in range(2):
        expected = clouds[b, 0, nearest[b, visible[b]].flatten()]
        torch.testing.assert_close(seen[0][b], expected)
    assert out["loss"].requires_grad and out["loss"].item() > 0


def test_pretraining_on_real_data_reduces_the_loss_and_the_policy_loads_it(tmp_path):
    out = pretrain(PretrainArgs(method="pointmae", data=(FIXTURE,), out=tmp_path / "mae", steps=30, batch_size=8,
                                device="cpu", set=("fdm_width=32", "fdm_depth=1")))
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0] and all("feat_effective_rank" in r for r in log if "loss" in r), losses
    tensors, meta = load_checkpoint(out)
    assert meta["method"] == "pointmae" and not any(k.startswith("decoder") for k in tensors)
    policy = load_policy(train_policy(TrainPolicyArgs(data=(FIXTURE,), steps=3, batch_size=4, down_dims=(16, 32),
                                                      device="cpu", encoder=out, freeze=True, out=tmp_path / "frozen")))
    for key, value in policy.encoder.state_dict().items():
        torch.testing.assert_close(value, tensors[f"encoder.{key}"])


def test_decoder_told_no_centres_predicts_the_masked_set_from_the_feature():
    torch.manual_seed(0)
    cfg = PointMAEConfig(num_groups=10, group_size=4, mask_ratio=0.6, fdm_width=32, fdm_depth=1, decoder_sees_centres=False)
    mae = PointMAE(cfg)
    assert mae.decoder.slots.shape == (6, 32)
    out = mae.compute_loss({"point_cloud": torch.rand(3, 1, 40, 3)})
    out["loss"].backward()
    assert mae.decoder.slots.grad.abs().sum() > 0 and mae.decoder.position[0].weight.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mae.encoder.parameters())
    assert out["chamfer_other_feature"] > 0


def test_impossible_patch_settings_are_refused_with_the_numbers():
    from dynarep.errors import ConfigError

    with pytest.raises(ConfigError, match="mask_ratio 0.01 of 32 patches"):
        PointMAE(PointMAEConfig(mask_ratio=0.01, fdm_width=32, fdm_depth=1))
    mae = PointMAE(PointMAEConfig(num_groups=8, group_size=64, fdm_width=32, fdm_depth=1))
    with pytest.raises(ConfigError, match=r"8 patches of 64 points need clouds of at least that many points, got 40"):
        mae.compute_loss({"point_cloud": torch.rand(2, 1, 40, 3)})
