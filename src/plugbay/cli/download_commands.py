"""``plugbay download SPEC… -d DIR``: bundles and a lock, to install elsewhere offline.

See :mod:`plugbay.store.download`; ``plugbay install -r DIR/plugbay.lock --offline``
installs what it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import render
from .options import index_option, requirements_option

if TYPE_CHECKING:
    from .app import Settings

__all__ = ["add_download_commands", "download"]

Run = Callable[[click.Context, Callable[["Settings"], "int | None"]], None]


def add_download_commands(group: click.Group, options: Callable[[Any], Any], run: Run) -> None:
    """Add ``download`` to ``group``; ``run`` runs a command body (app._run)."""

    @group.command("download")
    @click.argument("specs", nargs=-1)
    @click.option(
        "-d",
        "--dest",
        required=True,
        type=click.Path(file_okay=False),
        metavar="DIR",
        help="The folder to put the bundles and plugbay.lock in (made if missing).",
    )
    @requirements_option
    @index_option("download")
    @options
    @click.pass_context
    def download_(
        ctx: click.Context,
        specs: tuple[str, ...],
        dest: str,
        requirement_files: tuple[str, ...],
        indexes: tuple[str, ...],
    ) -> None:
        """Put plugins and all their dependencies in DIR as bundles, with a plugbay.lock:
        `plugbay install -r DIR/plugbay.lock --offline` installs them anywhere."""
        run(ctx, lambda s: download(s, list(specs), dest, list(requirement_files), list(indexes)))


def download(
    settings: Settings,
    specs: list[str],
    dest: str,
    requirement_files: list[str],
    indexes: list[str],
) -> int:
    from .store_commands import _indexed_store, _progress, requirements

    extra, lock = requirements(requirement_files, indexes)
    # -r LOCK: every plugin comes from the source the lock names, not from an index.
    with (
        _progress(settings) as progress,
        _indexed_store(settings, None if lock is not None else indexes, progress) as store,
    ):
        outcome = store.download(
            specs, Path(dest), requirements=extra, locked=lock, progress=progress
        )
    if settings.json:
        render.emit_json(
            {
                "folder": str(outcome.folder),
                "lock": str(outcome.lock),
                "bundles": [
                    {
                        "action": b.action,
                        "id": b.id,
                        "version": b.version,
                        "file": str(b.path),
                        "sha256": b.sha256,
                        "source": b.source,
                        "signer": b.signer,
                    }
                    for b in outcome.bundles
                ],
                "warnings": outcome.warnings,
            }
        )
        return 0
    if not settings.quiet:
        for bundle in outcome.bundles:
            if bundle.action != "keep" or settings.verbose:
                render.line(str(bundle))
        count = len(outcome.bundles)
        render.line(
            f"wrote {outcome.lock}: {count} plugin{'' if count == 1 else 's'}; install them "
            f"with: plugbay install -r {outcome.lock} --offline"
        )
    for warning in outcome.warnings:
        render.warning(warning)
    return 0
