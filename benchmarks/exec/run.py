"""Out-of-process benchmark: a call into an exec plugin beside the transport's floor.

Run with ``make bench`` (that is, ``.venv/bin/python benchmarks/exec/run.py``). Prints a
table, writes ``benchmarks/exec/results.json`` and refreshes the results block of the
*Out-of-process calls* section of ``docs/benchmarks.md`` (between its ``exec-results``
markers; ``--no-docs`` skips). ``--quick`` does few rounds (to check the script; its
numbers go to ``.work/`` only).

What is measured, all in one run, with the same interpreter on both sides:

1. *floor*: a bare persistent child that echoes newline-delimited JSON-RPC (stdlib
   ``json``, no SDK), driven by a bare blocking client (write a line, read a line): what
   any stdio transport costs at least;
2. *plugbay*: ``host.get("module", "echo").echo(payload)`` on a started Host, into an
   exec plugin written with ``plugbay.sdk`` (``benchmarks/exec/plugin``): handshake done,
   the child warm. Round trip median and p99, 8 KB payloads, and pipelined throughput
   (64 calls in flight through ``acall`` on one event loop) beside the floor's (64 lines
   written, then 64 read);
3. *spawn per call*: what a tool that starts a fresh process for every call pays. The
   target's baseline is Ansible's own model: the process Ansible starts for each task,
   ``python -m ansible.modules.ping ARGS.json`` (ansible-core from the benchmark's venv;
   this leaves out the packing of the module into an AnsiballZ archive, so real Ansible
   pays more). Beside it, for context: the benchmark's SDK plugin started for one call
   (handshake, ``initialize``, one ``invoke``, ``shutdown``) and a bare ``python`` child
   that reads one request and answers it;
4. *spawn to ready*: from ``Popen`` to the ``plugbay/ready`` line of the SDK plugin; and
   *restart after a crash*: the child is killed with SIGKILL, then the time of the next
   call, which notices, restarts it (handshake, initialize) and answers.

Peak memory: the benchmark process's peak RSS (the host side), and the SDK child's
(VmHWM), are reported. Timing results are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The shared report helpers live one folder up (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import aligned, cpu_model, replace_block, verdicts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
RESULTS = HERE / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
DOC_START, DOC_END = "<!-- exec-results:start -->", "<!-- exec-results:end -->"
PLUGIN = HERE / "plugin"
PLUGIN_ID = "bench.echo"

ROUND_TRIP_FLOOR_RATIO = 2.0  # plugbay's median at most this many times the floor's
SPAWN_RATIO = 500.0  # and at least this many times faster than a process per call
SPAWN_READY_MS = 60.0
RESTART_MS = 100.0

SMALL = {"n": 1, "text": "ping"}
LARGE = {"blob": "x" * 8192}

#: (full, --quick) counts.
CALLS = (20_000, 2_000)
PIPELINED_ROUNDS = (300, 30)
SPAWNS = (30, 5)
RESTARTS = (15, 3)

FLOOR_CHILD = r"""
import json, sys
read, write, flush = sys.stdin.buffer.readline, sys.stdout.buffer.write, sys.stdout.buffer.flush
while True:
    line = read()
    if not line:
        break
    m = json.loads(line)
    write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": m["params"]["args"][0]},
                     separators=(",", ":")).encode() + b"\n")
    flush()
"""

ONCE_CHILD = r"""
import json, sys
m = json.loads(sys.stdin.buffer.readline())
answer = {"jsonrpc": "2.0", "id": m["id"], "result": m["params"]["args"][0]}
sys.stdout.write(json.dumps(answer) + "\n")
"""


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


# ---------------------------------------------------------------- the floor


class FloorClient:
    """A bare blocking JSON-RPC client of the bare echo child: the transport's floor."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FLOOR_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.ids = 0

    def _line(self, payload: Any) -> bytes:
        self.ids += 1
        message = {
            "jsonrpc": "2.0",
            "id": self.ids,
            "method": "invoke",
            "params": {"contribution": "module:echo", "method": "echo", "args": [payload]},
        }
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"

    def call(self, payload: Any) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(self._line(payload))
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["result"]

    def pipelined(self, payload: Any, depth: int) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(b"".join(self._line(payload) for _ in range(depth)))
        self.proc.stdin.flush()
        for _ in range(depth):
            json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(5)


# ---------------------------------------------------------------- helpers


def timed_calls(call: Callable[[Any], Any], payload: Any, n: int) -> list[float]:
    for _ in range(min(500, n)):  # warm-up
        call(payload)
    gc.collect()
    gc.disable()
    try:
        out = []
        clock = time.perf_counter_ns
        for _ in range(n):
            t = clock()
            call(payload)
            out.append(clock() - t)
        return out
    finally:
        gc.enable()


def calls_per_second(run_round: Callable[[], None], rounds: int, depth: int) -> float:
    for _ in range(max(3, rounds // 10)):
        run_round()
    t = time.perf_counter()
    for _ in range(rounds):
        run_round()
    return rounds * depth / (time.perf_counter() - t)


def protocol_env(cookie: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        PLUGBAY_PROTOCOL_VERSIONS="1",
        PLUGBAY_COOKIE=cookie,
        PLUGBAY_PLUGIN_ID=PLUGIN_ID,
        PLUGBAY_PLUGIN_DIR=str(PLUGIN),
        PLUGBAY_PARENT_PID=str(os.getpid()),
        PLUGBAY_LOG_LEVEL="warning",
    )
    return env


def spawn_sdk_child() -> tuple[subprocess.Popen[bytes], float]:
    """The SDK plugin started as a host would; (process, ns from Popen to its ready line)."""
    cookie = secrets.token_hex(16)
    t = time.perf_counter_ns()
    proc = subprocess.Popen(
        [sys.executable, "echo.py"],
        cwd=PLUGIN,
        env=protocol_env(cookie),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    elapsed = time.perf_counter_ns() - t
    if ready.get("method") != "plugbay/ready" or ready["params"].get("cookie") != cookie:
        raise SystemExit(f"the benchmark plugin did not start: {ready!r}")
    return proc, elapsed


def rpc(proc: subprocess.Popen[bytes], rid: int, method: str, params: Any) -> Any:
    assert proc.stdin is not None
    assert proc.stdout is not None
    line = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    proc.stdin.write(json.dumps(line).encode() + b"\n")
    proc.stdin.flush()
    while True:
        answer = json.loads(proc.stdout.readline())
        if answer.get("id") == rid:
            if "error" in answer:
                raise SystemExit(f"{method} failed: {answer['error']}")
            return answer["result"]


def spawn_per_call_sdk(payload: Any) -> float:
    """One call the way a process-per-call tool makes it, with the same SDK plugin."""
    t = time.perf_counter_ns()
    proc, _ = spawn_sdk_child()
    host = {"app": "bench", "api_version": "1.0.0", "plugbay_version": "0"}
    plugin = {"id": PLUGIN_ID, "version": "1.0.0", "dir": str(PLUGIN)}
    rpc(proc, 1, "initialize", {"host": host, "plugin": plugin, "config": {}, "grants": {}})
    invoke = {"contribution": "module:echo", "method": "echo", "args": [payload], "kwargs": {}}
    rpc(proc, 2, "invoke", invoke)
    rpc(proc, 3, "shutdown", {})
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)
    return time.perf_counter_ns() - t


def spawn_per_call_ansible(args_file: Path) -> float:
    """One call the way Ansible makes it: a fresh interpreter running the module."""
    t = time.perf_counter_ns()
    done = subprocess.run(
        [sys.executable, "-m", "ansible.modules.ping", str(args_file)],
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter_ns() - t
    if done.returncode != 0 or b'"ping"' not in done.stdout:
        raise SystemExit(
            "ansible-core's ping module did not run (install the benchmark's tools with "
            f"`make bench`): {done.stderr.decode('utf-8', 'replace')[-500:]}"
        )
    return elapsed


def spawn_per_call_bare(payload: Any) -> float:
    line = {"jsonrpc": "2.0", "id": 1, "method": "invoke", "params": {"args": [payload]}}
    t = time.perf_counter_ns()
    subprocess.run(
        [sys.executable, "-c", ONCE_CHILD],
        input=json.dumps(line).encode() + b"\n",
        capture_output=True,
        check=True,
    )
    return time.perf_counter_ns() - t


def child_peak_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


# ---------------------------------------------------------------- plugbay's side


def make_host(home: Path) -> Any:
    from plugbay import Host

    plugins = home / "plugins"
    plugins.mkdir(parents=True)
    shutil.copytree(PLUGIN, plugins / "echo", ignore=shutil.ignore_patterns("__pycache__"))
    # Calls are short; a generous deadline keeps the deadline machinery in the measurement.
    (home / "config.toml").write_text(
        f'[runtime."{PLUGIN_ID}"]\ncall-timeout = 30\nmax-restarts = 1000\n', "utf-8"
    )
    host = Host("benchbay", "1.0.0", home=home)
    host.discover()
    host.start()
    return host


def echo_of(host: Any) -> Any:
    return host.get("module", "echo").echo


def child_pid(host: Any) -> int:
    pid = host._exec.get(PLUGIN_ID).pid  # the benchmark kills it
    if pid is None:
        raise SystemExit("the benchmark plugin's child is not running")
    return int(pid)


def restart_after_crash(host: Any, payload: Any) -> float:
    from plugbay import PluginCallError

    echo = echo_of(host)
    echo(payload)
    pid = child_pid(host)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # until the kernel has reaped it: the crash is real
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{pid}/stat").exists() and "Z" in _state(pid):
            break
        time.sleep(0.001)
    t = time.perf_counter_ns()
    for _ in range(50):  # the call that meets the crash fails; the next one restarts it
        try:
            echo(payload)
            break
        except PluginCallError:  # the crash being noticed
            continue
    return time.perf_counter_ns() - t


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


# ---------------------------------------------------------------- the run


def run(quick: bool) -> dict[str, Any]:
    q = 1 if quick else 0
    n = CALLS[q]
    results: dict[str, Any] = {"machine": machine(), "quick": quick}
    floor = FloorClient()
    home = Path(tempfile.mkdtemp(prefix="plugbay-exec-bench-"))
    try:
        host = make_host(home)
        echo = echo_of(host)
        log("round trips, small payload")
        results["small"] = {
            "floor": summary(timed_calls(floor.call, SMALL, n)),
            "plugbay": summary(timed_calls(echo, SMALL, n)),
        }
        log("round trips, 8 KB payload")
        results["large"] = {
            "floor": summary(timed_calls(floor.call, LARGE, n // 4)),
            "plugbay": summary(timed_calls(echo, LARGE, n // 4)),
        }
        log("pipelined, 64 in flight")
        depth = 64
        loop = asyncio.new_event_loop()
        acall = host.get("module", "echo").echo.acall

        async def batch() -> None:
            await asyncio.gather(*(acall(SMALL) for _ in range(depth)))

        rounds = PIPELINED_ROUNDS[q]
        results["pipelined"] = {
            "depth": depth,
            "floor": calls_per_second(lambda: floor.pipelined(SMALL, depth), rounds, depth),
            "plugbay": calls_per_second(lambda: loop.run_until_complete(batch()), rounds, depth),
        }
        loop.close()
        log("restart after a crash")
        restarts = [restart_after_crash(host, SMALL) for _ in range(RESTARTS[q])]
        results["restart"] = {"median_ms": ms(statistics.median(restarts)), "runs": len(restarts)}
        results["child_peak_kb"] = child_peak_kb(child_pid(host))
        host.stop()
    finally:
        floor.close()
        shutil.rmtree(home, ignore_errors=True)
    log("spawn to ready, and a fresh process per call")
    readies = []
    for _ in range(SPAWNS[q]):
        proc, elapsed = spawn_sdk_child()
        readies.append(elapsed)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    results["spawn_ready"] = {"median_ms": ms(statistics.median(readies)), "runs": len(readies)}
    args_file = WORK / "ping-args.json"
    args_file.parent.mkdir(parents=True, exist_ok=True)
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"data": SMALL["text"]}}), "utf-8")
    ansible, per_call, bare = [], [], []
    for _ in range(SPAWNS[q]):  # interleaved: a change in load hits all three
        ansible.append(spawn_per_call_ansible(args_file))
        per_call.append(spawn_per_call_sdk(SMALL))
        bare.append(spawn_per_call_bare(SMALL))
    results["spawn_per_call"] = {
        "ansible_median_ms": ms(statistics.median(ansible)),
        "sdk_median_ms": ms(statistics.median(per_call)),
        "bare_median_ms": ms(statistics.median(bare)),
        "runs": len(per_call),
    }
    results["host_peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results["targets"] = targets(results)
    return results


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    small = r["small"]
    to_floor = small["plugbay"]["median_us"] / small["floor"]["median_us"]
    per_call_us = r["spawn_per_call"]["ansible_median_ms"] * 1000
    vs_spawn = per_call_us / small["plugbay"]["median_us"]
    vs_sdk = r["spawn_per_call"]["sdk_median_ms"] * 1000 / small["plugbay"]["median_us"]
    ready = r["spawn_ready"]["median_ms"]
    restart = r["restart"]["median_ms"]
    return [
        {
            "target": f"round trip at most {ROUND_TRIP_FLOOR_RATIO:g}x the bare child's",
            "measured": f"{to_floor:.2f}x ({small['plugbay']['median_us']:.0f} µs vs "
            f"{small['floor']['median_us']:.0f} µs)",
            "met": to_floor <= ROUND_TRIP_FLOOR_RATIO,
        },
        {
            "target": f"round trip at least {SPAWN_RATIO:g}x faster than a process per call "
            "(Ansible's module process)",
            "measured": f"{vs_spawn:.0f}x ({per_call_us / 1000:.1f} ms per call; the SDK "
            f"plugin started per call: {vs_sdk:.0f}x)",
            "met": vs_spawn >= SPAWN_RATIO,
        },
        {
            "target": f"SDK plugin spawn to ready at most {SPAWN_READY_MS:g} ms",
            "measured": f"{ready:.1f} ms",
            "met": ready <= SPAWN_READY_MS,
        },
        {
            "target": f"restart after a crash at most {RESTART_MS:g} ms",
            "measured": f"{restart:.1f} ms",
            "met": restart <= RESTART_MS,
        },
    ]


def rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    s, big, pipe = r["small"], r["large"], r["pipelined"]
    return [
        (
            "round trip, small payload",
            f"{s['plugbay']['median_us']:.0f} µs (p99 {s['plugbay']['p99_us']:.0f})",
            f"{s['floor']['median_us']:.0f} µs (p99 {s['floor']['p99_us']:.0f})",
        ),
        (
            "round trip, 8 KB payload",
            f"{big['plugbay']['median_us']:.0f} µs (p99 {big['plugbay']['p99_us']:.0f})",
            f"{big['floor']['median_us']:.0f} µs (p99 {big['floor']['p99_us']:.0f})",
        ),
        (
            f"pipelined, {pipe['depth']} in flight",
            f"{pipe['plugbay']:,.0f} calls/s",
            f"{pipe['floor']:,.0f} calls/s",
        ),
        (
            "a fresh process per call: Ansible module / SDK plugin / bare python",
            "-",
            f"{r['spawn_per_call']['ansible_median_ms']:.1f} / "
            f"{r['spawn_per_call']['sdk_median_ms']:.1f} / "
            f"{r['spawn_per_call']['bare_median_ms']:.1f} ms",
        ),
        ("spawn to ready (SDK plugin)", f"{r['spawn_ready']['median_ms']:.1f} ms", "-"),
        ("restart after a crash, to the answer", f"{r['restart']['median_ms']:.1f} ms", "-"),
        (
            "peak RSS: host process / plugin child",
            f"{r['host_peak_kb'] / 1024:.1f} MB / {(r['child_peak_kb'] or 0) / 1024:.1f} MB",
            "-",
        ),
    ]


def table(r: dict[str, Any]) -> str:
    body = aligned(["measurement", "plugbay", "floor / baseline"], rows(r))
    return "\n".join([*body, "", *verdicts(r["targets"])])


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"Latest run: {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
        f"{m['system']}. Command: `.venv/bin/python benchmarks/exec/run.py`.",
        "",
        "| measurement | plugbay | floor / baseline |",
        "| --- | ---: | ---: |",
    ]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows(r)]
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
    }


def log(*parts: object) -> None:
    print("--", *parts, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plugbay out-of-process calls benchmark")
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
    print(f"{'updated' if done else 'no exec-results markers in'} {DOCS.relative_to(REPO)}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
