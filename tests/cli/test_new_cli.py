"""``plugbay new``: scaffolds that pass ``doctor``, ``build`` and their own tests as written.

Each runtime's scaffold is generated once (module fixture) by the real command; its own
``tests/test_plugin.py`` is run by pytest in a fresh process with this environment's
Python, as its author would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import NOISE, one_error

RUNTIMES = ("python", "exec", "wasm")


def plugbay(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, in a fresh process, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "plugbay", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def scaffolds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One scaffold per runtime, side by side in one folder of plugins."""
    plugins = tmp_path_factory.mktemp("new") / "plugins"
    plugins.mkdir()
    out = {}
    for runtime in RUNTIMES:
        result = plugbay(plugins, "new", f"acme.hello_{runtime}", "--runtime", runtime)
        assert result.returncode == 0, result.stderr
        folder = plugins / f"hello_{runtime}"  # the default: the name without its namespace
        lines = result.stdout.splitlines()
        assert lines[0] == f"created acme.hello_{runtime} ({runtime}) in hello_{runtime}"
        assert lines[-1] == f"test it: cd hello_{runtime} && pytest"
        assert "  plugin.toml" in lines
        assert "  tests/test_plugin.py" in lines
        out[runtime] = folder
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_scaffold_passes_its_own_tests(scaffolds: dict[str, Path], runtime: str) -> None:
    folder = scaffolds[runtime]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PLUGBAY_"))}
    # Hypothesis's plugin (installed here for plugbay's own tests, unused by the scaffold)
    # takes seconds to start; the run is otherwise what the plugin's author runs.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:hypothesispytest"],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected = 4 if runtime == "exec" else 3  # exec: the protocol check too
    assert f"{expected} passed" in result.stdout.splitlines()[-1], result.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_scaffold_builds_a_bundle_without_its_tests(
    scaffolds: dict[str, Path], runtime: str, tmp_path: Path
) -> None:
    result = plugbay(tmp_path, "build", str(scaffolds[runtime]), "-o", str(tmp_path / "dist"))
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "dist" / f"acme-hello_{runtime}-0.1.0.tar.gz"
    assert bundle.is_file()
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert {"MANIFEST.json", "FILES.json", "plugin.toml", "README.md"} <= names
    assert f"help/hello_{runtime}.md" in names
    assert "examples/use.py" in names
    assert not any(n.startswith(("tests", ".pytest_cache")) or "__pycache__" in n for n in names)


def test_the_scaffolds_pass_doctor(scaffolds: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    plugins = scaffolds["python"].parent
    (home / "config.toml").write_text(f"paths = [{json.dumps(str(plugins))}]\n")

    result = plugbay(tmp_path, "--home", str(home), "--json", "doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["plugins"] == 3
    assert [p for p in report["problems"] if p["severity"] != "info"] == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_example_uses_the_plugin_from_a_host(scaffolds: dict[str, Path], runtime: str) -> None:
    result = subprocess.run(
        [sys.executable, "examples/use.py", "Ada"],
        capture_output=True,
        text=True,
        cwd=scaffolds[runtime],
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, Ada!\n"


def test_every_placeholder_is_filled(scaffolds: dict[str, Path]) -> None:
    for folder in scaffolds.values():
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert "${" not in path.read_text(), path


def test_the_host_app_and_api_version_shape_the_scaffold(tmp_path: Path) -> None:
    result = plugbay(
        tmp_path, "--app", "gopsi", "--api-version", "2.3.1", "new", "tool", "-d", "t", "-q"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    folder = tmp_path / "t"
    manifest = (folder / "plugin.toml").read_text()
    assert 'requires = "^2.3"' in manifest
    assert "namespace" not in manifest
    # A bare name is not the package's own name: "json" or "test" would shadow modules.
    assert 'entry = "tool_plugin.plugin:Plugin"' in manifest
    assert (folder / "tool_plugin" / "modules.py").is_file()
    test = (folder / "tests" / "test_plugin.py").read_text()
    assert 'pytestmark = pytest.mark.plugbay(app="gopsi", api_version="2.3.1")' in test
    assert "plugbay --app gopsi build" in (folder / "README.md").read_text()


def test_json_names_what_was_written(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()  # an empty folder is fine

    result = plugbay(tmp_path, "--json", "new", "acme.w", "--runtime", "wasm", "-d", "empty")

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc == {
        "id": "acme.w",
        "runtime": "wasm",
        "folder": str(tmp_path / "empty"),
        "files": [
            "plugin.toml",
            "plugin.wat",
            "help/w.md",
            "examples/use.py",
            "README.md",
            "tests/test_plugin.py",
        ],
    }
    written = sorted(
        str(p.relative_to(tmp_path / "empty")) for p in (tmp_path / "empty").rglob("*")
    )
    assert written == sorted(["examples", "help", "tests", *doc["files"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no staging folder left


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Acme.hello", "'Acme.hello' is not a valid plugin id: 'Acme' is not a valid namespace"),
        ("acme.hello-world", "'acme.hello-world' is not a valid plugin id: 'hello-world' is not"),
        ("acme.", "'acme.' is not a valid plugin id: '' is not a valid name"),
        ("a.b.c", "'a.b.c' is not a valid plugin id: 'a.b' is not a valid namespace"),
    ],
)
def test_a_bad_id_is_one_error_and_writes_nothing(tmp_path: Path, name: str, problem: str) -> None:
    message = one_error(plugbay(tmp_path, "new", name))
    assert message.startswith(problem), message
    assert message.endswith("(a plugin id is namespace.name or name, e.g. acme.hello)")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_empty_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    (tmp_path / "afile").write_text("")

    message = one_error(plugbay(tmp_path, "new", "acme.mine", "-d", "mine"))
    assert message == (
        "mine is not empty; plugbay new writes only into a new or empty folder "
        "(choose another with -d DIR)"
    )
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "keep me"

    message = one_error(plugbay(tmp_path, "new", "acme.mine", "-d", "afile"))
    assert message == "afile exists and is not a folder; choose another with -d DIR"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"]


def test_an_unknown_runtime_is_a_usage_error(tmp_path: Path) -> None:
    result = plugbay(tmp_path, "new", "acme.x", "--runtime", "go")
    assert result.returncode == 2
    assert "'go' is not one of 'python', 'exec', 'wasm'" in result.stderr
    assert not any(noise in result.stderr for noise in NOISE)
    assert list(tmp_path.iterdir()) == []
