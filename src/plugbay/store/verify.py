"""``plugbay verify``: installed files against FILES.json, FILES.json against the receipt.

The chain: the receipt (kept outside the plugin folder) pins MANIFEST.json by hash,
MANIFEST.json pins FILES.json, FILES.json pins every file. A consistently rewritten
FILES.json is therefore caught by the receipt.

Python's own ``__pycache__/*.pyc`` files, written when the plugin is imported, are not
reported as extra; anything else found beside the listed files is.

An isolated Python plugin (``isolation = "process"``) must also have its virtual
environment, with an interpreter that still exists (see :mod:`.venvs`).

Signatures: a version the receipt says was signed must still have its
``MANIFEST.json.sig``, verifying against the keyring as it is now, by a key still trusted
for its namespace; a version installed unsigned is reported when ``[policy]
require-signatures`` now covers it (see :mod:`.trust`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from .bundle import FILES_JSON, MANIFEST_JSON, SIGNATURE, FilesList, ManifestFile
from .layout import InstalledVersion, Layout, Receipt, read_receipt_file, receipt_name

if TYPE_CHECKING:
    from .trust import Trust

__all__ = ["VerifyReport", "verify"]

# Written by Python when it imports plugin code; not part of what was installed.
_PYCACHE = "__pycache__"
_PYCACHE_FILES = ("*.pyc", "*.pyo")


class VerifyReport(msgspec.Struct):
    """One installed version: what is wrong with it (nothing, when ``ok``)."""

    id: str
    version: str
    path: str
    modified: list[str] = msgspec.field(default_factory=list)
    missing: list[str] = msgspec.field(default_factory=list)
    extra: list[str] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing or self.extra or self.errors)


def verify(
    layout: Layout, ids: list[str] | None = None, *, workers: int | None = None
) -> list[VerifyReport]:
    """Check every installed version (of ``ids``, if given).

    A receipt whose version folder is gone (or lost its MANIFEST.json) is reported too.
    ``workers``: processes that share the versions (see :func:`_verify_all`); None
    decides from the machine and the work.
    """
    from .trust import Trust

    wanted = set(ids or ())
    trust = Trust.of_home(layout.home)
    versions = [v for v in layout.installed() if not wanted or v.id in wanted]
    reports = _verify_all(layout, versions, trust, workers)
    seen = {v.id for v in versions}
    checked = {(v.id, v.version) for v in versions}
    # Receipts left without their version folder (the others were read with their folder).
    known = {receipt_name(i, version) for i, version in checked}
    for receipt in _receipts(layout, known):
        if (wanted and receipt.id not in wanted) or (receipt.id, receipt.version) in checked:
            continue
        seen.add(receipt.id)
        folder = layout.version_dir(receipt.id, receipt.version)
        report = VerifyReport(receipt.id, receipt.version, str(folder))
        if folder.is_dir():
            report.missing.append(MANIFEST_JSON)
        else:
            report.errors.append(
                f"its receipt {layout.receipt_path(receipt.id, receipt.version)} remains, "
                f"but its folder {folder} is gone (reinstall it, or remove it)"
            )
        reports.append(report)
    for missing in sorted(wanted - seen):
        report = VerifyReport(missing, "", "")
        report.errors.append(f"{missing} is not installed by plugbay (run: plugbay list)")
        reports.append(report)
    return reports


def _receipts(layout: Layout, known: set[str]) -> list[Receipt]:
    """The receipts in the home, but for the ``known`` file names."""
    try:
        names = sorted(os.listdir(layout.receipts))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.endswith(".json") or name in known:
            continue
        receipt = read_receipt_file(layout.receipts / name)
        if receipt is None:
            continue  # not one of ours; a receipt an installed version misses is reported there
        if name == receipt_name(receipt.id, receipt.version):
            out.append(receipt)
    return out


# Below this many versions one process does it all: a fork costs more than it saves.
_PARALLEL_FROM = 32


def _verify_all(
    layout: Layout, versions: list[InstalledVersion], trust: Trust, workers: int | None
) -> list[VerifyReport]:
    """The reports of ``versions``, in their order, made by ``workers`` processes.

    Verifying is a Python loop over every installed file (open, fstat, read, hash): on one
    core it is most of ``plugbay verify``. With more than one core and many versions, forked
    children take a share each and send their reports back through a pipe. Forking is only
    safe in a process running a single thread, so a host that runs threads verifies in one
    process; so does a system without ``fork``. A child that fails has its share redone here.
    """
    if workers is None:
        workers = _default_workers(len(versions))
    if workers < 2 or len(versions) < 2:
        return _verify_share(layout, versions, trust)
    shares = [versions[i::workers] for i in range(workers)]  # interleaved: similar sizes
    children: list[tuple[int, int]] = []
    try:
        for share in shares[1:]:
            children.append(_fork_verifier(layout, share, trust))
        done = [_verify_share(layout, shares[0], trust)]
        while children:
            pid, fd = children.pop(0)
            sent = _child_reports(pid, fd)
            done.append(_verify_share(layout, shares[len(done)], trust) if sent is None else sent)
    finally:
        for pid, fd in children:  # only if this process failed: end the others
            os.close(fd)
            _reap(pid, kill=True)
    # Share i holds versions i, i + workers, i + 2 * workers...
    return [done[i % workers][i // workers] for i in range(len(versions))]


def _default_workers(count: int) -> int:
    import threading

    if count < _PARALLEL_FROM or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _fork_verifier(layout: Layout, share: list[InstalledVersion], trust: Trust) -> tuple[int, int]:
    """A child verifying ``share``: its pid, and the pipe its reports come through."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, it ends here, without running atexit hooks
        code = 1
        try:
            os.close(read_fd)
            data = msgspec.msgpack.encode(_verify_share(layout, share, trust))
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _child_reports(pid: int, fd: int) -> list[VerifyReport] | None:
    """What a child sent, once it has ended well; None if it did not."""
    with os.fdopen(fd, "rb") as pipe:
        data = pipe.read()
    if not _reap(pid):
        return None
    try:
        return msgspec.msgpack.decode(data, type=list[VerifyReport])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _verify_share(
    layout: Layout, share: list[InstalledVersion], trust: Trust
) -> list[VerifyReport]:
    return [_verify_one(layout, v, trust) for v in share]


def _reap(pid: int, *, kill: bool = False) -> bool:
    """Wait for a child (ended with SIGKILL first, with ``kill``); True if it exited 0."""
    import signal

    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _verify_one(layout: Layout, v: InstalledVersion, trust: Trust) -> VerifyReport:
    plugin_id, version, folder, receipt = v.id, v.version, v.path, v.receipt
    report = VerifyReport(plugin_id, version, str(folder))
    try:
        manifest_bytes = (folder / MANIFEST_JSON).read_bytes()
        files_bytes = (folder / FILES_JSON).read_bytes()
    except OSError as exc:
        report.errors.append(f"cannot read its metadata: {exc.strerror or exc}")
        return report
    if receipt is None:
        report.errors.append(
            f"its receipt {layout.receipt_path(plugin_id, version)} is missing or unreadable"
        )
    elif hashlib.sha256(manifest_bytes).hexdigest() != receipt.manifest_sha256:
        report.modified.append(MANIFEST_JSON)
    try:
        mfile = msgspec.json.decode(manifest_bytes, type=ManifestFile)
        files = msgspec.json.decode(files_bytes, type=FilesList).files
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        report.errors.append(f"its metadata is corrupt: {exc}")
        return report
    if hashlib.sha256(files_bytes).hexdigest() != mfile.files_sha256:
        report.modified.append(FILES_JSON)
    missing, errors = trust.installed_problems(plugin_id, version, folder, receipt)
    report.missing += missing
    report.errors += errors
    _verify_venv(layout, report, mfile.manifest, folder)
    listed = set()
    base = os.fspath(folder) + os.sep
    for entry in files:
        listed.add(entry.path)
        if entry.path.startswith("/") or not _UNSAFE_PARTS.isdisjoint(entry.path.split("/")):
            report.errors.append(f"{FILES_JSON} lists {entry.path!r}, a path outside the folder")
            continue
        state = _check_file(base + entry.path.replace("/", os.sep), entry.size, entry.sha256)
        if state == "missing":
            report.missing.append(entry.path)
        elif state == "modified":
            report.modified.append(entry.path)
    for rel in _files_under(folder):
        if rel not in listed and rel not in (MANIFEST_JSON, FILES_JSON, SIGNATURE):
            report.extra.append(rel)
    return report


_UNSAFE_PARTS = frozenset({"", ".", ".."})
# Files up to this size are read with one system call; larger ones in chunks of it.
_WHOLE = 1 << 20


def _check_file(path: str, size: int, sha256: str) -> str | None:
    """``None`` when the file at ``path`` is a regular file of that size and hash, else
    ``"missing"`` or ``"modified"``. The per-file cost is most of ``verify``: one open,
    one fstat and one read for a small file, no buffer allocated beyond its size."""
    try:
        # O_NOFOLLOW: a link where a file was installed is a change, whatever it points to.
        # O_NONBLOCK: a FIFO put in place of a file must not hang the open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "modified"  # a link (ELOOP), unreadable
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return "modified"
        if size < _WHOLE:
            data = os.read(fd, size + 1)
            digest = hashlib.sha256(data)
            if len(data) != size:
                return "modified"
        else:
            digest = hashlib.sha256()
            while chunk := os.read(fd, _WHOLE):
                digest.update(chunk)
    except OSError:
        return "modified"
    finally:
        os.close(fd)
    return None if digest.hexdigest() == sha256 else "modified"


def _verify_venv(
    layout: Layout, report: VerifyReport, manifest: dict[str, Any], folder: Path
) -> None:
    """An isolated Python plugin needs its virtual environment (see :mod:`.venvs`)."""
    plugin = manifest.get("plugin")
    if not isinstance(plugin, dict):
        return
    if plugin.get("runtime", "python") != "python" or plugin.get("isolation") != "process":
        return
    from .venvs import reinstall_command, venv_problem

    problem = venv_problem(layout.home, report.id, report.version)
    if problem is not None:
        command = reinstall_command(layout.home, report.id, report.version, folder)
        report.errors.append(f"{problem} (reinstall it: {command})")


def _files_under(folder: Path) -> list[str]:
    """Every file (and link to a folder, which is not followed) below ``folder``."""
    out: list[str] = []
    _collect(os.fspath(folder), "", out)
    out.sort()
    return out


def _collect(path: str, prefix: str, out: list[str]) -> None:
    in_pycache = os.path.basename(path) == _PYCACHE
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _collect(entry.path, prefix + entry.name + "/", out)
        elif not (in_pycache and any(fnmatch.fnmatch(entry.name, g) for g in _PYCACHE_FILES)):
            out.append(prefix + entry.name)
