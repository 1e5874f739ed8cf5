"""The audit trail: every change the store makes, appended to ``<home>/audit.log``.

One JSON object per line (JSON Lines), appended once the change is committed::

    {"when": "2026-11-22T09:04:10+00:00", "who": {"user": "ada", "uid": 1000},
     "operation": "install", "pid": 4242,
     "changes": [{"action": "install", "id": "acme.hello", "version": "1.2.0",
                  "previous": "1.1.0", "source": "https://…/acme-hello-1.2.0.tar.gz",
                  "bundle_sha256": "…", "manifest_sha256": "…", "signer": "…"}]}

Operations: ``install``, ``remove``, ``use`` (a switch), ``sync``, ``enable``, ``disable``,
``grant`` and ``revoke``; changes that did nothing (``keep``) are left out, and an operation
that changed nothing writes no line. Hashes and the signer come from the version's receipt
(a version that was not installed by plugbay has none). Grants record the permissions
(``kind``, ``value``), never a plugin's config.

Lines are appended with ``O_APPEND`` under an exclusive ``flock`` of the log, so that two
plugbay processes never interleave theirs. Store changes are recorded while the home's lock
is still held; config edits (enable, disable, grant, revoke) right after their commit. A
log that cannot be written does not undo the change, which is done: the failure is logged
(``plugbay`` logger, error level) naming the operation.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .layout import Layout

__all__ = ["AUDIT_LOG", "read_audit", "record", "version_facts"]

#: The log's name in the home.
AUDIT_LOG = "audit.log"

_log = logging.getLogger("plugbay")


def version_facts(layout: Layout, plugin_id: str, version: str | None) -> dict[str, Any]:
    """Source, hashes and signer of an installed version, from its receipt ({} if none)."""
    if version is None:
        return {}
    receipt = layout.read_receipt(plugin_id, version)
    if receipt is None:
        return {}
    return {
        "source": receipt.source,
        "bundle_sha256": receipt.bundle_sha256,
        "manifest_sha256": receipt.manifest_sha256,
        "signer": receipt.signer,
    }


def record(
    layout: Layout,
    operation: str,
    changes: Iterable[Any],
    *,
    facts: Mapping[tuple[str, str | None], Mapping[str, Any]] | None = None,
) -> None:
    """Append one line for ``operation`` and its ``changes`` (store Changes or GrantChanges).

    Store changes get their version's source and hashes from ``facts`` (``(id, version)``
    → facts, for versions whose receipts are gone: a removal) or else from the receipt.
    """
    entries = []
    for change in changes:
        action = getattr(change, "action", None)
        if action == "keep":
            continue
        entry: dict[str, Any] = {"action": action, "id": change.id}
        if hasattr(change, "kind"):  # a GrantChange: permissions, no version
            entry |= {"kind": change.kind, "value": change.value}
        else:
            version = change.version
            entry |= {"version": version, "previous": change.previous}
            known = (facts or {}).get((change.id, version))
            entry |= dict(known) if known is not None else version_facts(layout, change.id, version)
            if change.source and not entry.get("source"):
                entry["source"] = change.source
        entries.append(entry)
        _log.info("%s: %s", operation, change, extra={"plugin_id": change.id})
    if not entries:
        return
    line = {
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
        "who": _who(),
        "operation": operation,
        "pid": os.getpid(),
        "changes": entries,
    }
    data = (json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
    try:
        _append(layout.home / AUDIT_LOG, data)
    except OSError as exc:
        ids = ", ".join(sorted({e["id"] for e in entries}))
        _log.error(
            "%s of %s was done, but %s could not be written: %s",
            operation,
            ids,
            layout.home / AUDIT_LOG,
            exc.strerror or exc,
            extra={"plugin_id": entries[0]["id"]},
        )


def read_audit(home: Path) -> list[dict[str, Any]]:
    """Every record of ``<home>/audit.log``, oldest first ([] when there is none)."""
    try:
        text = (home / AUDIT_LOG).read_text("utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _append(path: Path, data: bytes) -> None:
    import fcntl

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _who() -> dict[str, Any]:
    """The user running plugbay: login name (as the OS knows it) and uid."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        import getpass

        user: str | None = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no name for this uid (a container, say)
        user = None
    return {"user": user, "uid": uid}
