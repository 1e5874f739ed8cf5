"""The store: install, remove, switch, enable and disable plugins in a home.

Every change holds the home's lock, resolves first, stages everything, and commits with
atomic renames (see :mod:`.transaction`), so a failure or a kill leaves the previous
state or the new one. Nothing here imports plugin code.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import msgspec

from ..errors import ManifestError, ResolutionError, SourceError, StoreError, TrustError
from ..manifest import Manifest, manifest_from_json_member
from ..resolution import Conflict, Requirement, explain, resolve
from ..versions import parse_version
from . import audit
from .bundle import Limits, ReadBundle, build_bundle, hash_file
from .layout import GENERATION_FILE, Layout, Receipt
from .pydeps import Pip, PythonDependencies, plan_python_dependencies, pydeps_dir
from .sources import Artifact, Artifacts, Candidate, Requested, Source, parse_spec
from .transaction import Transaction, locked, recover_pending
from .venvs import IsolatedEnvironments, is_isolated, plan_isolated, venv_dir
from .verify import VerifyReport, verify

if TYPE_CHECKING:
    from tomlkit import TOMLDocument

    from .download import DownloadOutcome
    from .grants import GrantOutcome
    from .lock import Lockfile, SyncPlan

__all__ = ["Change", "Outcome", "Store", "SyncOutcome"]

Action = Literal["install", "reinstall", "switch", "keep", "remove", "enable", "disable"]


class Change(msgspec.Struct, frozen=True, gc=False):
    """One thing a store operation did (or, with ``dry_run``, would do).

    For ``install`` and ``reinstall``, ``previous`` is the version active before and
    ``active`` says whether the new version becomes the active one (``--no-activate``
    installs beside it). ``isolated``: the version gets a virtual environment of its own
    (``isolation = "process"``, see :mod:`.venvs`).
    """

    action: Action
    id: str
    version: str | None
    previous: str | None = None
    source: str | None = None
    active: bool = True
    isolated: bool = False

    def __str__(self) -> str:
        what = f"{self.id} {self.version}" if self.version else self.id
        if self.action == "switch":
            return f"switch {self.id} {self.previous} → {self.version}"
        if self.action == "keep":
            return f"keep {what} (already installed)"
        if self.action not in ("install", "reinstall"):
            return f"{self.action} {what}"
        text = f"{self.action} {what}" + (f" from {self.source}" if self.source else "")
        if self.isolated:
            text += " in a virtual environment of its own"
        if self.previous and self.previous != self.version:
            text += (
                f" (active instead of {self.previous})"
                if self.active
                else f" (beside {self.previous}, which stays active)"
            )
        elif not self.active:
            text += " (not activated)"
        return text


class Outcome(msgspec.Struct):
    """What an operation did: changes, and warnings (e.g. what ``--force`` broke)."""

    changes: list[Change] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)
    dry_run: bool = False


class SyncOutcome(Outcome):
    """What a sync did: an :class:`Outcome`, and the installed versions the lock does not
    name (``(id, version)``: left installed, or with ``prune`` removed)."""

    unlocked: list[tuple[str, str]] = msgspec.field(default_factory=list)


Progress = Callable[[str, int, int], None]


class _Staged(msgspec.Struct, frozen=True):
    """A version's bundle, checked and extracted into the staging folder."""

    candidate: Candidate
    bundle: ReadBundle
    signer: str | None
    folder: Path


class _Options(msgspec.Struct, frozen=True):
    dry_run: bool
    force: bool
    no_deps: bool
    activate: bool
    progress: Progress | None
    lock: Lockfile | None = None  # install --locked: refuse what it does not pin


class Store:
    """Installed plugins of one home; the only writer of its layout."""

    def __init__(
        self,
        home: Path,
        *,
        limits: Limits | None = None,
        offline: bool = False,
        sources: Sequence[Source] = (),
        find_links: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self.layout = Layout(home)
        self.limits = limits or Limits()
        self.offline = offline
        self.sources = list(sources)
        # Folders of wheels pip installs python dependencies from (see .pydeps).
        self.find_links = tuple(os.fspath(p) for p in find_links)

    # ------------------------------------------------------------ reading

    def installed(self) -> dict[str, list[Candidate]]:
        """Installed versions per id (the active one first)."""
        out: dict[str, list[Candidate]] = {}
        for v in self.layout.installed():
            manifest = installed_manifest(v.path)
            if manifest is None:
                continue
            out.setdefault(v.id, []).append(
                Candidate(v.id, v.version, manifest, "installed", installed=True, active=v.active)
            )
        for versions in out.values():
            versions.sort(key=lambda c: (c.active, parse_version(c.version)), reverse=True)
        return out

    def verify(self, ids: str | Sequence[str] = ()) -> list[VerifyReport]:
        """Re-hash installed files (of ``ids``, or of every installed plugin); see
        :mod:`.verify`."""
        # Crash safety: finish (or discard) a change a killed plugbay left half-applied, so
        # that verify reports the old state or the new one (see transaction.recover_pending).
        recover_pending(self.layout)
        return verify(self.layout, _listed(ids))

    def _installed_bundles(self) -> dict[str, tuple[str, str]]:
        """Bundle sha256 → (id, version) of every installed version, from the receipts."""
        out: dict[str, tuple[str, str]] = {}
        for v in self.layout.installed():
            if v.receipt is not None:
                out[v.receipt.bundle_sha256] = (v.id, v.version)
        return out

    def build(self, folder: Path, out_dir: Path, *, sign: Path | None = None) -> Path:
        """Build the reproducible bundle of the plugin in ``folder``.

        With ``sign``, a private key file (``plugbay key generate``), the bundle holds a
        ``MANIFEST.json.sig`` made with it (see :mod:`.signing`); still reproducible.
        """
        if not folder.is_dir():
            raise SourceError(str(folder), "is not a folder")
        if sign is None:
            return build_bundle(folder, out_dir)
        from .signing import load_signing_key

        key = load_signing_key(sign)  # first: a bad key fails before any work
        return build_bundle(folder, out_dir, sign=key.sign)

    # ------------------------------------------------------------ install

    def install(
        self,
        specs: str | Sequence[str],
        *,
        requirements: str | Sequence[str] = (),
        dry_run: bool = False,
        force: bool = False,
        no_deps: bool = False,
        activate: bool = True,
        progress: Progress | None = None,
        locked: Lockfile | None = None,
    ) -> Outcome:
        """Install what ``specs`` (and requirement-file entries) name, with dependencies.

        Resolves over what is requested plus what is installed, preferring installed and
        active versions. Refuses, naming them, to break the dependencies of installed
        plugins unless ``force``. With ``activate=False`` new versions go beside the
        active ones. With ``dry_run`` it only says what it would do and writes nothing.
        Folders, bundles, URLs and git repositories are fetched and built before the
        home's lock is taken; a failure there leaves the home untouched.

        With ``locked`` (``install --locked``), every version installed, switched to or
        relied on must be the one the lock pins, from the locked bundle (sha256); anything
        else is refused, named, before anything is written. A plugin asked for by id is
        fetched from its locked source when the home lacks it (see :mod:`.lock`).
        """
        every = [*_listed(specs), *_listed(requirements)]
        if not every:
            raise SourceError(
                "install", "nothing to install: give plugin ids, folders, bundles, URLs or -r FILE"
            )
        parsed = [parse_spec(s) for s in every]
        artifacts = Artifacts(
            self.layout.cache,
            self.limits,
            offline=self.offline,
            # A download is cached once read and checked; with a lock, its sha256 is checked
            # after that, so nothing is cached then (a refused bundle must leave no trace).
            cache_downloads=not dry_run and locked is None,
            progress=progress,
        )
        try:
            known = {} if force else self._installed_bundles()
            roots, explicit = _read_requests(parsed, artifacts, progress, known)
            if locked is not None:
                from .lock import check_requests

                check_requests(locked, roots, explicit)
            options = _Options(dry_run, force, no_deps, activate, progress, locked)
            with self._lock_unless_dry_run(dry_run):
                return self._install(roots, explicit, artifacts, options)
        finally:
            artifacts.close()

    def _lock_unless_dry_run(self, dry_run: bool) -> AbstractContextManager[None]:
        # A dry run must not create a home that does not exist (there is nothing to read).
        if dry_run and not self.layout.home.exists():
            return nullcontext()
        return locked(self.layout)

    def _install(
        self,
        roots: list[Requirement],
        explicit: dict[str, Candidate],
        artifacts: Artifacts,
        options: _Options,
    ) -> Outcome:
        installed = self.installed()
        requested = {r.id for r in roots}
        sources, allowed = list(self.sources), None
        if options.lock is not None:
            from .lock import LockedSource, allowed_versions

            lock = options.lock
            sources.append(LockedSource(lock, artifacts, self.layout, installed, requested))
            allowed = allowed_versions(lock, installed, requested)
        candidates = _Candidates(
            installed, explicit, artifacts, sources, options.force, allowed=allowed
        )
        if options.no_deps:
            chosen = _pick_roots(roots, candidates)
        else:
            keep = [] if options.force or not options.activate else _keep(installed, requested)
            result = resolve([*roots, *keep], candidates)
            if isinstance(result, Conflict):
                raise _resolution_error(
                    _conflict_message(result, installed, requested), candidates, self.sources
                )
            chosen = result
        changes = _changes(chosen, installed, options.activate)
        changes = [c for c in changes if c.action != "keep" or c.id in _closure(requested, chosen)]
        if options.lock is not None:
            from .lock import check_changes

            check_changes(options.lock, changes, chosen, self.layout)
        _prefetch(changes, chosen)  # index sources download in parallel, before the checks
        trust_warnings = self._check_trust(changes, chosen)
        after, new_active = _after_install(installed, chosen, changes)
        broken = _newly_broken(installed, after, new_active)
        outcome = Outcome(dry_run=options.dry_run, changes=changes, warnings=trust_warnings)
        # What sources say without failing (an index served from the cache, unreachable).
        outcome.warnings[:0] = [w for s in self.sources for w in getattr(s, "warnings", ())]
        if options.no_deps:
            # Asked for: the requested plugins' own missing dependencies are only warned about.
            outcome.warnings += [text for pid, text in broken if pid in requested]
            broken = [(pid, text) for pid, text in broken if pid not in requested]
        if broken and not options.force:
            raise ResolutionError(
                "refusing to install: "
                + "; ".join(text for _, text in broken)
                + " (use --force to install anyway)"
            )
        outcome.warnings += [text for _, text in broken]
        # Python dependencies (see .pydeps): conflicts are refused here, before any write.
        python_deps = plan_python_dependencies(
            self.layout,
            chosen,
            installed,
            Pip(offline=self.offline, find_links=self.find_links),
            force=options.force,
            progress=options.progress,
        )
        outcome.warnings += python_deps.warnings
        # Isolated plugins get a venv each (see .venvs); bad requirements are refused here.
        isolated = plan_isolated(chosen, python_deps.pip, progress=options.progress)
        if options.dry_run or all(c.action == "keep" for c in changes):
            return outcome
        self._commit_install(changes, chosen, options.progress, python_deps, isolated)
        return outcome

    def _check_trust(self, changes: Sequence[Change], chosen: Mapping[str, Candidate]) -> list[str]:
        """Refuse, before anything is written, what the trust policy does not let in
        (TrustError, or BundleError for a bad signature); the warnings it gives for the
        rest. See :mod:`.trust`."""
        work = [c for c in changes if c.action in ("install", "reinstall", "switch")]
        if not work:
            return []
        from .trust import Trust

        trust = Trust.of_home(self.layout.home)
        warnings: list[str] = []
        for change in work:
            cand = chosen[change.id]
            if change.action == "switch":
                trust.check_allowed(cand.id, cand.version, "made active")
                continue
            assert cand.source is not None
            bundle = cand.bundle if cand.bundle is not None else cand.source.fetch(cand)
            verdict = trust.check_bundle(bundle)
            if verdict.warning is not None:
                warnings.append(verdict.warning)
        return warnings

    def _commit_install(
        self,
        changes: list[Change],
        chosen: dict[str, Candidate],
        progress: Progress | None,
        python_deps: PythonDependencies,
        isolated: IsolatedEnvironments,
    ) -> None:
        txn = Transaction(self.layout)
        try:
            work = [c for c in changes if c.action in ("install", "reinstall", "switch")]
            staged = self._extract_all(txn, work, chosen, progress)
            for change in work:
                assert change.version is not None
                if change.action in ("install", "reinstall"):
                    self._stage_version(txn, staged[change.id], change, python_deps, isolated)
                if change.active:
                    txn.write(self.layout.active_file(change.id), change.version.encode())
            _commit(txn, self.layout)
        except BaseException:
            txn.abort()
            raise
        audit.record(self.layout, "install", changes)  # still under the home's lock

    def _extract_all(
        self,
        txn: Transaction,
        changes: Sequence[Change],
        chosen: Mapping[str, Candidate],
        progress: Progress | None = None,
    ) -> dict[str, _Staged]:
        """Extract the bundles of the versions to install into the transaction's staging
        folder, by plugin id, checked against the trust policy (read once).

        One bundle after another: extracting several at once in threads was measured
        slower on ext4 (the journal serialises file creation; more system time, no gain)."""
        # The trust policy decides again here, where the receipt's signer comes from, so
        # that nothing reaches a version folder without it (see .trust): install and sync.
        from .trust import Trust

        trust: Trust | None = None
        jobs: list[_Staged] = []
        for change in changes:
            if change.action not in ("install", "reinstall"):
                continue
            cand = chosen[change.id]
            assert cand.source is not None
            bundle = cand.source.fetch(cand)
            trust = trust or Trust.of_home(self.layout.home)
            signer = trust.check_bundle(bundle).signer
            jobs.append(_Staged(cand, bundle, signer, txn.stage_dir()))

        def extract(job: _Staged) -> None:
            try:
                job.bundle.extract_to(job.folder)
            except OSError as exc:
                raise StoreError(
                    f"cannot stage {job.candidate.key} in {txn.folder}: {exc.strerror or exc}; "
                    "nothing was changed (free some space and try again)"
                ) from None

        for n, job in enumerate(jobs, start=1):
            extract(job)
            if progress:
                progress("installing", n, len(jobs))
        return {job.candidate.id: job for job in jobs}

    def _stage_version(
        self,
        txn: Transaction,
        staged: _Staged,
        change: Change,
        python_deps: PythonDependencies,
        isolated: IsolatedEnvironments,
    ) -> None:
        """Move an extracted version into place at commit, with its dependencies and receipt."""
        cand, bundle, signer = staged.candidate, staged.bundle, staged.signer
        assert change.version is not None
        txn.move(staged.folder, self.layout.version_dir(change.id, change.version))
        pins = python_deps.stage(txn, self.layout, cand.id, cand.version)  # see .pydeps
        pins += isolated.stage(txn, self.layout, cand)  # isolation = "process": see .venvs
        receipt = Receipt(
            cand.id,
            cand.version,
            change.source or cand.origin,
            bundle.sha256,
            bundle.manifest_sha256,
            _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            signer=signer,
            python_dependencies=pins,
        )
        txn.write(self.layout.receipt_path(cand.id, cand.version), msgspec.json.encode(receipt))

    # ------------------------------------------------------------ download

    def download(
        self,
        specs: str | Sequence[str],
        dest: Path,
        *,
        requirements: str | Sequence[str] = (),
        locked: Lockfile | None = None,
        progress: Progress | None = None,
    ) -> DownloadOutcome:
        """Put the bundles of ``specs`` and all their dependencies, resolved as if nothing
        were installed, in the folder ``dest`` with a ``plugbay.lock`` naming them by
        relative paths; see :mod:`.download`. Nothing in the home changes but its
        download cache."""
        from .download import download

        return download(
            self,
            _listed(specs),
            dest,
            requirements=_listed(requirements),
            locked=locked,
            progress=progress,
        )

    # ------------------------------------------------------------ lock, sync

    def lock(self) -> tuple[Lockfile, list[str]]:
        """The lock of this home's active versions, and warnings about their sources.

        Reads the receipts only; see :mod:`.lock` (``write_lock`` writes it to a file).
        """
        from .lock import lock_home

        recover_pending(self.layout)
        return lock_home(self.layout)

    def sync(
        self,
        lock: Lockfile,
        *,
        prune: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> SyncOutcome:
        """Make the home match ``lock``: install, reinstall or switch to every locked version.

        A locked version already installed is kept only when its receipt records the
        locked sha256 and ``verify`` finds its files intact; otherwise it is installed
        again. What is missing is fetched from each entry's source and checked against the
        lock's sha256 before the home's lock is taken. Installed versions the lock does not
        name are left and listed in ``unlocked``, or with ``prune`` removed. A source that
        cannot be fetched, a bundle that is not the locked one, or a locked set whose
        dependencies are not met raises before anything is written; everything else is
        one transaction, so a failed sync leaves the previous state.
        """
        from .lock import fetch_locked

        artifacts = Artifacts(
            self.layout.cache,
            self.limits,
            offline=self.offline,
            cache_downloads=False,  # checked against the lock after reading: see install
            progress=progress,
        )
        try:
            recover_pending(self.layout)
            fetched = {
                e.id: fetch_locked(lock, e, artifacts) for e in self._plan_sync(lock).fetches
            }
            with self._lock_unless_dry_run(dry_run):
                return self._sync(lock, fetched, artifacts, prune=prune, dry_run=dry_run)
        finally:
            artifacts.close()

    def _plan_sync(self, lock: Lockfile) -> SyncPlan:
        from .lock import plan_sync

        versions = list(self.layout.installed())
        ids = sorted({v.id for v in versions} & {e.id for e in lock.entries})
        damaged = {(r.id, r.version) for r in verify(self.layout, ids) if not r.ok} if ids else ()
        return plan_sync(lock, versions, damaged)

    def _sync(
        self,
        lock: Lockfile,
        fetched: dict[str, Candidate],
        artifacts: Artifacts,
        *,
        prune: bool,
        dry_run: bool,
    ) -> SyncOutcome:
        from .lock import fetch_locked

        plan = self._plan_sync(lock)  # again, under the lock: the home may have changed
        installed = self.installed()
        outcome = SyncOutcome(dry_run=dry_run)
        chosen: dict[str, Candidate] = {}
        for step in plan.steps:
            entry = step.entry
            have = next(
                (c for c in installed.get(entry.id, ()) if c.version == entry.version), None
            )
            if step.action in ("keep", "switch") and have is not None:
                chosen[entry.id] = have
                outcome.changes.append(Change(step.action, entry.id, entry.version, step.previous))
                continue
            cand = fetched.get(entry.id)
            if cand is None:
                cand = fetched[entry.id] = fetch_locked(lock, entry, artifacts)
            chosen[entry.id] = cand
            action: Action = "install" if have is None and step.action == "install" else "reinstall"
            outcome.changes.append(
                Change(
                    action,
                    entry.id,
                    entry.version,
                    step.previous,
                    cand.origin,
                    isolated=is_isolated(cand.manifest),
                )
            )
            if step.reason:
                outcome.warnings.append(f"{step.reason}: installing it again")
        doomed: dict[str, set[str]] = {}
        for v in plan.unlocked:
            outcome.unlocked.append((v.id, v.version))
            if prune:
                doomed.setdefault(v.id, set()).add(v.version)
                outcome.changes.append(Change("remove", v.id, v.version))
            else:
                outcome.warnings.append(
                    f"{v.id} {v.version} is installed but not in {lock.name}: left as it is "
                    "(sync --prune removes it)"
                )
        self._check_synced(lock, installed, chosen, doomed, prune)
        outcome.warnings += self._check_trust(outcome.changes, chosen)  # see .trust
        remaining = {pid: vs for pid, vs in installed.items() if pid in chosen or pid not in doomed}
        python_deps = plan_python_dependencies(
            self.layout, chosen, remaining, Pip(offline=self.offline, find_links=self.find_links)
        )
        outcome.warnings += python_deps.warnings
        isolated = plan_isolated(chosen, python_deps.pip)
        if dry_run or all(c.action == "keep" for c in outcome.changes):
            return outcome
        gone = audit_facts(self.layout, doomed)  # their receipts go with them
        txn = Transaction(self.layout)
        try:
            staged = self._extract_all(txn, outcome.changes, chosen)
            for change in outcome.changes:
                if change.action in ("install", "reinstall"):
                    self._stage_version(txn, staged[change.id], change, python_deps, isolated)
                if change.action in ("install", "reinstall", "switch"):
                    assert change.version is not None
                    txn.write(self.layout.active_file(change.id), change.version.encode())
            for pid, versions in doomed.items():
                self._stage_removal(txn, pid, versions, whole=pid not in chosen)
            _commit(txn, self.layout)
        except BaseException:
            txn.abort()
            raise
        audit.record(self.layout, "sync", outcome.changes, facts=gone)
        return outcome

    def _check_synced(
        self,
        lock: Lockfile,
        installed: dict[str, list[Candidate]],
        chosen: dict[str, Candidate],
        doomed: dict[str, set[str]],
        prune: bool,
    ) -> None:
        """Refuse a sync that would leave an active plugin's dependencies unmet."""
        after = {
            pid: [c for c in versions if c.version not in doomed.get(pid, ())]
            for pid, versions in installed.items()
        }
        new_active: dict[str, str | None] = {pid: None for pid in doomed if pid not in chosen}
        for pid, cand in chosen.items():
            if not cand.installed:
                after[pid] = [*(c for c in after.get(pid, ()) if c.version != cand.version), cand]
            new_active[pid] = cand.version
        broken = [text for _, text in _newly_broken(installed, after, new_active)]
        if broken:
            hint = "" if prune else ", or use --prune to remove the plugins it does not name"
            raise ResolutionError(
                f"refusing to sync {lock.name}: " + "; ".join(broken) + "; nothing was changed "
                f"(lock a set whose dependencies are met{hint})"
            )

    # ------------------------------------------------------------ remove, use

    def remove(
        self, refs: str | Sequence[str], *, force: bool = False, dry_run: bool = False
    ) -> Outcome:
        """Remove ``ID`` (every version) or ``ID@VERSION``; refuses to break dependents.

        Removing the active version makes the highest remaining one active.
        """
        with locked(self.layout):
            installed = self.installed()
            doomed = _doomed(_listed(refs), installed)
            after = {pid: list(vs) for pid, vs in installed.items()}
            outcome = Outcome(dry_run=dry_run)
            new_active: dict[str, str | None] = {}
            for pid, versions in doomed.items():
                after[pid] = [c for c in installed[pid] if c.version not in versions]
                outcome.changes += [
                    Change("remove", pid, c.version)
                    for c in installed[pid]
                    if c.version in versions
                ]
                active = next((c.version for c in installed[pid] if c.active), None)
                if active is not None and active not in versions:
                    continue  # the active version stays
                remaining = after[pid]
                target = (
                    max(remaining, key=lambda c: parse_version(c.version)).version
                    if remaining
                    else None
                )
                new_active[pid] = target
                if target is not None:
                    outcome.changes.append(Change("switch", pid, target, active))
            broken = [text for _, text in _newly_broken(installed, after, new_active)]
            if broken and not force:
                raise StoreError(
                    "refusing to remove: " + "; ".join(broken) + " (use --force to remove anyway)"
                )
            outcome.warnings += broken
            if dry_run:
                return outcome
            gone = audit_facts(self.layout, doomed)  # their receipts go with them
            txn = Transaction(self.layout)
            try:
                for pid, versions in doomed.items():
                    self._stage_removal(txn, pid, versions, whole=not after[pid])
                    target = new_active.get(pid)
                    if target is not None:
                        txn.write(self.layout.active_file(pid), target.encode())
                _commit(txn, self.layout)
            except BaseException:
                txn.abort()
                raise
            audit.record(self.layout, "remove", outcome.changes, facts=gone)
            return outcome

    def _stage_removal(
        self, txn: Transaction, pid: str, versions: Collection[str], *, whole: bool
    ) -> None:
        """Delete ``versions`` of ``pid`` with their receipts, python dependencies and
        venvs; ``whole``: they are all its versions, so its folders go too."""
        for version in sorted(versions):
            txn.delete(self.layout.receipt_path(pid, version))
            txn.delete(pydeps_dir(self.layout, pid, version))  # see .pydeps
            txn.delete(venv_dir(self.layout.home, pid, version))  # see .venvs
        if whole:
            txn.delete(self.layout.plugin_dir(pid))
            txn.delete(pydeps_dir(self.layout, pid))
            txn.delete(venv_dir(self.layout.home, pid))
            return
        for version in sorted(versions):
            txn.delete(self.layout.version_dir(pid, version))

    def use(self, plugin_id: str, version: str, *, force: bool = False) -> Outcome:
        """Make an installed version the active one, after checking dependents."""
        with locked(self.layout):
            installed = self.installed()
            plugin_id, _ = _parse_ref(plugin_id, installed)
            versions = installed[plugin_id]
            target = next((c for c in versions if c.version == version), None)
            if target is None:
                have = ", ".join(c.version for c in versions)
                raise StoreError(
                    f"{plugin_id} {version} is not installed (installed: {have}); install it first"
                )
            previous = next((c.version for c in versions if c.active), None)
            outcome = Outcome()
            if previous == version:
                outcome.changes.append(Change("keep", plugin_id, version))
                return outcome
            self._check_trust_now(plugin_id, version)
            broken = [text for _, text in _newly_broken(installed, installed, {plugin_id: version})]
            if broken and not force:
                raise StoreError(
                    "refusing to switch: " + "; ".join(broken) + " (use --force to switch anyway)"
                )
            outcome.warnings += broken
            txn = Transaction(self.layout)
            try:
                txn.write(self.layout.active_file(plugin_id), version.encode())
                _commit(txn, self.layout)
            except BaseException:
                txn.abort()
                raise
            outcome.changes.append(Change("switch", plugin_id, version, previous))
            audit.record(self.layout, "use", outcome.changes)
            return outcome

    def _check_trust_now(self, plugin_id: str, version: str) -> None:
        """Refuse to make a version active that the trust policy of now would refuse: it
        was checked when it was installed, and ``[policy]`` or the keyring may have
        changed since. Its signature is looked at only where signatures are required (as
        at install, a version is otherwise welcome unsigned); ``verify`` checks them all."""
        from .trust import Trust

        trust = Trust.of_home(self.layout.home)
        trust.check_allowed(plugin_id, version, "made active")
        if not trust.policy.requires_signature(plugin_id):
            return
        folder = self.layout.version_dir(plugin_id, version)
        receipt = self.layout.read_receipt(plugin_id, version)
        missing, errors = trust.installed_problems(plugin_id, version, folder, receipt)
        problems = [f"{name} is missing (reinstall it)" for name in missing] + errors
        if problems:
            raise TrustError(
                f"{plugin_id} {version}",
                f"cannot be made active: {'; '.join(problems)}; nothing was changed",
            )

    def set_enabled(self, plugin_id: str, enabled: bool) -> Outcome:
        """Remove ``plugin_id`` from, or add it to, ``disabled`` in ``config.toml``."""
        from .grants import edit_config

        outcome = Outcome()
        action: Action = "enable" if enabled else "disable"

        def edit(doc: TOMLDocument) -> bool:
            disabled = [str(x) for x in doc.get("disabled", [])]
            changed = (plugin_id in disabled) == enabled
            outcome.changes.append(Change(action if changed else "keep", plugin_id, None))
            if not changed:
                return False
            if enabled:
                disabled = [x for x in disabled if x != plugin_id]
            else:
                disabled.append(plugin_id)
            if disabled:
                doc["disabled"] = sorted(disabled)
            elif "disabled" in doc:
                del doc["disabled"]
            return True

        edit_config(self.layout, edit)
        audit.record(self.layout, action, outcome.changes)
        return outcome

    def grant(self, plugin_id: str, pairs: Sequence[tuple[str, str]]) -> GrantOutcome:
        """Grant ``(kind, value)`` permissions in ``config.toml``; see :mod:`.grants`."""
        from .grants import grant

        outcome = grant(self.layout, plugin_id, pairs)
        audit.record(self.layout, "grant", outcome.changes)
        return outcome

    def revoke(
        self, plugin_id: str, patterns: Sequence[tuple[str, str | None]] = ()
    ) -> GrantOutcome:
        """Revoke permissions (all of them, without ``patterns``); see :mod:`.grants`."""
        from .grants import revoke

        outcome = revoke(self.layout, plugin_id, patterns)
        audit.record(self.layout, "revoke", outcome.changes)
        return outcome


# ---------------------------------------------------------------- helpers


def audit_facts(
    layout: Layout, doomed: Mapping[str, Collection[str]]
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Source and hashes of versions about to be removed, for the audit trail."""
    return {(pid, v): audit.version_facts(layout, pid, v) for pid, vs in doomed.items() for v in vs}


class _Candidates(dict[str, list[Candidate]]):
    """Candidates per id, computed on first look-up, in order of preference."""

    def __init__(
        self,
        installed: dict[str, list[Candidate]],
        explicit: dict[str, Candidate],
        artifacts: Artifacts,
        sources: Sequence[Source],
        force: bool,
        *,
        allowed: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        super().__init__()
        self._installed = installed
        self._explicit = explicit
        self._artifacts = artifacts
        self._sources = sources
        self._force = force
        # install --locked: the only versions these ids may have (see lock.allowed_versions).
        self._allowed = allowed or {}

    def __missing__(self, plugin_id: str) -> list[Candidate]:
        found: list[Candidate] = []
        seen: set[str] = set()
        explicit = self._explicit.get(plugin_id)
        if explicit is not None and (
            self._force
            or not any(c.version == explicit.version for c in self._installed.get(plugin_id, ()))
        ):
            found.append(explicit)
            seen.add(explicit.version)
        for c in self._installed.get(plugin_id, ()):
            if c.version not in seen:
                found.append(c)
                seen.add(c.version)
        extra = [*self._artifacts.available(plugin_id)]
        for source in self._sources:
            extra += source.available(plugin_id)
        extra.sort(key=lambda c: parse_version(c.version), reverse=True)
        for c in extra:
            if c.version not in seen:
                found.append(c)
                seen.add(c.version)
        if plugin_id in self._allowed:
            found = [c for c in found if c.version in self._allowed[plugin_id]]
        self[plugin_id] = found
        return found

    def get(self, plugin_id: str, default: Any = None) -> list[Candidate]:
        return self[plugin_id]


def _read_requests(
    parsed: list[Requested | Artifact],
    artifacts: Artifacts,
    progress: Progress | None,
    known: Mapping[str, tuple[str, str]],
) -> tuple[list[Requirement], dict[str, Candidate]]:
    """Root requirements, and the candidates that folders, bundles, URLs and git gave.

    A bundle file whose sha256 a receipt already records is that installed version: it
    is not read again (``known``: bundle sha256 → id and version; empty with --force).
    """
    roots: list[Requirement] = []
    explicit: dict[str, Candidate] = {}
    for n, item in enumerate(parsed, start=1):
        if progress:
            progress("reading", n, len(parsed))
        if isinstance(item, Requested):
            roots.append(Requirement(item.id, item.range, None, "you asked for"))
            continue
        same = known.get(hash_file(item.location)) if known and item.kind == "file" else None
        if same is not None:
            roots.append(Requirement(same[0], f"={same[1]}", None, f"{item} is"))
            continue
        cand = artifacts.add(item)
        other = explicit.get(cand.id)
        if other is not None and other.version != cand.version:
            raise SourceError(
                str(item),
                f"is {cand.id} {cand.version}, and {other.origin} is {cand.id} {other.version}: "
                "install one version at a time",
            )
        explicit[cand.id] = cand
        roots.append(Requirement(cand.id, f"={cand.version}", None, f"{item} is"))
    return roots, explicit


def _keep(installed: dict[str, list[Candidate]], requested: set[str]) -> list[Requirement]:
    """Keep every installed, active plugin not asked for, with its needs met.

    A plugin whose needs are unmet already (installed with --force or --no-deps) is left
    out: it must not block unrelated installs, and what it lacks is not this install's doing.
    """
    active = _active_map(installed, {})
    return [
        Requirement(pid, None, None, "keeping installed")
        for pid, cand in sorted(active.items())
        if pid not in requested and not _unmet(pid, cand, active, installed)
    ]


def _prefetch(changes: Sequence[Change], chosen: Mapping[str, Candidate]) -> None:
    """Let each source that can (an index) download the bundles to install at once, in
    parallel, so that the trust check's ``fetch`` finds them ready."""
    by_source: dict[int, tuple[Any, list[Candidate]]] = {}
    for change in changes:
        if change.action not in ("install", "reinstall"):
            continue
        cand = chosen[change.id]
        if cand.bundle is not None or cand.source is None:
            continue
        prefetch = getattr(cand.source, "prefetch", None)
        if prefetch is not None:
            by_source.setdefault(id(cand.source), (prefetch, []))[1].append(cand)
    for prefetch, cands in by_source.values():
        prefetch(cands)


def _resolution_error(
    message: str, candidates: Mapping[str, Sequence[Candidate]], sources: Sequence[Source]
) -> StoreError:
    """What to raise when the resolution failed: when a plugin nothing offers may be in an
    index that could not be had (unreachable, or not cached offline), that index's error;
    else the resolution's message with the closest names the indexes list."""
    missing = any(not found for found in candidates.values())
    failures = [f for s in sources if (f := getattr(s, "failure", None)) is not None]
    if missing and failures:
        return cast(StoreError, failures[0])
    return ResolutionError(message + _not_in_indexes(candidates, sources))


def _not_in_indexes(
    candidates: Mapping[str, Sequence[Candidate]], sources: Sequence[Source]
) -> str:
    """For a conflict: the ids no source offers at all, with the closest names the
    indexes list (sources with ``ids()``), or ""."""
    listing = [s for s in sources if hasattr(s, "ids")]
    missing = sorted(pid for pid, found in candidates.items() if not found)
    if not listing or not missing:
        return ""
    from difflib import get_close_matches

    known = sorted({pid for s in listing for pid in s.ids()})
    labels = ", ".join(str(getattr(s, "label", s)) for s in listing)
    parts = []
    for pid in missing:
        close = get_close_matches(pid, known, n=3, cutoff=0.6)
        hint = f"; closest names: {', '.join(close)}" if close else ""
        parts.append(f"{pid} is in no index ({labels}){hint}")
    return " — " + "; ".join(parts)


def _listed(values: str | Sequence[str]) -> list[str]:
    """What a method taking several specs or ids was given: one string is one of them,
    not a sequence of characters."""
    return [values] if isinstance(values, str) else list(values)


def _pick_roots(roots: Sequence[Requirement], candidates: _Candidates) -> dict[str, Candidate]:
    """``--no-deps``: the preferred candidate of each root, nothing else."""
    chosen: dict[str, Candidate] = {}
    for r in roots:
        match = next((c for c in candidates[r.id] if r.satisfied_by(c.version)), None)
        if match is None:
            raise ResolutionError(str(explain([r], candidates)))
        chosen[r.id] = match
    return chosen


def _closure(requested: set[str], chosen: dict[str, Candidate]) -> set[str]:
    """The requested ids and, through the chosen versions, everything they need."""
    seen: set[str] = set()
    todo = list(requested)
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in chosen:
            continue
        seen.add(pid)
        todo.extend(chosen[pid].manifest.dependencies)
    return seen


def _changes(
    chosen: dict[str, Candidate], installed: dict[str, list[Candidate]], activate: bool
) -> list[Change]:
    changes = []
    for pid in sorted(chosen):
        cand = chosen[pid]
        versions = installed.get(pid, [])
        active = next((c.version for c in versions if c.active), None)
        # Without --no-activate the chosen version becomes active; with it, only a plugin
        # that has no active version yet gets one.
        becomes_active = activate or active is None
        if not cand.installed:
            reinstall = any(c.version == cand.version for c in versions)
            becomes_active = becomes_active or active == cand.version
            action: Action = "reinstall" if reinstall else "install"
            changes.append(
                Change(
                    action,
                    pid,
                    cand.version,
                    active,
                    cand.origin,
                    becomes_active,
                    isolated=is_isolated(cand.manifest),
                )
            )
        elif active != cand.version and becomes_active:
            changes.append(Change("switch", pid, cand.version, active))
        else:
            changes.append(Change("keep", pid, cand.version, active, active=active == cand.version))
    return changes


def _after_install(
    installed: dict[str, list[Candidate]], chosen: dict[str, Candidate], changes: list[Change]
) -> tuple[dict[str, list[Candidate]], dict[str, str | None]]:
    """The installed versions and the active ones, once ``changes`` are made."""
    after = {pid: list(vs) for pid, vs in installed.items()}
    new_active: dict[str, str | None] = {}
    for change in changes:
        if change.action in ("install", "reinstall"):
            cand = chosen[change.id]
            versions = [c for c in after.get(change.id, []) if c.version != cand.version]
            after[change.id] = [*versions, cand]
        if change.action in ("install", "reinstall", "switch") and change.active:
            new_active[change.id] = change.version
    return after, new_active


def _conflict_message(
    conflict: Conflict, installed: dict[str, list[Candidate]], requested: set[str]
) -> str:
    dependents = [p for p in conflict.parents if p in installed and p not in requested]
    text = str(conflict)
    if dependents:
        text += (
            f" — installed plugins that would break: {', '.join(dependents)}"
            " (use --force to install anyway)"
        )
    return text


def _active_map(
    installed: dict[str, list[Candidate]], overrides: dict[str, str | None]
) -> dict[str, Candidate]:
    """The active candidate of each id, with ``overrides`` (None: no active version)."""
    out: dict[str, Candidate] = {}
    for pid, versions in installed.items():
        if pid in overrides:
            target = overrides[pid]
        else:
            target = next((c.version for c in versions if c.active), None)
        match = next((c for c in versions if c.version == target), None)
        if match is not None:
            out[pid] = match
    return out


def _unmet(
    pid: str,
    cand: Candidate,
    active: dict[str, Candidate],
    installed: dict[str, list[Candidate]],
) -> list[tuple[str, str, str]]:
    """``(pid, dependency, reason)`` for each need of ``cand`` the ``active`` versions miss."""
    out = []
    for dep, rng in sorted(cand.manifest.dependencies.items()):
        target = active.get(dep)
        if target is None:
            gone = "which would be gone" if dep in installed else "which is not installed"
            out.append((pid, dep, f"{pid} {cand.version} needs {dep} {rng}, {gone}"))
        elif not Requirement(dep, rng).satisfied_by(target.version):
            out.append(
                (pid, dep, f"{pid} {cand.version} needs {dep} {rng}, not {dep} {target.version}")
            )
    return out


def _newly_broken(
    before: dict[str, list[Candidate]],
    after: dict[str, list[Candidate]],
    new_active: dict[str, str | None],
) -> list[tuple[str, str]]:
    """``(dependent, reason)`` for each need the ``after`` state breaks that ``before`` met.

    Needs that were unmet already (a plugin installed with --force or --no-deps) are not
    this change's doing and do not count.
    """
    old_active = _active_map(before, {})
    old = {
        (pid, dep)
        for p, c in old_active.items()
        for pid, dep, _ in _unmet(p, c, old_active, before)
    }
    active = _active_map(after, new_active)
    return [
        (pid, text)
        for p, c in sorted(active.items())
        for pid, dep, text in _unmet(p, c, active, before)
        if (pid, dep) not in old
    ]


def _doomed(refs: Sequence[str], installed: dict[str, list[Candidate]]) -> dict[str, set[str]]:
    """The versions ``refs`` name, per id (``ID`` alone: every installed version)."""
    out: dict[str, set[str]] = {}
    for ref in refs:
        pid, version = _parse_ref(ref, installed)
        versions = {c.version for c in installed[pid]} if version is None else {version}
        out.setdefault(pid, set()).update(versions)
    return out


def _parse_ref(ref: str, installed: dict[str, list[Candidate]]) -> tuple[str, str | None]:
    plugin_id, sep, version = ref.partition("@")
    if not sep:
        plugin_id, sep, version = ref.partition(":")
    if plugin_id not in installed:
        from difflib import get_close_matches

        close = get_close_matches(plugin_id, list(installed), n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        raise StoreError(f"{plugin_id} is not installed{hint}")
    if sep:
        if not any(c.version == version for c in installed[plugin_id]):
            have = ", ".join(c.version for c in installed[plugin_id])
            raise StoreError(f"{plugin_id} {version} is not installed (installed: {have})")
        return plugin_id, version
    return plugin_id, None


def installed_manifest(folder: Path) -> Manifest | None:
    """The manifest of the version installed in ``folder`` (its MANIFEST.json); None if
    it cannot be read or is not valid (``plugbay verify`` says why)."""
    path = folder / "MANIFEST.json"
    try:
        return manifest_from_json_member(path.read_bytes(), str(path))
    except (OSError, ManifestError):
        return None


def _commit(txn: Transaction, layout: Layout) -> None:
    """Commit a change to the plugins folder (under the home's lock), then tell discovery.

    The generation stamp is replaced in the same transaction: discovery trusts its cache
    of the store's versions only while the stamp is unchanged (decision 0004). Once the
    change is in place, discovery's cache of the plugins folder is brought up to date, so
    that the next start reads no manifest again.
    """
    # The last step of the change: whoever reads the new stamp finds every other file of
    # the change in place (the signers cache relies on it, see .signers).
    txn.write(layout.plugins / GENERATION_FILE, os.urandom(16).hex().encode())
    txn.commit()
    from ..discovery import remember_store

    remember_store(layout.plugins, layout.discovery_cache)
