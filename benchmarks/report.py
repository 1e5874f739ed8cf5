"""What every benchmark's run.py shares: target verdict lines and the docs results block.

Each run.py puts this folder on its import path (it runs as a script from its own folder).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def verdicts(targets: Iterable[Mapping[str, Any]]) -> list[str]:
    """One ``MET``/``MISS`` line per target: what was asked and what was measured."""
    return [f"{'MET ' if t['met'] else 'MISS'}  {t['target']}: {t['measured']}" for t in targets]


def replace_block(docs: Path, start: str, end: str, body: str) -> bool:
    """Rewrite only the text between the ``start`` and ``end`` markers of ``docs``.

    The file is read right before it is written, so sections other benchmarks own stay as
    they are. False when the file or its markers are missing.
    """
    try:
        text = docs.read_text("utf-8")
    except FileNotFoundError:
        return False
    a, b = text.find(start), text.find(end)
    if a < 0 or b < a:
        return False
    docs.write_text(text[:a] + f"{start}\n{body}\n{end}" + text[b + len(end) :], "utf-8")
    return True
