"""Runtimes load and unload a plugin's code. Each runtime is one module here.

- :mod:`.python`: in-process Python plugins, each in a namespace of its own;
- :mod:`.exec`: plugins in child processes speaking docs/protocol.md (``runtime = "exec"``,
  and Python plugins with ``isolation = "process"``), supervised; :mod:`.exec_proxy`
  holds what the host calls them through.

The exec runtime is imported only when a host loads its first out-of-process plugin, so
hosts with in-process plugins alone never pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .python import PythonRuntime

if TYPE_CHECKING:
    from .exec import ExecRuntime

__all__ = ["ExecRuntime", "PythonRuntime"]


def __getattr__(name: str) -> Any:
    if name == "ExecRuntime":
        from .exec import ExecRuntime

        return ExecRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
