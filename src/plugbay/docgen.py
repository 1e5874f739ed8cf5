"""Reference documentation generated from the code: the manifest schema and the CLI.

``python -m plugbay.docgen`` (from the repository root) writes

- ``docs/reference/manifest.md`` from the msgspec Structs of :mod:`plugbay.manifest`
  (walked with :mod:`msgspec.inspect`; each field's description is the ``#:`` comment
  above it, in Markdown), and
- ``docs/reference/cli.md`` from the click group :func:`plugbay.cli.app.command_group`
  builds, with every command registered at that moment.

``--check`` writes nothing and exits 1 when a file is out of date, as
tests/test_reference_docs.py does. The output does not depend on the terminal: nothing
is wrapped to a width, and commands are sorted by name (options keep the order the code
declares them in, which is the order ``--help`` shows).

Neither the library nor the ``plugbay`` command imports this module: it imports every
command module at once, which the CLI avoids to start fast.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
import textwrap
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# This module documents the click command line, so it reads click's objects directly.
import click
import msgspec
import msgspec.inspect as mi

__all__ = [
    "REGENERATE",
    "DocgenError",
    "cli_reference",
    "field_descriptions",
    "main",
    "manifest_reference",
    "render_references",
]

#: The command that regenerates them, as the files and the drift test tell it.
REGENERATE = "python -m plugbay.docgen"

_DEFAULT_OUT = Path("docs") / "reference"

_HEADER = (
    "<!-- Generated from the code by `{command}`: do not edit by hand. -->\n\n"
    "# {title}\n\n"
    "Generated from {source} by `{command}`; the guide that explains it is "
    "[{guide}](../{guide}).\n"
)


class DocgenError(Exception):
    """The code cannot be documented as it is (e.g. a manifest field has no description)."""


# ------------------------------------------------------------------ manifest


def manifest_reference() -> str:
    """The Markdown text of docs/reference/manifest.md."""
    from . import manifest as m

    tables = list(_struct_tables(m.Manifest))
    out = [
        _HEADER.format(
            command=REGENERATE,
            title="Manifest reference",
            source="`src/plugbay/manifest.py`",
            guide="manifest.md",
        ),
        "## File names\n",
        "A plugin folder holds one manifest. plugbay reads the first of these names it "
        "finds, in this order; all hold the same schema in the syntax their suffix names:\n",
    ]
    out += [f"{n}. `{name}`" for n, name in enumerate(m.MANIFEST_NAMES, 1)]
    out += [
        "",
        "Keys are written as below (words joined by `-`). A key the schema does not know is "
        'an error with a "did you mean"; keys that start with `x-` are ignored in every '
        "table listed here, so other tools can keep data of their own in a manifest.\n",
        "Tables:\n",
    ]
    out += [f"- [{_table_title(path)}](#{_anchor(_table_title(path))})" for path, _ in tables]
    out += ["- [Contribution kinds](#contribution-kinds)", "- [Version ranges](#version-ranges)"]
    out.append("")
    for path, cls in tables:
        out.append(_struct_section(path, cls, m))
    out.append(_kinds_section(m))
    out.append(_ranges_section())
    return "\n".join(out).rstrip("\n") + "\n"


# A table reached through a table whose keys the plugin chooses: the name its heading
# gives those keys.
_KEY_PLACEHOLDERS = {"contributes": "<kind>"}


def _struct_tables(root: type[msgspec.Struct]) -> Iterator[tuple[str, type[msgspec.Struct]]]:
    """Each Struct of the schema with the table path it sits at, depth first in field order."""
    info = mi.type_info(root)
    assert isinstance(info, mi.StructType)
    todo: list[tuple[str, mi.StructType]] = [("", info)]
    seen: set[type] = set()
    while todo:
        path, struct = todo.pop(0)
        if struct.cls in seen:
            continue  # a table that holds itself is described once
        seen.add(struct.cls)
        yield path, struct.cls
        nested = []
        for field in struct.fields:
            sub = _join(path, field.encode_name)
            for inner, through_keys in _structs_in(field.type):
                if through_keys:
                    placeholder = _KEY_PLACEHOLDERS.get(sub)
                    if placeholder is None:
                        raise DocgenError(
                            f"{sub}: a table of tables; name its keys in docgen._KEY_PLACEHOLDERS"
                        )
                    nested.append((f"{sub}.{placeholder}", inner))
                else:
                    nested.append((sub, inner))
        todo[0:0] = nested


def _structs_in(t: mi.Type, through_keys: bool = False) -> Iterator[tuple[mi.StructType, bool]]:
    if isinstance(t, mi.StructType):
        yield t, through_keys
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            yield from _structs_in(member, through_keys)
    elif isinstance(t, (mi.VarTupleType, mi.ListType)):
        yield from _structs_in(t.item_type, through_keys)
    elif isinstance(t, mi.DictType):
        yield from _structs_in(t.value_type, True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_array_of_tables(path: str) -> bool:
    return any(path.startswith(f"{k}.") for k in _KEY_PLACEHOLDERS)


def _table_title(path: str) -> str:
    if not path:
        return "Top level"
    if _is_array_of_tables(path):
        return f"`[[{path}]]`"
    return f"`[{path}]`"


def _anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _struct_section(path: str, cls: type[msgspec.Struct], m: Any) -> str:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    descriptions = field_descriptions(cls)
    is_contribution = cls is m.Contribution
    lines = [f"## {_table_title(path)}\n", _doc_summary(cls), ""]
    if is_contribution:
        lines.append(
            "One table per contribution, in a list under the contribution's kind, e.g. "
            '`module = [{ name = "vm", entry = "acme.vm:Vm" }]`. Which keys a kind '
            "takes: [Contribution kinds](#contribution-kinds).\n"
        )
    headers = ["key", "type", "default", *(["kinds"] if is_contribution else []), "description"]
    lines += [_row(headers), _row(["---"] * len(headers))]
    for field in info.fields:
        cells = [
            f"`{field.encode_name}`",
            _type_text(field.type, cls, field.name, path),
            _default_text(field),
        ]
        if is_contribution:
            cells.append(_kinds_taking(field.encode_name, m))
        cells.append(descriptions[field.name])
        lines.append(_row(cells))
    return "\n".join(lines) + "\n"


def _doc_summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return _rst_to_md(" ".join(doc.split("\n\n", 1)[0].split()))


def _rst_to_md(text: str) -> str:
    return text.replace("``", "`")


def field_descriptions(cls: type) -> dict[str, str]:
    """Each field's description: the ``#:`` comment lines right above its declaration.

    Raises DocgenError naming a field that has none, so that no field goes undocumented.
    """
    source = inspect.getsource(cls)
    lines = source.splitlines()
    tree = ast.parse(textwrap.dedent(source))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        comment: list[str] = []
        i = node.lineno - 2  # the line above, counted from 0
        while i >= 0 and lines[i].strip().startswith("#:"):
            comment.insert(0, lines[i].strip()[2:].strip())
            i -= 1
        found[node.target.id] = " ".join(comment)
    missing = [f.name for f in msgspec.structs.fields(cls) if not found.get(f.name)]
    if missing:
        raise DocgenError(
            f"{cls.__module__}.{cls.__qualname__}: field {', '.join(missing)} has no "
            "description; add a '#: ...' comment line right above it"
        )
    return found


def _type_text(t: mi.Type, cls: type, field: str, path: str, plural: bool = False) -> str:
    """The type in TOML words (string, list of strings, table…), with allowed values."""
    s = "s" if plural else ""
    if isinstance(t, mi.StrType):
        return f"string{s}"
    if isinstance(t, mi.IntType):
        return f"integer{s}"
    if isinstance(t, mi.FloatType):
        return f"number{s}"
    if isinstance(t, mi.BoolType):
        return f"boolean{s}"
    if isinstance(t, mi.AnyType):
        return "any values" if plural else "any value"
    if isinstance(t, mi.LiteralType):
        values = _literal_order(cls, field, t.values)
        return "one of " + ", ".join(f"`{_toml(v)}`" for v in values)
    if isinstance(t, mi.UnionType):
        members = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return " or ".join(_type_text(x, cls, field, path, plural) for x in members)
    if isinstance(t, (mi.VarTupleType, mi.ListType)):
        item = _type_text(t.item_type, cls, field, path, plural=True)
        return f"list{s} of {item}"
    if isinstance(t, mi.DictType):
        sub = _join(path, _field_encode_name(cls, field))
        placeholder = _KEY_PLACEHOLDERS.get(sub)
        value = _type_text(t.value_type, cls, field, f"{sub}.{placeholder}", plural=True)
        return f"table{s} of {value}"
    if isinstance(t, mi.StructType):
        target = path if _is_array_of_tables(path) else _join(path, _field_encode_name(cls, field))
        title = _table_title(target)
        return f"[table{s}](#{_anchor(title)})"
    raise DocgenError(f"{cls.__qualname__}.{field}: no words for the type {t!r}; teach docgen")


def _field_encode_name(cls: type, name: str) -> str:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return next(f.encode_name for f in info.fields if f.name == name)


def _literal_order(cls: type, field: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values in the order the code lists them (msgspec.inspect sorts them)."""
    hint = typing.get_type_hints(cls).get(field)
    for candidate in (hint, *typing.get_args(hint)):
        if typing.get_origin(candidate) is typing.Literal:
            declared = typing.get_args(candidate)
            if set(declared) == set(values):
                return declared
    return values


def _default_text(field: mi.Field) -> str:
    if field.required:
        return "**required**"
    factory = field.default_factory
    value = factory() if factory is not msgspec.NODEFAULT else field.default
    if value is None:
        return "none"
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)  # omit_defaults: an all-default table is {}
    return f"`{_toml(value)}`"


def _toml(value: Any) -> str:
    """A value as TOML writes it (inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


def _kinds_taking(key: str, m: Any) -> str:
    if key in m._BASE_CONTRIB_KEYS:
        return "all"
    owners = sorted(kind for kind, keys in m._KIND_KEYS.items() if key in keys)
    return ", ".join(f"`{k}`" for k in owners)


def _kinds_section(m: Any) -> str:
    order = [f.encode_name for f in msgspec.structs.fields(m.Contribution)]

    def keys(allowed: frozenset[str]) -> str:
        return ", ".join(f"`{k}`" for k in order if k in allowed)

    lines = [
        "## Contribution kinds\n",
        "Each key of `[contributes]` is a kind: one of the built-in kinds below, or one the "
        "host declares (`Host(kinds=...)`, e.g. `module`, `tool`, `channel`). A kind's name, "
        "like a contribution's, is letters, digits, `_`, `-` and `.`, starting with a letter. "
        "A key that does not belong to the entry's kind is an error.\n",
        "| kind | keys it takes |",
        "| --- | --- |",
    ]
    for kind in sorted(m._KIND_KEYS):
        lines.append(_row([f"`{kind}` (built in)", keys(m._KIND_KEYS[kind])]))
    lines.append(_row(["any kind the host declares", keys(m._BASE_CONTRIB_KEYS)]))
    return "\n".join(lines) + "\n"


# Each syntax with what it means in words; the "same as" column is computed by the
# version library, and the examples are checked by it too.
_RANGE_SYNTAX = (
    (">=1.0.0,<2.0.0", "comparators (`<`, `<=`, `>`, `>=`, `=`), by commas or spaces: all hold"),
    ("^1.2", "caret: up to the next major version"),
    ("^0.2.3", "caret below 1.0.0: up to the next minor version"),
    ("~1.2.3", "tilde: up to the next minor version"),
    ("1.2.*", "wildcard (also `1.2.x`, `1.x`)"),
    ("*", "any release"),
    ("^1.2 || ^3", "alternatives: either range"),
)  # fmt: skip
_RANGE_EXAMPLES = (
    ("1.9.0", "^1.2"),
    ("2.0.0", "^1.2"),
    ("0.3.0", "^0.2.3"),
    ("1.2.9", "~1.2.3"),
    ("1.2.4-beta", ">=1.2.4-alpha"),
    ("1.3.0-rc.1", ">=1.2.0"),
    ("2.0.0-rc.1", "*"),
    ("1.0.0+build.5", "1.0.0"),
)


def _ranges_section() -> str:
    from .versions import parse_range, satisfies

    lines = [
        "## Version ranges\n",
        "Used by `[plugin] requires` and the values of `[dependencies]`. Versions are "
        "SemVer 2.0 and ordered by its precedence (build metadata is ignored).\n",
        "| syntax | means | same as |",
        "| --- | --- | --- |",
    ]
    for syntax, meaning in _RANGE_SYNTAX:
        lines.append(_row([f"`{syntax}`", meaning, _same_as(parse_range(syntax))]))
    lines += [
        "",
        "Examples, checked by the version library when this file was generated. A "
        "prerelease version only matches a range that names a prerelease of the same "
        "`MAJOR.MINOR.PATCH`, so a plugin does not pick up prereleases unasked:\n",
        "| version | range | matches |",
        "| --- | --- | --- |",
    ]
    for version, rng in _RANGE_EXAMPLES:
        match = "yes" if satisfies(version, rng) else "no"
        lines.append(_row([f"`{version}`", f"`{rng}`", match]))
    return "\n".join(lines) + "\n"


def _same_as(rng: Any) -> str:
    # node-semver's normalised form of the range: comparators only.
    normal = str(rng._range.range)
    if not normal:
        return "any release"
    return " or ".join(f"`{alt.strip()}`" for alt in normal.split("||"))


# ----------------------------------------------------------------------- cli


def cli_reference() -> str:
    """The Markdown text of docs/reference/cli.md."""
    from .cli.app import command_group

    group = command_group()
    ctx = _context(group, "plugbay", None)
    # --version is the group's alone (not accepted after a command name): said apart.
    global_params = [
        p for p in group.get_params(ctx) if not getattr(p, "hidden", False) and p.name != "version"
    ]
    global_keys = {_param_key(p) for p in global_params}
    commands = sorted(_walk(group, ctx), key=lambda item: item[1].command_path)
    mounted = command_group("host")
    mounted_keys = {_param_key(p) for p in mounted.params}
    standalone_only = [
        p for p in group.params if _param_key(p) not in mounted_keys and p.name != "version"
    ]

    out = [
        _HEADER.format(
            command=REGENERATE,
            title="`plugbay` command reference",
            source="the click commands in `src/plugbay/cli/`",
            guide="cli.md",
        ),
        "```",
        _usage(group, ctx),
        "```\n",
        _help_markdown(group.help),
        "",
        "## Global options\n",
        "Accepted before or after the command name: `plugbay list --json` and "
        "`plugbay --json list` are the same.",
    ]
    if standalone_only:
        names = [f"`{p.opts[-1]}`" for p in standalone_only]
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        out.append(
            f"\nMounted in a host's command line (`plugbay.cli.mount`), {listed} "
            f"{'are' if len(names) > 1 else 'is'} fixed by the host and not offered."
        )
    out += ["", *_options_table(global_params, ctx), ""]
    out += ["`plugbay --version` prints plugbay's version (not offered when mounted).", ""]
    out += ["## Commands\n"]
    out += ["| command | does |", "| --- | --- |"]
    for cmd, cctx in commands:
        title = f"`{cctx.command_path}`"
        out.append(_row([f"[{title}](#{_anchor(title)})", _short_help(cmd)]))
    out.append("")
    for cmd, cctx in commands:
        out.append(_command_section(cmd, cctx, global_keys))
    return "\n".join(out).rstrip("\n") + "\n"


def _context(cmd: click.Command, name: str, parent: click.Context | None) -> click.Context:
    # The command's own context settings (e.g. -h as well as --help), and a fixed width
    # in case anything formats text.
    settings = {"terminal_width": 100, "max_content_width": 100, **cmd.context_settings}
    return click.Context(cmd, info_name=name, parent=parent, **settings)


def _walk(group: click.Group, ctx: click.Context) -> Iterator[tuple[click.Command, click.Context]]:
    """Every visible command under ``group``, asked through list_commands and
    get_command so that lazily registered commands appear too."""
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        cctx = _context(cmd, name, ctx)
        yield cmd, cctx
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, cctx)


def _param_key(p: click.Parameter) -> tuple[str | None, tuple[str, ...]]:
    return p.name, tuple(p.opts)


def _usage(cmd: click.Command, ctx: click.Context) -> str:
    return " ".join([ctx.command_path, *cmd.collect_usage_pieces(ctx)])


def _help_paragraphs(text: str | None) -> list[tuple[bool, str]]:
    """``(verbatim, text)`` paragraphs of a click help text, unwrapped."""
    if not text:
        return []
    text = inspect.cleandoc(text).split("\f", 1)[0]
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        if block.startswith("\b\n"):
            paragraphs.append((True, block[2:]))
        elif block.strip():
            paragraphs.append((False, " ".join(block.split())))
    return paragraphs


def _help_markdown(text: str | None) -> str:
    parts = []
    for verbatim, para in _help_paragraphs(text):
        parts.append(f"```\n{para}\n```" if verbatim else _escape(para))
    return "\n\n".join(parts) if parts else "_No help text._"


def _short_help(cmd: click.Command) -> str:
    if cmd.short_help:
        return _escape(cmd.short_help)
    paragraphs = _help_paragraphs(cmd.help)
    if not paragraphs:
        return ""
    first = paragraphs[0][1]
    # The first sentence: up to a full stop followed by a capital ("e.g. a" goes on).
    return _escape(re.split(r"(?<=\.)\s+(?=[A-Z])", first, maxsplit=1)[0])


def _command_section(
    cmd: click.Command, ctx: click.Context, global_keys: set[tuple[str | None, tuple[str, ...]]]
) -> str:
    help_option = cmd.get_help_option(ctx)
    params = [
        p
        for p in cmd.get_params(ctx)
        if not getattr(p, "hidden", False)
        and p is not help_option
        and _param_key(p) not in global_keys
    ]
    title = f"## `{ctx.command_path}`"
    if cmd.deprecated:
        title += " (deprecated)"
    lines = [f"{title}\n", "```", _usage(cmd, ctx), "```\n", _help_markdown(cmd.help), ""]
    if isinstance(cmd, click.Group):
        lines += ["| command | does |", "| --- | --- |"]
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_title = f"`{ctx.command_path} {name}`"
            lines.append(_row([f"[{sub_title}](#{_anchor(sub_title)})", _short_help(sub)]))
        lines.append("")
    arguments = [p for p in params if isinstance(p, click.Argument)]
    options = [p for p in params if not isinstance(p, click.Argument)]
    if arguments:
        rows = [
            [
                f"`{arg.make_metavar(ctx)}`",
                _argument_takes(arg),
                _default(arg, ctx),
                _escape(" ".join((getattr(arg, "help", None) or "").split())),
            ]
            for arg in arguments
        ]
        lines += [*_table(["argument", "takes", "default", "description"], rows), ""]
    if options:
        lines += [*_options_table(options, ctx), ""]
    lines.append("Also takes the [global options](#global-options).\n")
    return "\n".join(lines)


def _argument_takes(arg: click.Argument) -> str:
    if arg.nargs == -1:
        return "one or more" if arg.required else "zero or more"
    count = "" if arg.nargs == 1 else f"{arg.nargs} values, "
    return count + ("required" if arg.required else "optional")


def _options_table(options: Sequence[click.Parameter], ctx: click.Context) -> list[str]:
    rows = []
    for opt in options:
        record = opt.get_help_record(ctx)
        if record is not None:
            rows.append([f"`{record[0]}`", _default(opt, ctx), _option_description(opt)])
    return _table(["option", "default", "description"], rows)


def _option_description(opt: click.Parameter) -> str:
    text = " ".join((getattr(opt, "help", None) or "").split())
    said = text.lower()
    notes = []
    counted = isinstance(opt, click.Option) and opt.count
    if counted and "-vv" not in said and "repeat" not in said:
        notes.append("Repeat it for more.")
    if isinstance(opt, click.Option) and getattr(opt, "_flag_needs_value", False):
        notes.append(f"The value is optional: `{opt.opts[-1]}` alone means `{opt.flag_value}`.")
    if opt.multiple and "repeat" not in said:
        notes.append("Repeatable.")
    if opt.required:
        notes.append("Required.")
    value = "" if counted else _value_words(opt.type)
    if value:
        notes.append(f"Takes {value}.")
    if opt.envvar:
        names = [opt.envvar] if isinstance(opt.envvar, str) else list(opt.envvar)
        notes.append("Environment variable: " + ", ".join(f"`{n}`" for n in names) + ".")
    if opt.deprecated:
        notes.append("Deprecated.")
    return " ".join(filter(None, [_escape(text), *notes]))


def _value_words(t: click.ParamType[Any]) -> str:
    # A Choice's values are in its metavar already ("[python|exec|wasm]").
    if isinstance(t, (click.IntRange, click.FloatRange)):
        noun = "an integer" if isinstance(t, click.IntRange) else "a number"
        bounds = []
        if t.min is not None:
            bounds.append(f"{'more than' if t.min_open else 'at least'} {t.min}")
        if t.max is not None:
            bounds.append(f"{'less than' if t.max_open else 'at most'} {t.max}")
        return f"{noun} {' and '.join(bounds)}" if bounds else noun
    return ""


def _default(p: click.Parameter, ctx: click.Context) -> str:
    if isinstance(p, click.Option) and (p.is_flag or p.count):
        return ""  # a flag is off, a count zero, unless given
    value = p.get_default(ctx, call=False)
    if callable(value):
        return "computed when run"
    # click 8.3 and later say "no default" with a sentinel of their own, earlier ones None.
    if value is None or type(value).__name__ == "Sentinel" or value in ((), []):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"


# ------------------------------------------------------------------ markdown


def _escape(text: str) -> str:
    """Escape what Markdown would read as markup (``<app>``, ``*.tar.gz``), outside code."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([\\<*])", r"\\\1", parts[i])
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, without the columns after the first that are empty in every row."""
    keep = [0, *(i for i in range(1, len(headers)) if any(row[i] for row in rows))]
    lines = [_row([headers[i] for i in keep]), _row(["---"] * len(keep))]
    lines += [_row([row[i] for i in keep]) for row in rows]
    return lines


def _row(cells: Sequence[str]) -> str:
    # "|" ends a table cell even inside a code span (GitHub's tables), so it is escaped.
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


# ---------------------------------------------------------------------- main


def render_references() -> dict[str, str]:
    """File name (in the reference folder) → its text, generated from the code now."""
    return {"cli.md": cli_reference(), "manifest.md": manifest_reference()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plugbay.docgen [--check] [--out DIR]``; the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m plugbay.docgen",
        description="Write the manifest and CLI references (docs/reference/) from the code.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"the reference folder (default: {_DEFAULT_OUT}, run from the repository root)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file is missing or out of date",
    )
    args = parser.parse_args(argv)
    out: Path = args.out or _DEFAULT_OUT
    if args.out is None and not out.parent.is_dir():
        print(
            f"error: no {out.parent}/ folder here ({Path.cwd()}); run from the repository "
            "root, or give --out DIR",
            file=sys.stderr,
        )
        return 2
    try:
        texts = render_references()
    except DocgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stale = [name for name, text in texts.items() if _read(out / name) != text]
    if args.check:
        for name in stale:
            print(f"{out / name} is out of date; regenerate it with: {REGENERATE}")
        return 1 if stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        target = out / name
        if name in stale:
            tmp = target.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
            print(f"wrote {target}")
        else:
            print(f"{target} is up to date")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
