"""Closed-loop evaluation end to end on the real simulator, and two-process DDP training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support import FIXTURE, dynarep, run, script

from dynarep.errors import ConfigError
from dynarep.evaluation.paired import mean_paired_difference_over_tasks, paired_difference
from dynarep.evaluation.rollout import bootstrap_ci


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    data = root / "bp.zarr"
    dynarep("collect", "--task", "button-press", "--episodes", "2", "--out", str(data),
            "--image-size", "32", "--point-render-size", "128", "--num-points", "128")
    dynarep("train", "--data", str(data), "--out", str(root / "policy"), "--steps", "10", "--down-dims", "16", "32",
            "--batch-size", "8", "--device", "cpu")
    return root / "policy"


def test_eval_runs_real_episodes_and_reports(tiny_policy, tmp_path):
    out = tmp_path / "result.json"
    proc = dynarep("eval", "--policy", str(tiny_policy), "--episodes", "2", "--seeds", "0", "1", "--max-steps", "24",
                   "--out", str(out), "--gifs", "1")
    r = json.loads(out.read_text())
    assert r["task"] == "button-press" and r["episodes"] == 4 and r["seeds"] == [0, 1]
    assert "final checkpoint" in r["protocol"] and len(r["ci95"]) == 2 and 0 <= r["success_rate"] <= 1
    assert len(r["outcomes"]) == 4 and all(1 <= o["length"] <= 24 for o in r["outcomes"])
    # fresh configurations: evaluation seeds never coincide with those of the demonstrations
    from dynarep.data.store import ZarrDataset

    demo_seeds = {ZarrDataset.open(r["trained_on"][0]["path"]).episode_info(e)["seed"] for e in range(2)}
    assert not demo_seeds & {o["env_seed"] for o in r["outcomes"]}
    b = r["blind_replay"]
    assert b["episodes"] == 4 and [o["env_seed"] for o in b["outcomes"]] == [o["env_seed"] for o in r["outcomes"]]
    earns = r["over_blind_replay"]
    assert earns["difference"] == pytest.approx(r["success_rate"] - b["success_rate"]) and earns["pairs"] == 4
    assert earns["ci95"][0] <= earns["difference"] <= earns["ci95"][1] and "observation earns" in proc.stdout
    assert r["gifs"] and (tmp_path / r["gifs"][0]).stat().st_size > 1000
    split = r["time_split_seconds"]
    assert set(split) == {"simulation", "rendering", "point_cloud", "policy"} and min(split.values()) > 0
    assert sum(split.values()) < r["wall_seconds"] and "button-press: success" in proc.stdout
    assert 100 < r["peak_memory_mb"] < 24 * 1024  # MuJoCo and torch alone take more than 100 MB


def test_results_table_pools_seeds_and_filters_by_task(tiny_policy, tmp_path):
    """scripts/results_table.py on real runs laid out as scripts/baseline.sh writes them: the pooled
    success over both seeds' episodes, one row per policy directory, --task keeps one task (repeated:
    several, grouped by task)."""
    import shutil

    for name in ("dp3", "other"):
        for seed in (0, 1):
            cell = tmp_path / name / "button-press" / f"seed{seed}"
            shutil.copytree(tiny_policy / "policy", cell / "policy")
            dynarep("eval", "--policy", str(tiny_policy), "--episodes", "2", "--seeds", str(seed), "--max-steps", "16",
                    "--out", str(cell / "eval.json"))
    (tmp_path / "other" / "drawer-open").mkdir()
    table = script("results_table.py", "--task", "button-press", tmp_path / "dp3", tmp_path / "other")
    rows = [r for r in table.stdout.splitlines() if r.startswith("| dp3") or r.startswith("| other")]
    reports = [json.loads((tmp_path / "dp3" / "button-press" / f"seed{k}" / "eval.json").read_text()) for k in (0, 1)]
    pooled = sum(o["success"] for r in reports for o in r["outcomes"]) / 4
    assert len(rows) == 2 and f"| button-press | easy | 2 | 4 | **{pooled:.2f}**" in rows[0], table.stdout
    missing = script("results_table.py", tmp_path / "none", check=False)
    assert missing.returncode != 0 and "not a directory of runs" in missing.stderr
    # the same policy on the same configurations: paired difference exactly zero, seeds 0 and 1 paired
    versus = script("results_table.py", "--task", "button-press", "--versus", tmp_path / "dp3", tmp_path / "dp3",
                    tmp_path / "other")
    dp3_row, other_row = (r for r in versus.stdout.splitlines() if r.startswith(("| dp3", "| other")))
    assert dp3_row.endswith("| – |") and other_row.endswith("| +0.00 [+0.00, +0.00] (0,1) |"), versus.stdout
    # several tasks: grouped by task in the order asked, then by policy (a copy stands in for a second task)
    for name in ("dp3", "other"):
        shutil.copytree(tmp_path / name / "button-press" / "seed0", tmp_path / name / "door-open" / "seed0")
    grouped = script("results_table.py", "--task", "door-open", "--task", "button-press", tmp_path / "dp3",
                     tmp_path / "other")
    order = [tuple(c.strip() for c in r.split("|")[1:3]) for r in grouped.stdout.splitlines()[2:]]
    assert order == [("dp3", "door-open"), ("other", "door-open"), ("dp3", "button-press"), ("other", "button-press")]
    # two tasks: the matrix adds their mean for the rows that ran both (the third row ran one)
    shutil.copytree(tmp_path / "dp3" / "door-open", tmp_path / "one" / "door-open")
    both = script("results_table.py", "--matrix", "--versus", tmp_path / "dp3", tmp_path / "dp3", tmp_path / "other",
                  tmp_path / "one")
    header, _, dp3_row, other_row, one_row = both.stdout.splitlines()
    assert header.endswith("| door-open (easy) | mean of 2 tasks |"), both.stdout
    door = np.mean([o["success"] for o in reports[0]["outcomes"]])
    assert dp3_row.endswith(f"| **{(pooled + door) / 2:.2f}** |"), dp3_row
    assert other_row.endswith(f"| **{(pooled + door) / 2:.2f}**; Δ +0.00 [+0.00, +0.00] (0,1) |"), other_row
    assert one_row.endswith("|  |"), one_row
    shutil.rmtree(tmp_path / "one")
    shutil.rmtree(tmp_path / "dp3" / "door-open"), shutil.rmtree(tmp_path / "other" / "door-open")
    compact = script("results_table.py", "--matrix", "--versus", tmp_path / "dp3", tmp_path / "dp3", tmp_path / "other")
    header, _, dp3_row, other_row = compact.stdout.splitlines()
    assert header == "| policy | button-press (easy) |"  # drawer-open has no evaluation: no column
    assert dp3_row == f"| dp3 | **{pooled:.2f}** ×2 |"
    assert other_row == f"| other | **{pooled:.2f}** ×2; Δ +0.00 [+0.00, +0.00] (0,1) |"
    # the archive committed to the repository (scripts/archive_results.py) gives the same table
    (tmp_path / "dp3" / "button-press" / "seed2").mkdir()  # a cell without its eval.json: not archived
    (tmp_path / "dp3" / "button-press" / "seed2" / "config.json").write_text("{}")
    # a row made of other rows' cells, linked as scripts/compare.sh links its sP rows: archived as links
    (tmp_path / "view" / "button-press").mkdir(parents=True)
    for seed, source in ((0, "dp3"), (1, "other")):
        (tmp_path / "view" / "button-press" / f"seed{seed}").symlink_to(f"../../{source}/button-press/seed{seed}")
    rows = [tmp_path / "dp3", tmp_path / "other", tmp_path / "view"]
    compact = script("results_table.py", "--matrix", "--versus", rows[0], *rows)
    assert compact.stdout.splitlines()[-1] == f"| view | **{pooled:.2f}** ×2; Δ +0.00 [+0.00, +0.00] (0,1) |"
    copied = script("archive_results.py", tmp_path, tmp_path / "archived")
    assert copied.stdout.startswith("8 files"), copied.stdout
    assert (tmp_path / "archived" / "view" / "button-press" / "seed1").is_symlink()
    archived = [tmp_path / "archived" / r.name for r in rows]
    again = script("results_table.py", "--matrix", "--versus", archived[0], *archived)
    assert again.stdout == compact.stdout, again.stdout


def test_policy_sees_the_last_consecutive_steps_as_in_training(tiny_policy):
    """The observation history must hold steps t-1 and t (DP3's multi-step wrapper), not the
    observations at the last two chunk boundaries."""
    from dynarep.evaluation.rollout import PolicyRunner, observation_config, run_episode
    from dynarep.sim.scene import MetaWorldScene
    from dynarep.training.export import load_policy_and_meta

    policy, meta = load_policy_and_meta(tiny_policy)
    scene = MetaWorldScene("button-press", observation_config(meta), max_steps=50)
    runner = PolicyRunner(policy, "cpu", 0)
    seen, histories = [], []
    act, observe = runner.episode_callbacks()

    def recording_observe(arrays):
        observe(arrays)
        seen.append(arrays["state"].copy())

    def recording_act(arrays, t):
        histories.append((t, [h["state"].copy() for h in runner.history]))
        return act(arrays, t)

    _, length, _, _ = run_episode(scene, 123, 20, recording_act, observe=recording_observe)
    scene.close()
    assert len(seen) == length + 1 and len(histories) >= 2
    n_action = policy.cfg.n_action_steps
    for t, states in histories:
        assert t % n_action == 0
        expected = [seen[max(t - 1, 0)], seen[t]]
        assert all(np.array_equal(a, b) for a, b in zip(states, expected)), t


def test_evaluation_workers_give_the_same_outcomes(tiny_policy, tmp_path):
    common = ["eval", "--policy", str(tiny_policy), "--episodes", "3", "--seeds", "0", "--max-steps", "16"]
    dynarep(*common, "--out", str(tmp_path / "one.json"))
    dynarep(*common, "--workers", "2", "--out", str(tmp_path / "two.json"))
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    keys = ("env_seed", "success", "length", "final_state")  # the final state depends on every action taken
    assert len({tuple(o["final_state"]) for o in one["outcomes"]}) == 3
    assert [[o[k] for k in keys] for o in one["outcomes"]] == [[o[k] for k in keys] for o in two["outcomes"]]
    assert one["blind_replay"]["outcomes"] == two["blind_replay"]["outcomes"]


def test_onnxruntime_denoiser_matches_torch(tiny_policy):
    """The same weights and noise give the same action chunk through ONNX Runtime, for batch 1 (the
    closed loop) and for another batch size (its own exported session)."""
    from dynarep.training.export import load_policy

    policy = load_policy(tiny_policy).eval()
    rng = np.random.default_rng(0)
    observations = [{"point_cloud": torch.from_numpy(rng.random((batch, 2, 128, 3), dtype=np.float32)),
                     "state": torch.from_numpy(rng.random((batch, 2, 9), dtype=np.float32))} for batch in (1, 3)]
    refs = [policy.predict_action(obs, generator=torch.Generator().manual_seed(7)) for obs in observations]
    policy.use_inference_backend("onnxruntime", 1)
    for obs, ref in zip(observations, refs):
        fast = policy.predict_action(obs, generator=torch.Generator().manual_seed(7))
        assert fast.shape == ref.shape == (len(obs["state"]), policy.cfg.n_action_steps, 4)
        torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    assert sorted(shape for shape, _ in policy.onnx_denoiser.sessions) == [(1, 16, 4), (3, 16, 4)]


def test_eval_with_onnxruntime_runs_real_episodes(tiny_policy, tmp_path):
    out = tmp_path / "fast.json"
    dynarep("eval", "--policy", str(tiny_policy), "--episodes", "2", "--max-steps", "16", "--backend", "onnxruntime",
        "--workers", "2", "--out", str(out))
    r = json.loads(out.read_text())
    assert r["inference_backend"] == "onnxruntime" and r["episodes"] == 2
    assert all(1 <= o["length"] <= 16 for o in r["outcomes"]) and r["time_split_seconds"]["policy"] > 0


def test_unknown_or_misplaced_backend_is_refused(tiny_policy):
    from dynarep.policies.onnx_denoiser import check_backend

    with pytest.raises(ConfigError, match="tensorrt"):
        check_backend("tensorrt", "cpu")
    with pytest.raises(ConfigError, match="CPU only.*cuda"):
        check_backend("onnxruntime", "cuda:0")
    proc = dynarep("eval", "--policy", tiny_policy, "--episodes", "1", "--backend", "tvm", check=False, timeout=300)
    assert proc.returncode == 2 and "tvm" in proc.stderr


def test_dp3_protocol_is_reported_beside_ours(tiny_policy, tmp_path):
    data = json.loads((tiny_policy / "config.json").read_text())["data"][0]["path"]
    out = tmp_path / "periodic"
    proc = dynarep("train", "--data", data, "--out", str(out), "--steps", "6", "--down-dims", "16", "32", "--batch-size", "8",
               "--device", "cpu", "--eval-every", "3", "--eval-episodes", "2", "--eval-max-steps", "16")
    summary = json.loads((out / "eval_dp3_protocol.json").read_text())
    assert [h["step"] for h in summary["history"]] == [3, 6] and "overstates" in summary["protocol"]
    assert [h["samples"] for h in summary["history"]] == [24, 48]
    # training time only: the first evaluation's own time must not be counted at its step
    first, second = (h["train_seconds"] for h in summary["history"])
    final = json.loads((out / "policy" / "checkpoint.json").read_text())["train_seconds"]
    assert 0 < first <= second <= final
    # with fewer than 5 evaluations the "5 best" are all of them
    assert summary["success_rate"] == pytest.approx(np.mean([h["success_rate"] for h in summary["history"]]))
    assert "DP3 protocol" in proc.stdout


def test_bootstrap_interval_brackets_the_rate():
    outcomes = np.array([1] * 13 + [0] * 7)
    lo, hi = bootstrap_ci(outcomes)
    assert lo < 0.65 < hi and 0.4 < lo and hi < 0.9
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)


def outcomes(successes: dict[int, list[int]], env_offset: int = 0) -> list[dict]:
    """Eval-JSON outcomes: per seed, one episode per listed success on configurations 0, 1, ..."""
    return [{"seed": s, "index": i, "env_seed": 1000 * s + i + env_offset, "success": bool(x)}
            for s, xs in successes.items() for i, x in enumerate(xs)]


def test_paired_difference_uses_the_pairing():
    """A succeeds wherever B does and on 4 more of 40 configurations: every paired difference is 0 or
    +1, so the interval cannot go below 0, although the two separate intervals overlap widely."""
    a = outcomes({0: [1] * 30 + [0] * 10})
    b = outcomes({0: [1] * 26 + [0] * 14})
    d = paired_difference(a, b)
    assert d.difference == pytest.approx(0.1) and d.pairs == 40 and d.seeds == (0,)
    assert 0.0 <= d.ci95[0] < 0.1 < d.ci95[1] <= 0.25
    assert bootstrap_ci(np.array([1] * 26 + [0] * 14))[1] > bootstrap_ci(np.array([1] * 30 + [0] * 10))[0]
    same = paired_difference(a, a)
    assert same.difference == 0 and same.ci95 == (0.0, 0.0)


def test_paired_difference_resamples_training_seeds():
    """Seed 0 favours A on every episode, seed 1 favours B: the mean is 0, and an interval that
    resamples the seeds must span both extremes (resampling episodes alone would give [0, 0])."""
    a = outcomes({0: [1] * 20, 1: [0] * 20})
    b = outcomes({0: [0] * 20, 1: [1] * 20})
    d = paired_difference(a, b)
    assert d.difference == 0 and d.seeds == (0, 1) and d.ci95 == (-1.0, 1.0)


def test_paired_difference_pairs_only_shared_configurations():
    a = outcomes({0: [1, 0, 1], 1: [1, 1, 1]})
    b = outcomes({0: [0, 0, 1]})  # seed 1 not evaluated for B: left out
    d = paired_difference(a, b)
    assert d.seeds == (0,) and d.pairs == 3 and d.difference == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="no episode in common"):
        paired_difference(a, outcomes({0: [1, 0, 1]}, env_offset=500))
    with pytest.raises(ConfigError, match="lacks \\['env_seed'\\]"):
        paired_difference([{"seed": 0, "success": True}], b)


def test_mean_over_tasks_weights_each_task_equally_and_resamples_within_tasks():
    """Task 1 favours A on its 10 pairs, task 2 (40 pairs) is a tie: the mean over tasks is 0.5, not
    the pooled 0.2, and with no spread inside either task the interval is that point. A task whose
    seeds disagree widens it; a task without shared configurations is refused by its index."""
    favours_a = (outcomes({0: [1] * 10}), outcomes({0: [0] * 10}))
    tie = (outcomes({0: [1] * 20, 1: [0] * 20}), outcomes({0: [1] * 20, 1: [0] * 20}))
    d = mean_paired_difference_over_tasks([favours_a, tie])
    assert d.difference == pytest.approx(0.5) and d.ci95 == (0.5, 0.5) and d.pairs == 50 and d.seeds == (0, 1)
    split = (outcomes({0: [1] * 20, 1: [0] * 20}), outcomes({0: [0] * 20, 1: [1] * 20}))
    wide = mean_paired_difference_over_tasks([favours_a, split])
    assert wide.difference == pytest.approx(0.5) and wide.ci95 == (0.0, 1.0)
    assert mean_paired_difference_over_tasks([favours_a]).difference == paired_difference(*favours_a).difference
    with pytest.raises(ConfigError, match="task 1 of 2"):
        mean_paired_difference_over_tasks([favours_a, (favours_a[0], outcomes({0: [1]}, env_offset=500))])


def test_two_process_ddp_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "dynarep.cli", "train",
           "--data", str(FIXTURE), "--out", str(out), "--steps", "6", "--down-dims", "16", "32", "--batch-size", "4",
           "--device", "cpu", "--val-ratio", "0"]
    run(cmd)
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["world_size"] == 2 and "MULTI_CPU" in log[0]["distributed"]
    assert np.isfinite(log[-1]["loss"]) and (out / "policy" / "model.safetensors").exists()
