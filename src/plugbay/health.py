"""Periodic health checks: a thread that asks a host's plugins how they are, every interval.

A started plugin whose check fails (it answers ``failed``, raises, or hangs past the
host's ``health_timeout``) is restarted, at most ``max_restarts`` times within
``restart_window`` seconds; past that budget it is left as it is and reported. The interval
and the budget come from ``[health]`` in ``config.toml`` (docs/observability.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ConfigError, PluginError

if TYPE_CHECKING:
    from .host import Health, Host

__all__ = ["HealthMonitor"]

_log = logging.getLogger("plugbay")


class HealthMonitor:
    """Checks ``host``'s plugins every ``interval`` seconds in a daemon thread.

    ``on_check`` (optional) receives every round's results, from the monitor's thread.
    :meth:`check` runs one round now, in the caller's thread.
    """

    def __init__(
        self,
        host: Host,
        interval: float,
        *,
        max_restarts: int = 3,
        restart_window: float = 300.0,
        on_check: Callable[[dict[str, Health]], None] | None = None,
    ) -> None:
        if not interval > 0:
            raise ConfigError(
                "[health]", "interval", "must be a number of seconds above 0", interval
            )
        self.host = host
        self.interval = interval
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.on_check = on_check
        self._restarts: dict[str, deque[float]] = {}
        self._spent: set[str] = set()  # plugins whose budget is spent (reported once)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HealthMonitor:
        """Start the thread (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="plugbay health", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, waiting for a round in progress to end (it is bounded by the
        host's health, stop and load timeouts)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def check(self) -> dict[str, Health]:
        """One round: check every plugin, restart the started ones that failed."""
        from .host import PluginState

        results = self.host.health()
        for plugin_id, health in results.items():
            if health.status != "failed" or self._stop.is_set():
                continue
            try:
                started = self.host.state(plugin_id) is PluginState.STARTED
            except PluginError:
                continue  # gone from the plan meanwhile (a reload)
            if started:
                self._restart(plugin_id, health.message)
        if self.on_check is not None:
            self.on_check(results)
        return results

    def _restart(self, plugin_id: str, why: str) -> None:
        now = time.monotonic()
        recent = self._restarts.setdefault(plugin_id, deque())
        while recent and now - recent[0] > self.restart_window:
            recent.popleft()
        if len(recent) >= self.max_restarts:
            if plugin_id not in self._spent:
                self._spent.add(plugin_id)
                _log.error(
                    "health check failed (%s); not restarted: %d restarts within %g s "
                    "([health] max-restarts = %d)",
                    why,
                    len(recent),
                    self.restart_window,
                    self.max_restarts,
                    extra={"plugin_id": plugin_id},
                )
            return
        self._spent.discard(plugin_id)
        recent.append(now)
        _log.warning(
            "health check failed (%s); restarting it (%d of at most %d within %g s)",
            why,
            len(recent),
            self.max_restarts,
            self.restart_window,
            extra={"plugin_id": plugin_id},
        )
        try:
            self.host.restart(plugin_id)
        except PluginError as exc:  # its state says why; the monitor goes on
            _log.warning(
                "restart after a failed health check failed: %s",
                exc,
                extra={"plugin_id": plugin_id},
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except PluginError as exc:
                _log.warning("health check round failed: %s", exc)
