"""The ``lock`` and ``sync`` commands: write a home's ``plugbay.lock``, make a home match one.

``plugbay lock [-o FILE]`` writes the active installed versions (id, version, bundle
sha256, source) to ``./plugbay.lock``; ``plugbay sync [FILE] [--prune] [--dry-run]``
installs, reinstalls and switches until the home matches it (see
:mod:`plugbay.store.lock`). ``install --locked [FILE]`` is an option of ``install``;
:func:`split_locked` sorts out its optional value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from ..store.lock import Lockfile
    from .app import Settings

__all__ = ["DEFAULT_LOCK", "add_lock_commands", "lock", "split_locked", "sync"]

# Also in plugbay.store.lock; repeated so that `plugbay --help` does not import the store.
DEFAULT_LOCK = "plugbay.lock"

Run = Callable[[click.Context, Callable[["Settings"], "int | None"]], None]


def add_lock_commands(group: click.Group, options: Callable[[Any], Any], run: Run) -> None:
    """Add ``lock`` and ``sync`` to ``group``; ``run`` runs a command body (app._run)."""

    @group.command("lock")
    @click.option(
        "-o",
        "--out",
        type=click.Path(dir_okay=False),
        default=DEFAULT_LOCK,
        show_default=True,
        help="The lock file to write.",
    )
    @options
    @click.pass_context
    def lock_(ctx: click.Context, out: str) -> None:
        """Write the active installed plugins (id, version, bundle sha256, source) to a lock."""
        run(ctx, lambda s: lock(s, out))

    @group.command("sync")
    @click.argument("file", type=click.Path(dir_okay=False), default=DEFAULT_LOCK)
    @click.option("--prune", is_flag=True, help="Remove installed plugins the lock does not name.")
    @click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
    @options
    @click.pass_context
    def sync_(ctx: click.Context, file: str, prune: bool, dry_run: bool) -> None:
        """Make the home match a lock file (default ./plugbay.lock), checking every sha256."""
        run(ctx, lambda s: sync(s, file, prune=prune, dry_run=dry_run))


def split_locked(value: str | None, specs: list[str]) -> tuple[str | None, list[str]]:
    """``install --locked [FILE] SPEC…``: the lock file, and the specs.

    ``--locked`` takes the next word when one follows; it is the lock file when it ends in
    ``.lock`` or ``.toml`` or names a file that is not a bundle; otherwise it is the first
    SPEC and the lock is ``./plugbay.lock``.
    """
    if value is None or value == DEFAULT_LOCK:
        return value, specs
    if value.endswith((".lock", ".toml")) or (
        os.path.isfile(value) and not value.endswith((".tar.gz", ".tgz"))
    ):
        return value, specs
    return DEFAULT_LOCK, [value, *specs]


def read(file: str) -> Lockfile:
    """The lock file named on the command line (relative to the working folder)."""
    from ..store.lock import read_lock

    return read_lock(Path(file))


def lock(settings: Settings, out: str) -> int:
    # Layout and the lock module only: the installer's imports are not needed to read receipts.
    from ..config import home_for
    from ..store.layout import Layout
    from ..store.lock import lock_home, write_lock
    from ..store.transaction import recover_pending

    layout = Layout(home_for(settings.app, settings.home))
    recover_pending(layout)  # a change a killed plugbay left half done is finished first
    locked, warnings = lock_home(layout)
    written = write_lock(locked, Path(out))
    if settings.json:
        render.emit_json(
            {
                "lock": out,
                "plugins": [
                    {
                        "id": e.id,
                        "version": e.version,
                        "sha256": e.sha256,
                        "source": e.source,
                        "signer": e.signer,
                    }
                    for e in written.entries
                ],
                "warnings": warnings,
            }
        )
        return 0
    if not settings.quiet:
        if settings.verbose:
            for e in written.entries:
                render.line(f"lock {e} sha256 {e.sha256[:12]}… from {e.source}")
        count = len(written.entries)
        render.line(f"wrote {out}: {count} plugin{'' if count == 1 else 's'}")
    for warning in warnings:
        render.warning(warning)
    return 0


def sync(settings: Settings, file: str, *, prune: bool, dry_run: bool) -> int:
    from .store_commands import _progress, _render, _store

    locked = read(file)
    with _progress(settings) as progress:
        outcome = _store(settings).sync(locked, prune=prune, dry_run=dry_run, progress=progress)
    unlocked = [{"id": pid, "version": v} for pid, v in outcome.unlocked]
    return _render(
        settings,
        outcome,
        "sync",
        {"lock": file, "unlocked": unlocked},
        nothing=f"nothing to sync: every plugin {file} pins is installed and active",
    )
