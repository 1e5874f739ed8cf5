"""examples/plugins/sdk-greeter: spoken to by hand, and used through a real Host."""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_wire import PYTHON, Child, Spawner, alive, host_env, wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "sdk-greeter"


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    spawner = Spawner()
    yield spawner
    spawner.close()


def greeter(spawn: Spawner) -> Child:
    assert (EXAMPLE / "greeter.py").is_file(), f"the SDK example is missing: {EXAMPLE}"
    env = host_env(EXAMPLE, plugin_id="acme.sdk_greeter")
    return spawn([PYTHON, "greeter.py"], cwd=EXAMPLE, env=env)


def test_the_example_announces_what_its_manifest_declares(spawn: Spawner) -> None:
    manifest = tomllib.loads((EXAMPLE / "plugin.toml").read_text())
    declared = {
        kind: [c["name"] for c in entries] for kind, entries in manifest["contributes"].items()
    }

    ready = greeter(spawn).ready()

    assert ready["plugin"] == {"id": "acme.sdk_greeter", "version": manifest["plugin"]["version"]}
    announced = {kind: [c["name"] for c in cs] for kind, cs in ready["contributions"].items()}
    assert announced == declared
    [module] = ready["contributions"]["module"]
    assert module["methods"] == ["describe", "run", "wait"]


def test_the_example_greets_logs_emits_and_can_be_cancelled(spawn: Spawner) -> None:
    child = greeter(spawn)
    child.ready()

    child.initialize({"greeting": "Hi"})

    ready_log = child.notification("log", lambda p: p["message"] == "greeter ready")
    assert ready_log["fields"] == {"app": "testapp", "greeting": "Hi"}
    assert child.invoke("module:greet", "run", name="Ada")["result"] == "Hi, Ada!"
    assert child.invoke("module:greet", "describe")["result"] == {
        "greeting": "Hi",
        "pid": child.proc.pid,
    }
    assert child.invoke("hook:on_task", None, task="t1")["result"] == "Hi, task t1!"
    assert child.notification("event") == {"name": "greeted", "data": {"task": "t1"}}
    assert child.invoke("command:greet-all", None, ["Ada", "Bob"])["result"] == 0
    messages = [n["params"]["message"] for n in child.notifications if n["method"] == "log"]
    assert {"Hi, Ada!", "Hi, Bob!"} <= set(messages)
    slow = child.request("invoke", child.invoke_params("module:greet", "wait"))
    child.cancel(slow)
    assert child.answer(slow)["error"]["code"] == -32800
    assert child.call("health")["result"] == {"status": "ok", "detail": "greeting is 'Hi'"}
    assert child.call("shutdown")["result"] == {}
    assert child.wait_exit() == 0


def test_the_example_serves_a_host_like_an_in_process_plugin(
    make_host: Callable[..., Any], tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLE, plugins / "sdk-greeter")
    host = make_host(plugins, config={"acme.sdk_greeter": {"greeting": "Hey"}})

    greet = host.get("module", "greet")

    assert greet.run(name="Ada") == "Hey, Ada!"
    pid = greet.describe()["pid"]
    assert pid != os.getpid()
    assert host.run_command("greet-all", ["Ada"]) == 0
    assert host.health()["acme.sdk_greeter"].status == "ok"
    host.stop()
    wait_until(lambda: not alive(pid), 5, "the plugin process ending with the host")
