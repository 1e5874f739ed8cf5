"""Runtimes load and unload a plugin's code. Each runtime is one module here.

- :mod:`.python`: in-process Python plugins, each in a namespace of its own;
- :mod:`.exec`: plugins in child processes speaking docs/protocol.md (``runtime = "exec"``,
  and Python plugins with ``isolation = "process"``), supervised; :mod:`.exec_proxy`
  holds what the host calls them through;
- :mod:`.wasm`: WebAssembly plugins in an Extism sandbox (``runtime = "wasm"``), with the
  compiled-module cache and the host functions; :mod:`.wasm_proxy` holds the plugin
  object and the proxies the host calls them through (docs/wasm.md).

The exec and wasm runtimes are imported only when a host loads its first plugin of that
kind (and ``extism`` with the wasm one), so hosts with in-process plugins alone never pay
for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .python import PythonRuntime

if TYPE_CHECKING:
    from .exec import ExecRuntime
    from .wasm import WasmRuntime

__all__ = ["ExecRuntime", "PythonRuntime", "WasmRuntime"]


def __getattr__(name: str) -> Any:
    if name == "ExecRuntime":
        from .exec import ExecRuntime

        return ExecRuntime
    if name == "WasmRuntime":
        from .wasm import WasmRuntime

        return WasmRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
