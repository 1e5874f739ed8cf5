"""Plugin scaffolds: what ``plugbay new NAME --runtime python|exec|wasm`` writes.

Each runtime's files are templates shipped in this package (``<runtime>/…`` and
``common/…``, named ``*.tmpl`` so that no tool reads them as code), rendered with
:class:`string.Template` where only ``${name}`` is a placeholder: WebAssembly text
(``$input``) and shell prompts (``$ pytest``) are written as they are. A scaffold passes
``plugbay doctor`` and its own ``tests/test_plugin.py`` (with :mod:`plugbay.testing`)
as generated.

The folder is written in a staging folder beside it and renamed into place at the end,
so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from ..errors import ManifestError, PluginError

__all__ = ["RUNTIMES", "Scaffold", "ScaffoldError", "new_plugin"]

Runtime = Literal["python", "exec", "wasm"]
RUNTIMES: tuple[Runtime, ...] = ("python", "exec", "wasm")

#: Output path → template, per runtime. ``{package}`` and ``{contribution}`` in an output
#: path are filled in (str.format) from the variables.
_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (
        ("plugin.toml", "python/plugin.toml.tmpl"),
        ("{package}/__init__.py", "python/init.py.tmpl"),
        ("{package}/plugin.py", "python/plugin.py.tmpl"),
        ("{package}/modules.py", "python/modules.py.tmpl"),
        ("help/{contribution}.md", "common/help.md.tmpl"),
        ("examples/use.py", "common/use.py.tmpl"),
        ("README.md", "python/README.md.tmpl"),
        ("tests/test_plugin.py", "python/test_plugin.py.tmpl"),
    ),
    "exec": (
        ("plugin.toml", "exec/plugin.toml.tmpl"),
        ("plugin.py", "exec/plugin.py.tmpl"),
        ("help/{contribution}.md", "common/help.md.tmpl"),
        ("examples/use.py", "common/use.py.tmpl"),
        ("README.md", "exec/README.md.tmpl"),
        ("tests/test_plugin.py", "exec/test_plugin.py.tmpl"),
    ),
    "wasm": (
        ("plugin.toml", "wasm/plugin.toml.tmpl"),
        ("plugin.wat", "wasm/plugin.wat.tmpl"),
        ("help/{contribution}.md", "common/help.md.tmpl"),
        ("examples/use.py", "common/use.py.tmpl"),
        ("README.md", "wasm/README.md.tmpl"),
        ("tests/test_plugin.py", "wasm/test_plugin.py.tmpl"),
    ),
}

#: The help page's section on the config, per runtime (the wasm scaffold has no config).
_CONFIG_HELP: dict[str, str | None] = {
    "python": "common/config.md.tmpl",
    "exec": "common/config.md.tmpl",
    "wasm": None,
}


class ScaffoldError(PluginError):
    """``plugbay new`` cannot write the scaffold: a bad id, runtime or folder.

    ``subject`` is what is wrong (the id, the runtime, the folder) and ``problem`` says
    why and what to do (the message is the two joined: ``'Acme.x' is not a valid plugin
    id: …``); nothing has been written.
    """

    def __init__(self, subject: str, problem: str) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"{subject} {problem}")


class Scaffold(msgspec.Struct, frozen=True):
    """A plugin folder ``new_plugin`` wrote: its id, runtime, folder and files (relative)."""

    plugin_id: str
    runtime: Runtime
    folder: Path
    files: tuple[str, ...]


class _Template(string.Template):
    # Only ${name} is a placeholder: "$" alone is WebAssembly text's sigil ($input) and a
    # shell prompt's ($ pytest), which the templates hold as they are. string.Template
    # compiles this text itself (the stubs type the attribute as the compiled pattern).
    pattern = r"""
    \$(?:
      (?P<escaped>(?!))
      | (?P<named>(?!))
      | \{(?P<braced>[a-z_][a-z0-9_]*)\}
      | (?P<invalid>(?!))
    )
    """  # type: ignore[assignment]


def new_plugin(
    plugin_id: str,
    runtime: str,
    folder: str | os.PathLike[str] | None = None,
    *,
    app: str = "plugbay",
    api_version: str | None = None,
) -> Scaffold:
    """Write a new plugin ``plugin_id`` (``ns.name`` or ``name``) of ``runtime`` in ``folder``.

    ``folder`` (default: ``./<name>``) must not exist or be empty. ``app`` and
    ``api_version`` are the host the plugin is written for: with an ``api_version`` the
    manifest ``requires`` its major version (``^X.Y``) and the generated test checks it.
    Raises :class:`ScaffoldError` (nothing written) for a bad id, runtime or folder.
    """
    namespace, name = _parse_id(plugin_id)
    if runtime not in RUNTIMES:
        raise ScaffoldError(
            repr(runtime), f"is not a runtime plugbay new knows; use one of {', '.join(RUNTIMES)}"
        )
    target = Path(folder) if folder is not None else Path(name)
    _check_target(target)
    variables = _variables(plugin_id, namespace, name, runtime=runtime, app=app, api=api_version)
    rendered = {
        out.format(**variables): _render(template, variables) for out, template in _FILES[runtime]
    }
    _write(target, rendered)
    return Scaffold(plugin_id, runtime, target, tuple(rendered))


def _parse_id(plugin_id: str) -> tuple[str | None, str]:
    """``(namespace, name)``, checked by the manifest's own rules."""
    from ..manifest import manifest_from_mapping

    namespace, dot, name = plugin_id.rpartition(".")
    plugin: dict[str, str] = {"name": name, "version": "0.1.0"}
    if dot:
        plugin["namespace"] = namespace
    try:
        manifest_from_mapping({"schema": 1, "plugin": plugin}, "<id>")
    except ManifestError as exc:
        raise ScaffoldError(
            repr(plugin_id),
            f"is not a valid plugin id: {exc.problem} (a plugin id is namespace.name or "
            "name, e.g. acme.hello)",
        ) from None
    return (namespace if dot else None), name


def _check_target(target: Path) -> None:
    if target.is_dir():
        if any(target.iterdir()):
            raise ScaffoldError(
                str(target),
                "is not empty; plugbay new writes only into a new or empty folder "
                "(choose another with -d DIR)",
            )
    elif target.exists():
        raise ScaffoldError(str(target), "exists and is not a folder; choose another with -d DIR")


def _variables(
    plugin_id: str,
    namespace: str | None,
    name: str,
    *,
    runtime: str,
    app: str,
    api: str | None,
) -> dict[str, str]:
    # A bare name is not used as the package name on its own: "json" or "test" would
    # shadow modules of the same name for the plugin's code.
    package = f"{namespace}_{name}" if namespace else f"{name}_plugin"
    marker_args = f"app={json.dumps(app)}"
    if api is not None:
        from ..versions import parse_version

        version = parse_version(api)
        requires_line = f'requires = "^{version.major}.{version.minor}"'
        marker_args += f", api_version={json.dumps(api)}"
    else:
        requires_line = (
            '# requires = "^1.0"   # the host API versions it works with '
            "(plugbay --api-version X.Y.Z new … fills it in)"
        )
    config_help = _CONFIG_HELP[runtime]
    return {
        "id": plugin_id,
        "name": name,
        "namespace_line": f'namespace = "{namespace}"\n' if namespace else "",
        "package": package,
        "contribution": name,
        "app": app,
        "app_literal": json.dumps(app),
        "cli": "plugbay" if app == "plugbay" else f"plugbay --app {app}",
        "bundle": f"{plugin_id.replace('.', '-')}-0.1.0.tar.gz",
        "runtime": runtime,
        "requires_line": requires_line,
        "marker_args": marker_args,
        "config_help": _render(config_help, {"id": plugin_id}) if config_help else "",
    }


def _render(template: str, variables: dict[str, str]) -> str:
    text = resources.files(__name__).joinpath(template).read_text(encoding="utf-8")
    return _Template(text).substitute(variables)


def _write(target: Path, files: dict[str, str]) -> None:
    """Write ``files`` into a staging folder beside ``target``, then move them into place.

    A new folder is the staging folder renamed. An existing (empty) one is kept, so that
    ``-d .`` leaves the shell in a folder that still exists: the staged entries are moved
    into it, and taken out again if a move fails.
    """
    target = target.absolute()
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir, not mkdtemp: the folder gets the permissions any new folder gets (umask).
    staging = parent / f".{target.name}-{secrets.token_hex(6)}.new"
    staging.mkdir()
    moved: list[Path] = []
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if not target.exists():
            staging.rename(target)
            return
        for entry in sorted(staging.iterdir()):
            entry.rename(target / entry.name)
            moved.append(target / entry.name)
        staging.rmdir()
    except BaseException:
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
            path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise
