"""Index benchmark: ``plugbay install NAME --index URL`` beside ``ansible-galaxy`` and a Galaxy API.

Run with ``make bench`` (that is, ``.venv/bin/python benchmarks/index/run.py``, after the
install benchmark). Prints a table, writes ``benchmarks/index/results.json`` and refreshes
the results block of the *Index installs* section of ``docs/benchmarks.md`` (between its
``index-results`` markers; ``--no-docs`` skips). ``--quick`` does fewer runs (to check the
script; its numbers go to ``.work/`` only); ``--docs-only`` rewrites the docs block from
``results.json``; ``--profile WHAT`` prints cProfile listings and ``-X importtime``'s
heaviest imports of plugbay's side instead of measuring.

Inputs (workloads.py), generated deterministically and kept in ``.work/cache/`` between
runs:

1. *deps*: 50 plugins with 95 dependency edges (two versions of each), the same as plugbay
   bundles served with a flat (and a sharded) index by a static HTTP server, and as Ansible
   collections served by a small Galaxy v3 API server; both servers run in this process,
   on 127.0.0.1, and count every request. In one run, alternating (which goes first
   alternates too): ``plugbay install TOP… --index URL`` into a fresh home, and
   ``ansible-galaxy collection install TOP… -s URL/api/ -p DIR --no-cache`` into a fresh
   collections path with a fresh ANSIBLE_HOME and galaxy cache folder. TOP are the 8
   top-level plugins, which pull in all 50.
2. *big*: 10,000 plugins in a sharded index (and a flat one, for comparison), served by
   the static server; ``plugbay install p09999 --index URL --dry-run`` and the real install
   (4 plugins) into a fresh home, from a fresh process each time.

Every measurement is a whole fresh process timed from spawn to exit, with its own peak
RSS from ``/usr/bin/time -f %M`` (``wait4`` on a child of this process would report at
least this process's size: Linux keeps the peak across ``exec``) and the requests the
server answered for it. Each figure is the median of several runs after one untimed
warm-up round that also fills the bytecode cache. Timing results are reported, never
asserted; a missing ansible-galaxy is an error, not a skip.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import Collection, GalaxyApi, Requests, Running, StaticSite, serve
from workloads import (
    BIG_TARGET,
    BigInputs,
    DepsInputs,
    build_big,
    build_deps,
    cache_key,
    sha256_of,
)

# The shared report helpers live one folder up (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import aligned, cpu_model, replace_block, verdicts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
CACHE = WORK / "cache"  # generated inputs, kept between runs (see workloads.py)
PYCACHE = WORK / "pycache"  # kept between runs (see base_env)
RESULTS = HERE / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
DOC_START, DOC_END = "<!-- index-results:start -->", "<!-- index-results:end -->"
BIN = Path(sys.executable).parent
PLUGBAY = BIN / "plugbay"
GALAXY = BIN / "ansible-galaxy"

#: The targets (issue 9).
MAX_REQUESTS_50 = 52  # one index, plus one per bundle
MIN_SPEEDUP_50 = 5.0  # against ansible-galaxy with a Galaxy API server
MAX_MS_10K = 1000.0  # whole process, resolution from the sharded index of 10,000

#: Timed runs per measurement, (full, --quick), after WARMUP untimed rounds.
RUNS = {
    "deps-plugbay": (9, 2),
    "deps-plugbay-sharded": (5, 2),
    "deps-ansible": (3, 1),  # about 12 s a run: the slow side gets fewer
    "big": (7, 2),
}
WARMUP = 1

TIME = shutil.which("time", path="/usr/bin:/bin")


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    """One finished child: wall time from spawn to reaped, its own peak RSS (KiB), and the
    requests the server answered while it ran."""

    wall_ms: float
    cpu_ms: float  # user + system
    maxrss_kb: int | None
    returncode: int
    stdout: bytes
    stderr: bytes
    requests: Requests | None = None

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def spawn(cmd: Sequence[str | Path], env: dict[str, str], server: Running | None = None) -> Proc:
    """Run ``cmd`` to completion, counting the requests ``server`` answers meanwhile."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss,
    ):
        full = [TIME or "/usr/bin/time", "-f", "%M", "-o", rss.name, *map(str, cmd)]
        if server is not None:
            server.reset()
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, cwd=WORK / "cwd")
        _, status, usage = os.wait4(proc.pid, 0)
        wall_ms = (time.perf_counter() - start) * 1e3
        requests = server.requests() if server is not None else None
        out.seek(0)
        err.seek(0)
        text = rss.read().strip().splitlines()
        maxrss = int(text[-1]) if text and text[-1].isdigit() else None
        cpu_ms = (usage.ru_utime + usage.ru_stime) * 1e3
        code = os.waitstatus_to_exitcode(status)
        return Proc(wall_ms, cpu_ms, maxrss, code, out.read(), err.read(), requests)


def base_env() -> dict[str, str]:
    """What every child sees: no stray settings of either tool, no proxy, private caches.

    Bytecode caching is on (in .work/pycache), as in any installation, even where the
    calling shell sets PYTHONDONTWRITEBYTECODE.
    """
    drop = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PLUGBAY_HOME")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop
        and not k.startswith(("ANSIBLE_", "GALAXY_"))
        and not k.lower().endswith("_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["HOME"] = str(WORK / "user-home")  # nothing lands in the real ~/.ansible or ~/.plugbay
    env["TMPDIR"] = str(WORK / "tmp")
    return env


def ansible_env(root: Path) -> dict[str, str]:
    """ansible-galaxy's environment: its own home, galaxy cache, collections path, config."""
    env = base_env()
    env.update(
        ANSIBLE_HOME=str(root / "ansible-home"),
        ANSIBLE_GALAXY_CACHE_DIR=str(root / "galaxy-cache"),
        ANSIBLE_COLLECTIONS_PATH=str(root / "collections"),
        ANSIBLE_CONFIG=str(WORK / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(root / "ansible-home" / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_GALAXY_DISPLAY_PROGRESS="false",
    )
    return env


def must(proc: Proc, what: str) -> Proc:
    if proc.returncode != 0:
        raise SystemExit(
            f"{what} failed (exit {proc.returncode}):\n"
            f"{proc.stderr.decode('utf-8', 'replace')[-3000:]}\n{proc.text()[-2000:]}"
        )
    return proc


def summary(procs: Sequence[Proc]) -> dict[str, Any]:
    walls = [p.wall_ms for p in procs]
    rss = [p.maxrss_kb for p in procs if p.maxrss_kb is not None]
    counts = [p.requests.total for p in procs if p.requests is not None]
    return {
        "median": statistics.median(walls),
        "min": min(walls),
        "max": max(walls),
        "cpu_median": statistics.median(p.cpu_ms for p in procs),
        "maxrss_kb": statistics.median(rss) if rss else None,
        "requests": max(counts) if counts else None,
        "requests_min": min(counts) if counts else None,
        "request_kinds": request_kinds(procs[0].requests) if procs[0].requests else {},
        "runs": len(walls),
        "values": [round(w, 1) for w in walls],
    }


def request_kinds(requests: Requests) -> dict[str, int]:
    """How many requests of each kind one run made (index documents, API calls, downloads)."""
    out: dict[str, int] = {}
    for path in requests.paths:
        parts = path.strip("/").split("/")
        if path.endswith(".tar.gz"):
            kind = "download"
        elif path == "/api/":
            kind = "API root"
        elif path.startswith("/api/v3/collections/"):
            kind = {5: "collection", 6: "version list", 7: "version"}.get(len(parts), path)
        elif path.endswith(".json"):
            kind = "index" if len(parts) == 1 else "shard"
        else:
            kind = path
        out[kind] = out.get(kind, 0) + 1
    return out


def mb(kb: float | None) -> str:
    return f"{kb / 1024:.1f}" if kb else ""


# ---------------------------------------------------------------- tools


def check_tools() -> None:
    """Both command-line tools are in this virtualenv, and start; else exit saying how to fix.

    A missing ansible-galaxy is an error, not a reason to skip: the comparison is the point.
    """
    if TIME is None:
        raise SystemExit("run.py needs GNU time at /usr/bin/time (e.g. apt-get install time)")
    for folder in (WORK, WORK / "cwd", WORK / "user-home", WORK / "tmp"):
        folder.mkdir(exist_ok=True)
    (WORK / "ansible.cfg").write_text("[defaults]\n", "utf-8")  # defaults only
    for tool, probe, fix in (
        (PLUGBAY, "--help", f"{BIN}/pip install -e ."),
        (GALAXY, "--version", f"{BIN}/pip install -e '.[bench]' (ansible-core>=2.15)"),
    ):
        if not tool.exists():
            raise SystemExit(
                f"{tool} does not exist: this benchmark compares plugbay with ansible-galaxy, "
                f"both installed in this virtualenv. Install it with: {fix}"
            )
        with tempfile.TemporaryDirectory(dir=WORK / "tmp") as scratch:
            proc = spawn([tool, probe], ansible_env(Path(scratch)))
        if proc.returncode != 0:
            raise SystemExit(
                f"{tool} {probe} failed (exit {proc.returncode}); reinstall it with: {fix}\n"
                + proc.stderr.decode("utf-8", "replace")[-2000:]
            )


def versions() -> tuple[str, str]:
    from importlib.metadata import version

    import plugbay

    return plugbay.__version__, version("ansible-core")


def prepare() -> tuple[DepsInputs, BigInputs]:
    """Both workloads, from the cache when it holds them (built now otherwise); old caches
    and the homes of an earlier run are deleted."""
    key = cache_key(*versions())
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.iterdir():
        if old.name != key:
            shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(WORK / "runs", ignore_errors=True)
    env = base_env()
    deps = build_deps(CACHE / key, PLUGBAY, GALAXY, env, log)
    big = build_big(CACHE / key, PLUGBAY, env, log)
    return deps, big


def galaxy_collections(deps: DepsInputs) -> list[Collection]:
    out = []
    for p in deps.published:
        tarball = deps.collections / f"{p.namespace}-{p.name}-{p.version}.tar.gz"
        deps_map = dict(p.dependencies)
        out.append(
            Collection(p.namespace, p.name, p.version, deps_map, tarball, sha256_of(tarball))
        )
    return out


# ---------------------------------------------------------------- checks


def installed_plugbay(home: Path) -> dict[str, str]:
    """id → version of every version folder with a MANIFEST.json in ``home``."""
    out = {}
    for manifest in (home / "plugins").glob("*/*/*/MANIFEST.json"):
        ns, name, version = manifest.parts[-4:-1]
        out[name if ns == "_" else f"{ns}.{name}"] = version
    return out


def installed_ansible(collections: Path) -> dict[str, str]:
    out = {}
    for manifest in (collections / "ansible_collections").glob("*/*/MANIFEST.json"):
        info = json.loads(manifest.read_text())["collection_info"]
        out[f"{info['namespace']}.{info['name']}"] = info["version"]
    return out


def expect(got: dict[str, str], want: dict[str, str], what: str, proc: Proc) -> None:
    if got != want:
        wrong = sorted(set(got.items()) ^ set(want.items()))[:6]
        raise SystemExit(
            f"{what}: installed {len(got)} of {len(want)} expected plugin versions "
            f"(differences: {wrong})\n{proc.text()[-1500:]}"
        )


# ---------------------------------------------------------------- measurements


@dataclass
class Case:
    """One measured command: how to run it in a fresh folder, and how to check it."""

    key: str
    runs: int
    server: Running | None
    command: Callable[[Path], tuple[list[str | Path], dict[str, str]]]
    check: Callable[[Path, Proc], None]


def measure(cases: Sequence[Case]) -> dict[str, list[Proc]]:
    """Every case in each round (rotating which goes first), each in a fresh folder.

    The folders are deleted at the end, so that no timed run pays for deleting another's.
    """
    timed: dict[str, list[Proc]] = {c.key: [] for c in cases}
    for i in range(WARMUP + max(c.runs for c in cases)):
        shift = i % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            if i >= WARMUP + case.runs:
                continue
            folder = WORK / "runs" / f"{case.key}-{i}"
            folder.mkdir(parents=True)
            cmd, env = case.command(folder)
            os.sync()  # the previous run's writes are flushed now, not during this one
            proc = spawn(cmd, env, case.server)
            case.check(folder, must(proc, f"{case.key}: {shown(cmd)}"))
            if i >= WARMUP:
                timed[case.key].append(proc)
    shutil.rmtree(WORK / "runs", ignore_errors=True)
    return timed


def runs(key: str, quick: bool) -> int:
    return RUNS[key][1 if quick else 0]


def deps_cases(deps: DepsInputs, site: Running, galaxy: Running, quick: bool) -> list[Case]:
    want = deps.newest()

    def plugbay(index: str) -> Callable[[Path], tuple[list[str | Path], dict[str, str]]]:
        def command(folder: Path) -> tuple[list[str | Path], dict[str, str]]:
            cmd: list[str | Path] = [PLUGBAY, "--home", folder / "home", "install", *deps.top]
            return [*cmd, "--index", f"{site.url}/{index}"], base_env()

        return command

    def check_plugbay(folder: Path, proc: Proc) -> None:
        expect(installed_plugbay(folder / "home"), want, "plugbay install", proc)

    def ansible(folder: Path) -> tuple[list[str | Path], dict[str, str]]:
        cmd: list[str | Path] = [GALAXY, "collection", "install", *deps.top]
        cmd += ["-s", f"{galaxy.url}/api/", "-p", folder / "collections", "--no-cache"]
        return cmd, ansible_env(folder)

    def check_ansible(folder: Path, proc: Proc) -> None:
        expect(installed_ansible(folder / "collections"), want, "ansible-galaxy install", proc)

    return [
        Case(
            "deps-plugbay", runs("deps-plugbay", quick), site, plugbay("index.json"), check_plugbay
        ),
        Case("deps-ansible", runs("deps-ansible", quick), galaxy, ansible, check_ansible),
        Case(
            "deps-plugbay-sharded",
            runs("deps-plugbay-sharded", quick),
            site,
            plugbay("sharded.json"),
            check_plugbay,
        ),
    ]


def big_cases(big: BigInputs, site: Running, quick: bool) -> list[Case]:
    closure = big.facts["target_closure"]

    def command(
        index: str, *extra: str
    ) -> Callable[[Path], tuple[list[str | Path], dict[str, str]]]:
        def make(folder: Path) -> tuple[list[str | Path], dict[str, str]]:
            url = f"{site.url}/{index}"
            cmd: list[str | Path] = [PLUGBAY, "--home", folder / "home", "install", BIG_TARGET]
            return [*cmd, "--index", url, *extra], base_env()

        return make

    def check_dry(folder: Path, proc: Proc) -> None:
        said = sorted(re.findall(r"^would install (\S+) ", proc.text(), re.M))
        if said != closure or (folder / "home" / "plugins").exists():
            raise SystemExit(f"dry run: said {said}, wanted {closure}\n{proc.text()[-1500:]}")

    def check_install(folder: Path, proc: Proc) -> None:
        got = installed_plugbay(folder / "home")
        if sorted(got) != closure:
            raise SystemExit(f"install: installed {sorted(got)}, wanted {closure}")

    def floor(folder: Path) -> tuple[list[str | Path], dict[str, str]]:
        return [sys.executable, "-c", "pass"], base_env()

    n = runs("big", quick)
    return [
        Case("python-floor", n, None, floor, lambda folder, proc: None),
        Case("big-sharded-dry", n, site, command("index.json", "--dry-run"), check_dry),
        Case("big-sharded-install", n, site, command("index.json"), check_install),
        Case("big-flat-dry", n, site, command("flat.json", "--dry-run"), check_dry),
        Case("big-flat-install", n, site, command("flat.json"), check_install),
    ]


def run(quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "quick": quick}
    deps, big = prepare()
    results["generated"] = {"deps": deps.facts, "big": big.facts}
    measured: dict[str, Any] = {}
    commands: dict[str, str] = {}
    with serve(StaticSite(deps.site)) as site, serve(GalaxyApi(galaxy_collections(deps))) as api:
        cases = deps_cases(deps, site, api, quick)
        log("deps: install 8 top-level plugins pulling in 50, plugbay and ansible-galaxy")
        for key, procs in measure(cases).items():
            measured[key] = summary(procs)
        commands.update(command_lines(cases))
    with serve(StaticSite(big.site)) as site:
        cases = big_cases(big, site, quick)
        log(f"big: install {BIG_TARGET} from 10,000 plugins, sharded and flat index")
        for key, procs in measure(cases).items():
            measured[key] = summary(procs)
        commands.update(command_lines(cases))
    results["measurements"] = measured
    results["commands"] = commands
    results["seconds"] = time.perf_counter() - t0
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    return results


# ---------------------------------------------------------------- report


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    m = r["measurements"]
    pb, an = m["deps-plugbay"], m["deps-ansible"]
    speedup = an["median"] / pb["median"]
    out = [
        {
            "key": "deps-requests",
            "target": f"install 50 plugins (95 edges) by name: at most {MAX_REQUESTS_50} HTTP "
            "requests",
            "measured": f"{pb['requests']} requests (ansible-galaxy: {an['requests']})",
            "met": pb["requests"] <= MAX_REQUESTS_50,
        },
        {
            "key": "deps-speedup",
            "target": f"… and at least {MIN_SPEEDUP_50:g}x faster than ansible-galaxy from a "
            "Galaxy API server",
            "measured": f"{speedup:.2f}x ({pb['median']:.0f} ms vs {an['median']:.0f} ms)",
            "ratio": speedup,
            "met": speedup >= MIN_SPEEDUP_50,
        },
    ]
    for key, what in (("big-sharded-dry", "--dry-run"), ("big-sharded-install", "install")):
        row = m[key]
        out.append(
            {
                "key": key,
                "target": f"resolve from a sharded index of 10,000 ({what}): at most "
                f"{MAX_MS_10K:.0f} ms, whole process",
                "measured": f"{row['median']:.0f} ms ({row['requests']} requests)",
                "met": row["median"] <= MAX_MS_10K,
            }
        )
    return out


#: (key in measurements, label, short name) per row, in order
ROWS = (
    ("deps-plugbay", "plugbay install 8 → 50 plugins, flat index", "plugbay, flat (50)"),
    (
        "deps-plugbay-sharded",
        "plugbay install 8 → 50 plugins, sharded index",
        "plugbay, sharded (50)",
    ),
    (
        "deps-ansible",
        "ansible-galaxy install 8 → 50 collections, Galaxy v3 API",
        "ansible-galaxy (50)",
    ),
    (
        "big-sharded-dry",
        f"plugbay install {BIG_TARGET} --dry-run, sharded index of 10,000",
        "sharded --dry-run (10,000)",
    ),
    (
        "big-sharded-install",
        f"plugbay install {BIG_TARGET} (4 plugins), sharded index of 10,000",
        "sharded install (10,000)",
    ),
    (
        "big-flat-dry",
        f"plugbay install {BIG_TARGET} --dry-run, flat index of 10,000",
        "flat --dry-run (10,000)",
    ),
    (
        "big-flat-install",
        f"plugbay install {BIG_TARGET} (4 plugins), flat index of 10,000",
        "flat install (10,000)",
    ),
    ("python-floor", "for scale: python -c pass (interpreter start and exit)", "python"),
)

HEADER = ("measurement", "median ms", "min-max ms", "CPU ms", "peak RSS MB", "requests", "runs")


def rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, label, _ in ROWS:
        row = r["measurements"][key]
        requests = "" if row["requests"] is None else str(row["requests"])
        if row["requests_min"] != row["requests"]:
            requests = f"{row['requests_min']}-{row['requests']}"
        out.append(
            (
                label,
                f"{row['median']:.0f}",
                f"{row['min']:.0f}-{row['max']:.0f}",
                f"{row['cpu_median']:.0f}",
                mb(row["maxrss_kb"]),
                requests,
                str(row["runs"]),
            )
        )
    return out


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    g = r["generated"]
    d, b = g["deps"], g["big"]
    meas = r["measurements"]
    speedup = meas["deps-ansible"]["median"] / meas["deps-plugbay"]["median"]
    lines = [
        f"Measured {m['date']} on {m['nproc']} x {m['cpu']}, {m['os']}, "
        f"{m['implementation']} {m['python']}, plugbay {m['plugbay']} at {m['git']}, "
        f"ansible-core {m['ansible_core']}; full run took {r['seconds']:.0f} s; load average "
        f"(1 min) {m['load_average_before'][0]} before, {m['load_average_after'][0]} after.",
        "",
        "Whole-process wall time from spawn to exit, median and min-max of the runs; CPU is "
        "user + system (median); peak RSS is each process's own (median); requests are those "
        "the server answered during one run (a range if runs differed).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| --- |" + " ---: |" * (len(HEADER) - 1),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(r)]
    lines += [
        "",
        f"- ansible-galaxy / plugbay (flat index), median wall time: {speedup:.2f}x.",
        "- Requests in one run, by kind: "
        + "; ".join(
            f"{short}: " + ", ".join(f"{k} {v}" for k, v in meas[key]["request_kinds"].items())
            for key, _, short in ROWS
            if meas[key]["request_kinds"]
        )
        + ".",
        f"- *deps* inputs: {d['plugins']} plugins x 2 versions, {d['dependency_edges']} "
        f"dependency edges; bundles {d['bundle_bytes'] / 1e6:.2f} MB (plugbay) and "
        f"collections {d['collection_bytes'] / 1e6:.2f} MB (Ansible); flat index "
        f"{d['flat_index_bytes'] / 1e3:.0f} kB, sharded root "
        f"{d['sharded_root_bytes'] / 1e3:.1f} kB.",
        f"- *big* inputs: {b['plugins']:,} plugins, {b['versions']:,} bundles "
        f"({b['bundle_bytes'] / 1e6:.1f} MB); sharded root {b['sharded_root_bytes'] / 1e3:.0f} kB "
        f"and {b['shards']:,} shards of about {b['shard_bytes_median']} bytes; flat index "
        f"{b['flat_index_bytes'] / 1e6:.1f} MB. {BIG_TARGET} resolves to "
        f"{', '.join(b['target_closure'])}. Building them took {b['bundle_seconds']} s "
        f"(bundles), {b['index_build_sharded_seconds']} s (`index build --sharded`) and "
        f"{b['index_build_flat_seconds']} s (flat), once; later runs reuse them.",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for t in r["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def table(r: dict[str, Any]) -> str:
    out = [*aligned(HEADER, rows(r)), ""]
    out += verdicts(r["targets"])
    return "\n".join(out)


def update_docs(r: dict[str, Any]) -> bool:
    return replace_block(DOCS, DOC_START, DOC_END, markdown(r))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def machine() -> dict[str, Any]:
    plugbay_version, ansible_version = versions()
    dirty = git("status", "--porcelain", "--", "src")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "plugbay": plugbay_version,
        "ansible_core": ansible_version,
        "git": git("rev-parse", "--short", "HEAD")
        + (" (with uncommitted changes in src/)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "rss_from": f"{TIME} -f %M",
    }


def shown(cmd: Sequence[str | Path]) -> str:
    """A command line for people: .work and .venv paths shortened, the port hidden."""
    text = " ".join(str(c) for c in cmd)
    text = text.replace(str(WORK), ".work").replace(str(BIN), ".venv/bin")
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)


def command_lines(cases: Sequence[Case]) -> dict[str, str]:
    return {c.key: shown(c.command(WORK / "runs" / f"{c.key}-N")[0]) for c in cases}


# ---------------------------------------------------------------- profile


PROFILES = ("deps", "big-dry", "big-install")


def profile(what: str, top: int) -> None:
    """cProfile listings and the heaviest imports (``-X importtime``) of plugbay's side."""
    import pstats

    check_tools()
    deps, big = prepare()
    WORK.joinpath("runs").mkdir(exist_ok=True)
    with serve(StaticSite(deps.site)) as site_d, serve(StaticSite(big.site)) as site_b:
        steps = {
            "deps": (site_d, [*deps.top, "--index", f"{site_d.url}/index.json"]),
            "big-dry": (site_b, [BIG_TARGET, "--index", f"{site_b.url}/index.json", "--dry-run"]),
            "big-install": (site_b, [BIG_TARGET, "--index", f"{site_b.url}/index.json"]),
        }
        for name, (server, args) in steps.items():
            if what not in ("all", name):
                continue
            for flavour in ("cprofile", "importtime"):
                home = WORK / "runs" / f"profile-{name}-{flavour}"
                shutil.rmtree(home, ignore_errors=True)
                cmd: list[str | Path] = [PLUGBAY, "--home", home, "install", *args]
                if flavour == "cprofile":
                    out = WORK / f"profile-{name}.pstats"
                    proc = must(
                        spawn(
                            [sys.executable, "-m", "cProfile", "-o", out, *cmd], base_env(), server
                        ),
                        f"profile of {name}",
                    )
                    print(f"\n======== {name} ({proc.wall_ms:.0f} ms under cProfile): {shown(cmd)}")
                    for order in ("cumulative", "tottime"):
                        pstats.Stats(str(out)).sort_stats(order).print_stats(top)
                else:
                    proc = must(
                        spawn([sys.executable, "-X", "importtime", *cmd], base_env(), server),
                        f"importtime of {name}",
                    )
                    print(f"\n======== {name}: imports ({proc.wall_ms:.0f} ms with -X importtime)")
                    print(heaviest_imports(proc.stderr.decode("utf-8", "replace"), top))
    print(f"raw stats: {WORK.relative_to(REPO)}/profile-*.pstats")


def heaviest_imports(report: str, top: int) -> str:
    """The ``top`` imports of a ``-X importtime`` report by cumulative time, and the total."""
    found = []
    for line in report.splitlines():
        hit = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if hit:
            found.append((int(hit.group(2)), len(hit.group(3)), hit.group(4)))
    total = sum(c for c, depth, _ in found if depth == 1)
    lines = [f"all imports: {total / 1e3:.1f} ms (top level, cumulative)"]
    for cumulative, depth, name in sorted(found, reverse=True)[:top]:
        lines.append(f"{cumulative / 1e3:8.1f} ms  {'  ' * (depth // 2)}{name}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


_T0 = time.perf_counter()


def log(*parts: object) -> None:
    print(f"-- [{time.perf_counter() - _T0:5.0f} s]", *parts, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plugbay index installs vs ansible-galaxy")
    parser.add_argument("--quick", action="store_true", help="fewer runs; not for publishing")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--docs-only", action="store_true", help="docs block from results.json")
    parser.add_argument("--profile", choices=[*PROFILES, "all"], help="only profile plugbay")
    parser.add_argument("--top", type=int, default=25, help="rows of each profile listing")
    args = parser.parse_args(argv)
    if args.docs_only:
        results = json.loads(RESULTS.read_text("utf-8"))
        print(table(results))
        print("docs:", "updated" if update_docs(results) else f"no {DOC_START} marker in {DOCS}")
        return 0
    if args.profile:
        profile(args.profile, args.top)
        return 0
    check_tools()
    results = run(args.quick)
    print(table(results))
    print()
    for key, line in results["commands"].items():
        print(f"{key}: {line}")
    path = WORK / "results-quick.json" if args.quick else RESULTS
    path.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(f"\nresults: {path.relative_to(REPO)}")
    if not args.no_docs and not args.quick:
        if update_docs(results):
            print(f"docs:    {DOCS.relative_to(REPO)}")
        else:
            print(f"docs:    no {DOC_START} … {DOC_END} block in {DOCS}; not updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
