"""``python -m plugbay.sdk.isolated``: an ordinary Python plugin served out of process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_wire import PYTHON, Child, Spawner, host_env, wait_until

import plugbay

MANIFEST = """\
schema = 1
[plugin]
namespace = "acme"
name = "iso"
version = "1.2.0"
runtime = "python"
isolation = "process"
entry = "iso_pkg.plugin:Plugin"

[contributes]
module = [{ name = "counter", entry = "iso_pkg.mods:Counter", summary = "Counts" }]
hook = [{ name = "on_task", entry = "iso_pkg.hooks:on_task" }, { name = "after_task" }]
command = [{ name = "iso-count", entry = "iso_pkg.cli:count" }]
tool = [{ name = "supplied" }]
"""

CODE = {
    "iso_pkg/__init__.py": """
        from iso_pkg import journal  # an absolute import of its own package

        journal.note("imported")
    """,
    "iso_pkg/journal.py": """
        import os

        def note(text):
            with open(os.environ["JOURNAL"], "a") as f:
                f.write(text + "\\n")
    """,
    "iso_pkg/plugin.py": """
        from iso_pkg import journal


        class Dynamic:
            def hello(self):
                return "dynamic hello"


        class Supplied:
            def use(self):
                return "supplied by register"


        class Plugin:
            def register(self, api):
                journal.note(f"register {api.plugin_id} {api.host.app}")
                api.add("module", "dynamic", Dynamic(), summary="Added in code")
                api.add("tool", "supplied", Supplied())  # declared without an entry

            def init(self, ctx):
                journal.note(f"init {ctx.plugin_id} {ctx.version} {ctx.path.name} {ctx.config}")
                ctx.logger.info("init done", extra={"greeting": ctx.config["greeting"]})
                self.greeting = ctx.config["greeting"]

            async def start(self):
                journal.note("start")

            def health(self):
                return "half awake"

            def stop(self):
                journal.note("stop")

            def after_task(self, task):
                return f"{self.greeting} after {task}"
    """,
    "iso_pkg/mods.py": """
        class Counter:
            def __init__(self):
                self.count = 0

            def bump(self, by=1):
                self.count += by
                return self.count
    """,
    "iso_pkg/hooks.py": """
        def on_task(task):
            return {"task": task, "module": __name__}
    """,
    "iso_pkg/cli.py": """
        def count(args):
            return len(args)
    """,
}


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    spawner = Spawner()
    yield spawner
    spawner.close()


def write_folder(root: Path, manifest: str = MANIFEST, code: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True)
    if manifest:
        (root / "plugin.toml").write_text(manifest)
    for rel, text in (CODE if code is None else code).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def serve(spawn: Spawner, folder: Path, python: str = PYTHON, **env: Any) -> Child:
    """The isolated server for ``folder``, started from another folder (as the venv's
    interpreter would be): only PLUGBAY_PLUGIN_DIR says where the plugin is."""
    elsewhere = folder.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    extra = {"JOURNAL": str(folder.parent / "journal.txt")}
    return spawn(
        [python, "-m", "plugbay.sdk.isolated"],
        cwd=elsewhere,
        env=host_env(folder, plugin_id="acme.iso", extra=extra, **env),
    )


def journal(folder: Path) -> list[str]:
    path = folder.parent / "journal.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_a_manifest_plugin_is_served_with_the_in_process_lifecycle(
    spawn: Spawner, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "iso")
    child = serve(spawn, folder)

    ready = child.ready()

    assert ready["plugin"] == {"id": "acme.iso", "version": "1.2.0"}
    assert ready["contributions"] == {
        "module": [{"name": "counter", "summary": "Counts"}],
        "hook": [{"name": "on_task"}, {"name": "after_task"}],
        "command": [{"name": "iso-count"}],
        "tool": [{"name": "supplied"}],
    }
    assert journal(folder) == []  # nothing of the plugin is imported before initialize

    result = child.initialize({"greeting": "Hi"})

    # register(api) added a module: announced in the answer to initialize.
    assert result == {
        "contributions": {
            "module": [{"name": "dynamic", "methods": ["hello"], "summary": "Added in code"}]
        }
    }
    assert journal(folder) == [
        "imported",
        "register acme.iso testapp",
        "init acme.iso 1.2.0 iso {'greeting': 'Hi'}",
        "start",  # async def start() ran too
    ]
    log = child.notification("log", lambda p: p["message"] == "init done")
    assert log == {
        "level": "info",
        "message": "init done",
        "fields": {"greeting": "Hi", "logger": "plugbay.plugin.acme.iso"},
    }
    assert child.invoke("module:counter", "bump")["result"] == 1
    assert child.invoke("module:counter", "bump", by=2)["result"] == 3  # one instance
    assert child.invoke("module:dynamic", "hello")["result"] == "dynamic hello"
    assert child.invoke("tool:supplied", "use")["result"] == "supplied by register"
    assert child.invoke("hook:on_task", None, task="t")["result"] == {
        "task": "t",
        "module": "iso_pkg.hooks",
    }
    # A hook with no entry is the plugin object's method of that name.
    assert child.invoke("hook:after_task", None, task="t")["result"] == "Hi after t"
    assert child.invoke("command:iso-count", None, ["a", "b"])["result"] == 2
    assert child.call("health")["result"] == {"status": "degraded", "detail": "half awake"}

    assert child.call("shutdown")["result"] == {}
    assert child.wait_exit() == 0
    assert journal(folder)[-1] == "stop"


def test_an_import_error_fails_initialize_with_its_traceback_and_the_server_lives_on(
    spawn: Spawner, tmp_path: Path
) -> None:
    code = dict(CODE)
    code["iso_pkg/plugin.py"] = "import not_installed_anywhere\n"
    folder = write_folder(tmp_path / "iso", code=code)
    child = serve(spawn, folder)
    child.ready()

    answer = child.call("initialize", {"config": {}})

    error = answer["error"]
    assert error["code"] == -32002
    assert "No module named 'not_installed_anywhere'" in error["message"]
    assert error["data"]["type"] == "ModuleNotFoundError"
    assert "iso_pkg/plugin.py" in error["data"]["traceback"]
    assert child.call("health")["result"] == {"status": "ok"}
    assert child.invoke("module:counter", "bump")["error"]["code"] == -32003


def test_a_contribution_without_entry_nobody_supplied_is_an_error_on_its_call(
    spawn: Spawner, tmp_path: Path
) -> None:
    manifest = MANIFEST.replace(
        'command = [{ name = "iso-count", entry = "iso_pkg.cli:count" }]',
        'command = [{ name = "iso-count" }]',
    )
    folder = write_folder(tmp_path / "iso", manifest)
    child = serve(spawn, folder)
    child.ready()
    child.initialize({"greeting": "Hi"})

    error = child.invoke("command:iso-count", None, [])["error"]

    assert error["code"] == -32002
    assert (
        "has no entry in the manifest and the plugin's register(api) did not add it"
        in (error["message"])
    )


def test_the_stores_manifest_json_comes_before_the_authors_file(
    spawn: Spawner, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "iso")
    installed = {
        "format": 1,
        "id": "acme.iso",
        "version": "1.2.1",
        "manifest": {
            "plugin": {"namespace": "acme", "name": "iso", "version": "1.2.1", "entry": None},
            "contributes": {"command": [{"name": "iso-count", "entry": "iso_pkg.cli:count"}]},
        },
        "manifest_file": "plugin.toml",
        "files_sha256": "0" * 64,
        "build": {"tool": "plugbay 0.1.0", "format": 1},
    }
    (folder / "MANIFEST.json").write_text(json.dumps(installed))
    child = serve(spawn, folder)

    ready = child.ready()

    assert ready["plugin"]["version"] == "1.2.1"
    assert ready["contributions"] == {"command": [{"name": "iso-count"}]}
    child.initialize({})
    assert child.invoke("command:iso-count", None, ["x"])["result"] == 1


@pytest.fixture
def bare_venv(tmp_path: Path) -> Path:
    """A virtual environment holding only plugbay's SDK files (as the store makes them)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    source = Path(plugbay.__file__).parent
    copy = tmp_path / "sdk-copy" / "plugbay"
    (copy / "sdk").mkdir(parents=True)
    shutil.copy(source / "__init__.py", copy)
    shutil.copy(source / "protocol.py", copy)
    for path in (source / "sdk").glob("*.py"):
        shutil.copy(path, copy / "sdk")
    [site] = venv.glob("lib/python*/site-packages")
    (site / "_plugbay_sdk.pth").write_text(f"{copy.parent}\n")
    return venv


def test_the_server_needs_nothing_but_the_sdk_files(
    spawn: Spawner, tmp_path: Path, bare_venv: Path
) -> None:
    python = str(bare_venv / "bin" / "python")
    probe = "import importlib.util as u; print(u.find_spec('msgspec'), u.find_spec('yaml'))"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout == "None None\n"
    folder = write_folder(tmp_path / "iso")
    child = serve(spawn, folder, python=python)

    child.ready()
    child.initialize({"greeting": "Hello"})

    assert child.invoke("module:counter", "bump")["result"] == 1
    assert child.invoke("hook:after_task", None, task="t")["result"] == "Hello after t"


def test_a_yaml_manifest_without_pyyaml_is_refused_saying_what_to_do(
    spawn: Spawner, tmp_path: Path, bare_venv: Path
) -> None:
    folder = write_folder(tmp_path / "iso", manifest="")
    (folder / "plugin.yaml").write_text("schema: 1\nplugin: {name: iso, version: 1.0.0}\n")
    child = serve(spawn, folder, python=str(bare_venv / "bin" / "python"))

    assert child.wait_exit() == 1
    wait_until(lambda: "PyYAML is not installed" in child.stderr, 5, "the message")
    assert "write the manifest as plugin.toml" in child.stderr
    assert child.raw == []
