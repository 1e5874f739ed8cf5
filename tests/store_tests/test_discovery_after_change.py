"""After a store change, discovery's cache already describes the plugins folder.

Every change the store commits (install, remove, use) brings discovery's cache of the
home's plugins folder up to date under the home's lock, so that the next start (a host,
``plugbay list``) reads no manifest again, without waiting for the change's files to
age (decision 0004). What else the cache holds stays; hand-placed plugins are still
checked as before.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import Recorder, write_plugin
from plugbay import Host
from plugbay.discovery import Catalog
from plugbay.store import Store


def host(home: Path, tmp_path: Path, reporter: Recorder | None = None) -> Host:
    """A host of ``home`` with no entry points and its other search paths in ``tmp_path``."""
    return Host(
        "testapp",
        home=home,
        entry_points=False,
        system_path=tmp_path / "system",
        project_path=tmp_path / "project",
        reporter=reporter,
    )


def start(home: Path, tmp_path: Path) -> tuple[Catalog, Recorder]:
    """A host's discovery in ``home``, and what it read from disk."""
    recorder = Recorder()
    return host(home, tmp_path, recorder).discover(), recorder


def active_keys(catalog: Catalog) -> list[str]:
    return sorted(r.key for r in catalog.records if r.active)


def age(*roots: Path, seconds: int = 60) -> None:
    when = time.time() - seconds
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
        os.utime(root, (when, when))


def test_the_next_start_after_each_change_reads_no_manifest(home: Path, tmp_path: Path) -> None:
    sources = tmp_path / "src"
    store = Store(home)
    store.install(
        [
            str(write_plugin(sources / "one-1", "acme.one", "1.0.0")),
            str(write_plugin(sources / "two-1", "acme.two", "1.0.0")),
        ]
    )
    catalog, read = start(home, tmp_path)
    assert active_keys(catalog) == ["acme.one@1.0.0", "acme.two@1.0.0"]
    assert (read.found, read.parsed) == ([], [])
    assert catalog.fingerprint is not None  # wholly from the cache: the plan cache works too

    store.install([str(write_plugin(sources / "one-2", "acme.one", "2.0.0"))])
    catalog, read = start(home, tmp_path)
    assert active_keys(catalog) == ["acme.one@2.0.0", "acme.two@1.0.0"]
    assert sorted(r.key for r in catalog.records) == [
        "acme.one@1.0.0",
        "acme.one@2.0.0",
        "acme.two@1.0.0",
    ]
    assert (read.found, read.parsed) == ([], [])

    store.use("acme.one", "1.0.0")
    catalog, read = start(home, tmp_path)
    assert active_keys(catalog) == ["acme.one@1.0.0", "acme.two@1.0.0"]
    assert (read.found, read.parsed) == ([], [])

    store.remove(["acme.two"])
    catalog, read = start(home, tmp_path)
    assert sorted(r.key for r in catalog.records) == ["acme.one@1.0.0", "acme.one@2.0.0"]
    assert (read.found, read.parsed) == ([], [])
    # What the cache says is what a thorough look at every file says.
    thorough = host(home, tmp_path).discover(thorough=True)
    assert thorough.records == catalog.records


def test_other_search_paths_keep_their_cache(home: Path, tmp_path: Path) -> None:
    write_plugin(tmp_path / "project", "acme.local", "0.1.0")
    age(tmp_path / "project")
    start(home, tmp_path)  # the project folder's plugin is read and cached
    Store(home).install([str(write_plugin(tmp_path / "src", "acme.one", "1.0.0"))])

    catalog, read = start(home, tmp_path)
    assert sorted(r.key for r in catalog.records) == ["acme.local@0.1.0", "acme.one@1.0.0"]
    assert read.parsed == []  # neither the project's manifest nor the store's


def test_a_hand_placed_plugin_beside_the_store_is_still_checked(home: Path, tmp_path: Path) -> None:
    """The store vouches for what it installed only: a hand-placed plugin folder in the
    plugins folder, edited within one timestamp tick of the change, is still noticed."""
    hand = write_plugin(home / "plugins", "acme.hand", "0.1.0") / "plugin.toml"
    Store(home).install([str(write_plugin(tmp_path / "src", "acme.one", "1.0.0"))])
    before = hand.stat()
    # The same size and, as far as the file system can tell, the same time.
    hand.write_text(hand.read_text().replace('"0.1.0"', '"0.2.0"'))
    os.utime(hand, ns=(before.st_atime_ns, before.st_mtime_ns))

    catalog, read = start(home, tmp_path)
    assert sorted(r.key for r in catalog.records) == ["acme.hand@0.2.0", "acme.one@1.0.0"]
    assert str(hand) in read.parsed


def test_a_home_whose_cache_cannot_be_written_still_installs(home: Path, tmp_path: Path) -> None:
    (home / "cache").write_text("a file where the cache folder would be\n")
    Store(home).install([str(write_plugin(tmp_path / "src", "acme.one", "1.0.0"))])

    catalog, _ = start(home, tmp_path)
    assert active_keys(catalog) == ["acme.one@1.0.0"]
