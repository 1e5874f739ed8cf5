"""Plugin commands: listing and help from manifests, names, arguments, authorisation, errors.

Through the library (``Host.commands`` / ``Host.run_command``), through a host CLI that
mounts plugbay (``plugbay.cli.mount``), and through the real ``plugbay run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from conftest import write_plugin
from plugbay import Host, PluginState
from plugbay.cli import add_plugin_commands, mount
from plugbay.cli.app import Settings
from plugbay.commands import MAX_ARGUMENT_BYTES, RESERVED_COMMANDS, sanitize_args
from plugbay.errors import CommandError

TOOL_CODE = {
    "toolcmd.py": """
        import json, os, pathlib, sys

        marker = os.environ.get("PLUGBAY_TEST_MARKER")
        if marker:
            pathlib.Path(marker).write_text("imported")

        def greet(args):
            out = os.environ.get("TOOL_OUT")
            if out:
                pathlib.Path(out).write_text(json.dumps(args))
            print("hello " + " ".join(args))

        def code(args):
            return int(args[0])

        def refuse(args):
            return False

        def leave(args):
            sys.exit(int(args[0]))

        def boom(args):
            raise RuntimeError("kaput")
        """,
    "help/greet.md": "# greet\n\nSays **hello** to everyone named.\n",
}

TOOL_COMMANDS = [
    {
        "name": "greet",
        "entry": "toolcmd:greet",
        "summary": "Say hello to people",
        "help": "help/greet.md",
    },
    {"name": "code", "entry": "toolcmd:code", "summary": "Exit with a code"},
    {"name": "refuse", "entry": "toolcmd:refuse", "summary": "Return False"},
    {"name": "leave", "entry": "toolcmd:leave", "summary": "Call sys.exit"},
    {"name": "boom", "entry": "toolcmd:boom", "summary": "Raise"},
    {"name": "secure", "entry": "toolcmd:greet", "summary": "Guarded", "requires-auth": True},
]


def _tool(root: Path, plugin_id: str = "acme.tool", commands: Sequence[Any] = ()) -> Path:
    return write_plugin(
        root, plugin_id, contributes={"command": [*TOOL_COMMANDS, *commands]}, code=TOOL_CODE
    )


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the tool plugin writes when it is imported (absent until then)."""
    path = tmp_path / "imported"
    monkeypatch.setenv("PLUGBAY_TEST_MARKER", str(path))
    return path


@pytest.fixture
def received(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file where ``greet`` writes the arguments it received, as JSON."""
    path = tmp_path / "received.json"
    monkeypatch.setenv("TOOL_OUT", str(path))
    return path


# ------------------------------------------------------------------ through the library


def test_declared_commands_are_listed_without_importing_the_plugin(
    make_host: Any, plugins_dir: Path, marker: Path
) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir)

    usable, problems = host.commands()

    assert sorted(usable) == ["boom", "code", "greet", "leave", "refuse", "secure"]
    greet = usable["greet"]
    assert (greet.plugin_id, greet.summary, greet.help) == (
        "acme.tool",
        "Say hello to people",
        "help/greet.md",
    )
    assert greet.requires_auth is False
    assert usable["secure"].requires_auth is True
    assert problems == []
    assert not marker.exists()


def test_running_a_command_passes_the_arguments_and_returns_its_exit_code(
    make_host: Any, plugins_dir: Path, received: Path
) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir)

    assert host.run_command("greet", ["Ada", "--loud", "two words"]) == 0  # None means 0
    assert json.loads(received.read_text()) == ["Ada", "--loud", "two words"]
    assert host.run_command("code", ["7"]) == 7
    assert host.run_command("code", ["0"]) == 0
    assert host.run_command("refuse", []) == 1  # False is a failure, not exit code 0
    assert host.run_command("leave", ["4"]) == 4  # sys.exit() in a command is its exit code
    assert host.state("acme.tool") is PluginState.STARTED


def test_an_unknown_command_suggests_a_close_name(make_host: Any, plugins_dir: Path) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir)
    with pytest.raises(CommandError, match=r"no plugin provides a command named 'gret'; did you"):
        host.run_command("gret", [])


def test_colliding_names_are_refused_naming_both_sides(
    make_host: Any, plugins_dir: Path, tmp_path: Path, marker: Path
) -> None:
    _tool(plugins_dir, commands=[{"name": "deploy", "entry": "toolcmd:greet"}])
    _tool(plugins_dir, "acme.zzz", commands=[{"name": "status", "entry": "toolcmd:greet"}])
    # Higher precedence wins over a smaller id: a later search path holds acme.aaa.
    later = tmp_path / "later"
    write_plugin(
        later, "acme.aaa", contributes={"command": [{"name": "code", "entry": "x:y"}]}, code={}
    )
    host = make_host(plugins_dir, later)

    usable, problems = host.commands(reserved=["deploy", "plugins"])

    assert "deploy" not in usable
    assert "status" not in usable
    assert usable["greet"].plugin_id == "acme.tool"  # acme.tool < acme.zzz
    assert usable["code"].plugin_id == "acme.aaa"  # later path: higher precedence
    messages = sorted(p.message for p in problems)
    assert all(p.code == "command.refused" for p in problems)
    assert (
        "command 'deploy' from acme.tool is refused: the host's command line already has a "
        "command named 'deploy'; rename the command in the plugin's manifest" in messages
    )
    assert (
        "command 'status' from acme.zzz is refused: 'status' is a name plugbay reserves for its"
        " own commands; rename the command in the plugin's manifest" in messages
    )
    for name in ("greet", "boom", "secure"):
        assert (
            f"command {name!r} from acme.zzz is refused: acme.tool already provides {name!r}; "
            "disable one of the two plugins" in messages
        )
    assert (
        "command 'code' from acme.tool is refused: acme.aaa already provides 'code'; "
        "disable one of the two plugins" in messages
    )
    # The refusals are problems for doctor too, and the refused name says why when run.
    assert {p.message for p in host.commands()[1]} <= {p.message for p in host.problems()}
    with pytest.raises(CommandError, match="'status' is a name plugbay reserves"):
        host.run_command("status", [])
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(RESERVED_COMMANDS))
def test_every_reserved_name_is_refused(make_host: Any, plugins_dir: Path, name: str) -> None:
    write_plugin(plugins_dir, "acme.greedy", contributes={"command": [{"name": name}]})
    usable, problems = make_host(plugins_dir).commands()
    assert usable == {}
    assert [p.plugin_id for p in problems] == ["acme.greedy"]


def test_an_oversized_argument_is_refused_before_the_plugin_is_imported(
    make_host: Any, plugins_dir: Path, marker: Path
) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir)
    with pytest.raises(CommandError) as info:
        host.run_command("greet", ["small", "x" * 1024 * 1024])
    assert str(info.value) == (
        "greet: argument 2 is 1,048,576 bytes; a plugin command argument may be at most "
        "4,096 bytes (pass large data in a file and give its path)"
    )
    assert not marker.exists()
    assert host.state("acme.tool") is PluginState.RESOLVED


ESCAPES = [
    ("\x1b[31mred\x1b[0m", "red"),
    ("\x1b]0;title\x07", ""),
    ("\x1b]8;;https://evil.test\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("a\x00b", "ab"),
    ("\r\n", ""),
    ("line1\nline2", "line1line2"),
    ("back\x08space\x7f", "backspace"),
    ("\x9b31mcsi8\x9b0m", "csi8"),
    ("\x9d0;title\x9cafter", "after"),
    ("\x1bc\x1b[2J\x1b[Hcleared", "cleared"),
    ("keep\ttabs and ünïcödé ✓", "keep\ttabs and ünïcödé ✓"),
    ("--flag=\x1b[1mvalue", "--flag=value"),
]


@pytest.mark.parametrize(("raw", "clean"), ESCAPES)
def test_sanitize_args_removes_control_characters_and_escape_sequences(
    raw: str, clean: str
) -> None:
    assert sanitize_args("cmd", [raw]) == [clean]


def test_sanitize_args_measures_bytes_and_survives_lone_surrogates() -> None:
    assert sanitize_args("cmd", ["é" * (MAX_ARGUMENT_BYTES // 2)]) == ["é" * 2048]
    with pytest.raises(CommandError, match="argument 1 is 4,098 bytes"):
        sanitize_args("cmd", ["é" * (MAX_ARGUMENT_BYTES // 2 + 1)])
    assert sanitize_args("cmd", ["a\udcffb"]) == ["a\udcffb"]  # os.fsdecode of a bad byte
    assert sanitize_args("cmd", ["a\ud800b"]) == ["a\ud800b"]


def test_arguments_reach_the_plugin_sanitised(
    make_host: Any, plugins_dir: Path, received: Path
) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir)
    assert host.run_command("greet", [raw for raw, _ in ESCAPES]) == 0
    assert json.loads(received.read_text()) == [clean for _, clean in ESCAPES]


class Authoriser:
    """A host's authoriser that records what it was asked and answers ``answer``."""

    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, list[str]]] = []

    def __call__(self, command: str, plugin_id: str, args: Sequence[str]) -> bool:
        self.calls.append((command, plugin_id, list(args)))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_requires_auth_without_an_authoriser_is_refused(
    make_host: Any, plugins_dir: Path, marker: Path
) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir, authorize=None)
    with pytest.raises(CommandError) as info:
        host.run_command("secure", [])
    assert str(info.value) == (
        "secure: requires authorisation (acme.tool declares requires-auth = true), and this host "
        "has no authoriser; hosts pass Host(authorize=...)"
    )
    assert not marker.exists()
    assert host.run_command("greet", []) == 0  # commands without requires-auth still run


def test_requires_auth_refused_by_the_authoriser(
    make_host: Any, plugins_dir: Path, marker: Path
) -> None:
    _tool(plugins_dir)
    authorise = Authoriser(False)
    host = make_host(plugins_dir, authorize=authorise)
    with pytest.raises(CommandError) as info:
        host.run_command("secure", ["--prod"])
    assert str(info.value) == (
        "secure: not authorised: the host's authoriser refused this command from acme.tool"
    )
    assert authorise.calls == [("secure", "acme.tool", ["--prod"])]
    assert not marker.exists()


def test_requires_auth_allowed_by_the_authoriser_gets_the_sanitised_args(
    make_host: Any, plugins_dir: Path, received: Path
) -> None:
    _tool(plugins_dir)
    authorise = Authoriser(True)
    host = make_host(plugins_dir, authorize=authorise)
    assert host.run_command("secure", ["\x1b[31mprod\x1b[0m", "a\x00b"]) == 0
    assert authorise.calls == [("secure", "acme.tool", ["prod", "ab"])]
    assert json.loads(received.read_text()) == ["prod", "ab"]
    host.run_command("greet", [])
    assert len(authorise.calls) == 1  # only requires-auth commands are asked about


def test_an_authoriser_that_raises_refuses_with_a_clear_message(
    make_host: Any, plugins_dir: Path, marker: Path
) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir, authorize=Authoriser(ConnectionError("directory offline")))
    with pytest.raises(CommandError) as info:
        host.run_command("secure", [])
    assert str(info.value) == (
        "secure: not authorised: the host's authoriser failed: ConnectionError: directory offline"
    )
    assert not marker.exists()


def test_a_command_that_raises_names_the_command_and_the_plugin(
    make_host: Any, plugins_dir: Path
) -> None:
    _tool(plugins_dir)
    host = make_host(plugins_dir)
    with pytest.raises(CommandError) as info:
        host.run_command("boom", [])
    assert str(info.value) == "boom: failed in acme.tool: RuntimeError: kaput"
    detail = info.value.detail  # type: ignore[attr-defined]
    assert "Traceback" in detail
    assert "toolcmd.py" in detail
    assert (
        host.state("acme.tool") is PluginState.STARTED
    )  # a failing command is not a failing plugin
    assert host.run_command("code", ["3"]) == 3


BLOCKER_CODE = {
    "blocker.py": """
        SHARED = {}

        class Plugin:
            def init(self, ctx):
                SHARED["s"] = ctx.shared

            def stop(self):
                SHARED["s"]["stopped"].set()

        def wait(args):
            s = SHARED["s"]
            s["started"].set()
            assert s["release"].wait(30), "the test never released the command"
            return 5 if s["stopped"].is_set() else 0

        def reenter(args):
            s = SHARED["s"]
            getattr(s["host"], args[0])(*args[1:])
        """
}


@pytest.fixture
def blocker(make_host: Any, plugins_dir: Path) -> Iterator[Host]:
    """A host with acme.blocker, whose ``wait`` command blocks until ``release`` is set."""
    write_plugin(
        plugins_dir,
        "acme.blocker",
        entry="blocker:Plugin",
        contributes={
            "command": [
                {"name": "wait", "entry": "blocker:wait"},
                {"name": "reenter", "entry": "blocker:reenter"},
            ]
        },
        code=BLOCKER_CODE,
    )
    host: Host = make_host(plugins_dir)
    host.shared.update(
        started=threading.Event(),
        release=threading.Event(),
        stopped=threading.Event(),
        host=host,
    )
    yield host
    host.shared["release"].set()  # even when the test failed: no command is left blocked


@pytest.mark.parametrize("change", ["stop", "restart"])
def test_no_unload_while_a_command_runs(blocker: Host, change: str) -> None:
    host, shared = blocker, blocker.shared
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(code=host.run_command("wait", [])))
    runner.start()
    assert shared["started"].wait(10)

    if change == "stop":
        changer = threading.Thread(target=host.stop)
    else:
        changer = threading.Thread(target=host.restart, args=("acme.blocker",))
    changer.start()
    # Not synchronisation: time a wrong implementation would need to stop the plugin.
    changer.join(0.5)
    assert changer.is_alive(), f"{change}() did not wait for the running command"
    assert not shared["stopped"].is_set()
    assert host.state("acme.blocker") is PluginState.STARTED

    shared["release"].set()
    runner.join(10)
    changer.join(10)
    assert not runner.is_alive()
    assert not changer.is_alive()
    assert outcome["code"] == 0  # the plugin was still there when the command finished
    assert shared["stopped"].is_set()
    expected = PluginState.STOPPED if change == "stop" else PluginState.STARTED
    assert host.state("acme.blocker") is expected


@pytest.mark.parametrize("call", [["restart", "acme.blocker"], ["stop"]])
def test_a_command_that_unloads_plugins_gets_an_error_not_a_deadlock(
    blocker: Host, call: list[str]
) -> None:
    host = blocker
    host.load("acme.blocker")
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["code"] = host.run_command("reenter", call)
        except CommandError as exc:
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10), "the command deadlocked"
    message = str(outcome["error"])
    assert message.startswith(
        f"reenter: failed in acme.blocker: CommandError: reenter: {call[0]} cannot be called "
        "from inside a plugin command (reenter): plugins are not stopped, restarted or reloaded"
        " while a command runs"
    )
    assert host.state("acme.blocker") is PluginState.STARTED
    assert not host.shared["stopped"].is_set()


def test_a_command_may_run_another_command_while_a_stop_waits(
    make_host: Any, plugins_dir: Path
) -> None:
    write_plugin(
        plugins_dir,
        "acme.nested",
        entry="nested:Plugin",
        contributes={
            "command": [
                {"name": "outer", "entry": "nested:outer"},
                {"name": "inner", "entry": "nested:inner"},
            ]
        },
        code={
            "nested.py": """
                SHARED = {}

                class Plugin:
                    def init(self, ctx):
                        SHARED["s"] = ctx.shared

                def outer(args):
                    s = SHARED["s"]
                    s["started"].set()
                    assert s["release"].wait(30)
                    return s["host"].run_command("inner", ["x"]) + 10

                def inner(args):
                    return len(args)
                """
        },
    )
    host = make_host(plugins_dir)
    started, release = threading.Event(), threading.Event()
    host.shared.update(started=started, release=release, host=host)
    outcome: dict[str, int] = {}
    runner = threading.Thread(target=lambda: outcome.update(code=host.run_command("outer", [])))
    runner.start()
    try:
        assert started.wait(10)
        stop_begun = threading.Event()
        host.on(lambda event: stop_begun.set() if event.name == "host_stop" else None)
        stopper = threading.Thread(target=host.stop)
        stopper.start()
        assert stop_begun.wait(10)
    finally:
        release.set()  # outer now runs inner while stop() waits for outer
    runner.join(10)
    stopper.join(10)
    assert outcome == {"code": 11}
    assert host.state("acme.nested") is PluginState.STOPPED


# ------------------------------------------------------------------ through a host's CLI


def _host_cli(home: Path, tmp_path: Path, authorize: Any = None) -> click.Group:
    """An example host, ``opsrun``, with its own ``deploy`` command and plugbay mounted."""

    @click.group()
    def opsrun() -> None:
        """The operations tool."""

    @opsrun.command()
    def deploy() -> None:
        """Deploy the application."""
        click.echo("the host's own deploy")

    def make_host(settings: Settings) -> Host:
        return Host(
            "opsrun",
            "1.0.0",
            home=settings.home or home,
            entry_points=False,
            system_path=tmp_path / "no-system",
            project_path=tmp_path / "no-project",
            authorize=authorize,
        )

    mount(opsrun, "opsrun", name="plugins", api_version="1.0.0", host_factory=make_host)
    return opsrun


@pytest.fixture
def ops_home(home: Path) -> Path:
    _tool(home / "plugins", commands=[{"name": "deploy", "entry": "toolcmd:greet"}])
    return home


def test_host_cli_lists_plugin_commands_and_their_help_without_importing(
    ops_home: Path, tmp_path: Path, marker: Path
) -> None:
    cli = _host_cli(ops_home, tmp_path)
    runner = CliRunner()

    listed = runner.invoke(cli, ["--help"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert "Say hello to people" in lines["greet"]
    assert "Deploy the application." in lines["deploy"]  # the host's own deploy stays
    assert "plugins" in lines
    assert {"code", "boom", "secure"} <= set(lines)

    helped = runner.invoke(cli, ["greet", "--help"], catch_exceptions=False)
    assert helped.exit_code == 0, helped.output
    assert "Says hello to everyone named." in helped.stdout
    assert "**" not in helped.stdout  # rendered, not raw markdown
    fallback = runner.invoke(cli, ["code", "--help"], catch_exceptions=False)
    assert "Exit with a code" in fallback.stdout
    assert "acme.tool" in fallback.stdout
    assert not marker.exists()


def test_host_cli_runs_plugin_commands(
    ops_home: Path, tmp_path: Path, marker: Path, received: Path
) -> None:
    cli = _host_cli(ops_home, tmp_path)
    runner = CliRunner()

    result = runner.invoke(cli, ["greet", "Ada", "--help", "-v", "\x1b[1mBo"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello Ada --help -v Bo\n"
    assert json.loads(received.read_text()) == ["Ada", "--help", "-v", "Bo"]
    assert runner.invoke(cli, ["code", "42"]).exit_code == 42
    assert runner.invoke(cli, ["leave", "3"]).exit_code == 3
    own = runner.invoke(cli, ["deploy"])
    assert own.stdout == "the host's own deploy\n"  # the plugin's deploy is refused


def test_host_cli_reports_a_failing_command_in_one_line(ops_home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_host_cli(ops_home, tmp_path), ["boom"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == "error: boom: failed in acme.tool: RuntimeError: kaput"
    assert "Traceback" not in result.stderr


def test_host_cli_requires_auth_goes_through_the_hosts_authoriser(
    ops_home: Path, tmp_path: Path, received: Path
) -> None:
    runner = CliRunner()
    refused = runner.invoke(_host_cli(ops_home, tmp_path, Authoriser(False)), ["secure", "x"])
    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: secure: not authorised: the host's authoriser refused this command from acme.tool\n"
    )
    authorise = Authoriser(True)
    allowed = runner.invoke(_host_cli(ops_home, tmp_path, authorise), ["secure", "x"])
    assert allowed.exit_code == 0, allowed.output
    assert authorise.calls == [("secure", "acme.tool", ["x"])]


def test_host_cli_doctor_says_why_a_command_is_refused(ops_home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_host_cli(ops_home, tmp_path), ["plugins", "doctor"])
    assert result.exit_code == 0, result.output
    assert (
        "warning: command 'deploy' from acme.tool is refused: the host's command line already "
        "has a command named 'deploy'" in result.stdout
    )


def test_the_host_cli_stops_the_plugin_after_its_command(home: Path, tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    write_plugin(
        home / "plugins",
        "acme.life",
        entry="life:Plugin",
        contributes={"command": [{"name": "hi", "entry": "life:hi"}]},
        code={
            "life.py": f"""
                import pathlib
                class Plugin:
                    def stop(self):
                        pathlib.Path({str(stopped)!r}).write_text("stopped")
                def hi(args):
                    return 0
                """
        },
    )
    result = CliRunner().invoke(_host_cli(home, tmp_path), ["hi"])
    assert result.exit_code == 0, result.output
    assert stopped.read_text() == "stopped"


def test_add_plugin_commands_reads_each_invocations_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_plugin(first / "plugins", "acme.one", contributes={"command": [{"name": "one"}]})
    write_plugin(second / "plugins", "acme.two", contributes={"command": [{"name": "two"}]})

    @click.group()
    def opsrun() -> None:
        """The operations tool."""

    add_plugin_commands(opsrun, "opsrun")
    runner = CliRunner()
    monkeypatch.setenv("OPSRUN_HOME", str(first))
    assert "one" in runner.invoke(opsrun, ["--help"]).stdout
    monkeypatch.setenv("OPSRUN_HOME", str(second))
    helped = runner.invoke(opsrun, ["--help"]).stdout
    assert "two" in helped
    assert "one" not in helped


# ------------------------------------------------------------------ the real `plugbay run`


def plugbay(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real command in a fresh process, isolated from the machine's plugins."""
    return subprocess.run(
        [sys.executable, "-m", "plugbay", "--app", "testapp", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=home,
        check=False,
    )


def test_plugbay_run_runs_a_command_with_its_arguments(home: Path, tmp_path: Path) -> None:
    _tool(home / "plugins")
    out = tmp_path / "args.json"

    result = plugbay(
        home, "run", "greet", "Ada", "--json", "-vvv", "\x1b[31mred", TOOL_OUT=str(out)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello Ada --json -vvv red\n"
    assert json.loads(out.read_text()) == ["Ada", "--json", "-vvv", "red"]
    assert plugbay(home, "run", "code", "9").returncode == 9
    assert plugbay(home, "-v", "run", "leave", "0").returncode == 0


def test_plugbay_run_refuses_requires_auth_commands(home: Path, tmp_path: Path) -> None:
    _tool(home / "plugins")
    marker = tmp_path / "imported"
    result = plugbay(home, "run", "secure", PLUGBAY_TEST_MARKER=str(marker))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: secure: requires authorisation (acme.tool declares requires-auth = true), and "
        "this host has no authoriser; hosts pass Host(authorize=...)"
    ]
    assert not marker.exists()
    as_json = plugbay(home, "--json", "run", "secure")
    assert json.loads(as_json.stdout)["error"]["type"] == "CommandError"


def test_plugbay_run_errors_are_one_line_and_tracebacks_need_verbosity(home: Path) -> None:
    _tool(home / "plugins")
    plain = plugbay(home, "run", "boom")
    assert plain.returncode == 1
    assert plain.stdout == ""
    assert plain.stderr.splitlines() == [
        "error: boom: failed in acme.tool: RuntimeError: kaput",
        "(run with -v for details)",
    ]
    for flag in ("-v", "-vvv"):
        verbose = plugbay(home, flag, "run", "boom")
        assert verbose.returncode == 1
        assert verbose.stderr.startswith("error: boom: failed in acme.tool: RuntimeError: kaput\n")
        assert "Traceback" in verbose.stderr
        assert 'raise RuntimeError("kaput")' in verbose.stderr


def test_plugbay_run_refuses_big_arguments_and_reserved_names(home: Path, tmp_path: Path) -> None:
    _tool(home / "plugins", commands=[{"name": "status", "entry": "toolcmd:greet"}])
    marker = tmp_path / "imported"
    big = plugbay(home, "run", "greet", "y" * 5000, PLUGBAY_TEST_MARKER=str(marker))
    assert big.returncode == 1
    assert "argument 1 is 5,000 bytes" in big.stderr
    assert not marker.exists()
    reserved = plugbay(home, "run", "status")
    assert reserved.returncode == 1
    assert "'status' is a name plugbay reserves for its own commands" in reserved.stderr
    unknown = plugbay(home, "run", "gret")
    assert unknown.returncode == 1
    assert 'did you mean "greet"?' in unknown.stderr
    doctor = plugbay(home, "doctor")
    assert "command 'status' from acme.tool is refused" in doctor.stdout
