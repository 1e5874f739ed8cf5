"""``plugbay index build`` and ``plugbay install … --index URL``: the real command.

Indexes are built on disk and served by a real HTTP server on 127.0.0.1 started here
(tests/index_server.py), which counts the requests each command makes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import home_snapshot, ok, one_error, run_plugbay
from index_server import IndexServer, publish, publish_set, serve

plugbay = run_plugbay


def state(home: Path) -> dict[str, str | None]:
    return {k: v for k, v in home_snapshot(home).items() if not k.startswith("cache")}


@pytest.fixture
def www(tmp_path: Path) -> Path:
    path = tmp_path / "www"
    path.mkdir()
    return path


@pytest.fixture
def server(www: Path) -> Iterator[IndexServer]:
    with serve(www) as running:
        yield running


def test_index_build_writes_a_flat_or_sharded_index(home: Path, www: Path) -> None:
    publish_set(www)
    lines = ok(plugbay(home, "index", "build", str(www)))
    assert lines == [f"wrote {www / 'index.json'}: 3 plugin(s), 4 version(s)"]
    flat = (www / "index.json").read_bytes()
    ok(plugbay(home, "index", "build", str(www), "-o", str(www / "index.json")))
    assert (www / "index.json").read_bytes() == flat  # deterministic
    result = plugbay(
        home, "--json", "index", "build", str(www), "-o", str(www / "root.json"), "--sharded"
    )
    ok(result)
    assert json.loads(result.stdout) == {
        "index": str(www / "root.json"),
        "shards": str(www / "root"),
        "plugins": 3,
        "versions": 4,
    }
    assert sorted(p.name for p in (www / "root").iterdir()) == [
        "acme.left.json",
        "acme.right.json",
        "acme.shared.json",
    ]


def test_index_build_errors_are_one_line(home: Path, www: Path, tmp_path: Path) -> None:
    assert one_error(plugbay(home, "index", "build", str(www))) == (
        f"{www}: holds no bundles (*.tar.gz): build some with plugbay build DIR -o FOLDER"
    )
    publish(www, "acme.tool")
    error = one_error(
        plugbay(home, "index", "build", str(www), "-o", str(tmp_path / "x" / "i.json"))
    )
    assert "must be in the folder of the bundles or above it" in error


def test_install_by_name_makes_one_request_for_the_index_and_one_per_bundle(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish_set(www)
    ok(plugbay(home, "index", "build", str(www)))
    result = plugbay(home, "install", "acme.left", "--index", f"{server.url}/index.json")
    assert ok(result) == [
        f"install acme.left 1.0.0 from {server.url}/acme-left-1.0.0.tar.gz",
        f"install acme.shared 1.0.0 from {server.url}/acme-shared-1.0.0.tar.gz",
    ]
    assert result.stderr == ""  # no progress bar when not a terminal
    assert len(server.log) == 3
    assert sorted(server.paths()) == [
        "/acme-left-1.0.0.tar.gz",
        "/acme-shared-1.0.0.tar.gz",
        "/index.json",
    ]
    assert sorted(p.name for p in (home / "plugins" / "acme").iterdir()) == ["left", "shared"]


def test_a_sharded_index_by_url(home: Path, www: Path, server: IndexServer) -> None:
    publish_set(www)
    ok(plugbay(home, "index", "build", str(www), "--sharded"))
    ok(plugbay(home, "install", "acme.right>=1", "--index", f"{server.url}/index.json"))
    assert sorted(server.paths()) == [
        "/acme-right-1.0.0.tar.gz",
        "/acme-shared-2.0.0.tar.gz",
        "/index.json",
        "/index/acme.right.json",
        "/index/acme.shared.json",
    ]


def test_configured_indexes_in_priority_order_and_offline_from_the_cache(
    home: Path, www: Path, server: IndexServer
) -> None:
    first, second = www / "first", www / "second"
    publish(first, "acme.tool", "1.0.0")
    publish(second, "acme.tool", "2.0.0")
    publish(second, "acme.other", "1.0.0")
    ok(plugbay(home, "index", "build", str(first)))
    ok(plugbay(home, "index", "build", str(second)))
    (home / "config.toml").write_text(
        f'[[index]]\nname = "first"\nurl = "{server.url}/first/index.json"\n\n'
        f'[[index]]\nname = "second"\nurl = "{server.url}/second/index.json"\n'
    )
    assert ok(plugbay(home, "install", "acme.tool", "acme.other")) == [
        f"install acme.other 1.0.0 from {server.url}/second/acme-other-1.0.0.tar.gz",
        f"install acme.tool 2.0.0 from {server.url}/second/acme-tool-2.0.0.tar.gz",
    ]
    ok(plugbay(home, "remove", "acme.tool", "acme.other"))
    count = len(server.log)
    assert ok(plugbay(home, "--offline", "install", "acme.tool@2.0.0")) == [
        f"install acme.tool 2.0.0 from {server.url}/second/acme-tool-2.0.0.tar.gz"
    ]
    assert len(server.log) == count  # --offline: not one request
    # An index that cannot be had (not cached, offline) offers nothing: the others still
    # do, and a warning says it was not used; if it was the only hope, its error is the error.
    ok(plugbay(home, "remove", "acme.tool"))
    new = f"{server.url}/new.json"
    result = plugbay(home, "--offline", "install", "acme.tool@2.0.0", "--index", new)
    assert ok(result) == [
        f"install acme.tool 2.0.0 from {server.url}/second/acme-tool-2.0.0.tar.gz"
    ]
    assert result.stderr.splitlines() == [
        f"warning: {new} was not used: is not cached, and --offline forbids fetching it "
        "(run once without --offline to cache it)"
    ]
    error = one_error(plugbay(home, "--offline", "install", "acme.nowhere", "--index", new))
    assert error == (
        f"{new}: is not cached, and --offline forbids fetching it "
        "(run once without --offline to cache it)"
    )
    assert len(server.log) == count


def test_a_bad_index_table_in_config_is_one_line(home: Path) -> None:
    (home / "config.toml").write_text('[index]\nname = "acme"\nurl = "https://x.test/index.json"\n')
    error = one_error(plugbay(home, "install", "acme.tool"))
    assert error == (
        f"{home / 'config.toml'}: index: expected [[index]] tables (double brackets), each with "
        'name = "…" and url = "…"'
    )


def test_install_errors_are_one_line_and_change_nothing(
    home: Path, www: Path, server: IndexServer, tmp_path: Path
) -> None:
    publish_set(www)
    ok(plugbay(home, "index", "build", str(www)))
    url = f"{server.url}/index.json"
    before = state(home)
    assert one_error(plugbay(home, "install", "acme.lefty", "--index", url)) == (
        "you asked for acme.lefty, but no version of acme.lefty is installed or available"
        f" — acme.lefty is in no index ({url}); closest names: acme.left, acme.right"
    )
    # A bundle rebuilt after the index: its hash differs.
    shutil.copyfile(www / "acme-shared-2.0.0.tar.gz", www / "acme-shared-1.0.0.tar.gz")
    error = one_error(plugbay(home, "install", "acme.left", "--index", url))
    assert error.startswith(f"{server.url}/acme-shared-1.0.0.tar.gz: differs from what the index")
    # Malformed.
    (www / "bad.json").write_text('{"format": 1, "plugins": {"acme.left": 3}}')
    error = one_error(plugbay(home, "install", "acme.left", "--index", f"{server.url}/bad.json"))
    assert error == (
        f"{server.url}/bad.json: is not a valid plugbay index at plugins['acme.left']: "
        "expected `array`, got `int`"
    )
    assert state(home) == before


def test_an_unreachable_index_uses_the_cache_with_a_warning_or_says_there_is_none(
    home: Path, www: Path, tmp_path: Path
) -> None:
    publish_set(www)
    ok(plugbay(home, "index", "build", str(www)))
    with serve(www) as running:
        url = f"{running.url}/index.json"
        ok(plugbay(home, "install", "acme.right", "--index", url))
    ok(plugbay(home, "remove", "acme.right", "acme.shared"))
    # The server is gone: the cached index and downloads still install it, with a warning.
    result = plugbay(home, "install", "acme.right", "--index", url)
    assert ok(result)[0] == f"install acme.right 1.0.0 from {running.url}/acme-right-1.0.0.tar.gz"
    warning = result.stderr.splitlines()
    assert len(warning) == 1
    assert warning[0].startswith(f"warning: {url} cannot be reached (cannot connect to ")
    assert "using the copy cached on " in warning[0]
    other = tmp_path / "other"
    other.mkdir()
    error = one_error(plugbay(other, "install", "acme.left", "--index", url))
    assert error.startswith(f"{url}: cannot be reached: cannot connect to ")
    assert error.endswith("no cached copy of it to use instead (try again when the server answers)")
    assert state(other) == {}
    # A configured index that cannot be reached does not stop installs from other sources:
    # a folder with its dependency installed from a bundle, each with one warning.
    (other / "config.toml").write_text(f'[[index]]\nname = "gone"\nurl = "{url}"\n')
    result = plugbay(other, "install", str(www / "acme-shared-2.0.0.tar.gz"))
    assert ok(result) == [f"install acme.shared 2.0.0 from {www / 'acme-shared-2.0.0.tar.gz'}"]
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"warning: gone ({url}) was not used: cannot be reached: ")
    right = www.parent / "src" / "acme.right-1.0.0" / "acme.right"
    assert ok(plugbay(other, "install", str(right), "--offline")) == [
        f"install acme.right 1.0.0 from {right}"
    ]
