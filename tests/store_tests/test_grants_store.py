"""Grants in config.toml through the Store: comments kept, idempotent, locked, atomic."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugbay.config import FilesystemGrant, Grants, load_host_config
from plugbay.errors import ConfigError, StoreError
from plugbay.security import Permissions
from plugbay.store import Store
from plugbay.store.grants import GrantChange

COMMENTED = """\
# my settings
paths = []  # none yet

[plugins."acme.x"]
# later
greeting = "hi"

[grants."acme.other"]
env = ["OTHER"]  # keep me
"""


def write_config(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(textwrap.dedent(text))
    return path


def grants_of(home: Path, plugin_id: str = "acme.x") -> Grants:
    return Permissions(load_host_config(home / "config.toml")).granted(plugin_id)


def actions(changes: list[GrantChange]) -> list[tuple[str, str | None, str | None]]:
    return [(c.action, c.kind, c.value) for c in changes]


def test_grant_keeps_comments_and_other_tables(home: Path) -> None:
    path = write_config(home, COMMENTED)
    outcome = Store(home).grant(
        "acme.x",
        [
            ("env", "ACME_TOKEN"),
            ("network", "API.acme.test:443"),
            ("filesystem.read", "~/.config/acme"),
            ("subprocess", "true"),
        ],
    )
    assert actions(outcome.changes) == [
        ("grant", "env", "ACME_TOKEN"),
        ("grant", "network", "api.acme.test:443"),
        ("grant", "filesystem.read", "~/.config/acme"),
        ("grant", "subprocess", "true"),
    ]
    text = path.read_text()
    assert text.startswith(COMMENTED), text
    assert grants_of(home) == Grants(
        env=("ACME_TOKEN",),
        network=("api.acme.test:443",),
        filesystem=FilesystemGrant(read=("~/.config/acme",)),
        subprocess=True,
    )
    assert outcome.grants == grants_of(home)
    assert grants_of(home, "acme.other") == Grants(env=("OTHER",))
    assert load_host_config(path).plugins == {"acme.x": {"greeting": "hi"}}


def test_grant_without_a_config_file(home: Path) -> None:
    Store(home).grant("acme.x", [("env", "A")])
    assert (home / "config.toml").read_text() == '[grants."acme.x"]\nenv = ["A"]\n'


def test_grant_is_idempotent_and_does_not_rewrite_the_file(home: Path) -> None:
    store = Store(home)
    store.grant("acme.x", [("env", "A"), ("filesystem.write", "/srv/data")])
    path = home / "config.toml"
    before = (path.read_bytes(), path.stat().st_ino)
    again = store.grant(
        "acme.x", [("env", "A"), ("filesystem.write", "/srv/data/"), ("subprocess", "false")]
    )
    assert actions(again.changes) == [
        ("keep", "env", "A"),
        ("keep", "filesystem.write", "/srv/data/"),
        ("keep", "subprocess", "false"),
    ]
    assert not again.changed
    assert (path.read_bytes(), path.stat().st_ino) == before


def test_grant_adds_to_existing_tables_in_either_toml_form(home: Path) -> None:
    path = write_config(
        home,
        """
        [grants."acme.x"]
        env = [
          "A",  # the first
        ]

        [grants."acme.x".filesystem]
        read = ["/srv/in"]  # inputs
        """,
    )
    Store(home).grant(
        "acme.x", [("env", "B"), ("filesystem.read", "/srv/more"), ("filesystem.write", "/out")]
    )
    text = path.read_text()
    assert "# the first" in text
    assert "# inputs" in text
    assert grants_of(home) == Grants(
        env=("A", "B"),
        filesystem=FilesystemGrant(read=("/srv/in", "/srv/more"), write=("/out",)),
    )


def test_dotted_keys_and_inline_tables_are_edited_too(home: Path) -> None:
    path = write_config(home, '[grants."acme.x"]\nfilesystem.read = ["/a"]  # dotted\n')
    store = Store(home)
    store.grant("acme.x", [("filesystem.read", "/b"), ("filesystem.write", "/c"), ("env", "E")])
    store.revoke("acme.x", [("filesystem.read", "/a")])
    assert "# dotted" in path.read_text()
    store.revoke("acme.x", [("filesystem.read", None), ("filesystem.write", "/c")])
    assert grants_of(home) == Grants(env=("E",))
    assert "filesystem" not in path.read_text()

    path.write_text('grants = { "acme.y" = { env = ["A"] } }\n')
    store.grant("acme.y", [("env", "B"), ("filesystem.read", "/r")])
    assert grants_of(home, "acme.y") == Grants(env=("A", "B"), filesystem=FilesystemGrant(("/r",)))
    store.revoke("acme.y")
    assert path.read_text() == ""


def test_revoke_values_kinds_and_everything(home: Path) -> None:
    path = write_config(home, COMMENTED)
    store = Store(home)
    store.grant(
        "acme.x",
        [
            ("env", "A"),
            ("env", "B"),
            ("network", "a.test:1"),
            ("filesystem.read", "/r"),
            ("subprocess", "true"),
        ],
    )
    one = store.revoke("acme.x", [("env", "A"), ("filesystem.read", "/r/")])
    assert actions(one.changes) == [("revoke", "env", "A"), ("revoke", "filesystem.read", "/r")]
    assert grants_of(home) == Grants(env=("B",), network=("a.test:1",), subprocess=True)
    assert "filesystem" not in path.read_text().split('[grants."acme.x"]')[1]

    kind = store.revoke("acme.x", [("network", None), ("subprocess", None)])
    assert actions(kind.changes) == [
        ("revoke", "network", "a.test:1"),
        ("revoke", "subprocess", "true"),
    ]
    assert grants_of(home) == Grants(env=("B",))

    everything = store.revoke("acme.x")
    assert actions(everything.changes) == [("revoke", "env", "B")]
    assert path.read_text() == COMMENTED  # back to the file as the user wrote it
    assert grants_of(home, "acme.other") == Grants(env=("OTHER",))


def test_revoking_what_is_not_granted_changes_nothing(home: Path) -> None:
    path = write_config(home, COMMENTED)
    store = Store(home)
    before = (path.read_bytes(), path.stat().st_ino)
    assert actions(store.revoke("acme.x", [("env", "A")]).changes) == [("keep", "env", "A")]
    assert actions(store.revoke("acme.x").changes) == [("keep", None, None)]
    assert actions(store.revoke("acme.other", [("env", "NOPE")]).changes) == [
        ("keep", "env", "NOPE")
    ]
    assert (path.read_bytes(), path.stat().st_ino) == before


def test_revoking_a_value_a_broader_grant_covers_warns(home: Path) -> None:
    store = Store(home)
    store.grant("acme.x", [("network", "*.acme.test"), ("network", "api.acme.test:443")])
    outcome = store.revoke("acme.x", [("network", "api.acme.test:443")])
    assert actions(outcome.changes) == [("revoke", "network", "api.acme.test:443")]
    assert outcome.warnings == [
        "acme.x still holds network=api.acme.test:443 through the grant network=*.acme.test; "
        "revoke that too if it should not"
    ]
    store.grant("acme.x", [("filesystem.write", "/srv"), ("filesystem.read", "/srv/in")])
    fs = store.revoke("acme.x", [("filesystem.read", "/srv/in")])
    assert fs.warnings == [
        "acme.x still holds filesystem.read=/srv/in through the grant "
        "filesystem.read=/srv (write implies read); revoke that too if it should not"
    ]


def test_bad_values_are_refused_before_the_file_is_touched(home: Path) -> None:
    path = write_config(home, COMMENTED)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="subprocess takes true or false"):
        Store(home).grant("acme.x", [("env", "A"), ("subprocess", "maybe")])
    with pytest.raises(ConfigError, match="unknown permission kind"):
        Store(home).revoke("acme.x", [("envs", None)])
    assert path.read_bytes() == before


def test_a_config_plugbay_cannot_load_is_not_edited(home: Path) -> None:
    path = write_config(home, '[grants."acme.x"]\nenv = "A"  # a string, not a list\n')
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        Store(home).grant("acme.x", [("env", "B")])
    assert 'grants."acme.x".env' in str(info.value)
    assert path.read_bytes() == before
    path.write_text("[grants\n")
    with pytest.raises(StoreError, match=r"config\.toml cannot be read: .*; fix it first"):
        Store(home).revoke("acme.x")
    assert path.read_text() == "[grants\n"


GRANT_ONE = """
import sys
from pathlib import Path
from plugbay.store import Store
Store(Path(sys.argv[1])).grant("acme.x", [("env", sys.argv[2])])
"""


def test_concurrent_grants_all_land(home: Path) -> None:
    """Each change holds the home's lock: none of several plugbays loses another's grant."""
    names = [f"VAR_{i}" for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-c", GRANT_ONE, str(home), name]) for name in names]
    assert [p.wait(timeout=60) for p in procs] == [0] * len(names)
    assert sorted(grants_of(home).env) == names
