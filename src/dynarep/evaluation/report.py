"""`dynarep report RUN_DIR`: one self-contained HTML page and a Markdown summary of every `train`,
`pretrain`, `eval` and `probe` output found under a directory.

What it reads (anything else is ignored):
  */eval.json-like files   (`dynarep eval`: success_rate, ci95, outcomes) -> the success table;
                           policies evaluated with several seeds (sibling `seed<k>` directories)
                           are pooled into one row, the blind replay gets a row per task; beside
                           each policy, its paired difference to the blind replay and to the
                           `--versus` policy on the same configurations (`dynarep.evaluation.paired`)
  */config.json + log.jsonl  training (`policy` key) and pre-training (`objective` key) curves,
                           and the feature-collapse watch logged during pre-training
  */probe.json-like files  (`dynarep probe`: r2, feature_std, pca image and points)
  eval_dp3_protocol.json   DP3's periodic top-5 protocol, in its own table, labelled as overstating
  commands.sh, timings.json  (written by `dynarep demo`) the commands in order and stage wall times

The HTML embeds every image, so it can be mailed or archived as one file; the Markdown links the
same figures, written to RUN_DIR/report_files/.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from dynarep.errors import DataError
from dynarep.evaluation.paired import paired_difference_if_any

SEED_DIR = re.compile(r"^seed\d+$")


@dataclass
class ReportArgs:
    """Write RUN_DIR/report.html and RUN_DIR/report.md from the outputs under RUN_DIR."""

    run_dir: tyro.conf.Positional[Path]
    title: str | None = None
    gifs_per_policy: int = 2
    """Rollout GIFs shown per policy (successes and failures)."""
    interactive: bool = True
    """Add an interactive 3D view of the PCA-coloured cloud when plotly is installed."""
    versus: str = "dp3"
    """Policy to compare every other policy of the same task with, episode by episode (its label,
    or the label's first part, e.g. `dp3-cpu` for `dp3-cpu/pick-place`); no column when absent."""


@dataclass
class Found:
    evals: list[tuple[Path, dict]] = field(default_factory=list)
    trainings: list[tuple[Path, dict, list[dict]]] = field(default_factory=list)
    pretrainings: list[tuple[Path, dict, list[dict]]] = field(default_factory=list)
    probes: list[tuple[Path, dict]] = field(default_factory=list)
    dp3_protocol: list[tuple[Path, dict]] = field(default_factory=list)


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by an interruption
            continue
    return rows


def discover(root: Path) -> Found:
    """Every result under `root`, skipping datasets and training checkpoints."""
    found = Found()
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if any(part.endswith(".zarr") or part in ("checkpoints", "report_files", "policy") for part in rel.parts):
            continue
        data = read_json(path)
        if data is None:
            continue
        if path.name == "config.json" and "policy" in data and "train" in data:
            found.trainings.append((path.parent, data, read_log(path.parent / "log.jsonl")))
        elif path.name == "config.json" and "objective" in data:
            found.pretrainings.append((path.parent, data, read_log(path.parent / "log.jsonl")))
        elif path.name == "eval_dp3_protocol.json":
            found.dp3_protocol.append((path, data))
        elif {"success_rate", "ci95", "outcomes"} <= data.keys():
            found.evals.append((path, data))
        elif {"r2", "feature_std"} <= data.keys():
            found.probes.append((path, data))
    return found


def run_label(root: Path, directory: Path) -> str:
    """A run's name: its path under the report root, with `policies/` and a trailing `seed<k>` dropped."""
    parts = list(directory.relative_to(root).parts)
    if parts and SEED_DIR.match(parts[-1]):
        parts = parts[:-1]
    if parts and parts[0] == "policies":
        parts = parts[1:]
    return "/".join(parts) or root.name


def bootstrap(outcomes: list[bool]) -> tuple[float, float, float]:
    from dynarep.evaluation.rollout import bootstrap_ci

    arr = np.asarray(outcomes, dtype=np.float64)
    lo, hi = bootstrap_ci(arr)
    return float(arr.mean()), lo, hi


def success_rows(root: Path, evals: list[tuple[Path, dict]], versus: str | None = None) -> list[dict]:
    """Policies pooled over their seeds, then one blind-replay row per task (deduplicated configurations).

    Each policy row also gets `vs_blind` and, when a policy of its task is labelled `versus` (or
    starts with `versus/`), `vs_reference`: paired differences on the configurations both ran."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for path, rep in evals:
        groups.setdefault((run_label(root, path.parent), rep["task"]), []).append(rep)
    rows = []
    blind: dict[str, dict[int, bool]] = {}
    for (label, task), reps in groups.items():
        outcomes = [o["success"] for r in reps for o in r["outcomes"]]
        mean, lo, hi = bootstrap(outcomes)
        seeds = sorted({s for r in reps for s in r.get("seeds", [])})
        per_seed = {k: v for r in reps for k, v in r.get("per_seed", {}).items()}
        rows.append({"policy": label, "task": task, "success": mean, "lo": lo, "hi": hi, "episodes": len(outcomes),
                     "seeds": seeds, "per_seed": per_seed, "protocol": reps[0]["protocol"], "blind": False,
                     "outcomes": [o for r in reps for o in r["outcomes"]]})
        for r in reps:
            for o in r.get("blind_replay", {}).get("outcomes", []):
                blind.setdefault(task, {})[(o["seed"], o["env_seed"])] = o
    for r in rows:  # the blind replay depends on the configuration only, so any policy's run of it pairs
        r["vs_blind"] = paired_difference_if_any(r["outcomes"], list(blind.get(r["task"], {}).values()))
    add_reference_differences(rows, versus)
    for task, by_config in blind.items():
        mean, lo, hi = bootstrap([o["success"] for o in by_config.values()])
        rows.append({"policy": "blind replay (no observation)", "task": task, "success": mean, "lo": lo, "hi": hi,
                     "episodes": len(by_config), "seeds": [], "per_seed": {},
                     "protocol": "mean demonstration actions, open loop, same configurations", "blind": True})
    return sorted(rows, key=lambda r: (r["task"], r["blind"], -r["success"]))


def add_reference_differences(rows: list[dict], versus: str | None) -> None:
    """Set each policy row's `vs_reference` to its paired difference to the task's `versus` policy."""
    if not versus:
        return
    references = {r["task"]: r for r in rows if versus in (r["policy"], r["policy"].split("/")[0])}
    for r in rows:
        ref = references.get(r["task"])
        r["vs_reference"] = (None if ref is None or ref is r
                             else paired_difference_if_any(r["outcomes"], ref["outcomes"]))
        r["reference"] = ref["policy"] if ref is not None else None


def format_rate(row: dict) -> str:
    return f"{row['success']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}]"


def success_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["policy", "task", "success [95% CI]", "per seed", "episodes", "seeds", "Δ vs blind replay [95% CI]"]
    # one name per reference policy (`dp3-cpu`, not each of its `dp3-cpu/<task>` rows)
    references = sorted({r["reference"].split("/")[0] for r in rows if r.get("reference")})
    if references:
        header.append(f"Δ vs {', '.join(references)} [95% CI]")
    body = [[r["policy"], r["task"], format_rate(r),
             ", ".join(f"{k}: {v:.2f}" for k, v in sorted(r["per_seed"].items())) or "–", str(r["episodes"]),
             ", ".join(map(str, r["seeds"])) or "same configurations", str(r.get("vs_blind") or "–")]
            + ([str(r.get("vs_reference") or "–")] if references else []) for r in rows]
    return header, body


def probe_table(root: Path, probes: list[tuple[Path, dict]]) -> tuple[list[str], list[list[str]]]:
    from dynarep.evaluation.probes import ACTION_PROBES

    # state probes first, then the action probes (data without actions has none)
    targets = sorted({t for _, p in probes for t in p["r2"]}, key=lambda t: (t in ACTION_PROBES, t))
    header = ["encoder", *[f"R² {t}" for t in targets], "feature std (mean / min)", "dead dims", "effective rank"]
    body = []
    for path, p in probes:
        fs = p["feature_std"]
        body.append([run_label(root, path.parent), *[f"{p['r2'].get(t, float('nan')):.3f}" for t in targets],
                     f"{fs['mean']:.3f} / {fs['min']:.3f}", f"{fs['dead_dims']} of {fs['dims']}",
                     f"{fs.get('effective_rank', float('nan')):.1f}"])
    return header, body


def dp3_table(root: Path, items: list[tuple[Path, dict]]) -> tuple[list[str], list[list[str]]]:
    header = ["policy", "task", "mean of 5 best periodic evaluations", "evaluations", "episodes each"]
    body = [[run_label(root, path.parent), d["task"], f"{d['success_rate']:.2f}", str(len(d.get("history", []))),
             str(d.get("episodes_each", ""))] for path, d in items]
    return header, body


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


# ---------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_success(rows: list[dict], out: Path) -> Path | None:
    if not rows:
        return None
    plt = _pyplot()
    labels = [f"{r['policy']}\n({r['task']})" for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(rows) + 1.2), dpi=110)
    y = np.arange(len(rows))[::-1]
    means = np.array([r["success"] for r in rows])
    err = np.array([[r["success"] - r["lo"], r["hi"] - r["success"]] for r in rows]).T
    colours = ["#9e9e9e" if r["blind"] else "#3b6ea8" for r in rows]
    ax.barh(y, means, xerr=err, color=colours, capsize=4)
    for yi, m, r in zip(y, means, rows):  # beside the interval's end, clear of the error bar
        ax.text(min(r["hi"] + 0.02, 0.93), yi, f"{m:.2f}", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("closed-loop success (95% bootstrap CI)")
    fig.tight_layout()
    return _save(fig, out)


def _curve(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if key in r and r.get(key) is not None]
    if not pts:
        return np.empty(0), np.empty(0)
    steps, vals = map(np.asarray, zip(*pts))
    return steps, vals


def plot_curves(runs: list[tuple[str, list[dict]]], keys: list[str], out: Path, ylabel: str, log: bool = True,
                title: str = "") -> Path | None:
    """One line per (run, key); keys absent from a run's log are skipped."""
    lines = [(label, key, *_curve(log_rows, key)) for label, log_rows in runs for key in keys]
    lines = [line for line in lines if line[2].size]
    if not lines:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for label, key, steps, vals in lines:
        style = "o--" if key.startswith("val") else "-"
        ax.plot(steps, vals, style, ms=3, lw=1.2, label=f"{label}: {key}")
    if log and all((v > 0).all() for *_, v in lines):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    plt = _pyplot()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def interactive_cloud(probe: dict) -> str | None:
    """A plotly 3D scatter of the PCA-coloured cloud (inline, no network), or None without plotly."""
    points = probe.get("pca_points")
    if not points:
        return None
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    xyz = np.asarray(points["xyz"])
    rgb = (np.clip(np.asarray(points["rgb"]), 0, 1) * 255).astype(int)
    colours = [f"rgb({r},{g},{b})" for r, g, b in rgb]
    fig = go.Figure(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers",
                                 marker={"size": 3, "color": colours}))
    fig.update_layout(height=480, margin={"l": 0, "r": 0, "t": 30, "b": 0}, scene={"aspectmode": "data"},
                      title=f"step {points['step']}: per-point features, first 3 PCA components (drag to rotate)")
    return fig.to_html(full_html=False, include_plotlyjs=True)


def pca_image(probe_path: Path, probe: dict) -> Path | None:
    """The probe's PCA picture: beside the probe JSON, or where the probe recorded it."""
    if not probe.get("pca_image"):
        return None
    recorded = Path(probe["pca_image"])
    for candidate in (probe_path.parent / recorded.name, recorded):
        if candidate.exists():
            return candidate
    return None


def data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml"}.get(path.suffix.lower(), "image/png")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def rollout_gifs(root: Path, evals: list[tuple[Path, dict]], per_policy: int) -> list[dict]:
    shown: dict[str, int] = {}
    gifs = []
    for path, rep in evals:
        label = run_label(root, path.parent)
        for name in rep.get("gifs", []):
            gif = path.parent / name
            if gif.exists() and shown.get(label, 0) < per_policy:
                shown[label] = shown.get(label, 0) + 1
                gifs.append({"path": gif, "caption": f"{label} · {rep['task']} · "
                                                     f"{'success' if 'success' in name else 'failure'}"})
    return gifs


# ---------------------------------------------------------------- provenance


def commands(root: Path, found: Found) -> list[str]:
    """The demo's own script when there is one; otherwise the recorded command of every output, oldest first."""
    script = root / "commands.sh"
    if script.exists():
        return [line for line in script.read_text().splitlines() if line.startswith("dynarep ")]
    recorded = [(d / "config.json", c.get("command")) for d, c, _ in found.trainings + found.pretrainings]
    recorded += [(p, r.get("command")) for p, r in found.evals + found.probes]
    recorded = [(p.stat().st_mtime, c) for p, c in recorded if c]
    seen, out = set(), []
    for _, c in sorted(recorded):
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def version_sets(found: Found) -> list[dict]:
    sets = [c.get("versions") for _, c, _ in found.trainings + found.pretrainings]
    sets += [r.get("versions") for _, r in found.evals + found.probes]
    unique = []
    for v in sets:
        if v and v not in unique:
            unique.append(v)
    return unique


# ---------------------------------------------------------------- assembly


def build(args: ReportArgs) -> dict:
    root = Path(args.run_dir)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected the output directory of dynarep demo, train, eval or pretrain)")
    found = discover(root)
    if not (found.evals or found.trainings or found.pretrainings or found.probes):
        raise DataError(f"{root}: found no train, pretrain, eval or probe outputs (config.json, eval or probe JSON) under it")
    files = root / "report_files"
    rows = success_rows(root, found.evals, args.versus)
    train_runs = [(run_label(root, d), log) for d, _, log in found.trainings]
    pre_runs = [(run_label(root, d), log) for d, _, log in found.pretrainings]
    figures = {
        "success": plot_success(rows, files / "success.png"),
        "training": plot_curves(train_runs, ["loss", "val_loss"], files / "training_loss.png", "diffusion loss",
                                title="policy training: loss (line) and validation loss (dots)"),
        "pretraining": plot_curves(pre_runs, ["loss"], files / "pretraining_loss.png", "objective loss",
                                   title="pre-training loss"),
        "collapse": plot_curves(pre_runs, ["feat_std_mean", "feat_std_min"], files / "collapse_watch.png",
                                "feature std over the batch", log=False,
                                title="collapse watch: per-dimension feature std (mean and smallest dimension)"),
        "rank": plot_curves(pre_runs, ["feat_effective_rank"], files / "effective_rank.png", "effective rank",
                            log=False, title="collapse watch: effective rank of the online features over the batch"),
    }
    pca = [(run_label(root, p.parent), pca_image(p, d)) for p, d in found.probes]
    pca = [(label, path) for label, path in pca if path is not None]
    timings = read_json(root / "timings.json") or {}
    return {
        "title": args.title or f"dynarep report: {root.name}", "root": root, "rows": rows,
        "success_table": success_table(rows), "dp3_table": dp3_table(root, found.dp3_protocol),
        "probe_table": probe_table(root, found.probes) if found.probes else None,
        "figures": {k: v for k, v in figures.items() if v is not None}, "pca": pca,
        "interactive": [c for c in (interactive_cloud(d) for _, d in found.probes) if c] if args.interactive else [],
        "gifs": rollout_gifs(root, found.evals, args.gifs_per_policy), "timings": timings,
        "commands": commands(root, found), "versions": version_sets(found), "found": found,
    }


INTERVALS = ("Intervals are 95% bootstrap intervals over episodes. A Δ is the paired difference in success on "
             "the configurations both rolled out (resampling training seeds, then episodes).")

FIGURE_TITLES = {"success": "Closed-loop success", "training": "Policy training", "pretraining": "Pre-training",
                 "collapse": "Feature-collapse watch", "rank": "Effective rank of the features"}


def render_markdown(r: dict) -> str:
    root: Path = r["root"]
    out = [f"# {r['title']}", ""]
    if r["rows"]:
        out += ["## Success", "", markdown_table(*r["success_table"]), "",
                f"Protocol: {r['rows'][0]['protocol']}. {INTERVALS}", ""]
    if r["dp3_table"][1]:
        out += ["DP3's protocol (mean of the 5 best periodic evaluations; it selects on the evaluation "
                "set and overstates; for comparison with papers only):", "", markdown_table(*r["dp3_table"]), ""]
    if r["probe_table"]:
        out += ["## Linear probes of frozen features", "", markdown_table(*r["probe_table"]), ""]
    for key, path in r["figures"].items():
        out += [f"## {FIGURE_TITLES[key]}", "", f"![{key}]({path.relative_to(root)})", ""]
    for label, path in r["pca"]:
        out += [f"## Per-point features of {label}", "", f"![pca]({path.relative_to(root)})", ""]
    if r["gifs"]:
        out += ["## Rollouts", ""] + [f"- [{g['caption']}]({g['path'].relative_to(root)})" for g in r["gifs"]] + [""]
    if r["timings"]:
        out += ["## Wall time (this machine)", "", markdown_table(
            ["stage", "minutes"], [[k, f"{v / 60:.1f}"] for k, v in r["timings"].items()] +
            [["total", f"{sum(r['timings'].values()) / 60:.1f}"]]), ""]
    if r["commands"]:
        out += ["## Commands", "", "```bash", *r["commands"], "```", ""]
    for v in r["versions"]:
        out += ["Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), ""]
    return "\n".join(out)


def render_html(r: dict) -> str:
    from importlib.resources import files

    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(files("dynarep.evaluation").joinpath("report.html.j2").read_text())
    return template.render(
        r=r, figure_titles=FIGURE_TITLES, data_uri=data_uri, intervals=INTERVALS,
        total_minutes=f"{sum(r['timings'].values()) / 60:.1f}" if r["timings"] else None,
    )


def write_report(args: ReportArgs) -> tuple[Path, Path]:
    from dynarep.fileio import atomic_write_bytes

    r = build(args)
    root = Path(args.run_dir)
    html, md = root / "report.html", root / "report.md"
    atomic_write_bytes(html, render_html(r).encode())
    atomic_write_bytes(md, render_markdown(r).encode())
    return html, md
