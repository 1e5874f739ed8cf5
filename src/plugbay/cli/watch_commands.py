"""``plugbay watch [PATH...]``: a plugin author's edit-save loop.

Loads the plugins in a throwaway host, then reloads each one when its files change
(:meth:`plugbay.Host.watch`) and prints one line per reload: ``reloaded ID in N ms`` or
the error (the previous version keeps running). Runs until interrupted (Ctrl-C), or
until ``--count`` reloads happened.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from ..host import Host
    from ..reload import ReloadResult
    from .app import Settings

__all__ = ["add_watch_commands", "watch"]


def add_watch_commands(
    group: click.Group,
    options: Callable[[Any], Any],
    run: Callable[[click.Context, Callable[[Settings], int | None]], None],
) -> None:
    """Register ``watch`` on ``group`` (``options`` and ``run`` as app.py passes them)."""

    @group.command("watch")
    @click.argument("paths", nargs=-1, type=click.Path(exists=True, file_okay=False))
    @click.option(
        "--count",
        type=click.IntRange(min=1),
        help="Exit after this many reloads (default: run until interrupted).",
    )
    @options
    @click.pass_context
    def watch_command(ctx: click.Context, paths: tuple[str, ...], count: int | None) -> None:
        """Load plugins and reload them on every save, printing what happened.

        Each PATH is a plugin folder or a folder of plugin folders; without PATH, every
        plugin of the home is loaded and watched. Exit with Ctrl-C.
        """
        run(ctx, lambda s: watch(s, [Path(p) for p in paths], count=count))


def watch(settings: Settings, paths: list[Path], *, count: int | None = None) -> int:
    """Load, watch and report until interrupted or ``count`` reloads; the exit code."""
    from ..errors import PluginError

    if not settings.verbose:
        import logging

        # Each reload is printed on stdout already; its log line would say it twice.
        logging.getLogger("plugbay.reload").setLevel(logging.ERROR)
    host = settings.make_host()
    wanted = _add_paths(host, paths)
    host.start()
    ids = [
        p.id for p in host.load_plan.order if not wanted or os.path.abspath(p.record.path) in wanted
    ]
    for rejected in host.load_plan.rejected.values():
        if not wanted or rejected.plugin_id in _ids_in(host, wanted):
            _emit(settings, {"event": "rejected", "plugin": rejected.plugin_id}, rejected.reason)
    for plugin_id in ids:
        try:
            host.load(plugin_id)
            _import_contributions(host, plugin_id)
        except PluginError as exc:
            _emit(settings, {"event": "failed", "plugin": plugin_id}, str(exc))
            continue
        ms = sum(next(s for s in host.status() if s.id == plugin_id).timings_ms.values())
        _emit(
            settings, {"event": "loaded", "plugin": plugin_id}, f"loaded {plugin_id} in {ms:.0f} ms"
        )
    done = threading.Event()
    seen = [0]

    def report(result: ReloadResult) -> None:
        doc = {
            "event": "reloaded" if result.ok else "reload-failed",
            "plugin": result.plugin_id,
            "plugins": list(result.plugins),
            "ms": round(result.duration_ms, 1),
        }
        _emit(settings, doc, result.message)
        seen[0] += 1
        if count is not None and seen[0] >= count:
            done.set()

    # SIGTERM ends the loop as Ctrl-C does: plugins are stopped, children reaped.
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        with host.watch(report, step_ms=50):
            where = ", ".join(str(p) for p in paths) or str(host.home)
            _emit(
                settings,
                {"event": "watching", "plugins": ids},
                f"watching {where} (Ctrl-C to stop)",
            )
            try:
                while not done.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        host.stop()
    return 0


def _import_contributions(host: Host, plugin_id: str) -> None:
    """Import every contribution of the plugin now, not on first use: an author sees a
    broken module at once, and a reload checks (and restores) all of them."""
    for handle in host.registry.handles(all_providers=True):
        if handle.plugin_id == plugin_id and handle.kind != "hook":
            handle.get()


def _add_paths(host: Host, paths: list[Path]) -> set[str]:
    """Search ``paths`` (a plugin folder is found through its parent); the plugin folders
    or search folders asked for, absolute (empty: every plugin)."""
    from ..manifest import manifest_in

    wanted: set[str] = set()
    for path in paths:
        folder = path.resolve()
        if manifest_in(folder) is not None:
            host.add_search_path(folder.parent)
            wanted.add(str(folder))
        else:
            host.add_search_path(folder)
            wanted.update(str(child) for child in folder.iterdir() if child.is_dir())
    return wanted


def _ids_in(host: Host, folders: set[str]) -> set[str]:
    return {r.id for r in host.catalog.records if os.path.abspath(r.path) in folders}


def _emit(settings: Settings, doc: dict[str, Any], text: str | None) -> None:
    """One event: a JSON line with ``--json`` (a stream, one object per line), else text."""
    if settings.json:
        import msgspec

        if text is not None:
            doc = {**doc, "message": text}
        sys.stdout.buffer.write(msgspec.json.encode(doc) + b"\n")
    elif not settings.quiet or doc["event"] in ("failed", "reload-failed", "rejected"):
        render.line(text or "")
    sys.stdout.flush()
