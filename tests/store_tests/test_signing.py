"""Keys, signed bundles and the trust policy, through the store: install and verify.

Each attack from the issue has its own test: a signature from an untrusted key, a trusted
key signing for a namespace it is not bound to, a signature moved from another bundle, a
truncated signature, a denied namespace, a bundle changed after it was signed, and an
installed version whose signature, key or files change afterwards.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import msgspec
import pytest

from conftest import write_plugin
from plugbay import Host
from plugbay.errors import BundleError, KeyringError, TrustError
from plugbay.store import Layout, Store, build_bundle
from plugbay.store.signing import (
    Keyring,
    SigningKey,
    generate_key,
    key_id,
    load_public_key,
    load_signing_key,
    parse_signature,
    sign_bundle,
    verify_signature,
)

# ---------------------------------------------------------------- helpers


def make_key(tmp_path: Path, name: str) -> tuple[SigningKey, Path]:
    """A new key pair in ``tmp_path/keys``: the key, and its public key file."""
    return generate_key(tmp_path / "keys", name)


def trust(home: Path, public: Path, *namespaces: str) -> None:
    Keyring.load(home).trust(Layout(home), load_public_key(public), public.stem, namespaces)


def policy(home: Path, text: str) -> None:
    (home / "config.toml").write_text(f"[policy]\n{text}\n")


def bundle_of(
    tmp_path: Path,
    plugin_id: str = "acme.nutanix",
    version: str = "0.1.0",
    *,
    key: SigningKey | None = None,
    text: str = "def run():\n    return 1\n",
) -> Path:
    """Build ``plugin_id`` into its own folder, signed with ``key`` if given."""
    folder = tmp_path / "src" / f"{plugin_id}-{version}"
    src = write_plugin(folder, plugin_id, version, code={"tool/__init__.py": text})
    out = tmp_path / "out" / f"{plugin_id}-{version}-{key.id if key else 'unsigned'}"
    return build_bundle(src, out, sign=key.sign if key else None)


def members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def repack(bundle: Path, replace: dict[str, bytes | None], target: Path | None = None) -> Path:
    """Write ``bundle`` again with some entries replaced (None: removed), in reverse order,
    with other mtimes and compression: another encoding of the same (or changed) entries."""
    entries = members(bundle)
    for name, data in replace.items():
        if data is None:
            entries.pop(name, None)
        else:
            entries[name] = data
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(entries, reverse=True):
            info = tarfile.TarInfo(name)
            info.size = len(entries[name])
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(entries[name]))
    target = target or bundle.with_name("repacked-" + bundle.name)
    target.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9, mtime=12345))
    return target


def tree(home: Path) -> list[str]:
    """Everything in the home but its lock and keyring: what an install may change."""
    skip = {".lock", "config.toml"}
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.name not in skip and "keys" not in p.relative_to(home).parts
    )


def receipt(home: Path, plugin_id: str = "acme.nutanix", version: str = "0.1.0") -> dict[str, str]:
    data: dict[str, str] = json.loads(
        (home / "receipts" / f"{plugin_id}-{version}.json").read_text()
    )
    return data


# ---------------------------------------------------------------- keys and signatures


def test_a_key_id_is_the_start_of_the_sha256_of_the_raw_public_key(tmp_path: Path) -> None:
    key, public = make_key(tmp_path, "acme")
    loaded = load_public_key(public)

    assert key.id == loaded.id == key_id(loaded.raw)
    assert key.id == hashlib.sha256(loaded.raw).hexdigest()[:16]
    assert len(loaded.raw) == 32
    assert load_signing_key(tmp_path / "keys" / "acme.key").id == key.id


def test_generate_writes_an_owner_only_private_key_and_never_overwrites(tmp_path: Path) -> None:
    _, public = make_key(tmp_path, "acme")
    private = tmp_path / "keys" / "acme.key"

    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = private.read_bytes()
    with pytest.raises(KeyringError, match="exists already"):
        make_key(tmp_path, "acme")
    assert private.read_bytes() == before


def test_the_wrong_key_file_is_refused_with_what_to_use(tmp_path: Path) -> None:
    _, public = make_key(tmp_path, "acme")
    with pytest.raises(KeyringError, match="is a public key; signing needs the private key"):
        load_signing_key(public)
    with pytest.raises(KeyringError, match="is a private key; trust its public key instead"):
        load_public_key(tmp_path / "keys" / "acme.key")
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key\n")
    with pytest.raises(KeyringError, match="is not a PEM public key"):
        load_public_key(junk)


def test_build_sign_is_reproducible_and_the_same_as_build_then_sign(tmp_path: Path) -> None:
    key, _ = make_key(tmp_path, "acme")
    signed = bundle_of(tmp_path, key=key)
    again = bundle_of(tmp_path / "again", key=key)
    plain = bundle_of(tmp_path)
    later = sign_bundle(plain, key, tmp_path / "later")

    assert signed.read_bytes() == again.read_bytes() == later.read_bytes()
    entries = members(signed)
    assert list(entries)[:3] == ["MANIFEST.json", "FILES.json", "MANIFEST.json.sig"]
    assert {k: v for k, v in entries.items() if k != "MANIFEST.json.sig"} == members(plain)
    sig = json.loads(entries["MANIFEST.json.sig"])
    assert sorted(sig) == ["algorithm", "format", "key", "signature"]
    assert (sig["format"], sig["algorithm"], sig["key"]) == (1, "ed25519", key.id)
    public = load_public_key(tmp_path / "keys" / "acme.pub")
    parsed = parse_signature(entries["MANIFEST.json.sig"], "x")
    assert verify_signature(public, parsed, entries["MANIFEST.json"])
    assert not verify_signature(public, parsed, entries["MANIFEST.json"] + b" ")


def test_signing_again_replaces_the_signature_and_nothing_else(tmp_path: Path) -> None:
    first, _ = make_key(tmp_path, "first")
    second, _ = make_key(tmp_path, "second")
    bundle = bundle_of(tmp_path, key=first)
    before = members(bundle)

    sign_bundle(bundle, second)  # in place
    after = members(bundle)

    assert json.loads(after["MANIFEST.json.sig"])["key"] == second.id
    assert {k: v for k, v in after.items() if k != "MANIFEST.json.sig"} == {
        k: v for k, v in before.items() if k != "MANIFEST.json.sig"
    }


def test_signing_refuses_a_bundle_that_does_not_check_out(tmp_path: Path) -> None:
    key, _ = make_key(tmp_path, "acme")
    bundle = bundle_of(tmp_path)
    broken = repack(bundle, {"tool/__init__.py": b"evil = True\n"})
    before = broken.read_bytes()
    with pytest.raises(BundleError, match="does not match its size or sha256"):
        sign_bundle(broken, key)
    assert broken.read_bytes() == before


# ---------------------------------------------------------------- install: the policy


def test_a_signed_bundle_from_a_trusted_key_installs_and_records_its_signer(
    home: Path, tmp_path: Path
) -> None:
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")
    policy(home, "require-signatures = true")

    outcome = Store(home).install([str(bundle_of(tmp_path, key=key))])

    assert [c.action for c in outcome.changes] == ["install"]
    assert outcome.warnings == []
    assert receipt(home)["signer"] == key.id
    assert (home / "plugins/acme/nutanix/0.1.0/MANIFEST.json.sig").is_file()
    assert Store(home).verify()[0].ok


def test_the_signature_does_not_depend_on_the_tar_encoding(home: Path, tmp_path: Path) -> None:
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")
    policy(home, "require-signatures = true")
    other = repack(bundle_of(tmp_path, key=key), {})  # same entries, another tar and gzip

    Store(home).install([str(other)])

    assert receipt(home)["signer"] == key.id


def test_an_unsigned_bundle_is_refused_where_signatures_are_required(
    home: Path, tmp_path: Path
) -> None:
    policy(home, "require-signatures = true")
    before = tree(home)

    with pytest.raises(TrustError) as caught:
        Store(home).install([str(bundle_of(tmp_path))])

    assert str(caught.value) == (
        "acme.nutanix 0.1.0 is not signed, and [policy] require-signatures requires a "
        "signature for every plugin; install a bundle signed by a key trusted for acme "
        "(plugbay build --sign KEY, or plugbay sign BUNDLE --key KEY), or change "
        "require-signatures in config.toml"
    )
    assert tree(home) == before


def test_signatures_required_for_some_namespaces_leave_the_others_free(
    home: Path, tmp_path: Path
) -> None:
    policy(home, 'require-signatures = ["acme"]')
    store = Store(home)

    store.install([str(bundle_of(tmp_path, "tools.fmt", "1.0.0"))])
    with pytest.raises(TrustError, match="requires a signature for namespace acme;"):
        store.install([str(bundle_of(tmp_path))])
    with pytest.raises(TrustError, match=r"and \[policy\] require-signatures"):
        store.install([str(bundle_of(tmp_path, "acme.other", "1.0.0"))])

    assert receipt(home, "tools.fmt", "1.0.0").get("signer") is None
    assert not (home / "plugins" / "acme").exists()


def test_attack_a_signature_from_an_untrusted_key(home: Path, tmp_path: Path) -> None:
    stranger, _ = make_key(tmp_path, "stranger")
    bundle = bundle_of(tmp_path, key=stranger)
    policy(home, "require-signatures = true")
    before = tree(home)

    with pytest.raises(TrustError) as caught:
        Store(home).install([str(bundle)])

    assert str(caught.value) == (
        f"acme.nutanix 0.1.0 is signed by key {stranger.id}, which is not trusted for "
        "namespace acme (it is not in the keyring); if you trust its publisher, get their "
        "public key file and run: plugbay key trust FILE.pub --namespace acme"
    )
    assert tree(home) == before


def test_an_unknown_key_where_signatures_are_not_required_installs_with_a_warning(
    home: Path, tmp_path: Path
) -> None:
    stranger, _ = make_key(tmp_path, "stranger")

    outcome = Store(home).install([str(bundle_of(tmp_path, key=stranger))])

    assert outcome.warnings == [
        f"acme.nutanix 0.1.0 is signed by key {stranger.id}, which is not trusted for "
        "namespace acme (it is not in the keyring): its signature was not checked, and it "
        "is installed as unsigned (if you trust its publisher, get their public key file "
        "and run: plugbay key trust FILE.pub --namespace acme)"
    ]
    assert receipt(home).get("signer") is None


def test_attack_a_trusted_key_signing_for_a_namespace_it_is_not_bound_to(
    home: Path, tmp_path: Path
) -> None:
    key, public = make_key(tmp_path, "tools")
    trust(home, public, "tools")
    bundle = bundle_of(tmp_path, key=key)
    policy(home, 'require-signatures = ["acme"]')

    with pytest.raises(TrustError) as caught:
        Store(home).install([str(bundle)])

    assert str(caught.value) == (
        f"acme.nutanix 0.1.0 is signed by key {key.id} (tools), which is not trusted for "
        f"namespace acme; run: plugbay key trust {key.id} --namespace acme"
    )
    assert not (home / "plugins").exists()
    # Not required: installed as unsigned, and said so.
    policy(home, "require-signatures = false")
    outcome = Store(home).install([str(bundle)])
    assert outcome.warnings == [
        f"acme.nutanix 0.1.0 is signed by key {key.id} (tools), which is not trusted for "
        "namespace acme: it is installed as unsigned (if that key may sign for acme, run: "
        f"plugbay key trust {key.id} --namespace acme)"
    ]
    assert receipt(home).get("signer") is None


def test_a_key_trusted_for_any_namespace_signs_for_all(home: Path, tmp_path: Path) -> None:
    key, public = make_key(tmp_path, "release")
    trust(home, public, "*")
    policy(home, "require-signatures = true")

    Store(home).install([str(bundle_of(tmp_path, key=key))])

    assert receipt(home)["signer"] == key.id


@pytest.mark.parametrize("required", [True, False])
def test_attack_a_signature_moved_from_another_bundle(
    home: Path, tmp_path: Path, required: bool
) -> None:
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")
    policy(home, f"require-signatures = {str(required).lower()}")
    honest = bundle_of(tmp_path / "a", "acme.other", "1.0.0", key=key)
    target = bundle_of(tmp_path / "b")  # unsigned, made by someone else
    moved = repack(target, {"MANIFEST.json.sig": members(honest)["MANIFEST.json.sig"]})

    with pytest.raises(BundleError) as caught:
        Store(home).install([str(moved)])

    assert caught.value.problem == (
        f"MANIFEST.json.sig does not verify with key {key.id} (acme): the bundle was changed "
        "after it was signed, or the signature was taken from another bundle; it is refused "
        "(get the bundle again from its publisher)"
    )
    assert not (home / "plugins").exists()


def test_attack_a_bundle_changed_after_it_was_signed(home: Path, tmp_path: Path) -> None:
    """Files, FILES.json and MANIFEST.json rewritten consistently: only the signature fails."""
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")
    signed = bundle_of(tmp_path / "a", key=key)
    evil = bundle_of(tmp_path / "b", text="import os\nos.system('evil')\n")  # consistent metadata
    tampered = repack(evil, {"MANIFEST.json.sig": members(signed)["MANIFEST.json.sig"]})

    with pytest.raises(BundleError, match="does not verify with key"):
        Store(home).install([str(tampered)])
    assert not (home / "plugins").exists()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("truncated", "holding a signature of 40 bytes (an Ed25519 signature has 64)"),
        ("cut", "not a plugbay signature file"),
        ("garbage", "not a plugbay signature file"),
        ("not-base64", "holding a signature that is not base64"),
        ("algorithm", "format 1, algorithm 'rsa'"),
    ],
)
def test_attack_a_truncated_or_damaged_signature_is_refused_always(
    home: Path, tmp_path: Path, damage: str, problem: str
) -> None:
    # No keyring, no policy: a damaged signature is refused all the same.
    key, _ = make_key(tmp_path, "acme")
    bundle = bundle_of(tmp_path, key=key)
    sig = members(bundle)["MANIFEST.json.sig"]
    doc = json.loads(sig)
    if damage == "truncated":
        doc["signature"] = base64.b64encode(base64.b64decode(doc["signature"])[:40]).decode()
        data = json.dumps(doc).encode()
    elif damage == "cut":
        data = sig[: len(sig) // 2]
    elif damage == "garbage":
        data = os.urandom(64)
    elif damage == "not-base64":
        doc["signature"] = "!" * 88
        data = json.dumps(doc).encode()
    else:
        doc["algorithm"] = "rsa"
        data = json.dumps(doc).encode()

    with pytest.raises(BundleError) as caught:
        Store(home).install([str(repack(bundle, {"MANIFEST.json.sig": data}))])

    assert caught.value.problem.startswith(f"MANIFEST.json.sig is {problem}")
    assert caught.value.problem.endswith(
        "the signature is damaged or forged, and the bundle is refused (get the bundle "
        "again from its publisher)"
    )
    assert not (home / "plugins").exists()


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ('deny = ["acme"]', "denied by the policy: its namespace 'acme' is in [policy] deny"),
        ('deny = ["acme.nutanix"]', "denied by the policy: its id 'acme.nutanix' is in"),
        ('allow = ["tools"]', "not allowed by the policy: neither its id nor its namespace"),
    ],
)
def test_attack_a_denied_namespace_is_refused_at_install(
    home: Path, tmp_path: Path, rule: str, reason: str
) -> None:
    policy(home, rule)
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")  # a good signature does not override the deny list

    with pytest.raises(TrustError) as caught:
        Store(home).install([str(bundle_of(tmp_path, key=key))], dry_run=True)
    assert str(caught.value).startswith(f"acme.nutanix 0.1.0 cannot be installed: {reason}")
    assert str(caught.value).endswith("(config.toml); nothing was changed")
    with pytest.raises(TrustError):
        Store(home).install([str(bundle_of(tmp_path, key=key))])
    assert not (home / "plugins").exists()


def test_a_denied_dependency_is_refused_too(home: Path, tmp_path: Path) -> None:
    base = bundle_of(tmp_path, "evil.base", "1.0.0")
    src = write_plugin(tmp_path / "app", "acme.app", dependencies={"evil.base": ">=1.0.0"})
    policy(home, 'deny = ["evil"]')

    with pytest.raises(TrustError, match=r"^evil\.base 1\.0\.0 cannot be installed: denied"):
        Store(home).install([str(src), str(base)])
    assert not (home / "plugins").exists()


# ---------------------------------------------------------------- verify


@pytest.fixture
def signed_install(home: Path, tmp_path: Path) -> tuple[SigningKey, Path]:
    """acme.nutanix 0.1.0, installed from a bundle signed by a key trusted for acme."""
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")
    Store(home).install([str(bundle_of(tmp_path, key=key))])
    return key, home / "plugins/acme/nutanix/0.1.0"


def errors(home: Path) -> list[str]:
    (report,) = Store(home).verify()
    return report.errors


def test_verify_reports_a_signature_that_no_longer_verifies(
    home: Path, tmp_path: Path, signed_install: tuple[SigningKey, Path]
) -> None:
    key, folder = signed_install
    assert Store(home).verify()[0].ok
    other = bundle_of(tmp_path / "o", "acme.other", "1.0.0", key=key)
    (folder / "MANIFEST.json.sig").write_bytes(members(other)["MANIFEST.json.sig"])

    assert errors(home) == [
        f"MANIFEST.json.sig does not verify with key {key.id} (acme): MANIFEST.json or the "
        "signature was changed after install (reinstall it)"
    ]


def test_verify_reports_a_removed_or_replaced_signature(
    home: Path, tmp_path: Path, signed_install: tuple[SigningKey, Path]
) -> None:
    key, folder = signed_install
    sig = folder / "MANIFEST.json.sig"
    original = sig.read_bytes()
    sig.unlink()
    (report,) = Store(home).verify()
    assert report.missing == ["MANIFEST.json.sig"]

    stranger, public = make_key(tmp_path, "stranger")
    trust(home, public, "acme")
    sig.write_bytes(stranger.sign((folder / "MANIFEST.json").read_bytes()))
    assert errors(home) == [
        f"MANIFEST.json.sig names key {stranger.id}, but it was installed signed by "
        f"{key.id}: the signature file was replaced (reinstall it)"
    ]
    sig.write_bytes(original[:50])
    assert errors(home)[0].startswith("MANIFEST.json.sig is not a plugbay signature file")


def test_verify_catches_a_consistent_rewrite_of_a_signed_version(
    home: Path, signed_install: tuple[SigningKey, Path]
) -> None:
    """A file, FILES.json and MANIFEST.json rewritten to agree: the receipt and the
    signature both catch it."""
    _, folder = signed_install
    code = folder / "tool/__init__.py"
    code.write_text("evil = True\n")
    files = json.loads((folder / "FILES.json").read_bytes())
    for entry in files["files"]:
        if entry["path"] == "tool/__init__.py":
            entry["size"] = code.stat().st_size
            entry["sha256"] = hashlib.sha256(code.read_bytes()).hexdigest()
    files_json = msgspec.json.encode(files)
    (folder / "FILES.json").write_bytes(files_json)
    manifest = json.loads((folder / "MANIFEST.json").read_bytes())
    manifest["files_sha256"] = hashlib.sha256(files_json).hexdigest()
    (folder / "MANIFEST.json").write_bytes(msgspec.json.encode(manifest))

    (report,) = Store(home).verify()

    assert report.modified == ["MANIFEST.json"]
    assert report.errors[0].startswith("MANIFEST.json.sig does not verify with key")


def test_verify_reports_a_key_untrusted_or_unbound_since_install(
    home: Path, signed_install: tuple[SigningKey, Path]
) -> None:
    key, _ = signed_install
    layout = Layout(home)
    Keyring.load(home).trust(layout, Keyring.load(home).public_key(key.id), "acme", ["tools"])
    Keyring.load(home).untrust(layout, key.id, ["acme"])
    assert errors(home) == [
        f"it is signed by key {key.id} (acme), which is no longer trusted for namespace acme "
        f"(run: plugbay key trust {key.id} --namespace acme; or remove it)"
    ]
    Keyring.load(home).untrust(layout, key.id)
    assert errors(home) == [
        f"it is signed by key {key.id}, which is no longer in the keyring (trust it again: "
        "plugbay key trust FILE.pub --namespace acme; or remove it)"
    ]


def test_verify_reports_a_keyring_key_file_swapped_for_another(
    home: Path, tmp_path: Path, signed_install: tuple[SigningKey, Path]
) -> None:
    key, _ = signed_install
    _, other = make_key(tmp_path, "other")
    (home / "keys" / f"{key.id}.pub").write_bytes(other.read_bytes())

    assert errors(home) == [
        f"{home / 'keys' / (key.id + '.pub')}: holds key {load_public_key(other).id}, not "
        f"{key.id}: the keyring was altered; trust the publisher's key again (plugbay key "
        f"untrust {key.id}, then plugbay key trust FILE --namespace NS)"
    ]


def test_verify_reports_unsigned_versions_once_signatures_are_required(
    home: Path, tmp_path: Path
) -> None:
    Store(home).install([str(bundle_of(tmp_path))])
    assert Store(home).verify()[0].ok
    policy(home, 'require-signatures = ["acme"]')

    assert errors(home) == [
        "it was not installed from a bundle signed by a key trusted for acme, and [policy] "
        "require-signatures now requires one for namespace acme (install a signed bundle "
        "of it, or remove it)"
    ]


# ---------------------------------------------------------------- shadowing built-ins


def test_attack_a_project_plugin_shadowing_a_builtin_when_the_policy_forbids_it(
    home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_plugin(project, "acme.core", "9.9.9")
    builtin = {"plugin": {"namespace": "acme", "name": "core", "version": "1.0.0"}}

    def host() -> Host:
        made = Host(
            "testapp",
            home=home,
            entry_points=False,
            project_path=project,
            system_path=tmp_path / "none",
        )
        made.add_builtin(builtin)
        return made

    allowed = host()
    assert allowed.load_plan.get("acme.core").record.origin == "project"  # type: ignore[union-attr]

    policy(home, "allow-shadowing-builtins = false")
    strict = host()
    chosen = strict.load_plan.get("acme.core")
    assert chosen is not None
    assert (chosen.record.origin, chosen.record.version) == ("builtin", "1.0.0")
    refused = [p for p in strict.problems() if p.code == "plugin.shadowing-refused"]
    assert [(p.severity, p.plugin_id, p.path) for p in refused] == [
        ("warning", "acme.core", str(project / "acme.core"))
    ]
    assert refused[0].message == (
        f"acme.core@9.9.9 (project, {project / 'acme.core'}) may not shadow the built-in "
        "acme.core@1.0.0: [policy] allow-shadowing-builtins is false, so the built-in loads "
        "(remove that copy, or set allow-shadowing-builtins = true in config.toml)"
    )
    # A plugin with no built-in copy is not affected.
    write_plugin(project, "acme.extra")
    assert host().load_plan.get("acme.extra") is not None


# ---------------------------------------------------------------- sync


def test_sync_goes_through_the_trust_policy_too(home: Path, tmp_path: Path) -> None:
    key, public = make_key(tmp_path, "acme")
    signed, unsigned = bundle_of(tmp_path, key=key), bundle_of(tmp_path, "tools.fmt", "1.0.0")
    Store(home).install([str(signed), str(unsigned)])
    lock, _ = Store(home).lock()
    strict, loose = tmp_path / "strict", tmp_path / "loose"
    strict.mkdir()
    loose.mkdir()
    policy(strict, "require-signatures = true")
    trust(strict, public, "acme")

    with pytest.raises(TrustError, match=r"^tools\.fmt 1\.0\.0 is not signed, and \[policy\]"):
        Store(strict).sync(lock)
    assert not (strict / "plugins").exists()

    policy(strict, 'require-signatures = ["acme"]')
    assert Store(strict).sync(lock).warnings == []
    assert receipt(strict)["signer"] == key.id
    assert receipt(strict, "tools.fmt", "1.0.0").get("signer") is None

    # A home that does not know the key: installed as unsigned, and said so.
    warnings = Store(loose).sync(lock).warnings
    assert [w.split(":")[0] for w in warnings] == [
        f"acme.nutanix 0.1.0 is signed by key {key.id}, which is not trusted for namespace "
        "acme (it is not in the keyring)"
    ]
    assert receipt(loose).get("signer") is None


# ---------------------------------------------------------------- use


def test_use_checks_the_trust_policy_of_now(home: Path, tmp_path: Path) -> None:
    """A version installed under a looser policy is not made active under a stricter one;
    the active version stays."""
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")
    store = Store(home)
    store.install([str(bundle_of(tmp_path, version="0.1.0"))])
    store.install([str(bundle_of(tmp_path, version="0.2.0", key=key))])
    active = home / "plugins/acme/nutanix/active"
    assert active.read_text() == "0.2.0"

    policy(home, "require-signatures = true")
    with pytest.raises(TrustError) as refused:
        store.use("acme.nutanix", "0.1.0")
    assert str(refused.value) == (
        "acme.nutanix 0.1.0 cannot be made active: it was not installed from a bundle signed "
        "by a key trusted for acme, and [policy] require-signatures now requires one for "
        "every plugin (install a signed bundle of it, or remove it); nothing was changed"
    )
    assert active.read_text() == "0.2.0"

    policy(home, 'require-signatures = true\ndeny = ["acme.nutanix"]')
    with pytest.raises(TrustError, match=r"^acme\.nutanix 0\.1\.0 cannot be made active: "):
        store.use("acme.nutanix", "0.1.0")

    # The signed version may go back and forth while its key is trusted...
    policy(home, "require-signatures = true")
    store.install([str(bundle_of(tmp_path, version="0.3.0", key=key))])
    assert [c.action for c in store.use("acme.nutanix", "0.2.0").changes] == ["switch"]
    # ...and not once the key is no longer trusted for the namespace.
    Keyring.load(home).untrust(Layout(home), key.id)
    with pytest.raises(TrustError, match=r"which is no longer in the keyring"):
        store.use("acme.nutanix", "0.3.0")
    assert active.read_text() == "0.2.0"

    # Where signatures are not required, any version may be made active (as any bundle
    # may be installed, unsigned if need be); verify still reports the untrusted key.
    policy(home, "require-signatures = false")
    assert [c.action for c in store.use("acme.nutanix", "0.3.0").changes] == ["switch"]
    assert [c.action for c in store.use("acme.nutanix", "0.1.0").changes] == ["switch"]
