"""Helpers of the wasm runtime tests: plugins made of the WAT fixtures in tests/data/wasm
(compiled by the engine when they load), and config."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from conftest import write_plugin

DATA = Path(__file__).resolve().parent.parent / "data" / "wasm"

#: What basics.wat provides (docs/wasm.md: module greet, method run → export greet_run).
BASICS = {
    "module": [
        {"name": name, "summary": f"the {name} part of basics.wat"}
        for name in ("greet", "counter", "config", "faults", "relay", "web")
    ],
    "hook": [{"name": "on_task"}],
    "command": [{"name": "greet-all", "summary": "exits with 3"}],
}
FILES = {"module": [{"name": "files"}]}

# A binary module by hand, to show that binary .wasm files load as text ones do:
# (module (func (export "tiny") (result i32) (i32.const 0))) — an Extism plugin function
# that returns success and writes no output.
TINY_WASM = bytes.fromhex(
    "0061736d01000000"  # magic, version 1
    "0105016000017f"  # type section: one type, () -> i32
    "03020100"  # function section: one function, of type 0
    "0708010474696e790000"  # export section: "tiny", function 0
    "0a0601040041000b"  # code section: one body, no locals, i32.const 0, end
)


def wasm_plugin(
    root: Path,
    plugin_id: str = "acme.basics",
    *,
    source: str = "basics.wat",
    contributes: Mapping[str, list[Mapping[str, Any]]] | None = None,
    permissions: str = "",
    activation: str | None = None,
) -> Path:
    """A wasm plugin whose module is the fixture ``source``; returns its folder."""
    if contributes is None:
        contributes = FILES if source == "files.wat" else BASICS
    suffix = Path(source).suffix
    extra = 'runtime = "wasm"\n'
    if permissions:
        extra += f"[permissions]\n{permissions}\n"
    folder = write_plugin(
        root,
        plugin_id,
        entry=f"plugin{suffix}",
        activation=activation,
        contributes=contributes,
        extra=extra,
    )
    shutil.copyfile(DATA / source, folder / f"plugin{suffix}")
    return folder


def write_config(
    home: Path,
    runtime: Mapping[str, Mapping[str, Any]] | None = None,
    grants: Mapping[str, Mapping[str, Any]] | None = None,
    plugins: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """``config.toml`` with ``[runtime]``, ``[grants]`` and ``[plugins]`` tables."""
    tables = {
        "runtime": dict(runtime or {}),
        "grants": dict(grants or {}),
        "plugins": dict(plugins or {}),
    }
    (home / "config.toml").write_text(tomli_w.dumps({k: v for k, v in tables.items() if v}))
