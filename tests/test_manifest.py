"""The manifest (DESIGN §2): every accepted format, round-trips, and every kind of bad input.

Every error must name the file, the field path and the value where there is one; the
tests assert on ``ManifestError.file``, ``.field`` and ``.value`` and on the message.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugbay.errors import ManifestError, PluginError
from plugbay.manifest import (
    MANIFEST_NAMES,
    ConfigSection,
    Contribution,
    FilesystemPermissions,
    Manifest,
    Permissions,
    PluginInfo,
    load_manifest,
    manifest_from_json_member,
    manifest_from_mapping,
    parse_manifest,
)

DATA = Path(__file__).parent / "data" / "manifests"

#: The example manifest of DESIGN §2, as every file in data/manifests/formats/ must parse.
DESIGN_EXAMPLE = Manifest(
    schema=1,
    plugin=PluginInfo(
        namespace="acme",
        name="nutanix",
        version="0.1.0",
        description="Manage Nutanix VMs and images",
        authors=("Acme <ops@acme.test>",),
        license="Apache-2.0",
        requires=">=1.0.0,<2.0.0",
        runtime="python",
        entry="acme_nutanix.plugin:Plugin",
        activation="lazy",
        isolation="none",
        python_dependencies=("requests>=2.31",),
        platforms={"linux-x86_64": "bin/tool-linux-amd64"},
    ),
    dependencies={"acme.common": ">=1.0.0,<2.0.0"},
    contributes={
        "module": (
            Contribution(
                name="nutanix_vm",
                entry="acme_nutanix.vm:VmModule",
                help="help/nutanix_vm.md",
                summary="Power and configure VMs",
            ),
        ),
        "hook": (
            Contribution(
                name="before_task_run",
                entry="acme_nutanix.hooks:audit",
                priority=0,
                after=("acme.common",),
            ),
        ),
        "command": (
            Contribution(
                name="nutanix-sync",
                entry="acme_nutanix.cli:sync",
                summary="Sync the inventory",
                requires_auth=True,
            ),
        ),
    },
    permissions=Permissions(
        network=("prism.acme.test:9440",),
        filesystem=FilesystemPermissions(read=("~/.config/acme",), write=()),
        env=("PRISM_TOKEN",),
        subprocess=False,
    ),
    config=ConfigSection(schema="config.schema.json"),
)

MINIMAL = '[plugin]\nname = "tool"\nversion = "1.0.0"\n'


def _toml(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def _fail(text: str, file: str = "plugin.toml") -> ManifestError:
    """Parse ``text`` as ``file`` and return the ManifestError it must raise."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(_toml(text).encode(), file)
    err = info.value
    assert isinstance(err, PluginError)
    # Every message starts with the file, then the field path when there is one.
    where = f"{err.file}: {err.field}: " if err.field else f"{err.file}: "
    assert str(err).startswith(where), str(err)
    assert str(err) == where + err.problem
    _same_from_a_manifest_json(text, file, err)
    return err


def _same_from_a_manifest_json(text: str, file: str, err: ManifestError) -> None:
    """The document inside a MANIFEST.json is refused the same way (see below)."""
    try:
        raw = _decoded(_toml(text), file)
    except Exception:  # noqa: BLE001 - not decodable: a syntax error, nothing to compare
        return
    if not isinstance(raw, dict):
        return
    doc = msgspec.json.encode({"format": 1, "manifest": raw})
    if msgspec.json.decode(doc)["manifest"] != raw:
        return  # not expressible in JSON (a key that is not text, a date)
    with pytest.raises(ManifestError) as info:
        manifest_from_json_member(doc, file)
    assert (info.value.field, info.value.value, info.value.problem) == (
        err.field,
        err.value,
        err.problem,
    )


def _decoded(text: str, file: str) -> object:
    if file.endswith(".toml"):
        return msgspec.toml.decode(text)
    if file.endswith(".json"):
        return msgspec.json.decode(text)
    return yaml.safe_load(text)


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("name", MANIFEST_NAMES)
def test_every_format_parses_the_design_example(name: str) -> None:
    path = DATA / "formats" / name
    assert load_manifest(path) == DESIGN_EXAMPLE
    assert parse_manifest(path.read_bytes(), name) == DESIGN_EXAMPLE


def test_the_example_knows_its_id_and_version() -> None:
    assert DESIGN_EXAMPLE.id == "acme.nutanix"
    assert DESIGN_EXAMPLE.version == "0.1.0"
    bare = parse_manifest(MINIMAL.encode(), "plugin.toml")
    assert bare.id == "tool"


def test_a_minimal_manifest_takes_the_defaults() -> None:
    m = parse_manifest(MINIMAL.encode(), "plugin.toml")
    assert m == Manifest(plugin=PluginInfo(name="tool", version="1.0.0"))
    p = m.plugin
    assert (p.runtime, p.activation, p.isolation, p.requires) == ("python", "lazy", "none", "*")
    assert m.contributes == {}
    assert m.dependencies == {}
    assert m.permissions == Permissions()


def test_a_byte_order_mark_is_not_an_error() -> None:
    assert parse_manifest(b"\xef\xbb\xbf" + MINIMAL.encode(), "plugin.toml").id == "tool"


def test_manifest_from_mapping_validates_a_decoded_document() -> None:
    doc = json.loads((DATA / "formats" / "plugin.json").read_bytes())
    assert manifest_from_mapping(doc) == DESIGN_EXAMPLE
    with pytest.raises(ManifestError) as info:
        manifest_from_mapping({"plugin": {"name": "x"}}, "in-memory")
    assert info.value.file == "in-memory"
    assert info.value.field == "plugin.version"


# ---------------------------------------------------------------- round-trips

_ident = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_plugin_id = st.builds(lambda ns, n: f"{ns}.{n}" if ns else n, st.none() | _ident, _ident)
_py_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
_py_entry = st.builds(
    lambda mods, attr: ".".join(mods) + (f":{attr}" if attr else ""),
    st.lists(_py_name, min_size=1, max_size=3),
    st.none() | _py_name,
)
_number = st.integers(min_value=0, max_value=30)
# Not NEL (U+0085): PyYAML's emitter with allow_unicode, as msgspec.yaml uses, writes it
# unescaped in a single-quoted scalar, where the loader reads it as a line break.
_chars = st.characters(exclude_characters="\x85", codec="utf-8")
_text = st.text(_chars, max_size=20)
_texts = st.lists(_text, max_size=3).map(tuple)


@st.composite
def _version(draw: st.DrawFn) -> str:
    text = f"{draw(_number)}.{draw(_number)}.{draw(_number)}"
    # Not a leading "-" (as in "1.0.0--x"): node-semver cannot put it in "~" or "^" ranges.
    ident = st.one_of(_number.map(str), st.from_regex(r"[a-z][a-z0-9-]{0,4}", fullmatch=True))
    pre = draw(st.lists(ident, max_size=2))
    build = draw(st.lists(st.from_regex(r"[a-z0-9-]{1,4}", fullmatch=True), max_size=2))
    return text + ("-" + ".".join(pre) if pre else "") + ("+" + ".".join(build) if build else "")


@st.composite
def _range(draw: st.DrawFn) -> str:
    def one() -> str:
        v = draw(_version()).split("+")[0]
        major, minor = v.split(".")[:2]
        return draw(
            st.sampled_from(
                [
                    f">={v}",
                    f">={v},<{int(major) + 1}.0.0",
                    f"^{major}.{minor}",
                    f"~{v}",
                    f"{major}.{minor}.*",
                    "*",
                    v,
                ]
            )
        )

    return " || ".join(one() for _ in range(draw(st.integers(1, 3))))


def _contribution(kind: str, entry: st.SearchStrategy[str]) -> st.SearchStrategy[Contribution]:
    base: dict[str, Any] = {
        "name": st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,10}", fullmatch=True),
        "entry": st.none() | entry,
        "summary": _text,
        "help": st.none()
        | st.lists(st.from_regex(r"[a-z0-9_]{1,6}", fullmatch=True), min_size=1, max_size=3).map(
            lambda parts: "/".join(parts) + ".md"
        ),
    }
    if kind == "hook":
        base |= {
            "priority": st.integers(-1000, 1000),
            "before": st.lists(_plugin_id, max_size=2).map(tuple),
            "after": st.lists(_plugin_id, max_size=2).map(tuple),
            "wrapper": st.booleans(),
        }
    if kind == "command":
        base["requires_auth"] = st.booleans()
    return st.builds(Contribution, **base)


_kinds = st.sampled_from(["module", "tool", "channel", "provider", "hook", "command"]) | (
    st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(
        lambda k: not k.startswith("x-")
    )
)
_json_scalar = st.one_of(st.booleans(), st.integers(-(2**31), 2**31), _text)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    """Any valid Manifest, covering every field the schema has."""
    runtime = draw(st.sampled_from(["python", "exec", "wasm"]))
    entry = _py_entry if runtime == "python" else st.text(_chars, min_size=1, max_size=20)
    platforms = draw(
        st.dictionaries(
            st.from_regex(r"[a-z0-9]{1,6}-[a-z0-9_]{1,6}", fullmatch=True), _text, max_size=2
        )
    )
    plugin_entry = draw(entry if runtime != "python" and not platforms else st.none() | entry)
    info = PluginInfo(
        name=draw(_ident),
        version=draw(_version()),
        namespace=draw(st.none() | _ident),
        description=draw(_text),
        authors=draw(_texts),
        license=draw(st.none() | _text),
        homepage=draw(st.none() | _text),
        requires=draw(_range()),
        runtime=runtime,  # type: ignore[arg-type]
        entry=plugin_entry,
        activation=draw(st.sampled_from(["lazy", "eager"])),
        isolation=draw(st.sampled_from(["none", "process"])) if runtime == "python" else "none",
        python_dependencies=draw(_texts),
        platforms=platforms,
    )
    own_id = f"{info.namespace}.{info.name}" if info.namespace else info.name
    kinds = draw(st.lists(_kinds, unique=True, max_size=4))
    contributes = {
        kind: tuple(
            draw(st.lists(_contribution(kind, entry), unique_by=lambda c: c.name, max_size=3))
        )
        for kind in kinds
    }
    return Manifest(
        plugin=info,
        dependencies=draw(
            st.dictionaries(_plugin_id.filter(lambda d: d != own_id), _range(), max_size=3)
        ),
        contributes=contributes,
        permissions=Permissions(
            network=draw(_texts),
            filesystem=FilesystemPermissions(read=draw(_texts), write=draw(_texts)),
            env=draw(_texts),
            subprocess=draw(st.booleans()),
        ),
        config=ConfigSection(
            schema=draw(st.none() | _text | st.dictionaries(_text, _json, max_size=3))
        ),
        exclude=draw(_texts),
    )


_extension_keys = st.dictionaries(
    st.from_regex(r"x-[a-z0-9-]{1,8}", fullmatch=True), _json, min_size=1, max_size=2
)


def _with_extension_keys(doc: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    """Add ``x-`` keys at every level the schema owns: they must all be ignored."""
    doc.update(draw(_extension_keys))
    doc["plugin"].update(draw(_extension_keys))
    doc.setdefault("permissions", {}).update(draw(_extension_keys))
    doc["permissions"].setdefault("filesystem", {}).update(draw(_extension_keys))
    doc.setdefault("config", {}).update(draw(_extension_keys))
    contributes = doc.setdefault("contributes", {})
    for entries in contributes.values():
        for entry in entries:
            entry.update(draw(_extension_keys))
    contributes.update({k: [{"anything": v}] for k, v in draw(_extension_keys).items()})
    return doc


def _encode(doc: dict[str, Any], file: str) -> bytes:
    if file.endswith(".toml"):
        return msgspec.toml.encode(doc)
    if file.endswith(".json"):
        return msgspec.json.encode(doc)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode()


# The strategies build whole manifests; Hypothesis may find that slow on a busy machine.
_roundtrip_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize("file", MANIFEST_NAMES)
@_roundtrip_settings
@given(manifest=manifests())
def test_manifests_round_trip_through_every_format(file: str, manifest: Manifest) -> None:
    doc = msgspec.to_builtins(manifest)
    # Keys are written kebab-case (values, such as exclude globs, may be anything).
    assert "python_dependencies" not in doc["plugin"]
    for entries in doc.get("contributes", {}).values():
        assert all("requires_auth" not in entry for entry in entries)
    assert parse_manifest(_encode(doc, file), file) == manifest


@pytest.mark.parametrize("file", MANIFEST_NAMES)
@_roundtrip_settings
@given(manifest=manifests(), data=st.data())
def test_extension_keys_are_ignored_at_every_level(
    file: str, manifest: Manifest, data: st.DataObject
) -> None:
    doc = _with_extension_keys(msgspec.to_builtins(manifest), data.draw)
    assert parse_manifest(_encode(doc, file), file) == manifest
    as_installed = msgspec.json.encode({"manifest": doc})
    assert manifest_from_json_member(as_installed, "MANIFEST.json") == manifest


@_roundtrip_settings
@given(manifest=manifests())
def test_msgspec_encoders_write_manifests_that_parse_back(manifest: Manifest) -> None:
    as_installed = msgspec.json.encode({"format": 1, "manifest": manifest})
    assert manifest_from_json_member(as_installed, "MANIFEST.json") == manifest
    assert parse_manifest(msgspec.json.encode(manifest), "plugin.json") == manifest
    assert parse_manifest(msgspec.toml.encode(manifest), "plugin.toml") == manifest
    assert parse_manifest(msgspec.yaml.encode(manifest), "plugin.yaml") == manifest


def test_extension_keys_inside_free_form_tables_are_kept() -> None:
    # An inline config schema belongs to JSON Schema, where x-secret has a meaning.
    m = parse_manifest(
        _toml(
            MINIMAL
            + """
            [config.schema]
            type = "object"
            properties = { token = { type = "string", x-secret = true } }
            """
        ).encode(),
        "plugin.toml",
    )
    assert m.config.schema == {
        "type": "object",
        "properties": {"token": {"type": "string", "x-secret": True}},
    }


# ---------------------------------------------------------------- syntax errors

_SYNTAX_ERRORS = [
    ("plugin.toml", b'[plugin\nname = "x"\n', "TOML", "line 1"),
    ("plugin.toml", b'[plugin]\nname = "x"\nname = "y"\n', "TOML", "line 3"),
    ("plugin.yaml", b"plugin: [\n  name: x\n", "YAML", "line 3"),
    ("plugin.yml", b"plugin:\n  name: x\n   version: 1.0.0\n", "YAML", "line 3"),
    ("collection.yml", b"plugin: {name: x\n", "YAML", "line 2"),
    ("plugin.json", b'{"plugin": ', "JSON", "truncated"),
    ("plugin.json", b'{"plugin": {"name": "x",}}', "JSON", "malformed"),
]


@pytest.mark.parametrize(("file", "data", "fmt", "where"), _SYNTAX_ERRORS)
def test_syntax_errors_name_the_file_and_the_format(
    file: str, data: bytes, fmt: str, where: str
) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, file)
    err = info.value
    assert err.file == file
    assert err.field == ""
    assert err.value is None
    assert str(err).startswith(f"{file}: is not valid {fmt}: ")
    assert where in str(err)
    # One line, and no parser internals such as PyYAML's "<unicode string>".
    assert "\n" not in str(err)
    assert "<unicode string>" not in str(err)


def test_syntax_errors_from_disk_name_the_path(tmp_path: Path) -> None:
    path = tmp_path / "acme.tool" / "plugin.toml"
    path.parent.mkdir()
    path.write_bytes(b"[plugin\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: is not valid TOML")


def test_an_unreadable_file_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "plugin.toml"
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.file == str(path)
    assert "cannot be read" in str(info.value)


def test_an_unknown_file_name_lists_the_accepted_ones() -> None:
    err = _fail(MINIMAL, "plugin.ini")
    assert err.file == "plugin.ini"
    assert "unknown format" in err.problem
    for name in MANIFEST_NAMES:
        assert name in err.problem


@pytest.mark.parametrize("file", MANIFEST_NAMES)
def test_a_file_that_is_not_utf8(file: str) -> None:
    data = {
        "plugin.toml": b'[plugin]\nname = "caf\xe9"\nversion = "1.0.0"\n',
        "plugin.json": b'{"plugin": {"name": "caf\xe9", "version": "1.0.0"}}',
    }.get(file, b"plugin:\n  name: caf\xe9\n  version: 1.0.0\n")
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, file)
    err = info.value
    assert err.file == file
    assert err.field == ""
    assert str(err).startswith(f"{file}: is not UTF-8 text")
    assert "at byte" in str(err)
    assert "save it as UTF-8" in str(err)


@pytest.mark.parametrize(
    ("file", "data", "got"),
    [
        ("plugin.yaml", b"- plugin\n- name\n", "a list"),
        ("collection.yml", b"[1, 2]\n", "a list"),
        ("plugin.json", b'["plugin"]', "a list"),
        ("plugin.json", b'"plugin"', "a string"),
        ("plugin.yml", b"", "an empty document"),
        ("plugin.yaml", b"# only a comment\n", "an empty document"),
    ],
)
def test_a_document_that_is_not_a_table(file: str, data: bytes, got: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, file)
    err = info.value
    assert (err.file, err.field) == (file, "")
    assert "expected a table of keys at the top" in str(err)
    assert str(err).endswith(f"got {got}")


# ---------------------------------------------------------------- wrong types

_WRONG_TYPES = [
    ('[plugin]\nname = 3\nversion = "1.0.0"\n', "plugin.name", 3, "expected string, got integer"),
    (MINIMAL + 'authors = "x"\n', "plugin.authors", "x", "expected list, got string"),
    (MINIMAL + "activation = true\n", "plugin.activation", True, "got boolean"),
    (MINIMAL + "python-dependencies = [1]\n", "plugin.python-dependencies[0]", 1, "got integer"),
    (MINIMAL + "platforms = 3\n", "plugin.platforms", 3, "expected table, got integer"),
    (MINIMAL + "[plugin.platforms]\nlinux-x86_64 = 1\n", "plugin.platforms.linux-x86_64", 1, ""),
    ("plugin = [1]\n", "plugin", [1], "expected table, got list"),
    ("schema = 2\n" + MINIMAL, "schema", 2, "expected one of 1"),
    ('exclude = "x"\n' + MINIMAL, "exclude", "x", "expected list, got string"),
    (MINIMAL + '[dependencies]\n"acme.common" = 1\n', "dependencies.acme.common", 1, "string"),
    (
        MINIMAL + '[dependencies]\n"acme.common" = [">=1"]\n',
        "dependencies.acme.common",
        [">=1"],
        "",
    ),
    ('dependencies = "acme.common"\n' + MINIMAL, "dependencies", "acme.common", "expected table"),
    (MINIMAL + '[contributes]\nmodule = "m"\n', "contributes.module", "m", "expected list"),
    (MINIMAL + "[contributes]\nmodule = [1]\n", "contributes.module[0]", 1, "expected table"),
    (
        MINIMAL + '[[contributes.module]]\nname = "a"\n[[contributes.module]]\nname = 2\n',
        "contributes.module[1].name",
        2,
        "expected string, got integer",
    ),
    (
        MINIMAL + '[[contributes.hook]]\nname = "h"\npriority = "high"\n',
        "contributes.hook[0].priority",
        "high",
        "expected integer, got string",
    ),
    (
        MINIMAL + '[[contributes.hook]]\nname = "h"\nafter = "acme.common"\n',
        "contributes.hook[0].after",
        "acme.common",
        "expected list, got string",
    ),
    (
        MINIMAL + '[[contributes.command]]\nname = "c"\nrequires-auth = "yes"\n',
        "contributes.command[0].requires-auth",
        "yes",
        "expected boolean, got string",
    ),
    (MINIMAL + '[permissions]\nsubprocess = "yes"\n', "permissions.subprocess", "yes", "boolean"),
    (MINIMAL + "[permissions]\nnetwork = 443\n", "permissions.network", 443, "expected list"),
    (
        MINIMAL + '[permissions]\nfilesystem = { read = "~" }\n',
        "permissions.filesystem.read",
        "~",
        "expected list, got string",
    ),
    (MINIMAL + '[permissions]\nfilesystem = ["~"]\n', "permissions.filesystem", ["~"], "table"),
    (MINIMAL + "[config]\nschema = 3\n", "config.schema", 3, "expected string or table or nothing"),
]


@pytest.mark.parametrize(("text", "field", "value", "expected"), _WRONG_TYPES)
def test_wrong_types_name_the_field_the_value_and_what_is_expected(
    text: str, field: str, value: object, expected: str
) -> None:
    err = _fail(text)
    assert err.file == "plugin.toml"
    assert err.field == field
    assert err.value == value
    assert type(err.value) is type(value)
    assert err.problem.startswith(f"{value!r}: expected ")
    assert expected in err.problem


def test_an_unquoted_yaml_version_says_to_quote_it() -> None:
    err = _fail("plugin:\n  name: tool\n  version: 1.0\n", "plugin.yaml")
    assert (err.field, err.value) == ("plugin.version", 1.0)
    assert "expected string, got float" in err.problem
    assert "put the value in quotes" in err.problem


def test_a_yaml_key_that_is_not_text() -> None:
    err = _fail("plugin: {name: tool, version: 1.0.0}\n1: one\n", "plugin.yaml")
    assert (err.field, err.value) == ("1", 1)
    assert "keys must be text" in err.problem


def test_a_yaml_dependency_key_that_is_not_text() -> None:
    err = _fail("plugin: {name: tool, version: 1.0.0}\ndependencies: {7: '*'}\n", "plugin.yaml")
    assert (err.field, err.value) == ("dependencies.7", 7)
    assert "keys must be text" in err.problem


# ---------------------------------------------------------------- unknown keys

_UNKNOWN_KEYS = [
    ("plugins = 1\n" + MINIMAL, "plugins", 1, "plugin"),
    ("dependancies = {}\n" + MINIMAL, "dependancies", {}, "dependencies"),
    ("contribute = {}\n" + MINIMAL, "contribute", {}, "contributes"),
    ("zzzzzz = 1\n" + MINIMAL, "zzzzzz", 1, None),
    (MINIMAL + 'verison = "1"\n', "plugin.verison", "1", "version"),
    (MINIMAL + 'namspace = "acme"\n', "plugin.namspace", "acme", "namespace"),
    (
        MINIMAL + 'python_dependencies = ["x"]\n',
        "plugin.python_dependencies",
        ["x"],
        "python-dependencies",
    ),
    (MINIMAL + "[permissions]\nnetwrok = []\n", "permissions.netwrok", [], "network"),
    (MINIMAL + "[permissions]\nenviron = []\n", "permissions.environ", [], "env"),
    (MINIMAL + "[permissions.filesystem]\nreed = []\n", "permissions.filesystem.reed", [], "read"),
    (
        MINIMAL + "[permissions.filesystem]\nexecute = []\n",
        "permissions.filesystem.execute",
        [],
        None,
    ),
    (MINIMAL + '[config]\nschemas = "s.json"\n', "config.schemas", "s.json", "schema"),
    (
        MINIMAL + '[[contributes.module]]\nname = "m"\nsumary = "x"\n',
        "contributes.module[0].sumary",
        "x",
        "summary",
    ),
    (
        MINIMAL + '[[contributes.hook]]\nname = "h"\nafterr = []\n',
        "contributes.hook[0].afterr",
        [],
        "after",
    ),
    (
        MINIMAL + '[[contributes.command]]\nname = "c"\nrequires_auth = true\n',
        "contributes.command[0].requires_auth",
        True,
        "requires-auth",
    ),
]


@pytest.mark.parametrize(("text", "field", "value", "suggestion"), _UNKNOWN_KEYS)
def test_unknown_keys_are_errors_with_did_you_mean(
    text: str, field: str, value: object, suggestion: str | None
) -> None:
    err = _fail(text)
    assert err.field == field
    assert err.value == value
    key = field.rsplit(".", 1)[-1]
    assert err.problem.startswith(f"unknown key {key!r}")
    if suggestion is None:
        assert "did you mean" not in err.problem
    else:
        assert f'did you mean "{suggestion}"?' in err.problem
    assert "(allowed: " in err.problem
    assert "prefix a key with x-" in err.problem


def test_unknown_keys_list_what_is_allowed_there() -> None:
    err = _fail(MINIMAL + "[permissions.filesystem]\nexecute = []\n")
    assert "(allowed: read, write;" in err.problem
    err = _fail(MINIMAL + '[[contributes.module]]\nname = "m"\nwat = 1\n')
    assert "(allowed: entry, help, name, summary;" in err.problem


@pytest.mark.parametrize(
    ("kind", "key", "value", "owner"),
    [
        ("module", "priority", 5, "hook"),
        ("tool", "before", ["acme.common"], "hook"),
        ("module", "after", ["acme.common"], "hook"),
        ("provider", "wrapper", True, "hook"),
        ("command", "priority", 1, "hook"),
        ("module", "requires-auth", True, "command"),
        ("hook", "requires-auth", True, "command"),
    ],
)
def test_kind_specific_keys_on_the_wrong_kind_are_refused(
    kind: str, key: str, value: object, owner: str
) -> None:
    entry = {"name": "thing", key: value}
    doc = {"plugin": {"name": "tool", "version": "1.0.0"}, "contributes": {kind: [entry]}}
    err = _fail(json.dumps(doc), "plugin.json")
    assert err.field == f"contributes.{kind}[0].{key}"
    assert err.value == value
    assert f"unknown key {key!r} for a {kind}" in err.problem
    assert f"only {owner} contributions take it" in err.problem


def test_extension_keys_are_accepted_and_ignored() -> None:
    text = _toml(
        """
        schema = 1
        x-top = { any = "thing" }
        [plugin]
        name = "tool"
        version = "1.0.0"
        x-build = 7
        [permissions]
        x-why = "audit"
        [permissions.filesystem]
        x-note = ["a"]
        [config]
        x-ui = true
        [contributes]
        x-other-kind = [{ unknown = 1 }]
        [[contributes.hook]]
        name = "h"
        x-order-note = "first"
        [[contributes.module]]
        name = "m"
        x-icon = "vm.svg"
        """
    )
    m = parse_manifest(text.encode(), "plugin.toml")
    assert m == Manifest(
        plugin=PluginInfo(name="tool", version="1.0.0"),
        contributes={"hook": (Contribution(name="h"),), "module": (Contribution(name="m"),)},
    )


# ---------------------------------------------------------------- values

_BAD_VALUES = [
    ('[plugin]\nname = "tool"\nversion = "1.0"\n', "plugin.version", "1.0", 'e.g. "1.2.0"'),
    ('[plugin]\nname = "tool"\nversion = "v1.0.0"\n', "plugin.version", "v1.0.0", "version"),
    ('[plugin]\nname = "tool"\nversion = "01.0.0"\n', "plugin.version", "01.0.0", "version"),
    (MINIMAL + 'requires = ">=1.0 <<2"\n', "plugin.requires", ">=1.0 <<2", '">=1.0.0,<2.0.0"'),
    (MINIMAL + 'requires = ">=1.0.0 ||"\n', "plugin.requires", ">=1.0.0 ||", "range"),
    (MINIMAL + 'requires = ""\n', "plugin.requires", "", "range"),
    (
        MINIMAL + '[dependencies]\n"acme.common" = "foo"\n',
        "dependencies.acme.common",
        "foo",
        "^1.2",
    ),
    (MINIMAL + '[dependencies]\n"acme.common" = ">=1,"\n', "dependencies.acme.common", ">=1,", ""),
]


@pytest.mark.parametrize(("text", "field", "value", "hint"), _BAD_VALUES)
def test_invalid_versions_and_ranges(text: str, field: str, value: str, hint: str) -> None:
    err = _fail(text)
    assert (err.field, err.value) == (field, value)
    assert f"{value!r} is not a valid version" in err.problem
    assert hint in err.problem


@pytest.mark.parametrize(
    "dep", ["Acme.Common", "acme.common.extra", "acme-common", "1acme", "acme.", ".common", ""]
)
def test_invalid_dependency_ids(dep: str) -> None:
    err = _fail(MINIMAL + f"[dependencies]\n{json.dumps(dep)} = '*'\n")
    assert (err.field, err.value) == (f"dependencies.{dep}", dep)
    assert f"{dep!r} is not a plugin id (namespace.name)" in err.problem


@pytest.mark.parametrize(
    ("plugin", "dep"),
    [('name = "tool"', "tool"), ('namespace = "acme"\nname = "tool"', "acme.tool")],
)
def test_a_plugin_cannot_depend_on_itself(plugin: str, dep: str) -> None:
    err = _fail(f'[plugin]\n{plugin}\nversion = "1.0.0"\n[dependencies]\n"{dep}" = "*"\n')
    assert (err.field, err.value) == (f"dependencies.{dep}", dep)
    assert "cannot depend on itself" in err.problem


def test_a_dependency_on_another_plugin_of_the_namespace_is_fine() -> None:
    m = parse_manifest(
        b'[plugin]\nnamespace = "acme"\nname = "tool"\nversion = "1.0.0"\n'
        b'[dependencies]\n"acme.common" = "^1.2"\n"tool" = "*"\n',
        "plugin.toml",
    )
    assert m.dependencies == {"acme.common": "^1.2", "tool": "*"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "Tool"), ("name", "my-tool"), ("name", "1tool"), ("name", ""), ("name", "tool\n")],
)
def test_invalid_names(field: str, value: str) -> None:
    err = _fail(f'[plugin]\n{field} = {json.dumps(value)}\nversion = "1.0.0"\n')
    assert (err.field, err.value) == (f"plugin.{field}", value)
    assert f"{value!r} is not a valid name" in err.problem
    assert "lowercase letters, digits and _" in err.problem


@pytest.mark.parametrize("value", ["Acme", "acme.corp", "acme\n"])
def test_invalid_namespaces(value: str) -> None:
    err = _fail(MINIMAL + f"namespace = {json.dumps(value)}\n")
    assert (err.field, err.value) == ("plugin.namespace", value)
    assert "is not a valid namespace" in err.problem


@pytest.mark.parametrize(
    "entry", ["foo bar", "acme:", ":Plugin", "a:b:c", "acme-tool:Plugin", "acme.plugin:Plugin\n"]
)
def test_bad_python_entries(entry: str) -> None:
    err = _fail(MINIMAL + f"entry = {json.dumps(entry)}\n")
    assert (err.field, err.value) == ("plugin.entry", entry)
    assert "is not a Python entry" in err.problem
    assert 'e.g. "acme_tool.plugin:Plugin"' in err.problem


@pytest.mark.parametrize(
    "entry", ["not an entry", "acme.m:A\nacme.n:B", "acme.m:A\n", "\nacme.m:A", ""]
)
def test_bad_contribution_entries(entry: str) -> None:
    # The second contribution: the checks of many values at once must find it too.
    good = '[[contributes.module]]\nname = "l"\nentry = "acme.l:L"\n'
    bad = f"[[contributes.module]]\nname = 'm'\nentry = {json.dumps(entry)}\n"
    err = _fail(MINIMAL + good + bad)
    assert (err.field, err.value) == ("contributes.module[1].entry", entry)
    assert "is not a Python entry; expected module:attribute" in err.problem


def test_exec_entries_are_commands_not_python_names() -> None:
    m = parse_manifest(
        (MINIMAL + 'runtime = "exec"\nentry = "bin/tool --serve"\n').encode(), "plugin.toml"
    )
    assert m.plugin.entry == "bin/tool --serve"


@pytest.mark.parametrize("runtime", ["exec", "wasm"])
def test_exec_and_wasm_need_an_entry_or_platforms(runtime: str) -> None:
    err = _fail(MINIMAL + f'runtime = "{runtime}"\n')
    assert err.field == "plugin.entry"
    assert f"is required for runtime {runtime!r}" in err.problem
    assert "[plugin.platforms]" in err.problem
    with_platforms = MINIMAL + f'runtime = "{runtime}"\nplatforms = {{ linux-x86_64 = "t" }}\n'
    assert parse_manifest(with_platforms.encode(), "plugin.toml").plugin.runtime == runtime


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("runtime", "rust", "python, exec, wasm"),
        ("activation", "now", "lazy, eager"),
        ("isolation", "venv", "none, process"),
    ],
)
def test_invalid_choices_list_the_allowed_ones(key: str, value: str, allowed: str) -> None:
    err = _fail(MINIMAL + f'{key} = "{value}"\n')
    assert (err.field, err.value) == (f"plugin.{key}", value)
    assert err.problem == f"{value!r}: expected one of {allowed}"


def test_process_isolation_is_for_python_only() -> None:
    err = _fail(MINIMAL + 'runtime = "exec"\nentry = "bin/tool"\nisolation = "process"\n')
    assert (err.field, err.value) == ("plugin.isolation", "process")
    assert 'runtime "python" only' in err.problem


def test_invalid_platform_keys() -> None:
    err = _fail(MINIMAL + '[plugin.platforms]\nlinux = "bin/tool"\n')
    assert (err.field, err.value) == ("plugin.platforms.linux", "linux")
    assert "expected OS-ARCH such as linux-x86_64" in err.problem


def test_missing_plugin_table() -> None:
    err = _fail("schema = 1\n")
    assert (err.field, err.value) == ("plugin", None)
    assert "add a [plugin] table with name and version" in err.problem


@pytest.mark.parametrize("key", ["name", "version"])
def test_missing_name_or_version(key: str) -> None:
    other = "version" if key == "name" else "name"
    err = _fail(f'[plugin]\n{other} = "{"1.0.0" if other == "version" else "tool"}"\n')
    assert (err.field, err.value) == (f"plugin.{key}", None)
    assert err.problem == f"is required; add {key} to [plugin]"


def test_missing_contribution_name() -> None:
    err = _fail(MINIMAL + '[[contributes.module]]\nsummary = "no name"\n')
    assert err.field == "contributes.module[0].name"
    assert "is required" in err.problem


@pytest.mark.parametrize(
    "name",
    ["nutanix vm", "-vm", "1vm", "vm!", "vm\nimage", "vm\n", "", "\n"],
)
def test_invalid_contribution_names(name: str) -> None:
    err = _fail(MINIMAL + f"[[contributes.module]]\nname = {json.dumps(name)}\n")
    assert (err.field, err.value) == ("contributes.module[0].name", name)
    assert "is not a valid name" in err.problem


def test_a_contribution_declared_twice() -> None:
    err = _fail(MINIMAL + '[[contributes.tool]]\nname = "t"\n[[contributes.tool]]\nname = "t"\n')
    assert (err.field, err.value) == ("contributes.tool[1].name", "t")
    assert "declared twice in tool" in err.problem


def test_a_hook_may_be_implemented_twice_but_a_command_may_not() -> None:
    hook_twice = """\
        [[contributes.hook]]
        name = "before_task_run"
        entry = "acme_audit.hooks:before"

        [[contributes.hook]]
        name = "before_task_run"
        entry = "acme_audit.hooks:timing"
        wrapper = true
    """
    m = parse_manifest((MINIMAL + _toml(hook_twice)).encode(), "plugin.toml")
    plain, wrapper = m.contributes["hook"]
    assert (plain.name, plain.entry, plain.wrapper) == (
        "before_task_run",
        "acme_audit.hooks:before",
        False,
    )
    assert (wrapper.name, wrapper.entry, wrapper.wrapper) == (
        "before_task_run",
        "acme_audit.hooks:timing",
        True,
    )
    command_twice = '[[contributes.command]]\nname = "sync"\n' * 2
    err = _fail(MINIMAL + command_twice)
    assert (err.field, err.value) == ("contributes.command[1].name", "sync")
    assert "declared twice in command" in err.problem


def test_an_invalid_kind() -> None:
    err = _fail(MINIMAL + '[[contributes."my kind"]]\nname = "t"\n')
    assert (err.field, err.value) == ("contributes.my kind", "my kind")
    assert "is not a valid kind" in err.problem


@pytest.mark.parametrize(("key", "index"), [("before", 0), ("after", 1)])
def test_hook_order_names_plugin_ids(key: str, index: int) -> None:
    ids = ["acme.common", "Not-An-Id"] if index else ["Not-An-Id"]
    err = _fail(MINIMAL + f'[[contributes.hook]]\nname = "h"\n{key} = {json.dumps(ids)}\n')
    assert (err.field, err.value) == (f"contributes.hook[0].{key}", "Not-An-Id")
    assert "is not a plugin id" in err.problem


@pytest.mark.parametrize(
    "help_path",
    ["../secrets.md", "help/../../x.md", "/etc/passwd", "..\\x.md", "C:\\help\\x.md", "C:x.md"],
)
def test_help_paths_must_stay_inside_the_plugin(help_path: str) -> None:
    good = "[[contributes.module]]\nname = 'l'\nhelp = 'help/l.md'\n"
    bad = f"[[contributes.module]]\nname = 'm'\nhelp = {json.dumps(help_path)}\n"
    err = _fail(MINIMAL + good + bad)
    assert (err.field, err.value) == ("contributes.module[1].help", help_path)
    assert "must be a relative path inside the plugin folder" in err.problem
    assert 'e.g. "help/my_module.md"' in err.problem


def test_help_paths_inside_the_plugin_are_fine() -> None:
    m = parse_manifest(
        (MINIMAL + '[[contributes.module]]\nname = "m"\nhelp = "help/sub/m..md"\n').encode(),
        "plugin.toml",
    )
    assert m.contributes["module"][0].help == "help/sub/m..md"


# ---------------------------------------------------------------- MANIFEST.json


def test_a_manifest_json_member_is_read_like_a_manifest_file() -> None:
    """Bundles and installed versions carry the manifest normalised in MANIFEST.json."""
    doc = {"format": 1, "id": "acme.nutanix", "manifest": msgspec.to_builtins(DESIGN_EXAMPLE)}
    assert manifest_from_json_member(msgspec.json.encode(doc), "MANIFEST.json") == DESIGN_EXAMPLE


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{not json", "is not a readable MANIFEST.json: "),
        (b"[]", "is not a readable MANIFEST.json: Expected `object`, got `array`"),
        (b'{"format": 1}', "is not a readable MANIFEST.json: Object missing required field"),
        (b'{"manifest": []}', "is not a readable MANIFEST.json: Expected `object`"),
    ],
)
def test_a_manifest_json_that_is_not_one(data: bytes, problem: str) -> None:
    with pytest.raises(ManifestError) as info:
        manifest_from_json_member(data, "/p/MANIFEST.json")
    assert (info.value.file, info.value.field) == ("/p/MANIFEST.json", "")
    assert info.value.problem.startswith(problem), info.value.problem
