"""What a host holds for a WebAssembly plugin: its lifecycle object, its instances, and
proxies of its contributions, which call exports as in-process objects would be called.

- object-like kinds (modules, tools, providers…): a :class:`WasmObject`; its attribute
  ``run`` is a :class:`WasmMethod` calling the export ``<name>_run``; an attribute whose
  export the module lacks is an ``AttributeError``;
- hooks: a function taking keyword arguments only (export ``<hook>``);
- commands: a function taking the argument list and returning the exit code.

Calls pass ``{"args": [...], "kwargs": {...}}`` as JSON and return the JSON document the
plugin wrote (docs/wasm.md). ``await proxy.method.acall(...)`` runs a call on a thread.

Instances: with ``instance = "plugin"`` (the default) one instance serves every call, one
call at a time (a lock: a WebAssembly instance is single-threaded, and its state is the
plugin's state); with ``instance = "call"`` every call gets a fresh instance, so calls run
in parallel and no state survives a call. An instance that trapped, ran out of time or
memory, or whose host function overran the deadline is thrown away: the next call gets a
fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

# Neither package ships type information. Imported with this module, which a host imports
# only for its first wasm plugin; the calls are bound once, for the hot path.
from extism_sys import ffi as _ffi  # type: ignore[import-untyped]
from extism_sys import lib as _lib

from ..config import Grants, PluginConfig, Secret, scrub
from ..context import HostInfo, PluginContext
from ..errors import LoadError, PermissionDenied, PluginCallError
from ..manifest import Manifest
from ..security import covers, granted_pairs
from .wasm import (
    CONFIG_KEY,
    Module,
    WasmRuntime,
    WasmSettings,
    export_name,
    read_module,
    sandbox_for,
)

__all__ = ["Instance", "WasmMethod", "WasmObject", "WasmPlugin"]

#: Called for plugbay_call: (caller id, target "kind:name", method, args, kwargs) → result.
CallHandler = Callable[[str, str, str | None, list[Any], dict[str, Any]], Any]
EventHandler = Callable[[str, Any], None]

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
#: Causes after which an instance is not used again (its state cannot be trusted).
_DISCARD = frozenset({"trap", "deadline", "memory"})
_encode = msgspec.json.encode
_decode = msgspec.json.decode
_plugin_call = _lib.extism_plugin_call_with_host_context
_plugin_error = _lib.extism_plugin_error
_output_length = _lib.extism_plugin_output_length
_output_data = _lib.extism_plugin_output_data
_buffer = _ffi.buffer
_monotonic = time.monotonic


class Instance:
    """One Extism plugin instance, with the context its host functions see."""

    __slots__ = ("deadline", "failure", "handle", "plugin", "pointer")

    def __init__(self, plugin: WasmPlugin, pointer: Any) -> None:
        self.plugin = plugin
        self.pointer = pointer
        self.handle = _ffi.new_handle(self)  # what host functions get back as their context
        #: when the current call's deadline passes (time.monotonic)
        self.deadline = 0.0
        #: (cause, reason) of a host function's failure during the current call
        self.failure: tuple[str, str] | None = None

    def run(self, export: bytes, data: bytes, timeout: float) -> bytes | str:
        """Call ``export`` with ``data``: its output (bytes), or Extism's error (a str)."""
        self.failure = None
        self.deadline = _monotonic() + timeout
        pointer = self.pointer
        rc = _plugin_call(pointer, export, data, len(data), self.handle)
        error = _plugin_error(pointer)
        if error:  # a NULL pointer is false
            text: str = _ffi.string(error).decode("utf-8", "replace")
            return text
        if rc:
            return f"returned {rc} without an error message"
        length = _output_length(pointer)
        out: bytes = _buffer(_output_data(pointer), length)[:] if length else b""
        return out

    def fail(self, cause: str, reason: str) -> None:
        """Fail the current call after it returns (a host function could not be served)."""
        if self.failure is None:
            self.failure = (cause, reason)

    def exports(self, name: str) -> bool:
        return bool(_lib.extism_plugin_function_exists(self.pointer, name.encode()))

    def uuid(self) -> str:
        """The instance's id, as Extism's log names it."""
        h = _buffer(_lib.extism_plugin_id(self.pointer), 16)[:].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def free(self) -> None:
        """Free the Extism plugin; no host function can ask for this context after it."""
        if self.pointer is not None:
            _lib.extism_plugin_free(self.pointer)
            self.pointer = None
            self.handle = None  # the handle refers to this object: no cycle left for the GC


class WasmPlugin:
    """The plugin object the host's lifecycle drives, for a WebAssembly plugin.

    :meth:`load` compiles (or takes from the cache) and instantiates the module and checks
    the exports its manifest needs; ``init(ctx)`` calls ``plugbay_init`` when exported;
    ``stop()`` calls ``plugbay_stop``; ``health()`` asks ``plugbay_health``.
    """

    def __init__(
        self,
        runtime: WasmRuntime,
        plugin_id: str,
        manifest: Manifest,
        *,
        plugin_dir: Path,
        host: HostInfo,
        grants: Grants,
        settings: WasmSettings,
        config: Mapping[str, Any],
        logger: logging.Logger | logging.LoggerAdapter[Any],
        on_event: EventHandler | None = None,
        on_call: CallHandler | None = None,
    ) -> None:
        self.runtime = runtime
        self.plugin_id = plugin_id
        self.settings = settings
        self.logger = logger
        self._manifest = manifest
        self._plugin_dir = plugin_dir
        self._host = host
        self._grants = grants
        self._on_event = on_event
        self._on_call = on_call
        #: called after every call with its target, seconds and whether it failed (the
        #: host's metrics; set after construction)
        self.on_invoke: Callable[[str, float, bool], None] | None = None
        self._secrets: tuple[str, ...] = ()
        self._set_config(config)
        self._module: Module | None = None
        self._lock = threading.Lock()
        self._instance: Instance | None = None  # instance = "plugin"
        self._per_call = settings.instance == "call"
        self._exports: dict[str, bool] = {}
        self._proxies: dict[tuple[str, str], Any] = {}
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Compile and instantiate the module, check the exports the manifest needs.

        Raises LoadError (steps ``compile``, ``instantiate``, ``load``).
        """
        entry = self._manifest.plugin.entry
        if not entry:
            raise LoadError(
                self.plugin_id,
                "compile",
                'a wasm plugin names its module with entry = "plugin.wasm" ([plugin.platforms] '
                "is not used for wasm: one module runs everywhere)",
            )
        path, data = read_module(self.plugin_id, self._plugin_dir, entry)
        sandbox = sandbox_for(self._grants)
        for note in sandbox.notes:
            self.logger.warning("%s: %s", self.plugin_id, note)
        self._module = self.runtime.module(self.plugin_id, path, data, sandbox, self.settings)
        try:
            first = self._new_instance()
        except RuntimeError as exc:
            raise LoadError(self.plugin_id, "instantiate", _instantiate_reason(str(exc))) from None
        try:
            for kind in ("hook", "command"):
                for c in self._manifest.contributes.get(kind, ()):
                    export = export_name(c.name)
                    if not self._lookup(first, export):
                        raise LoadError(
                            self.plugin_id,
                            "load",
                            f"{kind} {c.name}: the module exports no function {export!r} "
                            "(docs/wasm.md: a hook calls the export named like it, a command "
                            "the export named like it with - as _)",
                        )
            for export in ("plugbay_init", "plugbay_health", "plugbay_stop"):
                self._lookup(first, export)
        except BaseException:
            first.free()
            raise
        if self._per_call:
            first.free()
        else:
            self._instance = first

    def init(self, ctx: PluginContext) -> Any:
        self.logger = ctx.logger
        if isinstance(ctx.config, PluginConfig):
            self._set_config(ctx.config)
        if not self._exports.get("plugbay_init"):
            return None
        from .. import __version__

        info = {
            "host": {
                "app": self._host.app,
                "api_version": self._host.api_version,
                "plugbay_version": __version__,
            },
            "plugin": {"id": ctx.plugin_id, "version": ctx.version},
        }
        return self._call(b"plugbay_init", "plugbay_init", _encode(info))

    def stop(self) -> None:
        try:
            if self._exports.get("plugbay_stop") and not self._closed:
                self._call(b"plugbay_stop", "plugbay_stop", b"{}")
        finally:
            self.close()

    def health(self) -> Any:
        if not self._exports.get("plugbay_health"):
            return "ok"
        return self._call(b"plugbay_health", "plugbay_health", b"{}")

    def close(self) -> None:
        """Free the instance; later calls raise PluginCallError (cause ``stopped``)."""
        self._closed = True
        with self._lock:
            instance, self._instance = self._instance, None
        if instance is not None:
            instance.free()

    # ------------------------------------------------------------ contributions

    def hook(self, name: str) -> Callable[..., Any]:
        """The host-side function of this plugin's implementation of hook ``name``."""
        fn: Callable[..., Any] = self.contribution("hook", name)
        return fn

    def contribution(self, kind: str, name: str) -> Any:
        """The proxy of one contribution (the same object each time)."""
        key = (kind, name)
        proxy = self._proxies.get(key)
        if proxy is None:
            if kind == "hook":
                proxy = _hook_function(self, name)
            elif kind == "command":
                proxy = _command_function(self, name)
            else:
                proxy = WasmObject(self, kind, name)
            self._proxies[key] = proxy
        return proxy

    def has_export(self, export: str) -> bool:
        """Whether the module exports ``export`` (asked once per name, of an instance of its
        own: the plugin's instance may be busy, even with the call that asks)."""
        known = self._exports.get(export)
        if known is not None:
            return known
        instance = self._instance_or_raise(export)
        try:
            return self._lookup(instance, export)
        finally:
            instance.free()

    # ------------------------------------------------------------ calls

    def invoke(
        self, export: bytes, target: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        """Call ``export`` with the call's arguments; the decoded JSON result.

        Raises PluginCallError: cause ``error`` (the plugin's error, or arguments or
        output that are not JSON), ``trap``, ``deadline``, ``memory``, ``permission``,
        ``missing`` (no such export) or ``stopped``.
        """
        on_invoke = self.on_invoke
        t0 = time.perf_counter()
        failed = True
        try:
            try:
                data = _encode({"args": args, "kwargs": kwargs})
            except (TypeError, ValueError, OverflowError) as exc:
                raise PluginCallError(
                    self.plugin_id, target, "error", f"cannot send the call as JSON: {exc}"
                ) from None
            value = self._call(export, target, data)
            failed = False
            return value
        finally:
            if on_invoke is not None:
                on_invoke(target, time.perf_counter() - t0, failed)

    def _call(self, export: bytes, target: str, data: bytes) -> Any:
        timeout = self.settings.call_timeout
        if self._per_call:
            instance = self._instance_or_raise(target)
            try:
                out = instance.run(export, data, timeout)
                if isinstance(out, str) or instance.failure is not None:
                    raise self._error(instance, export, target, out)[0]
            finally:
                instance.free()
        else:
            lock = self._lock
            if not lock.acquire(False):
                self._wait(lock, target)
            try:
                instance = self._instance or self._current(target)
                out = instance.run(export, data, timeout)
                if isinstance(out, str) or instance.failure is not None:
                    error, discard = self._error(instance, export, target, out)
                    if discard:
                        instance.free()  # state reset: the next call gets a fresh instance
                        self._instance = None
                    raise error
            finally:
                lock.release()
        if not out:
            return None
        try:
            return _decode(out)
        except msgspec.DecodeError:
            text = out[:200].decode("utf-8", "replace")
            raise PluginCallError(
                self.plugin_id,
                target,
                "error",
                f"returned output that is not a JSON document: {scrub(text, self._secrets)!r} "
                "(docs/wasm.md: the output is the call's result as JSON)",
            ) from None

    def _wait(self, lock: threading.Lock, target: str) -> None:
        """Wait for the instance, busy with another call; raise if that cannot end well."""
        if self.plugin_id in getattr(self.runtime.chain, "ids", ()):
            raise PluginCallError(
                self.plugin_id,
                target,
                "error",
                "was called back through plugbay_call while its instance is busy with "
                "the call that made it (a call cycle); it would wait for itself. Set "
                f'instance = "call" in [runtime."{self.plugin_id}"] to allow it',
            )
        if not lock.acquire(timeout=self.settings.call_timeout):
            raise self._busy(target)

    async def acall(
        self, export: bytes, target: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        return await asyncio.to_thread(self.invoke, export, target, args, kwargs)

    def _current(self, target: str) -> Instance:
        """The plugin's instance (made again after a failure); call with the lock held."""
        instance = self._instance
        if instance is None:
            instance = self._instance = self._instance_or_raise(target)
        return instance

    def _instance_or_raise(self, target: str) -> Instance:
        if self._closed:
            raise PluginCallError(
                self.plugin_id,
                target,
                "stopped",
                "the plugin was stopped; get the contribution from the host again",
            )
        try:
            return self._new_instance()
        except RuntimeError as exc:
            raise PluginCallError(
                self.plugin_id, target, "error", _instantiate_reason(str(exc))
            ) from None

    def _new_instance(self) -> Instance:
        assert self._module is not None
        return Instance(self, self.runtime.new_pointer(self._module, self._config))

    def _lookup(self, instance: Instance, export: str) -> bool:
        found = self._exports[export] = instance.exports(export)
        return found

    def _busy(self, target: str) -> PluginCallError:
        limit = self.settings.call_timeout
        return PluginCallError(
            self.plugin_id,
            target,
            "deadline",
            f"waited {limit:g} s for its instance, busy with other calls (one call at a time "
            f'per instance; instance = "call" in [runtime."{self.plugin_id}"] runs calls in '
            "parallel)",
        )

    # ------------------------------------------------------------ errors

    def _error(
        self, instance: Instance, export: bytes, target: str, out: bytes | str
    ) -> tuple[PluginCallError, bool]:
        """The PluginCallError for a failed call, with the underlying cause, and whether
        the instance must be thrown away (it trapped: its state cannot be trusted)."""
        cause, reason, detail = self._classify(instance, export, out)
        # A refused HTTP request is a trap of the guest, inside the kernel's function.
        discard = cause in _DISCARD or (cause == "permission" and detail is not None)
        error = PluginCallError(
            self.plugin_id,
            target,
            cause,
            scrub(reason, self._secrets),
            detail and scrub(detail, self._secrets),
        )
        return error, discard

    def _classify(
        self, instance: Instance, export: bytes, out: bytes | str
    ) -> tuple[str, str, str | None]:
        message = out if isinstance(out, str) else ""
        # Extism logged the failure, with causes its message leaves out; read them now, so
        # that its log (kept in memory until read) does not grow with every failed call.
        causes = self.runtime.errors.causes(instance.uuid()) if message else []
        if instance.failure is not None:
            cause, reason = instance.failure
            return cause, reason, None
        limit = self.settings.call_timeout
        if message == "timeout":
            return (
                "deadline",
                f"did not finish within its {limit:g} s deadline and was stopped (call-timeout "
                f'in [runtime."{self.plugin_id}"]); its instance was reset',
                None,
            )
        if message == "oom":
            mib = self.settings.memory / (1024 * 1024)
            return (
                "memory",
                f"ran out of memory: it tried to grow past its limit of {mib:g} MiB "
                f'({self.settings.pages} pages; memory in [runtime."{self.plugin_id}"]); '
                "its instance was reset",
                None,
            )
        if message.startswith("Function not found"):
            name = export.decode()
            return "missing", f"its module exports no function {name!r} (docs/wasm.md)", None
        if message.startswith("error while executing at wasm backtrace"):
            return self._trap(causes, message)
        fs = self._filesystem_denial(message)
        if fs is not None:
            return "permission", fs, None
        return "error", message or "failed without a message", None

    def _trap(self, causes: list[str], message: str) -> tuple[str, str, str | None]:
        root = causes[-1] if causes else ""
        refused = re.match(r"HTTP request to (?P<url>\S+) is not allowed", root)
        if refused:
            return "permission", self._http_denial(refused["url"]), message
        frames = [re.sub(r"^\d+:\s*", "", line.strip()) for line in message.splitlines()[1:]]
        frames = [f for f in frames if f]
        where = f" (at {frames[0]})" if frames else ""
        if root.startswith("wasm trap: "):
            what = root.removeprefix("wasm trap: ")
            more = "; ".join(causes[:-1])
            return "trap", f"trapped: {what}{f' ({more})' if more else ''}{where}", message
        if root:
            return "trap", f"trapped: {'; '.join(causes)}{where}", message
        return "trap", f"trapped{where}", message

    def _http_denial(self, url: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            host = parts.hostname or url
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            host, port = url, None
        endpoint = f"[{host}]" if ":" in host else host
        endpoint = f"{endpoint}:{port}" if port else endpoint
        denied = PermissionDenied(self.plugin_id, "network", endpoint)
        return f"HTTP request to {url} refused: {str(denied).removeprefix(f'{self.plugin_id}: ')}"

    def _filesystem_denial(self, message: str) -> str | None:
        """For a plugin error that reports a file it could not open outside its sandbox,
        the reason naming the grant that would allow it (None if it is not one).

        The sandbox answers such an open with an error code, which the plugin reports in
        its own words; plugbay recognises the usual ones (WASI's "capabilities
        insufficient", EPERM, EBADF, a read-only file system) next to an absolute path.
        """
        if not _FS_ERROR.search(message):
            return None
        writing = _FS_WRITE.search(message) is not None
        for match in _ABS_PATH.finditer(message):
            path = match.group(1).rstrip(".")
            if not self._granted("filesystem.read", path):
                kind = "filesystem.write" if writing else "filesystem.read"
            elif writing and not self._granted("filesystem.write", path):
                kind = "filesystem.write"
            else:
                continue  # granted: the sandbox refused it for another reason
            denied = PermissionDenied(self.plugin_id, kind, path)
            text = str(denied).removeprefix(f"{self.plugin_id}: ")
            return f"{message} — the sandbox refused it: {text}"
        return None

    def _granted(self, kind: str, path: str) -> bool:
        kinds = (kind, "filesystem.write") if kind == "filesystem.read" else (kind,)
        return any(
            k in kinds and covers(kind, have, path) for k, have in granted_pairs(self._grants)
        )

    # ------------------------------------------------------------ host functions

    def serve(self, instance: Instance, name: str, args: list[bytes]) -> bytes | None:
        """Serve host function ``name`` for ``instance`` (on the engine's thread)."""
        if name == "plugbay_config":
            return self._config_json
        if name == "plugbay_log":
            level = args[0].decode("utf-8", "replace").strip().lower()
            text = args[1].decode("utf-8", "replace")
            number = _LEVELS.get(level)
            if number is None:
                number, text = logging.WARNING, f"(unknown log level {level!r}) {text}"
            logger = self.logger
            self._limited(instance, name, lambda: logger.log(number, "%s", text))
            return None
        if name == "plugbay_emit":
            event = args[0].decode("utf-8", "replace")
            try:
                data = _decode(args[1]) if args[1] else None
            except msgspec.DecodeError as exc:
                instance.fail("error", f"plugbay_emit({event!r}): its data is not JSON: {exc}")
                return None
            on_event = self._on_event
            if on_event is not None:
                self._limited(instance, name, lambda: on_event(event, data))
            return None
        if name == "plugbay_call":
            return self._serve_call(instance, args[0].decode("utf-8", "replace"), args[1])
        raise AssertionError(name)  # pragma: no cover - only the functions above exist

    def _serve_call(self, instance: Instance, target: str, data: bytes) -> bytes:
        what = f"plugbay_call({target!r})"
        try:
            request = _decode(data) if data else {}
        except msgspec.DecodeError as exc:
            return _call_error("error", f"{what}: its input is not JSON: {exc}")
        if not isinstance(request, dict):
            return _call_error("error", f'{what}: its input must be an object {{"args", "kwargs"}}')
        method = request.get("method")
        args = request.get("args", [])
        kwargs = request.get("kwargs", {})
        if (
            not isinstance(args, list)
            or not isinstance(kwargs, dict)
            or not isinstance(method, str | None)
        ):
            return _call_error(
                "error",
                f'{what}: its input must be {{"method": str, "args": list, "kwargs": object}}',
            )
        on_call = self._on_call
        if on_call is None:
            return _call_error(
                "permission", f"{what}: this host lets no WebAssembly plugin call others"
            )
        chain = (*getattr(self.runtime.chain, "ids", ()), self.plugin_id)
        runtime = self.runtime

        def work() -> Any:
            runtime.chain.ids = chain
            try:
                return on_call(self.plugin_id, target, method, args, kwargs)
            finally:
                runtime.chain.ids = ()

        future = self._limited(instance, what, work)
        if future is None or not future.done():
            return _call_error("deadline", instance.failure[1] if instance.failure else what)
        error = future.exception()
        if error is not None:
            cause = error.cause if isinstance(error, PluginCallError) else "error"
            text = str(error) if isinstance(error, PluginCallError) else _describe(error)
            return _call_error(cause, scrub(text, self._secrets))
        try:
            return _encode({"result": future.result()})
        except (TypeError, ValueError, OverflowError) as exc:
            return _call_error("error", f"{what}: its result is not JSON: {exc}")

    def _limited(self, instance: Instance, what: str, fn: Callable[[], Any]) -> Any:
        """Run a host function's work within the call's deadline; past it, the call fails
        (the engine cannot interrupt a host function, so plugbay stops waiting for it)."""
        remaining = instance.deadline - time.monotonic()
        limit = self.settings.call_timeout
        reason = (
            f"{what} did not return before the call's {limit:g} s deadline (call-timeout); "
            "plugbay stopped waiting for it, and the instance was reset"
        )
        if remaining <= 0:
            instance.fail("deadline", reason)
            return None
        future = self.runtime.workers.run(fn, remaining)
        if not future.done():
            instance.fail("deadline", reason)
        return future

    # ------------------------------------------------------------ config

    def _set_config(self, config: Mapping[str, Any]) -> None:
        plain = _plain(config)
        self._config_json = _encode(plain)
        self._config = _encode({CONFIG_KEY: self._config_json.decode()})
        if isinstance(config, PluginConfig):
            self._secrets = tuple(config.secret_values())


class WasmMethod:
    """One method of a contribution of a wasm plugin; call it like the method itself."""

    __slots__ = ("_export", "_plugin", "_target")

    def __init__(self, plugin: WasmPlugin, target: str, export: str) -> None:
        self._plugin = plugin
        self._target = target
        self._export = export.encode()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._plugin.invoke(self._export, self._target, args, kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Call it from asyncio (on a thread: the engine's calls block)."""
        return await self._plugin.acall(self._export, self._target, args, kwargs)

    def __repr__(self) -> str:
        return f"<wasm export {self._export.decode()} of {self._plugin.plugin_id}>"


class WasmObject:
    """An object-like contribution (``module``, ``tool``…) of a wasm plugin.

    Its attribute ``m`` calls the export ``<name>_m``; calling it calls ``<name>``.
    """

    def __init__(self, plugin: WasmPlugin, kind: str, name: str) -> None:
        self._plugin = plugin
        self._kind = kind
        self._name = name
        self._target = f"{kind}:{name}"

    def __getattr__(self, attr: str) -> WasmMethod:
        if attr.startswith("_"):
            raise AttributeError(attr)
        export = export_name(self._name, attr)
        if not self._plugin.has_export(export):
            raise AttributeError(
                f"{self._kind} {self._name!r} of {self._plugin.plugin_id} has no method "
                f"{attr!r}: its module exports no function {export!r} (docs/wasm.md)"
            )
        method = WasmMethod(self._plugin, f"{self._target}.{attr}", export)
        self.__dict__[attr] = method  # found by plain lookup from now on
        return method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        export = export_name(self._name)
        if not self._plugin.has_export(export):
            raise PluginCallError(
                self._plugin.plugin_id,
                self._target,
                "missing",
                f"its module exports no function {export!r}, which calling the "
                f"{self._kind} itself needs (docs/wasm.md)",
            )
        return self._plugin.invoke(export.encode(), self._target, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self._kind} {self._name!r} of {self._plugin.plugin_id} (wasm)>"


def _hook_function(plugin: WasmPlugin, name: str) -> Callable[..., Any]:
    """A hook implementation that calls the export ``name``: keyword arguments only."""
    target, export = f"hook:{name}", export_name(name).encode()

    def hook(**kwargs: Any) -> Any:
        return plugin.invoke(export, target, (), kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


def _command_function(plugin: WasmPlugin, name: str) -> Callable[[list[str]], Any]:
    """A plugin command that calls its export; returns its exit code (None means 0)."""
    target, export = f"command:{name}", export_name(name).encode()

    def command(args: list[str]) -> Any:
        return plugin.invoke(export, target, (list(args),), {})

    command.__name__ = command.__qualname__ = name
    return command


# An error code of a refused open, in the words of WASI, libc, Rust or the errno number.
_FS_ERROR = re.compile(
    r"capabilities insufficient|not ?capable|operation not permitted|permission denied|"
    r"read-only file system|bad file descriptor|\b(?:errno|os error)\s*=?\s*(?:8|63|69|76)\b",
    re.IGNORECASE,
)
# Words of an error that was writing, creating or removing (a read grant is not enough).
_FS_WRITE = re.compile(r"writ|creat|read-only|delet|remov|renam|errno\s*=?\s*69\b", re.IGNORECASE)
_ABS_PATH = re.compile(r"(?:^|[\s'\"(=:])(/[^\s'\"():;,]+)")


def _call_error(cause: str, message: str) -> bytes:
    return _encode({"error": {"cause": cause, "message": message}})


def _instantiate_reason(message: str) -> str:
    message = message.removeprefix("Unable to create Extism plugin: ").strip()
    unknown = re.search(r"unknown import: `([^`]+)`", message)
    if unknown:
        return (
            f"the module imports {unknown.group(1)}, which plugbay does not provide (it "
            "provides the Extism kernel, WASI preview 1 and extism:host/user's plugbay_log, "
            "plugbay_emit, plugbay_config and plugbay_call; docs/wasm.md)"
        )
    return f"cannot instantiate the module: {message.splitlines()[0] if message else message}"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _plain(value: Any) -> Any:
    """Config values as JSON has them, secrets revealed (for the sandbox only)."""
    if isinstance(value, Secret):
        return _plain(value.reveal())
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
