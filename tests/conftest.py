"""Shared fixtures: real plugin folders on disk, written by small typed helpers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from plugbay import Host
from plugbay.discovery import DiscoveryReporter

# The suite starts thousands of Python processes (the plugbay command, plugins, pip). They
# share one bytecode cache outside the source trees, so that each module is compiled once
# per run rather than once per process, and no __pycache__ lands in a plugin's folder.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault(
    "PYTHONPYCACHEPREFIX",
    os.path.join(tempfile.gettempdir(), f"plugbay-tests-pycache-{os.getuid()}"),
)


def write_plugin(
    root: Path,
    plugin_id: str,
    version: str = "1.0.0",
    *,
    layout: str = "folder",
    active: bool = True,
    requires: str | None = None,
    dependencies: Mapping[str, str] | None = None,
    contributes: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    entry: str | None = None,
    activation: str | None = None,
    code: Mapping[str, str] | None = None,
    extra: str = "",
) -> Path:
    """Write one plugin under ``root`` and return its folder.

    ``layout="folder"`` writes ``root/<id>/plugin.toml`` (hand-placed);
    ``layout="installed"`` writes ``root/<ns>/<name>/<version>/plugin.toml`` and, with
    ``active``, the ``active`` file. ``code`` maps relative file paths to their text.
    """
    namespace, _, name = plugin_id.rpartition(".")
    if layout == "installed":
        base = root / (namespace or "_") / name
        folder = base / version
    else:
        folder = root / plugin_id
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["schema = 1", "[plugin]"]
    if namespace:
        lines.append(f"namespace = {json.dumps(namespace)}")
    lines += [f"name = {json.dumps(name)}", f"version = {json.dumps(version)}"]
    if requires is not None:
        lines.append(f"requires = {json.dumps(requires)}")
    if entry is not None:
        lines.append(f"entry = {json.dumps(entry)}")
    if activation is not None:
        lines.append(f"activation = {json.dumps(activation)}")
    if extra:
        lines.append(textwrap.dedent(extra).strip())
    if dependencies:
        lines.append("[dependencies]")
        lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in dependencies.items()]
    for kind, entries in (contributes or {}).items():
        for e in entries:
            lines.append(f"[[contributes.{kind}]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in e.items()]
    (folder / "plugin.toml").write_text("\n".join(lines) + "\n")
    for rel, text in (code or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    if layout == "installed" and active:
        (folder.parent / "active").write_text(version)
    return folder


def run_plugbay(
    home: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``plugbay`` command on ``home``, in a fresh process, from an empty folder
    (with the test's environment, plus ``env``)."""
    cwd = home.parent / "cwd"
    cwd.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "plugbay", "--home", str(home), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )


#: What a clean one-line error never shows: tracebacks and object dumps.
NOISE = ("Traceback", "object at 0x", "Candidate(", "Requirement(", "RequirementInformation")


def ok(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of a command that must have succeeded (its stderr shown if not)."""
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: …`` line of a failed command (exit 1, no traceback, no dumps)."""
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert not any(noise in result.stderr for noise in NOISE)
    return lines[0].removeprefix("error: ")


def home_snapshot(home: Path) -> dict[str, str | None]:
    """Every path under ``home`` with its content hash (folders: None); not the lock file."""
    if not home.exists():
        return {}
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else None
        for p in sorted(home.rglob("*"))
        if p.name != ".lock"
    }


def modules_under(folder: Path) -> list[str]:
    """Names in ``sys.modules`` whose file lies in ``folder`` (a plugin's imported code)."""
    out = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).is_relative_to(folder):
            out.append(name)
    return out


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty host home."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    """An empty extra search path."""
    path = tmp_path / "plugins"
    path.mkdir()
    return path


@pytest.fixture
def make_host(home: Path, tmp_path: Path) -> Iterator[Any]:
    """Build hosts isolated from the machine: no system, project or entry-point plugins."""
    made: list[Host] = []

    def make(*paths: Path, **kwargs: Any) -> Host:
        kwargs.setdefault("home", home)
        kwargs.setdefault("entry_points", False)
        kwargs.setdefault("system_path", tmp_path / "no-system")
        kwargs.setdefault("project_path", tmp_path / "no-project")
        kwargs.setdefault("api_version", "1.0.0")
        host = Host("testapp", paths=list(paths), **kwargs)
        made.append(host)
        return host

    yield make
    for host in made:
        host.stop()


def build_greeter_wasm() -> Path:
    """``make wasm-example``: examples/plugins/as-greeter/greeter.wasm, built from its
    AssemblyScript sources (one build at a time, should several test processes ask)."""
    from plugbay.store.transaction import HomeLock

    repo = Path(__file__).resolve().parent.parent
    missing = [tool for tool in ("make", "node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"building examples/plugins/as-greeter needs {', '.join(missing)} on PATH "
            "(make, and Node.js 20 or newer with npm 10)"
        )
    lock = HomeLock(Path(tempfile.gettempdir()) / f"plugbay-wasm-example-{os.getuid()}.lock")
    if not lock.acquire(timeout=600):
        pytest.fail("another test run has been building the wasm example for 10 minutes")
    try:
        done = subprocess.run(
            ["make", "--no-print-directory", "wasm-example"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        lock.release()
    wasm = repo / "examples" / "plugins" / "as-greeter" / "greeter.wasm"
    if done.returncode != 0 or not wasm.is_file():
        pytest.fail(f"`make wasm-example` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    assert wasm.read_bytes()[:4] == b"\0asm"
    return wasm


class Recorder(DiscoveryReporter):
    """Counts what discovery read from disk (as opposed to taking it from the cache)."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.parsed: list[str] = []

    def folder_found(self, path: str) -> None:
        self.found.append(path)

    def manifest_parsed(self, path: str) -> None:
        self.parsed.append(path)
