"""Aggregate `dynarep eval` results under a directory into the Markdown tables of the README and docs/results.md.

  python scripts/results_table.py [--task TASK]... [--versus runs/baseline/dp3-cpu] runs/baseline/dp3-cpu [runs/baseline/afro-frozen ...]

Layout expected: DIR/<task>/seed<k>/eval.json (as scripts/baseline.sh writes); several DIRs give one
table with a policy column (the directory name). For every policy and task:
success over all episodes of all training seeds with a 95% bootstrap interval, the per-seed rates,
the blind replay on the same configurations, DP3's periodic top-5 protocol where the run used
`--eval-every` (labelled: it overstates), and the mean wall time of training and evaluation.
With `--versus DIR`, a column with the success difference to that policy on the same episodes
(paired by seed and configuration, hierarchical bootstrap over seeds then episodes; see
`dynarep.evaluation.paired`), and the seeds both share. `--matrix` prints the same as one
compact row per policy directory and one column per task that at least two of them ran: success,
number of seeds (×k), Δ; with two tasks or more, a last column averages them, each task weighted
equally, for the rows that ran every one (Δ: stratified by task, `mean_paired_difference_over_tasks`).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from dynarep.errors import ConfigError
from dynarep.evaluation.paired import mean_paired_difference_over_tasks, paired_difference_if_any
from dynarep.evaluation.rollout import bootstrap_ci
from dynarep.sim.tasks import DIFFICULTY
from dynarep.training.checkpoint import read_meta


def main(roots: list[Path], tasks: list[str] | None = None, versus: Path | None = None) -> None:
    rows = []
    for task in tasks or [None]:  # several tasks: grouped by task, in the order given
        for root in roots:
            rows += table_rows(root, policy_column=len(roots) > 1, task=task, versus=versus)
    policy = "policy | " if len(roots) > 1 else ""
    difference = f" | Δ vs {versus.name} [95% CI] (seeds paired)" if versus else ""
    print(f"| {policy}task | difficulty | seeds | episodes | success [95% CI] | per seed | blind replay [95% CI] "
          f"| DP3 protocol (overstates) | train min/seed | eval min/seed{difference} |")
    print("|---" * (10 + (len(roots) > 1) + (versus is not None)) + "|")
    print("\n".join(rows))


def evaluated_tasks(root: Path, task: str | None = None) -> dict[Path, list[Path]]:
    """Each task directory of ROOT that has evaluations, with its seed*/eval.json files."""
    if not root.is_dir():
        sys.exit(f"{root}: not a directory of runs (expected {root}/<task>/seed<k>/eval.json)")
    found = {d: sorted(d.glob("seed*/eval.json")) for d in sorted(root.iterdir()) if d.is_dir() and task in (None, d.name)}
    return {d: evals for d, evals in found.items() if evals}


def matrix(roots: list[Path], versus: Path | None = None) -> None:
    """One row per policy directory, one column per task (by difficulty): pooled success, seeds, and
    with --versus the paired difference to that baseline."""
    cells = {root: {d.name: evals for d, evals in evaluated_tasks(root).items()} for root in roots}
    order = list(dict.fromkeys(DIFFICULTY.values()))
    # with several policies, only the tasks that at least two of them ran: a comparison needs both sides
    counts = Counter(t for c in cells.values() for t in c)
    tasks = sorted((t for t, n in counts.items() if n >= min(2, len(roots))),
                   key=lambda t: (order.index(DIFFICULTY.get(t, "very_hard")), t))
    mean_column = [f"mean of {len(tasks)} tasks"] if len(tasks) >= 2 else []
    print("| policy | " + " | ".join([f"{t} ({DIFFICULTY.get(t, '?')})" for t in tasks] + mean_column) + " |")
    print("|---" * (len(tasks) + 1 + len(mean_column)) + "|")
    for root in roots:
        row, rates = [], []
        for t in tasks:
            if t not in cells[root]:
                row.append("")
                continue
            reports = reports_of(root / t)
            rate = np.mean([o["success"] for o in outcomes_of(root / t)])
            rates.append(rate)
            cell = f"**{rate:.2f}** ×{len(reports)}"
            if versus is not None and versus.resolve() != root.resolve():
                cell += "; Δ" + difference_cell(root / t, versus).rstrip(" |")
            row.append(cell)
        if mean_column:
            row.append(mean_over_tasks_cell(root, tasks, rates, versus))
        print(f"| {root.name} | " + " | ".join(row) + " |")


def mean_over_tasks_cell(root: Path, tasks: list[str], rates: list[float], versus: Path | None) -> str:
    """Success averaged over TASKS (equal weights; RATES: ROOT's success on each task it ran) and, with
    VERSUS, the paired Δ averaged likewise; empty unless ROOT ran every task (a mean over other tasks
    would not compare)."""
    if len(rates) < len(tasks):
        return ""
    cell = f"**{np.mean(rates):.2f}**"
    if versus is None or versus.resolve() == root.resolve():
        return cell
    try:
        d = mean_paired_difference_over_tasks([(outcomes_of(root / t), outcomes_of(versus / t)) for t in tasks])
    except ConfigError:  # a task the two share no configuration of: no Δ, as in that task's own cell
        return cell
    return cell + f"; Δ {d} ({','.join(map(str, d.seeds))})"


def table_rows(root: Path, policy_column: bool, task: str | None = None, versus: Path | None = None) -> list[str]:
    rows = []
    for task_dir, evals in evaluated_tasks(root, task).items():
        reports = reports_of(task_dir)
        ours = np.concatenate([[o["success"] for o in r["outcomes"]] for r in reports]).astype(float)
        blind = np.concatenate([[o["success"] for o in r["blind_replay"]["outcomes"]] for r in reports]).astype(float)
        train_s = [read_meta(p.parent / "policy" / "checkpoint.json")["train_seconds"] for p in evals]
        lo, hi = bootstrap_ci(ours)
        blo, bhi = bootstrap_ci(blind)
        per_seed = ", ".join(f"{r['success_rate']:.2f}" for r in reports)
        periodic = [json.loads(q.read_text()) for p in evals if (q := p.parent / "eval_dp3_protocol.json").exists()]
        dp3 = (f"{np.mean([q['success_rate'] for q in periodic]):.2f} ({len(periodic)} seed{'s' * (len(periodic) > 1)})"
               if periodic else "–")
        rows.append(
            (f"| {root.name} " if policy_column else "") + f"| {task_dir.name} | {DIFFICULTY.get(task_dir.name, '?')} | {len(reports)} | {len(ours)} | "
            f"**{ours.mean():.2f}** [{lo:.2f}, {hi:.2f}] | {per_seed} | {blind.mean():.2f} [{blo:.2f}, {bhi:.2f}] | {dp3} | "
            f"{np.mean(train_s) / 60:.1f} | {np.mean([r['wall_seconds'] for r in reports]) / 60:.1f} |"
            + (difference_cell(task_dir, versus) if versus else "")
        )
    return rows


def difference_cell(task_dir: Path, versus: Path) -> str:
    """' Δ [lo, hi] (seeds) |' of TASK_DIR's runs against VERSUS's runs of the same task; '–' for the
    baseline itself, or where the two share no configuration."""
    if task_dir.parent.resolve() == versus.resolve():
        return " – |"
    d = paired_difference_if_any(outcomes_of(task_dir), outcomes_of(versus / task_dir.name))
    return f" {d} ({','.join(map(str, d.seeds))}) |" if d else " – |"


def outcomes_of(task_dir: Path) -> list[dict]:
    """The episode outcomes of all TASK_DIR's seeds, in one list."""
    return [o for r in reports_of(task_dir) for o in r["outcomes"]]


@functools.cache
def reports_of(task_dir: Path) -> tuple[dict, ...]:
    """The eval JSONs of TASK_DIR's seeds, read once however many rows compare with them."""
    return tuple(json.loads(p.read_text()) for p in sorted(task_dir.glob("seed*/eval.json")))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[Path("runs/baseline/dp3-cpu")],
                        help="directories of runs, one table row per policy and task")
    parser.add_argument("--task", action="append",
                        help="keep only this task's rows; repeated, grouped by task in the order given")
    parser.add_argument("--versus", type=Path, help="a directory of runs to compare every row with, episode by episode")
    parser.add_argument("--matrix", action="store_true", help="one compact row per policy, one column per task")
    a = parser.parse_args()
    if a.versus is not None and not a.versus.is_dir():
        sys.exit(f"--versus {a.versus}: not a directory of runs (expected {a.versus}/<task>/seed<k>/eval.json)")
    if a.matrix:
        matrix(a.roots, a.versus)
    else:
        main(a.roots, a.task, a.versus)
