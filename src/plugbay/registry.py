"""The registry: contributions by kind and name, as lazy handles.

A handle is added for every contribution a planned plugin declares in its manifest, so
listing and lookup never import plugin code. The first :meth:`Handle.get` asks the host
to load the plugin (and its dependencies) and imports the contribution's entry.

Name conflicts: when two plugins contribute the same kind and name, the copy from the
higher-precedence search path wins; between equal precedence, the plugin whose id sorts
first wins. Every contribution stays reachable by its qualified name ``plugin_id:name``,
and the conflict is reported as a problem. When the winner's plugin is unloaded, the next
one takes the name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec

from .discovery import Problem
from .errors import ContributionNotFound

__all__ = ["Handle", "Registry"]

_UNRESOLVED = object()


class Handle(msgspec.Struct, eq=False):
    """One contribution: what it is, who provides it, and (once loaded) the object."""

    kind: str
    name: str
    plugin_id: str
    summary: str = ""
    entry: str | None = None
    help: str | None = None
    precedence: int = 0
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    _value: Any = _UNRESOLVED
    _lock: threading.Lock = msgspec.field(default_factory=threading.Lock)
    _resolver: Callable[[Handle], Any] | None = None

    def __repr__(self) -> str:
        # The public fields only: not the lock, the resolver or the loaded object.
        shown = (f"{n}={getattr(self, n)!r}" for n in self.__struct_fields__ if n[0] != "_")
        return f"{type(self).__qualname__}({', '.join(shown)})"

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin_id}:{self.name}"

    @property
    def loaded(self) -> bool:
        return self._value is not _UNRESOLVED

    def get(self) -> Any:
        """The contribution's object, importing its plugin on first use (thread-safe)."""
        value = self._value
        if value is not _UNRESOLVED:
            return value
        with self._lock:
            if self._value is _UNRESOLVED:
                assert self._resolver is not None, "a handle without a value needs a resolver"
                self._value = self._resolver(self)
            return self._value


class Registry:
    """Contributions by kind and name; safe to use from many threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # kind -> name -> handles, the winner first.
        self._by_name: dict[str, dict[str, list[Handle]]] = {}

    def add(self, handle: Handle) -> Problem | None:
        """Add a handle; returns a problem if it collides with another plugin's name."""
        with self._lock:
            names = self._by_name.setdefault(handle.kind, {})
            handles = names.setdefault(handle.name, [])
            handles[:] = [h for h in handles if h.plugin_id != handle.plugin_id]
            handles.append(handle)
            handles.sort(key=lambda h: (-h.precedence, h.plugin_id))
            if len(handles) < 2:
                return None
            winner, losers = handles[0], handles[1:]
        others = ", ".join(h.plugin_id for h in losers)
        return Problem(
            "warning",
            "contribution.conflict",
            f"{handle.kind} {handle.name!r} is contributed by {winner.plugin_id} and {others}; "
            f"{winner.plugin_id} wins (higher search-path precedence, then plugin id); "
            f"use {losers[0].plugin_id}:{handle.name} for the other",
            plugin_id=handle.plugin_id,
        )

    def remove_plugin(self, plugin_id: str) -> list[Handle]:
        """Remove every contribution of one plugin; returns what was removed."""
        removed: list[Handle] = []
        with self._lock:
            for names in self._by_name.values():
                for name in list(names):
                    kept: list[Handle] = []
                    for h in names[name]:
                        (removed if h.plugin_id == plugin_id else kept).append(h)
                    if kept:
                        names[name] = kept
                    else:
                        del names[name]
        return removed

    def handle(self, kind: str, name: str) -> Handle:
        """The handle for ``name`` (or ``plugin_id:name``); ContributionNotFound if none."""
        with self._lock:
            names = self._by_name.get(kind, {})
            plugin_id, sep, bare = name.rpartition(":")
            if sep:
                for h in names.get(bare, ()):
                    if h.plugin_id == plugin_id:
                        return h
                # Suggest qualified names for a qualified name: the typo may be in either part.
                known = [h.qualified_name for handles in names.values() for h in handles]
            else:
                handles = names.get(name)
                if handles:
                    return handles[0]
                known = list(names)
        raise ContributionNotFound(kind, name, known)

    def get(self, kind: str, name: str) -> Any:
        """The object of a contribution (loads its plugin on first use)."""
        return self.handle(kind, name).get()

    def kinds(self) -> list[str]:
        with self._lock:
            return sorted(k for k, names in self._by_name.items() if names)

    def names(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(self._by_name.get(kind, {}))

    def handles(self, kind: str | None = None, *, all_providers: bool = False) -> list[Handle]:
        """Handles of one kind (or all), winners only unless ``all_providers``."""
        with self._lock:
            kinds = [kind] if kind is not None else sorted(self._by_name)
            out = []
            for k in kinds:
                for name in sorted(self._by_name.get(k, {})):
                    handles = self._by_name[k][name]
                    out.extend(handles if all_providers else handles[:1])
            return out
