"""Discovery: search paths → :class:`Catalog`, with a persistent metadata cache.

Discovery reads manifests and never imports plugin code. A search path holds plugin
folders in either layout, to a depth of three folders:

- hand-placed: ``<path>/<folder>/plugin.toml``;
- installed (DESIGN §3): ``<path>/<ns>/<name>/<version>/plugin.toml`` with
  ``<path>/<ns>/<name>/active`` naming the active version (replaced atomically).

The cache (one msgpack file) remembers, per folder, its modification time and what it
held, and per manifest its nanosecond mtime, size and parsed content. A warm start reads
that one file and stats each installed plugin's folder and manifest; nothing unchanged is
parsed again. A corrupt, truncated or foreign cache is ignored and rebuilt.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from .errors import ManifestError
from .manifest import (
    MANIFEST_NAMES,
    Manifest,
    load_manifest,
    manifest_from_json_member,
    manifest_from_mapping,
    parse_manifest,
)
from .store.layout import generation_stamp, write_cache_file
from .versions import parse_version

__all__ = [
    "ORIGINS",
    "Catalog",
    "DiscoveryReporter",
    "PluginRecord",
    "Problem",
    "SearchPath",
    "discover",
    "remember_store",
]

#: Present in every version folder the store installed.
STORE_MARK = "MANIFEST.json"

#: Search-path origins, lowest precedence first (DESIGN §1).
ORIGINS = ("builtin", "system", "user", "project", "config", "api")

_MAX_DEPTH = 3
_CACHE_FORMAT = 6
# A file or folder changed this recently may change again within the file system's
# timestamp granularity without its mtime moving; such entries are not trusted next time.
_RACY_NS = 2_000_000_000
_SKIP = frozenset({"__pycache__", "node_modules", "site-packages"})

Severity = Literal["error", "warning", "info"]


class Problem(msgspec.Struct, frozen=True, gc=False):
    """Something wrong (or worth knowing) found while discovering or planning."""

    severity: Severity
    code: str
    message: str
    plugin_id: str | None = None
    path: str | None = None


class SearchPath(msgspec.Struct, frozen=True):
    """One place plugins are found; a larger ``precedence`` shadows a smaller one."""

    origin: str
    path: Path
    precedence: int


class PluginRecord(msgspec.Struct, frozen=True, gc=False):
    """One discovered plugin version: its manifest and where it was found."""

    manifest: Manifest
    path: str
    manifest_path: str
    origin: str
    precedence: int
    active: bool = True
    shadowed: bool = False
    #: ``namespace.name`` (filled in from the manifest; planning asks for it often)
    id: str = ""
    #: ``id@version``: unique among the records of one search path
    key: str = ""

    def __post_init__(self) -> None:
        if self.key:
            return  # decoded from the cache with both already there: the warm path
        plugin_id = self.manifest.id
        msgspec.structs.force_setattr(self, "id", plugin_id)
        msgspec.structs.force_setattr(self, "key", f"{plugin_id}@{self.manifest.plugin.version}")

    @property
    def version(self) -> str:
        return self.manifest.plugin.version


class Catalog(msgspec.Struct, frozen=True):
    """Everything discovery found: plugin records (all versions) and problems."""

    records: tuple[PluginRecord, ...]
    problems: tuple[Problem, ...]
    search_paths: tuple[SearchPath, ...] = ()
    # Built from ``records``: comparing it too (a Struct compares every field) changes no
    # comparison's result.
    _by_id: dict[str, list[PluginRecord]] = msgspec.field(default_factory=dict)
    #: Names this exact catalog when it was answered wholly from the cache (every search
    #: path from its snapshot, entry points from their cache entry): the same fingerprint
    #: means the same records and problems. None when anything was looked at on disk.
    fingerprint: bytes | None = None

    def __post_init__(self) -> None:
        for r in self.records:
            self._by_id.setdefault(r.id, []).append(r)

    def __repr__(self) -> str:
        return (
            f"Catalog(records={self.records!r}, problems={self.problems!r}, "
            f"search_paths={self.search_paths!r})"
        )

    def __eq__(self, other: object) -> bool:
        # What was found, not how: a catalog read from disk equals the same one from cache.
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Catalog)
        mine = (self.records, self.problems, self.search_paths)
        return mine == (other.records, other.problems, other.search_paths)

    __hash__ = None  # type: ignore[assignment]  # (manifests hold dicts: never hashable)

    def ids(self) -> list[str]:
        """Every plugin id found, sorted."""
        return sorted(self._by_id)

    def versions(self, plugin_id: str, *, include_shadowed: bool = False) -> list[PluginRecord]:
        """The records of one id, the ones that may load first (unshadowed)."""
        found = self._by_id.get(plugin_id, [])
        return found if include_shadowed else [r for r in found if not r.shadowed]

    def preferred(self, plugin_id: str) -> PluginRecord | None:
        """The version that loads when nothing else decides: active, else the highest."""
        found = self.versions(plugin_id)
        if not found:
            return None
        return max(found, key=lambda r: (r.active, parse_version(r.version)))


class DiscoveryReporter:
    """Receives discovery progress; every method is optional (empty by default)."""

    def folder_found(self, path: str) -> None:
        """A plugin folder was found and is about to be read (or taken from the cache)."""

    def manifest_parsed(self, path: str) -> None:
        """A manifest was parsed from disk (not taken from the cache)."""


# ---------------------------------------------------------------- cache


class _Folder(msgspec.Struct, array_like=True, gc=False):
    mtime_ns: int
    manifest_name: str | None
    active: str | None
    children: tuple[str, ...]
    problems: tuple[Problem, ...] = ()
    #: a plugin folder the store installed (it holds MANIFEST.json)
    installed: bool = False
    #: for a search path's root: the store's generation stamp when it was listed
    generation: bytes = b""


class _Parsed(msgspec.Struct, array_like=True, gc=False):
    mtime_ns: int
    size: int
    manifest: Manifest | None
    problem: Problem | None


class _EntryPoints(msgspec.Struct, array_like=True):
    key: tuple[tuple[str, int], ...]
    records: tuple[PluginRecord, ...]
    problems: tuple[Problem, ...]
    #: package folders and manifests the records came from, with their mtimes
    watched: tuple[tuple[str, int], ...] = ()


class _Snapshot(msgspec.Struct, array_like=True, gc=False):
    """Everything one search path held, when the store owns all of it."""

    generation: bytes
    mtime_ns: int
    records: tuple[PluginRecord, ...]
    problems: tuple[Problem, ...]


class _CacheFile(msgspec.Struct):
    format: int
    producer: str
    # Raw: decoded only when a search path has to be checked folder by folder.
    folders: msgspec.Raw
    manifests: msgspec.Raw
    entry_points: dict[str, _EntryPoints] = {}
    snapshots: dict[str, _Snapshot] = {}


def _producer() -> str:
    from . import __version__

    return f"plugbay {__version__}"


class _Cache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._folders: dict[str, _Folder] | None = {}
        self._manifests: dict[str, _Parsed] | None = {}
        self._raw: tuple[msgspec.Raw, msgspec.Raw] | None = None
        self.entry_points: dict[str, _EntryPoints] = {}
        self.snapshots: dict[str, _Snapshot] = {}
        self.seen_folders: set[str] = set()
        self.seen_manifests: set[str] = set()
        #: search paths answered from their snapshot: their folder entries stay as they are
        self.snapshot_roots: set[str] = set()
        #: set when only some search paths were scanned (each root, then each root plus a
        #: separator): the entries of the others stay as they are
        self.only: tuple[str, ...] | None = None
        self.dirty = False
        if path is not None:
            self._read(path)

    @property
    def folders(self) -> dict[str, _Folder]:
        if self._folders is None:
            self._decode()
        assert self._folders is not None
        return self._folders

    @property
    def manifests(self) -> dict[str, _Parsed]:
        if self._manifests is None:
            self._decode()
        assert self._manifests is not None
        return self._manifests

    def _decode(self) -> None:
        assert self._raw is not None
        try:
            self._folders = msgspec.msgpack.decode(self._raw[0], type=dict[str, _Folder])
            self._manifests = msgspec.msgpack.decode(self._raw[1], type=dict[str, _Parsed])
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._folders, self._manifests, self.dirty = {}, {}, True

    def _read(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError:
            return
        try:
            cache = msgspec.msgpack.decode(data, type=_CacheFile)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.dirty = True  # corrupt or from another format: rebuild it
            return
        if cache.format != _CACHE_FORMAT or cache.producer != _producer():
            self.dirty = True
            return
        self._folders = self._manifests = None
        self._raw = (cache.folders, cache.manifests)
        self.entry_points = cache.entry_points
        self.snapshots = cache.snapshots

    def _kept(self, key: str, seen: set[str], roots: tuple[str, ...]) -> bool:
        if key in seen or (bool(roots) and key.startswith(roots)):
            return True
        only = self.only
        return only is not None and not (key in only or key.startswith(only))

    def save(self) -> None:
        if self.path is None:
            return
        if self._folders is None and not self.dirty:
            return  # every search path came from its snapshot: nothing to write
        # Entries not seen this time (removed folders) are dropped; a folder seen but not
        # stored (unreadable) is no reason to write the file again.
        roots = tuple(r + os.sep for r in self.snapshot_roots) + tuple(self.snapshot_roots)
        folders = {k: v for k, v in self.folders.items() if self._kept(k, self.seen_folders, roots)}
        manifests = {
            k: v for k, v in self.manifests.items() if self._kept(k, self.seen_manifests, roots)
        }
        stale = len(folders) != len(self.folders) or len(manifests) != len(self.manifests)
        if not (self.dirty or stale):
            return
        body = _CacheFile(
            _CACHE_FORMAT,
            _producer(),
            msgspec.Raw(msgspec.msgpack.encode(folders)),
            msgspec.Raw(msgspec.msgpack.encode(manifests)),
            self.entry_points,
            self.snapshots,
        )
        write_cache_file(self.path, msgspec.msgpack.encode(body))


# ---------------------------------------------------------------- scanning


class _Scan(msgspec.Struct):
    cache: _Cache
    reporter: DiscoveryReporter
    now_ns: int
    trust_store: bool = True
    #: the store has just committed a change under its lock (see remember_store): what
    #: it installed is final, however recent its mtimes
    settled: bool = False
    generations: dict[str, bytes] = msgspec.field(default_factory=dict)
    records: list[PluginRecord] = msgspec.field(default_factory=list)
    problems: list[Problem] = msgspec.field(default_factory=list)
    #: what answered each part of the catalog from the cache (see Catalog.fingerprint);
    #: None once a part had to be read from disk
    sources: list[object] | None = msgspec.field(default_factory=list)

    def read_from_disk(self) -> None:
        self.sources = None

    def answered(self, *what: object) -> None:
        if self.sources is not None:
            self.sources.append(what)


class _Root(msgspec.Struct):
    """One search path being scanned, and the ``id@version``s found in it so far."""

    sp: SearchPath
    seen: dict[str, str] = msgspec.field(default_factory=dict)
    #: the store's generation stamp is unchanged: installed versions are taken from the cache
    trusted: bool = False


def discover(
    search_paths: Sequence[SearchPath],
    *,
    cache_path: Path | None = None,
    builtins: Iterable[PluginRecord] = (),
    entry_point_group: str | None = None,
    path_entries: Sequence[str] = (),
    reporter: DiscoveryReporter | None = None,
    trust_store: bool = True,
) -> Catalog:
    """Find every plugin under ``search_paths`` (lowest precedence first).

    ``builtins`` are records the caller already has (registered in code). With
    ``entry_point_group``, the distributions on ``path_entries`` (normally ``sys.path``)
    are searched for built-in plugins in that entry-point group. With ``cache_path`` the
    metadata cache is read from and, if anything changed, written back to that file.
    Nothing a search path holds makes this raise: unreadable folders, bad manifests and
    symbolic-link loops become :class:`Problem` entries of the catalog.

    With ``trust_store`` (the default), version folders the store installed are taken
    from the cache while the store's generation stamp is unchanged, without a ``stat``
    each; ``trust_store=False`` checks every file (``plugbay doctor`` does).
    """
    cache = _Cache(cache_path)
    scan = _Scan(cache, reporter or DiscoveryReporter(), time.time_ns(), trust_store)
    if not trust_store or cache_path is None:
        scan.read_from_disk()
    scan.records.extend(builtins)
    scan.answered("builtins", *scan.records)
    if entry_point_group is not None:
        found, problems = _entry_points(scan, entry_point_group, path_entries)
        scan.records.extend(found)
        scan.problems.extend(problems)
    for sp in search_paths:
        _scan_root(scan, sp)
    _record_generations(scan)
    cache.save()
    records, shadow_problems = _mark_shadowed(scan.records, search_paths)
    return Catalog(
        tuple(records),
        tuple(scan.problems + shadow_problems),
        tuple(search_paths),
        fingerprint=_fingerprint(scan, search_paths),
    )


def remember_store(plugins: Path, cache_path: Path) -> None:
    """Bring the store's search path up to date in discovery's cache, right after a change.

    The store calls this under its lock once a change is committed, so that the next
    start (the host's, ``plugbay list``) takes the store's plugins from a snapshot instead
    of reading every manifest again. Only that search path is scanned; what the cache
    holds for others stays. Its origin and precedence are the host's usual ones for the
    home's plugins folder (``user``, 2); a host that ranks it otherwise relabels the
    records when it reads them.
    """
    cache = _Cache(cache_path)
    root = os.path.abspath(plugins)
    cache.only = (root, _join(root, ""))
    scan = _Scan(cache, DiscoveryReporter(), time.time_ns(), settled=True)
    _scan_root(scan, SearchPath("user", Path(root), 2))
    _record_generations(scan)
    cache.save()


def _record_generations(scan: _Scan) -> None:
    """Keep, with each search path's root listing, the stamp it was listed under."""
    cache = scan.cache
    for root, stamp in scan.generations.items():
        folder = cache.folders.get(root)
        if folder is not None and folder.mtime_ns >= 0:
            cache.folders[root] = msgspec.structs.replace(folder, generation=stamp)
            cache.dirty = True


def _fingerprint(scan: _Scan, search_paths: Sequence[SearchPath]) -> bytes | None:
    """What names a catalog answered wholly from the cache (see Catalog.fingerprint): the
    sources themselves, encoded (a few hundred bytes but for code-registered built-ins;
    not hashed, as hashlib alone would add some 4 MB to the host)."""
    if scan.sources is None:
        return None
    paths = [(sp.origin, str(sp.path), sp.precedence) for sp in search_paths]
    return msgspec.msgpack.encode([_producer(), _CACHE_FORMAT, paths, scan.sources])


def _scan_root(scan: _Scan, sp: SearchPath) -> None:
    root = os.path.abspath(os.path.expanduser(str(sp.path)))
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        scan.answered("absent", root)
        return  # a search path that does not exist simply holds no plugins
    except OSError as exc:
        scan.read_from_disk()
        scan.problems.append(_os_problem(root, exc))
        return
    if not _is_dir_mode(st.st_mode):
        scan.problems.append(
            Problem(
                "warning",
                "search-path.not-a-folder",
                f"{root} is not a folder; it is not searched for plugins",
                path=root,
            )
        )
        return
    snapshot = scan.cache.snapshots.get(root)
    if (
        scan.trust_store
        and snapshot is not None
        and snapshot.mtime_ns == st.st_mtime_ns
        and snapshot.generation == generation_stamp(root)
    ):
        # The store changed nothing here and no folder was added or removed at the top.
        scan.cache.snapshot_roots.add(root)
        scan.records.extend(_with_origin(snapshot.records, sp))
        scan.problems.extend(snapshot.problems)
        scan.answered("snapshot", root, snapshot.generation, snapshot.mtime_ns)
        return
    scan.read_from_disk()
    first = len(scan.records), len(scan.problems)
    trusted = _generation_unchanged(scan, root)
    _visit(scan, _Root(sp, trusted=trusted), root, 0, st.st_mtime_ns)
    _remember(scan, root, st.st_mtime_ns, first)


def _with_origin(records: tuple[PluginRecord, ...], sp: SearchPath) -> list[PluginRecord]:
    if all(r.origin == sp.origin and r.precedence == sp.precedence for r in records):
        return list(records)
    return [msgspec.structs.replace(r, origin=sp.origin, precedence=sp.precedence) for r in records]


def _remember(scan: _Scan, root: str, mtime_ns: int, first: tuple[int, int]) -> None:
    """Keep a snapshot of ``root`` when the store installed everything found in it.

    A search path with no store stamp gets one only while it holds no plugin at all (an
    empty folder stays empty until its mtime moves).
    """
    cache = scan.cache
    records = tuple(scan.records[first[0] :])
    stamp = scan.generations.get(root) or generation_stamp(root)
    root_folder = cache.folders.get(root)
    installed = all(
        (f := cache.folders.get(r.path)) is not None and f.installed and f.mtime_ns >= 0
        for r in records
    )
    if (
        not scan.trust_store
        or (not stamp and records)
        or root_folder is None
        or root_folder.mtime_ns != mtime_ns
        or not installed
    ):
        if cache.snapshots.pop(root, None) is not None:
            cache.dirty = True
        return
    snapshot = _Snapshot(stamp, mtime_ns, records, tuple(scan.problems[first[1] :]))
    if cache.snapshots.get(root) != snapshot:
        cache.snapshots[root] = snapshot
        cache.dirty = True


def _generation_unchanged(scan: _Scan, root: str) -> bool:
    """Whether the store has changed nothing under ``root`` since the cache was written.

    The store writes new random content to ``<root>/.generation`` in every change it
    commits, so an unchanged stamp means every version folder it installed is as cached.
    """
    stamp = generation_stamp(root)
    if not scan.trust_store or not stamp:
        return False
    snapshot = scan.cache.snapshots.get(root)
    if snapshot is not None and snapshot.generation == stamp:
        return True
    cached = scan.cache.folders.get(root)
    if cached is not None and cached.generation == stamp:
        return True
    scan.generations[root] = stamp  # recorded with the root's listing when it is saved
    return False


def _is_dir_mode(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


def _join(folder: str, name: str) -> str:
    # os.path.join costs more than the stat it feeds on a warm run.
    return folder + name if folder.endswith(os.sep) else folder + os.sep + name


def _os_problem(path: str, exc: OSError) -> Problem:
    """A folder or link that cannot be followed, as a problem a user can act on."""
    if exc.errno == errno.ELOOP:
        return _link_loop(path, "is a symbolic link that leads back to itself")
    reason = exc.strerror or str(exc)
    fix = " — fix its permissions" if exc.errno in (errno.EACCES, errno.EPERM) else ""
    return Problem(
        "warning",
        "folder.unreadable",
        f"{path} cannot be read ({reason}); its plugins are skipped{fix}",
        path=path,
    )


def _link_loop(path: str, what: str) -> Problem:
    return Problem(
        "warning",
        "folder.symlink-loop",
        f"{path} {what}; it is skipped (remove the link)",
        path=path,
    )


def _visit(
    scan: _Scan, root: _Root, path: str, depth: int, mtime_ns: int, *, active: bool = True
) -> None:
    folder = _folder(scan, path, mtime_ns)
    if folder is None:
        return
    scan.problems.extend(folder.problems)
    if folder.manifest_name is not None:
        _read_plugin(scan, root, path, folder.manifest_name, active=active)
    elif depth < _MAX_DEPTH:
        _visit_children(scan, root, path, depth, folder)


def _visit_children(scan: _Scan, root: _Root, path: str, depth: int, folder: _Folder) -> None:
    first_record = len(scan.records)
    prefix = _join(path, "")
    for child in folder.children:
        child_path = prefix + child
        active = folder.active is None or folder.active == child
        cached = scan.cache.folders.get(child_path)
        if (
            root.trusted
            and cached is not None
            and _take_installed(scan, root, child_path, cached, active=active, depth=depth + 1)
        ):
            continue
        if cached is not None and cached.manifest_name is not None and cached.mtime_ns >= 0:
            # A cached plugin folder: its manifest's own stat tells whether it changed.
            # Its folder is only listed again if the manifest is gone.
            scan.cache.seen_folders.add(child_path)
            if _read_plugin(scan, root, child_path, cached.manifest_name, active=active, fast=True):
                continue
        try:
            st = os.stat(child_path)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed while we looked: it is simply not there
        except PermissionError as exc:
            # ``path`` itself cannot be searched (a cached listing hid that): say so once.
            scan.problems.append(_os_problem(path, exc))
            return
        except OSError as exc:
            scan.problems.append(_os_problem(child_path, exc))
            continue
        if _is_dir_mode(st.st_mode):
            _visit(scan, root, child_path, depth + 1, st.st_mtime_ns, active=active)
    if folder.active is not None and folder.active not in folder.children:
        _check_active(scan, path, folder.active, scan.records[first_record:])


def _take_installed(
    scan: _Scan, root: _Root, path: str, folder: _Folder, *, active: bool, depth: int
) -> bool:
    """Add the store-installed plugins under a cached folder without touching the disk.

    Only when everything under ``path`` is cached and store-installed; otherwise nothing
    is added and False sends the caller down the path that checks the disk.
    """
    found: list[tuple[str, _Folder, _Parsed, bool]] = []
    if not _collect_installed(scan, path, folder, found, active=active, depth=depth):
        return False
    cache = scan.cache
    sp = root.sp
    for folder_path, f, parsed, is_active in found:
        cache.seen_folders.add(folder_path)
        if f.manifest_name is None:
            continue
        mpath = _join(folder_path, f.manifest_name)
        cache.seen_manifests.add(mpath)
        assert parsed.manifest is not None
        record = PluginRecord(
            parsed.manifest, folder_path, mpath, sp.origin, sp.precedence, is_active
        )
        key = f"{record.id}@{parsed.manifest.plugin.version}"
        if key in root.seen:
            return True  # a duplicate: the slow path reported it when the cache was made
        root.seen[key] = folder_path
        scan.records.append(record)
    scan.problems.extend(p for _, f, _, _ in found for p in f.problems)
    return True


def _collect_installed(
    scan: _Scan,
    path: str,
    folder: _Folder,
    out: list[tuple[str, _Folder, _Parsed, bool]],
    *,
    active: bool,
    depth: int,
) -> bool:
    if folder.mtime_ns < 0:
        return False  # racy or untrusted when cached: check the disk
    if folder.manifest_name is not None:
        parsed = scan.cache.manifests.get(_join(path, folder.manifest_name))
        if not folder.installed or parsed is None or parsed.manifest is None or parsed.mtime_ns < 0:
            return False
        out.append((path, folder, parsed, active))
        return True
    if depth >= _MAX_DEPTH or not folder.children:
        return False
    if folder.active is not None and folder.active not in folder.children:
        return False  # the slow path reports the stale active file
    out.append((path, folder, _NO_PARSED, active))
    prefix = _join(path, "")
    for child in folder.children:
        sub = scan.cache.folders.get(prefix + child)
        child_active = folder.active is None or folder.active == child
        if sub is None or not _collect_installed(
            scan, prefix + child, sub, out, active=child_active, depth=depth + 1
        ):
            return False
    return True


_NO_PARSED = _Parsed(-1, -1, None, None)


def _check_active(scan: _Scan, path: str, active: str, found: list[PluginRecord]) -> None:
    """Report an ``active`` file naming a version that is not installed beside it."""
    if not found:
        return
    best = max(found, key=lambda r: parse_version(r.version))
    active_file = _join(path, "active")
    scan.problems.append(
        Problem(
            "warning",
            "plugin.active-missing",
            f"{active_file} names version {active!r}, which is not installed; "
            f"{best.id} {best.version} is used instead (run: plugbay use {best.key})",
            plugin_id=best.id,
            path=active_file,
        )
    )


class _Listing(msgspec.Struct):
    """What one folder holds, as far as discovery cares."""

    dirs: list[str] = msgspec.field(default_factory=list)
    links: set[str] = msgspec.field(default_factory=set)
    files: set[str] = msgspec.field(default_factory=set)
    problems: list[Problem] = msgspec.field(default_factory=list)
    #: False when something could not be read: permissions change without moving mtimes
    trusted: bool = True


def _folder(scan: _Scan, path: str, mtime_ns: int) -> _Folder | None:
    """The folder at ``path`` from the cache if its mtime is unchanged, else listed now."""
    cache = scan.cache
    cached = cache.folders.get(path)
    cache.seen_folders.add(path)
    if cached is not None and cached.mtime_ns == mtime_ns:
        return cached
    try:
        listing = _list(path)
    except (FileNotFoundError, NotADirectoryError):
        cache.folders.pop(path, None)
        return None
    except OSError as exc:
        scan.problems.append(_os_problem(path, exc))
        return None
    manifest_name = next((n for n in MANIFEST_NAMES if n in listing.files), None)
    installed = manifest_name is not None and STORE_MARK in listing.files
    if installed:
        # A version the store installed is described by its MANIFEST.json: the same
        # manifest, already normalised to JSON, so nothing slow is parsed (decision 0006).
        manifest_name = STORE_MARK
    if manifest_name is not None:
        # A plugin folder is a leaf: what else it holds is the plugin's business.
        children: tuple[str, ...] = ()
        active = None
        listing.problems.clear()
        listing.trusted = True
    else:
        children = tuple(sorted(_followable(path, listing)))
        active = _read_active(path, listing) if "active" in listing.files else None
    # Settled: old enough, or made by the store's change that has just committed (not a
    # hand-placed plugin folder: one may be edited within the same timestamp tick).
    trusted = listing.trusted and (
        scan.now_ns - mtime_ns >= _RACY_NS
        or (scan.settled and (installed or manifest_name is None))
    )
    folder = _Folder(
        mtime_ns if trusted else -1,
        manifest_name,
        active,
        children,
        tuple(listing.problems),
        installed,
    )
    if folder != cached:
        cache.dirty = True
    cache.folders[path] = folder
    return folder


def _list(path: str) -> _Listing:
    out = _Listing()
    with os.scandir(path) as it:
        for entry in it:
            name = entry.name
            if name.startswith(".") or name in _SKIP:
                continue
            try:
                if entry.is_dir():
                    out.dirs.append(name)
                    if entry.is_symlink():
                        out.links.add(name)
                elif entry.is_file():
                    out.files.add(name)
            except OSError as exc:
                out.problems.append(_os_problem(entry.path, exc))
                out.trusted = out.trusted and exc.errno == errno.ELOOP
    return out


def _followable(path: str, listing: _Listing) -> list[str]:
    """The sub-folders worth visiting: not symbolic links that lead back to an ancestor."""
    if not listing.links:
        return listing.dirs
    real_path = os.path.realpath(path)
    out = []
    for name in listing.dirs:
        if name in listing.links:
            link = _join(path, name)
            try:
                target = os.path.realpath(link, strict=True)
            except OSError as exc:
                listing.problems.append(_os_problem(link, exc))
                listing.trusted = listing.trusted and exc.errno == errno.ELOOP
                continue
            prefix = target if target.endswith(os.sep) else target + os.sep
            if real_path == target or real_path.startswith(prefix):
                listing.problems.append(
                    _link_loop(link, f"links to {target}, a folder that contains it")
                )
                continue
        out.append(name)
    return out


def _read_active(path: str, listing: _Listing) -> str | None:
    active_file = _join(path, "active")
    try:
        with open(active_file, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except UnicodeDecodeError:
        reason = "it is not UTF-8 text"
    listing.problems.append(
        Problem(
            "warning",
            "plugin.active-unreadable",
            f"{active_file} cannot be read ({reason}); the highest version installed there "
            "is used — run plugbay use ID@VERSION to rewrite it",
            path=active_file,
        )
    )
    listing.trusted = False
    return None


def _read_plugin(
    scan: _Scan, root: _Root, folder: str, manifest_name: str, *, active: bool, fast: bool = False
) -> bool:
    """Add the plugin in ``folder``; False if its manifest is gone (list the folder again).

    With ``fast`` (a cached folder taken on trust), any trouble reaching the manifest
    returns False too, so that the caller takes the slow path, which reports it.
    """
    mpath = _join(folder, manifest_name)
    try:
        st = os.stat(mpath)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if fast:
            return False
        scan.problems.append(_os_problem(folder, exc))
        return True
    scan.reporter.folder_found(folder)
    parsed = _parsed(scan, mpath, st)
    if parsed is None:
        return False
    if parsed.problem is not None:
        scan.problems.append(parsed.problem)
        return True
    assert parsed.manifest is not None
    sp = root.sp
    record = PluginRecord(parsed.manifest, folder, mpath, sp.origin, sp.precedence, active)
    key = f"{record.id}@{parsed.manifest.plugin.version}"
    first = root.seen.get(key)
    if first is not None:
        scan.problems.append(
            Problem(
                "warning",
                "plugin.duplicate",
                f"{key} is in both {first} and {folder} of one search path; "
                f"{first} is used — remove one",
                plugin_id=record.id,
                path=folder,
            )
        )
        return True
    root.seen[key] = folder
    scan.records.append(record)
    return True


def _parsed(scan: _Scan, mpath: str, st: os.stat_result) -> _Parsed | None:
    """The manifest at ``mpath`` from the cache if unchanged, else parsed now (None: gone)."""
    cache = scan.cache
    cache.seen_manifests.add(mpath)
    cached = cache.manifests.get(mpath)
    if cached is not None and cached.mtime_ns == st.st_mtime_ns and cached.size == st.st_size:
        return cached
    trusted = scan.now_ns - st.st_mtime_ns >= _RACY_NS or (
        scan.settled and mpath.endswith(STORE_MARK)
    )
    manifest: Manifest | None = None
    problem: Problem | None = None
    try:
        with open(mpath, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        cache.manifests.pop(mpath, None)
        return None  # removed since the stat
    except OSError as exc:
        # Unreadable now; a permission fix does not move the mtime, so ask again next time.
        trusted = False
        error = ManifestError(mpath, "", f"cannot be read: {exc.strerror or exc}")
        problem = Problem("error", "manifest.invalid", str(error), path=mpath)
    else:
        try:
            if mpath.endswith(STORE_MARK):
                manifest = manifest_from_json_member(data, mpath)
            else:
                manifest = parse_manifest(data, mpath)
        except ManifestError as exc:
            problem = Problem("error", "manifest.invalid", str(exc), path=mpath)
    scan.reporter.manifest_parsed(mpath)
    parsed = _Parsed(st.st_mtime_ns if trusted else -1, st.st_size, manifest, problem)
    if parsed != cached:
        cache.dirty = True
    cache.manifests[mpath] = parsed
    return parsed


def _mark_shadowed(
    records: list[PluginRecord], search_paths: Sequence[SearchPath]
) -> tuple[list[PluginRecord], list[Problem]]:
    ids = [r.id for r in records]
    top: dict[str, int] = {}
    contested = False
    for pid, r in zip(ids, records, strict=True):
        best = top.get(pid)
        if best is None or best < r.precedence:
            contested = contested or best is not None
            top[pid] = r.precedence
        elif best > r.precedence:
            contested = True
    if not contested:
        return records, []
    shadowing = {sp.precedence: sp for sp in search_paths}
    out: list[PluginRecord] = []
    problems: list[Problem] = []
    for pid, r in zip(ids, records, strict=True):
        if r.precedence < top[pid]:
            winner = shadowing.get(top[pid])
            where = f"{winner.origin} path {winner.path}" if winner else "a higher-precedence path"
            problems.append(
                Problem(
                    "info",
                    "plugin.shadowed",
                    f"{r.key} ({r.origin}, {r.path}) is shadowed by the copy in the {where}",
                    plugin_id=pid,
                    path=r.path,
                )
            )
            out.append(msgspec.structs.replace(r, shadowed=True))
        else:
            out.append(r)
    return out, problems


# ---------------------------------------------------------------- entry points


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _entry_points(
    scan: _Scan, group: str, path_entries: Sequence[str]
) -> tuple[tuple[PluginRecord, ...], tuple[Problem, ...]]:
    """Built-in plugins from Python entry points in ``group`` (DESIGN §1).

    Reads each distribution's ``entry_points.txt`` (never its METADATA), takes the
    version from the ``.dist-info`` folder name, and uses a manifest in the entry's
    top-level package folder when there is one. Cached, keyed on the modification times
    of the ``path_entries`` folders (which change whenever a distribution is installed
    or removed) and of the package folders and manifests the plugins came from.
    """
    cache = scan.cache
    key = tuple((entry, _mtime(entry)) for entry in path_entries)
    # One entry per group and path list: a console script and `python -c` see different
    # sys.path lists, and each keeps its own entry instead of evicting the other's.
    slot = "\0".join([group, *path_entries])
    cached = cache.entry_points.get(slot)
    if (
        cached is not None
        and cached.key == key
        and all(_mtime(path) == mtime for path, mtime in cached.watched)
    ):
        scan.answered("entry points", slot, cached.key, cached.watched)
        return cached.records, cached.problems
    scan.read_from_disk()
    records, problems, watched = _scan_entry_points(group, path_entries, scan.reporter)
    if all(scan.now_ns - mtime >= _RACY_NS for _, mtime in (*key, *watched)):
        cache.entry_points[slot] = _EntryPoints(
            key, tuple(records), tuple(problems), tuple(watched)
        )
        cache.dirty = True
    elif slot in cache.entry_points:
        del cache.entry_points[slot]
        cache.dirty = True
    return tuple(records), tuple(problems)


def _scan_entry_points(
    group: str, path_entries: Sequence[str], reporter: DiscoveryReporter
) -> tuple[list[PluginRecord], list[Problem], list[tuple[str, int]]]:
    records: list[PluginRecord] = []
    problems: list[Problem] = []
    watched: list[tuple[str, int]] = []
    seen: set[str] = set()
    for entry in path_entries:
        try:
            names = sorted(os.listdir(entry))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            info = os.path.join(entry, name)
            found, problem = _entry_points_of(info, group)
            if problem is not None:
                problems.append(problem)
            version = _version_from_info_name(name)
            for ep_name, value in found:
                if ep_name in seen:
                    continue  # an earlier path entry has it, as for imports
                seen.add(ep_name)
                record, problem, used = _entry_point_record(
                    ep_name, value, version=version, site=entry, info=info
                )
                watched.extend(used)
                if record is not None:
                    records.append(record)
                    reporter.manifest_parsed(record.manifest_path)
                if problem is not None:
                    problems.append(problem)
                    reporter.manifest_parsed(problem.path or info)
    return records, problems, watched


def _entry_points_of(info: str, group: str) -> tuple[list[tuple[str, str]], Problem | None]:
    """``(name, value)`` of the entry points in ``group`` that one distribution declares.

    Another distribution's broken ``entry_points.txt`` is reported, never raised: it
    must not stop the host from starting.
    """
    path = os.path.join(info, "entry_points.txt")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return [], None
    except OSError as exc:
        return [], _bad_entry_points(path, f"cannot be read ({exc.strerror or exc})")
    except UnicodeDecodeError:
        return [], _bad_entry_points(path, "is not UTF-8 text")
    if group not in text:
        return [], None  # most distributions: no need to parse
    from importlib.metadata import Distribution

    try:
        # Parsed the way importlib.metadata parses it (its parser raises these on bad lines).
        eps = Distribution.at(info).entry_points.select(group=group)
        return [(ep.name, ep.value) for ep in eps], None
    except (ValueError, TypeError):
        return [], _bad_entry_points(path, "has a line that is not 'name = module:attr'")


def _bad_entry_points(path: str, problem: str) -> Problem:
    return Problem(
        "warning",
        "entry-points.invalid",
        f"{path} {problem}; that distribution's plugins are skipped — reinstall it",
        path=path,
    )


_PY_VERSION = re.compile(
    r"(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>\d*))?"
    r"(?:[-_.]?(?:post|rev|r)[-_.]?(?P<post>\d*))?"
    r"(?:[-_.]?dev[-_.]?(?P<dev>\d*))?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?",
    re.IGNORECASE,
)


def _version_from_info_name(name: str) -> str:
    """The SemVer form of the Python version in a ``.dist-info`` folder name.

    ``1.2`` → ``1.2.0``; ``2.0rc1`` → ``2.0.0-rc.1``; ``1.0.dev3`` → ``1.0.0-dev.3``;
    ``1.0.post2`` → ``1.0.0+post.2``; ``1.2.3.4`` → ``1.2.3+4``. Anything else keeps its
    text (and is reported if it is not SemVer).
    """
    parts = name.rsplit(".", 1)[0].split("-")
    if len(parts) < 2:
        return "0.0.0"
    text = parts[1]
    m = _PY_VERSION.fullmatch(text)
    if m is None:
        return text
    release = [str(int(p)) for p in m["release"].split(".")]
    release += ["0"] * (3 - len(release))
    pre = []
    if m["pre"] is not None:
        pre += [m["pre"].lower(), m["pre_n"] or "0"]
    if m["dev"] is not None:
        pre += ["dev", m["dev"] or "0"]
    build = release[3:]
    if m["post"] is not None:
        build += ["post", m["post"] or "0"]
    if m["local"] is not None:
        build += re.split(r"[-_.]", m["local"])
    out = ".".join(release[:3])
    if pre:
        out += "-" + ".".join(pre)
    if build:
        out += "+" + ".".join(build)
    return out


def _entry_point_record(
    name: str, value: str, *, version: str, site: str, info: str
) -> tuple[PluginRecord | None, Problem | None, list[tuple[str, int]]]:
    """The record for one entry point, and the paths (with mtimes) it was built from."""
    top = value.split(":", 1)[0].split(".", 1)[0].strip()
    package_dir = os.path.join(site, top)
    used = [(package_dir, _mtime(package_dir))]
    for manifest_name in MANIFEST_NAMES:
        mpath = os.path.join(package_dir, manifest_name)
        if os.path.isfile(mpath):
            used.append((mpath, _mtime(mpath)))
            try:
                manifest = load_manifest(Path(mpath))
            except ManifestError as exc:
                return None, Problem("error", "manifest.invalid", str(exc), path=mpath), used
            return PluginRecord(manifest, package_dir, mpath, "builtin", 0), None, used
    namespace, _, bare = name.rpartition(".")
    raw = {
        "plugin": {
            "name": bare,
            "version": version,
            "entry": value.strip(),
            **({"namespace": namespace} if namespace else {}),
        }
    }
    where = f"{info}/entry_points.txt [{name}]"
    try:
        manifest = manifest_from_mapping(raw, where)
    except ManifestError as exc:
        return None, Problem("error", "manifest.invalid", str(exc), path=where), used
    return PluginRecord(manifest, package_dir, where, "builtin", 0), None, used
