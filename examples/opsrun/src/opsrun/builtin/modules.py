"""The built-in modules: ``debug`` and ``copy``. Same contract as plugin modules."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any


class Debug:
    """Shows ``msg``; never changes anything."""

    def validate(self, args: dict[str, Any]) -> None:
        unknown = set(args) - {"msg"}
        if unknown:
            raise ValueError(f"debug: unknown argument {sorted(unknown)[0]!r}; it takes msg")

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.apply(args)

    def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = args.get("msg", "Hello world!")
        return {"changed": False, "msg": str(msg), "artifacts": {"msg": msg}}


class Copy:
    """Writes ``content`` to ``dest`` (atomically) unless the file already holds it."""

    def validate(self, args: dict[str, Any]) -> None:
        unknown = set(args) - {"dest", "content", "mode"}
        if unknown:
            raise ValueError(
                f"copy: unknown argument {sorted(unknown)[0]!r}; it takes dest, content, mode"
            )
        if not isinstance(args.get("dest"), str) or not args["dest"]:
            raise ValueError("copy: `dest` (the file to write) is required")
        if not isinstance(args.get("content"), str):
            raise ValueError("copy: `content` (text) is required")
        _mode(args)

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        dest = Path(args["dest"]).expanduser()
        why = _difference(dest, args["content"], _mode(args))
        return {
            "changed": why is not None,
            "msg": f"would write {dest} ({why})" if why else f"{dest} is up to date",
            "artifacts": {"dest": str(dest), "sha256": _sha256(args["content"])},
        }

    def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        dest = Path(args["dest"]).expanduser()
        content, mode = args["content"], _mode(args)
        why = _difference(dest, content, mode)
        if why is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(content)
                if mode is not None:
                    os.chmod(tmp, mode)
                os.replace(tmp, dest)  # readers see the old file or the new one
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return {
            "changed": why is not None,
            "msg": f"wrote {dest} ({why})" if why else f"{dest} is up to date",
            "artifacts": {"dest": str(dest), "sha256": _sha256(content)},
        }


def _mode(args: dict[str, Any]) -> int | None:
    mode = args.get("mode")
    if mode is None:
        return None
    try:
        return int(str(mode), 8)
    except ValueError:
        raise ValueError(f"copy: mode {mode!r} is not an octal mode like '0644'") from None


def _difference(dest: Path, content: str, mode: int | None) -> str | None:
    """Why ``dest`` must be written, or None when it already is as wanted."""
    try:
        current = dest.read_text("utf-8")
    except FileNotFoundError:
        return "new file"
    except UnicodeDecodeError:
        return "content differs"
    if current != content:
        return "content differs"
    if mode is not None and dest.stat().st_mode & 0o7777 != mode:
        return f"mode {dest.stat().st_mode & 0o7777:04o} -> {mode:04o}"
    return None


def _sha256(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()
