"""``plugbay download SPEC… -d DIR`` and ``plugbay install -r DIR/plugbay.lock --offline``.

Bundles are published by a real HTTP server on 127.0.0.1 (tests/index_server.py); the
offline installs run in a network namespace where no connection can be made, with an
audit hook reporting any attempt (tests/netless.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import home_snapshot, ok, one_error, run_plugbay, write_plugin
from index_server import IndexServer, publish_set, serve
from netless import assert_no_network_use, netless_plugbay
from plugbay.store import build_bundle

plugbay = run_plugbay


@pytest.fixture
def www(tmp_path: Path, home: Path) -> Path:
    """acme.right needs acme.shared >=1; acme.left needs acme.shared <2; with an index."""
    path = tmp_path / "www"
    publish_set(path)
    ok(plugbay(home, "index", "build", str(path)))
    return path


@pytest.fixture
def server(www: Path) -> Iterator[IndexServer]:
    with serve(www) as running:
        yield running


def read_lock(path: Path) -> list[dict[str, Any]]:
    plugins: list[dict[str, Any]] = tomllib.loads(path.read_text())["plugin"]
    return plugins


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed(home: Path) -> dict[str, str]:
    result = plugbay(home, "list", "--json")
    ok(result)
    return {p["id"]: p["version"] for p in json.loads(result.stdout)["plugins"]}


def receipt_sha(home: Path, plugin_id: str, version: str) -> str:
    data = json.loads((home / "receipts" / f"{plugin_id}-{version}.json").read_text())
    sha: str = data["bundle_sha256"]
    return sha


def test_download_by_name_then_install_offline_on_another_home_from_another_folder(
    home: Path, www: Path, tmp_path: Path
) -> None:
    # This home has acme.shared 1.0.0: an install of acme.right here would keep it, but a
    # download is for another machine and takes the newest that fits, 2.0.0.
    ok(plugbay(home, "install", str(www / "acme-shared-1.0.0.tar.gz")))
    before = {k: v for k, v in home_snapshot(home).items() if not k.startswith("cache")}
    dest = tmp_path / "bundles"
    with serve(www) as running:
        base = running.url
        result = plugbay(
            home, "download", "acme.right", "-d", str(dest), "--index", f"{base}/index.json"
        )
    assert ok(result) == [
        f"download acme.right 1.0.0 from {base}/acme-right-1.0.0.tar.gz",
        f"download acme.shared 2.0.0 from {base}/acme-shared-2.0.0.tar.gz",
        f"wrote {dest / 'plugbay.lock'}: 2 plugins; install them with: plugbay install -r "
        f"{dest / 'plugbay.lock'} --offline",
    ]
    assert result.stderr == ""  # no progress bar when not a terminal
    assert {k: v for k, v in home_snapshot(home).items() if not k.startswith("cache")} == before
    assert sorted(p.name for p in dest.iterdir()) == [
        "acme-right-1.0.0.tar.gz",
        "acme-shared-2.0.0.tar.gz",
        "plugbay.lock",
    ]
    assert read_lock(dest / "plugbay.lock") == [
        {
            "id": "acme.right",
            "version": "1.0.0",
            "sha256": sha256(www / "acme-right-1.0.0.tar.gz"),
            "source": "acme-right-1.0.0.tar.gz",
        },
        {
            "id": "acme.shared",
            "version": "2.0.0",
            "sha256": sha256(www / "acme-shared-2.0.0.tar.gz"),
            "source": "acme-shared-2.0.0.tar.gz",
        },
    ]
    # The downloads are in this home's download cache too.
    cached = sorted(p.read_bytes() for p in (home / "cache" / "downloads").iterdir())
    assert (dest / "acme-shared-2.0.0.tar.gz").read_bytes() in cached

    # Elsewhere: the folder copied, a fresh home, another working folder, no network.
    moved = tmp_path / "elsewhere" / "media" / "bundles"
    shutil.copytree(dest, moved)
    shutil.rmtree(dest)
    other = tmp_path / "elsewhere" / "home"
    work = tmp_path / "elsewhere" / "work"
    work.mkdir()
    result = netless_plugbay(
        other, "--offline", "install", "-r", "../media/bundles/plugbay.lock", cwd=work
    )
    assert_no_network_use(result)
    assert ok(result) == [
        f"install acme.right 1.0.0 from {moved / 'acme-right-1.0.0.tar.gz'}",
        f"install acme.shared 2.0.0 from {moved / 'acme-shared-2.0.0.tar.gz'}",
    ]
    assert installed(other) == {"acme.right": "1.0.0", "acme.shared": "2.0.0"}
    for entry in read_lock(moved / "plugbay.lock"):
        assert receipt_sha(other, entry["id"], entry["version"]) == entry["sha256"]
    # Again: everything it pins is there already.
    result = netless_plugbay(other, "--offline", "install", "-r", str(moved / "plugbay.lock"))
    assert ok(result) == ["nothing to install: everything asked for is already in place"]


def test_download_again_keeps_good_files_and_replaces_bad_ones(
    home: Path, www: Path, server: IndexServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bundles"
    url = f"{server.url}/index.json"
    ok(plugbay(home, "download", "acme.left", "-d", str(dest), "--index", url))
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in dest.iterdir()}
    lock = (dest / "plugbay.lock").read_text()
    # Another home: no download cache; the files in the folder are the cache.
    other = tmp_path / "other"
    count = len(server.log)
    result = plugbay(other, "--json", "download", "acme.left", "-d", str(dest), "--index", url)
    ok(result)
    report = json.loads(result.stdout)
    assert [(b["action"], b["id"], b["version"]) for b in report["bundles"]] == [
        ("keep", "acme.left", "1.0.0"),
        ("keep", "acme.shared", "1.0.0"),
    ]
    assert report["lock"] == str(dest / "plugbay.lock")
    assert report["warnings"] == []
    assert server.paths()[count:] == ["/index.json"]  # no bundle downloaded again
    for name, (data, mtime) in files.items():
        if name != "plugbay.lock":
            assert (dest / name).read_bytes() == data
            assert (dest / name).stat().st_mtime_ns == mtime  # not even rewritten
    assert (dest / "plugbay.lock").read_text() == lock
    # A truncated file and another bundle under the right name are replaced.
    (dest / "acme-left-1.0.0.tar.gz").write_bytes(files["acme-left-1.0.0.tar.gz"][0][:100])
    shutil.copyfile(www / "acme-shared-2.0.0.tar.gz", dest / "acme-shared-1.0.0.tar.gz")
    result = plugbay(other, "download", "acme.left", "-d", str(dest), "--index", url)
    assert ok(result)[:2] == [
        f"replace acme.left 1.0.0 from {server.url}/acme-left-1.0.0.tar.gz "
        "(acme-left-1.0.0.tar.gz was another file)",
        f"replace acme.shared 1.0.0 from {server.url}/acme-shared-1.0.0.tar.gz "
        "(acme-shared-1.0.0.tar.gz was another file)",
    ]
    for name, (data, _) in files.items():
        assert (dest / name).read_bytes() == data


def test_a_changed_bundle_in_a_downloaded_folder_is_refused_offline(
    home: Path, www: Path, server: IndexServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bundles"
    ok(
        plugbay(
            home, "download", "acme.left", "-d", str(dest), "--index", f"{server.url}/index.json"
        )
    )
    locked = {e["id"]: e["sha256"] for e in read_lock(dest / "plugbay.lock")}
    # Same plugin and version, other bytes: a sound bundle, but not the locked one.
    src = write_plugin(tmp_path / "evil", "acme.shared", "1.0.0", code={"evil.py": "x = 1\n"})
    bundle = build_bundle(src, tmp_path / "evil-out")
    shutil.copyfile(bundle, dest / "acme-shared-1.0.0.tar.gz")
    fresh = tmp_path / "fresh"
    result = netless_plugbay(fresh, "--offline", "install", "-r", str(dest / "plugbay.lock"))
    assert_no_network_use(result)
    assert one_error(result) == (
        f"{dest / 'acme-shared-1.0.0.tar.gz'}: has sha256 {sha256(bundle)}, but "
        f"{dest / 'plugbay.lock'} pins acme.shared 1.0.0 to sha256 {locked['acme.shared']}: "
        "it is not the locked bundle; nothing was changed"
    )
    assert home_snapshot(fresh) == {}


def test_download_builds_folders_and_git_sources_and_reads_requirements(
    home: Path, tmp_path: Path
) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is not installed: this test downloads a git+file:// source")
    repo = write_plugin(tmp_path / "repos", "acme.code", "1.0.0", dependencies={"acme.lib": "^1"})
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.test",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.test",
    }
    for args in (["init", "--quiet"], ["add", "-A"], ["commit", "--quiet", "-m", "1.0.0"]):
        subprocess.run(
            [git, "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
            cwd=repo,
            env=env,
            check=True,
            capture_output=True,
        )
    lib = write_plugin(tmp_path / "src", "acme.lib", "1.2.0")
    reqs = tmp_path / "reqs" / "plugins.yml"
    reqs.parent.mkdir()
    reqs.write_text("plugins:\n  - source: ../src/acme.lib\n    type: dir\n")
    dest = tmp_path / "out"
    result = plugbay(home, "download", f"git+{repo.as_uri()}", "-r", str(reqs), "-d", str(dest))
    assert ok(result)[:2] == [
        f"download acme.code 1.0.0 from git+{repo.as_uri()}",
        f"download acme.lib 1.2.0 from {lib}",
    ]
    assert [(e["id"], e["source"]) for e in read_lock(dest / "plugbay.lock")] == [
        ("acme.code", "acme-code-1.0.0.tar.gz"),
        ("acme.lib", "acme-lib-1.2.0.tar.gz"),
    ]
    # Built reproducibly: the same bytes as plugbay build gives.
    assert (dest / "acme-lib-1.2.0.tar.gz").read_bytes() == build_bundle(
        lib, tmp_path / "built"
    ).read_bytes()
    # A lock is a -r file for download too: the same set, into another folder.
    again = tmp_path / "again"
    ok(plugbay(home, "download", "-r", str(dest / "plugbay.lock"), "-d", str(again)))
    assert read_lock(again / "plugbay.lock") == read_lock(dest / "plugbay.lock")
    assert not (home / "plugins").exists()


def test_download_and_install_from_a_lock_refuse_bad_requests_in_one_line(
    home: Path, www: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "bundles"
    assert one_error(plugbay(home, "download", "-d", str(dest))) == (
        "download: nothing to download: give plugin ids, folders, bundles, URLs, git+URL or -r FILE"
    )
    assert one_error(
        plugbay(home, "download", "acme.lefty", "-d", str(dest), "--index", str(www / "index.json"))
    ) == (
        "you asked for acme.lefty, but no version of acme.lefty is installed or available — "
        f"acme.lefty is in no index ({www / 'index.json'}); closest names: acme.left, acme.right"
    )
    assert not dest.exists()
    ok(
        plugbay(
            home,
            "download",
            str(www / "acme-left-1.0.0.tar.gz"),
            str(www / "acme-shared-1.0.0.tar.gz"),
            "-d",
            str(dest),
        )
    )
    lock = str(dest / "plugbay.lock")
    assert one_error(plugbay(home, "install", "-r", lock, "--index", str(www / "index.json"))) == (
        f"-r {lock}: installs each plugin from the source the lock names, so --index has no "
        "use with it: drop --index"
    )
    assert one_error(plugbay(home, "install", "-r", lock, "--locked", lock)) == (
        f"install: -r {lock} and --locked both name a lock file: give one of them"
    )
    second = tmp_path / "second.lock"
    shutil.copyfile(lock, second)
    assert one_error(plugbay(home, "install", "-r", lock, "-r", str(second))) == (
        f"{second}: is a second lock file (after {lock}): give one lock at a time"
    )
    empty = tmp_path / "empty.lock"
    empty.write_text("lock-version = 1\n")
    assert one_error(plugbay(home, "install", "-r", str(empty))) == (
        f"{empty}: pins no plugin (write one with plugbay lock or plugbay download)"
    )
    # A plugin the lock does not pin is refused with it, as with install --locked.
    error = one_error(plugbay(home, "install", "-r", lock, str(www / "acme-right-1.0.0.tar.gz")))
    assert error.startswith(
        f"{www / 'acme-right-1.0.0.tar.gz'} is acme.right 1.0.0, which {lock} does not pin"
    )
    assert not (home / "plugins").exists()
