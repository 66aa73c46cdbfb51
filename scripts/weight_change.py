"""How far pre-training moved an encoder from where it started: relative weight change per tensor.

  python scripts/weight_change.py --start results/baseline/encoders/random/coffee-push \\
      results/baseline/encoders/{pointmae,afro}/coffee-push

An encoder may also be a policy's run directory (`dynarep train --out RUN`): its trained visual
encoder is read from RUN/policy, which tells how far fine-tuning, or DP3's training from scratch,
moved it (`--start results/baseline/encoders/random/hammer runs/baseline/dp3-cpu/hammer/seed0`).
`--along REF` adds the cosine between each encoder's move and REF's (w − w₀ against w_ref − w₀, all
tensors at once): whether pre-training moved the encoder the way DP3's own training moves it.

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


POLICY_VISUAL = "policy.obs_encoder.visual."


def is_policy_run(directory: Path) -> bool:
    return (directory / "policy" / "model.safetensors").is_file()


def encoder_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The weights of an exported encoder, or of the visual encoder of a trained policy, named `encoder.*`."""
    if is_policy_run(directory):
        tensors, _ = load_checkpoint(directory / "policy")
        return {"encoder." + k.removeprefix(POLICY_VISUAL): v.float() for k, v in tensors.items()
                if k.startswith(POLICY_VISUAL)}
    if not (directory / "model.safetensors").is_file():
        sys.exit(f"{directory}: no model.safetensors (expected a `dynarep pretrain` output directory, "
                 "or a `dynarep train` run with policy/model.safetensors)")
    tensors, _ = load_checkpoint(directory)
    return {k: v.float() for k, v in tensors.items() if k.startswith("encoder.")}


def label(directory: Path) -> str:  # ENCODER/TASK, or VARIANT/TASK/SEED for a policy run
    return "/".join(directory.parts[-3:] if is_policy_run(directory) else directory.parts[-2:])


def moved_keys(start: dict[str, torch.Tensor], moved: dict[str, torch.Tensor]) -> list[str]:
    """The tensors to compare: those that do not start at zero, present in both with one shape."""
    keys = [k for k, w in start.items() if w.norm() > 0]
    if missing := [k for k in keys if k not in moved or moved[k].shape != start[k].shape]:
        sys.exit(f"the encoders differ in {missing[0]}: not the same architecture")
    return keys


def flat_move(start: dict[str, torch.Tensor], moved: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([(moved[k] - start[k]).flatten() for k in moved_keys(start, moved)])


def changes(start: dict[str, torch.Tensor], moved: dict[str, torch.Tensor]) -> dict[str, float]:
    keys = moved_keys(start, moved)
    out = {k.removeprefix("encoder."): ((moved[k] - start[k]).norm() / start[k].norm()).item() for k in keys}
    whole = flat_move(start, moved).norm() / torch.cat([start[k].flatten() for k in keys]).norm()
    return {"all": whole.item(), **out}


def main(start: Path, encoders: list[Path], along: Path | None = None) -> None:
    base = encoder_weights(start)
    reference = flat_move(base, encoder_weights(along)) if along is not None else None
    rows = []
    for encoder in encoders:
        weights = encoder_weights(encoder)  # read once: a policy run's checkpoint holds the whole UNet too
        change = changes(base, weights)
        if reference is not None:
            change[f"cos to {label(along)}"] = torch.nn.functional.cosine_similarity(
                flat_move(base, weights), reference, dim=0).item()
        rows.append((encoder, change))
    names = list(rows[0][1]) if rows else []
    print("| encoder | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for encoder, change in rows:
        print(f"| {label(encoder)} | " + " | ".join(f"{change[n]:.3f}" for n in names) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, required=True, help="the encoder they started from (random, same seed)")
    parser.add_argument("encoders", nargs="+", type=Path)
    parser.add_argument("--along", type=Path, help="an encoder or policy run whose move from --start to compare with")
    a = parser.parse_args()
    main(a.start, a.encoders, a.along)
