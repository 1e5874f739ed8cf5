"""Crash-safe changes to a home: stage, write a journal, commit by renames.

Every change takes the home's exclusive lock, prepares everything in
``<home>/staging/<id>/`` (same file system), makes it durable, then writes
``journal.json`` there — the commit point — and applies the journal's steps, each an
atomic rename. A process killed (or a machine crashing) before the journal exists leaves
the old state: the staging folder is discarded by the next change. Killed after, the next
change replays the remaining steps, which are idempotent, and reaches the new state.

Readers (``verify``, discovery) call :func:`recover_pending` first, so that what they
show is the old state or the new one, never a commit cut short.

Journal paths are relative to the home, so a home that was moved, or is named by another
relative path from another working folder, is still recovered correctly.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Literal

import msgspec

from ..errors import StoreError
from .layout import Layout

__all__ = ["HomeLock", "Transaction", "locked", "recover", "recover_pending"]

JOURNAL = "journal.json"
_JOURNAL_FORMAT = 1

_log = logging.getLogger("plugbay.store")


class _Step(msgspec.Struct, frozen=True):
    op: Literal["move", "replace", "discard"]
    src: str  # relative to the home, "/"-separated
    dst: str


class _Journal(msgspec.Struct, frozen=True):
    format: int
    steps: tuple[_Step, ...]


class HomeLock:
    """The home's exclusive lock: ``flock`` on ``<home>/.lock`` (decision 0011).

    The kernel releases it when its file is closed, so a plugbay that is killed, however,
    never leaves it held. Two locks of one home exclude each other within one process too
    (each has its own open file). Waiting polls, as ``flock`` cannot wait with a timeout.
    """

    #: Seconds between two attempts while another plugbay holds the lock.
    poll_interval = 0.05

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another holds it. OSError: cannot lock."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; False if it stayed taken."""
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_interval)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


@contextmanager
def locked(layout: Layout, timeout: float = 600.0) -> Iterator[None]:
    """Hold the home's exclusive lock (waiting for another plugbay), then recover."""
    layout.home.mkdir(parents=True, exist_ok=True)
    lock = HomeLock(layout.lock_path)
    if not lock.acquire(timeout):
        raise StoreError(
            f"another plugbay has held {layout.lock_path} for {timeout:g} s; "
            "wait for it to finish, or end it if it is stuck"
        )
    try:
        recover(layout)
        yield
    finally:
        lock.release()


def recover_pending(layout: Layout, wait: float = 10.0) -> list[str]:
    """Finish or discard a change a killed plugbay left behind, before reading the home.

    For readers (``verify``, discovery, ``list``): costs one ``listdir`` when nothing is
    pending. Otherwise it takes the lock if it is free. While a live plugbay holds it and
    is staging, the old state stands, so it returns at once; while one is committing (a
    journal exists: milliseconds), it waits up to ``wait`` seconds for it to finish. Never
    raises: when recovery cannot run (a read-only home, a stuck plugbay, a failing
    rename), it logs a warning and the reader sees what is there.
    """
    try:
        if not os.listdir(layout.staging):
            return []
    except OSError:
        return []
    lock = HomeLock(layout.lock_path)
    deadline = time.monotonic() + wait
    while True:
        try:
            if lock.try_acquire():
                break
        except OSError as exc:
            _log.warning(
                "cannot lock %s to finish an interrupted change: %s",
                layout.lock_path,
                exc.strerror or exc,
            )
            return []
        if not _committing(layout):
            return []
        if time.monotonic() >= deadline:
            _log.warning(
                "another plugbay has been committing for %g s (it holds %s); "
                "what is shown may be incomplete",
                wait,
                layout.lock_path,
            )
            return []
        time.sleep(0.01)
    try:
        return recover(layout)
    except StoreError as exc:
        _log.warning("%s", exc)
        return []
    finally:
        lock.release()


def _committing(layout: Layout) -> bool:
    """Whether a transaction in the staging folder has reached its commit point."""
    try:
        names = os.listdir(layout.staging)
    except OSError:
        return False
    return any(os.path.isfile(layout.staging / name / JOURNAL) for name in names)


def recover(layout: Layout) -> list[str]:
    """Finish committed transactions and discard uncommitted ones; the caller holds the lock.

    Returns what was done, one line per transaction. Raises StoreError when a committed
    transaction cannot be completed (its journal is kept, so a later run completes it).
    """
    done: list[str] = []
    try:
        pending = sorted(os.listdir(layout.staging))
    except OSError:
        return done
    for name in pending:
        folder = layout.staging / name
        if folder.is_symlink() or not folder.is_dir():
            folder.unlink(missing_ok=True)  # not ours: transactions are folders
            continue
        journal = _read_journal(folder)
        if journal is None:
            done.append(f"discarded an unfinished change ({name})")
        else:
            try:
                _apply_all(layout.home, journal.steps)
            except OSError as exc:
                raise StoreError(
                    f"cannot complete the interrupted change in {folder}: "
                    f"{exc.strerror or exc} ({exc.filename}); fix that and run the command again"
                ) from None
            done.append(f"completed an interrupted change ({name})")
        _finish(folder)
    for line in done:
        _log.info("%s", line)
    return done


def _read_journal(folder: Path) -> _Journal | None:
    """The folder's journal, or None when it has none (it never reached its commit point)."""
    try:
        body = (folder / JOURNAL).read_bytes()
    except OSError:
        return None
    try:
        journal = msgspec.json.decode(body, type=_Journal)
    except (msgspec.DecodeError, msgspec.ValidationError):
        _log.warning("%s is unreadable; discarding that change", folder / JOURNAL)
        return None  # a journal is renamed into place whole: unreadable means not ours
    if journal.format != _JOURNAL_FORMAT or not all(
        _inside(s.src) and _inside(s.dst) for s in journal.steps
    ):
        _log.warning("%s is not a journal this plugbay wrote; discarding it", folder / JOURNAL)
        return None
    return journal


def _inside(rel: str) -> bool:
    path = PurePosixPath(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts


def _apply_all(home: Path, steps: Iterable[_Step]) -> None:
    """Apply every step not yet applied, then make the renames durable."""
    touched: set[Path] = set()
    for step in steps:
        src, dst = home / step.src, home / step.dst
        _apply(step.op, src, dst)
        touched.update((src.parent, dst.parent))
    _in_parallel(_fsync_dir, sorted(touched))


def _apply(op: str, src: Path, dst: Path) -> None:
    """Apply one step if it has not been applied yet (each check is one ``exists``)."""
    if op == "discard":
        # Done once the trash entry exists: the rename into it is atomic.
        if (src.exists() or src.is_symlink()) and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        return
    if not src.exists():
        return  # moved already
    dst.parent.mkdir(parents=True, exist_ok=True)
    if op == "move" and dst.is_dir() and not dst.is_symlink():
        # Not expected (a discard step precedes every move onto an existing path), but a
        # folder cannot be renamed over a non-empty one: set the stray aside first.
        stray = src.parent / f"{src.name}.stray"
        os.replace(dst, stray)
    os.replace(src, dst)


def _finish(folder: Path) -> None:
    """Delete a transaction's folder: the journal first, so a crash here never replays."""
    (folder / JOURNAL).unlink(missing_ok=True)
    _fsync_dir(folder)
    shutil.rmtree(folder, ignore_errors=True)


class Transaction:
    """Stage files and folders, then commit them all at once (the caller holds the lock).

    A failure before :meth:`commit` writes the journal changes nothing; the caller calls
    :meth:`abort` (or leaves the staging folder to the next change, which discards it).
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.folder = layout.staging / uuid.uuid4().hex
        self._steps: list[_Step] = []
        self._n = 0
        self._committed = False
        try:
            self.folder.mkdir(parents=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the staging folder {self.folder}: {exc.strerror or exc}; "
                "nothing was changed"
            ) from None

    def stage_dir(self) -> Path:
        """A fresh path inside the staging folder for the caller to fill."""
        self._n += 1
        return self.folder / f"s{self._n}"

    def move(self, staged: Path, final: Path) -> None:
        """At commit, ``staged`` (file or folder) takes the place of ``final``."""
        if final.exists() or final.is_symlink():
            self.delete(final)
        self._steps.append(_Step("move", self._rel(staged), self._rel(final)))

    def write(self, final: Path, data: bytes) -> None:
        """At commit, ``final`` is replaced by a file holding ``data``."""
        staged = self.stage_dir()
        try:
            with open(staged, "wb") as f:
                f.write(data)
        except OSError as exc:
            self.abort()
            raise StoreError(
                f"cannot stage {final.name} in {self.folder}: {exc.strerror or exc}; "
                "nothing was changed (free some space and try again)"
            ) from None
        self._steps.append(_Step("replace", self._rel(staged), self._rel(final)))

    def delete(self, final: Path) -> None:
        """At commit, ``final`` (file or folder) is removed; nothing to do if it is absent.

        Absent paths get no step: replayed after a later step of the same transaction
        had made that path, such a step would remove the new file.
        """
        if not (final.exists() or final.is_symlink()):
            return
        self._n += 1
        trash = self.folder / "trash" / f"t{self._n}"
        self._steps.append(_Step("discard", self._rel(final), self._rel(trash)))

    @property
    def empty(self) -> bool:
        return not self._steps

    def commit(self) -> None:
        """Make the staged work durable, write the journal (the commit point), apply it.

        Raises StoreError saying that nothing was changed when the journal cannot be
        written (a full disk), or that the change is committed and the next plugbay
        command completes it when a step fails afterwards.
        """
        self._write_journal()
        try:
            _apply_all(self.layout.home, self._steps)
        except OSError as exc:
            raise StoreError(
                f"the change is committed but a step failed: {exc.strerror or exc} "
                f"({exc.filename}); fix that, and the next plugbay command completes it"
            ) from None
        _finish(self.folder)

    def _write_journal(self) -> None:
        """Flush the staged work to disk, then rename the journal into place: the commit point."""
        try:
            _fsync_tree(self.folder)
            _fsync_dir(self.layout.staging)
            body = msgspec.json.encode(_Journal(_JOURNAL_FORMAT, tuple(self._steps)))
            tmp = self.folder / f"{JOURNAL}.tmp"
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / JOURNAL)
            self._committed = True
            _fsync_dir(self.folder)
        except OSError as exc:
            raise StoreError(
                f"cannot commit the change staged in {self.folder}: {exc.strerror or exc}; "
                "nothing was changed (free some space and try again)"
            ) from None

    def abort(self) -> None:
        """Forget everything staged; the home is as it was.

        Once committed, a transaction is never forgotten: its journal stays for recovery
        (an exception or Ctrl-C during :meth:`commit` must not leave half of it applied).
        """
        if not self._committed:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.layout.home).as_posix()
        except ValueError:
            raise StoreError(
                f"{path} is outside the home {self.layout.home}; a transaction changes "
                "only its home"
            ) from None


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk (a crash must not lose data
    that a durable journal already points to).

    On Linux one ``syncfs(2)`` of the staging file system does it in a single call (a
    200-plugin install stages some 10,000 files); elsewhere each is flushed.
    """
    if _syncfs(root):
        return
    files: list[Path] = []
    folders: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        files += [Path(dirpath, name) for name in filenames]
        folders.append(Path(dirpath))
    _in_parallel(_fsync_file, files)
    _in_parallel(_fsync_dir, folders)


def _in_parallel(flush: Callable[[Path], None], paths: list[Path]) -> None:
    """Call ``flush`` on every path, many at once.

    File systems batch the fsyncs that are waiting together into one journal commit: on
    a busy disk, 600 of them take seconds one by one and a few hundredths of a second
    this way. Raises the first error.
    """
    if len(paths) < 4:
        for path in paths:
            flush(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        for _ in pool.map(flush, paths):
            pass


def _syncfs(path: Path) -> bool:
    """``syncfs(2)`` of the file system holding ``path``; False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames into or out of it); best effort, as on some
    platforms and file systems folders cannot be opened or synced."""
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
