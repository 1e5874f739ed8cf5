"""WebAssembly benchmark: a call into a wasm plugin through plugbay beside a bare Extism call.

Run with ``make bench`` (which builds the example first), or
``.venv/bin/python benchmarks/wasm/run.py`` (which runs ``make wasm-example`` itself: it
needs node and npm). Prints a table, writes ``benchmarks/wasm/results.json`` and refreshes
the results block of the *WebAssembly calls* section of ``docs/benchmarks.md`` (between
its ``wasm-results`` markers; ``--no-docs`` skips). ``--quick`` does few rounds (to check
the script; its numbers go to ``.work/`` only).

The module is the AssemblyScript example, ``examples/plugins/as-greeter/greeter.wasm``;
the call is its ``greet`` method (export ``as_greet_greet``): parse the JSON input, read
the config, write a JSON string. Measured all in one run, on the same module and input:

1. *bare Extism*: ``extism.Plugin(wasm, functions=..., config=...)`` and
   ``plugin.call("as_greet_greet", data)``, ``data`` the same JSON document plugbay
   sends (encoded once, outside the clock), the output left as bytes. Also *bare with the
   limits*: the same through an Extism manifest with plugbay's default memory limit and
   timeout, which is what the engine itself charges for them;
2. *plugbay*: ``host.get("module", "as_greet").greet("Ada")`` on a started Host (the
   plugin loaded): argument encoding, the runtime's lock and limits, the call, the output
   decoded. Bare and plugbay calls are timed in alternating blocks, so that a change in
   the machine's load hits both. A small name, and an 8 KB one (8 KB in and out);
3. *a fresh instance per call*: the same call on a plugin configured with
   ``instance = "call"``;
4. *instantiation*: a new instance made from the runtime's cached compiled module (as
   plugbay makes one for ``instance = "call"`` and after a trap), beside a bare
   ``extism.Plugin(compiled)`` and a cold ``extism.Plugin(manifest)`` (compile, then
   instantiate), and the plugin's whole load in a fresh host (compile, instantiate,
   ``plugbay_init``).

Peak memory: the benchmark process's peak RSS. Timing results are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

# With RUST_BACKTRACE set (as it often is in development), Extism captures a Rust backtrace
# in every call, successful ones too: about 8 µs a call, on both sides. plugbay's wasm
# runtime turns library backtraces off when it starts, but Rust reads the setting once,
# at its first capture; set here, before any Extism object exists, it holds for the bare
# side as well, so both sides run alike whatever the shell exported.
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

# The shared report helpers live one folder up (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import aligned, cpu_model, replace_block, verdicts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
RESULTS = HERE / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
DOC_START, DOC_END = "<!-- wasm-results:start -->", "<!-- wasm-results:end -->"
EXAMPLE = REPO / "examples" / "plugins" / "as-greeter"
WASM = EXAMPLE / "greeter.wasm"
PLUGIN_ID = "acme.as_greeter"
EXPORT = "as_greet_greet"

CALL_RATIO = 1.2  # plugbay's median call at most this many times the bare Extism call's
INSTANTIATE_MS = 0.2  # a new instance from the compiled cache, median

#: plugbay's defaults for a wasm plugin (docs/wasm.md), given to the bare Extism manifest.
MEMORY_BYTES = 64 * 1024 * 1024
TIMEOUT_S = 5.0
CONFIG = {"greeting": "Hello"}

SMALL = "Ada"
LARGE = "x" * 8192

#: (full, --quick) counts.
ROUNDS = (100, 10)  # alternating blocks of bare and plugbay calls
BLOCK = 200  # calls per block
INSTANCES = (2_000, 200)
COLD = (40, 5)
LOADS = (20, 3)


def ms(ns: float) -> float:
    return ns / 1e6


def us(ns: float) -> float:
    return ns / 1e3


def p99(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def summary(samples_ns: Sequence[float]) -> dict[str, float]:
    return {
        "median_us": us(statistics.median(samples_ns)),
        "p99_us": us(p99(samples_ns)),
        "runs": len(samples_ns),
    }


def build_example() -> bytes:
    """``make wasm-example`` (a no-op when greeter.wasm is up to date); the module's bytes."""
    done = subprocess.run(
        ["make", "--no-print-directory", "wasm-example"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not WASM.is_file():
        raise SystemExit(
            f"`make wasm-example` failed; the benchmark needs the example module {WASM}. "
            f"It needs node and npm on PATH.\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
        )
    return WASM.read_bytes()


# ---------------------------------------------------------------- bare Extism


def stub_host_functions() -> list[Any]:
    """plugbay's host functions as no-ops: the module imports them, so Extism needs them.

    ``greet`` calls none of them; they are here only so that the module instantiates.
    """
    import extism

    pair = ([extism.ValType.I64, extism.ValType.I64], [])

    @extism.host_fn(name="plugbay_log", namespace="extism:host/user", signature=pair)
    def plugbay_log(plugin: Any, inputs: Any, outputs: Any, *user_data: Any) -> None:
        return None

    @extism.host_fn(name="plugbay_emit", namespace="extism:host/user", signature=pair)
    def plugbay_emit(plugin: Any, inputs: Any, outputs: Any, *user_data: Any) -> None:
        return None

    return [plugbay_log, plugbay_emit]


def bare_config() -> dict[str, str]:
    """The Extism config plugbay gives the plugin: its validated config as one JSON key."""
    return {"plugbay.config": json.dumps(CONFIG)}


def bare_manifest(wasm: bytes) -> dict[str, Any]:
    """An Extism manifest with plugbay's default limits (64 MiB, 5 s) and the same config."""
    return {
        "wasm": [{"data": wasm}],
        "memory": {"max_pages": MEMORY_BYTES // 65536},
        "timeout_ms": int(TIMEOUT_S * 1000),
        "config": bare_config(),
    }


def call_input(name: str) -> bytes:
    """The JSON document plugbay sends for ``greet(name)`` (docs/wasm.md)."""
    return json.dumps({"args": [name], "kwargs": {}}).encode()


# ---------------------------------------------------------------- plugbay's side


def make_host(home: Path, instance: str | None = None) -> Any:
    """A started host with the example plugin loaded, its config set as the bare side's."""
    from plugbay import Host

    plugins = home / "plugins"
    plugins.mkdir(parents=True)
    shutil.copytree(
        EXAMPLE,
        plugins / "as-greeter",
        ignore=shutil.ignore_patterns("node_modules", "greeter.debug.*"),
    )
    lines = [f'[plugins."{PLUGIN_ID}"]', f"greeting = {json.dumps(CONFIG['greeting'])}"]
    if instance is not None:
        lines += [f'[runtime."{PLUGIN_ID}"]', f"instance = {json.dumps(instance)}"]
    (home / "config.toml").write_text("\n".join(lines) + "\n", "utf-8")
    host = Host(
        "benchbay",
        "1.0.0",
        home=home,
        entry_points=False,
        system_path=home / "no-system",
        project_path=home / "no-project",
    )
    host.discover()
    host.start()
    host.load(PLUGIN_ID)
    return host


def check_same_answer(host: Any, bare: Any) -> None:
    """Both sides must compute the same thing, or the comparison means nothing."""
    ours = host.get("module", "as_greet").greet(SMALL)
    theirs = json.loads(bytes(bare.call(EXPORT, call_input(SMALL))))
    if ours != theirs or ours != f"{CONFIG['greeting']}, {SMALL}!":
        raise SystemExit(f"plugbay and bare Extism disagree: {ours!r} vs {theirs!r}")


def instances_from_cache(host: Any, n: int) -> list[float]:
    """Times of ``n`` new instances made as the runtime makes them, from its cached module.

    ``_new_instance`` is what a call with ``instance = "call"``, or the first call after a
    trap, does before running: an Extism plugin from the compiled module, its config set,
    its host-function context. Each instance is freed outside the clock.
    """
    plugin = host._slots[PLUGIN_ID].obj  # the WasmPlugin; the benchmark reaches inside
    return timed(plugin._new_instance, n, release=lambda instance: instance.free())


def load_time(home: Path) -> float:
    """One plugin load in a fresh host, from the start of ``load`` to the plugin started."""
    from plugbay import Host

    host = Host(
        "benchbay",
        "1.0.0",
        home=home,
        entry_points=False,
        system_path=home / "no-system",
        project_path=home / "no-project",
    )
    host.discover()
    host.start()
    t = time.perf_counter_ns()
    host.load(PLUGIN_ID)
    elapsed = time.perf_counter_ns() - t
    host.stop()
    return elapsed


# ---------------------------------------------------------------- timing


def alternating(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Time each call ``rounds`` x ``BLOCK`` times, in blocks that alternate between them."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():  # warm-up
        for _ in range(BLOCK):
            fn()
    names = list(calls)
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                fn, out = calls[name], samples[name]
                for _ in range(BLOCK):
                    t = clock()
                    fn()
                    out.append(clock() - t)
    finally:
        gc.enable()
    return samples


def timed(
    fn: Callable[[], Any], n: int, release: Callable[[Any], Any] = lambda value: None
) -> list[float]:
    """``n`` times of ``fn()``; what it returns is released after the clock is read."""
    for _ in range(min(50, n)):
        release(fn())
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        value = fn()
        out.append(clock() - t)
        release(value)
        del value
    return out


# ---------------------------------------------------------------- the run


def run(quick: bool) -> dict[str, Any]:
    import extism
    from extism.extism import CompiledPlugin

    q = 1 if quick else 0
    wasm = build_example()
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": quick,
        "module": {"file": str(WASM.relative_to(REPO)), "bytes": len(wasm), "export": EXPORT},
        "extism": extism.extism_version(),
    }
    functions = stub_host_functions()
    bare = extism.Plugin(wasm, functions=functions, config=bare_config())
    limited = extism.Plugin(bare_manifest(wasm), functions=functions)
    tmp = Path(tempfile.mkdtemp(prefix="plugbay-wasm-bench-"))
    try:
        host = make_host(tmp / "home")
        check_same_answer(host, bare)
        greet = host.get("module", "as_greet").greet
        for label, name in (("small", SMALL), ("large", LARGE)):
            log(f"calls, {label} name")
            data = call_input(name)
            samples = alternating(
                {
                    "bare": partial(bare.call, EXPORT, data),
                    "bare_limits": partial(limited.call, EXPORT, data),
                    "plugbay": partial(greet, name),
                },
                ROUNDS[q] if label == "small" else max(2, ROUNDS[q] // 4),
            )
            results[label] = {side: summary(s) for side, s in samples.items()}

        log("a fresh instance per call")
        per_call = make_host(tmp / "home-call", instance="call")
        fresh = per_call.get("module", "as_greet").greet
        results["per_call"] = summary(timed(lambda: fresh(SMALL), INSTANCES[q] // 4))
        log("instantiation")
        compiled = CompiledPlugin(bare_manifest(wasm), functions=functions)
        results["instantiate"] = {
            "plugbay": summary(instances_from_cache(host, INSTANCES[q])),
            "bare_compiled": summary(timed(lambda: extism.Plugin(compiled), INSTANCES[q])),
            "bare_cold": summary(
                timed(lambda: extism.Plugin(bare_manifest(wasm), functions=functions), COLD[q])
            ),
        }
        host.stop()
        per_call.stop()
        log("plugin load in a fresh host")
        loads = [load_time(tmp / "home") for _ in range(LOADS[q])]
        results["load"] = {"median_ms": ms(statistics.median(loads)), "runs": len(loads)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log("done")
    results["targets"] = targets(results)
    return results


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    small = r["small"]
    ours, bare = small["plugbay"], small["bare"]
    ratio = ours["median_us"] / bare["median_us"]
    ratio_p99 = ours["p99_us"] / bare["p99_us"]
    limits = ours["median_us"] / small["bare_limits"]["median_us"]
    inst = r["instantiate"]["plugbay"]["median_us"] / 1000
    return [
        {
            "target": f"call at most {CALL_RATIO:g}x a bare Extism call on the same module",
            "measured": f"{ratio:.2f}x ({ours['median_us']:.1f} µs vs {bare['median_us']:.1f} µs; "
            f"p99 {ratio_p99:.2f}x; {limits:.2f}x the bare call with the same limits)",
            "met": ratio <= CALL_RATIO,
        },
        {
            "target": f"instantiation from the compiled cache at most {INSTANTIATE_MS:g} ms median",
            "measured": f"{inst:.3f} ms",
            "met": inst <= INSTANTIATE_MS,
        },
    ]


def rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    def cell(s: dict[str, float]) -> str:
        return f"{s['median_us']:.1f} µs (p99 {s['p99_us']:.1f})"

    s, big, inst = r["small"], r["large"], r["instantiate"]
    return [
        ("call greet, small name", cell(s["plugbay"]), cell(s["bare"]), cell(s["bare_limits"])),
        (
            "call greet, 8 KB name",
            cell(big["plugbay"]),
            cell(big["bare"]),
            cell(big["bare_limits"]),
        ),
        ("call greet, a fresh instance per call", cell(r["per_call"]), "-", "-"),
        (
            "new instance from the compiled module",
            cell(inst["plugbay"]),
            cell(inst["bare_compiled"]),
            "-",
        ),
        ("compile and instantiate (cold)", "-", "-", cell(inst["bare_cold"])),
        (
            "plugin load in a host (compile, instantiate, init)",
            f"{r['load']['median_ms']:.2f} ms",
            "-",
            "-",
        ),
        ("peak RSS of the benchmark process", f"{r['peak_kb'] / 1024:.1f} MB", "-", "-"),
    ]


HEADER = ["measurement", "plugbay", "bare Extism", "bare, same limits"]


def table(r: dict[str, Any]) -> str:
    body = aligned(HEADER, rows(r))
    return "\n".join([*body, "", *verdicts(r["targets"])])


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"Latest run: {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
        f"{m['system']}, Extism {r['extism']}; module {r['module']['file']} "
        f"({r['module']['bytes'] / 1024:.1f} KB). "
        "Command: `.venv/bin/python benchmarks/wasm/run.py`.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| --- | ---: | ---: | ---: |",
    ]
    out += ["| " + " | ".join(row) + " |" for row in rows(r)]
    out += ["", "| target | measured | met |", "| --- | --- | --- |"]
    out += [
        f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |"
        for t in r["targets"]
    ]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load": os.getloadavg()[0],
        "rust_backtrace": os.environ.get("RUST_BACKTRACE"),
        "rust_lib_backtrace": os.environ.get("RUST_LIB_BACKTRACE"),
    }


def log(*parts: object) -> None:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("--", *parts, f"(peak RSS so far {rss:.0f} MB)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plugbay WebAssembly calls benchmark")
    parser.add_argument("--quick", action="store_true", help="few rounds: check the script")
    parser.add_argument("--no-docs", action="store_true", help="do not refresh docs/benchmarks.md")
    parser.add_argument(
        "--docs-only", action="store_true", help="only rewrite the docs block from results.json"
    )
    args = parser.parse_args(argv)
    if args.docs_only:
        r = json.loads(RESULTS.read_text("utf-8"))
    else:
        r = run(args.quick)
        print()
        print(table(r))
        path = WORK / "results.json" if args.quick else RESULTS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=2) + "\n", "utf-8")
        print(f"\nwrote {path.relative_to(REPO)}")
    if args.quick or args.no_docs:
        return 0
    done = replace_block(DOCS, DOC_START, DOC_END, markdown(r))
    print(f"{'updated' if done else 'no wasm-results markers in'} {DOCS.relative_to(REPO)}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
