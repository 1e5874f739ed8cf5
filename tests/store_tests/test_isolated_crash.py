"""kill -9 during the install of an isolated Python plugin: the old state or the new one.

The upgrade of ``crash.iso`` from 1.0.0 (``libx==1.0``) to 2.0.0 (``libx==2.0``) builds a
venv in staging (venv, pip, the SDK, bytecode) and commits it with the version folder.
``plugbay`` is killed at instants spread over an uninterrupted run and as soon as its
journal appears; the next command (``list``) must recover a whole state in which every
installed version has its working venv and no venv stands without its version.
Real processes, real pip (offline, from a folder of tiny wheels).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_crash_safety import check_consistent, journal_seen, ok, pending, plugbay, run_and_kill
from test_isolated_install import libx
from test_pydeps import write_wheel

from conftest import write_plugin

OLD = ("1.0.0", frozenset({"1.0.0"}))
NEW = ("2.0.0", frozenset({"1.0.0", "2.0.0"}))
FRACTIONS = (0.15, 0.5, 0.85)  # of an uninterrupted run: kills before the commit


@pytest.fixture
def links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """libx 1.0 and 2.0 in a find-links folder that every plugbay run installs from."""
    folder = tmp_path / "links"
    folder.mkdir()
    write_wheel(folder, "libx", "1.0", libx("1.0"))
    write_wheel(folder, "libx", "2.0", libx("2.0"))
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def source(root: Path, version: str, requirement: str) -> Path:
    return write_plugin(
        root / version,
        "crash.iso",
        version,
        extra=f'isolation = "process"\npython-dependencies = ["{requirement}"]',
    )


def check_venvs(home: Path, versions: frozenset[str], where: str) -> None:
    """Each installed version has a venv that imports its own libx; no other venv exists."""
    base = home / "venvs/crash.iso"
    assert {p.name for p in base.iterdir()} == versions, f"{where}: venvs {list(base.iterdir())}"
    for version in versions:
        done = subprocess.run(
            [str(base / version / "bin/python"), "-c", "import libx; print(libx.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{where}: venv of {version}: {done.stderr}"
        assert done.stdout == f"{version[0]}.0\n", where


def test_kill_9_during_an_isolated_install_leaves_the_old_state_or_the_new(
    tmp_path: Path, links: Path
) -> None:
    sources = tmp_path / "sources"
    first = source(sources, "1.0.0", "libx==1.0")
    upgrade = ["--offline", "install", str(source(sources, "2.0.0", "libx==2.0"))]
    template = tmp_path / "template" / "home"
    template.parent.mkdir()
    ok(plugbay(template, "--offline", "install", str(first)))
    check_venvs(template, OLD[1], "template")

    def fresh(name: str) -> Path:
        # symlinks=True: a venv's bin/python is a link to the base interpreter.
        home = tmp_path / name / "home"
        shutil.copytree(template, home, symlinks=True, ignore=shutil.ignore_patterns("cache"))
        return home

    home = fresh("timed")
    start = time.perf_counter()
    ok(plugbay(home, *upgrade))
    seconds = time.perf_counter() - start
    assert check_consistent(home, "uninterrupted") == {"crash.iso": NEW}
    check_venvs(home, NEW[1], "uninterrupted")

    kills = [(fraction * seconds, False) for fraction in FRACTIONS] + [(0.0, True)]
    outcomes: list[tuple[int, str]] = []
    retried = False
    for i, (delay, after_journal) in enumerate(kills):
        home = fresh(f"kill{i}")
        status = run_and_kill(home, upgrade, delay=delay, after_journal=after_journal)
        committed = journal_seen(home / "staging")
        where = (
            f"kill {i} at {delay:.3f} s after {'the journal' if after_journal else 'the start'}"
            f" (uninterrupted: {seconds:.3f} s), exit status {status}, journal left: {committed}"
        )
        state = check_consistent(home, where)["crash.iso"]
        assert state in (OLD, NEW), f"{where}: neither the old state nor the new one: {state}"
        assert state == NEW or not committed, f"{where}: a committed change was undone"
        check_venvs(home, state[1], where)
        outcomes.append((status, "new" if state == NEW else "old"))
        if state == OLD and not retried:  # the upgrade did not happen: it still goes through
            retried = True
            ok(plugbay(home, *upgrade))
            assert not pending(home), f"{where}: staging holds {pending(home)} after a retry"
            check_venvs(home, NEW[1], f"{where}, retried")

    assert any(status == -signal.SIGKILL for status, _ in outcomes), outcomes
    assert retried, f"no kill landed before the commit: {outcomes}"
    print(f"(exit status, state) per kill: {outcomes}; uninterrupted: {seconds:.3f} s")
