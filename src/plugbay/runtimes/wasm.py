"""The wasm runtime: WebAssembly plugins in an Extism sandbox, inside the host's process.

- :class:`WasmRuntime` (one per host, made for its first wasm plugin): compiles modules,
  caches them by file, sha256 and sandbox so that a second instance costs a fraction of a
  millisecond, gives every plugin plugbay's host functions, and reads the causes Extism's
  error messages leave out (the kind of a trap, the host of a refused HTTP request);
- :func:`sandbox_for`: what one plugin's sandbox may reach, from its grants;
- :class:`WasmSettings`: its limits, from ``[runtime."<id>"]``;
- :mod:`.wasm_proxy`: the plugin object the host drives and the proxies of its
  contributions, where calls are made.

Imported only when a host loads its first wasm plugin, and ``extism`` with it: hosts
without wasm plugins never pay for either. The contract with plugins is docs/wasm.md.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, wait
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

import msgspec

from ..config import Grants, RuntimeSettings
from ..errors import LoadError

if TYPE_CHECKING:
    from .wasm_proxy import Instance, WasmPlugin

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_MEMORY",
    "HOST_FUNCTIONS",
    "HOST_NAMESPACE",
    "PAGE_SIZE",
    "Module",
    "Sandbox",
    "WasmRuntime",
    "WasmSettings",
    "export_name",
    "sandbox_for",
]

DEFAULT_CALL_TIMEOUT = 5.0
DEFAULT_MEMORY = 64 * 1024 * 1024
PAGE_SIZE = 65536  # a WebAssembly memory page
#: The Extism config key holding the plugin's validated config, as a JSON object.
CONFIG_KEY = "plugbay.config"
#: Where plugbay's host functions are imported from.
HOST_NAMESPACE = "extism:host/user"
HOST_FUNCTIONS = ("plugbay_log", "plugbay_emit", "plugbay_config", "plugbay_call")
#: How a module imports WASI preview 1; only such modules get a WASI context.
_WASI_IMPORT = b"wasi_snapshot_preview1"
_WASM_MAGIC = b"\0asm"
_EXPORT_CHARS = re.compile(r"[^A-Za-z0-9_]")
_HOST_FN_SIGNATURE = (
    "void(ExtismCurrentPlugin*, const ExtismVal*, ExtismSize, ExtismVal*, ExtismSize, void*)"
)


def export_name(name: str, method: str | None = None) -> str:
    """The export a contribution (and method) calls: ``greet`` + ``run`` → ``greet_run``;
    every character but letters, digits and ``_`` becomes ``_`` (``greet-all`` → ``greet_all``)."""
    full = name if method is None else f"{name}_{method}"
    return _EXPORT_CHARS.sub("_", full)


# ---------------------------------------------------------------- settings and sandbox


class WasmSettings(msgspec.Struct, frozen=True, gc=False):
    """A wasm plugin's limits: per-call timeout, memory (whole pages), instance policy."""

    call_timeout: float = DEFAULT_CALL_TIMEOUT
    memory: int = DEFAULT_MEMORY
    instance: str = "plugin"  # "plugin": one instance, calls in turn; "call": one per call

    @property
    def pages(self) -> int:
        return self.memory // PAGE_SIZE

    @classmethod
    def from_config(cls, plugin_id: str, settings: RuntimeSettings | None) -> WasmSettings:
        """From ``[runtime."<id>"]``; raises LoadError (step ``config``) for values that
        cannot work."""
        if settings is None:
            return cls()
        where = f'[runtime."{plugin_id}"]'
        timeout = DEFAULT_CALL_TIMEOUT if settings.call_timeout is None else settings.call_timeout
        if not timeout > 0:
            raise LoadError(plugin_id, "config", f"{where} call-timeout must be more than 0 s")
        memory = DEFAULT_MEMORY if settings.memory is None else settings.memory
        if memory < PAGE_SIZE:
            raise LoadError(
                plugin_id,
                "config",
                f"{where} memory = {memory} is less than one WebAssembly page; give at least "
                f"{PAGE_SIZE} bytes (the default is {DEFAULT_MEMORY})",
            )
        instance = settings.instance or "plugin"
        return cls(float(timeout), memory - memory % PAGE_SIZE, instance)


class Sandbox(msgspec.Struct, frozen=True, gc=False):
    """What one plugin's sandbox may reach.

    ``allowed_hosts`` are Extism host patterns; ``allowed_paths`` pairs of an Extism path
    key (``ro:`` in front for read-only) and the path the plugin sees (the same absolute
    path); ``notes`` say which grants the sandbox cannot express.
    """

    allowed_hosts: tuple[str, ...] = ()
    allowed_paths: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()


def sandbox_for(grants: Grants) -> Sandbox:
    """The sandbox of a plugin granted ``grants``.

    Network grants become allowed hosts (their ports are dropped: Extism filters by host
    name only); filesystem grants become preopened folders, read-only unless write is
    granted. Env and subprocess grants give nothing: WebAssembly has neither. Paths are
    resolved here (``~``, ``..``, symbolic links); a granted path that is not a folder is
    left out, with a note.
    """
    hosts: list[str] = []
    for endpoint in grants.network:
        pattern = _host_pattern(endpoint)
        if pattern not in hosts:
            hosts.append(pattern)
    notes: list[str] = []
    writable = _folders(grants.filesystem.write, "filesystem.write", notes)
    readable = [
        p
        for p in _folders(grants.filesystem.read, "filesystem.read", notes)
        # A folder under a writable one is writable already: a read-only preopen of it
        # would shadow that (the plugin's libc picks the longest matching preopen).
        if not any(p == w or p.startswith(w.rstrip("/") + "/") for w in writable)
    ]
    paths = [(w, w) for w in writable] + [(f"ro:{r}", r) for r in readable]
    return Sandbox(tuple(hosts), tuple(dict(paths).items()), tuple(notes))


def _host_pattern(endpoint: str) -> str:
    """A normalised network grant (``HOST``, ``HOST:PORT``, ``[V6]:PORT``, ``*``) as an
    Extism allowed-host pattern (a glob over the URL's host)."""
    if endpoint == "*":
        return "*"
    if endpoint.startswith("["):
        host = endpoint[: endpoint.index("]") + 1]
        return "[[]" + host[1:]  # "[" opens a glob class; "[[]" is a literal "["
    return endpoint.partition(":")[0]


def _folders(paths: tuple[str, ...], kind: str, notes: list[str]) -> list[str]:
    out: list[str] = []
    for raw in paths:
        path = os.path.realpath(os.path.expanduser(raw))
        if os.path.isdir(path):
            if path not in out:
                out.append(path)
        elif os.path.exists(path):
            notes.append(
                f"{kind}={raw} is a file; the sandbox opens folders only, so the plugin cannot "
                "reach it: grant its folder instead"
            )
        else:
            notes.append(f"{kind}={raw} does not exist, so the sandbox leaves it out")
    return out


# ---------------------------------------------------------------- modules


class Module(msgspec.Struct, frozen=True):
    """A compiled module with its sandbox: what instances are made from."""

    path: Path
    sha256: str
    compiled: Any  # extism.CompiledPlugin
    wasi: bool


def read_module(plugin_id: str, plugin_dir: Path, entry: str) -> tuple[Path, bytes]:
    """The module file named by ``entry`` (in the plugin folder) and its bytes.

    A ``.wat`` file is WebAssembly text; any other must be a binary module. Raises
    LoadError (step ``compile``) saying what is wrong and what to do.
    """
    folder = plugin_dir.resolve()
    path = (folder / entry).resolve()
    if folder not in path.parents:
        raise LoadError(plugin_id, "compile", f"entry {entry!r} is outside the plugin folder")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LoadError(
            plugin_id,
            "compile",
            f"its module {entry} does not exist in {folder} (build the plugin first?)",
        ) from None
    except OSError as exc:
        raise LoadError(
            plugin_id, "compile", f"cannot read {path}: {exc.strerror or exc}"
        ) from None
    if path.suffix != ".wat" and not data.startswith(_WASM_MAGIC):
        what = "is empty" if not data else f"starts with {data[:8]!r}"
        raise LoadError(
            plugin_id,
            "compile",
            f"{entry} is not a WebAssembly module: it {what}, not the bytes \\0asm; build "
            "it again (a .wat entry is read as WebAssembly text)",
        )
    return path, data


# ---------------------------------------------------------------- the runtime


class WasmRuntime:
    """Every wasm plugin of one host: the compiled-module cache and the host functions.

    Compiling is the expensive step (milliseconds to seconds, by module size); a cached
    module is instantiated in about a tenth of a millisecond. The cache key is the module
    file, its sha256 and the sandbox's options, so that a changed file or changed grants
    compile again, and a restart of an unchanged plugin does not.
    """

    def __init__(self) -> None:
        # Extism reports errors with a backtrace captured by Rust; with RUST_BACKTRACE set
        # (often so in development) each one costs tens of milliseconds to render, which
        # the error log below would do for every failed call. Library backtraces only.
        os.environ.setdefault("RUST_LIB_BACKTRACE", "0")
        # Neither package ships type information; their objects are typed Any here.
        import extism  # type: ignore[import-untyped]
        from extism_sys import ffi, lib  # type: ignore[import-untyped]

        self._extism = extism
        self.ffi: Any = ffi
        self.lib: Any = lib
        self._lock = threading.Lock()
        self._modules: dict[tuple[str, str, str], Module] = {}
        self._plugins: dict[str, WasmPlugin] = {}
        self.workers = Workers()
        self.errors = _error_log(ffi, lib)
        #: The plugins whose plugbay_call is being served on this thread (a call cycle
        #: back into a plugin whose only instance is busy is refused, not deadlocked).
        self.chain = threading.local()
        self._callbacks: list[Any] = []
        self._functions = [self._host_function(name) for name in HOST_FUNCTIONS]

    # -- modules and instances

    def module(
        self,
        plugin_id: str,
        path: Path,
        data: bytes,
        sandbox: Sandbox,
        settings: WasmSettings,
    ) -> Module:
        """The compiled module for ``data`` with this sandbox and these limits (cached).

        Raises LoadError (step ``compile``) for a module Extism cannot compile.
        """
        sha = hashlib.sha256(data).hexdigest()
        sandboxed = (sandbox.allowed_hosts, sandbox.allowed_paths)
        key = (str(path), sha, repr((*sandboxed, settings.memory, settings.call_timeout)))
        with self._lock:
            module = self._modules.get(key)
        if module is not None:
            return module
        wasi = _WASI_IMPORT in data
        manifest: dict[str, Any] = {
            "wasm": [{"data": data}],
            "memory": {"max_pages": settings.pages},
            "timeout_ms": max(1, round(settings.call_timeout * 1000)),
            "allowed_hosts": list(sandbox.allowed_hosts),
        }
        if sandbox.allowed_paths:
            manifest["allowed_paths"] = dict(sandbox.allowed_paths)
        try:
            # CompiledPlugin is not among extism 1.1.1's top-level names; the pin keeps it here.
            compiled = self._extism.extism.CompiledPlugin(
                manifest, wasi=wasi, functions=self._functions
            )
        except self._extism.Error as exc:
            raise LoadError(plugin_id, "compile", _compile_reason(path.name, str(exc))) from None
        module = Module(path, sha, compiled, wasi)
        with self._lock:
            # A changed file replaces its older compilations: they would never be used again.
            for old in [k for k in self._modules if k[0] == key[0] and k[1] != sha]:
                del self._modules[old]
            return self._modules.setdefault(key, module)

    def new_pointer(self, module: Module, config: bytes) -> Any:
        """A new Extism plugin (instance) of ``module`` with ``config`` (a JSON object of
        strings); raises ``RuntimeError`` with Extism's reason when it cannot be made."""
        ffi, lib = self.ffi, self.lib
        errmsg = ffi.new("char**")
        pointer = lib.extism_plugin_new_from_compiled(module.compiled.pointer, errmsg)
        if pointer == ffi.NULL:
            message = ffi.string(errmsg[0]).decode("utf-8", "replace")
            lib.extism_plugin_new_error_free(errmsg[0])
            raise RuntimeError(message)
        lib.extism_plugin_config(pointer, config, len(config))
        return pointer

    # -- plugins

    def add(self, plugin: WasmPlugin) -> None:
        with self._lock:
            old = self._plugins.get(plugin.plugin_id)
            self._plugins[plugin.plugin_id] = plugin
        if old is not None and old is not plugin:
            old.close()

    def unload(self, plugin_id: str) -> None:
        """Close a plugin's instances (its compiled module stays cached for a restart)."""
        with self._lock:
            plugin = self._plugins.pop(plugin_id, None)
        if plugin is not None:
            plugin.close()

    def close(self) -> None:
        """Close every plugin and drop the cache (the host stops)."""
        with self._lock:
            plugins = list(self._plugins.values())
            self._plugins.clear()
            self._modules.clear()
        for plugin in plugins:
            plugin.close()
        self.workers.close()

    # -- host functions

    def _host_function(self, name: str) -> Any:
        """The Extism host function ``name``: reads its arguments (offsets of memory
        blocks) as bytes, lets the calling instance's plugin serve it, writes the result."""
        ffi, lib = self.ffi, self.lib
        E = self._extism.ValType
        params = {"plugbay_config": 0}.get(name, 2)
        returns = name in ("plugbay_config", "plugbay_call")

        def serve(
            current: Any, inputs: Any, n_inputs: int, outputs: Any, n_outputs: int, _: Any
        ) -> None:
            instance: Instance | None = None
            try:
                context = lib.extism_current_plugin_host_context(current)
                if context == ffi.NULL:  # an Extism call not made by plugbay
                    if n_outputs:
                        outputs[0].v.i64 = 0
                    return
                instance = ffi.from_handle(context)
                args = [_read(ffi, lib, current, inputs[i].v.i64) for i in range(n_inputs)]
                result = instance.plugin.serve(instance, name, args)
                if n_outputs:
                    outputs[0].v.i64 = _write(ffi, lib, current, result or b"")
            except BaseException as exc:  # noqa: BLE001 - nothing may unwind into the engine
                if instance is not None:
                    instance.fail("error", f"{name}: plugbay could not serve it: {exc!r}")
                if n_outputs:
                    outputs[0].v.i64 = 0

        callback = ffi.callback(_HOST_FN_SIGNATURE, serve)
        self._callbacks.append(callback)  # cffi callbacks must outlive every use
        return self._extism.Function(
            HOST_NAMESPACE,
            name,
            [E.I64] * params,
            [E.I64] if returns else [],
            callback,
        )


def _read(ffi: Any, lib: Any, current: Any, offset: int) -> bytes:
    """The bytes of the Extism memory block at ``offset`` (empty for 0 or a bad offset)."""
    if not offset:
        return b""
    length = lib.extism_current_plugin_memory_length(current, offset)
    if not length:
        return b""
    base = lib.extism_current_plugin_memory(current)
    return bytes(ffi.buffer(base + offset, length))


def _write(ffi: Any, lib: Any, current: Any, data: bytes) -> int:
    """A new Extism memory block holding ``data``; its offset (0 for no data)."""
    if not data:
        return 0
    offset = lib.extism_current_plugin_memory_alloc(current, len(data))
    if offset:
        base = lib.extism_current_plugin_memory(current)  # after alloc: memory may move
        ffi.memmove(base + offset, data, len(data))
    return int(offset)


def _compile_reason(file: str, message: str) -> str:
    message = message.removeprefix("Unable to compile Extism plugin: ").strip()
    message = message.removeprefix("Unable to create Extism plugin: ").strip()
    first = message.splitlines()[0] if message else "unknown error"
    return (
        f"{file} is not a valid WebAssembly module: {first} (a truncated or damaged file? "
        "build it again)"
    )


# ---------------------------------------------------------------- Extism's error log


_ERROR_LOG: list[ErrorLog] = []
_ERROR_LOG_LOCK = threading.Lock()


def _error_log(ffi: Any, lib: Any) -> ErrorLog:
    """The process's one reader of Extism's error log (Extism's log is process-wide and can
    be installed once, so this is the one object every host's wasm runtime shares)."""
    with _ERROR_LOG_LOCK:
        if not _ERROR_LOG:
            _ERROR_LOG.append(ErrorLog(ffi, lib))
        return _ERROR_LOG[0]


_ERROR_LINE = re.compile(
    r"call to (?P<function>\S+) encountered an error: (?P<body>.*?)\s*"
    r'plugin="(?P<uuid>[0-9a-fA-F-]{36})"\s*\Z',
    re.DOTALL,
)


class ErrorLog:
    """Extism's error log, read for the causes its error messages leave out.

    A trap's message from Extism is only "error while executing at wasm backtrace: …";
    the trap's kind ("out of bounds memory access", "wasm `unreachable` instruction
    executed") and the reason an HTTP request was refused are in the error's cause chain,
    which Extism writes only to its log. The log is process-wide and can be installed
    once: if the application installed its own first, :attr:`enabled` is False and error
    messages carry the wasm backtrace alone.
    """

    _KEEP = 64  # causes of instances nobody asked about yet (other threads, other users)

    def __init__(self, ffi: Any, lib: Any) -> None:
        self._lib = lib
        self._lock = threading.Lock()
        self._causes: OrderedDict[str, list[str]] = OrderedDict()
        self.enabled = bool(lib.extism_log_custom(b"error"))

        def take(text: Any, length: int) -> None:
            self._take(ffi.string(text, length).decode("utf-8", "replace"))

        self._sink = ffi.callback("void(char*, ExtismSize)", take)

    def causes(self, uuid: str) -> list[str]:
        """The cause chain Extism logged for the last failed call of instance ``uuid``,
        outermost first (empty when it logged none)."""
        if not self.enabled:
            return []
        with self._lock:
            self._lib.extism_log_drain(self._sink)
            return self._causes.pop(uuid, [])

    def _take(self, line: str) -> None:
        match = _ERROR_LINE.search(line)
        if match is None:
            return
        body = match["body"].split("\nStack backtrace:", 1)[0]
        _, _, chain = body.partition("\nCaused by:")
        causes = [re.sub(r"^\d+:\s*", "", c.strip()) for c in chain.strip().splitlines()]
        self._causes[match["uuid"].lower()] = [c for c in causes if c]
        while len(self._causes) > self._KEEP:
            self._causes.popitem(last=False)


# ---------------------------------------------------------------- host-function workers


class Workers:
    """Threads that do host functions' work, so that the engine's thread can stop waiting.

    A host function runs on the thread of the wasm call, which the engine cannot interrupt;
    its work (a log handler, an event listener, another plugin's contribution) runs here
    instead, and the host function waits only until the call's deadline. A worker stuck in
    such work is left to finish and never reused until it does; idle workers are kept for
    the next host function.
    """

    _IDLE = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[SimpleQueue[Any]] = []
        self._closed = False

    def run(self, fn: Callable[[], Any], timeout: float) -> Future[Any]:
        """Start ``fn`` on a worker; wait for the future with ``timeout`` at most."""
        future: Future[Any] = Future()
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = SimpleQueue()
            threading.Thread(
                target=self._work, args=(inbox,), name="plugbay wasm host function", daemon=True
            ).start()
        inbox.put((fn, future))
        wait([future], timeout=max(timeout, 0.0))  # the caller reads the outcome from it
        return future

    def _work(self, inbox: SimpleQueue[Any]) -> None:
        while True:
            task = inbox.get()
            if task is None:
                return
            fn, future = task
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting host function
                future.set_exception(exc)
            with self._lock:
                if self._closed or len(self._idle) >= self._IDLE:
                    return
                self._idle.append(inbox)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)
