"""The host: lifecycle of every plugin, from discovery to stop (DESIGN §5).

States: ``discovered → resolved → loaded → initialized → started → stopped``, or
``failed`` (an exception or timeout in one step), ``blocked`` (a dependency cannot
load) and ``disabled`` (config, policy, incompatibility or unmet dependencies). A plugin
that fails never takes the host or another plugin down with it.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from .commands import ActivityLock, Authorizer, CommandInfo, refusals, sanitize_args
from .config import (
    HostConfig,
    PluginConfig,
    home_for,
    load_host_config,
    scrub,
    validate_plugin_config,
)
from .context import HostInfo, PluginApi, PluginContext
from .discovery import Catalog, DiscoveryReporter, PluginRecord, Problem, SearchPath, discover
from .errors import (
    CommandError,
    ConfigError,
    ContributionNotFound,
    LoadError,
    LoadTimeout,
    PermissionDenied,
    PlanError,
    PluginCallError,
    RegistryError,
)
from .hooks import HookCallError, HookImpl, Hooks, HookSpecError
from .manifest import MANIFEST_NAMES, Manifest, load_manifest, manifest_from_mapping, manifest_in
from .plan import LoadPlan, plan_with_cache
from .registry import Handle, Registry
from .store.layout import DISCOVERY_CACHE

if TYPE_CHECKING:
    from .health import HealthMonitor
    from .metrics import Metrics
    from .reload import ReloadResult, Watcher
    from .runtimes.exec import ExecRuntime
    from .runtimes.exec_proxy import OutOfProcessPlugin
    from .runtimes.wasm import WasmRuntime
    from .runtimes.wasm_proxy import WasmPlugin
    from .security import Permissions

__all__ = ["Health", "Host", "LifecycleEvent", "PluginState", "PluginStatus", "home_for"]

_log = logging.getLogger("plugbay")

BUILTIN_KINDS = ("hook", "command")


class PluginState(enum.StrEnum):
    """Where a plugin is in its lifecycle."""

    DISCOVERED = "discovered"
    RESOLVED = "resolved"
    LOADED = "loaded"
    INITIALIZED = "initialized"
    STARTED = "started"
    STOPPED = "stopped"
    FAILED = "failed"
    BLOCKED = "blocked"
    DISABLED = "disabled"


# States in which a plugin's code cannot be used until it is restarted (or re-enabled).
_UNAVAILABLE = frozenset({PluginState.FAILED, PluginState.BLOCKED, PluginState.DISABLED})


class LifecycleEvent(msgspec.Struct, frozen=True):
    """Sent to listeners added with :meth:`Host.on`."""

    name: str  # host_start, host_stop, plugin_loaded, plugin_failed, plugin_unloaded,
    # plugin_event (an out-of-process plugin's "event" notification), before_reload and
    # after_reload (its reason is the error when the new version was refused)
    plugin_id: str | None = None
    state: PluginState | None = None
    reason: str | None = None
    #: plugin_event only: ``{"name": …, "data": …}`` as the plugin sent them
    data: Mapping[str, Any] | None = None


class Health(msgspec.Struct, frozen=True, gc=False):
    """One plugin's health: ``ok``, ``degraded`` or ``failed``, with a message.

    ``checked_at`` and ``last_ok`` are ``time.time()`` values: when this answer was made,
    and when the plugin last passed a check (None if it never did).
    """

    status: str
    message: str = ""
    checked_at: float = 0.0
    last_ok: float | None = None


class PluginStatus(msgspec.Struct, frozen=True):
    """A snapshot of one plugin for ``status`` and ``list``."""

    id: str
    version: str | None
    state: PluginState
    reason: str | None
    origin: str | None
    runtime: str | None
    activation: str | None
    path: str | None
    timings_ms: Mapping[str, float]
    detail: str | None = None


class _Slot(msgspec.Struct, eq=False):
    """Mutable lifecycle state of one plugin id, guarded by its lock."""

    id: str
    record: PluginRecord | None
    dependencies: tuple[str, ...] = ()
    state: PluginState = PluginState.DISCOVERED
    reason: str | None = None
    detail: str | None = None
    obj: Any = None
    timings_ms: dict[str, float] = msgspec.field(default_factory=dict)
    lock: threading.RLock = msgspec.field(default_factory=threading.RLock)
    workers: set[int] = msgspec.field(default_factory=set)
    error: LoadError | None = None  # why it failed, when it did
    config: PluginConfig | None = None  # validated at load
    # Bumped whenever the plugin is unloaded, so that a step abandoned after its timeout
    # cannot add contributions to a later (or failed) load of the plugin.
    generation: int = 0


def current_platform() -> str:
    """``os-arch`` as manifests name platforms, e.g. ``linux-x86_64``, ``darwin-arm64``."""
    system = {"win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform)
    machine = os.uname().machine.lower() if hasattr(os, "uname") else "amd64"
    machine = {"amd64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


class Host:
    """Embeds plugbay in an application: discovers, plans, loads and runs its plugins.

    ``kinds`` maps each contribution kind the host accepts to the type (often a
    ``typing.Protocol``) its objects must satisfy, or None to accept anything. ``hook``
    and ``command`` are always accepted. With ``kinds=None`` every kind is accepted.

    ``wasm_calls`` lets WebAssembly plugins call other contributions with their host
    function ``plugbay_call``: plugin id → the targets it may call, each ``kind:name``
    (as ``host.get`` takes it), ``kind:*`` or ``*``. Without an entry a plugin may call
    nothing (docs/wasm.md).

    ``metrics=False`` turns off recording into ``host.metrics``. ``health_interval``:
    seconds between periodic health checks (None: ``[health] interval`` of the config;
    0: none); see docs/observability.md.
    """

    def __init__(
        self,
        app: str,
        api_version: str | None = None,
        *,
        kinds: Mapping[str, type | None] | None = None,
        home: str | os.PathLike[str] | None = None,
        paths: Sequence[str | os.PathLike[str]] = (),
        config: Mapping[str, Mapping[str, Any]] | None = None,
        load_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        health_timeout: float = 5.0,
        entry_points: bool = True,
        system_path: str | os.PathLike[str] | None = None,
        project_path: str | os.PathLike[str] | None = None,
        cache: bool = True,
        reporter: DiscoveryReporter | None = None,
        authorize: Authorizer | None = None,
        wasm_calls: Mapping[str, Iterable[str]] | None = None,
        metrics: bool = True,
        health_interval: float | None = None,
    ) -> None:
        from .metrics import Metrics  # here, not at the top: ``import plugbay`` stays light

        self.app = app
        self.api_version = api_version
        self.home = home_for(app, home)
        self.kinds = dict(kinds) if kinds is not None else None
        self.load_timeout = load_timeout
        self.stop_timeout = stop_timeout
        self.health_timeout = health_timeout
        self.registry = Registry()
        self.hooks = Hooks()
        #: load durations, restarts, reloads, and calls of contributions (docs/observability.md)
        self.metrics: Metrics = Metrics(enabled=metrics)
        if metrics:
            self.hooks.measure(self.metrics)
        self.authorize = authorize
        self._activity = ActivityLock()
        self.shared: dict[str, Any] = {}
        self._extra_paths = [Path(p) for p in paths]
        self._code_config = {k: dict(v) for k, v in (config or {}).items()}
        self._entry_points = entry_points
        self._system_path = (
            Path(system_path) if system_path is not None else Path(f"/usr/local/lib/{app}/plugins")
        )
        self._project_path = (
            Path(project_path) if project_path is not None else Path.cwd() / f".{app}" / "plugins"
        )
        self._use_cache = cache
        self._reporter = reporter
        self._builtins: dict[str, PluginRecord] = {}
        self._builtin_objects: dict[str, Any] = {}
        self._listeners: list[Callable[[LifecycleEvent], None]] = []
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.RLock()
        self._config: HostConfig | None = None
        self._catalog: Catalog | None = None
        self._plan: LoadPlan | None = None
        self._problems: list[Problem] = []
        self._runtime: Any = None
        self._exec: ExecRuntime | None = None  # made for the first out-of-process plugin
        self._wasm: WasmRuntime | None = None  # made for the first WebAssembly plugin
        self._wasm_calls = {pid: tuple(targets) for pid, targets in (wasm_calls or {}).items()}
        self._permissions: tuple[HostConfig, Permissions] | None = None
        self._started = False
        self._stopping = False
        self._reload_lock = threading.RLock()  # one reload at a time (reload.py)
        self._reloading_thread: int | None = None  # the thread running a reload, if any
        self._health_ok: dict[str, float] = {}  # plugin id -> when it last passed a check
        self._health_running: set[tuple[str, int]] = set()  # (id, generation) being checked
        self._health_interval = health_interval
        self._monitor: HealthMonitor | None = None
        self.timings_ms: dict[str, float] = {}
        self.info = HostInfo(app, api_version, self.home)

    # ------------------------------------------------------------ configuration

    @property
    def config(self) -> HostConfig:
        """The parsed ``config.toml`` of the home (read once)."""
        if self._config is None:
            self._config = load_host_config(self.home / "config.toml")
        return self._config

    @property
    def permissions(self) -> Permissions:
        """What the user granted each plugin (``[grants]`` of ``config.toml``).

        ``host.permissions.check(plugin_id, kind, value)`` raises PermissionDenied unless
        it is granted; out-of-process plugins are refused at load when they lack one.
        """
        config = self.config
        if self._permissions is None or self._permissions[0] is not config:
            from .security import Permissions

            self._permissions = (config, Permissions(config))
        return self._permissions[1]

    def add_search_path(self, path: str | os.PathLike[str]) -> None:
        """Search ``path`` too, with the highest precedence (after config paths)."""
        self._extra_paths.append(Path(path))
        self._catalog = self._plan = None

    def add_builtin(
        self,
        manifest: Manifest | Mapping[str, Any] | str | os.PathLike[str],
        plugin: Any = None,
    ) -> str:
        """Register a built-in plugin from code; returns its id.

        ``manifest`` is a Manifest, a mapping in manifest form, or the path of a plugin
        folder or manifest file. ``plugin`` is the plugin object (or class); without it
        the manifest's ``entry`` is imported normally when the plugin loads.
        """
        if isinstance(manifest, Manifest):
            m, folder, mpath = manifest, "<code>", "<code>"
        elif isinstance(manifest, Mapping):
            m, folder, mpath = manifest_from_mapping(manifest, "<code>"), "<code>", "<code>"
        else:
            path = Path(manifest)
            if path.is_dir():
                found = manifest_in(path)
                if found is None:
                    raise PlanError(str(path), f"has no manifest ({', '.join(MANIFEST_NAMES)})")
                path = found
            m, folder, mpath = load_manifest(path), str(path.parent), str(path)
        record = PluginRecord(m, folder, mpath, "builtin", 0)
        self._builtins[record.id] = record
        if plugin is not None:
            self._builtin_objects[record.id] = plugin
        self._catalog = self._plan = None
        return record.id

    def on(self, listener: Callable[[LifecycleEvent], None]) -> None:
        """Call ``listener`` with every :class:`LifecycleEvent`."""
        self._listeners.append(listener)

    def search_paths(self) -> list[SearchPath]:
        """Where plugins are looked for, lowest precedence first (DESIGN §1)."""
        raw: list[tuple[str, Path]] = [
            ("system", self._system_path),
            ("user", self.home / "plugins"),
            ("project", self._project_path),
        ]
        raw += [("config", (self.home / Path(p).expanduser())) for p in self.config.paths]
        raw += [("api", p) for p in self._extra_paths]
        out: dict[str, SearchPath] = {}
        for origin, path in raw:
            key = os.path.abspath(path)
            out.pop(key, None)  # the same folder twice: it keeps its highest precedence
            out[key] = SearchPath(origin, Path(key), 0)
        return [SearchPath(sp.origin, sp.path, i + 1) for i, sp in enumerate(out.values())]

    # ------------------------------------------------------------ discover and plan

    def discover(self, *, thorough: bool = False) -> Catalog:
        """Find every plugin (no plugin code is imported); cached in the home.

        ``thorough`` checks every installed file instead of trusting the store's
        generation stamp (``plugbay doctor`` uses it).
        """
        t0 = time.perf_counter()
        _finish_interrupted_change(self.home)
        cache_path = self.home / DISCOVERY_CACHE if self._use_cache else None
        self._catalog = discover(
            self.search_paths(),
            cache_path=cache_path,
            builtins=list(self._builtins.values()),
            entry_point_group=f"{self.app}.plugins" if self._entry_points else None,
            path_entries=[p for p in sys.path if p and os.path.isabs(p)],
            reporter=self._reporter,
            trust_store=not thorough,
        )
        self._plan = None
        self.timings_ms["discover"] = (time.perf_counter() - t0) * 1e3
        self.metrics.host_ms["discover"] = self.timings_ms["discover"]
        return self._catalog

    @property
    def catalog(self) -> Catalog:
        return self._catalog if self._catalog is not None else self.discover()

    def plan(self) -> LoadPlan:
        """Decide what loads and in which order (discovers first if needed)."""
        catalog = self.catalog
        t0 = time.perf_counter()
        self._plan = plan_with_cache(
            catalog,
            self.home / "cache" / "plan.msgpack" if self._use_cache else None,
            api_version=self.api_version,
            policy=self.config.policy,
            disabled=self.config.disabled,
            platform=current_platform(),
        )
        self.timings_ms["plan"] = (time.perf_counter() - t0) * 1e3
        self.metrics.host_ms["plan"] = self.timings_ms["plan"]
        return self._plan

    @property
    def load_plan(self) -> LoadPlan:
        return self._plan if self._plan is not None else self.plan()

    def problems(self, *, reserved: Iterable[str] = ()) -> list[Problem]:
        """Discovery, planning, registration and command problems, for ``doctor``.

        Before :meth:`start`, contribution conflicts are found by registering every
        planned plugin's declared contributions in a scratch registry: no code is imported.
        Refused plugin commands are reported as :meth:`commands` says; ``reserved`` are the
        host CLI's own command names.
        """
        if self._started:
            hooks = self.hooks
            # A hook the host declared after start settles its "hook.unknown" problems.
            registration = [
                p for p in self._problems if p.code != "hook.unknown" or p in hooks.problems
            ]
        else:
            registration = []
            scratch, hooks = Registry(), Hooks(self.hooks.specs())
            for planned in self.load_plan.order:
                self._register_declared(planned.record, scratch, registration, hooks)
        registration += _hook_order_problems(hooks, registration)
        refused = self.commands(reserved)[1]
        return [*self.catalog.problems, *self.load_plan.problems, *registration, *refused]

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Plan, register every planned plugin's contributions, start eager plugins."""
        with self._lock:
            if self._started:
                return
            load_plan = self.load_plan
            if self._runtime is None:
                from .runtimes.python import PythonRuntime

                self._runtime = PythonRuntime()
            self._slots = {}
            self._problems = []
            for rejected in load_plan.rejected.values():
                state = PluginState(rejected.state)
                self._slots[rejected.plugin_id] = _Slot(
                    rejected.plugin_id, None, (), state, rejected.reason
                )
            for planned in load_plan.order:
                slot = _Slot(planned.id, planned.record, planned.dependencies, PluginState.RESOLVED)
                self._slots[planned.id] = slot
                self._register_declared(planned.record)
            self._started = True
        for planned in load_plan.order:
            if planned.record.manifest.plugin.activation == "eager":
                try:
                    self._ensure_started(planned.id)
                except LoadError:
                    continue  # recorded in its slot; the others go on
        self._start_monitor()
        self._emit(LifecycleEvent("host_start"))

    def __enter__(self) -> Host:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def load(self, plugin_id: str) -> PluginState:
        """Load, initialise and start one plugin (and its dependencies) now."""
        self.start()
        self._ensure_started(plugin_id)
        return self._slots[plugin_id].state

    def get(self, kind: str, name: str) -> Any:
        """A contribution's object; its plugin is loaded on first use."""
        self.start()
        try:
            handle = self.registry.handle(kind, name)
            value = handle.get()
            self.metrics.record_get(handle.plugin_id, kind, handle.name)
            return value
        except ContributionNotFound:
            if self._waited_for_reload():  # it was swapped out for a moment: ask again
                return self.get(kind, name)
            failed = self._failed_provider(kind, name)
            if failed is not None:
                raise _unavailable(failed) from None
            raise

    def _waited_for_reload(self) -> bool:
        """Wait for a reload running in another thread to end; whether there was one.

        Not from inside a plugin command: the reload waits for the command to return.
        """
        reloading = self._reloading_thread
        if reloading is None or reloading == threading.get_ident():
            return False
        try:
            self._activity.check("get")
        except CommandError:
            return False
        with self._reload_lock:
            return True

    def stop(self) -> None:
        """Stop started plugins in reverse load order, each within ``stop_timeout``.

        Waits for running plugin commands to return; called from inside one, it raises
        CommandError (the command would wait for itself).
        """
        self._activity.check("stop")
        monitor, self._monitor = self._monitor, None
        if monitor is not None:  # before the plugins go: it may be restarting one
            monitor.stop()
        with self._lock:
            if not self._started:
                return
            order = [p.id for p in self.load_plan.order]
            # From here on, a lifecycle hook does not load a lazy plugin just to tell it
            # that plugins are going away; it would outlive stop().
            self._stopping = True
        try:
            self._emit(LifecycleEvent("host_stop"))
            with self._activity.changing("stop"):
                for plugin_id in reversed(order):
                    self._stop_one(plugin_id, PluginState.STOPPED)
                with self._lock:
                    for plugin_id in order:  # lazy ones never loaded: start() adds them again
                        self.registry.remove_plugin(plugin_id)
                        self.hooks.remove_plugin(plugin_id)
                    if self._runtime is not None:
                        self._runtime.close()
                        self._runtime = None
                    if self._exec is not None:
                        self._exec.close()
                        self._exec = None
                    if self._wasm is not None:
                        self._wasm.close()
                        self._wasm = None
                    self._started = False
        finally:
            self._stopping = False

    def reload(self, plugin_id: str) -> ReloadResult:
        """Swap a plugin (and its started dependents) for the version now on disk.

        If the new version cannot be planned, loaded or started, the previous one is
        restored and keeps serving, and ReloadError says why. Running commands finish on
        the old code first; called from inside one, it raises CommandError (docs/reload.md).
        """
        from .reload import ReloadError, reload_plugin

        result = reload_plugin(self, plugin_id)
        if not result.ok:
            raise ReloadError(result)
        return result

    def watch(
        self,
        on_reload: Callable[[ReloadResult], None] | None = None,
        *,
        debounce_ms: int = 1600,
        step_ms: int = 50,
    ) -> Watcher:
        """Reload plugins when their folders or ``config.toml`` change; returns the running
        watcher (``.stop()``, or use it as a context manager). See docs/reload.md."""
        from .reload import Watcher

        return Watcher(self, on_reload=on_reload, debounce_ms=debounce_ms, step_ms=step_ms).start()

    def restart(self, plugin_id: str) -> PluginState:
        """Stop a plugin (and the started plugins that depend on it), then start them again.

        A failed or blocked plugin is tried again; the plugins it blocked become resolved
        again, and the eager ones among them are started. Waits for running plugin commands
        to return; called from inside one, it raises CommandError.
        """
        self._activity.check("restart")
        self.start()
        slot = self._slot(plugin_id)
        if slot.record is None:
            raise PlanError(plugin_id, f"is {slot.state} and cannot be restarted: {slot.reason}")
        self.metrics.count(plugin_id, "restarts")
        _log.info("restarting plugin", extra={"plugin_id": plugin_id})
        with self._activity.changing("restart"):
            dependents = self._started_dependents(plugin_id)
            for dep in reversed(dependents):
                self._stop_one(dep, PluginState.RESOLVED)
            self._stop_one(plugin_id, PluginState.RESOLVED)
            # Registered again before a waiting command can look its contributions up.
            for pid in (plugin_id, *dependents):
                self._reset(self._slot(pid))
            unblocked = self._unblock_dependents(plugin_id)
        self._ensure_started(plugin_id)
        for pid in (*dependents, *(u for u in unblocked if self._is_eager(u))):
            try:
                self._ensure_started(pid)
            except LoadError:
                continue  # recorded in its slot
        return slot.state

    def commands(
        self, reserved: Iterable[str] = ()
    ) -> tuple[dict[str, CommandInfo], list[Problem]]:
        """Plugin commands by name, from manifests (nothing imported), and the refused ones.

        ``reserved`` are the host CLI's own command names; they, plugbay's reserved names
        and names another plugin already took are refused, each with a problem saying why.
        """
        declared = []
        for planned in self.load_plan.order:
            record = planned.record
            for c in record.manifest.contributes.get("command", ()):
                info = CommandInfo(c.name, record.id, c.summary, c.requires_auth, c.help)
                declared.append(((-record.precedence, record.id), info))
        declared.sort(key=lambda pair: pair[0])
        usable, refused = refusals((info for _, info in declared), reserved)
        problems = [
            Problem("warning", "command.refused", reason, plugin_id=plugin_id)
            for (plugin_id, _), reason in sorted(refused.items())
        ]
        return usable, problems

    def run_command(self, name: str, args: Sequence[str], *, reserved: Iterable[str] = ()) -> int:
        """Run a plugin command with sanitised ``args``; returns its exit code.

        Plugins are not stopped, restarted or reloaded while a command runs.
        """
        usable, problems = self.commands(reserved)
        info = usable.get(name)
        if info is None:
            why = next((p.message for p in problems if f"command {name!r} " in p.message), None)
            if why is not None:
                raise CommandError(name, why)
            from difflib import get_close_matches

            close = get_close_matches(name, list(usable), n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            raise CommandError(name, f"no plugin provides a command named {name!r}{hint}")
        clean = sanitize_args(name, args)
        if info.requires_auth:
            self._authorize(info, clean)
        with self._activity.running(name):
            fn = self.get("command", f"{info.plugin_id}:{name}")
            t0 = time.perf_counter()
            failed = True
            try:
                result = fn(clean)
                failed = False
            except SystemExit as exc:  # a CLI-style command may exit; that is its exit code
                failed = False
                result = exc.code if isinstance(exc.code, int) or exc.code is None else 1
            except Exception as exc:  # noqa: BLE001 - any failure of the command is reported
                secrets = self.secret_values()
                error = CommandError(
                    name, scrub(f"failed in {info.plugin_id}: {_describe(exc)}", secrets)
                )
                error.detail = scrub(traceback.format_exc(), secrets)
                # Not chained: a traceback printed at -vvv would show the original message,
                # which may hold a secret value.
                raise error from None
            finally:
                elapsed = time.perf_counter() - t0
                self.metrics.record_call(info.plugin_id, "command", name, elapsed, error=failed)
        if result is None or result is True:
            return 0
        if result is False or not isinstance(result, int):
            return 1
        return result

    def _authorize(self, info: CommandInfo, args: list[str]) -> None:
        if self.authorize is None:
            raise CommandError(
                info.name,
                f"requires authorisation ({info.plugin_id} declares requires-auth = true), and "
                "this host has no authoriser; hosts pass Host(authorize=...)",
            )
        try:
            allowed = self.authorize(info.name, info.plugin_id, list(args))
        except Exception as exc:  # the host's callback failing is a refusal, said plainly
            raise CommandError(
                info.name,
                f"not authorised: the host's authoriser failed: {_describe(exc)}",
            ) from exc
        if allowed is not True:
            raise CommandError(
                info.name,
                f"not authorised: the host's authoriser refused this command from {info.plugin_id}",
            )

    def health(self) -> dict[str, Health]:
        """Each plugin's health; started plugins are asked, within ``health_timeout``.

        Out-of-process plugins are pinged. A check that timed out and is still running is
        not started again: the plugin stays failed until it returns (docs/observability.md).
        """
        self._ensure_slots()
        out: dict[str, Health] = {}
        for plugin_id in sorted(self._slots):
            slot = self._slots[plugin_id]
            checked = slot.state is PluginState.STARTED
            health = self._check_health(slot) if checked else _health_of_unstarted(slot)
            if checked and health.status == "ok":
                self._health_ok[plugin_id] = health.checked_at
            elif checked and health.status == "failed":
                self.metrics.count(plugin_id, "health_failures")
                _log.warning(
                    "health check failed: %s", health.message, extra={"plugin_id": plugin_id}
                )
            out[plugin_id] = msgspec.structs.replace(health, last_ok=self._health_ok.get(plugin_id))
        return out

    def _check_health(self, slot: _Slot) -> Health:
        """Ask a started plugin how it is (its ``health()``), within ``health_timeout``."""
        now = time.time()
        check = getattr(slot.obj, "health", None)
        if check is None:
            return Health("ok", "started", now)
        key = (slot.id, slot.generation)
        with self._lock:
            if key in self._health_running:
                # Its thread cannot be killed; starting another would pile up hung threads.
                return Health("failed", "its previous health check has not returned yet", now)
            self._health_running.add(key)

        def run() -> Any:
            try:
                value = check()
                if hasattr(value, "__await__"):
                    import asyncio

                    value = asyncio.run(_awaited(value))
                return value
            finally:
                self._health_running.discard(key)

        try:
            value = self._call(slot, "health", run, timeout=self.health_timeout, record=False)
        except LoadError as exc:
            return Health("failed", exc.reason, now)
        health = _health_from(value, now)
        secrets = slot.config.secret_values() if slot.config is not None else []
        return msgspec.structs.replace(health, message=scrub(health.message, secrets))

    def status(self) -> list[PluginStatus]:
        """A snapshot of every plugin's state, reason and timings (a stopped host stays so)."""
        self._ensure_slots()
        out = []
        for plugin_id in sorted(self._slots):
            slot = self._slots[plugin_id]
            record = slot.record or self._any_record(plugin_id)
            p = record.manifest.plugin if record else None
            out.append(
                PluginStatus(
                    plugin_id,
                    record.version if record else None,
                    slot.state,
                    slot.reason,
                    record.origin if record else None,
                    p.runtime if p else None,
                    p.activation if p else None,
                    record.path if record else None,
                    dict(slot.timings_ms),
                    slot.detail,
                )
            )
        return out

    def state(self, plugin_id: str) -> PluginState:
        """The current state of one plugin (asking does not start a stopped host again)."""
        self._ensure_slots()
        return self._slot(plugin_id).state

    # ------------------------------------------------------------ internals

    def _start_monitor(self) -> None:
        """Start periodic health checks if an interval is set (argument or ``[health]``)."""
        settings = self.config.health
        interval = self._health_interval
        interval = settings.interval if interval is None else interval
        if interval > 0 and self._monitor is None:
            from .health import HealthMonitor

            self._monitor = HealthMonitor(
                self,
                interval,
                max_restarts=settings.max_restarts,
                restart_window=settings.restart_window,
            ).start()

    def _ensure_slots(self) -> None:
        """Start a host never started; a stopped host is reported as stopped, not restarted."""
        with self._lock:
            if self._started or self._slots:
                return
        self.start()

    def _slot(self, plugin_id: str) -> _Slot:
        slot = self._slots.get(plugin_id)
        if slot is None:
            known = ", ".join(sorted(self._slots)[:10]) or "none (run: plugbay list)"
            raise PlanError(plugin_id, f"no such plugin was discovered (known: {known})")
        return slot

    def _any_record(self, plugin_id: str) -> PluginRecord | None:
        return self.catalog.preferred(plugin_id)

    def _emit(self, event: LifecycleEvent) -> None:
        """Tell listeners (``host.on``) and the plugins subscribed to the lifecycle hook."""
        if event.name == "after_reload" and event.reason is None and event.plugin_id:
            self.metrics.count(event.plugin_id, "reloads")  # host.reload() and the watcher
        self._fire_hook(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a faulty listener must not break the lifecycle
                _log.exception(
                    "lifecycle listener failed on %s",
                    event.name,
                    extra={"plugin_id": event.plugin_id},
                )

    def _fire_hook(self, event: LifecycleEvent) -> None:
        name, pid = event.name, event.plugin_id
        try:
            if name in ("host_start", "host_stop"):
                outcome = self.hooks.get(name)(host=self)
            elif name == "plugin_loaded":
                slot = self._slots.get(pid or "")
                version = slot.record.version if slot and slot.record else None
                outcome = self.hooks.plugin_loaded(plugin_id=pid, version=version)
            elif name == "plugin_failed":
                outcome = self.hooks.plugin_failed(plugin_id=pid, reason=event.reason)
            elif name == "plugin_unloaded":
                outcome = self.hooks.plugin_unloaded(plugin_id=pid)
            elif name == "before_reload":
                outcome = self.hooks.before_reload(plugin_id=pid)
            elif name == "after_reload":
                outcome = self.hooks.after_reload(
                    plugin_id=pid, ok=event.reason is None, error=event.reason
                )
            else:
                return
        except HookCallError as exc:
            # The lifecycle hooks collect their implementations' errors, but a wrapper's
            # own failure still ends the call: logged like the others, never raised here.
            _log.warning("%s", exc, extra={"plugin_id": exc.plugin_id})
            return
        secrets = self.secret_values() if outcome.errors else []
        for error in outcome.errors:
            _log.warning("%s", scrub(str(error), secrets), extra={"plugin_id": error.plugin_id})

    def _bind_hooks(self, slot: _Slot, obj: Any) -> None:
        """Import this plugin's hook implementations and check them against their specs.

        Runs while the plugin loads, so a wrong signature fails the plugin now rather
        than at the hook's first call. A hook entry without ``entry`` is the plugin
        object's method of the same name.
        """
        record = slot.record
        assert record is not None
        remote = _uses_proxies(record)
        for impl in self.hooks.implementations_of(slot.id):
            if impl.function is not None:
                continue
            entry = impl.entry  # its own entry, not one looked up by hook name
            if remote:
                if impl.wrapper:
                    raise LoadError(
                        slot.id,
                        "register",
                        f"hook {impl.hook} is declared wrapper = true; a plugin that runs out "
                        "of process or in a WebAssembly sandbox cannot implement wrappers "
                        "(they yield to the other implementations in the host)",
                    )
                impl.function = obj.hook(impl.hook)
                self.hooks.check(impl)  # it takes **kwargs, so it fits any spec
                continue
            if entry is not None:
                fn = self._call(
                    slot, f"import hook {impl.hook}", self._runtime.import_entry, record, entry
                )
            else:
                fn = getattr(obj, impl.hook, None)
                if fn is None:
                    raise LoadError(
                        slot.id,
                        "register",
                        f"hook {impl.hook} has no entry in the manifest and the plugin object "
                        f"has no method {impl.hook}",
                    )
            if impl.wrapper and not _is_generator_function(fn):
                raise LoadError(
                    slot.id,
                    "register",
                    f"hook {impl.hook} is declared wrapper = true, but {entry or impl.hook} is not "
                    "a generator function (a wrapper yields once, where the other "
                    "implementations run)",
                )
            impl.function = fn
            try:
                self.hooks.check(impl)
            except HookSpecError as exc:
                impl.function = None
                raise LoadError(slot.id, "register", str(exc)) from None

    def _hook_resolver(self, impl: HookImpl) -> Callable[[], Callable[..., Any] | None]:
        """What a hook call uses to load the lazy plugin behind ``impl``.

        While the host stops it answers None ("not now"): the hook skips that plugin.
        """

        def resolve() -> Callable[..., Any] | None:
            if self._stopping and self._slot(impl.plugin_id).state is not PluginState.STARTED:
                return None
            self._ensure_started(impl.plugin_id)
            if impl.function is None:  # called from the plugin's own register(), say
                raise LoadError(
                    impl.plugin_id, "register", f"its implementation of {impl.hook} is not loaded"
                )
            return impl.function  # set by _bind_hooks while the plugin loaded

        return resolve

    def _is_eager(self, plugin_id: str) -> bool:
        record = self._slot(plugin_id).record
        return record is not None and record.manifest.plugin.activation == "eager"

    def _kind_allowed(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds or kind in BUILTIN_KINDS

    def _register_declared(
        self,
        record: PluginRecord,
        registry: Registry | None = None,
        problems: list[Problem] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        """Add lazy handles for the contributions ``record`` declares (imports nothing).

        Hook implementations go to the hooks, not the registry: many plugins implement one
        hook, and that is no conflict.
        """
        registry = self.registry if registry is None else registry
        problems = self._problems if problems is None else problems
        hooks = self.hooks if hooks is None else hooks
        for kind, entries in record.manifest.contributes.items():
            if not self._kind_allowed(kind):
                known = ", ".join(sorted({*(self.kinds or {}), *BUILTIN_KINDS}))
                _note(
                    problems,
                    Problem(
                        "warning",
                        "contribution.unknown-kind",
                        f"{record.id} contributes {kind!r}, a kind this host does not know "
                        f"(known: {known}); ignored",
                        plugin_id=record.id,
                    ),
                )
                continue
            for c in entries:
                if kind == "hook":
                    impl = HookImpl(
                        c.name,
                        record.id,
                        priority=c.priority,
                        before=c.before,
                        after=c.after,
                        wrapper=c.wrapper,
                        entry=c.entry,
                    )
                    impl.resolve = self._hook_resolver(impl)
                    unknown = hooks.add(impl)
                    if self.kinds is not None:  # a host that declared its surface
                        _note(problems, unknown)
                    continue
                handle = Handle(
                    kind,
                    c.name,
                    record.id,
                    c.summary,
                    c.entry,
                    c.help,
                    record.precedence,
                    _resolver=self._resolve_handle,
                )
                conflict = registry.add(handle)
                if kind != "command":  # commands() reports those, saying which one is refused
                    _note(problems, conflict)

    def _add_runtime(
        self,
        slot: _Slot,
        generation: int,
        kind: str,
        name: str,
        obj: Any,
        *,
        summary: str,
        help: str | None,
    ) -> None:
        if slot.generation != generation:
            raise RegistryError(
                f"{slot.id}: cannot add {kind} {name!r}: the plugin is no longer loaded"
                f" (it is {slot.state}); api.add() works only while the plugin is loaded"
            )
        if not self._kind_allowed(kind):
            known = ", ".join(sorted({*(self.kinds or {}), *BUILTIN_KINDS}))
            raise RegistryError(
                f"{slot.id}: cannot add {kind} {name!r}: this host has no kind {kind!r}"
                f" (known: {known})"
            )
        assert slot.record is not None
        if kind == "hook":
            impl = HookImpl(name, slot.id, function=obj)
            try:
                _note(self._problems, self.hooks.add(impl))
            except HookSpecError as exc:
                raise RegistryError(str(exc)) from None
            return
        try:
            existing = self.registry.handle(kind, f"{slot.id}:{name}")
        except ContributionNotFound:
            existing = None
        if existing is not None and not existing.loaded:
            existing._value = self._checked(kind, name, slot.id, obj)
            return
        handle = Handle(kind, name, slot.id, summary, None, help, slot.record.precedence)
        handle._value = self._checked(kind, name, slot.id, obj)
        _note(self._problems, self.registry.add(handle))

    def _checked(self, kind: str, name: str, plugin_id: str, obj: Any) -> Any:
        expected = (self.kinds or {}).get(kind)
        if expected is None:
            return obj
        missing = [m for m in _members(expected) if not hasattr(obj, m)]
        if missing:
            raise RegistryError(
                f"{plugin_id}: {kind} {name!r} does not provide what the host's {kind} "
                f"interface needs: missing {', '.join(missing)}"
            )
        return obj

    def _resolve_handle(self, handle: Handle) -> Any:
        self._ensure_started(handle.plugin_id)
        slot = self._slots[handle.plugin_id]
        if handle.loaded:  # register() supplied it while the plugin loaded
            return handle._value
        if slot.record is not None and _uses_proxies(slot.record):
            proxy = slot.obj.contribution(handle.kind, handle.name)
            return self._checked(handle.kind, handle.name, handle.plugin_id, proxy)
        if handle.entry is None:
            raise RegistryError(
                f"{handle.plugin_id}: {handle.kind} {handle.name!r} has no entry in the manifest "
                "and the plugin's register(api) did not add it"
            )
        assert slot.record is not None
        record = slot.record
        obj = self._call(
            slot, f"import {handle.name}", self._runtime.import_entry, record, handle.entry
        )
        return self._checked(handle.kind, handle.name, handle.plugin_id, obj)

    def _failed_provider(self, kind: str, name: str) -> _Slot | None:
        """The plugin that would provide ``name`` had it not failed, been blocked or disabled."""
        plugin_id, _, bare = name.rpartition(":")
        for slot in self._slots.values():
            if slot.state not in _UNAVAILABLE or (plugin_id and slot.id != plugin_id):
                continue
            record = slot.record or self._any_record(slot.id)
            if record is not None and any(
                c.name == bare for c in record.manifest.contributes.get(kind, ())
            ):
                return slot
        return None

    def _started_dependents(self, plugin_id: str) -> list[str]:
        order = [p.id for p in self.load_plan.order]
        affected = {plugin_id}
        out = []
        for pid in order:
            slot = self._slots.get(pid)
            if (
                slot
                and affected.intersection(slot.dependencies)
                and slot.state is PluginState.STARTED
            ):
                affected.add(pid)
                out.append(pid)
        return out

    def _ensure_started(self, plugin_id: str) -> None:
        slot = self._slot(plugin_id)
        if _is_started(slot):
            return
        if threading.get_ident() in slot.workers:
            return  # called from the plugin's own lifecycle step: it is loading right now
        # Events are sent after the plugin's lock is released: a subscriber may be a lazy
        # plugin that loads now, and must not wait on a lock this thread holds.
        events: list[LifecycleEvent] = []
        failure: LoadError | None = None
        with slot.lock:
            if _is_started(slot):
                return
            if slot.state in _UNAVAILABLE:
                raise _unavailable(slot)
            for dep in slot.dependencies:
                try:
                    self._ensure_started(dep)
                except LoadError:
                    self._block(slot, dep)
                    raise _unavailable(slot) from None
            try:
                self._load(slot, events)
            except LoadError as exc:
                self._fail(slot, exc, events)
                failure = exc
        for event in events:
            self._emit(event)
        if failure is not None:
            raise failure

    def _load(self, slot: _Slot, events: list[LifecycleEvent]) -> None:
        record = slot.record
        assert record is not None
        t_load = time.perf_counter()
        p = record.manifest.plugin
        remote = _runs_out_of_process(record)
        if p.runtime not in ("python", "wasm") and not remote:
            raise LoadError(
                slot.id,
                "load",
                f"runtime {p.runtime!r} is not available in this version of plugbay",
            )
        try:
            slot.config = self.plugin_config(slot.id)
        except ConfigError as exc:  # its message names the field and never a secret value
            reason = str(exc).removeprefix(f"config of {slot.id}: ")
            raise LoadError(slot.id, "config", reason) from None
        obj, step_timeout = self._plugin_object(slot, record, remote)
        slot.obj = obj
        self._set(slot, PluginState.LOADED)
        if obj is None:
            self._bind_hooks(slot, obj)
            self._set(slot, PluginState.INITIALIZED)
            self._set(slot, PluginState.STARTED)
            self.metrics.record_load(slot.id, {"load": (time.perf_counter() - t_load) * 1e3})
            events.append(LifecycleEvent("plugin_loaded", slot.id, slot.state))
            return
        register = getattr(obj, "register", None)
        if register is not None:
            generation = slot.generation

            def add(kind: str, name: str, o: Any, summary: str, help_: str | None) -> None:
                self._add_runtime(slot, generation, kind, name, o, summary=summary, help=help_)

            self._call(slot, "register", register, PluginApi(slot.id, self.info, add))
        self._bind_hooks(slot, obj)
        t_init = time.perf_counter()
        init = getattr(obj, "init", None)
        if init is not None:
            self._call(slot, "init", init, self._context(slot), timeout=step_timeout)
        self._set(slot, PluginState.INITIALIZED)
        t_start = time.perf_counter()
        start = getattr(obj, "start", None)
        if start is not None:
            self._call(slot, "start", start)
        self._set(slot, PluginState.STARTED)
        self._record_load(slot, t_load, t_init, t_start)
        events.append(LifecycleEvent("plugin_loaded", slot.id, slot.state))

    def _plugin_object(
        self, slot: _Slot, record: PluginRecord, remote: bool
    ) -> tuple[Any, float | None]:
        """Spawn, instantiate or import the plugin's object; with the timeout its init gets
        (None: the default)."""
        p = record.manifest.plugin
        if remote:
            proxy = self._spawn(slot)
            return proxy, max(self.load_timeout, proxy.step_timeout)
        if p.runtime == "wasm":
            sandboxed = self._sandbox(slot)
            return sandboxed, max(self.load_timeout, sandboxed.settings.call_timeout + 1.0)
        obj = self._builtin_objects.get(slot.id)
        if obj is None and p.entry is not None:
            obj = self._call(slot, "import", self._runtime.import_entry, record, p.entry)
        if isinstance(obj, type):
            obj = self._call(slot, "import", obj)
        return obj, None

    def _record_load(self, slot: _Slot, t_load: float, t_init: float, t_start: float) -> None:
        """Keep the durations of a load that succeeded (metrics) and log it."""
        t_end = time.perf_counter()
        self.metrics.record_load(
            slot.id,
            {
                "load": (t_init - t_load) * 1e3,
                "init": (t_start - t_init) * 1e3,
                "start": (t_end - t_start) * 1e3,
            },
        )
        version = slot.record.version if slot.record is not None else None
        _log.info(
            "plugin started in %.1f ms",
            (t_end - t_load) * 1e3,
            extra={"plugin_id": slot.id, "version": version},
        )

    def _spawn(self, slot: _Slot) -> OutOfProcessPlugin:
        """Check grants, start an out-of-process plugin's child and handshake with it."""
        record = slot.record
        assert record is not None
        try:
            self.permissions.require(slot.id, record.manifest.permissions)
        except PermissionDenied as exc:
            raise LoadError(slot.id, "permissions", str(exc).removeprefix(f"{slot.id}: ")) from None
        from .runtimes.exec import ExecSettings, Supervisor, command_for
        from .runtimes.exec_proxy import OutOfProcessPlugin
        from .security import child_environment

        grants = self.permissions.granted(slot.id)
        p = record.manifest.plugin
        folder = Path(record.path)
        argv, extra = command_for(
            slot.id,
            record.version,
            folder,
            self.home,
            runtime=p.runtime,
            entry=p.entry,
            platforms=p.platforms,
            platform=current_platform(),
            path=os.environ.get("PATH"),
        )
        with self._lock:
            if self._exec is None:
                from .runtimes.exec import ExecRuntime

                self._exec = ExecRuntime()
            runtime = self._exec
        generation = slot.generation
        supervisor = Supervisor(
            runtime,
            slot.id,
            plugin_dir=folder,
            argv=argv,
            env=child_environment(grants, os.environ, extra),
            settings=ExecSettings.from_config(self.config.runtime.get(slot.id)),
            log_path=self.home / "logs" / "plugins" / f"{slot.id}.log",
            logger=_log.getChild(slot.id),
            on_failed=lambda error: self._out_of_process_failed(slot, generation, error),
            on_event=lambda name, data: self._emit(
                LifecycleEvent("plugin_event", slot.id, data={"name": name, "data": data})
            ),
        )
        if self.metrics.enabled:
            supervisor.on_call = self._remote_call_recorder(slot.id)
        runtime.add(supervisor)
        proxy = OutOfProcessPlugin(
            supervisor,
            record.manifest,
            plugin_dir=folder,
            host=self.info,
            grants=grants,
            health_timeout=self.health_timeout,
        )
        t0 = time.perf_counter()
        try:
            proxy.spawn()
        except PluginCallError as exc:
            runtime.unload(slot.id)
            step = "spawn" if exc.cause == "spawn" else "handshake"
            raise _detailed(LoadError(slot.id, step, exc.reason), exc.detail) from None
        finally:
            slot.timings_ms["spawn"] = (time.perf_counter() - t0) * 1e3
        return proxy

    def _remote_call_recorder(self, plugin_id: str) -> Callable[[str, float, bool], None]:
        """What an out-of-process or WebAssembly plugin's proxy calls after each call
        (target ``kind:name`` or ``kind:name.method``): the metrics of its object
        contributions (hooks and commands are counted where they are called)."""
        record = self.metrics.record_call

        def recorded(target: str, seconds: float, failed: bool) -> None:
            kind, _, name = target.partition(":")
            if kind not in BUILTIN_KINDS:
                record(plugin_id, kind, name.partition(".")[0], seconds, error=failed)

        return recorded

    def _out_of_process_failed(self, slot: _Slot, generation: int, error: PluginCallError) -> None:
        """An out-of-process plugin spent its restart budget: mark it failed, like a plugin
        whose start failed (runs on the exec runtime's callback thread)."""
        events: list[LifecycleEvent] = []
        with slot.lock:
            if slot.generation != generation or slot.state is not PluginState.STARTED:
                return  # stopped, failed or restarted meanwhile
            self._fail(
                slot, _detailed(LoadError(slot.id, "run", error.reason), error.detail), events
            )
        for event in events:
            self._emit(event)

    def _sandbox(self, slot: _Slot) -> WasmPlugin:
        """Check grants, then compile (or take from the cache) and instantiate a WebAssembly
        plugin's module in a sandbox made from its grants."""
        record = slot.record
        assert record is not None
        assert slot.config is not None
        try:
            self.permissions.require(slot.id, record.manifest.permissions)
        except PermissionDenied as exc:
            raise LoadError(slot.id, "permissions", str(exc).removeprefix(f"{slot.id}: ")) from None
        try:
            from .runtimes.wasm import WasmRuntime, WasmSettings
            from .runtimes.wasm_proxy import WasmPlugin
        except ImportError as exc:  # the wasm extra is not installed
            raise LoadError(
                slot.id,
                "load",
                f"runtime 'wasm' needs the extism package ({exc}); install plugbay with the "
                "wasm extra: pip install 'plugbay[wasm]'",
            ) from None
        settings = WasmSettings.from_config(slot.id, self.config.runtime.get(slot.id))
        with self._lock:
            if self._wasm is None:
                self._wasm = WasmRuntime()
            runtime = self._wasm
        plugin = WasmPlugin(
            runtime,
            slot.id,
            record.manifest,
            plugin_dir=Path(record.path),
            host=self.info,
            grants=self.permissions.granted(slot.id),
            settings=settings,
            config=slot.config,
            logger=_RedactingLogger(_log.getChild(slot.id), {"plugin_id": slot.id}, self),
            on_event=lambda name, data: self._emit(
                LifecycleEvent("plugin_event", slot.id, data={"name": name, "data": data})
            ),
            on_call=self._wasm_call if slot.id in self._wasm_calls else None,
        )
        if self.metrics.enabled:
            plugin.on_invoke = self._remote_call_recorder(slot.id)
        t0 = time.perf_counter()
        try:
            plugin.load()
        finally:
            slot.timings_ms["compile"] = (time.perf_counter() - t0) * 1e3
        runtime.add(plugin)
        return plugin

    def _wasm_call(
        self, caller: str, target: str, method: str | None, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        """Serve a wasm plugin's ``plugbay_call``: call ``target`` (``kind:name``) if the
        host allows ``caller`` to (``Host(wasm_calls=...)``)."""
        kind, sep, name = target.partition(":")
        if not sep or not kind or not name:
            raise PluginCallError(
                caller, "plugbay_call", "error", f"target {target!r} is not kind:name"
            )
        allowed = self._wasm_calls.get(caller, ())
        if not any(a in ("*", target, f"{kind}:*") for a in allowed):
            raise PluginCallError(
                caller,
                "plugbay_call",
                "permission",
                f"may not call {target}: this host allows it only "
                f"{', '.join(allowed) or 'nothing'} (Host(wasm_calls=...))",
            )
        obj = self.get(kind, name)
        fn = getattr(obj, method) if method else obj
        return fn(*args, **kwargs)

    def _unload(self, record: PluginRecord) -> None:
        """Unload a plugin's code: forget its modules, end its process, free its instance."""
        if _runs_out_of_process(record):
            if self._exec is not None:
                self._exec.unload(record.id)
        elif record.manifest.plugin.runtime == "wasm":
            if self._wasm is not None:
                self._wasm.unload(record.id)
        elif self._runtime is not None:
            self._runtime.unload(record)

    def _context(self, slot: _Slot) -> PluginContext:
        assert slot.record is not None
        assert slot.config is not None
        logger = _RedactingLogger(_log.getChild(slot.id), {"plugin_id": slot.id}, self)
        return PluginContext(
            slot.id,
            slot.record.version,
            Path(slot.record.path),
            slot.config,
            self.info,
            logger,
            self.shared,
        )

    def plugin_config(
        self, plugin_id: str, values: Mapping[str, Any] | None = None
    ) -> PluginConfig:
        """The validated config of one plugin (without loading it).

        ``values`` is the in-code config (default: the ``config=`` argument); the plugin's
        table in ``config.toml`` is under it. Raises ConfigError (secret values never
        shown) if the result does not fit the plugin's schema.
        """
        record = self._record_for(plugin_id)
        code = self._code_config.get(plugin_id, {}) if values is None else values
        merged = {**self.config.plugins.get(plugin_id, {}), **code}
        schema = _config_schema(record)
        return validate_plugin_config(plugin_id, schema, merged, os.environ)

    def reconfigure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the in-code config of some plugins, validating all of it first.

        If any plugin's new config is invalid, ConfigError is raised and nothing changes.
        Started plugins get the new config through their ``reconfigure(config)`` method,
        or are restarted when they have none; a plugin that failed because of its config
        is tried again on its next use.
        """
        checked = {pid: self.plugin_config(pid, values) for pid, values in config.items()}
        restarts = [
            pid
            for pid in checked
            if (slot := self._slots.get(pid)) is not None
            and slot.state is PluginState.STARTED
            and getattr(slot.obj, "reconfigure", None) is None
        ]
        if restarts:
            self._activity.check("reconfigure")  # before anything changes
        for pid, values in config.items():
            self._code_config[pid] = dict(values)
        for pid, new in checked.items():
            slot = self._slots.get(pid)
            if slot is None:
                continue
            if slot.state is PluginState.FAILED and slot.error and slot.error.step == "config":
                self._reset(slot)
                self._unblock_dependents(pid)
                continue
            if slot.state is not PluginState.STARTED:
                continue  # it reads the new config when it loads
            hook = getattr(slot.obj, "reconfigure", None)
            if hook is None:
                self.restart(pid)
                continue
            with slot.lock:
                slot.config = new
                self._call(slot, "reconfigure", hook, new, record=False)

    def secret_values(self) -> list[str]:
        """Secret config values of loaded plugins, so that output can be scrubbed of them."""
        out: list[str] = []
        for slot in list(self._slots.values()):
            if slot.config is not None:
                out.extend(slot.config.secret_values())
        return out

    def _record_for(self, plugin_id: str) -> PluginRecord:
        slot = self._slots.get(plugin_id)
        record = slot.record if slot is not None else None
        if record is None:
            planned = self.load_plan.get(plugin_id)
            record = planned.record if planned else self.catalog.preferred(plugin_id)
        if record is None:
            raise PlanError(plugin_id, "no such plugin was discovered (run: plugbay list)")
        return record

    def _fail(self, slot: _Slot, exc: LoadError, events: list[LifecycleEvent]) -> None:
        slot.detail = exc.detail
        slot.error = exc
        slot.generation += 1
        self._set(slot, PluginState.FAILED, f"{exc.step} failed: {exc.reason}")
        _log.warning("plugin failed: %s", slot.reason, extra={"plugin_id": slot.id})
        self.registry.remove_plugin(slot.id)
        self.hooks.remove_plugin(slot.id)
        if slot.record is not None:
            self._unload(slot.record)
        self._block_dependents(slot.id)
        events.append(LifecycleEvent("plugin_failed", slot.id, slot.state, slot.reason))

    def _block(self, slot: _Slot, dep: str) -> None:
        """Mark ``slot`` blocked because its dependency ``dep`` cannot load."""
        dep_slot = self._slots[dep]
        which = "failed" if dep_slot.state is PluginState.FAILED else f"is {dep_slot.state}"
        self._set(slot, PluginState.BLOCKED, f"needs {dep}, which {which}: {dep_slot.reason}")
        self.registry.remove_plugin(slot.id)
        self.hooks.remove_plugin(slot.id)

    def _block_dependents(self, plugin_id: str) -> None:
        blocked = {plugin_id}
        for planned in self.load_plan.order:
            slot = self._slots.get(planned.id)
            if slot is None or not blocked.intersection(slot.dependencies):
                continue
            if slot.state in (PluginState.RESOLVED, PluginState.STOPPED):
                self._block(slot, next(d for d in slot.dependencies if d in blocked))
                blocked.add(slot.id)

    def _unblock_dependents(self, plugin_id: str) -> list[str]:
        """Make the plugins blocked (directly or not) by ``plugin_id`` resolved again."""
        affected, out = {plugin_id}, []
        for planned in self.load_plan.order:
            slot = self._slots.get(planned.id)
            if slot is None or slot.state is not PluginState.BLOCKED or slot.record is None:
                continue
            if affected.intersection(slot.dependencies):
                self._reset(slot)
                affected.add(slot.id)
                out.append(slot.id)
        return out

    def _reset(self, slot: _Slot) -> None:
        """Forget a stopped, failed or blocked plugin's outcome and register it afresh."""
        with slot.lock:
            if slot.state not in (*_UNAVAILABLE, PluginState.STOPPED, PluginState.RESOLVED):
                return
            self._set(slot, PluginState.RESOLVED)
            slot.detail = slot.error = None
            if slot.record is not None:
                self._register_declared(slot.record)

    def _stop_one(self, plugin_id: str, after: PluginState) -> None:
        slot = self._slots.get(plugin_id)
        if slot is None:
            return
        with self._activity.changing("stop"), slot.lock:
            if slot.state not in (PluginState.STARTED, PluginState.INITIALIZED, PluginState.LOADED):
                return
            had_object = slot.obj is not None  # logged like "plugin started": not code-less ones
            stop = getattr(slot.obj, "stop", None)
            if stop is not None and slot.state is PluginState.STARTED:
                try:
                    self._call(slot, "stop", stop, timeout=self.stop_timeout)
                except LoadError as exc:
                    _log.warning("%s", exc, extra={"plugin_id": plugin_id})
            slot.obj = None
            slot.generation += 1
            self.registry.remove_plugin(plugin_id)
            self.hooks.remove_plugin(plugin_id)
            if slot.record is not None:
                self._unload(slot.record)
            self._set(slot, after)
        if had_object:
            _log.info("plugin stopped", extra={"plugin_id": plugin_id})
        self._emit(LifecycleEvent("plugin_unloaded", plugin_id, after))

    def _set(self, slot: _Slot, state: PluginState, reason: str | None = None) -> None:
        slot.state = state
        slot.reason = reason

    def _call(
        self,
        slot: _Slot,
        step: str,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float | None = None,
        record: bool = True,
    ) -> Any:
        """Run one lifecycle step in a worker thread, within a timeout.

        The thread lets a hung step be abandoned (Python cannot kill a thread), and
        catches every exception, ``SystemExit`` included, as the plugin's failure.
        """
        limit = self.load_timeout if timeout is None else timeout
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            ident = outcome["ident"] = threading.get_ident()
            slot.workers.add(ident)
            try:
                value = fn(*args)
                if hasattr(value, "__await__"):
                    import asyncio

                    value = asyncio.run(_awaited(value))
                outcome["value"] = value
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a plugin is its failure
                outcome["error"] = exc
                # An out-of-process plugin's own traceback or stderr says more than ours.
                remote = exc.detail if isinstance(exc, PluginCallError) else None
                outcome["detail"] = remote or traceback.format_exc()
            finally:
                slot.workers.discard(ident)
                done.set()

        t0 = time.perf_counter()
        threading.Thread(target=run, name=f"plugbay {slot.id} {step}", daemon=True).start()
        if not done.wait(limit):
            stack = _stack_of(outcome.get("ident"), step, limit)
            secrets = self.secret_values()
            raise _detailed(LoadTimeout(slot.id, step, limit), stack and scrub(stack, secrets))
        if record:
            slot.timings_ms[step] = (
                slot.timings_ms.get(step, 0.0) + (time.perf_counter() - t0) * 1e3
            )
        if "error" in outcome:
            # A plugin's exception may quote its own secret config: status, load and -v show
            # the reason and the traceback.
            secrets = self.secret_values()
            reason = scrub(_describe(outcome["error"]), secrets)
            raise _detailed(LoadError(slot.id, step, reason), scrub(outcome["detail"], secrets))
        return outcome.get("value")


class _RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A plugin's ``ctx.logger``: tags records with the plugin id, scrubs secret values.

    Arguments, and a logged exception's traceback, are formatted into the message first,
    so that a secret in them is scrubbed too.
    """

    def __init__(self, logger: logging.Logger, extra: Mapping[str, object], host: Host) -> None:
        super().__init__(logger, extra)
        self._host = host

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        secrets = self._host.secret_values()
        return (scrub(str(msg), secrets) if secrets else msg), kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        secrets = self._host.secret_values()
        if secrets and self.isEnabledFor(level):
            if args:
                try:
                    msg, args = str(msg) % args, ()
                except (TypeError, ValueError):
                    msg, args = " ".join(str(a) for a in (msg, *args)), ()
            exc_info = kwargs.pop("exc_info", None)
            if exc_info:
                if exc_info is True:
                    exc_info = sys.exc_info()
                elif isinstance(exc_info, BaseException):
                    exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
                if exc_info[0] is not None:
                    msg = f"{msg}\n{''.join(traceback.format_exception(*exc_info)).rstrip()}"
            if kwargs.pop("stack_info", False):
                msg = f"{msg}\nStack (most recent call last):\n"
                msg += "".join(traceback.format_stack()).rstrip()
        super().log(level, msg, *args, **kwargs)


def _config_schema(record: PluginRecord) -> dict[str, Any] | None:
    """The plugin's config JSON Schema: inline, or a file in its folder (JSON, YAML, TOML)."""
    schema = record.manifest.config.schema
    if schema is None or isinstance(schema, dict):
        return schema
    folder = Path(record.path).resolve()
    path = (folder / schema).resolve()
    if folder not in path.parents:
        raise ConfigError(
            record.manifest_path, "config.schema", f"{schema!r} is outside the plugin folder"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be read: {exc.strerror or exc}") from None
    import msgspec

    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(data)
        elif path.suffix == ".toml":
            import tomllib

            loaded = tomllib.loads(data.decode("utf-8"))
        else:
            loaded = msgspec.json.decode(data)
    except Exception as exc:  # noqa: BLE001 - each format has its own error class
        raise ConfigError(str(path), "", f"is not a valid schema file: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(str(path), "", "must hold a JSON Schema object")
    return loaded


def _finish_interrupted_change(home: Path) -> None:
    """Complete (or discard) a store change a killed plugbay left in the home.

    Costs one failed ``listdir`` when there is none; the store is imported only when there
    is something to do, so start-up does not pay for it.
    """
    try:
        if not os.listdir(home / "staging"):
            return
    except OSError:
        return
    from .store.layout import Layout
    from .store.transaction import recover_pending

    recover_pending(Layout(home))


def _runs_out_of_process(record: PluginRecord) -> bool:
    """Whether the plugin runs in a child process (exec, or isolated Python)."""
    p = record.manifest.plugin
    return p.runtime == "exec" or (p.runtime == "python" and p.isolation == "process")


def _uses_proxies(record: PluginRecord) -> bool:
    """Whether the host reaches the plugin's contributions through proxies (out of process,
    or sandboxed) rather than by importing them."""
    return _runs_out_of_process(record) or record.manifest.plugin.runtime == "wasm"


def _is_generator_function(fn: Any) -> bool:
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code is not None and bool(code.co_flags & 0x20)  # CO_GENERATOR


def _is_started(slot: _Slot) -> bool:
    return slot.state is PluginState.STARTED


def _unavailable(slot: _Slot) -> LoadError:
    """The error for using a failed, blocked or disabled plugin: its own reason."""
    if slot.error is not None:
        error = LoadError(slot.id, slot.error.step, slot.error.reason)
    else:
        error = LoadError(slot.id, "load", f"it is {slot.state}: {slot.reason}")
    return _detailed(error, slot.detail)


def _detailed(error: LoadError, detail: str | None) -> LoadError:
    """Attach the traceback (or a hung step's stack) that status().detail shows."""
    error.detail = detail
    return error


def _hook_order_problems(hooks: Hooks, known: list[Problem]) -> list[Problem]:
    """Cycles among the hooks' before/after lists, and implementations that stopped fitting
    a hook declared late; ordering every hook finds the cycles without running plugin code."""
    for spec in hooks.specs():
        hooks.get(spec.name).implementations()
    wanted = ("hook.order-cycle", "hook.signature")
    return [p for p in hooks.problems if p.code in wanted and p not in known]


def _note(problems: list[Problem], problem: Problem | None) -> None:
    """Add ``problem`` unless it is None or already there (a restart registers again)."""
    if problem is not None and problem not in problems:
        problems.append(problem)


async def _awaited(value: Any) -> Any:
    return await value


def _stack_of(ident: int | None, step: str, limit: float) -> str | None:
    """Where a step's worker thread is now: shows what a timed-out step was stuck on."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return None
    stack = "".join(traceback.format_stack(frame))
    return f"{step} was still running after {limit:g} s, at:\n{stack}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PluginCallError):
        return exc.reason  # the plugin and the step are named by the caller
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_HEALTH_STATUSES = ("ok", "degraded", "failed")


def _health_from(value: Any, now: float) -> Health:
    """A plugin's ``health()`` answer as a Health.

    True or None is ok, False failed; a string is a status (``ok``, ``degraded``,
    ``failed``) or else a degraded message; a mapping gives ``status`` and ``message``.
    """
    if isinstance(value, Health):
        return value
    if value is None or value is True:
        return Health("ok", "", now)
    if value is False:
        return Health("failed", "health() returned False", now)
    if isinstance(value, str):
        return (
            Health(value, "", now) if value in _HEALTH_STATUSES else Health("degraded", value, now)
        )
    if isinstance(value, Mapping):
        status = str(value.get("status", "ok"))
        if status not in _HEALTH_STATUSES:
            return Health("degraded", f"health() returned unknown status {status!r}", now)
        return Health(status, str(value.get("message", "")), now)
    return Health("degraded", f"health() returned {type(value).__name__}", now)


def _health_of_unstarted(slot: _Slot) -> Health:
    """The health of a plugin that is not started: failed if it failed or is blocked."""
    now = time.time()
    if slot.state in (PluginState.FAILED, PluginState.BLOCKED):
        return Health("failed", slot.reason or str(slot.state), now)
    return Health("ok", str(slot.state), now)


def _members(kind: type) -> list[str]:
    """Public attribute names a Protocol (or class) asks for."""
    names: set[str] = set()
    for base in kind.__mro__:
        if base.__module__ in ("typing", "builtins", "typing_extensions", "abc"):
            continue
        names.update(n for n in vars(base) if not n.startswith("_"))
        names.update(n for n in getattr(base, "__annotations__", {}) if not n.startswith("_"))
    return sorted(names)
