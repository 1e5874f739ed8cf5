"""Speaking the plugbay protocol by hand to SDK plugin processes: JSON lines over pipes.

The tests play the host with nothing but ``json`` and ``subprocess``, so what they check
is the wire, not our own host's reading of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

COOKIE = "cookie-7f3a"
#: How long any single wait may take before the test fails (never a pass condition).
WAIT = 10.0


def plugin_folder(root: Path, code: str, *, name: str = "plugin.py", manifest: str = "") -> Path:
    """A folder holding ``code`` as ``name`` and, if given, ``plugin.toml``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(textwrap.dedent(code))
    if manifest:
        (root / "plugin.toml").write_text(textwrap.dedent(manifest))
    return root


def host_env(
    folder: Path,
    *,
    plugin_id: str | None = "test.sdk",
    versions: str | None = "1",
    cookie: str | None = COOKIE,
    level: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a host gives its child (docs/protocol.md, *Environment*)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env["PLUGBAY_PLUGIN_DIR"] = str(folder)
    env["PLUGBAY_PARENT_PID"] = str(os.getpid())
    for key, value in (
        ("PLUGBAY_PLUGIN_ID", plugin_id),
        ("PLUGBAY_PROTOCOL_VERSIONS", versions),
        ("PLUGBAY_COOKIE", cookie),
        ("PLUGBAY_LOG_LEVEL", level),
    ):
        if value is not None:
            env[key] = value
    env.update(extra or {})
    return env


class Child:
    """One plugin process, its stdout read line by line on a thread of its own."""

    def __init__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdin: Any = None
    ) -> None:
        self.plugin_dir = env.get("PLUGBAY_PLUGIN_DIR", str(cwd))
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the whole group is killed at the end of the test
        )
        self.raw: list[bytes] = []  # every stdout line, as written
        self.notifications: list[dict[str, Any]] = []
        self._answers: dict[Any, dict[str, Any]] = {}
        self._answered: set[Any] = set()
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: list[bytes] = []
        self._next_id = 0
        self._readers = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """What the child wrote on stderr so far."""
        return b"".join(self._stderr).decode(errors="replace")

    # -- reading ---------------------------------------------------------------------

    def message(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next stdout line, which must be a JSON object; fails on EOF or timeout."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no line on stdout within {timeout} s; stderr:\n{self.stderr}"
            ) from None
        if line is None:
            self._lines.put(None)
            raise AssertionError(f"stdout closed; stderr:\n{self.stderr}")
        assert line.endswith(b"\n"), f"a partial line: {line!r}"
        message = json.loads(line)
        assert isinstance(message, dict), line
        assert message.get("jsonrpc") == "2.0", line
        return message

    def ready(self) -> dict[str, Any]:
        """The params of the first line, which must be ``plugbay/ready``."""
        first = self.message()
        assert first.get("method") == "plugbay/ready", first
        assert "id" not in first, first
        params = first["params"]
        assert isinstance(params, dict)
        return params

    def answer(self, request_id: Any, timeout: float = WAIT) -> dict[str, Any]:
        """The answer to ``request_id``; other messages read meanwhile are kept."""
        deadline = time.monotonic() + timeout
        while request_id not in self._answers:
            self._take(self.message(max(0.0, deadline - time.monotonic())))
        return self._answers.pop(request_id)

    def notification(
        self, method: str, where: Callable[[dict[str, Any]], bool] = lambda p: True
    ) -> dict[str, Any]:
        """The params of the first notification ``method`` matching ``where`` (waits)."""
        deadline = time.monotonic() + WAIT
        while True:
            for n in self.notifications:
                if n["method"] == method and where(n.get("params") or {}):
                    params: dict[str, Any] = n.get("params") or {}
                    return params
            self._take(self.message(max(0.0, deadline - time.monotonic())))

    def _take(self, message: dict[str, Any]) -> None:
        if "method" in message:
            assert "id" not in message, f"the child sent a request: {message}"
            self.notifications.append(message)
        else:
            assert message["id"] not in self._answered, f"a second answer: {message}"
            if message["id"] is not None:
                self._answered.add(message["id"])
            self._answers[message["id"]] = message

    # -- writing ---------------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        """Write one message as one line."""
        self.write(json.dumps(message).encode() + b"\n")

    def write(self, data: bytes) -> None:
        """Write raw bytes to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def request(self, method: str, params: Mapping[str, Any] | None = None) -> int:
        """Send a request without waiting; its id."""
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = dict(params)
        self.send(message)
        return self._next_id

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and wait for its answer (the whole answer message)."""
        return self.answer(self.request(method, params))

    def initialize(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send ``initialize`` as a host would; the answer's result (fails on an error)."""
        answer = self.call(
            "initialize",
            {
                "host": {"app": "testapp", "api_version": "1.0.0", "plugbay_version": "0.1.0"},
                "plugin": {"id": "test.sdk", "version": "1.0.0", "dir": self.plugin_dir},
                "config": dict(config or {}),
                "grants": {"env": [], "network": [], "filesystem": {"read": [], "write": []}},
            },
        )
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    def invoke_params(
        self,
        contribution: str,
        method: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The params of an ``invoke``."""
        return {
            "contribution": contribution,
            "method": method,
            "args": list(args),
            "kwargs": kwargs,
        }

    def invoke(
        self, contribution: str, method: str | None = None, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """Invoke and wait: the whole answer message."""
        return self.call("invoke", self.invoke_params(contribution, method, *args, **kwargs))

    def cancel(self, request_id: int) -> None:
        """Send ``$/cancel`` for ``request_id``."""
        self.send({"jsonrpc": "2.0", "method": "$/cancel", "params": {"id": request_id}})

    def close_stdin(self) -> None:
        """End of file on the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    # -- the end ---------------------------------------------------------------------

    def wait_exit(self, timeout: float = WAIT) -> int:
        """The exit code, once the child exits (fails if it does not within ``timeout``)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running after {timeout} s; stderr:\n{self.stderr}"
            ) from None

    def kill(self) -> None:
        """Kill the child's process group and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        # The readers end at end of file, now that the group is gone; a pipe closed under
        # a reader that is still in read() would fail in its thread instead.
        for reader in self._readers:
            reader.join(WAIT)
        streams = [self.proc.stdin]
        if not any(reader.is_alive() for reader in self._readers):
            streams += [self.proc.stdout, self.proc.stderr]
        for stream in streams:
            if stream is not None:
                with contextlib.suppress(OSError):  # a broken pipe: the child is gone anyway
                    stream.close()


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)  # a poll interval, not synchronisation: the deadline decides


PYTHON = sys.executable


class Spawner:
    """Starts children for one test and kills every one of them at its end."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdin: Any = None,
    ) -> Child:
        child = Child(argv, cwd=cwd, env=env, stdin=stdin)
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in self.children:
            child.kill()
