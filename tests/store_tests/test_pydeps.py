"""Python dependencies of in-process plugins: private copies, host reuse, conflicts.

Real pip, real files, no network: the distributions are tiny wheels written here into a
find-links folder, and pip runs with ``--no-index`` (the store's ``offline``) and with
the machine's pip configuration switched off.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import write_plugin
from plugbay.errors import StoreError
from plugbay.store import Store

FAKEDEP_1 = {
    # An absolute import of its own package: redirected into the plugin's namespace too.
    "fakedep/__init__.py": "from fakedep import _impl\n\nVERSION = _impl.VERSION\n",
    "fakedep/_impl.py": "VERSION = '1.0'\n",
}
FAKEDEP_2 = {
    # Imports another private dependency absolutely.
    "fakedep/__init__.py": "import fakehelper\n\nVERSION = '2.0+' + fakehelper.NAME\n",
}
FAKEHELPER = {"fakehelper.py": "NAME = 'helper'\n"}
FAKEDEP_3 = {"fakedep/__init__.py": "import msgspec\n\nVERSION = '3.0'\nHOST = msgspec\n"}
FAKE_MSGSPEC = {"msgspec/__init__.py": "FAKE = True\n"}

TOOL = {
    "tool.py": """\
        import fakedep

        def version():
            return fakedep.VERSION

        def module():
            return fakedep
        """
}


def write_wheel(
    folder: Path,
    name: str,
    version: str,
    files: Mapping[str, str],
    requires: Sequence[str] = (),
) -> Path:
    """Write a pure-Python wheel by hand: the files, a dist-info and a correct RECORD."""
    dist_info = f"{name}-{version}.dist-info"
    entries = dict(files)
    entries[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    entries[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: plugbay-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, text in entries.items():
        digest = hashlib.sha256(text.encode()).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={b64},{len(text.encode())}")
    entries[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in entries.items():
            z.writestr(path, text)
    return wheel


@pytest.fixture
def quiet_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip without the machine's configuration (indexes, find-links, constraints)."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


@pytest.fixture
def links(tmp_path: Path, quiet_pip: None) -> Path:
    """A find-links folder with fakedep 1.0, 2.0 (needs fakehelper), 3.0 (needs msgspec)."""
    folder = tmp_path / "links"
    folder.mkdir()
    write_wheel(folder, "fakedep", "1.0", FAKEDEP_1)
    write_wheel(folder, "fakedep", "2.0", FAKEDEP_2, ["fakehelper>=1"])
    write_wheel(folder, "fakehelper", "1.0", FAKEHELPER)
    write_wheel(folder, "fakedep", "3.0", FAKEDEP_3, ["msgspec>=0.1"])
    write_wheel(folder, "msgspec", "0.0.1", FAKE_MSGSPEC)
    return folder


@pytest.fixture
def store(home: Path, links: Path) -> Store:
    return Store(home, offline=True, find_links=[links])


def plugin(
    root: Path,
    plugin_id: str,
    requirements: Sequence[str],
    *,
    tool: str | None = None,
    dependencies: Mapping[str, str] | None = None,
) -> Path:
    """A plugin folder whose ``tool`` contribution (named ``tool``) uses fakedep."""
    return write_plugin(
        root,
        plugin_id,
        extra=f"python-dependencies = {json.dumps(list(requirements))}",
        dependencies=dependencies,
        contributes={"tool": [{"name": tool, "entry": "tool:version"}]} if tool else None,
        code=TOOL,
    )


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file of the home with its bytes (the lock file aside)."""
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    folder.mkdir()
    return folder


@pytest.fixture
def fresh_modules() -> Iterator[None]:
    """The fake distributions must never become top-level modules of the test process."""
    yield
    for name in ("fakedep", "fakehelper"):
        assert name not in sys.modules


# ---------------------------------------------------------------- private copies


def test_each_plugin_imports_its_own_copy_and_the_host_sees_none(
    store: Store, sources: Path, home: Path, make_host: Any, fresh_modules: None
) -> None:
    one = plugin(sources, "a.one", ["fakedep==1.0"], tool="one")
    two = plugin(sources, "a.two", ["fakedep==2.0"], tool="two")

    store.install([str(one)])
    store.install([str(two)])

    assert (home / "pydeps/a.one/1.0.0/fakedep/__init__.py").is_file()
    assert (home / "pydeps/a.two/1.0.0/fakehelper.py").is_file()  # its dependency's too
    assert not (home / "pydeps/a.one/1.0.0/fakehelper.py").exists()
    receipt = json.loads((home / "receipts/a.two-1.0.0.json").read_bytes())
    assert receipt["python_dependencies"] == ["fakedep==2.0", "fakehelper==1.0"]

    host = make_host(kinds={"tool": None})
    # Both loaded in one host at once, each seeing its own version.
    assert host.get("tool", "one")() == "1.0"
    assert host.get("tool", "two")() == "2.0+helper"
    assert host.get("tool", "one")() == "1.0"
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("fakedep")
    assert not any(p.startswith(str(home)) for p in sys.path)


def test_a_requirement_the_host_satisfies_is_shared_not_installed(
    store: Store, sources: Path, home: Path, make_host: Any
) -> None:
    # msgspec is in the host; fakedep 3.0 needs it too, and gets the host's copy as well.
    folder = write_plugin(
        sources,
        "a.shared",
        extra='python-dependencies = ["msgspec>=0.1", "fakedep==3.0"]',
        contributes={"tool": [{"name": "shared", "entry": "tool:module"}]},
        code=TOOL,
    )

    store.install([str(folder)])

    copies = sorted(p.name for p in (home / "pydeps/a.shared/1.0.0").iterdir())
    assert copies == ["fakedep", "fakedep-3.0.dist-info"]
    receipt = json.loads((home / "receipts/a.shared-1.0.0.json").read_bytes())
    assert receipt["python_dependencies"] == ["fakedep==3.0"]
    fakedep = make_host(kinds={"tool": None}).get("tool", "shared")()
    assert fakedep.VERSION == "3.0"
    assert fakedep.HOST is msgspec


def test_a_plugin_with_only_host_requirements_runs_no_pip_and_gets_no_folder(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    # Offline with no find-links folder: pip would refuse to run, so it did not run.
    Store(home, offline=True).install([str(plugin(sources, "a.host", ["msgspec"]))])

    assert (home / "plugins/a/host/1.0.0").is_dir()
    assert not (home / "pydeps").exists()


def test_removing_a_plugin_removes_its_copies(store: Store, sources: Path, home: Path) -> None:
    store.install([str(plugin(sources, "a.one", ["fakedep==1.0"]))])
    assert (home / "pydeps/a.one/1.0.0").is_dir()

    store.remove(["a.one"])

    assert not (home / "pydeps/a.one").exists()
    assert not (home / "plugins/a/one").exists()


# ---------------------------------------------------------------- refusals


def test_a_conflict_with_the_host_is_refused_before_anything_is_written(
    store: Store, sources: Path, home: Path
) -> None:
    store.install([str(plugin(sources, "a.base", []))])
    before = snapshot(home)
    folder = plugin(sources, "a.old", ["msgspec<0.1"])

    with pytest.raises(StoreError) as excinfo:
        store.install([str(folder)])

    message = str(excinfo.value)
    assert f"a.old 1.0.0 needs msgspec<0.1, but the host has msgspec {msgspec.__version__}" in (
        message
    )
    assert "nothing was changed" in message
    assert snapshot(home) == before


def test_force_gives_the_plugin_its_own_copy_of_a_host_distribution(
    store: Store, sources: Path, home: Path, make_host: Any
) -> None:
    folder = write_plugin(
        sources,
        "a.fake",
        extra='python-dependencies = ["msgspec<0.1"]',
        contributes={"tool": [{"name": "fake", "entry": "tool:msgspec"}]},
        code={"tool.py": "import msgspec\n"},
    )

    outcome = store.install([str(folder)], force=True)

    assert any("needs msgspec<0.1, but the host has msgspec" in w for w in outcome.warnings)
    mine = make_host(kinds={"tool": None}).get("tool", "fake")
    assert mine.FAKE is True
    assert sys.modules["msgspec"] is msgspec
    assert not hasattr(msgspec, "FAKE")


@pytest.mark.parametrize("together", [False, True], ids=["lib-installed-first", "together"])
def test_plugins_that_depend_on_each_other_must_agree(
    store: Store, sources: Path, home: Path, together: bool
) -> None:
    lib = plugin(sources, "a.lib", ["fakedep==1.0"])
    app = plugin(sources, "a.app", ["fakedep==2.0"], dependencies={"a.lib": ">=1.0.0"})
    store.install([str(plugin(sources, "a.base", []))])
    if not together:
        store.install([str(lib)])
    before = snapshot(home)

    with pytest.raises(StoreError) as excinfo:
        store.install([str(app), str(lib)] if together else [str(app)])

    assert (
        "a.app 1.0.0 needs fakedep==2.0, but a.lib 1.0.0, which it depends on, "
        "has its own fakedep 1.0"
    ) in str(excinfo.value)
    assert snapshot(home) == before


def test_a_missing_distribution_is_a_clear_error_and_nothing_is_written(
    store: Store, sources: Path, home: Path
) -> None:
    store.install([str(plugin(sources, "a.base", []))])
    before = snapshot(home)

    with pytest.raises(StoreError) as excinfo:
        store.install([str(plugin(sources, "a.missing", ["nosuchdist==1.0"]))])

    message = str(excinfo.value)
    assert message.startswith("cannot resolve the python dependencies of a.missing 1.0.0:")
    assert "nosuchdist" in message
    assert "nothing was changed" in message
    assert snapshot(home) == before


def test_offline_without_a_folder_of_wheels_says_so(
    home: Path, sources: Path, quiet_pip: None
) -> None:
    with pytest.raises(StoreError, match=r"offline: no folder of wheels.*PIP_FIND_LINKS"):
        Store(home, offline=True).install([str(plugin(sources, "a.one", ["fakedep==1.0"]))])
    assert not (home / "plugins/a").exists()


def test_an_invalid_requirement_names_the_plugin(store: Store, sources: Path) -> None:
    with pytest.raises(StoreError, match=r"a\.bad 1\.0\.0: python-dependencies: 'not valid!'"):
        store.install([str(plugin(sources, "a.bad", ["not valid!"]))])


# ---------------------------------------------------------------- command line


def test_cli_json_prints_only_the_document_and_v_logs_pip(
    home: Path, sources: Path, links: Path
) -> None:
    folder = plugin(sources, "a.one", ["fakedep==1.0"])
    env = {**os.environ, "PIP_FIND_LINKS": str(links)}
    command = [sys.executable, "-m", "plugbay", "--app", "testapp", "--home", str(home)]
    run = subprocess.run(
        [*command, "--offline", "--json", "-v", "install", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["changes"][0]["id"] == "a.one"
    assert "pip: " in run.stderr
    assert (home / "pydeps/a.one/1.0.0/fakedep").is_dir()


def test_a_failure_while_installing_leaves_the_home_unchanged(
    store: Store, sources: Path, home: Path, links: Path
) -> None:
    # Resolving reads only the metadata; installing refuses a file outside the target.
    write_wheel(links, "fakebad", "1.0", {"fakebad.py": "", "../outside.py": "BAD = 1\n"})
    store.install([str(plugin(sources, "a.base", []))])
    before = snapshot(home)

    with pytest.raises(StoreError) as excinfo:
        store.install([str(plugin(sources, "a.bad", ["fakebad==1.0"]))])

    assert str(excinfo.value).startswith(
        "cannot install the python dependencies of a.bad 1.0.0: pip failed:"
    )
    assert snapshot(home) == before
    assert not list((home / "staging").iterdir())
