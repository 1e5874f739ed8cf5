"""Discovery benchmark: plugbay's discover + plan, ``plugbay list --json``, and the tools
users would otherwise pick (``importlib.metadata.entry_points()``, stevedore).

Run with ``make bench`` (that is, ``.venv/bin/python benchmarks/discovery/run.py``).
Prints a table, writes ``benchmarks/discovery/results.json`` and refreshes the block of
results in ``docs/benchmarks.md`` (between its ``results`` markers; ``--no-docs`` skips).
``--quick`` does fewer runs (for checking the script, not for numbers); ``--profile``
only prints a cProfile of warm discover + plan of 1,000 plugins.

Every measurement runs in fresh child processes (worker.py, or the command itself) so
that each reports its own peak RSS (through /usr/bin/time, see TIME) and CPU time. Inputs
live in ``benchmarks/discovery/.work/`` (git-ignored), rebuilt on every run. Timing
results are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from generate import GROUP, generate_dists, generate_plugins

# The shared report helpers live one folder up (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import aligned, cpu_model, replace_block, verdicts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
PYCACHE = WORK / "pycache"  # kept between runs (see child_env)
RESULTS = HERE / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
WORKER = HERE / "worker.py"
PYTHON = sys.executable
PLUGBAY = str(Path(sys.executable).parent / "plugbay")
SMALL, LARGE = 1_000, 10_000
DOC_START, DOC_END = "<!-- results:start -->", "<!-- results:end -->"

#: runs per measurement: (full, --quick)
RUNS = {
    "inproc_cold_small": (9, 3),
    "inproc_warm_small": (21, 5),
    "inproc_cold_large": (5, 2),
    "inproc_warm_large": (9, 3),
    "fresh_cold_small": (7, 2),
    "fresh_warm_small": (11, 3),
    "fresh_cold_large": (3, 1),
    "fresh_warm_large": (5, 2),
    "cli": (20, 5),
    "tools": (15, 4),
    "warmup": (2, 1),
}

# ---------------------------------------------------------------- processes


#: Peak RSS comes from GNU time's %M, not from os.wait4 on our own child: Linux keeps a
#: process's peak RSS across exec, so a child forked from this ~20 MB Python process
#: would report at least 20 MB. /usr/bin/time is small, and its child's peak is its own.
TIME = shutil.which("time", path="/usr/bin:/bin")


@dataclass(frozen=True)
class Proc:
    """One finished child: wall time from spawn to reaped, and its own peak RSS (KiB)."""

    wall_ms: float
    cpu_ms: float  # user + system time of the child and what it waited for
    maxrss_kb: int | None
    returncode: int
    stdout: bytes
    stderr: bytes


def spawn(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Proc:
    """Run ``cmd`` to completion; output goes to temporary files (no pipe back-pressure).

    The wall time includes starting /usr/bin/time (about a millisecond, the same for
    every row, baselines included).
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss,
    ):
        full = [TIME or "/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd]
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_ms = (time.perf_counter() - start) * 1e3
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = rss.read().strip().splitlines()
        maxrss = int(text[-1]) if text and text[-1].isdigit() else None
        cpu_ms = (usage.ru_utime + usage.ru_stime) * 1e3
        return Proc(wall_ms, cpu_ms, maxrss, proc.returncode, out.read(), err.read())


def child_env(pythonpath: Path | None = None) -> dict[str, str]:
    """The environment of every child: no stray PYTHONPATH or host home, private caches.

    Bytecode caching is on, as in any normal installation, even where the calling shell
    sets PYTHONDONTWRITEBYTECODE: without .pyc files every child would compile plugbay,
    click, nodesemver… from source, which is not what users run. The .pyc files go to
    .work/pycache, never into src/ or the virtualenv.
    """
    drop = ("PYTHONPATH", "BENCHAPP_HOME", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["XDG_CACHE_HOME"] = str(WORK / "xdg-cache")  # stevedore's cache stays in .work
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def worker(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], Proc]:
    proc = spawn([PYTHON, str(WORKER), *args], env=env or child_env())
    if proc.returncode != 0:
        raise SystemExit(f"worker {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return json.loads(proc.stdout), proc


# ---------------------------------------------------------------- statistics


def summary(values: Sequence[float], cpu: Sequence[float] = ()) -> dict[str, Any]:
    """Median, min and max of one measurement's wall times (and median CPU time)."""
    out = {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "values": [round(v, 3) for v in values],
    }
    if cpu:
        out["cpu_median"] = statistics.median(cpu)
    return out


def mb(kb: float) -> float:
    return kb / 1024


# ---------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Layout:
    homes: dict[int, Path]
    site: Path
    ep_home: Path
    empty: Path
    cwd: Path


def prepare() -> tuple[Layout, dict[str, Any]]:
    """(Re)generate every input under .work/ (the bytecode cache is kept)."""
    WORK.mkdir(exist_ok=True)
    for old in WORK.iterdir():
        if old == PYCACHE:
            continue
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    empty = WORK / "empty"
    cwd = WORK / "cwd"  # the CLI's working folder: no ./.benchapp/plugins in it
    for folder in (empty, cwd, WORK / "xdg-cache"):
        folder.mkdir(parents=True)
    generated: dict[str, Any] = {}
    homes: dict[int, Path] = {}
    for n in (SMALL, LARGE):
        home = WORK / f"home-{n}"
        generated[f"plugins_{n}"] = asdict(generate_plugins(home / "plugins", n))
        homes[n] = home
    site = WORK / f"site-{SMALL}"
    generated[f"dists_{SMALL}"] = asdict(generate_dists(site, SMALL))
    ep_home = WORK / "home-entry-points"
    ep_home.mkdir()
    # Fill the bytecode cache (the first time), so that no measured process compiles.
    prime = "import plugbay.cli, plugbay.host, stevedore, importlib.metadata, cProfile"
    spawn([PYTHON, "-c", prime], env=child_env())
    worker("bare")
    return Layout(homes, site, ep_home, empty, cwd), generated


def runs(name: str, quick: bool) -> int:
    return RUNS[name][1 if quick else 0]


def measure_host(layout: Layout, n: int, quick: bool) -> dict[str, Any]:
    """Cold and warm discover + plan of n plugins: in one process, and first-in-process."""
    home, empty = str(layout.homes[n]), str(layout.empty)
    size = "small" if n == SMALL else "large"
    out: dict[str, Any] = {}
    for mode in ("cold", "warm"):
        flags = ["--cold"] if mode == "cold" else []
        # In one process: repeated runs, each in a fresh Host (the spec'd measurement).
        # A warm run finds the cache the preceding cold measurement left.
        data, _ = worker(
            "host", home, empty, "--runs", str(runs(f"inproc_{mode}_{size}", quick)), *flags
        )
        check_shape(data, n, mode)
        out[f"{mode}_inproc"] = {
            **summary(data["times_ms"], data["cpu_ms"]),
            "discover_ms": statistics.median(data["discover_ms"]),
            "plan_ms": statistics.median(data["plan_ms"]),
            "parsed": data["parsed"][-1],
            "maxrss_kb": data["maxrss_kb"],
        }
        # First discover + plan in a fresh process: what an application start or a CLI
        # command pays (process-wide memo caches, e.g. parsed version ranges, are empty).
        firsts, cpu, rss, discover, planning = [], [], [], [], []
        for _ in range(runs(f"fresh_{mode}_{size}", quick)):
            data, _ = worker("host", home, empty, "--runs", "1", *flags)
            check_shape(data, n, mode)
            firsts.append(data["times_ms"][0])
            cpu.append(data["cpu_ms"][0])
            discover.append(data["discover_ms"][0])
            planning.append(data["plan_ms"][0])
            rss.append(data["maxrss_kb"])
        out[f"{mode}_fresh"] = {
            **summary(firsts, cpu),
            "discover_ms": statistics.median(discover),
            "plan_ms": statistics.median(planning),
            "maxrss_kb": statistics.median(rss),
        }
    out["shape"] = {k: data[k] for k in ("records", "ids", "planned", "rejected", "problems")}
    floor, _ = worker("floor", home, "--runs", "15")
    out["floor"] = {
        "paths": floor["paths"],
        "stat": summary(floor["stat_ms"]),
        "cache_bytes": floor["cache_bytes"],
    }
    return out


def check_shape(data: dict[str, Any], n: int, mode: str) -> None:
    """Every generated plugin is found and planned, and a warm run parses nothing."""
    if data["planned"] != n or data["rejected"] or data["problems"]:
        raise SystemExit(f"unexpected plan for {n} plugins: {data}")
    if mode == "warm" and any(data["parsed"]):
        raise SystemExit(f"a warm run parsed manifests (the cache was not used): {data['parsed']}")
    if mode == "cold" and not all(data["parsed"]):
        raise SystemExit(f"a cold run parsed nothing (a cache was left behind): {data['parsed']}")


def measure_overhead(host: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Peak RSS of import plugbay + warm discover+plan of 1,000, minus a bare worker's."""
    bare = [worker("bare")[0]["maxrss_kb"] for _ in range(runs("fresh_warm_small", quick))]
    bare_kb = statistics.median(bare)
    host_kb = host["warm_fresh"]["maxrss_kb"]
    cold_kb = host["cold_fresh"]["maxrss_kb"]
    return {
        "bare_rss_kb": bare_kb,
        "host_warm_rss_kb": host_kb,
        "host_cold_rss_kb": cold_kb,
        "overhead_warm_mb": mb(host_kb - bare_kb),
        "overhead_cold_mb": mb(cold_kb - bare_kb),
    }


def interleave(
    commands: dict[str, tuple[list[str], dict[str, str], Path | None]],
    n: int,
    warmup: int,
    check: Callable[[str, Proc], None] | None = None,
) -> dict[str, list[Proc]]:
    """Run each command n times, round-robin, after ``warmup`` untimed rounds."""
    results: dict[str, list[Proc]] = {name: [] for name in commands}
    for i in range(warmup + n):
        for name, (cmd, env, cwd) in commands.items():
            proc = spawn(cmd, env=env, cwd=cwd)
            if check is not None:
                check(name, proc)
            if i >= warmup:
                results[name].append(proc)
    return results


def proc_summary(procs: list[Proc]) -> dict[str, Any]:
    rss = [p.maxrss_kb for p in procs if p.maxrss_kb is not None]
    return {
        **summary([p.wall_ms for p in procs], [p.cpu_ms for p in procs]),
        "maxrss_kb": statistics.median(rss) if rss else None,
    }


def cli_available() -> str | None:
    """None if ``plugbay --help`` works, else why not."""
    if not Path(PLUGBAY).exists():
        return f"{PLUGBAY} does not exist"
    proc = spawn([PLUGBAY, "--help"], env=child_env())
    if proc.returncode != 0:
        return (proc.stderr.decode().strip().splitlines() or ["exit " + str(proc.returncode)])[-1]
    return None


def measure_cli(layout: Layout, quick: bool) -> dict[str, Any]:
    """Whole-process ``plugbay list --json`` with 1,000 plugins, beside bare interpreters."""
    env = child_env()
    home = str(layout.homes[SMALL])
    commands = {
        "python_pass": ([PYTHON, "-c", "pass"], env, layout.cwd),
        "import_plugbay": ([PYTHON, "-c", "import plugbay"], env, layout.cwd),
    }
    missing = cli_available()
    if missing is None:
        cmd = [PLUGBAY, "--app", "benchapp", "--home", home, "list", "--json"]
        commands = {"plugbay_list_json": (cmd, env, layout.cwd), **commands}
    listed: dict[str, int] = {}

    def check(name: str, proc: Proc) -> None:
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr.decode()}")
        if name == "plugbay_list_json" and not listed:
            doc = json.loads(proc.stdout)
            plugins = doc["plugins"] if isinstance(doc, dict) else doc
            listed["plugins"] = len(plugins)
            listed["bytes"] = len(proc.stdout)

    results = interleave(commands, runs("cli", quick), runs("warmup", quick), check)
    out: dict[str, Any] = {name: proc_summary(procs) for name, procs in results.items()}
    if missing is not None:
        out["plugbay_list_json"] = {"unavailable": missing}
    else:
        out["plugbay_list_json"]["command"] = " ".join(
            [
                ".venv/bin/plugbay",
                "--app",
                "benchapp",
                "--home",
                f"<home with {SMALL} plugins>",
                "list",
                "--json",
            ]
        )
        out["plugbay_list_json"].update(listed)
    return out


def measure_tools(layout: Layout, quick: bool) -> dict[str, Any]:
    """entry_points() and stevedore over 1,000 fake distributions; plugbay over the same."""
    env = child_env(layout.site)
    n, warmup = runs("tools", quick), runs("warmup", quick)
    ep_call, sv_disc, sv_load, ep_found, sv_found = [], [], [], [], []
    ep_cpu, sv_disc_cpu, sv_load_cpu, ep_rss, sv_rss = [], [], [], [], []
    for i in range(warmup + n):
        ep, _ = worker("entry-points", GROUP, env=env)
        sv, _ = worker("stevedore", GROUP, env=env)
        if i >= warmup:
            ep_call.append(ep["call_ms"])
            ep_cpu.append(ep["cpu_ms"])
            sv_disc_cpu.append(sv["discovery_cpu_ms"])
            sv_load_cpu.append(sv["load_cpu_ms"])
            ep_rss.append(ep["maxrss_kb"])
            ep_found.append(ep["found"])
            sv_disc.append(sv["discovery_ms"])
            sv_load.append(sv["load_ms"])
            sv_rss.append(sv["maxrss_kb"])
            sv_found.append(sv["loaded"])
    if set(ep_found) != {SMALL} or set(sv_found) != {SMALL}:
        raise SystemExit(f"expected {SMALL} entry points, got {set(ep_found)} / {set(sv_found)}")
    whole = interleave(
        {
            "entry_points": (
                [PYTHON, "-c", f"import importlib.metadata as m; m.entry_points(group={GROUP!r})"],
                env,
                layout.cwd,
            ),
            "stevedore": (
                [
                    PYTHON,
                    "-c",
                    "from stevedore import ExtensionManager as E; "
                    f"E(namespace={GROUP!r}, invoke_on_load=False)",
                ],
                env,
                layout.cwd,
            ),
        },
        n,
        warmup,
    )
    total = [d + lo for d, lo in zip(sv_disc, sv_load, strict=True)]
    total_cpu = [d + lo for d, lo in zip(sv_disc_cpu, sv_load_cpu, strict=True)]
    # plugbay over the same distributions: built-in plugins from the same entry points.
    ep_home, empty = str(layout.ep_home), str(layout.empty)
    pb_cold, pb_warm, pb_cold_cpu, pb_warm_cpu, pb_rss = [], [], [], [], []
    for _ in range(n):
        cold, _ = worker("host", ep_home, empty, "--runs", "1", "--cold", "--entry-points", env=env)
        warm, _ = worker("host", ep_home, empty, "--runs", "1", "--entry-points", env=env)
        for data in (cold, warm):
            if data["planned"] < SMALL:
                raise SystemExit(f"plugbay found {data['planned']} of {SMALL} entry-point plugins")
        pb_cold.append(cold["times_ms"][0])
        pb_warm.append(warm["times_ms"][0])
        pb_cold_cpu.append(cold["cpu_ms"][0])
        pb_warm_cpu.append(warm["cpu_ms"][0])
        pb_rss.append(warm["maxrss_kb"])
    return {
        "distributions": SMALL,
        "entry_points_call": {
            **summary(ep_call, ep_cpu),
            "maxrss_kb": statistics.median(ep_rss),
        },
        "entry_points_process": proc_summary(whole["entry_points"]),
        "stevedore_discovery": summary(sv_disc, sv_disc_cpu),
        "stevedore_load": summary(sv_load, sv_load_cpu),
        "stevedore_total": {**summary(total, total_cpu), "maxrss_kb": statistics.median(sv_rss)},
        "stevedore_process": proc_summary(whole["stevedore"]),
        "plugbay_entry_points_cold_fresh": summary(pb_cold, pb_cold_cpu),
        "plugbay_entry_points_warm_fresh": {
            **summary(pb_warm, pb_warm_cpu),
            "maxrss_kb": statistics.median(pb_rss),
        },
    }


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = cpu_model()
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    import plugbay

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "plugbay": plugbay.__version__,
        "git": rev + (" (with uncommitted changes in src/)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "bytecode": f"cached in {PYCACHE.relative_to(REPO)} (PYTHONPYCACHEPREFIX)",
        "rss_from": f"{TIME} -f %M",
    }


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    small = r["host"][str(SMALL)]
    warm, warm_cpu = small["warm_inproc"]["median"], small["warm_inproc"]["cpu_median"]
    calls = r["tools"]["entry_points_call"]
    ep, ep_cpu = calls["median"], calls["cpu_median"]
    cli = r["cli"]["plugbay_list_json"]
    growth = r["growth"]
    out = [
        {
            "target": f"warm discover + plan of {SMALL:,} plugins ≤ 10 ms",
            "measured": f"{warm:.1f} ms (CPU {warm_cpu:.1f} ms; first run in a fresh "
            f"process: {small['warm_fresh']['median']:.1f} ms)",
            "met": warm <= 10,
        },
        {
            "target": f"… and ≥ 4x faster than entry_points() over {SMALL:,} distributions",
            "measured": f"{ep / warm:.2f}x ({ep:.1f} ms vs {warm:.1f} ms; "
            f"by CPU time {ep_cpu / warm_cpu:.2f}x)",
            "met": ep / warm >= 4,
        },
    ]
    if "median" in cli:
        out.append(
            {
                "target": f"`plugbay list --json` with {SMALL:,} plugins ≤ 150 ms "
                "(median, whole process)",
                "measured": f"{cli['median']:.1f} ms (CPU {cli['cpu_median']:.1f} ms)",
                "met": cli["median"] <= 150,
            }
        )
    else:
        out.append(
            {
                "target": f"`plugbay list --json` with {SMALL:,} plugins ≤ 150 ms",
                "measured": f"not measured: {cli['unavailable']}",
                "met": False,
            }
        )
    worst = max(growth["cold_inproc"], growth["warm_inproc"])
    out.append(
        {
            "target": f"linear growth {SMALL:,} → {LARGE:,} (time ratio ≤ 12, i.e. ~10)",
            "measured": f"cold {growth['cold_inproc']:.1f}x, warm {growth['warm_inproc']:.1f}x",
            "met": worst <= 12,
        }
    )
    overhead = r["overhead"]["overhead_warm_mb"]
    out.append(
        {
            "target": f"host overhead with {SMALL:,} discovered plugins < 30 MB",
            "measured": f"{overhead:.1f} MB "
            f"(cold start: {r['overhead']['overhead_cold_mb']:.1f} MB)",
            "met": overhead < 30,
        }
    )
    return out


HEADER = ("measurement", "median ms", "min-max ms", "CPU ms", "peak RSS MB", "runs")


def rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """One tuple of cells per measurement, in the order of HEADER."""

    def row(name: str, s: dict[str, Any]) -> tuple[str, ...]:
        kb, cpu = s.get("maxrss_kb"), s.get("cpu_median")
        return (
            name,
            f"{s['median']:.1f}",
            f"{s['min']:.1f}-{s['max']:.1f}",
            f"{cpu:.1f}" if cpu is not None else "",
            f"{mb(kb):.1f}" if kb else "",
            str(s["runs"]),
        )

    out = []
    for n in (SMALL, LARGE):
        h = r["host"][str(n)]
        for mode in ("cold", "warm"):
            inproc, fresh = h[f"{mode}_inproc"], h[f"{mode}_fresh"]
            out.append(row(f"plugbay {mode} discover+plan, {n:,} plugins (in-process)", inproc))
            out.append(
                row(f"plugbay {mode} discover+plan, {n:,} plugins (first in fresh process)", fresh)
            )
        f = h["floor"]
        out.append(
            row(f"floor: os.stat of the {f['paths']:,} paths a warm discover checks", f["stat"])
        )
    cli = r["cli"]
    if "median" in cli["plugbay_list_json"]:
        out.append(
            row(
                f"`plugbay list --json`, {SMALL:,} plugins (whole process)",
                cli["plugbay_list_json"],
            )
        )
    out.append(row("`python -c pass` (whole process)", cli["python_pass"]))
    out.append(row('`python -c "import plugbay"` (whole process)', cli["import_plugbay"]))
    t = r["tools"]
    out += [
        row(f"entry_points(group=…), {SMALL:,} dists (call only)", t["entry_points_call"]),
        row(f"entry_points(group=…), {SMALL:,} dists (whole process)", t["entry_points_process"]),
        row(
            f"stevedore discovery, {SMALL:,} dists (warm stevedore cache)", t["stevedore_discovery"]
        ),
        row(f"stevedore load (imports {SMALL:,} modules)", t["stevedore_load"]),
        row("stevedore ExtensionManager total (discovery + load)", t["stevedore_total"]),
        row("stevedore ExtensionManager (whole process)", t["stevedore_process"]),
        row(
            f"plugbay cold discover+plan, {SMALL:,} entry-point plugins (fresh process)",
            t["plugbay_entry_points_cold_fresh"],
        ),
        row(
            f"plugbay warm discover+plan, {SMALL:,} entry-point plugins (fresh process)",
            t["plugbay_entry_points_warm_fresh"],
        ),
    ]
    return out


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"Measured {m['date']} on {m['nproc']} x {m['cpu']}, {m['os']}, "
        f"{m['implementation']} {m['python']}, plugbay {m['plugbay']} at {m['git']}; "
        f"full run took {r['seconds']:.0f} s; load average (1 min) {m['load_average_before'][0]} "
        f"before, {m['load_average_after'][0]} after.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| --- |" + " ---: |" * (len(HEADER) - 1),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(r)]
    g, o, ratios = r["growth"], r["overhead"], r["ratios"]
    split = "; ".join(
        f"{mode} {n:,}: discover {s['discover_ms']:.1f} + plan {s['plan_ms']:.1f} ms"
        for n in (SMALL, LARGE)
        for mode in ("warm", "cold")
        for s in [r["host"][str(n)][f"{mode}_inproc"]]
    )
    lines += [
        "",
        f"- Where the time goes (in-process medians): {split}.",
        f"- Cost per plugin ({SMALL:,} → {LARGE:,}): cold {g['cold_per_plugin_us'][0]:.0f} → "
        f"{g['cold_per_plugin_us'][1]:.0f} µs, warm {g['warm_per_plugin_us'][0]:.1f} → "
        f"{g['warm_per_plugin_us'][1]:.1f} µs (in-process medians).",
        f"- Growth {LARGE:,}/{SMALL:,}: cold {g['cold_inproc']:.1f}x, "
        f"warm {g['warm_inproc']:.1f}x "
        f"(first in fresh process: cold {g['cold_fresh']:.1f}x, warm {g['warm_fresh']:.1f}x).",
        f"- plugbay warm vs entry_points(): {ratios['warm_vs_entry_points']:.2f}x faster "
        f"(fresh process: {ratios['warm_fresh_vs_entry_points']:.2f}x); vs stevedore discovery: "
        f"{ratios['warm_vs_stevedore_discovery']:.2f}x; vs stevedore total: "
        f"{ratios['warm_vs_stevedore_total']:.2f}x (a ratio below 1 means plugbay is slower).",
        f"- Host overhead: {mb(o['host_warm_rss_kb']):.1f} MB peak RSS (import plugbay + warm "
        f"discover+plan of {SMALL:,}) - {mb(o['bare_rss_kb']):.1f} MB (bare worker) = "
        f"{o['overhead_warm_mb']:.1f} MB; after a cold discover: {o['overhead_cold_mb']:.1f} MB.",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |"
        for t in r["targets"]
    ]
    return "\n".join(lines)


def table(r: dict[str, Any]) -> str:
    body = rows(r)
    out = [*aligned(HEADER, body), ""]
    out += verdicts(r["targets"])
    return "\n".join(out)


def update_docs(r: dict[str, Any]) -> bool:
    return replace_block(DOCS, DOC_START, DOC_END, markdown(r))


# ---------------------------------------------------------------- main


def run(quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    log("generating inputs in", WORK)
    layout, generated = prepare()
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": quick,
        "generated": generated,
        "host": {},
    }
    for n in (SMALL, LARGE):
        log(f"plugbay discover + plan, {n:,} plugins")
        results["host"][str(n)] = measure_host(layout, n, quick)
    log("memory overhead")
    results["overhead"] = measure_overhead(results["host"][str(SMALL)], quick)
    log("whole process: plugbay list --json, python -c pass, import plugbay")
    results["cli"] = measure_cli(layout, quick)
    log("entry_points() and stevedore")
    results["tools"] = measure_tools(layout, quick)
    small, large = results["host"][str(SMALL)], results["host"][str(LARGE)]
    results["growth"] = {
        f"{mode}_{where}": large[f"{mode}_{where}"]["median"] / small[f"{mode}_{where}"]["median"]
        for mode in ("cold", "warm")
        for where in ("inproc", "fresh")
    }
    for mode in ("cold", "warm"):
        results["growth"][f"{mode}_per_plugin_us"] = [
            results["host"][str(n)][f"{mode}_inproc"]["median"] * 1e3 / n for n in (SMALL, LARGE)
        ]
    tools = results["tools"]
    warm, warm_fresh = small["warm_inproc"]["median"], small["warm_fresh"]["median"]
    results["ratios"] = {
        "warm_vs_entry_points": tools["entry_points_call"]["median"] / warm,
        "warm_fresh_vs_entry_points": tools["entry_points_call"]["median"] / warm_fresh,
        "warm_vs_stevedore_discovery": tools["stevedore_discovery"]["median"] / warm,
        "warm_vs_stevedore_total": tools["stevedore_total"]["median"] / warm,
    }
    results["seconds"] = time.perf_counter() - t0
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    return results


def profile(top: int) -> None:
    home = WORK / f"home-{SMALL}"
    empty = WORK / "empty"
    if not (home / "plugins").is_dir():
        generate_plugins(home / "plugins", SMALL)
    empty.mkdir(parents=True, exist_ok=True)
    out = WORK / f"profile-warm-{SMALL}.pstats"
    proc = spawn(
        [
            PYTHON,
            str(WORKER),
            "profile",
            str(home),
            str(empty),
            "--runs",
            "20",
            "--top",
            str(top),
            "--out",
            str(out),
        ],
        env=child_env(),
    )
    sys.stdout.write(proc.stderr.decode())
    print(f"raw stats: {out}")


def log(*parts: object) -> None:
    print("--", *parts, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plugbay discovery benchmark")
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs; numbers not for publishing"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not refresh docs/benchmarks.md")
    parser.add_argument("--profile", action="store_true", help="only profile warm discover+plan")
    parser.add_argument("--top", type=int, default=30, help="rows of the profile")
    args = parser.parse_args(argv)
    if TIME is None:
        # Every row reports its peak RSS, and only a small parent gives a true one.
        print("run.py needs GNU time at /usr/bin/time (e.g. apt-get install time)", file=sys.stderr)
        return 1
    if args.profile:
        profile(args.top)
        return 0
    results = run(args.quick)
    print(table(results))
    # A --quick run's numbers are not worth publishing: they stay in .work/.
    path = WORK / "results-quick.json" if args.quick else RESULTS
    path.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(f"\nresults: {path.relative_to(REPO)}")
    if not args.no_docs and not args.quick and update_docs(results):
        print(f"docs:    {DOCS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
