"""The lock file: ``Store.lock``, ``write_lock``/``read_lock``, ``Store.sync`` and ``install``
with ``locked=``. Real bundles built on disk, real homes; the attacks of the trust issue
that concern the lock (a bundle that is not the locked one, a version it does not pin).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import home_snapshot as snapshot
from conftest import write_plugin
from plugbay.errors import BundleError, LockfileError, ResolutionError, SourceError, StoreError
from plugbay.store import LockEntry, Lockfile, Store, build_bundle, read_lock, write_lock
from plugbay.store.bundle import ReadBundle, read_bundle
from plugbay.store.lock import parse_lock
from plugbay.store.sources import Candidate

# ---------------------------------------------------------------- helpers


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def active(home: Path, plugin_id: str) -> str | None:
    namespace, _, name = plugin_id.rpartition(".")
    path = home / "plugins" / namespace / name / "active"
    return path.read_text() if path.exists() else None


def installed_set(home: Path) -> dict[str, list[str]]:
    """Installed versions per id, the active one first."""
    return {pid: [c.version for c in versions] for pid, versions in Store(home).installed().items()}


def actions(outcome: object) -> list[tuple[str, str, str | None]]:
    return [(c.action, c.id, c.version) for c in outcome.changes]  # type: ignore[attr-defined]


class Dist:
    """Bundles built from plugin folders written under ``root``, into ``root/dist``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dist = root / "dist"

    def folder(self, plugin_id: str, version: str = "1.0.0", **kwargs: object) -> Path:
        return write_plugin(
            self.root / "src" / f"{plugin_id}-{version}", plugin_id, version, **kwargs
        )  # type: ignore[arg-type]

    def __call__(self, plugin_id: str, version: str = "1.0.0", **kwargs: object) -> Path:
        return build_bundle(self.folder(plugin_id, version, **kwargs), self.dist)


@pytest.fixture
def dist(tmp_path: Path) -> Dist:
    return Dist(tmp_path / "project")


@pytest.fixture
def locked_home(home: Path, dist: Dist) -> tuple[Store, Lockfile]:
    """acme.shared 1.0.0 (active) and 2.0.0, acme.left 1.0.0 (needs <2): locked, written
    to ``project/plugbay.lock`` beside the bundles."""
    store = Store(home)
    shared1 = dist("acme.shared", "1.0.0")
    left = dist("acme.left", "1.0.0", dependencies={"acme.shared": "<2.0.0"})
    store.install([str(shared1), str(left)])
    store.install([str(dist("acme.shared", "2.0.0"))], activate=False)
    lock, _ = store.lock()
    return store, write_lock(lock, dist.root / "plugbay.lock")


# ---------------------------------------------------------------- lock


def test_lock_pins_each_active_version_by_bundle_hash_and_source(
    locked_home: tuple[Store, Lockfile], dist: Dist
) -> None:
    _, lock = locked_home
    assert lock.entries == (
        LockEntry(
            "acme.left",
            "1.0.0",
            sha256(dist.dist / "acme-left-1.0.0.tar.gz"),
            "dist/acme-left-1.0.0.tar.gz",
        ),
        LockEntry(
            "acme.shared",
            "1.0.0",
            sha256(dist.dist / "acme-shared-1.0.0.tar.gz"),
            "dist/acme-shared-1.0.0.tar.gz",
        ),
    )
    text = (dist.root / "plugbay.lock").read_text()
    assert text.count("[[plugin]]") == 2
    assert "lock-version = 1" in text
    assert "acme-shared-2.0.0" not in text  # inactive versions are not locked
    assert read_lock(dist.root / "plugbay.lock") == lock


def test_a_source_outside_the_lock_folder_stays_absolute(
    home: Path, dist: Dist, tmp_path: Path
) -> None:
    Store(home).install([str(dist("acme.tools"))])
    lock, _ = Store(home).lock()
    (tmp_path / "other").mkdir()
    elsewhere = write_lock(lock, tmp_path / "other" / "plugbay.lock")
    assert elsewhere.entries[0].source == str(dist.dist / "acme-tools-1.0.0.tar.gz")


def test_lock_warns_about_sources_a_sync_cannot_reproduce_everywhere(
    home: Path, dist: Dist
) -> None:
    folder = dist.folder("acme.tools")
    Store(home).install([str(folder)])
    lock, warnings = Store(home).lock()
    assert lock.entries[0].source == str(folder)
    assert len(warnings) == 1
    assert f"acme.tools 1.0.0 was installed from the folder {folder}" in warnings[0]
    _, empty_warnings = Store(home.parent / "empty").lock()
    assert empty_warnings == ["no plugin is installed here: the lock is empty"]


def test_lock_records_the_signer_of_a_receipt_as_information(home: Path, dist: Dist) -> None:
    Store(home).install([str(dist("acme.tools"))])
    receipt = home / "receipts" / "acme.tools-1.0.0.json"
    data = json.loads(receipt.read_text())
    receipt.write_text(json.dumps({**data, "signer": "3f2a9c"}))
    lock, _ = Store(home).lock()
    written = write_lock(lock, dist.root / "plugbay.lock")
    assert 'signer = "3f2a9c"' in (dist.root / "plugbay.lock").read_text()
    assert written.entries[0].signer == "3f2a9c"


def test_lock_refuses_an_active_version_without_a_receipt(home: Path, dist: Dist) -> None:
    Store(home).install([str(dist("acme.tools"))])
    (home / "receipts" / "acme.tools-1.0.0.json").unlink()
    with pytest.raises(
        StoreError, match=r"cannot lock acme\.tools 1\.0\.0: its receipt .* missing"
    ):
        Store(home).lock()


# ---------------------------------------------------------------- reading


GOOD = """\
lock-version = 1

[[plugin]]
id = "acme.tools"
version = "1.0.0"
sha256 = "{sha}"
source = "dist/acme-tools-1.0.0.tar.gz"
"""
SHA = "ab" * 32


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (
            ("\nversion = ", "\nverison = "),
            "plugin[0].verison",
            "unknown key 'verison' (in the entry of acme.tools); did you mean \"version\"?",
        ),
        (("lock-version", "lock-verison"), "lock-verison", 'did you mean "lock-version"?'),
        ((f'"{SHA}"', '"abc"'), "plugin[0].sha256", "'abc' is not a sha256"),
        (('"1.0.0"', '"1.0"'), "plugin[0].version", "'1.0' is not a valid version"),
        (('"1.0.0"', "1"), "plugin[0].version", "must be a string, not 1"),
        (('source = "dist/acme-tools-1.0.0.tar.gz"\n', ""), "plugin[0].source", "is missing"),
        (('"acme.tools"', '"Acme.Tools"'), "plugin[0].id", "is not a plugin id"),
        (("lock-version = 1", "lock-version = 2"), "lock-version", "is 2; this plugbay reads"),
        (("lock-version = 1\n", ""), "lock-version", "is missing"),
        (("[[plugin]]", "[plugin]"), "plugin", "must be an array of tables"),
        (("version = ", "version = = "), "", "is not valid TOML"),
    ],
)
def test_a_hand_edited_lock_error_names_the_field(
    tmp_path: Path, edit: tuple[str, str], field: str, problem: str
) -> None:
    path = tmp_path / "plugbay.lock"
    text = GOOD.format(sha=SHA)
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(LockfileError) as info:
        read_lock(path)
    assert (info.value.file, info.value.field) == (str(path), field)
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{path}: {field}: " if field else f"{path}: ")


def test_a_plugin_locked_twice_is_refused(tmp_path: Path) -> None:
    text = GOOD.format(sha=SHA)
    with pytest.raises(LockfileError, match=r"plugin\[1\]\.id: acme\.tools is locked twice"):
        parse_lock(text + text.split("\n", 2)[2], tmp_path / "plugbay.lock")


def test_a_missing_lock_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(LockfileError, match="does not exist; write one with `plugbay lock`"):
        read_lock(tmp_path / "plugbay.lock")


# ---------------------------------------------------------------- sync


def test_the_same_lock_gives_the_same_plugin_set_in_a_second_home(
    locked_home: tuple[Store, Lockfile], tmp_path: Path
) -> None:
    _, lock = locked_home
    other = Store(tmp_path / "second")
    outcome = other.sync(lock)
    assert actions(outcome) == [
        ("install", "acme.left", "1.0.0"),
        ("install", "acme.shared", "1.0.0"),
    ]
    assert installed_set(other.layout.home) == {"acme.left": ["1.0.0"], "acme.shared": ["1.0.0"]}
    again, _ = other.lock()
    assert [(e.id, e.version, e.sha256) for e in again.entries] == [
        (e.id, e.version, e.sha256) for e in lock.entries
    ]
    reports = other.verify()
    assert len(reports) == 2
    assert all(r.ok for r in reports)
    assert actions(other.sync(lock)) == [
        ("keep", "acme.left", "1.0.0"),
        ("keep", "acme.shared", "1.0.0"),
    ]


def test_relative_sources_follow_the_lock_when_its_folder_moves(
    locked_home: tuple[Store, Lockfile], dist: Dist, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    shutil.move(dist.root, moved)
    other = Store(tmp_path / "second")
    other.sync(read_lock(moved / "plugbay.lock"))
    assert installed_set(other.layout.home) == {"acme.left": ["1.0.0"], "acme.shared": ["1.0.0"]}


def test_a_bundle_whose_hash_does_not_match_the_lock_is_refused_before_any_write(
    locked_home: tuple[Store, Lockfile], dist: Dist, tmp_path: Path
) -> None:
    _, lock = locked_home
    # Same id and version, other bytes: rebuilt from a changed folder over the locked file.
    dist("acme.shared", "1.0.0", extra='description = "not what was locked"')
    other = tmp_path / "second"
    Store(other).install([str(dist("acme.extra"))])
    before = snapshot(other)
    with pytest.raises(BundleError) as info:
        Store(other).sync(lock)
    message = str(info.value)
    assert "acme.shared 1.0.0" in message
    assert f"pins acme.shared 1.0.0 to sha256 {lock.get('acme.shared').sha256}" in message  # type: ignore[union-attr]
    assert "it is not the locked bundle; nothing was changed" in message
    assert snapshot(other) == before


def test_sync_switches_the_active_version_back_to_the_locked_one(
    locked_home: tuple[Store, Lockfile],
) -> None:
    store, lock = locked_home
    store.use("acme.shared", "2.0.0", force=True)
    outcome = store.sync(lock)
    assert actions(outcome) == [
        ("keep", "acme.left", "1.0.0"),
        ("switch", "acme.shared", "1.0.0"),
    ]
    assert active(store.layout.home, "acme.shared") == "1.0.0"
    assert outcome.unlocked == [("acme.shared", "2.0.0")]


def test_sync_installs_again_a_locked_version_whose_files_were_changed(
    locked_home: tuple[Store, Lockfile],
) -> None:
    store, lock = locked_home
    manifest = store.layout.version_dir("acme.left", "1.0.0") / "plugin.toml"
    manifest.write_text(manifest.read_text() + "# tampered\n")
    outcome = store.sync(lock)
    assert ("reinstall", "acme.left", "1.0.0") in actions(outcome)
    assert any(
        "acme.left 1.0.0 has files that differ from its bundle" in w for w in outcome.warnings
    )
    assert all(r.ok for r in store.verify(["acme.left"]))


def test_sync_replaces_a_locked_version_installed_from_another_bundle(
    home: Path, dist: Dist, tmp_path: Path
) -> None:
    locked = Store(tmp_path / "first")
    locked.install([str(dist("acme.tools", "1.0.0"))])
    lock = write_lock(locked.lock()[0], dist.root / "plugbay.lock")
    impostor = Dist(tmp_path / "impostor")("acme.tools", "1.0.0", extra='description = "x"')
    store = Store(home)
    store.install([str(impostor)])
    assert actions(store.sync(lock)) == [("reinstall", "acme.tools", "1.0.0")]
    assert store.layout.read_receipt("acme.tools", "1.0.0").bundle_sha256 == lock.entries[0].sha256  # type: ignore[union-attr]


def test_without_prune_unlocked_plugins_are_left_and_reported_with_prune_removed(
    locked_home: tuple[Store, Lockfile], dist: Dist
) -> None:
    store, lock = locked_home
    store.install([str(dist("acme.extra"))])
    kept = store.sync(lock)
    assert [a for a in actions(kept) if a[0] != "keep"] == []
    assert kept.unlocked == [("acme.extra", "1.0.0"), ("acme.shared", "2.0.0")]
    assert kept.warnings == [
        "acme.extra 1.0.0 is installed but not in "
        f"{dist.root / 'plugbay.lock'}: left as it is (sync --prune removes it)",
        "acme.shared 2.0.0 is installed but not in "
        f"{dist.root / 'plugbay.lock'}: left as it is (sync --prune removes it)",
    ]
    assert "acme.extra" in installed_set(store.layout.home)

    pruned = store.sync(lock, prune=True)
    assert [a for a in actions(pruned) if a[0] != "keep"] == [
        ("remove", "acme.extra", "1.0.0"),
        ("remove", "acme.shared", "2.0.0"),
    ]
    assert installed_set(store.layout.home) == {"acme.left": ["1.0.0"], "acme.shared": ["1.0.0"]}
    assert not store.layout.plugin_dir("acme.extra").exists()
    assert not store.layout.receipt_path("acme.shared", "2.0.0").exists()


def test_a_dry_run_sync_writes_nothing(
    locked_home: tuple[Store, Lockfile], dist: Dist, tmp_path: Path
) -> None:
    store, lock = locked_home
    store.install([str(dist("acme.extra"))])
    store.use("acme.shared", "2.0.0", force=True)
    before = snapshot(store.layout.home)
    outcome = store.sync(lock, prune=True, dry_run=True)
    assert outcome.dry_run
    assert [a for a in actions(outcome) if a[0] != "keep"] == [
        ("switch", "acme.shared", "1.0.0"),
        ("remove", "acme.extra", "1.0.0"),
        ("remove", "acme.shared", "2.0.0"),
    ]
    assert snapshot(store.layout.home) == before
    fresh = tmp_path / "fresh"
    assert actions(Store(fresh).sync(lock, dry_run=True)) == [
        ("install", "acme.left", "1.0.0"),
        ("install", "acme.shared", "1.0.0"),
    ]
    assert not fresh.exists()


def test_a_locked_source_that_cannot_be_fetched_again_is_named(
    locked_home: tuple[Store, Lockfile], dist: Dist, tmp_path: Path
) -> None:
    _, lock = locked_home
    (dist.dist / "acme-shared-1.0.0.tar.gz").unlink()
    other = tmp_path / "second"
    with pytest.raises(SourceError) as info:
        Store(other).sync(lock)
    assert str(info.value) == (
        f"{lock.name}: acme.shared 1.0.0: its source "
        f"{dist.dist / 'acme-shared-1.0.0.tar.gz'} does not exist here (the bundle it was "
        "installed from); put the bundle there, or lock again from one that is"
    )
    assert not (other / "plugins").exists()  # acme.left's bundle was there: still nothing

    unknown = Lockfile((LockEntry("acme.tools", "1.0.0", SHA, "index acme.tools"),), lock.path)
    with pytest.raises(SourceError, match="is not a path, URL or git"):
        Store(other).sync(unknown)


def test_a_folder_source_is_built_again_and_must_give_the_locked_bundle(
    home: Path, dist: Dist, tmp_path: Path
) -> None:
    folder = dist.folder("acme.tools")
    Store(home).install([str(folder)])
    lock = write_lock(Store(home).lock()[0], dist.root / "plugbay.lock")
    second = Store(tmp_path / "second")
    assert actions(second.sync(lock)) == [("install", "acme.tools", "1.0.0")]
    (folder / "extra.txt").write_text("added after the lock was written\n")
    with pytest.raises(BundleError, match="it is built again from the source"):
        Store(tmp_path / "third").sync(lock)


def test_sync_refuses_a_lock_whose_dependencies_are_not_met(
    locked_home: tuple[Store, Lockfile], tmp_path: Path
) -> None:
    _, lock = locked_home
    partial = Lockfile(tuple(e for e in lock.entries if e.id == "acme.left"), lock.path)
    other = tmp_path / "second"
    with pytest.raises(ResolutionError) as info:
        Store(other).sync(partial)
    assert "acme.left 1.0.0 needs acme.shared <2.0.0, which is not installed" in str(info.value)
    assert "nothing was changed" in str(info.value)
    assert not (other / "plugins").exists()


# ---------------------------------------------------------------- install --locked


def test_install_locked_refuses_a_downgrade_the_lock_does_not_pin(home: Path, dist: Dist) -> None:
    store = Store(home)
    old = dist("acme.tools", "1.0.0")
    store.install([str(dist("acme.tools", "2.0.0"))])
    lock = write_lock(store.lock()[0], dist.root / "plugbay.lock")
    before = snapshot(home)
    with pytest.raises(StoreError) as info:
        store.install([str(old)], locked=lock)
    assert str(info.value).startswith(
        f"{old} is acme.tools 1.0.0, but {lock.name} pins acme.tools 2.0.0: install --locked "
        "installs only what the lock pins"
    )
    with pytest.raises(
        StoreError, match=r"you asked for acme\.tools =1\.0\.0, but .* pins acme\.tools 2\.0\.0"
    ):
        store.install(["acme.tools@1.0.0"], locked=lock)
    with pytest.raises(StoreError, match=r"is acme\.other 1\.0\.0, which .* does not pin"):
        store.install([str(dist("acme.other"))], locked=lock)
    assert snapshot(home) == before


def test_install_locked_refuses_a_bundle_with_the_locked_version_but_other_bytes(
    home: Path, dist: Dist, tmp_path: Path
) -> None:
    first = Store(tmp_path / "first")
    first.install([str(dist("acme.tools"))])
    lock = write_lock(first.lock()[0], dist.root / "plugbay.lock")
    impostor = Dist(tmp_path / "impostor")("acme.tools", extra='description = "x"')
    with pytest.raises(BundleError, match="it is not the locked bundle"):
        Store(home).install([str(impostor)], locked=lock)
    assert not home.joinpath("plugins").exists()


def test_install_locked_fetches_what_is_asked_for_from_the_locked_sources(
    locked_home: tuple[Store, Lockfile], tmp_path: Path
) -> None:
    _, lock = locked_home
    other = Store(tmp_path / "second")
    outcome = other.install(["acme.left"], locked=lock)
    assert actions(outcome) == [
        ("install", "acme.left", "1.0.0"),
        ("install", "acme.shared", "1.0.0"),
    ]
    assert installed_set(other.layout.home) == {"acme.left": ["1.0.0"], "acme.shared": ["1.0.0"]}


class BundleIndex:
    """A fake of plugbay's own ``Source`` protocol (an index) offering real bundles."""

    def __init__(self, *bundles: Path) -> None:
        self.bundles = [read_bundle(b) for b in bundles]

    def available(self, plugin_id: str) -> list[Candidate]:
        return [
            Candidate(b.id, b.version, b.manifest, f"index {b.id}", self, bundle=b)
            for b in self.bundles
            if b.id == plugin_id
        ]

    def fetch(self, candidate: Candidate) -> ReadBundle:
        assert candidate.bundle is not None
        return candidate.bundle


def test_install_locked_resolves_dependencies_to_the_pinned_versions_only(
    home: Path, dist: Dist
) -> None:
    app = dist("acme.app", dependencies={"acme.common": "^1.0"})
    old, new = dist("acme.common", "1.0.0"), dist("acme.common", "1.2.0")
    lock = Lockfile(
        (
            LockEntry("acme.app", "1.0.0", sha256(app), str(app)),
            LockEntry("acme.common", "1.0.0", sha256(old), str(old)),
        ),
        dist.root / "plugbay.lock",
    )
    store = Store(home, sources=[BundleIndex(old, new)])
    outcome = store.install([str(app)], locked=lock)
    assert actions(outcome) == [
        ("install", "acme.app", "1.0.0"),
        ("install", "acme.common", "1.0.0"),  # not 1.2.0, which the index prefers
    ]

    unpinned = Lockfile(lock.entries[:1], lock.path)
    with pytest.raises(StoreError) as info:
        Store(home.parent / "second", sources=[BundleIndex(old, new)]).install(
            [str(app)], locked=unpinned
        )
    assert str(info.value).startswith(
        f"this install needs acme.common 1.2.0, which {lock.name} does not pin: "
    )
    assert not (home.parent / "second" / "plugins").exists()


def test_install_locked_leaves_untouched_plugins_as_they_are(
    locked_home: tuple[Store, Lockfile], dist: Dist
) -> None:
    store, lock = locked_home
    store.install([str(dist("acme.extra"))])  # not in the lock, and not asked for
    store.use("acme.shared", "2.0.0", force=True)  # not the locked version, not asked for
    (dist.dist / "acme-shared-1.0.0.tar.gz").unlink()  # and its locked source is gone
    tools = dist("acme.tools")
    with_tools = Lockfile(
        (*lock.entries, LockEntry("acme.tools", "1.0.0", sha256(tools), str(tools))),
        lock.path,
    )
    outcome = store.install(["acme.tools"], locked=with_tools)
    assert actions(outcome) == [("install", "acme.tools", "1.0.0")]
    assert active(store.layout.home, "acme.extra") == "1.0.0"
    assert active(store.layout.home, "acme.shared") == "2.0.0"


def test_install_locked_refuses_to_rely_on_an_installed_version_it_does_not_pin(
    locked_home: tuple[Store, Lockfile], dist: Dist
) -> None:
    store, lock = locked_home
    store.remove(["acme.left"])
    store.use("acme.shared", "2.0.0")
    user = dist("acme.user", dependencies={"acme.shared": ">=1.0.0"})
    with_user = Lockfile(
        (*lock.entries, LockEntry("acme.user", "1.0.0", sha256(user), str(user))), lock.path
    )
    with pytest.raises(StoreError) as info:
        store.install(["acme.user"], locked=with_user)
    assert str(info.value) == (
        "this install relies on the installed acme.shared 2.0.0, but "
        f"{lock.name} pins acme.shared 1.0.0; run `plugbay sync {lock.name}` first"
    )
    store.sync(with_user, prune=True)  # what the error says to do
    assert installed_set(store.layout.home) == {
        "acme.left": ["1.0.0"],
        "acme.shared": ["1.0.0"],
        "acme.user": ["1.0.0"],
    }


def test_local_sources_are_written_relative_to_the_lock_and_read_back_absolute(
    tmp_path: Path,
) -> None:
    lock = Lockfile(
        (
            LockEntry("acme.a", "1.0.0", SHA, str(tmp_path / "acme-a")),
            LockEntry("acme.b", "1.0.0", SHA, str(tmp_path / "dist" / "acme-b-1.0.0.tar.gz")),
            LockEntry("acme.c", "1.0.0", SHA, "https://plugins.acme.test/acme-c-1.0.0.tar.gz"),
        )
    )
    written = write_lock(lock, tmp_path / "plugbay.lock")
    assert [e.source for e in written.entries] == [
        "./acme-a",
        "dist/acme-b-1.0.0.tar.gz",
        "https://plugins.acme.test/acme-c-1.0.0.tar.gz",
    ]
    assert [written.location(e) for e in written.entries] == [e.source for e in lock.entries]
