"""Static indexes: the format, and the source that installs by name from one.

An index is JSON that any static HTTP server, object store or CDN can serve (docs/index.md).
It comes in two forms, both ``{"format": 1, …}``:

- **flat**: ``{"format": 1, "plugins": {"<id>": [<version entry>, …]}}``, every plugin in
  one document;
- **sharded**: a root ``{"format": 1, "shards": {"<id>": "<relative path>"}}`` and, per
  plugin, a shard ``{"format": 1, "id": "<id>", "versions": [<version entry>, …]}``, so a
  client fetches the root and only the shards of the ids a resolution looks at.

A version entry (:class:`IndexEntry`) holds what a resolver needs without the bundle —
the normalised manifest, as in the bundle's MANIFEST.json — and the bundle's URL relative
to the document that names it, its size, sha256 and signer. New optional fields may appear
within format 1; a reader refuses a format it does not know.

:func:`open_source` turns an index URL (``http(s)://``, ``file://`` or a path; ``oci://`` is
handed to :mod:`.oci`) into a :class:`~.sources.Source`. :class:`IndexSource` caches index
documents in ``<home>/cache/index/`` and revalidates them with ``If-None-Match``
(``If-Modified-Since`` when the server gives no ETag); bundles go to the store's download
cache ``<home>/cache/downloads/`` (named as :class:`~.sources.Artifacts` names a URL's
download) once their sha256 matches the index. Downloads retry connection errors, server
errors (5xx) and connections cut mid-body; a stall past the timeout is an error at once.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import unquote, urljoin, urlsplit

import msgspec

from ..errors import BundleError, ManifestError, SourceError, VersionError
from ..versions import parse_version
from .bundle import Limits, ReadBundle, read_bundle_bytes
from .layout import write_cache_file
from .sources import (
    OFFLINE_HINT,
    Candidate,
    ClosingSource,
    Source,
    cached_if_intact,
    download_path,
    lower_first,
    preload_httpx,
    status_text,
    user_agent,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    import httpx

    from ..manifest import Manifest

__all__ = [
    "INDEX_FORMAT",
    "FlatIndex",
    "IndexEntry",
    "IndexSource",
    "RootIndex",
    "ShardIndex",
    "index_sources",
    "open_source",
]

#: The index format this plugbay writes and reads.
INDEX_FORMAT = 1

Progress = Callable[[str, int, int], None]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_T = TypeVar("_T", bound=msgspec.Struct)


class IndexEntry(msgspec.Struct, frozen=True):
    """One version of one plugin, as an index lists it.

    ``url`` is the bundle's URL relative to the document that holds the entry; it must
    lead to a place under the index's folder. ``manifest`` is the normalised manifest,
    as the bundle's MANIFEST.json holds it: the resolver reads it instead of the bundle.
    ``dependencies``, ``requires``, ``runtime`` and ``summary`` repeat it for readers of
    the index; they must agree with it. ``signer`` is the id of the key whose signature
    the bundle carries (None: unsigned); the signature itself is checked at install.
    """

    id: str
    version: str
    url: str
    size: int
    sha256: str
    signer: str | None
    summary: str
    requires: str
    runtime: str
    dependencies: dict[str, str]
    manifest: dict[str, Any]


class FlatIndex(msgspec.Struct, frozen=True):
    """``index.json`` of the flat form: every plugin's versions, newest first."""

    format: int
    plugins: dict[str, tuple[IndexEntry, ...]]


class RootIndex(msgspec.Struct, frozen=True):
    """The root of the sharded form: each plugin id and the relative path of its shard."""

    format: int
    shards: dict[str, str]


class ShardIndex(msgspec.Struct, frozen=True):
    """One shard of the sharded form: one plugin's versions, newest first."""

    format: int
    id: str
    versions: tuple[IndexEntry, ...]


class _Document(msgspec.Struct, frozen=True):
    """A root document, flat or sharded: which one is told by the key it has.

    Each plugin's entries (or shard path) are checked when a resolution first asks for
    that plugin, so that a large index costs only what is used, and an error names the
    plugin (msgspec names a dict key only as ``[...]``).
    """

    format: int
    plugins: dict[str, Any] | None = None
    shards: dict[str, Any] | None = None


class _Head(msgspec.Struct, frozen=True):
    format: Any = None


def published_facts(bundle: ReadBundle) -> dict[str, Any]:
    """What an index entry, and an OCI artifact's config, say of a bundle beside where it
    is: id, version, sha256, signer, summary, requires, runtime, dependencies and the
    normalised manifest (what a resolver reads instead of the bundle)."""
    signer = None
    if bundle.signature is not None:
        from .signing import parse_signature

        signer = parse_signature(bundle.signature, bundle.path).key
    plugin = bundle.manifest.plugin
    return {
        "id": bundle.id,
        "version": bundle.version,
        "sha256": bundle.sha256,
        "signer": signer,
        "summary": plugin.description,
        "requires": plugin.requires,
        "runtime": plugin.runtime,
        "dependencies": dict(sorted(bundle.manifest.dependencies.items())),
        "manifest": bundle.manifest_file.manifest,
    }


def disagreement(manifest: Manifest, listed: Any) -> str | None:
    """Where the facts ``listed`` repeats (an index entry, an OCI config) differ from the
    manifest it carries: ``"runtime is 'exec' but its manifest says 'python'"``; or None."""
    plugin = manifest.plugin
    facts = {
        "id": (manifest.id, listed.id),
        "version": (manifest.version, listed.version),
        "dependencies": (manifest.dependencies, listed.dependencies),
        "requires": (plugin.requires, listed.requires),
        "runtime": (plugin.runtime, listed.runtime),
    }
    for field, (says, said) in facts.items():
        if says != said:
            return f"{field} is {said!r} but its manifest says {says!r}"
    return None


def open_source(
    url: str,
    *,
    cache: Path,
    limits: Limits,
    offline: bool,
    timeout: float = 30.0,
    progress: Progress | None = None,
    name: str | None = None,
) -> Source:
    """The source for an index URL.

    ``http://``, ``https://`` and ``file://`` URLs, and plain paths to an index document,
    give an :class:`IndexSource`; ``oci://HOST[:PORT]/REPO`` gives the OCI registry
    source of :mod:`.oci`. ``cache`` is the home's cache folder (``<home>/cache``);
    ``offline`` forbids every connection; ``timeout`` bounds each request (seconds);
    ``progress`` is called as ``(what, done, total)`` while bundles download; ``name``
    (a configured index's name) is shown in messages instead of the URL.
    """
    options: dict[str, Any] = {
        "cache": cache,
        "limits": limits,
        "offline": offline,
        "timeout": timeout,
        "progress": progress,
        "name": name,
    }
    if url.startswith("oci://"):
        from .oci import OciSource

        return OciSource(url, **options)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file", "") and not re.match(r"^[a-zA-Z]:[\\/]", url):
        raise SourceError(
            url,
            "is not an index URL: use http(s)://HOST/PATH/index.json, file:///PATH/index.json, "
            "a path to an index.json, or oci://HOST/REPO",
        )
    return IndexSource(url, **options)


def index_sources(
    home: Path,
    urls: Sequence[str] = (),
    *,
    offline: bool,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> list[Source]:
    """The index sources of an install, in priority order: ``urls`` (``--index``) first,
    then the ``[[index]]`` tables of ``<home>/config.toml``; a URL named twice is used once.

    A configured path is relative to the home. Opening a source makes no request: each
    fetches its index when a resolution first asks it for a plugin.
    """
    from ..config import load_host_config

    configured = load_host_config(home / "config.toml").index
    wanted: list[tuple[str, str | None, float | None]] = [(u, None, None) for u in urls]
    for entry in configured:
        url = entry.url
        if "://" not in url:
            url = str(home / Path(url).expanduser())
        wanted.append((url, entry.name, entry.timeout))
    out: list[Source] = []
    seen: set[str] = set()
    for url, name, timeout in wanted:
        if url in seen:
            continue
        seen.add(url)
        out.append(
            open_source(
                url,
                cache=home / "cache",
                limits=limits or Limits(),
                offline=offline,
                timeout=timeout or 30.0,
                progress=progress,
                name=name,
            )
        )
    return out


# ---------------------------------------------------------------- the source


class _Located(msgspec.Struct, frozen=True):
    """A version entry with its bundle's absolute URL, and the document that named it."""

    entry: IndexEntry
    url: str
    document: str


class _Cached(msgspec.Struct, frozen=True, gc=False):
    body: bytes
    etag: str | None
    last_modified: str | None
    stored: float


class _NoIndex(SourceError):
    """An index document that cannot be had now: unreachable with no cached copy, or not
    cached under --offline. Not a fault of the index, unlike a malformed one."""


class _Unreachable(Exception):
    """A request that got no usable answer (after its retries); ``reason`` says why.
    ``stalled``: the server stopped answering (a timeout), which is not retried."""

    def __init__(self, reason: str, *, stalled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stalled = stalled


class _Answer(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]
    body: bytes


class IndexSource(ClosingSource):
    """Plugins offered by a static index (flat or sharded), at ``url``.

    ``available`` reads index documents only (cached, revalidated once per run); ``fetch``
    and ``prefetch`` download bundles, check their sha256 and size against the index and
    read them with the store's :class:`~.bundle.Limits`. Signatures are checked by the
    store's trust policy, like those of any bundle. ``warnings`` collects what the user
    should know but that does not stop the install (an index served from the cache
    because the server could not be reached). Safe to use from one thread at a time;
    ``prefetch`` runs its downloads in a small pool of its own.
    """

    #: Attempts per request for connection errors, 5xx answers and cut connections.
    attempts = 3
    #: Seconds to wait before the second and third attempts.
    backoff = (0.2, 0.6)
    #: Downloads at once in :meth:`prefetch`.
    workers = 4

    def __init__(
        self,
        url: str,
        *,
        cache: Path,
        limits: Limits,
        offline: bool = False,
        timeout: float = 30.0,
        progress: Progress | None = None,
        name: str | None = None,
    ) -> None:
        self.url = _absolute(url)
        self.label = name or url
        self.warnings: list[str] = []
        #: Why this index offered nothing (unreachable or not cached), if it did not.
        self.failure: SourceError | None = None
        self._remote = urlsplit(self.url).scheme in ("http", "https")
        self._base = urljoin(self.url, ".")
        self._cache = cache
        self._limits = limits
        self._offline = offline
        self._timeout = timeout
        self._progress = progress
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._root: _Document | None = None
        self._versions: dict[str, list[_Located]] = {}
        self._candidates: dict[str, list[Candidate]] = {}
        self._located: dict[str, _Located] = {}
        self._bundles: dict[str, ReadBundle] = {}

    def __repr__(self) -> str:
        return f"IndexSource({self.url!r})"

    def close(self) -> None:
        """Close the connection pool (the source can still answer from what it read)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------ metadata

    def ids(self) -> list[str]:
        """Every plugin id the index lists (reads the root document)."""
        root = self._load_root()
        names = root.plugins if root.plugins is not None else root.shards
        return sorted(names or ())

    def available(self, plugin_id: str) -> list[Candidate]:
        """The versions of ``plugin_id`` the index lists, newest first (no bundle download).

        Raises SourceError when the index cannot be had or is malformed.
        """
        found = self._candidates.get(plugin_id)
        if found is None and self.failure is not None:
            found = []  # it could not be had a moment ago: not asked again in this install
        if found is None:
            try:
                found = [self._candidate(located) for located in self._entries(plugin_id)]
            except _NoIndex as exc:
                # Unreachable (or not cached, offline) and nothing cached: this index offers
                # nothing now, and the other sources may well do. Said as a warning; if the
                # install then lacks a plugin, this error is the one reported.
                if self.failure is None:
                    self.failure = exc
                    self.warnings.append(f"{exc.spec} was not used: {exc.problem}")
                found = []
            self._candidates[plugin_id] = found
        return list(found)

    def _entries(self, plugin_id: str) -> list[_Located]:
        if plugin_id in self._versions:
            return self._versions[plugin_id]
        root = self._load_root()
        entries: tuple[IndexEntry, ...] = ()
        if root.plugins is not None:
            document, where = self.url, f"plugins[{plugin_id!r}]"
            if plugin_id in root.plugins:
                entries = self._convert(root.plugins[plugin_id], document, where)
        else:
            assert root.shards is not None
            path = root.shards.get(plugin_id)
            document, where = self.url, ""
            if path is not None:
                if not isinstance(path, str):
                    raise self._malformed(
                        self.url, f"shards[{plugin_id!r}]", f"expected a path, got {path!r}"
                    )
                document = self._inside(urljoin(self.url, path), f"shards[{plugin_id!r}]", "shard")
                shard = self._load(document, ShardIndex)
                if shard.id != plugin_id:
                    raise self._malformed(
                        document, "id", f"is {shard.id!r}, but the root names it for {plugin_id!r}"
                    )
                entries, where = shard.versions, "versions"
        located = []
        for n, entry in enumerate(entries):
            at = f"{where}[{n}]"
            self._check_entry(entry, plugin_id, document, at)
            url = self._inside(urljoin(document, entry.url), f"{at}.url", "bundle", document)
            located.append(_Located(entry, url, document))
        self._versions[plugin_id] = located
        return located

    def _convert(self, raw: Any, document: str, where: str) -> tuple[IndexEntry, ...]:
        try:
            return msgspec.convert(raw, tuple[IndexEntry, ...])
        except msgspec.ValidationError as exc:
            problem, _, inner = str(exc).partition(" - at `$")
            raise self._malformed(
                document, where + inner.rstrip("`"), lower_first(problem)
            ) from None

    def _check_entry(self, entry: IndexEntry, plugin_id: str, document: str, at: str) -> None:
        """What a typed decode cannot check: agreement between the fields and the manifest."""
        if entry.id != plugin_id:
            raise self._malformed(
                document, f"{at}.id", f"is {entry.id!r}, listed for {plugin_id!r}"
            )
        try:
            parse_version(entry.version)
        except VersionError as exc:
            raise self._malformed(document, f"{at}.version", str(exc)) from None
        if not _SHA256.match(entry.sha256):
            raise self._malformed(
                document, f"{at}.sha256", f"{entry.sha256!r} is not a sha256 (64 hex digits)"
            )
        if entry.size < 0:
            raise self._malformed(document, f"{at}.size", f"{entry.size} is negative")

    def _candidate(self, located: _Located) -> Candidate:
        entry = located.entry
        from ..manifest import manifest_from_mapping

        at = f"{entry.id} {entry.version}"
        shown = self._shown(located.document)
        try:
            manifest = manifest_from_mapping(entry.manifest, f"{at}: manifest")
        except ManifestError as exc:
            raise SourceError(
                shown, f"is not a valid plugbay index: {exc} (rebuild it with plugbay index build)"
            ) from None
        differs = disagreement(manifest, entry)
        if differs is not None:
            raise SourceError(
                shown,
                f"is not a valid plugbay index: {at}: {differs} (rebuild it with plugbay "
                "index build)",
            )
        origin = located.url if self._remote else _path_of(located.url)
        candidate = Candidate(entry.id, entry.version, manifest, origin, self)
        self._located[candidate.key] = located
        return candidate

    # ------------------------------------------------------------ bundles

    def fetch(self, candidate: Candidate) -> ReadBundle:
        """The checked bundle of ``candidate`` (downloaded now unless prefetched or cached)."""
        bundle = self._bundles.get(candidate.key)
        if bundle is None:
            bundle = self._download(self._located_of(candidate), None)
            self._bundles[candidate.key] = bundle
        return bundle

    def prefetch(self, candidates: Sequence[Candidate]) -> None:
        """Download the bundles of ``candidates`` in parallel, so that ``fetch`` returns at once.

        One connection pool, :attr:`workers` downloads at once, progress as bytes of the
        whole set. The first failure (in the order given) is raised once the downloads
        under way have ended; those that succeeded stay in the download cache.
        """
        todo = [c for c in candidates if c.source is self and c.key not in self._bundles]
        if not todo:
            return
        located = [self._located_of(c) for c in todo]
        meter = _Meter(self._progress, f"downloading {len(todo)} bundle(s)", located)
        if len(todo) == 1:
            self._bundles[todo[0].key] = self._download(located[0], meter)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(todo)), thread_name_prefix="plugbay-download"
        ) as pool:
            futures: list[Future[ReadBundle]] = [
                pool.submit(self._download, loc, meter) for loc in located
            ]
            for future in futures:
                if future.exception() is not None:
                    for other in futures:
                        other.cancel()
                    break
        for cand, future in zip(todo, futures, strict=True):
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                raise error
            self._bundles[cand.key] = future.result()

    def sha256_of(self, candidate: Candidate) -> str:
        """The sha256 the index names for ``candidate``'s bundle (no download): a copy
        already at hand with these bytes need not be fetched (``plugbay download``)."""
        return self._located_of(candidate).entry.sha256

    def _located_of(self, candidate: Candidate) -> _Located:
        located = self._located.get(candidate.key)
        if located is None or candidate.source is not self:
            raise SourceError(
                self.label,
                f"does not offer {candidate.id} {candidate.version} (from {candidate.origin})",
            )
        return located

    def _download(self, located: _Located, meter: _Meter | None) -> ReadBundle:
        """Obtain, check and read one bundle: from the download cache when it holds the
        bytes the index names, else from the index's server (or folder)."""
        entry, url = located.entry, located.url
        if not self._remote:
            path = _path_of(url)
            try:
                local = Path(path).read_bytes()
            except OSError as exc:
                raise SourceError(path, f"cannot be read: {exc.strerror or exc}") from None
            bundle = self._check(local, located, path)
            if meter is not None:
                meter.add(len(local))
            return bundle
        cached = download_path(self._cache, url)
        kept = cached_if_intact(cached, entry.sha256)
        if kept is not None:
            if meter is not None:
                meter.add(len(kept))
            return self._check(kept, located, url)
        if self._offline:
            raise SourceError(url, f"is not in the download cache, and {OFFLINE_HINT}")
        data = self._get_bundle(located, meter)
        bundle = self._check(data, located, url)
        write_cache_file(cached, data)
        return bundle

    def _get_bundle(self, located: _Located, meter: _Meter | None) -> bytes:
        """Download one bundle, retrying connection errors, 5xx and bodies cut short; a
        stall (no bytes within the timeout) fails at once."""
        entry, url = located.entry, located.url
        # One byte more than the index says is enough to know the bundle is not that one.
        cap = min(self._limits.max_compressed_bytes, entry.size + 1)
        reason = ""
        for attempt in range(1, self.attempts + 1):
            counter = _Counter(meter)
            try:
                answer = self._request(
                    url, {}, cap=cap, raw=True, on_chunk=counter.add, retry=False
                )
            except _Unreachable as exc:
                counter.undo()
                if exc.stalled:
                    raise SourceError(url, f"cannot be downloaded: {exc.reason}") from None
                reason = exc.reason
            else:
                if answer.status != 200:
                    raise SourceError(url, f"cannot be downloaded: {status_text(answer.status)}")
                if len(answer.body) >= entry.size:
                    return answer.body
                # A connection closed early by a server that sent no Content-Length.
                counter.undo()
                reason = (
                    f"the connection was cut after {len(answer.body):,} of {entry.size:,} bytes"
                )
            if attempt < self.attempts:
                time.sleep(self.backoff[min(attempt, len(self.backoff)) - 1])
        raise SourceError(url, f"cannot be downloaded: {reason} ({self.attempts} attempts)")

    def _check(self, data: bytes, located: _Located, where: str) -> ReadBundle:
        entry = located.entry
        got = hashlib.sha256(data).hexdigest()
        if got != entry.sha256 or len(data) != entry.size:
            raise BundleError(
                where,
                f"differs from what the index {self.label} says (sha256 {got[:16]}…, "
                f"{len(data):,} bytes; the index says {entry.sha256[:16]}…, "
                f"{entry.size:,} bytes): it changed after the index was built, or was tampered "
                "with, and is refused (rebuild the index with plugbay index build, or tell "
                "its publisher)",
            )
        bundle = read_bundle_bytes(data, where, self._limits)
        candidate = self._candidates_by_key(entry.id, entry.version)
        if (bundle.id, bundle.version) != (entry.id, entry.version) or (
            candidate is not None and bundle.manifest != candidate.manifest
        ):
            raise BundleError(
                where,
                f"is {bundle.id} {bundle.version} with another manifest than the index "
                f"{self.label} lists for {entry.id} {entry.version}; it is refused (rebuild "
                "the index with plugbay index build)",
            )
        return bundle

    def _candidates_by_key(self, plugin_id: str, version: str) -> Candidate | None:
        return next((c for c in self._candidates.get(plugin_id, ()) if c.version == version), None)

    # ------------------------------------------------------------ documents

    def _load_root(self) -> _Document:
        if self._root is None:
            self._root = self._load(self.url, _Document)
        return self._root

    def _load(self, url: str, kind: type[_T]) -> _T:
        """Fetch (or read from the cache) and decode one index document."""
        if not self._remote:
            path = _path_of(url)
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise SourceError(
                    self._shown(url), f"cannot be read: {exc.strerror or exc}"
                ) from None
            return self._decode(data, url, kind)
        cached = self._read_cached(url)
        if self._offline:
            if cached is None:
                raise _NoIndex(
                    self._shown(url),
                    "is not cached, and --offline forbids fetching it (run once without "
                    "--offline to cache it)",
                )
            return self._decode(cached.body, url, kind)
        headers = {}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        elif cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        try:
            answer = self._request(url, headers, cap=self._limits.max_compressed_bytes)
            if len(answer.body) > self._limits.max_compressed_bytes:
                raise SourceError(
                    self._shown(url),
                    f"is larger than {self._limits.max_compressed_bytes:,} bytes and is refused",
                )
        except _Unreachable as exc:
            if cached is None:
                raise _NoIndex(
                    self._shown(url),
                    f"cannot be reached: {exc.reason}; no cached copy of it to use instead "
                    "(try again when the server answers)",
                ) from None
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(cached.stored))
            self.warnings.append(
                f"{self._shown(url)} cannot be reached ({exc.reason}): "
                f"using the copy cached on {when}"
            )
            return self._decode(cached.body, url, kind)
        if answer.status == 304 and cached is not None:
            return self._decode(cached.body, url, kind)
        if answer.status != 200:
            raise SourceError(self._shown(url), f"cannot be fetched: {status_text(answer.status)}")
        doc = self._decode(answer.body, url, kind)
        self._write_cached(url, answer)
        return doc

    def _decode(self, data: bytes, url: str, kind: type[_T]) -> _T:
        try:
            doc = msgspec.json.decode(data, type=kind)
        except msgspec.ValidationError as exc:
            self._check_format(data, url)
            text = str(exc)
            problem, _, where = text.partition(" - at `$")
            raise self._malformed(
                url, where.rstrip("`").lstrip("."), lower_first(problem)
            ) from None
        except msgspec.DecodeError as exc:
            raise self._malformed(url, "", f"is not JSON ({lower_first(str(exc))})") from None
        self._check_format(data, url, cast(Any, doc).format)
        if isinstance(doc, _Document) and (doc.plugins is None) == (doc.shards is None):
            raise self._malformed(
                url,
                "",
                'has neither "plugins" (a flat index) nor "shards" (a sharded index)'
                if doc.plugins is None
                else 'has both "plugins" and "shards"; an index is flat or sharded',
            )
        return doc

    def _check_format(self, data: bytes, url: str, found: Any = None) -> None:
        if found is None:
            try:
                found = msgspec.json.decode(data, type=_Head).format
            except (msgspec.DecodeError, msgspec.ValidationError):
                return
            if found is None:
                return  # no format at all: the validation error says so
        if found != INDEX_FORMAT:
            raise SourceError(
                self._shown(url),
                f"is index format {found!r}; this plugbay reads format {INDEX_FORMAT} "
                "(upgrade plugbay to read it)"
                if isinstance(found, int) and found > INDEX_FORMAT
                else f"is index format {found!r}; this plugbay reads format {INDEX_FORMAT}",
            )

    def _malformed(self, url: str, field: str, problem: str) -> SourceError:
        where = f" at {field}" if field else ""
        return SourceError(self._shown(url), f"is not a valid plugbay index{where}: {problem}")

    def _shown(self, url: str) -> str:
        """How a document is named in messages: a configured index by its name too."""
        if url == self.url and self.label != self.url:
            return f"{self.label} ({url})"
        return url if self._remote else _path_of(url)

    def _inside(self, target: str, field: str, what: str, document: str | None = None) -> str:
        """``target`` (absolute) if it lies under the index's folder; else SourceError."""
        if not _under(self._base, target):
            raise SourceError(
                self._shown(document or self.url),
                f"names a {what} outside the index's folder ({field} → {target}); an index may "
                f"only point under {self._base}, and is refused",
            )
        return target

    # ------------------------------------------------------------ HTTP

    def _http(self) -> httpx.Client:
        preload_httpx()
        import httpx

        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout,
                    follow_redirects=False,
                    limits=httpx.Limits(
                        max_connections=self.workers, max_keepalive_connections=self.workers
                    ),
                    headers={"User-Agent": user_agent()},
                )
                # A source nobody closed closes its connections when it is collected.
                weakref.finalize(self, self._client.close)
            return self._client

    def _request(
        self,
        url: str,
        headers: dict[str, str],
        *,
        cap: int,
        raw: bool = False,
        on_chunk: Callable[[int], None] | None = None,
        retry: bool = True,
    ) -> _Answer:
        """GET ``url``: the answer, retried (with ``retry``) on connection errors, cut
        bodies and 5xx; raises _Unreachable when no usable answer came.

        ``raw``: the body's bytes as sent, whatever Content-Encoding says (a server may
        label a ``.tar.gz`` as gzip-encoded); otherwise decoded. A body over ``cap`` bytes
        is cut off there (the caller finds it is not what it wanted).
        """
        preload_httpx()
        import httpx

        assert not self._offline
        attempts = self.attempts if retry else 1
        if raw:
            headers = {**headers, "Accept-Encoding": "identity"}
        reason = ""
        for attempt in range(1, attempts + 1):
            try:
                with self._http().stream("GET", url, headers=headers) as response:
                    if response.status_code != 200:
                        _drain(response)
                    if response.status_code >= 500:
                        reason = f"the server answered {status_text(response.status_code)}"
                    else:
                        body = bytearray()
                        if response.status_code == 200:
                            chunks = response.iter_raw() if raw else response.iter_bytes()
                            for chunk in chunks:
                                body += chunk
                                if on_chunk is not None:
                                    on_chunk(len(chunk))
                                if len(body) > cap:
                                    del body[cap + 1 :]
                                    break
                        return _Answer(response.status_code, dict(response.headers), bytes(body))
            except httpx.TimeoutException:
                raise _Unreachable(f"no answer within {self._timeout:g} s", stalled=True) from None
            except httpx.ConnectError as exc:
                reason = f"cannot connect to {urlsplit(url).netloc}: {_os_reason(exc)}"
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                reason = f"the connection was cut ({_os_reason(exc)})"
            except httpx.HTTPError as exc:
                raise _Unreachable(_os_reason(exc)) from None
            if attempt < attempts:
                time.sleep(self.backoff[min(attempt, len(self.backoff)) - 1])
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        raise _Unreachable(reason + tries)

    # ------------------------------------------------------------ the index cache

    def _cache_paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        folder = self._cache / "index"
        return folder / f"{key}.json", folder / f"{key}.meta.json"

    def _read_cached(self, url: str) -> _Cached | None:
        body_path, meta_path = self._cache_paths(url)
        try:
            body = body_path.read_bytes()
            meta = json.loads(meta_path.read_bytes())
            stored = body_path.stat().st_mtime
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        # Validators only for the body they came with (a crash between the two writes).
        fresh = meta.get("sha256") == hashlib.sha256(body).hexdigest()
        etag = meta.get("etag") if fresh else None
        modified = meta.get("last_modified") if fresh else None
        return _Cached(
            body,
            etag if isinstance(etag, str) else None,
            modified if isinstance(modified, str) else None,
            stored,
        )

    def _write_cached(self, url: str, answer: _Answer) -> None:
        body_path, meta_path = self._cache_paths(url)
        meta = {
            "url": url,
            "etag": answer.headers.get("etag"),
            "last_modified": answer.headers.get("last-modified"),
            "sha256": hashlib.sha256(answer.body).hexdigest(),
        }
        write_cache_file(body_path, answer.body)
        write_cache_file(meta_path, json.dumps(meta, sort_keys=True).encode() + b"\n")


# ---------------------------------------------------------------- helpers


class _Meter:
    """Progress of a set of downloads, in bytes, from any thread."""

    def __init__(self, progress: Progress | None, what: str, located: Sequence[_Located]) -> None:
        self._progress = progress
        self._what = what
        self._total = sum(loc.entry.size for loc in located)
        self._done = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if self._progress is None:
            return
        with self._lock:
            self._done = max(0, min(self._total, self._done + n))
            self._progress(self._what, self._done, self._total)


class _Counter:
    """Bytes one download attempt added to a meter, to take back if it is retried."""

    def __init__(self, meter: _Meter | None) -> None:
        self._meter = meter
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        if self._meter is not None:
            self._meter.add(n)

    def undo(self) -> None:
        if self._meter is not None:
            self._meter.add(-self.count)
        self.count = 0


def _absolute(url: str) -> str:
    """An index location as an absolute URL: paths become ``file://`` URLs."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https", "file"):
        return url
    return Path(url).expanduser().absolute().as_uri()


def _path_of(url: str) -> str:
    """The local path of a ``file://`` URL."""
    from urllib.request import url2pathname  # urllib.request is slow to import

    parts = urlsplit(url)
    return url2pathname(parts.path)


def _under(base: str, target: str) -> bool:
    """Whether ``target`` is ``base`` (a folder URL ending in ``/``) or below it: same
    scheme, host and port, and a path that stays under it once ``..`` and escapes are
    undone."""
    b, t = urlsplit(base), urlsplit(target)
    if (b.scheme.lower(), b.netloc.lower()) != (t.scheme.lower(), t.netloc.lower()):
        return False
    if t.fragment:
        return False
    path = unquote(t.path)
    if "\\" in path or "\x00" in path:
        return False
    normal = posixpath.normpath(path)
    folder = posixpath.normpath(unquote(b.path))
    folder = folder if folder.endswith("/") else folder + "/"
    return normal.startswith(folder) and normal != folder.rstrip("/")


def _drain(response: httpx.Response) -> None:
    """Read a small answer's body to its end, so its connection goes back to the pool
    (a 304 has none; an error page is short); a long one is left, and its connection
    closed."""
    if int(response.headers.get("content-length") or 0) <= 65536:
        for _ in response.iter_raw():
            pass


def _os_reason(exc: BaseException) -> str:
    """``[Errno 111] Connection refused`` → ``Connection refused``."""
    text = str(exc) or type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text)
