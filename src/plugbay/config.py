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

from collections.abc import Mapping
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
        """The reason the policy refuses ``plugin_id``, or None if it may load."""
        namespace = plugin_id.split(".", 1)[0] if "." in plugin_id else None
        if plugin_id in self.deny or (namespace is not None and namespace in self.deny):
            return f"denied by the policy's deny list ({'id' if plugin_id in self.deny else 'namespace'})"
        if self.allow and plugin_id not in self.allow and namespace not in self.allow:
            return "not in the policy's allow list"
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
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"is not valid TOML: {exc}") from None
    return config_from_mapping(raw, str(path))


def config_from_mapping(raw: Mapping[str, Any], source: str = "<config>") -> HostConfig:
    """Validate a decoded config document."""
    try:
        return msgspec.convert(raw, HostConfig)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rsplit("`$", 1)[-1].rstrip("`").lstrip(".") if "`$" in text else ""
        problem = text.split(" - at ", 1)[0]
        if problem.startswith("Object contains unknown field"):
            from difflib import get_close_matches

            key = problem.split("`")[1]
            known = ["paths", "disabled", "policy", "plugins", "allow", "deny"]
            close = get_close_matches(key, known, n=1)
            field = f"{field}.{key}" if field else key
            problem = f"unknown key {key!r}" + (f'; did you mean "{close[0]}"?' if close else "")
        raise ConfigError(source, field, problem) from None
