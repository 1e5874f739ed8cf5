"""Output: JSON documents, plain aligned tables, and (only for help) rendered Markdown.

Nothing here imports the terminal renderer at module level: ``rich`` is imported only
by :func:`markdown`, so ``list``, ``info``, ``doctor`` and ``status`` start fast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Settings


class _Naming:
    """How messages name the command: ``plugbay``, or the host's when mounted."""

    command = "plugbay"
    hint: re.Pattern[str] | None = None


def name_command(command: str, subcommands: Iterable[str]) -> None:
    """Mounted in a host's command (``opsrun module``): messages that tell the user to run
    ``plugbay SUBCOMMAND …`` say ``opsrun module SUBCOMMAND …`` instead."""
    names = "|".join(map(re.escape, sorted(subcommands, key=len, reverse=True)))
    if command == "plugbay" or not names:
        _Naming.hint = None
        return
    _Naming.command = command
    _Naming.hint = re.compile(rf"(?<![\w./-])plugbay (?=(?:{names})\b)")


def commanded(text: str) -> str:
    """``text`` with its ``plugbay SUBCOMMAND`` hints naming the mounted command."""
    hint = _Naming.hint
    return text if hint is None else hint.sub(_Naming.command + " ", text)


def warning(text: str) -> None:
    sys.stderr.write(f"warning: {commanded(text)}\n")


def emit_json(doc: Any) -> None:
    """Write one JSON document (and a newline) to stdout."""
    import msgspec

    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(doc, enc_hook=str), indent=2))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def line(text: str = "") -> None:
    sys.stdout.write(commanded(text) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table with aligned columns (the last column is not padded)."""
    if not rows:
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for cells in [list(headers), *rows]:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        line("  ".join([*padded, cells[-1]]).rstrip())


def error(settings: Settings, exc: BaseException) -> None:
    """Report a failed operation: one line; more with -v; a traceback only with -vvv."""
    message = commanded(str(exc) or type(exc).__name__)
    if settings.json:
        emit_json({"error": {"type": type(exc).__name__, "message": message}})
    else:
        sys.stderr.write(f"error: {message}\n")
    detail = getattr(exc, "detail", None)
    if settings.verbose >= 3:
        # The whole chain: plugbay's own frames and, as the cause, the plugin's.
        import traceback

        sys.stderr.write("".join(traceback.format_exception(exc)))
        if detail and exc.__cause__ is None:
            sys.stderr.write(str(detail).rstrip() + "\n")
    elif settings.verbose >= 1 and detail:
        sys.stderr.write(str(detail).rstrip() + "\n")
    elif not settings.json and detail:
        sys.stderr.write("(run with -v for details)\n")


def markdown(text: str) -> None:
    """Render Markdown for a terminal (plain text when stdout is not one)."""
    from rich.console import Console
    from rich.markdown import Markdown

    Console(soft_wrap=False).print(Markdown(text))
