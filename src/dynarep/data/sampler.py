"""Fixed-length windows over episodes, padded at episode ends by repeating the edge frame.

Same idea as Diffusion Policy's ``common/sampler.py``: a window may start up to ``pad_before``
steps before an episode and end up to ``pad_after`` steps after it; the missing steps repeat the
episode's first/last frame, and no window ever mixes two episodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dynarep.errors import DataError


def _episode_starts(episode_ends: np.ndarray) -> np.ndarray:
    """Inclusive start index of every episode."""
    return np.concatenate([[0], episode_ends[:-1]]).astype(np.int64)


def episode_frames(episode_ends: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices of the frames of the episodes selected by `mask` (as `split_episodes` returns)."""
    return np.concatenate([np.arange(a, b) for a, b, keep in zip(_episode_starts(episode_ends), episode_ends, mask)
                           if keep])


def _as_episode_ends(episode_ends: Sequence[int] | np.ndarray) -> np.ndarray:
    """Validate episode ends: 1-D, strictly increasing from 0."""
    ends = np.asarray(episode_ends, dtype=np.int64)
    if ends.ndim != 1:
        raise DataError(f"episode_ends has shape {ends.shape} but expected (E,)")
    if np.any(np.diff(ends, prepend=0) <= 0):
        raise DataError(f"episode_ends {ends.tolist()} are not strictly increasing from 0; every episode needs >= 1 step")
    return ends


def _as_episode_mask(episode_mask: Sequence[bool] | np.ndarray | None, n_episodes: int) -> np.ndarray:
    """Boolean mask over episodes; all episodes when None."""
    if episode_mask is None:
        return np.ones(n_episodes, dtype=bool)
    mask = np.asarray(episode_mask, dtype=bool)
    if mask.shape != (n_episodes,):
        raise DataError(f"episode_mask has shape {mask.shape} but expected ({n_episodes},), one flag per episode")
    return mask


def _clip_padding(sequence_length: int, pad_before: int, pad_after: int) -> tuple[int, int]:
    """Clip padding to [0, sequence_length - 1] so that every window holds at least one real frame."""
    if sequence_length < 1:
        raise DataError(f"sequence_length is {sequence_length} but expected >= 1")
    limit = sequence_length - 1
    return min(max(pad_before, 0), limit), min(max(pad_after, 0), limit)


def _window_starts(
    episode_ends: np.ndarray, sequence_length: int, pad_before: int, pad_after: int, episode_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Virtual global start of every window (may precede its episode) and its episode's bounds."""
    starts, ep_start, ep_end = [], [], []
    for first, end, keep in zip(_episode_starts(episode_ends), episode_ends, episode_mask):
        if not keep:
            continue
        # Offsets relative to the episode start: -pad_before .. length - sequence_length + pad_after.
        offsets = np.arange(-pad_before, (end - first) - sequence_length + pad_after + 1, dtype=np.int64)
        starts.append(first + offsets)
        ep_start.append(np.full(offsets.size, first, dtype=np.int64))
        ep_end.append(np.full(offsets.size, end, dtype=np.int64))
    if not starts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(starts), np.concatenate(ep_start), np.concatenate(ep_end)


def create_indices(
    episode_ends: Sequence[int] | np.ndarray,
    sequence_length: int,
    pad_before: int = 0,
    pad_after: int = 0,
    episode_mask: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Windows as rows (buffer_start, buffer_end, sample_start, sample_end), int64 (n_windows, 4).

    ``buffer[buffer_start:buffer_end]`` are the real frames of the window and go to positions
    ``sample_start:sample_end`` of the (sequence_length, ...) sample; positions before/after are
    filled with the first/last real frame. Episodes shorter than ``sequence_length - pad_after``
    yield no windows. Padding is clipped to [0, sequence_length - 1] as in Diffusion Policy.
    """
    ends = _as_episode_ends(episode_ends)
    pad_before, pad_after = _clip_padding(sequence_length, pad_before, pad_after)
    mask = _as_episode_mask(episode_mask, ends.size)
    starts, ep_start, ep_end = _window_starts(ends, sequence_length, pad_before, pad_after, mask)
    buffer_start = np.maximum(starts, ep_start)
    buffer_end = np.minimum(starts + sequence_length, ep_end)
    sample_start = buffer_start - starts
    sample_end = sample_start + (buffer_end - buffer_start)
    return np.stack([buffer_start, buffer_end, sample_start, sample_end], axis=1).astype(np.int64)


def index_table(indices: np.ndarray, sequence_length: int) -> np.ndarray:
    """Per-step buffer index of every window, int64 (n_windows, sequence_length).

    Gathering ``array[table]`` gives all padded windows at once, because padded positions point at
    the episode's first/last real frame.
    """
    buffer_start, buffer_end, sample_start = indices[:, 0:1], indices[:, 1:2], indices[:, 2:3]
    position = np.arange(sequence_length, dtype=np.int64)[None, :]
    return buffer_start + np.clip(position - sample_start, 0, buffer_end - buffer_start - 1)


class SequenceSampler:
    """Padded fixed-length windows over in-memory arrays that share a time axis."""

    def __init__(
        self,
        data: Mapping[str, np.ndarray],
        episode_ends: Sequence[int] | np.ndarray,
        sequence_length: int,
        pad_before: int = 0,
        pad_after: int = 0,
        episode_mask: Sequence[bool] | np.ndarray | None = None,
        key_steps: Mapping[str, int] | None = None,
    ) -> None:
        """Precompute every window's per-step index table; ``data`` arrays are not copied.

        ``key_steps`` limits a key to the first k steps of each window: a policy needs the point
        cloud of its observation steps only, and gathering all of them is most of a batch's cost.
        """
        ends = _as_episode_ends(episode_ends)
        n_steps = int(ends[-1]) if ends.size else 0
        self._data = {key: np.asarray(arr) for key, arr in data.items()}
        for key, arr in self._data.items():
            if arr.ndim == 0 or arr.shape[0] != n_steps:
                raise DataError(
                    f"sampler key '{key}' has shape {arr.shape} but expected first dim {n_steps} (= episode_ends[-1])"
                )
        self.sequence_length = int(sequence_length)
        self.indices = create_indices(ends, sequence_length, pad_before, pad_after, episode_mask)
        self._table = index_table(self.indices, self.sequence_length)
        self._steps = {key: int((key_steps or {}).get(key, self.sequence_length)) for key in self._data}

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def keys(self) -> list[str]:
        """Keys every sample holds."""
        return list(self._data)

    @property
    def table(self) -> np.ndarray:
        """Per-step global step index of every window (n_windows, sequence_length); read-only view."""
        view = self._table.view()
        view.flags.writeable = False
        return view

    def sample(self, i: int) -> dict[str, np.ndarray]:
        """Window i as {key: (sequence_length, ...)}; raises IndexError when out of range."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for a sampler of {len(self)} windows")
        steps = self._table[i]
        return {key: arr[steps[: self._steps[key]]] for key, arr in self._data.items()}

    def sample_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Windows as {key: (batch, sequence_length, ...)} with a single gather per key."""
        steps = self._table[np.asarray(indices, dtype=np.int64)]
        return {key: arr[steps[:, : self._steps[key]]] for key, arr in self._data.items()}


def split_episodes(
    n_episodes: int, val_ratio: float = 0.0, seed: int = 0, max_episodes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic disjoint (train_mask, val_mask) over episodes.

    The validation set has round(n_episodes * val_ratio) episodes (at least 1 when val_ratio > 0)
    but always leaves at least one training episode; it is empty when val_ratio is 0.
    ``max_episodes`` then keeps a random subset of that many training episodes. Both draws depend
    only on ``seed``, and the validation set does not change with ``max_episodes``.
    """
    if n_episodes < 1:
        raise DataError(f"cannot split {n_episodes} episodes; expected at least 1")
    if not 0.0 <= val_ratio < 1.0:
        raise DataError(f"val_ratio is {val_ratio} but expected 0 <= val_ratio < 1")
    if max_episodes is not None and max_episodes < 1:
        raise DataError(f"max_episodes is {max_episodes} but expected >= 1 or None")
    val_mask = np.zeros(n_episodes, dtype=bool)
    if val_ratio > 0:
        n_val = min(max(1, round(n_episodes * val_ratio)), n_episodes - 1)
        val_mask[np.random.default_rng(seed).choice(n_episodes, size=n_val, replace=False)] = True
    train_mask = ~val_mask
    if max_episodes is not None and max_episodes < int(train_mask.sum()):
        # A separate stream keeps the validation episodes fixed while the training budget varies.
        keep = np.random.default_rng([seed, 1]).choice(np.flatnonzero(train_mask), size=max_episodes, replace=False)
        train_mask = np.zeros(n_episodes, dtype=bool)
        train_mask[keep] = True
    return train_mask, val_mask
