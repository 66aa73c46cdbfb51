"""Copy the small records of a results root into the repository, so that the tables survive the runs.

  python scripts/archive_results.py [ROOT] [DEST]        (defaults: runs/baseline results/baseline)

`runs/` holds checkpoints and datasets (gigabytes) and is not committed. The tables of the README and
docs/results.md need only each cell's evaluation and its training metadata, and each encoder's probe
and weights (DP3's PointNet: a quarter of a megabyte; policies can be trained on it again without
pre-training, and scripts/weight_change.py reads it): this copies those, keeping ROOT's layout, so
that `scripts/results_table.py` and `scripts/probe_table.py` run on DEST exactly as on ROOT. Files
already in DEST are overwritten by ROOT's; cells that exist only in DEST are kept. A cell that is a
link to another cell (a row made of other rows' cells) is archived as the same link. Each copy and
link is written atomically, since the lanes of scripts/compare_grid.sh archive side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dynarep.fileio import atomic_symlink, atomic_write_bytes

# what scripts/results_table.py and scripts/probe_table.py read: a finished cell's (one with its
# eval.json) and a probed encoder's files, beside the file that marks it finished
CELL = ("eval.json", "eval_dp3_protocol.json", "config.json", "policy/checkpoint.json")
ENCODER = ("config.json", "checkpoint.json", "model.safetensors", "log.jsonl", "probe*.json")


def linked_cells(root: Path) -> list[Path]:
    """Cells that are links to another cell (rows that reuse cells, e.g. compare.sh's option sP)."""
    return sorted(d for d in root.glob("*/*/seed*") if d.is_symlink())


def records(root: Path) -> list[Path]:
    """The files to archive, of finished cells and probed encoders only (a linked cell's are its target's)."""
    cells = [e.parent for e in root.glob("*/*/seed*/eval.json") if not e.parent.is_symlink()]
    encoders = [p.parent for p in root.glob("encoders/*/*/probe.json")]
    return sorted({f for d in cells for name in CELL for f in d.glob(name)}
                  | {f for d in encoders for name in ENCODER for f in d.glob(name)})


def archived_bytes(path: Path) -> bytes:
    """The file's bytes, except that a probe drops its per-point PCA colours (for the picture only,
    and nine tenths of the file)."""
    if not path.name.startswith("probe"):
        return path.read_bytes()
    probe = json.loads(path.read_text())
    probe.pop("pca_points", None)
    return json.dumps(probe, indent=2).encode()


def archive(root: Path, dest: Path) -> int:
    if not root.is_dir():
        sys.exit(f"{root}: not a results root (expected {root}/<variant>/<task>/seed<k>/eval.json)")
    found = records(root)
    for path in found:
        atomic_write_bytes(dest / path.relative_to(root), archived_bytes(path))
    for link in linked_cells(root):  # kept as the same relative link, which the layout resolves alike
        atomic_symlink(dest / link.relative_to(root), os.readlink(link))  # two lanes may archive at once
    return len(found)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("runs/baseline"))
    parser.add_argument("dest", nargs="?", type=Path, default=Path("results/baseline"))
    a = parser.parse_args()
    print(f"{archive(a.root, a.dest)} files from {a.root} to {a.dest}")
