"""Isolated Python plugins at install time: a venv per plugin version (docs/decisions/0007).

Real venvs, real pip, no network: the distributions are tiny wheels written into a
find-links folder (as in test_pydeps), installed offline with the machine's pip
configuration switched off. Each venv is checked by running its own interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_pydeps import write_wheel

from conftest import run_plugbay, write_plugin
from plugbay.errors import LoadError, StoreError
from plugbay.store import Store
from plugbay.store.venvs import ensure_sdk, isolated_command

LIBX_SCRIPT = "[console_scripts]\nlibx-version = libx:main\n"


def libx(version: str) -> dict[str, str]:
    """The files of libx ``version``: a module that knows its version, and a script."""
    return {
        "libx/__init__.py": f"__version__ = {version!r}\n\ndef main():\n    print(__version__)\n",
        f"libx-{version}.dist-info/entry_points.txt": LIBX_SCRIPT,
    }


@pytest.fixture
def quiet_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip without the machine's configuration (indexes, find-links, constraints)."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


@pytest.fixture
def links(tmp_path: Path, quiet_pip: None) -> Path:
    """A find-links folder with libx 1.0 and 2.0 (each with a ``libx-version`` script)."""
    folder = tmp_path / "links"
    folder.mkdir()
    write_wheel(folder, "libx", "1.0", libx("1.0"))
    write_wheel(folder, "libx", "2.0", libx("2.0"))
    return folder


@pytest.fixture
def store(home: Path, links: Path) -> Store:
    return Store(home, offline=True, find_links=[links])


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    folder.mkdir()
    return folder


def isolated(
    root: Path, plugin_id: str, requirements: Sequence[str], version: str = "1.0.0"
) -> Path:
    """The folder of an isolated Python plugin needing ``requirements``."""
    return write_plugin(
        root / version,
        plugin_id,
        version,
        extra=f'isolation = "process"\npython-dependencies = {json.dumps(list(requirements))}',
    )


def venv(home: Path, plugin_id: str, version: str = "1.0.0") -> Path:
    return home / "venvs" / plugin_id / version


def run_in(venv_path: Path, code: str) -> str:
    """Run ``code`` with the venv's interpreter, from an empty environment; its stdout."""
    done = subprocess.run(
        [str(venv_path / "bin/python"), "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": os.defpath},
        cwd=venv_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: files with their bytes' hash, links with their target."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if name == ".lock":
                continue
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "folder"
    return out


# ---------------------------------------------------------------- installing


def test_an_isolated_install_makes_a_venv_with_its_dependencies_and_the_sdk_only(
    store: Store, sources: Path, home: Path
) -> None:
    outcome = store.install([str(isolated(sources, "a.iso", ["libx==1.0"]))])

    path = venv(home, "a.iso")
    assert str(outcome.changes[0]).endswith("in a virtual environment of its own")
    probe = (
        "import importlib.util, sys, libx, plugbay.sdk, plugbay.protocol;"
        "print(sys.prefix, libx.__version__, importlib.util.find_spec('msgspec'),"
        " plugbay.sdk.__path__[0].startswith(sys.prefix))"
    )
    # The venv runs where it was moved at commit, with libx, plugbay's SDK, not msgspec.
    assert run_in(path, probe) == f"{path} 1.0 None True"
    # pip's script names the final interpreter (the venv was built in staging).
    script = subprocess.run(
        [str(path / "bin/libx-version")], capture_output=True, text=True, check=True
    )
    assert script.stdout == "1.0\n"
    staging = os.fsencode(home / "staging")
    for file in (p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
        assert staging not in file.read_bytes(), file  # pyvenv.cfg, scripts, bytecode
    receipt = json.loads((home / "receipts/a.iso-1.0.0.json").read_bytes())
    assert receipt["python_dependencies"] == ["libx==1.0"]
    assert not (home / "pydeps").exists()
    assert not list((home / "staging").iterdir())


def test_two_isolated_plugins_with_conflicting_versions_of_a_library_both_install(
    store: Store, sources: Path, home: Path
) -> None:
    store.install([str(isolated(sources, "a.one", ["libx==1.0"]))])
    store.install([str(isolated(sources, "a.two", ["libx==2.0"]))])

    read = "import libx; print(libx.__version__)"
    assert run_in(venv(home, "a.one"), read) == "1.0"
    assert run_in(venv(home, "a.two"), read) == "2.0"


def test_a_plugin_with_no_dependencies_gets_a_venv_with_the_sdk(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    # Offline without any folder of wheels: pip would refuse to run, so it did not run.
    Store(home, offline=True).install([str(isolated(sources, "a.bare", []))])

    path = venv(home, "a.bare")
    assert run_in(path, "import plugbay.protocol as p; print(p.__file__)").startswith(
        f"{path}/plugbay-sdk/"
    )
    assert (
        json.loads((home / "receipts/a.bare-1.0.0.json").read_bytes()).get(
            "python_dependencies", []
        )
        == []
    )


def test_removing_a_version_removes_its_venv(store: Store, sources: Path, home: Path) -> None:
    store.install([str(isolated(sources, "a.iso", [], "1.0.0"))])
    store.install([str(isolated(sources, "a.iso", [], "2.0.0"))])
    assert venv(home, "a.iso", "1.0.0").is_dir()
    assert venv(home, "a.iso", "2.0.0").is_dir()

    store.remove(["a.iso@1.0.0"])
    assert not venv(home, "a.iso", "1.0.0").exists()
    assert venv(home, "a.iso", "2.0.0").is_dir()

    store.remove(["a.iso"])
    assert not (home / "venvs/a.iso").exists()


def test_reinstalling_a_version_as_in_process_drops_its_venv(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    folder = isolated(sources, "a.flip", [])
    store = Store(home)
    store.install([str(folder)])
    assert venv(home, "a.flip").is_dir()

    manifest = folder / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('isolation = "process"', ""))
    store.install([str(folder)], force=True)

    assert not venv(home, "a.flip").exists()
    assert (home / "plugins/a/flip/1.0.0").is_dir()


def test_an_in_process_plugin_need_not_agree_with_an_isolated_one_it_depends_on(
    store: Store, sources: Path, home: Path
) -> None:
    # They exchange JSON, not objects: libx 1.0 in the venv and a private libx 2.0
    # in-process (docs/decisions/0005) do not conflict.
    store.install([str(isolated(sources, "a.lib", ["libx==1.0"]))])
    app = write_plugin(
        sources,
        "a.app",
        extra='python-dependencies = ["libx==2.0"]',
        dependencies={"a.lib": ">=1.0.0"},
    )

    store.install([str(app)])

    assert (home / "pydeps/a.app/1.0.0/libx").is_dir()
    assert run_in(venv(home, "a.lib"), "import libx; print(libx.__version__)") == "1.0"


# ---------------------------------------------------------------- failures


def test_a_dependency_that_does_not_resolve_changes_nothing(
    store: Store, sources: Path, home: Path
) -> None:
    store.install([str(isolated(sources, "a.iso", ["libx==1.0"], "1.0.0"))])
    before = tree(home)

    # An upgrade whose requirements cannot be met in its venv (no libx 9.9 anywhere).
    with pytest.raises(StoreError) as excinfo:
        store.install([str(isolated(sources, "a.iso", ["libx==9.9"], "2.0.0"))])

    message = str(excinfo.value)
    assert message.startswith(
        "cannot install the python dependencies of a.iso 2.0.0 in its virtual environment: "
        "pip failed:"
    )
    assert "libx==9.9" in message
    assert "nothing was changed" in message
    assert tree(home) == before
    assert not list((home / "staging").iterdir())
    assert run_in(venv(home, "a.iso"), "import libx; print(libx.__version__)") == "1.0"


def test_an_invalid_requirement_is_refused_before_anything_is_written(
    store: Store, sources: Path, home: Path
) -> None:
    with pytest.raises(StoreError, match=r"a\.bad 1\.0\.0: python-dependencies: 'not valid!'"):
        store.install([str(isolated(sources, "a.bad", ["not valid!"]))])
    assert not (home / "venvs").exists()
    assert not (home / "plugins/a").exists()


def test_offline_without_a_folder_of_wheels_is_refused_before_anything_is_written(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    with pytest.raises(StoreError, match=r"offline: no folder of wheels.*PIP_FIND_LINKS"):
        Store(home, offline=True).install([str(isolated(sources, "a.one", ["libx==1.0"]))])
    assert not (home / "venvs").exists()
    assert not (home / "staging").exists() or not list((home / "staging").iterdir())


# ---------------------------------------------------------------- dry run, verify


def test_dry_run_says_a_venv_would_be_created_and_makes_none(home: Path, sources: Path) -> None:
    folder = isolated(sources, "a.iso", [])

    run = run_plugbay(home, "install", "--dry-run", str(folder))

    assert run.returncode == 0, run.stderr
    assert f"would install a.iso 1.0.0 from {folder} in a virtual environment of its own" in (
        run.stdout
    )
    assert not (home / "venvs").exists()
    assert not (home / "plugins").exists()


def test_verify_reports_a_missing_or_broken_venv(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    folder = isolated(sources, "a.iso", [])
    store = Store(home)
    store.install([str(folder)])
    assert all(r.ok for r in store.verify())

    path = venv(home, "a.iso")
    (path / "bin/python").unlink()
    (path / "bin/python").symlink_to(home / "no-such-python")
    [report] = store.verify()
    assert report.errors == [
        f"its virtual environment {path} is broken: its interpreter {home}/no-such-python is "
        f"gone (reinstall it: plugbay install --force {folder})"
    ]

    shutil.rmtree(path)
    [report] = store.verify()
    assert report.errors == [
        f"its virtual environment {path} is missing (reinstall it: plugbay install --force "
        f"{folder})"
    ]
    verify = run_plugbay(home, "verify")
    assert verify.returncode == 1
    assert "is missing" in verify.stdout + verify.stderr


# ---------------------------------------------------------------- running


def test_isolated_command_runs_the_sdk_server_with_the_venv_interpreter(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    folder = isolated(sources, "a.iso", [])
    Store(home).install([str(folder)])
    path = venv(home, "a.iso")
    installed = home / "plugins/a/iso/1.0.0"

    argv, env = isolated_command(home, "a.iso", "1.0.0", installed)

    assert argv == [str(path / "bin/python"), "-m", "plugbay.sdk.isolated"]
    assert env["VIRTUAL_ENV"] == str(path)
    assert env["PATH"].split(os.pathsep)[0] == str(path / "bin")

    shutil.rmtree(path)
    with pytest.raises(LoadError) as excinfo:
        isolated_command(home, "a.iso", "1.0.0", installed)
    assert excinfo.value.step == "spawn"
    assert str(excinfo.value) == (
        f"a.iso: spawn failed: its virtual environment {path} is missing; "
        f"reinstall it with `plugbay install --force {folder}`"
    )
    # A plugin the store did not install has no receipt: install it from its folder.
    with pytest.raises(LoadError, match=r"reinstall it with `plugbay install /elsewhere/a.hand`"):
        isolated_command(home, "a.hand", "1.0.0", Path("/elsewhere/a.hand"))


def test_an_sdk_copy_from_another_plugbay_is_refreshed_before_the_spawn(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    Store(home).install([str(isolated(sources, "a.iso", []))])
    path = venv(home, "a.iso")
    [pth] = path.glob("lib/python*/site-packages/_plugbay_sdk.pth")
    current = pth.read_text()
    copy = path / "plugbay-sdk" / Path(current.strip()).name
    assert current == f"../../../plugbay-sdk/{copy.name}\n"  # relative: the venv may move
    stamp = json.loads((copy / "plugbay-sdk.json").read_text())
    assert stamp["plugbay"] == run_in(path, "import plugbay; print(plugbay.__version__)")
    assert "plugbay/protocol.py" in stamp["files"]

    # As a home last used by another plugbay leaves it: the .pth names another copy.
    shutil.copytree(copy, path / "plugbay-sdk/0.0.1-000000000000")
    pth.write_text("../../../plugbay-sdk/0.0.1-000000000000\n")
    shutil.rmtree(copy)

    isolated_command(home, "a.iso", "1.0.0", home / "plugins/a/iso/1.0.0")

    assert pth.read_text() == current
    where = run_in(path, "import plugbay.protocol as p; print(p.__file__)")
    assert where == str(copy / "plugbay/protocol.py")
    assert ensure_sdk(path) is False  # up to date: nothing written
    assert not [p.name for p in (path / "plugbay-sdk").iterdir() if p.name.startswith(".")]
