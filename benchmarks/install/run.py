"""Install benchmark: ``plugbay install``, ``list`` and ``verify`` beside ``ansible-galaxy``.

Run with ``make bench`` (that is, ``.venv/bin/python benchmarks/install/run.py``, after the
other benchmarks). Prints a table, writes ``benchmarks/install/results.json`` and refreshes
the results block of the *Install* section of ``docs/benchmarks.md`` (between its
``install-results`` markers; ``--no-docs`` skips). ``--quick`` does fewer runs (to check
the script; its numbers go to ``.work/`` only); ``--docs-only`` rewrites the docs block
from ``results.json``; ``--profile WHAT`` only prints cProfile listings of plugbay's side.

The two tools work on equivalent generated inputs (generate.py): the same plugins, ids,
versions and dependency graph, the same number of files of similar sizes, built into
bundles by each tool (``plugbay build``, ``ansible-galaxy collection build``):

1. *deps*: 50 plugins with 95 dependency edges, 2 modules each, installed from the 50
   local tarballs into a fresh empty home / collections path;
2. *modules*: 200 plugins of 20 modules each (100 dependency edges), installed the same
   way; then, in the installed home, a no-op reinstall (the same command again), the list
   command and the verify command.

Every measurement is a whole fresh process, timed from spawn to exit, with its own peak
RSS from ``/usr/bin/time -f %M``. plugbay and ansible-galaxy runs alternate (which goes
first alternates too), so that a change in machine load hits both; each figure is the
median of several runs, after one untimed warm-up round that also fills the bytecode cache;
``sync`` runs before each timed process, and the installed homes are deleted only at the end.
ansible-galaxy runs with a private ANSIBLE_HOME, collections path, config file and temp
folder, ``--offline``, and a galaxy server URL on a closed local port, so that any network
access would fail at once. Timing results are reported, never asserted; a missing
ansible-galaxy is an error, not a skip.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from generate import PluginSpec, generate

# The shared report helpers live one folder up (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import aligned, cpu_model, replace_block, verdicts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
PYCACHE = WORK / "pycache"  # kept between runs (see child_env)
RESULTS = HERE / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
DOC_START, DOC_END = "<!-- install-results:start -->", "<!-- install-results:end -->"
BIN = Path(sys.executable).parent
PLUGBAY = BIN / "plugbay"
GALAXY = BIN / "ansible-galaxy"
TARGET_RATIO = 3.0  # every target: plugbay at least this many times faster
CLOSED_PORT_URL = "http://127.0.0.1:9/api/"  # discard port: nothing listens, fails at once

#: The two workloads: plugins, modules per plugin, dependency edges.
WORKLOADS = {"deps": (50, 2, 95), "modules": (200, 20, 100)}

#: Timed runs per tool, (full, --quick). ansible-galaxy is the slow side: fewer runs.
RUNS = {
    "deps": {"plugbay": (15, 2), "ansible": (11, 2)},
    "modules": {"plugbay": (9, 2), "ansible": (7, 1)},
    "queries": {"plugbay": (11, 2), "ansible": (9, 2)},
}
WARMUP = 1

#: Peak RSS comes from GNU time's %M: Linux keeps a process's peak RSS across exec, so
#: wait4 on a child forked from this Python process would report at least our own size.
TIME = shutil.which("time", path="/usr/bin:/bin")


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    """One finished child: wall time from spawn to reaped, and its own peak RSS (KiB)."""

    wall_ms: float
    cpu_ms: float  # user + system
    sys_ms: float
    maxrss_kb: int | None
    returncode: int
    stdout: bytes
    stderr: bytes

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def spawn(cmd: Sequence[str | Path], env: dict[str, str], *, settle: bool = True) -> Proc:
    """Run ``cmd`` to completion; output goes to temporary files (no pipe back-pressure).

    With ``settle``, ``sync`` first (before the clock starts): the files the previous run
    wrote are flushed then, not while this run works, so that no run pays for the
    write-back of another's 9,000 files, whichever tool wrote them.
    """
    if settle:
        os.sync()
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss,
    ):
        full = [TIME or "/usr/bin/time", "-f", "%M", "-o", rss.name, *map(str, cmd)]
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, cwd=WORK / "cwd")
        _, status, usage = os.wait4(proc.pid, 0)
        wall_ms = (time.perf_counter() - start) * 1e3
        out.seek(0)
        err.seek(0)
        text = rss.read().strip().splitlines()
        maxrss = int(text[-1]) if text and text[-1].isdigit() else None
        cpu_ms = (usage.ru_utime + usage.ru_stime) * 1e3
        code = os.waitstatus_to_exitcode(status)
        return Proc(wall_ms, cpu_ms, usage.ru_stime * 1e3, maxrss, code, out.read(), err.read())


def base_env() -> dict[str, str]:
    """What every child sees: no stray settings of either tool, private caches and temp.

    Bytecode caching is on (in .work/pycache), as in any installation, even where the
    calling shell sets PYTHONDONTWRITEBYTECODE.
    """
    drop = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PLUGBAY_HOME")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("ANSIBLE_", "GALAXY_"))
    }
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["HOME"] = str(WORK / "user-home")  # nothing lands in the real ~/.ansible or ~/.plugbay
    env["TMPDIR"] = str(WORK / "tmp")  # both tools' temporary files on the same file system
    return env


def ansible_env(ansible_home: Path, collections: Path) -> dict[str, str]:
    """ansible-galaxy's environment: its own home, collections path, config and temp."""
    env = base_env()
    env.update(
        ANSIBLE_HOME=str(ansible_home),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_CONFIG=str(WORK / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(ansible_home / "tmp"),
        ANSIBLE_GALAXY_SERVER=CLOSED_PORT_URL,
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


# ---------------------------------------------------------------- statistics


def summary(procs: Sequence[Proc]) -> dict[str, Any]:
    walls = [p.wall_ms for p in procs]
    rss = [p.maxrss_kb for p in procs if p.maxrss_kb is not None]
    return {
        "median": statistics.median(walls),
        "min": min(walls),
        "max": max(walls),
        "cpu_median": statistics.median(p.cpu_ms for p in procs),
        "sys_median": statistics.median(p.sys_ms for p in procs),
        "maxrss_kb": statistics.median(rss) if rss else None,
        "runs": len(walls),
        "values": [round(w, 1) for w in walls],
    }


def mb(kb: float | None) -> str:
    return f"{kb / 1024:.1f}" if kb else ""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """One workload's generated sources and built bundles."""

    name: str
    specs: list[PluginSpec]
    plugbay_bundles: list[Path]
    ansible_bundles: list[Path]
    generated: dict[str, Any]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.specs]


def check_tools() -> None:
    """Both command-line tools are in this virtualenv, and start; else exit saying how to fix.

    A missing ansible-galaxy is an error, not a reason to skip: the comparison is the point.
    """
    if TIME is None:
        raise SystemExit("run.py needs GNU time at /usr/bin/time (e.g. apt-get install time)")
    WORK.mkdir(exist_ok=True)
    (WORK / "cwd").mkdir(exist_ok=True)
    for tool, probe, fix in (
        (PLUGBAY, "--help", f"{BIN}/pip install -e ."),
        (GALAXY, "--version", f"{BIN}/pip install 'ansible-core>=2.15' (the bench extra)"),
    ):
        if not tool.exists():
            raise SystemExit(
                f"{tool} does not exist: this benchmark compares plugbay with ansible-galaxy, "
                f"both installed in this virtualenv. Install it with: {fix}"
            )
        with tempfile.TemporaryDirectory() as scratch:
            env = ansible_env(Path(scratch), Path(scratch) / "collections")
            proc = spawn([tool, probe], env, settle=False)
        if proc.returncode != 0:
            raise SystemExit(
                f"{tool} {probe} failed (exit {proc.returncode}); reinstall it with: {fix}\n"
                + proc.stderr.decode("utf-8", "replace")[-2000:]
            )


def prepare() -> dict[str, Inputs]:
    """(Re)generate sources and build every bundle with each tool (not timed)."""
    WORK.mkdir(exist_ok=True)
    for old in WORK.iterdir():
        if old == PYCACHE:
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    for folder in ("cwd", "user-home", "tmp"):
        (WORK / folder).mkdir()
    (WORK / "ansible.cfg").write_text("[defaults]\n", "utf-8")  # defaults only, nothing else
    out = {}
    for name, (count, modules, edges) in WORKLOADS.items():
        log(f"generating and building {name}: {count} plugins x {modules} modules, {edges} edges")
        root = WORK / f"src-{name}"
        specs, gen = generate(root, count, modules, edges)
        pb = build_plugbay(root / "plugbay", WORK / f"bundles-{name}" / "plugbay")
        an = build_ansible(root / "ansible", WORK / f"bundles-{name}" / "ansible")
        if len(pb) != count or len(an) != count:
            raise SystemExit(f"{name}: built {len(pb)} plugbay and {len(an)} ansible bundles")
        generated = asdict(gen) | {
            "plugbay_bundle_bytes": sum(p.stat().st_size for p in pb),
            "ansible_bundle_bytes": sum(p.stat().st_size for p in an),
        }
        out[name] = Inputs(name, specs, pb, an, generated)
    return out


def build_plugbay(sources: Path, dest: Path) -> list[Path]:
    """``plugbay build`` of every plugin folder, one process each, as many at once as CPUs."""
    dest.mkdir(parents=True)
    env = base_env()
    folders = sorted(p for p in sources.iterdir() if p.is_dir())

    def build(folder: Path) -> None:
        cmd = [PLUGBAY, "-q", "build", folder, "-o", dest]
        must(spawn(cmd, env, settle=False), f"plugbay build {folder}")

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(build, folders))
    return sorted(dest.glob("*.tar.gz"))


def build_ansible(sources: Path, dest: Path) -> list[Path]:
    """``ansible-galaxy collection build`` of every collection, in one process per CPU."""
    dest.mkdir(parents=True)
    folders = sorted(p for ns in sources.iterdir() for p in ns.iterdir())
    jobs = max(1, min(os.cpu_count() or 1, len(folders)))
    chunks = [folders[i::jobs] for i in range(jobs)]
    home = WORK / "ansible-build-home"

    def build(chunk: list[Path]) -> None:
        cmd = [GALAXY, "collection", "build", "--output-path", dest, *chunk]
        env = ansible_env(home, home / "collections")
        must(spawn(cmd, env, settle=False), "ansible-galaxy build")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(build, chunks))
    shutil.rmtree(home, ignore_errors=True)
    return sorted(dest.glob("*.tar.gz"))


# ---------------------------------------------------------------- one tool, one home


class Side:
    """One tool's commands on one fresh home (plugbay) or collections path (ansible).

    Subclasses say how to spell each command, where the installed plugins are, and how
    to tell that a command did what it should.
    """

    tool = ""

    def __init__(self, root: Path, inputs: Inputs) -> None:
        self.root = root
        self.inputs = inputs

    # ---- what subclasses define

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def install_cmd(self) -> list[str | Path]:
        raise NotImplementedError

    def list_cmd(self) -> list[str | Path]:
        raise NotImplementedError

    def verify_cmd(self) -> list[str | Path]:
        raise NotImplementedError

    def metadata(self) -> list[Path]:
        """The MANIFEST.json of every installed plugin."""
        raise NotImplementedError

    def installed_trees(self) -> list[Path]:
        """The folders the install wrote into."""
        raise NotImplementedError

    def said_nothing_to_do(self, proc: Proc) -> bool:
        raise NotImplementedError

    def verified(self, proc: Proc) -> int:
        """How many plugins the verify output says are intact."""
        raise NotImplementedError

    # ---- running and checking

    def install(self) -> Proc:
        return spawn(self.install_cmd(), self.env())

    def list(self) -> Proc:
        return spawn(self.list_cmd(), self.env())

    def verify(self) -> Proc:
        return spawn(self.verify_cmd(), self.env())

    def files(self) -> tuple[int, int]:
        """Files and bytes the install wrote."""
        paths = [p for tree in self.installed_trees() for p in tree.rglob("*") if p.is_file()]
        return len(paths), sum(p.stat().st_size for p in paths)

    def check_install(self, proc: Proc, *, noop: bool) -> None:
        what = f"{self.tool} {'re' if noop else ''}install ({self.inputs.name})"
        must(proc, what)
        found = len(self.metadata())
        if found != len(self.inputs.specs):
            raise SystemExit(f"{what}: {found} of {len(self.inputs.specs)} plugins installed")
        if noop and not self.said_nothing_to_do(proc):
            raise SystemExit(f"{what} was not a no-op:\n{proc.text()[-2000:]}")

    def check_list(self, proc: Proc) -> None:
        must(proc, f"{self.tool} list")
        text = proc.text()
        missing = [i for i in self.inputs.ids if not re.search(rf"(^|\s){re.escape(i)}\s", text)]
        if missing:
            raise SystemExit(f"{self.tool} list did not show {len(missing)} plugins: {missing[:5]}")

    def check_verify(self, proc: Proc) -> None:
        must(proc, f"{self.tool} verify")
        ok, n = self.verified(proc), len(self.inputs.specs)
        if ok != n:
            raise SystemExit(f"{self.tool} verify: {ok} of {n} intact:\n{proc.text()[-2000:]}")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PlugbaySide(Side):
    tool = "plugbay"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self) -> dict[str, str]:
        return base_env()

    def install_cmd(self) -> list[str | Path]:
        return [PLUGBAY, "--home", self.home, "install", *self.inputs.plugbay_bundles]

    def list_cmd(self) -> list[str | Path]:
        return [PLUGBAY, "--home", self.home, "list"]

    def verify_cmd(self) -> list[str | Path]:
        return [PLUGBAY, "--home", self.home, "verify"]

    def metadata(self) -> list[Path]:
        return list((self.home / "plugins").glob("*/*/*/MANIFEST.json"))

    def installed_trees(self) -> list[Path]:
        return [self.home / "plugins", self.home / "receipts"]

    def said_nothing_to_do(self, proc: Proc) -> bool:
        return "nothing to install" in proc.text()

    def verified(self, proc: Proc) -> int:
        found = re.search(r"(\d+) installed version\(s\) checked: 0 with problems", proc.text())
        return int(found.group(1)) if found else 0


class AnsibleSide(Side):
    tool = "ansible"

    @property
    def collections(self) -> Path:
        return self.root / "collections"

    def env(self) -> dict[str, str]:
        return ansible_env(self.root / "ansible-home", self.collections)

    def install_cmd(self) -> list[str | Path]:
        bundles = self.inputs.ansible_bundles
        return [GALAXY, "collection", "install", "--offline", "-p", self.collections, *bundles]

    def list_cmd(self) -> list[str | Path]:
        return [GALAXY, "collection", "list", "-p", self.collections]

    def verify_cmd(self) -> list[str | Path]:
        ids = self.inputs.ids
        return [GALAXY, "collection", "verify", "--offline", "-p", self.collections, *ids]

    def metadata(self) -> list[Path]:
        return list((self.collections / "ansible_collections").glob("*/*/MANIFEST.json"))

    def installed_trees(self) -> list[Path]:
        return [self.collections / "ansible_collections"]

    def said_nothing_to_do(self, proc: Proc) -> bool:
        return "Nothing to do" in proc.text()

    def verified(self, proc: Proc) -> int:
        return proc.text().count("Successfully verified that checksums")


SIDES: dict[str, type[Side]] = {"plugbay": PlugbaySide, "ansible": AnsibleSide}


def runs(workload: str, tool: str, quick: bool) -> int:
    return RUNS[workload][tool][1 if quick else 0]


# ---------------------------------------------------------------- measurements


def measure_installs(inputs: Inputs, quick: bool, *, extras: bool) -> dict[str, Any]:
    """Installs into fresh homes, alternating tools; with ``extras`` also in each new home:
    the no-op reinstall and the first list. The last home of each tool is returned, for
    the queries; every other is deleted at the end (deleting 9,000 files between two timed
    runs would slow the next on some file systems, e.g. ext4 mounted with ``discard``)."""
    name = inputs.name
    want = {tool: runs(name, tool, quick) for tool in SIDES}
    timed: dict[str, dict[str, list[Proc]]] = {
        tool: {"install": [], "reinstall": [], "list_first": []} for tool in SIDES
    }
    kept: dict[str, Side] = {}
    done: list[Side] = []
    files: dict[str, tuple[int, int]] = {}
    for i in range(WARMUP + max(want.values())):
        order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
        for tool in order:
            if i >= WARMUP + want[tool]:
                continue
            side = SIDES[tool](WORK / "runs" / f"{name}-{tool}-{i}", inputs)
            side.root.mkdir(parents=True)
            proc = side.install()
            side.check_install(proc, noop=False)
            files.setdefault(tool, side.files())
            results = [("install", proc)]
            if extras:
                again = side.install()
                side.check_install(again, noop=True)
                first_list = side.list()
                side.check_list(first_list)
                results += [("reinstall", again), ("list_first", first_list)]
            if i >= WARMUP:
                for key, p in results:
                    timed[tool][key].append(p)
            if tool in kept:
                done.append(kept[tool])
            kept[tool] = side
    for side in done:
        side.remove()
    out: dict[str, Any] = {"kept": kept, "installed_files": {}}
    for tool in SIDES:
        count, size = files[tool]
        out["installed_files"][tool] = {"files": count, "bytes": size}
        for key, procs in timed[tool].items():
            if procs:
                out.setdefault(key, {})[tool] = summary(procs)
    return out


def measure_queries(kept: dict[str, Side], quick: bool) -> dict[str, Any]:
    """list and verify, repeated on the installed homes the install runs left."""
    want = {tool: runs("queries", tool, quick) for tool in SIDES}
    timed: dict[str, dict[str, list[Proc]]] = {tool: {"list": [], "verify": []} for tool in SIDES}
    for i in range(WARMUP + max(want.values())):
        order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
        for tool in order:
            if i >= WARMUP + want[tool]:
                continue
            side = kept[tool]
            listed = side.list()
            side.check_list(listed)
            verified = side.verify()
            side.check_verify(verified)
            if i >= WARMUP:
                timed[tool]["list"].append(listed)
                timed[tool]["verify"].append(verified)
    return {key: {tool: summary(timed[tool][key]) for tool in SIDES} for key in ("list", "verify")}


def ratio(pair: dict[str, Any]) -> float:
    return float(pair["ansible"]["median"] / pair["plugbay"]["median"])


def cpu_ratio(pair: dict[str, Any]) -> float:
    return float(pair["ansible"]["cpu_median"] / pair["plugbay"]["cpu_median"])


# ---------------------------------------------------------------- report


#: (key in results, label, command shown) per row, in order
ROWS = (
    ("deps.install", "install 50 bundles, 95 dependency edges, fresh home", "install"),
    ("modules.install", "install 200 bundles x 20 modules, fresh home", "install"),
    ("modules.reinstall", "no-op reinstall of the same 200", "install"),
    ("modules.list_first", "list 200, first run after the install", "list"),
    ("modules.list", "list 200, repeated", "list"),
    ("modules.verify", "verify 200 installed", "verify"),
)


def row_data(r: dict[str, Any], key: str) -> dict[str, Any]:
    workload, what = key.split(".")
    return dict(r["measurements"][workload][what])


def commands(r: dict[str, Any]) -> dict[str, dict[str, str]]:
    return dict(r["commands"])


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, label, _ in ROWS:
        pair = row_data(r, key)
        x = ratio(pair)
        out.append(
            {
                "key": key,
                "target": f"{label}: plugbay ≥ {TARGET_RATIO:g}x faster than ansible-galaxy",
                "measured": f"{x:.2f}x ({pair['plugbay']['median']:.0f} ms vs "
                f"{pair['ansible']['median']:.0f} ms)",
                "ratio": x,
                "met": x >= TARGET_RATIO,
            }
        )
    return out


HEADER = (
    "measurement",
    "plugbay ms",
    "ansible-galaxy ms",
    "speed-up",
    "plugbay MB",
    "ansible MB",
    "runs",
    "met",
)


def rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    met = {t["key"]: t["met"] for t in r["targets"]}
    out = []
    for key, label, _ in ROWS:
        pair = row_data(r, key)
        pb, an = pair["plugbay"], pair["ansible"]
        out.append(
            (
                label,
                f"{pb['median']:.0f} ({pb['min']:.0f}-{pb['max']:.0f})",
                f"{an['median']:.0f} ({an['min']:.0f}-{an['max']:.0f})",
                f"{ratio(pair):.2f}x (CPU {cpu_ratio(pair):.2f}x)",
                mb(pb["maxrss_kb"]),
                mb(an["maxrss_kb"]),
                f"{pb['runs']} / {an['runs']}",
                "yes" if met[key] else "**no**",
            )
        )
    return out


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"Measured {m['date']} on {m['nproc']} x {m['cpu']}, {m['os']}, "
        f"{m['implementation']} {m['python']}, plugbay {m['plugbay']} at {m['git']}, "
        f"ansible-core {m['ansible_core']}; work folder on {m['work_fs']}; full run took "
        f"{r['seconds']:.0f} s; load average (1 min) {m['load_average_before'][0]} before, "
        f"{m['load_average_after'][0]} after.",
        "",
        f"Whole-process wall time in ms, median (min-max) of the runs given as plugbay / "
        f"ansible-galaxy; speed-up = ansible-galaxy's median / plugbay's (in brackets the same "
        f"ratio of median CPU time, user + system); peak RSS (MB) is the median over the runs; "
        f"target: a wall-time speed-up ≥ {TARGET_RATIO:g}x on every row.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| --- |" + " ---: |" * (len(HEADER) - 2) + " --- |",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(r)]
    lines += ["", "Inputs (the same on both sides but for the format of each tool's metadata):", ""]
    for name, g in r["generated"].items():
        inst = r["measurements"][name]["installed_files"]
        lines.append(
            f"- *{name}*: {g['plugins']} plugins x {g['modules_per_plugin']} modules, "
            f"{g['dependency_edges']} dependency edges, {g['namespaces']} namespaces; "
            f"sources {g['plugbay_files']:,} files / {g['plugbay_bytes'] / 1e6:.2f} MB (plugbay) "
            f"and {g['ansible_files']:,} files / {g['ansible_bytes'] / 1e6:.2f} MB (ansible); "
            f"bundles {g['plugbay_bundle_bytes'] / 1e6:.2f} MB and "
            f"{g['ansible_bundle_bytes'] / 1e6:.2f} MB; installed "
            f"{inst['plugbay']['files']:,} files / {inst['plugbay']['bytes'] / 1e6:.2f} MB and "
            f"{inst['ansible']['files']:,} files / {inst['ansible']['bytes'] / 1e6:.2f} MB."
        )
    lines += ["", "CPU time (user + system) of the installs, median, of which system time:", ""]
    for key, label, _ in ROWS[:3]:
        pair = row_data(r, key)
        pb, an = pair["plugbay"], pair["ansible"]
        lines.append(
            f"- {label}: plugbay {pb['cpu_median']:.0f} ms ({pb['sys_median']:.0f} system), "
            f"ansible-galaxy {an['cpu_median']:.0f} ms ({an['sys_median']:.0f} system)."
        )
    met = sum(t["met"] for t in r["targets"])
    lines += [
        "",
        f"Targets met: {met} of {len(r['targets'])}"
        + (
            " — missed: "
            + "; ".join(
                label for (key, label, _), t in zip(ROWS, r["targets"], strict=True) if not t["met"]
            )
            + "."
            if met < len(r["targets"])
            else "."
        ),
    ]
    return "\n".join(lines)


def table(r: dict[str, Any]) -> str:
    body = [tuple(c.replace("**", "") for c in cells) for cells in rows(r)]
    out = [*aligned(HEADER, body), ""]
    out += verdicts(r["targets"])
    return "\n".join(out)


def update_docs(r: dict[str, Any]) -> bool:
    return replace_block(DOCS, DOC_START, DOC_END, markdown(r))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def file_system(path: Path) -> str:
    """``ext4 (rw,relatime,discard)``: type and options of the mount holding ``path``."""
    best, found = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, found = point, f"{fields[2]} ({fields[3]})"
    return found


def machine() -> dict[str, Any]:
    cpu = cpu_model()
    from importlib.metadata import version

    import plugbay

    dirty = git("status", "--porcelain", "--", "src")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "plugbay": plugbay.__version__,
        "ansible_core": version("ansible-core"),
        "git": git("rev-parse", "--short", "HEAD")
        + (" (with uncommitted changes in src/)" if dirty else ""),
        "work_fs": file_system(WORK),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "bytecode": f"cached in {PYCACHE.relative_to(REPO)} (PYTHONPYCACHEPREFIX)",
        "rss_from": f"{TIME} -f %M",
    }


def shown(cmd: Sequence[str | Path]) -> str:
    """A command line for people: .work and .venv paths shortened, long lists of bundles or
    ids (the trailing arguments, when there are more than 4) elided."""
    parts = [str(c).replace(str(WORK), ".work").replace(str(BIN), ".venv/bin") for c in cmd]
    tail = 0
    while (
        tail < len(parts)
        and not parts[-tail - 1].startswith("-")
        and (parts[-tail - 1].endswith(".tar.gz") or re.fullmatch(r"\w+\.\w+", parts[-tail - 1]))
    ):
        tail += 1
    if tail > 4:
        parts = [*parts[:-tail], parts[-tail], "…", parts[-1], f"({tail} in all)"]
    return " ".join(parts)


def command_lines(kept: dict[str, Side]) -> dict[str, dict[str, str]]:
    pb, an = kept["plugbay"], kept["ansible"]
    assert isinstance(pb, PlugbaySide)
    assert isinstance(an, AnsibleSide)
    return {
        what: {
            "plugbay": shown(getattr(pb, f"{what}_cmd")()),
            "ansible": shown(getattr(an, f"{what}_cmd")()),
        }
        for what in ("install", "list", "verify")
    }


# ---------------------------------------------------------------- main


def run(quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "quick": quick}
    inputs = prepare()
    results["generated"] = {name: i.generated for name, i in inputs.items()}
    log("deps: install 50 bundles with 95 dependency edges")
    deps = measure_installs(inputs["deps"], quick, extras=False)
    for side in deps.pop("kept").values():
        side.remove()  # the deps homes are not needed any more
    log("modules: install 200 bundles of 20 modules, reinstall, first list")
    modules = measure_installs(inputs["modules"], quick, extras=True)
    kept = modules.pop("kept")
    log("modules: list and verify, repeated")
    modules.update(measure_queries(kept, quick))
    results["commands"] = command_lines(kept)
    results["measurements"] = {"deps": deps, "modules": modules}
    results["runs"] = {name: {t: runs(name, t, quick) for t in SIDES} for name in RUNS}
    results["seconds"] = time.perf_counter() - t0
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    for side in kept.values():
        side.remove()
    return results


PROFILES = ("install-50", "install-200", "reinstall-200", "list-200", "verify-200")


def profile(what: str, top: int) -> None:
    """cProfile listings of plugbay's side (inputs regenerated; the numbers are not timed)."""
    check_tools()
    inputs = prepare()
    pb50 = PlugbaySide(WORK / "profile" / "deps", inputs["deps"])
    pb200 = PlugbaySide(WORK / "profile" / "modules", inputs["modules"])
    steps: list[tuple[str, PlugbaySide, list[str | Path]]] = [
        ("install-50", pb50, pb50.install_cmd()),
        ("install-200", pb200, pb200.install_cmd()),
        ("reinstall-200", pb200, pb200.install_cmd()),
        ("list-200", pb200, pb200.list_cmd()),  # the first after the install: cold
        ("list-200", pb200, pb200.list_cmd()),  # again: warm
        ("verify-200", pb200, pb200.verify_cmd()),
    ]
    for n, (name, _side, cmd) in enumerate(steps):
        out = WORK / f"profile-{n}-{name}.pstats"
        proc = spawn([sys.executable, "-m", "cProfile", "-o", out, *cmd], base_env())
        must(proc, f"profile of {name}")
        if what not in ("all", name):
            continue
        print(f"\n======== {name} ({proc.wall_ms:.0f} ms under cProfile): {shown(cmd)}")
        import pstats

        for order in ("cumulative", "tottime"):
            stats = pstats.Stats(str(out))
            stats.sort_stats(order).print_stats(top)
    print(f"raw stats: {WORK.relative_to(REPO)}/profile-*.pstats")


_T0 = time.perf_counter()


def log(*parts: object) -> None:
    print(f"-- [{time.perf_counter() - _T0:5.0f} s]", *parts, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plugbay vs ansible-galaxy install benchmark")
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
