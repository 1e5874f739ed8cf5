"""In-process Python plugins, each imported under a namespace of its own.

A plugin's folder is mounted as the package ``_plugbay_<runtime>.<key>`` (``key`` made from
its id and version, unique within the runtime), so two plugins — or two versions of one —
that ship the same top-level package names never collide, and ``sys.path`` is never
touched. Inside the plugin, absolute imports of its own top-level modules and packages
(``import acme_tool.util``) are redirected to its namespace by a per-plugin
``__import__``; relative imports work as usual. A folder counts as a package only if it
holds Python files, so a data folder named like a stdlib module (``email/``) does not
hide that module. ``importlib.import_module`` is not redirected: plugins should use
``import`` statements or relative names. Unloading removes every module under the
plugin's namespace from ``sys.modules``.

A plugin the store installed with Python dependencies has a private ``pip --target``
folder, ``<home>/pydeps/<id>/<version>/`` beside ``<home>/plugins/<ns>/<name>/<version>/``.
Its namespace then searches the plugin folder and that folder, in this order, and the
plugin's ``__import__`` also owns the top-level names found there: the plugin's
``import requests`` gets its own copy, under its namespace, and so do the absolute
imports inside those dependencies (their modules run with the plugin's ``__import__``
too). The host and other plugins keep seeing their own copies.

Built-in plugins (entry points, or registered in code) are ordinary installed packages
and are imported normally.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any

from ..discovery import PluginRecord

__all__ = ["PythonRuntime"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
# Process-wide on purpose: a runtime's namespace must never be reused, even by a runtime
# created after an earlier one was dropped without close() (id() values are recycled).
_RUNTIME_NUMBERS = itertools.count(1)


class _Mount:
    """What one loaded plugin owns: its namespace, folders and top-level names."""

    def __init__(self, prefix: str, folders: list[str], builtins_: dict[str, Any]) -> None:
        self.prefix = prefix
        self.folders = folders  # the plugin folder, then its private dependencies, if any
        self.builtins = builtins_


class _PluginLoader(importlib.abc.Loader):
    """Wraps the file loader so the module runs with its plugin's ``__import__``."""

    def __init__(self, inner: importlib.abc.Loader, mount: _Mount) -> None:
        self._inner = inner
        self._mount = mount

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = self._mount.builtins
        self._inner.exec_module(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, is_package…: tracebacks and inspect still work.
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds modules under this runtime's prefix, in the owning plugin's folders only."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.mounts: dict[str, _Mount] = {}
        self.lock = threading.Lock()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.root + "."):
            return None
        parts = fullname.split(".")
        if len(parts) < 3:
            return None  # the mount packages themselves are made by the runtime
        mount = self.mounts.get(".".join(parts[:2]))
        if mount is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path or mount.folders)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _PluginLoader(spec.loader, mount)
        return spec


class PythonRuntime:
    """Imports and unloads in-process Python plugins; one per Host."""

    def __init__(self) -> None:
        self._root = f"_plugbay_{next(_RUNTIME_NUMBERS)}"
        self._finder = _Finder(self._root)
        self._keys: dict[str, str] = {}
        root = types.ModuleType(self._root)
        root.__path__ = []
        root.__package__ = self._root
        sys.modules[self._root] = root
        sys.meta_path.insert(0, self._finder)

    def close(self) -> None:
        """Unload everything and remove this runtime's import hook."""
        for plugin_key in list(self._keys):
            self._purge(plugin_key)
        with self._finder.lock:  # and what a reload set aside, had it not finished
            for prefix in list(self._finder.mounts):
                self._forget(prefix)
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        sys.modules.pop(self._root, None)

    def prefix(self, record: PluginRecord) -> str | None:
        """The package name the plugin's folder is mounted as, or None if not loaded."""
        return self._keys.get(record.key)

    def import_entry(self, record: PluginRecord, entry: str) -> Any:
        """Import ``module:attr`` from the plugin and return the attribute (or module).

        A missing module or attribute raises ModuleNotFoundError or AttributeError with a
        message in the plugin's own terms (its module names and folder).
        """
        module_name, _, attr = entry.partition(":")
        prefix = ""
        if record.origin == "builtin":
            obj: Any = importlib.import_module(module_name)
        else:
            prefix = self._mount(record)
            try:
                obj = importlib.import_module(f"{prefix}.{module_name}")
            except ModuleNotFoundError as exc:
                if exc.name is None or not exc.name.startswith(prefix + "."):
                    raise  # something the plugin's code imports, not its own module
                own = exc.name[len(prefix) + 1 :]
                raise ModuleNotFoundError(
                    f"No module named {own!r} in the plugin folder {record.path} (entry {entry!r})",
                    name=own,
                ) from None
        for part in attr.split(".") if attr else ():
            try:
                obj = getattr(obj, part)
            except AttributeError:
                owner = getattr(obj, "__name__", type(obj).__name__).removeprefix(prefix + ".")
                raise AttributeError(
                    f"{owner!r} has no attribute {part!r} (entry {entry!r})"
                ) from None
        return obj

    def unload(self, record: PluginRecord) -> None:
        """Forget the plugin's modules; its next import runs its code afresh."""
        self._purge(record.key)

    def detach(self, record: PluginRecord) -> str | None:
        """Set the plugin's loaded modules aside for a hot reload; returns their namespace.

        They stay in ``sys.modules`` (code still running keeps importing from them), but
        the plugin's next import mounts it afresh under a new namespace and runs its
        code again. Pass the namespace to :meth:`reattach` (the reload failed) or
        :meth:`discard` (it succeeded). None if the plugin is not loaded.
        """
        with self._finder.lock:
            return self._keys.pop(record.key, None)

    def reattach(self, record: PluginRecord, prefix: str) -> None:
        """Make modules set aside by :meth:`detach` the plugin's own again (and forget any
        newer copy), so that importing its entry returns the old code without reading disk."""
        self._purge(record.key)
        with self._finder.lock:
            self._keys[record.key] = prefix

    def discard(self, prefix: str) -> None:
        """Forget modules set aside by :meth:`detach`."""
        with self._finder.lock:
            self._forget(prefix)

    def modules(self, record: PluginRecord) -> list[str]:
        """Names in ``sys.modules`` that belong to the plugin."""
        prefix = self._keys.get(record.key)
        if prefix is None:
            return []
        return [n for n in list(sys.modules) if n == prefix or n.startswith(prefix + ".")]

    def _mount(self, record: PluginRecord) -> str:
        with self._finder.lock:
            prefix = self._keys.get(record.key)
            if prefix is not None and prefix in sys.modules:
                return prefix
            if prefix is not None:  # its package was removed from sys.modules by someone else
                self._finder.mounts.pop(prefix, None)
            prefix = self._free_prefix(record)
            folders = [record.path]
            deps = _pydeps_folder(record)
            if deps is not None:
                folders.append(deps)
            package = types.ModuleType(prefix)
            package.__path__ = list(folders)
            package.__package__ = prefix
            package.__file__ = None
            owned = frozenset().union(*(_top_level_names(f) for f in folders))
            mount = _Mount(prefix, folders, _plugin_builtins(prefix, owned))
            self._finder.mounts[prefix] = mount
            self._keys[record.key] = prefix
            sys.modules[prefix] = package
            return prefix

    def _free_prefix(self, record: PluginRecord) -> str:
        # "a_b.c" and "a.b_c" sanitise alike: a number keeps their namespaces apart.
        base = f"{self._root}.{_UNSAFE.sub('_', f'{record.id}_{record.version}')}"
        prefix, number = base, 1
        while prefix in self._finder.mounts or prefix in sys.modules:
            number += 1
            prefix = f"{base}_{number}"
        return prefix

    def _purge(self, plugin_key: str) -> None:
        with self._finder.lock:
            prefix = self._keys.pop(plugin_key, None)
            if prefix is not None:
                self._forget(prefix)

    def _forget(self, prefix: str) -> None:
        """Drop a namespace's mount and modules (the caller holds the finder's lock)."""
        self._finder.mounts.pop(prefix, None)
        for name in [n for n in list(sys.modules) if n == prefix or n.startswith(prefix + ".")]:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()


def _pydeps_folder(record: PluginRecord) -> str | None:
    """The private dependencies folder of a version the store installed, if it has one.

    Mirrors :func:`plugbay.store.pydeps.pydeps_dir`: a version installed in
    ``<home>/plugins/<ns>/<name>/<version>`` has them in ``<home>/pydeps/<id>/<version>``.
    Hand-placed plugins, and plugins on other search paths, have none.
    """
    namespace, _, name = record.id.rpartition(".")
    version_dir = os.path.abspath(record.path)
    name_dir = os.path.dirname(version_dir)
    ns_dir = os.path.dirname(name_dir)
    plugins_dir = os.path.dirname(ns_dir)
    if (
        os.path.basename(version_dir) != record.version
        or os.path.basename(name_dir) != name
        or os.path.basename(ns_dir) != (namespace or "_")
        or os.path.basename(plugins_dir) != "plugins"
    ):
        return None
    folder = os.path.join(os.path.dirname(plugins_dir), "pydeps", record.id, record.version)
    return folder if os.path.isdir(folder) else None


def _top_level_names(folder: str) -> frozenset[str]:
    """Top-level modules and packages in ``folder`` (folders holding Python files).

    Extension modules (``name.cpython-311-x86_64-linux-gnu.so``) count as modules.
    """
    names = set()
    try:
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                if name.endswith(".py") and name[:-3].isidentifier():
                    names.add(name[:-3])
                elif (stem := _extension_stem(name)) is not None:
                    names.add(stem)
                elif name.isidentifier() and name != "__pycache__" and _holds_code(entry.path):
                    names.add(name)
    except OSError:
        return frozenset()  # an unreadable folder: its imports fail with a clear error later
    return frozenset(names)


def _extension_stem(name: str) -> str | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)].isidentifier():
            return name[: -len(suffix)]
    return None


def _holds_code(path: str, depth: int = 2) -> bool:
    """Whether ``path`` is a folder with Python files (checking ``depth`` levels down)."""
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except OSError:  # not a folder, or unreadable
        return False
    if any(
        (e.name.endswith(".py") or _extension_stem(e.name) is not None) and e.is_file()
        for e in entries
    ):
        return True
    return depth > 1 and any(
        e.is_dir() and e.name.isidentifier() and _holds_code(e.path, depth - 1) for e in entries
    )


def _plugin_builtins(prefix: str, owned: frozenset[str]) -> dict[str, Any]:
    real_import: Callable[..., Any] = builtins.__import__

    def plugin_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and name.partition(".")[0] in owned:
            module = real_import(f"{prefix}.{name}", globals, locals, fromlist, 0)
            if fromlist:
                return module
            return sys.modules[f"{prefix}.{name.partition('.')[0]}"]
        return real_import(name, globals, locals, fromlist, level)

    table = dict(builtins.__dict__)
    table["__import__"] = plugin_import
    return table
