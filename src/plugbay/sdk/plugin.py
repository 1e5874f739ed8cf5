"""``Plugin``: what an out-of-process plugin written in Python declares and serves."""

from __future__ import annotations

import functools
import os
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..protocol import (
    COOKIE_ENV,
    ERR_INVALID_PARAMS,
    ERR_NO_CONTRIBUTION,
    LOG_LEVEL_ENV,
    PLUGIN_DIR_ENV,
    PLUGIN_ID_ENV,
)
from .server import RpcError, SdkError, Server, hard_exit, settle

if TYPE_CHECKING:
    import logging

__all__ = ["HostInfo", "HostLogger", "Plugin"]

_T = TypeVar("_T")

#: Log levels of the protocol, by rank; PLUGBAY_LOG_LEVEL names the lowest the host records.
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
#: Notifications kept while the ready line is not yet out (logging at import time).
_MAX_PENDING = 1000
_CALLABLES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    functools.partial,
)
_UNSET: Any = object()


class HostInfo:
    """Facts about the host, from ``initialize``: its app name and versions."""

    __slots__ = ("api_version", "app", "plugbay_version", "raw")

    def __init__(self, raw: dict[str, Any]) -> None:
        #: the host application's name, e.g. ``"opsrun"``
        self.app: str = str(raw.get("app", ""))
        #: the host's plugin API version, or None when it declares none
        self.api_version: str | None = raw.get("api_version")
        #: the plugbay version the host runs
        self.plugbay_version: str | None = raw.get("plugbay_version")
        #: everything the host sent, newer fields included
        self.raw = raw

    def __repr__(self) -> str:
        return f"HostInfo(app={self.app!r}, api_version={self.api_version!r})"


class HostLogger:
    """Sends ``log`` notifications to the host, which records them for this plugin.

    ``log.info("fetched %d items", n, source="prism")``: the message is %-formatted with
    the positional arguments, keyword arguments become structured ``fields``. Messages
    below the host's level (``PLUGBAY_LOG_LEVEL``) are not sent at all.
    """

    def __init__(self, send: Callable[[str, str, dict[str, Any]], None]) -> None:
        self._send = send
        self.level = LEVELS.get(os.environ.get(LOG_LEVEL_ENV, "debug").lower(), 10)

    def is_enabled_for(self, level: str) -> bool:
        """Whether the host records messages of ``level`` (``debug`` … ``error``)."""
        return LEVELS.get(level, 40) >= self.level

    def log(self, level: str, message: str, /, *args: Any, **fields: Any) -> None:
        """Send ``message`` at ``level``: ``debug``, ``info``, ``warning`` or ``error``."""
        if level not in LEVELS:
            raise SdkError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
        if LEVELS[level] < self.level:
            return
        if args:
            try:
                message = message % args
            except (TypeError, ValueError):  # a wrong format string still gets logged
                message = f"{message} {args!r}"
        self._send(level, str(message), fields)

    def debug(self, message: str, /, *args: Any, **fields: Any) -> None:
        """Send a debug message."""
        self.log("debug", message, *args, **fields)

    def info(self, message: str, /, *args: Any, **fields: Any) -> None:
        """Send an info message."""
        self.log("info", message, *args, **fields)

    def warning(self, message: str, /, *args: Any, **fields: Any) -> None:
        """Send a warning."""
        self.log("warning", message, *args, **fields)

    def error(self, message: str, /, *args: Any, **fields: Any) -> None:
        """Send an error message."""
        self.log("error", message, *args, **fields)

    def exception(self, message: str, /, *args: Any, **fields: Any) -> None:
        """Send an error message with the traceback of the exception being handled."""
        exc = sys.exc_info()[1]
        if exc is not None:
            from .server import format_traceback

            fields = {**fields, "traceback": format_traceback(exc)}
        self.log("error", message, *args, **fields)


class _Contribution:
    """One contribution: its object (or how to import it) and what the host may call."""

    def __init__(
        self,
        kind: str,
        name: str,
        obj: Any = _UNSET,
        load: Callable[[], Any] | None = None,
        *,
        summary: str = "",
        check: bool | Sequence[str] = False,
        check_slow: bool | str = False,
    ) -> None:
        self.kind = kind
        self.name = name
        self.summary = summary
        self.check: bool | list[str] = check if isinstance(check, bool) else list(check)
        self.check_slow = check_slow
        self.announced = False
        self._obj = obj
        self._load = load
        self._lock = threading.Lock()
        self._target: Any = _UNSET
        # Known without loading when the object is at hand (decorators); else on load.
        self.methods: list[str] | None = None
        self.is_object: bool | None = None
        if obj is not _UNSET:
            self.is_object, self.methods = _shape(kind, obj)

    def describe(self) -> dict[str, Any]:
        """This contribution in ``plugbay/ready`` (and in ``initialize``'s answer)."""
        out: dict[str, Any] = {"name": self.name}
        if self.methods is not None and self.is_object:
            out["methods"] = self.methods
        if self.summary:
            out["summary"] = self.summary
        if self.check:
            out["check"] = self.check
        if self.check_slow:
            out["check-slow"] = self.check_slow
        return out

    def resolve(self) -> Any:
        """The object calls go to: imported and, for a class, instantiated once."""
        if self._target is not _UNSET:
            return self._target
        with self._lock:
            if self._target is _UNSET:
                obj = self._obj
                if obj is _UNSET:
                    assert self._load is not None
                    obj = self._load()
                    self.is_object, self.methods = _shape(self.kind, obj)
                self._target = obj() if isinstance(obj, type) and self.is_object else obj
            return self._target


def _shape(kind: str, obj: Any) -> tuple[bool, list[str]]:
    """Whether ``obj`` is object-like (called by method) and its public methods."""
    if kind in ("hook", "command") or isinstance(obj, _CALLABLES):
        return False, []
    names = []
    for attr in dir(obj):
        if attr.startswith("_"):
            continue
        value = getattr(obj, attr, None)
        if callable(value) and not isinstance(value, type):
            names.append(attr)
    return True, names


class Plugin:
    """An out-of-process plugin: declare contributions with decorators, then :meth:`run`.

    ``Plugin()`` takes its id from ``PLUGBAY_PLUGIN_ID`` and its version from the
    manifest in ``PLUGBAY_PLUGIN_DIR`` (or the working folder); ``Plugin("acme.greeter",
    "1.0.0")`` says them in code and reads no file. After ``initialize``, :attr:`config`,
    :attr:`host`, :attr:`grants` and :attr:`dir` hold what the host sent.
    """

    def __init__(
        self, id: str | None = None, version: str | None = None, *, max_workers: int = 32
    ) -> None:
        self._id = id
        self._version = version
        self._max_workers = max_workers
        self._contributions: dict[str, dict[str, _Contribution]] = {}
        self._initializers: list[Callable[[dict[str, Any], HostInfo], Any]] = []
        self._health: Callable[[], Any] | None = None
        self._stoppers: list[Callable[[], Any]] = []
        self._server: Server | None = None
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._sealed = False
        self._stopped = False
        #: the plugin's validated config, from ``initialize`` (secrets included)
        self.config: dict[str, Any] = {}
        #: the host's facts, from ``initialize``
        self.host: HostInfo | None = None
        #: what the user granted this plugin, from ``initialize``
        self.grants: dict[str, Any] = {}
        #: the plugin's installed folder
        self.dir: str | None = os.environ.get(PLUGIN_DIR_ENV)
        #: logs for the host: ``plugin.log.info("text", key=value)``
        self.log = HostLogger(self._send_log)

    # -- identity --------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The plugin id: given, else ``PLUGBAY_PLUGIN_ID``, else the manifest's."""
        if self._id is None:
            self._id = os.environ.get(PLUGIN_ID_ENV) or self._from_manifest()[0]
        return self._id

    @property
    def version(self) -> str:
        """The plugin version: given, else the manifest's."""
        if self._version is None:
            self._version = self._from_manifest()[1]
        return self._version

    def _from_manifest(self) -> tuple[str, str]:
        from ._manifest import identity, read_manifest

        folder = self.dir or os.getcwd()
        return identity(read_manifest(folder)[1])

    # -- contributions ---------------------------------------------------------------

    def contribution(
        self,
        kind: str,
        name: str | None = None,
        *,
        summary: str = "",
        check: bool | Sequence[str] = False,
        check_slow: bool | str = False,
    ) -> Callable[[_T], _T]:
        """Decorator: contribute a class, object or function as ``name`` of ``kind``.

        A class (instantiated once, on its first call) or an object is called by method:
        its public methods are what the host may call. A function is called as it is.
        ``name`` defaults to the object's ``__name__``.

        ``check`` and ``check_slow`` are for ``plugbay protocol-check`` (docs/protocol.md):
        ``check`` marks what is safe to call with no arguments (True on a function; on an
        object, a list of method names, or True for all of them); ``check_slow`` one call
        that runs for seconds unless cancelled (True on a function, a method name on an
        object).
        """

        def decorate(obj: _T) -> _T:
            self.add(
                kind,
                name or _default_name(kind, obj),
                obj,
                summary=summary,
                check=check,
                check_slow=check_slow,
            )
            return obj

        return decorate

    def module(
        self,
        name: str | None = None,
        *,
        summary: str = "",
        check: bool | Sequence[str] = False,
        check_slow: bool | str = False,
    ) -> Callable[[_T], _T]:
        """Decorator: contribute a ``module`` (a class or object, called by method)."""
        return self.contribution(
            "module", name, summary=summary, check=check, check_slow=check_slow
        )

    def tool(
        self,
        name: str | None = None,
        *,
        summary: str = "",
        check: bool | Sequence[str] = False,
        check_slow: bool | str = False,
    ) -> Callable[[_T], _T]:
        """Decorator: contribute a ``tool``."""
        return self.contribution("tool", name, summary=summary, check=check, check_slow=check_slow)

    def provider(
        self,
        name: str | None = None,
        *,
        summary: str = "",
        check: bool | Sequence[str] = False,
        check_slow: bool | str = False,
    ) -> Callable[[_T], _T]:
        """Decorator: contribute a ``provider``."""
        return self.contribution(
            "provider", name, summary=summary, check=check, check_slow=check_slow
        )

    def hook(
        self, name: str | None = None, *, check: bool = False, check_slow: bool = False
    ) -> Callable[[_T], _T]:
        """Decorator: implement the hook ``name`` (default: the function's name).

        The host calls it with keyword arguments only, as in-process hooks.
        """
        return self.contribution("hook", name, check=check, check_slow=check_slow)

    def command(
        self,
        name: str | None = None,
        *,
        summary: str = "",
        check: bool = False,
        check_slow: bool = False,
    ) -> Callable[[_T], _T]:
        """Decorator: contribute a command (default name: the function's, ``_`` → ``-``).

        It is called with the argument list (``list[str]``) and returns its exit code:
        an int, or None/True for 0, False for 1; ``sys.exit(n)`` works too.
        """
        return self.contribution(
            "command", name, summary=summary, check=check, check_slow=check_slow
        )

    def add(
        self,
        kind: str,
        name: str,
        obj: Any,
        *,
        summary: str = "",
        check: bool | Sequence[str] = False,
        check_slow: bool | str = False,
    ) -> None:
        """Contribute ``obj`` as ``name`` of ``kind`` (what the decorators do).

        Works until ``initialize`` is answered: contributions added after the ready line
        (in an ``on_initialize`` handler, say) are announced in that answer.
        """
        self._add(
            _Contribution(kind, name, obj, summary=summary, check=check, check_slow=check_slow)
        )

    def _add_lazy(self, kind: str, name: str, load: Callable[[], Any], summary: str = "") -> None:
        """Contribute what ``load()`` returns, imported on the first call."""
        self._add(_Contribution(kind, name, load=load, summary=summary))

    def _add(self, c: _Contribution) -> None:
        if not isinstance(c.kind, str) or not c.kind or ":" in c.kind:
            raise SdkError(f"contribution kind {c.kind!r} must be a non-empty name without ':'")
        if not c.name or not isinstance(c.name, str):
            raise SdkError(f"a {c.kind} contribution needs a name, not {c.name!r}")
        if c.kind in ("hook", "command") and isinstance(c._obj, type):
            raise SdkError(
                f"{c.kind} {c.name!r} must be a function, not the class {c._obj.__name__}"
            )
        _check_marks(c)
        with self._lock:
            if self._sealed:
                raise SdkError(
                    f"cannot add {c.kind} {c.name!r} now: contributions can be added until "
                    "initialize is answered"
                )
            kind = self._contributions.setdefault(c.kind, {})
            if c.name in kind:
                raise SdkError(
                    f"{self._id or 'this plugin'} already contributes {c.kind} {c.name!r}"
                )
            kind[c.name] = c

    # -- lifecycle handlers ----------------------------------------------------------

    def on_initialize(
        self, fn: Callable[[dict[str, Any], HostInfo], Any]
    ) -> Callable[[dict[str, Any], HostInfo], Any]:
        """Decorator: ``fn(config, host)`` runs when the host sends ``initialize``.

        It may be ``async``. Raising fails the plugin's start with the exception's message.
        """
        self._initializers.append(fn)
        return fn

    def on_health(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: ``fn()`` answers ``health``.

        Return ``{"status": "ok"|"degraded"|"failing", "detail": "…"}``, or True/None
        (ok), False (failing) or a string (degraded, with that detail).
        """
        self._health = fn
        return fn

    def on_shutdown(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: ``fn()`` runs before the process exits (shutdown, end of stdin, host gone).

        Handlers run once, last registered first.
        """
        self._stoppers.append(fn)
        return fn

    # -- talking to the host ---------------------------------------------------------

    def emit(self, name: str, data: Any = None) -> None:
        """Send an ``event`` notification to the host's event listeners."""
        self._notify("event", {"name": name, "data": {} if data is None else data})

    def log_handler(self, level: int | str = 0) -> logging.Handler:
        """A ``logging.Handler`` that forwards records to the host as ``log`` notifications."""
        from .logs import LogHandler

        return LogHandler(self, level)

    def forward_logging(
        self, logger: logging.Logger | str | None = None, level: int | str = "INFO"
    ) -> logging.Handler:
        """Forward a stdlib logger (default: the root logger) to the host; the handler.

        Sets that logger's level to ``level`` so the records reach the handler.
        """
        import logging

        target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
        handler = self.log_handler()
        target.addHandler(handler)
        target.setLevel(level)
        return handler

    def _send_log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        params: dict[str, Any] = {"level": level, "message": message}
        if fields:
            params["fields"] = fields
        self._notify("log", params)

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        server = self._server
        if server is not None:
            server.notify(method, params)
            return
        with self._lock:
            if self._server is None:
                if os.environ.get(COOKIE_ENV):  # run() will start: keep it for after ready
                    if len(self._pending) < _MAX_PENDING:
                        self._pending.append((method, params))
                    return
                sys.stderr.write(f"[{method}] {params}\n")  # not under a host: show it
                return
        self._server.notify(method, params)

    # -- serving ---------------------------------------------------------------------

    def run(self) -> NoReturn:
        """Serve the host until ``shutdown``, the end of stdin or the host's death; exit.

        Never returns: the process exits (``atexit`` handlers run). Started without a
        host (no ``PLUGBAY_COOKIE``) or with no common protocol version, it says so on
        stderr and exits 1.
        """
        code = Server(self, max_workers=self._max_workers).serve()
        if code:
            raise SystemExit(code)
        import atexit

        atexit._run_exitfuncs()  # os._exit skips them; daemon worker threads may still run
        hard_exit(0)

    # Provider interface, used by the server ------------------------------------------

    def ready(self) -> dict[str, Any]:
        """The ready params: who the plugin is and what it contributes (imports nothing)."""
        with self._lock:
            contributions: dict[str, list[dict[str, Any]]] = {}
            for kind, named in self._contributions.items():
                for c in named.values():
                    c.announced = True
                    contributions.setdefault(kind, []).append(c.describe())
        return {"plugin": {"id": self.id, "version": self.version}, "contributions": contributions}

    def started(self, server: Server) -> None:
        """The ready line is out: send what was logged before it."""
        with self._lock:
            self._server = server
            pending, self._pending = self._pending, []
        for method, params in pending:
            server.notify(method, params)

    def initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        """Take the host's config and facts, run ``on_initialize`` handlers."""
        config = params.get("config") or {}
        host = params.get("host") or {}
        grants = params.get("grants") or {}
        plugin = params.get("plugin") or {}
        if not all(isinstance(v, dict) for v in (config, host, grants, plugin)):
            raise RpcError(
                ERR_INVALID_PARAMS, "initialize: config, host, grants and plugin must be objects"
            )
        self.config, self.host, self.grants = config, HostInfo(host), grants
        if isinstance(plugin.get("dir"), str):
            self.dir = plugin["dir"]
        for fn in self._initializers:
            settle(fn(self.config, self.host))
        with self._lock:
            self._sealed = True
            added: dict[str, list[dict[str, Any]]] = {}
            for kind, named in self._contributions.items():
                for c in named.values():
                    if not c.announced:
                        c.announced = True
                        added.setdefault(kind, []).append(c.describe())
        return {"contributions": added} if added else {}

    def target(self, kind: str, name: str, method: str | None) -> Callable[..., Any]:
        """The function an ``invoke`` calls; RpcError(-32001) for unknown things."""
        c = self._contributions.get(kind, {}).get(name)
        if c is None:
            known = sorted(f"{k}:{n}" for k, named in self._contributions.items() for n in named)
            raise RpcError(
                ERR_NO_CONTRIBUTION,
                f"{self.id} has no contribution {kind}:{name}"
                f" (it has: {', '.join(known) or 'none'})",
            )
        obj = c.resolve()
        if not c.is_object:
            if method is not None:
                raise RpcError(
                    ERR_NO_CONTRIBUTION,
                    f"{kind}:{name} is a function, not an object: invoke it with method null",
                )
            if not callable(obj):
                raise RpcError(ERR_NO_CONTRIBUTION, f"{kind}:{name} is not callable")
            return obj  # type: ignore[no-any-return]
        methods = c.methods or []
        if method is None or method not in methods:
            what = "names no method" if method is None else f"has no method {method!r}"
            raise RpcError(
                ERR_NO_CONTRIBUTION,
                f"{kind}:{name} {what} (it has: {', '.join(methods) or 'none'})",
            )
        return getattr(obj, method)  # type: ignore[no-any-return]

    def finish(self, kind: str, result: Any) -> Any:
        """A command's result as its exit code (None/True → 0, False → 1); others as they are."""
        if kind != "command" or result is None:
            return result
        if result is True:
            return 0
        if result is False or not isinstance(result, int):
            return 1
        return result

    def health(self) -> dict[str, Any]:
        """Ask the ``on_health`` handler, if any; ok otherwise."""
        if self._health is None:
            return {"status": "ok"}
        return health_answer(settle(self._health()))

    def shutdown(self) -> None:
        """Run the ``on_shutdown`` handlers once, last first; re-raise the first failure."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        failure: BaseException | None = None
        for fn in reversed(self._stoppers):
            try:
                settle(fn())
            except BaseException as exc:  # noqa: BLE001 - every handler runs; the first error is reported
                failure = failure or exc
        if failure is not None:
            raise failure


def health_answer(value: Any) -> dict[str, Any]:
    """A health handler's return value as the ``health`` answer."""
    if value is None or value is True:
        return {"status": "ok"}
    if value is False:
        return {"status": "failing", "detail": "health() returned False"}
    if isinstance(value, str):
        return {"status": "degraded", "detail": value}
    if isinstance(value, dict):
        if value.get("status") in ("ok", "degraded", "failing"):
            return value
        return {
            "status": "degraded",
            "detail": f"health() returned unknown status {value.get('status')!r}",
        }
    return {"status": "degraded", "detail": f"health() returned {type(value).__name__}"}


def _check_marks(c: _Contribution) -> None:
    """Refuse ``check``/``check_slow`` values that do not fit the contribution's shape."""
    where = f"{c.kind} {c.name!r}"
    if not c.is_object:
        if not isinstance(c.check, bool) or not isinstance(c.check_slow, bool):
            raise SdkError(f"{where} is a function: its check and check_slow are True or False")
        return
    methods = c.methods or []
    if isinstance(c.check, list):
        unknown = [m for m in c.check if m not in methods]
        if unknown:
            raise SdkError(f"{where}: check names methods it does not have: {', '.join(unknown)}")
    if c.check_slow is True or (isinstance(c.check_slow, str) and c.check_slow not in methods):
        raise SdkError(
            f"{where}: check_slow must name one of its methods ({', '.join(methods) or 'none'})"
        )


def _default_name(kind: str, obj: Any) -> str:
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str):
        raise SdkError(f"name the {kind}: {obj!r} has no __name__ to take it from")
    return name.replace("_", "-") if kind == "command" else name
