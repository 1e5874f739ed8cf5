"""Out-of-process (exec) plugins through Host: contributions, calls, config, permissions,
environment and how their command is found. The children are real processes running
tests/data/exec/child.py, which speaks the protocol by hand."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Protocol

import pytest
from exec_support import (
    CHILD,
    exec_plugin,
    gone,
    pids_of,
    python_plugin,
    wait_until,
    write_config,
)

from conftest import write_plugin
from plugbay import (
    Host,
    LifecycleEvent,
    LoadError,
    PermissionDenied,
    PluginCallError,
    PluginState,
    RegistryError,
)
from plugbay.host import current_platform
from plugbay.runtimes.exec import ExecSettings, describe_exit, resolve_command


def test_module_hook_command_and_health_work_like_in_process_ones(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    folder = exec_plugin(plugins_dir, "acme.vm")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    host.hooks.declare("on_task", ("task",))
    host.start()
    assert pids_of(folder) == []  # lazy: nothing runs before first use

    vm = host.get("module", "vm")
    assert vm.echo(1, "two", three=3) == {"args": [1, "two"], "kwargs": {"three": 3}}
    assert host.state("acme.vm") is PluginState.STARTED
    assert host.hooks.on_task(task="deploy") == [{"seen": {"task": "deploy"}}]
    assert host.run_command("vm-count", ["a", "b", "c"]) == 3
    # Announced in plugbay/ready but not in the manifest: added at run time.
    assert host.get("tool", "vm_extra").anything() == "extra anything"
    health = host.health()["acme.vm"]
    assert (health.status, health.message) == ("degraded", "tired but working")
    status = next(s for s in host.status() if s.id == "acme.vm")
    assert status.runtime == "exec"
    assert "spawn" in status.timings_ms
    assert len(pids_of(folder)) == 1  # one process served all of it

    pid = vm.pid()
    host.stop()
    assert host.state("acme.vm") is PluginState.STOPPED
    wait_until(lambda: gone(pid), 2.0, f"the end of the stopped plugin's process {pid}")
    with pytest.raises(PluginCallError) as caught:
        vm.echo(1)
    assert caught.value.cause == "stopped"
    log = (home / "logs" / "plugins" / "acme.vm.log").read_text()
    assert f"started pid {pid}" in log
    assert "was stopped by the host" in log


def test_an_eager_plugin_starts_with_the_host(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    folder = exec_plugin(plugins_dir, "acme.vm", activation="eager")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    host.start()
    assert host.state("acme.vm") is PluginState.STARTED
    assert len(pids_of(folder)) == 1


def test_restart_starts_a_new_process(plugins_dir: Path, home: Path, make_host: Any) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    first = host.get("module", "vm").pid()
    assert host.restart("acme.vm") is PluginState.STARTED
    assert gone(first)
    assert host.get("module", "vm").pid() != first


def test_methods_are_those_the_child_announced(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    write_config(home, fast=["acme.vm"])

    class Module(Protocol):
        def echo(self, *args: Any) -> Any: ...
        def deploy(self) -> None: ...

    host: Host = make_host(plugins_dir, kinds={"module": Module})
    with pytest.raises(RegistryError, match="missing deploy"):
        host.get("module", "vm")  # the host's interface asks for what the child lacks

    other: Host = make_host(plugins_dir)
    vm = other.get("module", "vm")
    with pytest.raises(AttributeError, match=r"has no method 'deploy' \(its methods: echo, "):
        vm.deploy()
    assert "pid" in dir(vm)


def test_an_error_answer_raises_plugin_call_error_and_the_plugin_goes_on(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    vm = host.get("module", "vm")
    pid = vm.pid()
    with pytest.raises(PluginCallError) as caught:
        vm.boom()
    error = caught.value
    assert str(error) == "acme.vm: module:vm: ValueError: the VM is on fire"
    assert (error.plugin_id, error.target, error.cause) == ("acme.vm", "module:vm", "error")
    assert error.detail is not None
    assert error.detail.startswith("Traceback")
    assert vm.pid() == pid


def test_many_requests_in_flight_are_matched_by_id(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    vm = host.get("module", "vm")
    waits = [0.4, 0.3, 0.2, 0.1, 0.0]

    async def all_at_once() -> list[Any]:
        return list(await asyncio.gather(*(vm.wait.acall(w) for w in waits)))

    answers = asyncio.run(all_at_once())
    assert [a["waited"] for a in answers] == waits  # each caller got its own answer
    # The child answered the shortest wait first: out of order, yet matched.
    assert [a["position"] for a in answers] == [5, 4, 3, 2, 1]


def test_a_per_call_timeout_cancels_that_call_only(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    write_config(home, runtime={"acme.vm": {"cancel-grace": 5}})
    host: Host = make_host(plugins_dir)
    vm = host.get("module", "vm")
    pid = vm.pid()
    with pytest.raises(PluginCallError) as caught:
        vm.sleep(_timeout=0.2)
    assert caught.value.cause == "deadline"
    assert caught.value.reason == "did not finish within its 0.2 s deadline; it was cancelled"
    assert vm.pid() == pid  # it honoured $/cancel: no restart


def test_an_abandoned_async_call_is_cancelled_in_the_child(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    vm = host.get("module", "vm")

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(vm.sleep.acall(), 0.1)

    asyncio.run(give_up())
    wait_until(lambda: len(vm.cancels()) == 1, 2.0, "the $/cancel of the abandoned call")


def test_cpu_time_and_memory_limits_reach_the_child(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    memory = 4 * 1024**3
    write_config(home, runtime={"acme.vm": {"cpu-time": 29.5, "memory": memory}})
    host: Host = make_host(plugins_dir)
    assert host.get("module", "vm").limits() == [[30, 31], [memory, memory]]


def test_log_and_event_notifications_reach_the_host(
    plugins_dir: Path, home: Path, make_host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    exec_plugin(plugins_dir, "acme.vm")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    events: list[LifecycleEvent] = []
    host.on(events.append)
    with caplog.at_level(logging.INFO, logger="plugbay"):
        assert host.get("module", "vm").notify() == "notified"
    record = next(r for r in caplog.records if "disk nearly full" in r.getMessage())
    assert record.name == "plugbay.acme.vm"
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "disk nearly full free=3"
    wait_until(lambda: any(e.name == "plugin_event" for e in events), 2.0, "the plugin event")
    event = next(e for e in events if e.name == "plugin_event")
    assert event.plugin_id == "acme.vm"
    assert event.data == {"name": "vm.created", "data": {"vm": "web-1"}}


def test_initialize_carries_the_config_and_secrets_stay_out_of_logs(
    plugins_dir: Path, home: Path, make_host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    folder = exec_plugin(plugins_dir, "acme.vm")
    with (folder / "plugin.toml").open("a") as f:
        f.write(
            "[config.schema]\ntype = 'object'\n"
            "properties = { region = { type = 'string' }, token = { type = 'string',"
            " writeOnly = true } }\n"
        )
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir, config={"acme.vm": {"region": "eu", "token": "s3cr3t-t0k"}})
    with caplog.at_level(logging.DEBUG):
        vm = host.get("module", "vm")
        assert vm.config() == {"region": "eu", "token": "s3cr3t-t0k"}
        with pytest.raises(PluginCallError) as caught:
            vm.echo(object())  # not JSON: refused before anything is sent
    assert caught.value.cause == "error"
    assert "cannot send the call as JSON" in caught.value.reason
    assert "s3cr3t-t0k" not in caplog.text
    assert "s3cr3t-t0k" not in (home / "logs" / "plugins" / "acme.vm.log").read_text()


def test_only_granted_variables_reach_the_child_in_its_own_folder(
    plugins_dir: Path, home: Path, make_host: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VM_TOKEN", "granted-value")
    monkeypatch.setenv("HOST_ONLY_SECRET", "not-for-plugins")
    folder = exec_plugin(plugins_dir, "acme.vm", permissions='env = ["VM_TOKEN"]')
    write_config(home, grants={"acme.vm": {"env": ["VM_TOKEN"]}}, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    vm = host.get("module", "vm")
    env = vm.env()
    assert env["VM_TOKEN"] == "granted-value"
    assert "HOST_ONLY_SECRET" not in env
    assert env["PATH"] == os.environ["PATH"]
    assert env["PLUGBAY_PLUGIN_ID"] == "acme.vm"
    assert env["PLUGBAY_PROTOCOL_VERSIONS"] == "1"
    assert env["PLUGBAY_PARENT_PID"] == str(os.getpid())
    assert Path(env["PLUGBAY_PLUGIN_DIR"]) == folder
    assert len(env["PLUGBAY_COOKIE"]) == 32
    allowed = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VM_TOKEN"}
    # Python itself may set LC_CTYPE at start-up (locale coercion, PEP 538).
    extra = {k for k in env if not k.startswith("PLUGBAY_")} - allowed - {"LC_CTYPE"}
    assert extra == set()
    assert Path(vm.cwd()) == folder
    assert host.permissions.allows("acme.vm", "env", "VM_TOKEN")


def test_a_permission_not_granted_fails_the_load_naming_the_grant_command(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    folder = exec_plugin(plugins_dir, "acme.vm", permissions='env = ["VM_TOKEN"]')
    python_plugin(plugins_dir)
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError) as caught:
        host.load("acme.vm")
    assert caught.value.step == "permissions"
    assert "permission env=VM_TOKEN is not granted" in str(caught.value)
    assert "plugbay grant acme.vm env=VM_TOKEN" in str(caught.value)
    assert host.state("acme.vm") is PluginState.FAILED
    assert pids_of(folder) == []  # refused before anything ran
    with pytest.raises(PermissionDenied):
        host.permissions.check("acme.vm", "env", "VM_TOKEN")
    assert host.get("tool", "fine") == "fine"


def test_a_wrapper_hook_cannot_run_out_of_process(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    exec_plugin(
        plugins_dir, "acme.vm", contributes={"hook": [{"name": "on_task", "wrapper": True}]}
    )
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError, match="cannot implement wrappers"):
        host.load("acme.vm")


# ---------------------------------------------------------------- finding the program


def test_a_platform_program_in_the_plugin_folder_is_run(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    folder = exec_plugin(plugins_dir, "acme.vm", entry="")
    text = (folder / "plugin.toml").read_text().replace('entry = ""\n', "")
    program = f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(CHILD))}\n"
    (folder / "bin").mkdir()
    (folder / "bin" / "vm").write_text(program)
    (folder / "bin" / "vm").chmod(0o755)
    platforms = f'platforms = {{ "{current_platform()}" = "bin/vm", "plan9-mips" = "x" }}\n'
    (folder / "plugin.toml").write_text(
        text.replace('runtime = "exec"\n', f'runtime = "exec"\n{platforms}')
    )
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    assert host.get("module", "vm").echo(1)["args"] == [1]


@pytest.mark.parametrize(
    "case",
    [
        ("./bin/missing --flag", None, r"program .*/bin/missing .* does not exist"),
        ("./bin/tool", "text", r"is not executable; make it executable: chmod \+x .*/bin/tool"),
        ("./bin", "folder", r"is a folder, not a program"),
        ("no-such-program-anywhere x", None, r"command 'no-such-program-anywhere' .* not found"),
        ("'unclosed", None, r"is not a valid command line"),
    ],
)
def test_a_program_that_cannot_run_fails_the_load_clearly(
    plugins_dir: Path, home: Path, make_host: Any, case: tuple[str, str | None, str]
) -> None:
    entry, setup, message = case
    folder = exec_plugin(plugins_dir, "acme.vm", entry=entry)
    python_plugin(plugins_dir)
    if setup is not None:
        (folder / "bin").mkdir()
    if setup == "text":
        (folder / "bin" / "tool").write_text("#!/bin/sh\n")
    write_config(home, fast=["acme.vm"])
    host: Host = make_host(plugins_dir)
    with pytest.raises(LoadError, match=message) as caught:
        host.get("module", "vm")
    assert caught.value.step == "spawn"
    assert host.state("acme.vm") is PluginState.FAILED
    assert host.get("tool", "fine") == "fine"


def test_resolve_command_rules(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)

    def resolve(entry: str | None, platforms: dict[str, str] | None = None) -> list[str]:
        return resolve_command(
            "acme.vm",
            tmp_path,
            entry=entry,
            platforms=platforms or {},
            platform="linux-x86_64",
            path=os.environ["PATH"],
        )

    assert resolve("python -m acme 'two words'") == [sys.executable, "-m", "acme", "two words"]
    assert resolve("python3 x.py")[0] == sys.executable
    assert resolve("./run.sh a") == [str(tmp_path / "run.sh"), "a"]
    assert resolve("sh -c true")[0].endswith("/sh")
    assert resolve(None, {"linux-x86_64": "run.sh"}) == [str(tmp_path / "run.sh")]
    with pytest.raises(
        LoadError,
        match=r"no program for this platform, linux-x86_64 \(it offers: "
        r"darwin-arm64, windows-x86_64\)",
    ):
        resolve("./run.sh", {"darwin-arm64": "a", "windows-x86_64": "b"})
    with pytest.raises(LoadError, match="has an empty entry"):
        resolve("  ")


def test_settings_take_the_protocol_defaults() -> None:
    from plugbay.config import RuntimeSettings

    assert ExecSettings.from_config(None) == ExecSettings()
    settings = ExecSettings.from_config(RuntimeSettings(call_timeout=2.5, max_restarts=0))
    assert (settings.call_timeout, settings.max_restarts) == (2.5, 0)
    assert settings.handshake_timeout == 10.0
    assert settings.max_line == 16 * 1024 * 1024
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-11) == "was killed by signal SIGSEGV"


def test_python_plugins_run_in_process_as_before(plugins_dir: Path, make_host: Any) -> None:
    python_plugin(plugins_dir)
    host: Host = make_host(plugins_dir)
    assert host.get("tool", "fine") == "fine"
    assert host._exec is None  # no exec runtime, no threads, for in-process plugins


LATE_PLUGIN = """
from plugbay.sdk import Plugin

plugin = Plugin()


class Late:
    def hello(self, name):
        return f"late hello, {name}"


@plugin.on_initialize
def setup(config, host):
    plugin.add("module", "late", Late())  # after the ready line: announced by initialize


plugin.run()
"""


def test_contributions_added_while_initializing_reach_the_registry(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    write_plugin(
        plugins_dir,
        "acme.late",
        entry="python late.py",
        activation="eager",
        contributes={},
        code={"late.py": LATE_PLUGIN},
        extra='runtime = "exec"\n',
    )
    write_config(home, fast=["acme.late"])

    host: Host = make_host(plugins_dir)
    host.start()

    assert [h.name for h in host.registry.handles("module")] == ["late"]
    assert host.get("module", "late").hello("Ada") == "late hello, Ada"
