"""Ed25519 signing keys, bundle signatures, and the keyring of trusted keys (DESIGN §3, §4).

Keys
    ``plugbay key generate NAME`` writes ``NAME.key``, the private key (PEM, PKCS#8,
    unencrypted, mode 0600), and ``NAME.pub``, the public key (PEM, SubjectPublicKeyInfo):
    the file a user passes to ``plugbay key trust``. A key's id is the first 16 hex digits
    of the sha256 of its raw 32-byte public key.

Signatures
    A bundle's ``MANIFEST.json.sig`` is a small JSON document, ``{"format": 1,
    "algorithm": "ed25519", "key": "<key id>", "signature": "<base64>"}``: an Ed25519
    signature over the exact bytes of ``MANIFEST.json``. MANIFEST.json pins FILES.json by
    its sha256 and FILES.json pins every file, so the signature covers the whole bundle,
    whatever its tar or gzip encoding, and is checked offline. Ed25519 signatures are
    deterministic: signing a reproducible bundle gives a reproducible bundle.

Keyring
    ``<home>/keys/<key id>.pub`` holds each trusted public key, and ``<home>/keys/trusted.toml``
    binds each to the namespaces it may sign for (``*``: any namespace)::

        [keys."3f2a9c0d1e2b4a5f"]
        name = "acme"
        namespaces = ["acme"]
        added = "2025-01-31T12:00:00+00:00"

    Changes hold the home's lock and commit atomically (see :mod:`.transaction`).

The ``cryptography`` library is imported only by the functions that sign or verify:
reading the keyring (``list``, ``info``) does not need it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import BundleError, KeyringError
from .bundle import MANIFEST_JSON, SIGNATURE, read_bundle, rewrite_bundle

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .layout import Layout

__all__ = [
    "ANY_NAMESPACE",
    "KEYS_DIR",
    "TRUSTED_FILE",
    "Keyring",
    "PublicKey",
    "Signature",
    "SigningKey",
    "TrustedKey",
    "generate_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "parse_signature",
    "sign_bundle",
    "signature_bytes",
    "verify_signature",
]

SIGNATURE_FORMAT = 1
ALGORITHM = "ed25519"
KEYS_DIR = "keys"
TRUSTED_FILE = "trusted.toml"
#: In a key's namespaces: it may sign for any namespace.
ANY_NAMESPACE = "*"

_SIGNATURE_BYTES = 64
_PUBLIC_BYTES = 32
_KEY_ID = re.compile(r"^[0-9a-f]{16}\Z")
_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]*\Z")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def key_id(raw_public: bytes) -> str:
    """The id of a public key: the first 16 hex digits of the sha256 of its 32 raw bytes."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


# ---------------------------------------------------------------- keys


class PublicKey(msgspec.Struct, frozen=True, gc=False):
    """An Ed25519 public key: its id and its 32 raw bytes."""

    id: str
    raw: bytes

    def pem(self) -> bytes:
        """The key as a PEM SubjectPublicKeyInfo document (what ``NAME.pub`` holds)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


class SigningKey(msgspec.Struct, frozen=True):
    """An Ed25519 private key, read from a ``.key`` file, that signs MANIFEST.json bytes."""

    public: PublicKey
    path: str
    _private: Ed25519PrivateKey

    @property
    def id(self) -> str:
        return self.public.id

    def sign(self, manifest_json: bytes) -> bytes:
        """The bytes of a ``MANIFEST.json.sig`` file for ``manifest_json``."""
        return signature_bytes(self.id, self._private.sign(manifest_json))


def generate_key(folder: Path, name: str) -> tuple[SigningKey, Path]:
    """Make a new key pair: ``folder/NAME.key`` (mode 0600) and ``folder/NAME.pub``.

    Returns the key and the public key's path. Refuses to overwrite either file.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    if not _NAME.match(name):
        raise KeyringError(
            name,
            "is not a usable key name: use letters, digits, '.', '_' and '-' "
            "(it names NAME.key and NAME.pub)",
        )
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise KeyringError(str(path), "exists already; choose another NAME or folder (-o DIR)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    key = _signing_key(private, str(private_path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # O_EXCL and mode 0600 from the start: the private key is never readable by others,
        # not even between creating the file and changing its mode.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
        finally:
            os.close(fd)
        public_path.write_bytes(key.public.pem())
    except OSError as exc:
        raise KeyringError(str(private_path), f"cannot be written: {exc.strerror or exc}") from None
    return key, public_path


def _signing_key(private: Ed25519PrivateKey, path: str) -> SigningKey:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SigningKey(PublicKey(key_id(raw), raw), path, private)


def load_signing_key(path: Path) -> SigningKey:
    """Read a private key written by ``plugbay key generate`` (PEM, Ed25519, unencrypted)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read(path)
    if b"PUBLIC KEY-----" in data:
        raise KeyringError(
            str(path),
            "is a public key; signing needs the private key (the NAME.key file "
            "`plugbay key generate` wrote beside it)",
        )
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        private = load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying a password is needed
        raise KeyringError(
            str(path),
            "is encrypted; plugbay signs with unencrypted keys only (keep the file "
            "private: mode 0600, out of plugin folders)",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyringError(
            str(path), "is not a PEM private key (make one with: plugbay key generate NAME)"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyringError(
            str(path), "is not an Ed25519 key (make one with: plugbay key generate NAME)"
        )
    return _signing_key(private, str(path))


def load_public_key(path: Path) -> PublicKey:
    """Read a public key file (PEM SubjectPublicKeyInfo, Ed25519), as ``key trust`` takes."""
    return public_key_from_pem(_read(path), str(path))


def public_key_from_pem(data: bytes, where: str) -> PublicKey:
    """A public key from the bytes of a ``.pub`` file; KeyringError naming ``where``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    if b"PRIVATE KEY-----" in data:
        raise KeyringError(
            where,
            "is a private key; trust its public key instead (the NAME.pub file beside "
            "it), and keep the private key to yourself",
        )
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        public = load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyringError(
            where, "is not a PEM public key (the NAME.pub file `plugbay key generate` writes)"
        ) from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyringError(where, "is not an Ed25519 public key; plugbay signs with Ed25519")
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PublicKey(key_id(raw), raw)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyringError(str(path), f"cannot be read: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- signatures


class _SignatureFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    algorithm: str
    key: str
    signature: str


class Signature(msgspec.Struct, frozen=True, gc=False):
    """A parsed ``MANIFEST.json.sig``: the id of the key that signed, and the signature."""

    key: str
    value: bytes


def signature_bytes(key: str, value: bytes) -> bytes:
    """The bytes of a ``MANIFEST.json.sig`` file (compact JSON, fixed key order)."""
    text = base64.b64encode(value).decode("ascii")
    return msgspec.json.encode(_SignatureFile(SIGNATURE_FORMAT, ALGORITHM, key, text)) + b"\n"


def parse_signature(data: bytes, where: str) -> Signature:
    """Read a ``MANIFEST.json.sig``; a malformed or truncated one is a BundleError.

    Only its form is checked here; :func:`verify_signature` checks it against a key.
    """

    def bad(problem: str) -> BundleError:
        return BundleError(
            where,
            f"{SIGNATURE} is {problem}: the signature is damaged or forged, and the bundle "
            "is refused (get the bundle again from its publisher)",
        )

    try:
        parsed = msgspec.json.decode(data, type=_SignatureFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad(f"not a plugbay signature file ({exc})") from None
    if parsed.format != SIGNATURE_FORMAT or parsed.algorithm != ALGORITHM:
        raise bad(
            f"format {parsed.format}, algorithm {parsed.algorithm!r}; this plugbay reads "
            f"format {SIGNATURE_FORMAT}, {ALGORITHM!r}"
        )
    if not _KEY_ID.match(parsed.key):
        raise bad(f"naming {parsed.key!r}, which is not a key id (16 hex digits)")
    try:
        value = base64.b64decode(parsed.signature, validate=True)
    except (binascii.Error, ValueError):
        raise bad("holding a signature that is not base64") from None
    if len(value) != _SIGNATURE_BYTES:
        raise bad(
            f"holding a signature of {len(value)} bytes (an Ed25519 signature has "
            f"{_SIGNATURE_BYTES}): truncated or padded"
        )
    return Signature(parsed.key, value)


def verify_signature(public: PublicKey, signature: Signature, data: bytes) -> bool:
    """Whether ``signature`` is ``public``'s signature over ``data``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if signature.key != public.id:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public.raw).verify(signature.value, data)
    except InvalidSignature:
        return False
    return True


def sign_bundle(bundle: Path, key: SigningKey, out_dir: Path | None = None) -> Path:
    """Add (or replace) the bundle's ``MANIFEST.json.sig``, signed with ``key``.

    The bundle is read and checked whole first; it is written back reproducibly with
    the same files, into ``out_dir`` (same name) or in place (replaced atomically).
    Returns the signed bundle's path.
    """
    read = read_bundle(bundle)
    signature = key.sign(read.contents[MANIFEST_JSON])
    target = (out_dir / bundle.name) if out_dir is not None else bundle
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    rewrite_bundle(read, target, signature)
    return target


# ---------------------------------------------------------------- keyring


class TrustedKey(msgspec.Struct, frozen=True, gc=False):
    """A key in the keyring: its id, a name for people, the namespaces it may sign for."""

    id: str
    name: str
    namespaces: tuple[str, ...]
    added: str = ""

    def may_sign(self, plugin_id: str) -> bool:
        """Whether this key is trusted for ``plugin_id``'s namespace (its id, if it has none)."""
        return ANY_NAMESPACE in self.namespaces or namespace_of(plugin_id) in self.namespaces


def namespace_of(plugin_id: str) -> str:
    """``acme.tool`` → ``acme``; a plugin without a namespace stands for itself (``tool``)."""
    return plugin_id.split(".", 1)[0]


class Keyring:
    """The trusted keys of one home (``<home>/keys``); reading only, except :meth:`trust`
    and :meth:`untrust`, which hold the home's lock."""

    def __init__(self, folder: Path, keys: Mapping[str, TrustedKey]) -> None:
        self.folder = folder
        self.keys = dict(keys)

    @classmethod
    def load(cls, home: Path) -> Keyring:
        """Read ``<home>/keys/trusted.toml``; no such file is an empty keyring."""
        folder = home / KEYS_DIR
        return cls(folder, _read_trusted(folder / TRUSTED_FILE))

    def get(self, key: str) -> TrustedKey | None:
        return self.keys.get(key)

    def public_key(self, key: str) -> PublicKey:
        """The public key of a trusted key, read from ``<id>.pub`` and checked against its id."""
        path = self.folder / f"{key}.pub"
        public = public_key_from_pem(_read(path), str(path))
        if public.id != key:
            raise KeyringError(
                str(path),
                f"holds key {public.id}, not {key}: the keyring was altered; trust the "
                f"publisher's key again (plugbay key untrust {key}, then plugbay key trust "
                "FILE --namespace NS)",
            )
        return public

    def trust(
        self, layout: Layout, public: PublicKey, name: str, namespaces: Sequence[str]
    ) -> tuple[TrustedKey, list[str]]:
        """Add ``public`` for ``namespaces`` (added to those it has): the key, and the
        namespaces that are new."""
        from .transaction import Transaction, locked

        _check_namespaces(namespaces)
        # The name is for people (key list, messages): one that TOML or a terminal would
        # mangle is dropped, and the key goes by its id.
        name = name if _NAME.match(name) else ""
        with locked(layout):
            current = _read_trusted(self.folder / TRUSTED_FILE)
            old = current.get(public.id)
            have = old.namespaces if old else ()
            new = [ns for ns in dict.fromkeys(namespaces) if ns not in have]
            now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            entry = TrustedKey(
                public.id,
                old.name if old else name,
                tuple(sorted({*have, *new})),
                old.added if old else now,
            )
            if old == entry and (self.folder / f"{public.id}.pub").is_file():
                self.keys = current
                return entry, []
            current[public.id] = entry
            txn = Transaction(layout)
            try:
                txn.write(self.folder / f"{public.id}.pub", public.pem())
                txn.write(self.folder / TRUSTED_FILE, _dump_trusted(current))
                txn.commit()
            except BaseException:
                txn.abort()
                raise
            self.keys = current
            return entry, new

    def untrust(
        self, layout: Layout, key: str, namespaces: Sequence[str] = ()
    ) -> tuple[TrustedKey, TrustedKey | None]:
        """Remove a key (or, with ``namespaces``, only those bindings): the key as it was,
        and as it is after (None: removed)."""
        from .transaction import Transaction, locked

        with locked(layout):
            current = _read_trusted(self.folder / TRUSTED_FILE)
            old = _find_key(current, key, self.folder)
            left = tuple(ns for ns in old.namespaces if ns not in namespaces)
            after = TrustedKey(old.id, old.name, left, old.added) if namespaces and left else None
            if after is not None and after == old:
                return old, old
            txn = Transaction(layout)
            try:
                if after is None:
                    del current[old.id]
                    txn.delete(self.folder / f"{old.id}.pub")
                else:
                    current[old.id] = after
                txn.write(self.folder / TRUSTED_FILE, _dump_trusted(current))
                txn.commit()
            except BaseException:
                txn.abort()
                raise
            self.keys = current
            return old, after


def _find_key(keys: Mapping[str, TrustedKey], ref: str, folder: Path) -> TrustedKey:
    """A key by id, by a unique prefix of its id of 4 digits or more, or by name."""
    found = keys.get(ref)
    if found is not None:
        return found
    matches = [k for k in keys.values() if k.name == ref] or (
        [k for k in keys.values() if k.id.startswith(ref)] if len(ref) >= 4 else []
    )
    if len(matches) == 1:
        return matches[0]
    what = "names several keys" if matches else "is not a key in the keyring"
    raise KeyringError(str(folder / TRUSTED_FILE), f"{ref!r} {what} (run: plugbay key list)")


def find_key(keyring: Keyring, ref: str) -> TrustedKey:
    """A key of ``keyring`` by id, unique id prefix or name; KeyringError if none or several."""
    return _find_key(keyring.keys, ref, keyring.folder)


def _check_namespaces(namespaces: Sequence[str]) -> None:
    if not namespaces:
        raise KeyringError(
            "key trust",
            "say which namespaces the key may sign for: --namespace NS (repeat it for "
            f"several), or --namespace '{ANY_NAMESPACE}' for any",
        )
    for ns in namespaces:
        if ns != ANY_NAMESPACE and not _NAMESPACE.match(ns):
            raise KeyringError(
                "key trust",
                f"--namespace {ns!r} is not a namespace (lowercase letters, digits and _, "
                f"starting with a letter), nor '{ANY_NAMESPACE}' for any",
            )


class _TrustedEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str = ""
    namespaces: tuple[str, ...] = ()
    added: str = ""


class _TrustedFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: dict[str, _TrustedEntry] = {}


def _read_trusted(path: Path) -> dict[str, TrustedKey]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(str(path), f"cannot be read: {exc}") from None
    import tomllib

    try:
        parsed = msgspec.convert(tomllib.loads(text), _TrustedFile)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise KeyringError(
            str(path),
            f"is not a valid keyring file ({exc}); fix it, or remove it and trust the keys "
            "again with plugbay key trust",
        ) from None
    out: dict[str, TrustedKey] = {}
    for kid, entry in parsed.keys.items():
        if not _KEY_ID.match(kid):
            raise KeyringError(str(path), f"[keys.{kid!r}] is not a key id (16 hex digits)")
        out[kid] = TrustedKey(kid, entry.name, entry.namespaces, entry.added)
    return out


def _dump_trusted(keys: Mapping[str, TrustedKey]) -> bytes:
    lines = [
        "# Keys trusted to sign plugins, and the namespaces each may sign for ('*': any).",
        "# Changed by `plugbay key trust` and `plugbay key untrust`; <id>.pub holds each key.",
    ]
    for kid in sorted(keys):
        k = keys[kid]
        lines += [
            "",
            f'[keys."{kid}"]',
            f"name = {_toml_string(k.name)}",
            "namespaces = [" + ", ".join(_toml_string(ns) for ns in k.namespaces) + "]",
            f"added = {_toml_string(k.added)}",
        ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _toml_string(text: str) -> str:
    # A JSON string without \u escapes of non-ASCII text is a valid TOML basic string.
    return json.dumps(text, ensure_ascii=False)


def describe(key: TrustedKey | None, kid: str) -> str:
    """``3f2a9c0d1e2b4a5f (acme)``: a key for messages."""
    return f"{kid} ({key.name})" if key is not None and key.name else kid


def as_document(key: TrustedKey, folder: Path) -> dict[str, Any]:
    """A key for ``--json`` output."""
    return {
        "id": key.id,
        "name": key.name,
        "namespaces": list(key.namespaces),
        "added": key.added,
        "file": str(folder / f"{key.id}.pub"),
    }
