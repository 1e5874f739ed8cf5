"""The ``opsrun`` command: ``opsrun run PLAY.yml`` (or ``opsrun PLAY.yml``) runs plays;
``opsrun module …`` is plugbay's command line, mounted, working on opsrun's home.

Exit codes: 0 every task ok or changed, 1 a task failed or the play file is wrong, 2 a
usage error.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from plugbay.cli import mount

from .host import API_VERSION, make_host
from .redact import Redactor

if TYPE_CHECKING:
    from plugbay import Host
    from plugbay.cli.app import Settings

    from .play import Play
    from .runner import Outcome

__all__ = ["cli", "main"]


class _OpsrunGroup(click.Group):
    """``opsrun PLAY.yml …`` is short for ``opsrun run PLAY.yml …``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0].endswith((".yml", ".yaml")) and self.get_command(ctx, args[0]) is None:
            return "run", self.get_command(ctx, "run"), args
        return super().resolve_command(ctx, args)


@click.group(cls=_OpsrunGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opsrun", message="%(prog)s %(version)s")
def cli() -> None:
    """Run YAML plays of tasks, each done by a module (built in or from a plugin).

    \b
      opsrun site.yml                  run a play file (same as: opsrun run site.yml)
      opsrun site.yml --check          say what would change; change nothing
      opsrun module list --kind module the modules: built in and from plugins
      opsrun module install SPEC       add a plugin (a folder, a .tar.gz, git+URL, an id)
      opsrun module help NAME          a module's help
    """


@cli.command("run")
@click.argument("playbooks", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Ask each module what would change; change nothing.")
@click.option(
    "-e",
    "--extra-vars",
    "extra",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a variable (over the play's vars). Repeat for more.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v artifacts, -vv arguments (secrets masked) and logs, -vvv debug logs and tracebacks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document and nothing else.")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="opsrun's home (default $OPSRUN_HOME or ~/.opsrun).",
)
def run(
    playbooks: tuple[str, ...],
    *,
    check: bool,
    extra: tuple[str, ...],
    verbose: int,
    as_json: bool,
    home: str | None,
) -> None:
    """Run the plays of PLAYBOOKS in order; stop at the first failed task."""
    from .play import PlayError, load_plays
    from .runner import Runner

    redactor = Redactor()
    _configure_logging(redactor, verbose, as_json)
    extra_vars: dict[str, Any] = {}
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise click.UsageError(f"-e {item!r}: expected NAME=VALUE, e.g. -e vm_name=web-1")
        extra_vars[name] = value
    try:
        plays = [play for path in playbooks for play in load_plays(path)]
    except PlayError as exc:
        _fail(str(exc), as_json, redactor)
    out = _Printer(redactor, verbose, as_json, check)
    host = make_host(home)
    try:
        runner = Runner(host, redactor, check, extra_vars, report=out.task, on_play=out.play)
        outcomes: list[Outcome] = runner.run(plays)
    finally:
        host.stop()
    failed = out.recap(outcomes)
    sys.exit(1 if failed else 0)


class _Printer:
    """Text as tasks end (or one JSON document at the end); every line scrubbed of secrets."""

    def __init__(self, redactor: Redactor, verbose: int, as_json: bool, check: bool) -> None:
        self.redactor = redactor
        self.verbose = verbose
        self.as_json = as_json
        self.check = check

    def echo(self, text: str) -> None:
        if not self.as_json:
            click.echo(self.redactor.text(text))

    def play(self, play: Play) -> None:
        mode = " (check mode: nothing is changed)" if self.check else ""
        self.echo(f"PLAY [{play.name}]{mode}")

    def task(self, outcome: Outcome) -> None:
        if self.as_json:
            return
        self.echo(f"{outcome.status}: [{outcome.task}] {outcome.module}: {outcome.msg}".rstrip())
        if self.verbose >= 2 and outcome.args:
            self.echo(f"    args: {_compact(self.redactor.value(outcome.args))}")
        if self.verbose >= 1:
            for key, value in outcome.artifacts.items():
                self.echo(f"    {key}: {_compact(self.redactor.value(value, _secret(key)))}")
        if self.verbose >= 3 and outcome.detail:
            click.echo(self.redactor.text(outcome.detail).rstrip(), err=True)

    def recap(self, outcomes: list[Outcome]) -> bool:
        """Print the recap (or the JSON document); whether a task failed."""
        stats = {s: sum(o.status == s for o in outcomes) for s in ("ok", "changed", "failed")}
        stats["skipped"] = sum(o.status == "skipped" for o in outcomes)
        if self.as_json:
            doc = {
                "ok": stats["failed"] == 0,
                "check": self.check,
                "stats": stats,
                "tasks": [self.redactor.value(o.to_json()) for o in outcomes],
            }
            click.echo(self.redactor.text(json.dumps(doc, default=str)))
        else:
            self.echo("RECAP " + " ".join(f"{k}={v}" for k, v in stats.items()))
        return stats["failed"] > 0


def _secret(key: str) -> bool:
    from .redact import SECRET_NAME

    return bool(SECRET_NAME.search(key))


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _fail(message: str, as_json: bool, redactor: Redactor) -> NoReturn:
    message = redactor.text(message)
    if as_json:
        click.echo(json.dumps({"ok": False, "error": message}))
    else:
        click.echo(f"opsrun: {message}", err=True)
    sys.exit(1)


def _configure_logging(redactor: Redactor, verbose: int, as_json: bool) -> None:
    """Logs on stderr: warnings; -vv info; -vvv debug (every line scrubbed of secrets)."""
    from .redact import RedactingFormatter

    level = {0: logging.WARNING, 1: logging.WARNING, 2: logging.INFO}.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("plugbay",):  # plugbay's CLI setup may have stopped propagation
        logging.getLogger(name).propagate = True


def _host_factory(settings: Settings) -> Host:
    return make_host(settings.home)


# `opsrun module list|info|help|install|remove|…`: plugbay's commands on opsrun's home.
_module_group = mount(
    cli, "opsrun", name="module", api_version=API_VERSION, host_factory=_host_factory
)
_resolve_module_command = _module_group.resolve_command


def _module_then_verb(
    ctx: click.Context, args: list[str]
) -> tuple[str | None, click.Command | None, list[str]]:
    """``opsrun module NAME help`` is ``opsrun module help NAME``."""
    if len(args) >= 2 and args[1] == "help" and _module_group.get_command(ctx, args[0]) is None:
        args = ["help", args[0], *args[2:]]
    return _resolve_module_command(ctx, args)


_module_group.resolve_command = _module_then_verb  # type: ignore[method-assign]


def _list_modules_by_default(group: click.Group) -> None:
    """``opsrun module list`` lists modules (built in and from plugins); ``--plugins`` the
    plugins, as ``plugbay list`` does."""
    command = group.commands["list"]
    for param in command.params:
        if param.name == "kind":
            param.default = "module"
            param.help = "List contributions of this kind (default: module)."
    command.params.append(
        click.Option(["--plugins"], is_flag=True, help="List the plugins instead of modules.")
    )
    command.help = (
        "Modules, built in and from plugins (--plugins: the plugins, with their version, "
        "origin, runtime and state)."
    )
    listing = command.callback
    assert listing is not None

    def callback(*, plugins: bool, kind: str | None, **rest: Any) -> Any:
        return listing(kind=None if plugins else kind, **rest)

    command.callback = callback


_list_modules_by_default(_module_group)


def main(argv: list[str] | None = None) -> None:
    """The ``opsrun`` console script."""
    cli.main(args=argv, prog_name="opsrun")
