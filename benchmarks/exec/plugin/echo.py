"""bench.echo: the out-of-process plugin of benchmarks/exec, written with plugbay.sdk."""

from __future__ import annotations

from typing import Any

from plugbay.sdk import Plugin

plugin = Plugin()


@plugin.module("echo")
class Echo:
    def echo(self, payload: Any) -> Any:
        return payload


if __name__ == "__main__":
    plugin.run()
