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

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from .errors import ManifestError
from .manifest import MANIFEST_NAMES, Manifest, load_manifest, manifest_from_mapping

__all__ = [
    "ORIGINS",
    "Catalog",
    "DiscoveryReporter",
    "PluginRecord",
    "Problem",
    "SearchPath",
    "discover",
]

#: Search-path origins, lowest precedence first (DESIGN §1).
ORIGINS = ("builtin", "system", "user", "project", "config", "api")

_MAX_DEPTH = 3
_CACHE_FORMAT = 1
# A file or folder changed this recently may change again within the file system's
# timestamp granularity without its mtime moving; such entries are not trusted next time.
_RACY_NS = 2_000_000_000
_SKIP = frozenset({"__pycache__", "node_modules", "site-packages"})

Severity = Literal["error", "warning", "info"]


class Problem(msgspec.Struct, frozen=True):
    """Something wrong (or worth knowing) found while discovering or planning."""

    severity: Severity
    code: str
    message: str
    plugin_id: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class SearchPath:
    """One place plugins are found; a larger ``precedence`` shadows a smaller one."""

    origin: str
    path: Path
    precedence: int


class PluginRecord(msgspec.Struct, frozen=True):
    """One discovered plugin version: its manifest and where it was found."""

    manifest: Manifest
    path: str
    manifest_path: str
    origin: str
    precedence: int
    active: bool = True
    shadowed: bool = False

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> str:
        return self.manifest.plugin.version

    @property
    def key(self) -> str:
        """``id@version``: unique among the records of one search path."""
        return f"{self.manifest.id}@{self.manifest.plugin.version}"


@dataclass(frozen=True)
class Catalog:
    """Everything discovery found: plugin records (all versions) and problems."""

    records: tuple[PluginRecord, ...]
    problems: tuple[Problem, ...]
    search_paths: tuple[SearchPath, ...] = ()
    _by_id: dict[str, list[PluginRecord]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for r in self.records:
            self._by_id.setdefault(r.id, []).append(r)

    def ids(self) -> list[str]:
        """Every plugin id found, sorted."""
        return sorted(self._by_id)

    def versions(self, plugin_id: str, *, include_shadowed: bool = False) -> list[PluginRecord]:
        """The records of one id, the ones that may load first (unshadowed)."""
        found = self._by_id.get(plugin_id, [])
        return found if include_shadowed else [r for r in found if not r.shadowed]

    def preferred(self, plugin_id: str) -> PluginRecord | None:
        """The version that loads when nothing else decides: active, else the highest."""
        from .versions import parse_version

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


class _Folder(msgspec.Struct, array_like=True):
    mtime_ns: int
    manifest_name: str | None
    active: str | None
    children: tuple[str, ...]
    problems: tuple[Problem, ...] = ()


class _Parsed(msgspec.Struct, array_like=True):
    mtime_ns: int
    size: int
    manifest: Manifest | None
    problem: Problem | None


class _EntryPoints(msgspec.Struct, array_like=True):
    key: tuple[tuple[str, int], ...]
    records: tuple[PluginRecord, ...]
    problems: tuple[Problem, ...]


class _CacheFile(msgspec.Struct):
    format: int
    producer: str
    folders: dict[str, _Folder]
    manifests: dict[str, _Parsed]
    entry_points: dict[str, _EntryPoints] = {}


def _producer() -> str:
    from . import __version__

    return f"plugbay {__version__}"


class _Cache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.folders: dict[str, _Folder] = {}
        self.manifests: dict[str, _Parsed] = {}
        self.entry_points: dict[str, _EntryPoints] = {}
        self.seen_folders: set[str] = set()
        self.seen_manifests: set[str] = set()
        self.dirty = False
        if path is not None:
            self._read(path)

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
        self.folders = cache.folders
        self.manifests = cache.manifests
        self.entry_points = cache.entry_points

    def save(self) -> None:
        if self.path is None:
            return
        stale = len(self.folders) != len(self.seen_folders) or len(self.manifests) != len(
            self.seen_manifests
        )
        if not (self.dirty or stale):
            return
        body = _CacheFile(
            _CACHE_FORMAT,
            _producer(),
            {k: v for k, v in self.folders.items() if k in self.seen_folders},
            {k: v for k, v in self.manifests.items() if k in self.seen_manifests},
            self.entry_points,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(msgspec.msgpack.encode(body))
            os.replace(tmp, self.path)
        except OSError:
            # A read-only home still discovers; it only loses the speed-up next time.
            return


# ---------------------------------------------------------------- scanning


@dataclass
class _Scan:
    cache: _Cache
    reporter: DiscoveryReporter
    now_ns: int
    records: list[PluginRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    visited: set[str] = field(default_factory=set)


def discover(
    search_paths: Sequence[SearchPath],
    *,
    cache_path: Path | None = None,
    builtins: Iterable[PluginRecord] = (),
    entry_point_group: str | None = None,
    path_entries: Sequence[str] = (),
    reporter: DiscoveryReporter | None = None,
) -> Catalog:
    """Find every plugin under ``search_paths`` (lowest precedence first).

    ``builtins`` are records the caller already has (registered in code). With
    ``entry_point_group``, the distributions on ``path_entries`` (normally ``sys.path``)
    are searched for built-in plugins in that entry-point group. With ``cache_path`` the
    metadata cache is read from and, if anything changed, written back to that file.
    """
    cache = _Cache(cache_path)
    scan = _Scan(cache, reporter or DiscoveryReporter(), time.time_ns())
    scan.records.extend(builtins)
    if entry_point_group is not None:
        found, problems = _entry_points(cache, entry_point_group, path_entries, scan.now_ns)
        scan.records.extend(found)
        scan.problems.extend(problems)
    for sp in search_paths:
        _scan_root(scan, sp)
    cache.save()
    records, shadow_problems = _mark_shadowed(scan.records, search_paths)
    return Catalog(tuple(records), tuple(scan.problems + shadow_problems), tuple(search_paths))


def _scan_root(scan: _Scan, sp: SearchPath) -> None:
    root = os.path.abspath(os.path.expanduser(str(sp.path)))
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return
    except OSError as exc:
        scan.problems.append(_unreadable(root, exc))
        return
    if not _is_dir_mode(st.st_mode):
        scan.problems.append(
            Problem("warning", "search-path.not-a-folder", f"{root} is not a folder", path=root)
        )
        return
    seen_ids: dict[str, str] = {}
    _visit(scan, sp, root, 0, st.st_mtime_ns, None, seen_ids)


def _is_dir_mode(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


def _unreadable(path: str, exc: OSError) -> Problem:
    reason = exc.strerror or str(exc)
    return Problem(
        "warning",
        "folder.unreadable",
        f"{path} cannot be read ({reason}); its plugins are skipped — fix its permissions",
        path=path,
    )


def _visit(
    scan: _Scan,
    sp: SearchPath,
    path: str,
    depth: int,
    mtime_ns: int,
    parent_active: str | None,
    seen_ids: dict[str, str],
) -> None:
    folder = _folder(scan, path, mtime_ns)
    if folder is None:
        return
    scan.problems.extend(folder.problems)
    if folder.manifest_name is not None:
        active = parent_active is None or parent_active == os.path.basename(path)
        _read_plugin(scan, sp, path, folder.manifest_name, active, seen_ids)
        return
    if depth >= _MAX_DEPTH:
        return
    for child in folder.children:
        child_path = os.path.join(path, child)
        cached = scan.cache.folders.get(child_path)
        if cached is not None and cached.manifest_name is not None and cached.mtime_ns >= 0:
            # A cached plugin folder: its manifest's own stat tells whether it changed.
            # Its folder is only listed again if the manifest is gone.
            scan.cache.seen_folders.add(child_path)
            active = folder.active is None or folder.active == child
            if _read_plugin(scan, sp, child_path, cached.manifest_name, active, seen_ids):
                continue
        try:
            st = os.stat(child_path)
        except FileNotFoundError:
            continue  # removed while we looked: it is simply not there
        except OSError as exc:
            scan.problems.append(_unreadable(child_path, exc))
            continue
        if _is_dir_mode(st.st_mode):
            _visit(scan, sp, child_path, depth + 1, st.st_mtime_ns, folder.active, seen_ids)


def _folder(scan: _Scan, path: str, mtime_ns: int) -> _Folder | None:
    cache = scan.cache
    cached = cache.folders.get(path)
    cache.seen_folders.add(path)
    if cached is not None and cached.mtime_ns == mtime_ns:
        return cached
    names: list[str] = []
    files: set[str] = set()
    problems: list[Problem] = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                name = entry.name
                if name.startswith(".") or name in _SKIP:
                    continue
                try:
                    if entry.is_dir():
                        if entry.is_symlink() and _loops(path, entry.path, scan):
                            problems.append(
                                Problem(
                                    "warning",
                                    "folder.symlink-loop",
                                    f"{entry.path} links back into the search path; skipped",
                                    path=entry.path,
                                )
                            )
                            continue
                        names.append(name)
                    elif entry.is_file():
                        files.add(name)
                except OSError as exc:
                    problems.append(_unreadable(entry.path, exc))
    except FileNotFoundError:
        cache.folders.pop(path, None)
        return None
    except OSError as exc:
        scan.problems.append(_unreadable(path, exc))
        return None
    manifest_name = next((n for n in MANIFEST_NAMES if n in files), None)
    active = None
    if manifest_name is None and "active" in files:
        try:
            active = Path(path, "active").read_text("utf-8").strip() or None
        except OSError as exc:
            problems.append(_unreadable(os.path.join(path, "active"), exc))
    racy = scan.now_ns - mtime_ns < _RACY_NS
    folder = _Folder(
        -1 if racy else mtime_ns,
        manifest_name,
        active,
        tuple(sorted(names)),
        tuple(problems),
    )
    cache.folders[path] = folder
    cache.dirty = True
    return folder


def _loops(parent: str, link: str, scan: _Scan) -> bool:
    try:
        target = os.path.realpath(link, strict=True)
    except OSError:
        return True
    real_parent = os.path.realpath(parent)
    if real_parent == target or real_parent.startswith(target + os.sep):
        return True
    if target in scan.visited:
        return True
    scan.visited.add(target)
    return False


def _read_plugin(
    scan: _Scan,
    sp: SearchPath,
    folder: str,
    manifest_name: str,
    active: bool,
    seen_ids: dict[str, str],
) -> bool:
    """Add the plugin in ``folder``; False if its manifest is gone (list the folder again)."""
    mpath = os.path.join(folder, manifest_name)
    try:
        st = os.stat(mpath)
    except OSError:
        return False
    scan.reporter.folder_found(folder)
    cache = scan.cache
    cache.seen_manifests.add(mpath)
    parsed = cache.manifests.get(mpath)
    if parsed is None or parsed.mtime_ns != st.st_mtime_ns or parsed.size != st.st_size:
        try:
            manifest: Manifest | None = load_manifest(Path(mpath))
            problem = None
        except ManifestError as exc:
            manifest = None
            problem = Problem("error", "manifest.invalid", str(exc), path=mpath)
        scan.reporter.manifest_parsed(mpath)
        racy = scan.now_ns - st.st_mtime_ns < _RACY_NS
        parsed = _Parsed(-1 if racy else st.st_mtime_ns, st.st_size, manifest, problem)
        cache.manifests[mpath] = parsed
        cache.dirty = True
    if parsed.problem is not None:
        scan.problems.append(parsed.problem)
        return True
    assert parsed.manifest is not None
    record = PluginRecord(parsed.manifest, folder, mpath, sp.origin, sp.precedence, active)
    first = seen_ids.get(record.key)
    if first is not None:
        scan.problems.append(
            Problem(
                "warning",
                "plugin.duplicate",
                f"{record.key} is in both {first} and {folder} of one search path; "
                f"{first} is used — remove one",
                plugin_id=record.id,
                path=folder,
            )
        )
        return True
    seen_ids[record.key] = folder
    scan.records.append(record)
    return True


def _mark_shadowed(
    records: list[PluginRecord], search_paths: Sequence[SearchPath]
) -> tuple[list[PluginRecord], list[Problem]]:
    top: dict[str, int] = {}
    for r in records:
        if top.get(r.id, -1) < r.precedence:
            top[r.id] = r.precedence
    shadowing = {sp.precedence: sp for sp in search_paths}
    out: list[PluginRecord] = []
    problems: list[Problem] = []
    for r in records:
        if r.precedence < top[r.id]:
            winner = shadowing.get(top[r.id])
            where = f"{winner.origin} path {winner.path}" if winner else "a higher-precedence path"
            problems.append(
                Problem(
                    "info",
                    "plugin.shadowed",
                    f"{r.key} ({r.origin}, {r.path}) is shadowed by the copy in the {where}",
                    plugin_id=r.id,
                    path=r.path,
                )
            )
            out.append(msgspec.structs.replace(r, shadowed=True))
        else:
            out.append(r)
    return out, problems


# ---------------------------------------------------------------- entry points


def _entry_points(
    cache: _Cache, group: str, path_entries: Sequence[str], now_ns: int
) -> tuple[tuple[PluginRecord, ...], tuple[Problem, ...]]:
    """Built-in plugins from Python entry points in ``group`` (DESIGN §1).

    Reads each distribution's ``entry_points.txt`` (never its METADATA), takes the
    version from the ``.dist-info`` folder name, and uses a manifest next to the entry's
    top-level package when there is one. Cached, keyed on the modification times of the
    ``path_entries`` folders, which change whenever a distribution is installed or removed.
    """
    key: list[tuple[str, int]] = []
    for entry in path_entries:
        try:
            key.append((entry, os.stat(entry).st_mtime_ns))
        except OSError:
            key.append((entry, -1))
    # One entry per group and path list: a console script and `python -c` see different
    # sys.path lists, and each keeps its own entry instead of evicting the other's.
    slot = "\0".join([group, *path_entries])
    cached = cache.entry_points.get(slot)
    if cached is not None and cached.key == tuple(key):
        return cached.records, cached.problems
    records, problems = _scan_entry_points(group, path_entries)
    if all(now_ns - m >= _RACY_NS for _, m in key):
        cache.entry_points[slot] = _EntryPoints(tuple(key), tuple(records), tuple(problems))
        cache.dirty = True
    return tuple(records), tuple(problems)


def _scan_entry_points(
    group: str, path_entries: Sequence[str]
) -> tuple[list[PluginRecord], list[Problem]]:
    from importlib.metadata import Distribution

    records: list[PluginRecord] = []
    problems: list[Problem] = []
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
            if not os.path.isfile(os.path.join(info, "entry_points.txt")):
                continue
            version = _version_from_info_name(name)
            for ep in Distribution.at(info).entry_points.select(group=group):
                if ep.name in seen:
                    continue
                seen.add(ep.name)
                record, problem = _entry_point_record(ep.name, ep.value, version, entry, info)
                if record is not None:
                    records.append(record)
                if problem is not None:
                    problems.append(problem)
    return records, problems


def _version_from_info_name(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    parts = stem.split("-")
    if len(parts) >= 2:
        candidate = parts[1]
        # Python versions such as 1.2 become SemVer 1.2.0; anything else keeps its text.
        dots = candidate.count(".")
        if candidate.replace(".", "").isdigit() and dots < 2:
            candidate += ".0" * (2 - dots)
        return candidate
    return "0.0.0"


def _entry_point_record(
    name: str, value: str, version: str, site: str, info: str
) -> tuple[PluginRecord | None, Problem | None]:
    top = value.split(":", 1)[0].split(".", 1)[0].strip()
    package_dir = os.path.join(site, top)
    for manifest_name in MANIFEST_NAMES:
        mpath = os.path.join(package_dir, manifest_name)
        if os.path.isfile(mpath):
            try:
                manifest = load_manifest(Path(mpath))
            except ManifestError as exc:
                return None, Problem("error", "manifest.invalid", str(exc), path=mpath)
            return PluginRecord(manifest, package_dir, mpath, "builtin", 0), None
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
        return None, Problem("error", "manifest.invalid", str(exc), path=where)
    return PluginRecord(manifest, package_dir, where, "builtin", 0), None

