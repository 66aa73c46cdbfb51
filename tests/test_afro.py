"""AFRO's pieces against their definitions, and pre-training → transfer on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from support import FIXTURE, dynarep, script
from torch import nn

from dynarep.errors import ConfigError
from dynarep.models.dit import DiTBlock, LatentDiT
from dynarep.objectives.afro import AFRO, AFROConfig
from dynarep.objectives.base import build_objective
from dynarep.objectives.losses import off_diagonal_cov, vicreg
from dynarep.objectives.random_init import RandomInitConfig
from dynarep.objectives.teacher import InverseDynamics
from dynarep.training.checkpoint import load_checkpoint
from dynarep.training.export import load_policy
from dynarep.training.pretrain import PretrainArgs, pretrain
from dynarep.training.train_policy import TrainPolicyArgs, train_policy


def run_weight_change(*args: Path | str) -> str:
    """scripts/weight_change.py's table, as a user runs it."""
    return script("weight_change.py", *args, timeout=120).stdout


SMALL = dict(window=5, fdm_width=32, fdm_depth=1, fdm_heads=2)


def small_afro(**kw) -> AFRO:
    torch.manual_seed(0)
    afro = AFRO(AFROConfig(**{**SMALL, **kw}))
    afro.normalizer.fit({"point_cloud": torch.rand(10, 64, 3).numpy()})
    return afro


def test_vicreg_terms_on_known_inputs():
    spread = torch.tensor([[2.0, 0], [-2, 0], [0, 2], [0, -2]])
    zero = vicreg(spread, spread)
    assert zero["invariance"] == 0 and zero["variance"] == 0 and zero["covariance"] == 0 and zero["loss"] == 0
    flat = vicreg(torch.zeros(4, 2), torch.ones(4, 2))
    assert flat["invariance"] == pytest.approx(1.0)
    assert flat["variance"] == pytest.approx(1 - 0.01)  # std = sqrt(0 + 1e-4) on every dimension of both
    assert flat["loss"] == pytest.approx(25 * 1 + 25 * 0.99)
    # perfectly correlated dimensions: C = [[2, 2], [2, 2]], off-diagonal squares 8, divided by D = 2
    assert off_diagonal_cov(torch.tensor([[1.0, 1], [-1, -1]])) == pytest.approx(4.0)


def test_adaln_zero_blocks_start_as_identity():
    block = DiTBlock(32, 4)
    x, c = torch.randn(5, 1, 32), torch.randn(5, 32)
    torch.testing.assert_close(block(x, c), x)
    dit = LatentDiT(8, (8, 4), width=32, depth=2, heads=2)
    assert all(torch.all(b.adaLN[1].weight == 0) for b in dit.blocks)


def test_latent_action_depends_only_on_the_feature_difference():
    idm = InverseDynamics(8, (16,), 4, use_difference=True)
    f, g, d = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8)
    torch.testing.assert_close(idm(f, f + d), idm(g, g + d))
    raw = InverseDynamics(8, (16,), 4, use_difference=False)
    assert not torch.allclose(raw(f, f + d), raw(g, g + d))


def test_teacher_gets_no_gradient_and_moves_by_the_momentum():
    afro = small_afro()
    batch = {"point_cloud": torch.rand(4, 5, 64, 3)}
    before = {k: v.clone() for k, v in afro.teacher.state_dict().items()}
    opt = torch.optim.SGD([p for g in afro.parameter_groups(0.1, None) for p in g["params"]], lr=0.1)
    afro(batch)["loss"].backward()
    assert all(p.grad is None for p in afro.teacher.parameters())
    assert all(not p.requires_grad for p in afro.teacher.parameters())
    opt.step()
    afro.on_step_end(step=9, total=20)
    m = 0.996 + 0.004 * 10 / 20
    assert afro.momentum == pytest.approx(m)
    online = afro.encoder.state_dict()
    for key, value in afro.teacher.state_dict().items():
        torch.testing.assert_close(value, m * before[key] + (1 - m) * online[key])


def test_teacher_starts_independent_as_the_authors_code_or_as_a_copy():
    """AFRO's public code initialises the EMA teacher on its own; `teacher_init=copy` starts it as
    the online encoder. The online encoder's initialisation is the same either way."""
    independent, copied = small_afro(), small_afro(teacher_init="copy")
    for key, value in independent.encoder.state_dict().items():
        torch.testing.assert_close(value, copied.encoder.state_dict()[key])
        torch.testing.assert_close(copied.teacher.state_dict()[key], value)
    weights = [k for k, v in independent.teacher.state_dict().items() if v.ndim == 2]
    assert weights and all(not torch.equal(independent.teacher.state_dict()[k], independent.encoder.state_dict()[k])
                           for k in weights)
    with pytest.raises(ConfigError, match="teacher_init must be 'copy' or 'independent', got 'clone'"):
        small_afro(teacher_init="clone")


def test_dit_output_head_and_initialisation_options():
    """No LayerNorm before the output unless asked (the authors' code defines one but never applies
    it); with it, every prediction has the same norm. Xavier init keeps the blocks' adaLN at zero."""
    torch.manual_seed(0)
    x, step, f, a = torch.randn(6, 8) * 5, torch.randint(0, 100, (6,)), torch.randn(6, 8), torch.randn(6, 4)
    plain = LatentDiT(8, (8, 4), width=32, depth=1, heads=2)
    normed = LatentDiT(8, (8, 4), width=32, depth=1, heads=2, final_norm=True)
    plain.out = normed.out = nn.Identity()  # read the token the output layer sees
    norms = {name: dit(x, step, f, a).norm(dim=-1) for name, dit in (("plain", plain), ("normed", normed))}
    torch.testing.assert_close(norms["normed"], torch.full((6,), 32 ** 0.5), rtol=1e-3, atol=1e-3)
    assert norms["plain"].std() > 0.1
    default = LatentDiT(8, (8, 4), width=32, depth=1, heads=2, init="default")
    for dit in (plain, default):
        assert all(torch.all(b.adaLN[1].weight == 0) and torch.all(b.adaLN[1].bias == 0) for b in dit.blocks)
    assert torch.all(plain.x_in.bias == 0) and not torch.all(default.x_in.bias == 0)


@pytest.mark.parametrize(
    "flag, value, changed",
    [
        ("use_difference", False, {"idm.net.0.weight"}),
        ("latent_action_dim", 8, {"idm.net.4.weight", "idm.net.4.bias", "fdm.cond_in.1.weight"}),
        ("deterministic_fdm", True, set()),
        ("inverse_consistency", False, set()),
        ("loss", "mse", set()),
        ("interval", 1, set()),
    ],
)
def test_each_ablation_changes_only_its_part(flag, value, changed):
    base, ablated = small_afro(), small_afro(**{flag: value})
    shapes = {k: v.shape for k, v in base.state_dict().items()}
    other = {k: v.shape for k, v in ablated.state_dict().items()}
    assert shapes.keys() == other.keys()
    assert {k for k in shapes if shapes[k] != other[k]} == changed
    batch = {"point_cloud": torch.rand(4, 5, 64, 3)}
    torch.manual_seed(1)
    out_base = base(batch)
    torch.manual_seed(1)
    out = ablated(batch)
    assert ("reverse" in out) == (flag != "inverse_consistency")
    assert ("variance" in out) == (flag != "loss")
    if flag == "interval":  # every frame instead of every other one: twice the pairs
        assert ablated.frames(batch["point_cloud"]).shape[1] == 5 and base.frames(batch["point_cloud"]).shape[1] == 3
    if flag == "deterministic_fdm":  # no noise: the same prediction whatever the random state
        f = torch.randn(6, base.encoder.output_dim)
        a = torch.randn(6, 16)
        p1, p2 = ablated.predict_target(f, f, a), ablated.predict_target(f, f, a)
        torch.testing.assert_close(p1, p2)
        assert not torch.allclose(base.predict_target(f, f, a), base.predict_target(f, f, a))
    assert torch.isfinite(out["loss"]) and torch.isfinite(out_base["loss"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("afro") / "enc"
    pretrain(PretrainArgs(method="afro", data=(FIXTURE,), out=out, steps=30, batch_size=8, device="cpu",
                          set=("window=9", "fdm_width=32", "fdm_depth=1")))
    return out


def test_pretraining_on_real_data_reduces_the_loss_and_exports(pretrained):
    log = [json.loads(x) for x in (pretrained / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0], losses
    assert all("feat_std_mean" in r for r in log if "loss" in r)
    tensors, meta = load_checkpoint(pretrained)
    assert meta["kind"] == "encoder" and meta["method"] == "afro" and meta["steps"] == 30
    assert "normalizer.point_cloud.scale" in tensors and any(k.startswith("encoder.mlp") for k in tensors)


def test_policy_loads_the_encoder_frozen_or_finetuned(pretrained, tmp_path):
    tensors, _ = load_checkpoint(pretrained)
    base = dict(data=(FIXTURE,), steps=5, batch_size=4, down_dims=(16, 32), device="cpu", encoder=pretrained)
    frozen = train_policy(TrainPolicyArgs(out=tmp_path / "frozen", freeze=True, **base))
    policy = load_policy(frozen)
    for key, value in policy.encoder.state_dict().items():
        torch.testing.assert_close(value, tensors[f"encoder.{key}"], msg=f"frozen encoder changed: {key}")
    # at 1e-3 rather than the encoder's default 1e-5, so that 5 steps show in weight_change's 3 decimals below
    tuned = load_policy(train_policy(TrainPolicyArgs(out=tmp_path / "ft", finetune=True, encoder_lr=1e-3, **base)))
    assert any(not torch.equal(v, tensors[f"encoder.{k}"]) for k, v in tuned.encoder.state_dict().items())
    torch.testing.assert_close(policy.normalizer.state_dict()["point_cloud.scale"], tensors["normalizer.point_cloud.scale"])
    # scripts/weight_change.py reads the visual encoder out of a policy's run: unmoved when frozen
    table = run_weight_change("--start", pretrained, frozen, tmp_path / "ft")
    frozen_row, tuned_row = (line.split(" | ") for line in table.splitlines()[2:])
    assert frozen_row[0].endswith(frozen.name) and set(frozen_row[1:-1]) == {"0.000"}, table
    assert any(float(cell) > 0 for cell in tuned_row[1:-1]), table


def test_frozen_features_standardised_over_the_training_frames(pretrained, tmp_path):
    """--standardize-features: the frozen encoder's features, over the training frames, have mean 0
    and std 1 per dimension in the exported policy; the flag needs --freeze."""
    from dynarep.data.store import load_demonstrations

    run = train_policy(TrainPolicyArgs(data=(FIXTURE,), steps=2, batch_size=4, down_dims=(16, 32), device="cpu",
                                       encoder=pretrained, freeze=True, standardize_features=True, val_ratio=0.0,
                                       out=tmp_path / "std"))
    policy = load_policy(run)
    clouds = torch.as_tensor(load_demonstrations((FIXTURE,), ("point_cloud",)).arrays["point_cloud"])
    x = policy.normalizer.normalize("point_cloud", clouds[..., : policy.cfg.encoder.in_channels])
    with torch.no_grad():
        z = (policy.encoder({"point_cloud": x}) - policy.obs_encoder.feature_mean) / policy.obs_encoder.feature_std
    torch.testing.assert_close(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(z.shape[1]), atol=1e-3, rtol=0)
    with torch.no_grad():  # and the policy conditions on the standardised features, not the raw ones
        seen = policy.obs_encoder({"point_cloud": x, "state": torch.zeros(len(x), policy.cfg.state_dim)})
    torch.testing.assert_close(seen[:, : z.shape[1]], z)
    with pytest.raises(ConfigError, match="--standardize-features needs --freeze"):
        train_policy(TrainPolicyArgs(data=(FIXTURE,), encoder=pretrained, finetune=True, standardize_features=True,
                                     out=tmp_path / "no"))


def test_cached_frozen_features_train_the_same_policy(pretrained, tmp_path):
    """--cache-features runs the frozen encoder once per frame instead of at every step: the same
    batches and draws, so the loss curve and the trained weights match the uncached run to float
    rounding; the flag needs --freeze."""
    base = dict(data=(FIXTURE,), steps=20, batch_size=4, down_dims=(16, 32), device="cpu", encoder=pretrained,
                freeze=True, standardize_features=True)
    runs = {c: train_policy(TrainPolicyArgs(out=tmp_path / str(c), cache_features=c, **base)) for c in (False, True)}
    curves = [[r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]
              for run in runs.values()]
    assert len(curves[0]) >= 2
    torch.testing.assert_close(torch.tensor(curves[1]), torch.tensor(curves[0]), rtol=1e-4, atol=1e-6)
    plain, cached = (load_policy(run) for run in runs.values())
    for (key, a), b in zip(plain.state_dict().items(), cached.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=f"cached run differs in {key}")
    with pytest.raises(ConfigError, match="--cache-features needs --freeze"):
        train_policy(TrainPolicyArgs(data=(FIXTURE,), encoder=pretrained, finetune=True, cache_features=True,
                                     out=tmp_path / "no"))


def test_pretraining_needs_no_actions(tmp_path):
    import shutil

    import zarr

    data = tmp_path / "no_actions.zarr"
    shutil.copytree(FIXTURE, data)
    del zarr.open_group(str(data), mode="r+")["data/action"]
    out = pretrain(PretrainArgs(method="dynamo3d", data=(data,), out=tmp_path / "dyn", steps=3, batch_size=4,
                                device="cpu", set=("window=4",)))
    assert load_checkpoint(out)[1]["method"] == "dynamo3d"


def test_random_encoder_baseline_exports_its_initialisation(tmp_path):
    out = pretrain(PretrainArgs(method="random", data=(FIXTURE,), out=tmp_path / "rand", seed=3, device="cpu"))
    tensors, meta = load_checkpoint(out)
    assert meta["steps"] == 0
    torch.manual_seed(3)
    fresh = build_objective("random", RandomInitConfig())
    for key, value in fresh.encoder.state_dict().items():
        torch.testing.assert_close(tensors[f"encoder.{key}"], value)


def test_dp3_from_scratch_starts_from_the_random_encoder_of_its_seed(tmp_path):
    """docs/results.md compares DP3 from scratch with policies on `random-sN` and its pre-trainings
    as runs from one start; that holds only while the policy draws its visual encoder first."""
    from dynarep.training.train_policy import POLICY_KEYS, load_demonstrations, resolve_configs, seeded_policy

    out = pretrain(PretrainArgs(method="random", data=(FIXTURE,), out=tmp_path / "rand", seed=3, device="cpu"))
    args = TrainPolicyArgs(data=(FIXTURE,), out=tmp_path / "policy", seed=3, device="cpu")
    pcfg, tcfg = resolve_configs(args, load_demonstrations(args.data, POLICY_KEYS))
    exported = {k: v for k, v in load_checkpoint(out)[0].items() if k.startswith("encoder.")}
    for seed, same in ((tcfg.seed, True), (tcfg.seed + 1, False)):
        visual = seeded_policy(pcfg, seed).obs_encoder.visual.state_dict()
        assert len(visual) == len(exported)
        equal = [torch.equal(exported[f"encoder.{k}"], v) for k, v in visual.items() if v.dim() > 1]
        assert all(equal) if same else not any(equal), (seed, sum(equal))  # the drawn matrices, not the constant biases


def test_ridge_probe_scores_linear_targets_high_and_noise_low():
    import numpy as np

    from dynarep.evaluation.probes import ridge_r2

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16))
    y = x[:, :3] @ rng.normal(size=(3, 2))
    assert ridge_r2(x[:300], y[:300], x[300:], y[300:], 1e-4) > 0.99
    noise = rng.normal(size=(400, 2))
    assert ridge_r2(x[:300], noise[:300], x[300:], noise[300:], 1e-4) < 0.1


def test_action_probes_find_the_action_in_the_change_between_frames_not_in_one_frame():
    """Features that integrate the actions (f_{t+1} = f_t + W a_t, a random walk): a_t is not in f_t
    but is exactly in f_{t+1} - f_t; an episode's last step, which has no successor, is left out."""
    import numpy as np

    from dynarep.evaluation.probes import action_probes

    rng = np.random.default_rng(0)
    lengths = np.array([60, 50, 70, 40])
    actions = rng.normal(size=(lengths.sum(), 4))
    mixing = rng.normal(size=(4, 16))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    features = np.zeros((lengths.sum(), 16))
    for start, length in zip(starts, lengths):
        walk = np.cumsum(actions[start : start + length - 1] @ mixing, axis=0)
        features[start : start + length] = np.vstack([np.zeros(16), walk]) + rng.normal(size=16)
    train = np.repeat([True, True, False, True], lengths)
    scores = action_probes(features, actions, lengths, train, 1e-4)
    assert scores["inverse_dynamics"] > 0.99 and scores["action"] < 0.2, scores


def test_probe_command_reports_scores_and_draws_pca(pretrained, tmp_path):
    out = tmp_path / "probe.json"
    proc = dynarep("probe", "--encoder", pretrained, "--data", FIXTURE, "--out", out, "--pca-image", tmp_path / "pca.png",
                   "--val-ratio", "0.5", timeout=300)
    report = json.loads(out.read_text())
    probes = {"robot_state", "object_position", "action", "inverse_dynamics"}  # the fixture has actions
    assert set(report["r2"]) == probes and report["feature_std"]["dims"] == 64
    assert set(report["r2_from_true_state"]) == {"action", "inverse_dynamics"}
    assert (tmp_path / "pca.png").stat().st_size > 10_000 and "R²" in proc.stdout


def test_collapse_watch_sees_rank_collapse_that_per_dimension_std_misses():
    from dynarep.evaluation.probes import effective_rank
    from dynarep.objectives.teacher import feature_statistics

    g = torch.Generator().manual_seed(0)
    isotropic = torch.randn(4096, 16, generator=g)
    collapsed = torch.randn(4096, 1, generator=g) * torch.linspace(0.5, 1.5, 16)  # every dim varies, one direction
    iso, col = feature_statistics(isotropic), feature_statistics(collapsed)
    assert float(iso["feat_effective_rank"]) > 15 and float(col["feat_effective_rank"]) < 1.01
    assert float(col["feat_std_min"]) > 0.4  # per-dimension std alone would call it healthy
    assert abs(effective_rank(collapsed.numpy()) - float(col["feat_effective_rank"])) < 1e-3
    assert abs(effective_rank(isotropic.numpy()) - float(iso["feat_effective_rank"])) < 1e-2


def test_afro_diagnostics_trace_the_prediction_spread_to_the_noise(pretrained):
    """scripts/afro_diagnostics.py on a real (tiny) run: every statistic is printed, the probes run,
    and at the highest diffusion steps, where the input is almost pure noise, most of the
    prediction's variance comes from that noise."""
    import re

    proc = script("afro_diagnostics.py", pretrained, "--windows", "16", timeout=300)
    for name in ("online features", "teacher targets", "latent actions"):
        assert re.search(name + r".*std [0-9.]+, effective rank\s+[0-9.]+", proc.stdout), proc.stdout
    probes = re.findall(r"(latent action|feature difference)\s+→ (actions taken|end-effector).*R²\s+(-?[0-9.]+)", proc.stdout)
    assert len(probes) == 4, proc.stdout  # the fixture has actions and states
    shares = [int(s) for s in re.findall(r"variance from the noise (\d+)%", proc.stdout)]
    # at the highest steps the FDM's input is almost pure noise; an untrained-ish FDM passes it through
    assert len(shares) == 3 and all(0 <= s <= 100 for s in shares) and shares[2] >= 50, proc.stdout


def test_probe_table_reports_what_the_probe_wrote(pretrained, tmp_path):
    """scripts/probe_table.py, which makes the probe table of docs/results.md, on a real probed run."""
    import shutil

    run = tmp_path / "encoders" / "afro-k1" / "fixture"
    shutil.copytree(pretrained, run)
    dynarep("probe", "--encoder", run, "--data", FIXTURE, "--out", run / "probe.json", "--val-ratio", "0.5", timeout=300)
    table = script("probe_table.py", run, timeout=120)
    report = json.loads((run / "probe.json").read_text())
    row = table.stdout.splitlines()[-1]
    assert row.startswith("| afro-k1/fixture | `--steps 30 window=9 fdm_width=32 fdm_depth=1` |"), row
    assert f"{report['r2']['robot_state']:.3f}" in row and f"**{report['feature_std']['effective_rank']:.1f}**" in row
    ceiling = report["r2_from_true_state"]["inverse_dynamics"]
    assert f"| {report['r2']['inverse_dynamics']:.3f} [{ceiling:.3f}] |" in row, row
    stats = report["feature_std"]
    assert f"| {stats['mean']:.3f} | {stats['after_mish_mean']:.3f} |" in row, row
    # the copy committed to the repository (scripts/archive_results.py) gives the same row
    script("archive_results.py", tmp_path, tmp_path / "archived", timeout=120)
    archived = tmp_path / "archived" / "encoders" / "afro-k1" / "fixture"
    again = script("probe_table.py", archived, timeout=120)
    assert again.stdout.splitlines()[-1] == row, again.stdout
    # scripts/probe_vs_success.py pairs each probed encoder with its frozen policies' success: this
    # probe's file under three more names, the object R² set in the order of their success
    for name, r2, success in (("afro-k1", 0.5, 0.5), ("b", 0.1, 0.2), ("c", 0.9, 0.9), ("unpaired", 0.5, None)):
        encoder = tmp_path / "encoders" / name / "fixture"
        encoder.mkdir(parents=True, exist_ok=True)
        (encoder / "probe.json").write_text(json.dumps({**report, "r2": {**report["r2"], "object_position": r2}}))
        if success is not None:
            for seed, offset in enumerate((-0.1, 0.1)):  # the mean over the seeds is what is ranked
                cell = tmp_path / f"{name}-frozen" / "fixture" / f"seed{seed}"
                cell.mkdir(parents=True)
                (cell / "eval.json").write_text(json.dumps({"success_rate": success + offset}))
    ranked = script("probe_vs_success.py", tmp_path, "fixture", timeout=120)
    lines = ranked.stdout.splitlines()
    assert "fixture: 3 encoders" in lines  # "unpaired" has no frozen policy
    assert any(line.startswith("| c | 0.90 (2) |") for line in lines), ranked.stdout
    rho = [cell.strip() for cell in lines[-1].strip("|").split("|")]
    assert rho[3] == "+1.00 (0.00)", lines[-1]  # object R², in the order of success
    assert rho[2] == "–", lines[-1]  # robot R², the same for all three: no ranking


def test_report_scripts_name_the_missing_file_in_one_line(pretrained, tmp_path):
    """probe_table.py on a run that was never probed, and afro_diagnostics.py on a directory that is
    not an AFRO run, stop with one line naming the file, not a traceback."""
    import shutil

    run = tmp_path / "afro" / "unprobed"
    shutil.copytree(pretrained, run)
    (run / "probe.json").unlink(missing_ok=True)
    table = script("probe_table.py", run, check=False, timeout=120)
    assert table.returncode != 0 and f"{run}/probe.json: not found" in table.stderr, table.stderr
    assert "Traceback" not in table.stderr
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "method": "dynamo3d"}))
    diag = script("afro_diagnostics.py", run, check=False, timeout=120)
    assert diag.returncode != 0 and "method is 'dynamo3d'" in diag.stderr and "Traceback" not in diag.stderr, diag.stderr


def test_pad_after_adds_windows_past_each_episode_end(pretrained, tmp_path):
    """`pad_after=4` (AFRO's code pads 7 through DP3's dataset) adds 4 windows per episode."""
    out = tmp_path / "padded"
    pretrain(PretrainArgs(method="afro", data=(FIXTURE,), out=out, steps=1, batch_size=4, device="cpu",
                          set=("window=9", "fdm_width=32", "fdm_depth=1", "pad_after=4")))
    padded = json.loads((out / "config.json").read_text())["windows"]
    plain = json.loads((pretrained / "config.json").read_text())["windows"]
    assert padded == plain + 4 * 2  # the fixture holds two episodes


def test_random_encoder_with_weight_noise_moves_each_tensor_by_that_fraction(tmp_path):
    out = pretrain(PretrainArgs(method="random", data=(FIXTURE,), out=tmp_path / "noisy", seed=3, device="cpu",
                                set=("weight_noise=0.05",)))
    tensors, _ = load_checkpoint(out)
    torch.manual_seed(3)
    start = build_objective("random", RandomInitConfig()).encoder.state_dict()
    for key, value in start.items():
        change = (tensors[f"encoder.{key}"] - value).norm() / value.norm().clamp_min(1e-12)
        assert change == pytest.approx(0.05, rel=0.3) if value.abs().sum() > 0 else change == 0, (key, change)
    # scripts/weight_change.py reads the same distance off the two exported encoders
    start_dir = pretrain(PretrainArgs(method="random", data=(FIXTURE,), out=tmp_path / "start", seed=3, device="cpu"))
    table = run_weight_change("--start", start_dir, "--along", out, out, start_dir)
    header, _, noisy, same = table.splitlines()
    cells = dict(zip(header.split(" | ")[1:], noisy.split(" | ")[1:]))
    assert abs(float(cells["mlp.3.weight"]) - 0.05) < 0.01 and "mlp.1.bias" not in cells, table
    assert header.endswith(f"cos to {out.parent.name}/{out.name} |") and noisy.endswith("| 1.000 |"), table
    assert set(same.split(" | ")[1:-1]) == {"0.000"}, table
