"""Options more than one command takes, declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def requirements_option(f: F) -> F:
    """``-r/--requirements FILE`` (repeatable): requirements files, or a plugbay.lock."""
    return click.option(
        "-r",
        "--requirements",
        "requirement_files",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="A requirements file (YAML or TOML), or a plugbay.lock.",
    )(f)


def index_option(verb: str) -> Callable[[F], F]:
    """``--index URL`` (repeatable): indexes to ``verb`` plugins by name from."""
    return click.option(
        "--index",
        "indexes",
        multiple=True,
        metavar="URL",
        help=f"An index to {verb} by name from (repeatable; before those in config.toml).",
    )
