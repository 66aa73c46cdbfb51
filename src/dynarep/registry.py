"""A name → builder table; encoders, policies and pre-training objectives each keep one."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from dynarep.errors import ConfigError

B = TypeVar("B", bound=Callable)


class Registry(Generic[B]):
    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, B] = {}

    def register(self, name: str) -> Callable[[B], B]:
        """Decorator: make `builder` available under `name`."""

        def add(builder: B) -> B:
            if name in self._builders:
                raise ConfigError(f"{self.kind} '{name}' is registered twice")
            self._builders[name] = builder
            return builder

        return add

    def get(self, name: str) -> B:
        if name not in self._builders:
            raise ConfigError(f"unknown {self.kind} '{name}'; registered: {sorted(self._builders)}")
        return self._builders[name]

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def names(self) -> list[str]:
        return sorted(self._builders)
