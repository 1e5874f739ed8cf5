"""``plugbay index build``: a static index of a folder of bundles (docs/index.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from .app import Settings

Run = Callable[[click.Context, Callable[["Settings"], "int | None"]], None]


def add_index_commands(group: click.Group, options: Callable[[Any], Any], run: Run) -> None:
    """The ``index`` group and its ``build`` command."""

    @group.group("index")
    @options
    def index() -> None:
        """Static indexes: install by name from any static HTTP server."""

    @index.command("build")
    @click.argument("folder", type=click.Path(file_okay=False))
    @click.option(
        "-o",
        "--out",
        type=click.Path(),
        help="The index file to write (default FOLDER/index.json; a folder: FOLDER/index.json "
        "in it). It must be in FOLDER or above it.",
    )
    @click.option(
        "--sharded",
        is_flag=True,
        help="Write a small root and one shard per plugin (for large indexes).",
    )
    @options
    @click.pass_context
    def build(ctx: click.Context, folder: str, out: str | None, sharded: bool) -> None:
        """Write the index of every bundle (*.tar.gz) in FOLDER."""
        run(ctx, lambda s: build_index(s, folder, out, sharded=sharded))


def build_index(settings: Settings, folder: str, out: str | None, *, sharded: bool) -> int:
    from ..store.indexer import build_index as build
    from .store_commands import _progress

    with _progress(settings) as progress:
        report = build(Path(folder), Path(out) if out else None, sharded=sharded, progress=progress)
    if settings.json:
        render.emit_json(
            {
                "index": str(report.path),
                "shards": str(report.shards) if report.shards else None,
                "plugins": report.plugins,
                "versions": report.versions,
            }
        )
    elif not settings.quiet:
        shards = f", one shard each in {report.shards}" if report.shards else ""
        render.line(
            f"wrote {report.path}: {report.plugins} plugin(s), {report.versions} version(s){shards}"
        )
    return 0
