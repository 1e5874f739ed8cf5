"""plugbay.sdk: write out-of-process plugbay plugins in Python.

```python
from plugbay.sdk import Plugin

plugin = Plugin()

@plugin.module("greet")
class Greet:
    def run(self, name: str) -> str:
        return f"hello, {name}"

plugin.run()
```

The SDK speaks the protocol of docs/protocol.md: it writes ``plugbay/ready``, answers
``initialize``, ``invoke``, ``health`` and ``shutdown``, many requests at once, honours
``$/cancel`` and exits with the host. It imports only the standard library and
``plugbay.protocol``, so it runs in a plugin's own virtual environment too;
``python -m plugbay.sdk.isolated`` serves an ordinary Python plugin (``runtime =
"python"``, ``isolation = "process"``) that way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .plugin import HostInfo, HostLogger, Plugin
from .server import Call, Cancelled, SdkError, cancelled, check_cancelled, current_call

if TYPE_CHECKING:
    from .logs import LogHandler

__all__ = [
    "Call",
    "Cancelled",
    "HostInfo",
    "HostLogger",
    "LogHandler",
    "Plugin",
    "SdkError",
    "cancelled",
    "check_cancelled",
    "current_call",
]


def __getattr__(name: str) -> Any:
    # LogHandler needs the logging package: imported only by plugins that forward logging.
    if name == "LogHandler":
        from .logs import LogHandler

        return LogHandler
    raise AttributeError(f"module 'plugbay.sdk' has no attribute {name!r}")
