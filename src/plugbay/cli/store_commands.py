"""Bodies of the store commands: build, install, remove, use, enable, disable, verify.

Each makes one call on :class:`plugbay.store.Store` and renders the outcome.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import render

if TYPE_CHECKING:
    from ..store import Lockfile, Outcome, Store
    from .app import Settings


def _store(
    settings: Settings,
    indexes: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Store:
    """The store of the home; with ``indexes`` (a list, maybe empty), it installs by name
    from those index URLs and then from the ``[[index]]`` tables of config.toml."""
    from ..config import home_for
    from ..store import Store

    home = home_for(settings.app, settings.home)
    if indexes is None:
        return Store(home, offline=settings.offline)
    from ..store.index import index_sources

    sources = index_sources(home, indexes, offline=settings.offline, progress=progress)
    return Store(home, offline=settings.offline, sources=sources)


@contextmanager
def _indexed_store(
    settings: Settings,
    indexes: Sequence[str] | None,
    progress: Callable[[str, int, int], None] | None,
) -> Iterator[Store]:
    """:func:`_store` with ``indexes`` (None: none at all, not even config.toml's), whose
    sources' connections are closed when the block ends."""
    store = _store(settings, indexes, progress)
    try:
        yield store
    finally:
        for source in store.sources:
            close = getattr(source, "close", None)
            if close is not None:
                close()


@contextmanager
def _progress(settings: Settings) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar on a terminal; nothing when not a terminal, quiet, or --json."""
    if settings.json or settings.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    # On stderr: stdout keeps only what the command reports.
    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(what: str, done: int, total: int) -> None:
            # total 0: unknown (a download without Content-Length), shown as a pulse.
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total or None)
            bar.update(tasks[what], completed=done, total=total or None)

        yield update


def _render(
    settings: Settings,
    outcome: Outcome,
    verb: str,
    extra: dict[str, Any] | None = None,
    *,
    nothing: str | None = None,
) -> int:
    if settings.json:
        render.emit_json(
            {
                "dry_run": outcome.dry_run,
                "changes": [
                    {
                        "action": c.action,
                        "id": c.id,
                        "version": c.version,
                        "previous": c.previous,
                        "source": c.source,
                    }
                    for c in outcome.changes
                ],
                "warnings": outcome.warnings,
                **(extra or {}),
            }
        )
        return 0
    prefix = "would " if outcome.dry_run else ""
    for change in outcome.changes:
        if settings.quiet or (change.action == "keep" and not settings.verbose):
            continue  # -q: only errors (and warnings) are shown
        render.line(f"{prefix}{change}")
    if not any(c.action != "keep" for c in outcome.changes) and not settings.quiet:
        render.line(nothing or f"nothing to {verb}: everything asked for is already in place")
    for warning in outcome.warnings:
        render.warning(warning)
    return 0


def build(settings: Settings, folder: str, out: str | None, key_file: str | None = None) -> int:
    store = _store(settings)
    sign = Path(key_file) if key_file else None
    target = store.build(Path(folder), Path(out) if out else Path.cwd(), sign=sign)
    if settings.json:
        render.emit_json({"bundle": str(target)})
    elif not settings.quiet:
        render.line(str(target))
    return 0


def install(
    settings: Settings,
    specs: list[str],
    requirement_files: list[str],
    *,
    locked: str | None = None,
    indexes: Sequence[str] = (),
    **options: Any,
) -> int:
    extra, lock = requirements(requirement_files, indexes)
    from_lock = lock is not None  # -r LOCK
    if locked is not None and lock is not None:
        from ..errors import SourceError

        raise SourceError(
            "install", f"-r {lock.name} and --locked both name a lock file: give one of them"
        )
    if locked is not None:  # install --locked [FILE]: see lock_commands
        from . import lock_commands

        locked, specs = lock_commands.split_locked(locked, specs)
        if not specs and not extra:
            from ..errors import SourceError

            raise SourceError(
                "install --locked",
                "nothing to install: name the plugins to install as the lock pins them, "
                "or run `plugbay sync` to install everything it pins",
            )
        lock = lock_commands.read(locked or lock_commands.DEFAULT_LOCK)
    # -r LOCK: every plugin comes from the source the lock names, not from an index.
    with (
        _progress(settings) as progress,
        _indexed_store(settings, None if from_lock else indexes, progress) as store,
    ):
        outcome = store.install(
            specs, requirements=extra, progress=progress, locked=lock, **options
        )
    asking = _permissions_asked(store, outcome)
    code = _render(settings, outcome, "install", {"permissions": asking})
    if not settings.json and not settings.quiet:
        for plugin in asking:
            if plugin["missing"]:
                effect = (
                    "it does not load until they are granted"
                    if plugin["enforced"]
                    else "not enforced: it runs in-process with the host's rights"
                )
                names = ", ".join(f"{m['kind']}={m['value']}" for m in plugin["missing"])
                render.line(f"{plugin['id']} asks for permissions not granted: {names} ({effect})")
                render.line(f"  grant them with: {plugin['grant_command']}")
    return code


def requirements(
    files: Sequence[str], indexes: Sequence[str] = ()
) -> tuple[list[str], Lockfile | None]:
    """The specs of ``-r`` files, and the lock among them (None if none is a lock file).

    With a lock, plugins come from the sources it names, so ``--index`` is refused.
    """
    if not files:
        return [], None
    from ..store.requirements import read_requirement_files

    specs, lock = read_requirement_files([Path(f) for f in files])
    if lock is not None and indexes:
        from ..errors import SourceError

        raise SourceError(
            f"-r {lock.name}",
            "installs each plugin from the source the lock names, so --index has no use "
            "with it: drop --index",
        )
    return specs, lock


def _permissions_asked(store: Store, outcome: Outcome) -> list[dict[str, Any]]:
    """What each newly installed plugin asks for (those asking for anything), granted or not."""
    from ..config import HostConfig, load_host_config
    from ..errors import ConfigError
    from ..security import Permissions, enforced, grant_command
    from ..store.install import installed_manifest

    fresh = {
        (c.id, c.version)
        for c in outcome.changes
        if c.action in ("install", "reinstall") and c.version and not outcome.dry_run
    }
    if not fresh:
        return []
    try:
        config = load_host_config(store.layout.config)
    except ConfigError as exc:
        # The install is done; a broken config only hides which permissions are granted.
        outcome.warnings.append(f"cannot tell which permissions are granted: {exc}")
        config = HostConfig()
    permissions = Permissions(config)
    out = []
    for plugin_id, version in sorted(fresh):
        manifest = installed_manifest(store.layout.version_dir(plugin_id, version))
        if manifest is None:
            continue  # changed since: plugbay verify says how
        report = permissions.report(plugin_id, manifest.permissions)
        if not report:
            continue
        missing = [(s.kind, s.value) for s in report if not s.granted]
        out.append(
            {
                "id": plugin_id,
                "version": version,
                "enforced": enforced(manifest.plugin),
                "asked": [{"kind": s.kind, "value": s.value, "granted": s.granted} for s in report],
                "missing": [{"kind": k, "value": v} for k, v in missing],
                "grant_command": grant_command(plugin_id, missing) if missing else None,
            }
        )
    return out


def remove(settings: Settings, refs: list[str], *, force: bool, dry_run: bool) -> int:
    return _render(settings, _store(settings).remove(refs, force=force, dry_run=dry_run), "remove")


def use(settings: Settings, ref: str, *, force: bool) -> int:
    from ..errors import StoreError

    plugin_id, sep, version = ref.partition("@")
    if not sep or not version:
        raise StoreError(f"{ref}: say which version, as ID@VERSION (e.g. acme.tools@1.2.0)")
    return _render(settings, _store(settings).use(plugin_id, version, force=force), "switch")


def set_enabled(settings: Settings, plugin_id: str, *, enabled: bool) -> int:
    outcome = _store(settings).set_enabled(plugin_id, enabled)
    known = settings.make_host().catalog.ids()
    if plugin_id not in known:
        # Still recorded: a plugin placed or installed later is meant too. A typo is not.
        from difflib import get_close_matches

        close = get_close_matches(plugin_id, known, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        outcome.warnings.append(f"no plugin {plugin_id} is installed or discovered here{hint}")
    return _render(settings, outcome, "enable" if enabled else "disable")


def verify(settings: Settings, ids: list[str]) -> int:
    # Layout and verify only: checking files needs none of the installer's imports.
    from ..config import home_for
    from ..store.layout import Layout
    from ..store.transaction import recover_pending
    from ..store.verify import verify as verify_layout

    layout = Layout(home_for(settings.app, settings.home))
    recover_pending(layout)  # a change a killed plugbay left half done is finished first
    reports = verify_layout(layout, ids)
    bad = [r for r in reports if not r.ok]
    if settings.json:
        render.emit_json(
            {
                "ok": not bad,
                "plugins": [
                    {
                        "id": r.id,
                        "version": r.version,
                        "path": r.path,
                        "ok": r.ok,
                        "modified": r.modified,
                        "missing": r.missing,
                        "extra": r.extra,
                        "errors": r.errors,
                    }
                    for r in reports
                ],
            }
        )
        return 1 if bad else 0
    for r in reports:
        label = f"{r.id} {r.version}".strip()
        if r.ok:
            if settings.verbose:
                render.line(f"ok        {label}")
            continue
        for kind in ("modified", "missing", "extra"):
            for path in getattr(r, kind):
                render.line(f"{kind:<9} {label}: {path}")
        for error in r.errors:
            render.line(f"error     {label}: {error}")
    if not settings.quiet:
        render.line(f"{len(reports)} installed version(s) checked: {len(bad)} with problems")
    return 1 if bad else 0
