"""plugbay's pytest plugin: fixtures for testing a plugin as a host runs it.

Installing plugbay registers this module with pytest (entry point group ``pytest11``,
name ``plugbay``), so its fixtures are there in every test run without a
``conftest.py``. Only this module, which imports nothing of plugbay at the top, is loaded
then: plugbay's library is imported inside the fixtures, so a project that never asks for
one pays nothing (docs/testing-plugins.md).

Fixtures (all function-scoped):

- ``plugbay_plugin_dir``: the folder of the plugin under test (``--plugbay-plugin DIR``,
  the ini option ``plugbay_plugin``, or the nearest folder holding a manifest at or above
  the test file, then at or above the rootdir);
- ``plugbay_manifest``: its manifest, parsed and validated;
- ``plugbay_home``: an empty host home, with ``<APP>_HOME`` pointing at it and the
  protocol's ``PLUGBAY_*`` variables unset, for this test only;
- ``plugbay_host``: a started :class:`plugbay.Host` on that home, with the plugin under
  test installed into it by the real store (so a bad manifest, a failed build or a failed
  install fails the test's setup); stopped at teardown;
- ``plugbay_protocol_check``: a function that runs the protocol conformance kit against
  the plugin (out-of-process plugins) and fails the test with the report when a case
  fails.

The marker ``@pytest.mark.plugbay(app=…, api_version=…, kinds=…, config=…, grants=…,
install=…, **host_options)`` and the ini options ``plugbay_app``,
``plugbay_api_version`` and ``plugbay_kinds`` say which host the fixtures build.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

if TYPE_CHECKING:
    from .host import Host
    from .manifest import Manifest
    from .protocol_check import CheckReport

__all__ = [
    "ProtocolCheck",
    "plugbay_home",
    "plugbay_host",
    "plugbay_manifest",
    "plugbay_plugin_dir",
    "plugbay_protocol_check",
]

#: Marker arguments of the plugbay fixtures' own (every other one goes to ``Host()``).
_MARKER_ARGS = ("app", "api_version", "kinds", "config", "grants", "install")
#: ``Host()`` arguments the fixtures set themselves: a marker may not change them.
_OWNED_HOST_ARGS = ("home",)

#: What ``plugbay_protocol_check`` is: call it to check the plugin under test.
ProtocolCheck = Callable[..., "CheckReport"]


# ---------------------------------------------------------------- pytest hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--plugbay-plugin DIR`` and the ini options of the plugbay fixtures."""
    group = parser.getgroup("plugbay", "plugbay plugin testing (plugbay.testing)")
    group.addoption(
        "--plugbay-plugin",
        dest="plugbay_plugin",
        metavar="DIR",
        default=None,
        help="folder of the plugin under test (default: the nearest folder holding a "
        "plugin manifest at or above the test file, then at or above the rootdir)",
    )
    parser.addini(
        "plugbay_plugin",
        "folder of the plugin under test, relative to the configuration file",
        default="",
    )
    parser.addini(
        "plugbay_app", "application name of the plugbay_host fixture (default plugbay)", default=""
    )
    parser.addini(
        "plugbay_api_version",
        "host API version of the plugbay_host fixture (default: requires is not checked)",
        default="",
    )
    parser.addini(
        "plugbay_kinds",
        "contribution kinds the plugbay_host fixture accepts (default: any)",
        type="args",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``plugbay`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "plugbay(app=None, api_version=None, kinds=None, config=None, grants=None, "
        "install=(), **host_options): the host the plugbay fixtures build for this test "
        "(see docs/testing-plugins.md)",
    )


# ---------------------------------------------------------------- settings


class _Settings(msgspec.Struct, frozen=True):
    """What the ini options and the ``plugbay`` markers (closest last) ask for."""

    app: str = "plugbay"
    api_version: str | None = None
    kinds: Mapping[str, type | None] | None = None
    config: Mapping[str, Any] | None = None
    grants: tuple[str, ...] | None = None
    install: tuple[str, ...] = ()
    host_options: Mapping[str, Any] = msgspec.field(default_factory=dict)


def _settings(request: pytest.FixtureRequest) -> _Settings:
    ini = request.config
    app = str(ini.getini("plugbay_app") or "plugbay")
    api_version = str(ini.getini("plugbay_api_version")) or None
    kind_names = list(ini.getini("plugbay_kinds"))
    values: dict[str, Any] = {
        "app": app,
        "api_version": api_version,
        "kinds": dict.fromkeys(kind_names) if kind_names else None,
    }
    host_options: dict[str, Any] = {}
    # iter_markers yields the closest first (function, class, module): apply it last.
    for mark in reversed(list(request.node.iter_markers("plugbay"))):
        if mark.args:
            pytest.fail(
                "@pytest.mark.plugbay takes keyword arguments only (app=, api_version=, "
                f"kinds=, config=, grants=, install=, or Host options); got {mark.args!r}",
                pytrace=False,
            )
        for key, value in mark.kwargs.items():
            if key in _MARKER_ARGS:
                values[key] = value
            else:
                _check_host_option(key)
                host_options[key] = value
    return _Settings(
        app=str(values["app"]),
        api_version=None if values["api_version"] is None else str(values["api_version"]),
        kinds=_kinds(values["kinds"]),
        config=values.get("config"),
        grants=None if values.get("grants") is None else _strings(values["grants"], "grants"),
        install=_strings(values.get("install", ()), "install"),
        host_options=host_options,
    )


def _check_host_option(key: str) -> None:
    import inspect

    from .host import Host

    accepted = [p for p in inspect.signature(Host).parameters if p not in _OWNED_HOST_ARGS]
    if key in accepted and key not in _MARKER_ARGS:
        return
    if key in _OWNED_HOST_ARGS:
        pytest.fail(
            f"@pytest.mark.plugbay: {key}= is set by the plugbay fixtures (the throwaway "
            "home); use the plugbay_home fixture to reach it",
            pytrace=False,
        )
    from difflib import get_close_matches

    close = get_close_matches(key, [*_MARKER_ARGS, *accepted], n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    pytest.fail(
        f"@pytest.mark.plugbay: unknown argument {key!r}{hint} (it takes "
        f"{', '.join(_MARKER_ARGS)} and the keyword arguments of plugbay.Host)",
        pytrace=False,
    )


def _kinds(value: Any) -> Mapping[str, type | None] | None:
    """``kinds=`` as Host takes it: a mapping kind → type, or kind names (any object)."""
    if value is None or isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        return dict.fromkeys(value.split())
    return dict.fromkeys(_strings(value, "kinds"))


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    pytest.fail(
        f"@pytest.mark.plugbay: {what}= must be a string or a list of strings, not {value!r}",
        pytrace=False,
    )


# ---------------------------------------------------------------- the plugin under test


def _find_plugin_dir(request: pytest.FixtureRequest) -> Path:
    from .manifest import MANIFEST_NAMES, manifest_in

    config = request.config
    names = ", ".join(MANIFEST_NAMES)
    option = config.getoption("plugbay_plugin")
    ini = str(config.getini("plugbay_plugin"))
    if option or ini:
        if option:
            folder = Path(config.invocation_params.dir, option)
            origin = f"--plugbay-plugin {option}"
        else:
            base = config.inipath.parent if config.inipath is not None else config.rootpath
            folder = base / ini
            origin = f"plugbay_plugin = {ini} (in {config.inipath or config.rootpath})"
        if not folder.is_dir():
            pytest.fail(f"{origin}: {folder} is not a folder", pytrace=False)
        if manifest_in(folder) is None:
            pytest.fail(
                f"{origin}: {folder} holds no plugin manifest ({names}); point it at the "
                "plugin's folder",
                pytrace=False,
            )
        return folder.resolve()
    starts = [Path(request.path).parent, config.rootpath]
    for start in starts:
        for folder in (start, *start.parents):
            if manifest_in(folder) is not None:
                return folder.resolve()
    pytest.fail(
        f"no plugin manifest ({names}) in {starts[0]}, {config.rootpath} or a folder above "
        "them: pass --plugbay-plugin DIR, or set plugbay_plugin in the pytest configuration",
        pytrace=False,
    )


@pytest.fixture
def plugbay_plugin_dir(request: pytest.FixtureRequest) -> Path:
    """The folder of the plugin under test (absolute).

    ``--plugbay-plugin DIR`` (relative to where pytest was started), else the ini option
    ``plugbay_plugin`` (relative to the configuration file), else the nearest folder
    holding a manifest at or above the test file's folder, then at or above the rootdir.
    """
    return _find_plugin_dir(request)


@pytest.fixture
def plugbay_manifest(plugbay_plugin_dir: Path) -> Manifest:
    """The manifest of the plugin under test, parsed and validated (``.id``, ``.version``…).

    An invalid manifest fails the test's setup with plugbay's message (file, field, value).
    """
    from .errors import ManifestError
    from .manifest import load_manifest, manifest_in

    path = manifest_in(plugbay_plugin_dir)
    assert path is not None  # plugbay_plugin_dir holds one
    try:
        return load_manifest(path)
    except ManifestError as exc:
        problem = str(exc)
    # Outside the except block: the report shows plugbay's message, not a chain of two.
    pytest.fail(f"the plugin under test has an invalid manifest: {problem}", pytrace=False)


# ---------------------------------------------------------------- home and host


@pytest.fixture
def plugbay_home(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """An empty host home for this test; ``<APP>_HOME`` points at it until the test ends.

    The app is the marker's or the ini's (default ``plugbay``, so ``PLUGBAY_HOME``). The
    protocol's variables (``PLUGBAY_COOKIE``, ``PLUGBAY_PLUGIN_ID``…) are unset, so that a
    test run from inside a plugin process does not leak them into the plugins it starts.
    """
    from . import protocol as P
    from .config import home_variable

    settings = _settings(request)
    home = tmp_path / "plugbay-home"
    home.mkdir()
    monkeypatch.setenv(home_variable(settings.app), str(home))
    for name in (
        P.VERSIONS_ENV,
        P.COOKIE_ENV,
        P.PLUGIN_ID_ENV,
        P.PLUGIN_DIR_ENV,
        P.PARENT_PID_ENV,
        P.LOG_LEVEL_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def plugbay_host(
    request: pytest.FixtureRequest,
    plugbay_home: Path,
    plugbay_plugin_dir: Path,
    plugbay_manifest: Manifest,
) -> Iterator[Host]:
    """A started Host with the plugin under test installed in ``plugbay_home``.

    The plugin is installed from its folder by :class:`plugbay.store.Store`, as
    ``plugbay install DIR`` does (bundle built, checked and extracted; python
    dependencies and isolated environments made): a problem there fails the test's setup
    with plugbay's message. It is then granted every permission its manifest asks for,
    unless the marker's ``grants=`` names the only ones to grant. The host sees nothing of
    the machine: no entry-point built-ins, no system or project search path. It is
    stopped when the test ends.
    """
    from .errors import PluginError
    from .host import Host
    from .security import parse_permission, requested_pairs
    from .store import Store

    settings = _settings(request)
    plugin_id = plugbay_manifest.id
    store = Store(plugbay_home)
    specs = [*(_spec(s, plugbay_plugin_dir) for s in settings.install), str(plugbay_plugin_dir)]
    problem = None
    try:
        store.install(specs)
    except PluginError as exc:
        problem = (
            f"plugbay could not install the plugin under test from {plugbay_plugin_dir}: {exc}"
        )
    if problem is None:
        try:
            if settings.grants is None:
                pairs = list(requested_pairs(plugbay_manifest.permissions))
            else:
                pairs = [parse_permission(text) for text in settings.grants]
            if pairs:
                store.grant(plugin_id, pairs)
        except PluginError as exc:
            problem = f"@pytest.mark.plugbay: grants=: {exc}"
    if problem is not None:
        # Outside the except blocks: the report shows plugbay's message, not a chain.
        pytest.fail(problem, pytrace=False)
    options: dict[str, Any] = {
        "kinds": settings.kinds,
        "home": plugbay_home,
        "entry_points": False,
        "system_path": plugbay_home / "system-plugins",
        "project_path": plugbay_home / "project-plugins",
    }
    if settings.config is not None:
        options["config"] = {plugin_id: dict(settings.config)}
    options.update(settings.host_options)
    host = Host(settings.app, settings.api_version, **options)
    try:
        host.start()
        yield host
    finally:
        host.stop()


def _spec(spec: str, plugin_dir: Path) -> str:
    """An ``install=`` spec: a path relative to the plugin folder is made absolute."""
    candidate = plugin_dir / spec
    return str(candidate.resolve()) if candidate.exists() else spec


# ---------------------------------------------------------------- protocol check


@pytest.fixture
def plugbay_protocol_check(plugbay_plugin_dir: Path, plugbay_manifest: Manifest) -> ProtocolCheck:
    """A function running the protocol conformance kit against the plugin under test.

    ``plugbay_protocol_check(cmd=None, *, timeout=10.0, cancel_grace=5.0,
    shutdown_grace=5.0, cwd=None, plugin_id=None, env=None, max_line=16 MiB)`` returns
    the :class:`plugbay.protocol_check.CheckReport` when every case passes, and fails the
    test with the report (one line per case, the plugin's last stderr lines) when one does
    not. The waits are longer than a host's (5 s, 1 s and 2 s in ``plugbay
    protocol-check``) so that a busy test machine does not fail a plugin that keeps the
    protocol; pass the host's values to hold the plugin to them.

    Without ``cmd`` (a command line or an argv list) it runs what a host would: the
    manifest's platform program or ``entry`` (``python`` being this interpreter), or
    ``python -m plugbay.sdk.isolated`` for an isolated Python plugin, in the plugin
    folder, expecting the manifest's id in the ready line.
    """

    def check(
        cmd: str | Sequence[str] | None = None,
        *,
        timeout: float = 10.0,
        cancel_grace: float = 5.0,
        shutdown_grace: float = 5.0,
        cwd: str | os.PathLike[str] | None = None,
        plugin_id: str | None = None,
        env: Mapping[str, str] | None = None,
        max_line: int | None = None,
    ) -> CheckReport:
        from .protocol import DEFAULT_MAX_LINE
        from .protocol_check import check as run_kit

        argv = _command(plugbay_plugin_dir, plugbay_manifest) if cmd is None else cmd
        if isinstance(argv, str):
            argv = shlex.split(argv)
        report = run_kit(
            list(argv),
            timeout=timeout,
            cancel_grace=cancel_grace,
            shutdown_grace=shutdown_grace,
            env=env,
            cwd=cwd if cwd is not None else plugbay_plugin_dir,
            plugin_id=plugin_id if plugin_id is not None else plugbay_manifest.id,
            max_line=DEFAULT_MAX_LINE if max_line is None else max_line,
        )
        if not report.passed:
            pytest.fail(_report_text(report), pytrace=False)
        return report

    return check


def _command(plugin_dir: Path, manifest: Manifest) -> list[str]:
    """What a host runs for this plugin; fails the test for an in-process plugin."""
    from .errors import LoadError
    from .host import current_platform
    from .runtimes.exec import resolve_command

    p = manifest.plugin
    if p.runtime == "python" and p.isolation == "process":
        return [sys.executable, "-m", "plugbay.sdk.isolated"]
    if p.runtime != "exec":
        pytest.fail(
            f"{manifest.id} runs in the host (runtime = {p.runtime!r}, isolation = "
            f"{p.isolation!r}): the protocol check is for out-of-process plugins, "
            'runtime = "exec" or isolation = "process"; or pass the command to check as cmd=',
            pytrace=False,
        )
    try:
        return resolve_command(
            manifest.id,
            plugin_dir,
            entry=p.entry,
            platforms=p.platforms,
            platform=current_platform(),
            path=os.environ.get("PATH"),
        )
    except LoadError as exc:
        problem = str(exc)
    pytest.fail(f"cannot run the plugin for the protocol check: {problem}", pytrace=False)


def _report_text(report: CheckReport) -> str:
    """The report as ``plugbay protocol-check`` prints it, with the plugin's stderr."""
    lines = [f"plugbay protocol check of {shlex.join(report.command)}:"]
    lines += [f"  {c.status.upper()} {c.name}: {c.reason}" for c in report.cases]
    counts = report.counts()
    summary = f"{counts['pass']} passed, {counts['fail']} failed"
    if counts["skip"]:
        summary += f", {counts['skip']} not run"
    lines.append(summary)
    if report.stderr:
        lines.append(f"last lines of the plugin's stderr ({len(report.stderr)}):")
        lines += [f"  {text}" for text in report.stderr]
    return "\n".join(lines)
