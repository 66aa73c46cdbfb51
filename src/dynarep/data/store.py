"""Demonstration stores on disk: zarr format 2 in DP3's layout, plus our optional extras.

Layout: ``data/<key>`` arrays share time (all steps of all episodes) as their first axis,
``meta/episode_ends`` holds exclusive episode end indices, and root attributes carry JSON
metadata (tasks, cameras, crop, ...). DP3's generator writes a subset, which reads unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr

from dynarep.data.geometry import point_flow
from dynarep.errors import DataError

FORMAT_VERSION = 1
DATA_GROUP = "data"
META_GROUP = "meta"
EPISODE_ENDS = "episode_ends"
DEFAULT_CHUNK_STEPS = 100
# Keys a policy trains on directly; a single NaN there silently poisons a whole run.
FINITE_KEYS = ("point_cloud", "state", "action")
OBSERVATION_KEYS = ("point_cloud", "state")
FLOW_KEYS = ("point_cloud", "point_body", "body_pos", "body_quat")
CAMERA_KEY_BASES = ("img", "depth", "seg", "extrinsics")
SUMMARY_ATTRS = ("dynarep_format", "cameras", "crop", "sampling", "versions", "collection")

# Expected shape of each known key after the time axis: per allowed rank, a tuple of fixed trailing
# sizes (None = any size), and the text shown when it does not match.
_KNOWN_SHAPES: dict[str, tuple[tuple[tuple[int | None, ...], ...], str]] = {
    "point_cloud": (((None, 3), (None, 6)), "(T, N, 3) or (T, N, 6)"),
    "point_body": (((None,),), "(T, N)"),
    "body_pos": (((None, 3),), "(T, B, 3)"),
    "body_quat": (((None, 4),), "(T, B, 4)"),
    "state": (((None,),), "(T, D)"),
    "full_state": (((None,),), "(T, D)"),
    "action": (((None,),), "(T, D)"),
    "reward": (((),), "(T,)"),
    "success": (((),), "(T,)"),
    "img": (((None, None, 3),), "(T, H, W, 3)"),
    "depth": (((None, None),), "(T, H, W)"),
    "seg": (((None, None),), "(T, H, W)"),
    "extrinsics": (((4, 4),), "(T, 4, 4)"),
}


def _blosc() -> numcodecs.Blosc:
    """The compressor DP3 uses, so our stores and theirs are byte-compatible."""
    return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)


def _shape_rule(key: str) -> tuple[tuple[tuple[int | None, ...], ...], str] | None:
    """The expected-shape rule for a data key, matching camera suffixes like ``img_corner2``."""
    if key in _KNOWN_SHAPES:
        return _KNOWN_SHAPES[key]
    for base in CAMERA_KEY_BASES:
        if key.startswith(base + "_"):
            return _KNOWN_SHAPES[base]
    return None


def _trailing_matches(trailing: tuple[int, ...], pattern: tuple[int | None, ...]) -> bool:
    """True when the non-time dims have the pattern's rank and its fixed sizes."""
    return len(trailing) == len(pattern) and all(p is None or p == d for d, p in zip(trailing, pattern))


def _validate_layout(where: str, shapes: Mapping[str, tuple[int, ...]], n_steps: int) -> None:
    """Raise DataError unless the data arrays form a readable store of ``n_steps`` steps."""
    if not any(key in shapes for key in OBSERVATION_KEYS):
        raise DataError(
            f"{where}: group '{DATA_GROUP}' has neither 'point_cloud' nor 'state' "
            f"(found keys {sorted(shapes)}); a dataset needs at least one observation"
        )
    for key, shape in shapes.items():
        if len(shape) == 0 or shape[0] != n_steps:
            raise DataError(
                f"{where}: key '{DATA_GROUP}/{key}' has shape {tuple(shape)} but expected first dim "
                f"{n_steps} (= meta/episode_ends[-1], the total number of steps)"
            )
        rule = _shape_rule(key)
        if rule is not None and not any(_trailing_matches(tuple(shape[1:]), p) for p in rule[0]):
            raise DataError(f"{where}: key '{DATA_GROUP}/{key}' has shape {tuple(shape)} but expected {rule[1]}")
    _validate_cross_key_sizes(where, shapes)


def _validate_cross_key_sizes(where: str, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Point ids must label every point, and both body pose arrays must cover the same bodies."""
    if "point_body" in shapes and "point_cloud" in shapes and shapes["point_body"][1] != shapes["point_cloud"][1]:
        raise DataError(
            f"{where}: key '{DATA_GROUP}/point_body' has shape {tuple(shapes['point_body'])} but expected "
            f"(T, {shapes['point_cloud'][1]}) to label every point of point_cloud {tuple(shapes['point_cloud'])}"
        )
    if "body_pos" in shapes and "body_quat" in shapes and shapes["body_pos"][1] != shapes["body_quat"][1]:
        raise DataError(
            f"{where}: key '{DATA_GROUP}/body_quat' has shape {tuple(shapes['body_quat'])} but expected "
            f"(T, {shapes['body_pos'][1]}, 4) to match body_pos {tuple(shapes['body_pos'])}"
        )


def _validate_episode_ends(where: str, episode_ends: np.ndarray) -> None:
    """Episode ends must be a non-empty, strictly increasing 1-D integer array starting above 0."""
    key = f"{META_GROUP}/{EPISODE_ENDS}"
    if episode_ends.ndim != 1 or episode_ends.size == 0:
        raise DataError(f"{where}: key '{key}' has shape {episode_ends.shape} but expected (E,) with E >= 1")
    if not np.issubdtype(episode_ends.dtype, np.integer):
        raise DataError(f"{where}: key '{key}' has dtype {episode_ends.dtype} but expected integers")
    steps = np.diff(episode_ends, prepend=0)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0))
        raise DataError(
            f"{where}: key '{key}' is not strictly increasing from 0: value {int(episode_ends[bad])} at index "
            f"{bad} follows {0 if bad == 0 else int(episode_ends[bad - 1])} (episodes must have >= 1 step)"
        )


def _first_non_finite(arr: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/inf element in C order, or None when all are finite."""
    if not np.issubdtype(arr.dtype, np.floating):
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))


def _raise_non_finite(where: str, key: str, index: tuple[int, ...], value: Any) -> None:
    """Report the first non-finite element of a key."""
    raise DataError(f"{where}: key '{DATA_GROUP}/{key}' contains {value} at index {index}; expected finite values")


def _to_json(value: Any, where: str, name: str) -> Any:
    """Convert numpy scalars/arrays and tuples inside attributes to plain JSON types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _to_json(v, where, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, where, f"{name}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise DataError(f"{where}: attribute '{name}' has type {type(value).__name__} but expected a JSON value")


def _validate_arrays_for_write(
    where: str, arrays: Mapping[str, np.ndarray], ends: np.ndarray, meta: Mapping[str, np.ndarray]
) -> None:
    """Check everything write_dataset can check before touching the disk."""
    _validate_episode_ends(where, ends)
    for key, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{where}: key '{DATA_GROUP}/{key}' has dtype {arr.dtype} but expected bool, int or float")
    _validate_layout(where, {k: a.shape for k, a in arrays.items()}, int(ends[-1]))
    for key in FINITE_KEYS:
        if key in arrays and (index := _first_non_finite(arrays[key])) is not None:
            _raise_non_finite(where, key, index, arrays[key][index])
    if EPISODE_ENDS in meta:
        raise DataError(f"{where}: meta key '{EPISODE_ENDS}' must be passed as the episode_ends argument")
    for key, arr in meta.items():
        if arr.ndim == 0 or arr.shape[0] != ends.size:
            raise DataError(
                f"{where}: key '{META_GROUP}/{key}' has shape {arr.shape} but expected first dim {ends.size} (one per episode)"
            )


class DatasetWriter:
    """Writes a store episode by episode, so a collection never holds all of it in memory.

    Everything goes into a hidden sibling temp directory; `close()` adds episode ends, per-episode
    meta and attributes, validates the layout and renames the directory onto `path`. Leaving the
    `with` block by an exception removes the temp directory and leaves `path` untouched.
    """

    def __init__(self, path: str | os.PathLike[str], chunk_steps: int = DEFAULT_CHUNK_STEPS,
                 overwrite: bool = False, attrs: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        if self.path.exists() and not overwrite:
            raise DataError(f"{self.where}: already exists; pass overwrite=True to replace it")
        if chunk_steps < 1:
            raise DataError(f"{self.where}: chunk_steps is {chunk_steps} but expected >= 1")
        self.chunk_steps, self.overwrite = chunk_steps, overwrite
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        if self._tmp.exists():
            shutil.rmtree(self._tmp)  # left by an earlier crashed run with the same pid
        self._root = zarr.open_group(str(self._tmp), mode="w", zarr_format=2)
        self._data = self._root.require_group(DATA_GROUP)
        self._arrays: dict[str, zarr.Array] = {}
        self._ends: list[int] = []
        self._meta: dict[str, list] = {}

    def add_episode(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> None:
        """Append one episode: (L, ...) arrays under the same keys as every other episode."""
        self.add_steps(arrays, [self._check_length(arrays)], meta=[dict(meta or {})])

    def add_steps(self, arrays: Mapping[str, np.ndarray], lengths: Iterable[int],
                  meta: list[Mapping[str, Any]] | None = None) -> None:
        """Append several episodes at once, given their lengths (used by `write_dataset`)."""
        lengths = [int(n) for n in lengths]
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        total = self._check_length(arrays)
        if sum(lengths) != total or any(n <= 0 for n in lengths):
            raise DataError(f"{self.where}: episode lengths {lengths} do not add up to the {total} steps given")
        if self._arrays and set(arrays) != set(self._arrays):
            raise DataError(
                f"{self.where}: episode {len(self._ends)} has keys {sorted(arrays)} but earlier episodes have "
                f"{sorted(self._arrays)}"
            )
        for key, arr in arrays.items():
            if arr.dtype.kind not in "biuf":
                raise DataError(f"{self.where}: key '{DATA_GROUP}/{key}' has dtype {arr.dtype} but expected bool, int or float")
            if key in FINITE_KEYS and (index := _first_non_finite(arr)) is not None:
                offset = self._ends[-1] if self._ends else 0
                _raise_non_finite(self.where, key, (index[0] + offset, *index[1:]), arr[index])
        for key, arr in arrays.items():
            self._append(key, arr)
        for n in lengths:
            self._ends.append((self._ends[-1] if self._ends else 0) + n)
        for m in meta or [{}] * len(lengths):
            for key, value in m.items():
                column = self._meta.setdefault(key, [None] * (len(self._ends) - len(lengths)))
                column.append(value)
        for column in self._meta.values():  # keys missing from this episode's meta stay None
            column.extend([None] * (len(self._ends) - len(column)))

    def _check_length(self, arrays: Mapping[str, np.ndarray]) -> int:
        lengths = {k: (np.shape(v)[0] if np.ndim(v) else 0) for k, v in arrays.items()}
        if not lengths or len(set(lengths.values())) != 1 or 0 in lengths.values():
            raise DataError(f"{self.where}: episode {len(self._ends)} arrays disagree on their number of steps: {lengths}")
        return next(iter(lengths.values()))

    def _append(self, key: str, arr: np.ndarray) -> None:
        if key not in self._arrays:
            self._arrays[key] = self._data.create_array(
                key, shape=(0, *arr.shape[1:]), dtype=arr.dtype, chunks=(self.chunk_steps, *arr.shape[1:]),
                compressors=_blosc(), fill_value=0,
            )
        target = self._arrays[key]
        if target.shape[1:] != arr.shape[1:]:
            raise DataError(
                f"{self.where}: key '{DATA_GROUP}/{key}' of episode {len(self._ends)} has shape {arr.shape} but earlier "
                f"episodes have (L, {', '.join(map(str, target.shape[1:]))})"
            )
        target.append(arr.astype(target.dtype, copy=False), axis=0)

    def close(self) -> Path:
        if not self._ends:
            raise DataError(f"{self.where}: no episode was written")
        ends = np.asarray(self._ends, dtype=np.int64)
        _validate_layout(self.where, {k: a.shape for k, a in self._arrays.items()}, int(ends[-1]))
        meta_group = self._root.require_group(META_GROUP)
        meta_group.create_array(EPISODE_ENDS, data=ends, chunks=ends.shape, compressors=_blosc())
        for key, column in self._meta.items():
            if any(v is None for v in column):
                raise DataError(f"{self.where}: meta key '{key}' is missing for some episodes")
            arr = np.asarray(column)
            meta_group.create_array(key, data=arr, chunks=arr.shape, compressors=_blosc())
        attrs = _to_json({"dynarep_format": FORMAT_VERSION, **self.attrs}, self.where, "attrs")
        try:
            json.dumps(attrs)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{self.where}: attributes are not JSON-serialisable: {exc}") from exc
        self._root.attrs.update(attrs)
        if self.path.exists() and not self.overwrite:
            raise DataError(f"{self.where}: was created by someone else while writing; not replacing it")
        _swap_into_place(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._tmp.exists():
            shutil.rmtree(self._tmp)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.close()
        finally:
            self.abort()


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Move the finished store onto ``path``, replacing an existing one only after success."""
    if not path.exists():
        os.replace(tmp, path)
        return
    # os.replace cannot replace a non-empty directory, so park the old store until the new one is in place.
    backup = path.parent / f".{path.name}.old-{os.getpid()}"
    if backup.exists():
        shutil.rmtree(backup)
    os.replace(path, backup)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(backup, path)
        raise
    if backup.is_dir():
        shutil.rmtree(backup)
    else:
        backup.unlink()


def write_dataset(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    episode_ends: Iterable[int] | np.ndarray,
    meta: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
    chunk_steps: int = DEFAULT_CHUNK_STEPS,
    overwrite: bool = False,
) -> Path:
    """Validate and write a whole store atomically; return its path.

    ``arrays`` maps data keys ("point_cloud", "state", ...) to arrays whose first axis is time,
    ``episode_ends`` holds exclusive end indices, ``meta`` per-episode arrays ("episode_task",
    "episode_seed") and ``attrs`` root attributes (``dynarep_format`` is added when missing).
    The store is written to a hidden sibling temp directory and renamed onto ``path``, so readers
    never see a half-written store. An existing ``path`` raises DataError unless ``overwrite``.
    """
    path = Path(path)
    where = str(path)
    if path.exists() and not overwrite:
        raise DataError(f"{where}: already exists; pass overwrite=True to replace it")
    if chunk_steps < 1:
        raise DataError(f"{where}: chunk_steps is {chunk_steps} but expected >= 1")
    np_arrays = {key: np.asarray(arr) for key, arr in arrays.items()}
    ends = np.asarray(list(episode_ends) if not isinstance(episode_ends, np.ndarray) else episode_ends)
    np_meta = {key: np.asarray(arr) for key, arr in (meta or {}).items()}
    _validate_arrays_for_write(where, np_arrays, ends, np_meta)
    ends = ends.astype(np.int64)
    json_attrs = _to_json({"dynarep_format": FORMAT_VERSION, **(attrs or {})}, where, "attrs")
    try:
        json.dumps(json_attrs)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: attributes are not JSON-serialisable: {exc}") from exc

    lengths = np.diff(ends, prepend=0)
    per_episode = [{k: v[i] for k, v in np_meta.items()} for i in range(ends.size)]
    with DatasetWriter(path, chunk_steps=chunk_steps, overwrite=overwrite, attrs=json_attrs) as writer:
        writer.add_steps(np_arrays, lengths, meta=per_episode)
    return path


def _open_root(path: Path) -> zarr.Group:
    """Open ``path`` read-only as a zarr group, turning zarr's errors into DataError."""
    if not path.exists():
        raise DataError(f"{path}: dataset does not exist")
    try:
        return zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: is not a zarr group (no .zgroup/zarr.json found): {exc}") from exc


def _require_group(path: Path, root: zarr.Group, name: str) -> zarr.Group:
    """The named subgroup of the root, or DataError."""
    node = root.get(name)
    if not isinstance(node, zarr.Group):
        found = "nothing" if node is None else "an array"
        raise DataError(f"{path}: expected a group '{name}' but found {found}")
    return node


def _read_episode_ends(path: Path, root: zarr.Group) -> np.ndarray:
    """Load and validate meta/episode_ends."""
    meta = root.get(META_GROUP)
    node = meta.get(EPISODE_ENDS) if isinstance(meta, zarr.Group) else None
    if not isinstance(node, zarr.Array):
        raise DataError(f"{path}: missing key '{META_GROUP}/{EPISODE_ENDS}' (exclusive end index of every episode)")
    ends = np.asarray(node[...])
    _validate_episode_ends(str(path), ends)
    return ends.astype(np.int64)


def _human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class ZarrDataset:
    """Read-only view of a validated demonstration store; use ``ZarrDataset.open(path)``."""

    def __init__(self, path: Path, root: zarr.Group, data: zarr.Group, episode_ends: np.ndarray) -> None:
        """Wrap already validated groups; prefer ``open`` which performs the validation."""
        self._path = path
        self._root = root
        self._data = data
        self._arrays: dict[str, zarr.Array] = dict(sorted(data.arrays()))
        self._episode_ends = episode_ends
        self._attrs: dict[str, Any] = json.loads(json.dumps(root.attrs.asdict()))
        meta = root[META_GROUP]
        # Per-episode metadata is tiny, so keep it in memory for episode_info/summary.
        self._meta: dict[str, np.ndarray] = {k: np.asarray(a[...]) for k, a in meta.arrays() if k != EPISODE_ENDS}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ZarrDataset:
        """Open and validate a store; raise DataError naming the path and the problem."""
        path = Path(path)
        root = _open_root(path)
        episode_ends = _read_episode_ends(path, root)
        data = _require_group(path, root, DATA_GROUP)
        shapes = {key: tuple(arr.shape) for key, arr in data.arrays()}
        _validate_layout(str(path), shapes, int(episode_ends[-1]))
        n_episodes = episode_ends.size
        for key, arr in root[META_GROUP].arrays():
            if key != EPISODE_ENDS and (arr.ndim == 0 or arr.shape[0] != n_episodes):
                raise DataError(
                    f"{path}: key '{META_GROUP}/{key}' has shape {tuple(arr.shape)} but expected first dim {n_episodes} (one per episode)"
                )
        return cls(path, root, data, episode_ends)

    # ----- basic properties -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """Location of the store."""
        return self._path

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return int(self._episode_ends.size)

    @property
    def n_steps(self) -> int:
        """Total steps over all episodes (first dim of every data array)."""
        return int(self._episode_ends[-1])

    @property
    def episode_ends(self) -> np.ndarray:
        """Exclusive end index of every episode (int64 copy)."""
        return self._episode_ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        """Steps in every episode (int64)."""
        return np.diff(self._episode_ends, prepend=0)

    @property
    def keys(self) -> list[str]:
        """Data keys, sorted."""
        return list(self._arrays)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every data array."""
        return {key: tuple(arr.shape) for key, arr in self._arrays.items()}

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        """Numpy dtype of every data array."""
        return {key: np.dtype(arr.dtype) for key, arr in self._arrays.items()}

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes (a copy; empty for plain DP3 stores)."""
        return json.loads(json.dumps(self._attrs))

    @property
    def tasks(self) -> list[str]:
        """Task names from the ``tasks`` attribute (empty when not recorded)."""
        return list(self._attrs.get("tasks", []))

    def __contains__(self, key: str) -> bool:
        return key in self._arrays

    def __repr__(self) -> str:
        return f"ZarrDataset({str(self._path)!r}, episodes={self.n_episodes}, steps={self.n_steps}, keys={self.keys})"

    # ----- episodes ---------------------------------------------------------------------------

    def _episode_index(self, episode: int) -> int:
        """Validate an episode index, allowing Python-style negatives."""
        if not -self.n_episodes <= episode < self.n_episodes:
            raise DataError(f"{self._path}: episode {episode} does not exist; the store has {self.n_episodes} episodes")
        return int(episode) % self.n_episodes

    def episode_slice(self, episode: int) -> slice:
        """Global step range of an episode, e.g. ``slice(61, 118)``."""
        i = self._episode_index(episode)
        start = 0 if i == 0 else int(self._episode_ends[i - 1])
        return slice(start, int(self._episode_ends[i]))

    def episode_of_step(self, t: int) -> int:
        """Index of the episode containing global step ``t``."""
        if not 0 <= t < self.n_steps:
            raise DataError(f"{self._path}: step {t} is out of range; the store has {self.n_steps} steps")
        return int(np.searchsorted(self._episode_ends, t, side="right"))

    def _task_index(self, episode: int) -> int | None:
        """Task index of an episode from meta/episode_task, or 0 for single-task stores."""
        if "episode_task" in self._meta:
            return int(self._meta["episode_task"][episode])
        # Single-task collections may omit episode_task; the one task then applies to all episodes.
        return 0 if len(self.tasks) == 1 else None

    def episode_info(self, episode: int) -> dict[str, Any]:
        """Task, task index, seed, instruction, start, end and length of an episode (None if unknown)."""
        i = self._episode_index(episode)
        sl = self.episode_slice(i)
        task_index = self._task_index(i)
        tasks = self.tasks
        task = tasks[task_index] if task_index is not None and 0 <= task_index < len(tasks) else None
        instructions = self._attrs.get("instructions") or {}
        seed = int(self._meta["episode_seed"][i]) if "episode_seed" in self._meta else None
        return {
            "episode": i,
            "task": task,
            "task_index": task_index,
            "seed": seed,
            "instruction": instructions.get(task) if task is not None else None,
            "start": sl.start,
            "end": sl.stop,
            "length": sl.stop - sl.start,
        }

    # ----- reading ----------------------------------------------------------------------------

    def _array(self, key: str) -> zarr.Array:
        """The zarr array of a data key; accepts 'data/<key>' too."""
        name = key.removeprefix(f"{DATA_GROUP}/")
        if name not in self._arrays:
            raise DataError(f"{self._path}: no key '{DATA_GROUP}/{name}'; available keys: {self.keys}")
        return self._arrays[name]

    def read(self, key: str, sl: slice | int | np.ndarray = slice(None)) -> np.ndarray:
        """Read a data key over a time slice, a single step or an integer index array."""
        arr = self._array(key)
        if isinstance(sl, (np.ndarray, list)):
            return np.asarray(arr.oindex[np.asarray(sl, dtype=np.int64)])
        return np.asarray(arr[sl])

    def load(self, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Whole arrays in memory for the given keys (all keys when None)."""
        wanted = self.keys if keys is None else list(keys)
        return {key.removeprefix(f"{DATA_GROUP}/"): self.read(key) for key in wanted}

    def point_cloud_xyz(self, sl: slice | int | np.ndarray = slice(None)) -> np.ndarray:
        """Only the xyz channels of point_cloud, dropping DP3's rgb."""
        return np.ascontiguousarray(self.read("point_cloud", sl)[..., :3])

    def check_finite(self, key: str) -> None:
        """Raise DataError naming the key and the first index holding NaN/inf."""
        arr = self._array(key)
        if not np.issubdtype(np.dtype(arr.dtype), np.floating):
            return
        # Read chunk by chunk so multi-GB image stores do not have to fit in memory.
        block = max(1, int(arr.chunks[0]))
        for start in range(0, arr.shape[0], block):
            values = np.asarray(arr[start : start + block])
            index = _first_non_finite(values)
            if index is not None:
                _raise_non_finite(str(self._path), key, (index[0] + start, *index[1:]), values[index])

    # ----- flow -------------------------------------------------------------------------------

    def _require_flow_keys(self) -> None:
        """Flow needs points, their body ids and every body's pose."""
        for key in FLOW_KEYS:
            if key not in self._arrays:
                raise DataError(
                    f"{self._path}: flow needs key '{DATA_GROUP}/{key}' which is missing; available keys: {self.keys}"
                )

    def _raise_if_nan_flow(self, flow: np.ndarray, bodies: np.ndarray, steps: str) -> None:
        """NaN flow means points lie on a body whose pose is NaN padding: a collector bug."""
        bad = np.isnan(flow).any(axis=-1)
        if bad.any():
            ids = sorted({int(b) for b in np.asarray(bodies)[bad]})
            raise DataError(
                f"{self._path}: points lie on body ids {ids} whose pose in 'data/body_pos'/'data/body_quat' is NaN at {steps}"
            )

    def flow(self, t: int, k: int) -> np.ndarray:
        """Flow (N, 3) of the points observed at global step t, moved with their bodies to t+k."""
        self._require_flow_keys()
        episode = self.episode_of_step(t)
        sl = self.episode_slice(episode)
        if not sl.start <= t + k < sl.stop:
            raise DataError(
                f"{self._path}: step t+k = {t}{k:+d} = {t + k} leaves episode {episode} "
                f"(steps {sl.start}..{sl.stop - 1}) that contains t"
            )
        bodies = self.read("point_body", t)
        pos = self.read("body_pos", np.array([t, t + k]))
        quat = self.read("body_quat", np.array([t, t + k]))
        flow = point_flow(self.point_cloud_xyz(t), bodies, pos[0], quat[0], pos[1], quat[1])
        self._raise_if_nan_flow(flow, bodies, f"step {t} or {t + k}")
        return flow

    def episode_flow(self, episode: int, k: int) -> np.ndarray:
        """Flows (L - |k|, N, 3) for every step t of an episode whose t+k stays in the episode.

        Row j is the flow from the episode's j-th valid t: t = start + j for k >= 0 and
        t = start + |k| + j for k < 0.
        """
        self._require_flow_keys()
        sl = self.episode_slice(episode)
        length = sl.stop - sl.start
        if abs(k) >= length:
            raise DataError(f"{self._path}: offset k={k} leaves episode {episode} of length {length}; expected |k| < {length}")
        src = np.arange(max(0, -k), length - max(0, k))
        dst = src + k
        points = self.point_cloud_xyz(sl)
        bodies = self.read("point_body", sl)
        pos = self.read("body_pos", sl)
        quat = self.read("body_quat", sl)
        flow = point_flow(points[src], bodies[src], pos[src], quat[src], pos[dst], quat[dst])
        self._raise_if_nan_flow(flow, bodies[src], f"some step of episode {episode}")
        return flow

    # ----- summaries --------------------------------------------------------------------------

    def nbytes_stored(self) -> int:
        """Bytes the store occupies on disk (sum of file sizes)."""
        total = 0
        for dirpath, _, filenames in os.walk(self._path):
            total += sum(os.path.getsize(os.path.join(dirpath, name)) for name in filenames)
        return total

    def task_counts(self) -> dict[str, int]:
        """Episodes per task name; episodes without a known task count under 'unknown'."""
        counts = Counter(self.episode_info(i)["task"] or "unknown" for i in range(self.n_episodes))
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, Any]:
        """JSON-ready overview: episodes, steps, keys, tasks, storage and selected attributes."""
        lengths = self.episode_lengths
        stored = self.nbytes_stored()
        return {
            "path": str(self._path),
            "episodes": self.n_episodes,
            "steps": self.n_steps,
            "episode_length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())},
            "keys": {key: {"shape": list(shape), "dtype": str(self.dtypes[key])} for key, shape in self.shapes.items()},
            "tasks": self.task_counts(),
            "bytes_stored": stored,
            "bytes_per_step": stored / self.n_steps,
            "attrs": {name: self._attrs[name] for name in SUMMARY_ATTRS if name in self._attrs},
        }

    def format_summary(self) -> str:
        """Human-readable multi-line summary for ``dynarep info``."""
        s = self.summary()
        version = s["attrs"].get("dynarep_format")
        origin = f"dynarep format {version}" if version is not None else "no dynarep_format attribute (DP3 layout)"
        length = s["episode_length"]
        lines = [
            f"{s['path']}  ({origin})",
            f"episodes: {s['episodes']}  steps: {s['steps']}  "
            f"episode length: min {length['min']} / mean {length['mean']:.1f} / max {length['max']}",
            f"stored: {_human_bytes(s['bytes_stored'])} ({_human_bytes(s['bytes_per_step'])} per step)",
            "tasks: " + ", ".join(f"{name} ({n})" for name, n in s["tasks"].items()),
            "keys:",
        ]
        width = max(len(key) for key in s["keys"])
        for key, info in s["keys"].items():
            lines.append(f"  {key:<{width}}  {str(tuple(info['shape'])):<22} {info['dtype']}")
        lines.extend(self._format_attr_lines(s["attrs"]))
        return "\n".join(lines)

    @staticmethod
    def _format_attr_lines(attrs: Mapping[str, Any]) -> list[str]:
        """One line per interesting root attribute."""
        lines = []
        cameras = attrs.get("cameras") or []
        if cameras:
            described = [f"{c.get('name', '?')} ({c.get('width', '?')}x{c.get('height', '?')})" for c in cameras]
            lines.append("cameras: " + ", ".join(described))
        if "crop" in attrs:
            crop = attrs["crop"]
            lines.append(f"crop: low {crop.get('low')} high {crop.get('high')}")
        for name in ("sampling", "versions", "collection"):
            if name in attrs:
                lines.append(f"{name}: {json.dumps(attrs[name], sort_keys=True)}")
        return lines


@dataclass
class Demonstrations:
    """Windows for training and validation, from one or several stores."""

    arrays: dict[str, np.ndarray]
    episode_ends: np.ndarray
    sources: list[dict] = field(default_factory=list)


def load_demonstrations(paths: Iterable[str | os.PathLike[str]], keys: tuple[str, ...]) -> Demonstrations:
    """Concatenate several stores (episodes stay whole) after checking they agree on shapes."""
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    ends, offset, sources = [], 0, []
    for path in paths:
        ds = ZarrDataset.open(path)
        missing = [k for k in keys if k not in ds]
        if missing:
            raise DataError(f"{path}: has no {missing}; policy training needs {list(keys)} (found {ds.keys})")
        for key in keys:
            arr = ds.read(key).astype(np.float32)
            if arrays[key] and arrays[key][0].shape[1:] != arr.shape[1:]:
                raise DataError(f"{path}: '{key}' has shape {arr.shape} but earlier datasets have {arrays[key][0].shape}")
            if key in ("point_cloud", "state", "action") and not np.isfinite(arr).all():
                ds.check_finite(key)
            arrays[key].append(arr)
        ends.append(ds.episode_ends + offset)
        offset += ds.n_steps
        sources.append({"path": str(Path(path).resolve()), "episodes": ds.n_episodes, "steps": ds.n_steps,
                        "tasks": [t for t in ds.tasks if t], "observation": (ds.attrs.get("config") or {}).get("obs")})
    return Demonstrations({k: np.concatenate(v) for k, v in arrays.items()}, np.concatenate(ends), sources)
