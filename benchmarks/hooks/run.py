"""Hooks benchmark: plugbay's hook calls, registration and async calls, beside pluggy's.

Run with ``make bench`` (which runs ``.venv/bin/python benchmarks/hooks/run.py`` after the
discovery benchmark). Prints a table, writes ``benchmarks/hooks/results.json`` and refreshes
the results block of the *Hooks* section of ``docs/benchmarks.md`` (between its
``hooks-results`` markers; ``--no-docs`` skips). ``--quick`` does fewer rounds (to check the
script; its numbers go to ``benchmarks/hooks/.work/`` only); ``--profile`` only prints
cProfile listings of the plugbay side of each measurement; ``--docs-only`` rewrites the docs
block from ``results.json`` without measuring.

Everything runs in this one process (but for two small children that measure the peak RSS
of registration with each library on its own). plugbay and pluggy are measured alternately, round
after round (which of the two goes first alternates too), so a change in machine load hits
both; each figure is the median over the rounds. Timing results are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import platform
import pstats
import re
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
import types
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

import plugbay
from plugbay.hooks import HookImpl, Hooks
from plugbay.metrics import Metrics

# The shared report helpers live one folder up (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import cpu_model, replace_block, verdicts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
RESULTS = HERE / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
DOC_START, DOC_END = "<!-- hooks-results:start -->", "<!-- hooks-results:end -->"

IMPL_COUNTS = (1, 10, 100)
PLUGIN_COUNTS = (1_000, 2_000, 4_000)
ASYNC_IMPLS = 100
ASYNC_SLEEP = 0.01  # seconds each async implementation sleeps
SAMPLE_SECONDS = 0.02  # one per-call sample: this long for the slower of the two

#: rounds per measurement: (full, --quick)
ROUNDS = {
    "call": (21, 3),
    "register": (7, 2),
    "async": (15, 3),
    "async_sequential": (2, 1),
    "metrics": (21, 3),
}

#: targets (see docs/benchmarks.md, section Hooks)
CALL_RATIO_MAX = 0.7
REGISTER_1000_MAX_MS = 20.0
GROWTH_SLACK = 1.2  # linear growth within 20 %: 2,000/1,000 <= 2.4, 4,000/1,000 <= 4.8
CONCURRENT_MAX_MS = 15.0  # "about 10 ms": the 10 ms sleeps overlap
METRICS_RATIO_MAX = 1.10  # a hook call with metrics on, over the same call with them off

PROJECT = "bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------- plugins


def make_impl() -> Callable[[object, object], object]:
    """A new trivial implementation (a distinct function object each time)."""

    def h(a: object, b: object) -> object:
        return a

    return h


def make_impl_b() -> Callable[[object, object], object]:
    """The same, returning its second argument (a plugin's second hook)."""

    def h(a: object, b: object) -> object:
        return b

    return h


def make_wrapper() -> Callable[[object, object], Generator[None, object, object]]:
    def h(a: object, b: object) -> Generator[None, object, object]:
        result = yield
        return result

    return h


def make_sleeper(delay: float) -> Callable[[object, object], Coroutine[Any, Any, object]]:
    async def h(a: object, b: object) -> object:
        await asyncio.sleep(delay)
        return a

    return h


class Specs:
    """pluggy's side of the hooks plugbay declares with ``Hooks.declare``."""

    @hookspec
    def h(self, a: object, b: object) -> object:
        """The hook of the per-call measurement."""

    @hookspec
    def first(self, a: object, b: object) -> object:
        """The first hook each registered plugin implements."""

    @hookspec
    def second(self, a: object, b: object) -> object:
        """The second one."""


class TwoHooks:
    """A pluggy plugin of the registration measurement: two ``@hookimpl`` methods."""

    @hookimpl
    def first(self, a: object, b: object) -> object:
        return a

    @hookimpl
    def second(self, a: object, b: object) -> object:
        return b


def plugin_ids(n: int) -> list[str]:
    return [f"bench.plugin{i:05d}" for i in range(n)]


def plugin_functions(n: int) -> list[tuple[Any, Any]]:
    """The two functions of each of ``n`` plugbay plugins (hooks ``first`` and ``second``)."""
    return [(make_impl(), make_impl_b()) for _ in range(n)]


# ---------------------------------------------------------------- statistics


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alternate(round_no: int, pair: list[Any]) -> list[Any]:
    """The pair in order on even rounds, reversed on odd ones."""
    return pair if round_no % 2 == 0 else pair[::-1]


# ---------------------------------------------------------------- 1. per-call overhead


@dataclass
class CallCase:
    """One hook with ``impls`` trivial implementations (and maybe one wrapper), both ways."""

    impls: int
    wrapper: bool
    form: str  # "attribute": hooks.h(...) each call; "bound": caller = hooks.h once
    targets: dict[str, Any]  # library -> what the timed loop calls h on, or h itself
    calls: int = 0  # per sample, same for both libraries
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"plugbay": [], "pluggy": []})

    @property
    def name(self) -> str:
        wrapped = " + 1 wrapper" if self.wrapper else ""
        call = "hooks.h(...)" if self.form == "attribute" else "bound"
        return f"{self.impls} impl{'s' if self.impls > 1 else ''}{wrapped} ({call})"


def build_plugbay(impls: int, wrapper: bool) -> Hooks:
    hooks = Hooks()
    hooks.declare("h", ("a", "b"))
    for pid in plugin_ids(impls):
        hooks.add(HookImpl("h", pid, function=make_impl()))
    if wrapper:
        hooks.add(HookImpl("h", "bench.wrapper", function=make_wrapper(), wrapper=True))
    return hooks


def build_pluggy(impls: int, wrapper: bool) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Specs)
    for pid in plugin_ids(impls):
        module = types.ModuleType(pid)
        module.h = hookimpl(make_impl())  # type: ignore[attr-defined]
        pm.register(module)
    if wrapper:
        module = types.ModuleType("bench.wrapper")
        module.h = hookimpl(wrapper=True)(make_wrapper())  # type: ignore[attr-defined]
        pm.register(module)
    return pm


def call_via_attribute(relay: Any, calls: int) -> float:
    gc.disable()  # as timeit does: a collection in one sample is noise, not the call
    try:
        t0 = time.perf_counter()
        for _ in range(calls):
            relay.h(a=1, b=2)
        return time.perf_counter() - t0
    finally:
        gc.enable()


def call_bound(caller: Any, calls: int) -> float:
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(calls):
            caller(a=1, b=2)
        return time.perf_counter() - t0
    finally:
        gc.enable()


def sample(case: CallCase, library: str, calls: int) -> float:
    loop = call_via_attribute if case.form == "attribute" else call_bound
    return loop(case.targets[library], calls)


def call_cases() -> list[CallCase]:
    cases = []
    for impls in IMPL_COUNTS:
        for wrapper in (False, True):
            hooks, pm = build_plugbay(impls, wrapper), build_pluggy(impls, wrapper)
            expected = [1] * impls
            got = {"plugbay": hooks.h(a=1, b=2), "pluggy": pm.hook.h(a=1, b=2)}
            if got["plugbay"] != expected or got["pluggy"] != expected:
                raise SystemExit(f"unexpected hook results: {got}")
            cases.append(
                CallCase(impls, wrapper, "attribute", {"plugbay": hooks, "pluggy": pm.hook})
            )
            cases.append(
                CallCase(impls, wrapper, "bound", {"plugbay": hooks.h, "pluggy": pm.hook.h})
            )
    for case in cases:
        trial = 200 + 2_000 // case.impls
        slowest = max(sample(case, lib, trial) / trial for lib in ("plugbay", "pluggy"))
        case.calls = max(100, int(SAMPLE_SECONDS / slowest))
    return cases


def measure_calls(rounds: int) -> list[dict[str, Any]]:
    cases = call_cases()
    # Every case in every round: a burst of load spreads over all of them, not one.
    for r in range(rounds):
        for case in cases:
            for lib in alternate(r, ["plugbay", "pluggy"]):
                case.seconds[lib].append(sample(case, lib, case.calls) / case.calls * 1e6)
    out = []
    for case in cases:
        pb, pl = case.seconds["plugbay"], case.seconds["pluggy"]
        ratio = statistics.median(pb) / statistics.median(pl)
        out.append(
            {
                "case": case.name,
                "impls": case.impls,
                "wrapper": case.wrapper,
                "form": case.form,
                "calls_per_sample": case.calls,
                "plugbay_us": summary(pb),
                "pluggy_us": summary(pl),
                "ratio": ratio,
                "paired_ratio_median": statistics.median(
                    a / b for a, b in zip(pb, pl, strict=True)
                ),
                "met": ratio <= CALL_RATIO_MAX,
            }
        )
    return out


# ---------------------------------------------------------------- 1b. metrics on vs off


def measure_metrics(rounds: int) -> list[dict[str, Any]]:
    """``hooks.h(a=, b=)`` with ``hooks.measure(Metrics())`` beside the same hook without,
    alternately, for 1, 10 and 100 implementations."""
    out = []
    for impls in IMPL_COUNTS:
        off, on = build_plugbay(impls, False), build_plugbay(impls, False)
        metrics = Metrics()
        on.measure(metrics)
        if not off.h(a=1, b=2) == on.h(a=1, b=2) == [1] * impls:
            raise SystemExit("metrics on: unexpected hook results")
        trial = 200 + 2_000 // impls
        calls = max(100, int(SAMPLE_SECONDS / (call_via_attribute(on, trial) / trial)))
        seconds: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(rounds):
            for name in alternate(r, ["off", "on"]):
                relay = on if name == "on" else off
                seconds[name].append(call_via_attribute(relay, calls) / calls * 1e6)
        counted = sum(c["calls"] for c in metrics.snapshot()["contributions"] if c["name"] == "h")
        # The verdict uses the fastest sample of each: load from other processes only ever
        # slows a sample down, and on a shared machine it comes in bursts that can hit a
        # whole stretch of "on" samples and few "off" ones (the medians and the paired
        # ratios are reported beside it).
        ratio = min(seconds["on"]) / min(seconds["off"])
        out.append(
            {
                "impls": impls,
                "calls_per_sample": calls,
                "off_us": summary(seconds["off"]),
                "on_us": summary(seconds["on"]),
                "ratio": ratio,
                "median_ratio": statistics.median(seconds["on"])
                / statistics.median(seconds["off"]),
                "paired_ratio_median": statistics.median(
                    a / b for a, b in zip(seconds["on"], seconds["off"], strict=True)
                ),
                "implementation_calls_counted": counted,
                "met": ratio <= METRICS_RATIO_MAX,
            }
        )
    return out


# ---------------------------------------------------------------- 2. registration


def register_plugbay(ids: Sequence[str], functions: Sequence[tuple[Any, Any]]) -> list[float]:
    """Add two implementations per plugin, then call each hook once (compiles dispatch)."""
    hooks = Hooks()
    hooks.declare("first", ("a", "b"))
    hooks.declare("second", ("a", "b"))
    t0 = time.perf_counter()
    for pid, (f, g) in zip(ids, functions, strict=True):
        hooks.add(HookImpl("first", pid, function=f))
        hooks.add(HookImpl("second", pid, function=g))
    t1 = time.perf_counter()
    results = hooks.first(a=1, b=2), hooks.second(a=1, b=2)
    t2 = time.perf_counter()
    check_registered(results, len(ids))
    return [t2 - t0, t1 - t0, t2 - t1]


def register_pluggy(plugins: Sequence[TwoHooks]) -> list[float]:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Specs)
    t0 = time.perf_counter()
    for plugin in plugins:
        pm.register(plugin)
    t1 = time.perf_counter()
    results = pm.hook.first(a=1, b=2), pm.hook.second(a=1, b=2)
    t2 = time.perf_counter()
    check_registered(results, len(plugins))
    return [t2 - t0, t1 - t0, t2 - t1]


def check_registered(results: tuple[Any, Any], n: int) -> None:
    if results != ([1] * n, [2] * n):
        raise SystemExit(f"registration of {n} plugins: unexpected hook results")


def measure_registration(rounds: int) -> dict[str, Any]:
    inputs = {n: (plugin_ids(n), plugin_functions(n)) for n in PLUGIN_COUNTS}
    objects = {n: [TwoHooks() for _ in range(n)] for n in PLUGIN_COUNTS}
    runs: dict[int, dict[str, list[list[float]]]] = {
        n: {"plugbay": [], "pluggy": []} for n in PLUGIN_COUNTS
    }
    jobs: dict[str, Callable[[int], list[float]]] = {
        "plugbay": lambda n: register_plugbay(*inputs[n]),
        "pluggy": lambda n: register_pluggy(objects[n]),
    }
    for r in range(rounds):
        for n in PLUGIN_COUNTS:
            for lib in alternate(r + n // 1_000, ["plugbay", "pluggy"]):
                gc.collect()  # the previous registry's garbage is not this one's cost
                runs[n][lib].append(jobs[lib](n))
    out: dict[str, Any] = {}
    for lib in ("plugbay", "pluggy"):
        per_n = {}
        for n in PLUGIN_COUNTS:
            total, adding, calling = zip(*runs[n][lib], strict=True)
            per_n[str(n)] = {
                "total_ms": summary([t * 1e3 for t in total]),
                "register_ms": statistics.median(adding) * 1e3,
                "first_calls_ms": statistics.median(calling) * 1e3,
                "per_plugin_us": statistics.median(total) / n * 1e6,
            }
        base = per_n[str(PLUGIN_COUNTS[0])]["total_ms"]["median"]
        growth = {
            f"{n:,}/{PLUGIN_COUNTS[0]:,}": per_n[str(n)]["total_ms"]["median"] / base
            for n in PLUGIN_COUNTS[1:]
        }
        out[lib] = {"plugins": per_n, "growth": growth}
    return out


# ---------------------------------------------------------------- 3. async


def build_async_hooks() -> tuple[Hooks, list[Any], list[Any]]:
    hooks = Hooks()
    hooks.declare("together", ("a", "b"), concurrent=True)
    hooks.declare("in_turn", ("a", "b"))
    hooks.declare("at_once", ("a", "b"), concurrent=True)
    sleepers = [make_sleeper(ASYNC_SLEEP) for _ in range(ASYNC_IMPLS)]
    immediate = [make_sleeper(0) for _ in range(ASYNC_IMPLS)]
    for pid, f, g in zip(plugin_ids(ASYNC_IMPLS), sleepers, immediate, strict=True):
        hooks.add(HookImpl("together", pid, function=f))
        hooks.add(HookImpl("in_turn", pid, function=f))
        hooks.add(HookImpl("at_once", pid, function=g))
    return hooks, sleepers, immediate


async def timed(awaitable: Coroutine[Any, Any, Any]) -> float:
    t0 = time.perf_counter()
    result = await awaitable
    elapsed = time.perf_counter() - t0
    if result != [1] * ASYNC_IMPLS:
        raise SystemExit("async hook: unexpected results")
    return elapsed * 1e3


async def gather_directly(functions: Sequence[Any]) -> list[Any]:
    """The floor: what asyncio.gather of the same coroutines takes, without plugbay."""
    return list(await asyncio.gather(*(f(1, 2) for f in functions)))


async def measure_async(rounds: int, sequential_rounds: int) -> dict[str, Any]:
    hooks, sleepers, immediate = build_async_hooks()
    await hooks.together.acall(a=1, b=2)  # the first call prepares the hook: not timed
    await hooks.at_once.acall(a=1, b=2)
    jobs: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
        "concurrent": lambda: hooks.together.acall(a=1, b=2),
        "gather": lambda: gather_directly(sleepers),
        "concurrent_immediate": lambda: hooks.at_once.acall(a=1, b=2),
        "gather_immediate": lambda: gather_directly(immediate),
    }
    runs: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(rounds):
        for name in alternate(r, list(jobs)):
            runs[name].append(await timed(jobs[name]()))
    runs["sequential"] = [
        await timed(hooks.in_turn.acall(a=1, b=2)) for _ in range(sequential_rounds)
    ]
    return {name: summary(values) for name, values in runs.items()}


# ---------------------------------------------------------------- 4. memory


def retained_mb(build: Callable[[], Any]) -> float:
    """Memory a registry of 4,000 plugins holds after its first calls (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / 2**20


def own_peak_mb() -> float | None:
    """This process's own peak RSS (VmHWM), which unlike ru_maxrss is not inherited from
    the parent across fork and exec."""
    try:
        found = re.search(r"^VmHWM:\s*(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def registration_peak_child(library: str) -> None:
    """Run in a child: register 4,000 plugins with one library; print peak RSS before, after."""
    n = PLUGIN_COUNTS[-1]
    ids, functions, objects = plugin_ids(n), plugin_functions(n), [TwoHooks() for _ in range(n)]
    before = own_peak_mb()
    if library == "plugbay":
        register_plugbay(ids, functions)
    else:
        register_pluggy(objects)
    print(json.dumps({"before": before, "after": own_peak_mb()}))


def measure_registration_peaks() -> dict[str, Any]:
    """Peak RSS that registering 4,000 plugins (and the first calls) adds, per library."""
    out = {}
    for lib in ("plugbay", "pluggy"):
        done = subprocess.run(
            [sys.executable, __file__, "--peak-child", lib],
            capture_output=True,
            text=True,
            check=True,
        )
        out[lib] = json.loads(done.stdout)
    return out


def measure_retained() -> dict[str, float]:
    n = PLUGIN_COUNTS[-1]
    ids, functions = plugin_ids(n), plugin_functions(n)
    objects = [TwoHooks() for _ in range(n)]

    def plugbay_side() -> Hooks:
        hooks = Hooks()
        hooks.declare("first", ("a", "b"))
        hooks.declare("second", ("a", "b"))
        for pid, (f, g) in zip(ids, functions, strict=True):
            hooks.add(HookImpl("first", pid, function=f))
            hooks.add(HookImpl("second", pid, function=g))
        hooks.first(a=1, b=2)
        hooks.second(a=1, b=2)
        return hooks

    def pluggy_side() -> pluggy.PluginManager:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(Specs)
        for plugin in objects:
            pm.register(plugin)
        pm.hook.first(a=1, b=2)
        pm.hook.second(a=1, b=2)
        return pm

    return {"plugbay": retained_mb(plugbay_side), "pluggy": retained_mb(pluggy_side)}


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = cpu_model()

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "plugbay": plugbay.__version__,
        "pluggy": pluggy.__version__,
        "git": git("rev-parse", "--short", "HEAD")
        + (" (with uncommitted changes in src/)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    calls = r["calls"]
    missed = [c["case"] for c in calls if not c["met"]]
    worst = max(calls, key=lambda c: c["ratio"])
    reg = r["registration"]["plugbay"]
    first_ms = reg["plugins"][str(PLUGIN_COUNTS[0])]["total_ms"]["median"]
    growth = reg["growth"]
    limits = {
        k: int(k.split("/")[0].replace(",", "")) / PLUGIN_COUNTS[0] * GROWTH_SLACK for k in growth
    }
    concurrent = r["async"]["concurrent"]["median"]
    worst_metrics = max(r["metrics"], key=lambda m: m["ratio"])
    return [
        {
            "target": f"hook call ≤ {CALL_RATIO_MAX}x pluggy's time, every case",
            "measured": f"worst {worst['ratio']:.2f}x ({worst['case']})"
            + (f"; over the target: {'; '.join(missed)}" if missed else ""),
            "met": not missed,
        },
        {
            "target": f"register 1,000 plugins + first calls ≤ {REGISTER_1000_MAX_MS:g} ms",
            "measured": f"{first_ms:.1f} ms",
            "met": first_ms <= REGISTER_1000_MAX_MS,
        },
        {
            "target": "registration grows linearly (2,000/1,000 ≤ 2.4, 4,000/1,000 ≤ 4.8)",
            "measured": ", ".join(f"{k}: {v:.2f}x" for k, v in growth.items()),
            "met": all(v <= limits[k] for k, v in growth.items()),
        },
        {
            "target": f"concurrent acall, 100 x 10 ms sleeps ≈ 10 ms (≤ {CONCURRENT_MAX_MS:g} ms)",
            "measured": f"{concurrent:.1f} ms",
            "met": concurrent <= CONCURRENT_MAX_MS,
        },
        {
            "target": f"hook call with metrics on ≤ {METRICS_RATIO_MAX:.2f}x metrics off",
            "measured": f"worst {worst_metrics['ratio']:.3f}x ({worst_metrics['impls']} impls)",
            "met": all(m["met"] for m in r["metrics"]),
        },
    ]


def peaks(mem: dict[str, Any], lib: str) -> str:
    p = mem["registration_4000_peak_mb"][lib]
    if p["before"] is None or p["after"] is None:
        return "unavailable"
    return f"{p['before']:.1f} → {p['after']:.1f} MB (+{p['after'] - p['before']:.1f})"


def yes(met: bool) -> str:
    return "yes" if met else "**no**"


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"Measured {m['date']} on {m['nproc']} x {m['cpu']}, {m['os']}, "
        f"{m['implementation']} {m['python']}, plugbay {m['plugbay']} at {m['git']}, "
        f"pluggy {m['pluggy']}; full run took {r['seconds']:.0f} s; load average (1 min) "
        f"{m['load_average_before'][0]} before, {m['load_average_after'][0]} after.",
        "",
        "**Per call** (µs, median of "
        f"{r['rounds']['call']} rounds; min-max in brackets; target ≤ {CALL_RATIO_MAX}x):",
        "",
        "| hook | call | plugbay µs | pluggy µs | plugbay/pluggy | met |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for c in r["calls"]:
        pb, pl = c["plugbay_us"], c["pluggy_us"]
        impls = f"{c['impls']} impl{'s' if c['impls'] > 1 else ''}"
        hook = impls + (" + 1 wrapper" if c["wrapper"] else "")
        call = "`hooks.h(a=, b=)`" if c["form"] == "attribute" else "bound `h(a=, b=)`"
        lines.append(
            f"| {hook} | {call} | {pb['median']:.2f} ({pb['min']:.2f}-{pb['max']:.2f}) "
            f"| {pl['median']:.2f} ({pl['min']:.2f}-{pl['max']:.2f}) "
            f"| {c['ratio']:.2f}x | {yes(c['met'])} |"
        )
    lines += [
        "",
        f"**Metrics on vs off** (`hooks.h(a=, b=)` with `hooks.measure(Metrics())`, µs per "
        f"call, {r['rounds']['metrics']} rounds, alternating; the verdict compares the fastest "
        f"samples, target ≤ {METRICS_RATIO_MAX:.2f}x):",
        "",
        "| hook | off µs, min (median) | on µs, min (median) | on/off, min | on/off, median "
        "| paired median | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in r["metrics"]:
        impls = f"{m['impls']} impl{'s' if m['impls'] > 1 else ''}"
        off, on = m["off_us"], m["on_us"]
        lines.append(
            f"| {impls} | {off['min']:.3f} ({off['median']:.3f}) "
            f"| {on['min']:.3f} ({on['median']:.3f}) | {m['ratio']:.3f}x "
            f"| {m['median_ratio']:.3f}x | {m['paired_ratio_median']:.3f}x | {yes(m['met'])} |"
        )
    lines += [
        "",
        f"**Registration** (ms, median of {r['rounds']['register']} rounds: add 2 implementations "
        "per plugin, then call each hook once):",
        "",
        "| plugins | plugbay ms | per plugin | pluggy ms | per plugin | plugbay/pluggy |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    reg = r["registration"]
    for n in PLUGIN_COUNTS:
        pb, pl = reg["plugbay"]["plugins"][str(n)], reg["pluggy"]["plugins"][str(n)]
        ratio = pb["total_ms"]["median"] / pl["total_ms"]["median"]
        lines.append(
            f"| {n:,} | {pb['total_ms']['median']:.1f} (add {pb['register_ms']:.1f} + calls "
            f"{pb['first_calls_ms']:.1f}) | {pb['per_plugin_us']:.1f} µs "
            f"| {pl['total_ms']['median']:.1f} (register {pl['register_ms']:.1f} + calls "
            f"{pl['first_calls_ms']:.1f}) | {pl['per_plugin_us']:.1f} µs | {ratio:.2f}x |"
        )
    for lib in ("plugbay", "pluggy"):
        growth = ", ".join(f"{k}: {v:.2f}x" for k, v in reg[lib]["growth"].items())
        lines.append(f"{'' if lib == 'pluggy' else chr(10)}- Growth, {lib}: {growth}.")
    a = r["async"]
    lines += [
        "",
        f"**Async** ({ASYNC_IMPLS} async implementations, ms, median of {r['rounds']['async']} "
        "rounds):",
        "",
        "| call | median ms | min-max ms | runs |",
        "| --- | ---: | ---: | ---: |",
    ]
    labels = {
        "concurrent": "`await hooks.together.acall(...)`, concurrent spec, each sleeps 10 ms",
        "gather": "floor: `asyncio.gather` of the same 100 coroutines, no plugbay",
        "sequential": "`await hooks.in_turn.acall(...)`, sequential spec, each sleeps 10 ms",
        "concurrent_immediate": "concurrent acall, implementations that return at once",
        "gather_immediate": "floor: `asyncio.gather` of those, no plugbay",
    }
    for name, label in labels.items():
        s = a[name]
        lines.append(
            f"| {label} | {s['median']:.2f} | {s['min']:.2f}-{s['max']:.2f} | {len(s['runs'])} |"
        )
    mem = r["memory"]
    lines += [
        "",
        f"**Memory**: peak RSS of the benchmark process (ru_maxrss) "
        f"{mem['peak_rss_mb']['async']:.1f} MB through the timed parts (after imports "
        f"{mem['peak_rss_mb']['start']:.1f} MB, after the per-call cases "
        f"{mem['peak_rss_mb']['calls']:.1f} MB, after registration "
        f"{mem['peak_rss_mb']['registration']:.1f} MB, after async "
        f"{mem['peak_rss_mb']['async']:.1f} MB), {mem['peak_rss_mb']['end']:.1f} MB at the end "
        f"(after the tracemalloc probe). Held by a registry of 4,000 plugins "
        f"after its first calls (tracemalloc): plugbay {mem['retained_4000_mb']['plugbay']:.1f} "
        f"MB, pluggy {mem['retained_4000_mb']['pluggy']:.1f} MB. Peak RSS that registering "
        f"4,000 plugins and the first calls add to a fresh process (VmHWM before → after): "
        f"plugbay {peaks(mem, 'plugbay')}, pluggy {peaks(mem, 'pluggy')}.",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {t['target']} | {t['measured']} | {yes(t['met'])} |" for t in r["targets"]]
    return "\n".join(lines)


def table(r: dict[str, Any]) -> str:
    out = [f"{'per call (µs, median)':<44}{'plugbay':>10}{'pluggy':>10}{'ratio':>8}"]
    for c in r["calls"]:
        out.append(
            f"{c['case']:<44}{c['plugbay_us']['median']:>10.3f}{c['pluggy_us']['median']:>10.3f}"
            f"{c['ratio']:>7.2f}x{'' if c['met'] else '  over target'}"
        )
    out.append(f"\n{'metrics on vs off (µs, min; median ratio)':<44}{'off':>10}{'on':>10}")
    for m in r["metrics"]:
        label = f"{m['impls']} impls"
        out.append(
            f"{label:<44}{m['off_us']['min']:>10.3f}"
            f"{m['on_us']['min']:>10.3f}{m['ratio']:>7.3f}x ({m['median_ratio']:.3f}x)"
        )
    out.append(f"\n{'registration + first calls (ms, median)':<44}{'plugbay':>10}{'pluggy':>10}")
    reg = r["registration"]
    for n in PLUGIN_COUNTS:
        pb, pl = reg["plugbay"]["plugins"][str(n)], reg["pluggy"]["plugins"][str(n)]
        out.append(
            f"{f'{n:,} plugins':<44}{pb['total_ms']['median']:>10.2f}"
            f"{pl['total_ms']['median']:>10.2f}"
        )
    for lib in ("plugbay", "pluggy"):
        growth = ", ".join(f"{k} {v:.2f}x" for k, v in reg[lib]["growth"].items())
        out.append(f"  growth, {lib}: {growth}")
    out.append(f"\n{'async, 100 implementations (ms, median)':<44}")
    for name, s in r["async"].items():
        out.append(f"  {name:<42}{s['median']:>10.2f}")
    mem = r["memory"]
    out.append(
        f"\npeak RSS {mem['peak_rss_mb']['async']:.1f} MB after the timed parts, "
        f"{mem['peak_rss_mb']['end']:.1f} MB at the end; retained by 4,000 plugins: plugbay "
        f"{mem['retained_4000_mb']['plugbay']:.1f} MB, "
        f"pluggy {mem['retained_4000_mb']['pluggy']:.1f} MB\n"
        f"peak RSS added by registering 4,000 plugins (fresh process): "
        f"plugbay {peaks(mem, 'plugbay')}, pluggy {peaks(mem, 'pluggy')}"
    )
    out.append("")
    out += verdicts(r["targets"])
    return "\n".join(out)


def update_docs(r: dict[str, Any]) -> bool:
    return replace_block(DOCS, DOC_START, DOC_END, markdown(r))


# ---------------------------------------------------------------- profile


def profile(top: int) -> None:
    """cProfile of the plugbay side: calls, registration of 4,000 plugins, async calls."""
    hooks = build_plugbay(1, wrapper=True)
    hooks.h(a=1, b=2)
    n = PLUGIN_COUNTS[-1]
    ids, functions = plugin_ids(n), plugin_functions(n)
    async_hooks = build_async_hooks()[0]

    async def immediate_calls() -> None:
        for _ in range(200):
            await async_hooks.at_once.acall(a=1, b=2)

    jobs: dict[str, Callable[[], object]] = {
        "200,000 calls of hooks.h(a=, b=), 1 impl + 1 wrapper": lambda: call_via_attribute(
            hooks, 200_000
        ),
        f"registration of {n:,} plugins + first calls": lambda: register_plugbay(ids, functions),
        "200 concurrent acalls, 100 immediate async impls": lambda: asyncio.run(immediate_calls()),
    }
    for title, job in jobs.items():
        profiler = cProfile.Profile()
        profiler.runcall(job)
        print(f"\n==== {title}")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


# ---------------------------------------------------------------- main


def run(quick: bool) -> dict[str, Any]:
    pick = 1 if quick else 0
    rounds = {name: counts[pick] for name, counts in ROUNDS.items()}
    began = time.perf_counter()
    r: dict[str, Any] = {"machine": machine(), "rounds": rounds, "quick": quick}
    rss = {"start": peak_rss_mb()}
    print(f"per-call overhead, {rounds['call']} rounds ...", flush=True)
    r["calls"] = measure_calls(rounds["call"])
    rss["calls"] = peak_rss_mb()
    print(f"metrics on vs off, {rounds['metrics']} rounds ...", flush=True)
    r["metrics"] = measure_metrics(rounds["metrics"])
    print(f"registration, {rounds['register']} rounds ...", flush=True)
    r["registration"] = measure_registration(rounds["register"])
    rss["registration"] = peak_rss_mb()
    print(f"async, {rounds['async']} rounds ...", flush=True)
    r["async"] = asyncio.run(measure_async(rounds["async"], rounds["async_sequential"]))
    rss["async"] = peak_rss_mb()
    retained = measure_retained()
    rss["end"] = peak_rss_mb()
    r["memory"] = {
        "peak_rss_mb": rss,
        "retained_4000_mb": retained,
        "registration_4000_peak_mb": measure_registration_peaks(),
    }
    r["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    r["seconds"] = time.perf_counter() - began
    r["targets"] = targets(r)
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plugbay hooks benchmark (beside pluggy)")
    parser.add_argument("--quick", action="store_true", help="few rounds: check the script")
    parser.add_argument("--no-docs", action="store_true", help="do not refresh docs/benchmarks.md")
    parser.add_argument("--profile", action="store_true", help="only profile the plugbay side")
    parser.add_argument("--top", type=int, default=25, help="rows of each profile")
    parser.add_argument(
        "--docs-only",
        action="store_true",
        help="only rewrite the docs block from results.json (no measuring)",
    )
    parser.add_argument("--peak-child", choices=["plugbay", "pluggy"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        registration_peak_child(args.peak_child)
        return 0
    if args.profile:
        profile(args.top)
        return 0
    if args.docs_only:
        done = update_docs(json.loads(RESULTS.read_text("utf-8")))
        print(f"{'updated' if done else 'no hooks-results markers in'} {DOCS.relative_to(REPO)}")
        return 0 if done else 1
    r = run(args.quick)
    print()
    print(table(r))
    path = WORK / "results.json" if args.quick else RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r, indent=2) + "\n", "utf-8")
    print(f"\nwrote {path.relative_to(REPO)}")
    if not args.quick and not args.no_docs:
        done = update_docs(r)
        print(f"{'updated' if done else 'no hooks-results markers in'} {DOCS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
