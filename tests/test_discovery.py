"""Discovery: search paths, both layouts, the cache, entry points, shadowing, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Recorder, write_plugin
from plugbay import Host
from plugbay.discovery import Catalog, PluginRecord, SearchPath, discover
from plugbay.manifest import manifest_from_mapping

GROUP = "testapp.plugins"


# ---------------------------------------------------------------- helpers


class Remover(Recorder):
    """Deletes ``victim`` when the first plugin folder is found, as a concurrent `remove` would."""

    def __init__(self, victim: Path) -> None:
        super().__init__()
        self.victim = victim

    def folder_found(self, path: str) -> None:
        super().folder_found(path)
        if self.victim.exists():
            shutil.rmtree(self.victim)


def paths(*roots: Path) -> list[SearchPath]:
    """Search paths in the given order, lowest precedence first."""
    return [SearchPath("api", root, i + 1) for i, root in enumerate(roots)]


def backdate(*roots: Path, seconds: float = 10.0, recursive: bool = True) -> None:
    """Set the mtime of ``roots`` (and, if ``recursive``, all they hold) to ``seconds`` ago.

    Discovery does not trust entries modified within 2 s of the scan (their mtime could
    still move without changing); backdating makes a test independent of that window.
    Different ``seconds`` give different mtimes, which is what a real edit produces.
    """
    stamp = time.time() - seconds
    for root in roots:
        targets = [root]
        if recursive and root.is_dir() and not root.is_symlink():
            targets += list(root.rglob("*"))
        for target in targets:
            os.utime(target, (stamp, stamp), follow_symlinks=False)


def keys(catalog: Catalog) -> list[str]:
    return [r.key for r in catalog.records]


def codes(catalog: Catalog) -> list[str]:
    return [p.code for p in catalog.problems]


def write_manifest(folder: Path, file_name: str, plugin_id: str, version: str = "1.0.0") -> Path:
    """Write a minimal manifest for ``plugin_id`` in the format ``file_name`` asks for."""
    namespace, _, name = plugin_id.rpartition(".")
    folder.mkdir(parents=True, exist_ok=True)
    if file_name.endswith(".toml"):
        text = f'schema = 1\n[plugin]\nnamespace = "{namespace}"\nname = "{name}"\n'
        text += f'version = "{version}"\n'
    elif file_name.endswith(".json"):
        plugin = {"namespace": namespace, "name": name, "version": version}
        text = json.dumps({"schema": 1, "plugin": plugin})
    else:
        text = f"schema: 1\nplugin:\n  namespace: {namespace}\n  name: {name}\n"
        text += f'  version: "{version}"\n'
    path = folder / file_name
    path.write_text(text)
    return path


def replace_active(name_dir: Path, version: str) -> None:
    """Switch the active version the way `plugbay use` does: write aside, rename over."""
    tmp = name_dir / ".active.tmp"
    tmp.write_text(version)
    os.replace(tmp, name_dir / "active")


# ---------------------------------------------------------------- layouts


def test_hand_placed_plugin_is_found(plugins_dir: Path) -> None:
    folder = write_plugin(plugins_dir, "acme.hello", "1.2.3")

    catalog = discover(paths(plugins_dir))

    [record] = catalog.records
    assert (record.id, record.version, record.active, record.shadowed) == (
        "acme.hello",
        "1.2.3",
        True,
        False,
    )
    assert record.path == str(folder)
    assert record.manifest_path == str(folder / "plugin.toml")
    assert (record.origin, record.precedence) == ("api", 1)
    assert catalog.problems == ()


def test_installed_layout_marks_the_active_version(plugins_dir: Path) -> None:
    write_plugin(plugins_dir, "acme.tool", "1.0.0", layout="installed")
    write_plugin(plugins_dir, "acme.tool", "2.0.0", layout="installed", active=False)
    write_plugin(plugins_dir, "acme.tool", "1.5.0", layout="installed", active=False)

    catalog = discover(paths(plugins_dir))

    active = {r.version: r.active for r in catalog.versions("acme.tool")}
    assert active == {"1.0.0": True, "1.5.0": False, "2.0.0": False}
    preferred = catalog.preferred("acme.tool")
    assert preferred is not None
    assert preferred.version == "1.0.0"  # the active one, though not the highest
    assert preferred.path == str(plugins_dir / "acme" / "tool" / "1.0.0")
    assert catalog.problems == ()


def test_installed_layout_without_active_file_prefers_the_highest(plugins_dir: Path) -> None:
    write_plugin(plugins_dir, "acme.tool", "1.0.0", layout="installed", active=False)
    write_plugin(plugins_dir, "acme.tool", "1.10.0", layout="installed", active=False)
    write_plugin(plugins_dir, "acme.tool", "1.9.0", layout="installed", active=False)

    catalog = discover(paths(plugins_dir))

    assert all(r.active for r in catalog.records)
    preferred = catalog.preferred("acme.tool")
    assert preferred is not None
    assert preferred.version == "1.10.0"  # SemVer order, not text order


def test_active_file_naming_a_missing_version_is_reported(plugins_dir: Path) -> None:
    write_plugin(plugins_dir, "acme.tool", "1.0.0", layout="installed", active=False)
    (plugins_dir / "acme" / "tool" / "active").write_text("3.0.0\n")

    catalog = discover(paths(plugins_dir))

    assert keys(catalog) == ["acme.tool@1.0.0"]
    [problem] = catalog.problems
    assert problem.code == "plugin.active-missing"
    assert "3.0.0" in problem.message
    assert "plugbay use acme.tool@1.0.0" in problem.message


def test_both_layouts_side_by_side(plugins_dir: Path) -> None:
    write_plugin(plugins_dir, "solo")
    write_plugin(plugins_dir, "acme.hand")
    write_plugin(plugins_dir, "acme.inst", "0.1.0", layout="installed")
    write_plugin(plugins_dir, "bare", "0.2.0", layout="installed")

    catalog = discover(paths(plugins_dir))

    assert sorted(keys(catalog)) == [
        "acme.hand@1.0.0",
        "acme.inst@0.1.0",
        "bare@0.2.0",
        "solo@1.0.0",
    ]
    assert catalog.ids() == ["acme.hand", "acme.inst", "bare", "solo"]
    assert catalog.problems == ()


@pytest.mark.parametrize(
    "file_name", ["plugin.toml", "plugin.yaml", "plugin.yml", "plugin.json", "collection.yml"]
)
@pytest.mark.parametrize("layout", ["folder", "installed"])
def test_every_manifest_file_name_is_found(plugins_dir: Path, file_name: str, layout: str) -> None:
    folder = plugins_dir / "x" if layout == "folder" else plugins_dir / "acme" / "fmt" / "2.1.0"
    manifest = write_manifest(folder, file_name, "acme.fmt", "2.1.0")

    catalog = discover(paths(plugins_dir))

    [record] = catalog.records
    assert (record.key, record.manifest_path) == ("acme.fmt@2.1.0", str(manifest))
    assert catalog.problems == ()


def test_plugin_toml_is_preferred_over_other_manifest_names(plugins_dir: Path) -> None:
    folder = plugins_dir / "both"
    write_manifest(folder, "plugin.json", "acme.both", "1.0.0")
    write_manifest(folder, "plugin.toml", "acme.both", "2.0.0")

    catalog = discover(paths(plugins_dir))

    assert keys(catalog) == ["acme.both@2.0.0"]


def test_plugin_folders_are_leaves_and_hidden_folders_are_skipped(plugins_dir: Path) -> None:
    outer = write_plugin(plugins_dir, "acme.outer")
    write_plugin(outer / "examples", "acme.example")  # inside a plugin: not a plugin
    write_plugin(plugins_dir / ".trash", "acme.old")
    write_plugin(plugins_dir / "__pycache__", "acme.cached")
    write_plugin(plugins_dir / "a" / "b" / "c", "acme.deep")  # four levels down

    catalog = discover(paths(plugins_dir))

    assert keys(catalog) == ["acme.outer@1.0.0"]


def test_discovery_imports_no_plugin_code(plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "acme.loud",
        entry="acme_loud_never_imported:Plugin",
        code={"acme_loud_never_imported.py": "raise SystemExit('imported!')\n"},
    )

    catalog = discover(paths(plugins_dir))

    assert keys(catalog) == ["acme.loud@1.0.0"]
    assert "acme_loud_never_imported" not in sys.modules


def test_builtin_records_are_part_of_the_catalog(plugins_dir: Path) -> None:
    manifest = manifest_from_mapping({"plugin": {"name": "core", "version": "1.0.0"}})
    builtin = PluginRecord(manifest, "<code>", "<code>", "builtin", 0)

    catalog = discover(paths(plugins_dir), builtins=[builtin])

    assert catalog.records == (builtin,)


# ---------------------------------------------------------------- search paths and shadowing


def test_higher_precedence_copy_shadows_lower_ones(tmp_path: Path) -> None:
    user, project = tmp_path / "user", tmp_path / "project"
    write_plugin(user, "acme.tool", "2.0.0", layout="installed")
    write_plugin(user, "acme.tool", "2.1.0", layout="installed", active=False)
    write_plugin(user, "acme.only_user")
    write_plugin(project, "acme.tool", "1.0.0")
    sps = [SearchPath("user", user, 1), SearchPath("project", project, 2)]

    catalog = discover(sps)

    shadowed = {r.key: r.shadowed for r in catalog.records}
    assert shadowed == {
        "acme.tool@2.0.0": True,
        "acme.tool@2.1.0": True,
        "acme.only_user@1.0.0": False,
        "acme.tool@1.0.0": False,
    }
    # The higher-precedence copy wins even though it is older.
    assert [r.key for r in catalog.versions("acme.tool")] == ["acme.tool@1.0.0"]
    assert len(catalog.versions("acme.tool", include_shadowed=True)) == 3
    preferred = catalog.preferred("acme.tool")
    assert preferred is not None
    assert preferred.origin == "project"
    infos = [p for p in catalog.problems if p.code == "plugin.shadowed"]
    assert [p.severity for p in infos] == ["info", "info"]
    assert {p.path for p in infos} == {
        str(user / "acme" / "tool" / "2.0.0"),
        str(user / "acme" / "tool" / "2.1.0"),
    }
    for p in infos:
        assert p.plugin_id == "acme.tool"
        assert f"project path {project}" in p.message
        assert "(user," in p.message
    assert catalog.search_paths == tuple(sps)


def test_search_paths_shadow_builtins(plugins_dir: Path) -> None:
    manifest = manifest_from_mapping(
        {"plugin": {"namespace": "acme", "name": "core", "version": "9.0.0"}}
    )
    builtin = PluginRecord(manifest, "<code>", "<code>", "builtin", 0)
    write_plugin(plugins_dir, "acme.core", "1.0.0")

    catalog = discover(paths(plugins_dir), builtins=[builtin])

    assert {r.origin: r.shadowed for r in catalog.records} == {"builtin": True, "api": False}
    [problem] = catalog.problems
    assert problem.code == "plugin.shadowed"
    assert "acme.core@9.0.0 (builtin, <code>)" in problem.message


def test_missing_search_path_is_not_a_problem(tmp_path: Path, plugins_dir: Path) -> None:
    write_plugin(plugins_dir, "acme.a")

    catalog = discover(paths(tmp_path / "nowhere", plugins_dir))

    assert keys(catalog) == ["acme.a@1.0.0"]
    assert catalog.problems == ()


def test_host_search_paths_in_precedence_order(tmp_path: Path, home: Path) -> None:
    (home / "config.toml").write_text('paths = ["extra", "/abs/config-path"]\n')
    api = tmp_path / "api"
    host = Host(
        "testapp",
        home=home,
        paths=[api],
        system_path=tmp_path / "system",
        project_path=tmp_path / "project",
        entry_points=False,
    )

    got = [(sp.origin, sp.path, sp.precedence) for sp in host.search_paths()]

    assert got == [
        ("system", tmp_path / "system", 1),
        ("user", home / "plugins", 2),
        ("project", tmp_path / "project", 3),
        ("config", home / "extra", 4),
        ("config", Path("/abs/config-path"), 5),
        ("api", api, 6),
    ]


def test_app_home_variable_sets_the_user_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_home = tmp_path / "env-home"
    monkeypatch.setenv("TESTAPP_HOME", str(env_home))

    from_env = Host("testapp", system_path=tmp_path / "s", project_path=tmp_path / "p")
    explicit = Host("testapp", home=tmp_path / "arg", system_path=tmp_path / "s")

    assert [sp.path for sp in from_env.search_paths() if sp.origin == "user"] == [
        env_home / "plugins"
    ]
    assert [sp.path for sp in explicit.search_paths() if sp.origin == "user"] == [
        tmp_path / "arg" / "plugins"
    ]


def test_host_discovers_and_shadows_across_its_paths(
    tmp_path: Path, home: Path, make_host: Callable[..., Host]
) -> None:
    system = tmp_path / "no-system"
    project = tmp_path / "no-project"
    write_plugin(system, "acme.a", "1.0.0")
    write_plugin(home / "plugins", "acme.a", "2.0.0", layout="installed")
    write_plugin(home / "plugins", "acme.b", "1.0.0")
    write_plugin(project, "acme.b", "1.1.0")
    api = tmp_path / "api"
    write_plugin(api, "acme.c")
    host = make_host(api)

    catalog = host.discover()

    winners = {r.id: (r.version, r.origin) for r in catalog.records if not r.shadowed}
    assert winners == {
        "acme.a": ("2.0.0", "user"),
        "acme.b": ("1.1.0", "project"),
        "acme.c": ("1.0.0", "api"),
    }
    assert sorted((r.key, r.origin) for r in catalog.records if r.shadowed) == [
        ("acme.a@1.0.0", "system"),
        ("acme.b@1.0.0", "user"),
    ]
    assert (home / "cache" / "discovery.msgpack").is_file()


# ---------------------------------------------------------------- the cache


@pytest.fixture
def tree(plugins_dir: Path) -> Path:
    """Three plugins in both layouts, old enough for the cache to trust them."""
    write_plugin(plugins_dir, "acme.hand")
    write_plugin(plugins_dir, "acme.inst", "1.0.0", layout="installed")
    write_plugin(plugins_dir, "acme.inst", "2.0.0", layout="installed", active=False)
    write_plugin(plugins_dir, "solo", extra='description = "alone"')
    backdate(plugins_dir)
    return plugins_dir


def test_warm_run_parses_nothing_and_gives_the_same_catalog(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "discovery.msgpack"
    cold, warm = Recorder(), Recorder()

    first = discover(paths(tree), cache_path=cache, reporter=cold)
    written = cache.stat()
    second = discover(paths(tree), cache_path=cache, reporter=warm)

    assert len(cold.parsed) == 4
    assert warm.parsed == []
    assert sorted(warm.found) == sorted(cold.found)
    assert second == first
    assert second.records[0].manifest == first.records[0].manifest
    # Nothing changed, so the cache file was not rewritten either.
    assert (cache.stat().st_mtime_ns, cache.stat().st_ino) == (written.st_mtime_ns, written.st_ino)


def test_warm_run_keeps_problems(tree: Path, tmp_path: Path) -> None:
    bad = tree / "broken"
    bad.mkdir()
    (bad / "plugin.toml").write_text("[plugin\n")
    (tree / "acme.hand" / "loop").symlink_to(tree / "acme.hand")  # inside a plugin: ignored
    backdate(tree)
    cache = tmp_path / "cache.msgpack"

    first = discover(paths(tree), cache_path=cache)
    written = cache.stat().st_mtime_ns
    warm = Recorder()
    second = discover(paths(tree), cache_path=cache, reporter=warm)

    assert warm.parsed == []
    assert codes(first) == ["manifest.invalid"]
    assert second == first
    assert cache.stat().st_mtime_ns == written


def test_changed_manifest_is_parsed_again(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.msgpack"
    discover(paths(tree), cache_path=cache)
    manifest = tree / "acme.hand" / "plugin.toml"
    # Same size, other content, other mtime: the cache must not be fooled by the size.
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.0.1"'))
    backdate(manifest, seconds=5)
    reporter = Recorder()

    catalog = discover(paths(tree), cache_path=cache, reporter=reporter)

    assert reporter.parsed == [str(manifest)]
    assert "acme.hand@1.0.1" in keys(catalog)
    assert discover(paths(tree), cache_path=cache) == catalog


def test_changed_size_with_same_mtime_is_parsed_again(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.msgpack"
    discover(paths(tree), cache_path=cache)
    manifest = tree / "solo" / "plugin.toml"
    before = manifest.stat()
    manifest.write_text(manifest.read_text().replace("alone", "all alone"))
    os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))
    reporter = Recorder()

    catalog = discover(paths(tree), cache_path=cache, reporter=reporter)

    assert reporter.parsed == [str(manifest)]
    [solo] = [r for r in catalog.records if r.id == "solo"]
    assert solo.manifest.plugin.description == "all alone"


def test_recently_modified_manifest_is_not_trusted(plugins_dir: Path, tmp_path: Path) -> None:
    write_plugin(plugins_dir, "acme.fresh")
    # Dated a little ahead, so the scan sees it inside the racy window however slow it is.
    backdate(plugins_dir, seconds=-60)
    cache = tmp_path / "cache.msgpack"
    discover(paths(plugins_dir), cache_path=cache)
    again = Recorder()

    discover(paths(plugins_dir), cache_path=cache, reporter=again)
    backdate(plugins_dir)
    settled, warm = Recorder(), Recorder()
    discover(paths(plugins_dir), cache_path=cache, reporter=settled)
    discover(paths(plugins_dir), cache_path=cache, reporter=warm)

    assert len(again.parsed) == 1  # it may still change within its mtime: read again
    assert len(settled.parsed) == 1  # its mtime moved (backdated): read again
    assert warm.parsed == []


def test_new_and_removed_plugin_folders_are_noticed(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.msgpack"
    discover(paths(tree), cache_path=cache)
    new = write_plugin(tree, "acme.new")
    shutil.rmtree(tree / "solo")
    backdate(new, seconds=5)
    backdate(tree, seconds=5, recursive=False)  # the listing changed, and so did its mtime
    reporter = Recorder()

    catalog = discover(paths(tree), cache_path=cache, reporter=reporter)

    assert reporter.parsed == [str(new / "plugin.toml")]
    assert sorted(keys(catalog)) == [
        "acme.hand@1.0.0",
        "acme.inst@1.0.0",
        "acme.inst@2.0.0",
        "acme.new@1.0.0",
    ]
    assert catalog == discover(paths(tree))  # what a cold run finds


def test_new_version_and_active_switch_are_noticed(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.msgpack"
    discover(paths(tree), cache_path=cache)
    name_dir = tree / "acme" / "inst"
    new = write_plugin(tree, "acme.inst", "3.0.0", layout="installed", active=False)
    replace_active(name_dir, "3.0.0")
    backdate(new, name_dir / "active", seconds=5)
    backdate(name_dir, seconds=5, recursive=False)
    reporter = Recorder()

    catalog = discover(paths(tree), cache_path=cache, reporter=reporter)

    assert reporter.parsed == [str(name_dir / "3.0.0" / "plugin.toml")]
    active = {r.version: r.active for r in catalog.versions("acme.inst")}
    assert active == {"1.0.0": False, "2.0.0": False, "3.0.0": True}
    assert catalog == discover(paths(tree))


def test_active_switch_alone_is_noticed(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.msgpack"
    discover(paths(tree), cache_path=cache)
    name_dir = tree / "acme" / "inst"
    replace_active(name_dir, "2.0.0")
    backdate(name_dir / "active", seconds=5)
    backdate(name_dir, seconds=5, recursive=False)
    reporter = Recorder()

    catalog = discover(paths(tree), cache_path=cache, reporter=reporter)

    assert reporter.parsed == []
    preferred = catalog.preferred("acme.inst")
    assert preferred is not None
    assert preferred.version == "2.0.0"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"\x00garbage\xff" * 10, id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"\x81\xa6format\x63", id="foreign"),
    ],
)
def test_damaged_cache_is_ignored_and_rebuilt(
    tree: Path, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    cache = tmp_path / "cache.msgpack"
    first = discover(paths(tree), cache_path=cache)
    cache.write_bytes(damage(cache.read_bytes()))
    rebuilt, warm = Recorder(), Recorder()

    second = discover(paths(tree), cache_path=cache, reporter=rebuilt)
    third = discover(paths(tree), cache_path=cache, reporter=warm)

    assert second == first == third
    assert len(rebuilt.parsed) == 4
    assert warm.parsed == []


def test_unwritable_cache_location_still_discovers(tree: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = blocker / "cache" / "discovery.msgpack"

    first = discover(paths(tree), cache_path=cache)
    second = discover(paths(tree), cache_path=cache)

    assert first == second == discover(paths(tree))
    assert len(first.records) == 4
    assert blocker.read_text().startswith("a file")


def test_cache_path_that_is_a_folder_still_discovers(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.msgpack"
    cache.mkdir()

    catalog = discover(paths(tree), cache_path=cache)

    assert len(catalog.records) == 4
    assert list(cache.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.msgpack", "plugins"]  # no litter


def test_read_only_cache_folder_still_discovers(tree: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    cache = folder / "discovery.msgpack"
    discover(paths(tree), cache_path=cache)
    later = write_plugin(tree, "acme.later")
    backdate(later, seconds=5)
    backdate(tree, seconds=5, recursive=False)
    folder.chmod(0o555)
    try:
        catalog = discover(paths(tree), cache_path=cache)
    finally:
        folder.chmod(0o755)

    assert "acme.later@1.0.0" in keys(catalog)


# ---------------------------------------------------------------- entry points


def write_dist(site: Path, dist: str, entries: dict[str, str], group: str = GROUP) -> Path:
    """A distribution's ``.dist-info`` holding only ``entry_points.txt`` (no METADATA)."""
    info = site / f"{dist}.dist-info"
    info.mkdir(parents=True)
    lines = [f"[{group}]", *(f"{name} = {value}" for name, value in entries.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return info


def discover_builtins(site: Path, cache: Path, reporter: Recorder | None = None) -> Catalog:
    """Discover only the entry-point plugins of ``site``, with a cache."""
    return discover(
        [], entry_point_group=GROUP, path_entries=[str(site)], cache_path=cache, reporter=reporter
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A fake site-packages folder."""
    path = tmp_path / "site"
    path.mkdir()
    return path


def test_entry_point_becomes_a_builtin(site: Path) -> None:
    write_dist(site, "foo-1.2", {"acme.foo": "foo_pkg.plugin:Plugin"})
    write_dist(site, "other-1.0.0", {"acme.other": "other:Plugin"}, group="otherapp.plugins")

    catalog = discover([], entry_point_group=GROUP, path_entries=[str(site)])

    [record] = catalog.records
    assert (record.key, record.origin, record.precedence) == ("acme.foo@1.2.0", "builtin", 0)
    assert record.manifest.plugin.entry == "foo_pkg.plugin:Plugin"
    assert record.path == str(site / "foo_pkg")
    assert "entry_points.txt" in record.manifest_path
    assert catalog.problems == ()
    assert "foo_pkg" not in sys.modules


def test_entry_point_uses_the_manifest_in_its_package(site: Path) -> None:
    write_dist(site, "foo-1.2", {"acme.foo": "foo_pkg.plugin:Plugin"})
    manifest = write_manifest(site / "foo_pkg", "plugin.toml", "acme.foo", "1.2.0")
    manifest.write_text(manifest.read_text() + 'description = "from the package"\n')

    catalog = discover([], entry_point_group=GROUP, path_entries=[str(site)])

    [record] = catalog.records
    assert record.manifest.plugin.description == "from the package"
    assert record.manifest_path == str(site / "foo_pkg" / "plugin.toml")


def test_entry_point_versions_from_python_versions(site: Path) -> None:
    write_dist(site, "a-2", {"acme.a": "a:Plugin"})
    write_dist(site, "b-1.2.3", {"acme.b": "b:Plugin"})
    write_dist(site, "c-2.0rc1", {"acme.c": "c:Plugin"})
    write_dist(site, "d-1.0.post2", {"acme.d": "d:Plugin"})
    write_dist(site, "e-1.0.dev3", {"acme.e": "e:Plugin"})
    write_dist(site, "f-1.2.3.4", {"acme.f": "f:Plugin"})

    catalog = discover([], entry_point_group=GROUP, path_entries=[str(site)])

    assert catalog.problems == ()
    assert {r.id: r.version for r in catalog.records} == {
        "acme.a": "2.0.0",
        "acme.b": "1.2.3",
        "acme.c": "2.0.0-rc.1",
        "acme.d": "1.0.0+post.2",
        "acme.e": "1.0.0-dev.3",
        "acme.f": "1.2.3+4",
    }


def test_first_path_entry_wins_for_one_entry_point_name(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_dist(first, "foo-2.0", {"acme.foo": "foo:Plugin"})
    write_dist(second, "foo-1.0", {"acme.foo": "foo:Plugin"})

    catalog = discover([], entry_point_group=GROUP, path_entries=[str(first), str(second)])

    assert keys(catalog) == ["acme.foo@2.0.0"]


def test_bad_entry_point_is_a_problem_and_others_load(site: Path) -> None:
    write_dist(site, "bad-1.0", {"Bad Name!": "bad:Plugin"})
    write_dist(site, "good-1.0", {"acme.good": "good:Plugin"})
    write_dist(site, "broken-1.0", {"acme.broken": "broken_pkg:Plugin"})
    (site / "broken_pkg").mkdir()
    (site / "broken_pkg" / "plugin.toml").write_text("[plugin]\nname = 3\n")

    catalog = discover([], entry_point_group=GROUP, path_entries=[str(site), str(site / "nope")])

    assert keys(catalog) == ["acme.good@1.0.0"]
    assert codes(catalog) == ["manifest.invalid", "manifest.invalid"]
    assert any("broken_pkg" in (p.path or "") for p in catalog.problems)


def test_broken_entry_points_file_is_a_problem_and_others_load(site: Path) -> None:
    write_dist(site, "good-1.0", {"acme.good": "good:Plugin"})
    bad = site / "bad-1.0.dist-info" / "entry_points.txt"
    bad.parent.mkdir()
    bad.write_text(f"[{GROUP}]\nno equals sign here\n")
    binary = site / "bin-1.0.dist-info" / "entry_points.txt"
    binary.parent.mkdir()
    binary.write_bytes(b"\xff\xfe[x]\n")
    unrelated = site / "other-1.0.dist-info" / "entry_points.txt"
    unrelated.parent.mkdir()
    unrelated.write_text("[console_scripts]\nbroken line\n")  # not our group: not our business

    catalog = discover([], entry_point_group=GROUP, path_entries=[str(site)])

    assert keys(catalog) == ["acme.good@1.0.0"]
    assert [(p.severity, p.code, p.path) for p in catalog.problems] == [
        ("warning", "entry-points.invalid", str(bad)),
        ("warning", "entry-points.invalid", str(binary)),
    ]
    assert "is not 'name = module:attr'" in catalog.problems[0].message
    assert "is not UTF-8 text" in catalog.problems[1].message


def test_entry_points_are_cached_until_the_site_folder_changes(site: Path, tmp_path: Path) -> None:
    write_dist(site, "foo-1.2", {"acme.foo": "foo_pkg.plugin:Plugin"})
    backdate(site)
    cache = tmp_path / "cache.msgpack"
    cold, warm, changed = Recorder(), Recorder(), Recorder()

    first = discover_builtins(site, cache, cold)
    second = discover_builtins(site, cache, warm)
    backdate(write_dist(site, "bar-3.0.0", {"acme.bar": "bar:Plugin"}), seconds=5)
    backdate(site, seconds=5, recursive=False)
    third = discover_builtins(site, cache, changed)
    shutil.rmtree(site / "foo-1.2.dist-info")
    backdate(site, seconds=3, recursive=False)
    fourth = discover_builtins(site, cache)

    assert len(cold.parsed) == 1
    assert warm.parsed == []
    assert second == first
    assert len(changed.parsed) == 2  # the whole site folder is read again
    assert sorted(keys(third)) == ["acme.bar@3.0.0", "acme.foo@1.2.0"]
    assert keys(fourth) == ["acme.bar@3.0.0"]


def test_entry_point_package_manifest_edit_is_noticed(site: Path, tmp_path: Path) -> None:
    write_dist(site, "foo-1.2", {"acme.foo": "foo_pkg.plugin:Plugin"})
    write_manifest(site / "foo_pkg", "plugin.toml", "acme.foo", "1.2.0")
    backdate(site)
    cache = tmp_path / "cache.msgpack"
    discover_builtins(site, cache)
    manifest = site / "foo_pkg" / "plugin.toml"
    manifest.write_text(manifest.read_text() + 'description = "edited"\n')
    backdate(manifest, seconds=5)

    catalog = discover_builtins(site, cache)

    [record] = catalog.records
    assert record.manifest.plugin.description == "edited"


def test_entry_points_on_the_host_are_found_and_shadowed(
    site: Path, plugins_dir: Path, make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dist(site, "foo-1.2", {"acme.foo": "foo_pkg:Plugin"})
    write_plugin(plugins_dir, "acme.foo", "2.0.0")
    monkeypatch.syspath_prepend(str(site))
    host = make_host(plugins_dir, entry_points=True)

    catalog = host.discover()

    found = {(r.key, r.origin, r.shadowed) for r in catalog.records if r.id == "acme.foo"}
    assert found == {("acme.foo@1.2.0", "builtin", True), ("acme.foo@2.0.0", "api", False)}


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("file_name", "text", "expected"),
    [
        ("plugin.toml", "[plugin\nname = 'x'\n", "is not valid TOML"),
        ("plugin.yaml", "plugin: [unclosed\n", "is not valid YAML"),
        ("plugin.json", '{"plugin": ', "is not valid JSON"),
        ("plugin.toml", "[plugin]\nname = 'bad'\n", "plugin.version: is required"),
        ("plugin.toml", b"\xff\xfe[plugin]", "is not UTF-8"),
    ],
)
def test_bad_manifest_is_a_problem_and_others_are_found(
    plugins_dir: Path, file_name: str, text: str | bytes, expected: str
) -> None:
    write_plugin(plugins_dir, "acme.good")
    bad = plugins_dir / "acme.bad"
    bad.mkdir()
    data = text if isinstance(text, bytes) else text.encode()
    (bad / file_name).write_bytes(data)
    write_plugin(plugins_dir, "acme.zlast")

    catalog = discover(paths(plugins_dir))

    assert keys(catalog) == ["acme.good@1.0.0", "acme.zlast@1.0.0"]
    [problem] = catalog.problems
    assert (problem.severity, problem.code) == ("error", "manifest.invalid")
    assert problem.path == str(bad / file_name)
    assert str(bad / file_name) in problem.message
    assert expected in problem.message
    assert "Traceback" not in problem.message


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Iterator[Path]:
    """A folder an unprivileged user can enter (pytest's own temp folders are private)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="plugbay-test-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


_AS_NOBODY = """
import json, os, sys, tempfile
from pathlib import Path
from plugbay.discovery import SearchPath, discover

# Warm up while privileged: nobody cannot read this interpreter's standard library, so
# every module discovery imports on first use (parsers, codecs) is imported now.
with tempfile.TemporaryDirectory() as warm:
    for name, text in [
        ("plugin.toml", "[plugin]\\nname = 'a'\\nversion = '1.0.0'\\n"),
        ("plugin.yaml", "plugin: {name: b, version: 1.0.0}\\n"),
        ("plugin.json", '{"plugin": {"name": "c", "version": "1.0.0"}}'),
    ]:
        os.mkdir(os.path.join(warm, name))
        with open(os.path.join(warm, name, name), "w") as f:
            f.write(text)
    assert len(discover([SearchPath("api", Path(warm), 1)]).records) == 3

if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
root, cache = sys.argv[1], sys.argv[2]
catalog = discover([SearchPath("api", Path(root), 1)], cache_path=Path(cache))
print(json.dumps({
    "keys": [r.key for r in catalog.records],
    "problems": [[p.code, p.path, p.message] for p in catalog.problems],
}))
"""


@dataclass
class Seen:
    """What an unprivileged discovery found: record keys, and problems by path."""

    keys: list[str]
    problems: dict[str, tuple[str, str]]  # path → (code, message)


def discover_unprivileged(root: Path, cache: Path) -> Seen:
    """Discover as a user that permissions apply to: in-process, or as nobody when root.

    As root, ``chmod 000`` does not stop reads, so the scan runs in a child process that
    first drops to uid 65534.
    """
    if os.geteuid() != 0:
        catalog = discover(paths(root), cache_path=cache)
        found = {
            "keys": keys(catalog),
            "problems": [[p.code, p.path, p.message] for p in catalog.problems],
        }
    else:
        script = root.parent / "as_nobody.py"
        script.write_text(textwrap.dedent(_AS_NOBODY))
        done = subprocess.run(
            [sys.executable, str(script), str(root), str(cache)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
    problems = {path: (code, message) for code, path, message in found["problems"]}
    assert len(problems) == len(found["problems"])
    return Seen(found["keys"], problems)


@pytest.mark.parametrize("locked_installed", ["acme", "acme/inst", "acme/inst/1.0.0"])
def test_unreadable_folders_are_problems_and_others_are_found(
    shared_tmp: Path, locked_installed: str
) -> None:
    root = shared_tmp / "plugins"
    cache_dir = shared_tmp / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    write_plugin(root, "acme.good")
    locked = write_plugin(root, "acme.locked")
    write_plugin(root, "acme.inst", layout="installed")
    locked_ns = root / locked_installed
    secret = write_plugin(root, "acme.secret") / "plugin.toml"
    write_plugin(root, "acme.zlast")
    backdate(root)
    cache = cache_dir / "discovery.msgpack"

    try:
        secret.chmod(0)
        cold = discover_unprivileged(root, cache)
        locked.chmod(0)
        locked_ns.chmod(0)
        blocked = discover_unprivileged(root, cache)  # locked after they were cached
        blocked_again = discover_unprivileged(root, cache)
    finally:
        locked.chmod(0o755)
        locked_ns.chmod(0o755)
        secret.chmod(0o644)
    repaired = discover_unprivileged(root, cache)  # nothing changed but permissions

    assert cold.keys == [
        "acme.inst@1.0.0",
        "acme.good@1.0.0",
        "acme.locked@1.0.0",
        "acme.zlast@1.0.0",
    ]
    assert cold.problems == {
        str(secret): ("manifest.invalid", f"{secret}: cannot be read: Permission denied")
    }
    assert blocked.keys == ["acme.good@1.0.0", "acme.zlast@1.0.0"]
    assert blocked_again == blocked
    assert set(blocked.problems) == {str(locked), str(locked_ns), str(secret)}
    assert blocked.problems[str(locked)] == (
        "folder.unreadable",
        f"{locked} cannot be read (Permission denied); its plugins are skipped"
        " — fix its permissions",
    )
    assert blocked.problems[str(locked_ns)][0] == "folder.unreadable"
    assert sorted(repaired.keys) == sorted([*cold.keys, "acme.secret@1.0.0"])
    assert repaired.problems == {}


def test_symlink_loops_are_problems_not_recursion(plugins_dir: Path, tmp_path: Path) -> None:
    write_plugin(plugins_dir, "acme.good")
    write_plugin(plugins_dir, "acme.inst", layout="installed")
    (plugins_dir / "up").symlink_to(plugins_dir)  # a link to the folder holding it
    (plugins_dir / "acme" / "back").symlink_to("..")  # relative, to its grandparent
    (plugins_dir / "self").symlink_to(plugins_dir / "self")  # refers to itself
    (plugins_dir / "dangling").symlink_to(plugins_dir / "gone")
    backdate(plugins_dir)
    cache = tmp_path / "cache.msgpack"
    warm = Recorder()

    catalog = discover(paths(plugins_dir), cache_path=cache)

    assert discover(paths(plugins_dir), cache_path=cache, reporter=warm) == catalog
    assert warm.parsed == []

    assert keys(catalog) == ["acme.inst@1.0.0", "acme.good@1.0.0"]
    loops = {p.path: p for p in catalog.problems if p.code == "folder.symlink-loop"}
    assert set(loops) == {
        str(plugins_dir / "up"),
        str(plugins_dir / "acme" / "back"),
        str(plugins_dir / "self"),
    }
    assert all(p.severity == "warning" for p in loops.values())
    assert "permissions" not in loops[str(plugins_dir / "self")].message
    assert len(catalog.problems) == 3  # a dangling link is simply not a plugin


def test_symlinked_plugin_folder_is_found(plugins_dir: Path, tmp_path: Path) -> None:
    elsewhere = write_plugin(tmp_path / "elsewhere", "acme.linked")
    (plugins_dir / "acme.linked").symlink_to(elsewhere)
    (plugins_dir / "again").symlink_to(elsewhere)

    catalog = discover(paths(plugins_dir))

    assert keys(catalog) == ["acme.linked@1.0.0"]
    [problem] = catalog.problems
    assert problem.code == "plugin.duplicate"  # two links to one folder, not a loop


@pytest.mark.parametrize("cached", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("victim", ["acme.c", "acme.a"], ids=["later", "itself"])
def test_plugin_folder_removed_during_discovery(
    plugins_dir: Path, tmp_path: Path, cached: bool, victim: str
) -> None:
    for pid in ("acme.a", "acme.b", "acme.c"):
        write_plugin(plugins_dir, pid)
    backdate(plugins_dir)
    cache = tmp_path / "cache.msgpack"
    if cached:
        discover(paths(plugins_dir), cache_path=cache)

    reporter = Remover(plugins_dir / victim)
    catalog = discover(paths(plugins_dir), cache_path=cache, reporter=reporter)

    assert not (plugins_dir / victim).exists()
    expected = {"acme.a@1.0.0", "acme.b@1.0.0", "acme.c@1.0.0"} - {f"{victim}@1.0.0"}
    assert expected <= set(keys(catalog))
    assert catalog.problems == ()
    backdate(plugins_dir, seconds=5)
    assert sorted(keys(discover(paths(plugins_dir), cache_path=cache))) == sorted(expected)


def test_search_path_that_is_a_file(tmp_path: Path, plugins_dir: Path) -> None:
    not_a_folder = tmp_path / "plugins.txt"
    not_a_folder.write_text("")
    write_plugin(plugins_dir, "acme.a")

    catalog = discover(paths(not_a_folder, plugins_dir))

    assert keys(catalog) == ["acme.a@1.0.0"]
    [problem] = catalog.problems
    assert (problem.severity, problem.code, problem.path) == (
        "warning",
        "search-path.not-a-folder",
        str(not_a_folder),
    )


def test_duplicate_id_and_version_in_one_search_path(plugins_dir: Path) -> None:
    first = write_plugin(plugins_dir / "one", "acme.dup")
    second = write_plugin(plugins_dir / "two", "acme.dup")
    write_plugin(plugins_dir, "acme.dup", "2.0.0")  # another version is not a duplicate

    catalog = discover(paths(plugins_dir))

    assert [r.path for r in catalog.records if r.version == "1.0.0"] == [str(first)]
    assert len(catalog.versions("acme.dup")) == 2
    [problem] = catalog.problems
    assert (problem.severity, problem.code, problem.plugin_id) == (
        "warning",
        "plugin.duplicate",
        "acme.dup",
    )
    assert str(first) in problem.message
    assert str(second) in problem.message
    assert "remove one" in problem.message


def test_same_plugin_in_two_search_paths_is_shadowing_not_duplicate(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_plugin(a, "acme.x")
    write_plugin(b, "acme.x")

    catalog = discover(paths(a, b))

    assert codes(catalog) == ["plugin.shadowed"]


def test_many_problems_do_not_hide_good_plugins(plugins_dir: Path, tmp_path: Path) -> None:
    write_plugin(plugins_dir, "acme.good")
    (plugins_dir / "bad").mkdir()
    (plugins_dir / "bad" / "plugin.json").write_text("[]")
    (plugins_dir / "loop").symlink_to(plugins_dir)
    (plugins_dir / "file.toml").write_text("not a folder, not a plugin")
    afile = tmp_path / "afile"
    afile.write_text("")

    catalog = discover(paths(afile, plugins_dir, tmp_path / "missing"))

    assert keys(catalog) == ["acme.good@1.0.0"]
    assert sorted(codes(catalog)) == [
        "folder.symlink-loop",
        "manifest.invalid",
        "search-path.not-a-folder",
    ]


# ---------------------------------------------------------------- store-installed plugins


def _installed_by_store(root: Path, plugin_id: str, version: str) -> Path:
    """A version folder as ``plugbay install`` leaves it (MANIFEST.json, FILES.json)."""
    from plugbay.store.bundle import bundle_metadata

    folder = write_plugin(root, plugin_id, version, layout="installed")
    _, manifest_json, files_json, _ = bundle_metadata(folder)
    (folder / "MANIFEST.json").write_bytes(manifest_json)
    (folder / "FILES.json").write_bytes(files_json)
    return folder


def _bump_generation(root: Path) -> None:
    """What every store change does: a new .generation file with new random content."""
    tmp = root / ".generation.tmp"
    tmp.write_text(os.urandom(8).hex())
    os.replace(tmp, root / ".generation")


def _age(root: Path, seconds: int = 60) -> None:
    when = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
    os.utime(root, (when, when))


def test_store_installed_plugins_are_taken_from_the_cache_while_the_stamp_holds(
    tmp_path: Path,
) -> None:
    root = tmp_path / "plugins"
    folder = _installed_by_store(root, "acme.one", "1.0.0")
    _installed_by_store(root, "acme.two", "2.0.0")
    _bump_generation(root)
    _age(root)
    cache = tmp_path / "cache.msgpack"
    sp = [SearchPath("user", root, 1)]
    first = discover(sp, cache_path=cache)
    assert sorted(r.key for r in first.records) == ["acme.one@1.0.0", "acme.two@2.0.0"]

    # An edit inside an installed version, behind the store's back, is not looked for ...
    # (installed versions are described by their MANIFEST.json)
    described = folder / "MANIFEST.json"

    def set_version(version: str) -> None:
        doc = json.loads(described.read_text())
        doc["manifest"]["plugin"]["version"] = version
        described.write_text(json.dumps(doc))

    set_version("1.0.1")
    counter = Recorder()
    warm = discover(sp, cache_path=cache, reporter=counter)
    assert counter.parsed == []
    assert sorted(r.key for r in warm.records) == ["acme.one@1.0.0", "acme.two@2.0.0"]
    # ... but a thorough scan (plugbay doctor) checks every file,
    thorough = discover(sp, cache_path=cache, trust_store=False)
    assert "acme.one@1.0.1" in {r.key for r in thorough.records}
    # and so does the next discovery after any store change.
    set_version("1.0.2")
    _bump_generation(root)
    after = discover(sp, cache_path=cache)
    assert "acme.one@1.0.2" in {r.key for r in after.records}


def test_a_stamp_rewritten_in_place_at_the_same_time_is_noticed(tmp_path: Path) -> None:
    """The stamp is its content: a file system that reuses the inode within the same
    timestamp tick cannot make an old stamp look current (decision 0004)."""
    root = tmp_path / "plugins"
    folder = _installed_by_store(root, "acme.one", "1.0.0")
    _bump_generation(root)
    _age(root)
    cache = tmp_path / "cache.msgpack"
    sp = [SearchPath("user", root, 1)]
    discover(sp, cache_path=cache)
    assert discover(sp, cache_path=cache).fingerprint is not None  # from its snapshot

    described = folder / "MANIFEST.json"
    doc = json.loads(described.read_text())
    doc["manifest"]["plugin"]["version"] = "1.0.1"
    described.write_text(json.dumps(doc))
    stamp = root / ".generation"
    before = stamp.stat()
    stamp.write_text(os.urandom(8).hex())  # same inode, same size
    os.utime(stamp, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (stamp.stat().st_ino, stamp.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    assert [r.key for r in discover(sp, cache_path=cache).records] == ["acme.one@1.0.1"]


def test_a_folder_added_beside_installed_plugins_is_noticed(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    _installed_by_store(root, "acme.one", "1.0.0")
    _bump_generation(root)
    _age(root)
    cache = tmp_path / "cache.msgpack"
    sp = [SearchPath("user", root, 1)]
    assert [r.key for r in discover(sp, cache_path=cache).records] == ["acme.one@1.0.0"]
    write_plugin(root, "acme.hand", "0.1.0")  # hand-placed: the top folder's mtime moves
    found = discover(sp, cache_path=cache)
    assert sorted(r.key for r in found.records) == ["acme.hand@0.1.0", "acme.one@1.0.0"]
    # A hand-placed plugin means no snapshot: an edit to it is seen on the next run.
    _age(root)
    discover(sp, cache_path=cache)
    hand = root / "acme.hand" / "plugin.toml"
    hand.write_text(hand.read_text().replace('"0.1.0"', '"0.2.0"'))
    assert "acme.hand@0.2.0" in {r.key for r in discover(sp, cache_path=cache).records}


def test_a_catalog_answered_from_the_cache_has_a_fingerprint(tmp_path: Path) -> None:
    """The fingerprint names a catalog that discovery took wholly from its cache, and
    changes with anything that changes the catalog (see plugbay.plan.plan_with_cache)."""
    root = tmp_path / "plugins"
    _installed_by_store(root, "acme.one", "1.0.0")
    _bump_generation(root)
    _age(root)
    cache = tmp_path / "cache.msgpack"
    sp = [SearchPath("user", root, 1), SearchPath("project", tmp_path / "absent", 2)]
    assert discover(sp, cache_path=cache).fingerprint is None  # read from disk
    warm = discover(sp, cache_path=cache)
    assert warm.fingerprint is not None
    assert discover(sp, cache_path=cache).fingerprint == warm.fingerprint
    # Search paths ranked otherwise: another fingerprint. Without the cache, or thorough
    # (which reads every file, so the next run does too): none.
    other = [SearchPath("user", root, 3), SearchPath("project", tmp_path / "absent", 2)]
    assert discover(other, cache_path=cache).fingerprint not in (None, warm.fingerprint)
    assert discover(sp).fingerprint is None
    assert discover(sp, cache_path=cache, trust_store=False).fingerprint is None
    discover(sp, cache_path=cache)
    assert discover(sp, cache_path=cache).fingerprint == warm.fingerprint
    # A store change: read from disk, then a new fingerprint once its snapshot is kept.
    _installed_by_store(root, "acme.two", "1.0.0")
    _bump_generation(root)
    _age(root)
    assert discover(sp, cache_path=cache).fingerprint is None
    assert discover(sp, cache_path=cache).fingerprint not in (None, warm.fingerprint)
    # A search path that appears: read from disk.
    (tmp_path / "absent").mkdir()
    assert discover(sp, cache_path=cache).fingerprint is None
    # A hand-placed plugin: never a snapshot, never a fingerprint.
    write_plugin(root, "acme.hand", "0.1.0")
    _age(root)
    discover(sp, cache_path=cache)
    assert discover(sp, cache_path=cache).fingerprint is None
