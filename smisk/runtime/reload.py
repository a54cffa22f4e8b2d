"""Fresh imports of the application's code, and the ``--reload`` file watcher.

Rules: only the supervisor (the parent process) uses this, between its select() calls: the
watcher compares file mtimes when the supervisor's timer asks, never in a loop of its own. A
fresh import forgets only the application's own modules (not the standard library, installed
packages or smisk), so classes the server already holds stay the same objects.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from collections.abc import Iterable
from types import ModuleType
from typing import Any

__all__ = ["AppImporter", "ImportFailed", "ModuleWatcher"]

POLL_INTERVAL = 1.0  # seconds between mtime checks: quick enough for an edit-reload loop


class ImportFailed(Exception):
    """MODULE:ATTR could not be imported or resolved; the message is one line."""


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(os.path.dirname(os.path.abspath(__file__)))  # smisk itself
    roots.update({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return tuple(os.path.join(os.path.abspath(root), "") for root in roots)


def module_file(module: ModuleType) -> str | None:
    """The source file of ``module`` when it is application code (not a library), else None."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return None
    path = os.path.abspath(path)
    return None if path.startswith(_library_roots()) else path


class AppImporter:
    """Resolves ``MODULE:ATTR`` to its target (class, instance or factory), freshly on request."""

    def __init__(self, spec: str) -> None:
        module_name, sep, attr = spec.partition(":")
        if not sep or not module_name or not attr:
            raise ImportFailed(f"expected MODULE:ATTR, got {spec!r}")
        self.spec = spec
        self.module_name = module_name
        self.attr = attr
        self.app_modules: dict[str, ModuleType] = {}
        self._baseline = set(sys.modules)

    def load(self) -> Any:
        """Import the module (first time) and return the attribute."""
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(self.module_name)
        except Exception as error:
            raise ImportFailed(f"cannot import {self.module_name!r}: {_one_line(error)}") from None
        self._remember_app_modules()
        try:
            return getattr(module, self.attr)
        except AttributeError:
            raise ImportFailed(
                f"module {self.module_name!r} has no attribute {self.attr!r}"
            ) from None

    def reload(self) -> Any:
        """Forget the application's modules and import them again. On failure the previous
        modules are restored (so the running code keeps working) and ImportFailed is raised."""
        previous = {name: sys.modules.pop(name) for name in list(self.app_modules)}
        importlib.invalidate_caches()
        try:
            return self.load()
        except ImportFailed:
            for name in set(sys.modules) - self._baseline:
                if name not in previous and module_file(sys.modules[name]) is not None:
                    del sys.modules[name]
            sys.modules.update(previous)
            self.app_modules = previous
            raise

    def _remember_app_modules(self) -> None:
        self.app_modules = {
            name: module
            for name, module in list(sys.modules.items())
            if name not in self._baseline and module_file(module) is not None
        }

    def files(self) -> list[str]:
        """Source files of the application's modules (what ``--reload`` watches)."""
        paths = (module_file(module) for module in self.app_modules.values())
        return sorted({path for path in paths if path is not None})


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if not isinstance(error, ImportError) else str(error)
    if isinstance(error, SyntaxError) and error.filename:
        text = f"SyntaxError: {error.msg} ({error.filename}, line {error.lineno})"
    return " ".join(text.split())


class ModuleWatcher:
    """Remembers files' mtimes; ``changed()`` reports files modified (or removed) since."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.mtimes: dict[str, float | None] = {}
        self.watch(paths)

    def watch(self, paths: Iterable[str]) -> None:
        """Replace the watched set with ``paths`` and their current mtimes."""
        self.mtimes = {path: _mtime(path) for path in paths}

    def changed(self) -> list[str]:
        """Files whose mtime differs from the remembered one (remembering the new one)."""
        changed = []
        for path, before in self.mtimes.items():
            now = _mtime(path)
            if now != before:
                self.mtimes[path] = now
                changed.append(path)
        return changed


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None
