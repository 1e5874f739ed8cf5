"""What a Python plugin receives from its host: ``register(api)`` and ``init(ctx)``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["HostInfo", "PluginApi", "PluginContext"]


class HostInfo(msgspec.Struct, frozen=True):
    """Facts about the host a plugin runs in."""

    app: str
    api_version: str | None
    home: Path


class PluginApi:
    """Handed to ``register(api)``: lets a plugin add contributions at run time."""

    def __init__(
        self,
        plugin_id: str,
        host: HostInfo,
        add: Callable[[str, str, Any, str, str | None], None],
    ) -> None:
        self.plugin_id = plugin_id
        self.host = host
        self._add = add

    def add(
        self, kind: str, name: str, obj: Any, *, summary: str = "", help: str | None = None
    ) -> None:
        """Contribute ``obj`` as ``name`` of ``kind`` (a kind the host declares)."""
        self._add(kind, name, obj, summary, help)


class PluginContext(msgspec.Struct, frozen=True):
    """Handed to ``init(ctx)``: config, host facts, a logger and state shared between plugins."""

    plugin_id: str
    version: str
    path: Path
    config: Mapping[str, Any]
    host: HostInfo
    logger: logging.LoggerAdapter[logging.Logger]
    shared: dict[str, Any]
