"""Typed dataclass configs: JSON save/load, so that every output carries the settings that made it.

Command-line parsing of the same dataclasses is done by `tyro` (see cli.py); presets are plain
functions that return configs.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from dynarep.errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (nested) dataclass; paths and tuples become strings and lists."""

    def convert(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {str(k): convert(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return convert(cfg)


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Rebuild a dataclass from `to_dict` output, naming any unknown key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls, include_extras=False)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {k: coerce_value(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def coerce_value(tp: Any, v: Any, where: str) -> Any:
    """`v` (as JSON would hold it) converted to the annotated type `tp`: paths, tuples, nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return coerce_value(typing.get_args(tp)[0], v, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if v is None else coerce_value(args[0], v, where)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, v, where)
    if tp is Path:
        return Path(v)
    if origin is tuple:
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(coerce_value(inner, x, where) for x in v)
    return v


def save_json(obj: Any, path: Path) -> None:
    """Atomic JSON write: a reader never sees half a file."""
    from dynarep.fileio import atomic_write_bytes

    atomic_write_bytes(Path(path), json.dumps(to_dict(obj) if dataclasses.is_dataclass(obj) else obj, indent=2).encode())


def load_json(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
