"""The lock file, ``plugbay.lock``: the exact plugin set of a home, to make again elsewhere.

```toml
lock-version = 1                              # the format of this file
generated-by = "plugbay 0.1.0"

[[plugin]]
id = "acme.tools"
version = "1.2.0"
sha256 = "9f86d081…"                          # of the bundle file: pins every byte of it
source = "bundles/acme-tools-1.2.0.tar.gz"    # a path (relative: to the lock's folder),
                                              # an http(s) URL, or git+URL[@ref]
signer = "3f2a…"                              # informational only (optional)
```

``plugbay lock`` writes one entry per active installed version, from its receipt
(:func:`lock_home`, :func:`write_lock`); ``plugbay download`` writes one for a folder of
bundles (:mod:`.download`), which ``install -r`` reads as ``install --locked``.
``plugbay sync`` makes a home match a lock (:meth:`plugbay.store.Store.sync`, planned by
:func:`plan_sync`): it fetches what is missing from each entry's source and refuses a
bundle whose sha256 is not the locked one before anything is written.
``install --locked`` refuses any version the lock does not pin (:func:`check_requests`,
:func:`check_changes`, :class:`LockedSource`).

The sha256 is of the whole bundle file, so it also pins ``MANIFEST.json.sig`` when the
bundle is signed: the lock records the signer only for people to read, and signatures are
checked by the install path like any install's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..errors import BundleError, LockfileError, SourceError, StoreError, VersionError
from ..versions import parse_version
from .layout import InstalledVersion, Layout

if TYPE_CHECKING:
    from ..resolution import Requirement
    from .bundle import ReadBundle
    from .install import Change
    from .sources import Artifacts, Candidate

__all__ = [
    "DEFAULT_LOCK",
    "LOCK_FORMAT",
    "LockEntry",
    "LockedSource",
    "Lockfile",
    "SyncPlan",
    "SyncStep",
    "allowed_versions",
    "check_changes",
    "check_requests",
    "dump_lock",
    "fetch_locked",
    "lock_home",
    "parse_lock",
    "plan_sync",
    "read_lock",
    "source_kind",
    "write_lock",
]

LOCK_FORMAT = 1
DEFAULT_LOCK = "plugbay.lock"

_TOP_KEYS = ("lock-version", "generated-by", "plugin")
_ENTRY_KEYS = ("id", "version", "sha256", "source", "signer")
_REQUIRED = ("id", "version", "sha256", "source")
_ID = re.compile(r"(?:[a-z][a-z0-9_]*\.)?[a-z][a-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

SourceKind = Literal["file", "dir", "url", "git", "other"]


class LockEntry(msgspec.Struct, frozen=True, gc=False):
    """One locked plugin: the version, the sha256 of its bundle file, where to get it."""

    id: str
    version: str
    sha256: str
    source: str
    signer: str | None = None

    def __str__(self) -> str:
        return f"{self.id} {self.version}"


class Lockfile(msgspec.Struct, frozen=True):
    """A lock: its entries (one per plugin id) and the file it was read from, if any.

    A relative path in an entry's source is relative to the folder of ``path``.
    """

    entries: tuple[LockEntry, ...] = ()
    path: Path | None = None

    @property
    def name(self) -> str:
        """The lock as messages name it."""
        return str(self.path) if self.path is not None else DEFAULT_LOCK

    def get(self, plugin_id: str) -> LockEntry | None:
        return next((e for e in self.entries if e.id == plugin_id), None)

    def pinned(self) -> dict[str, str]:
        """The locked version of each id."""
        return {e.id: e.version for e in self.entries}

    def location(self, entry: LockEntry) -> str:
        """The entry's source as an install spec that means the same from any folder."""
        if source_kind(entry.source) in ("file", "dir") and not os.path.isabs(entry.source):
            base = os.path.abspath(self.path.parent) if self.path is not None else os.getcwd()
            return os.path.normpath(os.path.join(base, entry.source))
        return entry.source


def source_kind(source: str) -> SourceKind:
    """What a receipt's (or lock's) source is, from its text alone."""
    if source.startswith("git+"):
        return "git"
    if source.startswith(("http://", "https://", "oci://")):
        return "url"  # fetched again by the same reference (an OCI one: by its exact tag)
    if "://" in source:
        return "other"  # a scheme plugbay does not fetch from (an index's description)
    if source.endswith((".tar.gz", ".tgz")):
        return "file"
    if os.path.isabs(source) or source.startswith(("./", "../")) or "/" in source:
        return "dir"
    return "other"


# ---------------------------------------------------------------- reading


def read_lock(path: Path) -> Lockfile:
    """Read and check a lock file; raises LockfileError naming the file and the field."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise LockfileError(
            str(path), "", "does not exist; write one with `plugbay lock`, or name another file"
        ) from None
    except UnicodeDecodeError:
        raise LockfileError(str(path), "", "is not UTF-8 text, so not a lock file") from None
    except OSError as exc:
        raise LockfileError(str(path), "", f"cannot be read: {exc.strerror or exc}") from None
    return parse_lock(text, path)


def parse_lock(text: str, path: Path | None = None) -> Lockfile:
    """A lock from its TOML text (``path``: where it was read, for messages and sources)."""
    import tomllib

    name = str(path) if path is not None else DEFAULT_LOCK
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockfileError(name, "", f"is not valid TOML: {exc}") from None
    _check_keys(data, _TOP_KEYS, name, "", "")
    version = data.get("lock-version")
    if version is None:
        raise LockfileError(
            name,
            "lock-version",
            f"is missing; a lock file starts with lock-version = {LOCK_FORMAT} "
            "(write one with `plugbay lock`)",
        )
    if type(version) is not int:
        raise LockfileError(name, "lock-version", f"must be a whole number, not {version!r}")
    if version != LOCK_FORMAT:
        raise LockfileError(
            name,
            "lock-version",
            f"is {version}; this plugbay reads lock format {LOCK_FORMAT} "
            "(use the plugbay that wrote it, or write the lock again with this one)",
        )
    if not isinstance(data.get("generated-by", ""), str):
        raise LockfileError(name, "generated-by", "must be a string")
    plugins = data.get("plugin", [])
    if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
        raise LockfileError(
            name, "plugin", "must be an array of tables: one [[plugin]] table per plugin"
        )
    entries: list[LockEntry] = []
    where: dict[str, str] = {}
    for n, item in enumerate(plugins):
        entry = _entry(item, f"plugin[{n}]", name)
        if entry.id in where:
            raise LockfileError(
                name,
                f"plugin[{n}].id",
                f"{entry.id} is locked twice (also at {where[entry.id]}); keep one entry",
            )
        where[entry.id] = f"plugin[{n}]"
        entries.append(entry)
    return Lockfile(tuple(entries), path)


def _entry(item: Mapping[str, Any], at: str, name: str) -> LockEntry:
    plugin_id = item.get("id")
    of = f" (in the entry of {plugin_id})" if isinstance(plugin_id, str) else ""
    _check_keys(item, _ENTRY_KEYS, name, at, of)
    for key in _REQUIRED:
        if key not in item:
            raise LockfileError(
                name,
                f"{at}.{key}",
                f"is missing{of}; every [[plugin]] has {', '.join(_REQUIRED)}",
            )
    for key in _ENTRY_KEYS:
        if key in item and not isinstance(item[key], str):
            raise LockfileError(
                name, f"{at}.{key}", f"must be a string, not {item[key]!r}{of}; put it in quotes"
            )
    if not _ID.fullmatch(item["id"]):
        raise LockfileError(
            name, f"{at}.id", f"{item['id']!r} is not a plugin id (name, or namespace.name)"
        )
    try:
        parse_version(item["version"])
    except VersionError as exc:
        raise LockfileError(name, f"{at}.version", f"{exc}{of}") from None
    if not _SHA256.fullmatch(item["sha256"]):
        raise LockfileError(
            name,
            f"{at}.sha256",
            f"{item['sha256']!r} is not a sha256 (64 hexadecimal digits){of}",
        )
    if not item["source"].strip():
        raise LockfileError(name, f"{at}.source", f"is empty{of}; say where the bundle is")
    return LockEntry(
        item["id"], item["version"], item["sha256"].lower(), item["source"], item.get("signer")
    )


def _check_keys(
    table: Mapping[str, Any], allowed: Sequence[str], name: str, at: str, of: str
) -> None:
    from difflib import get_close_matches

    for key in table:
        if key not in allowed:
            close = get_close_matches(key, allowed, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            raise LockfileError(
                name,
                f"{at}.{key}" if at else key,
                f"unknown key {key!r}{of}{hint} (allowed: {', '.join(allowed)})",
            )


# ---------------------------------------------------------------- writing


def lock_home(layout: Layout) -> tuple[Lockfile, list[str]]:
    """The lock of a home's active installed versions, and warnings about their sources.

    Reads receipts only. Raises StoreError when an active version has no receipt (its
    bundle and source are unknown). Hand-placed plugins (not installed by plugbay) are
    not part of a home's store and are not locked.
    """
    entries: list[LockEntry] = []
    warnings: list[str] = []
    for v in layout.installed():
        if not v.active:
            continue
        if v.receipt is None:
            raise StoreError(
                f"cannot lock {v.id} {v.version}: its receipt "
                f"{layout.receipt_path(v.id, v.version)} is missing or unreadable, so which "
                "bundle it is and where it came from are unknown; install it again "
                "(plugbay install --force SOURCE), then lock"
            )
        entry = LockEntry(
            v.id, v.version, v.receipt.bundle_sha256, v.receipt.source, v.receipt.signer
        )
        entries.append(entry)
        warnings += _source_warnings(entry)
    if not entries:
        warnings.append("no plugin is installed here: the lock is empty")
    return Lockfile(tuple(sorted(entries, key=lambda e: e.id))), warnings


def _source_warnings(entry: LockEntry) -> list[str]:
    kind = source_kind(entry.source)
    if kind == "dir":
        return [
            f"{entry} was installed from the folder {entry.source}: a sync builds it again "
            "and gets the locked sha256 only from the same files and the same plugbay "
            "version; for a lock that works anywhere, install a bundle (plugbay build)"
        ]
    if kind == "git":
        ref = entry.source.rpartition("@")[2] if "@" in entry.source.split("://")[-1] else ""
        if not _COMMIT.fullmatch(ref):
            return [
                f"{entry} was installed from {entry.source}, whose ref can move: a sync "
                "refuses it once it builds another bundle; pin a commit (git+URL@COMMIT)"
            ]
    if kind == "other":
        return [f"{entry} came from {entry.source!r}, which a sync cannot fetch again"]
    return []


_HEADER = (
    "The exact plugins of a home. Written by `plugbay lock`;",
    "`plugbay sync` makes a home match it.",
)


def dump_lock(lock: Lockfile, base: Path | None = None, *, header: Sequence[str] = _HEADER) -> str:
    """The TOML text of a lock; local sources inside ``base`` are written relative to it.

    ``header``: the comment lines at the top (what wrote the file, what reads it).
    """
    import tomlkit

    from .. import __version__

    doc = tomlkit.document()
    for line in header:
        doc.add(tomlkit.comment(line))
    doc.add(tomlkit.nl())
    doc.add("lock-version", LOCK_FORMAT)
    doc.add("generated-by", f"plugbay {__version__}")
    if lock.entries:
        tables = tomlkit.aot()
        for entry in sorted(lock.entries, key=lambda e: e.id):
            table = tomlkit.table()
            table.add("id", entry.id)
            table.add("version", entry.version)
            table.add("sha256", entry.sha256)
            table.add("source", _relative(lock.location(entry), base))
            if entry.signer is not None:
                table.add("signer", entry.signer)
            tables.append(table)
        doc.add("plugin", tables)
    return tomlkit.dumps(doc)


def _relative(source: str, base: Path | None) -> str:
    """A local source inside ``base``, relative to it (so a project folder can move)."""
    if base is None or source_kind(source) not in ("file", "dir"):
        return source
    root = os.path.abspath(base)
    if os.path.commonpath([root, source]) != root:
        return source
    relative = Path(os.path.relpath(source, root)).as_posix()
    # A bare name would read as a plugin id, not a folder: say it is a path.
    return relative if "/" in relative or source_kind(relative) == "file" else f"./{relative}"


def write_lock(lock: Lockfile, path: Path, *, header: Sequence[str] = _HEADER) -> Lockfile:
    """Write ``lock`` to ``path`` (replaced atomically); the lock as read back from there."""
    text = dump_lock(lock, path.parent, header=header)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LockfileError(str(path), "", f"cannot be written: {exc.strerror or exc}") from None
    return parse_lock(text, path)


# ---------------------------------------------------------------- fetching


def fetch_locked(lock: Lockfile, entry: LockEntry, artifacts: Artifacts) -> Candidate:
    """Obtain the entry's bundle from its source; refuse it unless it is the locked one.

    Raises SourceError when the source cannot be fetched (again), BundleError when what
    it gives is another plugin, another version, or other bytes than the lock's sha256.
    """
    from .sources import Requested, parse_spec

    location = lock.location(entry)
    label = f"{lock.name}: {entry}"
    kind = source_kind(entry.source)
    if kind == "other":
        raise SourceError(
            label,
            f"its source {entry.source!r} is not a path, URL or git+URL that plugbay can fetch "
            "again; install that version by hand, or lock it from a bundle",
        )
    if kind in ("file", "dir") and not os.path.exists(location):
        what = "bundle" if kind == "file" else "folder"
        raise SourceError(
            label,
            f"its source {location} does not exist here (the {what} it was installed from); "
            f"put the {what} there, or lock again from one that is",
        )
    try:
        spec = parse_spec(location)
        if isinstance(spec, Requested):
            raise SourceError(location, "is not a bundle, folder, URL or git source")
        cand = artifacts.add(spec)
    except (SourceError, BundleError) as exc:
        raise SourceError(label, f"cannot fetch its locked source: {exc}") from None
    if (cand.id, cand.version) != (entry.id, entry.version):
        raise BundleError(
            location, f"is {cand.id} {cand.version}, but {lock.name} locks {entry} to it"
        )
    assert cand.bundle is not None
    _check_sha(lock, entry, cand.bundle, location)
    return cand


def _check_sha(lock: Lockfile, entry: LockEntry, bundle: ReadBundle, location: str) -> None:
    if bundle.sha256 == entry.sha256:
        return
    rebuilt = source_kind(entry.source) in ("dir", "git")
    why = (
        " (it is built again from the source: its files, or the plugbay that builds it, "
        "changed since the lock was written)"
        if rebuilt
        else ""
    )
    raise BundleError(
        location,
        f"has sha256 {bundle.sha256}, but {lock.name} pins {entry} to sha256 {entry.sha256}: "
        f"it is not the locked bundle{why}; nothing was changed",
    )


class LockedSource:
    """``install --locked``: the lock as a source, offering the locked version of a plugin
    fetched from its locked source.

    It offers nothing (and so fetches nothing) for a plugin whose locked bundle is
    installed already, or that is installed and active and not asked for: such a plugin
    stays as it is, and if the install relies on it, ``check_changes`` says whether it is
    the locked one. Fetches at most once per id.
    """

    def __init__(
        self,
        lock: Lockfile,
        artifacts: Artifacts,
        layout: Layout,
        installed: Mapping[str, Sequence[Candidate]],
        requested: Collection[str],
    ) -> None:
        self._lock = lock
        self._artifacts = artifacts
        self._skip = {
            pid
            for pid, versions in installed.items()
            if (pid not in requested and any(c.active for c in versions))
            or _has_locked_bundle(lock, layout, pid)
        }
        self._found: dict[str, list[Candidate]] = {}

    def available(self, plugin_id: str) -> list[Candidate]:
        entry = self._lock.get(plugin_id)
        if entry is None or plugin_id in self._skip:
            return []
        if plugin_id not in self._found:
            self._found[plugin_id] = [fetch_locked(self._lock, entry, self._artifacts)]
        return list(self._found[plugin_id])

    def fetch(self, candidate: Candidate) -> ReadBundle:
        assert candidate.bundle is not None
        return candidate.bundle


def _has_locked_bundle(lock: Lockfile, layout: Layout, plugin_id: str) -> bool:
    entry = lock.get(plugin_id)
    if entry is None:
        return False
    receipt = layout.read_receipt(entry.id, entry.version)
    return receipt is not None and receipt.bundle_sha256 == entry.sha256


def allowed_versions(
    lock: Lockfile, installed: Mapping[str, Sequence[Candidate]], requested: Collection[str]
) -> dict[str, set[str]]:
    """``install --locked``: the versions each locked id may resolve to.

    The locked one; and, for an installed plugin not asked for, its active version too, so
    that plugins the install does not touch stay as they are (a kept version the install
    relies on is checked afterwards, by :func:`check_changes`).
    """
    allowed = {pid: {version} for pid, version in lock.pinned().items()}
    for pid, versions in installed.items():
        if pid in allowed and pid not in requested:
            allowed[pid].update(c.version for c in versions if c.active)
    return allowed


# ---------------------------------------------------------------- install --locked


def check_requests(
    lock: Lockfile, roots: Iterable[Requirement], explicit: Mapping[str, Candidate]
) -> None:
    """Refuse, before resolving, a request for anything ``lock`` does not pin.

    ``roots`` are the requirements asked for; ``explicit`` the candidates that bundles,
    folders, URLs and git sources given on the command line turned into.
    """
    for cand in explicit.values():
        entry = lock.get(cand.id)
        if entry is None or entry.version != cand.version:
            raise StoreError(
                f"{cand.origin} is {cand.id} {cand.version}{_not_pinned(lock, cand.id)}"
            )
        if cand.bundle is not None:
            _check_sha(lock, entry, cand.bundle, cand.origin)
    for root in roots:
        if root.id in explicit:
            continue
        entry = lock.get(root.id)
        if entry is None or not root.satisfied_by(entry.version):
            raise StoreError(f"{root.why or 'you asked for'} {root}{_not_pinned(lock, root.id)}")


def check_changes(
    lock: Lockfile, changes: Sequence[Change], chosen: Mapping[str, Candidate], layout: Layout
) -> None:
    """Refuse, before anything is written, a resolved change ``lock`` does not pin.

    Every version installed or switched to must be the locked version, from the locked
    bundle (its sha256); a version already installed and kept must be the locked bundle
    too, when the lock names its plugin.
    """
    for change in changes:
        entry = lock.get(change.id)
        if entry is None:
            if change.action == "keep":
                continue  # not installed by this command, and not the lock's business
            raise StoreError(
                f"this install needs {change.id} {change.version}{_not_pinned(lock, change.id)}"
            )
        if change.version != entry.version:
            if change.action == "keep":  # installed and relied on, but not the locked version
                raise StoreError(
                    f"this install relies on the installed {change.id} {change.version}, but "
                    f"{lock.name} pins {entry}; run `plugbay sync {lock.name}` first"
                )
            raise StoreError(
                f"this install needs {change.id} {change.version}{_not_pinned(lock, change.id)}"
            )
        cand = chosen[change.id]
        if not cand.installed:
            bundle = cand.bundle
            if bundle is None and cand.source is not None:
                bundle = cand.source.fetch(cand)  # an index: fetched now, before any write
            if bundle is not None:
                _check_sha(lock, entry, bundle, cand.origin)
            continue
        receipt = layout.read_receipt(change.id, entry.version)
        if receipt is None or receipt.bundle_sha256 != entry.sha256:
            raise StoreError(
                f"the installed {entry} is not the bundle {lock.name} pins (sha256 "
                f"{entry.sha256[:12]}…); run `plugbay sync {lock.name}` to install the locked one"
            )


def _not_pinned(lock: Lockfile, plugin_id: str) -> str:
    """``, but the lock pins …`` / ``, which the lock does not pin``, and what to do."""
    entry = lock.get(plugin_id)
    what = (
        f", which {lock.name} does not pin" if entry is None else f", but {lock.name} pins {entry}"
    )
    return (
        f"{what}: install --locked installs only what the lock pins (to change the lock, "
        "install without --locked, then run plugbay lock)"
    )


# ---------------------------------------------------------------- sync


SyncAction = Literal["install", "reinstall", "switch", "keep"]


class SyncStep(msgspec.Struct, frozen=True):
    """What a sync does for one locked plugin; ``previous``: the version active before."""

    entry: LockEntry
    action: SyncAction
    previous: str | None
    reason: str = ""  # why a version already there is installed again


class SyncPlan(msgspec.Struct, frozen=True):
    """Steps per locked plugin, and the installed versions the lock does not name."""

    steps: tuple[SyncStep, ...]
    unlocked: tuple[InstalledVersion, ...]

    @property
    def fetches(self) -> list[LockEntry]:
        """The entries whose bundle must be fetched."""
        return [s.entry for s in self.steps if s.action in ("install", "reinstall")]


def plan_sync(
    lock: Lockfile, installed: Sequence[InstalledVersion], damaged: Collection[tuple[str, str]]
) -> SyncPlan:
    """What makes the ``installed`` versions match ``lock`` (pure: no I/O).

    A locked version already installed is kept (or switched to) only when its receipt
    records the locked bundle's sha256 and its files are intact (not in ``damaged``, the
    ``(id, version)`` pairs ``verify`` found changed); otherwise it is installed again.
    """
    by_id: dict[str, list[InstalledVersion]] = {}
    for v in installed:
        by_id.setdefault(v.id, []).append(v)
    steps: list[SyncStep] = []
    for entry in sorted(lock.entries, key=lambda e: e.id):
        versions = by_id.get(entry.id, [])
        previous = next((v.version for v in versions if v.active), None)
        have = next((v for v in versions if v.version == entry.version), None)
        if have is None:
            steps.append(SyncStep(entry, "install", previous))
            continue
        reason = _reinstall_reason(have, entry, damaged)
        if reason:
            steps.append(SyncStep(entry, "reinstall", previous, reason))
        elif have.active:
            steps.append(SyncStep(entry, "keep", previous))
        else:
            steps.append(SyncStep(entry, "switch", previous))
    locked = {(e.id, e.version) for e in lock.entries}
    unlocked = tuple(v for v in installed if (v.id, v.version) not in locked)
    return SyncPlan(tuple(steps), unlocked)


def _reinstall_reason(
    have: InstalledVersion, entry: LockEntry, damaged: Collection[tuple[str, str]]
) -> str:
    if have.receipt is None:
        return f"{entry} has no receipt, so which bundle it is is unknown"
    if have.receipt.bundle_sha256 != entry.sha256:
        return (
            f"{entry} is installed from another bundle (sha256 "
            f"{have.receipt.bundle_sha256[:12]}…, locked {entry.sha256[:12]}…)"
        )
    if (entry.id, entry.version) in damaged:
        return f"{entry} has files that differ from its bundle (see plugbay verify {entry.id})"
    return ""
