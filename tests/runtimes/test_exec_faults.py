"""Faults of out-of-process plugins: each is one test, and after each the host and its
other plugins (one more exec plugin, one in-process) keep working.

The faulty plugin is ``acme.bad`` (module ``bad``), its healthy neighbours ``acme.good``
(module ``good``) and ``ok.fine`` (tool ``fine``). Limits are short (see FAST).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from exec_support import (
    alive,
    exec_plugin,
    gone,
    pids_of,
    python_plugin,
    wait_until,
    write_config,
)

from plugbay import Host, LoadError, PluginCallError, PluginState


def _host(
    make_host: Any,
    plugins_dir: Path,
    home: Path,
    *flags: str,
    runtime: Mapping[str, Any] | None = None,
) -> tuple[Host, Path]:
    """A started host with the faulty plugin (child.py with ``flags``) and its neighbours."""
    folder = exec_plugin(plugins_dir, "acme.bad", *flags)
    exec_plugin(plugins_dir, "acme.good")
    python_plugin(plugins_dir)
    write_config(home, runtime={"acme.bad": dict(runtime or {})}, fast=["acme.good"])
    host: Host = make_host(plugins_dir)
    host.start()
    return host, folder


def _neighbours_work(host: Host) -> None:
    assert host.get("module", "good").echo("still here") == {"args": ["still here"], "kwargs": {}}
    assert host.get("tool", "fine") == "fine"
    assert host.state("acme.good") is PluginState.STARTED


def _call_error(fn: Any, *args: Any, **kwargs: Any) -> PluginCallError:
    with pytest.raises(PluginCallError) as caught:
        fn(*args, **kwargs)
    return caught.value


# ---------------------------------------------------------------- before the handshake


def test_exit_before_the_handshake(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, _ = _host(make_host, plugins_dir, home, "--exit-before-ready")
    with pytest.raises(LoadError) as caught:
        host.get("module", "bad")
    error = caught.value
    assert error.step == "handshake"
    assert "exited with code 3" in error.reason
    assert "before its plugbay/ready line" in error.reason
    assert error.detail == "dying early: no configuration"
    assert host.state("acme.bad") is PluginState.FAILED
    status = next(s for s in host.status() if s.id == "acme.bad")
    assert status.detail == "dying early: no configuration"
    _neighbours_work(host)


def test_no_ready_line_within_the_handshake_timeout(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    host, folder = _host(
        make_host, plugins_dir, home, "--no-ready", runtime={"handshake-timeout": 0.3}
    )
    with pytest.raises(LoadError, match=r"handshake failed: sent no plugbay/ready line within "):
        host.get("module", "bad")
    wait_until(lambda: gone(pids_of(folder)[0]), 2.0, "the end of the silent child")
    _neighbours_work(host)


def test_a_first_line_that_is_not_ready(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, folder = _host(make_host, plugins_dir, home, "--garbage-first")
    with pytest.raises(LoadError) as caught:
        host.get("module", "bad")
    assert caught.value.reason == (
        "did not start with the plugbay/ready notification; its first line: "
        "'Hello from a plugin that prints'"
    )
    assert gone(pids_of(folder)[0])
    _neighbours_work(host)


@pytest.mark.parametrize(
    ("flag", "reason"),
    [
        ("--protocol-2", "the plugin speaks protocol 2; this host speaks 1"),
        ("--wrong-cookie", "sent the wrong cookie in plugbay/ready"),
        ("--wrong-id", "says it is plugin 'someone.else', but the host started 'acme.bad'"),
    ],
)
def test_a_ready_line_the_host_refuses(
    plugins_dir: Path, home: Path, make_host: Any, flag: str, reason: str
) -> None:
    host, folder = _host(make_host, plugins_dir, home, flag)
    with pytest.raises(LoadError, match="handshake failed: " + reason):
        host.get("module", "bad")
    assert gone(pids_of(folder)[0])
    _neighbours_work(host)


def test_an_initialize_error_fails_the_start(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, folder = _host(make_host, plugins_dir, home, "--init-error")
    with pytest.raises(LoadError) as caught:
        host.get("module", "bad")
    assert str(caught.value) == "acme.bad: init failed: cannot initialise: token refused"
    wait_until(lambda: gone(pids_of(folder)[0]), 2.0, "the end of the child that failed init")
    _neighbours_work(host)


# ---------------------------------------------------------------- during and between calls


def test_exit_mid_call_then_a_restart(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, folder = _host(make_host, plugins_dir, home)
    bad = host.get("module", "bad")
    first = bad.pid()
    error = _call_error(bad.exit, 7)
    assert error.cause == "exited"
    assert error.target == "module:bad"
    assert error.reason.startswith("exited with code 7")
    assert error.detail is not None
    assert "exiting with 7 on request" in error.detail
    _neighbours_work(host)
    assert bad.pid() != first  # restarted on the next call
    assert len(pids_of(folder)) == 2
    assert host.state("acme.bad") is PluginState.STARTED


def test_killed_by_a_signal(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, _ = _host(make_host, plugins_dir, home)
    error = _call_error(host.get("module", "bad").signal)
    assert (error.cause, error.reason) == ("exited", "was killed by signal SIGSEGV")
    _neighbours_work(host)


def test_exit_between_calls(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, folder = _host(make_host, plugins_dir, home)
    bad = host.get("module", "bad")
    assert bad.exit_soon() == "bye"
    first = pids_of(folder)[0]
    wait_until(lambda: gone(first), 2.0, "the child's own exit")

    def noticed() -> bool:
        return "not running" in host.health()["acme.bad"].message

    wait_until(noticed, 2.0, "the host noticing the exit")
    health = host.health()["acme.bad"]
    assert health.status == "degraded"
    assert "exited with code 5" in health.message
    _neighbours_work(host)
    assert bad.echo(2)["args"] == [2]
    assert bad.pid() != first


def test_a_call_past_its_deadline_is_cancelled(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    # A long grace: the child answers $/cancel at once, however busy the machine is.
    host, _ = _host(make_host, plugins_dir, home, runtime={"call-timeout": 0.2, "cancel-grace": 5})
    bad = host.get("module", "bad")
    pid = bad.pid()
    error = _call_error(bad.sleep)
    assert error.cause == "deadline"
    assert error.reason == "did not finish within its 0.2 s deadline; it was cancelled"
    assert bad.pid() == pid
    _neighbours_work(host)


def test_a_child_that_ignores_cancel_is_killed(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    host, _ = _host(
        make_host,
        plugins_dir,
        home,
        "--ignore-cancel",
        runtime={"call-timeout": 0.2, "cancel-grace": 0.2},
    )
    bad = host.get("module", "bad")
    pid = bad.pid()
    error = _call_error(bad.sleep)
    assert error.cause == "deadline"
    assert error.reason == "hung past its 0.2 s deadline and ignored $/cancel"
    wait_until(lambda: gone(pid), 2.0, "the end of the hung child")
    _neighbours_work(host)
    assert bad.pid() != pid


def test_garbage_on_stdout(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, _ = _host(make_host, plugins_dir, home)
    bad = host.get("module", "bad")
    pid = bad.pid()
    error = _call_error(bad.garbage)
    assert error.cause == "protocol"
    assert error.reason == "wrote a non-protocol line: 'Traceback? no: just a stray print'"
    assert gone(pid)
    _neighbours_work(host)
    assert bad.echo(3)["args"] == [3]


def test_a_partial_line(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, _ = _host(make_host, plugins_dir, home)
    error = _call_error(host.get("module", "bad").partial)
    assert error.cause == "protocol"
    assert error.reason == 'wrote a partial line before it ended: \'{"jsonrpc":"2.0","id":\''
    _neighbours_work(host)


def test_a_100_mb_line_is_cut_at_the_cap(plugins_dir: Path, home: Path, make_host: Any) -> None:
    cap = 1024 * 1024
    host, _ = _host(make_host, plugins_dir, home, runtime={"max-line": cap})
    bad = host.get("module", "bad")
    pid = bad.pid()
    error = _call_error(bad.huge, 100 * 1024 * 1024)
    assert error.cause == "protocol"
    assert error.reason.startswith(
        f"wrote a line longer than the {cap}-byte limit (max-line): 'xxxxxxxx"
    )
    assert len(error.reason) < 300  # quoted, not copied
    wait_until(lambda: gone(pid), 2.0, "the end of the child")
    _neighbours_work(host)


def test_closing_stdout_but_running_on(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, _ = _host(make_host, plugins_dir, home)
    bad = host.get("module", "bad")
    pid = bad.pid()
    error = _call_error(bad.close_stdout)
    assert (error.cause, error.reason) == ("protocol", "closed its stdout and kept running")
    assert gone(pid)
    _neighbours_work(host)


def test_a_flood_on_stderr_is_logged_within_bounds(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    host, _ = _host(make_host, plugins_dir, home)
    assert host.get("module", "bad").flood(3 * 1024 * 1024) == "flooded"
    log = home / "logs" / "plugins" / "acme.bad.log"
    old = log.with_name("acme.bad.log.1")
    assert log.stat().st_size <= 1024 * 1024
    assert old.stat().st_size <= 1024 * 1024
    assert old.read_text().startswith("flood yyy")  # rotated, not truncated mid-line
    _neighbours_work(host)


# ---------------------------------------------------------------- stopping


def test_grandchildren_are_gone_after_stop(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, _ = _host(make_host, plugins_dir, home)
    bad = host.get("module", "bad")
    family = [bad.pid(), *bad.fork(2)]
    assert all(alive(pid) for pid in family)
    host.stop()
    wait_until(lambda: all(gone(pid) for pid in family), 2.0, "the end of the process group")


def test_a_child_that_ignores_shutdown_is_killed(
    plugins_dir: Path, home: Path, make_host: Any
) -> None:
    host, _ = _host(
        make_host, plugins_dir, home, "--ignore-shutdown", runtime={"shutdown-grace": 0.2}
    )
    pid = host.get("module", "bad").pid()
    _neighbours_work(host)
    host.stop()
    assert gone(pid)
    log = (home / "logs" / "plugins" / "acme.bad.log").read_text()
    assert "ignored shutdown for 0.2 s; sending SIGTERM" in log
    assert "ignored SIGTERM for 0.2 s; killing it" in log
    assert host.state("acme.good") is PluginState.STOPPED


def _host_process(home: Path, plugins_dir: Path, then: str) -> tuple[subprocess.Popen[str], int]:
    """A host in a process of its own that starts acme.bad, then runs ``then``; and the
    pid of acme.bad's child."""
    script = textwrap.dedent(
        f"""
        import sys
        from plugbay import Host

        host = Host("separate", "1.0.0", home={str(home)!r}, paths=[{str(plugins_dir)!r}],
                    entry_points=False, system_path="/nonexistent", project_path="/nonexistent")
        print(host.get("module", "bad").pid(), flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script + then],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise AssertionError(f"the host process failed: {process.communicate()[1]}")
    return process, int(line)


def test_children_die_with_a_host_killed_by_sigkill(plugins_dir: Path, home: Path) -> None:
    # It ignores the end of its stdin and SIGTERM: only the parent-death signal ends it.
    exec_plugin(plugins_dir, "acme.bad", "--ignore-shutdown")
    write_config(home, fast=["acme.bad"])
    host, child = _host_process(home, plugins_dir, "sys.stdin.read()\n")
    try:
        assert alive(child)
    finally:
        os.kill(host.pid, signal.SIGKILL)
        host.communicate()
    wait_until(lambda: gone(child), 1.0, f"the end of child {child} after the host's kill -9")


def test_children_are_stopped_when_the_interpreter_exits(plugins_dir: Path, home: Path) -> None:
    exec_plugin(plugins_dir, "acme.bad")
    write_config(home, fast=["acme.bad"])
    host, child = _host_process(home, plugins_dir, "")  # no host.stop(): atexit does it
    assert host.wait(timeout=10) == 0
    host.communicate()
    assert gone(child)
    log = (home / "logs" / "plugins" / "acme.bad.log").read_text()
    assert f"pid {child} ended (exited with code 0): was stopped by the host" in log


# ---------------------------------------------------------------- the restart budget


def test_the_restart_budget_then_failed(plugins_dir: Path, home: Path, make_host: Any) -> None:
    host, folder = _host(make_host, plugins_dir, home, runtime={"max-restarts": 2})
    bad = host.get("module", "bad")
    for _ in range(3):  # the first process, then two restarts: all crash
        assert _call_error(bad.exit, 3).cause == "exited"
    assert len(pids_of(folder)) == 3

    def failed() -> bool:
        return host.state("acme.bad") is PluginState.FAILED

    wait_until(failed, 2.0, "the plugin being marked failed")
    status = next(s for s in host.status() if s.id == "acme.bad")
    assert status.reason == (
        "run failed: crashed 3 times within 300 s (max-restarts = 2); last: exited with code 3 "
        "(stderr: exiting with 3 on request)"
    )
    error = _call_error(bad.echo, 1)
    assert error.cause == "failed"
    assert "is marked failed: crashed 3 times" in error.reason
    with pytest.raises(LoadError, match="crashed 3 times"):
        host.get("module", "bad")
    assert len(pids_of(folder)) == 3  # no fourth process
    _neighbours_work(host)

    assert host.restart("acme.bad") is PluginState.STARTED  # a fresh budget
    assert host.get("module", "bad").echo(4)["args"] == [4]
