"""Static indexes: ``build_index``, and installing by name through ``IndexSource``.

Bundles are built on disk and served by a real HTTP server on 127.0.0.1 (tests/index_server.py)
that logs every request and plays faults: 500s, stalls, connections cut mid-body.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from test_signing import make_key, policy, trust

from conftest import home_snapshot, write_plugin
from index_server import IndexServer, serve
from plugbay.config import config_from_mapping
from plugbay.errors import BundleError, ConfigError, ResolutionError, SourceError, TrustError
from plugbay.store import Limits, Store, build_bundle
from plugbay.store.index import IndexSource, index_sources, open_source
from plugbay.store.indexer import build_index
from plugbay.store.signing import SigningKey

# ---------------------------------------------------------------- helpers


def publish(
    www: Path,
    plugin_id: str,
    version: str = "1.0.0",
    deps: Mapping[str, str] | None = None,
    *,
    key: SigningKey | None = None,
    text: str = "X = 1\n",
    description: str = "",
) -> Path:
    """Build ``plugin_id`` ``version`` into ``www``; the bundle's path."""
    src = (
        www.parent
        / "src"
        / f"{plugin_id}-{version}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    )
    extra = f"description = {json.dumps(description)}" if description else ""
    folder = write_plugin(
        src, plugin_id, version, dependencies=deps, code={"p/__init__.py": text}, extra=extra
    )
    return build_bundle(folder, www, sign=key.sign if key else None)


def publish_set(www: Path) -> None:
    """acme.left needs acme.shared <2, acme.right needs acme.shared >=1; shared 1 and 2."""
    publish(www, "acme.shared", "1.0.0")
    publish(www, "acme.shared", "2.0.0")
    publish(www, "acme.left", "1.0.0", {"acme.shared": ">=1.0.0,<2.0.0"})
    publish(www, "acme.left", "1.1.0", {"acme.shared": ">=1.0.0,<2.0.0"})
    publish(www, "acme.right", "1.0.0", {"acme.shared": ">=1.0.0"})


def store(home: Path, *urls: str, offline: bool = False, timeout: float = 5.0) -> Store:
    sources = [
        open_source(u, cache=home / "cache", limits=Limits(), offline=offline, timeout=timeout)
        for u in urls
    ]
    return Store(home, offline=offline, sources=sources)


def installed(home: Path) -> dict[str, str]:
    """Active version per installed id."""
    return {
        pid: versions[0].version
        for pid, versions in Store(home).installed().items()
        if versions[0].active
    }


def state(home: Path) -> dict[str, str | None]:
    """The home without its caches: what an install changes."""
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


# ---------------------------------------------------------------- build


def test_a_flat_index_lists_every_version_with_what_a_resolver_needs(www: Path) -> None:
    publish_set(www)
    signed_key, _ = make_key(www.parent, "acme")
    publish(www, "acme.signed", "0.1.0", key=signed_key, description="Signed one")
    report = build_index(www)
    assert (report.path, report.plugins, report.versions) == (www / "index.json", 4, 6)
    doc = json.loads((www / "index.json").read_bytes())
    assert doc["format"] == 1
    assert list(doc["plugins"]) == ["acme.left", "acme.right", "acme.shared", "acme.signed"]
    assert [e["version"] for e in doc["plugins"]["acme.left"]] == ["1.1.0", "1.0.0"]
    entry = doc["plugins"]["acme.left"][1]
    data = (www / "acme-left-1.0.0.tar.gz").read_bytes()
    assert entry["url"] == "acme-left-1.0.0.tar.gz"
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["size"] == len(data)
    assert entry["signer"] is None
    assert entry["dependencies"] == {"acme.shared": ">=1.0.0,<2.0.0"}
    assert (entry["requires"], entry["runtime"]) == ("*", "python")
    assert entry["manifest"]["plugin"]["name"] == "left"
    signed = doc["plugins"]["acme.signed"][0]
    assert (signed["signer"], signed["summary"]) == (signed_key.id, "Signed one")


def test_the_same_bundles_give_the_same_bytes(www: Path, tmp_path: Path) -> None:
    publish_set(www)
    first = build_index(www, tmp_path / "www" / "a.json").path.read_bytes()
    copy = tmp_path / "copy"
    copy.mkdir()
    for bundle in sorted(www.glob("*.tar.gz"), reverse=True):  # another order and mtimes
        shutil.copyfile(bundle, copy / bundle.name)
    assert build_index(copy).path.read_bytes() == first
    build_index(www, www / "s.json", sharded=True)
    shards = {p.name: p.read_bytes() for p in (www / "s").iterdir()}
    build_index(copy, copy / "s.json", sharded=True)
    assert {p.name: p.read_bytes() for p in (copy / "s").iterdir()} == shards
    assert (copy / "s.json").read_bytes() == (www / "s.json").read_bytes()


def test_a_sharded_index_has_a_small_root_and_one_shard_per_plugin(www: Path) -> None:
    publish_set(www)
    report = build_index(www, sharded=True)
    root = json.loads(report.path.read_bytes())
    assert root == {
        "format": 1,
        "shards": {
            "acme.left": "index/acme.left.json",
            "acme.right": "index/acme.right.json",
            "acme.shared": "index/acme.shared.json",
        },
    }
    shard = json.loads((www / "index" / "acme.shared.json").read_bytes())
    assert (shard["id"], [e["version"] for e in shard["versions"]]) == (
        "acme.shared",
        ["2.0.0", "1.0.0"],
    )
    assert shard["versions"][0]["url"] == "../acme-shared-2.0.0.tar.gz"
    # A plugin gone from the folder loses its shard at the next build.
    (www / "acme-right-1.0.0.tar.gz").unlink()
    build_index(www, sharded=True)
    assert sorted(p.name for p in (www / "index").iterdir()) == [
        "acme.left.json",
        "acme.shared.json",
    ]


def test_two_different_bundles_of_one_version_are_refused(www: Path, tmp_path: Path) -> None:
    publish(www, "acme.tool", "1.0.0", text="X = 1\n")
    other = publish(tmp_path / "elsewhere", "acme.tool", "1.0.0", text="X = 2\n")
    shutil.copyfile(other, www / "acme-tool-1.0.0-rebuilt.tar.gz")
    with pytest.raises(SourceError) as info:
        build_index(www)
    assert "two different bundles of acme.tool 1.0.0" in str(info.value)
    assert "acme-tool-1.0.0-rebuilt.tar.gz" in str(info.value)
    assert not (www / "index.json").exists()
    # The same bytes twice are one bundle.
    (www / "acme-tool-1.0.0-rebuilt.tar.gz").unlink()
    shutil.copyfile(www / "acme-tool-1.0.0.tar.gz", www / "copy.tar.gz")
    assert build_index(www).versions == 1


def test_build_refuses_a_bad_bundle_an_index_outside_and_an_empty_folder(
    www: Path, tmp_path: Path
) -> None:
    publish(www, "acme.tool")
    with pytest.raises(SourceError, match="must be in the folder of the bundles or above it"):
        build_index(www, tmp_path / "other" / "index.json")
    (www / "broken.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(BundleError, match=r"broken\.tar\.gz: is not a valid \.tar\.gz"):
        build_index(www)
    assert not (www / "index.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="holds no bundles"):
        build_index(empty)
    # An index above the bundles' folder names them by their path below it.
    (www / "broken.tar.gz").unlink()
    report = build_index(www, tmp_path)
    assert report.path == tmp_path / "index.json"
    doc = json.loads(report.path.read_bytes())
    assert doc["plugins"]["acme.tool"][0]["url"] == "www/acme-tool-1.0.0.tar.gz"


# ---------------------------------------------------------------- install by name


def test_install_by_name_resolves_from_the_index_and_downloads_only_the_chosen(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish_set(www)
    build_index(www)
    outcome = store(home, f"{server.url}/index.json").install(["acme.left"])
    assert [(c.action, c.id, c.version, c.source) for c in outcome.changes] == [
        ("install", "acme.left", "1.1.0", f"{server.url}/acme-left-1.1.0.tar.gz"),
        ("install", "acme.shared", "1.0.0", f"{server.url}/acme-shared-1.0.0.tar.gz"),
    ]
    assert installed(home) == {"acme.left": "1.1.0", "acme.shared": "1.0.0"}
    # One request for the index, one per bundle; nothing else.
    assert sorted(server.paths()) == [
        "/acme-left-1.1.0.tar.gz",
        "/acme-shared-1.0.0.tar.gz",
        "/index.json",
    ]
    receipt = json.loads((home / "receipts" / "acme.left-1.1.0.json").read_bytes())
    assert receipt["source"] == f"{server.url}/acme-left-1.1.0.tar.gz"
    assert (
        receipt["bundle_sha256"]
        == hashlib.sha256((www / "acme-left-1.1.0.tar.gz").read_bytes()).hexdigest()
    )


def test_ranges_and_exact_versions_from_the_index(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish_set(www)
    build_index(www)
    url = f"{server.url}/index.json"
    store(home, url).install(["acme.left@1.0.0"])
    assert installed(home) == {"acme.left": "1.0.0", "acme.shared": "1.0.0"}
    outcome = store(home, url).install(["acme.shared>=2,<3", "acme.right"], force=True)
    assert installed(home)["acme.shared"] == "2.0.0"
    assert outcome.warnings == [
        "acme.left 1.0.0 needs acme.shared >=1.0.0,<2.0.0, not acme.shared 2.0.0"
    ]
    with pytest.raises(ResolutionError, match=r"only acme\.left 1\.0\.0, 1\.1\.0 are installed"):
        store(home, url).install(["acme.left>=2"])


def test_many_bundles_download_in_parallel_over_few_connections(
    home: Path, www: Path, server: IndexServer
) -> None:
    deps = {}
    for n in range(12):
        publish(www, f"acme.p{n:02d}", "1.0.0", text=f"X = {n}\n" * 200)
        deps[f"acme.p{n:02d}"] = ">=1.0.0"
    publish(www, "acme.all", "1.0.0", deps)
    build_index(www)
    seen: list[tuple[str, int, int]] = []
    threads: set[str] = set()

    def progress(what: str, done: int, total: int) -> None:
        seen.append((what, done, total))
        threads.add(threading.current_thread().name)

    source = open_source(
        f"{server.url}/index.json",
        cache=home / "cache",
        limits=Limits(),
        offline=False,
        progress=progress,
    )
    Store(home, sources=[source]).install(["acme.all"])
    assert len(installed(home)) == 13
    assert len(server.log) == 14  # the index and 13 bundles
    assert server.connections() <= IndexSource.workers  # connections were reused
    total = sum(p.stat().st_size for p in www.glob("*.tar.gz"))
    downloads = [s for s in seen if s[0] == "downloading 13 bundle(s)"]
    assert downloads[-1][1:] == (total, total)
    assert any(name.startswith("plugbay-download") for name in threads)


def test_a_sharded_index_fetches_the_root_and_only_the_shards_it_needs(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish_set(www)
    for n in range(20):
        publish(www, f"other.p{n:02d}")
    build_index(www, sharded=True)
    store(home, f"{server.url}/index.json").install(["acme.left"])
    assert installed(home) == {"acme.left": "1.1.0", "acme.shared": "1.0.0"}
    assert sorted(server.paths()) == [
        "/acme-left-1.1.0.tar.gz",
        "/acme-shared-1.0.0.tar.gz",
        "/index.json",
        "/index/acme.left.json",
        "/index/acme.shared.json",
    ]


def test_an_index_is_revalidated_with_its_etag(home: Path, www: Path, server: IndexServer) -> None:
    publish_set(www)
    build_index(www)
    url = f"{server.url}/index.json"
    store(home, url).install(["acme.right"])
    first = [e for e in server.log if e.path == "/index.json"]
    assert [(e.if_none_match, e.status) for e in first] == [(None, 200)]
    store(home, url).install(["acme.left"], force=True)
    second = [e for e in server.log if e.path == "/index.json"][1:]
    assert [e.status for e in second] == [304]
    assert second[0].if_none_match is not None
    # A changed index is fetched again, and the new version is seen.
    publish(www, "acme.right", "1.5.0", {"acme.shared": ">=1.0.0"})
    build_index(www)
    store(home, url).install(["acme.right>=1.5"])
    third = [e for e in server.log if e.path == "/index.json"][2:]
    assert [e.status for e in third] == [200]
    assert installed(home)["acme.right"] == "1.5.0"


def test_file_urls_and_plain_paths_work_too(home: Path, www: Path, tmp_path: Path) -> None:
    publish_set(www)
    build_index(www)
    store(home, (www / "index.json").as_uri()).install(["acme.left"])
    assert installed(home) == {"acme.left": "1.1.0", "acme.shared": "1.0.0"}
    other = tmp_path / "home2"
    build_index(www, sharded=True)
    outcome = store(other, str(www / "index.json"), offline=True).install(["acme.right"])
    assert outcome.changes[0].source == str(www / "acme-right-1.0.0.tar.gz")
    assert installed(other) == {"acme.right": "1.0.0", "acme.shared": "2.0.0"}


# ---------------------------------------------------------------- offline and cache


def test_offline_installs_from_the_cached_index_and_downloads(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish_set(www)
    build_index(www)
    url = f"{server.url}/index.json"
    store(home, url).install(["acme.left"])
    Store(home).remove(["acme.left", "acme.shared"])
    count = len(server.log)
    store(home, url, offline=True).install(["acme.left"])
    assert installed(home) == {"acme.left": "1.1.0", "acme.shared": "1.0.0"}
    assert len(server.log) == count  # not one request
    # What was never fetched cannot be had offline.
    with pytest.raises(SourceError, match="is not in the download cache, and --offline forbids"):
        store(home, url, offline=True).install(["acme.right"])
    with pytest.raises(SourceError, match="is not cached, and --offline forbids fetching it"):
        store(home, f"{server.url}/other.json", offline=True).install(["acme.right"])
    assert len(server.log) == count


def test_an_unreachable_server_with_a_cached_index_uses_the_cache_and_warns(
    home: Path, www: Path, tmp_path: Path
) -> None:
    publish_set(www)
    build_index(www)
    with serve(www) as running:
        url = f"{running.url}/index.json"
        store(home, url).install(["acme.left"])
    Store(home).remove(["acme.left", "acme.shared"])
    outcome = store(home, url).install(["acme.left"])  # the server is gone
    assert installed(home) == {"acme.left": "1.1.0", "acme.shared": "1.0.0"}
    assert len(outcome.warnings) == 1
    assert outcome.warnings[0].startswith(f"{url} cannot be reached (cannot connect to ")
    assert "using the copy cached on " in outcome.warnings[0]
    # Without a cached copy, it says so.
    other = tmp_path / "home2"
    with pytest.raises(SourceError) as info:
        store(other, url).install(["acme.left"])
    assert str(info.value).startswith(f"{url}: cannot be reached: cannot connect to ")
    assert "no cached copy of it to use instead" in str(info.value)
    assert not (other / "plugins").exists()


# ---------------------------------------------------------------- bad indexes


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "is not a valid plugbay index: is not JSON (JSON is malformed"),
        (b"[]", "is not a valid plugbay index: expected `object`, got `array`"),
        (b'{"format": 1}', 'has neither "plugins" (a flat index) nor "shards"'),
        (
            b'{"format": 1, "plugins": {"acme.left": [{"id": "acme.left"}]}}',
            "is not a valid plugbay index at plugins['acme.left'][0]: object missing required "
            "field `version`",
        ),
        (b'{"format": 2, "whatever": []}', "is index format 2; this plugbay reads format 1 "),
        (b'{"format": 7, "plugins": {}}', "(upgrade plugbay to read it)"),
    ],
)
def test_a_malformed_index_is_refused_saying_where(
    home: Path, www: Path, server: IndexServer, body: bytes, expected: str
) -> None:
    (www / "index.json").write_bytes(body)
    url = f"{server.url}/index.json"
    with pytest.raises(SourceError) as info:
        store(home, url).install(["acme.left"])
    assert str(info.value).startswith(f"{url}: ")
    assert expected in str(info.value)
    if b"acme.left" not in body:  # a document that does not decode is not cached
        assert not (home / "cache" / "index").exists()


def test_an_entry_at_odds_with_its_manifest_or_hash_form_is_refused(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish(www, "acme.left", "1.0.0")
    build_index(www)
    doc = json.loads((www / "index.json").read_bytes())
    entry = doc["plugins"]["acme.left"][0]
    url = f"{server.url}/index.json"
    for field, value, expected in [
        (
            "dependencies",
            {"acme.x": "*"},
            "dependencies is {'acme.x': '*'} but its manifest says {}",
        ),
        ("sha256", "abc", "at plugins['acme.left'][0].sha256: 'abc' is not a sha256"),
        ("version", "1.0", "at plugins['acme.left'][0].version: '1.0' is not a valid version"),
    ]:
        (www / "index.json").write_text(
            json.dumps({**doc, "plugins": {"acme.left": [{**entry, field: value}]}})
        )
        with pytest.raises(SourceError) as info:
            store(home, url).install(["acme.left"])
        assert expected in str(info.value)


@pytest.mark.parametrize(
    "bundle_url",
    [
        "http://127.0.0.2:9/acme-left-1.0.0.tar.gz",
        "https://{host}/acme-left-1.0.0.tar.gz",
        "../acme-left-1.0.0.tar.gz",
        "sub/%2e%2e/%2e%2e/acme-left-1.0.0.tar.gz",
        "//evil.test/acme-left-1.0.0.tar.gz",
    ],
)
def test_an_index_pointing_outside_its_folder_is_refused(
    home: Path, www: Path, server: IndexServer, bundle_url: str
) -> None:
    site = www / "site"
    site.mkdir()
    publish(site, "acme.left")
    build_index(site)
    doc = json.loads((site / "index.json").read_bytes())
    host = server.url.removeprefix("http://")
    doc["plugins"]["acme.left"][0]["url"] = bundle_url.format(host=host)
    (site / "index.json").write_text(json.dumps(doc))
    url = f"{server.url}/site/index.json"
    with pytest.raises(SourceError) as info:
        store(home, url).install(["acme.left"])
    text = str(info.value)
    assert text.startswith(f"{url}: names a bundle outside the index's folder (")
    assert f"an index may only point under {server.url}/site/, and is refused" in text
    assert server.paths() == ["/site/index.json"]  # no bundle was asked for
    assert state(home) == {}


def test_a_shard_outside_the_folder_is_refused(home: Path, www: Path, server: IndexServer) -> None:
    (www / "index.json").write_text(
        json.dumps({"format": 1, "shards": {"acme.left": "http://127.0.0.2/acme.left.json"}})
    )
    with pytest.raises(SourceError, match="names a shard outside the index's folder"):
        store(home, f"{server.url}/index.json").install(["acme.left"])


def test_a_bundle_whose_hash_differs_from_the_index_is_refused(
    home: Path, www: Path, server: IndexServer, tmp_path: Path
) -> None:
    publish_set(www)
    build_index(www)
    # Rebuilt with other code after the index was built: same name, other bytes.
    other = publish(tmp_path / "later", "acme.shared", "1.0.0", text="X = 666\n")
    shutil.copyfile(other, www / "acme-shared-1.0.0.tar.gz")
    before = state(home)
    with pytest.raises(BundleError) as info:
        store(home, f"{server.url}/index.json").install(["acme.left"])
    text = str(info.value)
    assert text.startswith(f"{server.url}/acme-shared-1.0.0.tar.gz: differs from what the index ")
    assert "it changed after the index was built, or was tampered with, and is refused" in text
    assert state(home) == before
    assert not (home / "cache" / "downloads").exists() or not any(
        hashlib.sha256(p.read_bytes()).hexdigest() == hashlib.sha256(other.read_bytes()).hexdigest()
        for p in (home / "cache" / "downloads").iterdir()
    )


# ---------------------------------------------------------------- faults


def test_a_stalling_server_times_out_with_a_clear_error(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish_set(www)
    build_index(www)
    server.fail_always("/acme-shared-1.0.0.tar.gz", "stall")
    before = state(home)
    with pytest.raises(SourceError) as info:
        store(home, f"{server.url}/index.json", timeout=0.5).install(["acme.left"])
    assert str(info.value) == (
        f"{server.url}/acme-shared-1.0.0.tar.gz: cannot be downloaded: no answer within 0.5 s"
    )
    assert state(home) == before
    assert server.paths().count("/acme-shared-1.0.0.tar.gz") == 1  # a stall is not retried


def test_a_500_then_success_is_retried(home: Path, www: Path, server: IndexServer) -> None:
    publish_set(www)
    build_index(www)
    server.fail("/index.json", 503)
    server.fail("/acme-shared-1.0.0.tar.gz", 500, 502)
    store(home, f"{server.url}/index.json").install(["acme.left"])
    assert installed(home) == {"acme.left": "1.1.0", "acme.shared": "1.0.0"}
    statuses = [(e.path, e.status) for e in server.log if e.path != "/acme-left-1.1.0.tar.gz"]
    assert statuses == [
        ("/index.json", 503),
        ("/index.json", 200),
        ("/acme-shared-1.0.0.tar.gz", 500),
        ("/acme-shared-1.0.0.tar.gz", 502),
        ("/acme-shared-1.0.0.tar.gz", 200),
    ]


def test_a_500_every_time_is_a_clear_error_and_nothing_is_installed(
    home: Path, www: Path, server: IndexServer
) -> None:
    publish_set(www)
    build_index(www)
    store(home, f"{server.url}/index.json").install(["acme.right"])
    server.fail_always("/acme-left-1.1.0.tar.gz", 500)
    before = state(home)
    with pytest.raises(SourceError) as info:
        store(home, f"{server.url}/index.json").install(["acme.left"], force=True)
    assert str(info.value) == (
        f"{server.url}/acme-left-1.1.0.tar.gz: cannot be downloaded: the server answered "
        "500 Internal Server Error (3 attempts)"
    )
    assert state(home) == before
    # The index itself failing every time, with no cache: a clear error too.
    server.fail_always("/other.json", 500)
    with pytest.raises(
        SourceError, match=r"cannot be reached: the server answered 500 .*3 attempts"
    ):
        store(home, f"{server.url}/other.json").install(["acme.left"])


def test_a_connection_cut_mid_download_is_retried_then_a_clear_error(
    home: Path, www: Path, server: IndexServer, tmp_path: Path
) -> None:
    publish_set(www)
    build_index(www)
    server.fail("/acme-left-1.1.0.tar.gz", "cut")
    store(home, f"{server.url}/index.json").install(["acme.left"])
    assert installed(home) == {"acme.left": "1.1.0", "acme.shared": "1.0.0"}
    assert server.paths().count("/acme-left-1.1.0.tar.gz") == 2
    other = tmp_path / "home2"
    other.mkdir()
    server.fail_always("/acme-right-1.0.0.tar.gz", "cut")
    with pytest.raises(SourceError) as info:
        store(other, f"{server.url}/index.json").install(["acme.right"])
    text = str(info.value)
    assert text.startswith(f"{server.url}/acme-right-1.0.0.tar.gz: cannot be downloaded: ")
    assert "the connection was cut" in text
    assert text.endswith("(3 attempts)")
    assert state(other) == {}


def test_not_found_names_the_closest_ids(home: Path, www: Path, server: IndexServer) -> None:
    publish_set(www)
    build_index(www)
    with pytest.raises(ResolutionError) as info:
        store(home, f"{server.url}/index.json").install(["acme.lefty"])
    assert str(info.value) == (
        "you asked for acme.lefty, but no version of acme.lefty is installed or available"
        f" — acme.lefty is in no index ({server.url}/index.json); "
        "closest names: acme.left, acme.right"
    )


def test_several_indexes_first_wins_for_a_version_and_all_versions_count(
    home: Path, www: Path, server: IndexServer, tmp_path: Path
) -> None:
    first, second = www / "first", www / "second"
    publish(first, "acme.tool", "1.0.0", text="FIRST = 1\n")
    publish(second, "acme.tool", "1.0.0", text="SECOND = 1\n")
    publish(second, "acme.tool", "2.0.0")
    build_index(first)
    build_index(second)
    (home / "config.toml").write_text(
        f'[[index]]\nname = "first"\nurl = "{server.url}/first/index.json"\n'
        f'[[index]]\nname = "second"\nurl = "{server.url}/second/index.json"\n'
    )
    sources = index_sources(home, offline=False)
    assert [getattr(s, "label", None) for s in sources] == ["first", "second"]
    outcome = Store(home, sources=sources).install(["acme.tool@1.0.0"])
    assert outcome.changes[0].source == f"{server.url}/first/acme-tool-1.0.0.tar.gz"
    code = (home / "plugins" / "acme" / "tool" / "1.0.0" / "p" / "__init__.py").read_text()
    assert code == "FIRST = 1\n"
    outcome = Store(home, sources=index_sources(home, offline=False)).install(["acme.tool>=2"])
    assert outcome.changes[0].source == f"{server.url}/second/acme-tool-2.0.0.tar.gz"
    # --index URLs come before the configured ones.
    other = tmp_path / "home2"
    other.mkdir()
    shutil.copyfile(home / "config.toml", other / "config.toml")
    sources = index_sources(other, [f"{server.url}/second/index.json"], offline=False)
    assert [getattr(s, "label", None) for s in sources] == [
        f"{server.url}/second/index.json",
        "first",
    ]
    outcome = Store(other, sources=sources).install(["acme.tool@1.0.0"])
    assert outcome.changes[0].source == f"{server.url}/second/acme-tool-1.0.0.tar.gz"


# ---------------------------------------------------------------- signatures


def test_signatures_of_index_bundles_are_checked_by_the_trust_policy(
    home: Path, www: Path, server: IndexServer, tmp_path: Path
) -> None:
    key, public = make_key(tmp_path, "acme")
    stranger, _ = make_key(tmp_path, "stranger")
    publish(www, "acme.good", key=key)
    publish(www, "acme.bad", key=stranger)
    build_index(www)
    doc = json.loads((www / "index.json").read_bytes())
    assert doc["plugins"]["acme.good"][0]["signer"] == key.id
    trust(home, public, "acme")
    policy(home, "require-signatures = true")
    url = f"{server.url}/index.json"
    before = state(home)
    with pytest.raises(TrustError, match=rf"is signed by key {stranger.id}, which is not trusted"):
        store(home, url).install(["acme.bad"])
    assert state(home) == before
    store(home, url).install(["acme.good"])
    receipt = json.loads((home / "receipts" / "acme.good-1.0.0.json").read_bytes())
    assert receipt["signer"] == key.id


# ---------------------------------------------------------------- config


def _config(raw: Mapping[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(raw, "config.toml")
    return info.value


def test_index_tables_in_config() -> None:
    config = config_from_mapping(
        {"index": [{"name": "acme", "url": "https://x.test/index.json", "timeout": 5}]}
    )
    assert [(i.name, i.url, i.timeout) for i in config.index] == [
        ("acme", "https://x.test/index.json", 5)
    ]
    assert str(_config({"index": {"name": "a", "url": "u"}})) == (
        'config.toml: index: expected [[index]] tables (double brackets), each with name = "…" '
        'and url = "…"'
    )
    assert "index[0].url: missing: every [[index]] needs a name" in str(
        _config({"index": [{"name": "a"}]})
    )
    assert "index[0].urls: unknown key 'urls'; did you mean \"url\"?" in str(
        _config({"index": [{"name": "a", "urls": "x"}]})
    )
    assert "index[0].url: 'ftp://x/index.json': expected an http(s)://, file:// or oci://" in str(
        _config({"index": [{"name": "a", "url": "ftp://x/index.json"}]})
    )
    assert "index[1].name: 'a' is the name of index[0] too" in str(
        _config({"index": [{"name": "a", "url": "x"}, {"name": "a", "url": "y"}]})
    )
    assert "index[0].timeout: 0: expected a number of seconds > 0" in str(
        _config({"index": [{"name": "a", "url": "x", "timeout": 0}]})
    )


def test_open_source_refuses_what_is_not_an_index_url(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not an index URL"):
        open_source("ftp://x.test/index.json", cache=tmp_path, limits=Limits(), offline=False)
