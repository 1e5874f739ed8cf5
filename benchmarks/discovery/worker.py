"""One measurement in a fresh process; prints one JSON object on stdout.

run.py starts this script for every in-process measurement so that each one gets a
clean interpreter and its own peak RSS (``ru_maxrss`` of this process, in KiB on Linux).
Modes:

``bare``
    Imports only what every mode imports, then reports its peak RSS: the baseline for
    the host's memory overhead.
``host HOME EMPTY --runs K [--cold] [--entry-points]``
    ``import plugbay`` (timed), then K times: (cold: delete ``HOME/cache``) new Host,
    ``discover()``, ``plan()``. Reports every run's time and the plan's shape.
``entry-points GROUP``
    Times ``importlib.metadata.entry_points(group=GROUP)`` alone (the module is imported
    before the clock starts).
``stevedore GROUP``
    Times stevedore's discovery (``ExtensionManager.list_entry_points``), then the
    ``ExtensionManager(...)`` constructor, which reuses that list and imports every
    plugin's module.
``floor HOME --runs K``
    What a warm discover cannot avoid with its cache design, for scale: ``os.stat`` of
    every path it checks (the search path, each namespace and plugin folder, each
    manifest); also the size of the cache file.
``profile HOME EMPTY --runs K``
    cProfile of K warm discover+plan runs; prints the top functions by cumulative and by
    own time to stderr and the raw stats path in the JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

API_VERSION = "1.4.0"
APP = "benchapp"


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _Clock:
    """Wall and CPU milliseconds since it was made (CPU time: this process, all threads).

    The CPU time is what the run itself consumed; on a busy machine the wall time also
    holds the time spent waiting for a core.
    """

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def read(self) -> tuple[float, float]:
        return (time.perf_counter() - self.wall) * 1e3, (time.process_time() - self.cpu) * 1e3


def _emit(result: dict[str, Any]) -> None:
    result["maxrss_kb"] = _maxrss_kb()
    sys.stdout.write(json.dumps(result) + "\n")


def _host_runs(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    import plugbay
    import plugbay.discovery
    import plugbay.host
    import plugbay.plan

    # plugbay's __init__ imports lazily: touching what the runs use keeps every import
    # out of the timed region.
    _ = (plugbay.Host, plugbay.DiscoveryReporter)
    import_ms = (time.perf_counter() - t0) * 1e3

    class Counter(plugbay.DiscoveryReporter):
        def __init__(self) -> None:
            self.parsed = 0

        def manifest_parsed(self, path: str) -> None:
            self.parsed += 1

    home = Path(args.home)
    times: list[float] = []
    cpu: list[float] = []
    discover: list[float] = []
    planning: list[float] = []
    parsed: list[int] = []
    shape: dict[str, int] = {}
    host = catalog = load_plan = None
    for _ in range(args.runs):
        if args.cold:
            shutil.rmtree(home / "cache", ignore_errors=True)
        # The previous run's host, catalog and plan are neither alive nor garbage here.
        del host, catalog, load_plan
        gc.collect()
        counter = Counter()
        clock = _Clock()
        host = plugbay.Host(
            APP,
            api_version=API_VERSION,
            home=home,
            entry_points=args.entry_points,
            system_path=args.empty,
            project_path=args.empty,
            reporter=counter,
        )
        catalog = host.discover()
        load_plan = host.plan()
        wall_ms, cpu_ms = clock.read()
        times.append(wall_ms)
        cpu.append(cpu_ms)
        discover.append(host.timings_ms["discover"])
        planning.append(host.timings_ms["plan"])
        parsed.append(counter.parsed)
        shape = {
            "records": len(catalog.records),
            "ids": len(catalog.ids()),
            "planned": len(load_plan.order),
            "rejected": len(load_plan.rejected),
            "problems": len(catalog.problems) + len(load_plan.problems),
        }
    return {
        "import_ms": import_ms,
        "times_ms": times,
        "cpu_ms": cpu,
        "discover_ms": discover,
        "plan_ms": planning,
        "parsed": parsed,
        **shape,
    }


def _floor(args: argparse.Namespace) -> dict[str, Any]:
    root = os.path.join(args.home, "plugins")
    paths = [root]
    for namespace in sorted(os.listdir(root)):
        if namespace.startswith("."):
            continue  # the store's .generation stamp
        ns_path = os.path.join(root, namespace)
        paths.append(ns_path)
        for name in sorted(os.listdir(ns_path)):
            plugin = os.path.join(ns_path, name)
            paths.append(plugin)
            paths += [os.path.join(plugin, v, "plugin.toml") for v in sorted(os.listdir(plugin))]
    paths = [p for p in paths if os.path.exists(p)]  # "active" files are not stat'ed
    stat_ms = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for p in paths:
            os.stat(p)
        stat_ms.append((time.perf_counter() - start) * 1e3)
    cache = Path(args.home, "cache", "discovery.msgpack").stat().st_size
    return {"paths": len(paths), "stat_ms": stat_ms, "cache_bytes": cache}


def _entry_points(args: argparse.Namespace) -> dict[str, Any]:
    import importlib.metadata

    clock = _Clock()
    eps = importlib.metadata.entry_points(group=args.group)
    call_ms, cpu_ms = clock.read()
    return {"call_ms": call_ms, "cpu_ms": cpu_ms, "found": len(eps)}


def _stevedore(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    from stevedore import ExtensionManager

    import_ms = (time.perf_counter() - t0) * 1e3
    clock = _Clock()
    found = _discovery_only(ExtensionManager, args.group).list_entry_points()
    discovery_ms, discovery_cpu_ms = clock.read()
    clock = _Clock()
    manager = ExtensionManager(namespace=args.group, invoke_on_load=False)
    load_ms, load_cpu_ms = clock.read()
    return {
        "import_ms": import_ms,
        "discovery_ms": discovery_ms,
        "discovery_cpu_ms": discovery_cpu_ms,
        "load_ms": load_ms,
        "load_cpu_ms": load_cpu_ms,
        "found": len(found),
        "loaded": len(manager.extensions),
    }


def _discovery_only(base: Any, namespace: str) -> Any:
    """An ExtensionManager that only lists entry points (fills the class-level cache)."""

    class Lister(base):  # type: ignore[misc,valid-type]
        def __init__(self, namespace: str) -> None:
            self.namespace = namespace  # no _load_plugins: nothing is imported

    return Lister(namespace)


def _profile(args: argparse.Namespace) -> dict[str, Any]:
    import cProfile
    import pstats

    import plugbay
    import plugbay.discovery
    import plugbay.host
    import plugbay.plan

    _ = plugbay.Host  # no lazy import inside the profile

    def once() -> None:
        host = plugbay.Host(
            APP,
            api_version=API_VERSION,
            home=args.home,
            entry_points=False,
            system_path=args.empty,
            project_path=args.empty,
        )
        host.discover()
        host.plan()

    once()  # the cache exists and is current before the profile starts
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.runs):
        once()
    profiler.disable()
    out = Path(args.out)
    profiler.dump_stats(out)
    stats = pstats.Stats(str(out), stream=sys.stderr).strip_dirs()
    for key in ("cumulative", "tottime"):
        print(f"\n==== top {args.top} by {key} ({args.runs} warm runs) ====", file=sys.stderr)
        stats.sort_stats(key).print_stats(args.top)
    return {"stats": str(out), "runs": args.runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one benchmark measurement")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("bare")
    host = sub.add_parser("host")
    host.add_argument("home")
    host.add_argument("empty")
    host.add_argument("--runs", type=int, default=1)
    host.add_argument("--cold", action="store_true")
    host.add_argument("--entry-points", action="store_true")
    floor = sub.add_parser("floor")
    floor.add_argument("home")
    floor.add_argument("--runs", type=int, default=15)
    eps = sub.add_parser("entry-points")
    eps.add_argument("group")
    sv = sub.add_parser("stevedore")
    sv.add_argument("group")
    prof = sub.add_parser("profile")
    prof.add_argument("home")
    prof.add_argument("empty")
    prof.add_argument("--runs", type=int, default=20)
    prof.add_argument("--top", type=int, default=25)
    prof.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    modes = {
        "bare": lambda _a: {},
        "host": _host_runs,
        "floor": _floor,
        "entry-points": _entry_points,
        "stevedore": _stevedore,
        "profile": _profile,
    }
    _emit(modes[args.mode](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
