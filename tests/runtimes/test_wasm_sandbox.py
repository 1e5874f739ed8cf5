"""The wasm runtime's parts on their own: the sandbox made from grants, settings, export
names, and the compiled-module cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from wasm_support import DATA, TINY_WASM

from plugbay import LoadError
from plugbay.config import FilesystemGrant, Grants, RuntimeSettings
from plugbay.runtimes.wasm import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_MEMORY,
    Sandbox,
    WasmRuntime,
    WasmSettings,
    export_name,
    sandbox_for,
)


def test_network_grants_become_host_patterns_without_ports() -> None:
    grants = Grants(
        network=("api.acme.test:443", "api.acme.test:8443", "*.s3.acme.test", "[::1]:8080")
    )
    # Extism filters by host name only: both ports of api.acme.test give one host.
    assert sandbox_for(grants).allowed_hosts == ("api.acme.test", "*.s3.acme.test", "[[]::1]")
    assert sandbox_for(Grants(network=("*",))).allowed_hosts == ("*",)
    assert sandbox_for(Grants()) == Sandbox()  # nothing granted: nothing reachable


def test_filesystem_grants_become_folders_read_only_unless_written(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "rw" / "inner").mkdir(parents=True)
    (tmp_path / "file.txt").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "ro")
    grants = Grants(
        filesystem=FilesystemGrant(
            read=(
                str(link),  # resolved: the folder it points to
                str(tmp_path / "rw" / "inner"),  # under a write grant: writable already
                str(tmp_path / "file.txt"),
                str(tmp_path / "missing"),
            ),
            write=(str(tmp_path / "rw"),),
        )
    )
    sandbox = sandbox_for(grants)
    rw, ro = str(tmp_path / "rw"), str(tmp_path / "ro")
    assert sandbox.allowed_paths == ((rw, rw), (f"ro:{ro}", ro))
    assert len(sandbox.notes) == 2
    assert "file.txt is a file; the sandbox opens folders only" in sandbox.notes[0]
    assert "missing does not exist" in sandbox.notes[1]


def test_settings_default_and_round_memory_to_pages() -> None:
    assert WasmSettings.from_config("a", None) == WasmSettings(
        DEFAULT_CALL_TIMEOUT, DEFAULT_MEMORY, "plugin"
    )
    settings = WasmSettings.from_config(
        "a", RuntimeSettings(call_timeout=2, memory=100_000, instance="call")
    )
    assert (settings.call_timeout, settings.memory, settings.pages) == (2.0, 65536, 1)
    assert settings.instance == "call"
    with pytest.raises(LoadError, match="call-timeout must be more than 0 s"):
        WasmSettings.from_config("a", RuntimeSettings(call_timeout=0))


@pytest.mark.parametrize(
    ("name", "method", "export"),
    [
        ("greet", "run", "greet_run"),
        ("greet", None, "greet"),
        ("greet-all", None, "greet_all"),
        ("acme.tool", "do-it", "acme_tool_do_it"),
    ],
)
def test_export_names(name: str, method: str | None, export: str) -> None:
    assert export_name(name, method) == export


def test_compiled_modules_are_cached_by_file_sha256_and_sandbox(tmp_path: Path) -> None:
    runtime = WasmRuntime()
    try:
        path = tmp_path / "plugin.wasm"
        settings = WasmSettings()
        first = runtime.module("a", path, TINY_WASM, Sandbox(), settings)
        assert runtime.module("a", path, TINY_WASM, Sandbox(), settings) is first
        other = runtime.module("a", path, TINY_WASM, Sandbox(("x.test",)), settings)
        assert other is not first  # other grants, another sandbox
        changed = TINY_WASM + bytes.fromhex("00020178")  # a custom section "x", empty
        assert runtime.module("a", path, changed, Sandbox(), settings).sha256 != first.sha256
        text = (DATA / "basics.wat").read_bytes()
        assert not runtime.module("a", tmp_path / "p.wat", text, Sandbox(), settings).wasi
        text = (DATA / "files.wat").read_bytes()
        assert runtime.module("a", tmp_path / "f.wat", text, Sandbox(), settings).wasi
    finally:
        runtime.close()
