"""``plugbay protocol-check``: run the conformance kit against any plugin executable.

The command parses, makes one call (:func:`plugbay.protocol_check.check`) and renders the
report: one line per case and a summary, or one JSON document with ``--json``. It exits 0
when every case passes, 1 when one fails, 2 on a usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from ..protocol_check import CheckReport
    from .app import Settings

__all__ = ["add_protocol_commands", "protocol_check"]


def add_protocol_commands(
    group: click.Group,
    options: Callable[[Any], Any],
    run: Callable[[click.Context, Callable[[Settings], int | None]], None],
) -> None:
    """Register ``protocol-check`` on ``group``.

    ``options`` adds the global options to a command; ``run`` runs a command body (logging,
    errors turned into one line and an exit code).
    """

    @group.command(
        "protocol-check",
        # Everything from CMD on belongs to CMD, options included (`node --inspect x.js`).
        context_settings={"allow_interspersed_args": False},
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=5.0,
        show_default=True,
        help="Seconds each case may wait for the plugin (ready line, each answer).",
    )
    @click.option(
        "--plugin-id",
        help="Set PLUGBAY_PLUGIN_ID to this id and require the ready line to name it.",
    )
    @click.option(
        "--cwd",
        type=click.Path(file_okay=False, exists=True),
        help="Working folder of the plugin, and its PLUGBAY_PLUGIN_DIR (default: this one).",
    )
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    @options
    @click.pass_context
    def protocol_check_command(
        ctx: click.Context,
        timeout: float,
        plugin_id: str | None,
        cwd: str | None,
        command: tuple[str, ...],
    ) -> None:
        """Check that the plugin started by COMMAND [ARG]... keeps the plugbay protocol.

        Starts it as a host would (twice: the second run checks that it exits at the end
        of its stdin) and prints one PASS/FAIL line per case. Exit 0 when all pass.
        """
        run(
            ctx,
            lambda s: protocol_check(
                s, list(command), timeout=timeout, plugin_id=plugin_id, cwd=cwd
            ),
        )


def protocol_check(
    settings: Settings,
    command: list[str],
    *,
    timeout: float,
    plugin_id: str | None,
    cwd: str | None,
) -> int:
    """Run the kit and render its report; the exit code: 0 all passed, 1 a case failed."""
    from ..protocol_check import check

    report = check(command, timeout=timeout, plugin_id=plugin_id, cwd=cwd)
    if settings.json:
        render.emit_json(report.to_dict())
    else:
        _render_text(settings, report)
    return 0 if report.passed else 1


def _render_text(settings: Settings, report: CheckReport) -> None:
    for case in report.cases:
        if settings.quiet and case.status != "fail":
            continue
        timing = f" ({case.seconds:.2f} s)" if settings.verbose and case.status != "skip" else ""
        render.line(f"{case.status.upper()} {case.name}: {case.reason}{timing}")
    counts = report.counts()
    summary = f"{counts['pass']} passed, {counts['fail']} failed"
    if counts["skip"]:
        summary += f", {counts['skip']} not run"
    if not settings.quiet or not report.passed:
        render.line(summary)
    if report.stderr and settings.verbose:
        sys.stderr.write(f"last lines of the plugin's stderr ({len(report.stderr)}):\n")
        sys.stderr.writelines(f"  {text}\n" for text in report.stderr)
    elif report.stderr and not report.passed and not settings.quiet:
        sys.stderr.write("(run with -v to see the last lines of the plugin's stderr)\n")
