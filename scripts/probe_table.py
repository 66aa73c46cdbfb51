"""The probe table of docs/results.md for pre-trained encoders (e.g. AFRO's Table 5 ablations).

  python scripts/probe_table.py runs/baseline/encoders/{afro,afro-mse,afro-det}/pick-place

Per encoder directory (a `dynarep pretrain` output probed into probe.json, as scripts/compare.sh
does, or a `dynarep train` output whose visual encoder was probed): the `--set` options it was
trained with, R² of the linear probes on held-out episodes (state; action and inverse dynamics,
with the same probe on the simulator's true state in brackets), the per-dimension feature std (also
after a Mish, which DP3's FiLM conditioning applies first) and the effective rank over the dataset,
the loss and effective rank at the last logged step, and the pre-training time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def read_json(path: Path, how_to_make: str) -> dict:
    """The file's JSON, or a one-line exit that names the file and the command that writes it."""
    if not path.is_file():
        sys.exit(f"{path}: not found; {how_to_make}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        sys.exit(f"{path}: not valid JSON ({e})")


def row(encoder: Path) -> str:
    config = read_json(encoder / "config.json", "expected a `dynarep pretrain` output directory")
    probe = read_json(encoder / "probe.json", f"run `dynarep probe --encoder {encoder} --data DATA --out {encoder}/probe.json`")
    log = encoder / "log.jsonl"  # absent for an encoder that was not trained (random init)
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    last = ([r for r in logged if "loss" in r] or [{}])[-1]
    meta_path = encoder / "checkpoint.json"
    seconds = json.loads(meta_path.read_text()).get("pretrain_seconds") if meta_path.exists() else None
    args = config["args"]
    steps = [f"--steps {args['steps']}"] if args.get("steps") and "policy" not in config else []
    options = " ".join(steps + list(args.get("set", []))) or "(defaults)"
    fs, r2 = probe["feature_std"], probe["r2"]
    rank_logged = f"{last['feat_effective_rank']:.1f}" if "feat_effective_rank" in last else "–"
    minutes = f"{seconds / 60:.1f}" if seconds else "–"
    # a policy run (`dynarep train` output, probed for its visual encoder) is named by variant/task/seed
    name = "/".join(encoder.parts[-3 if (encoder / "policy").is_dir() else -2:])
    after_mish = f"{fs['after_mish_mean']:.3f}" if "after_mish_mean" in fs else "–"
    return (f"| {name} | `{options}` | {r2['robot_state']:.3f} | {r2['object_position']:.3f} | "
            f"{action_cell(probe, 'action')} | {action_cell(probe, 'inverse_dynamics')} | {fs['mean']:.3f} | "
            f"{after_mish} | **{fs['effective_rank']:.1f}** | {last.get('loss', float('nan')):.3g} | "
            f"{rank_logged} | {minutes} |")


def action_cell(probe: dict, name: str) -> str:
    """'features [true state]' R² of an action probe; '–' for data without actions or an older probe."""
    if name not in probe["r2"]:
        return "–"
    ceiling = probe.get("r2_from_true_state", {}).get(name)
    return f"{probe['r2'][name]:.3f}" + (f" [{ceiling:.3f}]" if ceiling is not None else "")


def main(encoders: list[Path]) -> None:
    print("| encoder / pre-training data | options | R² robot | R² object | R² action [true state] "
          "| R² inverse dynamics [true state] | feature std | std after Mish | effective rank | final loss | rank (last batch) "
          "| pre-train min |")
    print("|---" * 12 + "|")
    for encoder in encoders:
        print(row(encoder))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(p) for p in sys.argv[1:]])
