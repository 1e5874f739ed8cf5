"""Hot reload benchmark: file saved → reloaded plugin answering, beside restarting the process.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/reload/run.py``). Prints a table,
writes ``benchmarks/reload/results.json`` and refreshes the results block of the *Hot
reload* section of ``docs/benchmarks.md`` (between its ``reload-results`` markers;
``--no-docs`` skips). ``--quick`` does a few rounds only (to check the script; its numbers
go to ``benchmarks/reload/.work/`` only); ``--docs-only`` rewrites the block from
``results.json`` without measuring.

One round: a host watches an in-process Python plugin (``host.watch()`` with its defaults);
the benchmark rewrites the plugin's module with a new answer and polls the
plugin's tool until it returns that answer. The time from just before the write to the
first new answer is the figure: the file watcher's latency, its debounce (it checks every
50 ms and waits for one check without changes: 50-100 ms), discovery, planning, stopping,
unloading, importing and starting. Beside it, the restart alternative: a fresh ``python``
process that builds a host and calls the same tool (what an author's edit-run loop costs
without hot reload). Each figure is the median over
the rounds; timing results are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import plugbay
from plugbay import Host
from plugbay.errors import PluginError

# The shared report helpers live one folder up (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import aligned, cpu_model, replace_block, verdicts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
RESULTS = HERE / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
DOC_START, DOC_END = "<!-- reload-results:start -->", "<!-- reload-results:end -->"
TARGET_MS = 250.0

MANIFEST = """\
schema = 1
[plugin]
namespace = "bench"
name = "greet"
version = "1.0.0"
entry = "plug:Plugin"
[[contributes.tool]]
name = "greet"
entry = "greet_mod:greet"
"""
PLUG = """\
class Plugin:
    def start(self):
        self.started = True
    def stop(self):
        self.started = False
"""
CHILD = """\
import sys
from plugbay import Host
host = Host("benchapp", "1.0.0", home=sys.argv[1], paths=[sys.argv[2]], entry_points=False,
            system_path=sys.argv[3], project_path=sys.argv[3])
print(host.get("tool", "greet")())
host.stop()
"""


def module_text(answer: str) -> str:
    return f"def greet():\n    return {answer!r}\n"


def make_plugin(root: Path) -> Path:
    folder = root / "plugins" / "bench.greet"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(MANIFEST)
    (folder / "plug.py").write_text(PLUG)
    (folder / "greet_mod.py").write_text(module_text("v0"))
    (root / "home").mkdir()
    return folder


def answer(host: Host) -> Any:
    try:
        return host.get("tool", "greet")()
    except PluginError:
        return None  # between the old version's stop and the new one's start


def measure_watch(root: Path, folder: Path, rounds: int) -> dict[str, list[float]]:
    """Save → answering through host.watch(), and host.reload() alone, ``rounds`` times."""
    host = Host(
        "benchapp",
        "1.0.0",
        home=root / "home",
        paths=[root / "plugins"],
        entry_points=False,
        system_path=root / "none",
        project_path=root / "none",
    )
    saved: list[float] = []
    direct: list[float] = []
    try:
        assert answer(host) == "v0"
        with host.watch():
            for n in range(1, rounds + 1):
                expected = f"w{n}"
                t0 = time.perf_counter()
                (folder / "greet_mod.py").write_text(module_text(expected))
                deadline = t0 + 10
                while answer(host) != expected:
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"round {n}: no reload within 10 s")
                    time.sleep(0.001)
                saved.append((time.perf_counter() - t0) * 1e3)
                # Let the watcher settle before the next save; the pause varies so that
                # saves land at every phase of the watcher's 50 ms check (a save waits
                # 50-100 ms for it, depending on that phase).
                time.sleep(0.2 + (n % 10) * 0.005)
        for n in range(1, rounds + 1):
            expected = f"r{n}"
            (folder / "greet_mod.py").write_text(module_text(expected))
            t0 = time.perf_counter()
            host.reload("bench.greet")
            got = answer(host)
            direct.append((time.perf_counter() - t0) * 1e3)
            assert got == expected, got
    finally:
        host.stop()
    return {"save_to_answer_ms": saved, "reload_call_ms": direct}


def measure_restart(root: Path, rounds: int) -> list[float]:
    """A fresh interpreter that builds a host and calls the tool, ``rounds`` times."""
    out = []
    script = textwrap.dedent(CHILD)
    args = [str(root / "home"), str(root / "plugins"), str(root / "none")]
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def summarise(samples: dict[str, list[float]]) -> dict[str, Any]:
    return {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": values,
        }
        for name, values in samples.items()
    }


def render(results: dict[str, Any]) -> str:
    s = results["summary"]
    rows = [
        ["file saved → reloaded plugin answering (host.watch)", "save_to_answer_ms"],
        ["host.reload() → answering", "reload_call_ms"],
        ["restart the process instead (new interpreter, host, call)", "restart_process_ms"],
    ]
    lines = [
        f"Measured {results['when']} on {results['cpu']}, Python {results['python']}, "
        f"plugbay {results['plugbay']}, {results['rounds']} rounds; peak RSS of the "
        f"benchmark process {results['peak_rss_mb']:.0f} MB.",
        "",
        "| measurement | median | min | max |",
        "| --- | --- | --- | --- |",
    ]
    for label, key in rows:
        v = s[key]
        lines.append(f"| {label} | {v['median']:.1f} ms | {v['min']:.1f} ms | {v['max']:.1f} ms |")
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds, to check the script")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--docs-only", action="store_true", help="rewrite the docs block only")
    options = parser.parse_args()
    if options.docs_only:
        results = json.loads(RESULTS.read_text())
    else:
        rounds = 5 if options.quick else 30
        with tempfile.TemporaryDirectory(prefix="plugbay-reload-bench-") as tmp:
            root = Path(tmp)
            folder = make_plugin(root)
            samples = measure_watch(root, folder, rounds)
            samples["restart_process_ms"] = measure_restart(root, rounds)
        summary = summarise(samples)
        median = summary["save_to_answer_ms"]["median"]
        results = {
            "when": time.strftime("%Y-%m-%d", time.gmtime()),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "plugbay": plugbay.__version__,
            "rounds": rounds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "summary": summary,
            "targets": [
                {
                    "target": f"file saved → reloaded in-process Python plugin answering at "
                    f"most {TARGET_MS:.0f} ms median",
                    "measured": f"{median:.1f} ms",
                    "met": median <= TARGET_MS,
                }
            ],
        }
        out = WORK / "results.json" if options.quick else RESULTS
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        body = [
            [k, f"{v['median']:.1f}", f"{v['min']:.1f}", f"{v['max']:.1f}"]
            for k, v in summary.items()
        ]
        print("\n".join(aligned(["measurement (ms)", "median", "min", "max"], body)))
        print(f"peak RSS {results['peak_rss_mb']:.0f} MB")
        print("\n".join(verdicts(results["targets"])))
        if options.quick:
            return
    if not options.no_docs and not replace_block(DOCS, DOC_START, DOC_END, render(results)):
        print(f"note: no {DOC_START} block in {DOCS}; docs not updated", file=sys.stderr)


if __name__ == "__main__":
    main()
