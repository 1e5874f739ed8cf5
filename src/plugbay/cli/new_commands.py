"""``plugbay new NAME [--runtime python|exec|wasm] [-d DIR]``: scaffold a plugin.

The command parses, makes one call (:func:`plugbay.templates.new_plugin`) and prints
what it wrote; ``--json`` prints ``{"id", "runtime", "folder", "files"}``. A bad id, an
unknown runtime or a folder that is not empty is one ``error:`` line and exit 1, with
nothing written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from .app import Settings

__all__ = ["add_new_commands", "new"]

#: The runtimes ``new`` writes scaffolds for (plugbay.templates.RUNTIMES, without
#: importing it at start-up).
_RUNTIMES = ("python", "exec", "wasm")


def add_new_commands(
    group: click.Group,
    options: Callable[[Any], Any],
    run: Callable[[click.Context, Callable[[Settings], int | None]], None],
) -> None:
    """Register ``new`` on ``group`` (``options`` and ``run`` as app.py passes them)."""

    @group.command("new")
    @click.argument("name")
    @click.option(
        "--runtime",
        type=click.Choice(_RUNTIMES),
        default="python",
        show_default=True,
        help="python: in-process; exec: its own process, with plugbay.sdk; wasm: a "
        "WebAssembly sandbox.",
    )
    @click.option(
        "-d",
        "--directory",
        "directory",
        type=click.Path(),
        help="The plugin folder to write: new or empty (default: ./NAME without its namespace).",
    )
    @options
    @click.pass_context
    def new_command(ctx: click.Context, name: str, runtime: str, directory: str | None) -> None:
        """Write a new plugin NAME (namespace.name) that passes doctor and its own tests."""
        run(ctx, lambda s: new(s, name, runtime, directory))


def new(settings: Settings, plugin_id: str, runtime: str, directory: str | None) -> int:
    """Write the scaffold and say what was written; the exit code."""
    from ..templates import new_plugin

    scaffold = new_plugin(
        plugin_id,
        runtime,
        directory,
        app=settings.app,
        api_version=settings.api_version,
    )
    if settings.json:
        render.emit_json(
            {
                "id": scaffold.plugin_id,
                "runtime": scaffold.runtime,
                "folder": os.path.abspath(scaffold.folder),
                "files": list(scaffold.files),
            }
        )
        return 0
    if settings.quiet:
        return 0
    render.line(f"created {scaffold.plugin_id} ({scaffold.runtime}) in {scaffold.folder}")
    for rel in scaffold.files:
        render.line(f"  {rel}")
    if os.path.abspath(scaffold.folder) == os.getcwd():
        render.line("test it: pytest")
    else:
        import shlex

        render.line(f"test it: cd {shlex.quote(str(scaffold.folder))} && pytest")
    return 0
