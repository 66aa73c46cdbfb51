"""Does a probe rank encoders as closed-loop success does? One table per task, then rank correlations.

  python scripts/probe_vs_success.py ROOT TASK [TASK...]      e.g. (in results/baseline) . coffee-push

Pairs each probed encoder ROOT/encoders/NAME/TASK/probe.json (scripts/compare.sh's layout) with the
frozen policies trained on it, ROOT/NAME-frozen/TASK/seed*/eval.json, and reports, over the encoders
that have both, Spearman's rank correlation between each probe quantity (R² of the state, action and
inverse-dynamics probes, feature std before and after a Mish, effective rank) and the frozen
policies' mean success. The p values are scipy's (t approximation) for each quantity alone: with
seven quantities tested per task, one p below 0.05 somewhere is what chance alone gives about a
third of the time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scipy.stats import spearmanr

from probe_table import read_json

QUANTITIES = ("robot_state", "object_position", "action", "inverse_dynamics", "feature_std", "std_after_mish",
              "effective_rank")


def probe_quantities(probe: dict) -> dict[str, float]:
    """R² of each probe; the per-dimension std of the features (also after a Mish, which DP3's FiLM
    conditioning applies first) and their effective rank. Older probes lack some: left out."""
    stats = probe["feature_std"]
    found = {name: probe["r2"][name] for name in QUANTITIES if name in probe["r2"]}
    found |= {"feature_std": stats["mean"], "effective_rank": stats["effective_rank"]}
    return found | ({"std_after_mish": stats["after_mish_mean"]} if "after_mish_mean" in stats else {})


def frozen_success(root: Path, name: str, task: str) -> list[float]:
    """Success rate of each seed of the frozen policy on this encoder (all seeds use this encoder)."""
    cells = sorted((root / f"{name}-frozen" / task).glob("seed*/eval.json"))
    return [read_json(c, "expected a finished cell")["success_rate"] for c in cells]


def pairs(root: Path, task: str) -> list[tuple[str, list[float], dict[str, float]]]:
    found = []
    for probe_path in sorted(root.glob(f"encoders/*/{task}/probe.json")):
        name = probe_path.parent.parent.name
        success = frozen_success(root, name, task)
        if success:
            found.append((name, success, probe_quantities(read_json(probe_path, "expected a probe"))))
    return found


def report(root: Path, task: str) -> None:
    found = pairs(root, task)
    if len(found) < 3:
        sys.exit(f"{root}: {len(found)} encoders on {task} with both a probe and a frozen policy; need at least 3")
    print(f"\n{task}: {len(found)} encoders\n")
    print("| encoder | frozen success (seeds) | " + " | ".join(QUANTITIES) + " |")
    print("|---" * (len(QUANTITIES) + 2) + "|")
    for name, success, q in found:
        cells = " | ".join(f"{q[k]:.3f}" if k in q else "–" for k in QUANTITIES)
        print(f"| {name} | {sum(success) / len(success):.2f} ({len(success)}) | {cells} |")
    means = [sum(s) / len(s) for _, s, _ in found]
    print("| **Spearman ρ with success (p)** | | " + " | ".join(
        rank_cell(means, [q.get(k) for _, _, q in found]) for k in QUANTITIES) + " |")


def rank_cell(success: list[float], quantity: list[float | None]) -> str:
    kept = [(s, v) for s, v in zip(success, quantity) if v is not None]
    if len(kept) < 3 or len({v for _, v in kept}) == 1:  # a constant has no ranks to correlate
        return "–"
    rho, p = spearmanr(*zip(*kept))
    return f"{rho:+.2f} ({p:.2f})"


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for t in sys.argv[2:]:
        report(Path(sys.argv[1]), t)
