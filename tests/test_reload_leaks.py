"""No leaks: 100 reload cycles of an in-process, an out-of-process and a WebAssembly plugin
leave no stale modules, threads, child processes or file descriptors behind."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from conftest import write_plugin
from plugbay import Host, PluginState

DATA = Path(__file__).resolve().parent / "data"
CYCLES = 100
FAST = {"handshake-timeout": 5.0, "call-timeout": 5.0, "shutdown-grace": 0.3}


def wait_for(what: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``what`` until true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def children() -> set[int]:
    """Live (not zombie) child processes of this process."""
    me, out = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == me and fields[0] not in ("Z", "X"):
            out.add(int(entry))
    return out


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def plugin_modules(host: Host) -> list[str]:
    root = host._runtime._root
    return [n for n in list(sys.modules) if n.startswith(root + ".")]


def make_plugins(root: Path, home: Path) -> Path:
    """The three plugins; returns the Python one's folder (the one whose code changes)."""
    py = write_plugin(
        root,
        "acme.greet",
        entry="plug:Plugin",
        contributes={"tool": [{"name": "greet", "entry": "greet_mod:greet"}]},
        code={
            "plug.py": "class Plugin:\n    def stop(self):\n        pass\n",
            "greet_mod.py": "import json\ndef greet():\n    return 0\n",
            "helpers/__init__.py": "VALUE = 1\n",
        },
    )
    write_plugin(
        root,
        "acme.vm",
        entry=shlex.join(["python", str(DATA / "exec" / "child.py")]),
        contributes={"module": [{"name": "vm"}]},
        extra='runtime = "exec"\n',
    )
    wasm = write_plugin(
        root,
        "acme.basics",
        entry="plugin.wat",
        contributes={"module": [{"name": "greet"}]},
        extra='runtime = "wasm"\n',
    )
    shutil.copyfile(DATA / "wasm" / "basics.wat", wasm / "plugin.wat")
    (home / "config.toml").write_text(tomli_w.dumps({"runtime": {"acme.vm": FAST}}))
    return py


def use_all(host: Host, n: int) -> None:
    assert host.get("tool", "greet")() == n
    assert host.get("module", "vm").echo(n) == {"args": [n], "kwargs": {}}
    assert host.get("module", "greet").run(n) == {"args": [n], "kwargs": {}}


def cycle(host: Host, folder: Path, n: int) -> None:
    (folder / "greet_mod.py").write_text(
        f"import json\nfrom helpers import VALUE\ndef greet():\n    return {n}\n"
    )
    for plugin_id in ("acme.greet", "acme.vm", "acme.basics"):
        assert host.reload(plugin_id).ok
    use_all(host, n)


def test_100_reload_cycles_leak_nothing(make_host: Any, plugins_dir: Path, home: Path) -> None:
    folder = make_plugins(plugins_dir, home)
    host: Host = make_host(plugins_dir)
    use_all(host, 0)
    cycle(host, folder, 0)  # the runtimes' own threads and caches exist from here on
    threads, fds, kids = threading.active_count(), open_fds(), children()
    modules = len(plugin_modules(host))
    assert len(kids) == 1  # the exec plugin's child
    for n in range(1, CYCLES + 1):
        cycle(host, folder, n)
    assert len(plugin_modules(host)) == modules
    namespaces = {name.split(".")[1] for name in plugin_modules(host)}
    assert len(namespaces) == 1  # no copy set aside by a reload is left
    # Threads and processes of the old versions end asynchronously: poll, with a deadline.
    wait_for(lambda: threading.active_count() <= threads)
    wait_for(lambda: len(children()) == 1)
    assert children() != kids  # the child was restarted, and the old ones are gone
    wait_for(lambda: open_fds() <= fds)
    assert all(host.state(p) is PluginState.STARTED for p in ("acme.greet", "acme.vm"))
    host.stop()
    wait_for(lambda: children() == set())
