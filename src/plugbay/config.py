"""The host's ``config.toml`` in its home (DESIGN §3).

```toml
paths = ["~/work/plugins"]        # extra search paths, after project (relative: to the home)
disabled = ["acme.old"]           # plugin ids that are not loaded

[policy]
allow = ["acme", "tools.hello"]   # if given, only these namespaces / ids load
deny = ["evil"]                   # never these namespaces / ids

[plugins."acme.hello"]            # per-plugin configuration, handed to the plugin's init
greeting = "hi"
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import msgspec

from .errors import ConfigError

__all__ = ["HostConfig", "Policy", "load_host_config"]


class Policy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """Which plugins may load: allow and deny lists of plugin ids or namespaces."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def refuses(self, plugin_id: str) -> str | None:
        """The reason the policy refuses ``plugin_id``, or None if it may load.

        An entry matches a plugin by its id or by its namespace; deny wins over allow.
        """
        namespace = plugin_id.split(".", 1)[0] if "." in plugin_id else None
        for entry, what in ((plugin_id, "id"), (namespace, "namespace")):
            if entry is not None and entry in self.deny:
                return f"denied by the policy: its {what} {entry!r} is in [policy] deny"
        if self.allow and plugin_id not in self.allow and namespace not in self.allow:
            return (
                f"not allowed by the policy: neither its id nor its namespace is in "
                f"[policy] allow ({', '.join(self.allow)})"
            )
        return None


class HostConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """The parsed ``config.toml``."""

    paths: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    policy: Policy = Policy()
    plugins: dict[str, dict[str, Any]] = {}


def load_host_config(path: Path) -> HostConfig:
    """Read ``config.toml``; a missing file is an empty config."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return HostConfig()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be read: {exc.strerror or exc}") from exc
    import tomllib

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), "", f"is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"is not valid TOML: {exc}") from None
    return config_from_mapping(raw, str(path))


def config_from_mapping(raw: Mapping[str, Any], source: str = "<config>") -> HostConfig:
    """Validate a decoded config document."""
    plugins = raw.get("plugins")
    if isinstance(plugins, Mapping):
        # msgspec names a bad value in this table only as "[...]"; name the plugin instead.
        for plugin_id, table in plugins.items():
            if not isinstance(table, Mapping):
                raise ConfigError(
                    source,
                    f"plugins.{plugin_id}",
                    f"{table!r}: expected a table of that plugin's settings, "
                    f'e.g. [plugins."{plugin_id}"]',
                    table,
                )
    try:
        return msgspec.convert(raw, HostConfig)
    except msgspec.ValidationError as exc:
        raise _translate(exc, raw, source) from None


_STRUCT_AT: dict[str, type[msgspec.Struct]] = {"": HostConfig, "policy": Policy}


def _translate(exc: msgspec.ValidationError, raw: Mapping[str, Any], source: str) -> ConfigError:
    text = str(exc)
    field = text.rsplit("`$", 1)[-1].rstrip("`").lstrip(".") if "`$" in text else ""
    problem = text.split(" - at ", 1)[0]
    unknown = re.match(r"Object contains unknown field `(?P<key>[^`]*)`", problem)
    if unknown:
        key = unknown.group("key")
        struct = _STRUCT_AT.get(field)
        known = sorted(f.encode_name for f in msgspec.structs.fields(struct)) if struct else []
        close = get_close_matches(key, known, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        where = f"{field}.{key}" if field else key
        return ConfigError(
            source,
            where,
            f"unknown key {key!r}{hint} (allowed: {', '.join(known)})",
            _value_at(raw, where),
        )
    value = _value_at(raw, field)
    typed = re.match(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`", problem)
    if typed:
        problem = f"{value!r}: expected {_TYPE_NAMES.get(typed['want'], typed['want'])}, "
        problem += f"got {_TYPE_NAMES.get(typed['got'], typed['got'])}"
    return ConfigError(source, field, problem, value)


def _value_at(raw: Mapping[str, Any], field: str) -> Any:
    node: Any = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        if part.startswith("[") and isinstance(node, list | tuple):
            index = int(part[1:-1])
            node = node[index] if index < len(node) else None
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
    return node


# msgspec names JSON types; config.toml is TOML.
_TYPE_NAMES = {"object": "table", "array": "list", "str": "string", "int": "integer"}
