"""Metrics: per-plugin lifecycle durations and counts, per-contribution calls and latency.

``host.metrics`` is a :class:`Metrics`. What it records:

- per plugin: the durations of its last load (``load``: config, import or spawn, register,
  hooks), ``init`` and ``start`` steps, and how many times it was restarted and reloaded;
- per contribution (``plugin_id``, ``kind``, ``name``): ``calls``, ``errors`` and latency
  quantiles, and ``gets``. What a call is depends on what the host can see: every hook
  implementation call, every plugin command run, and every call through the proxy of an
  out-of-process or WebAssembly plugin's object is counted; every ``host.get`` is counted
  in ``gets`` (the host does not see the calls a caller makes on an in-process object it
  got back). Hook calls are counted exactly, but their latency is sampled (bursts of
  :data:`SAMPLE_BURST` calls: after each compile and each snapshot) so that recording stays
  cheap; the others are timed every time.

Latency goes into a fixed-bucket histogram (:data:`BUCKETS`), so recording is a few integer
additions and memory does not grow with the number of calls; quantiles are estimated from
the buckets. :meth:`Metrics.snapshot` returns plain data; :meth:`Metrics.prometheus`
renders the text exposition format.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

__all__ = ["BUCKETS", "SAMPLE_BURST", "ContributionStats", "Metrics", "PluginStats"]

#: Upper bounds (seconds) of the latency histogram's buckets; a last one takes the rest.
BUCKETS: tuple[float, ...] = (
    *(float(f"{m}e{e}") for e in range(-6, 1) for m in ("1", "2.5", "5")),
    10.0,
    30.0,
    60.0,
)
#: A hook's implementations are timed on this many calls after its dispatcher is compiled
#: and after each snapshot (the other calls are only counted: cheaper).
SAMPLE_BURST = 16
#: The quantiles ``snapshot()`` and ``prometheus()`` report.
QUANTILES = (0.5, 0.9, 0.99)


class ContributionStats:
    """Calls, errors and a latency histogram of one contribution.

    Updated without a lock: the recording threads run under the GIL, and a count lost to
    a race costs less than a lock on every call would.
    """

    __slots__ = ("buckets", "calls", "errors", "gets", "kind", "max", "name", "plugin_id", "sum")

    def __init__(self, plugin_id: str, kind: str, name: str) -> None:
        self.plugin_id = plugin_id
        self.kind = kind
        self.name = name
        self.calls = 0
        self.errors = 0
        self.gets = 0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        """Add one latency sample."""
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.max = max(self.max, seconds)

    @property
    def samples(self) -> int:
        """How many latencies were observed (all calls, or a sample of them)."""
        return sum(self.buckets)

    def quantile(self, q: float) -> float | None:
        """The latency below which a fraction ``q`` of the samples fall (seconds), estimated
        by linear interpolation inside its bucket; None without samples."""
        total = self.samples
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                low = BUCKETS[i - 1] if i else 0.0
                high = BUCKETS[i] if i < len(BUCKETS) else self.max
                high = min(high, self.max)  # never above the slowest one seen
                low = min(low, high)
                return low + (high - low) * ((rank - seen) / count)
            seen += count
        return self.max

    def as_dict(self) -> dict[str, Any]:
        samples = self.samples
        return {
            "plugin_id": self.plugin_id,
            "kind": self.kind,
            "name": self.name,
            "calls": self.calls,
            "errors": self.errors,
            "gets": self.gets,
            "latency": {
                "samples": samples,
                "mean_ms": self.sum / samples * 1e3 if samples else None,
                "max_ms": self.max * 1e3 if samples else None,
                **{f"p{round(q * 100)}_ms": _ms(self.quantile(q)) for q in QUANTILES},
            },
        }


class PluginStats:
    """Lifecycle durations (milliseconds, of the last load) and counters of one plugin."""

    __slots__ = ("durations_ms", "health_failures", "loads", "plugin_id", "reloads", "restarts")

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self.durations_ms: dict[str, float] = {}
        self.loads = 0
        self.restarts = 0
        self.reloads = 0
        self.health_failures = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "durations_ms": dict(self.durations_ms),
            "loads": self.loads,
            "restarts": self.restarts,
            "reloads": self.reloads,
            "health_failures": self.health_failures,
        }


class Metrics:
    """A host's metrics; ``enabled=False`` makes every recording call a no-op."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.host_ms: dict[str, float] = {}
        self._plugins: dict[str, PluginStats] = {}
        self._contributions: dict[tuple[str, str, str], ContributionStats] = {}
        self._lock = threading.Lock()
        # Callbacks that bring counters kept elsewhere (compiled hook dispatchers) up to date.
        self._flushers: list[Callable[[], None]] = []

    # ------------------------------------------------------------ recording

    def plugin(self, plugin_id: str) -> PluginStats:
        """The stats of one plugin (made on first use)."""
        stats = self._plugins.get(plugin_id)
        if stats is None:
            with self._lock:
                stats = self._plugins.setdefault(plugin_id, PluginStats(plugin_id))
        return stats

    def contribution(self, plugin_id: str, kind: str, name: str) -> ContributionStats:
        """The stats of one contribution (made on first use); cheap to call again."""
        key = (plugin_id, kind, name)
        stats = self._contributions.get(key)
        if stats is None:
            with self._lock:
                stats = self._contributions.setdefault(key, ContributionStats(*key))
        return stats

    def record_load(self, plugin_id: str, durations_ms: dict[str, float]) -> None:
        """A plugin loaded: keep its step durations and count the load."""
        if not self.enabled:
            return
        stats = self.plugin(plugin_id)
        stats.durations_ms = dict(durations_ms)
        stats.loads += 1

    def count(self, plugin_id: str, what: str) -> None:
        """Add one to a plugin counter: ``restarts``, ``reloads`` or ``health_failures``."""
        if not self.enabled:
            return
        stats = self.plugin(plugin_id)
        setattr(stats, what, getattr(stats, what) + 1)

    def record_call(
        self, plugin_id: str, kind: str, name: str, seconds: float, *, error: bool = False
    ) -> None:
        """One call of a contribution that took ``seconds``, failed or not."""
        if not self.enabled:
            return
        stats = self.contribution(plugin_id, kind, name)
        stats.calls += 1
        if error:
            stats.errors += 1
        stats.observe(seconds)

    def record_get(self, plugin_id: str, kind: str, name: str) -> None:
        """One ``host.get`` of a contribution."""
        if self.enabled:
            self.contribution(plugin_id, kind, name).gets += 1

    def add_flusher(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` before every snapshot (for counters kept outside this object)."""
        with self._lock:
            self._flushers.append(flush)

    # ------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded, as plain data (JSON-ready)::

        {"host": {"discover_ms": …, "plan_ms": …},
         "plugins": {id: {"durations_ms": {"load": …, "init": …, "start": …},
                          "loads": n, "restarts": n, "reloads": n, "health_failures": n}},
         "contributions": [{"plugin_id", "kind", "name", "calls", "errors", "gets",
                            "latency": {"samples", "mean_ms", "max_ms", "p50_ms", "p90_ms",
                                        "p99_ms"}}, …]}
        """
        self._flush()
        with self._lock:
            plugins = sorted(self._plugins.items())
            contributions = sorted(self._contributions.items())
        return {
            "enabled": self.enabled,
            "host": dict(self.host_ms),
            "plugins": {pid: stats.as_dict() for pid, stats in plugins},
            "contributions": [stats.as_dict() for _, stats in contributions],
        }

    def prometheus(self, prefix: str = "plugbay") -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        self._flush()
        with self._lock:
            plugins = sorted(self._plugins.items())
            contributions = sorted(self._contributions.items())
        out: list[str] = []

        def family(name: str, kind: str, doc: str, rows: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {prefix}_{name} {doc}")
            out.append(f"# TYPE {prefix}_{name} {kind}")
            out.extend(f"{prefix}_{name}{labels} {_number(value)}" for labels, value in rows)

        steps = sorted({step for _, s in plugins for step in s.durations_ms})
        family(
            "plugin_step_seconds",
            "gauge",
            "Duration of a plugin's lifecycle step at its last load.",
            [
                (_labels(plugin=pid, step=step), s.durations_ms[step] / 1e3)
                for pid, s in plugins
                for step in steps
                if step in s.durations_ms
            ],
        )
        for counter, doc in (
            ("loads", "Times the plugin was loaded."),
            ("restarts", "Times the plugin was restarted."),
            ("reloads", "Times the plugin was reloaded."),
            ("health_failures", "Health checks the plugin failed."),
        ):
            family(
                f"plugin_{counter}_total",
                "counter",
                doc,
                [(_labels(plugin=pid), getattr(s, counter)) for pid, s in plugins],
            )
        keyed = [
            (_labels(plugin=s.plugin_id, kind=s.kind, name=s.name), s) for _, s in contributions
        ]
        family(
            "contribution_calls_total",
            "counter",
            "Calls of a contribution (hooks and commands).",
            [(labels, s.calls) for labels, s in keyed],
        )
        family(
            "contribution_errors_total",
            "counter",
            "Calls of a contribution that raised.",
            [(labels, s.errors) for labels, s in keyed],
        )
        family(
            "contribution_gets_total",
            "counter",
            "host.get() lookups of a contribution.",
            [(labels, s.gets) for labels, s in keyed],
        )
        out.append(
            f"# HELP {prefix}_contribution_latency_seconds Call latency (hooks: sampled calls)."
        )
        out.append(f"# TYPE {prefix}_contribution_latency_seconds histogram")
        for _, s in contributions:
            base = {"plugin": s.plugin_id, "kind": s.kind, "name": s.name}
            cumulative = 0
            for bound, count in zip((*BUCKETS, float("inf")), s.buckets, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                labels = _labels(**base, le=le)
                out.append(f"{prefix}_contribution_latency_seconds_bucket{labels} {cumulative}")
            out.append(
                f"{prefix}_contribution_latency_seconds_sum{_labels(**base)} {_number(s.sum)}"
            )
            out.append(f"{prefix}_contribution_latency_seconds_count{_labels(**base)} {cumulative}")
        return "\n".join(out) + "\n"

    def _flush(self) -> None:
        with self._lock:
            flushers = list(self._flushers)
        for flush in flushers:
            flush()


def timer() -> float:
    """The clock latencies are measured with (seconds)."""
    return time.perf_counter()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _labels(**labels: str) -> str:
    """``{a="x",b="y"}`` with the exposition format's escapes."""
    parts = []
    for key, value in labels.items():
        escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{key}="{escaped}"')
    return "{" + ",".join(parts) + "}"
