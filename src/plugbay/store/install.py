"""The store: install, remove, switch, enable and disable plugins in a home.

Every change holds the home's lock, resolves first, stages everything, and commits with
atomic renames (see :mod:`.transaction`), so a failure or a kill leaves the previous
state or the new one. Nothing here imports plugin code.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from ..errors import ResolutionError, SourceError, StoreError
from ..manifest import Manifest
from ..resolution import Conflict, Requirement, resolve
from ..versions import parse_version
from .bundle import Limits, ManifestFile, build_bundle
from .layout import InstalledVersion, Layout, Receipt
from .sources import Artifact, Artifacts, Candidate, Requested, Source, parse_spec
from .transaction import Transaction, locked
from .verify import VerifyReport, verify

__all__ = ["Change", "Store"]

Action = Literal["install", "reinstall", "switch", "keep", "remove", "enable", "disable"]


@dataclass(frozen=True)
class Change:
    """One thing a store operation did (or, with ``dry_run``, would do)."""

    action: Action
    id: str
    version: str | None
    previous: str | None = None
    source: str | None = None

    def __str__(self) -> str:
        what = f"{self.id} {self.version}" if self.version else self.id
        if self.action == "switch":
            return f"switch {self.id} {self.previous} → {self.version}"
        if self.action == "keep":
            return f"keep {what} (already installed)"
        return f"{self.action} {what}" + (
            f" from {self.source}"
            if self.source and self.action in ("install", "reinstall")
            else ""
        )


@dataclass
class Outcome:
    """What an operation did: changes, and warnings (e.g. what ``--force`` broke)."""

    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False


Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class _Options:
    dry_run: bool
    force: bool
    no_deps: bool
    activate: bool
    progress: Progress | None


class Store:
    """Installed plugins of one home; the only writer of its layout."""

    def __init__(
        self,
        home: Path,
        *,
        limits: Limits | None = None,
        offline: bool = False,
        sources: Sequence[Source] = (),
    ) -> None:
        self.layout = Layout(home)
        self.limits = limits or Limits()
        self.offline = offline
        self.sources = list(sources)

    # ------------------------------------------------------------ reading

    def installed(self) -> dict[str, list[Candidate]]:
        """Installed versions per id (the active one first)."""
        out: dict[str, list[Candidate]] = {}
        for v in self.layout.installed():
            manifest = _installed_manifest(v)
            if manifest is None:
                continue
            out.setdefault(v.id, []).append(
                Candidate(v.id, v.version, manifest, "installed", installed=True, active=v.active)
            )
        for versions in out.values():
            versions.sort(key=lambda c: (c.active, parse_version(c.version)), reverse=True)
        return out

    def verify(self, ids: Sequence[str] = ()) -> list[VerifyReport]:
        """Re-hash installed files; see :mod:`.verify`."""
        return verify(self.layout, list(ids))

    def build(self, folder: Path, out_dir: Path) -> Path:
        """Build the reproducible bundle of the plugin in ``folder``."""
        if not folder.is_dir():
            raise SourceError(str(folder), "is not a folder")
        return build_bundle(folder, out_dir)

    # ------------------------------------------------------------ install

    def install(
        self,
        specs: Sequence[str],
        *,
        requirements: Sequence[str] = (),
        dry_run: bool = False,
        force: bool = False,
        no_deps: bool = False,
        activate: bool = True,
        progress: Progress | None = None,
    ) -> Outcome:
        """Install what ``specs`` (and requirement-file entries) name, with dependencies.

        Refuses, naming them, to break the dependencies of installed plugins unless
        ``force``. With ``dry_run`` it only says what it would do.
        """
        every = [*specs, *requirements]
        if not every:
            raise SourceError(
                "install", "nothing to install: give plugin ids, folders, bundles, URLs or -r FILE"
            )
        parsed = [parse_spec(s) for s in every]
        artifacts = Artifacts(self.layout.cache, self.limits, offline=self.offline)
        try:
            with locked(self.layout):
                options = _Options(dry_run, force, no_deps, activate, progress)
                return self._install(parsed, artifacts, options)
        finally:
            artifacts.close()

    def _install(
        self, parsed: list[Requested | Artifact], artifacts: Artifacts, options: _Options
    ) -> Outcome:
        dry_run, force, no_deps = options.dry_run, options.force, options.no_deps
        activate, progress = options.activate, options.progress
        installed = self.installed()
        roots: list[Requirement] = []
        explicit: dict[str, Candidate] = {}
        for n, item in enumerate(parsed, start=1):
            if progress:
                progress("reading", n, len(parsed))
            if isinstance(item, Artifact):
                cand = artifacts.add(item)
                explicit[cand.id] = cand
                roots.append(Requirement(cand.id, f"={cand.version}", None, f"the request {item}"))
            else:
                roots.append(Requirement(item.id, item.range, None, f"the request {item}"))
        requested_ids = {r.id for r in roots}
        candidates = _Candidates(installed, explicit, artifacts, self.sources, force)
        outcome = Outcome(dry_run=dry_run)
        if no_deps:
            chosen = _pick_roots(roots, candidates)
        else:
            keep = (
                []
                if force
                else [
                    Requirement(pid, None, None, f"installed {pid}")
                    for pid, versions in sorted(installed.items())
                    if pid not in requested_ids and any(c.active for c in versions)
                ]
            )
            result = resolve([*roots, *keep], candidates)
            if isinstance(result, Conflict):
                raise ResolutionError(_conflict_message(result, installed, requested_ids))
            chosen = result
        changes = _changes(chosen, installed, explicit, force)
        if force:
            outcome.warnings += _broken(chosen, installed)
        outcome.changes = changes
        if dry_run or all(c.action == "keep" for c in changes):
            return outcome
        self._commit_install(changes, chosen, activate, progress)
        return outcome

    def _commit_install(
        self,
        changes: list[Change],
        chosen: dict[str, Candidate],
        activate: bool,
        progress: Progress | None,
    ) -> None:
        txn = Transaction(self.layout)
        try:
            work = [c for c in changes if c.action in ("install", "reinstall", "switch")]
            for n, change in enumerate(work, start=1):
                if progress:
                    progress("installing", n, len(work))
                cand = chosen[change.id]
                assert change.version is not None
                active_now = self.layout.active_version(change.id)
                if change.action in ("install", "reinstall"):
                    self._stage_version(txn, cand, change)
                    if activate or active_now is None:
                        txn.write(self.layout.active_file(change.id), change.version.encode())
                else:
                    txn.write(self.layout.active_file(change.id), change.version.encode())
            _bump_generation(txn, self.layout)
            txn.commit()
        except BaseException:
            txn.abort()
            raise

    def _stage_version(self, txn: Transaction, cand: Candidate, change: Change) -> None:
        assert cand.source is not None
        assert change.version is not None
        bundle = cand.source.fetch(cand)
        staged = txn.stage_dir()
        try:
            bundle.extract_to(staged)
        except OSError as exc:
            raise StoreError(
                f"cannot stage {cand.key} in {txn.folder}: {exc.strerror or exc}; "
                "nothing was changed (free some space and try again)"
            ) from None
        txn.move(staged, self.layout.version_dir(change.id, change.version))
        receipt = Receipt(
            cand.id,
            cand.version,
            change.source or cand.origin,
            bundle.sha256,
            bundle.manifest_sha256,
            _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        txn.write(self.layout.receipt_path(cand.id, cand.version), msgspec.json.encode(receipt))

    # ------------------------------------------------------------ remove, use

    def remove(self, refs: Sequence[str], *, force: bool = False, dry_run: bool = False) -> Outcome:
        """Remove ``ID`` (every version) or ``ID@VERSION``; refuses to break dependents."""
        with locked(self.layout):
            installed = self.installed()
            targets = [_parse_ref(r, installed) for r in refs]
            after = {pid: list(vs) for pid, vs in installed.items()}
            outcome = Outcome(dry_run=dry_run)
            new_active: dict[str, str | None] = {}
            for pid, version in targets:
                remaining = [c for c in after[pid] if version is not None and c.version != version]
                after[pid] = remaining
                active = next((c for c in installed[pid] if c.active), None)
                if active is not None and active.version != version and remaining:
                    continue  # the active version stays
                new_active[pid] = (
                    max(remaining, key=lambda c: parse_version(c.version)).version
                    if remaining
                    else None
                )
                for c in installed[pid]:
                    if version is None or c.version == version:
                        outcome.changes.append(Change("remove", pid, c.version))
            for pid, active_version in new_active.items():
                if active_version is not None:
                    previous = next((c.version for c in installed[pid] if c.active), None)
                    outcome.changes.append(Change("switch", pid, active_version, previous))
            broken = _dependents_broken(installed, after, new_active)
            if broken and not force:
                raise StoreError(
                    "refusing to remove: " + "; ".join(broken) + " (use --force to remove anyway)"
                )
            outcome.warnings += broken
            if dry_run:
                return outcome
            txn = Transaction(self.layout)
            try:
                for pid, version in targets:
                    if version is None:
                        txn.delete(self.layout.plugin_dir(pid))
                        for c in installed[pid]:
                            txn.delete(self.layout.receipt_path(pid, c.version))
                        continue
                    txn.delete(self.layout.version_dir(pid, version))
                    txn.delete(self.layout.receipt_path(pid, version))
                    if pid in new_active:
                        target = new_active[pid]
                        if target is None:
                            txn.delete(self.layout.plugin_dir(pid))
                        else:
                            txn.write(self.layout.active_file(pid), target.encode())
                _bump_generation(txn, self.layout)
                txn.commit()
            except BaseException:
                txn.abort()
                raise
            return outcome

    def use(self, plugin_id: str, version: str, *, force: bool = False) -> Outcome:
        """Make an installed version the active one, after checking dependents."""
        with locked(self.layout):
            installed = self.installed()
            versions = installed.get(plugin_id)
            if not versions:
                raise StoreError(f"{plugin_id} is not installed (run: plugbay list)")
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
            broken = _dependents_broken(installed, installed, {plugin_id: version})
            if broken and not force:
                raise StoreError(
                    "refusing to switch: " + "; ".join(broken) + " (use --force to switch anyway)"
                )
            outcome.warnings += broken
            txn = Transaction(self.layout)
            txn.write(self.layout.active_file(plugin_id), version.encode())
            _bump_generation(txn, self.layout)
            txn.commit()
            outcome.changes.append(Change("switch", plugin_id, version, previous))
            return outcome

    def set_enabled(self, plugin_id: str, enabled: bool) -> Outcome:
        """Remove ``plugin_id`` from, or add it to, ``disabled`` in ``config.toml``."""
        import tomlkit

        with locked(self.layout):
            path = self.layout.config
            try:
                doc = (
                    tomlkit.parse(path.read_text("utf-8")) if path.exists() else tomlkit.document()
                )
            except (OSError, UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
                raise StoreError(f"{path} cannot be read: {exc}; fix it first") from None
            disabled = [str(x) for x in doc.get("disabled", [])]
            changed = (plugin_id in disabled) == enabled
            if enabled:
                disabled = [x for x in disabled if x != plugin_id]
            elif plugin_id not in disabled:
                disabled.append(plugin_id)
            outcome = Outcome()
            action: Action = "enable" if enabled else "disable"
            outcome.changes.append(Change(action if changed else "keep", plugin_id, None))
            if not changed:
                return outcome
            if disabled:
                doc["disabled"] = sorted(disabled)
            elif "disabled" in doc:
                del doc["disabled"]
            txn = Transaction(self.layout)
            txn.write(path, tomlkit.dumps(doc).encode("utf-8"))
            txn.commit()
            return outcome


# ---------------------------------------------------------------- helpers


class _Candidates(dict[str, list[Candidate]]):
    """Candidates per id, computed on first look-up, in order of preference."""

    def __init__(
        self,
        installed: dict[str, list[Candidate]],
        explicit: dict[str, Candidate],
        artifacts: Artifacts,
        sources: Sequence[Source],
        force: bool,
    ) -> None:
        super().__init__()
        self._installed = installed
        self._explicit = explicit
        self._artifacts = artifacts
        self._sources = sources
        self._force = force

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
        self[plugin_id] = found
        return found

    def get(self, plugin_id: str, default: Any = None) -> list[Candidate]:
        return self[plugin_id]


def _pick_roots(roots: Sequence[Requirement], candidates: _Candidates) -> dict[str, Candidate]:
    chosen: dict[str, Candidate] = {}
    for r in roots:
        match = next((c for c in candidates[r.id] if r.satisfied_by(c.version)), None)
        if match is None:
            have = ", ".join(c.version for c in candidates[r.id]) or "none"
            raise ResolutionError(
                f"{r.why} needs {r.id} {r.range or ''}".rstrip()
                + f", but the versions available are: {have}"
            )
        chosen[r.id] = match
    return chosen


def _changes(
    chosen: dict[str, Candidate],
    installed: dict[str, list[Candidate]],
    explicit: dict[str, Candidate],
    force: bool,
) -> list[Change]:
    changes = []
    for pid in sorted(chosen):
        cand = chosen[pid]
        versions = installed.get(pid, [])
        active = next((c.version for c in versions if c.active), None)
        if not cand.installed:
            reinstall = any(c.version == cand.version for c in versions)
            changes.append(
                Change(
                    "reinstall" if reinstall else "install", pid, cand.version, active, cand.origin
                )
            )
        elif active != cand.version:
            changes.append(Change("switch", pid, cand.version, active))
        else:
            changes.append(Change("keep", pid, cand.version))
    return changes


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
    out: dict[str, Candidate] = {}
    for pid, versions in installed.items():
        target = (
            overrides.get(pid, next((c.version for c in versions if c.active), None))
            if pid in overrides
            else next((c.version for c in versions if c.active), None)
        )
        match = next((c for c in versions if c.version == target), None)
        if match is not None:
            out[pid] = match
    return out


def _dependents_broken(
    before: dict[str, list[Candidate]],
    after: dict[str, list[Candidate]],
    new_active: dict[str, str | None],
) -> list[str]:
    """Reasons, one per broken dependency, if ``after`` with ``new_active`` were the state."""
    active = _active_map(after, new_active)
    broken = []
    for pid, cand in sorted(active.items()):
        for dep, rng in sorted(cand.manifest.dependencies.items()):
            target = active.get(dep)
            if target is None:
                if dep in before:
                    broken.append(f"{pid} {cand.version} needs {dep} {rng}, which would be gone")
            elif not Requirement(dep, rng).satisfied_by(target.version):
                broken.append(f"{pid} {cand.version} needs {dep} {rng}, not {dep} {target.version}")
    return broken


def _broken(chosen: dict[str, Candidate], installed: dict[str, list[Candidate]]) -> list[str]:
    overrides: dict[str, str | None] = {pid: c.version for pid, c in chosen.items()}
    merged = {pid: list(vs) for pid, vs in installed.items()}
    for pid, c in chosen.items():
        if not any(v.version == c.version for v in merged.get(pid, [])):
            merged.setdefault(pid, []).append(c)
    return _dependents_broken(installed, merged, overrides)


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


def _installed_manifest(v: InstalledVersion) -> Manifest | None:
    try:
        mfile = msgspec.json.decode((v.path / "MANIFEST.json").read_bytes(), type=ManifestFile)
        return msgspec.convert(mfile.manifest, Manifest)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _bump_generation(txn: Transaction, layout: Layout) -> None:
    """Replace the plugins folder's generation stamp, telling discovery to look again."""
    from ..discovery import GENERATION_FILE

    txn.write(layout.plugins / GENERATION_FILE, os.urandom(16).hex().encode())
