"""Pictures of point clouds and their ground truth, with matplotlib (headless, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dynarep.data.store import ZarrDataset  # noqa: E402
from dynarep.errors import DataError  # noqa: E402


def _body_labels(ds: ZarrDataset, episode: int, bodies: np.ndarray) -> list[str]:
    task = ds.episode_info(episode)["task"]
    names = (ds.attrs.get("body_names") or {}).get(task) if task else None
    return [names[b] if names and 0 <= b < len(names) else f"body {b}" for b in bodies]


def plot_point_cloud(ds: ZarrDataset, episode: int, step: int, flow_k: int = 0, out: Path | None = None,
                     title: str | None = None) -> plt.Figure:
    """One step of an episode in 3D: points coloured by the body they lie on (or by their RGB, or
    height, when the store has no body ids), and optionally the exact 3D flow to step + flow_k."""
    sl = ds.episode_slice(episode)
    length = sl.stop - sl.start
    if not 0 <= step < length:
        raise DataError(f"{ds.path}: episode {episode} has {length} steps; step {step} is out of range")
    t = sl.start + step
    cloud = ds.read("point_cloud", t)
    xyz = cloud[:, :3]
    fig = plt.figure(figsize=(6.4, 5.2), dpi=110)
    ax = fig.add_subplot(projection="3d")
    if "point_body" in ds:
        bodies = ds.read("point_body", t)
        labels = _body_labels(ds, episode, np.unique(bodies))
        cmap = plt.get_cmap("tab20")
        for i, (b, label) in enumerate(zip(np.unique(bodies), labels)):
            m = bodies == b
            ax.scatter(*xyz[m].T, s=4, color=cmap(i % 20), label=f"{label} ({m.sum()})", depthshade=False)
        ax.legend(loc="upper left", fontsize=6, markerscale=2.5, frameon=False, ncol=2)
    elif cloud.shape[1] == 6:
        rgb = cloud[:, 3:] / (255.0 if cloud[:, 3:].max() > 1 else 1.0)
        ax.scatter(*xyz.T, s=4, c=np.clip(rgb, 0, 1), depthshade=False)
    else:
        ax.scatter(*xyz.T, s=4, c=xyz[:, 2], cmap="viridis", depthshade=False)
    if flow_k:
        flow = ds.flow(t, flow_k)
        moving = np.linalg.norm(flow, axis=1) > 1e-4
        ax.quiver(*xyz[moving].T, *flow[moving].T, color="black", linewidth=0.6, arrow_length_ratio=0.25)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    _equal_axes(ax, xyz)
    ax.view_init(elev=28, azim=-62)
    info = ds.episode_info(episode)
    default = f"{info['task'] or 'episode ' + str(episode)}, step {step}: {len(xyz)} points"
    if flow_k:
        default += f", flow to t+{flow_k}"
    ax.set_title(title or default, fontsize=9)
    fig.tight_layout()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
        plt.close(fig)
    return fig


def scatter_cloud(xyz: np.ndarray, colours: np.ndarray, out: Path, title: str = "") -> Path:
    """A point cloud with one RGB colour per point, saved to `out`."""
    fig = plt.figure(figsize=(6.4, 5.2), dpi=110)
    ax = fig.add_subplot(projection="3d")
    ax.scatter(*xyz.T, s=5, c=np.clip(colours, 0, 1), depthshade=False)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    _equal_axes(ax, xyz)
    ax.view_init(elev=28, azim=-62)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def _equal_axes(ax, xyz: np.ndarray) -> None:
    centre = (xyz.max(0) + xyz.min(0)) / 2
    half = (xyz.max(0) - xyz.min(0)).max() / 2
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
        setter(c - half, c + half)
