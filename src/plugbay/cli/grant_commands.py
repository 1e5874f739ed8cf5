"""The ``grant`` and ``revoke`` commands: permissions the user grants plugins.

``plugbay grant ID KIND=VALUE…`` (or ``--all``: everything the plugin asks for) and
``plugbay revoke ID [KIND[=VALUE]…]`` change ``[grants."<id>"]`` in ``config.toml``
through :class:`plugbay.store.Store`; what the values mean is :mod:`plugbay.security`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from ..discovery import PluginRecord
    from ..store import Store
    from ..store.grants import GrantChange, GrantOutcome
    from .app import Settings

__all__ = ["add_grant_commands", "grant", "revoke"]

Run = Callable[[click.Context, Callable[["Settings"], "int | None"]], None]


def _permissions(*, bare: bool) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Parse ``KIND=VALUE`` arguments (and, for revoke, a bare ``KIND``) as they are read:
    a bad one is a usage error (exit 2) naming it."""

    def callback(ctx: click.Context, param: click.Parameter, values: Any) -> Any:
        from ..errors import ConfigError
        from ..security import parse_permission, parse_revocation

        parse = parse_revocation if bare else parse_permission
        try:
            return tuple(parse(v) for v in values)
        except ConfigError as exc:
            raise click.BadParameter(f"{exc.field}: {exc.problem}", ctx, param) from None

    return callback


def add_grant_commands(group: click.Group, options: Callable[[Any], Any], run: Run) -> None:
    """Add ``grant`` and ``revoke`` to ``group``; ``run`` runs a command body (app._run)."""

    @group.command("grant")
    @click.argument("plugin_id", metavar="ID")
    @click.argument(
        "permissions", nargs=-1, callback=_permissions(bare=False), metavar="KIND=VALUE…"
    )
    @click.option("--all", "grant_all", is_flag=True, help="Grant everything the plugin asks for.")
    @options
    @click.pass_context
    def grant_(
        ctx: click.Context,
        plugin_id: str,
        permissions: tuple[tuple[str, str], ...],
        grant_all: bool,
    ) -> None:
        """Grant a plugin permissions: env=NAME, network=HOST[:PORT], filesystem.read=PATH,
        filesystem.write=PATH, subprocess=true; or --all that it asks for."""
        if not permissions and not grant_all:
            raise click.UsageError(
                "say what to grant: KIND=VALUE… (e.g. env=API_TOKEN), or --all for everything "
                "the plugin asks for",
                ctx,
            )
        run(ctx, lambda s: grant(s, plugin_id, list(permissions), grant_all=grant_all))

    @group.command("revoke")
    @click.argument("plugin_id", metavar="ID")
    @click.argument(
        "permissions", nargs=-1, callback=_permissions(bare=True), metavar="[KIND[=VALUE]]…"
    )
    @options
    @click.pass_context
    def revoke_(
        ctx: click.Context, plugin_id: str, permissions: tuple[tuple[str, str | None], ...]
    ) -> None:
        """Revoke a plugin's permissions: KIND=VALUE, every value of KIND, or (with none
        given) all of them."""
        run(ctx, lambda s: revoke(s, plugin_id, list(permissions)))


# ---------------------------------------------------------------- bodies


def grant(
    settings: Settings, plugin_id: str, pairs: list[tuple[str, str]], *, grant_all: bool
) -> int:
    """Grant ``pairs`` (and, with ``grant_all``, everything the plugin asks for)."""
    from ..errors import PlanError
    from ..security import asked_for, requested_pairs

    record, hint = _lookup(settings, plugin_id)
    warnings: list[str] = []
    if grant_all:
        if record is None:
            raise PlanError(
                plugin_id,
                f"--all grants what the plugin's manifest asks for, and no plugin {plugin_id} "
                f"is installed or discovered here{hint} (install it first, or give KIND=VALUE "
                "pairs)",
            )
        pairs = [*requested_pairs(record.manifest.permissions), *pairs]
    if record is None:
        warnings.append(f"no plugin {plugin_id} is installed or discovered here{hint}")
    else:
        requested = record.manifest.permissions
        warnings += [
            f"{plugin_id} does not ask for {kind}={value}; granted anyway"
            for kind, value in pairs
            if not asked_for(kind, value, requested)
        ]
    outcome = _store(settings).grant(plugin_id, pairs)
    outcome.warnings[:0] = warnings
    return _render(settings, plugin_id, outcome, record, "grant")


def revoke(settings: Settings, plugin_id: str, patterns: list[tuple[str, str | None]]) -> int:
    """Revoke ``patterns`` (all of the plugin's grants when empty)."""
    outcome = _store(settings).revoke(plugin_id, patterns)
    record, hint = _lookup(settings, plugin_id)
    if record is None and not outcome.changed:
        # Revoking the grants of a removed plugin is normal; a typo that revokes nothing is not.
        outcome.warnings.append(f"no plugin {plugin_id} is installed or discovered here{hint}")
    return _render(settings, plugin_id, outcome, record, "revoke")


# ---------------------------------------------------------------- helpers


def _store(settings: Settings) -> Store:
    from ..config import home_for
    from ..store import Store

    return Store(home_for(settings.app, settings.home), offline=settings.offline)


def _lookup(settings: Settings, plugin_id: str) -> tuple[PluginRecord | None, str]:
    """The plugin's preferred record, or None and a "did you mean" for the warning."""
    catalog = settings.make_host().catalog
    record = catalog.preferred(plugin_id)
    if record is not None:
        return record, ""
    from difflib import get_close_matches

    close = get_close_matches(plugin_id, catalog.ids(), n=1)
    return None, f'; did you mean "{close[0]}"?' if close else ""


def _render(
    settings: Settings,
    plugin_id: str,
    outcome: GrantOutcome,
    record: PluginRecord | None,
    verb: str,
) -> int:
    from ..config import HostConfig
    from ..security import Permissions, enforced, grant_command

    missing: list[tuple[str, str]] | None = None
    if record is not None:
        held = Permissions(HostConfig(grants={plugin_id: outcome.grants}))
        missing = held.missing(plugin_id, record.manifest.permissions)
    if settings.json:
        render.emit_json(
            {
                "id": plugin_id,
                "changes": [
                    {"action": c.action, "kind": c.kind, "value": c.value} for c in outcome.changes
                ],
                "warnings": outcome.warnings,
                "granted": _grants_doc(outcome),
                "missing": None
                if missing is None
                else [{"kind": k, "value": v} for k, v in missing],
            }
        )
        return 0
    for change in outcome.changes:
        if change.action != "keep":
            render.line(str(change))
        elif verb == "revoke":
            if outcome.changed and not settings.quiet:
                # Beside what was revoked: one that was not granted may be a typo; say so.
                render.line(_nothing_to(verb, plugin_id, [change]))
        elif settings.verbose and change.kind is not None:
            render.line(f"keep {change.id} {change.permission} (already granted)")
    for warning in outcome.warnings:
        render.warning(warning)
    if settings.quiet:
        return 0
    if not outcome.changed:
        render.line(_nothing_to(verb, plugin_id, outcome.changes))
    if missing and record is not None and verb == "grant":
        names = ", ".join(f"{k}={v}" for k, v in missing)
        effect = (
            "it does not load until they are granted"
            if enforced(record.manifest.plugin)
            else "not enforced: it runs in-process with the host's rights"
        )
        render.line(f"{plugin_id} still asks for {names} ({effect})")
        render.line(f"  grant with: {grant_command(plugin_id, missing)}")
    if settings.verbose:
        held_now = _held(outcome)
        render.line(f"{plugin_id} holds: {held_now or 'no permissions'}")
    return 0


def _nothing_to(verb: str, plugin_id: str, changes: list[GrantChange]) -> str:
    asked = [c.permission for c in changes if c.kind is not None]
    if verb == "grant" and not asked:
        return f"nothing to grant: {plugin_id} asks for no permissions"
    if verb == "grant":
        return f"nothing to grant: {plugin_id} already holds {', '.join(asked)}"
    if not asked:
        return f"nothing to revoke: {plugin_id} holds no permissions"
    return f"nothing to revoke: {plugin_id} does not hold {', '.join(asked)}"


def _held(outcome: GrantOutcome) -> str:
    from ..security import granted_pairs

    return ", ".join(f"{k}={v}" for k, v in granted_pairs(outcome.grants))


def _grants_doc(outcome: GrantOutcome) -> dict[str, Any]:
    g = outcome.grants
    return {
        "env": list(g.env),
        "network": list(g.network),
        "filesystem": {"read": list(g.filesystem.read), "write": list(g.filesystem.write)},
        "subprocess": g.subprocess,
    }
