"""The plugbay command: global options, exit codes, JSON purity, help, mounting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from conftest import write_plugin
from plugbay.cli import command_group, main, mount


def plugbay(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real command in a fresh process, isolated from the machine's plugins."""
    return subprocess.run(
        [sys.executable, "-m", "plugbay", "--app", "testapp", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=home,
        check=False,
    )


def invoke(home: Path, *args: str) -> Any:
    runner = CliRunner()
    return runner.invoke(
        command_group(), ["--app", "testapp", "--home", str(home), *args], catch_exceptions=False
    )


MARKER_CODE = {
    "marked/__init__.py": """
        import os, pathlib
        pathlib.Path(os.environ["PLUGBAY_TEST_MARKER"]).write_text("imported")
        class Plugin:
            pass
        class Mod:
            pass
        """
}


@pytest.fixture
def installed(home: Path) -> Path:
    """A home with two plugins: acme.hello (with help) and acme.marked (writes a marker)."""
    plugins = home / "plugins"
    write_plugin(
        plugins,
        "acme.hello",
        "0.1.0",
        entry="acme_hello:Plugin",
        contributes={
            "module": [{"name": "hello_world", "summary": "Greets", "entry": "acme_hello:Hello"}]
        },
        code={
            "acme_hello/__init__.py": "class Plugin: pass\nclass Hello: pass\n",
            "help/hello_world.md": "# hello_world\n\nGreets **anyone**.\n",
        },
    )
    write_plugin(
        plugins,
        "acme.marked",
        "2.0.0",
        entry="marked:Plugin",
        contributes={"module": [{"name": "marked_mod", "entry": "marked:Mod", "summary": "Marks"}]},
        code=MARKER_CODE,
    )
    return home


def test_global_options_before_or_after_the_command(installed: Path) -> None:
    before = invoke(installed, "--json", "list")
    after = invoke(installed, "list", "--json")
    assert before.exit_code == after.exit_code == 0
    assert json.loads(before.stdout) == json.loads(after.stdout)
    ids = [p["id"] for p in json.loads(after.stdout)["plugins"]]
    assert ids == ["acme.hello", "acme.marked"]


def test_list_text_and_requires_note(installed: Path) -> None:
    result = invoke(installed, "list")
    assert result.exit_code == 0
    assert "acme.hello" in result.stdout
    assert "0.1.0" in result.stdout
    assert "not checked" in result.stdout
    checked = invoke(installed, "list", "--api-version", "1.0.0")
    assert "not checked" not in checked.stdout


def test_api_version_disables_incompatible_plugins(home: Path) -> None:
    write_plugin(home / "plugins", "acme.future", requires=">=2.0.0")
    result = invoke(home, "--api-version", "1.5.0", "list", "--json")
    plugin = json.loads(result.stdout)["plugins"][0]
    assert plugin["state"] == "disabled"
    assert "needs host API >=2.0.0, but this host provides 1.5.0" in plugin["reason"]
    doctor = invoke(home, "--api-version", "1.5.0", "doctor")
    assert doctor.exit_code == 1
    assert "acme.future" in doctor.stdout


def test_read_only_commands_import_no_plugin_code(installed: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = {"PLUGBAY_TEST_MARKER": str(marker)}
    for args in (
        ["list"],
        ["list", "--kind", "module"],
        ["info", "acme.marked"],
        ["help", "marked_mod"],
        ["help", "acme.marked"],
        ["doctor"],
        ["list", "--json"],
    ):
        result = plugbay(installed, *args, **env)
        assert result.returncode == 0, (args, result.stderr)
        assert not marker.exists(), f"plugbay {' '.join(args)} imported plugin code"
    loaded = plugbay(installed, "load", "acme.marked", **env)
    assert loaded.returncode == 0, loaded.stderr
    assert marker.read_text() == "imported"


PROBE = textwrap.dedent(
    """
    import json, os, sys
    from plugbay.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
    with open(os.environ["PROBE_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
    """
)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["list"], ["list", "--json"]])
def test_fast_paths_do_not_import_heavy_modules(
    installed: Path, tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--app", "testapp", "--home", str(installed), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PROBE_OUT": str(out), "PLUGBAY_TEST_MARKER": str(tmp_path / "m")},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(out.read_text()))
    for heavy in ("rich", "resolvelib", "yaml", "asyncio", "jsonschema", "marked"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy
    if args in (["--help"], ["--version"]):
        assert "plugbay.host" not in modules
        assert "msgspec" not in modules


def test_version_names_the_package_version() -> None:
    from plugbay import __version__

    result = subprocess.run(
        [sys.executable, "-m", "plugbay", "--version"], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"plugbay {__version__}\n", "")


def test_help_renders_markdown_and_json(installed: Path) -> None:
    text = invoke(installed, "help", "hello_world")
    assert text.exit_code == 0
    assert "Greets anyone." in text.stdout
    assert "**" not in text.stdout
    doc = json.loads(invoke(installed, "help", "hello_world", "--json").stdout)
    assert doc == {
        "kind": "module",
        "name": "hello_world",
        "plugin": "acme.hello",
        "version": "0.1.0",
        "markdown": "# hello_world\n\nGreets **anyone**.\n",
    }
    plugin = json.loads(invoke(installed, "help", "acme.marked", "--json").stdout)
    assert plugin["kind"] == "plugin"
    assert "marked_mod" in plugin["markdown"]


def test_errors_are_one_line_with_exit_1(installed: Path) -> None:
    result = plugbay(installed, "info", "acme.helo")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        'error: acme.helo: no such plugin is installed; did you mean "acme.hello"?'
    ]
    as_json = plugbay(installed, "info", "acme.helo", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["type"] == "PlanError"
    traced = plugbay(installed, "info", "acme.helo", "-vvv")
    assert "Traceback" in traced.stderr


def test_usage_errors_exit_2(installed: Path) -> None:
    assert plugbay(installed, "frobnicate").returncode == 2
    assert plugbay(installed, "info").returncode == 2
    assert plugbay(installed, "list", "--bogus").returncode == 2


def test_doctor_reports_and_exits_1_on_errors(home: Path) -> None:
    plugins = home / "plugins"
    write_plugin(plugins, "acme.good")
    bad = plugins / "broken"
    bad.mkdir(parents=True)
    (bad / "plugin.toml").write_text('[plugin]\nname = "broken"\nversion = "1.0"\n')
    write_plugin(plugins, "acme.needy", dependencies={"acme.absent": ">=1.0.0"})
    result = invoke(home, "doctor")
    assert result.exit_code == 1
    assert "plugin.version" in result.stdout
    assert "'1.0' is not a valid version" in result.stdout
    assert "needs acme.absent >=1.0.0, but acme.absent is not installed" in result.stdout
    doc = json.loads(invoke(home, "doctor", "--json").stdout)
    assert doc["ok"] is False
    assert {p["severity"] for p in doc["problems"]} >= {"error"}
    listed = json.loads(invoke(home, "list", "--json").stdout)
    assert [p["id"] for p in listed["plugins"]] == ["acme.good", "acme.needy"]


def test_doctor_reports_contribution_conflicts_without_loading(home: Path, tmp_path: Path) -> None:
    plugins = home / "plugins"
    for pid in ("acme.one", "acme.two"):
        write_plugin(
            plugins,
            pid,
            entry="marked:Plugin",
            contributes={"module": [{"name": "same", "entry": "marked:Mod"}]},
            code=MARKER_CODE,
        )
    marker = tmp_path / "marker"
    result = plugbay(home, "doctor", PLUGBAY_TEST_MARKER=str(marker))
    assert result.returncode == 0
    assert "module 'same' is contributed by acme.one and acme.two; acme.one wins" in result.stdout
    assert not marker.exists()


def test_load_and_status_report_failures(home: Path) -> None:
    plugins = home / "plugins"
    write_plugin(
        plugins, "acme.ok", entry="okmod:Plugin", code={"okmod.py": "class Plugin:\n    pass\n"}
    )
    write_plugin(
        plugins,
        "acme.boom",
        entry="boom:Plugin",
        code={
            "boom.py": """
                class Plugin:
                    def init(self, ctx):
                        raise RuntimeError("no database")
                """
        },
    )
    ok = invoke(home, "load", "acme.ok")
    assert ok.exit_code == 0
    assert "started" in ok.stdout
    boom = invoke(home, "load", "acme.boom")
    assert boom.exit_code == 1
    assert "init failed: RuntimeError: no database" in boom.stdout
    detailed = invoke(home, "load", "acme.boom", "-v")
    assert "Traceback" in detailed.stdout
    assert "boom.py" in detailed.stdout
    status = json.loads(invoke(home, "status", "--json").stdout)
    states = {p["id"]: p["state"] for p in status["plugins"]}
    assert states == {"acme.boom": "failed", "acme.ok": "started"}
    assert status["ok"] is False


def test_load_and_status_import_every_contribution(home: Path) -> None:
    """A plugin that starts (no plugin object) but whose module does not import is failed
    in load and status, with the import error, not reported as started."""
    write_plugin(
        home / "plugins",
        "acme.typo",
        contributes={"module": [{"name": "typo", "entry": "typo_mod:Typo"}]},
        code={"typo_mod.py": "import yamll  # no such library\nclass Typo:\n    pass\n"},
    )
    write_plugin(
        home / "plugins",
        "acme.fine",
        contributes={"module": [{"name": "fine", "entry": "fine_mod:Fine"}]},
        code={"fine_mod.py": "class Fine:\n    pass\n"},
    )
    loaded = invoke(home, "load", "acme.typo")
    assert loaded.exit_code == 1
    assert "acme.typo: import typo failed: ModuleNotFoundError: No module named 'yamll'" in (
        loaded.stdout
    )
    status = json.loads(invoke(home, "status", "--json").stdout)
    by_id = {p["id"]: p for p in status["plugins"]}
    assert by_id["acme.typo"]["state"] == "failed"
    assert by_id["acme.typo"]["reason"] == (
        "import typo failed: ModuleNotFoundError: No module named 'yamll'"
    )
    assert by_id["acme.fine"]["state"] == "started"
    assert status["ok"] is False


def test_list_all_shows_shadowed_copies(home: Path, tmp_path: Path) -> None:
    write_plugin(home / "plugins", "acme.dup", "1.0.0")
    project = tmp_path / "proj"
    write_plugin(project / ".testapp" / "plugins", "acme.dup", "2.0.0")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "plugbay",
            "--app",
            "testapp",
            "--home",
            str(home),
            "list",
            "--all",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    doc = json.loads(result.stdout)["plugins"][0]
    assert doc["version"] == "2.0.0"
    assert doc["origin"] == "project"
    assert doc["shadowed"] == [
        {"version": "1.0.0", "origin": "user", "path": str(home / "plugins" / "acme.dup")}
    ]


def test_mounted_in_a_host_cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(home / "plugins", "acme.hello", contributes={"module": [{"name": "hello_world"}]})
    monkeypatch.setenv("OPSRUN_HOME", str(home))

    @click.group()
    def opsrun() -> None:
        """An example host."""

    mount(opsrun, "opsrun", name="module", api_version="1.0.0")
    runner = CliRunner()
    result = runner.invoke(
        opsrun, ["module", "list", "--kind", "module", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["contributions"][0]["name"] == "hello_world"
    helped = runner.invoke(opsrun, ["module", "--help"])
    assert "--app" not in helped.stdout  # the host fixes its own app name

    # Hints in messages name the command as the user types it, mounted or not.
    asking = write_plugin(
        home.parent / "src", "acme.asks", extra='[permissions]\nenv = ["ACME_TOKEN"]\n'
    )
    installed = runner.invoke(opsrun, ["module", "install", str(asking)], catch_exceptions=False)
    assert installed.exit_code == 0, installed.output
    assert "grant them with: opsrun module grant acme.asks env=ACME_TOKEN" in installed.stdout
    assert "plugbay grant" not in installed.output
    alone = invoke(home, "install", str(asking), "--force")
    assert "grant them with: plugbay grant acme.asks env=ACME_TOKEN" in alone.stdout


def test_main_is_the_console_script(installed: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--app", "testapp", "--home", str(installed), "--no-such-option"])
    assert exit_info.value.code == 2


def test_install_shows_progress_on_a_terminal_only(home: Path, tmp_path: Path) -> None:
    import pty

    source = write_plugin(tmp_path / "src", "acme.prog", code={"prog.py": "x = 1\n"})
    bundle_dir = tmp_path / "dist"
    built = plugbay(home, "build", str(source), "-o", str(bundle_dir))
    assert built.returncode == 0, built.stderr
    bundle = next(bundle_dir.glob("*.tar.gz"))

    # Not a terminal: nothing but the outcome.
    plain = plugbay(home, "install", "--dry-run", str(bundle))
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr == ""

    # A terminal on stderr: a progress bar is drawn there, and stdout is unchanged.
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "plugbay",
                "--app",
                "testapp",
                "--home",
                str(home),
                "install",
                "--dry-run",
                str(bundle),
            ],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
            check=False,
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert proc.stdout == plain.stdout
    assert b"reading" in drawn
