"""Padded episode windows and episode splits."""

from __future__ import annotations

import numpy as np
import pytest

from dynarep.data import SequenceSampler, create_indices, split_episodes
from dynarep.errors import DataError


def reference_indices(episode_ends: list[int], length: int, pad_before: int, pad_after: int) -> list[tuple[int, ...]]:
    """Diffusion Policy's original per-window loop, as an oracle."""
    rows = []
    for i, end in enumerate(episode_ends):
        start = 0 if i == 0 else episode_ends[i - 1]
        episode_length = end - start
        for idx in range(-pad_before, episode_length - length + pad_after + 1):
            buffer_start = max(idx, 0) + start
            buffer_end = min(idx + length, episode_length) + start
            sample_start = buffer_start - (idx + start)
            sample_end = length - ((idx + length + start) - buffer_end)
            rows.append((buffer_start, buffer_end, sample_start, sample_end))
    return rows


def test_windows_pad_by_repeating_edge_frames() -> None:
    steps = np.arange(5) * 10  # value = 10 * global step; episodes are steps 0-2 and 3-4
    sampler = SequenceSampler({"x": steps}, [3, 5], sequence_length=3, pad_before=1, pad_after=1)
    windows = [sampler.sample(i)["x"].tolist() for i in range(len(sampler))]
    assert windows == [[0, 0, 10], [0, 10, 20], [10, 20, 20], [30, 30, 40], [30, 40, 40]]
    assert create_indices([3, 5], 3, 1, 1)[0].tolist() == [0, 2, 1, 3]


def test_unpadded_windows_skip_short_episodes() -> None:
    assert create_indices([3, 5], 3).tolist() == [[0, 3, 0, 3]]
    sampler = SequenceSampler({"x": np.arange(5)}, [3, 5], sequence_length=3)
    assert len(sampler) == 1 and sampler.sample(0)["x"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(("length", "pad_before", "pad_after"), [(1, 0, 0), (4, 1, 3), (7, 2, 6), (16, 1, 7)])
def test_indices_match_diffusion_policy(length: int, pad_before: int, pad_after: int) -> None:
    ends = [5, 6, 20, 27, 40]
    expected = reference_indices(ends, length, pad_before, pad_after)
    assert [tuple(row) for row in create_indices(ends, length, pad_before, pad_after).tolist()] == expected


def test_windows_never_cross_episodes() -> None:
    ends = np.array([5, 6, 20, 27, 40])
    sampler = SequenceSampler({"t": np.arange(40)}, ends, sequence_length=8, pad_before=3, pad_after=7)
    windows = sampler.sample_batch(np.arange(len(sampler)))["t"]
    episode = np.searchsorted(ends, windows, side="right")
    assert (episode == episode[:, :1]).all()
    assert set(np.diff(windows, axis=1).ravel().tolist()) <= {0, 1}
    assert set(episode[:, 0].tolist()) == {0, 1, 2, 3, 4}


def test_sample_batch_equals_stacked_samples() -> None:
    rng = np.random.default_rng(0)
    data = {"obs": rng.normal(size=(30, 4, 3)), "action": rng.normal(size=(30, 2)), "flag": np.arange(30) % 3 == 0}
    sampler = SequenceSampler(data, [9, 17, 30], sequence_length=5, pad_before=2, pad_after=4)
    picks = np.array([0, len(sampler) - 1, 7, 7, 3])
    batch = sampler.sample_batch(picks)
    for key, arr in data.items():
        assert batch[key].shape == (5, 5, *arr.shape[1:])
        np.testing.assert_array_equal(batch[key], np.stack([sampler.sample(int(i))[key] for i in picks]))
    assert sampler.table.shape == (len(sampler), 5)


def test_episode_mask_selects_episodes() -> None:
    sampler = SequenceSampler({"t": np.arange(10)}, [4, 10], sequence_length=2, episode_mask=[False, True])
    starts = sampler.sample_batch(np.arange(len(sampler)))["t"][:, 0]
    assert starts.tolist() == [4, 5, 6, 7, 8]


def test_sampler_errors() -> None:
    with pytest.raises(DataError, match=r"sampler key 'action' has shape \(9, 2\) but expected first dim 10"):
        SequenceSampler({"action": np.zeros((9, 2))}, [4, 10], sequence_length=2)
    with pytest.raises(DataError, match=r"episode_mask has shape \(3,\) but expected \(2,\)"):
        create_indices([4, 10], 2, episode_mask=[True, True, False])
    with pytest.raises(DataError, match="not strictly increasing"):
        create_indices([4, 4, 10], 2)
    sampler = SequenceSampler({"t": np.arange(10)}, [10], sequence_length=2)
    with pytest.raises(IndexError):
        sampler.sample(len(sampler))


def test_split_is_deterministic_and_disjoint() -> None:
    train, val = split_episodes(50, val_ratio=0.2, seed=3)
    again_train, again_val = split_episodes(50, val_ratio=0.2, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not (train & val).any() and (train | val).all()
    assert val.sum() == 10
    assert not np.array_equal(val, split_episodes(50, val_ratio=0.2, seed=4)[1])


def test_split_edge_cases() -> None:
    train, val = split_episodes(7, val_ratio=0.0, seed=0)
    assert train.all() and not val.any()
    train, val = split_episodes(1, val_ratio=0.5, seed=0)
    assert train.tolist() == [True] and val.tolist() == [False]
    train, val = split_episodes(3, val_ratio=0.9, seed=0)
    assert train.sum() == 1 and val.sum() == 2
    with pytest.raises(DataError, match="val_ratio is 1.0"):
        split_episodes(3, val_ratio=1.0)


def test_max_episodes_subsamples_training_only() -> None:
    full_train, full_val = split_episodes(40, val_ratio=0.25, seed=5)
    train, val = split_episodes(40, val_ratio=0.25, seed=5, max_episodes=8)
    assert np.array_equal(val, full_val)
    assert train.sum() == 8 and not (train & ~full_train).any()
    assert np.array_equal(train, split_episodes(40, val_ratio=0.25, seed=5, max_episodes=8)[0])
    assert np.array_equal(split_episodes(40, 0.25, 5, max_episodes=100)[0], full_train)
