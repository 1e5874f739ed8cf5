"""acme.sdk_greeter: an out-of-process plugin written in Python with plugbay.sdk.

The host starts it as ``python greeter.py`` (with its own interpreter) and talks to it
over stdin and stdout. To check it by hand, run ``plugbay protocol-check python
greeter.py`` in this folder, with plugbay's environment activated.
"""

from __future__ import annotations

import os
from typing import Any

from plugbay.sdk import HostInfo, Plugin, current_call

plugin = Plugin()  # id from the host, version from plugin.toml
settings = {"greeting": "Hello"}


@plugin.on_initialize
def setup(config: dict[str, Any], host: HostInfo) -> None:
    settings["greeting"] = config.get("greeting", "Hello")
    plugin.log.info("greeter ready", app=host.app, greeting=settings["greeting"])


@plugin.module("greet", check=["run", "describe"], check_slow="wait")
class Greet:
    """Called by method: ``host.get("module", "greet").run(name="Ada")``."""

    def run(self, name: str = "world") -> str:
        return f"{settings['greeting']}, {name}!"

    def describe(self) -> dict[str, Any]:
        return {"greeting": settings["greeting"], "pid": os.getpid()}

    def wait(self, seconds: float = 30.0) -> str:
        """Runs for ``seconds`` unless the host cancels the call first."""
        call = current_call()
        if call is not None and call.wait_cancelled(seconds):
            return "cancelled"
        return "done"


@plugin.hook("on_task", check=True)
def on_task(task: Any = None) -> str:
    plugin.emit("greeted", {"task": task})
    return f"{settings['greeting']}, task {task}!"


@plugin.command("greet-all", check=True)
def greet_all(args: list[str]) -> int:
    for name in args or ["world"]:
        plugin.log.info(f"{settings['greeting']}, {name}!")  # the host's log, not a terminal
    return 0


@plugin.on_health
def health() -> dict[str, str]:
    return {"status": "ok", "detail": f"greeting is {settings['greeting']!r}"}


if __name__ == "__main__":
    plugin.run()
