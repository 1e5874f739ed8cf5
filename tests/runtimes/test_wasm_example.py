"""The AssemblyScript example plugin (examples/plugins/as-greeter), built by its make target
and run through Host: its module, hook and command, config, errors, and instance modes.

The build needs node and npm; without them the tests fail saying so (they never skip).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import build_greeter_wasm
from plugbay import Host, LifecycleEvent, PluginCallError, PluginState

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "plugins" / "as-greeter"
PLUGIN_ID = "acme.as_greeter"


@pytest.fixture(scope="module")
def greeter_wasm() -> Path:
    """``make wasm-example``: greeter.wasm built from the example's AssemblyScript sources."""
    return build_greeter_wasm()


def install_example(plugins_dir: Path, greeter_wasm: Path) -> Path:
    """A copy of the built example in ``plugins_dir`` (without its node_modules)."""
    folder = plugins_dir / "as-greeter"
    shutil.copytree(
        EXAMPLE, folder, ignore=shutil.ignore_patterns("node_modules", "greeter.debug.*")
    )
    assert (folder / "greeter.wasm").read_bytes() == greeter_wasm.read_bytes()
    return folder


@pytest.fixture
def make_greeter_host(
    plugins_dir: Path, home: Path, greeter_wasm: Path, make_host: Any
) -> Callable[[str], Host]:
    """A started host with the example in its search path; ``config`` is its config.toml."""

    def make(config: str = "") -> Host:
        install_example(plugins_dir, greeter_wasm)
        (home / "config.toml").write_text(config, "utf-8")
        host: Host = make_host(plugins_dir)
        host.hooks.declare("before_task_run", ("task",))
        host.start()
        return host

    return make


@pytest.fixture
def greeter_host(make_greeter_host: Callable[[str], Host]) -> Host:
    return make_greeter_host("")


def test_module_methods_answer_like_in_process_ones(greeter_host: Host) -> None:
    greeter = greeter_host.get("module", "as_greet")
    assert greeter.greet("Ada") == "Hello, Ada!"
    assert greeter.greet() == "Hello, world!"
    assert greeter.greet(name="Zoë ☃") == "Hello, Zoë ☃!"  # UTF-8 in and out
    assert greeter.count("hello wide world") == {"characters": 16, "words": 3, "vowels": 5}
    assert asyncio.run(greeter.greet.acall("Grace")) == "Hello, Grace!"
    assert greeter_host.state(PLUGIN_ID) is PluginState.STARTED
    status = next(s for s in greeter_host.status() if s.id == PLUGIN_ID)
    assert status.runtime == "wasm"
    assert greeter_host.health()[PLUGIN_ID].status == "ok"  # its plugbay_health export


def test_the_greeting_comes_from_the_plugins_validated_config(
    make_greeter_host: Callable[[str], Host],
) -> None:
    host = make_greeter_host(f'[plugins."{PLUGIN_ID}"]\ngreeting = "Hej"\n')
    assert host.get("module", "as_greet").greet("Ada") == "Hej, Ada!"


def test_the_hook_logs_through_the_host_and_sends_an_event(
    greeter_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[LifecycleEvent] = []
    greeter_host.on(events.append)
    with caplog.at_level(logging.INFO, logger="plugbay"):
        assert greeter_host.hooks.before_task_run(task="deploy") == [
            "Hello from WebAssembly, deploy!"
        ]
    messages = [r.getMessage() for r in caplog.records]
    assert "task deploy is about to run" in messages
    assert 'initialized in "testapp"' in messages  # plugbay_init, when it loaded
    seen = [e for e in events if e.name == "plugin_event"]
    assert [(e.plugin_id, e.data) for e in seen] == [
        (PLUGIN_ID, {"name": "task-seen", "data": {"task": "deploy"}})
    ]


def test_the_command_returns_its_exit_code_and_logs_its_greetings(
    greeter_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="plugbay"):
        assert greeter_host.run_command("as-greet", ["Ada", "Grace"]) == 0
        assert greeter_host.run_command("as-greet", ["--loud"]) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert "Hello, Ada!" in messages
    assert "Hello, Grace!" in messages
    assert any("unknown option --loud" in m for m in messages)


def test_an_error_the_plugin_reports_names_it_and_the_plugin_keeps_working(
    greeter_host: Host,
) -> None:
    greeter = greeter_host.get("module", "as_greet")
    with pytest.raises(PluginCallError) as caught:
        greeter.fail("no greeting today")
    error = caught.value
    assert (error.plugin_id, error.cause) == (PLUGIN_ID, "error")
    assert "no greeting today" in error.reason
    assert "as_greet" in str(error)
    assert greeter.greet("Ada") == "Hello, Ada!"


def test_an_abort_traps_is_logged_and_the_next_call_gets_a_fresh_instance(
    greeter_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    greeter = greeter_host.get("module", "as_greet")
    assert [greeter.calls() for _ in range(3)] == [1, 2, 3]  # one instance keeps its state
    with caplog.at_level(logging.ERROR, logger="plugbay"), pytest.raises(PluginCallError) as caught:
        greeter.crash()
    error = caught.value
    assert (error.plugin_id, error.target, error.cause) == (
        PLUGIN_ID,
        "module:as_greet.crash",
        "trap",
    )
    assert str(error).startswith(f"{PLUGIN_ID}: module:as_greet.crash: trapped")
    assert "unreachable" in error.reason  # the trap's kind: abort() ends in unreachable()
    # The example's abort() logs AssemblyScript's message before it traps.
    logged = [r.getMessage() for r in caplog.records if r.name == f"plugbay.{PLUGIN_ID}"]
    assert any(m.startswith("abort: Index out of range at ~lib/array.ts") for m in logged)
    assert greeter.calls() == 1  # the trapped instance was replaced
    assert greeter_host.state(PLUGIN_ID) is PluginState.STARTED


def test_calls_from_many_threads_take_turns_on_the_one_instance(greeter_host: Host) -> None:
    calls = greeter_host.get("module", "as_greet").calls
    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(lambda _: calls(), range(200)))
    # Each call saw the instance's counter once, none at the same time as another.
    assert sorted(counts) == list(range(1, 201))


def test_instance_per_call_starts_every_call_from_a_fresh_state(
    make_greeter_host: Callable[[str], Host],
) -> None:
    host = make_greeter_host(f'[runtime."{PLUGIN_ID}"]\ninstance = "call"\n')
    greeter = host.get("module", "as_greet")
    assert [greeter.calls() for _ in range(3)] == [1, 1, 1]
    assert greeter.greet("Ada") == "Hello, Ada!"
