"""Hot reload: swap a plugin for the version now on disk, and a watcher that does it on save.

A reload is a transaction (docs/reload.md): discover and plan again; if the plugin no
longer plans (its folder is gone, a dependency cannot be met, its manifest is invalid)
nothing is touched. Otherwise the started plugins that depend on it are stopped in
reverse order, the plugin is stopped and unloaded (a running command finishes first), its
new version is loaded and started, then its dependents. If any of that fails, the new
version is unloaded and the previous one is started again: an in-process Python plugin
gets back the very modules it was running (set aside, not re-read from disk), so a save
with a syntax error never takes it down.

:class:`Watcher` (``host.watch()``) runs a watchfiles loop in a thread: changes are
debounced (a burst of saves is one reload), mapped to plugin ids by folder, and a change
to the home's ``config.toml`` reloads the plugins whose ``[plugins."<id>"]`` table
changed. watchfiles is imported only when a watcher starts.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import LoadError, PlanError, PluginError

if TYPE_CHECKING:
    from .config import HostConfig
    from .host import Host, _Slot

__all__ = ["ReloadError", "ReloadResult", "Watcher", "reload_plugin"]

_log = logging.getLogger("plugbay.reload")


class ReloadError(LoadError):
    """A plugin's new version failed to load; its previous version keeps serving.

    ``result`` says what happened; ``restored`` is False if no previous version was
    running (the plugin had failed, or was never loaded) or if it could not be started
    again either (its own error is in the message).
    """

    def __init__(self, result: ReloadResult) -> None:
        self.result = result
        self.restored = result.restored
        error = result.error
        step = error.step if isinstance(error, LoadError) else "plan"
        reason = error.reason if isinstance(error, LoadError) else str(error)
        if isinstance(error, PlanError):
            reason = error.reason
        if result.restored:
            tail = "; the previous version keeps serving"
        elif result.restore_error is None:
            tail = "; no previous version was running"
        else:
            tail = f"; the previous version could not be restored either: {result.restore_error}"
        super().__init__(result.plugin_id, f"reload ({step})", reason + tail)
        self.detail = getattr(error, "detail", None)


class ReloadResult(msgspec.Struct, frozen=True):
    """What one reload did."""

    plugin_id: str
    ok: bool
    #: from the start of the reload to the new version answering (or the old restored)
    duration_ms: float
    #: the plugin and the dependents that were stopped and started again with it
    plugins: tuple[str, ...] = ()
    #: why the new version was refused (a PlanError or a LoadError), when it was
    error: PluginError | None = None
    #: the previous version is serving (True when ``ok``: nothing needed restoring; False
    #: when none was running)
    restored: bool = True
    restore_error: str | None = None

    @property
    def message(self) -> str:
        """One line for a terminal: ``reloaded acme.x in 42 ms`` or the error."""
        if self.ok:
            others = [p for p in self.plugins if p != self.plugin_id]
            also = f" (and {', '.join(others)})" if others else ""
            return f"reloaded {self.plugin_id}{also} in {self.duration_ms:.0f} ms"
        return str(ReloadError(self))


def reload_plugin(
    host: Host, plugin_id: str, *, previous_config: HostConfig | None = None
) -> ReloadResult:
    """Reload one plugin and its started dependents as one transaction; never raises for
    the plugin's own failures (they are in the result), only for misuse (PlanError for an
    unknown id, CommandError when called from inside a plugin command).

    ``previous_config`` is the host config to restore on failure when the caller has
    already read a changed ``config.toml`` (the watcher does).
    """
    from .host import LifecycleEvent

    host._activity.check("reload")
    host.start()
    slot = host._slot(plugin_id)
    with host._reload_lock:
        t0 = time.perf_counter()
        host._emit(LifecycleEvent("before_reload", plugin_id, slot.state))
        old = _Previous(host, slot, previous_config)
        # host.get() in other threads waits for the swap instead of finding nothing.
        host._reloading_thread = threading.get_ident()
        try:
            result = _swap(host, slot, old, t0)
        finally:
            host._reloading_thread = None
        _log.log(
            logging.INFO if result.ok else logging.WARNING,
            "%s",
            result.message,
            extra={"plugin_id": plugin_id},
        )
        reason = None if result.ok else str(ReloadError(result))
        host._emit(LifecycleEvent("after_reload", plugin_id, slot.state, reason))
        return result


class _Previous:
    """What a reload restores if the new version fails."""

    def __init__(self, host: Host, slot: _Slot, config: HostConfig | None) -> None:
        from .host import PluginState

        self.record = slot.record
        self.dependencies = slot.dependencies
        self.plan = host._plan
        self.catalog = host._catalog
        self.config = config if config is not None else host._config
        self.was_started = slot.state is PluginState.STARTED
        # A plugin that had failed is tried again: a save is how its author fixes it.
        self.was_failed = slot.state in (PluginState.FAILED, PluginState.BLOCKED)
        self.modules: str | None = None  # an in-process plugin's modules, set aside


def _why_missing(host: Host, old: _Previous) -> str:
    """Why discovery no longer finds the plugin: its manifest's problem, or its folder gone."""
    if old.record is not None:
        folder = os.path.dirname(old.record.manifest_path)
        for problem in host._catalog.problems if host._catalog is not None else ():
            if problem.path and os.path.dirname(problem.path) == folder:
                return problem.message
        if not os.path.isdir(folder):
            return f"its folder {folder} was removed"
    return "it is no longer found where it was discovered"


def _swap(host: Host, slot: _Slot, old: _Previous, t0: float) -> ReloadResult:
    from .host import PluginState, _uses_proxies

    plugin_id = slot.id
    host._config = None  # config.toml is read again: the plugin's table may have changed
    try:
        host.discover()
        new_plan = host.plan()
        planned = new_plan.get(plugin_id)
        if planned is None:
            rejected = new_plan.rejected.get(plugin_id)
            why = rejected.reason if rejected else _why_missing(host, old)
            raise PlanError(plugin_id, f"the new version cannot load: {why}")
        for dep in planned.dependencies:
            dep_slot = host._slots.get(dep)
            if dep_slot is None or dep_slot.record is None:
                raise PlanError(
                    plugin_id,
                    f"the new version needs {dep}, which this host has not planned; "
                    "restart the host to add a plugin",
                )
    except PluginError as exc:
        # Nothing was stopped: put back what planning replaced and report.
        host._plan, host._catalog, host._config = old.plan, old.catalog, old.config
        return ReloadResult(plugin_id, False, _ms(t0), (plugin_id,), exc)
    runtime = host._runtime
    in_process = (
        old.record is not None
        and old.record.origin != "builtin"
        and not _uses_proxies(old.record)
        and runtime is not None
    )
    with host._activity.changing("reload"):
        dependents = host._started_dependents(plugin_id)
        in_use = _in_use(host, (plugin_id, *dependents))
        for dep in reversed(dependents):
            host._stop_one(dep, PluginState.RESOLVED)
        if in_process and old.record is not None:
            # Keep the running modules: they are what a failed reload restores.
            old.modules = runtime.detach(old.record)
        host._stop_one(plugin_id, PluginState.RESOLVED)
        if in_process:
            _drop_bytecode(Path(planned.record.path))
        _install(host, slot, planned.record, planned.dependencies)
        host._plan = new_plan
        for dep in dependents:
            host._reset(host._slot(dep))
        unblocked = host._unblock_dependents(plugin_id)
    affected = (plugin_id, *dependents)
    try:
        if old.was_started or old.was_failed or host._is_eager(plugin_id):
            host._ensure_started(plugin_id)
        for dep in dependents:
            host._ensure_started(dep)
        _import_again(host, in_use)
    except LoadError as exc:
        if not old.was_started:  # nothing was serving: the new version's failure stays
            return ReloadResult(plugin_id, False, _ms(t0), affected, exc, False)
        restore_error = _restore(host, slot, old, dependents)
        return ReloadResult(
            plugin_id, False, _ms(t0), affected, exc, restore_error is None, restore_error
        )
    for pid in unblocked:
        if host._is_eager(pid):
            try:
                host._ensure_started(pid)
            except LoadError:
                continue  # recorded in its slot, as restart() does
    if old.modules is not None and runtime is not None:
        runtime.discard(old.modules)
    return ReloadResult(plugin_id, True, _ms(t0), affected)


def _in_use(host: Host, plugin_ids: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """The contributions of these plugins that were imported: ``(plugin_id, kind, name)``."""
    wanted = set(plugin_ids)
    return [
        (h.plugin_id, h.kind, h.name)
        for h in host.registry.handles(all_providers=True)
        if h.plugin_id in wanted and h.loaded
    ]


def _import_again(host: Host, in_use: list[tuple[str, str, str]]) -> None:
    """Import now what was in use before, so that a broken module fails the reload (and the
    old version is restored) instead of the next call."""
    from .errors import ContributionNotFound, RegistryError

    for plugin_id, kind, name in in_use:
        try:
            handle = host.registry.handle(kind, f"{plugin_id}:{name}")
        except ContributionNotFound:
            continue  # the new version no longer provides it: nothing to check
        try:
            handle.get()
        except RegistryError as exc:
            raise LoadError(plugin_id, f"import {name}", str(exc)) from None


def _drop_bytecode(folder: Path) -> None:
    """Delete the plugin's cached bytecode, so that the new version is compiled afresh.

    Python trusts a ``.pyc`` whose source has the same size and modification second: an
    edit of ``return 1`` to ``return 2`` within a second would run the old code. The cache
    is beside the sources (``__pycache__``) or, with ``PYTHONPYCACHEPREFIX``, under
    ``sys.pycache_prefix``: ``cache_from_source`` says where.
    """
    import importlib.util

    stale = [pyc for cache in folder.rglob("__pycache__") for pyc in cache.glob("*.pyc")]
    if sys.pycache_prefix:
        for source in folder.rglob("*.py"):
            try:
                stale.append(Path(importlib.util.cache_from_source(str(source))))
            except NotImplementedError:  # an interpreter that caches no bytecode at all
                break
    for pyc in stale:
        try:
            pyc.unlink(missing_ok=True)
        except OSError:  # read-only, or removed meanwhile: the import still works
            continue


def _install(host: Host, slot: _Slot, record: Any, dependencies: tuple[str, ...]) -> None:
    """Point ``slot`` at ``record`` and register its declared contributions afresh."""
    from .host import PluginState

    with slot.lock:
        slot.record = record
        slot.dependencies = dependencies
        host.registry.remove_plugin(slot.id)
        host.hooks.remove_plugin(slot.id)
        if slot.state is PluginState.RESOLVED:
            host._register_declared(record)
        else:
            host._reset(slot)  # failed, blocked or stopped before: tried again now


def _restore(host: Host, slot: _Slot, old: _Previous, dependents: list[str]) -> str | None:
    """Unload the new version and start the previous one again; the error if that fails."""
    from .host import PluginState

    with host._activity.changing("reload"):
        for dep in reversed(dependents):
            host._stop_one(dep, PluginState.RESOLVED)
        host._stop_one(slot.id, PluginState.RESOLVED)
        host._plan, host._catalog, host._config = old.plan, old.catalog, old.config
        if old.record is None:
            return "there was no previous version"
        if old.modules is not None and host._runtime is not None:
            host._runtime.reattach(old.record, old.modules)
        _install(host, slot, old.record, old.dependencies)
        for dep in dependents:
            host._reset(host._slot(dep))
        host._unblock_dependents(slot.id)
    try:
        if old.was_started or host._is_eager(slot.id):
            host._ensure_started(slot.id)
        for dep in dependents:
            host._ensure_started(dep)
    except LoadError as exc:
        return str(exc)
    return None


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


# ---------------------------------------------------------------- watching


class Watcher:
    """Reloads plugins when their files (or the home's ``config.toml``) change.

    Made by :meth:`Host.watch`; runs in a daemon thread until :meth:`stop` (or the end
    of a ``with`` block). ``on_reload`` is called, in the watcher's thread, with each
    :class:`ReloadResult`; without it results are logged only. Changes are debounced:
    the watcher waits until nothing changed for ``step_ms`` (but no longer than
    ``debounce_ms`` in all) and reloads each affected plugin once.
    """

    def __init__(
        self,
        host: Host,
        *,
        on_reload: Callable[[ReloadResult], None] | None = None,
        debounce_ms: int = 1600,
        step_ms: int = 50,
        force_polling: bool | None = None,
    ) -> None:
        self.host = host
        self.on_reload = on_reload
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.force_polling = force_polling
        #: how many reloads the watcher ran (successful or not)
        self.reloads = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._config_path = (host.home / "config.toml").absolute()

    def start(self) -> Watcher:
        """Start watching; returns once the file watches are in place."""
        import watchfiles  # noqa: F401 - fail here, in the caller's thread, if it is missing

        if self._thread is not None:
            return self
        self.host.start()
        self._thread = threading.Thread(target=self._run, name="plugbay watch", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop watching and wait for the thread (and a reload it is running) to end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def folders(self) -> dict[str, str]:
        """The folder of every plugin loaded from disk, by plugin id (absolute paths)."""
        out = {}
        for plugin_id, slot in list(self.host._slots.items()):
            record = slot.record
            if record is not None and record.path != "<code>" and record.origin != "builtin":
                out[plugin_id] = os.path.abspath(record.path)
        return out

    def _roots(self) -> list[str]:
        """What to watch: each plugin folder's parent (so that deleting the folder itself is
        seen) and the home, without folders already inside another root."""
        wanted = {os.path.dirname(f) for f in self.folders().values()}
        wanted.add(str(self._config_path.parent))
        existing = sorted(p for p in wanted if os.path.isdir(p))
        out: list[str] = []
        for path in existing:
            if not any(path == r or path.startswith(r + os.sep) for r in out):
                out.append(path)
        return out

    def _run(self) -> None:
        import watchfiles

        while not self._stop.is_set():
            roots = self._roots()
            if not roots:
                self._ready.set()
                self._stop.wait(0.5)  # nothing to watch yet (no home, no plugin folders)
                continue
            watch = watchfiles.watch(
                *roots,
                watch_filter=self._wanted,
                debounce=self.debounce_ms,
                step=self.step_ms,
                stop_event=self._stop,
                rust_timeout=500,
                yield_on_timeout=True,
                raise_interrupt=False,
                force_polling=self.force_polling,
            )
            self._ready.set()
            try:
                for changes in watch:
                    if changes:
                        self.handle({path for _, path in changes})
                    if self._roots() != roots:
                        break  # a plugin moved (e.g. a new version): watch the new places
            except (OSError, RuntimeError) as exc:  # a watched root vanished, say
                _log.warning("file watching restarted: %s", exc)
                self._stop.wait(0.2)
            finally:
                watch.close()

    def _wanted(self, change: Any, path: str) -> bool:
        name = os.path.basename(path)
        if name == "__pycache__" or name.endswith((".pyc", ".pyo", "~", ".swp", ".swx")):
            return False
        return "__pycache__" not in Path(path).parts

    def affected(self, paths: Iterable[str]) -> tuple[list[str], bool]:
        """The plugin ids whose folders hold ``paths``, and whether config.toml changed."""
        folders = self.folders()
        config = str(self._config_path)
        ids: list[str] = []
        config_changed = False
        for path in paths:
            if path == config:
                config_changed = True
                continue
            for plugin_id, folder in folders.items():
                parent = os.path.dirname(folder)
                inside = path == folder or path.startswith(folder + os.sep)
                # The store's "use" switches versions by replacing <name>/active.
                switched = path == os.path.join(parent, "active")
                if (inside or switched) and plugin_id not in ids:
                    ids.append(plugin_id)
        return ids, config_changed

    def handle(self, paths: Iterable[str]) -> list[ReloadResult]:
        """Reload what ``paths`` (changed files) affect; returns the results."""
        host = self.host
        ids, config_changed = self.affected(paths)
        previous = None
        if config_changed:
            previous = host.config
            host._config = None
            current = host.config
            for plugin_id in sorted(host._slots):
                changed = previous.plugins.get(plugin_id) != current.plugins.get(plugin_id)
                if changed and plugin_id not in ids:
                    ids.append(plugin_id)
        # A dependent is reloaded with its dependency: once is enough.
        covered = set()
        for plugin_id in ids:
            covered.update(host._started_dependents(plugin_id))
        results = []
        for plugin_id in ids:
            if plugin_id in covered or self._stop.is_set():
                continue
            try:
                result = reload_plugin(host, plugin_id, previous_config=previous)
            except PluginError as exc:  # the plugin vanished from the host meanwhile
                result = ReloadResult(plugin_id, False, 0.0, (plugin_id,), exc)
            except Exception:  # noqa: BLE001 - a bug here must not end watching for good
                _log.exception("reload of %s failed", plugin_id, extra={"plugin_id": plugin_id})
                continue
            self.reloads += 1
            results.append(result)
            if self.on_reload is not None:
                try:
                    self.on_reload(result)
                except Exception:  # noqa: BLE001 - a faulty callback must not end watching
                    _log.exception("on_reload callback failed")
        return results
