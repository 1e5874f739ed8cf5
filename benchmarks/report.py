"""What every benchmark's run.py shares: target verdict lines and the docs results block.

Each run.py puts this folder on its import path (it runs as a script from its own folder).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        found = None
    return found.group(1).strip() if found else platform.processor() or platform.machine()


def verdicts(targets: Iterable[Mapping[str, Any]]) -> list[str]:
    """One ``MET``/``MISS`` line per target: what was asked and what was measured."""
    return [f"{'MET ' if t['met'] else 'MISS'}  {t['target']}: {t['measured']}" for t in targets]


def aligned(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(c[i]) for c in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return out + [fmt.format(*cells) for cells in body]


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
