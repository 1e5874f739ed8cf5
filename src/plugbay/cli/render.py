"""Output: JSON documents, plain aligned tables, and (only for help) rendered Markdown.

Nothing here imports the terminal renderer at module level: ``rich`` is imported only
by :func:`markdown`, so ``list``, ``info``, ``doctor`` and ``status`` start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Settings


def emit_json(doc: Any) -> None:
    """Write one JSON document (and a newline) to stdout."""
    import msgspec

    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(doc, enc_hook=str), indent=2))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def line(text: str = "") -> None:
    sys.stdout.write(text + "\n")


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
    message = str(exc) or type(exc).__name__
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
