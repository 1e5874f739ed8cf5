"""Helpers of the opsrun end-to-end tests: the real ``opsrun`` command in subprocesses,
a home of its own per test, and the Prism stand-in server started on 127.0.0.1.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PLUGINS = EXAMPLES / "plugins"
STANDIN = EXAMPLES / "prism" / "standin.py"
OPSRUN = Path(sys.executable).with_name("opsrun")


@dataclass
class Opsrun:
    """Runs ``opsrun`` as a user would, on a home of its own, from a folder of its own."""

    home: Path
    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str | Path, code: int | None = 0, **env: str) -> Result:
        done = subprocess.run(
            [str(OPSRUN), *map(str, args)],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        if code is not None:
            assert done.returncode == code, (
                f"opsrun {' '.join(map(str, args))} exited {done.returncode}, not {code}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return result


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def make_opsrun(tmp_path: Path) -> Opsrun:
    """``opsrun`` with an empty home in ``tmp_path``, run from an empty folder there."""
    if not OPSRUN.is_file():
        pytest.fail(
            f"the opsrun command is not installed beside {sys.executable}: `make test` "
            "installs it (pip install -e examples/opsrun)"
        )
    home = tmp_path / "opsrun-home"
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "OPSRUN_"))}
    env["OPSRUN_HOME"] = str(home)
    return Opsrun(home, work, env)


@dataclass
class Prism:
    """A running stand-in: its URL, its credentials, and a client to look at its state."""

    url: str
    username: str
    password: str

    def entities(self, kind: str) -> list[dict[str, Any]]:
        """The VMs, images or tasks the stand-in holds now."""
        plural = {"vm": "vms", "image": "images", "task": "tasks"}[kind]
        response = httpx.post(
            f"{self.url}/api/nutanix/v3/{plural}/list",
            json={"kind": kind},
            auth=(self.username, self.password),
            timeout=10,
        )
        response.raise_for_status()
        entities: list[dict[str, Any]] = response.json()["entities"]
        return entities


@contextmanager
def running_prism() -> Iterator[Prism]:
    """The Prism stand-in (examples/prism/standin.py) on a free port of 127.0.0.1."""
    password = "pw-" + secrets.token_hex(8)
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--port", "0", "--task-seconds", "0.1", "--quiet"],
        env={**os.environ, "PRISM_STANDIN_PASSWORD": password},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints it once it accepts connections
        if not line.startswith("prism stand-in listening on "):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"the Prism stand-in did not start: {line!r} {err}")
        yield Prism(line.split()[-1], "admin", password)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
