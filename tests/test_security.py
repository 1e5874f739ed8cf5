"""Permissions: parsing KIND=VALUE, what a grant covers, Permissions over a host config.

Matching rules are tables of cases; path containment and endpoint patterns are also
checked as properties, against an oracle written independently of the implementation.
"""

from __future__ import annotations

import os
import shlex
import textwrap
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugbay.config import Grants, HostConfig, config_from_mapping
from plugbay.errors import ConfigError, PermissionDenied, PluginError
from plugbay.manifest import FilesystemPermissions, PluginInfo
from plugbay.manifest import Permissions as Asked
from plugbay.security import (
    KINDS,
    Permissions,
    PermissionStatus,
    asked_for,
    child_environment,
    enforced,
    grant_command,
    granted_pairs,
    parse_permission,
    parse_revocation,
    requested_pairs,
    same_permission,
)

# A root no test machine has: below it, resolving a path is purely lexical.
NOWHERE = "/plugbay-test-nowhere"


def config(text: str) -> HostConfig:
    """A HostConfig from config.toml text, as the host reads it."""
    import tomllib

    return config_from_mapping(tomllib.loads(textwrap.dedent(text)), "config.toml")


def permissions(plugin_id: str = "acme.x", **grants: object) -> Permissions:
    import msgspec

    return Permissions(HostConfig(grants={plugin_id: msgspec.convert(grants, Grants)}))


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env=API_TOKEN", ("env", "API_TOKEN")),
        ("env=_x1", ("env", "_x1")),
        ("network=API.Acme.TEST:443", ("network", "api.acme.test:443")),
        ("network=api.acme.test", ("network", "api.acme.test")),
        ("network=api.acme.test:*", ("network", "api.acme.test")),
        ("network=*.acme.test:8443", ("network", "*.acme.test:8443")),
        ("network=*", ("network", "*")),
        ("network=[::1]:8080", ("network", "[::1]:8080")),
        ("network=[2001:db8::1]", ("network", "[2001:db8::1]")),
        ("filesystem.read=~/.config/acme", ("filesystem.read", "~/.config/acme")),
        ("filesystem.write=/var/tmp/a b", ("filesystem.write", "/var/tmp/a b")),
        ("subprocess=true", ("subprocess", "true")),
        ("subprocess=False", ("subprocess", "false")),
    ],
)
def test_parse_permission(text: str, expected: tuple[str, str]) -> None:
    assert parse_permission(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("envv=X", "unknown permission kind 'envv'; did you mean \"env\"?"),
        ("netwrok=a:1", 'did you mean "network"?'),
        ("filesystem.reed=/x", 'did you mean "filesystem.read"?'),
        ("filesystem=/x", "say which access: filesystem.read=PATH or filesystem.write=PATH"),
        ("colour=red", "kinds: env, network, filesystem.read, filesystem.write, subprocess"),
        ("=X", "no permission kind"),
        ("env", "give a value, as KIND=VALUE (e.g. env=API_TOKEN)"),
        ("env=", "the value is empty"),
        ("filesystem.read=", "the value is empty"),
        ("env=$TOKEN", "write the variable's name without $: env=TOKEN"),
        ("env=A-B", "is not an environment variable name"),
        ("env=TOKEN*", "no wildcards"),
        ("subprocess=yes", "subprocess takes true or false, not 'yes'"),
        ("subprocess=", "subprocess takes true or false"),
        ("network=https://api.acme.test", "not a URL"),
        ("network=api.acme.test/v1", "is not HOST or HOST:PORT"),
        ("network=api.acme.test:https", "'https' is not a port"),
        ("network=api.acme.test:70000", "'70000' is not a port"),
        ("network=api.acme.test:0", "'0' is not a port"),
        ("network=::1", "write an IPv6 address in brackets"),
        ("network=a b", "is not a host name pattern"),
        ("filesystem.read=/a\0b", "NUL"),
    ],
)
def test_parse_permission_errors_say_what_would_do(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_permission(text)
    err = info.value
    assert isinstance(err, PluginError)
    assert err.field == text
    assert message in err.problem
    assert str(err) == f"permission: {text}: {err.problem}"


def test_parse_revocation_takes_a_bare_kind() -> None:
    assert parse_revocation("network") == ("network", None)
    assert parse_revocation("env=A") == ("env", "A")
    with pytest.raises(ConfigError, match='did you mean "subprocess"'):
        parse_revocation("subproces")


# ---------------------------------------------------------------- matching: tables


@pytest.mark.parametrize(
    ("pattern", "endpoint", "allowed"),
    [
        ("api.acme.test:443", "api.acme.test:443", True),
        ("api.acme.test:443", "API.ACME.TEST:443", True),
        ("api.acme.test:443", "api.acme.test:80", False),
        ("api.acme.test:443", "api.acme.test", False),  # asks any port; granted one
        ("api.acme.test", "api.acme.test:8443", True),  # host alone: any port
        ("api.acme.test", "api.acme.test", True),
        ("api.acme.test:*", "api.acme.test:1", True),
        ("api.acme.test", "api.acme.test.evil.test:443", False),
        ("api.acme.test", "xapi.acme.test:443", False),
        ("*.acme.test:443", "api.acme.test:443", True),
        ("*.acme.test:443", "a.b.acme.test:443", True),  # "*" spans dots
        ("*.acme.test:443", "acme.test:443", False),
        ("*.acme.test:443", "evilacme.test:443", False),
        ("*.acme.test:443", "api.acme.test.evil:443", False),
        ("*.acme.test", "*.acme.test:443", True),  # a broader pattern covers a pattern
        ("api.acme.test", "*.acme.test", False),  # a narrower one does not
        ("*", "anything.at.all:1", True),
        ("[::1]:8080", "[::1]:8080", True),
        ("[::1]", "[::1]:9", True),
        ("[::1]:8080", "[::2]:8080", False),
        ("10.0.0.*", "10.0.0.7:22", True),
        ("10.0.0.*", "10.0.1.7:22", False),
    ],
)
def test_network_patterns(pattern: str, endpoint: str, allowed: bool) -> None:
    assert permissions(network=[pattern]).allows("acme.x", "network", endpoint) is allowed


@pytest.mark.parametrize(
    ("granted", "path", "allowed"),
    [
        ("/etc/passwd", "/etc/passwd", True),
        ("/etc/passwd", "/etc/passwd2", False),  # a shared prefix is not containment
        ("/etc/passwd", "/etc/passwd/../shadow", False),
        (f"{NOWHERE}/data", f"{NOWHERE}/data/a/b.txt", True),
        (f"{NOWHERE}/data/", f"{NOWHERE}/data", True),
        (f"{NOWHERE}/data", f"{NOWHERE}/data/../data/x", True),
        (f"{NOWHERE}/data", f"{NOWHERE}/data/x/../../other", False),
        (f"{NOWHERE}/data", f"{NOWHERE}//data///x", True),
        (f"{NOWHERE}/data/./sub", f"{NOWHERE}/data/sub/f", True),
        (f"{NOWHERE}/data", f"{NOWHERE}", False),
        ("/", "/anything/at/all", True),
        ("~/.config/acme", "~/.config/acme/settings.toml", True),
        ("~/.config/acme", os.path.expanduser("~/.config/acme/x"), True),
        ("~/.config/acme", "~/.config/acme-other", False),
    ],
)
def test_filesystem_containment(granted: str, path: str, allowed: bool) -> None:
    p = permissions(filesystem={"read": [granted]})
    assert p.allows("acme.x", "filesystem.read", path) is allowed


def test_write_implies_read_but_not_the_reverse() -> None:
    p = permissions(filesystem={"read": [f"{NOWHERE}/r"], "write": [f"{NOWHERE}/w"]})
    assert p.allows("acme.x", "filesystem.read", f"{NOWHERE}/w/f")
    assert p.allows("acme.x", "filesystem.write", f"{NOWHERE}/w/f")
    assert p.allows("acme.x", "filesystem.read", f"{NOWHERE}/r/f")
    assert not p.allows("acme.x", "filesystem.write", f"{NOWHERE}/r/f")


def test_a_symbolic_link_is_judged_by_where_it_leads(tmp_path: Path) -> None:
    granted = tmp_path / "granted"
    outside = tmp_path / "outside"
    (granted / "inner").mkdir(parents=True)
    outside.mkdir()
    (granted / "escape").symlink_to(outside)
    (tmp_path / "way-in").symlink_to(granted / "inner")
    p = permissions(filesystem={"read": [str(granted)]})
    assert not p.allows("acme.x", "filesystem.read", str(granted / "escape" / "secret"))
    assert p.allows("acme.x", "filesystem.read", str(tmp_path / "way-in" / "file"))
    # ".." after a link goes up from where the link leads, not lexically.
    assert not p.allows("acme.x", "filesystem.read", str(granted / "escape" / ".." / "x"))


def test_env_is_exact_and_case_sensitive() -> None:
    p = permissions(env=["TOKEN"])
    assert p.allows("acme.x", "env", "TOKEN")
    assert not p.allows("acme.x", "env", "TOKEN2")
    assert not p.allows("acme.x", "env", "token")
    assert not p.allows("acme.x", "env", "TOK")


def test_subprocess() -> None:
    assert permissions(subprocess=True).allows("acme.x", "subprocess", "true")
    assert not permissions().allows("acme.x", "subprocess", "true")
    assert permissions().allows("acme.x", "subprocess", "false")  # asking for nothing


def test_another_plugins_grants_do_not_count() -> None:
    p = permissions("acme.other", env=["TOKEN"], network=["*"])
    assert not p.allows("acme.x", "env", "TOKEN")
    assert not p.allows("acme.x", "network", "a:1")
    assert p.granted("acme.x") == Grants()


def test_an_unknown_kind_is_an_error_not_a_denial() -> None:
    with pytest.raises(ConfigError, match='did you mean "network"'):
        permissions().check("acme.x", "netwrk", "a:1")


# ---------------------------------------------------------------- matching: properties

names = st.text(alphabet="abcxyz019_-", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)
segments = st.lists(st.one_of(names, st.just(".."), st.just(".")), max_size=8)


def _oracle_under(base: list[str], steps: list[str]) -> bool:
    """Walk ``steps`` from ``base`` as a shell would, without any path library."""
    stack = list(base)
    for step in steps:
        if step == "..":
            if stack:
                stack.pop()
        elif step != ".":
            stack.append(step)
    return stack[: len(base)] == base


@given(st.lists(names, min_size=1, max_size=4), segments)
def test_containment_matches_an_oracle(base: list[str], steps: list[str]) -> None:
    root = ["plugbay-test-nowhere", *base]
    granted = "/" + "/".join(root)
    path = granted + "".join(f"/{s}" for s in steps)
    p = permissions(filesystem={"read": [granted]})
    assert p.allows("acme.x", "filesystem.read", path) is _oracle_under(root, steps)


@given(st.lists(names, min_size=1, max_size=4), names, st.lists(names, max_size=3))
def test_a_sibling_sharing_a_prefix_is_never_inside(
    base: list[str], suffix: str, rest: list[str]
) -> None:
    granted = PurePosixPath(NOWHERE, *base)
    sibling = granted.with_name(granted.name + suffix).joinpath(*rest)
    p = permissions(filesystem={"write": [str(granted)]})
    assert not p.allows("acme.x", "filesystem.write", str(sibling))
    assert not p.allows("acme.x", "filesystem.read", str(sibling))


hosts = st.lists(st.text(alphabet="abcz09-", min_size=1, max_size=5), min_size=1, max_size=4).map(
    ".".join
)
ports = st.integers(min_value=1, max_value=65535)


@given(hosts, ports, ports)
def test_a_port_grant_allows_that_port_only(host: str, granted: int, asked: int) -> None:
    p = permissions(network=[f"{host}:{granted}"])
    assert p.allows("acme.x", "network", f"{host}:{asked}") is (granted == asked)
    assert permissions(network=[host]).allows("acme.x", "network", f"{host}:{asked}")


@given(hosts, hosts, ports)
def test_a_wildcard_allows_subdomains_only(label: str, domain: str, port: int) -> None:
    p = permissions(network=[f"*.{domain}:{port}"])
    assert p.allows("acme.x", "network", f"{label}.{domain}:{port}")
    assert not p.allows("acme.x", "network", f"{domain}:{port}")
    assert not p.allows("acme.x", "network", f"{label}{domain}:{port}")


# ---------------------------------------------------------------- Permissions over a config

ASKED = Asked(
    network=("api.acme.test:443",),
    filesystem=FilesystemPermissions(read=("~/.config/acme",), write=(f"{NOWHERE}/out",)),
    env=("ACME_TOKEN",),
    subprocess=True,
)
ALL_ASKED = [
    ("env", "ACME_TOKEN"),
    ("network", "api.acme.test:443"),
    ("filesystem.read", "~/.config/acme"),
    ("filesystem.write", f"{NOWHERE}/out"),
    ("subprocess", "true"),
]


def test_requested_pairs_in_manifest_order() -> None:
    assert list(requested_pairs(ASKED)) == ALL_ASKED
    assert list(requested_pairs(Asked())) == []


def test_missing_report_and_require_over_a_config_file() -> None:
    p = Permissions(
        config(
            f"""
            [grants."acme.x"]
            env = ["ACME_TOKEN"]
            network = ["*.acme.test"]
            filesystem = {{ read = [], write = ["{NOWHERE}"] }}
            """
        )
    )
    assert p.missing("acme.x", ASKED) == [
        ("filesystem.read", "~/.config/acme"),
        ("subprocess", "true"),
    ]
    assert p.report("acme.x", ASKED) == [
        PermissionStatus("env", "ACME_TOKEN", True),
        PermissionStatus("network", "api.acme.test:443", True),
        PermissionStatus("filesystem.read", "~/.config/acme", False),
        PermissionStatus("filesystem.write", f"{NOWHERE}/out", True),
        PermissionStatus("subprocess", "true", False),
    ]
    with pytest.raises(PermissionDenied) as info:
        p.require("acme.x", ASKED)
    err = info.value
    assert (err.plugin_id, err.kind, err.value) == ("acme.x", "filesystem.read", "~/.config/acme")
    assert err.missing == [("filesystem.read", "~/.config/acme"), ("subprocess", "true")]
    assert str(err) == (
        "acme.x: permissions filesystem.read=~/.config/acme, subprocess=true are not granted; "
        "grant them with `plugbay grant acme.x 'filesystem.read=~/.config/acme' "
        'subprocess=true` (or in config.toml, [grants."acme.x"])'
    )
    p.require("acme.x", Asked(env=("ACME_TOKEN",)))  # all granted: no error


def test_check_raises_permission_denied_naming_the_grant_command() -> None:
    p = permissions(env=["A"])
    p.check("acme.x", "env", "A")
    with pytest.raises(PermissionDenied) as info:
        p.check("acme.x", "env", "B")
    assert str(info.value) == (
        "acme.x: permission env=B is not granted; grant it with `plugbay grant acme.x env=B` "
        '(or in config.toml, [grants."acme.x"])'
    )
    assert info.value.missing == [("env", "B")]


def test_the_grant_command_survives_a_shell() -> None:
    pairs = [("network", "*.acme.test:443"), ("filesystem.read", "~/my files"), ("env", "A")]
    command = grant_command("acme.x", pairs)
    assert shlex.split(command) == [
        "plugbay",
        "grant",
        "acme.x",
        "network=*.acme.test:443",
        "filesystem.read=~/my files",
        "env=A",
    ]


def test_asked_for_tells_a_grant_nothing_asks_for() -> None:
    assert asked_for("env", "ACME_TOKEN", ASKED)
    assert not asked_for("env", "OTHER", ASKED)
    assert asked_for("network", "*.acme.test", ASKED)  # broader than asked: still wanted
    assert not asked_for("network", "api.acme.test:80", ASKED)
    assert asked_for("filesystem.write", NOWHERE, ASKED)
    assert not asked_for("filesystem.write", "~/.config/acme", ASKED)  # read was asked
    assert asked_for("subprocess", "true", ASKED)
    assert not asked_for("subprocess", "true", Asked())


def test_same_permission_ignores_spelling_only() -> None:
    assert same_permission("network", "API.acme.test", "api.acme.test:*")
    assert not same_permission("network", "api.acme.test", "api.acme.test:443")
    assert same_permission("filesystem.read", "~/x/", "~/x")
    assert same_permission("filesystem.read", "/a/./b", "/a/b")
    assert not same_permission("filesystem.read", "/a", "/a/b")
    assert not same_permission("env", "A", "a")


def test_granted_pairs_lists_subprocess_only_when_true() -> None:
    assert list(granted_pairs(Grants(env=("A",), subprocess=False))) == [("env", "A")]
    assert ("subprocess", "true") in list(granted_pairs(Grants(subprocess=True)))


@pytest.mark.parametrize(
    ("runtime", "isolation", "expected"),
    [("python", "none", False), ("python", "process", True), ("exec", "none", True)],
)
def test_enforced_for_out_of_process_plugins(runtime: str, isolation: str, expected: bool) -> None:
    import msgspec

    info = msgspec.convert(
        {"name": "x", "version": "1.0.0", "runtime": runtime, "isolation": isolation}, PluginInfo
    )
    assert enforced(info) is expected


def test_kinds_are_the_command_line_spelling() -> None:
    assert KINDS == ("env", "network", "filesystem.read", "filesystem.write", "subprocess")


def test_child_environment_passes_base_granted_and_protocol_variables_only() -> None:
    environ = {
        "PATH": "/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "ACME_TOKEN": "t",
        "AWS_SECRET_ACCESS_KEY": "s",
        "PYTHONPATH": "/evil",
    }
    env = child_environment(Grants(env=("ACME_TOKEN", "NOT_SET")), environ, {"PLUGBAY_COOKIE": "c"})
    assert env == {
        "PATH": "/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "ACME_TOKEN": "t",
        "PLUGBAY_COOKIE": "c",
    }
