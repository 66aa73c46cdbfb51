"""How far pre-training moved an encoder from where it started: relative weight change per tensor.

  python scripts/weight_change.py --start results/baseline/encoders/random/coffee-push \\
      results/baseline/encoders/{pointmae,afro}/coffee-push

Every method built with the same seed starts from the same encoder as `--method random` (see
dynarep/objectives/random_init.py), so the random encoder is each one's starting point. One row per
encoder: ‖w − w₀‖ / ‖w₀‖ for each weight tensor of the exported encoder (tensors that start at zero,
the LayerNorm biases, are left out), and over all of them at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dynarep.training.checkpoint import load_checkpoint


def encoder_weights(directory: Path) -> dict[str, torch.Tensor]:
    if not (directory / "model.safetensors").is_file():
        sys.exit(f"{directory}: no model.safetensors (expected a `dynarep pretrain` output directory)")
    tensors, _ = load_checkpoint(directory)
    return {k: v.float() for k, v in tensors.items() if k.startswith("encoder.")}


def changes(start: dict[str, torch.Tensor], moved: dict[str, torch.Tensor]) -> dict[str, float]:
    keys = [k for k, w in start.items() if w.norm() > 0]
    if missing := [k for k in keys if k not in moved or moved[k].shape != start[k].shape]:
        sys.exit(f"the encoders differ in {missing[0]}: not the same architecture")
    out = {k.removeprefix("encoder."): ((moved[k] - start[k]).norm() / start[k].norm()).item() for k in keys}
    whole = torch.cat([(moved[k] - start[k]).flatten() for k in keys]).norm() / torch.cat([start[k].flatten() for k in keys]).norm()
    return {"all": whole.item(), **out}


def main(start: Path, encoders: list[Path]) -> None:
    base = encoder_weights(start)
    rows = [(e, changes(base, encoder_weights(e))) for e in encoders]
    names = list(rows[0][1]) if rows else []
    print("| encoder | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for encoder, change in rows:
        print(f"| {'/'.join(encoder.parts[-2:])} | " + " | ".join(f"{change[n]:.3f}" for n in names) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, required=True, help="the encoder they started from (random, same seed)")
    parser.add_argument("encoders", nargs="+", type=Path)
    a = parser.parse_args()
    main(a.start, a.encoders)
