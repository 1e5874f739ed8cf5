"""Command-line interface (DESIGN §7). Each command parses, makes one library call, renders.

Global options (``--app``, ``--home``, ``--api-version``, ``--json``, ``-v``, ``-q``,
``--offline``) are accepted before or after the command name: they are declared on the
group and on every command, and all write to one :class:`Settings`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from .options import index_option, requirements_option

if TYPE_CHECKING:
    from ..host import Host

__all__ = ["Settings", "add_plugin_commands", "command_group", "main", "mount"]

F = TypeVar("F", bound=Callable[..., Any])


class Settings:  # noqa: PLW1641 - unhashable (mutable), like the dataclass it was
    """What the global options say; shared by the group and its commands.

    A plain class: a dataclass would import ``dataclasses`` (and ``inspect``) and a msgspec
    Struct ``msgspec``, and ``plugbay --help`` imports neither. It compares and prints like
    the dataclass it was.
    """

    def __init__(  # noqa: PLR0917 - the dataclass's signature, kept
        self,
        app: str = "plugbay",
        home: Path | None = None,
        api_version: str | None = None,
        json: bool = False,
        verbose: int = 0,
        quiet: bool = False,
        offline: bool = False,
        host_factory: Callable[[Settings], Host] | None = None,
        mounted: bool = False,
        reserved: tuple[str, ...] = (),
        own_commands: Callable[[click.Context], list[str]] | None = None,
    ) -> None:
        self.app = app
        self.home = home
        self.api_version = api_version
        self.json = json
        self.verbose = verbose
        self.quiet = quiet
        self.offline = offline
        self.host_factory = host_factory
        self.mounted = mounted
        #: The host CLI's own command names, which plugin commands may not take (mounted only).
        self.reserved = reserved
        #: How to list them, given the context of the group plugbay is mounted in.
        self.own_commands = own_commands

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return vars(self) == vars(other)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__qualname__}({shown})"

    def make_host(self) -> Host:
        """The host commands work on: the mounting app's own, or a plain one."""
        if self.host_factory is not None:
            return self.host_factory(self)
        from ..host import Host

        return Host(self.app, self.api_version, home=self.home)


class _Group(click.Group):
    """Our group: remembers the defaults a mounting host gave it."""

    def __init__(self, *args: Any, defaults: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.defaults = defaults


def _settings(ctx: click.Context) -> Settings:
    found = ctx.find_object(Settings)
    if found is not None:
        return found
    node: click.Context | None = ctx
    defaults = Settings()
    while node is not None:
        if isinstance(node.command, _Group):
            defaults = node.command.defaults
            break
        node = node.parent
    settings = Settings(**vars(defaults))
    ctx.obj = settings
    return settings


def _setter(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        settings = _settings(ctx)
        if value is None or value is False or (field == "verbose" and not value):
            return
        if field == "verbose":
            settings.verbose = max(settings.verbose, int(value))
        elif field == "home":
            settings.home = Path(value)
        else:
            setattr(settings, field, value)

    return callback


def _global_options(mounted: bool) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        opts = [
            click.option(
                "--json",
                "json_",
                is_flag=True,
                expose_value=False,
                callback=_setter("json"),
                help="Print one JSON document on stdout and nothing else.",
            ),
            click.option(
                "-v",
                "--verbose",
                count=True,
                expose_value=False,
                callback=_setter("verbose"),
                help="More detail: -v reasons, -vv debug logs, -vvv tracebacks.",
            ),
            click.option(
                "-q",
                "--quiet",
                is_flag=True,
                expose_value=False,
                callback=_setter("quiet"),
                help="Print only errors.",
            ),
            click.option(
                "--offline",
                is_flag=True,
                expose_value=False,
                callback=_setter("offline"),
                help="Never open a network connection.",
            ),
            click.option(
                "--home",
                type=click.Path(file_okay=False),
                metavar="DIR",
                expose_value=False,
                callback=_setter("home"),
                help="The host home (default $<APP>_HOME or ~/.<app>).",
            ),
        ]
        if not mounted:
            opts += [
                click.option(
                    "--app",
                    metavar="NAME",
                    expose_value=False,
                    callback=_setter("app"),
                    help="The application whose plugins to manage (default plugbay).",
                ),
                click.option(
                    "--api-version",
                    metavar="X.Y.Z",
                    expose_value=False,
                    callback=_setter("api_version"),
                    help="Check plugins' `requires` against this host API version.",
                ),
            ]
        for opt in reversed(opts):
            f = opt(f)
        return f

    return decorate


def _run(ctx: click.Context, action: Callable[[Settings], int | None]) -> None:
    """Run a command body: configure logging, turn errors into one line and an exit code."""
    settings = _settings(ctx)
    _configure_logging(settings)
    from ..errors import PluginError
    from . import render

    node: click.Context | None = ctx
    while node is not None and not isinstance(node.command, _Group):
        node = node.parent
    host_ctx = node.parent if node is not None else None  # mounted: the host's own command
    if node is not None and host_ctx is not None:
        if settings.own_commands is not None:
            settings.reserved = tuple(settings.own_commands(host_ctx))
        # Hints such as "run: plugbay grant …" name the command as the user types it.
        render.name_command(node.command_path, cast(click.Group, node.command).list_commands(node))
    else:
        render.name_command("plugbay", ())

    try:
        code = action(settings)
    except PluginError as exc:
        render.error(settings, exc)
        ctx.exit(1)
    except OSError as exc:
        render.error(settings, exc)
        ctx.exit(1)
    ctx.exit(code or 0)


def _configure_logging(settings: Settings) -> None:
    import logging

    class _Formatter(logging.Formatter):
        """``LEVEL [plugin.id] message``: the plugin id is a structured field of the record."""

        def format(self, record: logging.LogRecord) -> str:
            plugin = getattr(record, "plugin_id", None)
            where = f"[{plugin}]" if plugin else record.name
            return f"{record.levelname.lower()} {where}: {super().format(record)}"

    level = (
        logging.ERROR
        if settings.quiet
        else {0: logging.WARNING, 1: logging.INFO}.get(settings.verbose, logging.DEBUG)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("plugbay")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def command_group(
    app: str | None = None,
    *,
    name: str = "plugbay",
    api_version: str | None = None,
    host_factory: Callable[[Settings], Host] | None = None,
) -> click.Group:
    """The plugbay commands as a click group.

    Standalone (``app=None``) it takes ``--app`` and ``--api-version``. Mounted in a host's
    CLI, pass the host's ``app`` name and ``api_version`` and, to include its built-in
    plugins and kinds, a ``host_factory`` that builds its :class:`~plugbay.Host` from the
    :class:`Settings`.
    """
    mounted = app is not None
    defaults = Settings(
        app=app or "plugbay",
        api_version=api_version,
        host_factory=host_factory,
        mounted=mounted,
    )
    options = _global_options(mounted)

    @click.group(
        name=name,
        cls=_Group,
        defaults=defaults,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @options
    def group() -> None:
        """Find, install, inspect and load plugins."""

    if not mounted:  # (a host's own command has its own version)
        from .. import __version__

        group = click.version_option(
            __version__, "--version", prog_name="plugbay", message="%(prog)s %(version)s"
        )(group)

    @group.command("list")
    @click.option(
        "--all", "show_all", is_flag=True, help="Include shadowed copies and every version."
    )
    @click.option("--kind", help="List contributions of this kind instead of plugins.")
    @options
    @click.pass_context
    def list_(ctx: click.Context, show_all: bool, kind: str | None) -> None:
        """Plugins: id, active version, other versions, origin, runtime, state."""
        from . import commands

        _run(ctx, lambda s: commands.list_plugins(s, show_all=show_all, kind=kind))

    @group.command("info")
    @click.argument("plugin_id", metavar="ID")
    @options
    @click.pass_context
    def info(ctx: click.Context, plugin_id: str) -> None:
        """Manifest, contributions, dependencies, permissions and paths of one plugin."""
        from . import commands

        _run(ctx, lambda s: commands.info(s, plugin_id))

    @group.command("help")
    @click.argument("name")
    @click.option("--kind", help="The contribution's kind, when one name has several.")
    @options
    @click.pass_context
    def help_(ctx: click.Context, name: str, kind: str | None) -> None:
        """Help of a contribution (e.g. a module) or of a plugin."""
        from . import commands

        _run(ctx, lambda s: commands.show_help(s, name, kind))

    @group.command("doctor")
    @options
    @click.pass_context
    def doctor(ctx: click.Context) -> None:
        """Problems: invalid manifests, missing deps, conflicts, shadowing. Exit 1 on errors."""
        from . import commands

        _run(ctx, commands.doctor)

    @group.command("load")
    @click.argument("plugin_id", metavar="ID")
    @options
    @click.pass_context
    def load(ctx: click.Context, plugin_id: str) -> None:
        """Load one plugin in a throwaway host: state, timings, health."""
        from . import commands

        _run(ctx, lambda s: commands.load(s, plugin_id))

    _add_store_commands(group, options)

    # The commands kept in modules of their own: each module's add_<name>_commands(group,
    # options, run) adds them.
    for module in _COMMAND_MODULES:
        add = getattr(
            importlib.import_module(f".{module}_commands", __package__), f"add_{module}_commands"
        )
        add(group, options, _run)

    @group.command(
        "run",
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )
    @click.argument("command")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @options
    @click.pass_context
    def run(ctx: click.Context, command: str, args: tuple[str, ...]) -> None:
        """Run a command a plugin contributes, with ARGS passed on to it."""
        from . import commands

        _run(ctx, lambda s: commands.run_plugin_command(s, command, list(args)))

    @group.command("status")
    @options
    @click.pass_context
    def status(ctx: click.Context) -> None:
        """Load every plugin in a throwaway host: states, timings, health."""
        from . import commands

        _run(ctx, commands.status)

    return group


#: grant, revoke; protocol-check; lock, sync; key …, sign; watch; index build; push; new.
_COMMAND_MODULES = ("grant", "protocol", "lock", "key", "watch", "index", "oci", "new")


def _add_store_commands(group: click.Group, options: Callable[[Any], Any]) -> None:
    """build, install, remove, use, enable, disable, verify: the store's commands."""

    @group.command("build")
    @click.argument("folder", type=click.Path(file_okay=False))
    @click.option(
        "-o",
        "--out",
        type=click.Path(file_okay=False),
        help="Folder to write the bundle into (default: the current folder).",
    )
    @click.option(
        "--sign",
        "key_file",
        type=click.Path(dir_okay=False),
        metavar="KEY",
        help="Sign the bundle with this private key (NAME.key from plugbay key generate).",
    )
    @options
    @click.pass_context
    def build(ctx: click.Context, folder: str, out: str | None, key_file: str | None) -> None:
        """Build the reproducible bundle of the plugin in FOLDER."""
        from . import store_commands

        _run(ctx, lambda s: store_commands.build(s, folder, out, key_file))

    @group.command("install")
    @click.argument("specs", nargs=-1, metavar="[SPEC]...")
    @requirements_option
    @click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
    @click.option("--force", is_flag=True, help="Install even if installed plugins' needs break.")
    @click.option("--no-deps", is_flag=True, help="Do not install dependencies.")
    @click.option(
        "--no-activate",
        is_flag=True,
        help="Install beside the versions already there; keep the active version active.",
    )
    @click.option(
        "--locked",
        is_flag=False,
        flag_value="plugbay.lock",
        default=None,
        metavar="[FILE]",
        help="Install only what the lock file (default ./plugbay.lock) pins.",
    )
    @index_option("install")
    @options
    @click.pass_context
    def install(
        ctx: click.Context,
        specs: tuple[str, ...],
        requirement_files: tuple[str, ...],
        *,
        dry_run: bool,
        force: bool,
        no_deps: bool,
        no_activate: bool,
        locked: str | None,
        indexes: tuple[str, ...],
    ) -> None:
        """Install plugins: ids (ns.name, ns.name@1.2.0, ns.name>=1,<2), folders, .tar.gz
        bundles, http(s) URLs, git+URL[@ref], oci://HOST/REPO/ns.name[:VERSION], or -r FILE."""
        from . import store_commands

        _run(
            ctx,
            lambda s: store_commands.install(
                s,
                list(specs),
                list(requirement_files),
                dry_run=dry_run,
                force=force,
                no_deps=no_deps,
                activate=not no_activate,
                locked=locked,
                indexes=list(indexes),
            ),
        )

    @group.command("remove")
    @click.argument("refs", nargs=-1, required=True, metavar="ID[@VERSION]...")
    @click.option("--force", is_flag=True, help="Remove even if installed plugins need it.")
    @click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
    @options
    @click.pass_context
    def remove(ctx: click.Context, refs: tuple[str, ...], force: bool, dry_run: bool) -> None:
        """Remove ID (every version) or ID@VERSION."""
        from . import store_commands

        _run(ctx, lambda s: store_commands.remove(s, list(refs), force=force, dry_run=dry_run))

    @group.command("use")
    @click.argument("ref", metavar="ID@VERSION")
    @click.option("--force", is_flag=True, help="Switch even if installed plugins' needs break.")
    @options
    @click.pass_context
    def use(ctx: click.Context, ref: str, force: bool) -> None:
        """Make ID@VERSION the active version."""
        from . import store_commands

        _run(ctx, lambda s: store_commands.use(s, ref, force=force))

    @group.command("enable")
    @click.argument("plugin_id", metavar="ID")
    @options
    @click.pass_context
    def enable(ctx: click.Context, plugin_id: str) -> None:
        """Let a disabled plugin load again."""
        from . import store_commands

        _run(ctx, lambda s: store_commands.set_enabled(s, plugin_id, enabled=True))

    @group.command("disable")
    @click.argument("plugin_id", metavar="ID")
    @options
    @click.pass_context
    def disable(ctx: click.Context, plugin_id: str) -> None:
        """Keep a plugin installed but do not load it."""
        from . import store_commands

        _run(ctx, lambda s: store_commands.set_enabled(s, plugin_id, enabled=False))

    @group.command("verify")
    @click.argument("ids", nargs=-1, metavar="[ID]...")
    @options
    @click.pass_context
    def verify(ctx: click.Context, ids: tuple[str, ...]) -> None:
        """Re-hash installed files against FILES.json and the receipts; exit 1 on a mismatch."""
        from . import store_commands

        _run(ctx, lambda s: store_commands.verify(s, list(ids)))

    from .download_commands import add_download_commands  # download

    add_download_commands(group, options, _run)


def mount(
    parent: click.Group,
    app: str,
    *,
    name: str = "plugins",
    api_version: str | None = None,
    host_factory: Callable[[Settings], Host] | None = None,
    plugin_commands: bool = True,
) -> click.Group:
    """Add the plugbay commands to a host's own click group, as ``<parent> <name> …``.

    With ``plugin_commands``, the commands plugins contribute become subcommands of
    ``parent`` too (see :func:`add_plugin_commands`).
    """
    group = command_group(app, name=name, api_version=api_version, host_factory=host_factory)
    parent.add_command(group, name)
    if isinstance(group, _Group):
        # Read at run time, so that commands the host adds after mount() count too.
        group.defaults.own_commands = parent.list_commands
    if plugin_commands:
        add_plugin_commands(parent, app, api_version=api_version, host_factory=host_factory)
    return group


def add_plugin_commands(
    parent: click.Group,
    app: str,
    *,
    api_version: str | None = None,
    host_factory: Callable[[Settings], Host] | None = None,
) -> None:
    """Make the commands plugins contribute subcommands of ``parent``.

    They are listed and helped from the manifests (no plugin code is imported until one
    runs). A name ``parent`` already has, or that is reserved, or that another plugin took
    first, is refused (``plugbay doctor`` says why). Arguments reach the plugin sanitised;
    ``requires-auth`` commands need the host's authoriser (``Host(authorize=...)``, made
    by ``host_factory``).
    """
    defaults = Settings(app=app, api_version=api_version, host_factory=host_factory, mounted=True)
    own_get, own_list = parent.get_command, parent.list_commands
    key = f"plugbay.plugin-commands.{id(parent)}"

    def plugin_commands(ctx: click.Context) -> tuple[Host, dict[str, Any]]:
        # One host per invocation (kept in the root context), not per process: the home,
        # and so the plugins, may differ from one invocation to the next.
        meta = ctx.find_root().meta
        if key not in meta:
            settings = ctx.find_object(Settings) or Settings(**vars(defaults))
            host = settings.make_host()
            usable, _ = host.commands(reserved=own_list(ctx))
            meta[key] = (host, usable)
        found: tuple[Host, dict[str, Any]] = meta[key]
        return found

    def list_commands(ctx: click.Context) -> list[str]:
        return sorted({*own_list(ctx), *plugin_commands(ctx)[1]})

    def get_command(ctx: click.Context, name: str) -> click.Command | None:
        command = own_get(ctx, name)
        if command is not None:
            return command
        host, usable = plugin_commands(ctx)
        info = usable.get(name)
        if info is None:
            return None
        return _plugin_command(host, info, reserved=own_list(ctx))

    # Instance attributes: only this group changes, whatever class the host gave it.
    parent.list_commands = list_commands  # type: ignore[method-assign]
    parent.get_command = get_command  # type: ignore[method-assign,assignment]


def _plugin_command(host: Host, info: Any, reserved: list[str]) -> click.Command:
    def callback(args: tuple[str, ...], show_help: bool) -> None:
        ctx = click.get_current_context()
        if show_help:
            from . import commands

            commands.show_command_help(host, info)
            ctx.exit(0)
        from ..errors import PluginError
        from . import commands, render

        settings = _settings(ctx)
        try:
            with commands.command_output(info.plugin_id, settings.verbose, settings.quiet):
                code = host.run_command(info.name, list(args), reserved=reserved)
        except PluginError as exc:
            render.error(settings, exc)
            code = 1
        finally:
            host.stop()  # the plugin's stop() runs, as after `plugbay run`
        ctx.exit(code)

    return click.Command(
        info.name,
        callback=callback,
        params=[
            click.Option(["--help", "show_help"], is_flag=True, expose_value=True, hidden=True),
            click.Argument(["args"], nargs=-1, type=click.UNPROCESSED),
        ],
        short_help=info.summary or f"(from {info.plugin_id})",
        help=f"{info.summary}\n\nProvided by the plugin {info.plugin_id}.",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )


def main(argv: list[str] | None = None) -> None:
    """The ``plugbay`` console script."""
    group = command_group()
    group.main(args=argv, prog_name="plugbay")
