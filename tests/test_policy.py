"""Policies and the training loop on real data: DP3's own fixture and our collector's output."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from support import DYNAREP, FIXTURE, dynarep
from torch import nn

from dynarep.models.encoders import EncoderConfig, PointNetEncoder, build_encoder
from dynarep.models.unet1d import ConditionalUnet1D
from dynarep.policies.base import PolicyConfig, build_policy
from dynarep.training.checkpoint import CheckpointError, load_checkpoint
from dynarep.training.export import load_encoder, load_policy
from dynarep.training.train_policy import TrainPolicyArgs, train_policy

TINY = dict(down_dims=(16, 32), batch_size=8)


def tiny_args(out: Path, steps: int = 40, **kw) -> TrainPolicyArgs:
    args = TrainPolicyArgs(data=(FIXTURE,), out=out, steps=steps, val_ratio=0.5, device="cpu", **TINY)
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_dp3_encoder_is_the_published_one():
    enc = PointNetEncoder()
    linears = [m for m in enc.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 64), (64, 128), (128, 256)]
    assert sum(isinstance(m, nn.LayerNorm) for m in enc.mlp) == 3 and not any(isinstance(m, nn.BatchNorm1d) for m in enc.modules())
    assert isinstance(enc.projection[0], nn.Linear) and enc.projection[0].out_features == 64
    assert isinstance(enc.projection[1], nn.LayerNorm) and enc.output_dim == 64
    # max-pooling: the feature does not depend on the order of the points
    pc = torch.randn(2, 100, 3)
    np.testing.assert_allclose(enc({"point_cloud": pc}).detach(), enc({"point_cloud": pc[:, torch.randperm(100)]}).detach(), atol=1e-6)


def test_unet_sizes_match_dp3():
    small = ConditionalUnet1D(4, 256, (64, 128, 256))
    assert abs(sum(p.numel() for p in small.parameters()) / 1e6 - 5.33) < 0.01
    out = small(torch.randn(3, 16, 4), torch.tensor([0, 5, 99]), torch.randn(3, 256))
    assert out.shape == (3, 16, 4)


@pytest.mark.parametrize("name", ["pointnet", "point_transformer", "image_cnn"])
def test_encoders_share_the_interface_and_freeze(name):
    enc = build_encoder(EncoderConfig(name=name, width=32, depth=1, heads=2))
    obs = {"point_cloud": torch.randn(2, 64, 3), "img": torch.rand(2, 3, 32, 32)}
    assert enc(obs).shape == (2, enc.output_dim)
    enc.freeze().train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    enc.unfreeze()
    assert all(p.requires_grad for p in enc.parameters())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp3") / "run"
    train_policy(tiny_args(out, steps=60))
    return out


def test_dp3_fixture_trains_and_loss_falls(trained):
    log = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.6 * losses[0], losses
    assert any("val_loss" in r for r in log)
    assert all(r["memory_mb"] > 100 for r in log if "loss" in r)  # so a memory leak shows in the log
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["policy"]["down_dims"] == [16, 32] and cfg["data"][0]["episodes"] == 2


def test_checkpoint_reloads_to_identical_predictions(trained):
    a, b = load_policy(trained), load_policy(trained / "policy")
    obs = {"point_cloud": torch.randn(1, 2, 512, 6), "state": torch.randn(1, 2, 9)}
    pa = a.predict_action(obs, generator=torch.Generator().manual_seed(3))
    pb = b.predict_action(obs, generator=torch.Generator().manual_seed(3))
    assert pa.shape == (1, 8, 4)
    torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def _train_args(out: Path, steps: int) -> list:
    return ["train", "--data", FIXTURE, "--out", out, "--steps", steps, "--down-dims", 16, 32, "--batch-size", 8,
            "--val-ratio", 0.5, "--device", "cpu", "--seed", 1, "--checkpoint-every", 5]


def test_resumed_run_continues_exactly(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    dynarep(*_train_args(whole, 30), timeout=600)
    proc = subprocess.Popen([*DYNAREP, *map(str, _train_args(cut, 30))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = cut / "checkpoints" / "latest" / "checkpoint.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["step"] >= 10):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert 10 <= killed_at < 30, killed_at
    dynarep(*_train_args(cut, 30), timeout=600)
    assert '"event": "resumed"' in (cut / "log.jsonl").read_text()
    wa, _ = load_checkpoint(whole / "policy")
    wb, _ = load_checkpoint(cut / "policy")
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0, msg=key)


def test_mlp_policy_trains(tmp_path):
    out = tmp_path / "mlp"
    train_policy(tiny_args(out, steps=40, policy="mlp"))
    losses = [json.loads(x)["loss"] for x in (out / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert losses[-1] < losses[0]
    policy = load_policy(out)
    assert policy.predict_action({"point_cloud": torch.randn(2, 2, 512, 3), "state": torch.randn(2, 2, 9)}).shape == (2, 8, 4)


def test_bad_checkpoints_fail_clearly(trained, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(trained / "policy", bad)
    (bad / "model.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
        load_policy(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        load_policy(bad)
    wrong = tmp_path / "wrong"
    shutil.copytree(trained / "policy", wrong)
    meta = json.loads((wrong / "checkpoint.json").read_text())
    meta["policy"]["down_dims"] = [16, 64]
    (wrong / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"has shape .* but the model expects"):
        load_policy(wrong)
    (wrong / "checkpoint.json").write_text('{"kind": "policy", ')  # cut short, as by a full disk
    with pytest.raises(CheckpointError, match="checkpoint.json: not valid JSON"):
        load_encoder(wrong)  # --encoder RUN must say which file is broken, not raise a JSON traceback


def test_policy_config_rejects_impossible_windows():
    from dynarep.errors import ConfigError

    with pytest.raises(ConfigError, match="n_action_steps"):
        build_policy(PolicyConfig(horizon=8, n_obs_steps=2, n_action_steps=8))


def test_cached_film_tables_give_the_same_denoiser_output():
    unet = ConditionalUnet1D(4, 32, (16, 32, 64)).eval()
    x, cond, steps = torch.randn(3, 16, 4), torch.randn(3, 32), torch.tensor([90, 40, 0])
    tables = unet.film_tables(steps, cond)
    for i, t in enumerate(steps):
        direct = unet(x, t, cond)
        cached = unet(x, t, None, films=[table[i] for table in tables])
        torch.testing.assert_close(direct, cached, rtol=1e-4, atol=1e-5)  # batched vs single matmuls round differently


def test_a_trained_policys_encoder_transfers_frozen(trained, tmp_path):
    """`dynarep train --encoder RUN --freeze` with a policy run: the new policy starts from, and keeps,
    that policy's visual encoder and its point-cloud normalisation; state MLP and UNet train anew."""
    source = load_policy(trained)
    frozen = load_policy(train_policy(tiny_args(tmp_path / "control", steps=5, encoder=trained, freeze=True)))
    for key, value in source.obs_encoder.visual.state_dict().items():
        torch.testing.assert_close(frozen.obs_encoder.visual.state_dict()[key], value, rtol=0, atol=0, msg=key)
    for key in ("point_cloud.scale", "point_cloud.offset"):
        torch.testing.assert_close(frozen.normalizer.state_dict()[key], source.normalizer.state_dict()[key])
    assert any(not torch.equal(v, source.state_dict()[k]) for k, v in frozen.state_dict().items() if "visual" not in k)
    meta = json.loads((tmp_path / "control" / "policy" / "checkpoint.json").read_text())
    assert meta["encoder"] == str(trained) and meta["encoder_mode"] == "frozen"


def test_probe_reads_the_encoder_inside_a_trained_policy(trained, tmp_path):
    """`dynarep probe --encoder RUN` on a policy run probes its visual encoder as the policy reads clouds."""
    from dynarep.data.store import ZarrDataset
    from dynarep.evaluation.probes import ProbeArgs, encode_dataset, probe

    policy = load_policy(trained).eval()
    clouds = ZarrDataset.open(FIXTURE).read("point_cloud")[:16].astype(np.float32)
    with torch.no_grad():
        expected = policy.obs_encoder.visual({"point_cloud": policy.normalize_clouds(torch.from_numpy(clouds))})
    encoder, normalizer = load_encoder(trained)
    torch.testing.assert_close(torch.from_numpy(encode_dataset(encoder.eval(), normalizer, clouds)), expected)
    report = probe(ProbeArgs(encoder=trained, data=FIXTURE, out=tmp_path / "probe.json", val_ratio=0.5))
    stats = report["feature_std"]
    assert stats["dims"] == policy.encoder.output_dim and 0 < stats["after_mish_mean"] < stats["mean"] * 1.1
