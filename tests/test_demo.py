"""`dynarep demo --quick` end to end on the real simulator, the report it writes (read back and
opened in headless Chromium), resuming, and the report's aggregation rules."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from support import dynarep

from dynarep.evaluation.report import success_rows, success_table
from dynarep.runtime import JEMALLOC_CONF, find_jemalloc

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "quick"
    dynarep("demo", "--quick", "--out", str(out))
    return out


def table_rows(markdown: str, first_header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose first column is `first_header`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_demo_report_tables_match_the_outputs(demo_dir: Path):
    md = (demo_dir / "report.md").read_text()
    rows = {r[0]: r for r in table_rows(md, "policy")}
    assert set(rows) == {"dp3", "afro-frozen", "blind replay (no observation)"}
    for name in ("dp3", "afro-frozen"):
        ev = json.loads((demo_dir / "policies" / name / "seed0" / "eval.json").read_text())
        assert ev["episodes"] == 4 and ev["protocol"].startswith("final checkpoint")
        assert rows[name][1] == "pick-place"
        assert rows[name][2].startswith(f"{ev['success_rate']:.2f} [{ev['ci95'][0]:.2f}, {ev['ci95'][1]:.2f}]")
        assert rows[name][4] == "4"
        assert ev["command"].startswith(f"dynarep eval --policy {demo_dir / 'policies' / name / 'seed0'}")
        assert ev["versions"]["allocator"] == ("jemalloc" if find_jemalloc() else "glibc")
        if find_jemalloc():  # the tuning in force is recorded with the result
            assert ev["versions"]["malloc_conf"] == JEMALLOC_CONF
    blind = json.loads((demo_dir / "policies" / "dp3" / "seed0" / "eval.json").read_text())["blind_replay"]
    assert rows["blind replay (no observation)"][2].startswith(f"{blind['success_rate']:.2f}")

    probe = json.loads((demo_dir / "encoders" / "afro" / "probe.json").read_text())
    (enc_row,) = table_rows(md, "encoder")
    assert enc_row[0] == "encoders/afro"
    # state probes, then the action probes (the demo's data has actions)
    probes = ("object_position", "robot_state", "action", "inverse_dynamics")
    assert enc_row[1:5] == [f"{probe['r2'][t]:.3f}" for t in probes], enc_row
    assert enc_row[6] == f"{probe['feature_std']['dead_dims']} of 64"

    for figure in ("success", "training_loss", "pretraining_loss", "collapse_watch"):
        assert f"report_files/{figure}.png" in md
        assert (demo_dir / "report_files" / f"{figure}.png").stat().st_size > 5000
    assert "encoders/afro/pca.png" in md
    commands = re.search(r"```bash\n(.*?)```", md, re.S).group(1).splitlines()
    assert [c.split()[1] for c in commands] == ["collect", "pretrain", "probe", "train", "train", "eval", "eval", "report"]
    assert "torch" in md and "mujoco" in md  # versions
    timings = json.loads((demo_dir / "timings.json").read_text())
    assert len(timings) == 7 and all(v > 0 for v in timings.values())


def test_demo_resumes_and_refuses_other_settings(demo_dir: Path):
    before = {p: p.stat().st_mtime for p in demo_dir.glob("policies/*/seed0/eval.json")}
    proc = dynarep("demo", "--quick", "--out", str(demo_dir))
    assert proc.stderr.count("done already, skipped") == 7
    assert {p: p.stat().st_mtime for p in before} == before
    proc = dynarep("demo", "--quick", "--task", "button-press", "--out", str(demo_dir), check=False)
    assert proc.returncode == 2
    assert "other settings (task differ)" in proc.stderr


def test_report_refuses_a_directory_without_results(tmp_path: Path):
    proc = dynarep("report", str(tmp_path), check=False)
    assert proc.returncode == 2 and "found no train, pretrain, eval or probe outputs" in proc.stderr
    proc = dynarep("report", str(tmp_path / "missing"), check=False)
    assert proc.returncode == 2 and "not a directory" in proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)")
def test_report_page_in_headless_chromium(demo_dir: Path):
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto((demo_dir / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert page.title() == "dynarep demo: pick-place"
        cells = page.locator("#success-table tbody tr").all_inner_texts()
        assert len(cells) == 3 and any(c.startswith("dp3") for c in cells)
        assert page.locator("#success-table").is_visible()
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
        alts = [a for a, _, _ in images]
        assert {"Closed-loop success", "Policy training", "Pre-training", "Feature-collapse watch"} <= set(alts)
        assert any("failure" in a or "success" in a for a in alts)  # rollout GIFs
        assert all(done and width > 0 for _, done, width in images), images
        assert page.locator(".interactive .plotly-graph-div").count() == 1
        page.wait_for_timeout(500)
        browser.close()
    assert problems == []


def test_success_rows_pool_seeds_and_deduplicate_the_blind_replay(tmp_path: Path):
    def report(seed, successes, blind):
        outcomes = [{"seed": seed, "index": i, "env_seed": 100 * seed + i, "success": s, "length": 10}
                    for i, s in enumerate(successes)]
        b = [{**o, "success": s} for o, s in zip(outcomes, blind)]
        return {"task": "pick-place", "protocol": "final", "seeds": [seed], "per_seed": {str(seed): sum(successes) / 4},
                "outcomes": outcomes, "blind_replay": {"outcomes": b}}

    evals = [(tmp_path / "policies" / "dp3" / "seed0" / "eval.json", report(0, [1, 1, 0, 0], [1, 0, 0, 0])),
             (tmp_path / "policies" / "dp3" / "seed1" / "eval.json", report(1, [1, 1, 1, 1], [0, 0, 0, 0])),
             (tmp_path / "policies" / "afro" / "seed0" / "eval.json", report(0, [0, 0, 0, 1], [1, 0, 0, 0]))]
    rows = {r["policy"]: r for r in success_rows(tmp_path, evals, versus="dp3")}
    assert rows["dp3"]["success"] == 0.75 and rows["dp3"]["episodes"] == 8 and rows["dp3"]["seeds"] == [0, 1]
    assert rows["dp3"]["lo"] < 0.75 < rows["dp3"]["hi"]
    assert rows["afro"]["success"] == 0.25
    blind = rows["blind replay (no observation)"]
    assert blind["episodes"] == 8 and blind["success"] == 1 / 8  # seed 0's configurations counted once
    # paired on the configurations both ran: afro shares only seed 0 with dp3 (0.25 - 0.5)
    assert rows["afro"]["vs_reference"].difference == -0.25 and rows["afro"]["vs_reference"].seeds == (0,)
    assert rows["dp3"]["vs_reference"] is None  # the reference itself
    assert rows["dp3"]["vs_blind"].difference == 0.75 - 1 / 8 and rows["dp3"]["vs_blind"].pairs == 8
    assert rows["afro"]["vs_blind"].difference == 0.0
    header, body = success_table(list(rows.values()))
    assert header[-2:] == ["Δ vs blind replay [95% CI]", "Δ vs dp3 [95% CI]"]
    assert body[1][-1].startswith("-0.25 [") and body[0][-1] == "–"
