"""Crash-safe changes to a home: stage, write a journal, commit by renames.

Every change takes the home's exclusive lock, prepares everything in
``<home>/staging/<id>/`` (same file system), then writes ``journal.json`` there — the
commit point — and applies the journal's steps, each an atomic rename. A process killed
before the journal exists leaves the old state (the staging folder is discarded by the
next change); killed after, the next change (or :func:`recover`) replays the remaining
steps, which are idempotent, and reaches the new state.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import msgspec

from ..errors import StoreError
from .layout import Layout

__all__ = ["Transaction", "locked", "recover"]

JOURNAL = "journal.json"


class _Step(msgspec.Struct, frozen=True):
    op: Literal["move", "replace", "discard"]
    src: str
    dst: str


class _Journal(msgspec.Struct, frozen=True):
    steps: tuple[_Step, ...]


@contextmanager
def locked(layout: Layout, timeout: float = 600.0) -> Iterator[None]:
    """Hold the home's exclusive lock (waiting for another plugbay), then recover."""
    from filelock import FileLock, Timeout

    layout.home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(layout.lock_path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise StoreError(
            f"another plugbay has held {layout.lock_path} for {timeout:g} s; "
            "wait for it to finish, or end it if it is stuck"
        ) from None
    try:
        recover(layout)
        yield
    finally:
        lock.release()


def recover(layout: Layout) -> list[str]:
    """Finish committed transactions and discard uncommitted ones; the caller holds the lock.

    Returns what was done, one line per transaction.
    """
    done: list[str] = []
    try:
        pending = sorted(os.listdir(layout.staging))
    except OSError:
        return done
    for name in pending:
        folder = layout.staging / name
        journal = folder / JOURNAL
        if journal.is_file():
            try:
                steps = msgspec.json.decode(journal.read_bytes(), type=_Journal).steps
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                steps = ()  # a journal is renamed into place whole; unreadable means not ours
            for step in steps:
                _apply(step)
            done.append(f"completed an interrupted change ({name})")
        else:
            done.append(f"discarded an unfinished change ({name})")
        _finish(folder)
    return done


def _apply(step: _Step) -> None:
    """Apply one step if it has not been applied yet (each check is one ``exists``)."""
    src, dst = Path(step.src), Path(step.dst)
    if step.op == "discard":
        # Done once the trash entry exists: the rename into it is atomic.
        if (src.exists() or src.is_symlink()) and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        return
    if not src.exists():
        return  # moved already
    dst.parent.mkdir(parents=True, exist_ok=True)
    if step.op == "move" and dst.is_dir() and not dst.is_symlink():
        # Not expected (a discard step precedes every move onto an existing path), but a
        # folder cannot be renamed over a non-empty one: set the stray aside first.
        stray = src.parent / f"{src.name}.stray"
        os.replace(dst, stray)
    os.replace(src, dst)


def _finish(folder: Path) -> None:
    """Delete a transaction's folder: the journal first, so a crash here never replays."""
    (folder / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


class Transaction:
    """Stage files and folders, then commit them all at once (the caller holds the lock)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.folder = layout.staging / uuid.uuid4().hex
        self.folder.mkdir(parents=True)
        self._steps: list[_Step] = []
        self._n = 0

    def stage_dir(self) -> Path:
        """A fresh path inside the staging folder for the caller to fill."""
        self._n += 1
        return self.folder / f"s{self._n}"

    def move(self, staged: Path, final: Path) -> None:
        """At commit, ``staged`` (file or folder) takes the place of ``final``."""
        if final.exists() or final.is_symlink():
            self.delete(final)
        self._steps.append(_Step("move", str(staged), str(final)))

    def write(self, final: Path, data: bytes) -> None:
        """At commit, ``final`` is replaced by a file holding ``data``."""
        staged = self.stage_dir()
        with open(staged, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._steps.append(_Step("replace", str(staged), str(final)))

    def delete(self, final: Path) -> None:
        """At commit, ``final`` (file or folder) is removed."""
        self._n += 1
        self._steps.append(_Step("discard", str(final), str(self.folder / "trash" / f"t{self._n}")))

    @property
    def empty(self) -> bool:
        return not self._steps

    def commit(self) -> None:
        """Write the journal (the commit point), apply every step, clean up."""
        body = msgspec.json.encode(_Journal(tuple(self._steps)))
        tmp = self.folder / f"{JOURNAL}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.folder / JOURNAL)
        _fsync_dir(self.folder)
        for step in self._steps:
            _apply(step)
        _finish(self.folder)

    def abort(self) -> None:
        """Forget everything staged; the home is as it was."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
