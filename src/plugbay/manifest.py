"""The plugin manifest (DESIGN §2): typed schema, parsing from TOML, YAML or JSON, checks.

Parsing is pure: :func:`parse_manifest` takes bytes and a file name and returns a
:class:`Manifest` or raises :class:`~plugbay.errors.ManifestError` naming the file, the
field path, the value and what is expected. Unknown keys are errors with a "did you
mean" suggestion, except keys that start with ``x-``, which are kept for other tools.

The ``#:`` comment above each field is its description: docs/reference/manifest.md is
generated from them (``python -m plugbay.docgen``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from difflib import get_close_matches
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import ManifestError, VersionError
from .versions import parse_range, parse_version

__all__ = [
    "MANIFEST_NAMES",
    "Contribution",
    "Manifest",
    "PluginInfo",
    "load_manifest",
    "manifest_from_json_member",
    "manifest_from_mapping",
    "parse_manifest",
]

#: File names a plugin folder may hold its manifest in, in order of preference.
MANIFEST_NAMES = ("plugin.toml", "plugin.yaml", "plugin.yml", "plugin.json", "collection.yml")


def manifest_in(folder: Path) -> Path | None:
    """The manifest file of a plugin folder (the first of :data:`MANIFEST_NAMES` there)."""
    return next((folder / n for n in MANIFEST_NAMES if (folder / n).is_file()), None)


# \Z, not $: "$" also matches before a trailing newline, which would let "tool\n" through.
_IDENT = re.compile(r"^[a-z][a-z0-9_]*\Z")
_CONTRIB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*\Z")
_PY_ENTRY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)?\Z")
_PLUGIN_ID = re.compile(r"^([a-z][a-z0-9_]*\.)?[a-z][a-z0-9_]*\Z")
_PLATFORM = re.compile(r"^[a-z0-9]+-[a-z0-9_]+\Z")
# The same rules for many values at once, joined by newlines (which no value may hold):
# one match per kind of a manifest's contributions instead of one per contribution.
_CONTRIB_NAMES = re.compile(r"(?:[A-Za-z][A-Za-z0-9_.-]*\n)*[A-Za-z][A-Za-z0-9_.-]*")
_PY_ENTRIES = re.compile(
    r"(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?\n)*"
    r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?"
)


class _Struct(
    msgspec.Struct,
    frozen=True,
    forbid_unknown_fields=True,
    rename="kebab",
    omit_defaults=True,
    gc=False,
):
    # omit_defaults: an encoded Manifest must parse back, and a module contribution
    # written with its default "priority = 0" would not (priority is for hooks only).
    # Subclasses repeat frozen=True: mypy does not see it inherited through the base.
    # gc=False: manifests hold only strings, numbers and containers of them (no cycles),
    # so the garbage collector need not track the thousands a warm start decodes.
    pass


class PluginInfo(_Struct, frozen=True):
    """The ``[plugin]`` table: identity, compatibility and how the plugin runs."""

    #: Lowercase letters, digits and `_`, starting with a letter.
    name: str
    #: SemVer 2.0: `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
    version: str
    #: Same rules as `name`; the plugin id is `namespace.name` (the bare name without one).
    namespace: str | None = None
    #: One line saying what the plugin does, shown by `plugbay info` (and `list --json`).
    description: str = ""
    #: Who made it, e.g. `"Acme <ops@acme.test>"`.
    authors: tuple[str, ...] = ()
    #: An SPDX license expression, e.g. `Apache-2.0`.
    license: str | None = None
    #: The plugin's web page.
    homepage: str | None = None
    #: The host API versions this plugin works with, as a version range: a host whose API
    #: version is outside it does not load the plugin.
    requires: str = "*"
    #: How the code runs: `python` in the host's process, `exec` as a child process speaking
    #: the plugbay protocol, `wasm` in a WebAssembly sandbox.
    runtime: Literal["python", "exec", "wasm"] = "python"
    #: `python`: `module` or `module:attribute`, the object plugbay calls `register`, `init`,
    #: `start`, `stop` and `health` on (a class is instantiated with no arguments); `exec`:
    #: the command line; `wasm`: the `.wasm` file. Required for `exec` and `wasm` unless
    #: `platforms` is given.
    entry: str | None = None
    #: `lazy`: loaded on first use of one of its contributions; `eager`: at host start.
    activation: Literal["lazy", "eager"] = "lazy"
    #: `process` runs a `python` plugin out of process, in a virtual environment of its
    #: own (runtime `python` only).
    isolation: Literal["none", "process"] = "none"
    #: Requirement specifiers for pip (e.g. `requests>=2.31`), installed with the plugin.
    python_dependencies: tuple[str, ...] = ()
    #: `exec` and `wasm` programs by platform: `OS-ARCH` (e.g. `linux-x86_64`,
    #: `darwin-arm64`) → a path in the plugin folder, used instead of `entry`.
    platforms: dict[str, str] = {}


class Contribution(_Struct, frozen=True):
    """One entry of ``[contributes]``: a named thing of one kind that the plugin provides.

    ``entry`` (``module:attr`` for Python) is imported on first use; without it the
    plugin's ``register(api)`` must add the object. ``priority``, ``before``, ``after`` and
    ``wrapper`` apply to hooks only; ``requires_auth`` to commands only.
    """

    #: Letters, digits, `_`, `-` and `.`, starting with a letter; unique within its kind
    #: in the plugin (except hooks, which a plugin may implement more than once).
    name: str
    #: `module:attribute` for `python` plugins, imported on first use; without it the
    #: plugin's `register(api)` must add the object.
    entry: str | None = None
    #: One line, shown in listings and in command help.
    summary: str = ""
    #: A Markdown file, relative to the plugin folder, that `plugbay help NAME` shows
    #: (default `help/<name>.md`).
    help: str | None = None
    #: Hooks: implementations with a higher priority are called first.
    priority: int = 0
    #: Hooks: plugin ids whose implementations this one is called before.
    before: tuple[str, ...] = ()
    #: Hooks: plugin ids whose implementations this one is called after.
    after: tuple[str, ...] = ()
    #: Hooks: a generator that wraps the other implementations (it yields to them).
    wrapper: bool = False
    #: Commands: the host must authorise each call (`Host(authorize=...)`).
    requires_auth: bool = False


_BASE_CONTRIB_KEYS = frozenset({"name", "entry", "summary", "help"})
_KIND_KEYS = {
    "hook": _BASE_CONTRIB_KEYS | {"priority", "before", "after", "wrapper"},
    "command": _BASE_CONTRIB_KEYS | {"requires-auth"},
}


def _foreign_fields(kind: str) -> tuple[Callable[[Contribution], object], object]:
    """For contributions of ``kind`` ("" for any kind but those of _KIND_KEYS): what
    reads the fields only other kinds may set, and the value it reads when all are at
    their defaults (the same rule as _KIND_KEYS, by field, for _kind_fields_ok)."""
    allowed = _KIND_KEYS.get(kind, _BASE_CONTRIB_KEYS)
    foreign = [f for f in msgspec.structs.fields(Contribution) if f.encode_name not in allowed]
    if len(foreign) == 1:  # (attrgetter of one name gives the value, not a tuple)
        return attrgetter(foreign[0].name), foreign[0].default
    return attrgetter(*(f.name for f in foreign)), tuple(f.default for f in foreign)


_FOREIGN = {kind: _foreign_fields(kind) for kind in (*_KIND_KEYS, "")}


class FilesystemPermissions(_Struct, frozen=True):
    """Paths the plugin asks to read and to write."""

    #: Paths the plugin asks to read.
    read: tuple[str, ...] = ()
    #: Paths the plugin asks to write.
    write: tuple[str, ...] = ()


class Permissions(_Struct, frozen=True):
    """What the plugin asks for; the user's policy decides what is granted."""

    #: Hosts it asks to connect to, as `HOST[:PORT]` patterns.
    network: tuple[str, ...] = ()
    #: Paths it asks to read and to write.
    filesystem: FilesystemPermissions = FilesystemPermissions()
    #: Names of environment variables it asks to read.
    env: tuple[str, ...] = ()
    #: Whether it asks to start processes.
    subprocess: bool = False


class ConfigSection(_Struct, frozen=True):
    """``[config]``: the JSON Schema (a file in the plugin folder, or inline) of its config."""

    #: A JSON Schema file in the plugin folder, or the schema inline, that the plugin's
    #: `[plugins."<id>"]` table in the home's `config.toml` is validated against.
    schema: str | dict[str, Any] | None = None


class Manifest(_Struct, frozen=True):
    """A whole manifest: the normalised form every format decodes to."""

    #: Identity, compatibility and how the plugin runs.
    plugin: PluginInfo
    #: The manifest schema version; only 1 exists.
    schema: Literal[1] = 1
    #: Other plugins this one needs: plugin id → version range.
    dependencies: dict[str, str] = {}
    #: What the plugin provides to the host: kind → list of contributions.
    contributes: dict[str, tuple[Contribution, ...]] = {}
    #: What the plugin asks to be allowed; the user's grants decide.
    permissions: Permissions = Permissions()
    #: The schema of the plugin's configuration.
    config: ConfigSection = ConfigSection()
    #: Glob patterns of files `plugbay build` leaves out of the bundle, besides version
    #: control folders, caches and virtual environments.
    exclude: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """``namespace.name``, or the bare name for a plugin with no namespace."""
        p = self.plugin
        return f"{p.namespace}.{p.name}" if p.namespace else p.name

    @property
    def version(self) -> str:
        return self.plugin.version


# Which struct sits at which field path, for "did you mean" on unknown keys.
_STRUCT_AT: dict[str, type[msgspec.Struct]] = {
    "": Manifest,
    "plugin": PluginInfo,
    "permissions": Permissions,
    "permissions.filesystem": FilesystemPermissions,
    "config": ConfigSection,
}


def load_manifest(path: Path) -> Manifest:
    """Read and parse the manifest file at ``path``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(str(path), "", f"cannot be read: {exc.strerror or exc}") from exc
    return parse_manifest(data, str(path))


def parse_manifest(data: bytes, file: str) -> Manifest:
    """Parse manifest bytes; the format follows from the file name's suffix."""
    raw = _decode(data, file)
    return manifest_from_mapping(raw, file)


def manifest_from_mapping(raw: object, file: str = "<manifest>") -> Manifest:
    """Validate an already-decoded document (a mapping) and return the Manifest."""
    if not isinstance(raw, Mapping):
        got = "an empty document" if raw is None else f"a {_kind(raw)}"
        raise ManifestError(
            file, "", f"expected a table of keys at the top (with a [plugin] table), got {got}"
        )
    cleaned = _strip_extension_keys(raw)
    _check_contribution_keys(cleaned, file)
    _check_keyed_tables(cleaned, file)
    try:
        manifest = msgspec.convert(cleaned, Manifest)
    except msgspec.ValidationError as exc:
        raise _translate(exc, cleaned, file) from None
    _check_semantics(manifest, file)
    return manifest


class _Member(msgspec.Struct):
    manifest: Manifest


class _RawMember(msgspec.Struct):
    manifest: dict[str, Any]


_MEMBER = msgspec.json.Decoder(_Member)


def manifest_from_json_member(data: bytes, file: str) -> Manifest:
    """The manifest in the ``manifest`` member of a JSON document plugbay wrote.

    That is a bundle's or an installed version's ``MANIFEST.json``: plugbay writes the
    manifest there normalised (``x-`` keys dropped, defaults omitted), so one typed decode
    reads it, and the same checks as :func:`manifest_from_mapping` follow. A document that
    does not decode that way (an ``x-`` key, a wrong type, a key a contribution of its kind
    may not have) is read by :func:`manifest_from_mapping`, which says precisely what is
    wrong. Raises ManifestError; a document that is not a JSON object with a ``manifest``
    table too.
    """
    try:
        manifest = _MEMBER.decode(data).manifest
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    else:
        if _kind_fields_ok(manifest):
            _check_semantics(manifest, file)
            return manifest
    try:
        raw = msgspec.json.decode(data, type=_RawMember).manifest
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ManifestError(file, "", f"is not a readable MANIFEST.json: {exc}") from None
    return manifest_from_mapping(raw, file)


def _kind_fields_ok(m: Manifest) -> bool:
    """Whether every contribution leaves the keys of other kinds at their defaults.

    In a manifest file such a key is an error even at its default value; plugbay never
    writes defaults into MANIFEST.json, so a value here means the file was not its own.
    """
    for kind, entries in m.contributes.items():
        values, defaults = _FOREIGN.get(kind, _FOREIGN[""])
        for c in entries:
            if values(c) != defaults:
                return False
    return True


def _decode(data: bytes, file: str) -> object:
    suffix = file.rsplit(".", 1)[-1].lower()
    if suffix not in ("toml", "yaml", "yml", "json"):
        raise ManifestError(
            file, "", f"has an unknown format; name it one of {', '.join(MANIFEST_NAMES)}"
        )
    try:
        # utf-8-sig: a byte-order mark, as some editors write, is not an error.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            file, "", f"is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    try:
        if suffix == "toml":
            import tomllib

            return tomllib.loads(text)
        if suffix == "json":
            return msgspec.json.decode(text)
        import yaml

        # CSafeLoader when libyaml is present: same result, several times faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader)
    except Exception as exc:  # noqa: BLE001 - each parser has its own error classes
        kind = "YAML" if suffix == "yml" else suffix.upper()
        raise ManifestError(file, "", f"is not valid {kind}: {_parse_problem(exc)}") from None


def _parse_problem(exc: BaseException) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        # PyYAML's own text names "<unicode string>" instead of the file; say where instead.
        context = getattr(exc, "context", None)
        lead = f"{context}: " if context else ""
        return f"{lead}{problem} (at line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _strip_extension_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``x-`` keys from the tables the schema owns (not from free-form tables)."""

    def strip(table: object) -> object:
        return _drop_extension_keys(table) if isinstance(table, Mapping) else table

    out = _drop_extension_keys(raw)
    for key in ("plugin", "permissions", "config"):
        if key in out:
            out[key] = strip(out[key])
    perms = out.get("permissions")
    if isinstance(perms, dict) and "filesystem" in perms:
        perms["filesystem"] = strip(perms["filesystem"])
    contributes = out.get("contributes")
    if isinstance(contributes, Mapping):
        out["contributes"] = {
            kind: [strip(e) for e in entries] if isinstance(entries, list) else entries
            for kind, entries in contributes.items()
            if not (isinstance(kind, str) and kind.startswith("x-"))
        }
    return out


def _drop_extension_keys(table: Mapping[Any, Any]) -> dict[Any, Any]:
    return {k: v for k, v in table.items() if not (isinstance(k, str) and k.startswith("x-"))}


def _check_contribution_keys(raw: Mapping[str, Any], file: str) -> None:
    contributes = raw.get("contributes")
    if not isinstance(contributes, Mapping):
        return
    for kind, entries in contributes.items():
        if not isinstance(entries, list):
            continue
        allowed = _KIND_KEYS.get(kind, _BASE_CONTRIB_KEYS)
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            for key, value in entry.items():
                if key not in allowed:
                    raise ManifestError(
                        file,
                        f"contributes.{kind}[{i}].{key}",
                        _unknown_key_problem(str(key), sorted(allowed), kind),
                        value,
                    )


# Tables keyed by names of the plugin's choosing (plugin ids, kinds, platforms). msgspec
# reports a bad value in them at "[...]" without the key, so each key is checked alone.
_KEYED_TABLES: dict[str, Any] = {
    "dependencies": str,
    "contributes": tuple[Contribution, ...],
    "plugin.platforms": str,
}


def _check_keyed_tables(raw: Mapping[str, Any], file: str) -> None:
    for path, value_type in _KEYED_TABLES.items():
        table = _value_at(raw, path)
        if not isinstance(table, Mapping):
            continue  # absent, or the wrong type: the whole conversion reports it
        for key, value in table.items():
            if not isinstance(key, str):
                raise ManifestError(
                    file,
                    f"{path}.{key}",
                    f"{key!r} is {_kind(key, article=True)}; keys must be text (quote it)",
                    key,
                )
            try:
                msgspec.convert(value, value_type)
            except msgspec.ValidationError as exc:
                raise _translate(exc, value, file, f"{path}.{key}") from None


def _unknown_key_problem(key: str, allowed: list[str], kind: str | None = None) -> str:
    everywhere = {k for keys in _KIND_KEYS.values() for k in keys}
    if kind is not None and key in everywhere:
        owners = sorted(k for k, keys in _KIND_KEYS.items() if key in keys)
        return (
            f"unknown key {key!r} for a {kind}: only {' and '.join(owners)} contributions "
            "take it; remove it"
        )
    close = get_close_matches(key, allowed, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return (
        f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)}; "
        "prefix a key with x- to keep data of your own)"
    )


_MSGSPEC_ERROR = re.compile(
    r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S
)


def _translate(
    exc: msgspec.ValidationError, raw: object, file: str, prefix: str = ""
) -> ManifestError:
    """Turn msgspec's error on ``raw`` (found at field path ``prefix``) into a ManifestError."""
    match = _MSGSPEC_ERROR.match(str(exc))
    msg = match.group("msg") if match else str(exc)
    path = (match.group("path") or "") if match else ""
    path = path.lstrip(".")
    field = _join(prefix, path)
    if match and match.group("key"):
        node = _value_at(raw, path)
        key = next((k for k in node if not isinstance(k, str)), None) if node else None
        return ManifestError(
            file,
            _join(field, str(key)),
            f"{key!r} is {_kind(key, article=True)}; keys must be text (quote it)",
            key,
        )
    unknown = re.match(r"Object contains unknown field `(?P<key>[^`]*)`", msg)
    if unknown:
        key = unknown.group("key")
        struct = _STRUCT_AT.get(re.sub(r"\[\d+\]", "", field))
        allowed = sorted(f.encode_name for f in msgspec.structs.fields(struct)) if struct else []
        value = _value_at(raw, _join(path, key))
        return ManifestError(file, _join(field, key), _unknown_key_problem(key, allowed), value)
    missing = re.match(r"Object missing required field `(?P<key>[^`]*)`", msg)
    if missing:
        key = missing.group("key")
        if field == "" and key == "plugin":
            return ManifestError(
                file, key, "is missing; add a [plugin] table with name and version"
            )
        table = f"[{field}]" if field and "[" not in field else field or "the top level"
        return ManifestError(file, _join(field, key), f"is required; add {key} to {table}")
    value = _value_at(raw, path)
    expected = msg
    typed = re.match(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`", msg)
    if typed:
        want, got = typed.group("want"), typed.group("got")
        expected = f"expected {_type_name(want)}, got {_type_name(got)}"
        if want.startswith("str") and got in ("int", "float", "bool"):
            expected += "; put the value in quotes"
    elif msg.startswith("Invalid enum value"):
        expected = "expected one of " + _allowed_literals(field)
    return ManifestError(file, field, f"{_show(value)}: {expected}", value)


def _join(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}{key}" if key.startswith("[") or not key else f"{path}.{key}"


def _allowed_literals(path: str) -> str:
    choices = {
        "plugin.runtime": "python, exec, wasm",
        "plugin.activation": "lazy, eager",
        "plugin.isolation": "none, process",
        "schema": "1",
    }
    return choices.get(path, "the values the schema allows")


def _value_at(raw: object, path: str) -> Any:
    node: Any = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object, *, article: bool = False) -> str:
    names = {dict: "table", list: "list", str: "string", int: "integer", float: "float"}
    name = names.get(type(value), type(value).__name__)
    if not article:
        return name
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


# msgspec names JSON types; a manifest's author thinks in TOML and YAML terms.
_TYPE_NAMES = {
    "object": "table",
    "array": "list",
    "str": "string",
    "int": "integer",
    "bool": "boolean",
    "null": "nothing",
}


def _type_name(msgspec_type: str) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t) for t in msgspec_type.split(" | "))


def _check_semantics(m: Manifest, file: str) -> None:
    p = m.plugin
    if not _IDENT.match(p.name):
        raise ManifestError(
            file,
            "plugin.name",
            f"{p.name!r} is not a valid name; use lowercase letters, digits and _ "
            "starting with a letter",
            p.name,
        )
    if p.namespace is not None and not _IDENT.match(p.namespace):
        raise ManifestError(
            file,
            "plugin.namespace",
            f"{p.namespace!r} is not a valid namespace; use lowercase letters, digits and _ "
            "starting with a letter",
            p.namespace,
        )
    _check_version(file, "plugin.version", p.version, "version")
    _check_version(file, "plugin.requires", p.requires, "range")
    for dep, rng in m.dependencies.items():
        if not _PLUGIN_ID.match(dep):
            raise ManifestError(
                file, f"dependencies.{dep}", f"{dep!r} is not a plugin id (namespace.name)", dep
            )
        if dep == m.id:
            raise ManifestError(
                file,
                f"dependencies.{dep}",
                "a plugin cannot depend on itself; remove it from [dependencies]",
                dep,
            )
        _check_version(file, f"dependencies.{dep}", rng, "range")
    if p.runtime == "python":
        if p.entry is not None and not _PY_ENTRY.match(p.entry):
            raise ManifestError(
                file,
                "plugin.entry",
                f"{p.entry!r} is not a Python entry; expected module or module:attribute, "
                'e.g. "acme_tool.plugin:Plugin"',
                p.entry,
            )
    elif not p.entry and not p.platforms:
        raise ManifestError(
            file,
            "plugin.entry",
            f"is required for runtime {p.runtime!r} (the command or file to run), or give "
            "[plugin.platforms]",
        )
    if p.isolation == "process" and p.runtime != "python":
        raise ManifestError(
            file, "plugin.isolation", 'applies to runtime "python" only', p.isolation
        )
    for key in p.platforms:
        if not _PLATFORM.match(key):
            raise ManifestError(
                file,
                f"plugin.platforms.{key}",
                f"{key!r} is not a platform; expected OS-ARCH such as linux-x86_64 or darwin-arm64",
                key,
            )
    _check_contributions(m, file)


def _check_contributions(m: Manifest, file: str) -> None:
    python = m.plugin.runtime == "python"
    for kind, entries in m.contributes.items():
        # This runs for every contribution of every manifest parsed, so a kind whose
        # contributions are all well is checked in a few matches over joined values; any
        # doubt, and the one-by-one check below finds what is wrong and where.
        names = [c.name for c in entries]
        entry_points = [c.entry for c in entries if c.entry is not None] if python else []
        helps = "\n".join(c.help for c in entries if c.help is not None)
        joined_names = "\n".join((kind, *names))
        joined_entries = "\n".join(entry_points)
        if (
            # (the counts: a value holding a newline would pass as two values)
            joined_names.count("\n") == len(names)
            and _CONTRIB_NAMES.fullmatch(joined_names)
            and (kind == "hook" or len(set(names)) == len(names))
            and joined_entries.count("\n") == max(len(entry_points) - 1, 0)
            and (not entry_points or _PY_ENTRIES.fullmatch(joined_entries))
            and ".." not in helps
            and ":" not in helps
            and "\n/" not in "\n" + helps
            and "\n\\" not in "\n" + helps
            and not any(c.before or c.after for c in entries)
        ):
            continue
        _check_kind(kind, entries, python, file)


def _check_kind(kind: str, entries: tuple[Contribution, ...], python: bool, file: str) -> None:
    if not _CONTRIB_NAME.match(kind):
        raise ManifestError(
            file,
            f"contributes.{kind}",
            f"{kind!r} is not a valid kind; use letters, digits, _, - and . starting with a letter",
            kind,
        )
    seen: set[str] = set()
    for i, c in enumerate(entries):
        where = f"contributes.{kind}[{i}]"
        if not _CONTRIB_NAME.match(c.name):
            raise ManifestError(
                file,
                f"{where}.name",
                f"{c.name!r} is not a valid name; use letters, digits, _, - and . "
                "starting with a letter",
                c.name,
            )
        # One plugin may implement a hook twice (say, plainly and as a wrapper); any
        # other kind names one contribution per name.
        if c.name in seen and kind != "hook":
            raise ManifestError(
                file, f"{where}.name", f"{c.name!r} is declared twice in {kind}", c.name
            )
        seen.add(c.name)
        if python and c.entry is not None and not _PY_ENTRY.match(c.entry):
            raise ManifestError(
                file,
                f"{where}.entry",
                f"{c.entry!r} is not a Python entry; expected module:attribute",
                c.entry,
            )
        if c.help is not None and _leaves_folder(c.help):
            raise ManifestError(
                file,
                f"{where}.help",
                f"{c.help!r} must be a relative path inside the plugin folder, "
                'e.g. "help/my_module.md"',
                c.help,
            )
        _check_order_ids(c, where, file)


def _check_order_ids(c: Contribution, where: str, file: str) -> None:
    for j, other in enumerate((*c.before, *c.after)):
        if not _PLUGIN_ID.match(other):
            raise ManifestError(
                file,
                f"{where}.{'before' if j < len(c.before) else 'after'}",
                f"{other!r} is not a plugin id (namespace.name)",
                other,
            )


def _leaves_folder(path: str) -> bool:
    # Windows rules read both separators and drives, so "..\\x" and "C:/x" are caught too:
    # a root, a drive (also "C:x"), or a ".." part. (String tests: this runs for every
    # contribution of every manifest parsed.)
    if path[:1] in ("/", "\\") or path[1:2] == ":":
        return True
    return ".." in path and ".." in path.replace("\\", "/").split("/")


def _check_version(file: str, field: str, text: str, what: Literal["version", "range"]) -> None:
    try:
        if what == "version":
            parse_version(text)
        else:
            parse_range(text)
    except VersionError as exc:
        raise ManifestError(file, field, str(exc), text) from None
