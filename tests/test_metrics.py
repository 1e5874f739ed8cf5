"""Metrics: exact call counts, sampled latency, snapshot, Prometheus text, host recording."""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import run_plugbay, write_plugin
from plugbay.errors import PluginCallError
from plugbay.hooks import HookImpl, Hooks
from plugbay.metrics import BUCKETS, SAMPLE_BURST, ContributionStats, Metrics


def _hooks(**options: Any) -> tuple[Hooks, Metrics]:
    hooks = Hooks()
    hooks.declare("h", ("a",), **options)
    metrics = Metrics()
    hooks.measure(metrics)
    return hooks, metrics


def _calls(metrics: Metrics) -> dict[str, tuple[int, int]]:
    """plugin id -> (calls, errors) of hook ``h``."""
    return {
        c["plugin_id"]: (c["calls"], c["errors"])
        for c in metrics.snapshot()["contributions"]
        if c["kind"] == "hook" and c["name"] == "h"
    }


def _fail(a: int) -> int:
    raise ValueError("no")


@pytest.mark.parametrize("impls", [1, 3, 12])  # 12: the looped dispatcher, not unrolled
def test_every_hook_call_is_counted_exactly(impls: int) -> None:
    hooks, metrics = _hooks()
    for n in range(impls):
        hooks.add(HookImpl("h", f"p{n:02d}", function=lambda a: a))
    calls = SAMPLE_BURST * 3 + 5
    for _ in range(calls):
        hooks.h(a=1)
    assert _calls(metrics) == {f"p{n:02d}": (calls, 0) for n in range(impls)}
    # The first SAMPLE_BURST calls are timed, then the first ones after each snapshot.
    samples = [c["latency"]["samples"] for c in metrics.snapshot()["contributions"]]
    assert samples == [SAMPLE_BURST] * impls
    for _ in range(calls):
        hooks.h(a=1)
    snapshot = metrics.snapshot()["contributions"]
    assert [c["latency"]["samples"] for c in snapshot] == [SAMPLE_BURST * 2] * impls
    assert [c["calls"] for c in snapshot] == [calls * 2] * impls


@pytest.mark.parametrize("impls", [2, 12])
def test_an_error_that_ends_the_call_is_counted_and_later_ones_are_not_called(
    impls: int,
) -> None:
    hooks, metrics = _hooks()
    hooks.add(HookImpl("h", "a.first", function=lambda a: a, priority=2))
    hooks.add(HookImpl("h", "b.fails", function=_fail, priority=1))
    for n in range(impls - 2):
        hooks.add(HookImpl("h", f"c.{n:02d}", function=lambda a: a))
    for _ in range(10):
        with pytest.raises(Exception, match="no"):
            hooks.h(a=1)
    expected = {"a.first": (10, 0), "b.fails": (10, 10)}
    expected |= {f"c.{n:02d}": (0, 0) for n in range(impls - 2)}
    assert _calls(metrics) == expected


def test_collected_errors_and_first_results_are_counted() -> None:
    hooks, metrics = _hooks(on_error="collect")
    hooks.add(HookImpl("h", "a", function=_fail))
    hooks.add(HookImpl("h", "b", function=lambda a: a))
    for _ in range(4):
        assert hooks.h(a=1).errors
    assert _calls(metrics) == {"a": (4, 4), "b": (4, 0)}

    first, metrics = _hooks(firstresult=True)
    first.add(HookImpl("h", "a", function=lambda a: None, priority=3))
    first.add(HookImpl("h", "b", function=lambda a: a, priority=2))
    first.add(HookImpl("h", "c", function=lambda a: a, priority=1))
    for _ in range(5):
        assert first.h(a=7) == 7
    assert _calls(metrics) == {"a": (5, 0), "b": (5, 0), "c": (0, 0)}


def test_counts_survive_a_change_of_implementations() -> None:
    hooks, metrics = _hooks()
    hooks.add(HookImpl("h", "a", function=lambda a: a))
    hooks.h(a=1)
    hooks.h(a=1)
    hooks.add(HookImpl("h", "b", function=lambda a: a))  # the dispatcher is compiled again
    hooks.h(a=1)
    metrics.snapshot()
    hooks.h(a=1)
    assert _calls(metrics) == {"a": (4, 0), "b": (2, 0)}


def test_async_calls_are_counted_and_timed() -> None:
    import asyncio

    hooks, metrics = _hooks()

    async def slow(a: int) -> int:
        await asyncio.sleep(0.002)
        return a

    hooks.add(HookImpl("h", "a", function=slow))
    assert asyncio.run(hooks.h.acall(a=3)) == [3]
    (stats,) = metrics.snapshot()["contributions"]
    assert stats["calls"] == 1
    assert stats["latency"]["samples"] == 1
    assert stats["latency"]["max_ms"] >= 2.0


def test_measuring_stops_with_none() -> None:
    hooks, metrics = _hooks()
    hooks.add(HookImpl("h", "a", function=lambda a: a))
    hooks.h(a=1)
    hooks.measure(None)
    hooks.h(a=1)
    assert _calls(metrics) == {"a": (1, 0)}


def test_quantiles_come_from_the_buckets() -> None:
    stats = ContributionStats("p", "hook", "h")
    assert stats.quantile(0.5) is None
    for _ in range(90):
        stats.observe(0.0004)  # the (0.00025, 0.0005] bucket
    for _ in range(10):
        stats.observe(0.2)  # the (0.1, 0.25] bucket
    p50, p99 = stats.quantile(0.5), stats.quantile(0.99)
    assert p50 is not None
    assert p99 is not None
    assert 0.00025 < p50 <= 0.0004  # never above the slowest sample in that bucket
    assert 0.1 < p99 <= 0.2
    assert stats.max == 0.2
    stats.observe(1000.0)  # past the last bound: the overflow bucket
    assert stats.buckets[-1] == 1
    assert stats.quantile(1.0) == 1000.0


def test_prometheus_text_exposition() -> None:
    metrics = Metrics()
    metrics.record_load("acme.x", {"load": 12.0, "init": 1.5, "start": 0.5})
    metrics.count("acme.x", "restarts")
    metrics.record_call("acme.x", "command", 'say "hi"', 0.003)
    metrics.record_call("acme.x", "command", 'say "hi"', 0.3, error=True)
    text = metrics.prometheus()
    lines = text.splitlines()
    assert text.endswith("\n")
    labels = 'plugin="acme.x",kind="command",name="say \\"hi\\""'
    assert f"plugbay_contribution_calls_total{{{labels}}} 2" in lines
    assert f"plugbay_contribution_errors_total{{{labels}}} 1" in lines
    assert f"plugbay_contribution_latency_seconds_count{{{labels}}} 2" in lines
    assert f'plugbay_contribution_latency_seconds_bucket{{{labels},le="+Inf"}} 2' in lines
    assert f'plugbay_contribution_latency_seconds_bucket{{{labels},le="0.005"}} 1' in lines
    assert 'plugbay_plugin_step_seconds{plugin="acme.x",step="load"} 0.012' in lines
    assert 'plugbay_plugin_restarts_total{plugin="acme.x"} 1' in lines
    # Every sample line is NAME{LABELS} VALUE, and every family is typed once.
    sample = re.compile(r'^[a-z_]+\{([a-z]+="([^"\\]|\\.)*",?)+\} [0-9.e+-]+$')
    for line in lines:
        assert line.startswith("# ") or sample.match(line), line
    types = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(types) == len(set(types))
    buckets = [line for line in lines if "_bucket{" in line]
    assert len(buckets) == len(BUCKETS) + 1


def test_disabled_metrics_record_nothing() -> None:
    metrics = Metrics(enabled=False)
    metrics.record_call("p", "command", "c", 0.1)
    metrics.record_load("p", {"load": 1.0})
    metrics.count("p", "restarts")
    metrics.record_get("p", "tool", "t")
    assert metrics.snapshot() == {"enabled": False, "host": {}, "plugins": {}, "contributions": []}


# ---------------------------------------------------------------- recorded by the host


def _lifecycle_plugin(root: Path) -> None:
    write_plugin(
        root,
        "acme.life",
        entry="life:Plugin",
        contributes={
            "hook": [{"name": "plugin_loaded"}],
            "command": [{"name": "shout", "entry": "life:shout"}],
            "tool": [{"name": "hammer", "entry": "life:hammer"}],
        },
        code={
            "life.py": """\
                class Plugin:
                    def init(self, ctx):
                        self.seen = []

                    def start(self):
                        pass

                    def plugin_loaded(self, plugin_id, version):
                        self.seen.append(plugin_id)

                def shout(args):
                    if args == ["bad"]:
                        raise RuntimeError("bad")
                    return 0

                def hammer():
                    return "bang"
                """
        },
    )


def test_the_host_records_loads_restarts_gets_commands_and_hooks(
    make_host: Any, plugins_dir: Path
) -> None:
    _lifecycle_plugin(plugins_dir)
    host = make_host(plugins_dir)
    assert host.get("tool", "hammer")() == "bang"
    host.get("tool", "acme.life:hammer")
    assert host.run_command("shout", []) == 0
    with pytest.raises(Exception, match="bad"):
        host.run_command("shout", ["bad"])
    host.restart("acme.life")

    snap = host.metrics.snapshot()
    json.dumps(snap)  # plain data
    plugin = snap["plugins"]["acme.life"]
    assert set(plugin["durations_ms"]) == {"load", "init", "start"}
    assert all(v >= 0 for v in plugin["durations_ms"].values())
    assert (plugin["loads"], plugin["restarts"], plugin["reloads"]) == (2, 1, 0)
    assert set(snap["host"]) == {"discover", "plan"}
    by = {(c["kind"], c["name"]): c for c in snap["contributions"]}
    assert by["tool", "hammer"]["gets"] == 2
    assert by["tool", "hammer"]["calls"] == 0  # what a caller does with the object is unseen
    command = by["command", "shout"]
    assert (command["calls"], command["errors"], command["latency"]["samples"]) == (2, 1, 2)
    # Its own plugin_loaded hook heard of its load, then of its load after the restart.
    assert by["hook", "plugin_loaded"]["calls"] == 2
    assert 'plugbay_plugin_loads_total{plugin="acme.life"} 2' in host.metrics.prometheus()


def test_a_host_without_metrics_records_nothing(make_host: Any, plugins_dir: Path) -> None:
    _lifecycle_plugin(plugins_dir)
    host = make_host(plugins_dir, metrics=False)
    host.get("tool", "hammer")
    host.run_command("shout", [])
    snap = host.metrics.snapshot()
    assert (snap["plugins"], snap["contributions"]) == ({}, [])


def test_status_json_includes_metrics(home: Path) -> None:
    _lifecycle_plugin(home / "plugins")
    done = run_plugbay(home, "status", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    metrics = doc["metrics"]
    assert metrics["plugins"]["acme.life"]["loads"] == 1
    assert set(metrics["plugins"]["acme.life"]["durations_ms"]) == {"load", "init", "start"}
    assert "discover" in metrics["host"]
    (plugin,) = doc["plugins"]
    assert plugin["health"]["status"] == "ok"
    assert plugin["health"]["last_ok"] is not None


def test_reloads_that_succeed_are_counted(make_host: Any, plugins_dir: Path) -> None:
    folder = write_plugin(
        plugins_dir,
        "acme.re",
        contributes={"tool": [{"name": "v", "entry": "tools:v"}]},
        code={"tools.py": "def v():\n    return 1\n"},
    )
    host = make_host(plugins_dir)
    assert host.get("tool", "v")() == 1
    (folder / "tools.py").write_text("def v():\n    return 2\n")
    host.reload("acme.re")
    (folder / "tools.py").write_text("def v(:\n")  # a syntax error: refused, not counted
    with pytest.raises(Exception, match="SyntaxError"):
        host.reload("acme.re")
    assert host.get("tool", "v")() == 2
    assert host.metrics.snapshot()["plugins"]["acme.re"]["reloads"] == 1


def test_plugin_operations_are_logged_with_the_plugin_id(
    make_host: Any, plugins_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _lifecycle_plugin(plugins_dir)
    host = make_host(plugins_dir)
    with caplog.at_level(logging.INFO, logger="plugbay"):
        host.load("acme.life")
        host.restart("acme.life")
        host.stop()
    tagged = [
        (r.getMessage().split(" in ")[0], r.plugin_id)  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "plugin_id", None) is not None
    ]
    assert tagged == [
        ("plugin started", "acme.life"),
        ("restarting plugin", "acme.life"),
        ("plugin stopped", "acme.life"),
        ("plugin started", "acme.life"),
        ("plugin stopped", "acme.life"),
    ]


def test_calls_of_out_of_process_and_wasm_objects_are_counted(
    make_host: Any, plugins_dir: Path
) -> None:
    data = Path(__file__).resolve().parent / "data"
    write_plugin(
        plugins_dir,
        "acme.vm",
        entry=shlex.join(["python", str(data / "exec" / "child.py")]),
        contributes={"module": [{"name": "vm"}]},
        extra='runtime = "exec"\n',
    )
    wasm = write_plugin(
        plugins_dir,
        "acme.basics",
        entry="plugin.wat",
        contributes={"module": [{"name": "greet"}]},
        extra='runtime = "wasm"\n',
    )
    shutil.copyfile(data / "wasm" / "basics.wat", wasm / "plugin.wat")
    host = make_host(plugins_dir)
    vm = host.get("module", "vm")
    assert vm.echo(1) == {"args": [1], "kwargs": {}}
    assert vm.echo(2) == {"args": [2], "kwargs": {}}
    with pytest.raises(PluginCallError, match="the VM is on fire"):
        vm.boom()
    greet = host.get("module", "greet")
    assert greet.run(5) == {"args": [5], "kwargs": {}}
    by = {c["name"]: c for c in host.metrics.snapshot()["contributions"]}
    assert (by["vm"]["gets"], by["vm"]["calls"], by["vm"]["errors"]) == (1, 3, 1)
    assert by["vm"]["latency"]["samples"] == 3
    assert (by["greet"]["gets"], by["greet"]["calls"], by["greet"]["errors"]) == (1, 1, 0)
