"""plugbay.testing, the pytest plugin for plugin authors, run by pytest itself (pytester).

Each test writes real plugin folders and a test module that uses the fixtures, runs pytest
on them and reads the outcome: what passed, and the one clear message of what did not.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# Imported here, before any inner run: pytester forgets the modules an in-process run
# imported first, and the modules the fixtures import lazily must stay the same objects
# for the tests that run after these.
for _module in (
    "plugbay.host",
    "plugbay.protocol_check",
    "plugbay.runtimes.exec",
    "plugbay.runtimes.exec_proxy",
    "plugbay.runtimes.python",
    "plugbay.security",
    "plugbay.store.grants",
    "plugbay.store.install",
):
    importlib.import_module(_module)

GREET_MANIFEST = """\
schema = 1
[plugin]
namespace = "acme"
name = "greet"
version = "1.2.0"
requires = "^1.0"
entry = "acme_greet:Plugin"

[contributes]
module = [{ name = "greet", entry = "acme_greet:greeter", summary = "Greets" }]

[config.schema]
type = "object"
additionalProperties = false
properties = { greeting = { type = "string", default = "Hello" } }
"""

GREET_CODE = """\
class Greeter:
    greeting = "Hello"

    def run(self, name="world"):
        return f"{self.greeting}, {name}!"


greeter = Greeter()


class Plugin:
    def init(self, ctx):
        greeter.greeting = ctx.config["greeting"]
"""

REMOTE_MANIFEST = """\
schema = 1
[plugin]
namespace = "acme"
name = "remote"
version = "0.3.0"
runtime = "exec"
entry = "python server.py"

[contributes]
module = [{ name = "remote" }]

[permissions]
env = ["REMOTE_TOKEN"]
"""

REMOTE_CODE = r"""
import os
import sys

from plugbay.sdk import Plugin

if "--noisy" in sys.argv:
    # Straight to fd 1 before the SDK takes it (it would move a buffered print aside).
    os.write(1, b"hello from the plugin\n")

plugin = Plugin()


@plugin.module("remote", check=["run"])
class Remote:
    def run(self, name="world"):
        return f"Hi, {name}!"

    def token(self):
        return os.environ.get("REMOTE_TOKEN")


if __name__ == "__main__":
    plugin.run()
"""


# Inner test modules are named test_fx_*: an in-process run imports them by their base
# name, which must not be one of this suite's own (test_host, test_install...).


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest on the test's folder, in this process, with plugbay's plugin as installed.

    Hypothesis's plugin, which these runs do not use, is left out: it takes seconds to set
    up each in-process session.
    """
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def greet_plugin(folder: Path, manifest: str = GREET_MANIFEST) -> Path:
    write(folder, {"plugin.toml": manifest, "acme_greet/__init__.py": GREET_CODE})
    return folder


def remote_plugin(folder: Path, entry: str = "python server.py") -> Path:
    manifest = REMOTE_MANIFEST.replace('"python server.py"', f'"{entry}"')
    write(folder, {"plugin.toml": manifest, "server.py": REMOTE_CODE})
    return folder


# ---------------------------------------------------------------- registration and cost


def test_installing_plugbay_registers_the_plugin_with_pytest() -> None:
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert found.get("plugbay") == "plugbay.testing"


def test_a_run_that_uses_no_fixture_imports_nothing_of_plugbay(pytester: pytest.Pytester) -> None:
    # A fresh process: the plugin comes from the entry point, as in any project.
    pytester.makepyfile(
        test_fx_other="""
        import sys

        def test_nothing_of_plugbay_is_loaded():
            assert "plugbay.testing" in sys.modules
            loaded = sorted(m for m in sys.modules if m.startswith("plugbay."))
            assert loaded == ["plugbay.testing"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1)


def test_the_marker_is_declared(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fx_marked="""
        import pytest

        @pytest.mark.plugbay(app="gopsi")
        def test_marked():
            pass
        """
    )
    result = run(pytester, "--strict-markers")
    result.assert_outcomes(passed=1)
    help_text = run(pytester, "--help")
    help_text.stdout.fnmatch_lines(["*--plugbay-plugin=DIR*", "*plugbay_api_version*"])


# ---------------------------------------------------------------- plugbay_home


def test_home_is_empty_private_and_named_for_the_app(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGBAY_HOME", "/the/users/real/home")
    monkeypatch.setenv("GOPSI_HOME", "/the/users/gopsi/home")
    monkeypatch.setenv("PLUGBAY_COOKIE", "leaked-cookie")
    monkeypatch.setenv("PLUGBAY_PLUGIN_ID", "leaked.id")
    pytester.makepyfile(
        test_fx_home="""
        import os
        import pytest
        from plugbay import Host

        def test_default_app(plugbay_home, tmp_path):
            assert plugbay_home.is_dir() and not any(plugbay_home.iterdir())
            assert plugbay_home.is_relative_to(tmp_path)
            assert os.environ["PLUGBAY_HOME"] == str(plugbay_home)
            assert os.environ["GOPSI_HOME"] == "/the/users/gopsi/home"
            assert "PLUGBAY_COOKIE" not in os.environ
            assert "PLUGBAY_PLUGIN_ID" not in os.environ
            assert Host("plugbay").home == plugbay_home

        @pytest.mark.plugbay(app="gopsi")
        def test_app_from_the_marker(plugbay_home):
            assert os.environ["GOPSI_HOME"] == str(plugbay_home)
            assert Host("gopsi").home == plugbay_home
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2)
    # Only for the test: the outer environment is as it was.
    assert os.environ["PLUGBAY_HOME"] == "/the/users/real/home"
    assert os.environ["GOPSI_HOME"] == "/the/users/gopsi/home"
    assert os.environ["PLUGBAY_COOKIE"] == "leaked-cookie"


# ---------------------------------------------------------------- plugbay_plugin_dir


def test_the_plugin_is_the_nearest_manifest_above_each_test_file(
    pytester: pytest.Pytester,
) -> None:
    root = pytester.path
    for name in ("alpha", "beta"):
        manifest = GREET_MANIFEST.replace('name = "greet"', f'name = "{name}"', 1)
        greet_plugin(root / "plugins" / name, manifest)
        write(
            root / "plugins" / name / "tests",
            {
                f"test_fx_{name}.py": f"""
                def test_dir(plugbay_plugin_dir, plugbay_manifest):
                    assert plugbay_plugin_dir.name == "{name}"
                    assert plugbay_manifest.id == "acme.{name}"
                """
            },
        )
    result = run(pytester, "plugins")
    result.assert_outcomes(passed=2)


def test_the_plugin_folder_from_the_option_or_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    greet_plugin(pytester.path / "src" / "greet")
    remote_plugin(pytester.path / "src" / "remote")
    write(
        pytester.path / "checks",
        {
            "test_fx_which.py": """
            import os

            def test_which(plugbay_manifest):
                assert plugbay_manifest.id == os.environ["EXPECTED_PLUGIN"]
            """
        },
    )
    # The ini option, relative to the ini file.
    pytester.makeini("[pytest]\nplugbay_plugin = src/greet\n")
    monkeypatch.setenv("EXPECTED_PLUGIN", "acme.greet")
    run(pytester, "checks").assert_outcomes(passed=1)
    # The command-line option wins, relative to where pytest starts.
    monkeypatch.setenv("EXPECTED_PLUGIN", "acme.remote")
    monkeypatch.chdir(pytester.path / "checks")
    result = run(pytester, "--plugbay-plugin=../src/remote", ".")
    result.assert_outcomes(passed=1)


def test_no_plugin_found_is_one_clear_setup_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "empty").mkdir()
    pytester.makepyfile(
        test_fx_lost="""
        def test_lost(plugbay_plugin_dir):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*no plugin manifest (plugin.toml, *) in *: pass --plugbay-plugin DIR, or set*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")

    result = run(pytester, "--plugbay-plugin", "empty")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--plugbay-plugin empty: *empty holds no plugin manifest*"])

    result = run(pytester, "--plugbay-plugin", "missing")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--plugbay-plugin missing: *missing is not a folder*"])


# ---------------------------------------------------------------- plugbay_host


def test_the_host_runs_the_plugin_installed_by_the_store(pytester: pytest.Pytester) -> None:
    greet_plugin(pytester.path)
    pytester.makepyfile(
        test_fx_host="""
        import pytest

        hosts = []

        def test_calls_the_module(plugbay_host, plugbay_home):
            assert plugbay_host.get("module", "greet").run("Ada") == "Hello, Ada!"
            record = plugbay_host.catalog.preferred("acme.greet")
            # The installed copy, not the source folder.
            assert record.path == str(plugbay_home / "plugins" / "acme" / "greet" / "1.2.0")
            assert (plugbay_home / "receipts" / "acme.greet-1.2.0.json").is_file()
            assert plugbay_host.state("acme.greet") == "started"
            hosts.append(plugbay_host)

        def test_stopped_at_teardown():
            assert hosts[0].state("acme.greet") == "stopped"

        @pytest.mark.plugbay(config={"greeting": "Hej"})
        def test_config_for_the_plugin(plugbay_host):
            assert plugbay_host.get("module", "greet").run("Ada") == "Hej, Ada!"

        @pytest.mark.plugbay(config={"greeting": 3})
        def test_config_is_validated(plugbay_host):
            from plugbay import LoadError
            with pytest.raises(LoadError, match="greeting"):
                plugbay_host.get("module", "greet")
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=4)


def test_a_plugin_that_cannot_install_fails_setup_with_plugbays_message(
    pytester: pytest.Pytester,
) -> None:
    bad = GREET_MANIFEST.replace('name = "greet"', 'nmae = "greet"', 1)
    greet_plugin(pytester.path / "bad", bad)
    needy = GREET_MANIFEST + '\n[dependencies]\n"acme.base" = "^2.0"\n'
    greet_plugin(pytester.path / "needy", needy)
    base = GREET_MANIFEST.replace('name = "greet"', 'name = "base"')
    greet_plugin(pytester.path / "base", base.replace('"1.2.0"', '"2.1.0"'))
    pytester.makepyfile(
        test_fx_install="""
        import pytest

        def test_install(plugbay_host):
            pass

        @pytest.mark.plugbay(install=["../base"])  # relative to the plugin's folder
        def test_with_its_dependency(plugbay_host):
            assert plugbay_host.load("acme.greet") == "started"
            assert plugbay_host.state("acme.base") == "started"
        """
    )
    result = run(pytester, "--plugbay-plugin", "bad")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ['*the plugin under test has an invalid manifest: *plugin.toml: plugin.nmae*"name"*']
    )
    result = run(pytester, "--plugbay-plugin", "needy")
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines(
        ["*plugbay could not install the plugin under test from *needy: *acme.base*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_the_marker_and_the_ini_file_choose_the_host(pytester: pytest.Pytester) -> None:
    greet_plugin(pytester.path)
    pytester.makeini(
        """
        [pytest]
        plugbay_app = gopsi
        plugbay_api_version = 1.4.0
        plugbay_kinds = module tool
        """
    )
    pytester.makepyfile(
        test_fx_host="""
        import os
        import pytest

        def test_from_the_ini(plugbay_host, plugbay_home):
            assert (plugbay_host.app, plugbay_host.api_version) == ("gopsi", "1.4.0")
            assert set(plugbay_host.kinds) == {"module", "tool"}
            assert os.environ["GOPSI_HOME"] == str(plugbay_home)
            assert plugbay_host.get("module", "greet").run() == "Hello, world!"

        @pytest.mark.plugbay(api_version="2.0.0")
        def test_requires_is_checked(plugbay_host):
            rejected = plugbay_host.load_plan.rejected["acme.greet"]
            assert "needs host API ^1.0, but this host provides 2.0.0" in rejected.reason

        @pytest.mark.plugbay(kinds=["tool"], load_timeout=3.5)
        def test_kinds_and_host_options(plugbay_host):
            assert plugbay_host.load_timeout == 3.5
            codes = [p.code for p in plugbay_host.problems()]
            assert "contribution.unknown-kind" in codes

        @pytest.mark.plugbay(api_versoin="1.0.0")
        def test_unknown_argument(plugbay_host):
            pass

        @pytest.mark.plugbay(home="/elsewhere")
        def test_home_is_the_fixtures(plugbay_host):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.plugbay: unknown argument 'api_versoin'; did you mean \"api_version\"?*",
            "*@pytest.mark.plugbay: home= is set by the plugbay fixtures*",
        ],
        consecutive=False,
    )


def test_an_exec_plugin_gets_the_permissions_it_asks_for_unless_told(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_TOKEN", "s3cret")
    remote_plugin(pytester.path)
    pytester.makepyfile(
        test_fx_remote="""
        import pytest
        from plugbay import LoadError

        def test_granted_by_default(plugbay_host):
            assert plugbay_host.get("module", "remote").token() == "s3cret"

        @pytest.mark.plugbay(grants=[])
        def test_nothing_granted(plugbay_host):
            with pytest.raises(LoadError, match="env=REMOTE_TOKEN is not granted"):
                plugbay_host.get("module", "remote")

        @pytest.mark.plugbay(grants=["env=OTHER"])
        def test_only_what_the_marker_names(plugbay_host):
            assert "OTHER" in plugbay_host.permissions.granted("acme.remote").env
            with pytest.raises(LoadError, match="REMOTE_TOKEN"):
                plugbay_host.get("module", "remote")
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3)


# ---------------------------------------------------------------- plugbay_protocol_check


def test_the_protocol_check_returns_the_report_or_fails_with_it(
    pytester: pytest.Pytester,
) -> None:
    remote_plugin(pytester.path / "remote")
    remote_plugin(pytester.path / "noisy", entry="python server.py --noisy")
    greet_plugin(pytester.path / "greet")
    write(
        pytester.path / "checks",
        {
            "test_fx_protocol.py": """
            import sys

            def test_protocol(plugbay_protocol_check):
                report = plugbay_protocol_check()
                assert report.plugin_id == "acme.remote"
                assert report.case("invoke module:remote.run").passed
                assert report.command[0] == sys.executable

            def test_command_given(plugbay_protocol_check, plugbay_plugin_dir):
                report = plugbay_protocol_check("python server.py", timeout=10)
                assert report.passed
            """
        },
    )
    result = run(pytester, "--plugbay-plugin", "remote", "checks")
    result.assert_outcomes(passed=2)

    result = run(pytester, "--plugbay-plugin", "noisy", "checks", "-k", "not command_given")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*plugbay protocol check of * server.py --noisy:",
            "*FAIL ready: *hello from the plugin*",
            "*passed, 1 failed, * not run",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")

    result = run(pytester, "--plugbay-plugin", "greet", "checks", "-k", "not command_given")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*acme.greet runs in the host (runtime = 'python'*): the protocol check is for*"]
    )


def test_pytest_fixtures_lists_them_with_their_docs(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--fixtures")
    result.stdout.fnmatch_lines(
        [
            "*plugbay_plugin_dir*",
            "*The folder of the plugin under test*",
            "*plugbay_manifest*",
            "*plugbay_home*",
            "*An empty host home for this test*",
            "*plugbay_host*",
            "*A started Host with the plugin under test installed*",
            "*plugbay_protocol_check*",
        ],
        consecutive=False,
    )
