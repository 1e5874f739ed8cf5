"""Grants in ``config.toml``: ``[grants."<id>"]`` tables, changed by ``grant`` and ``revoke``.

Like ``enable`` and ``disable`` (which use :func:`edit_config` too), every change holds the
home's lock, keeps the file's comments and layout (tomlkit), and replaces the file
atomically, so a kill leaves the old config or the new one. What the values mean, and
how they are checked, is :mod:`plugbay.security`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..config import Grants, config_from_mapping
from ..errors import StoreError
from ..security import check_kind, covers, granted_pairs, normalise, same_permission
from .transaction import Transaction, locked

if TYPE_CHECKING:
    from tomlkit import TOMLDocument

    from .layout import Layout

__all__ = ["GrantChange", "GrantOutcome", "edit_config", "grant", "revoke"]

GrantAction = Literal["grant", "revoke", "keep"]


class GrantChange(msgspec.Struct, frozen=True, gc=False):
    """One permission granted, revoked, or left as it was (``keep``).

    A ``keep`` with ``kind`` None is a ``revoke`` of everything when nothing was granted.
    """

    action: GrantAction
    id: str
    kind: str | None = None
    value: str | None = None

    @property
    def permission(self) -> str:
        """``kind=value`` (``kind`` alone for every value of it; "" for everything)."""
        if self.kind is None:
            return ""
        return self.kind if self.value is None else f"{self.kind}={self.value}"

    def __str__(self) -> str:
        what = f"{self.id} {self.permission}".rstrip()
        return f"{self.action} {what}"


class GrantOutcome(msgspec.Struct):
    """What ``grant`` or ``revoke`` did, with warnings, and what the plugin holds after."""

    changes: list[GrantChange] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)
    grants: Grants = msgspec.field(default_factory=Grants)

    @property
    def changed(self) -> bool:
        """Whether the config file was changed."""
        return any(c.action != "keep" for c in self.changes)


def edit_config(layout: Layout, edit: Callable[[TOMLDocument], bool]) -> None:
    """Change ``config.toml`` under the home's lock, keeping its comments; commit atomically.

    ``edit`` changes the parsed document in place and returns whether it changed
    anything: nothing is written when it did not. A file that is not readable TOML is a
    StoreError, and stays as it is.
    """
    import tomlkit

    with locked(layout):
        path = layout.config
        try:
            doc = tomlkit.parse(path.read_text("utf-8")) if path.exists() else tomlkit.document()
        except (OSError, UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
            raise StoreError(f"{path} cannot be read: {exc}; fix it first") from None
        if not edit(doc):
            return
        txn = Transaction(layout)
        try:
            # Removing a table leaves the blank line tomlkit put before it: end with one newline.
            text = tomlkit.dumps(doc).rstrip("\n")
            txn.write(path, (text + "\n" if text else "").encode("utf-8"))
            txn.commit()
        except BaseException:
            txn.abort()
            raise


def grant(layout: Layout, plugin_id: str, pairs: Sequence[tuple[str, str]]) -> GrantOutcome:
    """Add ``(kind, value)`` pairs to ``[grants."<plugin_id>"]``.

    Values are checked and normalised first (ConfigError names a bad one). A value already
    granted (the same text, normalised) is kept, not repeated; ``subprocess`` is set to
    the value given.
    """
    wanted = [(kind, normalise(kind, value)) for kind, value in pairs]
    outcome = GrantOutcome()

    def edit(doc: TOMLDocument) -> bool:
        _check_config(doc, layout)
        table = _plugin_table(doc, plugin_id, create=True)
        assert table is not None
        for kind, value in wanted:
            if kind == "subprocess":
                done = bool(table.get("subprocess", False)) != (value == "true")
                if done:
                    table["subprocess"] = value == "true"
            else:
                values = _values(table, kind)
                done = not any(same_permission(kind, have, value) for have in values)
                if done:
                    _append(table, kind, value)
            outcome.changes.append(GrantChange("grant" if done else "keep", plugin_id, kind, value))
        outcome.grants = _grants_of(table)
        if not outcome.changed:
            return False
        _tidy(doc, plugin_id)
        return True

    edit_config(layout, edit)
    return outcome


def revoke(
    layout: Layout, plugin_id: str, patterns: Sequence[tuple[str, str | None]] = ()
) -> GrantOutcome:
    """Remove grants of ``plugin_id``: each ``(kind, value)``, each value of ``(kind, None)``,
    or, with no ``patterns``, its whole ``[grants]`` table.

    Something not granted is reported as ``keep`` (nothing to revoke). A value that stays
    allowed through a broader grant (``*.acme.test`` after revoking ``api.acme.test``) is
    revoked, with a warning naming the broader grant.
    """
    wanted = [
        (check_kind(kind), None if value is None else normalise(kind, value))
        for kind, value in patterns
    ]
    outcome = GrantOutcome()

    def edit(doc: TOMLDocument) -> bool:
        _check_config(doc, layout)
        table = _plugin_table(doc, plugin_id, create=False)
        if table is None:
            outcome.changes += [GrantChange("keep", plugin_id, k, v) for k, v in wanted] or [
                GrantChange("keep", plugin_id)
            ]
            return False
        if not wanted:
            held = list(granted_pairs(_grants_of(table)))
            outcome.changes += [GrantChange("revoke", plugin_id, k, v) for k, v in held] or [
                GrantChange("keep", plugin_id)
            ]
            grants = doc["grants"]
            assert isinstance(grants, MutableMapping)
            del grants[plugin_id]
            _tidy(doc, plugin_id)
            return True  # an empty table is removed too
        for kind, value in wanted:
            outcome.changes += _revoke_one(table, plugin_id, kind, value)
        outcome.grants = _grants_of(table)
        for change in outcome.changes:
            if change.action == "revoke" and change.kind is not None and change.value:
                still = _still_covered(outcome.grants, change.kind, change.value)
                if still is not None:
                    outcome.warnings.append(
                        f"{plugin_id} still holds {change.permission} through the grant "
                        f"{change.kind}={still}; revoke that too if it should not"
                    )
        if not outcome.changed:
            return False
        _tidy(doc, plugin_id)
        return True

    edit_config(layout, edit)
    return outcome


# ---------------------------------------------------------------- helpers

_Table = MutableMapping[str, Any]


def _check_config(doc: TOMLDocument, layout: Layout) -> None:
    """Refuse to edit a config plugbay could not load: the user fixes it first."""
    config_from_mapping(doc.unwrap(), str(layout.config))


def _plugin_table(doc: TOMLDocument, plugin_id: str, *, create: bool) -> _Table | None:
    import tomlkit

    grants = doc.get("grants")
    if grants is None:
        if not create:
            return None
        doc["grants"] = tomlkit.table(is_super_table=True)
        grants = doc["grants"]
    assert isinstance(grants, MutableMapping)  # checked by _check_config
    table = grants.get(plugin_id)
    if table is None:
        if not create:
            return None
        grants[plugin_id] = tomlkit.table()
        table = grants[plugin_id]
    assert isinstance(table, MutableMapping)
    return table


def _split(kind: str) -> tuple[str, str | None]:
    """``filesystem.read`` → ``("filesystem", "read")``; ``env`` → ``("env", None)``."""
    outer, _, inner = kind.partition(".")
    return outer, inner or None


def _container(table: _Table, kind: str, *, create: bool) -> _Table | None:
    """The table holding the list of ``kind``: the plugin's, or its ``filesystem`` table."""
    outer, inner = _split(kind)
    if inner is None:
        return table
    sub = table.get(outer)
    if sub is None:
        if not create:
            return None
        import tomlkit

        table[outer] = tomlkit.inline_table()
        sub = table[outer]
    assert isinstance(sub, MutableMapping)
    return sub


def _values(table: _Table, kind: str) -> list[str]:
    holder = _container(table, kind, create=False)
    key = _split(kind)[1] or kind
    return [str(v) for v in holder.get(key, [])] if holder is not None else []


def _append(table: _Table, kind: str, value: str) -> None:
    holder = _container(table, kind, create=True)
    assert holder is not None
    key = _split(kind)[1] or kind
    if key in holder:
        holder[key].append(value)  # keeps the array's layout and comments
    else:
        holder[key] = [value]


def _revoke_one(table: _Table, plugin_id: str, kind: str, value: str | None) -> list[GrantChange]:
    if kind == "subprocess":
        if value == "false" or not table.get("subprocess", False):
            return [GrantChange("keep", plugin_id, kind, value or "true")]
        del table["subprocess"]
        return [GrantChange("revoke", plugin_id, kind, "true")]
    holder = _container(table, kind, create=False)
    key = _split(kind)[1] or kind
    values = [str(v) for v in holder.get(key, [])] if holder is not None else []
    gone = [
        i for i, have in enumerate(values) if value is None or same_permission(kind, have, value)
    ]
    if not gone:
        return [GrantChange("keep", plugin_id, kind, value)]
    assert holder is not None
    array = holder[key]
    for i in reversed(gone):
        del array[i]  # in place: the other entries keep their comments
    return [GrantChange("revoke", plugin_id, kind, values[i]) for i in gone]


def _still_covered(grants: Grants, kind: str, value: str) -> str | None:
    """The remaining grant that still allows ``kind=value``, if any."""
    for k, have in granted_pairs(grants):
        same_kind = k == kind or (kind == "filesystem.read" and k == "filesystem.write")
        if same_kind and covers(kind, have, value):
            return have if k == kind else f"{have} (write implies read)"
    return None


def _tidy(doc: TOMLDocument, plugin_id: str) -> None:
    """Drop what became empty: lists, the filesystem table, the plugin's table, ``grants``."""
    grants = doc.get("grants")
    if not isinstance(grants, MutableMapping):
        return
    table = grants.get(plugin_id)
    if isinstance(table, MutableMapping):
        fs = table.get("filesystem")
        if isinstance(fs, MutableMapping) and any(k in fs and not fs[k] for k in ("read", "write")):
            # Rebuilt rather than edited: tomlkit cannot delete one of several dotted keys
            # (filesystem.read = …, filesystem.write = …).
            kept = {k: [str(v) for v in fs[k]] for k in ("read", "write") if fs.get(k)}
            del table["filesystem"]
            if kept:
                import tomlkit

                rebuilt = tomlkit.inline_table()
                rebuilt.update(kept)
                table["filesystem"] = rebuilt
        for key in [k for k in ("env", "network") if k in table and not table[k]]:
            del table[key]
        if not table:
            del grants[plugin_id]
    if not grants:
        del doc["grants"]


def _grants_of(table: _Table) -> Grants:
    import msgspec

    unwrap = getattr(table, "unwrap", None)
    plain = unwrap() if callable(unwrap) else dict(table)
    return msgspec.convert(plain, Grants)
