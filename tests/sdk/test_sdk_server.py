"""plugbay.sdk serving a plugin over real pipes, spoken to by hand (docs/protocol.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_wire import COOKIE, PYTHON, Child, Spawner, alive, host_env, plugin_folder, wait_until

#: A plugin with something of everything; each test uses the parts it checks.
PLUGIN = """
import asyncio, logging, os, sys, threading

from plugbay.sdk import Plugin, cancelled, current_call

print("printed at import, before run()")  # must land in the log, never on stdout
plugin = Plugin("test.sdk", "1.0.0")
plugin.log.info("logged at import", stage="import")
barrier = threading.Barrier(2, timeout=5)


class Late:
    def ping(self):
        return "pong"


@plugin.on_initialize
def setup(config, host):
    plugin.log.info("initialized", app=host.app, greeting=config.get("greeting"))
    if config.get("fail"):
        raise RuntimeError("bad config: fail is set")
    if config.get("add"):
        plugin.add("module", "late", Late())


@plugin.module("greet", summary="Greets", check=["run"], check_slow="slow")
class Greet:
    def __init__(self):
        self.count = 0

    def run(self, name="world"):
        self.count += 1
        return f"{plugin.config.get('greeting', 'Hello')}, {name}! ({self.count})"

    def meet(self, tag):
        barrier.wait()  # returns only when the other meet() call runs at the same time
        return tag

    def slow(self):
        call = current_call()
        if call.wait_cancelled(30):
            plugin.emit("observed-cancel", {"id": call.id, "cancelled": cancelled()})
            return "stopped"
        return "finished"

    async def aslow(self):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            plugin.emit("observed-async-cancel", {"id": current_call().id})
            raise
        return "finished"

    async def adouble(self, x):
        await asyncio.sleep(0)
        return x * 2

    def fail(self):
        raise ValueError("no greeting for you")

    def noisy(self):
        print("printed in a handler")
        os.system("echo from a child process")
        sys.stdout.write("written to sys.stdout\\n")
        return "quiet"

    def shapes(self):
        return {"set": {1}, "tuple": (1, 2)}

    def not_json(self):
        return object()

    def nan(self):
        return float("nan")

    def log_all(self):
        plugin.log.debug("a debug line", n=1)
        plugin.log.warning("careful %s", "now", code=7)
        plugin.log.info("NaN is not JSON", ratio=float("nan"), when=object())
        logging.getLogger("acme.inner").info("from stdlib", extra={"user": "ada"})
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("acme.inner").exception("it broke")
        return True


@plugin.hook("on_task", check=True)
def on_task(task=None):
    plugin.emit("task-seen", {"task": task})
    return {"seen": task}


@plugin.command("greet-all")
def greet_all(args):
    return len(args)


@plugin.command("bail")
def bail(args):
    sys.exit(int(args[0]))


@plugin.on_health
def health():
    return "tired" if plugin.config.get("tired") else True


@plugin.on_shutdown
def bye():
    with open(os.environ["BYE_FILE"], "w") as f:
        f.write("bye")


plugin.forward_logging()
plugin.run()
"""


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    spawner = Spawner()
    yield spawner
    spawner.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return plugin_folder(tmp_path / "plugin", PLUGIN)


def start(spawn: Spawner, folder: Path, **env: Any) -> Child:
    """The test plugin, its ready line not yet read."""
    extra = {"BYE_FILE": str(folder / "bye.txt")}
    return spawn([PYTHON, "plugin.py"], cwd=folder, env=host_env(folder, extra=extra, **env))


def ready(spawn: Spawner, folder: Path, config: dict[str, Any] | None = None, **env: Any) -> Child:
    """The test plugin, past its ready line and initialize."""
    child = start(spawn, folder, **env)
    child.ready()
    child.initialize(config or {})
    return child


def error_of(answer: dict[str, Any]) -> dict[str, Any]:
    assert "error" in answer, answer
    error: dict[str, Any] = answer["error"]
    return error


# -- the handshake ---------------------------------------------------------------------


def test_the_ready_line_comes_first_and_names_the_plugin_and_its_contributions(
    spawn: Spawner, folder: Path
) -> None:
    child = start(spawn, folder)

    params = child.ready()

    assert params["protocol"] == 1
    assert params["cookie"] == COOKIE
    assert params["plugin"] == {"id": "test.sdk", "version": "1.0.0"}
    contributions = params["contributions"]
    [module] = contributions["module"]
    assert module["name"] == "greet"
    assert module["summary"] == "Greets"
    assert module["check"] == ["run"]
    assert module["check-slow"] == "slow"
    assert {"run", "meet", "slow", "aslow", "fail", "log_all"} <= set(module["methods"])
    assert not [m for m in module["methods"] if m.startswith("_")]
    assert contributions["hook"] == [{"name": "on_task", "check": True}]
    assert {c["name"] for c in contributions["command"]} == {"greet-all", "bail"}
    # What was logged at import time follows the ready line; the print went to stderr.
    log = child.notification("log")
    assert log == {"level": "info", "message": "logged at import", "fields": {"stage": "import"}}
    wait_until(lambda: "printed at import, before run()" in child.stderr, 5, "the print in the log")
    assert all(b"printed" not in line for line in child.raw)


def test_plugin_takes_its_id_from_the_host_and_its_version_from_the_manifest(
    spawn: Spawner, tmp_path: Path
) -> None:
    code = "from plugbay.sdk import Plugin\nPlugin().run()\n"
    manifest = """\
        schema = 1
        [plugin]
        namespace = "acme"
        name = "tiny"
        version = "2.3.4"
        runtime = "exec"
        entry = "python plugin.py"
    """
    folder = plugin_folder(tmp_path / "tiny", code, manifest=manifest)

    given = spawn([PYTHON, "plugin.py"], cwd=folder, env=host_env(folder, plugin_id="acme.given"))
    from_manifest = spawn([PYTHON, "plugin.py"], cwd=folder, env=host_env(folder, plugin_id=None))

    assert given.ready()["plugin"] == {"id": "acme.given", "version": "2.3.4"}
    assert from_manifest.ready()["plugin"] == {"id": "acme.tiny", "version": "2.3.4"}


def test_started_without_a_cookie_it_says_so_and_exits_1(spawn: Spawner, folder: Path) -> None:
    child = start(spawn, folder, cookie=None)

    assert child.wait_exit() == 1
    wait_until(lambda: "PLUGBAY_COOKIE is not set" in child.stderr, 5, "the message")
    assert "must be started by a plugbay host" in child.stderr
    # Not under a host, stdout is the user's: their print is there, no protocol line is.
    assert child.raw == [b"printed at import, before run()\n"]


def test_with_no_common_protocol_version_it_names_both_and_exits_1(
    spawn: Spawner, folder: Path
) -> None:
    child = start(spawn, folder, versions="2,3")

    params = child.ready()  # names its own version, so that the host can name both

    assert params["protocol"] == 1
    assert child.wait_exit() == 1
    wait_until(
        lambda: "this plugin speaks protocol 1; the host speaks 2,3" in child.stderr,
        5,
        "the message naming both versions",
    )


def test_initialize_runs_the_handlers_with_config_and_host(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder, {"greeting": "Hi"})

    log = child.notification("log", lambda p: p["message"] == "initialized")

    assert log["fields"] == {"app": "testapp", "greeting": "Hi"}
    assert child.invoke("module:greet", "run", "Ada")["result"] == "Hi, Ada! (1)"


def test_a_failing_initialize_is_an_error_answer_and_invoke_stays_refused(
    spawn: Spawner, folder: Path
) -> None:
    child = start(spawn, folder)
    child.ready()

    answer = child.call("initialize", {"config": {"fail": True}})

    error = error_of(answer)
    assert error["code"] == -32002
    assert "bad config: fail is set" in error["message"]
    assert error["data"]["type"] == "RuntimeError"
    assert error_of(child.invoke("module:greet", "run"))["code"] == -32003


def test_contributions_added_while_initializing_are_announced_in_the_answer(
    spawn: Spawner, folder: Path
) -> None:
    child = start(spawn, folder)
    child.ready()

    result = child.initialize({"add": True})

    assert result == {"contributions": {"module": [{"name": "late", "methods": ["ping"]}]}}
    assert child.invoke("module:late", "ping")["result"] == "pong"


def test_invoke_before_initialize_is_refused_with_32003(spawn: Spawner, folder: Path) -> None:
    child = start(spawn, folder)
    child.ready()

    error = error_of(child.invoke("module:greet", "run"))

    assert error["code"] == -32003
    assert "initialize" in error["message"]
    child.initialize()
    assert child.invoke("module:greet", "run")["result"] == "Hello, world! (1)"


def test_a_second_initialize_is_an_invalid_request(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    assert error_of(child.call("initialize", {}))["code"] == -32600


# -- invoke ----------------------------------------------------------------------------


def test_invoke_calls_module_methods_hooks_and_commands(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    assert child.invoke("module:greet", "run", name="Ada")["result"] == "Hello, Ada! (1)"
    assert child.invoke("module:greet", "run")["result"] == "Hello, world! (2)"  # one instance
    # A hook implementation gets the arguments it names, as in-process.
    assert child.invoke("hook:on_task", None, task="t1", other=2)["result"] == {"seen": "t1"}
    assert child.notification("event") == {"name": "task-seen", "data": {"task": "t1"}}
    assert child.invoke("command:greet-all", None, ["a", "b"])["result"] == 2
    assert child.invoke("command:bail", None, ["3"])["result"] == 3  # sys.exit(3)
    assert child.invoke("module:greet", "adouble", 21)["result"] == 42  # async def
    assert child.invoke("module:greet", "shapes")["result"] == {"set": [1], "tuple": [1, 2]}


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        (
            {"contribution": "module:nope", "method": "run"},
            -32001,
            "no contribution module:nope (it has: command:bail, command:greet-all",
        ),
        ({"contribution": "module:greet", "method": "fly"}, -32001, "has no method 'fly'"),
        ({"contribution": "module:greet", "method": "_private"}, -32001, "no method '_private'"),
        ({"contribution": "module:greet", "method": None}, -32001, "names no method"),
        ({"contribution": "hook:on_task", "method": "x"}, -32001, "invoke it with method null"),
        ({"contribution": "greet", "method": "run"}, -32602, '"kind:name"'),
        ({"contribution": "module:greet", "method": "run", "args": {}}, -32602, '"args"'),
        ({"contribution": "module:greet", "method": "run", "kwargs": []}, -32602, '"kwargs"'),
        (
            {"contribution": "module:greet", "method": "run", "args": [1, 2, 3]},
            -32602,
            "positional argument",
        ),
    ],
)
def test_invoke_of_unknown_things_or_with_bad_params_is_refused(
    spawn: Spawner, folder: Path, params: dict[str, Any], code: int, words: str
) -> None:
    child = ready(spawn, folder)

    error = error_of(child.call("invoke", params))

    assert error["code"] == code
    assert words in error["message"]


def test_unknown_methods_bad_lines_and_unknown_notifications(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    assert error_of(child.call("plugbay/nope"))["code"] == -32601
    child.send({"jsonrpc": "2.0", "id": 99, "method": "health", "params": [1]})
    assert error_of(child.answer(99))["code"] == -32602
    child.write(b"this is not json\n")
    assert error_of(child.answer(None))["code"] == -32700
    child.send({"jsonrpc": "2.0", "method": "$/whatever", "params": {}})
    assert child.call("health")["result"] == {"status": "ok"}


def test_an_exception_is_answered_with_its_type_and_traceback(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    error = error_of(child.invoke("module:greet", "fail"))

    assert error["code"] == -32002
    assert "ValueError: no greeting for you" in error["message"]
    assert error["data"]["type"] == "ValueError"
    traceback = error["data"]["traceback"]
    assert "in fail" in traceback
    assert 'raise ValueError("no greeting for you")' in traceback
    assert "plugbay/sdk" not in traceback  # the SDK's own frames are left out
    assert child.invoke("module:greet", "run")["result"].startswith("Hello")  # still serving


@pytest.mark.parametrize("method", ["not_json", "nan"])
def test_a_result_that_is_not_json_is_an_error_answer(
    spawn: Spawner, folder: Path, method: str
) -> None:
    child = ready(spawn, folder)

    error = error_of(child.invoke("module:greet", method))

    assert error["code"] == -32002
    assert f"module:greet.{method} returned a value that is not JSON" in error["message"]
    assert child.call("health")["result"] == {"status": "ok"}


def test_two_slow_calls_run_at_the_same_time(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    # Each meet() waits at a barrier for the other: one at a time, both would fail.
    first = child.request("invoke", child.invoke_params("module:greet", "meet", "a"))
    second = child.request("invoke", child.invoke_params("module:greet", "meet", "b"))

    assert child.answer(second)["result"] == "b"
    assert child.answer(first)["result"] == "a"


def test_cancel_answers_32800_at_once_and_the_handler_sees_it(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)
    slow = child.request("invoke", child.invoke_params("module:greet", "slow"))

    assert child.call("health")["result"] == {"status": "ok"}  # answered while slow() runs
    child.cancel(slow)

    assert error_of(child.answer(slow))["code"] == -32800
    assert child.notification("event", lambda p: p["name"] == "observed-cancel")["data"] == {
        "id": slow,
        "cancelled": True,
    }
    # slow() returned "stopped" after the cancel: that second answer is never sent.
    assert child.call("health")["result"] == {"status": "ok"}


def test_cancel_of_an_async_handler_cancels_its_task(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)
    slow = child.request("invoke", child.invoke_params("module:greet", "aslow"))
    child.call("health")

    child.cancel(slow)

    assert error_of(child.answer(slow))["code"] == -32800
    event = child.notification("event", lambda p: p["name"] == "observed-async-cancel")
    assert event["data"] == {"id": slow}


def test_cancel_of_an_unknown_id_is_ignored(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    child.cancel(999)

    assert child.call("health")["result"] == {"status": "ok"}


def test_health_is_the_handlers_answer(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder, {"tired": True})

    assert child.call("health")["result"] == {"status": "degraded", "detail": "tired"}


# -- output discipline and logs ---------------------------------------------------------


def test_prints_and_child_processes_of_a_handler_go_to_stderr(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    assert child.invoke("module:greet", "noisy")["result"] == "quiet"

    for text in ("printed in a handler", "from a child process", "written to sys.stdout"):
        wait_until(lambda t=text: t in child.stderr, 5, f"{text!r} in the log")  # type: ignore[misc]
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in child.raw)


def test_log_notifications_carry_level_message_and_fields(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    child.invoke("module:greet", "log_all")  # its notifications are written before its answer

    logs = [n["params"] for n in child.notifications if n["method"] == "log"]
    assert {"level": "debug", "message": "a debug line", "fields": {"n": 1}} in logs
    assert {"level": "warning", "message": "careful now", "fields": {"code": 7}} in logs
    assert {
        "level": "info",
        "message": "from stdlib",
        "fields": {"user": "ada", "logger": "acme.inner"},
    } in logs
    # What JSON cannot carry is sent as its repr, and the line stays JSON.
    [odd] = [p for p in logs if p["message"] == "NaN is not JSON"]
    assert odd["fields"]["ratio"] == "nan"
    assert odd["fields"]["when"].startswith("<object object at")
    [broke] = [p for p in logs if p["message"].startswith("it broke")]
    assert broke["level"] == "error"
    assert "ZeroDivisionError: division by zero" in broke["message"]


def test_messages_below_the_hosts_log_level_are_not_sent(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder, level="warning")

    child.invoke("module:greet", "log_all")

    levels = {n["params"]["level"] for n in child.notifications if n["method"] == "log"}
    assert levels == {"warning", "error"}


# -- the end ---------------------------------------------------------------------------


def test_shutdown_runs_the_stop_handlers_answers_and_exits_0(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)

    assert child.call("shutdown")["result"] == {}

    assert child.wait_exit() == 0
    assert (folder / "bye.txt").read_text() == "bye"


def test_the_end_of_stdin_runs_the_stop_handlers_and_exits_0(spawn: Spawner, folder: Path) -> None:
    child = ready(spawn, folder)
    child.request("invoke", child.invoke_params("module:greet", "slow"))  # still running

    child.close_stdin()

    assert child.wait_exit() == 0
    assert (folder / "bye.txt").read_text() == "bye"


#: Starts the plugin as its child (sharing this process's stdin and stdout, so that only
#: the parent's death can end it), writes the child's pid, then waits to be killed.
PARENT = """
import os, subprocess, sys, threading
env = dict(os.environ, PLUGBAY_PARENT_PID=str(os.getpid()))
child = subprocess.Popen([sys.executable, "plugin.py"], env=env)
with open("child.pid", "w") as f:
    f.write(str(child.pid))
threading.Event().wait()
"""


def test_the_plugin_exits_when_its_parent_dies(spawn: Spawner, folder: Path) -> None:
    (folder / "parent.py").write_text(textwrap.dedent(PARENT))
    extra = {"BYE_FILE": str(folder / "bye.txt")}
    parent = spawn([PYTHON, "parent.py"], cwd=folder, env=host_env(folder, extra=extra))
    parent.ready()  # the plugin's ready line, through the shared stdout
    pid_file = folder / "child.pid"
    wait_until(lambda: pid_file.is_file() and pid_file.read_text().isdigit(), 5, "its pid")
    pid = int(pid_file.read_text())
    assert alive(pid)

    os.kill(parent.proc.pid, signal.SIGKILL)  # its stdin stays open: this test holds it

    try:
        wait_until(lambda: not alive(pid), 3, f"the plugin {pid} exiting after its parent died")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert "is gone; exiting" in parent.stderr
    assert (folder / "bye.txt").read_text() == "bye"  # its stop handlers ran


def test_importing_the_sdk_loads_nothing_beyond_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import plugbay.sdk, plugbay.sdk.isolated;"
        " print(' '.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()

    ours = {m for m in loaded if m.partition(".")[0] == "plugbay"}
    assert ours == {
        "plugbay",
        "plugbay.protocol",
        "plugbay.sdk",
        "plugbay.sdk._manifest",
        "plugbay.sdk.isolated",
        "plugbay.sdk.plugin",
        "plugbay.sdk.server",
    }
    for heavy in ("msgspec", "click", "rich", "yaml", "jsonschema", "asyncio", "logging"):
        assert heavy not in loaded, f"import plugbay.sdk imports {heavy}"
