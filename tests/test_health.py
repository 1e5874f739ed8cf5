"""Health: last success, periodic checks, restarts under a budget, a check that hangs."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from conftest import run_plugbay, write_plugin
from plugbay import Host, PluginState
from plugbay.health import HealthMonitor

DATA = Path(__file__).resolve().parent / "data"

# health() answers what ctx.shared["answer"] holds now ("hang": waits for "release").
SICK = {
    "life.py": """\
        class Plugin:
            def init(self, ctx):
                self.shared = ctx.shared
                self.shared["inits"] = self.shared.get("inits", 0) + 1

            def health(self):
                answer = self.shared["answer"]
                if answer == "hang":
                    self.shared["release"].wait()
                    return True
                return answer
        """
}


def wait_for(what: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``what`` until true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so that a hung health check never leaves a thread blocked."""
    event = threading.Event()
    yield event
    event.set()


def _sick_host(make_host: Any, root: Path, release: threading.Event, **kwargs: Any) -> Host:
    write_plugin(root, "acme.sick", entry="life:Plugin", activation="eager", code=SICK)
    host: Host = make_host(root, **kwargs)
    host.shared.update(answer=True, release=release)
    host.start()
    return host


def test_last_ok_is_kept_while_a_plugin_fails(
    make_host: Any, plugins_dir: Path, release: threading.Event
) -> None:
    host = _sick_host(make_host, plugins_dir, release)
    ok = host.health()["acme.sick"]
    assert ok.status == "ok"
    assert ok.last_ok == ok.checked_at
    host.shared["answer"] = {"status": "failed", "message": "database down"}
    failed = host.health()["acme.sick"]
    assert (failed.status, failed.message) == ("failed", "database down")
    assert failed.last_ok == ok.checked_at
    assert host.metrics.snapshot()["plugins"]["acme.sick"]["health_failures"] == 1


def test_a_hanging_check_fails_and_is_not_started_again(
    make_host: Any, plugins_dir: Path, release: threading.Event
) -> None:
    host = _sick_host(make_host, plugins_dir, release, health_timeout=0.2)
    host.shared["answer"] = "hang"
    first = host.health()["acme.sick"]
    assert first.status == "failed"
    assert "did not finish within 0.2 s" in first.message
    threads = threading.active_count()
    t0 = time.monotonic()
    again = host.health()["acme.sick"]
    assert time.monotonic() - t0 < 0.2  # not waited for a second time
    assert again.status == "failed"
    assert "previous health check has not returned" in again.message
    assert threading.active_count() == threads  # no second hung thread
    host.shared["answer"] = True
    release.set()
    wait_for(lambda: host.health()["acme.sick"].status == "ok")


def test_periodic_checks_restart_a_failing_plugin_within_the_budget(
    make_host: Any, plugins_dir: Path, home: Path, release: threading.Event
) -> None:
    config = {"health": {"interval": 0.02, "max-restarts": 2, "restart-window": 60}}
    (home / "config.toml").write_text(tomli_w.dumps(config))
    host = _sick_host(make_host, plugins_dir, release)
    assert host.shared["inits"] == 1
    host.shared["answer"] = False  # failed from now on
    wait_for(lambda: host.metrics.snapshot()["plugins"]["acme.sick"]["restarts"] == 2)
    # The budget is spent: more failed rounds, no more restarts.
    failures = host.metrics.snapshot()["plugins"]["acme.sick"]["health_failures"]
    wait_for(
        lambda: host.metrics.snapshot()["plugins"]["acme.sick"]["health_failures"] >= failures + 5
    )
    assert host.metrics.snapshot()["plugins"]["acme.sick"]["restarts"] == 2
    assert host.shared["inits"] == 3
    assert host.state("acme.sick") is PluginState.STARTED
    host.stop()
    assert not any(t.name == "plugbay health" for t in threading.enumerate())


def test_a_hanging_check_is_restarted_by_the_monitor(
    make_host: Any, plugins_dir: Path, release: threading.Event
) -> None:
    rounds: list[dict[str, Any]] = []
    host = _sick_host(make_host, plugins_dir, release, health_timeout=0.1)
    monitor = HealthMonitor(host, 60.0, max_restarts=1, on_check=rounds.append)
    host.shared["answer"] = "hang"
    results = monitor.check()  # one round, here: the thread would wait 60 s
    assert results["acme.sick"].status == "failed"
    assert host.shared["inits"] == 2  # restarted: a fresh object, checked afresh
    host.shared["answer"] = True
    assert monitor.check()["acme.sick"].status == "ok"
    assert len(rounds) == 2


def test_out_of_process_plugins_are_pinged(make_host: Any, plugins_dir: Path, home: Path) -> None:
    write_plugin(
        plugins_dir,
        "acme.vm",
        entry=shlex.join(["python", str(DATA / "exec" / "child.py")]),
        activation="eager",
        contributes={"module": [{"name": "vm"}]},
        extra='runtime = "exec"\n',
    )
    host: Host = make_host(plugins_dir)
    host.start()
    health = host.health()["acme.vm"]
    # The answer of the child's own "health" method (tests/data/exec/child.py).
    assert health.status == "degraded"
    assert health.last_ok is None  # degraded is no success


def test_status_shows_health(home: Path) -> None:
    write_plugin(
        home / "plugins",
        "acme.slow",
        entry="life:Plugin",
        code={"life.py": "class Plugin:\n    def health(self):\n        return 'disk is slow'\n"},
    )
    done = run_plugbay(home, "status")
    assert done.returncode == 0, done.stderr
    assert "acme.slow: health degraded: disk is slow" in done.stdout
    doc = json.loads(run_plugbay(home, "status", "--json").stdout)
    (plugin,) = doc["plugins"]
    assert plugin["health"]["status"] == "degraded"
    assert plugin["health"]["last_ok"] is None
