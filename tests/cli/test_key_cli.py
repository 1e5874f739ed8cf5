"""The key and sign commands, build --sign, and signatures and the trust policy as the
command line shows them: install, list, info, verify, doctor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import run_plugbay, write_plugin
from plugbay import Host
from plugbay.cli import command_group
from plugbay.cli.app import Settings
from plugbay.store.bundle import read_bundle, rewrite_bundle


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


@pytest.fixture
def keys(home: Path) -> dict[str, Any]:
    """Two key pairs made with `plugbay key generate` in <tmp>/keys: acme and other."""
    folder = home.parent / "keys"
    return {
        name: as_json(run_plugbay(home, "key", "generate", name, "-o", str(folder), "--json"))
        for name in ("acme", "other")
    }


@pytest.fixture
def source(home: Path) -> Path:
    """The folder of acme.nutanix 0.1.0."""
    return write_plugin(home.parent / "src", "acme.nutanix", "0.1.0", code={"n/__init__.py": ""})


def test_generate_trust_list_untrust(home: Path, keys: dict[str, Any]) -> None:
    acme = keys["acme"]
    assert Path(acme["private"]).name == "acme.key"
    assert Path(acme["public"]).name == "acme.pub"
    assert len(acme["id"]) == 16

    trusted = run_plugbay(home, "key", "trust", acme["public"], "--namespace", "acme")
    assert ok(trusted) == f"trust key {acme['id']} (acme) for namespace acme\n"
    again = run_plugbay(home, "key", "trust", acme["public"], "-n", "acme")
    assert ok(again) == f"nothing to trust: key {acme['id']} (acme) is already trusted for acme\n"
    # A key already in the keyring is named by its id (or a prefix) to add namespaces.
    assert "for namespace tools" in ok(
        run_plugbay(home, "key", "trust", acme["id"][:6], "-n", "tools")
    )

    listed = as_json(run_plugbay(home, "key", "list", "--json"))
    assert [(k["id"], k["name"], k["namespaces"]) for k in listed["keys"]] == [
        (acme["id"], "acme", ["acme", "tools"])
    ]
    assert Path(listed["keys"][0]["file"]) == home / "keys" / f"{acme['id']}.pub"
    table = ok(run_plugbay(home, "key", "list")).splitlines()
    assert table[0].split() == ["ID", "NAME", "NAMESPACES", "ADDED"]
    assert table[1].startswith(f"{acme['id']}  acme  acme, tools  ")

    partly = run_plugbay(home, "key", "untrust", "acme", "--namespace", "tools")
    assert ok(partly) == f"untrust key {acme['id']} (acme) for namespace tools\n"
    gone = run_plugbay(home, "key", "untrust", acme["id"])
    assert ok(gone) == f"untrust key {acme['id']} (acme): it is no longer in the keyring\n"
    assert not (home / "keys" / f"{acme['id']}.pub").exists()
    empty = ok(run_plugbay(home, "key", "list"))
    assert empty.startswith("no trusted keys in ")


def test_key_commands_refuse_bad_input_saying_what_to_do(home: Path, keys: dict[str, Any]) -> None:
    no_namespace = run_plugbay(home, "key", "trust", keys["acme"]["public"])
    assert no_namespace.returncode == 2
    assert "say which namespaces the key may sign for: --namespace NS" in no_namespace.stderr

    private = run_plugbay(home, "key", "trust", keys["acme"]["private"], "-n", "acme")
    assert private.returncode == 1
    assert "is a private key; trust its public key instead" in private.stderr

    bad = run_plugbay(home, "key", "trust", keys["acme"]["public"], "-n", "Acme!")
    assert bad.returncode == 1
    assert "--namespace 'Acme!' is not a namespace" in bad.stderr

    missing = run_plugbay(home, "key", "trust", "missing.pub", "-n", "acme")
    assert missing.returncode == 1
    assert missing.stderr == (
        "error: missing.pub: no such file (give the NAME.pub file, or the id of a trusted key)\n"
    )

    unknown = run_plugbay(home, "key", "untrust", "nobody")
    assert unknown.returncode == 1
    assert "'nobody' is not a key in the keyring (run: plugbay key list)" in unknown.stderr

    again = run_plugbay(home, "key", "generate", "acme", "-o", str(home.parent / "keys"))
    assert again.returncode == 1
    assert "acme.key: exists already; choose another NAME or folder (-o DIR)" in again.stderr
    assert not (home / "keys").exists()


def test_build_sign_and_sign_make_the_same_signed_bundle(
    home: Path, keys: dict[str, Any], source: Path
) -> None:
    out = home.parent / "out"
    signed = as_json(
        run_plugbay(
            home,
            "build",
            str(source),
            "-o",
            str(out / "a"),
            "--sign",
            keys["acme"]["private"],
            "--json",
        )
    )["bundle"]
    plain = ok(run_plugbay(home, "build", str(source), "-o", str(out / "b"))).strip()
    done = run_plugbay(home, "sign", plain, "--key", keys["acme"]["private"])
    assert ok(done) == f"signed {plain} with key {keys['acme']['id']}\n"
    elsewhere = as_json(
        run_plugbay(
            home, "sign", plain, "-k", keys["other"]["private"], "-o", str(out / "c"), "--json"
        )
    )

    assert Path(signed).read_bytes() == Path(plain).read_bytes()
    assert elsewhere == {"key": keys["other"]["id"], "bundles": [str(out / "c" / Path(plain).name)]}
    assert Path(elsewhere["bundles"][0]).read_bytes() != Path(plain).read_bytes()
    wrong = run_plugbay(home, "sign", plain, "--key", keys["acme"]["public"])
    assert wrong.returncode == 1
    assert "is a public key; signing needs the private key" in wrong.stderr


def test_refusals_and_warnings_are_in_the_default_output(
    home: Path, keys: dict[str, Any], source: Path
) -> None:
    out = home.parent / "out"
    bundle = ok(
        run_plugbay(home, "build", str(source), "-o", str(out), "--sign", keys["acme"]["private"])
    ).strip()
    ok(run_plugbay(home, "key", "trust", keys["acme"]["public"], "-n", "tools"))
    (home / "config.toml").write_text('[policy]\nrequire-signatures = ["acme"]\n')

    refused = run_plugbay(home, "install", bundle)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: acme.nutanix 0.1.0 is signed by key {keys['acme']['id']} (acme), which is not "
        f"trusted for namespace acme; run: plugbay key trust {keys['acme']['id']} --namespace "
        "acme\n"
    )
    assert not (home / "plugins").exists()

    (home / "config.toml").write_text("[policy]\nrequire-signatures = false\n")
    warned = run_plugbay(home, "install", bundle)
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr.startswith(
        f"warning: acme.nutanix 0.1.0 is signed by key {keys['acme']['id']} (acme), which is "
        "not trusted for namespace acme: it is installed as unsigned"
    )

    # A truncated signature, by a key nobody trusts, with no policy: refused all the same.
    ok(run_plugbay(home, "key", "untrust", keys["acme"]["id"]))
    (home / "config.toml").write_text("")
    truncated = home.parent / "truncated" / Path(bundle).name
    ok(
        run_plugbay(
            home, "sign", bundle, "--key", keys["other"]["private"], "-o", str(truncated.parent)
        )
    )
    read = read_bundle(truncated)
    assert read.signature is not None
    rewrite_bundle(read, truncated, read.signature[:-24] + b'"}\n')
    damaged = run_plugbay(home, "install", "--force", str(truncated))
    assert damaged.returncode == 1
    assert damaged.stderr.startswith(
        f"error: {truncated}: MANIFEST.json.sig is holding a signature"
    )
    assert "the bundle is refused (get the bundle again from its publisher)" in damaged.stderr


def test_list_info_and_verify_show_signatures(
    home: Path, keys: dict[str, Any], source: Path
) -> None:
    out = home.parent / "out"
    acme = keys["acme"]
    signed = ok(
        run_plugbay(home, "build", str(source), "-o", str(out), "--sign", acme["private"])
    ).strip()
    unsigned_src = write_plugin(home.parent / "src", "tools.fmt", "1.0.0")
    write_plugin(home / "plugins", "hand.placed")
    ok(run_plugbay(home, "key", "trust", acme["public"], "-n", "acme"))
    ok(run_plugbay(home, "install", signed, str(unsigned_src)))

    rows = {
        line.split()[0]: line.split()
        for line in ok(run_plugbay(home, "list")).splitlines()[1:]
        if not line.startswith(" ") and not line.startswith("note:")
    }
    assert rows["acme.nutanix"][-2:] == ["signed", "enabled"]
    assert rows["tools.fmt"][-2:] == ["unsigned", "enabled"]
    assert rows["hand.placed"][-2:] == ["-", "enabled"]
    listed = {p["id"]: p for p in as_json(run_plugbay(home, "list", "--json"))["plugins"]}
    assert (listed["acme.nutanix"]["signature"], listed["acme.nutanix"]["signer"]) == (
        "signed",
        acme["id"],
    )
    assert (listed["tools.fmt"]["signature"], listed["tools.fmt"]["signer"]) == ("unsigned", None)
    assert (listed["hand.placed"]["signature"], listed["hand.placed"]["signer"]) == (None, None)
    # Without its receipt, the store cannot say how a version was installed.
    receipt = home / "receipts" / "tools.fmt-1.0.0.json"
    kept = receipt.read_bytes()
    receipt.unlink()
    listed = {p["id"]: p for p in as_json(run_plugbay(home, "list", "--json"))["plugins"]}
    assert (listed["tools.fmt"]["signature"], listed["tools.fmt"]["signer"]) == (None, None)
    assert listed["acme.nutanix"]["signature"] == "signed"
    receipt.write_bytes(kept)

    info = ok(run_plugbay(home, "info", "acme.nutanix"))
    assert f"  signature:    signed by key {acme['id']} (acme), trusted for acme\n" in info
    doc = as_json(run_plugbay(home, "info", "acme.nutanix", "--json"))["signature"]
    assert doc == {
        "status": "signed",
        "key": acme["id"],
        "key_name": "acme",
        "key_trusted": True,
        "required": False,
        "namespace": "acme",
    }
    (home / "config.toml").write_text("[policy]\nrequire-signatures = true\n")
    assert "  signature:    unsigned (required by [policy] require-signatures)\n" in ok(
        run_plugbay(home, "info", "tools.fmt")
    )

    # A signature that no longer verifies: verify says so, in the default output.
    sig = home / "plugins/acme/nutanix/0.1.0/MANIFEST.json.sig"
    doc = json.loads(sig.read_bytes())
    doc["signature"] = (
        doc["signature"][:10]
        + ("A" if doc["signature"][10] != "A" else "B")
        + doc["signature"][11:]
    )
    sig.write_text(json.dumps(doc))
    checked = run_plugbay(home, "verify")
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert (
        f"error     acme.nutanix 0.1.0: MANIFEST.json.sig does not verify with key {acme['id']} "
        "(acme): MANIFEST.json or the signature was changed after install (reinstall it)"
    ) in lines
    assert (
        "error     tools.fmt 1.0.0: it was not installed from a bundle signed by a key trusted "
        "for tools, and [policy] require-signatures now requires one for every plugin "
        "(install a signed bundle of it, or remove it)"
    ) in lines


def test_list_and_doctor_say_why_a_copy_may_not_shadow_a_builtin(home: Path) -> None:
    project = home.parent / "project"
    write_plugin(project, "acme.core", "9.9.9")
    (home / "config.toml").write_text("[policy]\nallow-shadowing-builtins = false\n")

    def factory(settings: Settings) -> Host:
        host = Host(
            "testapp",
            home=settings.home,
            entry_points=False,
            project_path=project,
            system_path=home.parent / "none",
        )
        host.add_builtin({"plugin": {"namespace": "acme", "name": "core", "version": "1.0.0"}})
        return host

    group = command_group("testapp", host_factory=factory)
    runner = CliRunner()
    listed = runner.invoke(group, ["--home", str(home), "list"], catch_exceptions=False)
    doctor = runner.invoke(group, ["--home", str(home), "doctor"], catch_exceptions=False)
    as_doc = runner.invoke(group, ["--home", str(home), "list", "--json"], catch_exceptions=False)

    reason = (
        f"acme.core@9.9.9 (project, {project / 'acme.core'}) may not shadow the built-in "
        "acme.core@1.0.0: [policy] allow-shadowing-builtins is false, so the built-in loads "
        "(remove that copy, or set allow-shadowing-builtins = true in config.toml)"
    )
    assert listed.stdout.splitlines()[1].split()[:2] == ["acme.core", "1.0.0"]
    assert f"  acme.core: {reason}" in listed.stdout.splitlines()
    assert f"warning: {reason}" in doctor.stdout.splitlines()
    (plugin,) = json.loads(as_doc.stdout)["plugins"]
    assert (plugin["origin"], plugin["version"]) == ("builtin", "1.0.0")
    assert plugin["refused_copies"] == [{"path": str(project / "acme.core"), "reason": reason}]
