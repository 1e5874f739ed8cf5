"""``plugbay watch``: the real command in a real process, reloading on real saves."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import write_plugin

TOOL = {"tool": [{"name": "greet", "entry": "greet_mod:greet"}]}


class Watching:
    """``plugbay watch`` running in the background, its stdout read line by line."""

    def __init__(self, home: Path, *args: str) -> None:
        cwd = home.parent / "cwd"
        cwd.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plugbay", "--home", str(home), "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        self.reader = threading.Thread(target=lambda: [self.lines.put(x) for x in stdout])
        self.reader.start()

    def expect(self, text: str, within: float = 15.0) -> str:
        """The next stdout line containing ``text`` (earlier lines are skipped)."""
        deadline = time.monotonic() + within
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {text!r} within {within} s; saw {seen}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if text in line:
                return line
            seen.append(line)

    def finish(self) -> tuple[int, str]:
        """Wait for the command to exit (killing it after 15 s); its code and stderr."""
        try:
            code = self.process.wait(15)
        finally:
            self.close()
        return code, self.stderr

    def close(self) -> None:
        """Kill the command (if it still runs) and close its pipes; runs once."""
        if self.process.stderr is None or self.process.stderr.closed:
            return
        self.process.kill()
        self.process.wait()
        self.reader.join(10)  # it ends at the end of the output, before its pipe is closed
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        self.process.stderr.close()
        self.process.stdout.close()


def test_watch_reports_reloads_and_errors_then_exits(
    home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = write_plugin(
        tmp_path / "src",
        "acme.greet",
        contributes=TOOL,
        code={"greet_mod.py": "def greet():\n    return 1\n"},
    )
    run = Watching(home, str(folder), "--count", "2")
    request.addfinalizer(run.close)
    assert run.expect("loaded acme.greet in").endswith(" ms\n")
    run.expect("watching")
    (folder / "greet_mod.py").write_text("def greet(:\n")
    line = run.expect("acme.greet")
    assert "SyntaxError" in line
    assert "previous version keeps serving" in line
    (folder / "greet_mod.py").write_text("def greet():\n    return 2\n")
    assert run.expect("reloaded acme.greet in").endswith(" ms\n")
    code, stderr = run.finish()
    assert code == 0, stderr


def test_watch_json_is_one_object_per_line(
    home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "src"
    folder = write_plugin(
        root, "acme.greet", contributes=TOOL, code={"greet_mod.py": "def greet():\n    return 1\n"}
    )
    run = Watching(home, str(root), "--count", "1", "--json")
    request.addfinalizer(run.close)
    loaded = json.loads(run.expect('"loaded"'))
    assert loaded["plugin"] == "acme.greet"
    run.expect('"watching"')
    (folder / "greet_mod.py").write_text("def greet():\n    return 2\n")
    reloaded = json.loads(run.expect('"reloaded"'))
    assert reloaded["plugins"] == ["acme.greet"]
    assert reloaded["ms"] > 0
    code, stderr = run.finish()
    assert code == 0, stderr
