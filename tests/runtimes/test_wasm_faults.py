"""Faults of WebAssembly plugins: each is an error that says what happened, and the host
(and the plugin, where it can be) keeps working."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from wasm_support import BASICS, TINY_WASM, wasm_plugin, write_config

from conftest import write_plugin
from plugbay import Host, LoadError, PluginCallError, PluginState


def _neighbour(plugins_dir: Path) -> None:
    """A second wasm plugin, to show that the host goes on after a fault."""
    wasm_plugin(plugins_dir, "acme.neighbour")


def _still_works(host: Host) -> None:
    assert host.get("module", "acme.neighbour:greet").run("still")["args"] == ["still"]


def test_an_infinite_loop_is_stopped_at_the_timeout_and_the_plugin_works_again(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    write_config(home, runtime={"acme.basics": {"call-timeout": 0.3}})
    host: Host = make_host(plugins_dir)
    counter, faults = host.get("module", "counter"), host.get("module", "faults")
    assert [counter.next(), counter.next()] == [1, 2]
    with pytest.raises(PluginCallError) as caught:
        faults.spin()
    error = caught.value
    assert (error.plugin_id, error.target, error.cause) == (
        "acme.basics",
        "module:faults.spin",
        "deadline",
    )
    assert "did not finish within its 0.3 s deadline" in error.reason
    assert counter.next() == 1  # a fresh instance: the state was reset
    assert host.state("acme.basics") is PluginState.STARTED


def test_the_timeout_applies_to_an_instance_per_call_too(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    write_config(home, runtime={"acme.basics": {"call-timeout": 0.3, "instance": "call"}})
    host: Host = make_host(plugins_dir)
    with pytest.raises(PluginCallError) as caught:
        host.get("module", "faults").spin()
    assert caught.value.cause == "deadline"
    assert host.get("module", "counter").next() == 1


def test_a_memory_bomb_is_refused_at_the_limit(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    _neighbour(plugins_dir)
    write_config(home, runtime={"acme.basics": {"memory": 4 * 1024 * 1024}})
    host: Host = make_host(plugins_dir)
    with pytest.raises(PluginCallError) as caught:
        host.get("module", "acme.basics:faults").bomb()
    error = caught.value
    assert error.cause == "memory"
    assert "tried to grow past its limit of 4 MiB (64 pages" in error.reason
    assert host.get("module", "acme.basics:counter").next() == 1
    _still_works(host)


def test_a_trap_names_the_plugin_the_contribution_and_the_trap(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    _neighbour(plugins_dir)
    host: Host = make_host(plugins_dir)
    counter = host.get("module", "acme.basics:counter")
    assert counter.next() == 1
    with pytest.raises(PluginCallError) as caught:
        host.get("module", "acme.basics:faults").trap()
    error = caught.value
    assert error.cause == "trap"
    assert str(error).startswith(
        "acme.basics: module:faults.trap: trapped: wasm `unreachable` instruction executed"
    )
    assert error.detail is not None
    assert "wasm backtrace" in error.detail
    assert counter.next() == 1  # state reset after the trap
    _still_works(host)


def test_a_plugin_error_is_its_message_and_keeps_the_instance(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    counter = host.get("module", "counter")
    assert counter.next() == 1
    with pytest.raises(PluginCallError) as caught:
        host.get("module", "faults").fail()
    assert str(caught.value) == "acme.basics: module:faults.fail: boom: something failed"
    assert caught.value.cause == "error"
    assert counter.next() == 2  # an error the plugin reported leaves its state alone


def test_output_that_is_not_json_is_an_error(plugins_dir: Path, make_host: Any) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    with pytest.raises(PluginCallError, match="output that is not a JSON document: 'not json'"):
        host.get("module", "faults").garbage()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"this is no module",
            "plugin.wasm is not a WebAssembly module: it starts with b'this is ",
        ),
        (b"", "plugin.wasm is not a WebAssembly module: it is empty"),
        (TINY_WASM[:-6], "plugin.wasm is not a valid WebAssembly module: "),
    ],
    ids=["malformed", "empty", "truncated"],
)
def test_a_bad_module_fails_the_load_and_the_host_goes_on(
    plugins_dir: Path, make_host: Any, content: bytes, expected: str
) -> None:
    folder = write_plugin(
        plugins_dir,
        "acme.bad",
        entry="plugin.wasm",
        contributes={"tool": [{"name": "tiny"}]},
        extra='runtime = "wasm"',
    )
    (folder / "plugin.wasm").write_bytes(content)
    _neighbour(plugins_dir)
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError) as caught:
        host.get("tool", "tiny")
    assert caught.value.step == "compile"
    assert expected in caught.value.reason
    assert host.state("acme.bad") is PluginState.FAILED
    _still_works(host)

    (folder / "plugin.wasm").write_bytes(TINY_WASM)  # fixed: a restart loads it
    assert host.restart("acme.bad") is PluginState.STARTED
    assert host.get("tool", "tiny")() is None


def test_a_missing_module_file_says_so(plugins_dir: Path, make_host: Any) -> None:
    write_plugin(plugins_dir, "acme.gone", entry="plugin.wasm", extra='runtime = "wasm"')
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError, match=r"its module plugin.wasm does not exist"):
        host.load("acme.gone")


def test_an_import_plugbay_does_not_provide_fails_the_load(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir, source="unknown_import.wat", contributes={"tool": [{"name": "tool"}]})
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError) as caught:
        host.get("tool", "tool")
    assert caught.value.step == "instantiate"
    assert "imports env::fetch_weather, which plugbay does not provide" in caught.value.reason


def test_a_declared_hook_the_module_does_not_export_fails_the_load(
    plugins_dir: Path, make_host: Any
) -> None:
    contributes = {**BASICS, "hook": [{"name": "on_deploy"}]}
    wasm_plugin(plugins_dir, contributes=contributes)
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError) as caught:
        host.load("acme.basics")
    assert caught.value.step == "load"
    assert "hook on_deploy: the module exports no function 'on_deploy'" in caught.value.reason


def test_a_method_the_module_does_not_export_is_missing(plugins_dir: Path, make_host: Any) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    greet = host.get("module", "greet")
    assert not hasattr(greet, "wave")
    with pytest.raises(AttributeError, match="exports no function 'greet_wave'"):
        greet.wave()
    with pytest.raises(PluginCallError) as caught:
        greet()  # the module itself: export greet, which basics.wat lacks
    assert caught.value.cause == "missing"
    assert greet.run(1)["args"] == [1]


class _Blocker:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def wait(self) -> str:
        self.entered.set()
        self.release.wait(30)
        return "released"


class _BlockerPlugin:
    def __init__(self, blocker: _Blocker) -> None:
        self._blocker = blocker

    def register(self, api: Any) -> None:
        api.add("module", "blocker", self._blocker)


def test_a_host_function_that_blocks_ends_the_call_at_its_deadline(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    write_config(home, runtime={"acme.basics": {"call-timeout": 0.5}})
    host: Host = make_host(plugins_dir, wasm_calls={"acme.basics": ["module:blocker"]})
    blocker = _Blocker()
    host.add_builtin(
        {
            "schema": 1,
            "plugin": {"name": "blocker", "version": "1.0.0"},
            "contributes": {"module": [{"name": "blocker", "entry": "x:y"}]},
        },
        _BlockerPlugin(blocker),
    )
    counter = host.get("module", "counter")
    assert counter.next() == 1
    try:
        with pytest.raises(PluginCallError) as caught:
            host.get("module", "relay").blocker()
        error = caught.value
        assert blocker.entered.is_set()  # it did block, in the host
        assert error.cause == "deadline"
        assert (
            "plugbay_call('module:blocker') did not return before the call's 0.5 s deadline"
            in error.reason
        )
        assert counter.next() == 1  # the instance was reset
    finally:
        blocker.release.set()


class _Echo:
    def __init__(self, host: Host) -> None:
        self._host = host

    def now(self) -> Any:
        return self._host.get("module", "counter").next()  # back into the calling plugin


class _EchoPlugin:
    def __init__(self, host: Host) -> None:
        self._host = host

    def register(self, api: Any) -> None:
        api.add("module", "clock", _Echo(self._host))


def test_a_call_cycle_back_into_a_busy_instance_is_refused_not_deadlocked(
    plugins_dir: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    host: Host = make_host(plugins_dir, wasm_calls={"acme.basics": ["module:*"]})
    host.add_builtin(
        {
            "schema": 1,
            "plugin": {"name": "echo", "version": "1.0.0"},
            "contributes": {"module": [{"name": "clock", "entry": "x:y"}]},
        },
        _EchoPlugin(host),
    )
    answer = host.get("module", "relay").clock()
    assert answer["error"]["cause"] == "error"
    assert "a call cycle" in answer["error"]["message"]


def test_limits_that_cannot_work_fail_the_load(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    wasm_plugin(plugins_dir)
    write_config(home, runtime={"acme.basics": {"memory": 1000}})
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError) as caught:
        host.load("acme.basics")
    assert caught.value.step == "config"
    assert "memory = 1000 is less than one WebAssembly page" in caught.value.reason
