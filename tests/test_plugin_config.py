"""Plugin config: validated against the plugin's JSON Schema, defaults, ``${env:…}``, secrets.

A secret (a field marked ``writeOnly`` or ``x-secret``) must never appear in output or logs:
the last tests run every ``plugbay`` command at ``-vvv`` and search everything they wrote.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import yaml
from click.testing import CliRunner

from conftest import write_plugin
from plugbay import ConfigError, LoadError, PluginState
from plugbay.cli import command_group
from plugbay.config import PluginConfig, Secret, apply_defaults, validate_plugin_config

SECRET = "hunter2-S3CRET"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "endpoint": {"type": "string", "default": "https://prism.test"},
        "retries": {"type": "integer", "minimum": 0, "default": 3},
        "db": {
            "type": "object",
            "properties": {
                "host": {"type": "string", "default": "localhost"},
                "port": {"type": "integer", "default": 5432},
            },
            "additionalProperties": False,
        },
        "password": {"type": "string", "minLength": 8, "writeOnly": True},
        "token": {"type": "string", "x-secret": True},
    },
    "required": ["password"],
    "additionalProperties": False,
}

# Records its config and lifecycle in host.shared; logs and fails on request.
CONF_CODE = """\
class Plugin:
    def init(self, ctx):
        self.shared = ctx.shared
        ctx.shared.setdefault("configs", []).append(ctx.config)
        ctx.shared.setdefault("log", []).append("init")
        ctx.shared["ctx"] = ctx

    def start(self):
        self.shared["log"].append("start")

    def stop(self):
        self.shared["log"].append("stop")
"""

RECONFIGURABLE = (
    CONF_CODE
    + """
    def reconfigure(self, config):
        self.shared["log"].append("reconfigure")
        self.shared["configs"].append(config)
"""
)


def _schema_files(fmt: str, schema: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The manifest lines and files that give ``schema`` in format ``fmt``."""
    if fmt == "inline":
        return tomli_w.dumps({"config": {"schema": schema}}), {}
    name, text = {
        "json": ("config.schema.json", json.dumps(schema, indent=2)),
        "yaml": ("schema/config.yaml", yaml.safe_dump(schema)),
        "toml": ("config-schema.toml", tomli_w.dumps(schema)),
    }[fmt]
    return f"[config]\nschema = {json.dumps(name)}\n", {name: text}


def _conf_plugin(
    root: Path,
    plugin_id: str = "acme.conf",
    *,
    schema: dict[str, Any] | None = None,
    fmt: str = "json",
    code: str = CONF_CODE,
) -> Path:
    extra, files = _schema_files(fmt, SCHEMA if schema is None else schema)
    folder = write_plugin(root, plugin_id, entry="conf:Plugin", code={"conf.py": code, **files})
    manifest = folder / "plugin.toml"
    # Appended: [config] is a table of its own, after the [plugin] table's keys.
    manifest.write_text(manifest.read_text() + extra)
    return folder


def _write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_PW", SECRET)
    monkeypatch.setenv("ACME_HOST", "prism.acme.test")


# ------------------------------------------------------------------ validation at load


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml", "inline"])
def test_config_from_the_home_is_validated_with_defaults_and_env(
    make_host: Any, plugins_dir: Path, home: Path, secret_env: None, fmt: str
) -> None:
    _conf_plugin(plugins_dir, fmt=fmt)
    _write_config(
        home,
        '[plugins."acme.conf"]\n'
        'password = "${env:ACME_PW}"\n'
        'endpoint = "https://${env:ACME_HOST}:9440"\n'
        '[plugins."acme.conf".db]\n'
        "port = 6543\n",
    )
    host = make_host(plugins_dir)

    assert host.load("acme.conf") is PluginState.STARTED

    config = host.shared["ctx"].config
    assert isinstance(config, PluginConfig)
    assert config["endpoint"] == "https://prism.acme.test:9440"
    assert config["retries"] == 3  # a default
    assert config["db"] == {"host": "localhost", "port": 6543}  # a default inside a table
    assert isinstance(config["password"], Secret)
    assert config["password"].reveal() == SECRET
    assert "token" not in config


def test_config_in_code_is_validated_over_the_homes(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    _conf_plugin(plugins_dir)
    _write_config(home, f'[plugins."acme.conf"]\npassword = "{SECRET}"\nretries = 9\n')
    host = make_host(plugins_dir, config={"acme.conf": {"retries": 1, "token": "tok-12345"}})

    host.load("acme.conf")

    config = host.shared["ctx"].config
    assert config["retries"] == 1
    assert config["password"].reveal() == SECRET
    assert config["token"].reveal() == "tok-12345"
    assert config["db"] == {"host": "localhost", "port": 5432}  # built from its defaults
    assert host.plugin_config("acme.conf") == config


def test_a_missing_environment_variable_names_the_field(
    make_host: Any, plugins_dir: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_PW", raising=False)
    _conf_plugin(plugins_dir)
    _write_config(home, '[plugins."acme.conf"]\npassword = "${env:ACME_PW}"\n')
    host = make_host(plugins_dir)

    with pytest.raises(LoadError) as info:
        host.load("acme.conf")

    assert str(info.value) == (
        "acme.conf: config failed: password: refers to ${env:ACME_PW}, but ACME_PW is not set; "
        "set it or change the config"
    )
    assert "ctx" not in host.shared  # failed before the plugin was imported


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"retries": "many"}, "retries: 'many' is not of type 'integer'"),
        ({"retries": -1}, "retries: -1 is less than the minimum of 0"),
        ({"db": {"port": "x"}}, "db.port: 'x' is not of type 'integer'"),
        (
            {"db": {"hots": "a"}},
            "db: Additional properties are not allowed ('hots' was unexpected)",
        ),
        (
            {"colour": "red"},
            "(top): Additional properties are not allowed ('colour' was unexpected)",
        ),
        ({"password": None, "retries": "x"}, "password: the secret value does not satisfy 'type'"),
    ],
)
def test_an_invalid_config_fails_only_its_plugin(
    make_host: Any, plugins_dir: Path, config: dict[str, Any], expected: str
) -> None:
    _conf_plugin(plugins_dir)
    write_plugin(
        plugins_dir, "acme.other", entry="other:Plugin", code={"other.py": "class Plugin: pass\n"}
    )
    values = {"password": SECRET, **config}
    host = make_host(plugins_dir, config={"acme.conf": values})
    host.start()

    with pytest.raises(LoadError) as info:
        host.load("acme.conf")

    assert str(info.value).startswith(f"acme.conf: config failed: {expected}")
    assert host.state("acme.conf") is PluginState.FAILED
    assert host.load("acme.other") is PluginState.STARTED
    reason = next(s.reason for s in host.status() if s.id == "acme.conf")
    assert reason is not None
    assert expected in reason


def test_a_missing_required_field_is_named(make_host: Any, plugins_dir: Path) -> None:
    _conf_plugin(plugins_dir)
    host = make_host(plugins_dir)
    with pytest.raises(
        LoadError, match=r"config failed: \(top\): 'password' is a required property"
    ):
        host.load("acme.conf")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {"type": "object", "properties": {"port": {"type": "integr"}}},
            "config schema of acme.conf: properties/port/type: is not a valid JSON Schema: "
            "'integr' is not valid under any of the given schemas",
        ),
        (
            {"type": "object", "properties": {"db": {"$ref": "#/$defs/missing"}}},
            "config schema of acme.conf: $ref: is not a valid JSON Schema:",
        ),
        (
            {"type": "object", "properties": {"db": {"$ref": "https://schemas.test/db.json"}}},
            "config schema of acme.conf: $ref: is not a valid JSON Schema:",
        ),
        (
            {"$schema": "https://example.test/my-draft", "type": "object"},
            "config schema of acme.conf: $schema: is not a valid JSON Schema: "
            "'https://example.test/my-draft' is no JSON Schema draft plugbay knows",
        ),
        (
            {"type": "object", "required": "password"},
            "config schema of acme.conf: required: is not a valid JSON Schema:",
        ),
    ],
)
def test_an_invalid_schema_fails_the_plugin_saying_so(
    make_host: Any, plugins_dir: Path, schema: dict[str, Any], expected: str
) -> None:
    _conf_plugin(plugins_dir, schema=schema)
    write_plugin(plugins_dir, "acme.other")
    host = make_host(plugins_dir, config={"acme.conf": {"db": {}}})

    with pytest.raises(LoadError) as info:
        host.load("acme.conf")

    assert str(info.value).startswith(f"acme.conf: config failed: {expected}")
    assert host.state("acme.conf") is PluginState.FAILED
    assert host.load("acme.other") is PluginState.STARTED


def test_a_schema_file_that_does_not_parse_fails_the_plugin(
    make_host: Any, plugins_dir: Path
) -> None:
    folder = _conf_plugin(plugins_dir)
    (folder / "config.schema.json").write_text("{not json")
    host = make_host(plugins_dir)
    with pytest.raises(
        LoadError, match=r"config failed: .*config.schema.json: is not a valid schema"
    ):
        host.load("acme.conf")


# ------------------------------------------------------------------ defaults and secrets


def test_defaults_fill_nested_objects_but_never_invent_required_content() -> None:
    schema = {
        "type": "object",
        "properties": {
            "db": {"$ref": "#/$defs/db"},
            "cache": {
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "ttl": {"type": "integer", "default": 60},
                },
                "required": ["url"],
            },
            "servers": {"type": "array", "items": {"$ref": "#/$defs/db"}},
            "tree": {"$ref": "#/$defs/node"},
        },
        "$defs": {
            "db": {"type": "object", "properties": {"port": {"type": "integer", "default": 5432}}},
            "node": {
                "type": "object",
                "properties": {"name": {"default": "n"}, "child": {"$ref": "#/$defs/node"}},
            },
        },
    }
    filled = apply_defaults(schema, {"servers": [{}, {"port": 1}]})
    assert filled["db"] == {"port": 5432}
    assert "cache" not in filled  # its required url has no default: left to validation
    assert filled["servers"] == [{"port": 5432}, {"port": 1}]
    assert filled["tree"] == {"name": "n"}  # a recursive schema is not unrolled forever
    assert apply_defaults(schema, {"cache": {"url": "u"}})["cache"] == {"url": "u", "ttl": 60}


def test_secret_fields_are_found_through_refs_arrays_and_maps() -> None:
    schema = {
        "type": "object",
        "properties": {
            "accounts": {"type": "array", "items": {"$ref": "#/$defs/account"}},
            "tokens": {
                "type": "object",
                "additionalProperties": {"type": "string", "writeOnly": True},
            },
            "nested": {
                "type": "object",
                "properties": {"key": {"type": "string", "x-secret": True}},
            },
            "plain": {"type": "string"},
        },
        "$defs": {
            "account": {
                "type": "object",
                "properties": {
                    "user": {"type": "string"},
                    "password": {"type": "string", "x-secret": True},
                },
            }
        },
    }
    values = {
        "accounts": [
            {"user": "ada", "password": "pw-one-111"},
            {"user": "bo", "password": "pw-two-222"},
        ],
        "tokens": {"github": "ghp-333"},
        "nested": {"key": "k-444"},
        "plain": "visible",
    }
    config = validate_plugin_config("acme.x", schema, values, {})

    assert config["accounts"][0]["user"] == "ada"
    assert config["accounts"][1]["password"].reveal() == "pw-two-222"
    assert config["tokens"]["github"].reveal() == "ghp-333"
    assert config["nested"]["key"].reveal() == "k-444"
    assert config["plain"] == "visible"
    shown = repr(config) + str(config) + json.dumps(config.redacted())
    for secret in ("pw-one-111", "pw-two-222", "ghp-333", "k-444"):
        assert secret not in shown
    assert sorted(config.secret_values()) == ["ghp-333", "k-444", "pw-one-111", "pw-two-222"]
    assert config.redacted()["accounts"][0] == {"user": "ada", "password": "***"}


def test_secrets_never_show_in_reprs_or_validation_errors(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    _conf_plugin(plugins_dir)
    _write_config(home, f'[plugins."acme.conf"]\npassword = "{SECRET}"\ntoken = "tok-S3CRET"\n')
    host = make_host(plugins_dir)
    host.load("acme.conf")

    config = host.shared["ctx"].config
    for text in (repr(config), str(config), repr(config["password"]), str(config["password"])):
        assert SECRET not in text
        assert "tok-S3CRET" not in text
    assert repr(config["password"]) == "Secret('***')"
    assert f"{config['token']}" == "Secret('***')"
    assert config.redacted()["password"] == "***"
    assert config.redacted()["token"] == "***"
    assert config.redacted()["endpoint"] == "https://prism.test"
    assert host.plugin_config("acme.conf").redacted() == config.redacted()

    for bad in ("hunt3r", 12345678, ["hunter2-in-a-list"]):
        with pytest.raises(ConfigError) as info:
            validate_plugin_config("acme.conf", SCHEMA, {"password": bad}, {})
        assert info.value.field == "password"
        assert "the value is not shown" in str(info.value)
        assert str(bad) not in str(info.value)
        assert "hunter2" not in str(info.value)
        assert info.value.value is None


def test_a_secret_quoted_by_an_error_elsewhere_is_scrubbed() -> None:
    schema = {
        "type": "object",
        "properties": {
            "password": {"type": "string", "writeOnly": True},
            "user": {"type": "string"},
        },
        "not": {"required": ["user"]},
    }
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("acme.x", schema, {"password": SECRET, "user": "ada"}, {})
    assert info.value.field == "(top)"
    assert "'***'" in str(info.value)  # the instance is quoted, with the secret masked
    assert SECRET not in str(info.value)


def test_secrets_passed_in_code_stay_secret() -> None:
    config = validate_plugin_config(
        "acme.x", {"type": "object"}, {"api": {"key": Secret("code-S3CRET")}}, {}
    )
    assert config["api"]["key"].reveal() == "code-S3CRET"
    assert "code-S3CRET" not in repr(config)
    assert config.secret_values() == ["code-S3CRET"]


LOGGING_CODE = """\
class Plugin:
    def init(self, ctx):
        pw = ctx.config["password"].reveal()
        ctx.logger.info(f"logging in with {pw}")
        ctx.logger.info("logging in with %s (again)", pw)
        ctx.logger.debug("as repr: %r", pw)
        ctx.logger.warning("a table: %s", {"password": pw})
        try:
            raise RuntimeError(f"login refused for {pw}")
        except RuntimeError:
            ctx.logger.exception("login failed")
        ctx.logger.error("with exc_info", exc_info=ValueError(pw))
"""


@pytest.fixture
def plugbay_records() -> Iterator[list[str]]:
    """Every formatted message the ``plugbay`` logger and its children emit."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    logger = logging.getLogger("plugbay")
    handler = Collect(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(plugin_id)s %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_the_plugins_logger_scrubs_its_secrets(
    make_host: Any, plugins_dir: Path, home: Path, plugbay_records: list[str]
) -> None:
    _conf_plugin(plugins_dir, code=LOGGING_CODE)
    _write_config(home, f'[plugins."acme.conf"]\npassword = "{SECRET}"\n')
    host = make_host(plugins_dir)

    host.load("acme.conf")

    text = "\n".join(plugbay_records)
    assert "INFO acme.conf logging in with ***" in text
    assert "INFO acme.conf logging in with *** (again)" in text
    assert "DEBUG acme.conf as repr: '***'" in text
    assert "WARNING acme.conf a table: {'password': '***'}" in text
    assert "RuntimeError: login refused for ***" in text
    assert "ValueError: ***" in text
    assert SECRET not in text


def test_a_plugin_error_quoting_its_secret_is_scrubbed(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    code = """\
class Plugin:
    def init(self, ctx):
        raise RuntimeError("cannot log in with " + ctx.config["password"].reveal())
"""
    _conf_plugin(plugins_dir, code=code)
    _write_config(home, f'[plugins."acme.conf"]\npassword = "{SECRET}"\n')
    host = make_host(plugins_dir)
    with pytest.raises(LoadError) as info:
        host.load("acme.conf")
    assert str(info.value) == "acme.conf: init failed: RuntimeError: cannot log in with ***"
    status = next(s for s in host.status() if s.id == "acme.conf")
    assert status.detail is not None
    assert "Traceback" in status.detail
    assert SECRET not in status.detail
    assert SECRET not in (status.reason or "")


# ------------------------------------------------------------------ reconfigure


def test_reconfigure_keeps_the_old_config_when_the_new_one_is_invalid(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    _conf_plugin(plugins_dir, code=RECONFIGURABLE)
    _write_config(home, f'[plugins."acme.conf"]\npassword = "{SECRET}"\n')
    host = make_host(plugins_dir, config={"acme.conf": {"retries": 1}})
    host.load("acme.conf")

    with pytest.raises(ConfigError, match=r"retries: -5 is less than the minimum of 0"):
        host.reconfigure({"acme.conf": {"retries": -5}})

    assert host.shared["log"] == ["init", "start"]  # untouched: neither told nor restarted
    assert host.plugin_config("acme.conf")["retries"] == 1
    assert host.shared["ctx"].config["retries"] == 1
    assert host.state("acme.conf") is PluginState.STARTED


def test_reconfigure_reaches_a_plugin_through_its_reconfigure_method(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    _conf_plugin(plugins_dir, code=RECONFIGURABLE)
    # The password comes from config.toml: the new in-code config is validated over it.
    _write_config(home, f'[plugins."acme.conf"]\npassword = "{SECRET}"\n')
    host = make_host(plugins_dir)
    host.load("acme.conf")

    host.reconfigure({"acme.conf": {"retries": 7}})

    assert host.shared["log"] == ["init", "start", "reconfigure"]
    new = host.shared["configs"][-1]
    assert isinstance(new, PluginConfig)
    assert new["retries"] == 7
    assert new["password"].reveal() == SECRET
    assert host.plugin_config("acme.conf")["retries"] == 7


def test_reconfigure_restarts_a_plugin_without_a_reconfigure_method(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    _conf_plugin(plugins_dir)
    _write_config(home, f'[plugins."acme.conf"]\npassword = "{SECRET}"\n')
    host = make_host(plugins_dir)
    host.load("acme.conf")

    host.reconfigure({"acme.conf": {"endpoint": "https://new.test"}})

    assert host.shared["log"] == ["init", "start", "stop", "init", "start"]
    assert host.shared["ctx"].config["endpoint"] == "https://new.test"
    assert host.state("acme.conf") is PluginState.STARTED


def test_reconfigure_lets_a_plugin_that_failed_on_its_config_load(
    make_host: Any, plugins_dir: Path
) -> None:
    _conf_plugin(plugins_dir)
    host = make_host(plugins_dir)
    with pytest.raises(LoadError, match="'password' is a required property"):
        host.load("acme.conf")

    host.reconfigure({"acme.conf": {"password": SECRET}})

    assert host.state("acme.conf") is PluginState.RESOLVED
    assert host.load("acme.conf") is PluginState.STARTED
    assert host.shared["ctx"].config["password"].reveal() == SECRET


# ------------------------------------------------------------------ the command line


def test_info_shows_the_config_redacted_or_why_it_is_invalid(home: Path) -> None:
    plugins = home / "plugins"
    _conf_plugin(plugins)
    _conf_plugin(plugins, "acme.bad")
    _write_config(
        home,
        f'[plugins."acme.conf"]\npassword = "{SECRET}"\nretries = 2\n'
        f'[plugins."acme.bad"]\npassword = "{SECRET}"\nretries = "two"\n',
    )
    runner = CliRunner()
    base = ["--app", "testapp", "--home", str(home)]

    text = runner.invoke(command_group(), [*base, "info", "acme.conf"], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert '    password = "***"' in text.stdout
    assert "    retries = 2" in text.stdout
    assert '    db = {"host": "localhost", "port": 5432}' in text.stdout
    doc = json.loads(runner.invoke(command_group(), [*base, "info", "acme.conf", "--json"]).stdout)
    assert doc["config"]["password"] == "***"
    assert doc["config_error"] is None

    bad = runner.invoke(command_group(), [*base, "info", "acme.bad"], catch_exceptions=False)
    assert bad.exit_code == 0
    assert (
        "  config:       invalid: config of acme.bad: retries: 'two' is not of type 'integer'"
        in bad.stdout
    )
    assert SECRET not in text.output + bad.output


VAULT_CODE = """\
import logging

CTX = {}


class Plugin:
    def init(self, ctx):
        CTX["ctx"] = ctx
        pw = ctx.config["password"].reveal()
        ctx.logger.debug("debug: password %s", pw)
        ctx.logger.info("info: password " + pw)
        ctx.logger.warning("warning: token %r", ctx.config["token"].reveal())
        try:
            raise ConnectionError("refused " + pw)
        except ConnectionError:
            ctx.logger.exception("login failed")

    def health(self):
        pw = CTX["ctx"].config["password"].reveal()
        return {"status": "degraded", "message": "logged in with " + pw}


def sync(args):
    ctx = CTX["ctx"]
    ctx.logger.info("syncing with %s", ctx.config["password"].reveal())
    print("synced " + " ".join(args))


def fail(args):
    raise RuntimeError("the vault said no to " + CTX["ctx"].config["password"].reveal())
"""

VAULT_SCHEMA = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "default": "https://vault.test"},
        "password": {"type": "string", "writeOnly": True},
        "token": {"type": "string", "x-secret": True},
    },
    "required": ["password", "token"],
}


def _vault(plugins: Path, plugin_id: str, schema: dict[str, Any], commands: bool) -> None:
    contributes = (
        {
            "command": [
                {"name": "vault-sync", "entry": "vault:sync", "summary": "Sync the vault"},
                {"name": "vault-fail", "entry": "vault:fail", "summary": "Fail"},
            ]
        }
        if commands
        else None
    )
    write_plugin(
        plugins,
        plugin_id,
        entry="vault:Plugin",
        contributes=contributes,
        code={"vault.py": VAULT_CODE, "config.schema.json": json.dumps(schema)},
        extra='[config]\nschema = "config.schema.json"',
    )


def test_a_secret_appears_in_no_output_log_or_file(home: Path) -> None:
    """Every plugbay command, at -vvv, with and without --json: the secret shows nowhere."""
    plugins = home / "plugins"
    _vault(plugins, "acme.vault", VAULT_SCHEMA, commands=True)
    strict = {**VAULT_SCHEMA, "properties": {**VAULT_SCHEMA["properties"]}}
    strict["properties"]["password"] = {"type": "string", "writeOnly": True, "pattern": "^[0-9]+$"}
    _vault(plugins, "acme.badvault", strict, commands=False)
    _write_config(
        home,
        f'[plugins."acme.vault"]\npassword = "{SECRET}"\ntoken = "${{env:VAULT_TOKEN}}"\n'
        f'[plugins."acme.badvault"]\npassword = "{SECRET}"\ntoken = "${{env:VAULT_TOKEN}}"\n',
    )
    token = "tok-" + SECRET[::-1]
    env = {**os.environ, "VAULT_TOKEN": token}
    commands = [
        ["list"],
        ["list", "--all"],
        ["info", "acme.vault"],
        ["info", "acme.badvault"],
        ["help", "acme.vault"],
        ["help", "vault-sync"],
        ["doctor"],
        ["load", "acme.vault"],
        ["load", "acme.badvault"],
        ["status"],
        ["run", "vault-sync", "now"],
        ["run", "vault-fail"],
    ]
    outputs: dict[str, str] = {}
    for args in commands:
        for fmt in ([], ["--json"]):
            argv = ["--app", "testapp", "--home", str(home), "-vvv", *fmt, *args]
            result = subprocess.run(
                [sys.executable, "-m", "plugbay", *argv],
                capture_output=True,
                text=True,
                env=env,
                cwd=home,
                check=False,
            )
            outputs[" ".join([*fmt, *args])] = result.stdout + result.stderr

    # The runs did their work (so that finding nothing means something) ...
    assert "synced now" in outputs["run vault-sync now"]
    assert "info [acme.vault]: syncing with ***" in outputs["run vault-sync now"]
    assert "RuntimeError: the vault said no to ***" in outputs["run vault-fail"]
    assert "Traceback" in outputs["run vault-fail"]
    assert "debug [acme.vault]: debug: password ***" in outputs["status"]
    assert "ConnectionError: refused ***" in outputs["status"]
    assert "logged in with ***" in outputs["--json status"]
    assert '"password": "***"' in outputs["--json info acme.vault"]
    assert "the secret value does not satisfy 'pattern'" in outputs["load acme.badvault"]
    assert "the secret value does not satisfy 'pattern'" in outputs["info acme.badvault"]
    # ... and nothing, at any verbosity, in any format, shows the secrets.
    for name, text in outputs.items():
        assert SECRET not in text, name
        assert token not in text, name
    for path in home.rglob("*"):
        if path.is_file() and path != home / "config.toml":
            data = path.read_bytes()
            assert SECRET.encode() not in data, path
            assert token.encode() not in data, path
