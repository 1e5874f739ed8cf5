"""The conformance kit (``plugbay protocol-check``), against real plugin processes.

A well-behaved Python child, written here by hand with ``json``, passes every case; the
same child with one fault switched on fails the case that fault breaks. The JavaScript
example (examples/plugins/js-greeter) passes too, through the library and the command.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import run_plugbay
from plugbay.protocol_check import CheckReport, check

ROOT = Path(__file__).resolve().parent.parent
JS_GREETER = ROOT / "examples" / "plugins" / "js-greeter"
SDK_GREETER = ROOT / "examples" / "plugins" / "sdk-greeter"

# Short waits for the faults, which hang on purpose: each hang costs one of these. Tests of
# well-behaved children keep the defaults, which they never wait out.
FAST = {"timeout": 1.5, "cancel_grace": 0.5, "shutdown_grace": 0.5}

#: A plugin child with only the standard library. argv[1] names a fault to show, if any.
CHILD = r"""
import json, os, subprocess, sys, threading, time

FAULT = sys.argv[1] if len(sys.argv) > 1 else ""
lock = threading.Lock()
answered = set()
cancels = {}


def send(msg):
    with lock:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


def answer(ident, result=None, error=None):
    with lock:
        if ident in answered:
            return
        answered.add(ident)
    if error is None:
        send({"jsonrpc": "2.0", "id": ident, "result": result})
    else:
        send({"jsonrpc": "2.0", "id": ident, "error": {"code": error[0], "message": error[1]}})


def wait(ident, cancelled):
    if FAULT == "ignore-cancel":
        threading.Event().wait()  # hangs, whatever the host says
    if cancelled.wait(5):
        answer(ident, error=(-32800, "cancelled"))
    else:
        answer(ident, "waited 5 s")


def invoke(ident, params):
    target = (params["contribution"], params["method"])
    if target == ("module:echo", "echo"):
        if FAULT == "crash-in-call":
            os._exit(7)
        answer(ident, {"args": params["args"], "kwargs": params["kwargs"]})
    elif target == ("module:echo", "wait"):
        cancels[ident] = threading.Event()
        threading.Thread(target=wait, args=(ident, cancels[ident]), daemon=True).start()
    elif target == ("command:echo-cmd", None):
        answer(ident, 0)
    else:
        answer(ident, error=(-32001, "no such contribution"))


if FAULT == "grandchild":
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.environ["PIDFILE"], "w") as f:
        f.write(str(kid.pid))
if FAULT == "no-ready":
    threading.Event().wait()
if FAULT == "garbage":
    print("hello from a stray print", flush=True)
if FAULT == "huge-line":
    sys.stdout.write("x" * 5000 + "\n")
    sys.stdout.flush()
send({"jsonrpc": "2.0", "method": "plugbay/ready", "params": {
    "protocol": 2 if FAULT == "version" else 1,
    "cookie": "not-the-cookie" if FAULT == "wrong-cookie" else os.environ["PLUGBAY_COOKIE"],
    "plugin": {"id": "test.echo", "version": "1.0.0"},
    "contributions": {
        "module": [{"name": "echo", "methods": ["echo", "wait"], "check": ["echo"],
                    "check-slow": "wait"}],
        "command": [{"name": "echo-cmd", "check": True}],
    },
}})
send({"jsonrpc": "2.0", "method": "log", "params": {"level": "info", "message": "ready"}})

for line in sys.stdin:
    msg = json.loads(line)
    method, ident, params = msg["method"], msg.get("id"), msg.get("params", {})
    if ident is None:
        if method == "$/cancel" and params["id"] in cancels:
            if FAULT != "ignore-cancel":
                cancels[params["id"]].set()
    elif method == "initialize":
        answer(ident, {})
    elif method == "health":
        if FAULT == "stray-print":
            print("debugging: got health", flush=True)
        if FAULT == "close-stdout":
            os.close(1)
            threading.Event().wait()
        answer(ident, {"status": "ok"})
    elif method == "invoke":
        invoke(ident, params)
    elif method == "shutdown":
        if FAULT == "exit-seen-first" and os.fork() == 0:
            # The answer comes from a copy that outlives this process by a moment: the
            # checker sees the exit before it reads the answer.
            time.sleep(0.2)
            answer(ident, {})
            os._exit(0)
        if FAULT == "exit-seen-first":
            os._exit(0)
        answer(ident, {})
        if FAULT != "linger-after-shutdown":
            sys.exit(0)
    elif FAULT != "silent-unknown":
        answer(ident, error=(-32601, "unknown method " + method))
if FAULT == "ignore-eof":
    threading.Event().wait()
"""


@pytest.fixture
def child(tmp_path: Path) -> list[str]:
    """The command of the hand-written child (add a fault name to break it)."""
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return [sys.executable, str(path)]


@pytest.fixture
def node() -> str:
    """The Node.js executable: the JavaScript example needs it (a failure, never a skip)."""
    found = shutil.which("node")
    if found is None:
        pytest.fail(
            "node (Node.js) is not installed: it is needed to run examples/plugins/js-greeter"
        )
    return found


def statuses(report: CheckReport) -> dict[str, str]:
    return {c.name: c.status for c in report.cases}


def failed(report: CheckReport) -> list[str]:
    return [c.name for c in report.cases if c.status == "fail"]


ALL_CASES = [
    "ready",
    "initialize",
    "health",
    "unknown-method",
    "unknown-contribution",
    "overlap",
    "cancel",
    "cancel-unknown",
    "shutdown",
    "eof",
]


def test_a_well_behaved_child_passes_every_case(child: list[str], tmp_path: Path) -> None:
    report = check(child, cwd=tmp_path)

    assert report.passed, [c for c in report.cases if not c.passed]
    names = [c.name for c in report.cases]
    assert [n for n in names if not n.startswith("invoke ")] == ALL_CASES
    assert "invoke module:echo.echo" in names
    assert "invoke command:echo-cmd" in names
    assert "invoke module:echo.wait" not in names  # not marked safe to call ("check")
    assert (report.plugin_id, report.plugin_version) == ("test.echo", "1.0.0")
    assert report.logs == 2  # one "ready" log per run
    assert "-32800" in report.case("cancel").reason
    assert "exited with code 0" in report.case("shutdown").reason


def test_an_exit_seen_before_the_shutdown_answer_still_passes(child: list[str]) -> None:
    """The exit and the answer are reported by two threads: either may come first."""
    report = check([*child, "exit-seen-first"], **FAST)

    assert statuses(report)["shutdown"] == "pass", [c for c in report.cases if not c.passed]
    assert report.passed


def test_the_javascript_example_passes_every_case(node: str) -> None:
    report = check([node, "greeter.js"], cwd=JS_GREETER, timeout=5.0)

    assert report.passed, [c for c in report.cases if not c.passed]
    assert report.plugin_id == "acme.js_greeter"
    names = {c.name for c in report.cases}
    assert set(ALL_CASES) <= names
    assert {
        "invoke module:js_greet.greet",
        "invoke module:js_greet.describe",
        "invoke hook:before_task_run",
        "invoke command:js-greet",
    } <= names
    # Its slow call was in flight (health answered meanwhile) and was cancelled.
    assert "error -32800" in report.case("cancel").reason


def test_the_sdk_example_passes_every_case() -> None:
    script = SDK_GREETER / "greeter.py"
    assert script.is_file(), f"the SDK example is missing: {script}"
    report = check([sys.executable, "greeter.py"], cwd=SDK_GREETER, plugin_id="acme.sdk_greeter")

    assert report.passed, [c for c in report.cases if not c.passed]
    assert set(ALL_CASES) <= {c.name for c in report.cases}
    assert "error -32800" in report.case("cancel").reason  # its check-slow call was cancelled


@pytest.mark.parametrize(
    ("fault", "case", "reason"),
    [
        ("no-ready", "ready", "no line on stdout within 1.5 s"),
        ("garbage", "ready", "'hello from a stray print'"),
        ("wrong-cookie", "ready", "does not echo the cookie"),
        ("version", "ready", "the plugin speaks protocol 2; this host speaks 1"),
    ],
)
def test_a_bad_handshake_fails_ready_and_nothing_else_runs(
    child: list[str], fault: str, case: str, reason: str
) -> None:
    report = check([*child, fault], **FAST)

    assert failed(report) == [case]
    assert reason in report.case(case).reason
    assert set(statuses(report).values()) == {"fail", "skip"}
    assert not report.passed


@pytest.mark.parametrize(
    ("fault", "case", "reason"),
    [
        ("silent-unknown", "unknown-method", "no answer to plugbay-check/no-such-method"),
        ("ignore-cancel", "cancel", "was not answered within 0.5 s of $/cancel"),
        ("linger-after-shutdown", "shutdown", "still running 0.5 s after shutdown"),
        ("ignore-eof", "eof", "still running 0.5 s after the end of its stdin"),
    ],
)
def test_a_fault_fails_the_case_it_breaks(
    child: list[str], fault: str, case: str, reason: str
) -> None:
    report = check([*child, fault], **FAST)

    assert case in failed(report)
    assert reason in report.case(case).reason
    # The kit went on: the cases that do not touch the fault still pass.
    for other in ("ready", "initialize", "health", "unknown-contribution"):
        assert report.case(other).passed, report.case(other)
    assert not report.passed


def test_only_the_faulty_cases_fail(child: list[str]) -> None:
    # A child that does not exit after shutdown still exits at the end of its stdin,
    # and the other way round: the kit keeps the two apart.
    lingering = check([*child, "linger-after-shutdown"], **FAST)
    deaf = check([*child, "ignore-eof"], **FAST)

    assert failed(lingering) == ["shutdown"]
    assert failed(deaf) == ["eof"]


@pytest.mark.parametrize(
    ("fault", "case", "reason"),
    [
        ("crash-in-call", "invoke module:echo.echo", "the child exited with code 7"),
        ("close-stdout", "health", "the child closed its stdout but is still running"),
        ("stray-print", "health", "a line that is not JSON: 'debugging: got health'"),
    ],
)
def test_a_fault_that_ends_the_conversation_skips_the_rest_of_that_run(
    child: list[str], fault: str, case: str, reason: str
) -> None:
    report = check([*child, fault], **FAST)

    assert report.case(case).status == "fail"
    assert reason in report.case(case).reason
    assert report.case("shutdown").status == "skip"
    assert "not run: the conversation ended during" in report.case("shutdown").reason
    # The second run is a fresh process that is never asked what triggers the fault.
    assert report.case("eof").passed


def test_a_line_over_the_cap_is_a_protocol_violation(child: list[str]) -> None:
    report = check([*child, "huge-line"], max_line=1000, **FAST)

    assert failed(report) == ["ready"]
    assert "longer than the 1000-byte cap" in report.case("ready").reason


def test_a_missing_command_fails_ready(tmp_path: Path) -> None:
    missing = check([str(tmp_path / "no-such-plugin")], **FAST)
    not_executable = tmp_path / "plugin.sh"
    not_executable.write_text("#!/bin/sh\n")
    denied = check([str(not_executable)], **FAST)

    assert failed(missing) == ["ready"]
    assert "No such file or directory" in missing.case("ready").reason
    assert failed(denied) == ["ready"]
    assert "is it executable?" in denied.case("ready").reason


def test_every_process_is_gone_when_check_returns(child: list[str], tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    env = {"PATH": os.environ.get("PATH", ""), "PIDFILE": str(pidfile)}

    report = check([*child, "grandchild"], env=env)

    assert report.passed, [c for c in report.cases if not c.passed]
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid):
        assert time.monotonic() < deadline, f"grandchild {pid} outlived the kit"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_child_sees_a_hosts_environment(tmp_path: Path) -> None:
    dump = tmp_path / "env.json"
    script = tmp_path / "dump.py"
    script.write_text(
        "import json, os, sys\n"
        f"open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        "sys.exit(1)\n"
    )
    os.environ["PLUGBAY_TEST_SECRET"] = "must-not-leak"
    try:
        check([sys.executable, str(script)], cwd=tmp_path, plugin_id="acme.greeter", **FAST)
    finally:
        del os.environ["PLUGBAY_TEST_SECRET"]

    seen = json.loads(dump.read_text())
    assert seen["PLUGBAY_PROTOCOL_VERSIONS"] == "1"
    assert len(seen["PLUGBAY_COOKIE"]) >= 32
    assert seen["PLUGBAY_PLUGIN_ID"] == "acme.greeter"
    assert seen["PLUGBAY_PLUGIN_DIR"] == str(tmp_path)
    assert seen["PLUGBAY_PARENT_PID"] == str(os.getpid())
    assert seen["PATH"] == os.environ["PATH"]
    assert "PLUGBAY_TEST_SECRET" not in seen  # only what a host passes an ungranted plugin


def test_a_plugin_id_that_differs_from_the_ready_line_fails(child: list[str]) -> None:
    report = check(child, plugin_id="acme.other")

    assert failed(report) == ["ready"]
    assert "names plugin 'test.echo'; expected 'acme.other'" in report.case("ready").reason


# The command line


def test_cli_passes_the_javascript_example(home: Path, node: str) -> None:
    result = run_plugbay(home, "protocol-check", "--cwd", str(JS_GREETER), node, "greeter.js")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS ready: protocol 1, acme.js_greeter 0.1.0")
    assert all(line.startswith("PASS ") for line in lines[:-1])
    assert lines[-1] == f"{len(lines) - 1} passed, 0 failed"


def test_cli_json_document(home: Path, node: str) -> None:
    result = run_plugbay(
        home, "--json", "protocol-check", "--cwd", str(JS_GREETER), node, "greeter.js"
    )

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["passed"] is True
    assert doc["command"] == [node, "greeter.js"]
    assert doc["plugin"] == {"id": "acme.js_greeter", "version": "0.1.0"}
    assert {"name", "status", "reason", "seconds"} == set(doc["cases"][0])
    assert doc["summary"] == {"passed": len(doc["cases"]), "failed": 0, "skipped": 0}


def test_cli_exit_1_names_the_failing_case(home: Path, child: list[str]) -> None:
    result = run_plugbay(home, "protocol-check", "--timeout", "1", *child, "wrong-cookie")
    as_json = run_plugbay(home, "protocol-check", "--json", *child, "wrong-cookie")

    assert result.returncode == 1
    assert "FAIL ready: plugbay/ready does not echo the cookie" in result.stdout
    assert "SKIP initialize: not run" in result.stdout
    assert result.stdout.splitlines()[-1] == "0 passed, 1 failed, 9 not run"
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["passed"] is False
    assert doc["cases"][0]["status"] == "fail"
    assert doc["summary"]["failed"] == 1


def test_cli_quiet_prints_only_failures(home: Path, child: list[str]) -> None:
    good = run_plugbay(home, "protocol-check", "-q", *child)
    bad = run_plugbay(home, "protocol-check", "-q", "--timeout", "1", *child, "silent-unknown")

    assert (good.returncode, good.stdout) == (0, "")
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAIL unknown-method: ")
    assert "PASS" not in bad.stdout


def test_cli_arguments_after_the_command_belong_to_it(home: Path, child: list[str]) -> None:
    # `--timeout` after CMD is the child's argv[1]: an unknown fault, so a good child.
    result = run_plugbay(home, "protocol-check", *child, "--timeout")

    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_usage_errors_exit_2(home: Path) -> None:
    no_command = run_plugbay(home, "protocol-check")
    bad_timeout = run_plugbay(home, "protocol-check", "--timeout", "0", "true")

    assert no_command.returncode == 2
    assert "Missing argument" in no_command.stderr
    assert bad_timeout.returncode == 2


def test_a_commands_logs_are_its_output(node: str, home: Path) -> None:
    """`plugbay run`: an out-of-process command prints through log notifications."""
    installed = run_plugbay(home, "install", str(JS_GREETER))
    assert installed.returncode == 0, installed.stderr
    greeted = run_plugbay(home, "run", "js-greet", "Ada", "Bob")
    assert (greeted.returncode, greeted.stdout) == (0, "Hello, Ada!\nHello, Bob!\n")
    assert greeted.stderr == ""
    refused = run_plugbay(home, "run", "js-greet", "--bad")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == "error: js-greet: unknown option --bad\n"
    quiet = run_plugbay(home, "-q", "run", "js-greet", "Ada")
    assert (quiet.returncode, quiet.stdout) == (0, "")
    logged = run_plugbay(home, "-v", "run", "js-greet", "Ada")
    assert "info [acme.js_greeter]: Hello, Ada!" in logged.stderr


def test_the_javascript_example_loads_through_a_host(
    node: str, make_host: Any, plugins_dir: Path, home: Path
) -> None:
    from plugbay.errors import PluginCallError

    shutil.copytree(JS_GREETER, plugins_dir / "js-greeter")
    host = make_host(plugins_dir)
    host.hooks.declare("before_task_run", ["task"])
    host.start()

    greeter = host.get("module", "js_greet")
    assert greeter.greet("Ada") == "Hello, Ada!"
    assert greeter.greet(name="Eve") == "Hello, Eve!"
    assert host.hooks.before_task_run(task="build") == ["Hello from JavaScript, before build"]
    assert host.run_command("js-greet", ["Bob"]) == 0
    with pytest.raises(PluginCallError, match="Error: nope") as raised:
        greeter.fail("nope")
    assert raised.value.cause == "error"
    with pytest.raises(PluginCallError) as late:
        greeter.slow(60_000, _timeout=0.2)  # cancelled at its deadline, not killed
    assert late.value.cause == "deadline"
    facts = greeter.describe()
    assert facts["plugin"] == "acme.js_greeter"
    assert greeter.describe()["pid"] == facts["pid"]  # the same child: it survived the cancel
    assert (home / "logs" / "plugins" / "acme.js_greeter.log").is_file()

    host.stop()
    deadline = time.monotonic() + 5
    while _alive(facts["pid"]):
        assert time.monotonic() < deadline, "the node child outlived host.stop()"
        time.sleep(0.02)
