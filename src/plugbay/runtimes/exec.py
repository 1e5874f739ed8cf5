"""The exec runtime: out-of-process plugins, supervised, speaking docs/protocol.md.

Each plugin that runs out of process (``runtime = "exec"``, or ``runtime = "python"`` with
``isolation = "process"``) gets a :class:`Supervisor`: it spawns the child, checks its
``plugbay/ready`` line, sends requests (many in flight, matched by id) with deadlines,
restarts the child after a crash within a restart budget and stops it. One
:class:`ExecRuntime` per host owns the supervisors and two threads:

- the *scheduler* spawns every child and fires call deadlines. Spawning from one
  long-lived thread matters: on Linux the child gets a parent-death signal (SIGKILL), and
  the kernel sends it when the *thread* that forked it ends, not the process.
- the *dispatcher* runs host callbacks (plugin events, "this plugin has failed"), so that
  neither a listener nor the host's locks can ever hold up a child's reader thread.

Each child has three threads of its own: one reads stdout (protocol messages, at most
``max-line`` bytes a line), one copies stderr to ``<home>/logs/plugins/<id>.log`` and
keeps its last lines for error messages, one writes requests to stdin (so that a caller
never blocks on a child that stopped reading).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import heapq
import itertools
import logging
import math
import os
import queue
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import msgspec

from .. import protocol
from ..config import RuntimeSettings
from ..errors import LoadError, PluginCallError
from ..protocol import describe_exit

__all__ = [
    "ExecRuntime",
    "ExecSettings",
    "Supervisor",
    "command_for",
    "describe_exit",
    "resolve_command",
]

_log = logging.getLogger("plugbay.exec")

#: The plugin log is rotated when it would grow past this; one old file is kept.
LOG_LIMIT = 1024 * 1024
#: How many stderr lines are kept in memory for error messages.
TAIL_LINES = 20
#: How much of an offending line an error quotes.
QUOTE_CHARS = 200
_CHUNK = 65536
# How long a child that closed its stdout may take to exit before it counts as one that
# closed its stdout and kept running.
_EXIT_AFTER_EOF = 0.5
# How often an idle reader checks that its child still runs (a grandchild may hold the
# pipe open after the child itself exited).
_POLL_MS = 1000

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class ExecSettings(msgspec.Struct, frozen=True, gc=False):
    """How one out-of-process plugin is supervised: ``[runtime."<id>"]`` with defaults.

    Times are seconds, sizes bytes; ``cpu_time`` and ``memory`` are None for no limit.
    """

    handshake_timeout: float = protocol.DEFAULT_HANDSHAKE_TIMEOUT
    call_timeout: float = protocol.DEFAULT_CALL_TIMEOUT
    cancel_grace: float = protocol.DEFAULT_CANCEL_GRACE
    shutdown_grace: float = protocol.DEFAULT_SHUTDOWN_GRACE
    max_restarts: int = protocol.DEFAULT_MAX_RESTARTS
    restart_window: float = protocol.DEFAULT_RESTART_WINDOW
    max_line: int = protocol.DEFAULT_MAX_LINE
    cpu_time: float | None = None
    memory: int | None = None

    @classmethod
    def from_config(cls, raw: RuntimeSettings | None) -> ExecSettings:
        """The settings of a ``[runtime]`` table; unset values take the protocol's defaults."""
        if raw is None:
            return cls()
        given = {
            name: getattr(raw, name)
            for name in cls.__struct_fields__
            if getattr(raw, name, None) is not None
        }
        return cls(**given)


# ---------------------------------------------------------------- commands


def resolve_command(
    plugin_id: str,
    plugin_dir: Path,
    *,
    entry: str | None,
    platforms: Mapping[str, str],
    platform: str,
    path: str | None = None,
) -> list[str]:
    """The argv that runs an exec plugin; LoadError (step ``spawn``) says what is wrong.

    A ``platforms`` entry for ``platform`` is the program (a path in the plugin folder);
    otherwise ``entry`` is a command line split like a shell does. Its first word, when it
    is a relative path with a slash, is taken from the plugin folder; ``python`` or
    ``python3`` is the host's own interpreter (so ``plugbay.sdk`` is importable); any other
    bare name is looked up on ``path`` (the child's ``PATH``).
    """
    if platforms:
        artifact = platforms.get(platform)
        if artifact is None:
            raise LoadError(
                plugin_id,
                "spawn",
                f"has no program for this platform, {platform} (it offers: "
                f"{', '.join(sorted(platforms))}); install a build for {platform}",
            )
        return [_checked_program(plugin_id, str((plugin_dir / artifact).absolute()), artifact)]
    if not entry:
        raise LoadError(plugin_id, "spawn", "has no entry (the command to run) in its manifest")
    try:
        argv = shlex.split(entry)
    except ValueError as exc:
        raise LoadError(
            plugin_id, "spawn", f"entry {entry!r} is not a valid command line: {exc}"
        ) from None
    if not argv:
        raise LoadError(plugin_id, "spawn", "has an empty entry (the command to run)")
    first = argv[0]
    if first in ("python", "python3"):
        argv[0] = sys.executable
        return argv
    if "/" in first:
        program = first if os.path.isabs(first) else str((plugin_dir / first).absolute())
        argv[0] = _checked_program(plugin_id, program, entry)
        return argv
    found = shutil.which(first, path=path)
    if found is None:
        raise LoadError(
            plugin_id,
            "spawn",
            f"command {first!r} (from entry {entry!r}) was not found on PATH; install it, "
            f'or name a program in the plugin folder as "./{first}"',
        )
    argv[0] = found
    return argv


def _checked_program(plugin_id: str, program: str, origin: str) -> str:
    if not os.path.exists(program):
        raise LoadError(
            plugin_id,
            "spawn",
            f"program {program} (from {origin!r}) does not exist; check the plugin's entry "
            "or platforms, or reinstall the plugin",
        )
    if os.path.isdir(program):
        raise LoadError(
            plugin_id, "spawn", f"program {program} (from {origin!r}) is a folder, not a program"
        )
    if not os.access(program, os.X_OK):
        raise LoadError(
            plugin_id,
            "spawn",
            f"program {program} is not executable; make it executable: chmod +x {program}",
        )
    return program


def command_for(
    plugin_id: str,
    version: str,
    plugin_dir: Path,
    home: Path,
    *,
    runtime: str,
    entry: str | None,
    platforms: Mapping[str, str],
    platform: str,
    path: str | None,
) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment of an out-of-process plugin.

    ``runtime = "python"`` (isolated) runs in the plugin's own virtual environment, which
    the store made at install; ``exec`` plugins run their entry or platform program.
    """
    if runtime == "python":
        try:
            from ..store.venvs import isolated_command
        except ImportError as exc:
            raise LoadError(
                plugin_id,
                "spawn",
                "isolated Python plugins need plugbay.store.venvs, which cannot be "
                f"imported: {exc}",
            ) from None
        argv, extra = isolated_command(home, plugin_id, version, plugin_dir)
        return list(argv), dict(extra)
    argv = resolve_command(
        plugin_id, plugin_dir, entry=entry, platforms=platforms, platform=platform, path=path
    )
    return argv, {}


# ---------------------------------------------------------------- threads of the runtime


class _Scheduler:
    """One long-lived thread that spawns every child and runs timed callbacks."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def at(self, when: float, fn: Callable[[], None]) -> list[Any]:
        """Run ``fn`` on the scheduler thread at ``when`` (``time.monotonic()``)."""
        entry: list[Any] = [when, next(self._seq), fn]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def cancel(self, entry: list[Any]) -> None:
        """Forget a callback that has not run yet."""
        with self._cond:
            if entry[2] is None:
                return
            entry[2] = None
            self._cancelled += 1
            # Cancelled entries stay in the heap until due; sweep them when they dominate,
            # so that thousands of quick calls do not leave thousands of dead deadlines.
            if self._cancelled > 256 and self._cancelled * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the scheduler thread now and return its result (or raise).

        RuntimeError once the scheduler is closed (its host has stopped).
        """
        if threading.current_thread() is self._thread:
            return fn()
        future: Future[Any] = Future()

        def job() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(exc)

        with self._cond:
            if self._closed:
                raise RuntimeError("the exec runtime is closed")
        self.at(0.0, job)
        return future.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        entry = heapq.heappop(self._heap)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                fn = entry[2]
                if fn is None:
                    self._cancelled -= 1
                    continue
                entry[2] = None
            try:
                fn()
            except Exception:  # noqa: BLE001 - the scheduler must outlive any one callback
                _log.exception("exec runtime: a scheduled callback failed")


class _Dispatcher:
    """Runs host callbacks one by one on a thread of their own."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put(fn)

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)

    def _run(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            try:
                fn()
            except Exception:  # noqa: BLE001 - a faulty listener must not stop later ones
                _log.exception("exec runtime: a host callback failed")


class _LogFile:
    """A plugin's stderr log: appended to, rotated at :data:`LOG_LIMIT` keeping one ``.1``."""

    def __init__(self, path: Path, limit: int = LOG_LIMIT) -> None:
        self.path = path
        self._limit = limit
        self._lock = threading.Lock()
        self._file: Any = None
        self._size = 0
        self._closed = False
        self._failed = False

    def write(self, data: bytes) -> None:
        with self._lock:
            self._write(data)
            if self._closed and self._file is not None:
                # A late line (a child ending after its plugin stopped): no file left open.
                self._file.close()
                self._file = None

    def _write(self, data: bytes) -> None:
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
                self._size = os.fstat(self._file.fileno()).st_size
            if self._size and self._size + len(data) > self._limit:
                self._file.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
                self._size = 0
            self._file.write(data)
            self._size += len(data)
        except OSError as exc:  # a full disk must not stop the plugin; said once
            if self._file is not None:
                self._file.close()
            self._file = None
            if not self._failed:
                self._failed = True
                _log.warning("cannot write the plugin log %s: %s", self.path, exc)

    def note(self, text: str) -> None:
        """A line of plugbay's own in the log: starts, exits, kills."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.write(f"[plugbay {stamp}] {text}\n".encode())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None


# ---------------------------------------------------------------- the child process


def _quote(data: bytes | bytearray) -> str:
    text = bytes(data[: QUOTE_CHARS * 4]).decode("utf-8", "replace")
    if len(text) > QUOTE_CHARS:
        return repr(text[:QUOTE_CHARS]) + "…"
    return repr(text)


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} objects cannot be sent as JSON")


def _encode(message: Mapping[str, Any]) -> bytes:
    return msgspec.json.encode(message, enc_hook=_enc_hook) + b"\n"


class _Pending(msgspec.Struct, eq=False):
    future: Future[Any]
    target: str
    timeout: float | None
    cancelled: bool = False
    deadline: list[Any] | None = None

    def __repr__(self) -> str:
        # ``deadline`` (a scheduler entry) is left out.
        return (
            f"_Pending(future={self.future!r}, target={self.target!r}, "
            f"timeout={self.timeout!r}, cancelled={self.cancelled!r})"
        )


class _Violation(Exception):
    """The child wrote something the protocol does not allow (internal)."""


class _Child:
    """One process of a plugin: its pipes, pending requests and serving threads."""

    def __init__(self, sup: Supervisor, proc: subprocess.Popen[bytes], cookie: str) -> None:
        self.sup = sup
        self.proc = proc
        self.pid = proc.pid
        self.cookie = cookie
        self.ready: Future[dict[str, Any]] = Future()
        self.done = threading.Event()
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.expected = False  # stopped by the host: its end is no crash
        self._death: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self._partial = b""
        # Writes: straight from the calling thread while the pipe takes them (no thread
        # switch on a call's path); what a full pipe refuses waits in the backlog, which
        # the stdin thread drains in order. Its lock also orders the direct writes.
        self._wcond = threading.Condition(threading.Lock())
        self._backlog: deque[bytes] = deque()
        self._wclosing = False
        self._wbroken = False
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"plugbay {sup.plugin_id} stderr", daemon=True
        )

    def start(self) -> None:
        """Start serving its pipes (once the supervisor knows it as its current child)."""
        threads = (
            threading.Thread(
                target=self._read, name=f"plugbay {self.sup.plugin_id} stdout", daemon=True
            ),
            threading.Thread(
                target=self._write, name=f"plugbay {self.sup.plugin_id} stdin", daemon=True
            ),
            self._stderr_thread,
        )
        for thread in threads:
            thread.start()

    # ---- state

    @property
    def ending(self) -> bool:
        """Killed, dying or gone: no new requests should be sent to it."""
        return self._death is not None or self._closed

    def _set_death(self, cause: str, reason: str) -> None:
        with self._lock:
            if self._death is None:
                self._death = (cause, reason)

    def kill(self, cause: str, reason: str) -> None:
        """Kill the child's whole process group; ``cause`` and ``reason`` say why."""
        self._set_death(cause, reason)
        self.signal_group(signal.SIGKILL)

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
            os.killpg(self.pid, sig)

    def wait_exit(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def stderr_tail(self) -> str | None:
        lines = list(self.tail)
        return "\n".join(lines) if lines else None

    # ---- requests

    def request(
        self, method: str, params: Mapping[str, Any], target: str, timeout: float | None
    ) -> Future[Any]:
        """Send a request; the future gets its result or a PluginCallError.

        With a ``timeout``, the deadline machinery runs: ``$/cancel`` when it passes, a
        kill after the cancel grace. Without one, the caller waits as it likes.
        """
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(self._error(target))
                return future
            rid = next(self._ids)
            pending = _Pending(future, target, timeout)
            self._pending[rid] = pending
        try:
            line = _encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            with self._lock:
                self._pending.pop(rid, None)
            future.set_exception(
                PluginCallError(
                    self.sup.plugin_id, target, "error", f"cannot send the call as JSON: {exc}"
                )
            )
            return future
        if timeout is not None:
            when = time.monotonic() + timeout
            pending.deadline = self.sup.runtime.scheduler.at(when, lambda: self._deadline(rid))
        # The callback holds no reference to ``pending`` (which holds the future): no
        # reference cycle per call, so calls leave no garbage for the cycle collector.
        deadline = pending.deadline
        future.add_done_callback(lambda done: self._settled(rid, deadline, done))
        self._send(line)
        return future

    def notify(self, method: str, params: Mapping[str, Any]) -> None:
        if not self._closed:
            self._send(_encode({"jsonrpc": "2.0", "method": method, "params": params}))

    def close_stdin(self) -> None:
        """Close the child's stdin once everything sent before is written."""
        with self._wcond:
            self._wclosing = True
            self._wcond.notify()

    def _send(self, data: bytes) -> None:
        with self._wcond:
            if self._wclosing or self._wbroken:
                return  # it is going: the reader reports how it ended
            if not self._backlog:
                stdin = self.proc.stdin
                assert stdin is not None
                try:
                    written = os.write(stdin.fileno(), data)
                except BlockingIOError:
                    written = 0
                except (OSError, ValueError):
                    self._wbroken = True  # it closed its stdin; the reader sees it end
                    return
                if written == len(data):
                    return
                data = data[written:]
            self._backlog.append(data)
            self._wcond.notify()

    def _settled(self, rid: int, deadline: list[Any] | None, future: Future[Any]) -> None:
        if deadline is not None:
            self.sup.runtime.scheduler.cancel(deadline)
        if future.cancelled():  # an awaiting task was cancelled: tell the child
            with self._lock:
                self._pending.pop(rid, None)
            self.notify("$/cancel", {"id": rid})

    def _deadline(self, rid: int) -> None:
        with self._lock:
            pending = self._pending.get(rid)
            if pending is None or pending.future.done():
                return
            pending.cancelled = True
        self.notify("$/cancel", {"id": rid})
        grace = self.sup.settings.cancel_grace
        self.sup.runtime.scheduler.at(time.monotonic() + grace, lambda: self._grace_over(rid))

    def _grace_over(self, rid: int) -> None:
        with self._lock:
            pending = self._pending.get(rid)
        if pending is None or pending.future.done():
            return
        assert pending.timeout is not None
        reason = f"hung past its {pending.timeout:g} s deadline and ignored $/cancel"
        if self.proc.poll() is not None:  # it had ended, but a grandchild held its stdout
            reason = describe_exit(self.proc.returncode)
        elif self._partial:
            reason += f" (it had written a partial line: {_quote(self._partial)})"
        self.sup.log.note(f"pid {self.pid}: {pending.target} {reason}; killing it")
        self.kill("deadline", reason)

    def _error(self, target: str) -> PluginCallError:
        cause, reason = self._death or ("exited", "is not running")
        return PluginCallError(
            self.sup.plugin_id, target, cause, self.sup.scrub(reason), self.stderr_tail()
        )

    # ---- threads

    def _write(self) -> None:
        """Drain the backlog a full pipe left, in order; close stdin when asked."""
        stdin = self.proc.stdin
        assert stdin is not None
        fd = stdin.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        while True:
            with self._wcond:
                while not self._backlog and not self._wclosing:
                    self._wcond.wait()
                if not self._backlog or self._wbroken:
                    break
                data = self._backlog[0]
            poller.poll(_POLL_MS)
            try:
                written = os.write(fd, data)
            except BlockingIOError:
                continue
            except OSError:
                with self._wcond:
                    self._wbroken = True  # it closed its stdin; the reader sees it end
                    self._backlog.clear()
                continue
            with self._wcond:
                if written == len(data):
                    self._backlog.popleft()
                else:
                    self._backlog[0] = data[written:]
        with contextlib.suppress(OSError):  # a broken pipe on close: it is gone already
            stdin.close()

    def _drain_stderr(self) -> None:
        """Copy stderr to the log in whole lines, keeping the last ones for errors.

        Read in chunks, not lines: a plugin flooding stderr costs a few system calls per
        64 KiB, and never holds up its own writes for long.
        """
        stream = self.proc.stderr
        assert stream is not None
        fd = stream.fileno()
        log = self.sup.log
        carry = b""
        while True:
            chunk = os.read(fd, _CHUNK)
            data = carry + chunk
            if not chunk:
                carry = b""
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0 and len(data) < _CHUNK:
                    carry = data  # a line in progress: wait for its end
                    continue
                if cut:  # else one very long line: written as it comes
                    data, carry = data[:cut], data[cut:]
                else:
                    carry = b""
            if data:
                text = data.decode("utf-8", "replace")
                if self.sup.secrets:
                    text = self.sup.scrub(text)
                    data = text.encode("utf-8", "replace")
                log.write(data)
                lines = [line for line in text[-TAIL_LINES * 600 :].splitlines() if line.strip()]
                self.tail.extend(line[:500] for line in lines[-TAIL_LINES:])
            if not chunk:
                break
        stream.close()

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        decoder = msgspec.json.Decoder()
        limit = self.sup.settings.max_line
        buf = bytearray()
        try:
            while True:
                if not poller.poll(_POLL_MS):
                    # Idle: a child that ended while a grandchild keeps its stdout open,
                    # or one the host killed, gives no end of file; look at it instead.
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    if buf:
                        raise _Violation(f"wrote a partial line before it ended: {_quote(buf)}")
                    break
                start = len(buf)
                buf += chunk
                pos = 0
                while True:
                    nl = buf.find(b"\n", start)
                    if nl < 0:
                        break
                    if nl - pos > limit:
                        raise _Violation(self._too_long(buf[pos:nl], limit))
                    self._handle(decoder, bytes(buf[pos:nl]))
                    pos = start = nl + 1
                if pos:
                    del buf[:pos]
                if len(buf) > limit:
                    raise _Violation(self._too_long(buf, limit))
                self._partial = bytes(buf[:QUOTE_CHARS]) if buf else b""
        except _Violation as exc:
            self.sup.log.note(f"pid {self.pid} {exc}; killing it")
            self.kill("protocol", str(exc))
        except OSError as exc:
            self.kill("protocol", f"its stdout could not be read: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug here must still end the child
            _log.exception("%s: reading the plugin's stdout failed", self.sup.plugin_id)
            self.kill("protocol", f"its output could not be handled: {exc!r}")
        self._finish()

    def _too_long(self, line: bytes | bytearray, limit: int) -> str:
        return f"wrote a line longer than the {limit}-byte limit (max-line): {_quote(line)}"

    def _handle(self, decoder: msgspec.json.Decoder[Any], line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            message = decoder.decode(line)
        except msgspec.DecodeError:
            message = None
        valid = isinstance(message, dict) and message.get("jsonrpc") == "2.0"
        if not self.ready.done():
            if not valid or message.get("method") != "plugbay/ready" or "id" in message:
                raise _Violation(
                    "did not start with the plugbay/ready notification; its first line: "
                    f"{_quote(line)}"
                )
            params = message.get("params")
            _resolve(self.ready, params if isinstance(params, dict) else {})
            return
        if not valid:
            raise _Violation(f"wrote a non-protocol line: {_quote(line)}")
        method = message.get("method")
        if method is not None:
            if not isinstance(method, str):
                raise _Violation(f"wrote a non-protocol line: {_quote(line)}")
            if "id" in message:  # the host answers no requests from its plugins
                self._send(
                    _encode(
                        {
                            "jsonrpc": "2.0",
                            "id": message["id"],
                            "error": {
                                "code": protocol.ERR_METHOD_NOT_FOUND,
                                "message": f"the host has no method {method!r}",
                            },
                        }
                    )
                )
                return
            self.sup.notification(method, message.get("params"))
            return
        rid = message.get("id")
        if type(rid) is not int or ("result" not in message and "error" not in message):
            raise _Violation(f"wrote a non-protocol line: {_quote(line)}")
        error = message.get("error")
        if error is not None and not (
            isinstance(error, dict) and isinstance(error.get("code"), int)
        ):
            raise _Violation(f"wrote an error without a code: {_quote(line)}")
        with self._lock:
            pending = self._pending.pop(rid, None)
        if pending is None:
            return  # the answer to a request given up on (an awaiting task was cancelled)
        if error is None:
            _resolve(pending.future, message.get("result"))
        else:
            _reject(pending.future, self._answer_error(pending, error))

    def _answer_error(self, pending: _Pending, error: dict[str, Any]) -> PluginCallError:
        sup = self.sup
        code = error["code"]
        if code == protocol.ERR_CANCELLED and pending.cancelled:
            reason = f"did not finish within its {pending.timeout:g} s deadline; it was cancelled"
            return PluginCallError(sup.plugin_id, pending.target, "deadline", reason)
        message = str(error.get("message") or f"error {code}")
        data = error.get("data")
        detail = None
        if isinstance(data, dict):
            kind = data.get("type")
            if isinstance(kind, str) and kind and not message.startswith(kind):
                message = f"{kind}: {message}"
            trace = data.get("traceback")
            detail = trace if isinstance(trace, str) else None
        return PluginCallError(
            sup.plugin_id,
            pending.target,
            "error",
            sup.scrub(message),
            sup.scrub(detail) if detail else None,
        )

    def _finish(self) -> None:
        """The child is gone or going: reap it and its group, fail what waits on it."""
        proc = self.proc
        if self._death is None and not self.wait_exit(_EXIT_AFTER_EOF):
            self._set_death("protocol", "closed its stdout and kept running")
        # Its group too: grandchildren must not outlive it, whatever the way it ended.
        self.signal_group(signal.SIGKILL)
        returncode = proc.wait()
        self.signal_group(signal.SIGKILL)
        self._stderr_thread.join(timeout=1.0)
        if self._death is None:
            reason = describe_exit(returncode)
            last = self.tail[-1] if self.tail else None
            if last:
                reason += f" (stderr: {last[:QUOTE_CHARS]})"
            self._set_death("exited", reason)
        cause, reason = self._death or ("exited", describe_exit(returncode))
        self.sup.log.note(f"pid {self.pid} ended ({describe_exit(returncode)}): {reason}")
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, {}
        self.close_stdin()
        if proc.stdout is not None:
            with contextlib.suppress(OSError):  # closing a pipe of a dead process
                proc.stdout.close()
        detail = self.stderr_tail()
        for item in pending.values():
            if item.deadline is not None:
                self.sup.runtime.scheduler.cancel(item.deadline)
            _reject(
                item.future,
                PluginCallError(
                    self.sup.plugin_id, item.target, cause, self.sup.scrub(reason), detail
                ),
            )
        if not self.ready.done():
            _reject(
                self.ready,
                PluginCallError(
                    self.sup.plugin_id,
                    "plugbay/ready",
                    cause,
                    self.sup.scrub(
                        reason
                        if "plugbay/ready" in reason
                        else f"{reason}, before its plugbay/ready line"
                    ),
                    detail,
                ),
            )
        # Counted before anyone waiting on ``done`` decides whether to restart it.
        self.sup.child_ended(self, cause, reason, detail)
        self.done.set()


def _resolve(future: Future[Any], value: Any) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled by its caller meanwhile
        future.set_result(value)


def _reject(future: Future[Any], error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled by its caller meanwhile
        future.set_exception(error)


# ---------------------------------------------------------------- the supervisor


def _contributions(raw: Any) -> dict[str, dict[str, tuple[str, ...] | None]] | str:
    """Announced contributions (``kind -> [{"name", "methods"?}]``) by kind and name, or
    what is wrong with them (completing "it …")."""
    if not isinstance(raw, dict):
        return "announced contributions that are not a table of kind -> list"
    found: dict[str, dict[str, tuple[str, ...] | None]] = {}
    for kind, entries in raw.items():
        if not isinstance(entries, list):
            return f"announced contributions of kind {kind!r} that are not a list"
        for item in entries:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                return f"announced a {kind} contribution without a name: {item!r}"
            methods = item.get("methods")
            listed = tuple(str(m) for m in methods) if isinstance(methods, list) else None
            found.setdefault(str(kind), {})[name] = listed
    return found


def _pdeath_setup(parent: int, cpu_time: float | None, memory: int | None) -> Callable[[], None]:
    """What runs in the child between fork and exec: parent-death signal, limits."""
    prctl: Any = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None
    limits: list[tuple[int, tuple[int, int]]] = []
    setrlimit: Callable[[int, tuple[int, int]], None] | None = None
    if cpu_time is not None or memory is not None:
        import resource

        setrlimit = resource.setrlimit
        if cpu_time is not None:
            # SIGXCPU at the soft limit (it ends the process), SIGKILL a second later.
            seconds = max(1, math.ceil(cpu_time))
            limits.append((resource.RLIMIT_CPU, (seconds, seconds + 1)))
        if memory is not None:
            limits.append((resource.RLIMIT_AS, (memory, memory)))

    def setup() -> None:
        if prctl is not None:
            prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the host died before the signal was armed
                os.kill(os.getpid(), signal.SIGKILL)
        if setrlimit is not None:
            for which, values in limits:
                setrlimit(which, values)

    return setup


def _log_level_name(logger: logging.Logger | logging.LoggerAdapter[Any]) -> str:
    level = logger.getEffectiveLevel()
    if level <= logging.DEBUG:
        return "debug"
    if level <= logging.INFO:
        return "info"
    if level <= logging.WARNING:
        return "warning"
    return "error"


class Supervisor:
    """Runs one out-of-process plugin: spawn, handshake, calls, restarts, stop.

    Thread-safe: any number of threads may call at once. Failures raise
    PluginCallError, whose ``cause`` says what happened (see docs/out-of-process.md).
    """

    def __init__(
        self,
        runtime: ExecRuntime,
        plugin_id: str,
        *,
        plugin_dir: Path,
        argv: Sequence[str],
        env: Mapping[str, str],
        settings: ExecSettings,
        log_path: Path,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        on_failed: Callable[[PluginCallError], None] | None = None,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.plugin_id = plugin_id
        self.plugin_dir = plugin_dir
        self.argv = list(argv)
        self.env = dict(env)
        self.settings = settings
        self.log = _LogFile(log_path)
        self.logger = logger
        self.on_failed = on_failed
        self.on_event = on_event
        #: called after every ``invoke`` with its target, seconds and whether it failed
        #: (the host's metrics; set after construction)
        self.on_call: Callable[[str, float, bool], None] | None = None
        #: secret config values: scrubbed from stderr, reasons and details
        self.secrets: tuple[str, ...] = ()
        #: what the child announced in plugbay/ready: kind -> name -> methods (or None)
        self.contributions: dict[str, dict[str, tuple[str, ...] | None]] = {}
        self._lock = threading.RLock()
        self._child: _Child | None = None
        self._crashes: deque[float] = deque()
        self._failed: PluginCallError | None = None
        self._stopped = False
        self._init_params: dict[str, Any] | None = None

    # ---- public

    @property
    def pid(self) -> int | None:
        """The running child's process id, or None."""
        child = self._child
        return child.pid if child is not None and not child.ending else None

    @property
    def failed(self) -> PluginCallError | None:
        """Why the plugin is marked failed (its restart budget is spent), or None."""
        return self._failed

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def start(self) -> None:
        """Spawn the child and check its ``plugbay/ready`` line (raises PluginCallError)."""
        with self._lock:
            self._stopped = False
            self._spawn()

    def initialize(self, params: Mapping[str, Any]) -> Any:
        """Send ``initialize`` (kept, and sent again after each restart); returns its answer.

        The params hold secret config values: they are never logged.
        """
        with self._lock:
            self._init_params = dict(params)
            child = self._child
            if child is None or child.ending:
                self._live_child("initialize")  # a restart sends initialize itself
                return None
            return self._initialize(child)

    def call(
        self,
        target: str,
        method: str | None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """``invoke`` one contribution (``kind:name``) and wait for its answer.

        ``timeout`` (seconds) replaces the plugin's ``call-timeout`` for this call.
        """
        on_call = self.on_call
        if on_call is None:
            return self._wait(self.submit(target, method, args, kwargs, timeout), target, timeout)
        t0 = time.perf_counter()
        failed = True
        try:
            value = self._wait(self.submit(target, method, args, kwargs, timeout), target, timeout)
            failed = False
            return value
        finally:
            on_call(target, time.perf_counter() - t0, failed)

    def submit(
        self,
        target: str,
        method: str | None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Future[Any]:
        """Like :meth:`call`, without waiting: a future of the answer."""
        child = self._live_child(target)
        params = {
            "contribution": target,
            "method": method,
            "args": list(args),
            "kwargs": dict(kwargs or {}),
        }
        limit = self.settings.call_timeout if timeout is None else timeout
        return child.request("invoke", params, target, limit)

    async def acall(
        self,
        target: str,
        method: str | None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """:meth:`call` for asyncio: many may be awaited at once on one event loop."""
        t0 = time.perf_counter()
        failed = True
        try:
            child = self._child
            if child is None or child.ending:  # a restart blocks: not on the event loop
                await asyncio.to_thread(self._live_child, target)
            value = await asyncio.wrap_future(self.submit(target, method, args, kwargs, timeout))
            failed = False
            return value
        finally:
            on_call = self.on_call
            if on_call is not None:
                on_call(target, time.perf_counter() - t0, failed)

    def request(self, method: str, params: Mapping[str, Any], timeout: float) -> Any:
        """A protocol request other than ``invoke`` (``health``…), within ``timeout``."""
        child = self._live_child(method)
        return self._wait(child.request(method, params, method, timeout), method, timeout)

    def health(self, timeout: float) -> dict[str, str]:
        """The child's ``health`` answer as ``{"status", "message"}`` (host terms).

        A child that is not running is not started for this: it is reported as degraded
        (it restarts on its next call), or failed when its restart budget is spent.
        """
        if self._failed is not None:
            return {"status": "failed", "message": self._failed.reason}
        child = self._child
        if child is None or child.ending:
            why = child._death[1] if child is not None and child._death else "not running"
            return {"status": "degraded", "message": f"not running ({why}); restarts on use"}
        answer = self.request("health", {}, timeout)
        if not isinstance(answer, dict):
            return {"status": "degraded", "message": f"health answered {answer!r}"}
        status = answer.get("status", "ok")
        status = {"failing": "failed"}.get(status, status)
        if status not in ("ok", "degraded", "failed"):
            return {"status": "degraded", "message": f"health answered status {status!r}"}
        return {"status": status, "message": self.scrub(str(answer.get("detail") or ""))}

    def shutdown(self) -> None:
        """Stop the child: ``shutdown``, end of stdin, SIGTERM, then SIGKILL, each after
        ``shutdown-grace``; its whole process group goes. Further calls are refused."""
        with self._lock:
            self._stopped = True
            child = self._child
        if child is not None:
            self._stop_child(child)
        self.log.close()

    def kill(self) -> None:
        """Kill the child and its group now (a failed or abandoned plugin)."""
        with self._lock:
            self._stopped = True
            child = self._child
        if child is not None and not child.done.is_set():
            child.expected = True
            child.kill("stopped", "was stopped by the host")
            child.done.wait(2.0)
        self.log.close()

    # ---- notifications from the child

    def notification(self, method: str, params: Any) -> None:
        if not isinstance(params, dict):
            params = {}
        if method == "log":
            level = _LEVELS.get(str(params.get("level", "info")).lower(), logging.INFO)
            text = str(params.get("message", ""))
            fields = params.get("fields")
            if isinstance(fields, dict) and fields:
                text += " " + " ".join(f"{k}={v!r}" for k, v in fields.items())
            self.logger.log(level, "%s", self.scrub(text))
        elif method == "event" and self.on_event is not None:
            name, data, handler = str(params.get("name", "")), params.get("data"), self.on_event
            self.runtime.dispatcher.submit(lambda: handler(name, data))
        # Anything else: unknown notifications are ignored (docs/protocol.md).

    def child_ended(self, child: _Child, cause: str, reason: str, detail: str | None) -> None:
        """Called once by a child's reader when it is gone: count crashes, spend budget."""
        if child.expected or child is not self._child:
            return
        now = time.monotonic()
        window = self.settings.restart_window
        crashes = self._crashes
        crashes.append(now)
        while crashes and crashes[0] < now - window:
            crashes.popleft()
        if len(crashes) <= self.settings.max_restarts or self._failed is not None:
            self.log.note(f"it will be restarted on its next call ({len(crashes)} in {window:g} s)")
            return
        why = (
            f"crashed {len(crashes)} times within {window:g} s (max-restarts = "
            f"{self.settings.max_restarts}); last: {reason}"
        )
        error = PluginCallError(self.plugin_id, "restart", "failed", self.scrub(why), detail)
        self._failed = error
        self.log.note(f"restart budget spent: {why}")
        _log.warning("%s: %s", self.plugin_id, error.reason, extra={"plugin_id": self.plugin_id})
        handler = self.on_failed
        if handler is not None:
            self.runtime.dispatcher.submit(lambda: handler(error))

    # ---- internals

    def _wait(self, future: Future[Any], target: str, timeout: float | None) -> Any:
        # The scheduler settles the future at its deadline; the extra margin only guards
        # against a wedged scheduler.
        limit = (self.settings.call_timeout if timeout is None else timeout) + (
            self.settings.cancel_grace + 30.0
        )
        try:
            return future.result(timeout=limit)
        except FutureTimeout:
            child = self._child
            reason = f"gave no answer within {limit:g} s"
            if child is not None:
                child.kill("deadline", reason)
            raise PluginCallError(self.plugin_id, target, "deadline", reason) from None

    def _live_child(self, target: str) -> _Child:
        child = self._child
        if child is not None and not child.ending and self._failed is None:
            return child
        with self._lock:
            child = self._child
            if child is not None and child.ending:
                child.done.wait(5.0)  # let its end be counted against the budget first
            if self._failed is not None:  # before "stopped": the host unloads failed plugins
                failed = self._failed
                raise PluginCallError(
                    self.plugin_id,
                    target,
                    "failed",
                    f"is marked failed: {failed.reason}",
                    failed.detail,
                )
            if self._stopped:
                raise PluginCallError(
                    self.plugin_id,
                    target,
                    "stopped",
                    "the plugin was stopped; get its contribution from the host again",
                )
            if child is not None and not child.ending:
                return child
            if child is not None:
                _log.warning(
                    "%s: restarting its process (%d of at most %d within %g s)",
                    self.plugin_id,
                    len(self._crashes),
                    self.settings.max_restarts,
                    self.settings.restart_window,
                    extra={"plugin_id": self.plugin_id},
                )
            child = self._spawn()
            if self._init_params is not None:
                try:
                    self._initialize(child)
                except PluginCallError as exc:
                    # A child that will not initialise is as good as crashed: it counts.
                    child.kill("handshake", f"initialize failed: {exc.reason}")
                    child.done.wait(5.0)
                    raise
            return child

    def _spawn(self) -> _Child:
        """Start a child and wait for its ready line (called with the lock held).

        The child is the current one from the start, so that an end during its handshake
        is counted against the restart budget like any other crash.
        """
        settings = self.settings
        cookie = secrets.token_hex(16)
        env = dict(self.env)
        env.update(
            {
                protocol.VERSIONS_ENV: ",".join(str(v) for v in protocol.SUPPORTED_VERSIONS),
                protocol.COOKIE_ENV: cookie,
                protocol.PLUGIN_ID_ENV: self.plugin_id,
                protocol.PLUGIN_DIR_ENV: str(self.plugin_dir),
                protocol.PARENT_PID_ENV: str(os.getpid()),
                protocol.LOG_LEVEL_ENV: _log_level_name(self.logger),
            }
        )
        setup = _pdeath_setup(os.getpid(), settings.cpu_time, settings.memory)
        argv, cwd = self.argv, self.plugin_dir

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=setup,  # noqa: PLW1509 - only prctl and setrlimit, no locks
                bufsize=0,
            )

        try:
            proc = self.runtime.scheduler.run(popen)
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            what = getattr(exc, "strerror", None) or str(exc)
            raise PluginCallError(
                self.plugin_id, "spawn", "spawn", f"cannot start {shlex.join(argv)}: {what}"
            ) from None
        self.log.note(f"started pid {proc.pid}: {shlex.join(argv)}")
        self._child = child = _Child(self, proc, cookie)
        child.start()
        try:
            params = child.ready.result(timeout=settings.handshake_timeout)
        except FutureTimeout:
            reason = f"sent no plugbay/ready line within {settings.handshake_timeout:g} s"
            child.kill("handshake", reason)
            child.done.wait(5.0)
            raise PluginCallError(
                self.plugin_id, "plugbay/ready", "handshake", reason, child.stderr_tail()
            ) from None
        problem = self._check_ready(params, cookie)
        if problem is not None:
            self.log.note(f"pid {proc.pid}: {problem}; killing it")
            child.kill("handshake", problem)
            child.done.wait(5.0)
            raise PluginCallError(
                self.plugin_id, "plugbay/ready", "handshake", problem, child.stderr_tail()
            )
        return child

    def _check_ready(self, params: dict[str, Any], cookie: str) -> str | None:
        """What is wrong with a ``plugbay/ready`` notification, or None (keeps its
        contributions)."""
        speaks = ", ".join(str(v) for v in protocol.SUPPORTED_VERSIONS)
        version = params.get("protocol")
        if type(version) is not int:
            return f"named no protocol version in plugbay/ready (got {version!r})"
        if version not in protocol.SUPPORTED_VERSIONS:
            return (
                f"the plugin speaks protocol {version}; this host speaks {speaks}"
                " (update the plugin or plugbay)"
            )
        if params.get("cookie") != cookie:
            return "sent the wrong cookie in plugbay/ready (it must echo PLUGBAY_COOKIE)"
        plugin = params.get("plugin")
        said = plugin.get("id") if isinstance(plugin, dict) else None
        if said != self.plugin_id:
            return f"says it is plugin {said!r}, but the host started {self.plugin_id!r}"
        found = _contributions(params.get("contributions", {}))
        if isinstance(found, str):
            return found
        self.contributions = found
        return None

    def _initialize(self, child: _Child) -> Any:
        assert self._init_params is not None
        # Never logged: it carries the plugin's secret config values.
        future = child.request("initialize", self._init_params, "initialize", None)
        limit = self.settings.handshake_timeout
        try:
            answer = future.result(timeout=limit)
        except FutureTimeout:
            reason = f"did not answer initialize within {limit:g} s (handshake-timeout)"
            child.kill("handshake", reason)
            child.done.wait(5.0)
            raise PluginCallError(
                self.plugin_id, "initialize", "handshake", reason, child.stderr_tail()
            ) from None
        # Contributions added while initializing (docs/protocol.md), beside the ready line's.
        added = _contributions(answer.get("contributions", {}) if isinstance(answer, dict) else {})
        if isinstance(added, str):
            self.log.note(f"ignored the contributions of its initialize answer: it {added}")
        else:
            for kind, names in added.items():
                self.contributions.setdefault(kind, {}).update(names)
        return answer

    def _stop_child(self, child: _Child) -> None:
        if child.done.is_set():
            return
        grace = self.settings.shutdown_grace
        child.expected = True
        # Named before asking: a child that answers and exits at once must not be taken
        # for one that ended by itself.
        child._set_death("stopped", "was stopped by the host")
        answer = child.request("shutdown", {}, "shutdown", None)
        with contextlib.suppress(FutureTimeout, PluginCallError):  # else the hard way below
            answer.result(timeout=grace)
        child.close_stdin()
        if not child.wait_exit(grace):
            self.log.note(f"pid {child.pid} ignored shutdown for {grace:g} s; sending SIGTERM")
            child.signal_group(signal.SIGTERM)
            if not child.wait_exit(grace):
                self.log.note(f"pid {child.pid} ignored SIGTERM for {grace:g} s; killing it")
        child.kill("stopped", "was stopped by the host")
        child.done.wait(5.0)


# ---------------------------------------------------------------- the runtime


class ExecRuntime:
    """The out-of-process plugins of one host; ``close()`` stops every child.

    Children are also stopped when the interpreter exits (atexit), and on Linux they die
    with the host process however it ends (parent-death signal).
    """

    def __init__(self) -> None:
        self.scheduler = _Scheduler("plugbay exec scheduler")
        self.dispatcher = _Dispatcher("plugbay exec events")
        self._supervisors: dict[str, Supervisor] = {}
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    def add(self, supervisor: Supervisor) -> None:
        """Own ``supervisor`` (one per plugin id; an older one is killed)."""
        with self._lock:
            old = self._supervisors.get(supervisor.plugin_id)
            self._supervisors[supervisor.plugin_id] = supervisor
        if old is not None and old is not supervisor:
            old.kill()

    def get(self, plugin_id: str) -> Supervisor | None:
        return self._supervisors.get(plugin_id)

    def unload(self, plugin_id: str) -> None:
        """Kill what is left of a plugin's process (a stopped one has none) and forget it."""
        with self._lock:
            supervisor = self._supervisors.pop(plugin_id, None)
        if supervisor is not None:
            supervisor.kill()

    def close(self) -> None:
        """Stop every child (in parallel, each as :meth:`Supervisor.shutdown` does)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            supervisors = list(self._supervisors.values())
            self._supervisors.clear()
        threads = [
            threading.Thread(target=s.shutdown, name=f"plugbay stop {s.plugin_id}", daemon=True)
            for s in supervisors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.scheduler.close()
        self.dispatcher.close()
        atexit.unregister(self.close)
