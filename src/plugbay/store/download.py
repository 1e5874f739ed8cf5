"""``plugbay download``: the bundles of a plugin set in one folder, with a lock that
installs them on another machine, with no network.

:func:`download` resolves install specs (the forms :meth:`~.install.Store.install` takes,
by name from the store's index sources too) with all their dependencies against an
*empty* set of installed plugins: the folder is for another home, so what this home has
installed does not count. Each chosen bundle is fetched and checked as an install checks
it (the sha256 its index or lock names, the bundle itself, the home's trust policy and
signatures); a folder or git source is built into a bundle. Only then is anything written:
``DIR/<ns>-<name>-<version>.tar.gz`` for each plugin, then ``DIR/plugbay.lock`` in the
format ``plugbay lock`` writes, each source a path relative to the lock's folder. So
``plugbay install -r DIR/plugbay.lock --offline`` installs exactly that set, from any
working folder, once DIR is copied anywhere.

Downloading again into the same folder keeps a file that already holds the chosen bundle
(same sha256; an index's bundle is then not downloaded at all) and replaces one that does
not. Other files in the folder are left alone. Downloads also go to the home's download
cache (``<home>/cache/downloads``), as an install's do, so ``--offline`` finds them later.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from ..errors import BundleError, SourceError, StoreError
from ..resolution import Conflict, resolve
from .bundle import Limits, ReadBundle, bundle_name, hash_file, read_bundle
from .install import (
    Change,
    _Candidates,
    _changes,
    _prefetch,
    _read_requests,
    _resolution_error,
)
from .lock import DEFAULT_LOCK, LockEntry, Lockfile, write_lock
from .sources import Artifact, Artifacts, Candidate, Requested, parse_spec

if TYPE_CHECKING:
    from .install import Store

__all__ = ["DownloadAction", "DownloadOutcome", "Downloaded", "download"]

Progress = Callable[[str, int, int], None]

#: ``download``: a new file; ``keep``: the file there holds this bundle already;
#: ``replace``: the file there was another bundle (or none at all), and is overwritten.
DownloadAction = Literal["download", "keep", "replace"]

_HEADER = (
    "The bundles in this folder. Written by `plugbay download`;",
    "`plugbay install -r plugbay.lock --offline` installs them, from this folder.",
)


class Downloaded(msgspec.Struct, frozen=True):
    """One bundle put in the folder: which plugin, the file, where it came from, what
    was done (see :data:`DownloadAction`), and the key that signed it (verified and
    trusted here), if any."""

    id: str
    version: str
    path: Path
    sha256: str
    source: str
    action: DownloadAction
    signer: str | None = None

    def __str__(self) -> str:
        what = f"{self.id} {self.version}"
        if self.action == "keep":
            return f"keep {what} ({self.path.name} is that bundle already)"
        if self.action == "replace":
            return f"replace {what} from {self.source} ({self.path.name} was another file)"
        return f"download {what} from {self.source}"


class DownloadOutcome(msgspec.Struct):
    """What a download did: the folder, its lock file, one entry per bundle (sorted by
    id), and warnings (an index served from its cache, an unsigned bundle…)."""

    folder: Path
    lock: Path
    bundles: list[Downloaded] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)


def download(
    store: Store,
    specs: Sequence[str],
    dest: Path,
    *,
    requirements: Sequence[str] = (),
    locked: Lockfile | None = None,
    progress: Progress | None = None,
) -> DownloadOutcome:
    """Put the bundles of ``specs`` and all their dependencies in ``dest``, with a lock.

    ``store`` gives the index sources, the download cache, the limits, ``offline`` and
    the trust policy; its installed plugins are not looked at. ``requirements`` are more
    specs (from ``-r`` files). With ``locked`` (a lock given with ``-r``), every version
    must be the one it pins, from the bundle it pins (see ``install --locked``).

    Raises SourceError, BundleError, TrustError or ResolutionError before anything is
    written to ``dest``; StoreError when ``dest`` cannot be written.
    """
    every = [*specs, *requirements]
    if not every:
        raise SourceError(
            "download",
            "nothing to download: give plugin ids, folders, bundles, URLs, git+URL or -r FILE",
        )
    folder = Path(os.path.abspath(dest))
    if folder.exists() and not folder.is_dir():
        raise SourceError(
            str(dest), "is not a folder: give -d the folder to put the bundles and the lock in"
        )
    parsed = [parse_spec(s) for s in every]
    artifacts = Artifacts(
        store.layout.cache,
        store.limits,
        offline=store.offline,
        # As for an install: a download checked against a lock leaves no trace if refused.
        cache_downloads=locked is None,
        progress=progress,
    )
    try:
        chosen = _resolve(store, parsed, artifacts, locked, progress)
        bundles = _obtain(chosen, folder, store.limits)
        outcome = DownloadOutcome(folder, folder / DEFAULT_LOCK)
        outcome.warnings += [w for s in store.sources for w in getattr(s, "warnings", ())]
        signers = _check_trust(store, bundles, outcome.warnings)
        _write(outcome, chosen, bundles, signers, progress)
    finally:
        artifacts.close()
    return outcome


def _resolve(
    store: Store,
    parsed: list[Requested | Artifact],
    artifacts: Artifacts,
    locked: Lockfile | None,
    progress: Progress | None,
) -> dict[str, Candidate]:
    """One version per plugin id, resolved as if nothing were installed."""
    roots, explicit = _read_requests(parsed, artifacts, progress, {})
    requested = {r.id for r in roots}
    sources = list(store.sources)
    allowed = None
    if locked is not None:
        from .lock import LockedSource, allowed_versions, check_requests

        check_requests(locked, roots, explicit)
        sources.append(LockedSource(locked, artifacts, store.layout, {}, requested))
        allowed = allowed_versions(locked, {}, requested)
    candidates = _Candidates({}, explicit, artifacts, sources, False, allowed=allowed)
    result = resolve(roots, candidates)
    if isinstance(result, Conflict):
        raise _resolution_error(str(result), candidates, store.sources)
    if locked is not None:
        from .lock import check_changes

        check_changes(locked, _changes(result, {}, True), result, store.layout)
    return result


def _obtain(chosen: Mapping[str, Candidate], folder: Path, limits: Limits) -> dict[str, ReadBundle]:
    """The checked bundle of every chosen version: the copy already in ``folder`` when it
    has the sha256 its index names, else fetched (an index's in parallel)."""
    bundles: dict[str, ReadBundle] = {}
    todo: list[Candidate] = []
    for pid, cand in sorted(chosen.items()):
        if cand.bundle is not None:
            bundles[pid] = cand.bundle
            continue
        kept = _at_hand(cand, folder / bundle_name(pid, cand.version), limits)
        if kept is not None:
            bundles[pid] = kept
        else:
            todo.append(cand)
    _prefetch([Change("install", c.id, c.version) for c in todo], chosen)
    for cand in todo:
        assert cand.source is not None
        bundles[cand.id] = cand.source.fetch(cand)
    return bundles


def _at_hand(cand: Candidate, path: Path, limits: Limits) -> ReadBundle | None:
    """The bundle at ``path`` if it is the one ``cand``'s source names by sha256 (an
    index: a download into this folder before); None if it is not, or is no bundle."""
    sha256_of = getattr(cand.source, "sha256_of", None)
    if sha256_of is None or not path.is_file():
        return None
    try:
        bundle = read_bundle(path, limits)
    except BundleError:
        return None  # replaced by the real one
    if bundle.sha256 != sha256_of(cand) or bundle.manifest != cand.manifest:
        return None
    return bundle


def _check_trust(
    store: Store, bundles: Mapping[str, ReadBundle], warnings: list[str]
) -> dict[str, str | None]:
    """The home's trust policy on every bundle, as at install: refuses (TrustError,
    BundleError) what it would not install; the verified signer of each."""
    from .trust import Trust

    trust = Trust.of_home(store.layout.home)
    signers: dict[str, str | None] = {}
    for pid, bundle in sorted(bundles.items()):
        verdict = trust.check_bundle(bundle)
        signers[pid] = verdict.signer
        if verdict.warning is not None:
            warnings.append(verdict.warning)
    return signers


def _write(
    outcome: DownloadOutcome,
    chosen: Mapping[str, Candidate],
    bundles: Mapping[str, ReadBundle],
    signers: Mapping[str, str | None],
    progress: Progress | None,
) -> None:
    """Write each bundle (a good one already there is kept), then the lock naming them."""
    try:
        outcome.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder {outcome.folder}: {exc.strerror or exc}"
        ) from None
    entries: list[LockEntry] = []
    for n, (pid, bundle) in enumerate(sorted(bundles.items()), start=1):
        path = outcome.folder / bundle_name(pid, bundle.version)
        action = _put(path, bundle)
        signer = signers.get(pid)
        outcome.bundles.append(
            Downloaded(pid, bundle.version, path, bundle.sha256, chosen[pid].origin, action, signer)
        )
        entries.append(LockEntry(pid, bundle.version, bundle.sha256, str(path), signer))
        if progress:
            progress("writing bundles", n, len(bundles))
    write_lock(Lockfile(tuple(entries)), outcome.lock, header=_HEADER)


def _put(path: Path, bundle: ReadBundle) -> DownloadAction:
    """Write the bundle's bytes to ``path`` (atomically), unless they are there already."""
    try:
        if path.is_file() and hash_file(path) == bundle.sha256:
            return "keep"
    except OSError:
        pass  # unreadable: written again below
    existed = os.path.lexists(path)
    assert bundle.data, "a bundle read by plugbay keeps its bytes"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(bundle.data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}; {DEFAULT_LOCK} was not written "
            "(free some space or pick another folder, then download again)"
        ) from None
    return "replace" if existed else "download"
