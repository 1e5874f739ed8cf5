"""The protocol engine of ``plugbay.sdk``: framing, dispatch, cancellation and exit.

It speaks docs/protocol.md on behalf of a :class:`Provider` (what the plugin offers:
:class:`plugbay.sdk.Plugin`, or the isolated server's manifest-driven plugin). Standard
library only, and cheap to import: it runs in the plugin's own interpreter, maybe in a
virtual environment holding nothing of plugbay but ``plugbay.sdk`` and
``plugbay.protocol``, and the time from spawn to ``plugbay/ready`` is what a host waits
for. ``asyncio``, ``traceback`` and ``logging`` are imported only when first needed.

Threads: the main thread reads requests and answers the cheap ones; ``initialize``,
``invoke`` and ``health`` run on a pool of worker threads, so requests overlap; ``async
def`` handlers run on one event loop in a thread of its own; a daemon thread watches the
host process. Every message goes out as one whole line under a lock.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import queue
import sys
import threading
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from ..protocol import (
    COOKIE_ENV,
    ERR_CANCELLED,
    ERR_INVALID_PARAMS,
    ERR_INVALID_REQUEST,
    ERR_METHOD_NOT_FOUND,
    ERR_NOT_INITIALIZED,
    ERR_PARSE,
    ERR_PLUGIN,
    PARENT_PID_ENV,
    SUPPORTED_VERSIONS,
    VERSIONS_ENV,
)

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

__all__ = [
    "Call",
    "Cancelled",
    "Provider",
    "RpcError",
    "SdkError",
    "Server",
    "cancelled",
    "check_cancelled",
    "current_call",
    "settle",
]

#: How often the parent-death watch looks at the host process (seconds).
PARENT_POLL = 0.25
#: How long stop handlers may run when the host is gone and nobody waits for them.
ORPHAN_STOP_GRACE = 1.0
#: ``inspect.CO_VARKEYWORDS``: the function has a ``**kwargs`` parameter.
_CO_VARKEYWORDS = 0x08


class SdkError(Exception):
    """A plugin used ``plugbay.sdk`` wrongly (a duplicate name, a bad decorator argument).

    Not a ``plugbay.PluginError``: the SDK runs where plugbay's other modules may be
    missing, so it has a root of its own.
    """


class Cancelled(Exception):
    """The host cancelled the current call; raised by :func:`check_cancelled`.

    A handler may let it propagate: the call is answered with error -32800 (the SDK has
    usually answered so already, when the ``$/cancel`` arrived).
    """


class RpcError(Exception):
    """An error answer with a protocol code, raised by a provider (no traceback sent)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Call:
    """One request being served: what was asked and whether the host cancelled it.

    ``current_call()`` gives it to the code that serves the request (also inside
    ``async def`` handlers). A long handler looks at :attr:`cancelled` now and then, or
    calls :meth:`check`, or waits with :meth:`wait_cancelled` instead of sleeping.
    """

    __slots__ = ("_done", "_event", "_future", "id", "method", "target")

    def __init__(self, id: int | str, method: str, target: str | None = None) -> None:
        self.id = id
        #: the protocol method: ``initialize``, ``invoke`` or ``health``
        self.method = method
        #: for ``invoke``: ``kind:name`` or ``kind:name.method``
        self.target = target
        self._event = threading.Event()
        self._future: concurrent.futures.Future[Any] | None = None
        self._done = False

    @property
    def cancelled(self) -> bool:
        """Whether the host sent ``$/cancel`` for this call."""
        return self._event.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until the call is cancelled or ``timeout`` passes; True if cancelled."""
        return self._event.wait(timeout)

    def check(self) -> None:
        """Raise :class:`Cancelled` if the host cancelled this call."""
        if self._event.is_set():
            raise Cancelled(f"request {self.id} was cancelled by the host")

    def __repr__(self) -> str:
        what = self.target or self.method
        return f"<Call {self.id} {what}{' cancelled' if self.cancelled else ''}>"


_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "plugbay_sdk_call", default=None
)


def current_call() -> Call | None:
    """The request the calling code serves, or None outside a request."""
    return _CURRENT.get()


def cancelled() -> bool:
    """Whether the host cancelled the request the calling code serves (False outside one)."""
    call = _CURRENT.get()
    return call is not None and call.cancelled


def check_cancelled() -> None:
    """Raise :class:`Cancelled` if the host cancelled the request the calling code serves."""
    call = _CURRENT.get()
    if call is not None:
        call.check()


class Provider(Protocol):
    """What a plugin offers the engine. Methods other than :meth:`ready` run on workers.

    Their return values must be JSON-encodable; :class:`RpcError` becomes an error answer
    with its code, any other exception an error -32002 with the traceback.
    """

    def ready(self) -> dict[str, Any]:
        """The params of ``plugbay/ready`` but ``protocol`` and ``cookie``; must be fast.

        Raises SdkError when it cannot say who the plugin is: the engine then exits 1.
        """
        ...

    def started(self, server: Server) -> None:
        """The ready line is out: notifications may flow through ``server.notify``."""
        ...

    def initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer ``initialize``: take config and host facts, run the plugin's set-up."""
        ...

    def target(self, kind: str, name: str, method: str | None) -> Callable[..., Any]:
        """What ``invoke`` calls; RpcError(-32001) when there is no such thing."""
        ...

    def finish(self, kind: str, result: Any) -> Any:
        """Turn a contribution's return value into the answer (commands: an exit code)."""
        ...

    def health(self) -> dict[str, Any]:
        """Answer ``health``."""
        ...

    def shutdown(self) -> None:
        """Run the plugin's stop handlers; the process exits afterwards."""
        ...


def settle(value: Any) -> Any:
    """``value``, or its result if it is a coroutine (run on the SDK's event loop).

    The coroutine sees the calling request as :func:`current_call` and is cancelled
    (``asyncio.CancelledError`` inside it) when the host cancels that request.
    """
    if not isinstance(value, types.CoroutineType):
        return value
    return _LOOP.run(value, _CURRENT.get())


def _encode(message: dict[str, Any]) -> bytes:
    """One protocol line; TypeError or ValueError if the message is not JSON."""
    text = json.dumps(message, separators=(",", ":"), allow_nan=False, default=_to_json)
    return text.encode() + b"\n"


def _encode_loosely(message: dict[str, Any]) -> bytes:
    """One line for a notification: what is not JSON is sent as its repr, never lost."""
    try:
        return _encode(message)
    except (TypeError, ValueError, RecursionError):
        return _encode(_plain(message))


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` with everything JSON cannot hold (NaN, objects, cycles) made a string."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 50:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    try:
        return _plain(_to_json(value), depth + 1)
    except (TypeError, ValueError):
        return repr(value)


def _to_json(value: Any) -> Any:
    """The JSON shape of values handlers commonly return beyond JSON's own types."""
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        import dataclasses

        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _complain(message: str) -> None:
    sys.stderr.write(f"plugbay.sdk: {message}\n")
    sys.stderr.flush()


def hard_exit(code: int) -> NoReturn:
    """Flush Python's stdout and stderr and leave now, whatever threads still run."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed, or its pipe is gone: nothing to save
            pass
    os._exit(code)


def negotiate(offered: str | None) -> tuple[int | None, str]:
    """The highest protocol version both sides speak, or None and why not."""
    ours = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    if not offered:
        return (
            None,
            f"{VERSIONS_ENV} is not set: the host must say which protocol versions it speaks",
        )
    try:
        theirs = {int(part) for part in offered.split(",") if part.strip()}
    except ValueError:
        return None, f"{VERSIONS_ENV}={offered!r} is not a comma-separated list of versions"
    common = theirs.intersection(SUPPORTED_VERSIONS)
    if not common:
        return None, (
            f"this plugin speaks protocol {ours}; the host speaks {offered} "
            f"({VERSIONS_ENV}={offered}): update the plugin's plugbay.sdk or the host"
        )
    return max(common), ""


class _Loop:
    """One event loop in a daemon thread, started on the first ``async def`` handler."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import asyncio

                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="plugbay.sdk asyncio", daemon=True
                )
                thread.start()
                self._loop = loop
            return self._loop

    def run(self, coro: types.CoroutineType[Any, Any, Any], call: Call | None) -> Any:
        import asyncio
        import concurrent.futures

        async def bound() -> Any:
            _CURRENT.set(call)  # the task runs in a copy of the loop thread's context
            return await coro

        future = asyncio.run_coroutine_threadsafe(bound(), self._get())
        if call is not None:
            call._future = future
            if call.cancelled:  # $/cancel came before the future existed
                future.cancel()
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise Cancelled(f"request {call.id if call else '?'} was cancelled") from None


_LOOP = _Loop()


class _Workers:
    """A thread pool that grows to ``limit`` so that waiting jobs always find a thread."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and self._threads < self._limit:
                self._threads += 1
                self._idle += 1
                name = f"plugbay.sdk worker {self._threads}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
        self._jobs.put(job)

    def can_take(self) -> bool:
        """Whether a job submitted now finds an idle thread or room for a new one."""
        with self._lock:
            return self._queued < self._idle or self._threads < self._limit

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            with self._lock:
                self._queued -= 1
                self._idle -= 1
            try:
                job()
            finally:
                with self._lock:
                    self._idle += 1


class Server:
    """Serves one provider over the process's stdin and stdout until the host is done."""

    def __init__(self, provider: Provider, *, max_workers: int = 32) -> None:
        self._provider = provider
        self._workers = _Workers(max_workers)
        self._calls: dict[int | str, Call] = {}
        self._calls_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._out_fd = -1
        self._initializing = False
        self._initialized = False
        self._stopping = threading.Lock()
        self._parent: tuple[int, str | None] = (0, None)  # our parent at start, the host's pid
        self._reader: Any = None
        self._finished = threading.Event()  # stdin ended or shutdown answered

    # -- the whole life --------------------------------------------------------------

    def serve(self) -> int:
        """Check the environment, write ``plugbay/ready``, serve; the exit code to use.

        Returns 1 (after a message on stderr) when the process was not started by a host
        or speaks no protocol version the host speaks (its ready line then names its own
        version); 0 after ``shutdown`` or the end of stdin. When the host process dies it
        exits the process itself.
        """
        cookie = os.environ.get(COOKIE_ENV)
        if not cookie:
            _complain(
                f"{COOKIE_ENV} is not set: this program is a plugbay plugin and must be started "
                "by a plugbay host (try `plugbay protocol-check <command>` to run it by hand)"
            )
            return 1
        version, problem = negotiate(os.environ.get(VERSIONS_ENV))
        try:
            params = self._provider.ready()
        except SdkError as exc:
            _complain(str(exc))
            return 1
        # Read before the ready line: the host may die the moment it has read it.
        self._parent = (os.getppid(), os.environ.get(PARENT_PID_ENV))
        reader = self._take_stdio()
        # With no common version the ready line names ours, so that the host's error can
        # name both sides (docs/protocol.md); then this side gives up.
        ready = {"protocol": version or max(SUPPORTED_VERSIONS), "cookie": cookie, **params}
        self._write(_encode({"jsonrpc": "2.0", "method": "plugbay/ready", "params": ready}))
        if version is None:
            reader.close()
            _complain(problem)
            return 1
        self._provider.started(self)
        threading.Thread(target=self._watch_parent, name="plugbay.sdk parent", daemon=True).start()
        self._reader = reader
        # The main thread only waits: a reader runs calls itself, and a call still running
        # when stdin ends must not keep the process from exiting.
        self._workers.submit(self._read)
        self._finished.wait()
        reader.close()
        return 0

    def _take_stdio(self) -> Any:
        """Keep stdin and stdout for the protocol; give the plugin /dev/null and stderr.

        The protocol moves to private descriptors; fd 0 becomes /dev/null and fd 1 a copy
        of stderr, so ``print``, ``os.system`` and child processes (which inherit fds 0
        to 2) write to the plugin's log and can never break the protocol.
        """
        in_fd, self._out_fd = os.dup(0), os.dup(1)  # not inheritable: children never hold them
        os.dup2(2, 1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        stdout = sys.stdout
        if stdout is not None:
            # Text printed before run() is still in Python's buffer: it now goes to stderr.
            try:
                stdout.flush()
                reconfigure = getattr(stdout, "reconfigure", None)
                if reconfigure is not None:
                    reconfigure(line_buffering=True)  # a print shows in the log at once
            except (OSError, ValueError):  # a closed or replaced stdout: nothing to move
                pass
        return open(in_fd, "rb", buffering=64 * 1024)

    def _read(self) -> None:
        """Read and dispatch messages until stdin ends or ``shutdown`` is answered.

        One thread at a time reads. An ``invoke`` is run by the thread that read it, after
        it hands the reading on to a worker: the call's path has no thread switch, and a
        reader stays free for ``$/cancel`` and the next request.
        """
        reader = self._reader
        while True:
            line = reader.readline()
            if not line:  # end of stdin: the host wants us gone
                self._stop_quietly()
                self._finished.set()
                return
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except (ValueError, RecursionError) as exc:
                self._send_error(None, ERR_PARSE, f"not JSON: {exc}")
                continue
            if not isinstance(message, dict):
                self._send_error(None, ERR_INVALID_REQUEST, "a message must be a JSON object")
                continue
            method = message.get("method")
            if method is None:
                continue  # an answer: this side sends no requests
            if "id" not in message:
                self._notification(method, message.get("params"))
                continue
            request_id = message["id"]
            if not isinstance(request_id, int | str) or isinstance(request_id, bool):
                self._send_error(None, ERR_INVALID_REQUEST, "a request id must be an integer")
                continue
            if method == "shutdown":
                self._shutdown(request_id)
                self._finished.set()
                return
            inline = self._request(request_id, method, message.get("params"))
            if inline is not None:
                self._workers.submit(self._read)  # the next reader
                inline()
                return

    # -- requests --------------------------------------------------------------------

    def _request(
        self, request_id: int | str, method: Any, params: Any
    ) -> Callable[[], None] | None:
        """Answer or start one request; an ``invoke`` the reading thread may run itself
        comes back as a function to call (after the reading is handed on)."""
        if not isinstance(method, str):
            self._send_error(request_id, ERR_INVALID_REQUEST, "method must be a string")
            return None
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self._send_error(
                request_id, ERR_INVALID_PARAMS, f"params of {method} must be an object"
            )
            return None
        if method == "initialize":
            if self._initializing:
                self._send_error(request_id, ERR_INVALID_REQUEST, "initialize was already sent")
                return None
            self._initializing = True
            self._start(Call(request_id, method), "", lambda: self._initialize(params))
        elif method == "invoke":
            return self._invoke(request_id, params)
        elif method == "health":
            self._start(Call(request_id, method), "", self._provider.health)
        else:
            self._send_error(
                request_id,
                ERR_METHOD_NOT_FOUND,
                f"unknown method {method!r} (this plugin answers initialize, invoke, health, "
                "shutdown)",
            )
        return None

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            result = self._provider.initialize(params)
        except BaseException:
            self._initializing = False  # the host may try again
            raise
        self._initialized = True  # before the answer: the host may invoke the moment it reads it
        return result

    def _invoke(self, request_id: int | str, params: dict[str, Any]) -> Callable[[], None] | None:
        if not self._initialized:
            self._send_error(
                request_id,
                ERR_NOT_INITIALIZED,
                "not initialized: send initialize and wait for its answer before invoke",
            )
            return None
        contribution = params.get("contribution")
        method = params.get("method")
        args = params.get("args", [])
        kwargs = params.get("kwargs", {})
        kind, _, name = (
            contribution.partition(":") if isinstance(contribution, str) else ("", "", "")
        )
        problem = None
        if not kind or not name:
            problem = f'"contribution" must be "kind:name", not {contribution!r}'
        elif method is not None and not isinstance(method, str):
            problem = f'"method" must be a string or null, not {method!r}'
        elif not isinstance(args, list):
            problem = f'"args" must be an array, not {args!r}'
        elif not isinstance(kwargs, dict):
            problem = f'"kwargs" must be an object, not {kwargs!r}'
        if problem is not None:
            self._send_error(request_id, ERR_INVALID_PARAMS, f"invoke: {problem}")
            return None
        target = f"{contribution}.{method}" if method else str(contribution)
        provider = self._provider

        def job() -> Any:
            fn = provider.target(kind, name, method)
            named = kwargs
            if kind == "hook":  # as in-process, an implementation takes the arguments it names
                accepted = _parameter_names(fn)
                if accepted is not None:
                    named = {k: v for k, v in kwargs.items() if k in accepted}
            try:
                result = settle(fn(*args, **named))
            except TypeError as exc:
                if _is_call_mismatch(exc):
                    raise RpcError(ERR_INVALID_PARAMS, f"{target}: {exc}") from None
                raise
            except SystemExit as exc:  # a CLI-style command exits with its code
                if kind != "command":
                    raise
                result = exc.code if isinstance(exc.code, int) or exc.code is None else 1
            return provider.finish(kind, result)

        return self._start(Call(request_id, "invoke", target), target, job, inline=True)

    def _start(
        self, call: Call, target: str, job: Callable[[], Any], *, inline: bool = False
    ) -> Callable[[], None] | None:
        """Register ``call`` and run ``job`` for it on a worker; with ``inline`` (and a
        worker free to take over the reading) give it back to run on this thread."""
        with self._calls_lock:
            if call.id in self._calls:
                duplicate = True
            else:
                duplicate = False
                self._calls[call.id] = call
        if duplicate:
            self._send_error(
                call.id, ERR_INVALID_REQUEST, f"request id {call.id} is already in use"
            )
            return None
        if inline and self._workers.can_take():
            return lambda: self._execute(call, target, job)
        self._workers.submit(lambda: self._execute(call, target, job))
        return None

    def _execute(self, call: Call, target: str, job: Callable[[], Any]) -> None:
        token = _CURRENT.set(call)
        try:
            result = job()
        except Cancelled:
            self._answer_error(call, ERR_CANCELLED, f"request {call.id} was cancelled")
        except RpcError as exc:
            self._answer_error(call, exc.code, exc.message, exc.data)
        except BaseException as exc:  # noqa: BLE001 - whatever the plugin raises is its answer
            if call.cancelled:  # the handler gave up because it was cancelled: answered already
                self._answer_error(call, ERR_CANCELLED, f"request {call.id} was cancelled")
            else:
                self._answer_exception(call, target or call.method, exc)
        else:
            self._answer(call, target or call.method, result)
        finally:
            _CURRENT.reset(token)

    def _answer(self, call: Call, target: str, result: Any) -> None:
        try:
            line = _encode({"jsonrpc": "2.0", "id": call.id, "result": result})
        except (TypeError, ValueError, RecursionError) as exc:
            self._answer_error(
                call,
                ERR_PLUGIN,
                f"{target} returned a value that is not JSON: {exc}",
                {"type": type(exc).__name__, "traceback": ""},
            )
            return
        if self._settle(call):
            self._write(line)

    def _answer_exception(self, call: Call, target: str, exc: BaseException) -> None:
        text = format_traceback(exc)
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._answer_error(
            call,
            ERR_PLUGIN,
            f"{target} raised {what}",
            {"type": type(exc).__name__, "traceback": text},
        )

    def _answer_error(self, call: Call, code: int, message: str, data: Any = None) -> None:
        if self._settle(call):
            self._send_error(call.id, code, message, data)

    def _settle(self, call: Call) -> bool:
        """Mark ``call`` answered; False if it was already (cancelled, then finished)."""
        with self._calls_lock:
            if call._done:
                return False
            call._done = True
            self._calls.pop(call.id, None)
            return True

    # -- notifications ---------------------------------------------------------------

    def _notification(self, method: Any, params: Any) -> None:
        if method != "$/cancel" or not isinstance(params, dict):
            return  # unknown notifications are ignored (docs/protocol.md)
        request_id = params.get("id")
        if not isinstance(request_id, int | str):
            return
        with self._calls_lock:
            call = self._calls.get(request_id)
        if call is None:
            return  # finished already, or never existed
        call._event.set()
        future = call._future
        if future is not None:
            future.cancel()  # an async handler: cancels its task on the loop
        self._answer_error(call, ERR_CANCELLED, f"request {request_id} was cancelled")

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send a notification (``log``, ``event``) to the host."""
        self._write(_encode_loosely({"jsonrpc": "2.0", "method": method, "params": params}))

    # -- the end ---------------------------------------------------------------------

    def _shutdown(self, request_id: int | str) -> None:
        call = Call(request_id, "shutdown")
        try:
            with self._stopping:
                self._provider.shutdown()
        except BaseException as exc:  # noqa: BLE001 - reported to the host, then we exit anyway
            self._answer_exception(call, "shutdown", exc)
        else:
            self._write(_encode({"jsonrpc": "2.0", "id": request_id, "result": {}}))

    def _stop_quietly(self) -> None:
        """Run the stop handlers when nobody waits for an answer; report failures on stderr."""
        try:
            with self._stopping:
                self._provider.shutdown()
        except BaseException as exc:  # noqa: BLE001 - the process exits next; say why on stderr
            _complain("stopping failed:\n" + format_traceback(exc).rstrip())

    def _watch_parent(self) -> None:
        """Exit when the host process is gone (kill -9 of the host leaves no orphans)."""
        ppid, named = self._parent
        try:
            pid = int(named or ppid)
        except ValueError:
            return
        if pid <= 1:
            return
        direct = ppid == pid
        wait = threading.Event().wait
        while True:
            wait(PARENT_POLL)
            # Re-parented means our parent died; a host further up is looked up by pid.
            if (os.getppid() != pid) if direct else _gone(pid):
                break
        _complain(f"the host process {pid} is gone; exiting")
        stopper = threading.Thread(target=self._stop_quietly, name="plugbay.sdk stop", daemon=True)
        stopper.start()
        stopper.join(ORPHAN_STOP_GRACE)
        hard_exit(0)

    # -- output ----------------------------------------------------------------------

    def _send_error(self, request_id: Any, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        self._write(_encode_loosely({"jsonrpc": "2.0", "id": request_id, "error": error}))

    def _write(self, line: bytes) -> None:
        with self._write_lock:
            view = memoryview(line)
            try:
                while view:
                    written = os.write(self._out_fd, view)
                    view = view[written:]
            except OSError:  # the host closed our stdout: it is gone or killing us
                hard_exit(0)


def format_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the SDK's own frames (and asyncio's hand-over)."""
    import traceback

    skip = [os.path.dirname(os.path.abspath(__file__)) + os.sep]
    futures = sys.modules.get("concurrent.futures._base")
    if futures is not None and futures.__file__:
        skip.append(futures.__file__)
    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    kept = [f for f in report.stack if not f.filename.startswith(tuple(skip))]
    if kept:  # a failure inside the SDK itself keeps every frame
        report.stack = traceback.StackSummary.from_list(kept)
    return "".join(report.format())


def _parameter_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The names ``fn`` takes by keyword; None when it takes any (``**kwargs``) or is opaque.

    Read from the code object: ``inspect.signature`` would cost an import of ``inspect``.
    """
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None or code.co_flags & _CO_VARKEYWORDS:
        return None
    return frozenset(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by someone else
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] == [b"Z"]
    except OSError:  # no /proc (not Linux): a live pid is all we can know
        return False


def _is_call_mismatch(exc: TypeError) -> bool:
    """Whether a TypeError says the arguments did not fit the function (not its inside).

    Only a TypeError raised by the call itself has no frame below the caller's.
    """
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None and "argument" in str(exc)
