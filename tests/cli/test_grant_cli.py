"""``plugbay grant`` / ``revoke``, and permissions in ``info`` and ``install``: the real command."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import run_plugbay, write_plugin
from plugbay.config import load_host_config
from plugbay.errors import PermissionDenied
from plugbay.manifest import Permissions as Asked
from plugbay.manifest import load_manifest
from plugbay.security import Permissions

PERMISSIONS = """
runtime = "exec"
entry = "bin/x"
[permissions]
network = ["*.acme.test:443"]
filesystem = { read = ["~/my config/acme"], write = ["/srv/acme"] }
env = ["ACME_TOKEN"]
subprocess = true
"""
ASKED = [
    "env=ACME_TOKEN",
    "network=*.acme.test:443",
    "filesystem.read=~/my config/acme",
    "filesystem.write=/srv/acme",
    "subprocess=true",
]


@pytest.fixture
def asking(home: Path) -> Asked:
    """A hand-placed exec plugin ``acme.x`` asking for one permission of each kind."""
    folder = write_plugin(home / "plugins", "acme.x", extra=PERMISSIONS)
    return load_manifest(folder / "plugin.toml").permissions


def ok(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def held(home: Path) -> Permissions:
    return Permissions(load_host_config(home / "config.toml"))


def test_grant_all_then_info_shows_every_permission_granted(home: Path, asking: Asked) -> None:
    info = ok(run_plugbay(home, "info", "acme.x"))
    start = info.index("  permissions:  (enforced: it loads only when all are granted)")
    assert [line.split() for line in info[start + 1 : start + 6]] == [
        ["env=ACME_TOKEN", "not", "granted"],
        ["network=*.acme.test:443", "not", "granted"],
        ["filesystem.read=~/my", "config/acme", "not", "granted"],
        ["filesystem.write=/srv/acme", "not", "granted"],
        ["subprocess=true", "not", "granted"],
    ]
    assert info[start + 6] == (
        "  grant with:   plugbay grant acme.x env=ACME_TOKEN 'network=*.acme.test:443' "
        "'filesystem.read=~/my config/acme' filesystem.write=/srv/acme subprocess=true"
    )

    assert ok(run_plugbay(home, "grant", "acme.x", "--all")) == [
        f"grant acme.x {pair}" for pair in ASKED
    ]
    held(home).require("acme.x", asking)

    doc = json.loads(run_plugbay(home, "info", "acme.x", "--json").stdout)
    assert doc["grants"] == {
        "enforced": True,
        "asked": [
            {"kind": k, "value": v, "granted": True} for k, v in (p.split("=", 1) for p in ASKED)
        ],
        "grant_command": None,
    }
    again = run_plugbay(home, "grant", "acme.x", "--all")
    assert ok(again) == ["nothing to grant: acme.x already holds " + ", ".join(ASKED)]
    assert again.stderr == ""


def test_the_command_a_denial_names_grants_what_is_missing(home: Path, asking: Asked) -> None:
    ok(run_plugbay(home, "grant", "acme.x", "env=ACME_TOKEN"))
    with pytest.raises(PermissionDenied) as info:
        held(home).require("acme.x", asking)
    assert len(info.value.missing) == 4
    command = str(info.value).split("`")[1]
    argv = shlex.split(command)  # as a shell would pass it on
    assert argv[:3] == ["plugbay", "grant", "acme.x"]
    ok(run_plugbay(home, *argv[1:]))
    held(home).require("acme.x", asking)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("envv=ACME_TOKEN", "unknown permission kind 'envv'; did you mean \"env\"?"),
        ("subprocess=maybe", "subprocess takes true or false, not 'maybe'"),
        ("env=", "the value is empty"),
        ("network=https://api.acme.test", "not a URL"),
    ],
)
def test_a_bad_pair_is_a_usage_error(home: Path, asking: Asked, pair: str, message: str) -> None:
    result = run_plugbay(home, "grant", "acme.x", "env=GOOD", pair)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert pair in result.stderr
    assert not (home / "config.toml").exists()  # not even the good pair before it


def test_grant_needs_something_to_grant(home: Path) -> None:
    result = run_plugbay(home, "grant", "acme.x")
    assert result.returncode == 2
    assert "KIND=VALUE… (e.g. env=API_TOKEN), or --all" in result.stderr


def test_granting_beyond_the_manifest_or_to_an_unknown_id_warns(home: Path, asking: Asked) -> None:
    extra = run_plugbay(home, "grant", "acme.x", "env=OTHER", "env=ACME_TOKEN")
    assert ok(extra) == [
        "grant acme.x env=OTHER",
        "grant acme.x env=ACME_TOKEN",
        "acme.x still asks for network=*.acme.test:443, filesystem.read=~/my config/acme, "
        "filesystem.write=/srv/acme, subprocess=true (it does not load until they are granted)",
        "  grant with: plugbay grant acme.x 'network=*.acme.test:443' "
        "'filesystem.read=~/my config/acme' filesystem.write=/srv/acme subprocess=true",
    ]
    assert extra.stderr == "warning: acme.x does not ask for env=OTHER; granted anyway\n"

    typo = run_plugbay(home, "grant", "acme.y", "env=A")
    assert ok(typo) == ["grant acme.y env=A"]
    assert typo.stderr == (
        'warning: no plugin acme.y is installed or discovered here; did you mean "acme.x"?\n'
    )
    assert held(home).allows("acme.y", "env", "A")  # recorded: it may be installed later


def test_grant_all_needs_the_plugin(home: Path, asking: Asked) -> None:
    result = run_plugbay(home, "grant", "acme.y", "--all")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: acme.y: --all grants what the plugin's manifest asks for, and no plugin acme.y "
        'is installed or discovered here; did you mean "acme.x"? (install it first, or give '
        "KIND=VALUE pairs)"
    ]


def test_revoke_says_what_it_did_and_what_was_not_granted(home: Path, asking: Asked) -> None:
    ok(run_plugbay(home, "grant", "acme.x", "--all"))
    assert ok(run_plugbay(home, "revoke", "acme.x", "env=ACME_TOKEN", "env=NOPE", "network")) == [
        "revoke acme.x env=ACME_TOKEN",
        "nothing to revoke: acme.x does not hold env=NOPE",
        "revoke acme.x network=*.acme.test:443",
    ]
    assert ok(run_plugbay(home, "revoke", "acme.x", "env=ACME_TOKEN")) == [
        "nothing to revoke: acme.x does not hold env=ACME_TOKEN"
    ]
    assert ok(run_plugbay(home, "revoke", "acme.x")) == [
        "revoke acme.x filesystem.read=~/my config/acme",
        "revoke acme.x filesystem.write=/srv/acme",
        "revoke acme.x subprocess=true",
    ]
    assert not (home / "config.toml").read_text().strip()
    nothing = run_plugbay(home, "revoke", "acme.x")
    assert ok(nothing) == ["nothing to revoke: acme.x holds no permissions"]
    assert nothing.stderr == ""
    typo = run_plugbay(home, "revoke", "acme.xx")
    assert ok(typo) == ["nothing to revoke: acme.xx holds no permissions"]
    assert 'did you mean "acme.x"?' in typo.stderr


def test_json_is_one_document_and_quiet_is_quiet(home: Path, asking: Asked) -> None:
    granted = run_plugbay(home, "--json", "grant", "acme.x", "env=ACME_TOKEN", "env=OTHER")
    doc = json.loads(ok(granted) and granted.stdout)
    assert granted.stderr == ""
    assert doc["changes"] == [
        {"action": "grant", "kind": "env", "value": "ACME_TOKEN"},
        {"action": "grant", "kind": "env", "value": "OTHER"},
    ]
    assert doc["warnings"] == ["acme.x does not ask for env=OTHER; granted anyway"]
    assert doc["granted"]["env"] == ["ACME_TOKEN", "OTHER"]
    assert [m["kind"] for m in doc["missing"]] == [
        "network",
        "filesystem.read",
        "filesystem.write",
        "subprocess",
    ]
    revoked = json.loads(run_plugbay(home, "revoke", "acme.x", "env=NOPE", "--json").stdout)
    assert revoked["changes"] == [{"action": "keep", "kind": "env", "value": "NOPE"}]
    assert run_plugbay(home, "grant", "-q", "acme.x", "env=ACME_TOKEN").stdout == ""


def test_install_lists_what_is_asked_and_not_granted(tmp_path: Path, home: Path) -> None:
    exec_src = write_plugin(tmp_path / "src", "acme.x", extra=PERMISSIONS)
    inproc_src = write_plugin(
        tmp_path / "src", "acme.inproc", extra='[permissions]\nenv = ["INPROC_TOKEN"]'
    )
    plain_src = write_plugin(tmp_path / "src", "acme.plain")
    ok(run_plugbay(home, "grant", "acme.x", "env=ACME_TOKEN", "subprocess=true"))
    lines = ok(run_plugbay(home, "install", str(exec_src), str(inproc_src), str(plain_src)))
    assert lines[-4:] == [
        "acme.inproc asks for permissions not granted: env=INPROC_TOKEN (not enforced: it runs "
        "in-process with the host's rights)",
        "  grant them with: plugbay grant acme.inproc env=INPROC_TOKEN",
        "acme.x asks for permissions not granted: network=*.acme.test:443, "
        "filesystem.read=~/my config/acme, filesystem.write=/srv/acme (it does not load until "
        "they are granted)",
        "  grant them with: plugbay grant acme.x 'network=*.acme.test:443' "
        "'filesystem.read=~/my config/acme' filesystem.write=/srv/acme",
    ]
    result = run_plugbay(home, "install", "--force", "--json", str(exec_src), str(plain_src))
    doc = json.loads(ok(result) and result.stdout)
    assert [(p["id"], p["version"], p["enforced"]) for p in doc["permissions"]] == [
        ("acme.x", "1.0.0", True)
    ]
    plugin = doc["permissions"][0]
    assert [a["granted"] for a in plugin["asked"]] == [True, False, False, False, True]
    assert [m["kind"] for m in plugin["missing"]] == [
        "network",
        "filesystem.read",
        "filesystem.write",
    ]
    assert plugin["grant_command"].startswith("plugbay grant acme.x 'network=")
