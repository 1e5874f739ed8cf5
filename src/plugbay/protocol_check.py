"""The conformance kit: start a plugin executable as a host would and check it keeps the protocol.

:func:`check` runs the cases listed in docs/protocol.md ("Conformance kit") against any
command — our SDK, the JavaScript example, a plugin in any language — and returns a
:class:`CheckReport` with one :class:`CaseResult` per case. It never hangs on a broken
plugin: every wait has its own deadline, and every process it started (with its whole
process group, grandchildren included) is killed before it returns.

The kit speaks to the child itself, with the standard library's JSON codec, instead of
going through the host's exec runtime: it must see exactly what the child writes, in
order, and judge each message rather than recover from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import msgspec

from . import protocol as P
from .protocol import describe_exit

__all__ = ["CaseResult", "CheckReport", "check"]

Status = Literal["pass", "fail", "skip"]

#: Kinds whose contributions are callables (invoked with ``method: null``).
_CALLABLE_KINDS = ("hook", "command")
_LOG_LEVELS = ("debug", "info", "warning", "error")
_HEALTH = ("ok", "degraded", "failing")
#: An id the kit never uses for a request, for the ``cancel-unknown`` case.
_UNKNOWN_ID = 2_000_000_000
_STDERR_LINES = 20
#: How long to wait for the rest of a child's output, or its exit status, once it is gone.
_DRAIN = 0.5
_QUOTE = 200


class CaseResult(msgspec.Struct, frozen=True, gc=False):
    """One case of the kit: its name, ``pass``, ``fail`` or ``skip``, and a one-line reason.

    ``skip`` means the case could not run because an earlier one failed (the child
    exited, broke the framing, or never sent a valid ready line).
    """

    name: str
    status: Status
    reason: str
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether the case passed."""
        return self.status == "pass"


class CheckReport(msgspec.Struct, frozen=True):
    """What :func:`check` found: every case in the order it ran, and facts about the child.

    ``plugin_id`` and ``plugin_version`` are what the ready line named (None without a
    valid one); ``stderr`` holds the last lines the child wrote to its stderr (of the run
    that failed first, else of the last run); ``logs`` counts its ``log`` notifications.
    """

    command: tuple[str, ...]
    cases: tuple[CaseResult, ...]
    plugin_id: str | None = None
    plugin_version: str | None = None
    stderr: tuple[str, ...] = ()
    logs: int = 0

    @property
    def passed(self) -> bool:
        """True when no case failed (cases are skipped only after a failure)."""
        return all(c.status != "fail" for c in self.cases)

    def case(self, name: str) -> CaseResult:
        """The case named ``name``; KeyError if the kit did not run it."""
        for result in self.cases:
            if result.name == name:
                return result
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        """How many cases passed, failed and were skipped."""
        out = {"pass": 0, "fail": 0, "skip": 0}
        for result in self.cases:
            out[result.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data (the shape of ``protocol-check --json``)."""
        counts = self.counts()
        return {
            "command": list(self.command),
            "passed": self.passed,
            "plugin": (
                {"id": self.plugin_id, "version": self.plugin_version}
                if self.plugin_id is not None
                else None
            ),
            "cases": [
                {
                    "name": c.name,
                    "status": c.status,
                    "reason": c.reason,
                    "seconds": round(c.seconds, 3),
                }
                for c in self.cases
            ],
            "summary": {
                "passed": counts["pass"],
                "failed": counts["fail"],
                "skipped": counts["skip"],
            },
            "logs": self.logs,
            "stderr": list(self.stderr),
        }


def check(
    argv: Sequence[str],
    *,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    plugin_id: str | None = None,
    cancel_grace: float = P.DEFAULT_CANCEL_GRACE,
    shutdown_grace: float = P.DEFAULT_SHUTDOWN_GRACE,
    max_line: int = P.DEFAULT_MAX_LINE,
) -> CheckReport:
    """Run the conformance cases against the plugin started by ``argv``.

    ``timeout`` bounds each wait for an answer (and for the ready line); ``cancel_grace``
    how long an answer may take after ``$/cancel``; ``shutdown_grace`` how long the child
    may take to exit after ``shutdown`` or the end of its stdin. ``env`` is the
    environment the protocol's variables are added to (default: what a host passes an
    ungranted plugin: ``PATH``, ``HOME``, ``LANG``, ``LC_ALL``, ``TZ``, ``TMPDIR``).
    ``cwd`` is the working folder and ``PLUGBAY_PLUGIN_DIR`` (default: the current one).
    A first word ``python`` or ``python3`` means this interpreter, as for a host.
    ``plugin_id``, when given, is set as ``PLUGBAY_PLUGIN_ID`` and must be the id the ready
    line names; otherwise the first run has no ``PLUGBAY_PLUGIN_ID`` and later runs get
    the id the ready line named.

    The child is started twice: once for every case up to ``shutdown``, and once more to
    check that it exits when its stdin ends. Problems are reported as failed cases, never
    raised: a command that cannot be started fails the ``ready`` case.
    """
    if not argv:
        raise ValueError("check() needs a command to run")
    if argv[0] in ("python", "python3"):
        # As a host runs an exec plugin's entry: its own interpreter, where plugbay.sdk is.
        argv = (sys.executable, *argv[1:])
    if env is None:
        from .security import BASE_ENV

        env = {name: os.environ[name] for name in BASE_ENV if name in os.environ}
    folder = Path(cwd if cwd is not None else os.getcwd()).absolute()
    kit = _Kit(
        tuple(argv),
        base_env=dict(env),
        cwd=folder,
        plugin_id=plugin_id,
        timeout=timeout,
        cancel_grace=cancel_grace,
        shutdown_grace=shutdown_grace,
        max_line=max_line,
    )
    return kit.run()


# ---------------------------------------------------------------------------------------
# The child process


class _Event(msgspec.Struct, frozen=True):
    """Something the child did: a message, a non-protocol line, end of stdout, or exit."""

    kind: Literal["message", "garbage", "eof", "exit"]
    message: dict[str, Any] | None = None
    text: str = ""


class _Child:
    """One run of the plugin: a process in a session of its own, watched by three threads.

    The stdout thread turns lines into events (reading at most ``max_line`` bytes of a
    line, so a huge line never becomes a huge allocation); the stderr thread keeps the
    last lines, so that a child that floods stderr never blocks on a full pipe; the exit
    thread reports the child's exit even while a grandchild keeps its stdout open.
    """

    def __init__(
        self, argv: tuple[str, ...], env: dict[str, str], cwd: Path, max_line: int
    ) -> None:
        self.max_line = max_line
        self.events: queue.Queue[_Event] = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._write_lock = threading.Lock()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, name="protocol-check-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="protocol-check-stderr", daemon=True),
            threading.Thread(target=self._watch_exit, name="protocol-check-exit", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        try:
            while True:
                raw = stream.readline(self.max_line + 1)
                if not raw:
                    self.events.put(_Event("eof"))
                    return
                if not raw.endswith(b"\n"):
                    if len(raw) > self.max_line:
                        self.events.put(
                            _Event(
                                "garbage",
                                text=f"a line longer than the {self.max_line}-byte cap "
                                f"(starts {_quote(raw)})",
                            )
                        )
                    else:
                        self.events.put(
                            _Event(
                                "garbage", text=f"a partial line at end of output: {_quote(raw)}"
                            )
                        )
                    return
                self.events.put(_decode(raw))
        except (OSError, ValueError):
            # The pipe was closed under us by the kit's own clean-up.
            self.events.put(_Event("eof"))

    def _read_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        with contextlib.suppress(OSError, ValueError):
            while True:
                raw = stream.readline(64 * 1024)
                if not raw:
                    return
                self.stderr.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _watch_exit(self) -> None:
        self.proc.wait()
        self.events.put(_Event("exit"))

    def send(self, *messages: dict[str, Any]) -> bool:
        """Write messages, one line each, in one write; False if the child's stdin is gone."""
        data = b"".join(json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in messages)
        stream = self.proc.stdin
        assert stream is not None
        with self._write_lock:
            try:
                stream.write(data)
                stream.flush()
            except (OSError, ValueError):
                return False
        return True

    def close_stdin(self) -> None:
        """End the child's stdin (end of file: *shut down now*)."""
        stream = self.proc.stdin
        assert stream is not None
        with self._write_lock, contextlib.suppress(OSError):
            stream.close()

    def next_event(self, deadline: float) -> _Event | None:
        """The next stdout event, or None when the deadline passes first."""
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def wait_exit(self, deadline: float) -> int | None:
        """The exit status once the child exits before the deadline, else None."""
        try:
            return self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self) -> tuple[str, ...]:
        """The last lines of stderr, after giving the reader a moment to catch up."""
        if self.proc.poll() is not None:
            # Once the child is gone its stderr ends soon (unless a grandchild holds it).
            self._threads[1].join(timeout=0.5)
        return tuple(self.stderr)

    def kill(self) -> None:
        """Kill the child's whole process group and reap it; close the pipes."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.close_stdin()
        streams = (self.proc.stdout, self.proc.stderr, None)
        for thread, stream in zip(self._threads, streams, strict=True):
            thread.join(timeout=1.0)
            # A reader still blocked means a process outside the group holds the pipe;
            # closing under it would block too, so leave it to the daemon thread.
            if stream is not None and not thread.is_alive():
                stream.close()


def _decode(raw: bytes) -> _Event:
    text = raw.rstrip(b"\n").rstrip(b"\r")
    try:
        value = json.loads(text)
    except ValueError:
        return _Event("garbage", text=f"a line that is not JSON: {_quote(raw)}")
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        return _Event("garbage", text=f"a line that is not a JSON-RPC 2.0 message: {_quote(raw)}")
    return _Event("message", message=value)


def _quote(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    return repr(text[:_QUOTE] + ("…" if len(text) > _QUOTE else ""))


def _compact(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------
# One conversation with a child


class _Fail(Exception):
    """The case failed; the conversation can go on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Broken(_Fail):
    """The case failed and the child can no longer be talked to (exited, broke framing)."""


class _Session:
    """Requests, answers matched by id, and the child's notifications, for one run."""

    def __init__(self, child: _Child, timeout: float) -> None:
        self.child = child
        self.timeout = timeout
        self.sent: dict[int, str] = {}
        self.answers: dict[int, dict[str, Any]] = {}
        self.order: list[int] = []
        self.problems: list[str] = []
        self.logs = 0
        self.exited_at: float | None = None
        #: Said after how the child went away, in failure reasons ("before the ready line").
        self.when = ""
        self._next_id = 1

    # -- sending

    def request(self, method: str, params: Any) -> dict[str, Any]:
        """A request message with a fresh id (not sent yet: see :meth:`send`)."""
        ident = self._next_id
        self._next_id += 1
        self.sent[ident] = method
        return {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}

    def send(self, *messages: dict[str, Any]) -> None:
        if not self.child.send(*messages):
            raise self.gone("stopped reading its stdin")

    def call(self, method: str, params: Any) -> dict[str, Any]:
        """Send one request and wait (``timeout``) for its answer."""
        message = self.request(method, params)
        self.send(message)
        return self.answer(message["id"], time.monotonic() + self.timeout)

    # -- receiving

    def answer(self, ident: int, deadline: float, what: str | None = None) -> dict[str, Any]:
        """The answer to request ``ident``; _Fail if none comes before the deadline."""
        seconds = round(deadline - time.monotonic(), 1)
        while ident not in self.answers:
            if not self.pump(deadline):
                label = what or self.sent.get(ident, "request")
                raise _Fail(f"no answer to {label} (id {ident}) within {seconds:g} s")
        return self.answers[ident]

    def next(self, deadline: float) -> _Event | None:
        """The next line the child wrote (None past the deadline); _Broken once it is gone."""
        while True:
            if self.exited_at is not None:
                # What it wrote before exiting is already in the pipe: a moment is enough.
                deadline = min(deadline, self.exited_at + _DRAIN)
            event = self.child.next_event(deadline)
            if event is None:
                if self.exited_at is not None:
                    raise self.gone("exited")
                return None
            if event.kind == "exit":
                self.exited_at = time.monotonic()
                continue
            if event.kind == "eof":
                raise self.gone("closed its stdout")
            return event

    def pump(self, deadline: float) -> bool:
        """Take one event from the child and file it; False when the deadline passed."""
        event = self.next(deadline)
        if event is None:
            return False
        if event.kind == "garbage":
            raise _Broken(f"wrote {event.text} to stdout")
        assert event.message is not None
        self.file(event.message)
        return True

    def file(self, msg: dict[str, Any]) -> None:
        """Take in one message from the child: an answer, a log, an event."""
        method = msg.get("method")
        if isinstance(method, str):
            if "id" in msg:
                # The protocol defines no host methods: answer as JSON-RPC says, and note it.
                self.child.send(
                    {
                        "jsonrpc": "2.0",
                        "id": msg["id"],
                        "error": {"code": P.ERR_METHOD_NOT_FOUND, "message": "no such method"},
                    }
                )
                self.problems.append(f"sent a request {method!r}; hosts answer no requests")
            elif method == "log":
                self._check_log(msg.get("params"))
            elif method == "event":
                params = msg.get("params")
                if not isinstance(params, dict) or not isinstance(params.get("name"), str):
                    self.problems.append(f"sent an event without a name: {_compact(msg)}")
            elif method == "plugbay/ready":
                self.problems.append("sent plugbay/ready a second time")
            return
        self._file_answer(msg)

    def _check_log(self, params: Any) -> None:
        self.logs += 1
        if (
            not isinstance(params, dict)
            or params.get("level") not in _LOG_LEVELS
            or not isinstance(params.get("message"), str)
        ):
            self.problems.append(
                "sent a log notification without a level (debug, info, warning, error) "
                f"and a message: {_compact(params)}"
            )

    def _file_answer(self, msg: dict[str, Any]) -> None:
        ident = msg.get("id")
        has_result, has_error = "result" in msg, "error" in msg
        if has_result == has_error:
            raise _Broken(f"wrote a message that is neither request nor answer: {_compact(msg)}")
        if has_error:
            error = msg["error"]
            if (
                not isinstance(error, dict)
                or not isinstance(error.get("code"), int)
                or not isinstance(error.get("message"), str)
            ):
                raise _Broken(
                    f"wrote an error answer without an integer code and a message: {_compact(msg)}"
                )
        if not isinstance(ident, int) or isinstance(ident, bool) or ident not in self.sent:
            self.problems.append(f"answered id {_compact(ident)}, which the kit never sent")
            return
        if ident in self.answers:
            self.problems.append(f"answered request {ident} ({self.sent[ident]}) twice")
            return
        self.answers[ident] = msg
        self.order.append(ident)

    def gone(self, what: str) -> _Broken:
        """The failure of a child that stopped talking: how it exited, or that it did not."""
        status = self.child.wait_exit(time.monotonic() + _DRAIN)
        how = describe_exit(status) if status is not None else f"{what} but is still running"
        return _Broken(f"the child {how}{self.when}{_stderr_hint(self.child)}")


def _stderr_hint(child: _Child) -> str:
    tail = [line for line in child.stderr_tail() if line.strip()]
    return f" (stderr: {_quote(tail[-1])})" if tail else ""


def _error_code(answer: dict[str, Any]) -> int | None:
    error = answer.get("error")
    return error["code"] if isinstance(error, dict) else None


def _describe(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    if isinstance(error, dict):
        return f"error {error.get('code')} ({_compact(error.get('message'), 80)})"
    return f"result {_compact(answer.get('result'))}"


# ---------------------------------------------------------------------------------------
# The cases


class _Target(msgspec.Struct, frozen=True, gc=False):
    """A call the kit may make with no arguments: ``contribution`` is ``kind:name``."""

    contribution: str
    method: str | None
    kind: str

    @property
    def label(self) -> str:
        return self.contribution + (f".{self.method}" if self.method else "")

    def params(self) -> dict[str, Any]:
        args: list[Any] = [[]] if self.kind == "command" else []
        return {
            "contribution": self.contribution,
            "method": self.method,
            "args": args,
            "kwargs": {},
        }


class _Ready(msgspec.Struct, frozen=True):
    """What a valid ready line said."""

    protocol: int
    plugin_id: str
    version: str
    kinds: tuple[str, ...]
    targets: tuple[_Target, ...]
    slow: _Target | None
    count: int


_FIRST_CASES = (
    "ready",
    "initialize",
    "health",
    "unknown-method",
    "unknown-contribution",
)
_LAST_CASES = ("overlap", "cancel", "cancel-unknown", "shutdown")


class _Kit:
    """Runs the cases in order and collects their results."""

    def __init__(
        self,
        argv: tuple[str, ...],
        *,
        base_env: dict[str, str],
        cwd: Path,
        plugin_id: str | None,
        timeout: float,
        cancel_grace: float,
        shutdown_grace: float,
        max_line: int,
    ) -> None:
        self.argv = argv
        self.base_env = base_env
        self.cwd = cwd
        self.plugin_id = plugin_id
        self.timeout = timeout
        self.cancel_grace = cancel_grace
        self.shutdown_grace = shutdown_grace
        self.max_line = max_line
        self.results: list[CaseResult] = []
        self.ready: _Ready | None = None
        self.stderr: tuple[str, ...] = ()
        self.logs = 0
        self._skip_reason: str | None = None
        self._stderr_kept = False

    # -- driving

    def run(self) -> CheckReport:
        """Both runs of the child, then the report."""
        self._first_run()
        if self.ready is None:
            self._skip(("eof",), "not run: no valid ready line")
        else:
            self._second_run()
        return CheckReport(
            command=self.argv,
            cases=tuple(self.results),
            plugin_id=self.ready.plugin_id if self.ready else None,
            plugin_version=self.ready.version if self.ready else None,
            stderr=self.stderr,
            logs=self.logs,
        )

    def _first_run(self) -> None:
        cookie = secrets.token_hex(16)
        try:
            child = self._spawn(cookie, self.plugin_id)
        except OSError as exc:
            self._record("ready", "fail", _spawn_failure(self.argv, self.cwd, exc), 0.0)
            self._skip(_FIRST_CASES[1:] + _LAST_CASES, "not run: the command did not start")
            return
        session = _Session(child, self.timeout)
        first_case = len(self.results)
        try:
            self._case(session, "ready", lambda: self._check_ready(session, cookie))
            if self.ready is None:
                self._skip(_FIRST_CASES[1:] + _LAST_CASES, "not run: no valid ready line")
                return
            self._case(session, "initialize", lambda: self._check_initialize(session))
            self._case(session, "health", lambda: self._check_health(session))
            self._case(session, "unknown-method", lambda: self._check_unknown_method(session))
            self._case(
                session, "unknown-contribution", lambda: self._check_unknown_contribution(session)
            )
            for target in self.ready.targets:
                self._case(
                    session, f"invoke {target.label}", partial(self._check_invoke, session, target)
                )
            self._case(session, "overlap", lambda: self._check_overlap(session))
            self._case(session, "cancel", lambda: self._check_cancel(session))
            self._case(session, "cancel-unknown", lambda: self._check_cancel_unknown(session))
            self._case(session, "shutdown", lambda: self._check_shutdown(session))
        finally:
            self._finish(session, first_case)

    def _second_run(self) -> None:
        assert self.ready is not None
        cookie = secrets.token_hex(16)
        try:
            child = self._spawn(cookie, self.plugin_id or self.ready.plugin_id)
        except OSError as exc:
            self._record("eof", "fail", _spawn_failure(self.argv, self.cwd, exc), 0.0)
            return
        session = _Session(child, self.timeout)
        first_case = len(self.results)
        self._skip_reason = None
        try:
            self._case(session, "eof", lambda: self._check_eof(session, cookie))
        finally:
            self._finish(session, first_case)

    def _spawn(self, cookie: str, plugin_id: str | None) -> _Child:
        env = dict(self.base_env)
        env.update(
            {
                P.VERSIONS_ENV: ",".join(str(v) for v in P.SUPPORTED_VERSIONS),
                P.COOKIE_ENV: cookie,
                P.PLUGIN_DIR_ENV: str(self.cwd),
                P.PARENT_PID_ENV: str(os.getpid()),
                P.LOG_LEVEL_ENV: "debug",
            }
        )
        if plugin_id is not None:
            env[P.PLUGIN_ID_ENV] = plugin_id
        return _Child(self.argv, env, self.cwd, self.max_line)

    def _finish(self, session: _Session, first_case: int) -> None:
        session.child.kill()
        self.logs += session.logs
        # Keep the stderr of the first run that failed: that is where the reason is.
        if not self._stderr_kept:
            self.stderr = session.child.stderr_tail()
            self._stderr_kept = any(r.status == "fail" for r in self.results[first_case:])

    def _case(self, session: _Session, name: str, body: Callable[[], str]) -> None:
        """Run one case; a broken conversation turns the rest of this run into skips."""
        if self._skip_reason is not None:
            self._record(name, "skip", self._skip_reason, 0.0)
            return
        started = time.monotonic()
        session.problems.clear()
        try:
            reason = body()
        except _Broken as exc:
            self._record(name, "fail", exc.reason, time.monotonic() - started)
            self._skip_reason = f"not run: the conversation ended during {name}"
            return
        except _Fail as exc:
            self._record(name, "fail", exc.reason, time.monotonic() - started)
            return
        if session.problems:
            self._record(name, "fail", session.problems[0], time.monotonic() - started)
            return
        self._record(name, "pass", reason, time.monotonic() - started)

    def _record(self, name: str, status: Status, reason: str, seconds: float) -> None:
        self.results.append(CaseResult(name, status, reason, seconds))

    def _skip(self, names: Sequence[str], reason: str) -> None:
        for name in names:
            self._record(name, "skip", reason, 0.0)

    # -- the cases; each returns its pass reason or raises _Fail

    def _check_ready(self, session: _Session, cookie: str) -> str:
        self.ready = r = self._read_ready(session, cookie)
        kinds = f" ({', '.join(r.kinds)})" if r.kinds else ""
        checked = f", {len(r.targets)} safe to call" if r.targets else ""
        return (
            f"protocol {r.protocol}, {r.plugin_id} {r.version}, "
            f"{r.count} contribution{'s' if r.count != 1 else ''}{kinds}{checked}"
        )

    def _read_ready(self, session: _Session, cookie: str) -> _Ready:
        """The first line, which must be a valid plugbay/ready notification."""
        session.when = " before the ready line"
        try:
            event = session.next(time.monotonic() + self.timeout)
        finally:
            session.when = ""
        if event is None:
            raise _Fail(f"no line on stdout within {self.timeout:g} s{_stderr_hint(session.child)}")
        if event.kind == "garbage":
            raise _Broken(f"the first line is {event.text}; it must be plugbay/ready")
        assert event.message is not None
        return self._parse_ready(event.message, cookie)

    def _parse_ready(self, msg: dict[str, Any], cookie: str) -> _Ready:
        if msg.get("method") != "plugbay/ready":
            raise _Broken(
                f"the first line must be the plugbay/ready notification, not {_compact(msg)}"
            )
        if "id" in msg:
            raise _Fail("plugbay/ready must be a notification (no id)")
        params = msg.get("params")
        if not isinstance(params, dict):
            raise _Fail("plugbay/ready has no params object")
        version = params.get("protocol")
        offered = ", ".join(str(v) for v in P.SUPPORTED_VERSIONS)
        if not isinstance(version, int) or isinstance(version, bool):
            raise _Fail(f"plugbay/ready names no protocol version (expected one of: {offered})")
        if version not in P.SUPPORTED_VERSIONS:
            raise _Fail(f"the plugin speaks protocol {version}; this host speaks {offered}")
        if params.get("cookie") != cookie:
            raise _Fail(
                f"plugbay/ready does not echo the cookie the host set in {P.COOKIE_ENV}"
                + (" (it sent none)" if "cookie" not in params else "")
            )
        plugin = params.get("plugin")
        if (
            not isinstance(plugin, dict)
            or not isinstance(plugin.get("id"), str)
            or not isinstance(plugin.get("version"), str)
        ):
            raise _Fail('plugbay/ready needs "plugin": {"id": "…", "version": "…"}')
        if self.plugin_id is not None and plugin["id"] != self.plugin_id:
            raise _Fail(f"plugbay/ready names plugin {plugin['id']!r}; expected {self.plugin_id!r}")
        targets, slow, count, kinds = _contributions(params.get("contributions", {}))
        return _Ready(version, plugin["id"], plugin["version"], kinds, targets, slow, count)

    def _check_initialize(self, session: _Session) -> str:
        assert self.ready is not None
        answer = session.call("initialize", _initialize_params(self.ready, self.cwd))
        if "error" in answer:
            raise _Fail(f"answered with {_describe(answer)}; expected a result object")
        if not isinstance(answer["result"], dict):
            raise _Fail(f"answered with {_describe(answer)}; expected a result object ({{}})")
        return "answered with a result object"

    def _check_health(self, session: _Session) -> str:
        answer = session.call("health", {})
        result = answer.get("result")
        if not isinstance(result, dict) or result.get("status") not in _HEALTH:
            raise _Fail(
                f"answered with {_describe(answer)}; expected a result "
                '{"status": "ok"|"degraded"|"failing"}'
            )
        detail = result.get("detail")
        if detail is not None and not isinstance(detail, str):
            raise _Fail(f'"detail" must be text, got {_compact(detail)}')
        return f"status {result['status']}" + (f" ({_compact(detail, 60)})" if detail else "")

    def _check_unknown_method(self, session: _Session) -> str:
        answer = session.call("plugbay-check/no-such-method", {})
        return _expect_error(answer, P.ERR_METHOD_NOT_FOUND)

    def _check_unknown_contribution(self, session: _Session) -> str:
        answer = session.call("invoke", self._unknown_target().params())
        return _expect_error(answer, P.ERR_NO_CONTRIBUTION)

    def _unknown_target(self) -> _Target:
        assert self.ready is not None
        kind = next((k for k in self.ready.kinds if k not in _CALLABLE_KINDS), "module")
        return _Target(f"{kind}:plugbay-check-no-such-contribution", "run", kind)

    def _check_invoke(self, session: _Session, target: _Target) -> str:
        answer = session.call("invoke", target.params())
        if "error" in answer:
            raise _Fail(f"answered with {_describe(answer)}; expected a result")
        result = answer["result"]
        if target.kind == "command" and not (
            result is None or (isinstance(result, int) and not isinstance(result, bool))
        ):
            raise _Fail(
                f"a command's result is its exit code (an integer or null), got {_compact(result)}"
            )
        return f"returned {_compact(result)}"

    def _check_overlap(self, session: _Session) -> str:
        assert self.ready is not None
        expected: dict[int, int | None] = {}  # id -> error code expected (None: a result)
        messages = []
        plan: list[tuple[str, Any, int | None]] = [
            ("health", {}, None),
            ("plugbay-check/no-such-method", {}, P.ERR_METHOD_NOT_FOUND),
            ("invoke", self._unknown_target().params(), P.ERR_NO_CONTRIBUTION),
            ("health", {}, None),
        ]
        plan += [("invoke", t.params(), None) for t in self.ready.targets[:4]]
        plan.append(("health", {}, None))
        for method, params, code in plan:
            message = session.request(method, params)
            expected[message["id"]] = code
            messages.append(message)
        session.send(*messages)
        deadline = time.monotonic() + self.timeout
        for ident in expected:
            session.answer(ident, deadline, what=f"{session.sent[ident]} sent in a burst")
        for ident, code in expected.items():
            answer = session.answers[ident]
            got = _error_code(answer)
            if got != code:
                want = f"error {code}" if code is not None else "a result"
                raise _Fail(
                    f"request {ident} ({session.sent[ident]}) was answered with "
                    f"{_describe(answer)}; expected {want} (are answers matched by id?)"
                )
        answered = [i for i in session.order if i in expected]
        how = "in order" if answered == sorted(answered) else "out of order"
        return f"{len(expected)} requests sent at once, each answered by id ({how})"

    def _check_cancel(self, session: _Session) -> str:
        assert self.ready is not None
        slow = self.ready.slow
        if slow is None:
            message = session.request("health", {})
            ident = message["id"]
            session.send(message, {"jsonrpc": "2.0", "method": "$/cancel", "params": {"id": ident}})
            answer = session.answer(ident, time.monotonic() + self.timeout)
            if _error_code(answer) not in (None, P.ERR_CANCELLED):
                raise _Fail(f"answered with {_describe(answer)}; expected its result or -32800")
            return (
                "no check-slow call declared: only a health request cancelled at once "
                f"(answered with {_describe(answer)})"
            )
        call = session.request("invoke", slow.params())
        probe = session.request("health", {})
        session.send(call, probe)
        deadline = time.monotonic() + self.timeout
        while probe["id"] not in session.answers and call["id"] not in session.answers:
            if not session.pump(deadline):
                raise _Fail(
                    f"health was not answered within {self.timeout:g} s while {slow.label} ran "
                    "(a plugin that declares check-slow must keep reading requests while a call"
                    " runs)"
                )
        if call["id"] in session.answers:
            raise _Fail(
                f"{slow.label} finished ({_describe(session.answers[call['id']])}) before the "
                "health request sent after it was answered, so it could not be cancelled "
                "(check-slow must name a call that runs for seconds and the plugin must keep "
                "reading requests while it runs)"
            )
        session.send({"jsonrpc": "2.0", "method": "$/cancel", "params": {"id": call["id"]}})
        sent = time.monotonic()
        try:
            answer = session.answer(call["id"], sent + self.cancel_grace)
        except _Broken:
            raise
        except _Fail:
            raise _Fail(
                f"{slow.label} (id {call['id']}) was not answered within {self.cancel_grace:g} s "
                "of $/cancel; a host would kill the plugin as hung"
            ) from None
        if _error_code(answer) not in (None, P.ERR_CANCELLED):
            raise _Fail(
                f"{slow.label} was answered with {_describe(answer)} after $/cancel; "
                "expected error -32800 (or its result)"
            )
        return (
            f"{slow.label} answered with {_describe(answer)} "
            f"{time.monotonic() - sent:.2f} s after $/cancel; health answered while it ran"
        )

    def _check_cancel_unknown(self, session: _Session) -> str:
        probe = session.request("health", {})
        session.send(
            {"jsonrpc": "2.0", "method": "$/cancel", "params": {"id": _UNKNOWN_ID}},
            probe,
        )
        answer = session.answer(probe["id"], time.monotonic() + self.timeout)
        if "error" in answer:
            raise _Fail(f"health after $/cancel of an unknown id: {_describe(answer)}")
        return "ignored; the next request was answered"

    def _check_shutdown(self, session: _Session) -> str:
        answer = session.call("shutdown", {})
        if "error" in answer:
            raise _Fail(f"answered with {_describe(answer)}; expected a result")
        answered = time.monotonic()
        # stdin stays open: the child must exit because of shutdown, not end of file.
        status = self._await_exit(session, answered + self.shutdown_grace, "shutdown")
        return f"answered, then {describe_exit(status)} {time.monotonic() - answered:.2f} s later"

    def _check_eof(self, session: _Session, cookie: str) -> str:
        try:
            ready = self._read_ready(session, cookie)
            answer = session.call("initialize", _initialize_params(ready, self.cwd))
        except _Fail as exc:
            raise type(exc)(f"on its second run: {exc.reason}") from None
        if "error" in answer:
            raise _Fail(f"on its second run initialize was answered with {_describe(answer)}")
        session.child.close_stdin()
        closed = time.monotonic()
        status = self._await_exit(session, closed + self.shutdown_grace, "the end of its stdin")
        return f"{describe_exit(status)} {time.monotonic() - closed:.2f} s after its stdin closed"

    def _await_exit(self, session: _Session, deadline: float, after: str) -> int:
        """Wait for the child to exit cleanly, reading (and judging) what it still writes."""
        child = session.child
        # Its exit may already have been seen while the last answer was awaited: the exit
        # thread and the stdout thread race to report a child that answers and leaves.
        while session.exited_at is None:
            event = child.next_event(deadline)
            if event is None:
                raise _Fail(
                    f"still running {self.shutdown_grace:g} s after {after}; it must exit on "
                    "its own (a host would kill it)"
                )
            if event.kind == "exit":
                session.exited_at = time.monotonic()
            elif event.kind == "garbage":
                raise _Broken(f"wrote {event.text} to stdout after {after}")
            elif event.kind == "message":
                assert event.message is not None
                session.file(event.message)
        status: int | None = child.proc.returncode
        assert status is not None  # the exit event comes after the wait that sets it
        if status != 0:
            raise _Fail(f"{describe_exit(status)} after {after}; expected 0{_stderr_hint(child)}")
        return status


def _initialize_params(ready: _Ready, cwd: Path) -> dict[str, Any]:
    from . import __version__

    return {
        "host": {
            "app": "plugbay-protocol-check",
            "api_version": "1.0.0",
            "plugbay_version": __version__,
        },
        "plugin": {"id": ready.plugin_id, "version": ready.version, "dir": str(cwd)},
        "config": {},
        "grants": {
            "env": [],
            "network": [],
            "filesystem": {"read": [], "write": []},
            "subprocess": False,
        },
    }


def _expect_error(answer: dict[str, Any], code: int) -> str:
    if _error_code(answer) != code:
        raise _Fail(f"answered with {_describe(answer)}; expected error {code}")
    return f"error {code}"


def _contributions(
    raw: Any,
) -> tuple[tuple[_Target, ...], _Target | None, int, tuple[str, ...]]:
    """The calls the ready line marks as safe (``check``) and slow (``check-slow``)."""
    if not isinstance(raw, dict):
        raise _Fail('"contributions" must map kinds to lists of {"name": …} objects')
    targets: list[_Target] = []
    slow: _Target | None = None
    count = 0
    for kind, entries in raw.items():
        if not isinstance(entries, list):
            raise _Fail(f'contributions "{kind}" must be a list of {{"name": …}} objects')
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise _Fail(
                    f'contributions "{kind}" has an entry without a name: {_compact(entry)}'
                )
            count += 1
            targets += _targets(kind, entry)
            found = _slow_target(kind, entry)
            if found is not None and slow is None:
                slow = found
    return tuple(targets), slow, count, tuple(raw)


def _methods(kind: str, entry: dict[str, Any]) -> list[str]:
    methods = entry.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise _Fail(f'"methods" of {kind}:{entry["name"]} must be a list of names')
    return methods


def _targets(kind: str, entry: dict[str, Any]) -> list[_Target]:
    contribution = f"{kind}:{entry['name']}"
    flag = entry.get("check", False)
    methods = _methods(kind, entry)
    if flag is False:
        return []
    if kind in _CALLABLE_KINDS:
        if flag is not True:
            raise _Fail(f'"check" of {contribution} (a callable) must be true or false')
        return [_Target(contribution, None, kind)]
    if flag is True:
        return [_Target(contribution, m, kind) for m in methods]
    if isinstance(flag, list) and all(isinstance(m, str) for m in flag):
        unknown = [m for m in flag if methods and m not in methods]
        if unknown:
            raise _Fail(f'"check" of {contribution} names methods it does not list: {unknown}')
        return [_Target(contribution, m, kind) for m in flag]
    raise _Fail(f'"check" of {contribution} must be true, false or a list of method names')


def _slow_target(kind: str, entry: dict[str, Any]) -> _Target | None:
    contribution = f"{kind}:{entry['name']}"
    slow = entry.get("check-slow")
    if slow is None or slow is False:
        return None
    if kind in _CALLABLE_KINDS:
        if slow is not True:
            raise _Fail(f'"check-slow" of {contribution} (a callable) must be true or false')
        return _Target(contribution, None, kind)
    if not isinstance(slow, str):
        raise _Fail(f'"check-slow" of {contribution} must name one of its methods')
    return _Target(contribution, slow, kind)


def _spawn_failure(argv: tuple[str, ...], cwd: Path, exc: OSError) -> str:
    what = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) == str(cwd):
        return f"cannot start {argv[0]!r}: the working folder {str(cwd)!r}: {what}"
    if isinstance(exc, PermissionError):
        return f"cannot start {argv[0]!r}: {what} (is it executable?)"
    return f"cannot start {argv[0]!r}: {what}"
