"""WebAssembly plugins through Host: contributions called like any other, config, host
functions, instances and threads, and the sandbox made from grants. The plugins are the
WAT fixtures of tests/data/wasm, compiled by the engine when they load."""

from __future__ import annotations

import asyncio
import http.server
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wasm_support import TINY_WASM, wasm_plugin, write_config

from conftest import write_plugin
from plugbay import Host, LifecycleEvent, LoadError, PluginCallError, PluginState


def test_module_hook_command_and_health_are_called_like_any_other(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    host.hooks.declare("on_task", ("task",))
    host.start()
    assert host.state("acme.basics") is PluginState.RESOLVED  # lazy: nothing compiled yet

    greet = host.get("module", "greet")
    assert greet.run("Ada", punctuation="!") == {"args": ["Ada"], "kwargs": {"punctuation": "!"}}
    assert host.state("acme.basics") is PluginState.STARTED
    assert host.hooks.on_task(task="deploy") == []  # it returned null, which is left out
    assert host.run_command("greet-all", ["--all"]) == 3
    health = host.health()["acme.basics"]
    assert (health.status, health.message) == ("degraded", "tired")
    status = next(s for s in host.status() if s.id == "acme.basics")
    assert status.runtime == "wasm"
    assert "compile" in status.timings_ms

    host.stop()
    with pytest.raises(PluginCallError) as caught:
        greet.run("again")
    assert caught.value.cause == "stopped"


def test_hosts_without_wasm_plugins_never_import_extism(plugins_dir: Path, home: Path) -> None:
    write_plugin(
        plugins_dir,
        "acme.py",
        contributes={"tool": [{"name": "t", "entry": "tools:t"}]},
        code={"tools.py": "t = 1\n"},
    )
    script = (
        "import sys\n"
        "from plugbay import Host\n"
        f"host = Host('app', '1.0.0', home={str(home)!r}, paths=[{str(plugins_dir)!r}],"
        " entry_points=False)\n"
        "assert host.get('tool', 't') == 1\n"
        "host.stop()\n"
        "wasm = ('extism', 'plugbay.runtimes.wasm')\n"
        "print(sorted(m for m in sys.modules if m.startswith(wasm)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def _both(greet: Any) -> list[Any]:
    return list(await asyncio.gather(greet.run.acall(1), greet.run.acall(2)))


def test_acall_runs_a_call_from_asyncio(plugins_dir: Path, make_host: Any) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    results = asyncio.run(_both(host.get("module", "greet")))
    assert [r["args"] for r in results] == [[1], [2]]


def test_a_binary_module_loads_like_a_text_one(plugins_dir: Path, make_host: Any) -> None:
    folder = write_plugin(
        plugins_dir,
        "acme.tiny",
        entry="plugin.wasm",
        contributes={"tool": [{"name": "tiny"}]},
        extra='runtime = "wasm"',
    )
    (folder / "plugin.wasm").write_bytes(TINY_WASM)
    host: Host = make_host(plugins_dir)
    assert host.get("tool", "tiny")() is None  # no output at all is null


def test_arguments_that_are_not_json_fail_before_the_plugin_runs(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    counter = host.get("module", "counter")
    with pytest.raises(PluginCallError, match="cannot send the call as JSON") as caught:
        counter.next(object())
    assert caught.value.cause == "error"
    assert counter.next() == 1  # the failed call never reached the instance


def test_the_validated_config_reaches_the_plugin_both_ways(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    folder = wasm_plugin(plugins_dir)
    schema = (
        '{"type": "object", "properties": {"greeting": {"type": "string", "default": "hi"},'
        ' "token": {"type": "string", "x-secret": true}}}'
    )
    (folder / "config.schema.json").write_text(schema)
    with (folder / "plugin.toml").open("a") as f:
        f.write('[config]\nschema = "config.schema.json"\n')
    write_config(home, plugins={"acme.basics": {"token": "s3cret"}})
    host: Host = make_host(plugins_dir)
    config = host.get("module", "config")
    expected = {"greeting": "hi", "token": "s3cret"}  # defaults applied, secret revealed
    assert config.read() == expected  # host function plugbay_config
    assert config.key() == expected  # Extism config key plugbay.config


def test_log_and_emit_reach_the_host(
    plugins_dir: Path, make_host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    host.hooks.declare("on_task", ("task",))
    events: list[LifecycleEvent] = []
    host.on(events.append)
    host.start()
    with caplog.at_level(logging.INFO, logger="plugbay"):
        host.hooks.on_task(task="x")
    seen = [e for e in events if e.name == "plugin_event"]
    assert [(e.plugin_id, e.data) for e in seen] == [
        ("acme.basics", {"name": "seen", "data": {"n": 1}})
    ]
    mine = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert ("plugbay.acme.basics", "INFO", "initialised") in mine  # from plugbay_init
    assert ("plugbay.acme.basics", "INFO", "task seen") in mine  # from the hook


class _Clock:
    def now(self) -> int:
        return 42


def _clock_plugin(host: Host) -> None:
    host.add_builtin(
        {
            "schema": 1,
            "plugin": {"name": "clock", "version": "1.0.0"},
            "contributes": {"module": [{"name": "clock", "entry": "x:y"}]},
        },
        _ClockPlugin(),
    )


class _ClockPlugin:
    def register(self, api: Any) -> None:
        api.add("module", "clock", _Clock())


def test_plugbay_call_reaches_another_contribution_where_the_host_allows_it(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir, wasm_calls={"acme.basics": ["module:clock"]})
    _clock_plugin(host)
    assert host.get("module", "relay").clock() == {"result": 42}


def test_plugbay_call_is_refused_by_default(plugins_dir: Path, make_host: Any) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    _clock_plugin(host)
    answer = host.get("module", "relay").clock()
    assert answer["error"]["cause"] == "permission"
    assert "lets no WebAssembly plugin call others" in answer["error"]["message"]

    other: Host = make_host(plugins_dir, wasm_calls={"acme.basics": ["module:greet"]})
    _clock_plugin(other)
    answer = other.get("module", "relay").clock()
    assert answer["error"]["cause"] == "permission"
    assert "may not call module:clock" in answer["error"]["message"]
    assert "module:greet" in answer["error"]["message"]


def test_one_instance_serves_concurrent_calls_one_at_a_time(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    counter = host.get("module", "counter")
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(50):
            value = counter.next()
            with lock:
                results.append(value)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # One state, shared and never torn: every value from 1 to 400 exactly once.
    assert sorted(results) == list(range(1, 401))


def test_a_fresh_instance_per_call_keeps_no_state_and_runs_calls_in_parallel(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    write_config(home, runtime={"acme.basics": {"instance": "call"}})
    host: Host = make_host(plugins_dir)
    counter = host.get("module", "counter")
    assert [counter.next() for _ in range(3)] == [1, 1, 1]
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.extend(counter.next() for _ in range(20)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 80


def test_a_permission_not_granted_keeps_the_plugin_from_loading(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir, permissions='network = ["api.acme.test:443"]')
    wasm_plugin(plugins_dir, "acme.other")
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError) as caught:
        host.get("module", "acme.basics:greet")
    assert caught.value.step == "permissions"
    assert "`plugbay grant acme.basics network=api.acme.test:443`" in str(caught.value)
    assert host.state("acme.basics") is PluginState.FAILED
    assert host.get("module", "acme.other:greet").run(1)["args"] == [1]

    write_config(home, grants={"acme.basics": {"network": ["api.acme.test:443"]}})
    granted: Host = make_host(plugins_dir)
    assert granted.get("module", "acme.basics:greet").run(2)["args"] == [2]


class _Pong(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"pong"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    """A real HTTP server on 127.0.0.1; its port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pong)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_http_reaches_granted_hosts_only(
    plugins_dir: Path, home: Path, make_host: Any, server: int
) -> None:
    wasm_plugin(plugins_dir, permissions=f'network = ["127.0.0.1:{server}"]')
    write_config(home, grants={"acme.basics": {"network": [f"127.0.0.1:{server}"]}})
    host: Host = make_host(plugins_dir)
    web = host.get("module", "web")
    assert web.get(f"http://127.0.0.1:{server}/ping") == "pong"

    # The same server by another name: not granted, refused inside the sandbox.
    with pytest.raises(PluginCallError) as caught:
        web.get(f"http://localhost:{server}/ping")
    error = caught.value
    assert error.cause == "permission"
    assert f"HTTP request to http://localhost:{server}/ping refused" in error.reason
    assert f"`plugbay grant acme.basics network=localhost:{server}`" in error.reason
    assert web.get(f"http://127.0.0.1:{server}/ping") == "pong"  # the plugin goes on


def test_secret_config_values_are_scrubbed_from_errors(
    plugins_dir: Path, home: Path, make_host: Any, server: int
) -> None:
    folder = wasm_plugin(plugins_dir)
    (folder / "config.schema.json").write_text(
        '{"type": "object", "properties": {"token": {"type": "string", "writeOnly": true}}}'
    )
    with (folder / "plugin.toml").open("a") as f:
        f.write('[config]\nschema = "config.schema.json"\n')
    write_config(home, plugins={"acme.basics": {"token": "tok-s3cret"}})
    host: Host = make_host(plugins_dir)
    with pytest.raises(PluginCallError) as caught:
        host.get("module", "web").get(f"http://localhost:{server}/?key=tok-s3cret")
    error = caught.value
    assert error.cause == "permission"
    assert "tok-s3cret" not in str(error)
    assert "key=***" in error.reason


def test_no_network_without_a_grant(plugins_dir: Path, make_host: Any, server: int) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    with pytest.raises(PluginCallError, match=f"network=127.0.0.1:{server}") as caught:
        host.get("module", "web").get(f"http://127.0.0.1:{server}/")
    assert caught.value.cause == "permission"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Folders granted/ (with in.txt) and private/ (with secret.txt)."""
    (tmp_path / "granted").mkdir()
    (tmp_path / "granted" / "in.txt").write_text("inside")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.txt").write_text("secret")
    return tmp_path


def test_files_are_reachable_under_granted_paths_only(
    plugins_dir: Path, home: Path, make_host: Any, tree: Path
) -> None:
    granted = tree / "granted"
    wasm_plugin(
        plugins_dir, source="files.wat", permissions=f'filesystem = {{ read = ["{granted}"] }}'
    )
    write_config(home, grants={"acme.basics": {"filesystem": {"read": [str(granted)]}}})
    host: Host = make_host(plugins_dir)
    files = host.get("module", "files")
    assert files.read(str(granted / "in.txt")) == "inside"

    outside = tree / "private" / "secret.txt"
    with pytest.raises(PluginCallError) as caught:
        files.read(str(outside))
    error = caught.value
    assert error.cause == "permission"
    assert f"cannot open {outside}: Capabilities insufficient" in error.reason
    assert f"`plugbay grant acme.basics filesystem.read={outside}`" in error.reason

    # A link inside the granted folder does not lead out of it.
    (granted / "link.txt").symlink_to(outside)
    with pytest.raises(PluginCallError) as caught:
        files.read(str(granted / "link.txt"))
    assert caught.value.cause == "permission"
    assert "secret" not in caught.value.reason
    (granted / "relative.txt").symlink_to("in.txt")
    assert files.read(str(granted / "relative.txt")) == "inside"

    # Read-only: the sandbox refuses to create a file where only reading is granted.
    with pytest.raises(PluginCallError) as caught:
        files.write(str(granted / "new.txt"))
    assert caught.value.cause == "permission"
    assert f"filesystem.write={granted / 'new.txt'}" in caught.value.reason
    assert not (granted / "new.txt").exists()


def test_a_write_grant_lets_the_plugin_write(
    plugins_dir: Path, home: Path, make_host: Any, tree: Path
) -> None:
    granted = tree / "granted"
    wasm_plugin(
        plugins_dir, source="files.wat", permissions=f'filesystem = {{ write = ["{granted}"] }}'
    )
    write_config(home, grants={"acme.basics": {"filesystem": {"write": [str(granted)]}}})
    host: Host = make_host(plugins_dir)
    files = host.get("module", "files")
    assert files.write(str(granted / "new.txt")) is None
    assert (granted / "new.txt").read_text() == "written"
    assert files.read(str(granted / "new.txt")) == "written"  # a write grant reads too


def test_no_files_without_a_grant(plugins_dir: Path, make_host: Any, tree: Path) -> None:
    wasm_plugin(plugins_dir, source="files.wat")
    host: Host = make_host(plugins_dir)
    with pytest.raises(PluginCallError) as caught:
        host.get("module", "files").read(str(tree / "granted" / "in.txt"))
    assert caught.value.cause == "permission"
    assert "filesystem.read=" in caught.value.reason
