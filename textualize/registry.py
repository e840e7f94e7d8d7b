"""Name -> backend registries.

Backends register themselves with a decorator in their own module, so adding a backend touches
one file. Backend modules keep heavy imports inside functions; the registry imports every module
of its package on first lookup (``discover``) so that `--asr NAME` finds the class.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class UnknownBackendError(KeyError):
    """Raised with the list of known names, so a typo in a flag is easy to fix."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str, packages: tuple[str, ...]):
        self.kind = kind
        self._packages = packages
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} backend {name!r} registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def discover(self) -> None:
        if self._discovered:
            return
        for package_name in self._packages:
            package = importlib.import_module(package_name)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{package_name}.{info.name}")
        self._discovered = True

    def get(self, name: str) -> T:
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownBackendError(
                f"unknown {self.kind} backend {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)


ASR_BACKENDS: Registry = Registry("ASR", ("textualize.audio_cues",))
PROSODY_BACKENDS: Registry = Registry("prosody", ("textualize.audio_cues",))
AU_BACKENDS: Registry = Registry("AU", ("textualize.visual_cues",))
FACE_DETECTORS: Registry = Registry("face detector", ("textualize.visual_cues",))
CORPORA: Registry = Registry("dataset", ("textualize.corpora",))
STREAM_EXTRACTORS: Registry = Registry("stream", ("textualize.streams",))
