"""``plugbay lock``, ``plugbay sync`` and ``plugbay install --locked``: the real command.

Bundles are served over HTTP by a server on 127.0.0.1 started here, and built on disk;
two homes show that one lock gives the same plugin set on another machine.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import home_snapshot as snapshot
from conftest import ok, run_plugbay, write_plugin
from plugbay.store import Store, build_bundle

plugbay = run_plugbay


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Server:
    """A folder served over HTTP on 127.0.0.1."""

    root: Path
    url: str

    def publish(self, folder: Path) -> str:
        """Build the plugin in ``folder`` into the served folder; its URL."""
        return f"{self.url}/{build_bundle(folder, self.root).name}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, name="lock-bundle-server")
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield Server(root, f"http://{host!s}:{port}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: …`` line of a failed command (exit 1, nothing on stdout)."""
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0].removeprefix("error: ")


def plugin_set(home: Path) -> dict[str, tuple[str, list[str]]]:
    """``plugbay list --json``: id → (active version, other versions)."""
    doc = json.loads("\n".join(ok(plugbay(home, "list", "--json"))))
    return {p["id"]: (p["version"], p["other_versions"]) for p in doc["plugins"]}


@pytest.fixture
def first(tmp_path: Path, server: Server) -> Path:
    """A home with acme.shared 1.0.0 (from a URL; 2.0.0 beside it) and acme.left 1.0.0
    (from a bundle file), locked into ``<tmp>/project/plugbay.lock``."""
    home = tmp_path / "first"
    src = tmp_path / "src"
    shared1 = server.publish(write_plugin(src / "s1", "acme.shared", "1.0.0"))
    shared2 = server.publish(write_plugin(src / "s2", "acme.shared", "2.0.0"))
    left = build_bundle(
        write_plugin(src / "l1", "acme.left", "1.0.0", dependencies={"acme.shared": "<2.0.0"}),
        tmp_path / "project" / "bundles",
    )
    # Set up through the library: the commands under test are lock, sync and install --locked.
    Store(home).install([shared1, str(left)])
    Store(home).install([shared2], activate=False)
    return home


def test_one_lock_gives_the_same_plugin_set_in_two_homes(
    first: Path, tmp_path: Path, server: Server
) -> None:
    project = tmp_path / "project"
    lock_file = project / "plugbay.lock"
    result = plugbay(first, "lock", "-o", str(lock_file))
    assert ok(result) == [f"wrote {lock_file}: 2 plugins"]
    assert result.stderr == ""
    text = lock_file.read_text()
    assert 'source = "bundles/acme-left-1.0.0.tar.gz"' in text
    assert f'source = "{server.url}/acme-shared-1.0.0.tar.gz"' in text

    second = tmp_path / "second"
    assert ok(plugbay(second, "sync", str(lock_file))) == [
        f"install acme.left 1.0.0 from {project / 'bundles' / 'acme-left-1.0.0.tar.gz'}",
        f"install acme.shared 1.0.0 from {server.url}/acme-shared-1.0.0.tar.gz",
    ]
    assert plugin_set(second) == {
        "acme.left": ("1.0.0", []),
        "acme.shared": ("1.0.0", []),
    }
    assert plugin_set(first) == {
        "acme.left": ("1.0.0", []),
        "acme.shared": ("1.0.0", ["2.0.0"]),
    }
    again = project / "again.lock"
    ok(plugbay(second, "lock", "-o", str(again)))
    assert again.read_text() == text
    assert ok(plugbay(second, "sync", str(lock_file))) == [
        f"nothing to sync: every plugin {lock_file} pins is installed and active"
    ]


def test_lock_writes_plugbay_lock_in_the_working_folder_and_sync_reads_it(
    first: Path, tmp_path: Path
) -> None:
    ok(plugbay(first, "lock"))
    assert (tmp_path / "cwd" / "plugbay.lock").is_file()
    second = tmp_path / "second"
    doc = json.loads("\n".join(ok(plugbay(second, "sync", "--json"))))
    assert doc["lock"] == "plugbay.lock"
    assert [(c["action"], c["id"], c["version"]) for c in doc["changes"]] == [
        ("install", "acme.left", "1.0.0"),
        ("install", "acme.shared", "1.0.0"),
    ]
    assert doc["unlocked"] == []


def test_dry_run_sync_downloads_but_writes_nothing(first: Path, tmp_path: Path) -> None:
    ok(plugbay(first, "lock"))
    second = tmp_path / "second"
    result = plugbay(second, "sync", "--dry-run")
    assert ok(result)[0].startswith("would install acme.left 1.0.0 from ")
    assert not second.exists()
    before = snapshot(first)
    ok(plugbay(first, "use", "acme.shared@2.0.0", "--force"))
    switched = snapshot(first)
    assert switched != before
    assert ok(plugbay(first, "sync", "--dry-run", "--prune")) == [
        "would switch acme.shared 2.0.0 → 1.0.0",
        "would remove acme.shared 2.0.0",
    ]
    assert snapshot(first) == switched


def test_sync_switches_back_and_prune_removes_what_is_not_locked(
    first: Path, tmp_path: Path
) -> None:
    ok(plugbay(first, "lock"))
    extra = write_plugin(tmp_path / "src" / "x", "acme.extra")
    ok(plugbay(first, "install", str(extra)))
    ok(plugbay(first, "use", "acme.shared@2.0.0", "--force"))

    result = plugbay(first, "sync")
    assert ok(result) == ["switch acme.shared 2.0.0 → 1.0.0"]
    assert result.stderr.splitlines() == [
        "warning: acme.extra 1.0.0 is installed but not in plugbay.lock: left as it is "
        "(sync --prune removes it)",
        "warning: acme.shared 2.0.0 is installed but not in plugbay.lock: left as it is "
        "(sync --prune removes it)",
    ]
    assert plugin_set(first)["acme.extra"] == ("1.0.0", [])

    result = plugbay(first, "sync", "--prune")
    assert ok(result) == ["remove acme.extra 1.0.0", "remove acme.shared 2.0.0"]
    assert result.stderr == ""
    assert plugin_set(first) == {"acme.left": ("1.0.0", []), "acme.shared": ("1.0.0", [])}


def test_a_lock_whose_hash_does_not_match_is_refused_and_nothing_is_written(
    first: Path, tmp_path: Path, server: Server
) -> None:
    ok(plugbay(first, "lock"))
    # The server now hands out other bytes under the locked URL (same id and version).
    server.publish(
        write_plugin(tmp_path / "src" / "evil", "acme.shared", "1.0.0", extra="x-evil = 1")
    )
    second = tmp_path / "second"
    message = one_error(plugbay(second, "sync"))
    assert message.startswith(f"{server.url}/acme-shared-1.0.0.tar.gz: has sha256 ")
    assert "but plugbay.lock pins acme.shared 1.0.0 to sha256" in message
    assert message.endswith("it is not the locked bundle; nothing was changed")
    assert not second.exists()


def test_install_locked_refuses_a_downgrade_the_lock_does_not_pin(
    first: Path, tmp_path: Path
) -> None:
    old = build_bundle(write_plugin(tmp_path / "src" / "l0", "acme.left", "0.9.0"), tmp_path)
    ok(plugbay(first, "lock"))
    before = snapshot(first)
    message = one_error(plugbay(first, "install", "--locked", str(old)))
    assert message == (
        f"{old} is acme.left 0.9.0, but plugbay.lock pins acme.left 1.0.0: install --locked "
        "installs only what the lock pins (to change the lock, install without --locked, "
        "then run plugbay lock)"
    )
    message = one_error(plugbay(first, "install", "acme.shared@2.0.0", "--locked"))
    assert message.startswith(
        "you asked for acme.shared =2.0.0, but plugbay.lock pins acme.shared 1.0.0"
    )
    assert snapshot(first) == before
    # Without --locked the same downgrade goes through: the refusal was the lock's.
    ok(plugbay(first, "install", str(old)))


def test_install_locked_installs_from_the_locked_source(first: Path, tmp_path: Path) -> None:
    lock_file = tmp_path / "team.lock"
    ok(plugbay(first, "lock", "-o", str(lock_file)))
    second = tmp_path / "second"
    lines = ok(plugbay(second, "install", "--locked", str(lock_file), "acme.left"))
    assert [line.split(" from ")[0] for line in lines] == [
        "install acme.left 1.0.0",
        "install acme.shared 1.0.0",
    ]
    message = one_error(plugbay(second, "install", "--locked"))
    assert "nothing to install" in message
    assert "plugbay sync" in message


def test_a_hand_edited_lock_with_a_typo_names_the_field(first: Path, tmp_path: Path) -> None:
    ok(plugbay(first, "lock"))
    lock_file = tmp_path / "cwd" / "plugbay.lock"
    lock_file.write_text(lock_file.read_text().replace("sha256 =", "sha265 =", 1))
    second = tmp_path / "second"
    message = one_error(plugbay(second, "sync"))
    assert message == (
        "plugbay.lock: plugin[0].sha265: unknown key 'sha265' (in the entry of acme.left); "
        'did you mean "sha256"? (allowed: id, version, sha256, source, signer)'
    )
    doc = json.loads(plugbay(second, "sync", "--json").stdout)
    assert doc["error"]["type"] == "LockfileError"
    assert not second.exists()


def test_lock_json_lists_every_entry(first: Path, tmp_path: Path) -> None:
    doc = json.loads("\n".join(ok(plugbay(first, "lock", "--json", "-o", "x.lock"))))
    assert doc["lock"] == "x.lock"
    assert [(p["id"], p["version"]) for p in doc["plugins"]] == [
        ("acme.left", "1.0.0"),
        ("acme.shared", "1.0.0"),
    ]
    left = tmp_path / "project" / "bundles" / "acme-left-1.0.0.tar.gz"
    assert doc["plugins"][0]["sha256"] == hashlib.sha256(left.read_bytes()).hexdigest()
    assert doc["warnings"] == []
