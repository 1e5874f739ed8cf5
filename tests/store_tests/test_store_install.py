"""The store: install with resolution, side-by-side versions, use, remove, enable/disable.

Through the :class:`~plugbay.store.Store` API and through the real ``plugbay`` command.
Plugins come from folders written on disk; an index is stood in for by ``FolderIndex``, a
fake of plugbay's own ``Source`` protocol built from real bundles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import home_snapshot as snapshot
from conftest import ok, run_plugbay, write_plugin
from conftest import one_error as failed
from plugbay.errors import ResolutionError, SourceError, StoreError
from plugbay.store import Store, build_bundle, read_bundle
from plugbay.store.bundle import ReadBundle
from plugbay.store.sources import Candidate

CODE = {"acme_code/__init__.py": "class Plugin:\n    pass\n"}


# ---------------------------------------------------------------- helpers


plugbay = run_plugbay


def active(home: Path, plugin_id: str) -> str | None:
    namespace, _, name = plugin_id.rpartition(".")
    path = home / "plugins" / namespace / name / "active"
    return path.read_text() if path.exists() else None


def versions(home: Path, plugin_id: str) -> list[str]:
    namespace, _, name = plugin_id.rpartition(".")
    base = home / "plugins" / namespace / name
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []


def listed(home: Path) -> dict[str, dict[str, Any]]:
    """``plugbay list --json``, by id: what discovery makes of the installed home."""
    doc = json.loads("\n".join(ok(plugbay(home, "list", "--json"))))
    return {p["id"]: p for p in doc["plugins"]}


def summary(changes: Any) -> list[tuple[str, str, str | None]]:
    return [(c.action, c.id, c.version) for c in changes]


class Sources:
    """Plugin folders to install from, written on demand under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self,
        plugin_id: str,
        version: str = "1.0.0",
        dependencies: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> str:
        folder = write_plugin(
            self.root / f"{plugin_id}-{version}",
            plugin_id,
            version,
            dependencies=dependencies,
            **kwargs,
        )
        return str(folder)


@pytest.fixture
def src(tmp_path: Path) -> Sources:
    return Sources(tmp_path / "src")


@pytest.fixture
def left_right(home: Path, src: Sources) -> Store:
    """acme.shared 1.0.0 (active) and 2.0.0 installed; acme.left 1.0.0 needs <2.0.0."""
    store = Store(home)
    store.install([src("acme.shared", "1.0.0")])
    store.install([src("acme.shared", "2.0.0")], activate=False)
    store.install([src("acme.left", "1.0.0", {"acme.shared": "<2.0.0"})])
    assert active(home, "acme.shared") == "1.0.0"
    return store


class FolderIndex:
    """A :class:`~plugbay.store.sources.Source` offering real bundles built from folders.

    It stands in for an index: ``available`` answers from metadata, ``fetch`` hands out
    the bundle and records that it did.
    """

    def __init__(self, folders: list[str], out: Path) -> None:
        self.bundles: dict[str, list[ReadBundle]] = {}
        self.fetched: list[str] = []
        for folder in folders:
            bundle = read_bundle(build_bundle(Path(folder), out))
            self.bundles.setdefault(bundle.id, []).append(bundle)

    def available(self, plugin_id: str) -> list[Candidate]:
        return [
            Candidate(b.id, b.version, b.manifest, f"index {b.id}", self, bundle=b)
            for b in self.bundles.get(plugin_id, [])
        ]

    def fetch(self, candidate: Candidate) -> ReadBundle:
        assert candidate.bundle is not None
        self.fetched.append(candidate.key)
        return candidate.bundle


# ---------------------------------------------------------------- install


def test_install_a_folder_then_list_and_load(home: Path, src: Sources) -> None:
    folder = src("acme.code", "1.0.0", entry="acme_code:Plugin", code=CODE)
    assert ok(plugbay(home, "install", folder)) == [f"install acme.code 1.0.0 from {folder}"]
    assert versions(home, "acme.code") == ["1.0.0"]
    assert active(home, "acme.code") == "1.0.0"
    assert (home / "receipts" / "acme.code-1.0.0.json").is_file()
    plugin = listed(home)["acme.code"]
    assert (plugin["version"], plugin["other_versions"], plugin["state"]) == (
        "1.0.0",
        [],
        "enabled",
    )
    loaded = ok(plugbay(home, "load", "acme.code"))
    assert any("acme.code" in line and "started" in line for line in loaded)


def test_quiet_install_prints_nothing_but_installs(home: Path, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "src", "acme.hush")

    result = plugbay(home, "install", "-q", str(folder))

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (home / "plugins" / "acme" / "hush" / "active").read_text().strip() == "1.0.0"


def test_install_with_dependencies_given_together(home: Path, src: Sources) -> None:
    app = src("acme.app", "1.0.0", {"acme.common": "^1.0"})
    common = src("acme.common", "1.2.0")
    outcome = Store(home).install([app, common])
    assert summary(outcome.changes) == [
        ("install", "acme.app", "1.0.0"),
        ("install", "acme.common", "1.2.0"),
    ]
    assert {pid: p["version"] for pid, p in listed(home).items()} == {
        "acme.app": "1.0.0",
        "acme.common": "1.2.0",
    }


def test_a_missing_dependency_is_named(home: Path, src: Sources) -> None:
    app = src("acme.app", "1.0.0", {"acme.common": "^1.0"})
    assert failed(plugbay(home, "install", app)) == (
        "acme.app 1.0.0 needs acme.common ^1.0, but no version of acme.common is installed"
        " or available"
    )
    assert not (home / "plugins").exists()


def test_dependencies_come_from_a_source_preferring_installed_and_active(
    home: Path, src: Sources, tmp_path: Path
) -> None:
    index = FolderIndex(
        [
            src("acme.common", "1.1.0"),
            src("acme.common", "1.2.0"),
            src("acme.common", "1.3.0"),
            src("acme.common", "2.0.0"),
            src("acme.app", "1.0.0", {"acme.common": "^1.0"}),
            src("acme.other", "1.0.0", {"acme.common": ">=1.0.0"}),
        ],
        tmp_path / "index",
    )
    store = Store(home, sources=[index])
    # Nothing installed: the highest version in range.
    assert summary(store.install(["acme.app"]).changes) == [
        ("install", "acme.app", "1.0.0"),
        ("install", "acme.common", "1.3.0"),
    ]
    store.install(["acme.common@1.1.0"], activate=False)
    store.install(["acme.common@1.2.0"])
    assert (active(home, "acme.common"), versions(home, "acme.common")) == (
        "1.2.0",
        ["1.1.0", "1.2.0", "1.3.0"],
    )
    # acme.other takes any acme.common >=1.0.0: the active 1.2.0 stays, nothing is fetched.
    index.fetched.clear()
    outcome = store.install(["acme.other"])
    assert summary(outcome.changes) == [
        ("keep", "acme.common", "1.2.0"),
        ("install", "acme.other", "1.0.0"),
    ]
    assert index.fetched == ["acme.other@1.0.0"]
    assert active(home, "acme.common") == "1.2.0"


def test_requested_ranges_prefer_what_is_installed(
    home: Path, src: Sources, tmp_path: Path
) -> None:
    index = FolderIndex(
        [src("acme.tools", "1.0.0"), src("acme.tools", "1.5.0")], tmp_path / "index"
    )
    store = Store(home, sources=[index])
    store.install(["acme.tools@1.0.0"])
    assert summary(store.install(["acme.tools>=1.0.0"]).changes) == [
        ("keep", "acme.tools", "1.0.0")
    ]
    assert summary(store.install(["acme.tools>=1.1.0"]).changes) == [
        ("install", "acme.tools", "1.5.0")
    ]
    # An installed, inactive version is switched to rather than fetched again.
    outcome = store.install(["acme.tools:1.0.0"])
    assert summary(outcome.changes) == [("switch", "acme.tools", "1.0.0")]
    assert str(outcome.changes[0]) == "switch acme.tools 1.5.0 → 1.0.0"


def test_reinstalling_the_same_version_needs_force(home: Path, src: Sources) -> None:
    folder = src("acme.tools", "1.0.0")
    store = Store(home)
    store.install([folder])
    before = snapshot(home)
    assert summary(store.install([folder]).changes) == [("keep", "acme.tools", "1.0.0")]
    assert ok(plugbay(home, "install", folder)) == [
        "nothing to install: everything asked for is already in place"
    ]
    assert snapshot(home) == before
    outcome = store.install([folder], force=True)
    assert summary(outcome.changes) == [("reinstall", "acme.tools", "1.0.0")]
    assert versions(home, "acme.tools") == ["1.0.0"]


def test_the_python_api_takes_one_spec_or_id_as_a_string(home: Path, src: Sources) -> None:
    """A string is one spec, not a sequence of one-letter specs."""
    store = Store(home)
    outcome = store.install(src("acme.tools", "1.0.0"))
    assert summary(outcome.changes) == [("install", "acme.tools", "1.0.0")]
    assert [r.id for r in store.verify("acme.tools")] == ["acme.tools"]
    assert summary(store.remove("acme.tools").changes) == [("remove", "acme.tools", "1.0.0")]
    assert versions(home, "acme.tools") == []


def test_two_versions_of_one_plugin_in_one_install(home: Path, src: Sources) -> None:
    one, two = src("acme.tools", "1.0.0"), src("acme.tools", "2.0.0")
    with pytest.raises(SourceError) as info:
        Store(home).install([one, two])
    assert str(info.value) == (
        f"{two}: is acme.tools 2.0.0, and {one} is acme.tools 1.0.0: install one version at a time"
    )
    assert not (home / "plugins").exists()


def test_an_id_nobody_offers(home: Path, left_right: Store) -> None:
    before = snapshot(home)
    assert failed(plugbay(home, "install", "acme.nowhere>=1.0")) == (
        "you asked for acme.nowhere >=1.0, but no version of acme.nowhere is installed or available"
    )
    assert failed(plugbay(home, "install", "--no-deps", "acme.shared@3.0.0")) == (
        "you asked for acme.shared 3.0.0, but only acme.shared 1.0.0, 2.0.0 are installed"
        " or available"
    )
    assert snapshot(home) == before


def test_nothing_to_install(home: Path) -> None:
    with pytest.raises(SourceError, match="nothing to install"):
        Store(home).install([])
    assert failed(plugbay(home, "install")).startswith("install: nothing to install")


def test_progress_is_reported(home: Path, src: Sources) -> None:
    seen: list[tuple[str, int, int]] = []
    Store(home).install(
        [src("acme.a"), src("acme.b")],
        progress=lambda what, n, total: seen.append((what, n, total)),
    )
    assert seen == [
        ("reading", 1, 2),
        ("reading", 2, 2),
        ("installing", 1, 2),
        ("installing", 2, 2),
    ]


# ---------------------------------------------------------------- never break dependents


def test_an_install_that_breaks_a_dependent_is_refused(
    home: Path, left_right: Store, src: Sources
) -> None:
    shared3 = src("acme.shared", "3.0.0")
    before = snapshot(home)
    message = failed(plugbay(home, "install", shared3))
    assert message == (
        f"{shared3} is acme.shared 3.0.0; acme.left 1.0.0 needs acme.shared <2.0.0 "
        "(available: 1.0.0, 2.0.0, 3.0.0) — installed plugins that would break: acme.left "
        "(use --force to install anyway)"
    )
    assert snapshot(home) == before
    with pytest.raises(ResolutionError, match=r"installed plugins that would break: acme\.left"):
        left_right.install([shared3])
    assert snapshot(home) == before


def test_switching_an_installed_dependency_is_refused_too(home: Path, left_right: Store) -> None:
    before = snapshot(home)
    assert failed(plugbay(home, "install", "acme.shared@2.0.0")) == (
        "acme.left 1.0.0 needs acme.shared <2.0.0; you asked for acme.shared 2.0.0 "
        "(available: 1.0.0, 2.0.0) — installed plugins that would break: acme.left "
        "(use --force to install anyway)"
    )
    assert snapshot(home) == before


def test_force_installs_anyway_and_warns(home: Path, left_right: Store, src: Sources) -> None:
    shared3 = src("acme.shared", "3.0.0")
    result = plugbay(home, "install", "--force", shared3)
    assert ok(result) == [f"install acme.shared 3.0.0 from {shared3} (active instead of 1.0.0)"]
    assert (
        result.stderr
        == "warning: acme.left 1.0.0 needs acme.shared <2.0.0, not acme.shared 3.0.0\n"
    )
    assert active(home, "acme.shared") == "3.0.0"
    # What loads is the planner's business: it falls back to an installed version that
    # acme.left accepts, and lists that one.
    plugin = listed(home)["acme.shared"]
    assert (plugin["version"], sorted(plugin["other_versions"])) == ("1.0.0", ["2.0.0", "3.0.0"])
    assert plugin["active"] == "3.0.0"
    assert (
        "  acme.shared: 1.0.0 loads, not the active 3.0.0, which does not fit this host or the "
        "plugins that depend on it"
    ) in ok(plugbay(home, "list"))


def test_no_activate_installs_beside_without_breaking(
    home: Path, left_right: Store, src: Sources
) -> None:
    shared3 = src("acme.shared", "3.0.0")
    assert ok(plugbay(home, "install", "--no-activate", shared3)) == [
        f"install acme.shared 3.0.0 from {shared3} (beside 1.0.0, which stays active)"
    ]
    assert versions(home, "acme.shared") == ["1.0.0", "2.0.0", "3.0.0"]
    assert active(home, "acme.shared") == "1.0.0"
    plugin = listed(home)["acme.shared"]
    assert (plugin["version"], sorted(plugin["other_versions"])) == ("1.0.0", ["2.0.0", "3.0.0"])
    assert plugin["active"] == "1.0.0"
    assert not [line for line in ok(plugbay(home, "list")) if "loads, not the active" in line]


def test_no_activate_still_refuses_a_new_plugin_it_would_leave_broken(
    home: Path, left_right: Store, src: Sources
) -> None:
    right = src("acme.right", "1.0.0", {"acme.shared": ">=2.0.0"})
    before = snapshot(home)
    assert failed(plugbay(home, "install", "--no-activate", right)) == (
        "refusing to install: acme.right 1.0.0 needs acme.shared >=2.0.0, not acme.shared 1.0.0"
        " (use --force to install anyway)"
    )
    assert snapshot(home) == before


def test_a_conflict_names_where_each_constraint_comes_from(
    home: Path, left_right: Store, src: Sources
) -> None:
    left = src("acme.left", "1.0.0", {"acme.shared": "<2.0.0"})
    right = src("acme.right", "1.0.0", {"acme.shared": ">=2.0.0"})
    before = snapshot(home)
    # Both requested: nothing installed would break; the two needs simply disagree.
    assert failed(plugbay(home, "install", left, right)) == (
        "acme.left 1.0.0 needs acme.shared <2.0.0; acme.right 1.0.0 needs acme.shared >=2.0.0"
        " (available: 1.0.0, 2.0.0)"
    )
    # Only acme.right requested: the installed acme.left is what it would break.
    assert failed(plugbay(home, "install", right)) == (
        "acme.left 1.0.0 needs acme.shared <2.0.0; acme.right 1.0.0 needs acme.shared >=2.0.0"
        " (available: 1.0.0, 2.0.0) — installed plugins that would break: acme.left"
        " (use --force to install anyway)"
    )
    assert snapshot(home) == before


def test_upgrading_a_dependency_nobody_pins(home: Path, src: Sources) -> None:
    store = Store(home)
    store.install([src("acme.shared", "1.0.0")])
    right = src("acme.right", "1.0.0", {"acme.shared": ">=2.0.0"})
    shared2 = src("acme.shared", "2.0.0")
    outcome = store.install([right, shared2])
    assert [str(c) for c in outcome.changes] == [
        f"install acme.right 1.0.0 from {right}",
        f"install acme.shared 2.0.0 from {shared2} (active instead of 1.0.0)",
    ]
    assert (active(home, "acme.shared"), versions(home, "acme.shared")) == (
        "2.0.0",
        ["1.0.0", "2.0.0"],
    )


def test_an_already_broken_plugin_does_not_block_other_installs(home: Path, src: Sources) -> None:
    store = Store(home)
    outcome = store.install([src("acme.app", "1.0.0", {"acme.common": "^1.0"})], no_deps=True)
    assert outcome.warnings == ["acme.app 1.0.0 needs acme.common ^1.0, which is not installed"]
    outcome = store.install([src("acme.tools")])
    assert summary(outcome.changes) == [("install", "acme.tools", "1.0.0")]
    assert outcome.warnings == []


# ---------------------------------------------------------------- --no-deps, --dry-run


def test_no_deps_installs_only_what_is_named(home: Path, src: Sources) -> None:
    app = src("acme.app", "1.0.0", {"acme.common": "^1.0"})
    result = plugbay(home, "install", "--no-deps", app, "--json")
    doc = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert [(c["action"], c["id"]) for c in doc["changes"]] == [("install", "acme.app")]
    assert doc["warnings"] == ["acme.app 1.0.0 needs acme.common ^1.0, which is not installed"]
    assert versions(home, "acme.common") == []
    assert listed(home)["acme.app"]["state"] != "enabled"  # discovery blocks it, as it should


def test_no_deps_still_refuses_to_break_dependents(
    home: Path, left_right: Store, src: Sources
) -> None:
    shared3 = src("acme.shared", "3.0.0")
    before = snapshot(home)
    assert failed(plugbay(home, "install", "--no-deps", shared3)) == (
        "refusing to install: acme.left 1.0.0 needs acme.shared <2.0.0, not acme.shared 3.0.0"
        " (use --force to install anyway)"
    )
    assert snapshot(home) == before


def test_dry_run_says_what_would_happen_and_writes_nothing(
    home: Path, src: Sources, tmp_path: Path
) -> None:
    store = Store(home)
    store.install([src("acme.common", "1.0.0")])
    store.install([src("acme.common", "1.5.0")], activate=False)
    store.install([src("acme.base", "1.0.0")])
    app = src("acme.app", "1.0.0", {"acme.common": ">=1.5.0", "acme.base": "*"})
    before = snapshot(home)
    outcome = store.install([app], dry_run=True)
    assert outcome.dry_run
    assert summary(outcome.changes) == [
        ("install", "acme.app", "1.0.0"),
        ("keep", "acme.base", "1.0.0"),
        ("switch", "acme.common", "1.5.0"),
    ]
    assert ok(plugbay(home, "install", "--dry-run", "-v", app)) == [
        f"would install acme.app 1.0.0 from {app}",
        "would keep acme.base 1.0.0 (already installed)",
        "would switch acme.common 1.0.0 → 1.5.0",
    ]
    doc = json.loads("\n".join(ok(plugbay(home, "install", "--dry-run", "--json", app))))
    assert doc["dry_run"] is True
    assert [(c["action"], c["id"], c["version"]) for c in doc["changes"]] == summary(
        outcome.changes
    )
    assert snapshot(home) == before
    # A dry run into a home that does not exist does not create it.
    fresh = tmp_path / "fresh-home"
    assert ok(plugbay(fresh, "install", "--dry-run", src("acme.solo"))) == [
        f"would install acme.solo 1.0.0 from {src('acme.solo')}"
    ]
    assert not fresh.exists()


def test_dry_run_reports_a_refusal_like_the_real_thing(
    home: Path, left_right: Store, src: Sources
) -> None:
    shared3 = src("acme.shared", "3.0.0")
    before = snapshot(home)
    assert "installed plugins that would break: acme.left" in failed(
        plugbay(home, "install", "--dry-run", shared3)
    )
    assert snapshot(home) == before


# ---------------------------------------------------------------- side by side, use


def test_versions_side_by_side_and_use(home: Path, src: Sources) -> None:
    for version in ("1.0.0", "2.0.0"):
        ok(plugbay(home, "install", src("acme.code", version, entry="acme_code:Plugin", code=CODE)))
    assert versions(home, "acme.code") == ["1.0.0", "2.0.0"]
    plugin = listed(home)["acme.code"]
    assert (plugin["version"], plugin["other_versions"]) == ("2.0.0", ["1.0.0"])
    assert ok(plugbay(home, "use", "acme.code@1.0.0")) == ["switch acme.code 2.0.0 → 1.0.0"]
    assert active(home, "acme.code") == "1.0.0"
    plugin = listed(home)["acme.code"]
    assert (plugin["version"], plugin["other_versions"]) == ("1.0.0", ["2.0.0"])
    assert any("1.0.0" in line for line in ok(plugbay(home, "load", "acme.code")))
    assert ok(plugbay(home, "use", "acme.code@1.0.0")) == [
        "nothing to switch: everything asked for is already in place"
    ]


def test_use_refuses_to_break_dependents(home: Path, left_right: Store) -> None:
    before = snapshot(home)
    assert failed(plugbay(home, "use", "acme.shared@2.0.0")) == (
        "refusing to switch: acme.left 1.0.0 needs acme.shared <2.0.0, not acme.shared 2.0.0"
        " (use --force to switch anyway)"
    )
    assert snapshot(home) == before
    outcome = left_right.use("acme.shared", "2.0.0", force=True)
    assert outcome.warnings == ["acme.left 1.0.0 needs acme.shared <2.0.0, not acme.shared 2.0.0"]
    assert active(home, "acme.shared") == "2.0.0"


def test_use_checks_the_switched_plugins_own_needs(home: Path, src: Sources) -> None:
    store = Store(home)
    store.install([src("acme.shared", "1.0.0")])
    store.install([src("acme.shared", "2.0.0")], activate=False)
    store.install([src("acme.app", "1.0.0", {"acme.shared": "^1.0"})])
    store.install([src("acme.app", "2.0.0", {"acme.shared": "^2.0"})], activate=False)
    assert (active(home, "acme.app"), active(home, "acme.shared")) == ("1.0.0", "1.0.0")
    with pytest.raises(StoreError) as info:
        store.use("acme.app", "2.0.0")
    assert str(info.value) == (
        "refusing to switch: acme.app 2.0.0 needs acme.shared ^2.0, not acme.shared 1.0.0"
        " (use --force to switch anyway)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["use", "acme.shared@9.9.9"],
            "acme.shared 9.9.9 is not installed (installed: 1.0.0, 2.0.0); install it first",
        ),
        (["use", "acme.shaerd@1.0.0"], 'acme.shaerd is not installed; did you mean "acme.shared"?'),
        (
            ["use", "acme.shared"],
            "acme.shared: say which version, as ID@VERSION (e.g. acme.tools@1.2.0)",
        ),
        (["remove", "acme.shaerd"], 'acme.shaerd is not installed; did you mean "acme.shared"?'),
        (
            ["remove", "acme.shared@9.9.9"],
            "acme.shared 9.9.9 is not installed (installed: 1.0.0, 2.0.0)",
        ),
    ],
)
def test_use_and_remove_mistakes(
    home: Path, left_right: Store, args: list[str], message: str
) -> None:
    before = snapshot(home)
    assert failed(plugbay(home, *args)) == message
    assert snapshot(home) == before


# ---------------------------------------------------------------- remove


def test_remove_an_inactive_version(home: Path, left_right: Store) -> None:
    assert ok(plugbay(home, "remove", "acme.shared@2.0.0")) == ["remove acme.shared 2.0.0"]
    assert (versions(home, "acme.shared"), active(home, "acme.shared")) == (["1.0.0"], "1.0.0")
    assert not (home / "receipts" / "acme.shared-2.0.0.json").exists()
    assert (home / "receipts" / "acme.shared-1.0.0.json").exists()


def test_remove_the_active_version_activates_the_highest_left(home: Path, src: Sources) -> None:
    store = Store(home)
    for version in ("1.0.0", "3.0.0", "2.0.0"):
        store.install([src("acme.tools", version)])
    outcome = store.remove(["acme.tools@2.0.0"])
    assert [str(c) for c in outcome.changes] == [
        "remove acme.tools 2.0.0",
        "switch acme.tools 2.0.0 → 3.0.0",
    ]
    assert (versions(home, "acme.tools"), active(home, "acme.tools")) == (
        ["1.0.0", "3.0.0"],
        "3.0.0",
    )
    # Two versions at once, one of them active: the one left becomes active.
    store.install([src("acme.tools", "4.0.0")])
    outcome = store.remove(["acme.tools@4.0.0", "acme.tools@3.0.0"])
    assert summary(outcome.changes) == [
        ("remove", "acme.tools", "4.0.0"),
        ("remove", "acme.tools", "3.0.0"),
        ("switch", "acme.tools", "1.0.0"),
    ]
    assert (versions(home, "acme.tools"), active(home, "acme.tools")) == (["1.0.0"], "1.0.0")


def test_remove_every_version(home: Path, left_right: Store) -> None:
    ok(plugbay(home, "remove", "acme.left"))
    assert ok(plugbay(home, "remove", "acme.shared")) == [
        "remove acme.shared 1.0.0",
        "remove acme.shared 2.0.0",
    ]
    assert not (home / "plugins" / "acme" / "shared").exists()
    assert sorted(p.name for p in (home / "receipts").iterdir()) == []
    assert listed(home) == {}


def test_remove_refuses_to_break_dependents(home: Path, left_right: Store) -> None:
    before = snapshot(home)
    assert failed(plugbay(home, "remove", "acme.shared")) == (
        "refusing to remove: acme.left 1.0.0 needs acme.shared <2.0.0, which would be gone"
        " (use --force to remove anyway)"
    )
    assert failed(plugbay(home, "remove", "acme.shared@1.0.0")) == (
        "refusing to remove: acme.left 1.0.0 needs acme.shared <2.0.0, not acme.shared 2.0.0"
        " (use --force to remove anyway)"
    )
    assert snapshot(home) == before
    # Removing the dependent with what it needs, in one go, breaks nothing.
    outcome = left_right.remove(["acme.left", "acme.shared@1.0.0"], dry_run=True)
    assert summary(outcome.changes) == [
        ("remove", "acme.left", "1.0.0"),
        ("remove", "acme.shared", "1.0.0"),
        ("switch", "acme.shared", "2.0.0"),
    ]
    assert snapshot(home) == before


def test_remove_with_force(home: Path, left_right: Store) -> None:
    result = plugbay(home, "remove", "--force", "acme.shared")
    assert ok(result) == ["remove acme.shared 1.0.0", "remove acme.shared 2.0.0"]
    assert (
        result.stderr == "warning: acme.left 1.0.0 needs acme.shared <2.0.0, which would be gone\n"
    )
    assert versions(home, "acme.shared") == []
    assert listed(home)["acme.left"]["state"] != "enabled"


# ---------------------------------------------------------------- enable, disable


def test_disable_and_enable_keep_the_config_comments(home: Path, left_right: Store) -> None:
    config = home / "config.toml"
    config.write_text('# my settings\npaths = []  # none yet\n\n[plugins."acme.left"]\n# later\n')
    assert ok(plugbay(home, "disable", "acme.left")) == ["disable acme.left"]
    text = config.read_text()
    assert all(c in text for c in ("# my settings", "# none yet", "# later")), text
    assert 'disabled = ["acme.left"]' in text
    assert listed(home)["acme.left"]["state"] == "disabled"
    assert ok(plugbay(home, "disable", "acme.left")) == [
        "nothing to disable: everything asked for is already in place"
    ]
    assert ok(plugbay(home, "enable", "acme.left")) == ["enable acme.left"]
    text = config.read_text()
    assert "disabled" not in text
    assert all(c in text for c in ("# my settings", "# none yet", "# later")), text
    assert listed(home)["acme.left"]["state"] == "enabled"


def test_disable_without_a_config_file(home: Path, left_right: Store) -> None:
    outcome = left_right.set_enabled("acme.shared", enabled=False)
    assert summary(outcome.changes) == [("disable", "acme.shared", None)]
    assert (home / "config.toml").read_text() == 'disabled = ["acme.shared"]\n'


def test_an_unreadable_config_is_reported(home: Path, left_right: Store) -> None:
    (home / "config.toml").write_text("disabled = [\n")
    before = snapshot(home)
    assert "config.toml cannot be read" in failed(plugbay(home, "disable", "acme.left"))
    assert snapshot(home) == before


def test_reinstalling_the_same_bundle_reads_nothing(tmp_path: Path) -> None:
    """A bundle whose sha256 a receipt records is the installed version: not read again."""
    from plugbay.store import Limits

    source = write_plugin(tmp_path / "src", "acme.same", "1.0.0", code={"same.py": "x = 1\n"})
    bundle = build_bundle(source, tmp_path / "dist")
    home = tmp_path / "home"
    assert [c.action for c in Store(home).install([str(bundle)]).changes] == ["install"]
    # Limits no bundle fits in: any read of the bundle would fail.
    strict = Store(home, limits=Limits(max_compressed_bytes=1))
    again = strict.install([str(bundle)])
    assert [(c.action, c.id, c.version) for c in again.changes] == [("keep", "acme.same", "1.0.0")]
    with pytest.raises(StoreError, match=r"over the limit|larger than|bytes"):
        strict.install([str(bundle)], force=True)  # --force reads it, and the limit refuses


def test_disabling_an_unknown_id_warns_with_a_suggestion(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = write_plugin(tmp_path / "src", "acme.known", "1.0.0")
    Store(home).install([str(source)])
    result = plugbay(home, "disable", "acme.knwon")
    assert result.returncode == 0, result.stderr
    assert 'no plugin acme.knwon is installed or discovered here; did you mean "acme.known"?' in (
        result.stderr
    )
    quiet = plugbay(home, "disable", "acme.known")
    assert quiet.returncode == 0
    assert "warning" not in quiet.stderr
