"""Helpers of the exec runtime tests: plugins running tests/data/exec/child.py, config,
and waiting on processes."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

from conftest import write_plugin

CHILD = Path(__file__).resolve().parent.parent / "data" / "exec" / "child.py"

# Short limits, so that faults show quickly; a test overrides what it exercises.
FAST = {
    "handshake-timeout": 5.0,
    "call-timeout": 5.0,
    "cancel-grace": 0.3,
    "shutdown-grace": 0.3,
}


def exec_plugin(
    root: Path,
    plugin_id: str,
    *flags: str,
    activation: str | None = None,
    permissions: str = "",
    contributes: Mapping[str, list[Mapping[str, Any]]] | None = None,
    entry: str | None = None,
) -> Path:
    """An exec plugin whose process is child.py with ``flags``; returns its folder.

    It declares the module, hook and command the child announces (named after the
    plugin: module ``<name>``, command ``<name>-count``).
    """
    name = plugin_id.rpartition(".")[2]
    if contributes is None:
        contributes = {
            "module": [{"name": name, "summary": "the test child"}],
            "hook": [{"name": "on_task"}],
            "command": [{"name": f"{name}-count"}],
        }
    extra = 'runtime = "exec"\n'
    if permissions:
        extra += f"[permissions]\n{permissions}\n"
    return write_plugin(
        root,
        plugin_id,
        entry=entry if entry is not None else shlex.join(["python", str(CHILD), *flags]),
        activation=activation,
        contributes=contributes,
        extra=extra,
    )


def python_plugin(root: Path, plugin_id: str = "ok.fine", tool: str = "fine") -> Path:
    """An in-process neighbour, to show that the host goes on after a fault."""
    return write_plugin(
        root,
        plugin_id,
        contributes={"tool": [{"name": tool, "entry": "tools:thing"}]},
        code={"tools.py": f"thing = {tool!r}\n"},
    )


def write_config(
    home: Path,
    runtime: Mapping[str, Mapping[str, Any]] | None = None,
    grants: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    fast: Iterable[str] = (),
) -> None:
    """``config.toml`` with ``[runtime]`` (``fast`` ids get :data:`FAST`) and ``[grants]``."""
    tables: dict[str, dict[str, dict[str, Any]]] = {"runtime": {}, "grants": {}}
    for plugin_id in fast:
        tables["runtime"][plugin_id] = dict(FAST)
    for plugin_id, values in (runtime or {}).items():
        tables["runtime"].setdefault(plugin_id, dict(FAST)).update(values)
    for plugin_id, values in (grants or {}).items():
        tables["grants"][plugin_id] = dict(values)
    (home / "config.toml").write_text(tomli_w.dumps({k: v for k, v in tables.items() if v}))


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaped counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within:g} s")
        time.sleep(0.01)


def pids_of(folder: Path) -> list[int]:
    """The pids child.py recorded in its plugin folder, oldest first."""
    try:
        return [int(line) for line in (folder / "pids").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    return not gone(pid) and _exists(pid)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
