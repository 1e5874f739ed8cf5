"""Configuration: the host's ``config.toml`` (DESIGN §3), and each plugin's validated config.

```toml
paths = ["~/work/plugins"]        # extra search paths, after project (relative: to the home)
disabled = ["acme.old"]           # plugin ids that are not loaded

[policy]
allow = ["acme", "tools.hello"]   # if given, only these namespaces / ids load
deny = ["evil"]                   # never these namespaces / ids
require-signatures = ["acme"]     # true, false (default) or namespaces: see docs/security.md
allow-shadowing-builtins = false  # default true

[plugins."acme.hello"]            # per-plugin configuration, handed to the plugin's init
greeting = "hi"

[grants."acme.hello"]             # permissions the user grants (see the manifest's [permissions])
env = ["HELLO_TOKEN"]
network = ["api.hello.test:443"]
filesystem = { read = ["~/.config/hello"], write = [] }
subprocess = false

[runtime."acme.hello"]            # out-of-process plugins: supervision settings (docs/protocol.md)
call-timeout = 30                 # seconds; also handshake-timeout, cancel-grace, shutdown-grace,
max-restarts = 3                  # restart-window, max-line (bytes), cpu-time (seconds),
memory = 536870912                # memory (bytes of address space)

[runtime."acme.wasm"]             # WebAssembly plugins (docs/wasm.md)
call-timeout = 5                  # seconds per call (default 5)
memory = 67108864                 # bytes of linear memory (default 64 MiB)
instance = "plugin"               # "plugin": one instance, calls in turn; "call": one per call

[[index]]                         # indexes to install by name from, in priority order
name = "acme"                     # (docs/index.md); shown in messages
url = "https://plugins.acme.test/index.json"   # http(s)://, file://, a path, or oci://HOST/REPO
timeout = 30                      # optional: seconds per request (default 30)

[oci]                             # OCI registries (docs/oci.md)
insecure-registries = ["registry.lan:5000"]   # plain HTTP (loopback registries always are)

[health]                          # periodic health checks (docs/observability.md)
interval = 30                     # seconds; 0 (default): only when asked
max-restarts = 3                  # a plugin failing its checks is restarted at most this often
restart-window = 300              # within this many seconds
```
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import ConfigError

__all__ = [
    "FilesystemGrant",
    "Grants",
    "HealthSettings",
    "HostConfig",
    "IndexSettings",
    "OciSettings",
    "PluginConfig",
    "Policy",
    "RuntimeSettings",
    "Secret",
    "home_for",
    "load_host_config",
    "redacted",
    "scrub",
    "secret_paths",
    "validate_plugin_config",
]


class Policy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """Which plugins may be installed and load (docs/security.md).

    ``allow`` and ``deny``: plugin ids or namespaces. ``require_signatures``: whether the
    store installs only bundles signed by a key trusted for the plugin's namespace — for
    every plugin (``true``), for these namespaces or ids (a list), or for none (``false``).
    ``allow_shadowing_builtins``: whether a plugin found in a search path may take the
    place of a built-in plugin with the same id (when false, the built-in loads).
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    require_signatures: bool | tuple[str, ...] = False
    allow_shadowing_builtins: bool = True

    def requires_signature(self, plugin_id: str) -> bool:
        """Whether ``plugin_id`` must be signed by a key trusted for its namespace.

        A list entry matches a plugin by its id or by its namespace (a plugin without a
        namespace: by its id).
        """
        wanted = self.require_signatures
        if isinstance(wanted, bool):
            return wanted
        namespace = plugin_id.split(".", 1)[0]
        return plugin_id in wanted or namespace in wanted

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


class FilesystemGrant(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """Paths a plugin may read and write."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


class Grants(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """``[grants."<id>"]``: the permissions the user grants one plugin."""

    network: tuple[str, ...] = ()
    filesystem: FilesystemGrant = FilesystemGrant()
    env: tuple[str, ...] = ()
    subprocess: bool = False


class RuntimeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """``[runtime."<id>"]``: how an out-of-process plugin is supervised (docs/protocol.md),
    or how a WebAssembly plugin is sandboxed (docs/wasm.md).

    Times are seconds, sizes bytes; None means the runtime's default (for out-of-process
    plugins, no limit for ``cpu_time`` and ``memory``; for wasm plugins 5 s and 64 MiB).
    ``instance`` is for wasm plugins only: ``"plugin"`` (default) keeps one instance per
    plugin, ``"call"`` makes a fresh one for every call.
    """

    handshake_timeout: float | None = None
    call_timeout: float | None = None
    cancel_grace: float | None = None
    shutdown_grace: float | None = None
    max_restarts: int | None = None
    restart_window: float | None = None
    max_line: int | None = None
    cpu_time: float | None = None
    memory: int | None = None
    instance: Literal["plugin", "call"] | None = None


class HealthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """``[health]``: periodic health checks of started plugins (docs/observability.md).

    ``interval``: seconds between checks; 0 (the default) checks only when asked
    (``host.health()``, ``plugbay status``). A started plugin whose check fails is
    restarted, at most ``max_restarts`` times within ``restart_window`` seconds.
    """

    interval: float = 0.0
    max_restarts: int = 3
    restart_window: float = 300.0


class IndexSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """One ``[[index]]`` table: an index to install by name from (docs/index.md).

    ``name`` is shown in messages; ``url`` is ``http(s)://…``, ``file://…``, a path (relative
    to the home) or ``oci://HOST/REPO``; ``timeout``: seconds per request (None: 30).
    """

    name: str
    url: str
    timeout: float | None = None


class OciSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """``[oci]``: OCI registries (docs/oci.md).

    ``insecure_registries``: registries (``HOST:PORT``, or ``HOST`` for any port) reached
    over plain HTTP instead of HTTPS; loopback registries (127.0.0.1, localhost, ::1)
    always are.
    """

    insecure_registries: tuple[str, ...] = ()


class HostConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """The parsed ``config.toml``."""

    paths: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    policy: Policy = Policy()
    plugins: dict[str, dict[str, Any]] = {}
    grants: dict[str, Grants] = {}
    runtime: dict[str, RuntimeSettings] = {}
    health: HealthSettings = HealthSettings()
    index: tuple[IndexSettings, ...] = ()
    oci: OciSettings = OciSettings()


def home_variable(app: str) -> str:
    """``<APP>_HOME``, the variable that moves the home of ``app``: ``my-app`` → ``MY_APP_HOME``."""
    return "".join(c if c.isalnum() else "_" for c in app.upper()) + "_HOME"


def home_for(app: str, home: str | os.PathLike[str] | None = None) -> Path:
    """The host home: ``home`` if given, else ``$<APP>_HOME``, else ``~/.<app>``."""
    if home is not None:
        return Path(home).expanduser()
    value = os.environ.get(home_variable(app))
    if value:
        return Path(value).expanduser()
    return Path.home() / f".{app}"


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
    _check_indexes(raw.get("index"), source)
    for section, struct in _PER_PLUGIN.items():
        tables = raw.get(section)
        if not isinstance(tables, Mapping):
            continue
        for plugin_id, table in tables.items():
            try:
                msgspec.convert(table, struct)
            except msgspec.ValidationError as exc:
                # msgspec names a key of this table only as "[...]": check each on its own.
                inner = _translate(exc, table, source, struct)
                where = f'{section}."{plugin_id}"' + (f".{inner.field}" if inner.field else "")
                raise ConfigError(source, where, inner.problem, inner.value) from None
    try:
        return msgspec.convert(raw, HostConfig)
    except msgspec.ValidationError as exc:
        raise _translate(exc, raw, source) from None


def _check_indexes(tables: Any, source: str) -> None:
    """``[[index]]`` tables, each with a name and a URL, the names unique (docs/index.md)."""
    if tables is None:
        return
    example = '[[index]] tables (double brackets), each with name = "…" and url = "…"'
    if not isinstance(tables, list):
        raise ConfigError(source, "index", f"expected {example}", tables)
    allowed = {f.encode_name for f in msgspec.structs.fields(IndexSettings)}
    names: dict[str, int] = {}
    for n, table in enumerate(tables):
        where = f"index[{n}]"
        if not isinstance(table, Mapping):
            raise ConfigError(source, where, f"{table!r}: expected {example}", table)
        for key in table:
            if key not in allowed:
                raise _unknown_key(source, f"{where}.{key}", key, IndexSettings, table[key])
        for key in ("name", "url"):
            value = table.get(key)
            if not isinstance(value, str) or not value.strip():
                what = "missing" if value is None else f"{value!r} is not a non-empty string"
                raise ConfigError(
                    source,
                    f"{where}.{key}",
                    f"{what}: every [[index]] needs a name (shown in messages) and a url "
                    "(http(s)://…/index.json, file://…, a path, or oci://HOST/REPO)",
                    value,
                )
        url = table["url"]
        if "://" in url and not url.startswith(("http://", "https://", "file://", "oci://")):
            raise ConfigError(
                source,
                f"{where}.url",
                f"{url!r}: expected an http(s)://, file:// or oci:// URL, or a path",
                url,
            )
        timeout = table.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ConfigError(
                source,
                f"{where}.timeout",
                f"{timeout!r}: expected a number of seconds > 0",
                timeout,
            )
        first = names.setdefault(table["name"], n)
        if first != n:
            raise ConfigError(
                source,
                f"{where}.name",
                f"{table['name']!r} is the name of index[{first}] too; give each index its own",
                table["name"],
            )


_STRUCT_AT: dict[str, type[msgspec.Struct]] = {
    "": HostConfig,
    "policy": Policy,
    "filesystem": FilesystemGrant,
    "health": HealthSettings,
}
_PER_PLUGIN: dict[str, type[msgspec.Struct]] = {"grants": Grants, "runtime": RuntimeSettings}


def _translate(
    exc: msgspec.ValidationError,
    raw: Any,
    source: str,
    root: type[msgspec.Struct] = HostConfig,
) -> ConfigError:
    text = str(exc)
    field = text.rsplit("`$", 1)[-1].rstrip("`").lstrip(".") if "`$" in text else ""
    problem = text.split(" - at ", 1)[0]
    unknown = re.match(r"Object contains unknown field `(?P<key>[^`]*)`", problem)
    if unknown:
        key = unknown.group("key")
        where = f"{field}.{key}" if field else key
        struct = root if not field else _STRUCT_AT.get(field)
        return _unknown_key(source, where, key, struct, _value_at(raw, where))
    value = _value_at(raw, field)
    typed = re.match(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`", problem)
    if typed:
        problem = f"{value!r}: expected {_TYPE_NAMES.get(typed['want'], typed['want'])}, "
        problem += f"got {_TYPE_NAMES.get(typed['got'], typed['got'])}"
    return ConfigError(source, field, problem, value)


def _unknown_key(
    source: str, where: str, key: str, struct: type[msgspec.Struct] | None, value: Any
) -> ConfigError:
    """``unknown key 'urls'; did you mean "url"? (allowed: name, timeout, url)``."""
    known = sorted(f.encode_name for f in msgspec.structs.fields(struct)) if struct else []
    close = get_close_matches(key, known, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return ConfigError(
        source, where, f"unknown key {key!r}{hint} (allowed: {', '.join(known)})", value
    )


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
_TYPE_NAMES = {
    "object": "table",
    "array": "list",
    "str": "string",
    "int": "integer",
    "float | null": "a number",
    "int | null": "an integer",
    "bool | array": "true, false or a list of namespaces",
    "bool": "true or false",
}


# ---------------------------------------------------------------- plugin config


class Secret:
    """A secret config value: hidden from reprs, str(), logs and JSON; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def reveal(self) -> Any:
        """The secret value itself. Pass it on; never print or log it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


class PluginConfig(Mapping[str, Any]):
    """A plugin's validated config: read-only; secret fields are :class:`Secret` values."""

    def __init__(self, values: Mapping[str, Any], secret_paths: frozenset[tuple[str, ...]]) -> None:
        self._values = _wrap_secrets(dict(values), secret_paths, ())
        self.secret_paths = secret_paths

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PluginConfig({redacted(self._values)!r})"

    def redacted(self) -> dict[str, Any]:
        """A plain copy with every secret replaced by ``"***"`` (for display)."""
        return {k: redacted(v) for k, v in self._values.items()}

    def secret_values(self) -> list[str]:
        """The secret values as text, for log redaction."""
        out: list[str] = []
        _collect_secrets(self._values, out)
        return out


SECRET_MASK = "***"


def redacted(value: Any) -> Any:
    if isinstance(value, Secret):
        return SECRET_MASK
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


def _collect_secrets(value: Any, out: list[str]) -> None:
    if isinstance(value, Secret):
        inner = value.reveal()
        if isinstance(inner, str | int | float) and not isinstance(inner, bool) and str(inner):
            out.append(str(inner))
        else:
            _collect_secrets(inner, out)
    elif isinstance(value, Mapping):
        for v in value.values():
            _collect_secrets(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect_secrets(v, out)


#: In a secret path: any property name or list index (from ``items``,
#: ``additionalProperties`` or ``patternProperties``).
ANY = "*"


def _matches(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    return len(path) == len(pattern) and all(
        q in (p, ANY) for p, q in zip(path, pattern, strict=True)
    )


def _is_secret(path: tuple[str, ...], paths: Iterable[tuple[str, ...]]) -> bool:
    """Whether ``path`` is a secret field or lies inside one."""
    return any(len(path) >= len(s) and _matches(path[: len(s)], s) for s in paths)


def _wrap_secrets(values: Any, paths: frozenset[tuple[str, ...]], here: tuple[str, ...]) -> Any:
    if any(_matches(here, p) for p in paths):
        return Secret(values)
    if not any(len(p) > len(here) and _matches(here, p[: len(here)]) for p in paths):
        return values  # no secret below here
    if isinstance(values, dict):
        return {k: _wrap_secrets(v, paths, (*here, str(k))) for k, v in values.items()}
    if isinstance(values, list):
        return [_wrap_secrets(v, paths, (*here, str(i))) for i, v in enumerate(values)]
    return values


def _reveal(value: Any, here: tuple[str, ...], found: set[tuple[str, ...]]) -> Any:
    """``value`` with every :class:`Secret` (a host may pass them in code) revealed.

    Their paths are added to ``found``: they stay secret whatever the schema says.
    """
    if isinstance(value, Secret):
        found.add(here)
        return value.reveal()
    if isinstance(value, Mapping):
        return {k: _reveal(v, (*here, str(k)), found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v, (*here, str(i)), found) for i, v in enumerate(value)]
    return value


def _local_ref(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    """The subschema a local ``$ref`` (``#/$defs/name``) points to, or None."""
    if ref != "#" and not ref.startswith("#/"):
        return None  # another document, or an anchor: not followed
    node: Any = root
    for escaped in ref[2:].split("/") if ref != "#" else ():
        part = escaped.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node if isinstance(node, Mapping) else None


def _follow(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` merged with what its local ``$ref`` (and theirs) point to."""
    seen: set[str] = set()
    merged = dict(schema)
    while isinstance(merged.get("$ref"), str) and merged["$ref"] not in seen:
        ref = merged.pop("$ref")
        seen.add(ref)
        target = _local_ref(root, ref)
        if target is None:
            break
        merged = {**target, **merged}
    return merged


def secret_paths(
    schema: Mapping[str, Any], here: tuple[str, ...] = ()
) -> frozenset[tuple[str, ...]]:
    """Paths of the fields a JSON Schema marks ``writeOnly: true`` or ``x-secret: true``.

    Follows ``properties``, ``items``/``prefixItems``, ``additionalProperties``,
    ``patternProperties``, ``allOf``/``anyOf``/``oneOf``/``then``/``else`` and local
    ``$ref``; :data:`ANY` in a path stands for any property name or list index.
    """
    found: set[tuple[str, ...]] = set()
    _find_secrets(schema, schema, here, frozenset(), found)
    return frozenset(found)


def _find_secrets(
    schema: Any,
    root: Mapping[str, Any],
    here: tuple[str, ...],
    refs: frozenset[str],
    found: set[tuple[str, ...]],
) -> None:
    if not isinstance(schema, Mapping):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref not in refs:  # refs: no endless walk of a recursive schema
        _find_secrets(_local_ref(root, ref), root, here, refs | {ref}, found)
    if here and (schema.get("writeOnly") is True or schema.get("x-secret") is True):
        found.add(here)
        return
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, sub in props.items():
            _find_secrets(sub, root, (*here, str(name)), refs, found)
    patterns = schema.get("patternProperties")
    for sub in patterns.values() if isinstance(patterns, Mapping) else ():
        _find_secrets(sub, root, (*here, ANY), refs, found)
    _find_secrets(schema.get("additionalProperties"), root, (*here, ANY), refs, found)
    items = schema.get("items")
    if isinstance(items, list):  # drafts before 2020-12: one schema per position
        for i, sub in enumerate(items):
            _find_secrets(sub, root, (*here, str(i)), refs, found)
    else:
        _find_secrets(items, root, (*here, ANY), refs, found)
    prefix = schema.get("prefixItems")
    for i, sub in enumerate(prefix if isinstance(prefix, list) else ()):
        _find_secrets(sub, root, (*here, str(i)), refs, found)
    for key in ("allOf", "anyOf", "oneOf"):
        subs = schema.get(key)
        for sub in subs if isinstance(subs, list) else ():
            _find_secrets(sub, root, here, refs, found)
    for key in ("then", "else"):
        _find_secrets(schema.get(key), root, here, refs, found)


_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_env(value: Any, env: Mapping[str, str], source: str, path: tuple[str, ...] = ()) -> Any:
    """Replace ``${env:NAME}`` in strings with the environment variable's value.

    A variable that is not set is a ConfigError naming the field that refers to it.
    """
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    source,
                    ".".join(path),
                    f"refers to ${{env:{name}}}, but {name} is not set; "
                    "set it or change the config",
                )
            return env[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: resolve_env(v, env, source, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_env(v, env, source, (*path, str(i))) for i, v in enumerate(value)]
    return value


def apply_defaults(schema: Mapping[str, Any], values: Any) -> Any:
    """Fill in the ``default`` values of missing properties, at every depth.

    Follows local ``$ref`` and array ``items``. A missing object property without a
    default of its own is added when defaults inside it give it content and every
    property it requires.
    """
    return _fill(schema, values, schema, frozenset())


def _fill(
    schema: Mapping[str, Any], values: Any, root: Mapping[str, Any], refs: frozenset[str]
) -> Any:
    schema = _follow(schema, root)
    if isinstance(values, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [_fill(items, v, root, refs) for v in values]
        return values
    props = schema.get("properties")
    if not isinstance(values, dict) or not isinstance(props, Mapping):
        return values
    out = dict(values)
    for name, sub in props.items():
        if not isinstance(sub, Mapping):
            continue
        if name in out:
            out[name] = _fill(sub, out[name], root, refs)
        elif "default" in sub:
            out[name] = _fill(sub, copy.deepcopy(sub["default"]), root, refs)
        else:
            made = _absent_object(sub, root, refs)
            if made is not None:
                out[name] = made
    return out


def _absent_object(
    sub: Mapping[str, Any], root: Mapping[str, Any], refs: frozenset[str]
) -> dict[str, Any] | None:
    """The object a missing property gets from the defaults inside it, or None."""
    ref = sub.get("$ref")
    if isinstance(ref, str):
        if ref in refs:
            return None  # a recursive schema: do not build an endless tree of defaults
        refs = refs | {ref}
    resolved = _follow(sub, root)
    if resolved.get("type", "object") != "object":
        return None
    made = _fill(resolved, {}, root, refs)
    required = resolved.get("required")
    if not made or (isinstance(required, list) and not set(required) <= set(made)):
        return None
    return dict(made)


def validate_plugin_config(
    plugin_id: str,
    schema: Mapping[str, Any] | None,
    values: Mapping[str, Any],
    env: Mapping[str, str],
) -> PluginConfig:
    """Resolve ``${env:…}``, apply defaults and validate ``values`` against ``schema``.

    Raises ConfigError naming the field path and what was expected; secret values never
    appear in the message. :class:`Secret` values in ``values`` stay secret.
    """
    source = f"config of {plugin_id}"
    given: set[tuple[str, ...]] = set()
    resolved = resolve_env(_reveal(dict(values), (), given), env, source)
    if schema is None:
        return PluginConfig(resolved, frozenset(given))
    import jsonschema
    from referencing.exceptions import Unresolvable

    schema = dict(schema)
    where_schema = f"config schema of {plugin_id}"
    if "$schema" in schema:
        unknown: Any = None  # what validator_for answers, without a warning, for an unknown draft
        cls = jsonschema.validators.validator_for(schema, default=unknown)
        if cls is unknown:
            raise ConfigError(
                where_schema,
                "$schema",
                f"is not a valid JSON Schema: {schema['$schema']!r} is no JSON Schema draft "
                "plugbay knows; use https://json-schema.org/draft/2020-12/schema or leave it out",
            )
    else:
        cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top)"
        raise ConfigError(
            where_schema, where, f"is not a valid JSON Schema: {exc.message}"
        ) from None
    secrets = secret_paths(schema) | given
    filled = apply_defaults(schema, resolved)
    try:
        errors = sorted(
            cls(schema).iter_errors(filled), key=lambda e: [str(p) for p in e.absolute_path]
        )
    except Unresolvable as exc:
        raise ConfigError(
            where_schema,
            "$ref",
            f"is not a valid JSON Schema: {exc!s} cannot be resolved (plugbay follows only "
            "references inside the schema, e.g. #/$defs/name)",
        ) from None
    if errors:
        first = errors[0]
        path = tuple(str(p) for p in first.absolute_path)
        field = ".".join(path) or "(top)"
        config = PluginConfig(filled, secrets)
        if _is_secret(path, secrets):
            message = (
                f"the secret value does not satisfy {first.validator!r}"
                f" ({first.validator!r}: {first.validator_value!r}); the value is not shown"
            )
        else:
            message = scrub(first.message, config.secret_values())
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(source, field, message + more)
    return PluginConfig(filled, secrets)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value (and its repr) replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(repr(secret), repr(SECRET_MASK)).replace(secret, SECRET_MASK)
    return text
