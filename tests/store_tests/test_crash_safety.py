"""Crash safety of the store (DESIGN §3): every change leaves the old state or the new one.

Real processes and real files: ``plugbay`` killed with SIGKILL at random instants of an
install of 50 bundles, an upgrade, a removal and a switch; four installs started at once;
a full disk (a file size limit on the installing process); and, in-process, recovery of
transactions interrupted after any number of their steps.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import write_plugin
from plugbay.errors import StoreError
from plugbay.store.bundle import build_bundle
from plugbay.store.layout import Layout
from plugbay.store.transaction import (
    JOURNAL,
    Transaction,
    _apply_all,
    recover,
    recover_pending,
)

APP = "crashtest"
SEED = 20240611

#: Per plugin id: (active version, installed versions).
State = dict[str, tuple[str, frozenset[str]]]


# ---------------------------------------------------------------- running plugbay


def command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "plugbay", "--app", APP, "--home", str(home), *args]


def plugbay(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command in a fresh process, from a folder with no project plugins."""
    return subprocess.run(
        command(home, *args),
        capture_output=True,
        text=True,
        cwd=home.parent,
        check=False,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args[7:]}: {result.stdout}{result.stderr}"
    return result


def pending(home: Path) -> list[str]:
    """What the staging folder holds: work in progress, or left by a killed plugbay."""
    try:
        return sorted(os.listdir(home / "staging"))
    except FileNotFoundError:
        return []


def journal_seen(staging: Path) -> bool:
    try:
        names = os.listdir(staging)
    except FileNotFoundError:
        return False
    return any(os.path.exists(os.path.join(staging, name, JOURNAL)) for name in names)


@dataclass(frozen=True)
class Timing:
    seconds: float  # from start to exit
    committing: float  # from the journal's appearance (the commit point) to its removal


def run_and_kill(home: Path, args: list[str], *, delay: float, after_journal: bool) -> int:
    """Run plugbay and SIGKILL it ``delay`` s after it starts, or after it commits.

    Returns its exit status (``-SIGKILL`` when the kill came before it finished).
    """
    proc = subprocess.Popen(
        command(home, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=home.parent,
        start_new_session=True,  # its children (pip, compileall) are found again below
    )
    try:
        if after_journal:
            # Busy polling, so that the kill lands within the commit's few milliseconds.
            deadline = time.monotonic() + 120
            while (
                proc.poll() is None
                and not journal_seen(home / "staging")
                and time.monotonic() < deadline
            ):
                pass
        if delay > 0:
            time.sleep(delay)  # the random instant of the kill is the point of the test
        proc.kill()
    finally:
        proc.wait(timeout=120)
        # Its children too (pip, compileall), as when the machine goes down: none outlives
        # the test, and none writes into the staging folder while the next command recovers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def timed_run(home: Path, args: list[str]) -> Timing:
    """Run plugbay to the end twice (in ``home``, then in a copy of it made first).

    Once left alone, to time the whole run; once watched closely, to time how long its
    journal exists (the watching takes a core, which would slow the first).
    """
    watched = home.parent / "watched"
    if home.exists():
        shutil.copytree(home, watched, copy_function=os.link)
    start = time.perf_counter()
    ok(plugbay(home, *args))
    seconds = time.perf_counter() - start

    proc = subprocess.Popen(
        command(watched, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=home.parent,
    )
    journal_at = journal_gone_at = None
    while proc.poll() is None and journal_gone_at is None:
        seen = journal_seen(watched / "staging")
        if journal_at is None and seen:
            journal_at = time.perf_counter()
        elif journal_at is not None and not seen:
            journal_gone_at = time.perf_counter()
    assert proc.wait(timeout=300) == 0, args
    committing = (journal_gone_at or journal_at or 0.0) - (journal_at or 0.0)
    return Timing(seconds, committing)


# ---------------------------------------------------------------- reading a home


def read_state(home: Path, where: str) -> State:
    """The installed plugins, checking each is whole: folders, active file, receipts."""
    state: State = {}
    receipts_dir = home / "receipts"
    receipts = {p.name for p in receipts_dir.iterdir()} if receipts_dir.is_dir() else set()
    accounted: set[str] = set()
    plugins = home / "plugins"
    for ns in sorted(plugins.iterdir()) if plugins.is_dir() else []:
        if not ns.is_dir():
            continue  # the generation stamp
        for base in sorted(ns.iterdir()):
            plugin_id = f"{ns.name}.{base.name}"
            versions = frozenset(p.name for p in base.iterdir() if p.is_dir())
            entries = {p.name for p in base.iterdir()}
            assert entries == {"active", *versions}, f"{where}: {base} holds {sorted(entries)}"
            active = (base / "active").read_text("utf-8").strip()
            assert active in versions, f"{where}: {base}/active names {active}, not installed"
            for version in versions:
                assert (base / version / "MANIFEST.json").is_file(), f"{where}: {base / version}"
                name = f"{plugin_id}-{version}.json"
                assert name in receipts, f"{where}: no receipt for {plugin_id} {version}"
                receipt = json.loads((receipts_dir / name).read_text("utf-8"))
                assert (receipt["id"], receipt["version"]) == (plugin_id, version), where
                accounted.add(name)
            state[plugin_id] = (active, versions)
    assert receipts == accounted, f"{where}: receipts of nothing: {sorted(receipts - accounted)}"
    return state


def check_consistent(home: Path, where: str) -> State:
    """``list`` and then ``verify`` right after a kill: a whole state, and both agree on it.

    ``list`` runs first, so it alone has to finish or discard the interrupted change.
    """
    listed = plugbay(home, "list", "--json")
    assert listed.returncode == 0, f"{where}: list: {listed.stderr}"
    assert not pending(home), f"{where}: list left {pending(home)} in staging"
    state = read_state(home, where)
    plugins = json.loads(listed.stdout)["plugins"]
    assert {
        p["id"]: (p["version"], frozenset([p["version"], *p["other_versions"]])) for p in plugins
    } == state, where
    assert all(p["state"] == "enabled" for p in plugins), f"{where}: {plugins}"
    verified = plugbay(home, "verify", "--json")
    assert verified.returncode == 0, f"{where}: verify: {verified.stdout}{verified.stderr}"
    report = json.loads(verified.stdout)
    assert report["ok"], where
    assert {(p["id"], p["version"]) for p in report["plugins"]} == {
        (pid, v) for pid, (_, versions) in state.items() for v in versions
    }, where
    return state


def snapshot(root: Path) -> dict[str, str]:
    """Every folder and file under ``root``, with the sha256 of each file."""
    out: dict[str, str] = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        out[rel + "/"] = "folder"
        for name in filenames:
            path = Path(dirpath, name)
            out[f"{rel}/{name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


# ---------------------------------------------------------------- bundles and homes


@dataclass(frozen=True)
class Bundles:
    v1: list[str]  # crash.p00 … crash.p49 1.0.0; each crash.pX9 depends on crash.pX8
    v2: list[str]  # crash.p00 … crash.p09 2.0.0
    extra: str  # crash.extra 1.0.0
    big: str  # crash.big 1.0.0: 1 MiB that does not compress


def _build(src: Path, out: Path, plugin_id: str, version: str, deps: dict[str, str] | None) -> str:
    module = plugin_id.replace(".", "_")
    folder = write_plugin(
        src / version,
        plugin_id,
        version,
        dependencies=deps,
        code={
            f"{module}/__init__.py": f"VERSION = {version!r}\n" + "X = 1\n" * 40,
            "help/overview.md": f"# {plugin_id}\n",
            "README.md": f"{plugin_id} {version}\n",
        },
    )
    return str(build_bundle(folder, out))


def _deps(i: int) -> dict[str, str] | None:
    return {f"crash.p{i - 1:02d}": ">=1.0.0"} if i % 10 == 9 else None


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    root = tmp_path_factory.mktemp("bundles")
    src, out = root / "src", root / "out"
    v1 = [_build(src, out, f"crash.p{i:02d}", "1.0.0", _deps(i)) for i in range(50)]
    v2 = [_build(src, out, f"crash.p{i:02d}", "2.0.0", _deps(i)) for i in range(10)]
    extra = _build(src, out, "crash.extra", "1.0.0", None)
    big = write_plugin(src / "big", "crash.big", "1.0.0")
    (big / "blob.bin").write_bytes(random.Random(SEED).randbytes(1 << 20))
    return Bundles(v1, v2, extra, str(build_bundle(big, out)))


@pytest.fixture(scope="session")
def templates(bundles: Bundles, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Homes to start from: 50 plugins at 1.0.0; the same with ten also at 2.0.0 (active)."""
    root = tmp_path_factory.mktemp("templates")
    v1 = root / "v1"
    ok(plugbay(v1, "install", *bundles.v1))
    v2 = root / "v2"
    shutil.copytree(v1, v2)
    ok(plugbay(v2, "install", *bundles.v2))
    return {"v1": v1, "v2": v2}


def fresh_home(where: Path, template: Path | None) -> Path:
    where.mkdir()
    home = where / "home"
    if template is not None:
        # Hard links are enough (and fast): the store never writes a file in place, it
        # renames new ones over old ones. The discovery cache names the template's
        # paths: leave it behind.
        shutil.copytree(
            template, home, ignore=shutil.ignore_patterns("cache"), copy_function=os.link
        )
    return home


# ---------------------------------------------------------------- 1. kill -9


SCENARIOS = {
    # name: (home it starts from, how many kills)
    "install": (None, 6),
    "upgrade": ("v1", 3),
    "remove": ("v1", 3),
    "use": ("v2", 3),
}


def scenario_args(name: str, bundles: Bundles) -> list[str]:
    if name == "install":
        return ["install", *bundles.v1]
    if name == "upgrade":
        return ["install", *bundles.v2]
    if name == "remove":  # plugins nothing depends on
        return ["remove", *[f"crash.p{i:02d}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 9, 19)]]
    return ["use", "crash.p03@1.0.0"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_9_at_random_instants_leaves_the_old_state_or_the_new(
    name: str, bundles: Bundles, templates: dict[str, Path], tmp_path: Path
) -> None:
    template_key, kills = SCENARIOS[name]
    template = templates[template_key] if template_key else None
    args = scenario_args(name, bundles)
    old = read_state(template, "template") if template else {}

    # One run to the end: how long it takes, when it commits, and the new state.
    home = fresh_home(tmp_path / "timed", template)
    timing = timed_run(home, args)
    new = read_state(home, f"{name}, uninterrupted")
    assert new != old

    rng = random.Random(f"{SEED}-{name}")
    outcomes: list[tuple[int, bool, str]] = []
    for i in range(kills):
        # Every other kill lands after the commit point, while the journal is applied;
        # the first of those as soon as the journal appears.
        after_journal = i % 2 == 1
        if not after_journal:
            delay = rng.uniform(0, timing.seconds)
        else:
            delay = 0.0 if i == 1 else rng.uniform(0, timing.committing)
        where = (
            f"{name} (seed {SEED}), kill {i} at {delay:.4f} s after "
            f"{'the journal appeared' if after_journal else 'the start'} (uninterrupted: "
            f"{timing.seconds:.3f} s, committing {timing.committing:.4f} s)"
        )
        home = fresh_home(tmp_path / f"kill{i}", template)
        status = run_and_kill(home, args, delay=delay, after_journal=after_journal)
        committed = journal_seen(home / "staging")  # killed while applying the journal
        where += f", exit status {status}, journal left: {committed}"

        state = check_consistent(home, where)
        assert state in (old, new), f"{where}: neither the old state nor the new one: {state}"
        assert state == new or not committed, f"{where}: a committed change was undone"
        outcomes.append((status, committed, "new" if state == new else "old"))

        if state == old:  # the change did not happen: it still goes through
            ok(plugbay(home, *args))
            assert not pending(home), f"{where}: staging holds {pending(home)} after a retry"
            assert read_state(home, where) == new, where

    # And the home the last kill left takes more changes.
    ok(plugbay(home, "install", bundles.extra))
    assert not pending(home), f"{where}: staging holds {pending(home)} after an install"
    assert read_state(home, where) == {**new, "crash.extra": ("1.0.0", frozenset({"1.0.0"}))}
    assert any(status == -signal.SIGKILL for status, _, _ in outcomes), (
        f"{name}: no kill landed before plugbay finished: {outcomes}"
    )
    if name == "install":  # its commit is long enough to be hit every time
        assert any(committed for _, committed, _ in outcomes), (
            f"{name}: no kill landed while the journal was applied: {outcomes}"
        )
    print(f"{name}: (exit status, killed while applying, state) per kill: {outcomes}")


# ---------------------------------------------------------------- 2. concurrent installs


def test_four_concurrent_installs_serialise_and_all_succeed(
    bundles: Bundles, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # created by whichever starts first
    groups = [bundles.v1[k * 10 : k * 10 + 8] for k in range(4)]
    procs = [
        subprocess.Popen(
            command(home, "install", *group),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            text=True,
        )
        for group in groups
    ]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    for proc, stdout, stderr in results:
        assert proc.returncode == 0, f"{proc.args[7:]}: {stdout}{stderr}"
        assert "held" not in stderr, stderr
    state = check_consistent(home, "after four concurrent installs")
    expected = {f"crash.p{k * 10 + i:02d}" for k in range(4) for i in range(8)}
    assert state == {pid: ("1.0.0", frozenset({"1.0.0"})) for pid in expected}


# ---------------------------------------------------------------- 3. full disk

LIMITED = """
import resource, runpy, signal, sys
limit = int(sys.argv.pop(1))
# Ignored, SIGXFSZ no longer kills the process: a write past the limit fails with EFBIG,
# as on a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "plugbay"
runpy.run_module("plugbay", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    ("what", "limit", "expected"),
    [
        ("big", 256 * 1024, "cannot stage crash.big@1.0.0"),  # a staged file
        ("v1", 8 * 1024, "cannot commit the change"),  # the journal of 50 plugins
    ],
)
def test_a_full_disk_changes_nothing_and_says_so(
    what: str, limit: int, expected: str, bundles: Bundles, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    ok(plugbay(home, "install", bundles.extra))
    specs = [bundles.big] if what == "big" else bundles.v1
    before = snapshot(home)

    result = subprocess.run(
        [sys.executable, "-c", LIMITED, str(limit), *command(home, "install", *specs)[3:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=300,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {expected}"), lines[0]
    assert "File too large" in lines[0]
    assert "nothing was changed" in lines[0]
    assert differences(before, snapshot(home)) == []
    assert not pending(home)

    ok(plugbay(home, "install", *specs))
    state = check_consistent(home, "installed after the disk was freed")
    assert len(state) == (2 if what == "big" else 51)


# ---------------------------------------------------------------- 4. recovery, step by step


def make_home(root: Path) -> Layout:
    """A home with acme.tool 1.0.0 installed (folder, active file, receipt) and a config."""
    layout = Layout(root / "home")
    v1 = layout.version_dir("acme.tool", "1.0.0")
    (v1 / "acme_tool").mkdir(parents=True)
    (v1 / "MANIFEST.json").write_text('{"version": "1.0.0"}')
    (v1 / "acme_tool" / "__init__.py").write_text("OLD = 1\n")
    layout.active_file("acme.tool").write_text("1.0.0")
    layout.receipts.mkdir()
    layout.receipt_path("acme.tool", "1.0.0").write_text('{"receipt": 1}')
    layout.config.write_text("disabled = []\n")
    layout.staging.mkdir()
    return layout


def stage(layout: Layout, shape: str) -> Transaction:
    """Stage a change: an upgrade to 2.0.0 (removing 1.0.0), or a reinstall of 1.0.0."""
    txn = Transaction(layout)
    version = "2.0.0" if shape == "upgrade" else "1.0.0"
    staged = txn.stage_dir()
    (staged / "acme_tool").mkdir(parents=True)
    (staged / "MANIFEST.json").write_text(f'{{"version": "{version}", "new": true}}')
    (staged / "acme_tool" / "__init__.py").write_text("NEW = 1\n")
    txn.move(staged, layout.version_dir("acme.tool", version))
    txn.write(layout.receipt_path("acme.tool", version), b'{"receipt": 2}')
    if shape == "upgrade":
        txn.write(layout.active_file("acme.tool"), b"2.0.0")
        txn.delete(layout.version_dir("acme.tool", "1.0.0"))
        txn.delete(layout.receipt_path("acme.tool", "1.0.0"))
    else:
        txn.write(layout.config, b'disabled = ["acme.tool"]\n')
    return txn


def committed(root: Path, shape: str) -> dict[str, str]:
    layout = make_home(root)
    stage(layout, shape).commit()
    return snapshot(layout.home)


@pytest.mark.parametrize("shape", ["upgrade", "reinstall"])
def test_recovery_completes_a_committed_transaction_after_any_step(
    shape: str, tmp_path: Path
) -> None:
    old = snapshot(make_home(tmp_path / "old").home)
    new = committed(tmp_path / "new", shape)
    assert new != old
    steps = len(stage(make_home(tmp_path / "count"), shape)._steps)
    assert steps >= 4
    for applied in range(steps + 1):  # killed after the journal and `applied` steps
        layout = make_home(tmp_path / f"after{applied}")
        txn = stage(layout, shape)
        txn._write_journal()
        _apply_all(layout.home, txn._steps[:applied])

        assert recover(layout) == [f"completed an interrupted change ({txn.folder.name})"]
        assert differences(new, snapshot(layout.home)) == [], f"after {applied} steps"
        # Idempotent: a second run (as after a kill during the first) finds nothing to do.
        assert recover(layout) == []
        assert differences(new, snapshot(layout.home)) == [], f"after {applied} steps"


@pytest.mark.parametrize("journal", ["none", "unrenamed"])
def test_recovery_discards_a_transaction_that_was_not_committed(
    journal: str, tmp_path: Path
) -> None:
    layout = make_home(tmp_path)
    old = snapshot(layout.home)
    txn = stage(layout, "upgrade")
    if journal == "unrenamed":  # killed while writing the journal: the rename never happened
        (txn.folder / f"{JOURNAL}.tmp").write_text('{"format": 1, "steps": []}')

    assert recover(layout) == [f"discarded an unfinished change ({txn.folder.name})"]
    assert differences(old, snapshot(layout.home)) == []
    assert recover(layout) == []


def test_recovery_never_replays_a_finished_transaction(tmp_path: Path) -> None:
    layout = make_home(tmp_path)
    txn = stage(layout, "reinstall")
    txn._write_journal()
    _apply_all(layout.home, txn._steps)
    # Killed while deleting its folder: the journal goes first, the rest is still there.
    (txn.folder / JOURNAL).unlink()
    assert (txn.folder / "trash").is_dir()
    # A later change replaces what this one installed; replaying it would discard that.
    later = layout.version_dir("acme.tool", "1.0.0") / "acme_tool" / "__init__.py"
    later.write_text("LATER = 1\n")
    before = snapshot(layout.home)

    assert recover(layout) == [f"discarded an unfinished change ({txn.folder.name})"]
    after = snapshot(layout.home)
    assert later.read_text() == "LATER = 1\n"
    assert [k for k in differences(before, after) if not k.startswith("staging/")] == []
    assert not pending(layout.home)


def test_a_step_failing_after_the_commit_point_is_completed_later(tmp_path: Path) -> None:
    layout = make_home(tmp_path)
    (layout.plugins / "zz").write_text("a file where a folder must go")
    txn = Transaction(layout)
    staged = txn.stage_dir()
    staged.mkdir()
    (staged / "MANIFEST.json").write_text("{}")
    txn.move(staged, layout.version_dir("zz.tool", "1.0.0"))
    txn.write(layout.active_file("zz.tool"), b"1.0.0")

    with pytest.raises(StoreError, match=r"committed but a step failed.*next plugbay command"):
        txn.commit()
    txn.abort()  # what the store does on any error: a committed change must survive it
    assert (txn.folder / JOURNAL).is_file()

    (layout.plugins / "zz").unlink()
    assert recover(layout) == [f"completed an interrupted change ({txn.folder.name})"]
    assert (layout.version_dir("zz.tool", "1.0.0") / "MANIFEST.json").is_file()
    assert layout.active_version("zz.tool") == "1.0.0"
    assert not pending(layout.home)


def test_recovery_works_in_a_home_that_was_moved(tmp_path: Path) -> None:
    layout = make_home(tmp_path / "a")
    txn = stage(layout, "upgrade")
    txn._write_journal()
    _apply_all(layout.home, txn._steps[:2])
    moved = Layout(tmp_path / "b")
    layout.home.rename(moved.home)

    assert recover(moved) == [f"completed an interrupted change ({txn.folder.name})"]
    assert differences(committed(tmp_path / "new", "upgrade"), snapshot(moved.home)) == []


def test_recovery_removes_a_stray_file_in_staging(tmp_path: Path) -> None:
    layout = make_home(tmp_path)
    (layout.staging / "stray").write_text("not a transaction")
    assert recover(layout) == []
    assert not pending(layout.home)


def test_deleting_what_is_absent_records_no_step(tmp_path: Path) -> None:
    layout = make_home(tmp_path)
    txn = Transaction(layout)
    txn.delete(layout.version_dir("acme.tool", "9.9.9"))
    assert txn.empty
    txn.abort()
    assert not pending(layout.home)


HOLD_LOCK = """
import sys
from pathlib import Path
from plugbay.store.transaction import HomeLock
lock = HomeLock(Path(sys.argv[1]))
assert lock.acquire(timeout=10)
print("locked", flush=True)
sys.stdin.read()
"""


def test_readers_recover_only_when_no_plugbay_is_at_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layout = make_home(tmp_path)
    assert recover_pending(layout) == []
    assert not layout.lock_path.exists()  # nothing pending: readers do not even lock

    staging = stage(layout, "upgrade")  # a plugbay staging, not committed
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(layout.lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:  # leaving the block closes its stdin: it exits
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        # It holds the lock and stages: the old state stands, and its work is left alone.
        assert recover_pending(layout) == []
        assert pending(layout.home) == [staging.folder.name]
        # Committing (a journal exists) past the reader's patience: it says so, and waits
        # no longer.
        staging._write_journal()
        with caplog.at_level(logging.WARNING, logger="plugbay.store"):
            assert recover_pending(layout, wait=0.2) == []
        assert "committing" in caplog.text
        assert pending(layout.home) == [staging.folder.name]
    # The holder died without finishing: the next reader completes the change.
    assert recover_pending(layout) == [f"completed an interrupted change ({staging.folder.name})"]
    assert layout.active_version("acme.tool") == "2.0.0"
    assert not pending(layout.home)
