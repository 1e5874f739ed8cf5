"""The bodies of the commands: one library call each, then rendering.

Each function takes the :class:`~plugbay.cli.app.Settings` and returns the exit code.
None of ``list``, ``info``, ``help`` and ``doctor`` imports plugin code: they read
manifests only.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store.layout import Layout, receipt_name
from . import render

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from ..discovery import PluginRecord, Problem
    from ..errors import PluginError
    from ..host import Host, PluginStatus
    from ..manifest import Manifest
    from ..plan import LoadPlan
    from ..store.layout import Receipt
    from .app import Settings


def _requires_note(settings: Settings) -> str | None:
    if settings.api_version is None:
        return "host API requirements (requires) not checked: no --api-version given"
    return None


def _state(plan: LoadPlan, plugin_id: str) -> tuple[str, str | None]:
    rejected = plan.rejected.get(plugin_id)
    if rejected is not None:
        return rejected.state, rejected.reason
    return ("enabled", None) if plan.get(plugin_id) is not None else ("unknown", None)


def list_plugins(settings: Settings, *, show_all: bool, kind: str | None) -> int:
    host = settings.make_host()
    catalog = host.discover()
    plan = host.plan()
    if kind is not None:
        return _list_contributions(settings, host, kind)
    signatures = _Signatures(host)
    plugins: list[dict[str, Any]] = []
    for plugin_id in catalog.ids():
        versions = catalog.versions(plugin_id, include_shadowed=True)
        live = [r for r in versions if not r.shadowed]
        planned = plan.get(plugin_id)
        chosen = planned.record if planned else catalog.preferred(plugin_id)
        if chosen is None:  # every copy is shadowed: only --all shows them
            chosen = versions[0]
        state, reason = _state(plan, plugin_id)
        signature, signer = signatures.of(chosen)
        # The version the `active` file names; the planner may load another one.
        active = next((r.version for r in live if r.active), None)
        plugins.append(
            {
                "id": plugin_id,
                "version": chosen.version,
                "active": active,
                "other_versions": sorted({r.version for r in live} - {chosen.version}),
                "origin": chosen.origin,
                "runtime": chosen.manifest.plugin.runtime,
                "state": state,
                "reason": reason,
                "signature": signature,
                "signer": signer,
                "refused_copies": _refused_copies(plan, plugin_id),
                "description": chosen.manifest.plugin.description,
                "path": chosen.path,
                "shadowed": [
                    {"version": r.version, "origin": r.origin, "path": r.path}
                    for r in versions
                    if r.shadowed
                ]
                if show_all
                else [],
            }
        )
    if settings.json:
        render.emit_json(
            {
                "app": settings.app,
                "api_version": settings.api_version,
                "requires_checked": settings.api_version is not None,
                "plugins": plugins,
            }
        )
        return 0
    if not plugins:
        if not settings.quiet:
            render.line(f"no plugins found for {settings.app} (searched: {_searched(host)})")
        return 0
    rows = [
        [
            p["id"],
            p["version"],
            ", ".join(p["other_versions"]) or "-",
            p["origin"],
            p["runtime"],
            p["signature"] or "-",
            p["state"],
        ]
        for p in plugins
    ]
    render.table(
        ["ID", "VERSION", "OTHER VERSIONS", "ORIGIN", "RUNTIME", "SIGNATURE", "STATE"], rows
    )
    for p in plugins:
        if p["reason"] and (settings.verbose or p["state"] != "enabled"):
            render.line(f"  {p['id']}: {p['reason']}")
        if p["state"] == "enabled" and p["active"] not in (None, p["version"]):
            render.line(
                f"  {p['id']}: {p['version']} loads, not the active {p['active']}, which does "
                "not fit this host or the plugins that depend on it"
            )
        for refused in p["refused_copies"]:
            render.line(f"  {p['id']}: {refused['reason']}")
        if p["signer"] and settings.verbose:
            render.line(f"  {p['id']}: signed by key {p['signer']}")
        for copy in p["shadowed"]:
            render.line(
                f"  {p['id']} {copy['version']} ({copy['origin']}, {copy['path']}) is shadowed"
            )
    note = _requires_note(settings)
    if note and not settings.quiet:
        render.line(f"note: {note}")
    return 0


class _Signatures:
    """Signature status of store-installed versions, as their receipts record it.

    No signature is read and ``cryptography`` is not imported (``verify`` checks them);
    a listing takes every status from one small cache file (plugbay.store.signers).
    """

    def __init__(self, host: Host) -> None:
        import os

        # Absolute, as discovery's paths are: --home may be given relative.
        self.layout = Layout(Path(os.path.abspath(host.home)))
        self._signers: dict[str, str | None] | None = None

    def _installed(self, record: PluginRecord) -> bool:
        """Whether the store installed this version (a hand-placed one is never signed)."""
        return record.origin != "builtin" and record.path == self.layout.version_path(
            record.id, record.version
        )

    def receipt(self, record: PluginRecord) -> Receipt | None:
        """The receipt of a version the store installed; None for any other record."""
        if not self._installed(record):
            return None
        return self.layout.read_receipt(record.id, record.version)

    def of(self, record: PluginRecord) -> tuple[str | None, str | None]:
        """``("signed", key id)``, ``("unsigned", None)``, or ``(None, None)`` when the
        store did not install it."""
        if not self._installed(record):
            return None, None
        if self._signers is None:
            from ..store.signers import signers

            self._signers = signers(self.layout)
        name = receipt_name(record.id, record.version)
        if name not in self._signers:
            return None, None
        signer = self._signers[name]
        return ("signed", signer) if signer else ("unsigned", None)


def _refused_copies(plan: LoadPlan, plugin_id: str) -> list[dict[str, Any]]:
    """Copies the policy kept from shadowing a built-in ([policy] allow-shadowing-builtins)."""
    return [
        {"path": p.path, "reason": p.message}
        for p in plan.problems
        if p.code == "plugin.shadowing-refused" and p.plugin_id == plugin_id
    ]


def _searched(host: Host) -> str:
    return ", ".join(str(sp.path) for sp in host.search_paths())


def _list_contributions(settings: Settings, host: Host, kind: str) -> int:
    rows = []
    for planned in host.load_plan.order:
        for c in planned.record.manifest.contributes.get(kind, ()):
            rows.append({"kind": kind, "name": c.name, "plugin": planned.id, "summary": c.summary})
    rows.sort(key=lambda r: (r["name"], r["plugin"]))
    if settings.json:
        render.emit_json({"kind": kind, "contributions": rows})
        return 0
    if not rows:
        if not settings.quiet:
            render.line(f"no {kind} contributions found")
        return 0
    render.table(
        ["NAME", "PLUGIN", "SUMMARY"], [[r["name"], r["plugin"], r["summary"]] for r in rows]
    )
    return 0


def _find(host: Host, plugin_id: str) -> PluginRecord:
    from ..errors import PlanError

    catalog = host.catalog
    planned = host.load_plan.get(plugin_id)
    record = planned.record if planned else catalog.preferred(plugin_id)
    if record is None:
        from difflib import get_close_matches

        close = get_close_matches(plugin_id, catalog.ids(), n=1)
        hint = f'; did you mean "{close[0]}"?' if close else "; run: plugbay list"
        raise PlanError(plugin_id, f"no such plugin is installed{hint}")
    return record


def _config_of(host: Host, plugin_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The plugin's validated config with secrets shown as ``***``, or why it is invalid."""
    from ..errors import ConfigError

    try:
        return host.plugin_config(plugin_id).redacted(), None
    except ConfigError as exc:  # secret values are never part of its message
        return None, str(exc)


def info(settings: Settings, plugin_id: str) -> int:
    host = settings.make_host()
    record = _find(host, plugin_id)
    config, config_error = _config_of(host, plugin_id)
    state, reason = _state(host.load_plan, plugin_id)
    m = record.manifest
    p = m.plugin
    versions = host.catalog.versions(plugin_id, include_shadowed=True)
    doc: dict[str, Any] = {
        "id": plugin_id,
        "version": p.version,
        "description": p.description,
        "authors": list(p.authors),
        "license": p.license,
        "homepage": p.homepage,
        "requires": p.requires,
        "requires_checked": settings.api_version is not None,
        "runtime": p.runtime,
        "entry": p.entry,
        "activation": p.activation,
        "isolation": p.isolation,
        "state": state,
        "reason": reason,
        "origin": record.origin,
        "path": record.path,
        "manifest": record.manifest_path,
        "versions": [
            {"version": r.version, "active": r.active, "shadowed": r.shadowed, "path": r.path}
            for r in versions
        ],
        "dependencies": dict(m.dependencies),
        "contributions": {
            kind: [{"name": c.name, "summary": c.summary} for c in entries]
            for kind, entries in m.contributes.items()
        },
        "permissions": {
            "network": list(m.permissions.network),
            "filesystem": {
                "read": list(m.permissions.filesystem.read),
                "write": list(m.permissions.filesystem.write),
            },
            "env": list(m.permissions.env),
            "subprocess": m.permissions.subprocess,
        },
        "grants": _grants_report(host, plugin_id, m),
        "signature": _signature_report(host, record),
        "python_dependencies": list(p.python_dependencies),
        "config": config,
        "config_error": config_error,
    }
    if settings.json:
        render.emit_json(doc)
        return 0
    out = render.line
    out(f"{plugin_id} {p.version}" + (f" — {p.description}" if p.description else ""))
    out(f"  state:        {state}" + (f" ({reason})" if reason else ""))
    checked = "" if settings.api_version else " (not checked)"
    out(f"  requires:     host API {p.requires}{checked}")
    out(f"  runtime:      {p.runtime}, {p.activation}" + (f", entry {p.entry}" if p.entry else ""))
    out(f"  origin:       {record.origin}")
    out(f"  path:         {record.path}")
    if p.authors:
        out(f"  authors:      {', '.join(p.authors)}")
    if p.license:
        out(f"  license:      {p.license}")
    out(f"  signature:    {_signature_line(doc['signature'])}")
    if len(versions) > 1:
        listed = ", ".join(
            r.version
            + (" (active)" if r.active and not r.shadowed else "")
            + (" (shadowed)" if r.shadowed else "")
            for r in versions
        )
        out(f"  versions:     {listed}")
    out("  dependencies: " + (", ".join(f"{k} {v}" for k, v in m.dependencies.items()) or "none"))
    if m.contributes:
        out("  contributes:")
        for kind, entries in m.contributes.items():
            for c in entries:
                out(f"    {kind} {c.name}" + (f" — {c.summary}" if c.summary else ""))
    _print_permissions(doc["grants"])
    if config_error is not None:
        out(f"  config:       invalid: {config_error}")
    elif config:
        import json

        out("  config:")
        for key, value in config.items():
            out(f"    {key} = {json.dumps(value, ensure_ascii=False, default=str)}")
    return 0


def _signature_report(host: Host, record: PluginRecord) -> dict[str, Any]:
    """The version's signature as its receipt records it, and the signer as the keyring
    and the policy see it now (nothing is verified here: ``plugbay verify`` does that)."""
    from ..store.signing import Keyring, namespace_of

    receipt = _Signatures(host).receipt(record)
    doc: dict[str, Any] = {
        "status": None if receipt is None else ("signed" if receipt.signer else "unsigned"),
        "key": receipt.signer if receipt is not None else None,
        "key_name": None,
        "key_trusted": None,
        "required": host.config.policy.requires_signature(record.id),
    }
    if receipt is not None and receipt.signer:
        key = Keyring.load(host.home).get(receipt.signer)
        doc["key_name"] = key.name if key is not None else None
        doc["key_trusted"] = key is not None and key.may_sign(record.id)
    doc["namespace"] = namespace_of(record.id)
    return doc


def _signature_line(sig: dict[str, Any]) -> str:
    required = " (required by [policy] require-signatures)" if sig["required"] else ""
    if sig["status"] is None:
        return "none: not installed by plugbay (a built-in or hand-placed copy)" + required
    if sig["status"] == "unsigned":
        return "unsigned" + required
    name = f" ({sig['key_name']})" if sig["key_name"] else ""
    trusted = (
        f"trusted for {sig['namespace']}"
        if sig["key_trusted"]
        else f"that key is no longer trusted for {sig['namespace']}"
    )
    return f"signed by key {sig['key']}{name}, {trusted}{required}"


def _grants_report(host: Host, plugin_id: str, manifest: Manifest) -> dict[str, Any]:
    """What the plugin asks for, each granted or not, and whether that is enforced."""
    from ..security import Permissions, enforced, grant_command

    report = Permissions(host.config).report(plugin_id, manifest.permissions)
    missing = [(s.kind, s.value) for s in report if not s.granted]
    return {
        "enforced": enforced(manifest.plugin),
        "asked": [{"kind": s.kind, "value": s.value, "granted": s.granted} for s in report],
        "grant_command": grant_command(plugin_id, missing) if missing else None,
    }


def _print_permissions(grants: dict[str, Any]) -> None:
    asked = grants["asked"]
    if not asked:
        render.line("  permissions:  none asked for")
        return
    how = (
        "enforced: it loads only when all are granted"
        if grants["enforced"]
        else "not enforced: in-process plugins run with the host's rights"
    )
    render.line(f"  permissions:  ({how})")
    width = max(len(f"{a['kind']}={a['value']}") for a in asked)
    for a in asked:
        state = "granted" if a["granted"] else "not granted"
        render.line(f"    {a['kind'] + '=' + a['value']:<{width}}  {state}")
    if grants["grant_command"]:
        render.line(f"  grant with:   {grants['grant_command']}")


def show_help(settings: Settings, name: str, kind: str | None) -> int:
    from ..errors import PlanError

    host = settings.make_host()
    plan = host.load_plan
    matches = []
    for planned in plan.order:
        for k, entries in planned.record.manifest.contributes.items():
            if kind is not None and k != kind:
                continue
            for c in entries:
                if name in (c.name, f"{planned.id}:{c.name}"):
                    matches.append((k, c, planned.record))
    if len({k for k, _, _ in matches}) > 1:
        kinds = ", ".join(sorted({k for k, _, _ in matches}))
        raise PlanError(name, f"names contributions of several kinds ({kinds}); add --kind KIND")
    if matches:
        matches.sort(key=lambda m: (-m[2].precedence, m[2].id))
        k, c, record = matches[0]
        text = _read_help(record, c.help or f"help/{c.name}.md")
        if text is None:
            text = f"# {c.name}\n\n{c.summary or 'No help was provided for this ' + k + '.'}\n"
        title = {"kind": k, "name": c.name, "plugin": record.id, "version": record.version}
    else:
        record = _find(host, name)
        text = _read_help(record, "help/index.md") or _read_help(record, "README.md")
        if text is None:
            text = _plugin_overview(record)
        title = {
            "kind": "plugin",
            "name": record.id,
            "plugin": record.id,
            "version": record.version,
        }
    if settings.json:
        render.emit_json({**title, "markdown": text})
        return 0
    render.markdown(text)
    if not settings.quiet and title["kind"] != "plugin":
        render.line(f"({title['kind']} from {record.id} {record.version})")
    return 0


def _read_help(record: PluginRecord, rel: str) -> str | None:
    folder = Path(record.path)
    path = (folder / rel).resolve()
    if folder.resolve() not in path.parents:
        return None  # a help path must stay inside the plugin folder
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _plugin_overview(record: PluginRecord) -> str:
    m = record.manifest
    lines = [f"# {record.id} {record.version}", "", m.plugin.description or "", ""]
    for kind, entries in m.contributes.items():
        lines.append(f"## {kind}")
        lines += [f"- `{c.name}`" + (f": {c.summary}" if c.summary else "") for c in entries]
        lines.append("")
    return "\n".join(lines)


def doctor(settings: Settings) -> int:
    host = settings.make_host()
    host.discover(thorough=True)  # check every installed file, not the store's stamp
    problems = host.problems(reserved=settings.reserved)
    errors = [p for p in problems if p.severity == "error"]
    if settings.json:
        render.emit_json(
            {
                "ok": not errors,
                "requires_checked": settings.api_version is not None,
                "plugins": len(host.catalog.ids()),
                "problems": [_problem_doc(p) for p in problems],
            }
        )
        return 1 if errors else 0
    shown = [p for p in problems if settings.verbose or p.severity != "info" or "shadow" in p.code]
    for p in sorted(shown, key=lambda p: ("error", "warning", "info").index(p.severity)):
        render.line(f"{p.severity}: {p.message}")
    note = _requires_note(settings)
    if not settings.quiet:
        if note:
            render.line(f"note: {note}")
        count = len(host.catalog.ids())
        verdict = f"{len(errors)} error(s)" if errors else "no errors"
        render.line(f"{count} plugin(s) checked: {verdict}")
    return 1 if errors else 0


def _problem_doc(p: Problem) -> dict[str, Any]:
    return {
        "severity": p.severity,
        "code": p.code,
        "message": p.message,
        "plugin": p.plugin_id,
        "path": p.path,
    }


def load(settings: Settings, plugin_id: str) -> int:
    from ..errors import LoadError

    host = settings.make_host()
    with contextlib.suppress(LoadError):  # its state and reason are shown below
        host.load(plugin_id)
    return _report(settings, host, [plugin_id], _import_contributions(host, [plugin_id]))


def status(settings: Settings) -> int:
    from ..errors import LoadError

    host = settings.make_host()
    host.start()
    for planned in host.load_plan.order:
        try:
            host.load(planned.id)
        except LoadError:
            continue  # shown in the report
    ids = [planned.id for planned in host.load_plan.order]
    return _report(settings, host, None, _import_contributions(host, ids))


def _import_contributions(host: Host, plugin_ids: list[str]) -> dict[str, PluginError]:
    """Import every contribution of these plugins (where they started), as their first use
    would: a module that does not import makes its plugin fail here rather than later."""
    from ..errors import PluginError
    from ..host import PluginState

    failed: dict[str, PluginError] = {}
    wanted = set(plugin_ids)
    for handle in host.registry.handles(all_providers=True):
        pid = handle.plugin_id
        if pid not in wanted or pid in failed or host.state(pid) is not PluginState.STARTED:
            continue
        try:
            handle.get()
        except PluginError as exc:  # an import that fails, or an object missing methods
            failed[pid] = exc
    return failed


def _why(exc: PluginError) -> str:
    """A plugin's failure without its id in front, as the status table shows reasons."""
    step, reason = getattr(exc, "step", None), getattr(exc, "reason", None)
    if step and reason:
        return f"{step} failed: {reason}"
    return str(exc)


def _report(
    settings: Settings,
    host: Host,
    only: list[str] | None,
    import_errors: Mapping[str, PluginError] | None = None,
) -> int:
    import msgspec

    from ..host import PluginState

    import_errors = import_errors or {}
    try:
        statuses = [
            msgspec.structs.replace(
                s,
                state=PluginState.FAILED,
                reason=_why(import_errors[s.id]),
                detail=getattr(import_errors[s.id], "detail", None),
            )
            if s.id in import_errors
            else s
            for s in host.status()
            if only is None or s.id in only
        ]
        health = host.health()
    finally:
        host.stop()
    failed = [s for s in statuses if s.state.value in ("failed", "blocked")]
    if settings.json:
        metrics = host.metrics.snapshot()
        if only is not None:
            metrics["plugins"] = {k: v for k, v in metrics["plugins"].items() if k in only}
            metrics["contributions"] = [
                c for c in metrics["contributions"] if c["plugin_id"] in only
            ]
        render.emit_json(
            {
                "plugins": [_status_doc(s, health.get(s.id), settings.verbose) for s in statuses],
                "ok": not failed,
                "metrics": metrics,
            }
        )
        return 1 if failed else 0
    rows = []
    for s in statuses:
        h = health.get(s.id)
        total = sum(s.timings_ms.values())
        rows.append(
            [
                s.id,
                s.version or "-",
                s.state.value,
                f"{total:.1f} ms" if s.timings_ms else "-",
                h.status if h else "-",
            ]
        )
    render.table(["ID", "VERSION", "STATE", "LOAD TIME", "HEALTH"], rows)
    for s in statuses:
        if s.reason:
            render.line(f"  {s.id}: {s.reason}")
        h = health.get(s.id)
        if h is not None and h.status != "ok" and h.message and h.message != s.reason:
            render.line(f"  {s.id}: health {h.status}: {h.message}")
        if settings.verbose and s.timings_ms:
            steps = ", ".join(f"{k} {v:.1f} ms" for k, v in s.timings_ms.items())
            render.line(f"  {s.id} timings: {steps}")
        if settings.verbose and s.detail:
            render.line("  " + s.detail.rstrip().replace("\n", "\n  "))
    return 1 if failed else 0


def _status_doc(s: PluginStatus, health: Any, verbose: int) -> dict[str, Any]:
    return {
        "id": s.id,
        "version": s.version,
        "state": s.state.value,
        "reason": s.reason,
        "origin": s.origin,
        "runtime": s.runtime,
        "timings_ms": {k: round(v, 3) for k, v in s.timings_ms.items()},
        "health": _health_doc(health) if health else None,
        **({"detail": s.detail} if verbose and s.detail else {}),
    }


def _health_doc(health: Any) -> dict[str, Any]:
    """A Health as JSON: times as UTC ISO 8601 (``last_ok`` None if it never passed)."""

    from datetime import UTC, datetime

    def iso(t: float | None) -> str | None:
        if t is None:
            return None
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")

    return {
        "status": health.status,
        "message": health.message,
        "checked_at": iso(health.checked_at),
        "last_ok": iso(health.last_ok),
    }


def run_plugin_command(settings: Settings, command: str, args: list[str]) -> int:
    host = settings.make_host()
    info = host.commands(settings.reserved)[0].get(command)
    try:
        with command_output(info.plugin_id if info else None, settings.verbose, settings.quiet):
            return host.run_command(command, args, reserved=settings.reserved)
    finally:
        host.stop()


@contextlib.contextmanager
def command_output(plugin_id: str | None, verbose: int = 0, quiet: bool = False) -> Iterator[None]:
    """While a plugin's command runs, what the plugin logs is its output: info lines on
    stdout, warnings and errors on stderr. An out-of-process plugin has no other way to
    print (its stdout is the protocol). With ``-v`` the logs keep their usual form; with
    ``-q`` only errors are shown."""
    import logging

    if plugin_id is None or verbose:
        yield
        return

    class _Plain(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = self.format(record)
            if record.levelno < logging.WARNING:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            else:
                sys.stderr.write(f"{record.levelname.lower()}: {text}\n")

    logger = logging.getLogger(f"plugbay.{plugin_id}")
    handler = _Plain(logging.ERROR if quiet else logging.INFO)
    before = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(handler.level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]


def show_command_help(host: Host, info: Any) -> None:
    """A plugin command's help, from its help file or summary (the plugin is not imported)."""
    planned = host.load_plan.get(info.plugin_id)
    text = _read_help(planned.record, info.help or f"help/{info.name}.md") if planned else None
    render.markdown(text or f"# {info.name}\n\n{info.summary}\n\nFrom the plugin {info.plugin_id}.")
