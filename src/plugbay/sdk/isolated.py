"""Serve an ordinary Python plugin in a process of its own: ``python -m plugbay.sdk.isolated``.

A plugin with ``runtime = "python"`` and ``isolation = "process"`` runs in its own
virtual environment, where only the standard library, its ``python-dependencies``,
``plugbay.sdk`` and ``plugbay.protocol`` exist. The host starts this module there with
``PLUGBAY_PLUGIN_DIR`` naming the plugin's folder. It reads the manifest
(``MANIFEST.json``, else ``plugin.toml`` or ``plugin.json``; YAML only if PyYAML is
installed), puts the folder first on ``sys.path`` and serves the plugin with the
lifecycle of in-process plugins (DESIGN §5):

- ``plugbay/ready`` lists the contributions the manifest declares, before any plugin
  code is imported (so the handshake is fast and an import error becomes a clear
  ``initialize`` error instead of a crash).
- ``initialize`` imports the plugin's ``entry`` (a class is instantiated with no
  arguments), calls ``register(api)`` — contributions it adds are announced in the
  answer to ``initialize`` — imports the hook implementations, then calls
  ``init(ctx)`` and ``start()``.
- ``invoke`` imports a contribution's ``entry`` on its first call (a class is
  instantiated once); an entry-less hook is the plugin object's method of that name.
- ``health`` calls ``health()``; ``shutdown`` (or the end of stdin, or the host's death)
  calls ``stop()``. Every method is optional and may be ``async``.

The standard library's ``logging`` is forwarded to the host (``ctx.logger`` too).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ..protocol import LOG_LEVEL_ENV, PLUGIN_DIR_ENV
from ._manifest import identity, read_manifest
from .plugin import HostInfo, Plugin, _Contribution, health_answer
from .server import SdkError, settle

if TYPE_CHECKING:
    import logging
    from pathlib import Path

__all__ = ["Context", "IsolatedPlugin", "PluginApi", "import_entry", "main"]


class PluginApi:
    """Handed to ``register(api)``: add contributions at run time, as in-process."""

    def __init__(self, plugin: IsolatedPlugin, host: HostInfo) -> None:
        self.plugin_id = plugin.id
        self.host = host
        self._plugin = plugin

    def add(
        self, kind: str, name: str, obj: Any, *, summary: str = "", help: str | None = None
    ) -> None:
        """Contribute ``obj`` as ``name`` of ``kind``; ``help`` is accepted and unused here."""
        self._plugin.supply(kind, name, obj, summary)


class Context:
    """Handed to ``init(ctx)``: what in-process plugins get, within this process.

    ``shared`` is a dict private to this process: an isolated plugin shares no objects
    with other plugins. ``grants`` is what the user granted the plugin.
    """

    __slots__ = ("config", "grants", "host", "logger", "path", "plugin_id", "shared", "version")

    def __init__(
        self,
        *,
        plugin_id: str,
        version: str,
        path: Path,
        config: dict[str, Any],
        host: HostInfo,
        logger: logging.Logger,
        grants: dict[str, Any],
    ) -> None:
        self.plugin_id = plugin_id
        self.version = version
        self.path = path
        self.config = config
        self.host = host
        self.logger = logger
        self.shared: dict[str, Any] = {}
        self.grants = grants

    def __repr__(self) -> str:
        return f"Context({self.plugin_id} {self.version} at {self.path})"


class IsolatedPlugin(Plugin):
    """A plugin described by its manifest, its code imported from its folder on demand."""

    def __init__(self, folder: str) -> None:
        _, manifest = read_manifest(folder)
        plugin_id, version = identity(manifest)
        super().__init__(plugin_id, version)
        self.dir = self._folder = folder
        table = manifest.get("plugin") or {}
        entry = table.get("entry")
        self._entry: str | None = entry if isinstance(entry, str) else None
        self._obj: Any = None
        contributes = manifest.get("contributes") or {}
        if not isinstance(contributes, dict):
            raise SdkError("the manifest's [contributes] table is not a table")
        for kind, entries in contributes.items():
            for item in entries if isinstance(entries, list) else ():
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise SdkError(f"a {kind} contribution in the manifest has no name")
                name = item["name"]
                load = self._loader(kind, name, item.get("entry"))
                self._add_lazy(kind, name, load, str(item.get("summary", "")))
        self.on_initialize(self._start)
        self.on_health(self._health_of_object)
        self.on_shutdown(self._stop)

    def supply(self, kind: str, name: str, obj: Any, summary: str) -> None:
        """``api.add()``: supply a declared contribution's object, or add a new one."""
        with self._lock:
            existing = self._contributions.get(kind, {}).get(name)
            if existing is not None and existing._load is not None:
                replacement = _Contribution(kind, name, obj, summary=summary or existing.summary)
                replacement.announced = existing.announced
                self._contributions[kind][name] = replacement
                return
        self.add(kind, name, obj, summary=summary)

    def _loader(self, kind: str, name: str, entry: Any) -> Callable[[], Any]:
        if isinstance(entry, str):
            return lambda: import_entry(entry)

        def from_object() -> Any:
            value = getattr(self._obj, name, None) if self._obj is not None else None
            if value is None:
                if kind == "hook":
                    raise SdkError(
                        f"hook {name} has no entry in the manifest and the plugin object has "
                        f"no method {name}"
                    )
                raise SdkError(
                    f"{kind} {name!r} has no entry in the manifest and the plugin's "
                    "register(api) did not add it"
                )
            return value

        return from_object

    def _start(self, config: dict[str, Any], host: HostInfo) -> None:
        import logging
        from pathlib import Path

        level = os.environ.get(LOG_LEVEL_ENV, "debug").upper()
        self.forward_logging(
            None, level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "DEBUG"
        )
        obj = import_entry(self._entry) if self._entry else None
        if isinstance(obj, type):
            obj = obj()
        self._obj = obj
        if obj is None:
            self._bind_hooks()
            return
        register = getattr(obj, "register", None)
        if register is not None:
            settle(register(PluginApi(self, host)))
        self._bind_hooks()
        init = getattr(obj, "init", None)
        if init is not None:
            logger = logging.getLogger(f"plugbay.plugin.{self.id}")
            path = Path(self._folder)  # where its code comes from
            ctx = Context(
                plugin_id=self.id,
                version=self.version,
                path=path,
                config=config,
                host=host,
                logger=logger,
                grants=self.grants,
            )
            settle(init(ctx))
        start = getattr(obj, "start", None)
        if start is not None:
            settle(start())

    def _bind_hooks(self) -> None:
        """Import the hook implementations now, so a broken one fails the start (as in-process)."""
        for c in list(self._contributions.get("hook", {}).values()):
            c.resolve()

    def _health_of_object(self) -> dict[str, Any]:
        check = getattr(self._obj, "health", None)
        if check is None:
            return {"status": "ok"}
        return health_answer(settle(check()))

    def _stop(self) -> None:
        stop = getattr(self._obj, "stop", None)
        if stop is not None:
            settle(stop())


def import_entry(entry: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted, or absent for the module itself)."""
    module_name, _, attr = entry.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = getattr(obj, "__name__", type(obj).__name__)
            raise AttributeError(f"{owner!r} has no attribute {part!r} (entry {entry!r})") from None
    return obj


def main() -> NoReturn:
    """Serve the plugin in ``PLUGBAY_PLUGIN_DIR`` (default: the working folder)."""
    folder = os.path.abspath(os.environ.get(PLUGIN_DIR_ENV) or os.getcwd())
    try:
        plugin = IsolatedPlugin(folder)
    except SdkError as exc:
        sys.stderr.write(f"plugbay.sdk.isolated: {exc}\n")
        raise SystemExit(1) from None
    # Its own process: the plugin's top-level packages are importable as themselves.
    sys.path.insert(0, folder)
    plugin.run()


if __name__ == "__main__":
    main()
