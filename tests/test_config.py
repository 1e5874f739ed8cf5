"""The host's config.toml: loading, validation messages, and the allow/deny policy."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from plugbay.config import HostConfig, Policy, config_from_mapping, load_host_config
from plugbay.errors import ConfigError, PluginError


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.toml"
    if isinstance(text, str):
        text = textwrap.dedent(text).lstrip().encode()
    path.write_bytes(text)
    return path


def _fail(tmp_path: Path, text: str | bytes) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_host_config(path)
    err = info.value
    assert isinstance(err, PluginError)
    assert err.source == str(path)
    where = f"{path}: {err.field}: " if err.field else f"{path}: "
    assert str(err) == where + err.problem
    return err


# ---------------------------------------------------------------- loading


def test_a_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load_host_config(tmp_path / "config.toml")
    assert config == HostConfig()
    assert config.paths == ()
    assert config.disabled == ()
    assert config.policy == Policy()
    assert config.plugins == {}


def test_an_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load_host_config(_write(tmp_path, "")) == HostConfig()


def test_a_full_config(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        paths = ["~/work/plugins", "relative/plugins"]
        disabled = ["acme.old", "legacy"]

        [policy]
        allow = ["acme", "tools.hello"]
        deny = ["evil"]

        [plugins."acme.hello"]
        greeting = "hi"
        retries = 3
        targets = { eu = "https://eu.acme.test" }

        [plugins.bare]
        enabled_features = ["a", "b"]
        """,
    )
    config = load_host_config(path)
    assert config == HostConfig(
        paths=("~/work/plugins", "relative/plugins"),
        disabled=("acme.old", "legacy"),
        policy=Policy(allow=("acme", "tools.hello"), deny=("evil",)),
        plugins={
            "acme.hello": {
                "greeting": "hi",
                "retries": 3,
                "targets": {"eu": "https://eu.acme.test"},
            },
            "bare": {"enabled_features": ["a", "b"]},
        },
    )


def test_plugin_tables_are_free_form(tmp_path: Path) -> None:
    # Keys inside [plugins."id"] belong to that plugin's schema, not to the host's.
    config = load_host_config(_write(tmp_path, '[plugins."acme.hello"]\nanything_at_all = 1\n'))
    assert config.plugins == {"acme.hello": {"anything_at_all": 1}}


def test_config_from_mapping_validates_a_decoded_document() -> None:
    config = config_from_mapping({"disabled": ["acme.old"]})
    assert config.disabled == ("acme.old",)
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"disabled": "acme.old"}, "in-memory")
    assert info.value.source == "in-memory"
    assert info.value.field == "disabled"


# ---------------------------------------------------------------- errors


def test_invalid_toml_names_the_file_and_the_place(tmp_path: Path) -> None:
    err = _fail(tmp_path, 'paths = ["a"\ndisabled = []\n')
    assert err.field == ""
    assert err.problem.startswith("is not valid TOML: ")
    assert "line 2" in err.problem


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    err = _fail(tmp_path, b'paths = ["caf\xe9"]\n')
    assert err.field == ""
    assert err.problem.startswith("is not UTF-8 text")
    assert "save it as UTF-8" in err.problem


@pytest.mark.parametrize(
    ("text", "field", "value", "suggestion"),
    [
        ('path = ["x"]\n', "path", ["x"], "paths"),
        ('disable = ["x"]\n', "disable", ["x"], "disabled"),
        ('[polices]\nallow = ["x"]\n', "polices", {"allow": ["x"]}, "policy"),
        ('[plugin."acme.x"]\na = 1\n', "plugin", {"acme.x": {"a": 1}}, "plugins"),
        ("zzzzzz = 1\n", "zzzzzz", 1, None),
        ('[policy]\nalow = ["acme"]\n', "policy.alow", ["acme"], "allow"),
        ('[policy]\ndenied = ["evil"]\n', "policy.denied", ["evil"], "deny"),
        # Only the keys of the table at hand are suggested: "paths" is not a policy key.
        ('[policy]\npath = ["x"]\n', "policy.path", ["x"], None),
    ],
)
def test_unknown_keys_with_did_you_mean(
    tmp_path: Path, text: str, field: str, value: object, suggestion: str | None
) -> None:
    err = _fail(tmp_path, text)
    assert err.field == field
    assert err.value == value
    key = field.rsplit(".", 1)[-1]
    assert err.problem.startswith(f"unknown key {key!r}")
    if suggestion is None:
        assert "did you mean" not in err.problem
    else:
        assert f'did you mean "{suggestion}"?' in err.problem
    allowed = (
        "allow, allow-shadowing-builtins, deny, require-signatures"
        if field.startswith("policy.")
        else "disabled, grants, health, index, oci, paths, plugins, policy, runtime"
    )
    assert f"(allowed: {allowed})" in err.problem


@pytest.mark.parametrize(
    ("text", "field", "value", "expected"),
    [
        ('paths = "~/plugins"\n', "paths", "~/plugins", "expected list, got string"),
        ("disabled = [1]\n", "disabled[0]", 1, "expected string, got integer"),
        ("policy = []\n", "policy", [], "expected table, got list"),
        ('[policy]\ndeny = "evil"\n', "policy.deny", "evil", "expected list, got string"),
        ('[policy]\nallow = ["acme", 2]\n', "policy.allow[1]", 2, "expected string, got integer"),
        ('plugins = ["acme.hello"]\n', "plugins", ["acme.hello"], "expected table, got list"),
    ],
)
def test_wrong_types_name_the_field_and_the_value(
    tmp_path: Path, text: str, field: str, value: object, expected: str
) -> None:
    err = _fail(tmp_path, text)
    assert err.field == field
    assert err.value == value
    assert err.problem == f"{value!r}: {expected}"


def test_a_plugin_entry_that_is_not_a_table(tmp_path: Path) -> None:
    err = _fail(tmp_path, '[plugins]\n"acme.hello" = "hi"\n')
    assert (err.field, err.value) == ("plugins.acme.hello", "hi")
    assert "expected a table of that plugin's settings" in err.problem
    assert '[plugins."acme.hello"]' in err.problem


# ---------------------------------------------------------------- policy


def test_an_empty_policy_refuses_nothing() -> None:
    policy = Policy()
    for plugin_id in ("acme.hello", "bare", "evil.tool"):
        assert policy.refuses(plugin_id) is None


@pytest.mark.parametrize(
    ("plugin_id", "reason"),
    [
        ("evil.tool", "its namespace 'evil' is in [policy] deny"),
        ("evil", "its id 'evil' is in [policy] deny"),
        ("acme.bad", "its id 'acme.bad' is in [policy] deny"),
    ],
)
def test_deny_matches_ids_and_namespaces(plugin_id: str, reason: str) -> None:
    policy = Policy(deny=("evil", "acme.bad"))
    refusal = policy.refuses(plugin_id)
    assert refusal == f"denied by the policy: {reason}"


def test_deny_does_not_match_prefixes_or_other_plugins() -> None:
    policy = Policy(deny=("evil", "acme.bad"))
    assert policy.refuses("evilish.tool") is None
    assert policy.refuses("acme.badger") is None
    assert policy.refuses("acme.good") is None
    assert policy.refuses("other.evil") is None


def test_allow_admits_only_listed_ids_and_namespaces() -> None:
    policy = Policy(allow=("acme", "tools.hello"))
    assert policy.refuses("acme.anything") is None
    assert policy.refuses("tools.hello") is None
    assert policy.refuses("acme") is None  # a bare plugin whose id is listed
    for refused in ("tools.other", "hello", "acmeish.tool", "other.acme"):
        refusal = policy.refuses(refused)
        assert refusal is not None, refused
        assert refusal.startswith("not allowed by the policy")
        assert "[policy] allow (acme, tools.hello)" in refusal


def test_deny_wins_over_allow() -> None:
    policy = Policy(allow=("acme",), deny=("acme.bad",))
    assert policy.refuses("acme.good") is None
    refusal = policy.refuses("acme.bad")
    assert refusal is not None
    assert refusal.startswith("denied by the policy")


def test_the_policy_from_a_file_is_applied(tmp_path: Path) -> None:
    config = load_host_config(_write(tmp_path, '[policy]\nallow = ["acme"]\ndeny = ["acme.x"]\n'))
    assert config.policy.refuses("acme.y") is None
    assert config.policy.refuses("acme.x") is not None
    assert config.policy.refuses("other.y") is not None
