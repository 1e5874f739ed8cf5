"""``--offline`` never opens a network connection: the real command, with no network.

Each netless command runs in a network namespace of its own where every connection fails,
with an audit hook reporting any attempt to connect or to look a host up
(tests/netless.py). What needs the network must fail with one line naming it and saying
what to do; what can work from local files and the caches must work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import home_snapshot, ok, one_error, run_plugbay, write_plugin
from index_server import IndexServer, publish, publish_set, serve
from netless import NETLESS_MARK, assert_no_network_use, netless, netless_plugbay
from plugbay.errors import StoreError
from plugbay.store import Store

plugbay = run_plugbay

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.test",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.test",
}


@pytest.fixture
def www(tmp_path: Path, home: Path) -> Path:
    """A folder of bundles with its index: acme.left needs acme.shared <2."""
    path = tmp_path / "www"
    publish_set(path)
    ok(plugbay(home, "index", "build", str(path)))
    return path


@pytest.fixture
def server(www: Path) -> Iterator[IndexServer]:
    with serve(www) as running:
        yield running


def installed(home: Path) -> dict[str, str]:
    result = plugbay(home, "list", "--json")
    ok(result)
    listing = json.loads(result.stdout)
    return {p["id"]: p["version"] for p in listing["plugins"]}


def git(repo: Path, *args: str) -> None:
    found = shutil.which("git")
    if found is None:
        pytest.fail("git is not installed: the git+file:// test needs the real git command")
    done = subprocess.run(
        [found, "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- the harness


def test_netless_commands_cannot_reach_a_live_server_on_127_0_0_1(
    home: Path, www: Path, server: IndexServer
) -> None:
    url = f"{server.url}/index.json"
    probe = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)"
    outside = subprocess.run(
        [sys.executable, "-c", probe, url], capture_output=True, text=True, check=False
    )
    assert outside.stdout.strip() == "200", outside.stderr
    inside = netless([sys.executable, "-c", probe, url])
    assert inside.returncode != 0
    assert "Network is unreachable" in inside.stderr
    # Without --offline, plugbay tries, fails, and the audit hook reports the attempt.
    result = netless_plugbay(home, "install", "acme.left", "--index", url)
    port = urlsplit(url).port
    assert f"{NETLESS_MARK}connect to ('127.0.0.1', {port})" in result.stderr
    assert "Network is unreachable" in result.stderr
    assert result.returncode == 1
    with pytest.raises(AssertionError):
        assert_no_network_use(result)
    assert len(server.log) == 1  # only the request made from outside


# ---------------------------------------------------------------- from the caches


def test_offline_installs_by_name_from_the_index_cache_with_no_network(
    home: Path, www: Path
) -> None:
    with serve(www) as running:  # warm the caches, then the server is gone
        url = f"{running.url}/index.json"
        ok(plugbay(home, "install", "acme.left", "--index", url))
        ok(plugbay(home, "remove", "acme.left", "acme.shared"))
    result = netless_plugbay(home, "--offline", "install", "acme.left", "--index", url)
    assert_no_network_use(result)
    assert ok(result) == [
        f"install acme.left 1.0.0 from {url.removesuffix('index.json')}acme-left-1.0.0.tar.gz",
        f"install acme.shared 1.0.0 from {url.removesuffix('index.json')}acme-shared-1.0.0.tar.gz",
    ]
    assert result.stderr == ""  # no "cannot be reached" warning: nothing was tried
    assert installed(home) == {"acme.left": "1.0.0", "acme.shared": "1.0.0"}
    # plugbay download answers from the same caches.
    dest = home.parent / "bundles"
    result = netless_plugbay(
        home, "--offline", "download", "acme.left", "-d", str(dest), "--index", url
    )
    assert_no_network_use(result)
    ok(result)
    assert sorted(p.name for p in dest.iterdir()) == [
        "acme-left-1.0.0.tar.gz",
        "acme-shared-1.0.0.tar.gz",
        "plugbay.lock",
    ]
    # A version whose bundle was never downloaded needs the network: said, nothing changed.
    before = home_snapshot(home)
    result = netless_plugbay(
        home, "--offline", "install", "acme.shared@2.0.0", "--force", "--index", url
    )
    assert_no_network_use(result)
    assert one_error(result) == (
        f"{url.removesuffix('index.json')}acme-shared-2.0.0.tar.gz: is not in the download "
        "cache, and --offline forbids fetching it: download it first with plugbay download, "
        "or drop --offline"
    )
    assert home_snapshot(home) == before


def test_offline_refuses_what_needs_the_network_in_one_line_and_changes_nothing(
    home: Path, tmp_path: Path
) -> None:
    ok(plugbay(home, "install", str(write_plugin(tmp_path / "seed", "acme.base", "1.0.0"))))
    before = home_snapshot(home)
    cases = {
        ("install", "https://plugins.acme.test/acme-x-1.0.0.tar.gz"): (
            "https://plugins.acme.test/acme-x-1.0.0.tar.gz: is not in the download cache, and "
            "--offline forbids fetching it: download it first with plugbay download, or drop "
            "--offline"
        ),
        ("install", "git+https://git.acme.test/acme/x.git@v1"): (
            "git+https://git.acme.test/acme/x.git@v1: is a remote repository, and --offline "
            "forbids cloning it: download it first with plugbay download (or clone it and use "
            "git+file:///PATH), or drop --offline"
        ),
        ("install", "git+ssh://git@git.acme.test/acme/x.git"): (
            "git+ssh://git@git.acme.test/acme/x.git: is a remote repository, and --offline "
            "forbids cloning it: download it first with plugbay download (or clone it and use "
            "git+file:///PATH), or drop --offline"
        ),
        ("install", "acme.x", "--index", "https://plugins.acme.test/index.json"): (
            "https://plugins.acme.test/index.json: is not cached, and --offline forbids "
            "fetching it (run once without --offline to cache it)"
        ),
        ("download", "https://plugins.acme.test/acme-x-1.0.0.tar.gz", "-d", "out"): (
            "https://plugins.acme.test/acme-x-1.0.0.tar.gz: is not in the download cache, and "
            "--offline forbids fetching it: download it first with plugbay download, or drop "
            "--offline"
        ),
    }
    for args, expected in cases.items():
        result = netless_plugbay(home, "--offline", *args)
        assert_no_network_use(result)
        assert one_error(result) == expected
    assert home_snapshot(home) == before
    assert not (home.parent / "cwd" / "out").exists()


def test_a_lock_naming_a_url_syncs_offline_only_from_the_download_cache(
    home: Path, www: Path, tmp_path: Path
) -> None:
    lock = tmp_path / "project" / "plugbay.lock"
    lock.parent.mkdir()
    with serve(www) as running:
        ok(plugbay(home, "install", f"{running.url}/acme-shared-1.0.0.tar.gz"))
        ok(plugbay(home, "lock", "-o", str(lock)))
        url = f"{running.url}/acme-shared-1.0.0.tar.gz"
    fresh = tmp_path / "fresh"
    result = netless_plugbay(fresh, "--offline", "sync", str(lock))
    assert_no_network_use(result)
    assert one_error(result) == (
        f"{lock}: acme.shared 1.0.0: cannot fetch its locked source: {url}: is not in the "
        "download cache, and --offline forbids fetching it: download it first with plugbay "
        "download, or drop --offline"
    )
    assert not fresh.exists()
    # The home that installed it has it in its download cache: sync works there, netless.
    ok(plugbay(home, "remove", "acme.shared"))
    result = netless_plugbay(home, "--offline", "sync", str(lock))
    assert_no_network_use(result)
    assert ok(result) == [f"install acme.shared 1.0.0 from {url}"]


def test_git_file_urls_are_local_and_install_offline(home: Path, tmp_path: Path) -> None:
    repo = write_plugin(tmp_path / "repos", "acme.code", "1.0.0")
    git(repo, "init", "--quiet")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "1.0.0")
    git(repo, "tag", "v1.0.0")
    spec = f"git+{repo.as_uri()}@v1.0.0"
    result = netless_plugbay(home, "--offline", "install", spec)
    assert_no_network_use(result)
    assert ok(result) == [f"install acme.code 1.0.0 from {spec}"]


def test_commands_that_read_local_files_work_netless(home: Path, tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    bundle = publish(bundles, "acme.tool", "1.0.0")
    lock = tmp_path / "plugbay.lock"
    runs = [
        ("install", str(bundle)),
        ("list",),
        ("info", "acme.tool"),
        ("verify",),
        ("doctor",),
        ("load", "acme.tool"),
        ("lock", "-o", str(lock)),
        ("remove", "acme.tool"),
        ("sync", str(lock)),
        ("index", "build", str(bundles)),
        ("install", "acme.tool", "--index", str(bundles / "index.json")),
        ("build", str(tmp_path / "src" / "acme.tool-1.0.0" / "acme.tool"), "-o", str(tmp_path)),
    ]
    for args in runs:
        result = netless_plugbay(home, "--offline", *args)
        assert_no_network_use(result)
        assert result.returncode == 0, (args, result.stderr)
    assert installed(home) == {"acme.tool": "1.0.0"}


def test_offline_python_dependencies_refuse_a_find_links_url(home: Path, tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "src", "acme.deps", "1.0.0", extra='python-dependencies = ["fakedep==1.0"]'
    )
    store = Store(home, offline=True, find_links=["https://wheels.acme.test/simple/"])
    with pytest.raises(StoreError) as info:
        store.install([str(folder)])
    assert str(info.value).endswith(
        "acme.deps 1.0.0 offline: the find-links https://wheels.acme.test/simple/ needs the "
        "network, and --offline forbids it; use a folder of wheels (or drop --offline); "
        "nothing was changed"
    )
    assert not (home / "plugins").exists()
